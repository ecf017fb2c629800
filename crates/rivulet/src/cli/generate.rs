//! `rivulet gen purchases | tickers`: the seed systems' demo data (seed 001's purchase events,
//! seed 003's stock tickers) at a fixed rate, to standard output as NDJSON or straight to a
//! stream.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::put::{Batching, Producer, Record};
use crate::client::{Client, jitter};
use crate::clock::{Clock, SystemClock, instant};

#[derive(clap::Args, Debug)]
pub struct GenArgs {
    /// purchases (timestamp, user_id, event_type, amount, product_id, session_id, location,
    /// device_type; key user_id) or tickers (EVENT_TIME, TICKER, PRICE; key TICKER).
    #[arg(value_parser = ["purchases", "tickers"])]
    pub kind: String,
    /// Records per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Stop after this many records (default: run until interrupted or --duration).
    #[arg(long)]
    pub count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Write to this stream instead of printing NDJSON.
    #[arg(long)]
    pub stream: Option<String>,
}

fn pick<'a>(options: &[&'a str]) -> &'a str {
    options[((jitter() * options.len() as f64) as usize).min(options.len() - 1)]
}

/// One record of the kind, and its partition key.
pub fn record(kind: &str, now_ms: i64) -> (Value, String) {
    match kind {
        "tickers" => {
            let ticker = pick(&["AAPL", "AMZN", "MSFT", "INTC", "TBV"]);
            let price = (jitter() * 100.0 * 100.0).round() / 100.0;
            (
                json!({"EVENT_TIME": instant(now_ms), "TICKER": ticker, "PRICE": price}),
                ticker.to_owned(),
            )
        }
        _ => {
            let user = format!("user_{:03}", (jitter() * 1000.0) as u32);
            let amount = ((10.0 + jitter() * 490.0) * 100.0).round() / 100.0;
            (
                json!({
                    "timestamp": instant(now_ms),
                    "user_id": user,
                    "event_type": pick(&["page_view", "purchase", "click", "login"]),
                    "amount": amount,
                    "product_id": format!("product_{:03}", (jitter() * 500.0) as u32),
                    "session_id": format!("session_{:08x}", (jitter() * u32::MAX as f64) as u32),
                    "location": pick(&["US-East", "US-West", "EU-Central", "AP-South"]),
                    "device_type": pick(&["mobile", "desktop", "tablet"]),
                }),
                user,
            )
        }
    }
}

pub async fn run(client: Option<Client>, args: GenArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.rate > 0.0, "--rate must be positive");
    let producer = match (&args.stream, client) {
        (Some(s), Some(c)) => Some(Producer::start(
            c,
            s,
            Batching {
                linger_ms: 50,
                ..Batching::default()
            },
        )),
        _ => None,
    };
    let started = Instant::now();
    let mut n = 0u64;
    loop {
        if args.count.is_some_and(|c| n >= c)
            || args
                .duration
                .is_some_and(|d| started.elapsed().as_secs_f64() >= d)
        {
            break;
        }
        // Paced against the start, so the rate holds on average whatever each send costs.
        let due = started + Duration::from_secs_f64(n as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        let (value, key) = record(&args.kind, SystemClock.now_ms());
        n += 1;
        match &producer {
            Some(p) => {
                p.send(Record {
                    partition_key: key,
                    explicit_hash_key: None,
                    data: value.to_string().into_bytes(),
                })
                .await
            }
            None => println!("{value}"),
        }
    }
    if let Some(p) = producer {
        let stats = p.finish().await;
        eprintln!("{}", stats.json(started.elapsed()));
    }
    Ok(())
}
