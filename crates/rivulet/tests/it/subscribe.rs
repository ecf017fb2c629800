//! SubscribeToShard through aws-sdk-kinesis (HTTP/1.1 event stream): records pushed as they
//! arrive, continuation sequence numbers, the 5-second takeover rule, and the end of a
//! closed shard with ChildShards.

use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    ShardIteratorType, StartingPosition, SubscribeToShardEvent, SubscribeToShardEventStream,
};

use crate::harness::{TestServer, code};

const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/efo";

async fn consumer(s: &TestServer) -> String {
    s.client
        .register_stream_consumer()
        .stream_arn(ARN)
        .consumer_name("reader")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap()
        .consumer_arn
}

fn from(kind: ShardIteratorType) -> StartingPosition {
    StartingPosition::builder().r#type(kind).build().unwrap()
}

/// The next SubscribeToShardEvent, within a few seconds.
async fn next_event(
    stream: &mut aws_sdk_kinesis::primitives::event_stream::EventReceiver<
        SubscribeToShardEventStream,
        aws_sdk_kinesis::types::error::SubscribeToShardEventStreamError,
    >,
) -> Option<SubscribeToShardEvent> {
    let received = tokio::time::timeout(Duration::from_secs(10), stream.recv())
        .await
        .expect("an event within 10 s");
    match received.unwrap() {
        Some(SubscribeToShardEventStream::SubscribeToShardEvent(e)) => Some(e),
        Some(other) => panic!("unexpected event {other:?}"),
        None => None,
    }
}

#[tokio::test]
async fn records_are_pushed_as_they_arrive() {
    let s = TestServer::start().await;
    s.create_stream("efo", 1).await;
    let arn = consumer(&s).await;
    let mut seqs = Vec::new();
    for i in 0..3 {
        let put = s
            .client
            .put_record()
            .stream_name("efo")
            .partition_key("k")
            .data(Blob::new(format!("r{i}")))
            .send()
            .await
            .unwrap();
        seqs.push(put.sequence_number);
    }
    let mut out = s
        .client
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(from(ShardIteratorType::TrimHorizon))
        .send()
        .await
        .unwrap();
    let first = next_event(&mut out.event_stream).await.unwrap();
    let data: Vec<_> = first
        .records
        .iter()
        .map(|r| r.data.as_ref().to_vec())
        .collect();
    assert_eq!(data, [b"r0".to_vec(), b"r1".to_vec(), b"r2".to_vec()]);
    assert_eq!(first.continuation_sequence_number, seqs[2]);

    let again = s
        .client
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(from(ShardIteratorType::Latest))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "ResourceInUseException");

    let put = s
        .client
        .put_record()
        .stream_name("efo")
        .partition_key("k")
        .data(Blob::new("live"))
        .send()
        .await
        .unwrap();
    let live = next_event(&mut out.event_stream).await.unwrap();
    assert_eq!(live.records[0].data.as_ref(), b"live");
    assert_eq!(live.continuation_sequence_number, put.sequence_number);
}

#[tokio::test]
async fn a_closed_shard_ends_the_stream_with_its_children() {
    let s = TestServer::start().await;
    s.create_stream("efo", 1).await;
    let arn = consumer(&s).await;
    s.client
        .put_record()
        .stream_name("efo")
        .partition_key("k")
        .data(Blob::new("before"))
        .send()
        .await
        .unwrap();
    let mut out = s
        .client
        .subscribe_to_shard()
        .consumer_arn(&arn)
        .shard_id("shardId-000000000000")
        .starting_position(from(ShardIteratorType::TrimHorizon))
        .send()
        .await
        .unwrap();
    assert_eq!(
        next_event(&mut out.event_stream)
            .await
            .unwrap()
            .records
            .len(),
        1
    );
    s.client
        .split_shard()
        .stream_name("efo")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((1u128 << 127).to_string())
        .send()
        .await
        .unwrap();
    let last = loop {
        let e = next_event(&mut out.event_stream)
            .await
            .expect("a final event before the end");
        if !e.child_shards().is_empty() {
            break e;
        }
    };
    // Null on the wire; the Rust SDK models the member as required and corrects it to "".
    assert_eq!(last.continuation_sequence_number, "");
    assert_eq!(last.child_shards().len(), 2);
    assert!(
        next_event(&mut out.event_stream).await.is_none(),
        "the stream ends after the last event"
    );
}

#[tokio::test]
async fn unknown_consumers_and_shards_are_refused_before_streaming() {
    let s = TestServer::start().await;
    s.create_stream("efo", 1).await;
    let missing = s
        .client
        .subscribe_to_shard()
        .consumer_arn(format!("{ARN}/consumer/nobody:1"))
        .shard_id("shardId-000000000000")
        .starting_position(from(ShardIteratorType::Latest))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ResourceNotFoundException");
    let arn = consumer(&s).await;
    let no_shard = s
        .client
        .subscribe_to_shard()
        .consumer_arn(arn)
        .shard_id("shardId-000000000042")
        .starting_position(from(ShardIteratorType::Latest))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_shard), "ResourceNotFoundException");
}
