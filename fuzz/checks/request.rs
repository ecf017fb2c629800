//! The check behind the `request` fuzz target, shared with its corpus replay in CI
//! (`crates/rivulet/tests/it/fuzz_corpus.rs`). The first byte of an input picks one of the
//! Kinesis operations (JSON 1.1) or CloudWatch operations (JSON 1.0 or rpc-v2-cbor); the rest
//! is the body, sent through the real dispatcher of a real service. Never a panic; never a
//! 5xx for a bad request; every Kinesis error names its type.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use rivulet::api::actions::MODEL_OPERATIONS;
use rivulet::api::cloudwatch::OPERATIONS as CLOUDWATCH_OPERATIONS;
use rivulet::service::Kinesis;
use tower::ServiceExt;

const JSON_1_1: &str = "application/x-amz-json-1.1";
const JSON_1_0: &str = "application/x-amz-json-1.0";
const AUTHORIZATION: &str = "AWS4-HMAC-SHA256 Credential=test/20261122/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0";

/// Deletes every stream and creates `s` with two shards, the stream the seeds name.
pub async fn prepare(svc: &Arc<Kinesis>) {
    let (_, listed) = kinesis(svc, "ListStreams", b"{}".to_vec()).await;
    let names = listed["StreamNames"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for name in names.iter().filter_map(|v| v.as_str()) {
        let body = serde_json::json!({"StreamName": name, "EnforceConsumerDeletion": true});
        kinesis(svc, "DeleteStream", body.to_string().into_bytes()).await;
    }
    svc.tick();
    let body = br#"{"StreamName":"s","ShardCount":2}"#.to_vec();
    kinesis(svc, "CreateStream", body).await;
    svc.tick();
}

/// Sends one input as a request and checks the answer.
pub async fn check(svc: &Arc<Kinesis>, data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let kinesis_ops = MODEL_OPERATIONS.len();
    let pick = selector as usize % (kinesis_ops + 2 * CLOUDWATCH_OPERATIONS.len());
    let (status, json) = if pick < kinesis_ops {
        let op = MODEL_OPERATIONS[pick];
        let (status, json) = kinesis(svc, op, body.to_vec()).await;
        if !status.is_success() {
            assert!(
                json.get("__type").is_some_and(|v| v.is_string()),
                "{op}: a {status} without an error type: {json}"
            );
        }
        (status, json)
    } else {
        let i = (pick - kinesis_ops) % CLOUDWATCH_OPERATIONS.len();
        let op = CLOUDWATCH_OPERATIONS[i];
        let request = if pick - kinesis_ops < CLOUDWATCH_OPERATIONS.len() {
            Request::post("/").header("content-type", JSON_1_0).header(
                "x-amz-target",
                format!("GraniteServiceVersion20100801.{op}"),
            )
        } else {
            Request::post(format!(
                "/service/GraniteServiceVersion20100801/operation/{op}"
            ))
            .header("content-type", "application/cbor")
            .header("smithy-protocol", "rpc-v2-cbor")
        };
        let request = request
            .header("authorization", AUTHORIZATION)
            .body(Body::from(body.to_vec()))
            .unwrap();
        send(svc, request, false).await
    };
    assert!(
        !status.is_server_error(),
        "a request answered {status}: {json}"
    );
}

async fn kinesis(svc: &Arc<Kinesis>, op: &str, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
    let request = Request::post("/")
        .header("content-type", JSON_1_1)
        .header("x-amz-target", format!("Kinesis_20131202.{op}"))
        .header("authorization", AUTHORIZATION)
        .body(Body::from(body))
        .unwrap();
    send(svc, request, op == "SubscribeToShard").await
}

/// Sends a request; returns the status and the body as JSON (Null when it is not JSON).
async fn send(
    svc: &Arc<Kinesis>,
    request: Request<Body>,
    streaming: bool,
) -> (StatusCode, serde_json::Value) {
    let response = rivulet::api::router(svc.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    if streaming && status.is_success() {
        // An event stream runs for minutes; dropping it ends the subscription.
        return (status, serde_json::Value::Null);
    }
    let bytes = to_bytes(response.into_body(), 16 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}
