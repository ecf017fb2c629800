//! Clients that would hold the server's memory: readers that never read their 10 MiB
//! GetRecords response, uploaders that never finish their body, more large requests than
//! the in-flight budget has room for. Each is cut off or refused with a retryable error,
//! and a fresh client keeps being served. `bench/slow-clients.sh` measures the same at scale.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{PutRecordsRequestEntry, ShardIteratorType};

use crate::harness::TestServer;

const AUTH: &str = "AWS4-HMAC-SHA256 Credential=a/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0";

/// A stream `big` holding 12 records of 1,000,000 bytes, and its TRIM_HORIZON iterator.
async fn big_stream(server: &TestServer) -> String {
    server.create_stream("big", 1).await;
    for _ in 0..3 {
        let entries = (0..4)
            .map(|i| {
                PutRecordsRequestEntry::builder()
                    .partition_key(i.to_string())
                    .data(Blob::new(vec![b'x'; 1_000_000]))
                    .build()
                    .unwrap()
            })
            .collect();
        let out = server
            .client
            .put_records()
            .stream_name("big")
            .set_records(Some(entries))
            .send()
            .await
            .unwrap();
        assert_eq!(out.failed_record_count, Some(0));
    }
    server
        .client
        .get_shard_iterator()
        .stream_name("big")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap()
}

fn request(op: &str, length: usize) -> Vec<u8> {
    format!(
        "POST / HTTP/1.1\r\nHost: x\r\nX-Amz-Target: Kinesis_20131202.{op}\r\n\
         Content-Type: application/x-amz-json-1.1\r\nAuthorization: {AUTH}\r\n\
         Content-Length: {length}\r\n\r\n"
    )
    .into_bytes()
}

/// Sends a GetRecords and reads nothing of the answer. Its receive buffer is kept small, as
/// the kernel would otherwise take in the whole response on the client's behalf.
async fn slow_reader(addr: SocketAddr, iterator: &str) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let s = socket.connect(addr).await.unwrap().into_std().unwrap();
    s.set_nonblocking(false).unwrap();
    let body = format!(r#"{{"ShardIterator":"{iterator}"}}"#);
    let mut w = &s;
    w.write_all(&request("GetRecords", body.len())).unwrap();
    w.write_all(body.as_bytes()).unwrap();
    s
}

/// Reads what the server sends until it closes the connection or `within` passes; returns
/// the bytes read and whether it closed.
fn drain(s: &mut TcpStream, within: Duration) -> (Vec<u8>, bool) {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 1 << 20];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return (out, true),
        }
    }
    (out, false)
}

async fn put_small(server: &TestServer) {
    server
        .client
        .put_record()
        .stream_name("big")
        .partition_key("k")
        .data(Blob::new("still served"))
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_reads_nothing_is_cut_off_and_its_share_returned() {
    let server = TestServer::start_with(|c| c.write_stall_timeout_ms = 500).await;
    let iterator = big_stream(&server).await;
    let addr = server.handle.addr();
    let svc = server.handle.service().clone();
    let mut reader = slow_reader(addr, &iterator).await;
    // The response (about 13 MiB) is more than the socket buffers hold, so its share stays
    // taken while the client reads nothing...
    let deadline = Instant::now() + Duration::from_secs(5);
    while svc.inflight.in_use() == 0 {
        assert!(Instant::now() < deadline, "GetRecords never reserved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    put_small(&server).await;
    // ...until the write stall passes the timeout and the server closes the connection.
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc.inflight.in_use() > 0 {
        assert!(Instant::now() < deadline, "the share never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (read, closed) = tokio::task::spawn_blocking(move || {
        let got = drain(&mut reader, Duration::from_secs(5));
        drop(reader);
        got
    })
    .await
    .unwrap();
    assert!(closed, "the server closed the stalled connection");
    assert!(
        read.len() < 12_000_000,
        "the client got only part of the response: {} bytes",
        read.len()
    );
    put_small(&server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_budget_runs_short_reads_shrink_and_large_requests_get_service_unavailable() {
    let server = TestServer::start_with(|c| {
        c.inflight_bytes_max = 48 << 20;
        c.inflight_wait_ms = 300;
        c.write_stall_timeout_ms = 60_000;
    })
    .await;
    let iterator = big_stream(&server).await;
    let addr = server.handle.addr();
    let svc = server.handle.service().clone();
    // Two readers that read nothing each hold their response's share (about 12.7 MiB) once
    // it has been built; the second is sent once the first has built its response.
    let mut readers = Vec::new();
    for n in 1..=2 {
        readers.push(slow_reader(addr, &iterator).await);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !(n * 13_300_000..n * 14_000_000).contains(&svc.inflight.in_use()) {
            let in_use = svc.inflight.in_use();
            assert!(
                Instant::now() < deadline,
                "reader {n} never reserved: {in_use}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let get = || async {
        server
            .client
            .get_records()
            .shard_iterator(&iterator)
            .send()
            .await
            .unwrap()
            .records
            .len()
    };
    // With about 22 MiB free, a GetRecords reads 9 MiB instead of 10.
    assert_eq!(get().await, 9, "a read that fits what is free");
    // A 16 MiB body takes 16 of them; a second one finds no room, waits, and is refused with
    // a retryable ServiceUnavailable.
    let uploader = |mut s: TcpStream| {
        s.write_all(&request("PutRecords", 16 << 20)).unwrap();
        s.write_all(b"{").unwrap();
        s
    };
    let first = uploader(TcpStream::connect(addr).unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc.inflight.in_use() < 26_600_000 + (16 << 20) {
        assert!(Instant::now() < deadline, "the upload never reserved");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = Instant::now();
    let (answer, _) = tokio::task::spawn_blocking(move || {
        drain(
            &mut uploader(TcpStream::connect(addr).unwrap()),
            Duration::from_secs(5),
        )
    })
    .await
    .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.contains(r#""__type":"ServiceUnavailable""#),
        "{answer}"
    );
    assert!(answer.contains("--inflight-mib 48"), "{answer}");
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "it waited first"
    );
    // A GetRecords still reads something (two records with about 6 MiB free), and small
    // requests are not held up.
    assert_eq!(get().await, 2);
    put_small(&server).await;
    // Once those clients go, their shares come back and a GetRecords is served whole.
    drop(readers);
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    while svc.inflight.in_use() > 0 {
        assert!(Instant::now() < deadline, "shares were not returned");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(get().await, 10, "10 MiB of 1 MB records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_refused() {
    let server = TestServer::start_with(|c| c.body_read_timeout_ms = 400).await;
    server.create_stream("big", 1).await;
    let addr = server.handle.addr();
    let svc = server.handle.service().clone();
    let (head, closed, in_use_while_waiting) = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&request("PutRecords", 4 << 20)).unwrap();
        s.write_all(&[b' '; 100_000]).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let in_use = svc.inflight.in_use();
        let (read, closed) = drain(&mut s, Duration::from_secs(5));
        (String::from_utf8_lossy(&read).into_owned(), closed, in_use)
    })
    .await
    .unwrap();
    assert_eq!(
        in_use_while_waiting,
        4 << 20,
        "the announced body is reserved"
    );
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(head.contains("RequestTimeoutException"), "{head}");
    assert!(closed);
    assert_eq!(server.handle.service().inflight.in_use(), 0);
    put_small(&server).await;
}
