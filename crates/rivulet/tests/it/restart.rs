//! A clean restart keeps streams, records, sequence numbers, settings and iterators.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::ShardIteratorType;

use crate::harness::{TestServer, read_shard};

#[tokio::test]
async fn everything_survives_a_clean_restart() {
    let s = TestServer::start().await;
    s.client
        .create_stream()
        .stream_name("keep")
        .shard_count(2)
        .tags("team", "core")
        .send()
        .await
        .unwrap();
    s.client
        .increase_stream_retention_period()
        .stream_name("keep")
        .retention_period_hours(72)
        .send()
        .await
        .unwrap();
    let mut acked = Vec::new();
    for i in 0..50 {
        let put = s
            .client
            .put_record()
            .stream_name("keep")
            .partition_key(format!("k{i}"))
            .data(Blob::new(format!("v{i}")))
            .send()
            .await
            .unwrap();
        acked.push((put.shard_id, put.sequence_number, format!("v{i}")));
    }
    let it = s
        .client
        .get_shard_iterator()
        .stream_name("keep")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();

    let s = s.restart().await;
    let d = s
        .client
        .describe_stream_summary()
        .stream_name("keep")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.stream_description_summary.unwrap().retention_period_hours,
        72
    );
    let tags = s
        .client
        .list_tags_for_stream()
        .stream_name("keep")
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags[0].key, "team");
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        let stored = read_shard(&s.client, "keep", shard).await;
        let expected: Vec<_> = acked.iter().filter(|(sh, ..)| sh == shard).collect();
        assert_eq!(stored.len(), expected.len());
        for (record, (_, seq, data)) in stored.iter().zip(expected) {
            assert_eq!(&record.sequence_number, seq);
            assert_eq!(record.data.as_ref(), data.as_bytes());
        }
    }
    // An iterator issued before the restart still reads.
    let page = s
        .client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap();
    assert!(!page.records.is_empty());
    // Numbering continues after the last record.
    let next = s
        .client
        .put_record()
        .stream_name("keep")
        .partition_key("k0")
        .data(Blob::new("after"))
        .send()
        .await
        .unwrap();
    let last_before = acked
        .iter()
        .filter(|(sh, ..)| *sh == next.shard_id)
        .map(|(_, seq, _)| seq)
        .max()
        .unwrap();
    assert!(&next.sequence_number > last_before);
}
