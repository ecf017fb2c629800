//! `rivulet bench`: the load generator. Producers send PutRecords (or PutRecord with
//! `--batch 1`) at a fixed rate or as fast as they can, with uniform, zipf or per-shard pinned
//! keys; with `--consume`, consumers follow every shard and time each record from send to
//! receipt. Live progress goes to stderr; the last line on stdout is one JSON object with
//! every figure, including the bench's own CPU use.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::{cpu_seconds, is_open, list_shards};
use crate::client::{Client, jitter};
use crate::clock::{Clock, SystemClock};
use crate::monitor::agg::Agg;

/// Bench payloads start with this, then the send time in epoch microseconds.
const MAGIC: &[u8; 4] = b"RVB1";

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[arg(long)]
    pub stream: String,
    /// Seconds to run.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Records per second over all producers (default: as fast as possible).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Bytes of data per record (at least 12).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Producers sending at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Records per request: 1 uses PutRecord, more PutRecords (at most 500).
    #[arg(long, default_value_t = 500)]
    pub batch: usize,
    /// Partition keys: uniform (random), zipf (1,000 keys, s = 1.1) or pinned: producer i of
    /// C routes by explicit hash keys drawn uniformly from the i-th of C equal slices of the
    /// hash space (with C equal to the shard count of an evenly split stream, one producer
    /// per shard, as the seed hot-shard demo does).
    #[arg(long, default_value = "uniform", value_parser = ["uniform", "zipf", "pinned"])]
    pub keys: String,
    /// Route every record by this hash key.
    #[arg(long)]
    pub explicit_hash_key: Option<String>,
    /// With --keys pinned and --rate: the producer (slice) that gets --hot-factor times the
    /// others' traffic.
    #[arg(long)]
    pub hot_shard: Option<usize>,
    #[arg(long, default_value_t = 3.0)]
    pub hot_factor: f64,
    /// Also consume every shard from LATEST and measure produce-to-consume latency.
    #[arg(long)]
    pub consume: bool,
    /// With --consume: milliseconds a shard's consumer waits after an empty GetRecords
    /// (real consumers wait 200 ms to 1 s; Kinesis allows 5 calls per second per shard).
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
}

#[derive(Default)]
struct Totals {
    records: AtomicU64,
    bytes: AtomicU64,
    requests: AtomicU64,
    throttled: AtomicU64,
    errors: AtomicU64,
    consumed: AtomicU64,
}

fn payload(size: usize) -> Vec<u8> {
    let mut p = Vec::with_capacity(size.max(12));
    p.extend_from_slice(MAGIC);
    let micros = SystemClock.now_ms() as u64 * 1000;
    p.extend_from_slice(&micros.to_be_bytes());
    p.resize(size.max(12), b'x');
    p
}

/// Zipf over `n` keys by inverse CDF.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Zipf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / (k as f64).powf(s);
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf(cdf)
    }
    fn sample(&self) -> usize {
        let u = jitter();
        self.0.partition_point(|c| *c < u)
    }
}

/// The i-th of n equal slices of the 128-bit hash space.
fn hash_slice(i: usize, n: usize) -> (u128, u128) {
    let step = u128::MAX / n as u128;
    let lo = step * i as u128;
    let hi = if i + 1 == n { u128::MAX } else { lo + step - 1 };
    (lo, hi)
}

/// A uniform hash key in `[lo, hi]`.
fn random_in((lo, hi): (u128, u128)) -> u128 {
    let r = ((jitter() * 2f64.powi(64)) as u128) << 64 | (jitter() * 2f64.powi(64)) as u128;
    match (hi - lo).checked_add(1) {
        Some(span) => lo + r % span,
        None => r,
    }
}

fn summary(a: &Agg) -> Value {
    if a.count == 0.0 {
        return Value::Null;
    }
    let p = |q: f64| (a.percentile(q).unwrap_or(0.0) * 1000.0).round() / 1000.0;
    json!({"p50": p(50.0), "p99": p(99.0), "p999": p(99.9), "max": (a.max * 1000.0).round() / 1000.0, "mean": (a.average() * 1000.0).round() / 1000.0})
}

pub async fn run(client: Client, args: BenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    anyhow::ensure!((1..=500).contains(&args.batch), "--batch must be 1 to 500");
    let shards = list_shards(&client, &args.stream).await?;
    let open: Vec<&Value> = shards.iter().filter(|s| is_open(s)).collect();
    anyhow::ensure!(!open.is_empty(), "{} has no open shards", args.stream);
    // Producers and their share of the rate; the hot producer gets hot_factor shares.
    let weights: Vec<f64> = (0..args.concurrency)
        .map(|i| match (args.keys.as_str(), args.hot_shard) {
            ("pinned", Some(h)) if i == h => args.hot_factor,
            _ => 1.0,
        })
        .collect();
    let total_weight: f64 = weights.iter().sum();
    let totals = Arc::new(Totals::default());
    let put_latency = Arc::new(Mutex::new(Agg::set(0.0, 0.0, f64::MAX, f64::MIN)));
    let e2e = Arc::new(Mutex::new(Agg::set(0.0, 0.0, f64::MAX, f64::MIN)));
    let stop = Arc::new(AtomicBool::new(false));
    let cpu_start = cpu_seconds();
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(args.duration);
    let zipf = Arc::new(Zipf::new(1000, 1.1));

    let mut consumers = Vec::new();
    if args.consume {
        for s in &open {
            let id = s["ShardId"].as_str().unwrap_or("").to_owned();
            let it = client
                .kinesis(
                    "GetShardIterator",
                    json!({"StreamName": args.stream, "ShardId": id, "ShardIteratorType": "LATEST"}),
                )
                .await?;
            let mut it = it["ShardIterator"].as_str().map(str::to_owned);
            let (client, totals, e2e, stop) =
                (client.clone(), totals.clone(), e2e.clone(), stop.clone());
            consumers.push(tokio::spawn(async move {
                while let Some(current) = it.take() {
                    let page = match client
                        .kinesis(
                            "GetRecords",
                            json!({"ShardIterator": current, "Limit": 10000}),
                        )
                        .await
                    {
                        Ok(p) => p,
                        Err(_) => break,
                    };
                    let now_us = SystemClock.now_ms() as u64 * 1000;
                    let records = page["Records"].as_array().cloned().unwrap_or_default();
                    let mut local = Vec::with_capacity(records.len());
                    for r in &records {
                        let data = base64_simd::STANDARD
                            .decode_to_vec(r["Data"].as_str().unwrap_or(""))
                            .unwrap_or_default();
                        if data.len() >= 12 && &data[..4] == MAGIC {
                            let sent = u64::from_be_bytes(data[4..12].try_into().expect("8 bytes"));
                            local.push(now_us.saturating_sub(sent) as f64 / 1000.0);
                        }
                    }
                    totals
                        .consumed
                        .fetch_add(local.len() as u64, Ordering::Relaxed);
                    if !local.is_empty() {
                        let mut e = e2e.lock().await;
                        for v in local {
                            e.add(v);
                        }
                    }
                    it = page["NextShardIterator"].as_str().map(str::to_owned);
                    if stop.load(Ordering::Relaxed) && records.is_empty() {
                        break;
                    }
                    if records.is_empty() {
                        tokio::time::sleep(Duration::from_millis(args.poll_ms)).await;
                    }
                }
            }));
        }
    }

    let mut producers = Vec::new();
    for (i, weight) in weights.iter().enumerate() {
        let rate = args.rate.map(|r| r * weight / total_weight);
        let (client, totals, put_latency, zipf, args) = (
            client.clone(),
            totals.clone(),
            put_latency.clone(),
            zipf.clone(),
            args.clone(),
        );
        let slice = hash_slice(i, args.concurrency);
        producers.push(tokio::spawn(async move {
            let mut sent = 0u64;
            let begun = Instant::now();
            while Instant::now() < deadline {
                let n = match rate {
                    Some(r) => {
                        let due = begun + Duration::from_secs_f64(sent as f64 / r);
                        if due >= deadline {
                            break;
                        }
                        tokio::time::sleep_until(due.into()).await;
                        // Catch up in one batch when behind, up to the batch size.
                        let target = (begun.elapsed().as_secs_f64() * r) as u64;
                        target.saturating_sub(sent).clamp(1, args.batch as u64) as usize
                    }
                    None => args.batch,
                };
                let key = |_: usize| match args.keys.as_str() {
                    "zipf" => format!("key-{}", zipf.sample()),
                    _ => format!("{:016x}", (jitter() * 2f64.powi(64)) as u64),
                };
                let hash = match (&args.explicit_hash_key, args.keys.as_str()) {
                    (Some(h), _) => Some(h.clone()),
                    (None, "pinned") => Some(random_in(slice).to_string()),
                    _ => None,
                };
                let t0 = Instant::now();
                let result = if args.batch == 1 {
                    let mut body = json!({"StreamName": args.stream, "PartitionKey": key(0),
                        "Data": base64_simd::STANDARD.encode_to_string(payload(args.record_size))});
                    if let Some(h) = &hash {
                        body["ExplicitHashKey"] = json!(h);
                    }
                    client.kinesis_once("PutRecord", &body).await.map(|_| (1u64, 0u64))
                } else {
                    let records: Vec<Value> = (0..n)
                        .map(|k| {
                            let mut v = json!({"PartitionKey": key(k),
                                "Data": base64_simd::STANDARD.encode_to_string(payload(args.record_size))});
                            if let Some(h) = &hash {
                                v["ExplicitHashKey"] = json!(h);
                            }
                            v
                        })
                        .collect();
                    let body = json!({"StreamName": args.stream, "Records": records});
                    client.kinesis_once("PutRecords", &body).await.map(|v| {
                        let failed = v["FailedRecordCount"].as_u64().unwrap_or(0);
                        (n as u64 - failed, failed)
                    })
                };
                let ms = t0.elapsed().as_secs_f64() * 1000.0;
                totals.requests.fetch_add(1, Ordering::Relaxed);
                sent += n as u64;
                match result {
                    Ok((ok, throttled)) => {
                        totals.records.fetch_add(ok, Ordering::Relaxed);
                        totals.bytes.fetch_add(ok * (args.record_size.max(12) + 16) as u64, Ordering::Relaxed);
                        totals.throttled.fetch_add(throttled, Ordering::Relaxed);
                        put_latency.lock().await.add(ms);
                    }
                    Err(e) if e.kind == "ProvisionedThroughputExceededException" => {
                        totals.throttled.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) => {
                        totals.errors.fetch_add(1, Ordering::Relaxed);
                        if totals.errors.load(Ordering::Relaxed) <= 3 {
                            eprintln!("rivulet bench: {e}");
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }));
    }

    // Live progress once a second.
    let progress = {
        let totals = totals.clone();
        tokio::spawn(async move {
            let mut last = 0u64;
            let mut status = super::Status::new();
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let now = totals.records.load(Ordering::Relaxed);
                status.show(&format!(
                    "{:>4.0} s  {} records/s  {} total  {} throttled",
                    started.elapsed().as_secs_f64(),
                    now - last,
                    now,
                    totals.throttled.load(Ordering::Relaxed)
                ));
                last = now;
            }
        })
    };
    for p in producers {
        let _ = p.await;
    }
    let elapsed = started.elapsed();
    // Give consumers a moment to drain what was written last.
    if args.consume {
        let wait = Instant::now() + Duration::from_secs(5);
        while totals.consumed.load(Ordering::Relaxed) < totals.records.load(Ordering::Relaxed)
            && Instant::now() < wait
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        stop.store(true, Ordering::Relaxed);
        for c in consumers {
            let _ = tokio::time::timeout(Duration::from_secs(2), c).await;
        }
    }
    progress.abort();
    super::Status::new().clear();
    let cpu = match (cpu_start, cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let secs = elapsed.as_secs_f64();
    let out = json!({
        "stream": args.stream,
        "duration_s": (secs * 1000.0).round() / 1000.0,
        "record_size": args.record_size.max(12),
        "concurrency": args.concurrency,
        "batch": args.batch,
        "keys": args.keys,
        "target_rate": args.rate,
        "records": g(&totals.records),
        "records_per_sec": (g(&totals.records) as f64 / secs).round(),
        "mb_per_sec": ((g(&totals.records) * args.record_size.max(12) as u64) as f64 / secs / 1e6 * 100.0).round() / 100.0,
        "requests": g(&totals.requests),
        "throttled_records": g(&totals.throttled),
        "errors": g(&totals.errors),
        "put_latency_ms": summary(&*put_latency.lock().await),
        "consumed": if args.consume { json!(g(&totals.consumed)) } else { Value::Null },
        "e2e_latency_ms": if args.consume { summary(&*e2e.lock().await) } else { Value::Null },
        "client_cpu_s": cpu.map(|c| (c * 100.0).round() / 100.0),
        "client_cpu_pct_of_one_core": cpu.map(|c| (c / secs * 1000.0).round() / 10.0),
    });
    println!("{out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_prefers_low_ranks() {
        let z = Zipf::new(1000, 1.1);
        let mut first = 0;
        for _ in 0..10_000 {
            if z.sample() < 10 {
                first += 1;
            }
        }
        // The first 10 of 1,000 keys take about 40 % of the draws at s = 1.1.
        assert!((3_000..5_500).contains(&first), "{first}");
    }

    #[test]
    fn slices_cover_the_hash_space() {
        assert_eq!(hash_slice(0, 1), (0, u128::MAX));
        let (a, b, c) = (hash_slice(0, 4), hash_slice(1, 4), hash_slice(3, 4));
        assert_eq!(a.0, 0);
        assert_eq!(b.0, a.1 + 1);
        assert_eq!(c.1, u128::MAX);
        for _ in 0..100 {
            let k = random_in(b);
            assert!(k >= b.0 && k <= b.1);
        }
    }

    #[test]
    fn payload_carries_the_send_time() {
        let p = payload(100);
        assert_eq!(p.len(), 100);
        assert_eq!(&p[..4], MAGIC);
        let us = u64::from_be_bytes(p[4..12].try_into().unwrap());
        assert!(us > 1_700_000_000_000_000);
    }
}
