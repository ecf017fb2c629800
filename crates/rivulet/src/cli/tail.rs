//! `rivulet tail STREAM`: follows every shard, and the children of a shard that a reshard
//! closes, printing records as they arrive, de-aggregating KPL records.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Duration;

use serde_json::{Value, json};

use super::{is_open, list_shards, parse_when};
use crate::client::Client;
use crate::client::kpl::deaggregate;
use crate::clock::{Clock, SystemClock, iso8601};

/// How often each shard is polled when it had nothing (Kinesis allows 5 GetRecords/s).
const IDLE_POLL: Duration = Duration::from_millis(250);
/// How often the shard list is refreshed to find shards created by resharding.
const RELIST: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct TailArgs {
    pub stream: String,
    /// Where to start: latest, trim-horizon, a time (ISO-8601, epoch seconds, -5m), or a
    /// sequence number (applied to the shard it belongs to; others start at trim-horizon).
    #[arg(long, default_value = "latest")]
    pub from: String,
    /// How to print data: text (UTF-8, escaped), json (one object per record) or hex.
    #[arg(long, default_value = "text", value_parser = ["text", "json", "hex"])]
    pub format: String,
    /// Stop after this many records.
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop at this time (ISO-8601, epoch seconds, or +30s from now).
    #[arg(long)]
    pub until: Option<String>,
    /// Print KPL aggregated records as they are instead of their user records.
    #[arg(long)]
    pub no_deaggregate: bool,
}

enum Start {
    Latest,
    TrimHorizon,
    At(i64),
    Sequence(String),
}

fn iterator_request(stream: &str, shard: &str, start: &Start, for_new: bool) -> Value {
    let mut v = json!({"StreamName": stream, "ShardId": shard});
    match start {
        _ if for_new => v["ShardIteratorType"] = json!("TRIM_HORIZON"),
        Start::Latest => v["ShardIteratorType"] = json!("LATEST"),
        Start::TrimHorizon => v["ShardIteratorType"] = json!("TRIM_HORIZON"),
        Start::At(ms) => {
            v["ShardIteratorType"] = json!("AT_TIMESTAMP");
            v["Timestamp"] = json!(*ms as f64 / 1000.0);
        }
        Start::Sequence(seq) => {
            v["ShardIteratorType"] = json!("AT_SEQUENCE_NUMBER");
            v["StartingSequenceNumber"] = json!(seq);
        }
    }
    v
}

pub async fn run(client: Client, args: TailArgs) -> anyhow::Result<()> {
    let now = SystemClock.now_ms();
    let start = match args.from.as_str() {
        "latest" | "LATEST" => Start::Latest,
        "trim-horizon" | "TRIM_HORIZON" => Start::TrimHorizon,
        s if s.len() > 20 && s.bytes().all(|b| b.is_ascii_digit()) => Start::Sequence(s.into()),
        s => Start::At(
            parse_when(s, now).ok_or_else(|| anyhow::anyhow!("--from {s}: not a position"))?,
        ),
    };
    let until = match &args.until {
        Some(u) => {
            Some(parse_when(u, now).ok_or_else(|| anyhow::anyhow!("--until {u}: not a time"))?)
        }
        None => None,
    };
    // Shard id → iterator; shards seen (so a relist does not restart a finished one).
    let mut iterators: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut seen: BTreeSet<String> = BTreeSet::new();
    for s in list_shards(&client, &args.stream).await? {
        let id = s["ShardId"].as_str().unwrap_or_default().to_owned();
        seen.insert(id.clone());
        // A closed shard matters only when reading history.
        if !is_open(&s) && matches!(start, Start::Latest) {
            continue;
        }
        let req = match &start {
            // A sequence number belongs to one shard; the others are read from the start.
            Start::Sequence(_) => {
                let r = iterator_request(&args.stream, &id, &start, false);
                match client.kinesis("GetShardIterator", r).await {
                    Ok(v) => {
                        iterators.insert(id, v["ShardIterator"].as_str().map(str::to_owned));
                        continue;
                    }
                    Err(_) => iterator_request(&args.stream, &id, &Start::TrimHorizon, false),
                }
            }
            _ => iterator_request(&args.stream, &id, &start, false),
        };
        let v = client.kinesis("GetShardIterator", req).await?;
        iterators.insert(id, v["ShardIterator"].as_str().map(str::to_owned));
    }
    let mut printed = 0u64;
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut next_relist = tokio::time::Instant::now() + RELIST;
    loop {
        let mut any = false;
        let ids: Vec<String> = iterators.keys().cloned().collect();
        for id in ids {
            let Some(Some(it)) = iterators.get(&id).cloned() else {
                continue;
            };
            let page = client
                .kinesis("GetRecords", json!({"ShardIterator": it, "Limit": 1000}))
                .await?;
            for r in page["Records"].as_array().into_iter().flatten() {
                if let Some(u) = until
                    && r["ApproximateArrivalTimestamp"]
                        .as_f64()
                        .is_some_and(|t| (t * 1000.0) as i64 > u)
                {
                    out.flush()?;
                    return Ok(());
                }
                any = true;
                let left = args.count.map(|c| c - printed);
                printed += print(&mut out, &id, r, &args, left)?;
                if args.count.is_some_and(|c| printed >= c) {
                    out.flush()?;
                    return Ok(());
                }
            }
            match page["NextShardIterator"].as_str() {
                Some(next) => {
                    iterators.insert(id, Some(next.to_owned()));
                }
                None => {
                    // The shard was closed by a reshard: follow its children.
                    iterators.insert(id, None);
                    for child in page["ChildShards"].as_array().into_iter().flatten() {
                        let Some(c) = child["ShardId"].as_str() else {
                            continue;
                        };
                        if seen.insert(c.to_owned()) {
                            let req = iterator_request(&args.stream, c, &start, true);
                            let v = client.kinesis("GetShardIterator", req).await?;
                            iterators
                                .insert(c.into(), v["ShardIterator"].as_str().map(str::to_owned));
                        }
                    }
                }
            }
        }
        out.flush()?;
        if until.is_some_and(|u| SystemClock.now_ms() > u) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= next_relist {
            next_relist = tokio::time::Instant::now() + RELIST;
            for s in list_shards(&client, &args.stream).await? {
                let id = s["ShardId"].as_str().unwrap_or_default().to_owned();
                if seen.insert(id.clone()) {
                    let req = iterator_request(&args.stream, &id, &start, true);
                    let v = client.kinesis("GetShardIterator", req).await?;
                    iterators.insert(id, v["ShardIterator"].as_str().map(str::to_owned));
                }
            }
        }
        if !any {
            tokio::time::sleep(IDLE_POLL).await;
        }
    }
}

/// Prints one Kinesis record (its user records if it is a KPL aggregate); returns how many
/// lines were printed.
fn print(
    out: &mut impl Write,
    shard: &str,
    r: &Value,
    args: &TailArgs,
    left: Option<u64>,
) -> anyhow::Result<u64> {
    let data = base64_simd::STANDARD
        .decode_to_vec(r["Data"].as_str().unwrap_or(""))
        .unwrap_or_default();
    let seq = r["SequenceNumber"].as_str().unwrap_or("");
    let key = r["PartitionKey"].as_str().unwrap_or("");
    let arrival = r["ApproximateArrivalTimestamp"]
        .as_f64()
        .map(|t| iso8601((t * 1000.0) as i64))
        .unwrap_or_default();
    let users = if args.no_deaggregate {
        None
    } else {
        deaggregate(&data)
    };
    let items: Vec<(Option<usize>, String, Vec<u8>)> = match users {
        Some(list) => list
            .into_iter()
            .enumerate()
            .map(|(i, u)| (Some(i), u.partition_key, u.data))
            .collect(),
        None => vec![(None, key.to_owned(), data)],
    };
    let n = (items.len() as u64).min(left.unwrap_or(u64::MAX));
    for (sub, key, data) in items.into_iter().take(n as usize) {
        match args.format.as_str() {
            "json" => {
                let mut v = json!({
                    "shard": shard,
                    "sequence": seq,
                    "partitionKey": key,
                    "arrival": arrival,
                });
                if let Some(i) = sub {
                    v["subSequence"] = json!(i);
                }
                match String::from_utf8(data) {
                    Ok(text) => match serde_json::from_str::<Value>(&text) {
                        Ok(parsed) => v["data"] = parsed,
                        Err(_) => v["text"] = json!(text),
                    },
                    Err(e) => {
                        v["base64"] = json!(base64_simd::STANDARD.encode_to_string(e.as_bytes()))
                    }
                }
                writeln!(out, "{v}")?;
            }
            "hex" => {
                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                writeln!(
                    out,
                    "{shard} {seq}{} {arrival} {key} {hex}",
                    sub_suffix(sub)
                )?;
            }
            _ => {
                let text = String::from_utf8_lossy(&data);
                writeln!(
                    out,
                    "{shard} {seq}{} {arrival} {key} {}",
                    sub_suffix(sub),
                    text.escape_debug()
                )?;
            }
        }
    }
    Ok(n)
}

fn sub_suffix(sub: Option<usize>) -> String {
    sub.map(|i| format!("/{i}")).unwrap_or_default()
}
