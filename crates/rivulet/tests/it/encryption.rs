//! Stream encryption: records written while it is on are sealed on disk and read back as
//! written; keys are named as Kinesis accepts them; unknown keys get the KMS error.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::EncryptionType;

use crate::harness::{TestServer, code, read_shard};

const SECRET: &[u8] = b"TOP-SECRET-PAYLOAD-7f3a9c1e5b";

/// Every file under `dir`, searched for `needle`.
fn appears_on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else if std::fs::read(&path)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
        {
            return true;
        }
    }
    false
}

#[tokio::test]
async fn encrypted_records_never_reach_the_disk_in_plaintext() {
    let s = TestServer::start().await;
    s.create_stream("sse", 1).await;
    s.client
        .put_record()
        .stream_name("sse")
        .partition_key("before")
        .data(Blob::new("plain-before"))
        .send()
        .await
        .unwrap();
    s.client
        .start_stream_encryption()
        .stream_name("sse")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();
    let d = s
        .client
        .describe_stream()
        .stream_name("sse")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(d.encryption_type, Some(EncryptionType::Kms));
    assert_eq!(d.key_id.as_deref(), Some("alias/aws/kinesis"));
    let put = s
        .client
        .put_record()
        .stream_name("sse")
        .partition_key("secret")
        .data(Blob::new(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(put.encryption_type, Some(EncryptionType::Kms));

    assert!(
        !appears_on_disk(s.dir.path(), SECRET),
        "the plaintext is on disk"
    );
    assert!(
        appears_on_disk(s.dir.path(), b"plain-before"),
        "the probe can find plaintext"
    );

    let s = s.restart().await;
    let records = read_shard(&s.client, "sse", "shardId-000000000000").await;
    assert_eq!(records[0].data.as_ref(), b"plain-before");
    assert_eq!(records[0].encryption_type, None);
    assert_eq!(records[1].data.as_ref(), SECRET);
    assert_eq!(records[1].encryption_type, Some(EncryptionType::Kms));

    s.client
        .stop_stream_encryption()
        .stream_name("sse")
        .encryption_type(EncryptionType::Kms)
        .key_id("alias/aws/kinesis")
        .send()
        .await
        .unwrap();
    let after = s
        .client
        .put_record()
        .stream_name("sse")
        .partition_key("k")
        .data(Blob::new("plain-after"))
        .send()
        .await
        .unwrap();
    assert_eq!(after.encryption_type, None);
    assert!(appears_on_disk(s.dir.path(), b"plain-after"));
    assert_eq!(
        read_shard(&s.client, "sse", "shardId-000000000000").await[1]
            .data
            .as_ref(),
        SECRET
    );
}

#[tokio::test]
async fn keys_are_named_by_alias_arn_or_id_and_unknown_ones_are_refused() {
    let s = TestServer::start_with(|c| c.kms_key_aliases = vec!["alias/orders".into()]).await;
    s.create_stream("keys", 1).await;
    let start = |key: &str| {
        s.client
            .start_stream_encryption()
            .stream_name("keys")
            .encryption_type(EncryptionType::Kms)
            .key_id(key)
            .send()
    };
    start("arn:aws:kms:us-east-1:000000000000:alias/orders")
        .await
        .unwrap();
    start("alias/orders").await.unwrap();
    let unknown = start("alias/does-not-exist").await.unwrap_err();
    assert_eq!(code(&unknown), "KMSNotFoundException");
    let other_region = start("arn:aws:kms:eu-west-1:000000000000:alias/orders")
        .await
        .unwrap_err();
    assert_eq!(code(&other_region), "KMSNotFoundException");
    let keys: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.dir.path().join("kms-keys.json")).unwrap())
            .unwrap();
    let id = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["aliases"][0] == "alias/orders")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    start(&id).await.unwrap();
    start(&format!("arn:aws:kms:us-east-1:000000000000:key/{id}"))
        .await
        .unwrap();
    s.client
        .put_record()
        .stream_name("keys")
        .partition_key("k")
        .data(Blob::new(SECRET))
        .send()
        .await
        .unwrap();
    assert_eq!(
        read_shard(&s.client, "keys", "shardId-000000000000").await[0]
            .data
            .as_ref(),
        SECRET
    );
}
