//! Protocol-level errors, sent before any operation runs, as Kinesis words them.

use crate::harness::{TestServer, raw_post};

const JSON: &str = "application/x-amz-json-1.1";

#[tokio::test]
async fn unknown_and_missing_targets() {
    let s = TestServer::start().await;
    let r = s.raw(Some("NoSuchOperation"), JSON, b"{}").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, r#"{"__type":"UnknownOperationException"}"#);
    assert!(r.head.to_ascii_lowercase().contains("x-amzn-requestid:"));
    let r = s.raw(None, JSON, b"{}").await;
    assert_eq!(r.body, r#"{"__type":"UnknownOperationException"}"#);
}

#[tokio::test]
async fn malformed_json_and_wrong_types() {
    let s = TestServer::start().await;
    let r = s.raw(Some("ListStreams"), JSON, b"{not json").await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body, r#"{"__type":"SerializationException"}"#);
    let r = s
        .raw(
            Some("CreateStream"),
            JSON,
            br#"{"StreamName":"s","ShardCount":"two"}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body.starts_with(r#"{"Message":"#)
            || r.body.contains(r#""__type":"SerializationException""#),
        "{}",
        r.body
    );
    assert!(r.body.contains("SerializationException"));
    let r = s
        .raw(
            Some("PutRecord"),
            JSON,
            br#"{"StreamName":"s","PartitionKey":"k","Data":"not base64!"}"#,
        )
        .await;
    assert!(r.body.contains("SerializationException"), "{}", r.body);
    // An empty body counts as an empty object.
    let r = s.raw(Some("ListStreams"), JSON, b"").await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn content_types_and_signatures() {
    let s = TestServer::start().await;
    let r = s.raw(Some("ListStreams"), "application/json", b"{}").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("UnknownOperationException"));
    let r = s.raw(Some("ListStreams"), "text/plain", b"{}").await;
    assert_eq!(r.status, 403);
    assert!(r.body.contains("<AccessDeniedException>"));
    let r = raw_post(s.handle.addr(), Some("ListStreams"), JSON, b"{}", false).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.body,
        r#"{"__type":"MissingAuthenticationTokenException","message":"Missing Authentication Token"}"#
    );
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("x-amzn-errortype: missingauthenticationtokenexception")
    );
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_they_are_read() {
    let s = TestServer::start().await;
    let body = vec![b' '; rivulet::limits::REQUEST_BODY_BYTES_MAX + 1];
    let r = s.raw(Some("PutRecords"), JSON, &body).await;
    assert_eq!(r.status, 413);
    // The server is still serving.
    assert_eq!(s.raw(Some("ListStreams"), JSON, b"{}").await.status, 200);
}

#[tokio::test]
async fn validation_lists_every_violation() {
    let s = TestServer::start().await;
    let r = s
        .raw(
            Some("CreateStream"),
            JSON,
            br#"{"StreamName":"bad name!","ShardCount":0}"#,
        )
        .await;
    assert_eq!(r.status, 400);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["__type"], "ValidationException");
    assert_eq!(
        v["message"],
        "2 validation errors detected: Value 'bad name!' at 'streamName' failed to satisfy constraint: \
         Member must satisfy regular expression pattern: [a-zA-Z0-9_.-]+; Value '0' at 'shardCount' \
         failed to satisfy constraint: Member must have value greater than or equal to 1"
    );
    let r = s.raw(Some("CreateStream"), JSON, b"{}").await;
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(
        v["message"],
        "1 validation error detected: Value null at 'streamName' failed to satisfy constraint: Member must not be null"
    );
}

/// A client that never finishes its headers is cut off, and connections over the limit are
/// closed at once, while the server keeps serving.
#[tokio::test]
async fn slow_headers_and_excess_connections_are_cut_off() {
    use std::io::{Read, Write};
    let s = TestServer::start_with(|c| {
        c.header_read_timeout_ms = 200;
        c.max_connections = 2;
    })
    .await;
    let addr = s.handle.addr();
    let outcome = tokio::task::spawn_blocking(move || {
        let mut slow = std::net::TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n").unwrap();
        let idle = std::net::TcpStream::connect(addr).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut extra = std::net::TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let mut buf = [0u8; 64];
        let extra_closed = matches!(extra.read(&mut buf), Ok(0) | Err(_));
        let started = std::time::Instant::now();
        // The server answers or closes; a read timeout here would mean it is still waiting.
        let slow_closed = match slow.read(&mut buf) {
            Ok(_) => true,
            Err(e) => !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
        };
        drop(idle);
        (extra_closed, slow_closed, started.elapsed())
    })
    .await
    .unwrap();
    assert!(outcome.0, "a connection over the limit is closed");
    assert!(outcome.1, "slow headers time out: {:?}", outcome.2);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(s.raw(Some("ListStreams"), JSON, b"{}").await.status, 200);
}
