//! The `rivulet` command-line client: stream administration, put, tail, top, bench, replay
//! and the demo data generators. Every command is a client of the Kinesis API (and, where
//! Rivulet's metrics help, the CloudWatch API) through `client::Client`, so it works against
//! Rivulet, another emulator, or any http:// endpoint speaking the same protocol.

pub mod bench;
pub mod generate;
pub mod put;
pub mod replay;
pub mod stream;
pub mod tail;
pub mod top;

use std::io::IsTerminal;
use std::time::Duration;

use serde_json::{Value, json};

use crate::client::{CallError, Client};

/// Prints rows as aligned columns under a header.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(headers.to_vec());
    out.push('\n');
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
        out.push('\n');
    }
    out
}

/// A status line on stderr that rewrites itself, shown only on a terminal.
pub struct Status {
    on: bool,
    frame: usize,
}

impl Status {
    pub fn new() -> Status {
        Status {
            on: std::io::stderr().is_terminal(),
            frame: 0,
        }
    }
    pub fn show(&mut self, text: &str) {
        if self.on {
            const FRAMES: [char; 4] = ['|', '/', '-', '\\'];
            self.frame += 1;
            eprint!("\r\x1b[2K{} {text}", FRAMES[self.frame % 4]);
        }
    }
    pub fn clear(&mut self) {
        if self.on {
            eprint!("\r\x1b[2K");
        }
    }
}

impl Default for Status {
    fn default() -> Status {
        Status::new()
    }
}

/// Waits until the stream is ACTIVE (or gone, with `gone`), with a spinner.
pub async fn wait_for(client: &Client, stream: &str, gone: bool) -> Result<(), CallError> {
    let mut status = Status::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    loop {
        match client
            .kinesis("DescribeStreamSummary", json!({ "StreamName": stream }))
            .await
        {
            Ok(v) => {
                let s = v["StreamDescriptionSummary"]["StreamStatus"]
                    .as_str()
                    .unwrap_or("?")
                    .to_owned();
                if s == "ACTIVE" && !gone {
                    status.clear();
                    return Ok(());
                }
                status.show(&format!("{stream} is {s}"));
            }
            Err(e) if gone && e.kind == "ResourceNotFoundException" => {
                status.clear();
                return Ok(());
            }
            Err(e) => return Err(e),
        }
        if tokio::time::Instant::now() > deadline {
            status.clear();
            return Err(CallError {
                kind: "Timeout".into(),
                message: format!("{stream} did not settle within 10 minutes"),
                status: 0,
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every shard of a stream (ListShards, all pages).
pub async fn list_shards(client: &Client, stream: &str) -> Result<Vec<Value>, CallError> {
    let mut shards = Vec::new();
    let mut body = json!({ "StreamName": stream });
    loop {
        let page = client.kinesis("ListShards", body).await?;
        shards.extend(page["Shards"].as_array().cloned().unwrap_or_default());
        match page["NextToken"].as_str() {
            Some(t) => body = json!({ "NextToken": t }),
            None => return Ok(shards),
        }
    }
}

pub fn is_open(shard: &Value) -> bool {
    shard["SequenceNumberRange"]["EndingSequenceNumber"].is_null()
}

/// A shard's hash-key range.
pub fn hash_range(shard: &Value) -> (u128, u128) {
    let n = |k: &str| {
        shard["HashKeyRange"][k]
            .as_str()
            .and_then(|s| s.parse::<u128>().ok())
            .unwrap_or(0)
    };
    (n("StartingHashKey"), n("EndingHashKey"))
}

/// The hash key Kinesis routes a partition key by: MD5 as a big-endian 128-bit number.
pub fn partition_hash(key: &str) -> u128 {
    use md5::{Digest, Md5};
    u128::from_be_bytes(Md5::digest(key.as_bytes()).into())
}

/// CPU seconds this process has used (user + system), from /proc; None elsewhere.
pub fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Parses a time: ISO-8601, epoch seconds, or `-30s`/`-5m`/`-2h` relative to now.
pub fn parse_when(s: &str, now_ms: i64) -> Option<i64> {
    if let Some(rel) = s.strip_prefix('-').or_else(|| s.strip_prefix('+')) {
        let sign = if s.starts_with('-') { -1 } else { 1 };
        let (n, unit) = rel.split_at(rel.find(|c: char| !c.is_ascii_digit())?);
        let n: i64 = n.parse().ok()?;
        let ms = match unit {
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        return Some(now_ms + sign * n * ms);
    }
    crate::clock::parse_time(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align() {
        let t = table(&["a", "bb"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, "a    bb\nxxx  y\n");
    }

    #[test]
    fn relative_and_absolute_times() {
        assert_eq!(parse_when("-30s", 100_000), Some(70_000));
        assert_eq!(parse_when("+2m", 0), Some(120_000));
        assert_eq!(parse_when("1970-01-01T00:00:01Z", 0), Some(1000));
        assert_eq!(parse_when("-3x", 0), None);
    }

    #[test]
    fn partition_hash_is_md5_big_endian() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(partition_hash(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }
}
