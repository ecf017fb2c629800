//! SIGKILL under load: the real binary is killed while producers write, restarted, and every
//! record it acknowledged must be read back with the same shard, sequence number, data and
//! order. `scripts/crash-loop.sh` runs the same check many times.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::retry::RetryConfig;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::harness::{TempDir, read_shard};

const SHARDS: [&str; 4] = [
    "shardId-000000000000",
    "shardId-000000000001",
    "shardId-000000000002",
    "shardId-000000000003",
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn spawn_server(dir: &std::path::Path, port: u16) -> Child {
    let child = Command::new(env!("CARGO_BIN_EXE_rivulet"))
        .args([
            "serve",
            "--limits",
            "off",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("RIVULET_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    child
}

fn client(port: u16) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// (shard, sequence number) -> data, for every acknowledged record.
type Acked = Arc<Mutex<Vec<(String, String, Vec<u8>)>>>;

async fn produce(client: Client, stream: String, producer: usize, acked: Acked) {
    for i in 0.. {
        // Sizes from 10 bytes to 40 KiB, and now and then 1 MiB; PutRecord and PutRecords.
        let data = |j: usize| {
            let mut d = format!("p{producer}-{i}-{j}-").into_bytes();
            // Every 97th record is as large as a record can be (1 MiB with its key).
            let size = if (i + j).is_multiple_of(97) {
                (1 << 20) - 64
            } else {
                10 + (producer * 7919 + i * 104_729 + j * 31) % 40_000
            };
            d.resize(size, b'.');
            d
        };
        if i % 2 == 0 {
            let d = data(0);
            match client
                .put_record()
                .stream_name(&stream)
                .partition_key(format!("key-{producer}-{i}"))
                .data(Blob::new(d.clone()))
                .send()
                .await
            {
                Ok(put) => acked
                    .lock()
                    .unwrap()
                    .push((put.shard_id, put.sequence_number, d)),
                Err(_) => return,
            }
        } else {
            let batch: Vec<Vec<u8>> = (0..10).map(data).collect();
            let entries = batch
                .iter()
                .enumerate()
                .map(|(j, d)| {
                    PutRecordsRequestEntry::builder()
                        .partition_key(format!("key-{producer}-{i}-{j}"))
                        .data(Blob::new(d.clone()))
                        .build()
                        .unwrap()
                })
                .collect();
            match client
                .put_records()
                .stream_name(&stream)
                .set_records(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    let mut acked = acked.lock().unwrap();
                    for (r, d) in out.records.into_iter().zip(batch) {
                        if let (Some(shard), Some(seq)) = (r.shard_id, r.sequence_number) {
                            acked.push((shard, seq, d));
                        }
                    }
                }
                Err(_) => return,
            }
        }
    }
}

/// Iterations to run: 1 by default, more through `scripts/crash-loop.sh`.
fn iterations() -> usize {
    std::env::var("RIVULET_CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

/// A pseudo-random number from the clock, for kill moments; no RNG crate needed.
fn jitter(modulo: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64;
    nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15) % modulo
}

/// Reads every shard and checks that each acknowledged record is there, unchanged, and that
/// each shard's records are in sequence-number order.
async fn verify(c: &Client, stream: &str, acked: &[(String, String, Vec<u8>)]) {
    let mut stored: HashMap<(String, String), Vec<u8>> = HashMap::new();
    for shard in SHARDS {
        let records = read_shard(c, stream, shard).await;
        assert!(
            records
                .windows(2)
                .all(|w| w[0].sequence_number < w[1].sequence_number),
            "order within {shard}"
        );
        for r in records {
            stored.insert((shard.to_owned(), r.sequence_number), r.data.into_inner());
        }
    }
    let mut lost = 0;
    for (shard, seq, data) in acked {
        match stored.get(&(shard.clone(), seq.clone())) {
            Some(d) => assert_eq!(d, data, "record {shard}/{seq} came back changed"),
            None => lost += 1,
        }
    }
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged records were lost",
        acked.len()
    );
}

/// Iterations that share one stream; then it is checked, deleted and a new one started, so
/// a long loop's data directory stays bounded.
const ITERATIONS_PER_STREAM: usize = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_load_loses_no_acknowledged_record() {
    let dir = TempDir::new("crash");
    let mut acked_on_stream: Vec<(String, String, Vec<u8>)> = Vec::new();
    let rounds = iterations();
    let mut total = 0;
    for round in 0..rounds {
        let stream = format!("crash-{}", round / ITERATIONS_PER_STREAM);
        let port = free_port();
        let mut server = spawn_server(dir.path(), port);
        let c = client(port);
        if round.is_multiple_of(ITERATIONS_PER_STREAM) {
            if round > 0 {
                let previous = format!("crash-{}", round / ITERATIONS_PER_STREAM - 1);
                verify(&c, &previous, &acked_on_stream).await;
                c.delete_stream()
                    .stream_name(&previous)
                    .send()
                    .await
                    .unwrap();
                acked_on_stream.clear();
            }
            c.create_stream()
                .stream_name(&stream)
                .shard_count(4)
                .send()
                .await
                .unwrap();
        } else {
            verify(&c, &stream, &acked_on_stream).await;
        }
        let acked: Acked = Arc::default();
        let producers: Vec<_> = (0..8)
            .map(|p| tokio::spawn(produce(client(port), stream.clone(), p, acked.clone())))
            .collect();
        let run_ms = if rounds == 1 {
            1500
        } else {
            200 + jitter(1300)
        };
        tokio::time::sleep(Duration::from_millis(run_ms)).await;
        server.kill().unwrap(); // SIGKILL
        server.wait().unwrap();
        for p in producers {
            p.await.unwrap();
        }
        let acked = std::mem::take(&mut *acked.lock().unwrap());
        if rounds == 1 {
            assert!(
                acked.len() > 50,
                "the load was too light to mean anything: {} records",
                acked.len()
            );
        }
        total += acked.len();
        acked_on_stream.extend(acked);
        if rounds > 1 {
            eprintln!(
                "crash iteration {}/{rounds}: {total} records acknowledged so far, each checked after a restart",
                round + 1
            );
        }
    }
    let port = free_port();
    let mut server = spawn_server(dir.path(), port);
    let last = format!("crash-{}", (rounds - 1) / ITERATIONS_PER_STREAM);
    verify(&client(port), &last, &acked_on_stream).await;
    server.kill().unwrap();
    server.wait().unwrap();
}

/// SIGTERM (and SIGINT) stop the server cleanly: it exits 0 and keeps what it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly() {
    let dir = TempDir::new("sigterm");
    for signal in ["-TERM", "-INT"] {
        let port = free_port();
        let mut server = spawn_server(dir.path(), port);
        let c = client(port);
        if signal == "-TERM" {
            c.create_stream()
                .stream_name("term")
                .shard_count(1)
                .send()
                .await
                .unwrap();
        }
        c.put_record()
            .stream_name("term")
            .partition_key("k")
            .data(Blob::new(signal))
            .send()
            .await
            .unwrap();
        let killed = Command::new("kill")
            .arg(signal)
            .arg(server.id().to_string())
            .status()
            .unwrap();
        assert!(killed.success());
        let status = server.wait().unwrap();
        assert!(status.success(), "exit after {signal}: {status}");
    }
    let port = free_port();
    let mut server = spawn_server(dir.path(), port);
    let records = read_shard(&client(port), "term", "shardId-000000000000").await;
    let data: Vec<_> = records.iter().map(|r| r.data.as_ref().to_vec()).collect();
    assert_eq!(data, [b"-TERM".to_vec(), b"-INT".to_vec()]);
    server.kill().unwrap();
    server.wait().unwrap();
}
