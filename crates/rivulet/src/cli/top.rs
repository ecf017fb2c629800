//! `rivulet top STREAM`: a per-shard view of the last window — incoming records/s and
//! bytes/s, each shard's share of the stream's traffic, throttled writes and iterator age —
//! that flags hot shards and prints the split command for them.
//!
//! Incoming traffic comes from Rivulet's shard-level metrics (GetMetricData on IncomingRecords
//! and IncomingBytes) when the stream has them enabled; otherwise from sampling: each shard is
//! read from an AT_TIMESTAMP iterator at the window's start. The sample also gives the hot
//! shard's traffic median hash key, the split point that halves its load; when records are
//! routed by explicit hash key (so their partition keys say nothing of where they landed) the
//! split point is the middle of the shard's range.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};

use super::{hash_range, is_open, list_shards, partition_hash, table};
use crate::client::Client;
use crate::clock::{Clock, SystemClock};

/// Records read per shard per sample at most.
const SAMPLE_RECORDS_MAX: usize = 20_000;

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    pub stream: String,
    /// Print one snapshot and exit.
    #[arg(long)]
    pub once: bool,
    /// With --once: JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Seconds of traffic each view covers.
    #[arg(long, default_value_t = 60)]
    pub window: u64,
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
    /// A shard is hot when its share exceeds this multiple of the even share.
    #[arg(long, default_value_t = 1.5)]
    pub hot_factor: f64,
    /// Force sampling with GetRecords even where shard-level metrics exist.
    #[arg(long)]
    pub sample: bool,
}

#[derive(Debug, Default, Clone)]
struct ShardView {
    id: String,
    range: (u128, u128),
    records: f64,
    bytes: f64,
    throttled: Option<f64>,
    iterator_age_ms: Option<f64>,
    /// Hashes of sampled records inside the shard's range.
    hashes: Vec<u128>,
}

pub async fn run(client: Client, args: TopArgs) -> anyhow::Result<()> {
    loop {
        let view = snapshot(&client, &args).await?;
        if args.once {
            if args.json {
                println!("{}", view);
            } else {
                print!("{}", render(&view));
            }
            return Ok(());
        }
        print!("\x1b[2J\x1b[H{}", render(&view));
        tokio::time::sleep(Duration::from_secs(args.interval.max(1))).await;
    }
}

async fn snapshot(client: &Client, args: &TopArgs) -> anyhow::Result<Value> {
    let now = SystemClock.now_ms();
    let window_ms = args.window.max(1) as i64 * 1000;
    let shards = list_shards(client, &args.stream).await?;
    let mut views: Vec<ShardView> = shards
        .iter()
        .filter(|s| is_open(s))
        .map(|s| ShardView {
            id: s["ShardId"].as_str().unwrap_or("").into(),
            range: hash_range(s),
            ..Default::default()
        })
        .collect();
    let metrics = if args.sample {
        None
    } else {
        shard_metrics(client, &args.stream, &views, now - window_ms, now).await
    };
    let source = match &metrics {
        Some(m) if m.values().any(|v| v.0 > 0.0) => "metrics",
        _ => "sample",
    };
    for v in &mut views {
        if let Some((records, bytes, throttled, age)) = metrics.as_ref().and_then(|m| m.get(&v.id))
        {
            v.throttled = *throttled;
            v.iterator_age_ms = *age;
            if source == "metrics" {
                v.records = *records;
                v.bytes = *bytes;
            }
        }
    }
    // Sample every shard when metrics had nothing, else only the hot ones (for the median).
    let total_before: f64 = views.iter().map(|v| v.records).sum();
    let even = 1.0 / views.len().max(1) as f64;
    for v in &mut views {
        let hot_by_metrics =
            total_before > 0.0 && v.records / total_before > even * args.hot_factor;
        if source == "sample" || hot_by_metrics {
            let (records, bytes, hashes) =
                sample(client, &args.stream, &v.id, now - window_ms).await?;
            if source == "sample" {
                v.records = records;
                v.bytes = bytes;
            }
            // Partition keys explain where records landed only if their hashes fall in the
            // shard's range; records routed by explicit hash key give no median.
            let sampled = hashes.len();
            v.hashes = hashes
                .into_iter()
                .filter(|h| *h >= v.range.0 && *h <= v.range.1)
                .collect();
            if (v.hashes.len() as f64) < sampled as f64 * 0.9 {
                v.hashes.clear();
            }
        }
    }
    let total: f64 = views.iter().map(|v| v.records).sum();
    let secs = args.window.max(1) as f64;
    let rows: Vec<Value> = views
        .iter()
        .map(|v| {
            let share = if total > 0.0 { v.records / total } else { 0.0 };
            let hot = (total > 0.0 && share > even * args.hot_factor)
                || v.throttled.is_some_and(|t| t > 0.0);
            let mut row = json!({
                "shard": v.id,
                "starting_hash_key": v.range.0.to_string(),
                "ending_hash_key": v.range.1.to_string(),
                "records_per_sec": (v.records / secs * 100.0).round() / 100.0,
                "bytes_per_sec": (v.bytes / secs).round(),
                "share": (share * 1000.0).round() / 1000.0,
                "throttled": v.throttled,
                "iterator_age_ms": v.iterator_age_ms,
                "hot": hot,
            });
            if hot {
                let (key, basis) = split_point(v);
                row["split_hash_key"] = json!(key.to_string());
                row["split_basis"] = json!(basis);
                row["split_command"] = json!(format!(
                    "rivulet stream split {} {} --hash-key {key}",
                    args.stream, v.id
                ));
            }
            row
        })
        .collect();
    Ok(json!({
        "stream": args.stream,
        "window_s": args.window,
        "source": source,
        "records_per_sec": (total / secs * 100.0).round() / 100.0,
        "even_share": (even * 1000.0).round() / 1000.0,
        "hot_factor": args.hot_factor,
        "shards": rows,
    }))
}

/// The split hash key: the median of the sampled hashes when enough of them fell in the
/// shard's range, else the middle of the range.
fn split_point(v: &ShardView) -> (u128, &'static str) {
    let (lo, hi) = v.range;
    let middle = lo + (hi - lo) / 2 + 1;
    if v.hashes.len() >= 10 {
        let mut h = v.hashes.clone();
        h.sort_unstable();
        let median = h[h.len() / 2];
        if median > lo && median <= hi {
            return (median, "traffic median");
        }
    }
    (middle, "middle of the range")
}

/// Reads a shard from `since_ms`: records, bytes (data + key) and the records' partition-key
/// hashes. Stops at SAMPLE_RECORDS_MAX, scaling the counts by the time the sample covered.
async fn sample(
    client: &Client,
    stream: &str,
    shard: &str,
    since_ms: i64,
) -> anyhow::Result<(f64, f64, Vec<u128>)> {
    let it = client
        .kinesis(
            "GetShardIterator",
            json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "AT_TIMESTAMP",
                   "Timestamp": since_ms as f64 / 1000.0}),
        )
        .await?;
    let mut it = it["ShardIterator"].as_str().map(str::to_owned);
    let (mut records, mut bytes) = (0f64, 0f64);
    let mut hashes = Vec::new();
    let mut last_arrival = since_ms as f64 / 1000.0;
    while let Some(current) = it.take() {
        let page = client
            .kinesis(
                "GetRecords",
                json!({"ShardIterator": current, "Limit": 10000}),
            )
            .await?;
        let list = page["Records"].as_array().cloned().unwrap_or_default();
        for r in &list {
            records += 1.0;
            let key = r["PartitionKey"].as_str().unwrap_or("");
            let data_len = r["Data"].as_str().map_or(0, |d| d.len() / 4 * 3);
            bytes += (data_len + key.len()) as f64;
            hashes.push(partition_hash(key));
            last_arrival = r["ApproximateArrivalTimestamp"]
                .as_f64()
                .unwrap_or(last_arrival);
        }
        let caught_up = page["MillisBehindLatest"].as_i64() == Some(0);
        if list.is_empty() || caught_up {
            break;
        }
        if hashes.len() >= SAMPLE_RECORDS_MAX {
            // Extrapolate over the whole window from the part the sample covered.
            let covered = (last_arrival - since_ms as f64 / 1000.0).max(1.0);
            let whole = (SystemClock.now_ms() - since_ms) as f64 / 1000.0;
            let k = whole / covered;
            return Ok((records * k, bytes * k, hashes));
        }
        it = page["NextShardIterator"].as_str().map(str::to_owned);
    }
    Ok((records, bytes, hashes))
}

type ShardFigures = (f64, f64, Option<f64>, Option<f64>);

/// Shard-level metrics over the window from the CloudWatch API: (records, bytes, throttled
/// records, max iterator age) per shard. None where the API is not available.
async fn shard_metrics(
    client: &Client,
    stream: &str,
    shards: &[ShardView],
    start_ms: i64,
    end_ms: i64,
) -> Option<BTreeMap<String, ShardFigures>> {
    let metrics = [
        ("IncomingRecords", "Sum"),
        ("IncomingBytes", "Sum"),
        ("WriteProvisionedThroughputExceeded", "Sum"),
        ("IteratorAgeMilliseconds", "Maximum"),
    ];
    let mut queries = Vec::new();
    for (i, s) in shards.iter().enumerate() {
        for (j, (name, stat)) in metrics.iter().enumerate() {
            queries.push(json!({
                "Id": format!("m{i}_{j}"),
                "MetricStat": {
                    "Metric": {"Namespace": "AWS/Kinesis", "MetricName": name,
                               "Dimensions": [{"Name": "StreamName", "Value": stream},
                                              {"Name": "ShardId", "Value": s.id}]},
                    "Period": 60,
                    "Stat": stat,
                },
            }));
        }
    }
    let mut out = BTreeMap::new();
    // GetMetricData takes 500 queries per call.
    let mut results: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for chunk in queries.chunks(500) {
        let v = client
            .cloudwatch(
                "GetMetricData",
                json!({"MetricDataQueries": chunk, "StartTime": start_ms as f64 / 1000.0,
                       "EndTime": end_ms as f64 / 1000.0 + 60.0}),
            )
            .await
            .ok()?;
        for r in v["MetricDataResults"].as_array().into_iter().flatten() {
            let values = r["Values"]
                .as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default();
            results.insert(r["Id"].as_str().unwrap_or("").into(), values);
        }
    }
    for (i, s) in shards.iter().enumerate() {
        let sum = |j: usize| {
            results
                .get(&format!("m{i}_{j}"))
                .map_or(0.0, |v| v.iter().fold(0.0, |a, b| a + b))
        };
        // No throttling datapoint at all: the metric is not enabled, so throttling is unknown.
        let throttled = results
            .get(&format!("m{i}_2"))
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().fold(0.0, |a, b| a + b));
        let age = results
            .get(&format!("m{i}_3"))
            .and_then(|v| v.iter().cloned().reduce(f64::max));
        out.insert(s.id.clone(), (sum(0), sum(1), throttled, age));
    }
    Some(out)
}

fn render(view: &Value) -> String {
    let rows: Vec<Vec<String>> = view["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let opt = |v: &Value| v.as_f64().map_or("-".into(), |f| format!("{f}"));
            vec![
                s["shard"].as_str().unwrap_or("").into(),
                format!("{}", s["records_per_sec"]),
                format!("{}", s["bytes_per_sec"]),
                format!("{:.1} %", s["share"].as_f64().unwrap_or(0.0) * 100.0),
                opt(&s["throttled"]),
                opt(&s["iterator_age_ms"]),
                if s["hot"] == true {
                    "HOT".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let mut out = format!(
        "{}: {} records/s over the last {} s (from {}), even share {:.1} %\n",
        view["stream"].as_str().unwrap_or(""),
        view["records_per_sec"],
        view["window_s"],
        view["source"].as_str().unwrap_or(""),
        view["even_share"].as_f64().unwrap_or(0.0) * 100.0
    );
    out.push_str(&table(
        &[
            "SHARD",
            "RECORDS/S",
            "BYTES/S",
            "SHARE",
            "THROTTLED",
            "ITERATOR AGE MS",
            "",
        ],
        &rows,
    ));
    for s in view["shards"].as_array().into_iter().flatten() {
        if let Some(cmd) = s["split_command"].as_str() {
            out.push_str(&format!(
                "{} is hot; split it at its {}:\n  {cmd}\n",
                s["shard"].as_str().unwrap_or(""),
                s["split_basis"].as_str().unwrap_or("")
            ));
        }
    }
    out
}
