//! GetShardIterator and GetRecords: every iterator type, limits, expiry, forgery, retention.

use aws_sdk_kinesis::primitives::{Blob, DateTime};
use aws_sdk_kinesis::types::ShardIteratorType;

use rivulet::clock::Clock;

use crate::harness::{TestServer, code, message, read_shard};

const SHARD: &str = "shardId-000000000000";

async fn put(s: &TestServer, stream: &str, data: &str) -> String {
    let put = s
        .client
        .put_record()
        .stream_name(stream)
        .partition_key("k")
        .data(Blob::new(data))
        .send()
        .await
        .unwrap();
    put.sequence_number
}

async fn iterator(
    s: &TestServer,
    stream: &str,
    kind: ShardIteratorType,
    seq: Option<&str>,
) -> String {
    let mut req = s
        .client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(SHARD)
        .shard_iterator_type(kind);
    if let Some(seq) = seq {
        req = req.starting_sequence_number(seq);
    }
    req.send().await.unwrap().shard_iterator.unwrap()
}

async fn data_from(s: &TestServer, it: &str) -> Vec<String> {
    let page = s
        .client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap();
    page.records
        .iter()
        .map(|r| String::from_utf8(r.data.as_ref().to_vec()).unwrap())
        .collect()
}

#[tokio::test]
async fn every_iterator_type_starts_where_kinesis_starts() {
    let s = TestServer::start().await;
    s.create_stream("it", 1).await;
    let latest = iterator(&s, "it", ShardIteratorType::Latest, None).await;
    let seqs = [put(&s, "it", "a").await, put(&s, "it", "b").await];
    s.advance_ms(5_000);
    let after_gap = DateTime::from_millis(s.clock.now_ms());
    let c = put(&s, "it", "c").await;

    assert_eq!(
        data_from(
            &s,
            &iterator(&s, "it", ShardIteratorType::TrimHorizon, None).await
        )
        .await,
        ["a", "b", "c"]
    );
    assert_eq!(
        data_from(&s, &latest).await,
        ["a", "b", "c"],
        "LATEST sees records written after it"
    );
    assert!(
        data_from(
            &s,
            &iterator(&s, "it", ShardIteratorType::Latest, None).await
        )
        .await
        .is_empty()
    );
    let at = iterator(
        &s,
        "it",
        ShardIteratorType::AtSequenceNumber,
        Some(&seqs[1]),
    )
    .await;
    assert_eq!(data_from(&s, &at).await, ["b", "c"]);
    let after = iterator(
        &s,
        "it",
        ShardIteratorType::AfterSequenceNumber,
        Some(&seqs[1]),
    )
    .await;
    assert_eq!(data_from(&s, &after).await, ["c"]);
    let ts = s
        .client
        .get_shard_iterator()
        .stream_name("it")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(after_gap)
        .send()
        .await
        .unwrap();
    assert_eq!(data_from(&s, &ts.shard_iterator.unwrap()).await, ["c"]);
    assert!(c > seqs[1]);
}

#[tokio::test]
async fn get_records_pages_with_fresh_iterators_and_reports_lag() {
    let s = TestServer::start().await;
    s.create_stream("page", 1).await;
    for i in 0..5 {
        put(&s, "page", &format!("r{i}")).await;
    }
    s.advance_ms(2_000);
    let it = iterator(&s, "page", ShardIteratorType::TrimHorizon, None).await;
    let first = s
        .client
        .get_records()
        .shard_iterator(&it)
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(first.records.len(), 2);
    let next = first.next_shard_iterator.unwrap();
    assert_ne!(next, it, "every call returns a new iterator");
    assert!(first.millis_behind_latest.unwrap() >= 2_000);
    let arrival = first.records[0].approximate_arrival_timestamp.unwrap();
    assert!((s.clock.now_ms() - arrival.to_millis().unwrap()).abs() <= 2_100);
    let rest = s
        .client
        .get_records()
        .shard_iterator(&next)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.records.len(), 3);
    assert_eq!(rest.millis_behind_latest, Some(0));
    let empty = s
        .client
        .get_records()
        .shard_iterator(rest.next_shard_iterator.unwrap())
        .send()
        .await
        .unwrap();
    assert!(empty.records.is_empty());
    assert!(
        empty.next_shard_iterator.is_some(),
        "an open shard always has a next iterator"
    );
}

#[tokio::test]
async fn iterators_expire_after_five_minutes() {
    let s = TestServer::start().await;
    s.create_stream("exp", 1).await;
    let it = iterator(&s, "exp", ShardIteratorType::TrimHorizon, None).await;
    s.advance_ms(300_001);
    let e = s
        .client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ExpiredIteratorException");
    assert!(
        message(&e).starts_with("Iterator expired. The iterator was created at time "),
        "{}",
        message(&e)
    );
    assert!(message(&e).ends_with(
        "which is further in the future than the tolerated delay of 300000 milliseconds."
    ));
}

#[tokio::test]
async fn forged_and_stale_iterators_are_refused() {
    let s = TestServer::start().await;
    s.create_stream("f", 2).await;
    put(&s, "f", "secret").await;
    let it = iterator(&s, "f", ShardIteratorType::TrimHorizon, None).await;
    let mut bytes = it.clone().into_bytes();
    let i = bytes.len() / 2;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(bytes).unwrap();
    let e = s
        .client
        .get_records()
        .shard_iterator(forged)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "InvalidArgumentException");
    assert_eq!(message(&e), "Invalid ShardIterator.");
    // A stream deleted and created again under the same name does not honour old iterators.
    s.client
        .delete_stream()
        .stream_name("f")
        .send()
        .await
        .unwrap();
    s.advance_ms(1_000);
    s.create_stream("f", 2).await;
    let stale = s
        .client
        .get_records()
        .shard_iterator(&it)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&stale), "InvalidArgumentException");
}

#[tokio::test]
async fn sequence_numbers_from_another_shard_or_stream_are_refused() {
    let s = TestServer::start().await;
    s.create_stream("one", 2).await;
    s.create_stream("two", 1).await;
    let put = s
        .client
        .put_record()
        .stream_name("one")
        .partition_key("b")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id, "shardId-000000000001");
    let wrong_shard = s
        .client
        .get_shard_iterator()
        .stream_name("one")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&put.sequence_number)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&wrong_shard), "InvalidArgumentException");
    assert!(
        message(&wrong_shard)
            .starts_with("Invalid StartingSequenceNumber. It encodes shardId-000000000001")
    );
    let missing = s
        .client
        .get_shard_iterator()
        .stream_name("one")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "InvalidArgumentException");
    assert!(
        message(&missing)
            .ends_with("Request specified AT_SEQUENCE_NUMBER and no StartingSequenceNumber.")
    );
    let no_shard = s
        .client
        .get_shard_iterator()
        .stream_name("two")
        .shard_id("shardId-000000000009")
        .shard_iterator_type(ShardIteratorType::Latest)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_shard), "ResourceNotFoundException");
    assert_eq!(
        message(&no_shard),
        "Shard shardId-000000000009 in stream two under account 000000000000 does not exist"
    );
    let future = s
        .client
        .get_shard_iterator()
        .stream_name("two")
        .shard_id(SHARD)
        .shard_iterator_type(ShardIteratorType::AtTimestamp)
        .timestamp(DateTime::from_millis(s.clock.now_ms() + 60_000))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&future), "InvalidArgumentException");
}

/// Records older than the retention period are never returned, and whole expired segments
/// are deleted from disk.
#[tokio::test]
async fn retention_hides_expired_records_and_reclaims_space() {
    let s = TestServer::start_with(|c| c.segment_bytes_max = 1 << 20).await;
    s.create_stream("ret", 1).await;
    let payload = "x".repeat(100_000);
    for _ in 0..25 {
        put(&s, "ret", &payload).await;
    }
    let shard_dir = std::fs::read_dir(s.dir.path().join("streams"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
        .join(SHARD);
    let segments = || {
        std::fs::read_dir(&shard_dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "seg")
            })
            .count()
    };
    let before = segments();
    assert!(before >= 3, "2.5 MB in 1 MiB segments: {before}");
    s.advance_ms(23 * 3_600_000);
    put(&s, "ret", "fresh").await;
    s.advance_ms(2 * 3_600_000);
    // 25 hours after the first records, 2 hours after the last one.
    let left = read_shard(&s.client, "ret", SHARD).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].data.as_ref(), b"fresh");
    s.tick().await;
    assert!(segments() < before, "expired segments are deleted");
    assert_eq!(read_shard(&s.client, "ret", SHARD).await.len(), 1);
}
