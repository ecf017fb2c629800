//! Starting servers for tests: temp data dirs, an in-process server with an injected clock,
//! an aws-sdk-kinesis client pointed at it, and a raw HTTP helper for protocol-level checks.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use rivulet::clock::ManualClock;
use rivulet::config::Config;
use rivulet::server::ServerHandle;

/// A directory removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("rivulet-it-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestServer {
    pub handle: ServerHandle,
    pub client: Client,
    pub clock: Arc<ManualClock>,
    pub dir: Arc<TempDir>,
}

impl TestServer {
    pub async fn start() -> TestServer {
        TestServer::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut Config)) -> TestServer {
        let dir = Arc::new(TempDir::new("server"));
        TestServer::start_in(dir, ManualClock::new(), tune).await
    }

    /// Starts a server on an existing data dir, with a given clock.
    pub async fn start_in(
        dir: Arc<TempDir>,
        clock: Arc<ManualClock>,
        tune: impl FnOnce(&mut Config),
    ) -> TestServer {
        let mut config = Config::new(dir.path());
        config.janitor_interval_ms = 3_600_000; // tests call tick() themselves
        // Unthrottled unless a test turns limits on.
        config.shard_rates = rivulet::data::throughput::ShardRates::OFF;
        config.control_plane_limits = false;
        tune(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let handle = rivulet::server::start(config, clock.clone(), listener)
            .await
            .unwrap();
        let client = client(&handle.endpoint());
        TestServer {
            handle,
            client,
            clock,
            dir,
        }
    }

    /// Stops the server cleanly and starts another on the same data dir and clock.
    pub async fn restart(self) -> TestServer {
        let (dir, clock) = (self.dir.clone(), self.clock.clone());
        self.handle.stop().await;
        TestServer::start_in(dir, clock, |_| {}).await
    }

    pub fn advance_ms(&self, ms: i64) {
        self.clock.advance_ms(ms);
    }

    /// Runs the housekeeping pass (state transitions, retention) now.
    pub async fn tick(&self) {
        let svc = self.handle.service().clone();
        tokio::task::spawn_blocking(move || svc.tick())
            .await
            .unwrap();
    }

    pub async fn create_stream(&self, name: &str, shards: i32) {
        self.client
            .create_stream()
            .stream_name(name)
            .shard_count(shards)
            .send()
            .await
            .unwrap();
    }

    pub async fn raw(&self, target: Option<&str>, content_type: &str, body: &[u8]) -> RawResponse {
        raw_post(self.handle.addr(), target, content_type, body, true).await
    }
}

pub fn client(endpoint: &str) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .build();
    Client::from_conf(config)
}

pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One HTTP/1.1 POST over a plain socket, for what the SDK will not send: unknown
/// operations, bad JSON, missing signatures, oversized bodies. It blocks, so it runs off the
/// runtime that serves it.
pub async fn raw_post(
    addr: std::net::SocketAddr,
    target: Option<&str>,
    content_type: &str,
    body: &[u8],
    signed: bool,
) -> RawResponse {
    let (target, content_type, body) = (
        target.map(str::to_owned),
        content_type.to_owned(),
        body.to_vec(),
    );
    tokio::task::spawn_blocking(move || {
        raw_post_blocking(addr, target.as_deref(), &content_type, &body, signed)
    })
    .await
    .unwrap()
}

fn raw_post_blocking(
    addr: std::net::SocketAddr,
    target: Option<&str>,
    content_type: &str,
    body: &[u8],
    signed: bool,
) -> RawResponse {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    // A server that refuses a body stops reading it; the client must not wait forever.
    stream
        .set_write_timeout(Some(std::time::Duration::from_secs(2)))
        .unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    if let Some(t) = target {
        head.push_str(&format!("X-Amz-Target: Kinesis_20131202.{t}\r\n"));
    }
    if signed {
        head.push_str(
            "Authorization: AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/kinesis/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00\r\n",
        );
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    // A server may answer an oversized body before reading it all, and close.
    let _ = stream.write_all(body);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    RawResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Reads a whole shard from TRIM_HORIZON to the end.
pub async fn read_shard(
    client: &Client,
    stream: &str,
    shard: &str,
) -> Vec<aws_sdk_kinesis::types::Record> {
    let mut it = client
        .get_shard_iterator()
        .stream_name(stream)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let mut out = Vec::new();
    loop {
        let page = client
            .get_records()
            .shard_iterator(&it)
            .send()
            .await
            .unwrap();
        let done = page.records.is_empty() && page.millis_behind_latest == Some(0);
        out.extend(page.records);
        match page.next_shard_iterator {
            Some(next) if !done => it = next,
            _ => return out,
        }
    }
}

/// The error code of a failed SDK call.
pub fn code<E, R>(err: &aws_sdk_kinesis::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.code())
        .unwrap_or("<not a service error>")
        .to_owned()
}

pub fn message<E, R>(err: &aws_sdk_kinesis::error::SdkError<E, R>) -> String
where
    E: aws_sdk_kinesis::error::ProvideErrorMetadata,
{
    err.as_service_error()
        .and_then(|e| e.message())
        .unwrap_or_default()
        .to_owned()
}

/// A client that surfaces throttling instead of retrying it.
pub fn client_without_retries(endpoint: &str) -> Client {
    let config = aws_sdk_kinesis::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
        .endpoint_url(endpoint)
        .retry_config(aws_sdk_kinesis::config::retry::RetryConfig::disabled())
        .build();
    Client::from_conf(config)
}

/// GET `path` over a plain socket; the response body.
pub async fn raw_get(addr: std::net::SocketAddr, path: &str) -> String {
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        let text = String::from_utf8_lossy(&raw).into_owned();
        text.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default()
    })
    .await
    .unwrap()
}
