//! `rivulet put` and the producer the other writing commands share: records go to lanes by
//! partition key (so one key's records are always sent in order by one lane), each lane
//! batches into PutRecords by count, bytes and linger time, optionally packs KPL aggregated
//! records, and retries failed records with exponential backoff and jitter before it sends
//! anything newer.

use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::Status;
use crate::client::kpl::{Aggregator, UserRecord};
use crate::client::{Client, Retry};

/// Kinesis's PutRecords limits.
pub const BATCH_RECORDS_MAX: usize = 500;
pub const BATCH_BYTES_MAX: usize = 5 << 20;
/// Aggregated records are kept under the KPL's default size.
pub const AGGREGATE_BYTES_MAX: usize = 50 * 1024;
/// Attempts per record before it is reported as failed.
const RECORD_ATTEMPTS_MAX: u32 = 10;
/// Records buffered per lane before `send` waits.
const LANE_QUEUE: usize = 10_000;

#[derive(Debug, Clone)]
pub struct Record {
    pub partition_key: String,
    pub explicit_hash_key: Option<String>,
    pub data: Vec<u8>,
}

#[derive(Clone, Debug, clap::Args)]
pub struct Batching {
    /// Records per PutRecords call (at most 500).
    #[arg(long, default_value_t = BATCH_RECORDS_MAX)]
    pub batch_records: usize,
    /// Bytes per PutRecords call (at most 5 MiB).
    #[arg(long, default_value_t = BATCH_BYTES_MAX)]
    pub batch_bytes: usize,
    /// How long a lane waits for more records before sending a partial batch.
    #[arg(long, default_value_t = 100)]
    pub linger_ms: u64,
    /// Lanes sending at once; a partition key always uses the same lane.
    #[arg(long, default_value_t = 4)]
    pub lanes: usize,
    /// Pack records into KPL aggregated records.
    #[arg(long)]
    pub aggregate: bool,
    /// Allow two records of one partition key in the same batch. Faster for inputs with
    /// few keys, but Kinesis may then refuse an earlier record and accept a later one of
    /// the same key, so the retried earlier record lands after it (counted as reordered).
    /// Without it, a batch holds at most one record per key and no key is ever reordered.
    #[arg(long)]
    pub allow_reorder: bool,
}

impl Default for Batching {
    fn default() -> Batching {
        Batching {
            batch_records: BATCH_RECORDS_MAX,
            batch_bytes: BATCH_BYTES_MAX,
            linger_ms: 100,
            lanes: 4,
            aggregate: false,
            allow_reorder: false,
        }
    }
}

#[derive(Default, Debug)]
pub struct Stats {
    /// User records acknowledged.
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    /// Kinesis records sent (aggregated records count once).
    pub kinesis_records: AtomicU64,
    pub requests: AtomicU64,
    pub retried: AtomicU64,
    pub failed: AtomicU64,
    /// Records of a key that landed before an earlier record of that key (which was retried).
    pub reordered: AtomicU64,
}

impl Stats {
    pub fn json(&self, elapsed: Duration) -> Value {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let secs = elapsed.as_secs_f64().max(1e-9);
        json!({
            "records": g(&self.records),
            "bytes": g(&self.bytes),
            "kinesis_records": g(&self.kinesis_records),
            "requests": g(&self.requests),
            "retried": g(&self.retried),
            "failed": g(&self.failed),
            "reordered": g(&self.reordered),
            "seconds": (secs * 1000.0).round() / 1000.0,
            "records_per_sec": (g(&self.records) as f64 / secs).round(),
            "mb_per_sec": (g(&self.bytes) as f64 / secs / 1e6 * 100.0).round() / 100.0,
        })
    }
}

pub struct Producer {
    lanes: Vec<mpsc::Sender<Record>>,
    /// Records handed to `send`.
    queued: AtomicU64,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    pub stats: Arc<Stats>,
}

impl Producer {
    pub fn start(client: Client, stream: &str, cfg: Batching) -> Producer {
        let stats = Arc::new(Stats::default());
        let lanes = cfg.lanes.max(1);
        let mut senders = Vec::new();
        let mut tasks = Vec::new();
        for _ in 0..lanes {
            let (tx, rx) = mpsc::channel(LANE_QUEUE);
            senders.push(tx);
            let lane = Lane {
                client: client.clone(),
                stream: stream.to_owned(),
                cfg: cfg.clone(),
                stats: stats.clone(),
            };
            tasks.push(tokio::spawn(lane.run(rx)));
        }
        Producer {
            lanes: senders,
            queued: AtomicU64::new(0),
            tasks,
            stats,
        }
    }

    /// Queues a record on its key's lane; waits while the lane is full.
    pub async fn send(&self, r: Record) {
        let lane = (super::partition_hash(&r.partition_key) % self.lanes.len() as u128) as usize;
        self.queued.fetch_add(1, Ordering::Relaxed);
        let _ = self.lanes[lane].send(r).await;
    }

    /// Records sent but neither acknowledged nor given up on yet. With aggregation, user
    /// records count.
    pub fn in_flight(&self) -> u64 {
        let done =
            self.stats.records.load(Ordering::Relaxed) + self.stats.failed.load(Ordering::Relaxed);
        self.queued.load(Ordering::Relaxed).saturating_sub(done)
    }

    /// Sends what is queued and waits for every lane to finish.
    pub async fn finish(self) -> Arc<Stats> {
        drop(self.lanes);
        for t in self.tasks {
            let _ = t.await;
        }
        self.stats
    }
}

struct Lane {
    client: Client,
    stream: String,
    cfg: Batching,
    stats: Arc<Stats>,
}

/// One PutRecords entry and the user records it carries.
struct Entry {
    key: String,
    hash_key: Option<String>,
    data: Vec<u8>,
    users: u64,
    user_bytes: u64,
}

impl Lane {
    async fn run(self, mut rx: mpsc::Receiver<Record>) {
        let linger = Duration::from_millis(self.cfg.linger_ms);
        let max_records = self.cfg.batch_records.clamp(1, BATCH_RECORDS_MAX);
        let max_bytes = self.cfg.batch_bytes.clamp(1, BATCH_BYTES_MAX);
        let mut pending: Option<Record> = None;
        loop {
            let first = match pending.take() {
                Some(r) => r,
                None => match rx.recv().await {
                    Some(r) => r,
                    None => return,
                },
            };
            let deadline = tokio::time::Instant::now() + linger;
            let mut batch: Vec<Entry> = Vec::new();
            let mut bytes = 0usize;
            let mut agg = Aggregator::new();
            let mut next = Some(first);
            let mut closed = false;
            loop {
                let r = match next.take() {
                    Some(r) => r,
                    None => match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(r)) => r,
                        Ok(None) => {
                            closed = true;
                            break;
                        }
                        Err(_) => break,
                    },
                };
                if self.cfg.aggregate {
                    let user = UserRecord {
                        partition_key: r.partition_key,
                        explicit_hash_key: r.explicit_hash_key,
                        data: r.data,
                    };
                    if !agg.is_empty() && agg.size_with(&user) > AGGREGATE_BYTES_MAX {
                        let e = aggregated(&mut agg);
                        bytes += e.data.len() + e.key.len();
                        batch.push(e);
                        // Two aggregates may share keys: one per batch keeps keys in order.
                        if !self.cfg.allow_reorder {
                            pending = Some(Record {
                                partition_key: user.partition_key,
                                explicit_hash_key: user.explicit_hash_key,
                                data: user.data,
                            });
                            break;
                        }
                    }
                    agg.push(user);
                } else {
                    let size = r.data.len() + r.partition_key.len();
                    let dup =
                        !self.cfg.allow_reorder && batch.iter().any(|e| e.key == r.partition_key);
                    if !batch.is_empty() && (bytes + size > max_bytes || dup) {
                        pending = Some(r);
                        break;
                    }
                    bytes += size;
                    batch.push(Entry {
                        key: r.partition_key,
                        hash_key: r.explicit_hash_key,
                        data: r.data,
                        users: 1,
                        user_bytes: size as u64,
                    });
                }
                if batch.len() >= max_records || bytes >= max_bytes {
                    break;
                }
            }
            if !agg.is_empty() {
                batch.push(aggregated(&mut agg));
            }
            self.send(batch).await;
            if closed && pending.is_none() {
                return;
            }
        }
    }

    /// Sends a batch until every entry is acknowledged or out of attempts.
    async fn send(&self, mut batch: Vec<Entry>) {
        let retry = Retry::default();
        let mut attempt = 1;
        while !batch.is_empty() {
            let records: Vec<Value> = batch
                .iter()
                .map(|e| {
                    let mut v = json!({
                        "PartitionKey": e.key,
                        "Data": base64_simd::STANDARD.encode_to_string(&e.data),
                    });
                    if let Some(h) = &e.hash_key {
                        v["ExplicitHashKey"] = json!(h);
                    }
                    v
                })
                .collect();
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let out = self
                .client
                .kinesis(
                    "PutRecords",
                    json!({"StreamName": self.stream, "Records": records}),
                )
                .await;
            let results = match out {
                Ok(v) => v["Records"].as_array().cloned().unwrap_or_default(),
                Err(e) => {
                    eprintln!("rivulet put: {e}; {} records not written", batch.len());
                    let n: u64 = batch.iter().map(|e| e.users).sum();
                    self.stats.failed.fetch_add(n, Ordering::Relaxed);
                    return;
                }
            };
            let mut failed: Vec<Entry> = Vec::new();
            let mut failed_keys: Vec<String> = Vec::new();
            let mut last_error = String::new();
            for (e, r) in batch
                .into_iter()
                .zip(results.iter().chain(std::iter::repeat(&Value::Null)))
            {
                if r["SequenceNumber"].is_string() {
                    if failed_keys.contains(&e.key) {
                        self.stats.reordered.fetch_add(e.users, Ordering::Relaxed);
                    }
                    self.stats.records.fetch_add(e.users, Ordering::Relaxed);
                    self.stats.bytes.fetch_add(e.user_bytes, Ordering::Relaxed);
                    self.stats.kinesis_records.fetch_add(1, Ordering::Relaxed);
                } else {
                    last_error = format!(
                        "{}: {}",
                        r["ErrorCode"].as_str().unwrap_or("NoResult"),
                        r["ErrorMessage"].as_str().unwrap_or("")
                    );
                    failed_keys.push(e.key.clone());
                    failed.push(e);
                }
            }
            if failed.is_empty() {
                return;
            }
            attempt += 1;
            if attempt > RECORD_ATTEMPTS_MAX {
                let n: u64 = failed.iter().map(|e| e.users).sum();
                eprintln!(
                    "rivulet put: {n} records failed after {RECORD_ATTEMPTS_MAX} attempts ({last_error})"
                );
                self.stats.failed.fetch_add(n, Ordering::Relaxed);
                return;
            }
            let n: u64 = failed.iter().map(|e| e.users).sum();
            self.stats.retried.fetch_add(n, Ordering::Relaxed);
            tokio::time::sleep(retry.backoff(attempt)).await;
            batch = failed;
        }
    }
}

fn aggregated(agg: &mut Aggregator) -> Entry {
    let users = agg.len() as u64;
    let (data, key, hash_key) = agg.finish().expect("not empty");
    Entry {
        user_bytes: data.len() as u64,
        key,
        hash_key,
        data,
        users,
    }
}

#[derive(clap::Args, Debug)]
pub struct PutArgs {
    pub stream: String,
    /// Records to put, one per argument; without them, --file or standard input.
    pub records: Vec<String>,
    /// A file of records (`-` for standard input).
    #[arg(long)]
    pub file: Option<String>,
    /// How the input is split: lines, ndjson or csv (default: from the file extension).
    #[arg(long, value_parser = ["lines", "ndjson", "csv"])]
    pub format: Option<String>,
    /// Partition key template: `{field}` (a field of an NDJSON or CSV record), `{n}` (the
    /// record number), `{random}`; plain text otherwise.
    #[arg(long, default_value = "{random}")]
    pub partition_key: String,
    /// Route every record by this hash key instead of its partition key.
    #[arg(long)]
    pub explicit_hash_key: Option<String>,
    #[command(flatten)]
    pub batching: Batching,
    /// Print the summary as JSON on standard output.
    #[arg(long)]
    pub json: bool,
}

/// Expands a partition-key template for one record.
pub fn render_key(
    template: &str,
    n: u64,
    fields: Option<&serde_json::Map<String, Value>>,
) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('}') else {
            out.push_str(&rest[open..]);
            return out;
        };
        let name = &rest[open + 1..open + close];
        match name {
            "n" => out.push_str(&n.to_string()),
            "random" => out.push_str(&format!(
                "{:016x}",
                (crate::client::jitter() * 2f64.powi(64)) as u64
            )),
            field => match fields.and_then(|f| f.get(field)) {
                Some(Value::String(s)) => out.push_str(s),
                Some(v) => out.push_str(&v.to_string()),
                None => out.push_str(&format!("{n}")),
            },
        }
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    if out.is_empty() {
        n.to_string()
    } else {
        out.chars().take(256).collect()
    }
}

/// Splits one CSV line into fields (RFC 4180 quotes; no newlines inside fields).
pub fn csv_fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut field)),
            (c, _) => field.push(c),
        }
    }
    out.push(field);
    out
}

pub async fn run(client: Client, args: PutArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let producer = Producer::start(client, &args.stream, args.batching.clone());
    let format = args.format.clone().unwrap_or_else(|| {
        let f = args.file.as_deref().unwrap_or("");
        if f.ends_with(".csv") {
            "csv".into()
        } else if f.ends_with(".json") || f.ends_with(".ndjson") || f.ends_with(".jsonl") {
            "ndjson".into()
        } else {
            "lines".into()
        }
    });
    let mut n = 0u64;
    let make = |n: u64, data: Vec<u8>, fields: Option<&serde_json::Map<String, Value>>| Record {
        partition_key: render_key(&args.partition_key, n, fields),
        explicit_hash_key: args.explicit_hash_key.clone(),
        data,
    };
    if !args.records.is_empty() {
        for r in &args.records {
            n += 1;
            producer.send(make(n, r.clone().into_bytes(), None)).await;
        }
    } else {
        let (reader, total): (Box<dyn Read + Send>, Option<u64>) = match args.file.as_deref() {
            None | Some("-") => (Box::new(std::io::stdin()), None),
            Some(path) => {
                let f = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("{path}: {e}"))?;
                let len = f.metadata().ok().map(|m| m.len());
                (Box::new(f), len)
            }
        };
        // Reading is blocking: lines come over a bounded channel from a thread.
        let (tx, mut rx) = mpsc::channel::<(String, u64)>(4096);
        let reader_thread = std::thread::spawn(move || -> std::io::Result<()> {
            let mut read = 0u64;
            for line in std::io::BufReader::new(reader).lines() {
                let line = line?;
                read += line.len() as u64 + 1;
                if tx.blocking_send((line, read)).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut header: Option<Vec<String>> = None;
        let mut status = Status::new();
        let mut last_shown = Instant::now();
        while let Some((line, read)) = rx.recv().await {
            if line.is_empty() {
                continue;
            }
            let fields = match format.as_str() {
                "ndjson" => match serde_json::from_str::<Value>(&line) {
                    Ok(Value::Object(m)) => Some(m),
                    _ => {
                        anyhow::bail!("line {} is not a JSON object: {line:.80}", n + 1);
                    }
                },
                "csv" => {
                    let values = csv_fields(&line);
                    match &header {
                        None => {
                            header = Some(values);
                            continue;
                        }
                        Some(h) => Some(
                            h.iter()
                                .cloned()
                                .zip(values.into_iter().map(Value::String))
                                .collect(),
                        ),
                    }
                }
                _ => None,
            };
            n += 1;
            producer
                .send(make(n, line.into_bytes(), fields.as_ref()))
                .await;
            if last_shown.elapsed() > Duration::from_millis(200) {
                last_shown = Instant::now();
                let done = producer.stats.records.load(Ordering::Relaxed);
                match total {
                    Some(t) if t > 0 => status.show(&format!(
                        "{:>5.1} %  {n} read, {done} acknowledged",
                        read as f64 * 100.0 / t as f64
                    )),
                    _ => status.show(&format!("{n} read, {done} acknowledged")),
                }
            }
        }
        status.clear();
        reader_thread
            .join()
            .map_err(|_| anyhow::anyhow!("the input reader panicked"))??;
    }
    let stats = producer.finish().await;
    let summary = stats.json(started.elapsed());
    if args.json {
        println!("{summary}");
    } else {
        eprintln!(
            "put {} records ({} bytes) in {} requests, {:.2} s: {} records/s, {} retried, {} failed{}",
            summary["records"],
            summary["bytes"],
            summary["requests"],
            summary["seconds"].as_f64().unwrap_or(0.0),
            summary["records_per_sec"],
            summary["retried"],
            summary["failed"],
            match summary["reordered"].as_u64() {
                Some(0) | None => String::new(),
                Some(r) => format!(
                    ", {r} landed before an earlier record of their key (drop --allow-reorder to prevent it)"
                ),
            }
        );
    }
    anyhow::ensure!(
        stats.failed.load(Ordering::Relaxed) == 0,
        "some records were not written"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_templates() {
        let m: serde_json::Map<String, Value> =
            serde_json::from_str(r#"{"user_id":"u7","n":3}"#).unwrap();
        assert_eq!(render_key("user-{user_id}", 1, Some(&m)), "user-u7");
        assert_eq!(render_key("{n}", 42, None), "42");
        assert_eq!(render_key("fixed", 1, None), "fixed");
        assert_eq!(render_key("{random}", 1, None).len(), 16);
    }

    #[test]
    fn csv_quotes() {
        assert_eq!(csv_fields(r#"a,"b,c","d""e",f"#), ["a", "b,c", "d\"e", "f"]);
        assert_eq!(csv_fields(""), [""]);
    }
}
