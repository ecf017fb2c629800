//! The loopback HTTP ceiling: a server on the same HTTP stack as Rivulet (tokio, hyper,
//! HTTP/1.1 and cleartext HTTP/2 on one port) that answers the Kinesis calls `rivulet bench`
//! makes without doing any of their work: no validation, no routing to shards, no storage,
//! no fsync. Driving it with the same `rivulet bench` arguments as a real server shows what
//! the client, the HTTP exchange and the scheduler cost on this machine by themselves.
//!
//!   cargo run --release --example null_server -- [PORT]      (default 4599)
//!
//! ListStreams answers no streams (a readiness probe); ListShards one open shard; PutRecord a
//! fixed sequence number; PutRecords that same result once per record sent (counted by their
//! `PartitionKey` members). Anything else is answered 400. Not a Kinesis server: a measuring
//! instrument for `bench/peers.sh`.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;

/// Bodies larger than this are refused, as every loop over input here has a limit.
const BODY_BYTES_MAX: usize = 16 << 20;

const LIST_SHARDS: &str = r#"{"Shards":[{"ShardId":"shardId-000000000000","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"},"SequenceNumberRange":{"StartingSequenceNumber":"49000000000000000000000000000000000000000000000000000000"}}]}"#;
/// PutRecord's answer, and each entry of PutRecords'.
const PUT_RECORD: &str = r#"{"SequenceNumber":"49000000000000000000000000000000000000000000000000000001","ShardId":"shardId-000000000000"}"#;

async fn answer(request: Request<Incoming>) -> Result<Response<String>, Infallible> {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix("Kinesis_20131202."))
        .unwrap_or("")
        .to_owned();
    let body = match axum::body::to_bytes(Body::new(request.into_body()), BODY_BYTES_MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return Ok(reply(400, "body too large or cut short".into())),
    };
    let text = match target.as_str() {
        "ListStreams" => r#"{"StreamNames":[],"HasMoreStreams":false}"#.to_owned(),
        "ListShards" => LIST_SHARDS.to_owned(),
        "PutRecord" => PUT_RECORD.to_owned(),
        "PutRecords" => {
            let n = count(&body, b"\"PartitionKey\"");
            let entries = vec![PUT_RECORD; n].join(",");
            format!(r#"{{"FailedRecordCount":0,"Records":[{entries}]}}"#)
        }
        other => return Ok(reply(400, format!("null_server does not answer {other:?}"))),
    };
    Ok(reply(200, text))
}

fn reply(status: u16, body: String) -> Response<String> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(body)
        .expect("a valid response")
}

fn count(haystack: &Bytes, needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .filter(|w| *w == needle)
        .count()
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let port: u16 = match std::env::args().nth(1) {
        Some(p) => p.parse().map_err(std::io::Error::other)?,
        None => 4599,
    };
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    eprintln!("null_server listening on 127.0.0.1:{port}");
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let service = hyper::service::service_fn(answer);
            let _ = Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
