//! The wire: HTTP requests in, Kinesis JSON 1.1 responses out. Routing on `X-Amz-Target`,
//! body limits, the protocol-level errors Kinesis answers before any operation runs, and the
//! response envelope. Only this module knows Kinesis error names and wire encodings.

pub mod actions;
pub mod cloudwatch;
pub mod error;
pub mod eventstream;
pub mod inflight;
pub mod metrics;
pub mod validate;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::limits::REQUEST_BODY_BYTES_MAX;
use crate::service::Kinesis;
use error::{ApiError, ErrorKind};
use inflight::Share;

const JSON_1_1: &str = "application/x-amz-json-1.1";
const CBOR_1_1: &str = "application/x-amz-cbor-1.1";
const TARGET_PREFIX: &str = "Kinesis_20131202.";

pub fn router(svc: Arc<Kinesis>) -> Router {
    Router::new().fallback(dispatch).with_state(svc)
}

async fn dispatch(State(svc): State<Arc<Kinesis>>, request: Request) -> Response {
    if request.method() == Method::GET && request.uri().path() == "/metrics" {
        let text = metrics::render(&svc);
        return ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response();
    }
    let started = std::time::Instant::now();
    let request_id = svc.request_ids.next();
    let (parts, body) = request.into_parts();
    if let Some(route) = other_route(&parts) {
        let response = other_service(&svc, route, &parts, body).await;
        svc.request_metrics
            .record(None, response.status().as_u16(), started.elapsed());
        return with_request_id(response, &request_id);
    }
    let mut operation_seen = None;
    let mut response = match checked_body(&svc, &parts, body).await {
        Ok((operation, body, _body_share)) if operation == "SubscribeToShard" => {
            operation_seen = Some(operation);
            actions::subscribe::subscribe_to_shard(&svc, body)
                .await
                .unwrap_or_else(|e| error_response(&e))
        }
        Ok((operation, body, _body_share)) => {
            let result = actions::call(&svc, &operation, body).await;
            operation_seen = Some(operation);
            match result {
                Ok(answer) => ok_response(answer),
                Err(e) => error_response(&e),
            }
        }
        Err(early) => early,
    };
    svc.request_metrics.record(
        operation_seen.as_deref(),
        response.status().as_u16(),
        started.elapsed(),
    );
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

fn with_request_id(mut response: Response, request_id: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert("x-amzn-requestid", v);
    }
    response
}

/// Requests for the other services on this port.
enum Route {
    /// CloudWatch over JSON 1.0 or rpc-v2-cbor, with the operation named.
    CloudWatch(cloudwatch::Protocol, String),
    /// `POST /rivulet/alarms/recommended?stream=NAME[&action=ARN]…`
    RecommendedAlarms,
}

fn other_route(parts: &axum::http::request::Parts) -> Option<Route> {
    let path = parts.uri.path();
    if let Some(op) = path.strip_prefix(cloudwatch::CBOR_PATH_PREFIX) {
        return Some(Route::CloudWatch(cloudwatch::Protocol::Cbor, op.to_owned()));
    }
    if path == "/rivulet/alarms/recommended" {
        return Some(Route::RecommendedAlarms);
    }
    let target = parts.headers.get("x-amz-target")?.to_str().ok()?;
    let op = target.strip_prefix(cloudwatch::TARGET_PREFIX)?;
    Some(Route::CloudWatch(cloudwatch::Protocol::Json, op.to_owned()))
}

async fn other_service(
    svc: &Arc<Kinesis>,
    route: Route,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Response {
    if parts.method != Method::POST {
        return access_denied();
    }
    let (body, _share) = match read_body(svc, &parts.headers, body).await {
        Ok(read) => read,
        Err(e) => return e,
    };
    match route {
        Route::CloudWatch(protocol, op) => {
            if let Err(e) = check_auth(&parts.headers, parts.uri.query()) {
                let e = cloudwatch::CwError {
                    shape: e.kind.type_name(),
                    code: e.kind.type_name(),
                    status: e.kind.status().as_u16(),
                    message: e.message.unwrap_or_default(),
                };
                return cloudwatch::error_response(protocol, &e);
            }
            if !cloudwatch::OPERATIONS.contains(&op.as_str()) {
                return cloudwatch::unknown_operation(protocol, &op);
            }
            cloudwatch::handle(svc, protocol, &op, &parts.headers, body).await
        }
        Route::RecommendedAlarms => recommended_alarms(svc, parts.uri.query().unwrap_or("")),
    }
}

/// Installs the recommended alarms for a stream: `stream=NAME` and any number of
/// `action=ARN` (percent-encoded), each used for both ALARM and OK.
fn recommended_alarms(svc: &Arc<Kinesis>, query: &str) -> Response {
    let mut stream = None;
    let mut actions = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v);
        match k {
            "stream" => stream = Some(v),
            "action" => actions.push(v),
            _ => {}
        }
    }
    let bad = |m: String| {
        (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({"__type": "InvalidParameterValue", "message": m}).to_string(),
        )
            .into_response()
    };
    let Some(stream) = stream.filter(|s| !s.is_empty()) else {
        return bad("the query must name the stream: ?stream=NAME".into());
    };
    match cloudwatch::install_recommended(svc, &stream, &actions) {
        Ok(names) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "AlarmNames": names }).to_string(),
        )
            .into_response(),
        Err(e) => bad(e.message),
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => match s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            {
                Some(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                None => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Everything Kinesis checks before it parses the operation's input: method, content type,
/// authentication headers, target and body size. Returns the operation name and body, or
/// the response to send instead.
async fn checked_body(
    svc: &Kinesis,
    parts: &axum::http::request::Parts,
    body: Body,
) -> Result<(String, Bytes, Share), Response> {
    let (method, headers, query) = (&parts.method, &parts.headers, parts.uri.query());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if method != Method::POST {
        return Err(access_denied());
    }
    match content_type.as_str() {
        JSON_1_1 => {}
        CBOR_1_1 => {
            return Err(error_response(&ApiError::serialization(
                "Rivulet does not speak CBOR yet; switch the client to JSON \
                 (Java SDK v2: -Daws.cborEnabled=false, v1: AWS_CBOR_DISABLE=1)",
            )));
        }
        "application/json" => {
            let body = r#"{"Output":{"__type":"com.amazon.coral.service#UnknownOperationException"},"Version":"1.0"}"#;
            return Err((
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response());
        }
        _ => return Err(access_denied()),
    }
    check_auth(headers, query).map_err(|e| error_response(&e))?;
    let operation = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .and_then(|t| t.strip_prefix(TARGET_PREFIX))
        .filter(|op| actions::is_known(op))
        .ok_or_else(|| error_response(&ApiError::bare(ErrorKind::UnknownOperation)))?
        .to_owned();
    let (body, share) = read_body(svc, headers, body).await?;
    Ok((operation, body, share))
}

/// Reads a request body within the size limit, the body deadline and the in-flight budget;
/// the share it returns is to be held until the request is done with.
async fn read_body(
    svc: &Kinesis,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Bytes, Share), Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > REQUEST_BODY_BYTES_MAX) {
        return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response());
    }
    // A body of unknown length may take up to the limit.
    let mut share = svc
        .inflight
        .reserve(declared.unwrap_or(REQUEST_BODY_BYTES_MAX))
        .await
        .map_err(|e| error_response(&e))?;
    let deadline = Duration::from_millis(svc.config.body_read_timeout_ms);
    let body =
        match tokio::time::timeout(deadline, axum::body::to_bytes(body, REQUEST_BODY_BYTES_MAX))
            .await
        {
            Ok(Ok(body)) => body,
            Ok(Err(_)) => return Err(StatusCode::PAYLOAD_TOO_LARGE.into_response()),
            Err(_) => {
                let e = ApiError::new(
                    ErrorKind::RequestTimeout,
                    format!(
                        "The request body did not arrive within {} seconds.",
                        deadline.as_secs()
                    ),
                );
                return Err(error_response(&e));
            }
        };
    share.shrink_to(body.len());
    Ok((body, share))
}

/// Kinesis requires a SigV4 `Authorization` header or presigned query parameters. Any
/// credentials are accepted (as LocalStack and kinesalite do); the shape is checked so a
/// client that forgot to sign learns it here rather than from AWS.
fn check_auth(headers: &HeaderMap, query: Option<&str>) -> Result<(), ApiError> {
    let presigned = query.is_some_and(|q| q.split('&').any(|p| p.starts_with("X-Amz-Algorithm=")));
    let header = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match (header, presigned) {
        (Some(_), true) => Err(ApiError::new(
            ErrorKind::InvalidSignature,
            "Found both 'X-Amz-Algorithm' as a query-string param and 'Authorization' as HTTP header.",
        )),
        (None, false) => Err(ApiError::new(
            ErrorKind::MissingAuthenticationToken,
            "Missing Authentication Token",
        )),
        (None, true) => Ok(()),
        (Some(h), false) => {
            for part in ["Credential", "Signature", "SignedHeaders"] {
                if !h.contains(&format!("{part}=")) {
                    return Err(ApiError::new(
                        ErrorKind::IncompleteSignature,
                        format!(
                            "Authorization header requires '{part}' parameter. Authorization={h}"
                        ),
                    ));
                }
            }
            Ok(())
        }
    }
}

fn access_denied() -> Response {
    let body = "<AccessDeniedException>\n  <Message>Unable to determine service/operation name to be authorized</Message>\n</AccessDeniedException>\n";
    (
        StatusCode::FORBIDDEN,
        [(header::CONTENT_TYPE, "application/xml")],
        body,
    )
        .into_response()
}

fn ok_response(actions::Answer { body, share }: actions::Answer) -> Response {
    match share {
        Some(mut share) => {
            share.shrink_to(body.len());
            let body = inflight::held_body(body, share);
            (StatusCode::OK, [(header::CONTENT_TYPE, JSON_1_1)], body).into_response()
        }
        None => (StatusCode::OK, [(header::CONTENT_TYPE, JSON_1_1)], body).into_response(),
    }
}

pub fn error_response(e: &ApiError) -> Response {
    let mut response = (
        e.kind.status(),
        [(header::CONTENT_TYPE, JSON_1_1)],
        e.body(),
    )
        .into_response();
    response.headers_mut().insert(
        "x-amzn-errortype",
        HeaderValue::from_static(e.kind.type_name()),
    );
    response
}
