//! PutRecord and PutRecords: the write path from a decoded request to the shard writers.
//!
//! Hops: decode and validate -> resolve the stream and its open shards (registry read lock,
//! held only to copy handles) -> hash each partition key (or take the explicit hash key) to
//! a shard -> one write per shard to the shard writers, which batch and fsync -> sequence
//! numbers from the positions the log assigned.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ApiResult, check_stream_ref, parse, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations, blob_shown};
use crate::control::hash::{hash_key, parse_hash_key};
use crate::control::{ShardCounters, ShardRuntime, StreamStatus};
use crate::data::sequence::{SequenceNumber, stream_epoch};
use crate::data::writer::PendingRecord;
use crate::limits;
use crate::service::Kinesis;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
    sequence_number_for_ordering: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsEntry {
    data: Option<String>,
    partition_key: Option<String>,
    explicit_hash_key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    records: Option<Vec<PutRecordsEntry>>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordOutput {
    shard_id: String,
    sequence_number: String,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsResultEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    sequence_number: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shard_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordsOutput {
    failed_record_count: usize,
    records: Vec<PutRecordsResultEntry>,
}

/// Decodes a base64 `Data` member as Kinesis reports a bad one.
fn decode_data(data: &str) -> ApiResult<Vec<u8>> {
    base64_simd::STANDARD.decode_to_vec(data.as_bytes()).map_err(|_| {
        let shown: String = data.chars().take(64).collect();
        ApiError::serialization(format!(
            "'{shown}' can not be converted to a Blob: Base64 encoded length is expected a multiple \
             of 4 bytes and to use only the standard base64 alphabet"
        ))
    })
}

/// The stream's write target: what is needed to route and write, copied out of the
/// registry so no lock is held across the write.
struct Target {
    name: String,
    created_ms: i64,
    max_record_bytes: usize,
    /// Open shards: index, hash range and runtime.
    shards: Vec<(u32, u128, u128, ShardRuntime)>,
}

impl Target {
    fn route(&self, hash: u128) -> ApiResult<&(u32, u128, u128, ShardRuntime)> {
        self.shards
            .iter()
            .find(|(_, s, e, _)| *s <= hash && hash <= *e)
            .ok_or_else(ApiError::internal)
    }

    /// Writer thread for a shard: stable for the shard, spread across shards.
    fn lane(&self, shard_index: u32) -> u64 {
        (self.created_ms as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(shard_index)
    }

    fn sequence_number(&self, shard_index: u32, position: u64) -> String {
        SequenceNumber {
            stream_epoch: stream_epoch(self.created_ms),
            shard_index,
            position,
        }
        .to_string()
    }
}

fn target(svc: &Kinesis, name: &str) -> ApiResult<Target> {
    let registry = svc.read();
    let stream = registry
        .get(name)
        .ok_or_else(|| ApiError::stream_not_found(name, svc.account()))?;
    match stream.status_at(svc.now_ms()) {
        Some(StreamStatus::Active | StreamStatus::Updating | StreamStatus::Deleting) => {}
        Some(StreamStatus::Creating) | None => {
            return Err(ApiError::stream_not_found(name, svc.account()));
        }
    }
    let shards = stream
        .meta
        .shards
        .iter()
        .filter(|s| s.is_open())
        .filter_map(|s| {
            stream
                .shards
                .get(&s.index)
                .map(|r| (s.index, s.start_hash, s.end_hash, r.clone()))
        })
        .collect();
    Ok(Target {
        name: name.to_owned(),
        created_ms: stream.meta.created_ms,
        max_record_bytes: (stream.meta.max_record_size_kib as usize) << 10,
        shards,
    })
}

/// The hash key a record routes by.
fn record_hash(partition_key: &str, explicit: Option<&str>) -> ApiResult<u128> {
    match explicit {
        None => Ok(hash_key(partition_key)),
        Some(e) => parse_hash_key(e).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "Invalid ExplicitHashKey. ExplicitHashKey must be in the range: [0, 2^128-1]. Specified value was {e}"
            ))
        }),
    }
}

fn check_record_size(path: &str, data: &[u8], key: &str, max: usize) -> ApiResult<()> {
    if data.len() + key.len() <= max {
        return Ok(());
    }
    let mut v = Violations::default();
    v.push(
        &blob_shown(data.len()),
        path,
        &format!(
            "have length less than or equal to {}",
            max - key.len().min(max)
        ),
    );
    v.finish()
}

pub async fn put_record(svc: &Arc<Kinesis>, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: PutRecordInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let data = v.required("data", input.data.as_deref());
    let key = v.required("partitionKey", input.partition_key.as_deref());
    v.string("partitionKey", key, validate::PARTITION_KEY);
    v.string(
        "explicitHashKey",
        input.explicit_hash_key.as_deref(),
        validate::HASH_KEY,
    );
    v.string(
        "sequenceNumberForOrdering",
        input.sequence_number_for_ordering.as_deref(),
        validate::SEQUENCE_NUMBER,
    );
    v.finish()?;
    let (data, key) = (decode_data(data.expect("checked"))?, key.expect("checked"));
    if data.len() > limits::DATA_BYTES_MAX {
        check_record_size("data", &data, "", limits::DATA_BYTES_MAX)?;
    }
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let target = target(svc, &name)?;
    check_record_size("data", &data, key, target.max_record_bytes)?;
    // Positions only grow within a shard, so every acknowledged record already has a larger
    // sequence number than any earlier one: SequenceNumberForOrdering holds by construction.
    let hash = record_hash(key, input.explicit_hash_key.as_deref())?;
    let (index, _, _, shard) = target.route(hash)?;
    let bytes = (data.len() + key.len()) as u64;
    let record = PendingRecord {
        partition_key: key.to_owned(),
        data,
        flags: 0,
    };
    // Per-shard write throughput admission belongs here, before the write is queued.
    let appended = svc
        .writers
        .write(target.lane(*index), shard.log.clone(), vec![record])
        .await?;
    ShardCounters::add(&shard.counters.incoming_records, 1);
    ShardCounters::add(&shard.counters.incoming_bytes, bytes);
    let out = PutRecordOutput {
        shard_id: crate::control::shard_id(*index),
        sequence_number: target.sequence_number(*index, appended.first_position),
    };
    Ok(serde_json::to_vec(&out).expect("serializes"))
}

pub async fn put_records(svc: &Arc<Kinesis>, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: PutRecordsInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let entries = v.required("records", input.records.as_deref());
    if let Some(entries) = entries {
        v.count(
            "records",
            "'[…]'",
            entries.len(),
            1,
            limits::PUT_RECORDS_COUNT_MAX,
        );
        for (i, e) in entries.iter().enumerate() {
            let base = format!("records.{}.member", i + 1);
            v.required(&format!("{base}.data"), e.data.as_deref());
            let key = v.required(&format!("{base}.partitionKey"), e.partition_key.as_deref());
            v.string(
                &format!("{base}.partitionKey"),
                key,
                validate::PARTITION_KEY,
            );
            v.string(
                &format!("{base}.explicitHashKey"),
                e.explicit_hash_key.as_deref(),
                validate::HASH_KEY,
            );
        }
    }
    v.finish()?;
    let entries = entries.expect("checked");
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let target = target(svc, &name)?;

    // Decode, size-check and route every record before writing any.
    let mut total = 0usize;
    let mut routed: Vec<(usize, u32, PendingRecord)> = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let data = decode_data(e.data.as_deref().expect("checked"))?;
        let key = e.partition_key.as_deref().expect("checked");
        check_record_size(
            &format!("records.{}.member.data", i + 1),
            &data,
            key,
            target.max_record_bytes,
        )?;
        total += data.len() + key.len();
        let hash = record_hash(key, e.explicit_hash_key.as_deref())?;
        let (index, ..) = target.route(hash)?;
        routed.push((
            i,
            *index,
            PendingRecord {
                partition_key: key.to_owned(),
                data,
                flags: 0,
            },
        ));
    }
    if total > limits::PUT_RECORDS_BYTES_MAX {
        return Err(ApiError::new(
            ErrorKind::InvalidArgument,
            format!(
                "Records size ({total} bytes) exceeds the PutRecords limit of {} bytes, partition keys included.",
                limits::PUT_RECORDS_BYTES_MAX
            ),
        ));
    }

    // One write per shard, in request order within each shard, all shards concurrently.
    // Per-shard write throughput admission belongs here: a throttled shard's records get a
    // ProvisionedThroughputExceededException ErrorCode while the others are written.
    let mut groups: Vec<(u32, Vec<usize>, Vec<PendingRecord>)> = Vec::new();
    for (i, index, record) in routed {
        match groups.iter_mut().find(|(g, ..)| *g == index) {
            Some((_, slots, records)) => {
                slots.push(i);
                records.push(record);
            }
            None => groups.push((index, vec![i], vec![record])),
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for (index, slots, records) in groups {
        let shard = target
            .shards
            .iter()
            .find(|(i, ..)| *i == index)
            .expect("routed to an open shard")
            .3
            .clone();
        let svc = svc.clone();
        let lane = target.lane(index);
        let bytes: u64 = records
            .iter()
            .map(|r| (r.data.len() + r.partition_key.len()) as u64)
            .sum();
        tasks.spawn(async move {
            let result = svc.writers.write(lane, shard.log.clone(), records).await;
            if result.is_ok() {
                ShardCounters::add(&shard.counters.incoming_records, slots.len() as u64);
                ShardCounters::add(&shard.counters.incoming_bytes, bytes);
            }
            (index, slots, result)
        });
    }
    let mut results: Vec<Option<PutRecordsResultEntry>> =
        (0..entries.len()).map(|_| None).collect();
    let mut failed = 0;
    while let Some(joined) = tasks.join_next().await {
        let (index, slots, result) = joined?;
        for (k, slot) in slots.into_iter().enumerate() {
            results[slot] = Some(match &result {
                Ok(appended) => PutRecordsResultEntry {
                    sequence_number: Some(
                        target.sequence_number(index, appended.first_position + k as u64),
                    ),
                    shard_id: Some(crate::control::shard_id(index)),
                    error_code: None,
                    error_message: None,
                },
                Err(e) => {
                    tracing::error!(error = %e, stream = %target.name, "PutRecords write failed");
                    failed += 1;
                    PutRecordsResultEntry {
                        sequence_number: None,
                        shard_id: None,
                        error_code: Some("InternalFailure"),
                        error_message: Some("Internal service failure.".into()),
                    }
                }
            });
        }
    }
    let out = PutRecordsOutput {
        failed_record_count: failed,
        records: results
            .into_iter()
            .map(|r| r.expect("every record has a result"))
            .collect(),
    };
    Ok(serde_json::to_vec(&out).expect("serializes"))
}
