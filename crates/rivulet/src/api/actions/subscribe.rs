//! SubscribeToShard: enhanced fan-out as an event stream over the request's own connection
//! (chunked on HTTP/1.1, DATA frames on HTTP/2).
//!
//! The response starts with an `initial-response` event, then pushes `SubscribeToShardEvent`s:
//! as soon as records arrive (the shard is polled every 50 ms), and at least every 5 s when
//! idle. Each event carries a ContinuationSequenceNumber to resume from; at the end of a
//! closed shard the last event has none and lists ChildShards, and the stream ends. A
//! subscription lasts 5 minutes. A second subscription for the same consumer and shard
//! within 5 s is refused with ResourceInUseException; a later one takes over and ends the
//! earlier stream.

use std::collections::HashMap;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::consumers::{Resource, consumer_not_found, resource};
use super::reads::{RecordOut, Start, children_json, records_out, start_position, visible_shard};
use super::streams::find;
use super::{ApiResult, de_timestamp, parse};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::eventstream;
use crate::api::validate::{self, Violations};
use crate::control::{ConsumerStatus, ShardMeta, ShardRuntime};
use crate::data::sequence::{SequenceNumber, stream_epoch};
use crate::service::Kinesis;

const SUBSCRIPTION_LIFETIME: Duration = Duration::from_secs(300);
const TAKEOVER_AFTER_MS: i64 = 5_000;
const IDLE_EVENT_EVERY: Duration = Duration::from_secs(5);
/// Appends wake a subscription at once (`ShardRuntime::appended`); this poll is the
/// fallback for changes that do not, such as a split closing the shard.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// Bytes of record data in one event: one second of a consumer's dedicated 2 MiB/s.
const EVENT_BYTES_MAX: usize = 2 << 20;
const EVENT_RECORDS_MAX: usize = 10_000;
const ITERATOR_TYPES: [&str; 5] = [
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
    "LATEST",
    "AT_TIMESTAMP",
];

/// Live subscriptions by (consumer ARN, shard index), for the 5-second takeover rule.
#[derive(Default)]
pub struct Subscriptions {
    live: Mutex<HashMap<(String, u32), Live>>,
    next_id: AtomicU64,
}

struct Live {
    id: u64,
    started_ms: i64,
    cancel: watch::Sender<bool>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartingPosition {
    #[serde(rename = "Type")]
    kind: Option<String>,
    sequence_number: Option<String>,
    #[serde(deserialize_with = "de_timestamp")]
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SubscribeInput {
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
    shard_id: Option<String>,
    starting_position: Option<StartingPosition>,
}

/// What a subscription reads, resolved before the response starts.
struct Plan {
    stream: String,
    created_ms: i64,
    shard: ShardMeta,
    runtime: ShardRuntime,
    position: u64,
    key: (String, u32),
}

pub async fn subscribe_to_shard(svc: &Arc<Kinesis>, body: Bytes) -> ApiResult<Response> {
    super::check_stream_id(&body)?;
    let plan = {
        let svc = svc.clone();
        tokio::task::spawn_blocking(move || plan(&svc, &body)).await??
    };
    let (cancel, cancelled) = watch::channel(false);
    let id = svc.subscriptions.next_id.fetch_add(1, Ordering::Relaxed);
    {
        let now = svc.now_ms();
        let mut live = svc.subscriptions.live.lock().expect("subscriptions lock");
        if let Some(existing) = live.get(&plan.key) {
            if now - existing.started_ms < TAKEOVER_AFTER_MS {
                svc.monitor
                    .subscribe(&plan.stream, consumer_name(&plan.key.0), false, true);
                return Err(ApiError::new(
                    ErrorKind::ResourceInUse,
                    format!(
                        "Another active subscription exists for this consumer: {} on shard {}",
                        plan.key.0,
                        plan.shard.id()
                    ),
                ));
            }
            let _ = existing.cancel.send(true);
        }
        live.insert(
            plan.key.clone(),
            Live {
                id,
                started_ms: now,
                cancel,
            },
        );
    }
    svc.monitor
        .subscribe(&plan.stream, consumer_name(&plan.key.0), true, false);
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(push(svc.clone(), plan, id, tx, cancelled));
    let body = Body::from_stream(Frames(rx));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/vnd.amazon.eventstream")],
        body,
    )
        .into_response())
}

/// The consumer name in a consumer ARN (`…:stream/S/consumer/NAME:CREATED`).
fn consumer_name(arn: &str) -> &str {
    let tail = arn.rsplit_once("/consumer/").map_or(arn, |(_, t)| t);
    tail.rsplit_once(':').map_or(tail, |(n, _)| n)
}

fn plan(svc: &Kinesis, body: &[u8]) -> ApiResult<Plan> {
    let input: SubscribeInput = parse(body)?;
    let mut v = Violations::default();
    let arn = v.required("consumerARN", input.consumer_arn.as_deref());
    v.string("consumerARN", arn, validate::RESOURCE_ARN);
    let shard_id = v.required("shardId", input.shard_id.as_deref());
    v.string("shardId", shard_id, validate::SHARD_ID);
    let start = v.required("startingPosition", input.starting_position.as_ref());
    let kind = start.and_then(|s| v.required("startingPosition.type", s.kind.as_deref()));
    v.one_of("startingPosition.type", kind, &ITERATOR_TYPES);
    v.string(
        "startingPosition.sequenceNumber",
        start.and_then(|s| s.sequence_number.as_deref()),
        validate::SEQUENCE_NUMBER,
    );
    v.finish()?;
    let (arn, shard_id, start) = (
        arn.expect("checked"),
        shard_id.expect("checked"),
        start.expect("checked"),
    );
    let Resource::Consumer {
        stream,
        name,
        created_s,
    } = resource(svc, arn)?
    else {
        return Err(ApiError::invalid_argument(format!(
            "Invalid ConsumerARN {arn}."
        )));
    };
    let now = svc.now_ms();
    let registry = svc.read();
    let s = find(svc, &registry, &stream)?;
    let consumer = s
        .consumer_index(&name, created_s, now)
        .map(|i| &s.meta.consumers[i])
        .ok_or_else(|| consumer_not_found(svc, &stream, &name))?;
    if consumer.status_at(now) != Some(ConsumerStatus::Active) {
        return Err(ApiError::new(
            ErrorKind::ResourceInUse,
            format!(
                "Consumer {arn} is not ACTIVE, instead in state {}.",
                consumer.status_at(now).unwrap_or(consumer.status).as_str()
            ),
        ));
    }
    let shard = visible_shard(svc, s, shard_id, now)?.clone();
    let runtime = s
        .shards
        .get(&shard.index)
        .ok_or_else(ApiError::internal)?
        .clone();
    let start = Start {
        kind: kind.expect("checked"),
        sequence_number: start.sequence_number.as_deref(),
        timestamp: start.timestamp,
    };
    let position = start_position(svc, s, &shard, &runtime.log, &start, now)?;
    Ok(Plan {
        stream: stream.clone(),
        created_ms: s.meta.created_ms,
        key: (arn.to_owned(), shard.index),
        shard,
        runtime,
        position,
    })
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ShardEvent<'a> {
    records: Vec<RecordOut<'a>>,
    continuation_sequence_number: Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_shards: Option<Vec<serde_json::Value>>,
}

/// Pushes events until the lifetime ends, the shard ends, the client goes away or another
/// subscription takes over.
async fn push(
    svc: Arc<Kinesis>,
    plan: Plan,
    id: u64,
    tx: mpsc::Sender<Bytes>,
    mut cancelled: watch::Receiver<bool>,
) {
    let deadline = tokio::time::Instant::now() + SUBSCRIPTION_LIFETIME;
    let mut last_event = tokio::time::Instant::now();
    let mut position = plan.position;
    let epoch = stream_epoch(plan.created_ms);
    let sequence = |p: u64| {
        SequenceNumber {
            stream_epoch: epoch,
            shard_index: plan.shard.index,
            position: p,
        }
        .to_string()
    };
    let mut delivered: Option<u64> = position.checked_sub(1);
    if tx
        .send(eventstream::event("initial-response", b"{}"))
        .await
        .is_err()
    {
        return finish(&svc, &plan.key, id);
    }
    let appended = plan.runtime.appended.clone();
    while tokio::time::Instant::now() < deadline && !*cancelled.borrow() {
        // Registered before the read, so an append between the read and the wait below
        // still wakes it.
        let woken = appended.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let log = plan.runtime.log.clone();
        let read = tokio::task::spawn_blocking(move || {
            log.read(position, EVENT_RECORDS_MAX, EVENT_BYTES_MAX)
        })
        .await;
        let batch = match read {
            Ok(Ok(batch)) => batch,
            _ => {
                let _ = tx
                    .send(eventstream::exception(
                        "InternalFailureException",
                        "Internal service failure.",
                    ))
                    .await;
                break;
            }
        };
        let now = svc.now_ms();
        // A split or merge may close the shard while we read it.
        let shard_state = {
            let registry = svc.read();
            registry
                .get(&plan.stream)
                .filter(|s| s.meta.created_ms == plan.created_ms)
                .and_then(|s| {
                    s.shard(plan.shard.index)
                        .map(|m| (m.closed.map(|c| c.end_position), children_json(s, m)))
                })
        };
        let Some((closed_end, children)) = shard_state else {
            let message = format!(
                "Stream {} under account {} not found.",
                plan.stream,
                svc.account()
            );
            let _ = tx
                .send(eventstream::exception(
                    "ResourceNotFoundException",
                    &message,
                ))
                .await;
            break;
        };
        position = batch.next_position;
        if let Some(last) = batch.records.last() {
            delivered = Some(last.position);
        }
        let ended = closed_end.is_some_and(|end| position >= end);
        let has_records = !batch.records.is_empty();
        if has_records || ended || last_event.elapsed() >= IDLE_EVENT_EVERY {
            let behind = match batch.records.last() {
                Some(last) if position < plan.runtime.log.end_position() => {
                    (now - last.timestamp_ms).max(0)
                }
                _ => 0,
            };
            let records = match records_out(&svc, epoch, &plan.shard, &batch.records) {
                Ok(r) => r,
                Err(_) => {
                    let _ = tx
                        .send(eventstream::exception(
                            "InternalFailureException",
                            "Internal service failure.",
                        ))
                        .await;
                    break;
                }
            };
            let event = ShardEvent {
                records,
                continuation_sequence_number: (!ended).then(|| sequence(delivered.unwrap_or(0))),
                millis_behind_latest: behind,
                child_shards: ended.then_some(children),
            };
            let payload = serde_json::to_vec(&event).expect("serializes");
            let bytes: usize = batch
                .records
                .iter()
                .map(|r| r.data.len() + r.key.len())
                .sum();
            svc.monitor.subscribe_event(
                &plan.stream,
                consumer_name(&plan.key.0),
                batch.records.len() as u64,
                bytes as u64,
                behind,
            );
            if tx
                .send(eventstream::event("SubscribeToShardEvent", &payload))
                .await
                .is_err()
            {
                break;
            }
            last_event = tokio::time::Instant::now();
        }
        if ended {
            break;
        }
        if !has_records {
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = cancelled.changed() => {}
            }
        }
    }
    finish(&svc, &plan.key, id);
}

/// Forgets a subscription that ended, unless another one has taken its place.
fn finish(svc: &Kinesis, key: &(String, u32), id: u64) {
    let mut live = svc.subscriptions.live.lock().expect("subscriptions lock");
    if live.get(key).is_some_and(|l| l.id == id) {
        live.remove(key);
    }
}

/// The response body: frames as the pushing task sends them; ends when it stops.
struct Frames(mpsc::Receiver<Bytes>);

impl futures_core::Stream for Frames {
    type Item = Result<Bytes, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx).map(|frame| frame.map(Ok))
    }
}
