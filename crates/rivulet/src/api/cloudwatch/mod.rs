//! The CloudWatch-compatible API on the Kinesis port. Two wire protocols reach the same
//! operations: JSON 1.0 (`X-Amz-Target: GraniteServiceVersion20100801.<Op>`; botocore, the
//! AWS CLI, the JS SDK) and Smithy rpc-v2-cbor (`POST /service/GraniteServiceVersion20100801/
//! operation/<Op>`; the Rust SDK). Both decode to the JSON shapes of the model, so the
//! operations in `ops` see one input form. Errors carry `x-amzn-query-error` so clients of
//! this query-compatible service report the classic error codes.

mod dashboards;
mod ops;

use std::sync::Arc;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::cbor::{self, Field, TimeUnit};
use crate::service::Kinesis;

pub const TARGET_PREFIX: &str = "GraniteServiceVersion20100801.";
pub const CBOR_PATH_PREFIX: &str = "/service/GraniteServiceVersion20100801/operation/";
const JSON_1_0: &str = "application/x-amz-json-1.0";

pub use ops::alarm_queries;
pub use ops::install_recommended;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Json,
    Cbor,
}

#[derive(Debug)]
pub struct CwError {
    /// The shape name, `__type` on the wire.
    pub shape: &'static str,
    /// The query-protocol code.
    pub code: &'static str,
    pub status: u16,
    pub message: String,
}

impl CwError {
    pub fn invalid(message: impl Into<String>) -> CwError {
        CwError {
            shape: "InvalidParameterValueException",
            code: "InvalidParameterValue",
            status: 400,
            message: message.into(),
        }
    }
    pub fn missing(parameter: &str) -> CwError {
        CwError {
            shape: "MissingRequiredParameterException",
            code: "MissingParameter",
            status: 400,
            message: format!("The parameter {parameter} is required."),
        }
    }
    pub fn combination(message: impl Into<String>) -> CwError {
        CwError {
            shape: "InvalidParameterCombinationException",
            code: "InvalidParameterCombination",
            status: 400,
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> CwError {
        CwError {
            shape: "ResourceNotFound",
            code: "ResourceNotFound",
            status: 404,
            message: message.into(),
        }
    }
    pub fn limit(message: impl Into<String>) -> CwError {
        CwError {
            shape: "LimitExceededFault",
            code: "LimitExceeded",
            status: 400,
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> CwError {
        CwError {
            shape: "InternalServiceFault",
            code: "InternalServiceError",
            status: 500,
            message: message.into(),
        }
    }
    pub fn next_token() -> CwError {
        CwError {
            shape: "InvalidNextToken",
            code: "InvalidNextToken",
            status: 400,
            message: "The service couldn't process the NextToken: it was not issued by this server or has expired.".into(),
        }
    }
}

/// The operations answered, as the model names them.
pub const OPERATIONS: [&str; 16] = [
    "PutMetricData",
    "GetMetricStatistics",
    "GetMetricData",
    "ListMetrics",
    "PutMetricAlarm",
    "DescribeAlarms",
    "DescribeAlarmsForMetric",
    "DeleteAlarms",
    "SetAlarmState",
    "DescribeAlarmHistory",
    "EnableAlarmActions",
    "DisableAlarmActions",
    "PutDashboard",
    "GetDashboard",
    "ListDashboards",
    "DeleteDashboards",
];

/// Which request members are timestamps or blobs, for the CBOR encoding of responses.
fn field_kind(key: &str) -> Field {
    match key {
        "Timestamp"
        | "Timestamps"
        | "AlarmConfigurationUpdatedTimestamp"
        | "StateUpdatedTimestamp"
        | "StateTransitionedTimestamp"
        | "LastModified"
        | "StartTime"
        | "EndTime"
        | "StartDate"
        | "EndDate" => Field::Timestamp,
        _ => Field::Plain,
    }
}

/// Handles one CloudWatch request whose protocol and operation the dispatcher found.
pub async fn handle(
    svc: &Arc<Kinesis>,
    protocol: Protocol,
    operation: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response {
    let result = match decode(protocol, headers, &body) {
        Ok(input) => run(svc, operation, input).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(output) => encode_ok(protocol, &output),
        Err(e) => error_response(protocol, &e),
    }
}

fn decode(protocol: Protocol, headers: &HeaderMap, body: &[u8]) -> Result<Value, CwError> {
    let serialization = |m: String| CwError {
        shape: "SerializationException",
        code: "SerializationException",
        status: 400,
        message: m,
    };
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    // botocore gzips PutMetricData bodies of 10 KiB or more.
    let gunzipped;
    let body = match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        Some(e) if e.eq_ignore_ascii_case("gzip") => {
            gunzipped = gunzip(body).map_err(serialization)?;
            &gunzipped[..]
        }
        Some(e) if !e.eq_ignore_ascii_case("identity") => {
            return Err(serialization(format!("unsupported Content-Encoding {e}")));
        }
        _ => body,
    };
    let value = match protocol {
        Protocol::Json => serde_json::from_slice(body).map_err(|e| serialization(e.to_string()))?,
        Protocol::Cbor => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !content_type.starts_with("application/cbor") {
                return Err(serialization(format!(
                    "rpc-v2-cbor requests must have Content-Type application/cbor, not '{content_type}'"
                )));
            }
            cbor::decode(body, TimeUnit::Seconds).map_err(|e| serialization(e.to_string()))?
        }
    };
    if !value.is_object() {
        return Err(serialization("the request body must be an object".into()));
    }
    Ok(value)
}

/// Decompresses a gzip body, refusing more than the request body limit.
fn gunzip(body: &[u8]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let limit = crate::limits::REQUEST_BODY_BYTES_MAX as u64;
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| format!("the gzip body does not decompress: {e}"))?;
    if out.len() as u64 > limit {
        return Err(format!(
            "the decompressed body is larger than {limit} bytes"
        ));
    }
    Ok(out)
}

async fn run(svc: &Arc<Kinesis>, operation: &str, input: Value) -> Result<Value, CwError> {
    let svc = svc.clone();
    let operation = operation.to_owned();
    // Queries read the metric log from disk, and alarm changes fsync: off the async threads.
    tokio::task::spawn_blocking(move || ops::call(&svc, &operation, input))
        .await
        .map_err(|e| CwError::internal(e.to_string()))?
}

fn encode_ok(protocol: Protocol, output: &Value) -> Response {
    match protocol {
        Protocol::Json => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, JSON_1_0)],
            output.to_string(),
        )
            .into_response(),
        Protocol::Cbor => {
            let body = if output.as_object().is_some_and(|o| o.is_empty()) {
                Vec::new()
            } else {
                cbor::encode(output, TimeUnit::Seconds, &field_kind)
            };
            let mut r = (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/cbor")],
                body,
            )
                .into_response();
            r.headers_mut()
                .insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
            r
        }
    }
}

pub fn error_response(protocol: Protocol, e: &CwError) -> Response {
    let body = serde_json::json!({
        "__type": format!("com.amazonaws.cloudwatch#{}", e.shape),
        "message": e.message,
    });
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST);
    let mut r = match protocol {
        Protocol::Json => {
            (status, [(header::CONTENT_TYPE, JSON_1_0)], body.to_string()).into_response()
        }
        Protocol::Cbor => {
            let bytes = cbor::encode(&body, TimeUnit::Seconds, &|_| Field::Plain);
            let mut r =
                (status, [(header::CONTENT_TYPE, "application/cbor")], bytes).into_response();
            r.headers_mut()
                .insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
            r
        }
    };
    let fault = if e.status >= 500 {
        "Receiver"
    } else {
        "Sender"
    };
    if let Ok(v) = HeaderValue::from_str(&format!("{};{fault}", e.code)) {
        r.headers_mut().insert("x-amzn-query-error", v);
    }
    if let Ok(v) = HeaderValue::from_str(e.shape) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

/// An unknown operation under the CloudWatch target or path.
pub fn unknown_operation(protocol: Protocol, operation: &str) -> Response {
    let e = CwError {
        shape: "UnknownOperationException",
        code: "UnknownOperation",
        status: 400,
        message: format!("Rivulet does not implement the CloudWatch operation {operation}"),
    };
    error_response(protocol, &e)
}
