//! A first throughput probe until `rivulet bench` exists: PutRecords with fixed-size records
//! from concurrent producers for a while, then GetRecords over everything written, through
//! aws-sdk-kinesis against a running server.
//!
//! cargo run --release --example throughput -- ENDPOINT [RECORD_BYTES] [CONCURRENCY] [SECONDS] [SHARDS] [keep]
//!
//! With `keep`, the stream is left in place (to measure start-up on a full data dir).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:4567".into());
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (record_bytes, concurrency, seconds, shards) =
        (arg(2, 100) as usize, arg(3, 4), arg(4, 10), arg(5, 4));
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("bench", "bench", None, None, "bench"))
        .endpoint_url(&endpoint)
        .build();
    let client = Client::from_conf(config);
    let stream = format!("throughput-{}", std::process::id());
    client
        .create_stream()
        .stream_name(&stream)
        .shard_count(shards as i32)
        .send()
        .await
        .expect("create stream");

    let records = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..concurrency {
        let (client, stream, records) = (client.clone(), stream.clone(), records.clone());
        producers.push(tokio::spawn(async move {
            let data = Blob::new(vec![b'x'; record_bytes]);
            let mut batch_no = 0u64;
            while Instant::now() < deadline {
                let entries = (0..500)
                    .map(|i| {
                        PutRecordsRequestEntry::builder()
                            .partition_key(format!("p{p}-{batch_no}-{i}"))
                            .data(data.clone())
                            .build()
                            .expect("entry")
                    })
                    .collect();
                let out = client
                    .put_records()
                    .stream_name(&stream)
                    .set_records(Some(entries))
                    .send()
                    .await
                    .expect("put");
                records.fetch_add(
                    500 - out.failed_record_count.unwrap_or(0) as u64,
                    Ordering::Relaxed,
                );
                batch_no += 1;
            }
        }));
    }
    for p in producers {
        p.await.expect("producer");
    }
    let put_secs = started.elapsed().as_secs_f64();
    let written = records.load(Ordering::Relaxed);

    let started = Instant::now();
    let mut read = 0u64;
    let mut read_bytes = 0u64;
    let shard_list = client
        .list_shards()
        .stream_name(&stream)
        .send()
        .await
        .expect("list shards");
    for shard in shard_list.shards() {
        let mut it = client
            .get_shard_iterator()
            .stream_name(&stream)
            .shard_id(&shard.shard_id)
            .shard_iterator_type(ShardIteratorType::TrimHorizon)
            .send()
            .await
            .expect("iterator")
            .shard_iterator
            .expect("iterator");
        loop {
            let page = client
                .get_records()
                .shard_iterator(&it)
                .send()
                .await
                .expect("get records");
            if page.records.is_empty() {
                break;
            }
            read += page.records.len() as u64;
            read_bytes += page
                .records
                .iter()
                .map(|r| r.data.as_ref().len() as u64)
                .sum::<u64>();
            it = page.next_shard_iterator.expect("open shard");
        }
    }
    let get_secs = started.elapsed().as_secs_f64();
    if args.get(6).map(String::as_str) != Some("keep") {
        client
            .delete_stream()
            .stream_name(&stream)
            .send()
            .await
            .expect("delete stream");
    }
    let mb = |bytes: f64| bytes / 1e6;
    println!(
        "{{\"record_bytes\":{record_bytes},\"concurrency\":{concurrency},\"shards\":{shards},\
         \"put_records\":{written},\"put_records_per_s\":{:.0},\"put_mb_per_s\":{:.1},\
         \"get_records\":{read},\"get_records_per_s\":{:.0},\"get_mb_per_s\":{:.1}}}",
        written as f64 / put_secs,
        mb(written as f64 * record_bytes as f64) / put_secs,
        read as f64 / get_secs,
        mb(read_bytes as f64) / get_secs,
    );
    assert_eq!(read, written, "every acknowledged record is read back");
}
