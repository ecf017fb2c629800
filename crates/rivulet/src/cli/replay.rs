//! `rivulet replay FILE`: replays newline-delimited JSON events (plain, gzip or lz4 frame,
//! detected from the first bytes) in the order of a timestamp attribute, at `--speedup`
//! times real time, as the seed replay producer does: send time = start + (event time −
//! first event time) / speedup, at most `--max-in-flight` records unacknowledged, and
//! optionally watermark records to every open shard.

use std::io::{BufRead, BufReader, Read};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::put::{Batching, Producer, Record};
use super::{hash_range, is_open, list_shards, parse_when};
use crate::client::Client;
use crate::clock::{Clock, SystemClock, iso8601, parse_time};

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    pub file: String,
    #[arg(long)]
    pub stream: String,
    /// The attribute holding each event's time (ISO-8601 or epoch seconds).
    #[arg(long, default_value = "dropoff_datetime")]
    pub timestamp_attribute: String,
    /// How many times faster than real time (3600: an hour of events per second).
    #[arg(long, default_value_t = 6480.0)]
    pub speedup: f64,
    /// Skip events before this time.
    #[arg(long)]
    pub seek: Option<String>,
    /// Records sent but not yet acknowledged, at most.
    #[arg(long, default_value_t = 10_000)]
    pub max_in_flight: u64,
    /// Every second (or 20,000 events) put a `{"watermark":…,"type":"watermark"}` record on
    /// every open shard.
    #[arg(long)]
    pub watermarks: bool,
    /// Pack events into KPL aggregated records.
    #[arg(long)]
    pub aggregate: bool,
    /// Seconds between progress lines on stderr.
    #[arg(long, default_value_t = 20)]
    pub statistics_secs: u64,
}

/// Opens a file, undoing gzip or lz4 framing when its first bytes say so.
fn open(path: &str) -> anyhow::Result<Box<dyn BufRead + Send>> {
    let mut file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
    let mut magic = [0u8; 4];
    let n = file.read(&mut magic)?;
    let head = std::io::Cursor::new(magic[..n].to_vec()).chain(file);
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(BufReader::new(flate2::read::MultiGzDecoder::new(head))),
        [0x04, 0x22, 0x4d, 0x18] => {
            Box::new(BufReader::new(lz4_flex::frame::FrameDecoder::new(head)))
        }
        _ => Box::new(BufReader::new(head)),
    })
}

pub async fn run(client: Client, args: ReplayArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.speedup > 0.0, "--speedup must be positive");
    let seek = match &args.seek {
        Some(s) => Some(
            parse_when(s, SystemClock.now_ms())
                .ok_or_else(|| anyhow::anyhow!("--seek {s}: not a time"))?,
        ),
        None => None,
    };
    let reader = open(&args.file)?;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(4096);
    let reader_thread = std::thread::spawn(move || {
        for line in reader.lines() {
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                break;
            }
        }
    });
    let producer = Producer::start(
        client.clone(),
        &args.stream,
        Batching {
            linger_ms: 20,
            aggregate: args.aggregate,
            ..Batching::default()
        },
    );
    let started = Instant::now();
    let mut first_ts: Option<i64> = None;
    let mut last_ts = 0i64;
    let mut n = 0u64;
    let mut skipped = 0u64;
    let mut since_watermark = 0u64;
    let mut next_watermark = Instant::now() + Duration::from_secs(1);
    let mut next_stats = Instant::now() + Duration::from_secs(args.statistics_secs.max(1));
    let mut shards: Vec<(String, u128)> = Vec::new();
    let mut shards_listed = Instant::now() - Duration::from_secs(3600);
    while let Some(line) = rx.recv().await {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("event {} is not JSON: {e}", n + skipped + 1))?;
        let ts = match &event[&args.timestamp_attribute] {
            Value::String(s) => parse_time(s),
            Value::Number(x) => x.as_f64().map(|s| (s * 1000.0) as i64),
            _ => None,
        }
        .ok_or_else(|| {
            anyhow::anyhow!(
                "event {} has no time in {}",
                n + skipped + 1,
                args.timestamp_attribute
            )
        })?;
        if seek.is_some_and(|s| ts < s) {
            skipped += 1;
            continue;
        }
        let first = *first_ts.get_or_insert(ts);
        let due =
            started + Duration::from_secs_f64(((ts - first).max(0) as f64 / 1000.0) / args.speedup);
        tokio::time::sleep_until(due.into()).await;
        while producer.in_flight() >= args.max_in_flight {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut data = line.into_bytes();
        data.push(b'\n');
        let key = format!(
            "{:032x}",
            super::partition_hash(std::str::from_utf8(&data).unwrap_or(""))
        );
        producer
            .send(Record {
                partition_key: key,
                explicit_hash_key: None,
                data,
            })
            .await;
        n += 1;
        since_watermark += 1;
        last_ts = last_ts.max(ts);
        if args.watermarks && (Instant::now() >= next_watermark || since_watermark >= 20_000) {
            if shards_listed.elapsed() > Duration::from_secs(10) {
                shards = list_shards(&client, &args.stream)
                    .await?
                    .iter()
                    .filter(|s| is_open(s))
                    .map(|s| {
                        (
                            s["ShardId"].as_str().unwrap_or("").to_owned(),
                            hash_range(s).0,
                        )
                    })
                    .collect();
                shards_listed = Instant::now();
            }
            // Everything sent so far is acknowledged before the watermark claims it.
            while producer.in_flight() > 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            let mark =
                json!({"watermark": iso8601(last_ts).replace("+0000", "Z"), "type": "watermark"})
                    .to_string();
            for (_, start) in &shards {
                client
                    .kinesis(
                        "PutRecord",
                        json!({"StreamName": args.stream, "PartitionKey": "23",
                               "ExplicitHashKey": start.to_string(),
                               "Data": base64_simd::STANDARD.encode_to_string(&mark)}),
                    )
                    .await?;
            }
            since_watermark = 0;
            next_watermark = Instant::now() + Duration::from_secs(1);
        }
        if Instant::now() >= next_stats {
            next_stats = Instant::now() + Duration::from_secs(args.statistics_secs.max(1));
            eprintln!(
                "replayed {n} events up to {} ({:.0} events/s, {} in flight)",
                iso8601(last_ts),
                n as f64 / started.elapsed().as_secs_f64(),
                producer.in_flight()
            );
        }
    }
    let _ = reader_thread.join();
    let stats = producer.finish().await;
    let mut summary = stats.json(started.elapsed());
    summary["skipped"] = json!(skipped);
    summary["events"] = json!(n);
    println!("{summary}");
    anyhow::ensure!(
        stats.failed.load(std::sync::atomic::Ordering::Relaxed) == 0,
        "some events were not written"
    );
    Ok(())
}
