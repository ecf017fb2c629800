//! Throughput limits under `--limits aws`: per-shard write and read rates with
//! ProvisionedThroughputExceededException (per record in PutRecords), the penalty after a
//! large GetRecords, control-plane rates, and nothing of it under `--limits off`.

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};
use rivulet::data::throughput::ShardRates;

use crate::harness::{TestServer, client_without_retries, code, message};

async fn limited() -> (TestServer, Client) {
    let s = TestServer::start_with(|c| {
        c.shard_rates = ShardRates::AWS;
        c.control_plane_limits = true;
    })
    .await;
    let client = client_without_retries(&s.handle.endpoint());
    (s, client)
}

/// PutRecords of `n` small records whose explicit hash keys pin them to the first shard
/// (even `i`) or, with `spread`, alternate between the first and last shard.
async fn put_batch(
    client: &Client,
    stream: &str,
    n: usize,
    spread: bool,
) -> aws_sdk_kinesis::operation::put_records::PutRecordsOutput {
    let entries = (0..n)
        .map(|i| {
            let hash = if spread && i % 2 == 1 { u128::MAX } else { 0 };
            PutRecordsRequestEntry::builder()
                .partition_key(format!("k{i}"))
                .explicit_hash_key(hash.to_string())
                .data(Blob::new("x"))
                .build()
                .unwrap()
        })
        .collect();
    client
        .put_records()
        .stream_name(stream)
        .set_records(Some(entries))
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_shard_takes_1000_records_per_second_and_puts_records_partially() {
    let (s, client) = limited().await;
    s.create_stream("w", 2).await;
    assert_eq!(
        put_batch(&client, "w", 500, false)
            .await
            .failed_record_count,
        Some(0)
    );
    assert_eq!(
        put_batch(&client, "w", 500, false)
            .await
            .failed_record_count,
        Some(0)
    );
    // The first shard is full for this second; the second shard is not.
    let out = put_batch(&client, "w", 10, true).await;
    assert_eq!(out.failed_record_count, Some(5));
    for (i, r) in out.records.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(
                r.error_code.as_deref(),
                Some("ProvisionedThroughputExceededException")
            );
            assert_eq!(
                r.error_message.as_deref(),
                Some(
                    "Rate exceeded for shard shardId-000000000000 in stream w under account 000000000000."
                )
            );
            assert!(r.sequence_number.is_none());
        } else {
            assert_eq!(r.shard_id.as_deref(), Some("shardId-000000000001"));
        }
    }
    let one = client
        .put_record()
        .stream_name("w")
        .partition_key("k")
        .explicit_hash_key("0")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&one), "ProvisionedThroughputExceededException");
    s.advance_ms(1000);
    assert_eq!(
        put_batch(&client, "w", 500, false)
            .await
            .failed_record_count,
        Some(0)
    );
}

#[tokio::test]
async fn a_shard_takes_one_mib_per_second() {
    let (s, client) = limited().await;
    s.create_stream("bytes", 1).await;
    let big = Blob::new(vec![7u8; 600 << 10]);
    client
        .put_record()
        .stream_name("bytes")
        .partition_key("k")
        .data(big.clone())
        .send()
        .await
        .unwrap();
    let e = client
        .put_record()
        .stream_name("bytes")
        .partition_key("k")
        .data(big.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ProvisionedThroughputExceededException");
    s.advance_ms(600);
    client
        .put_record()
        .stream_name("bytes")
        .partition_key("k")
        .data(big)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn reads_are_held_to_five_calls_and_pay_for_large_responses() {
    let (s, client) = limited().await;
    s.create_stream("r", 1).await;
    let record = Blob::new(vec![1u8; (1 << 20) - 1]);
    for _ in 0..9 {
        client
            .put_record()
            .stream_name("r")
            .partition_key("k")
            .data(record.clone())
            .send()
            .await
            .unwrap();
        s.advance_ms(1000);
    }
    let it = client
        .get_shard_iterator()
        .stream_name("r")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    for _ in 0..5 {
        client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .unwrap();
    }
    let sixth = client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&sixth), "ProvisionedThroughputExceededException");
    assert_eq!(
        message(&sixth),
        "Rate exceeded for shard shardId-000000000000 in stream r under account 000000000000."
    );
    s.advance_ms(1000);

    // A 9 MiB response blocks reads of the shard for 5 seconds.
    let horizon = client
        .get_shard_iterator()
        .stream_name("r")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let page = client
        .get_records()
        .shard_iterator(&horizon)
        .send()
        .await
        .unwrap();
    assert_eq!(page.records.len(), 9);
    let next = page.next_shard_iterator.unwrap();
    s.advance_ms(4_999);
    assert_eq!(
        code(
            &client
                .get_records()
                .shard_iterator(&next)
                .send()
                .await
                .unwrap_err()
        ),
        "ProvisionedThroughputExceededException"
    );
    s.advance_ms(1);
    client
        .get_records()
        .shard_iterator(&next)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn control_plane_calls_are_held_to_their_rates() {
    let (s, client) = limited().await;
    client.describe_limits().send().await.unwrap();
    let e = client.describe_limits().send().await.unwrap_err();
    assert_eq!(code(&e), "LimitExceededException");
    s.advance_ms(1000);
    client.describe_limits().send().await.unwrap();
}

#[tokio::test]
async fn limits_off_throttles_nothing() {
    let s = TestServer::start().await;
    let client = client_without_retries(&s.handle.endpoint());
    s.create_stream("free", 1).await;
    for _ in 0..6 {
        assert_eq!(
            put_batch(&client, "free", 500, false)
                .await
                .failed_record_count,
            Some(0)
        );
    }
    for _ in 0..5 {
        client.describe_limits().send().await.unwrap();
    }
}
