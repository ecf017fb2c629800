//! PutRecord and PutRecords: routing by MD5 and explicit hash key, sequence numbers, limits.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::harness::{TestServer, code, message, read_shard};

fn entry(key: &str, data: &[u8]) -> PutRecordsRequestEntry {
    PutRecordsRequestEntry::builder()
        .partition_key(key)
        .data(Blob::new(data))
        .build()
        .unwrap()
}

/// MD5 of the key as a big-endian integer picks the shard, as on Kinesis.
#[tokio::test]
async fn partition_keys_route_by_md5() {
    let s = TestServer::start().await;
    s.create_stream("route", 4).await;
    // MD5("a") = 0cc175b9…, in the first quarter; MD5("b") = 92eb5ffe…, in the third.
    for (key, shard) in [("a", "shardId-000000000000"), ("b", "shardId-000000000002")] {
        let put = s
            .client
            .put_record()
            .stream_name("route")
            .partition_key(key)
            .data(Blob::new("x"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.shard_id, shard, "key {key}");
    }
    let explicit = s
        .client
        .put_record()
        .stream_name("route")
        .partition_key("a")
        .explicit_hash_key(u128::MAX.to_string())
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(explicit.shard_id, "shardId-000000000003");
    let too_big = s
        .client
        .put_record()
        .stream_name("route")
        .partition_key("a")
        .explicit_hash_key("340282366920938463463374607431768211456")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&too_big), "InvalidArgumentException");
    assert!(message(&too_big).starts_with("Invalid ExplicitHashKey."));
}

#[tokio::test]
async fn sequence_numbers_increase_within_a_shard() {
    let s = TestServer::start().await;
    s.create_stream("seq", 1).await;
    let mut last: Option<u128> = None;
    for i in 0..20 {
        let put = s
            .client
            .put_record()
            .stream_name("seq")
            .partition_key(format!("k{i}"))
            .data(Blob::new("x"))
            .send()
            .await
            .unwrap();
        assert_eq!(put.sequence_number.len(), 56);
        let n: u128 = put.sequence_number[2..].parse().unwrap();
        assert!(last.is_none_or(|l| n > l));
        last = Some(n);
    }
}

#[tokio::test]
async fn put_records_reports_each_record_in_request_order() {
    let s = TestServer::start().await;
    s.create_stream("batch", 3).await;
    let entries: Vec<_> = (0..500)
        .map(|i| entry(&format!("key-{i}"), format!("value-{i}").as_bytes()))
        .collect();
    let out = s
        .client
        .put_records()
        .stream_name("batch")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(out.failed_record_count, Some(0));
    assert_eq!(out.records.len(), 500);
    let mut stored = Vec::new();
    for shard in [
        "shardId-000000000000",
        "shardId-000000000001",
        "shardId-000000000002",
    ] {
        stored.extend(
            read_shard(&s.client, "batch", shard)
                .await
                .into_iter()
                .map(|r| (shard, r)),
        );
    }
    assert_eq!(stored.len(), 500);
    for (i, result) in out.records.iter().enumerate() {
        let shard = result.shard_id.as_deref().unwrap();
        let seq = result.sequence_number.as_deref().unwrap();
        let (_, record) = stored
            .iter()
            .find(|(s, r)| *s == shard && r.sequence_number == seq)
            .unwrap();
        assert_eq!(record.data.as_ref(), format!("value-{i}").as_bytes());
        assert_eq!(
            record.partition_key.as_deref(),
            Some(format!("key-{i}").as_str())
        );
    }
}

#[tokio::test]
async fn records_up_to_one_mib_are_accepted_and_larger_ones_refused() {
    let s = TestServer::start().await;
    s.create_stream("big", 1).await;
    let key = "k";
    let max = vec![0xAB; (1 << 20) - key.len()];
    s.client
        .put_record()
        .stream_name("big")
        .partition_key(key)
        .data(Blob::new(max.clone()))
        .send()
        .await
        .unwrap();
    let over = vec![0xAB; 1 << 20];
    let e = s
        .client
        .put_record()
        .stream_name("big")
        .partition_key(key)
        .data(Blob::new(over))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    let back = read_shard(&s.client, "big", "shardId-000000000000").await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].data.as_ref(), max.as_slice());
}

#[tokio::test]
async fn empty_data_and_binary_data_round_trip() {
    let s = TestServer::start().await;
    s.create_stream("bin", 1).await;
    let binary: Vec<u8> = (0..=255).collect();
    s.client
        .put_record()
        .stream_name("bin")
        .partition_key("e")
        .data(Blob::new(Vec::new()))
        .send()
        .await
        .unwrap();
    s.client
        .put_record()
        .stream_name("bin")
        .partition_key("ünïcødé")
        .data(Blob::new(binary.clone()))
        .send()
        .await
        .unwrap();
    let back = read_shard(&s.client, "bin", "shardId-000000000000").await;
    assert!(back[0].data.as_ref().is_empty());
    assert_eq!(back[1].data.as_ref(), binary.as_slice());
    assert_eq!(back[1].partition_key.as_deref(), Some("ünïcødé"));
}

#[tokio::test]
async fn put_records_validation_names_the_bad_member() {
    let s = TestServer::start().await;
    s.create_stream("v", 1).await;
    let long_key = "k".repeat(257);
    let e = s
        .client
        .put_records()
        .stream_name("v")
        .records(entry("ok", b"x"))
        .records(entry(&long_key, b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ValidationException");
    assert_eq!(
        message(&e),
        format!(
            "1 validation error detected: Value '{long_key}' at 'records.2.member.partitionKey' failed to satisfy constraint: Member must have length less than or equal to 256"
        )
    );
    let missing = s
        .client
        .put_record()
        .stream_name("nope")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ResourceNotFoundException");
}

/// Many concurrent writers to one shard share fsyncs and every one gets a distinct number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_get_distinct_ordered_sequence_numbers() {
    let s = TestServer::start().await;
    s.create_stream("conc", 1).await;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let client = s.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..25 {
                let put = client
                    .put_record()
                    .stream_name("conc")
                    .partition_key(format!("w{w}"))
                    .data(Blob::new(format!("{w}-{i}")))
                    .send()
                    .await
                    .unwrap();
                seqs.push(put.sequence_number);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let seqs = t.await.unwrap();
        // One producer waiting for each acknowledgement sees increasing numbers.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]));
        all.extend(seqs);
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 400);
    assert_eq!(
        read_shard(&s.client, "conc", "shardId-000000000000")
            .await
            .len(),
        400
    );
}
