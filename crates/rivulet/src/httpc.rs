//! A small HTTP/1.1 client for what the server itself sends: alarm webhooks (and the
//! `alarms install-recommended` command). One connection per request, a deadline on the
//! whole exchange, and a cap on the response body read. Plain `http://` only.

use std::time::Duration;

use axum::body::Body;
use hyper::Request;
use hyper_util::rt::TokioIo;

/// Response bodies are read up to this size.
pub const RESPONSE_BYTES_MAX: usize = 16 << 20;

pub struct Response {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

/// POSTs `body` to `url` with `headers`, within `timeout`.
pub async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
    timeout: Duration,
) -> Result<Response, String> {
    tokio::time::timeout(timeout, exchange(url, headers, body))
        .await
        .map_err(|_| format!("no response from {url} within {} ms", timeout.as_millis()))?
}

async fn exchange(url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Result<Response, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err("https endpoints need TLS, which is not built in yet".into()),
        _ => return Err(format!("bad URL {url}: only http:// is supported")),
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("bad URL {url}: no host"))?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect to {host}:{port}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake with {host}:{port}: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let authority = uri
        .authority()
        .map(|a| a.as_str())
        .unwrap_or(host)
        .to_owned();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let mut request = Request::post(path).header(hyper::header::HOST, authority);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .header(hyper::header::CONTENT_LENGTH, body.len())
        .body(Body::from(body))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request to {url}: {e}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = axum::body::to_bytes(Body::new(response.into_body()), RESPONSE_BYTES_MAX)
        .await
        .map_err(|e| format!("response from {url}: {e}"))?;
    Ok(Response {
        status,
        headers,
        body: body.to_vec(),
    })
}
