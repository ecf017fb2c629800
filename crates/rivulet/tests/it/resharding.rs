//! SplitShard, MergeShards and UpdateShardCount: lineage, closed shards, ChildShards, the
//! rules Kinesis enforces, and per-key order for writes that continue during resharding.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{ScalingType, Shard, ShardFilter, ShardFilterType, ShardIteratorType};

use crate::harness::{TestServer, code, message, read_shard};

const HALF: u128 = 1 << 127;

async fn shards(client: &Client, stream: &str) -> Vec<Shard> {
    client
        .list_shards()
        .stream_name(stream)
        .send()
        .await
        .unwrap()
        .shards
        .unwrap()
}

fn open(shards: &[Shard]) -> Vec<&Shard> {
    shards
        .iter()
        .filter(|s| {
            s.sequence_number_range
                .as_ref()
                .unwrap()
                .ending_sequence_number
                .is_none()
        })
        .collect()
}

#[tokio::test]
async fn split_closes_the_parent_and_routes_to_children() {
    let s = TestServer::start().await;
    s.create_stream("sp", 1).await;
    let before = s
        .client
        .put_record()
        .stream_name("sp")
        .partition_key("a")
        .data(Blob::new("old"))
        .send()
        .await
        .unwrap();
    s.client
        .split_shard()
        .stream_name("sp")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(HALF.to_string())
        .send()
        .await
        .unwrap();
    let all = shards(&s.client, "sp").await;
    assert_eq!(all.len(), 3);
    let parent = &all[0];
    let ending = parent
        .sequence_number_range
        .as_ref()
        .unwrap()
        .ending_sequence_number
        .clone()
        .unwrap();
    assert_eq!(
        ending, before.sequence_number,
        "the parent ends at its last record"
    );
    assert_eq!(
        all[1].parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    assert_eq!(
        all[1].hash_key_range.as_ref().unwrap().ending_hash_key,
        (HALF - 1).to_string()
    );
    assert_eq!(
        all[2].hash_key_range.as_ref().unwrap().starting_hash_key,
        HALF.to_string()
    );

    // MD5("a") is in the lower half, MD5("b") in the upper.
    let a = s
        .client
        .put_record()
        .stream_name("sp")
        .partition_key("a")
        .data(Blob::new("new"))
        .send()
        .await
        .unwrap();
    assert_eq!(a.shard_id, "shardId-000000000001");
    let b = s
        .client
        .put_record()
        .stream_name("sp")
        .partition_key("b")
        .data(Blob::new("new"))
        .send()
        .await
        .unwrap();
    assert_eq!(b.shard_id, "shardId-000000000002");

    // The parent is read to its end, then GetRecords names the children and stops.
    let it = s
        .client
        .get_shard_iterator()
        .stream_name("sp")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let page = s
        .client
        .get_records()
        .shard_iterator(it)
        .send()
        .await
        .unwrap();
    assert_eq!(page.records.len(), 1);
    assert!(
        page.next_shard_iterator.is_none(),
        "no iterator past the end of a closed shard"
    );
    let children: Vec<_> = page
        .child_shards()
        .iter()
        .map(|c| c.shard_id.as_str())
        .collect();
    assert_eq!(children, ["shardId-000000000001", "shardId-000000000002"]);

    // Filters follow lineage.
    let filter = |t| ShardFilter::builder().r#type(t).build().unwrap();
    let latest = s
        .client
        .list_shards()
        .stream_name("sp")
        .shard_filter(filter(ShardFilterType::AtLatest))
        .send()
        .await
        .unwrap();
    assert_eq!(latest.shards().len(), 2);
    let horizon = s
        .client
        .list_shards()
        .stream_name("sp")
        .shard_filter(filter(ShardFilterType::AtTrimHorizon))
        .send()
        .await
        .unwrap();
    assert_eq!(
        horizon
            .shards()
            .iter()
            .map(|s| s.shard_id.as_str())
            .collect::<Vec<_>>(),
        ["shardId-000000000000"]
    );
}

#[tokio::test]
async fn split_and_merge_enforce_kinesis_rules() {
    let s = TestServer::start().await;
    s.create_stream("rules", 2).await;
    let bad_key = s
        .client
        .split_shard()
        .stream_name("rules")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad_key), "InvalidArgumentException");
    assert!(
        message(&bad_key)
            .contains("is not both greater than one plus the shard's StartingHashKey 0")
    );
    let missing = s
        .client
        .split_shard()
        .stream_name("rules")
        .shard_to_split("shardId-000000000007")
        .new_starting_hash_key("100")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&missing), "ResourceNotFoundException");

    s.client
        .merge_shards()
        .stream_name("rules")
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000001")
        .send()
        .await
        .unwrap();
    let all = shards(&s.client, "rules").await;
    let child = &all[2];
    assert_eq!(
        child.parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    assert_eq!(
        child.adjacent_parent_shard_id.as_deref(),
        Some("shardId-000000000001")
    );
    assert_eq!(
        child.hash_key_range.as_ref().unwrap().starting_hash_key,
        "0"
    );
    assert_eq!(
        child.hash_key_range.as_ref().unwrap().ending_hash_key,
        u128::MAX.to_string()
    );
    let again = s
        .client
        .split_shard()
        .stream_name("rules")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&again), "InvalidArgumentException");
    assert!(message(&again).ends_with(
        "has already been merged or split, and thus is not eligible for merging or splitting."
    ));

    s.create_stream("three", 3).await;
    let not_adjacent = s
        .client
        .merge_shards()
        .stream_name("three")
        .shard_to_merge("shardId-000000000000")
        .adjacent_shard_to_merge("shardId-000000000002")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&not_adjacent), "InvalidArgumentException");
    assert!(
        message(&not_adjacent).ends_with("are not an adjacent pair of shards eligible for merging")
    );
}

#[tokio::test]
async fn update_shard_count_scales_uniformly_within_limits() {
    let s = TestServer::start().await;
    s.create_stream("scale", 2).await;
    let out = s
        .client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (out.current_shard_count, out.target_shard_count),
        (Some(2), Some(4))
    );
    let step = u128::MAX / 4 + 1;
    let now = shards(&s.client, "scale").await;
    let mut starts: Vec<u128> = open(&now)
        .iter()
        .map(|s| {
            s.hash_key_range
                .as_ref()
                .unwrap()
                .starting_hash_key
                .parse()
                .unwrap()
        })
        .collect();
    starts.sort();
    assert_eq!(starts, [0, step, 2 * step, 3 * step]);

    s.client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(3)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    let now = shards(&s.client, "scale").await;
    let open_now = open(&now);
    assert_eq!(open_now.len(), 3);
    for shard in &open_now {
        let range = shard.hash_key_range.as_ref().unwrap();
        let width = range.ending_hash_key.parse::<u128>().unwrap()
            - range.starting_hash_key.parse::<u128>().unwrap();
        assert!(width.abs_diff(u128::MAX / 3) <= 2, "uneven shard {range:?}");
    }
    let up = s
        .client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(7)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&up), "LimitExceededException");
    let down = s
        .client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(1)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&down), "LimitExceededException");
    for target in [2, 3, 2, 3, 2, 3, 2, 3] {
        s.client
            .update_shard_count()
            .stream_name("scale")
            .target_shard_count(target)
            .scaling_type(ScalingType::UniformScaling)
            .send()
            .await
            .unwrap();
    }
    let eleventh = s
        .client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&eleventh), "LimitExceededException");
    s.advance_ms(86_400_000);
    s.client
        .update_shard_count()
        .stream_name("scale")
        .target_shard_count(2)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn closed_shards_expire_with_retention_and_survive_restarts_until_then() {
    let s = TestServer::start().await;
    s.create_stream("exp", 1).await;
    s.client
        .put_record()
        .stream_name("exp")
        .partition_key("k")
        .data(Blob::new("x"))
        .send()
        .await
        .unwrap();
    s.client
        .split_shard()
        .stream_name("exp")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(HALF.to_string())
        .send()
        .await
        .unwrap();
    let s = s.restart().await;
    assert_eq!(shards(&s.client, "exp").await.len(), 3);
    let put = s
        .client
        .put_record()
        .stream_name("exp")
        .partition_key("k")
        .data(Blob::new("y"))
        .send()
        .await
        .unwrap();
    assert_ne!(
        put.shard_id, "shardId-000000000000",
        "a closed shard stays closed after a restart"
    );
    s.advance_ms(24 * 3_600_000 + 1);
    s.tick().await;
    let left = shards(&s.client, "exp").await;
    assert_eq!(left.len(), 2);
    assert_eq!(
        left[0].parent_shard_id.as_deref(),
        Some("shardId-000000000000")
    );
    let stream_dir = std::fs::read_dir(s.dir.path().join("streams"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    assert!(
        !stream_dir.join("shardId-000000000000").exists(),
        "an expired shard's records are deleted"
    );
}

/// Producers keep writing numbered records per key while the stream is split, merged and
/// scaled. Reading every shard with parents before children (shard indexes grow with
/// lineage) must give each key's records complete and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_during_resharding_keep_per_key_order() {
    let s = TestServer::start().await;
    s.create_stream("live", 2).await;
    let acked: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut producers = Vec::new();
    for p in 0..6 {
        let (client, acked, stop) = (s.client.clone(), acked.clone(), stop.clone());
        producers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let key = format!("key-{p}-{}", n % 5);
                let put = client
                    .put_record()
                    .stream_name("live")
                    .partition_key(&key)
                    .data(Blob::new(n.to_string()))
                    .send()
                    .await;
                if put.is_ok() {
                    acked.lock().unwrap().entry(key).or_default().push(n);
                }
                n += 1;
            }
        }));
    }
    let pause = || tokio::time::sleep(Duration::from_millis(150));
    pause().await;
    s.client
        .split_shard()
        .stream_name("live")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key((HALF / 2).to_string())
        .send()
        .await
        .unwrap();
    pause().await;
    s.client
        .merge_shards()
        .stream_name("live")
        .shard_to_merge("shardId-000000000002")
        .adjacent_shard_to_merge("shardId-000000000003")
        .send()
        .await
        .unwrap();
    pause().await;
    s.client
        .update_shard_count()
        .stream_name("live")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap();
    pause().await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }
    // Everything, lineage included, is read back after a restart.
    let s = s.restart().await;

    let mut read: HashMap<String, Vec<u64>> = HashMap::new();
    let mut all = shards(&s.client, "live").await;
    all.sort_by_key(|s| s.shard_id.clone());
    for shard in &all {
        for r in read_shard(&s.client, "live", &shard.shard_id).await {
            let n: u64 = std::str::from_utf8(r.data.as_ref())
                .unwrap()
                .parse()
                .unwrap();
            read.entry(r.partition_key.unwrap()).or_default().push(n);
        }
    }
    let acked = acked.lock().unwrap();
    assert!(
        acked.values().map(Vec::len).sum::<usize>() > 100,
        "too few writes to mean anything"
    );
    for (key, sent) in acked.iter() {
        assert_eq!(
            read.get(key),
            Some(sent),
            "records of {key} lost or out of order"
        );
    }
}

/// An ON_DEMAND stream splits a shard that stays over 80 % of its write capacity for five
/// evaluations, at the median hash key of its traffic.
#[tokio::test]
async fn on_demand_streams_split_a_hot_shard_by_themselves() {
    let s = TestServer::start_with(|c| c.shard_rates = rivulet::data::throughput::ShardRates::AWS)
        .await;
    s.client
        .create_stream()
        .stream_name("od")
        .stream_mode_details(
            aws_sdk_kinesis::types::StreamModeDetails::builder()
                .stream_mode(aws_sdk_kinesis::types::StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    // Traffic pinned to the low end of shard 0: hash keys 1000..1900, so the split lands
    // near their median (of the last 1,024 written), far from the range's middle.
    s.tick().await; // the first evaluation only starts the window
    for second in 0..6 {
        for half in 0..2 {
            let entries = (0..450)
                .map(|i| {
                    aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                        .partition_key(format!("p{second}-{half}-{i}"))
                        .explicit_hash_key((1000 + half * 450 + i).to_string())
                        .data(Blob::new("x"))
                        .build()
                        .unwrap()
                })
                .collect();
            let out = s
                .client
                .put_records()
                .stream_name("od")
                .set_records(Some(entries))
                .send()
                .await
                .unwrap();
            assert_eq!(out.failed_record_count, Some(0));
        }
        s.advance_ms(1000);
        s.tick().await;
    }
    // The split survives a restart.
    let s = s.restart().await;
    let all = shards(&s.client, "od").await;
    assert_eq!(all.len(), 6, "shard 0 split into two children: {all:?}");
    assert!(
        all[0]
            .sequence_number_range
            .as_ref()
            .unwrap()
            .ending_sequence_number
            .is_some()
    );
    let low = all
        .iter()
        .find(|s| s.shard_id == "shardId-000000000004")
        .unwrap();
    assert_eq!(low.parent_shard_id.as_deref(), Some("shardId-000000000000"));
    let split_at: u128 = low
        .hash_key_range
        .as_ref()
        .unwrap()
        .ending_hash_key
        .parse()
        .unwrap();
    assert!(
        (1400..1600).contains(&split_at),
        "split at {split_at}, not at the traffic median"
    );
    assert_eq!(open(&all).len(), 5);
}

/// With a state delay, a reshard shows UPDATING, refuses other changes meanwhile, keeps
/// taking writes, and settles to ACTIVE.
#[tokio::test]
async fn resharding_shows_updating_while_it_settles() {
    let s = TestServer::start_with(|c| c.state_delay_ms = 500).await;
    s.create_stream("upd", 1).await;
    s.advance_ms(500);
    s.client
        .split_shard()
        .stream_name("upd")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key(HALF.to_string())
        .send()
        .await
        .unwrap();
    let status = |s: &TestServer| {
        let client = s.client.clone();
        async move {
            client
                .describe_stream_summary()
                .stream_name("upd")
                .send()
                .await
                .unwrap()
                .stream_description_summary
                .unwrap()
                .stream_status
        }
    };
    assert_eq!(
        status(&s).await,
        aws_sdk_kinesis::types::StreamStatus::Updating
    );
    let busy = s
        .client
        .update_shard_count()
        .stream_name("upd")
        .target_shard_count(4)
        .scaling_type(ScalingType::UniformScaling)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&busy), "ResourceInUseException");
    s.client
        .put_record()
        .stream_name("upd")
        .partition_key("k")
        .data(Blob::new("during"))
        .send()
        .await
        .unwrap();
    s.advance_ms(500);
    assert_eq!(
        status(&s).await,
        aws_sdk_kinesis::types::StreamStatus::Active
    );
}

/// A stream whose maximum record size was raised to 10 MiB takes and returns a 10 MiB record.
#[tokio::test]
async fn ten_mib_records_round_trip() {
    let s = TestServer::start().await;
    s.create_stream("big", 1).await;
    s.client
        .update_max_record_size()
        .stream_arn("arn:aws:kinesis:us-east-1:000000000000:stream/big")
        .max_record_size_in_kib(10240)
        .send()
        .await
        .unwrap();
    let data: Vec<u8> = (0..(10 << 20) - 1).map(|i| (i % 251) as u8).collect();
    s.client
        .put_record()
        .stream_name("big")
        .partition_key("k")
        .data(Blob::new(data.clone()))
        .send()
        .await
        .unwrap();
    let back = read_shard(&s.client, "big", "shardId-000000000000").await;
    assert_eq!(back.len(), 1);
    assert!(
        back[0].data.as_ref() == data.as_slice(),
        "the 10 MiB record came back changed"
    );
}
