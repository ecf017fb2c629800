//! PutRecord and PutRecords: the write path from a decoded request to the shard writers.
//!
//! Hops: decode and validate -> resolve the stream and its open shards (registry read lock,
//! held only to copy handles) -> hash each partition key (or take the explicit hash key) to
//! a shard -> one write per shard to the shard writers, which batch and fsync -> sequence
//! numbers from the positions the log assigned.

use crate::monitor::kinesis::PutOutcome;
use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{ApiResult, check_stream_ref, parse, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations, blob_shown};
use crate::control::hash::{hash_key, parse_hash_key};
use crate::control::{OpenShard, ShardCounters, StreamStatus, lane};
use crate::data::sequence::{SequenceNumber, stream_epoch};
use crate::data::writer::{PendingRecord, WriteError};
use crate::limits;
use crate::service::Kinesis;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PutRecordInput {
    /// Reserved by Kinesis; checked here rather than by a second parse of a large body.
    stream_id: Option<String>,
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
    /// Reserved by Kinesis; checked here rather than by a second parse of a large body.
    stream_id: Option<String>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_type: Option<&'static str>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_type: Option<&'static str>,
}

/// Record flag: the data is sealed with the stream's key (`control::keys`).
pub const FLAG_ENCRYPTED: u8 = 1;

/// Seals a record's data when the stream is encrypted.
fn protect(svc: &Kinesis, key_number: Option<u32>, data: Vec<u8>) -> ApiResult<(Vec<u8>, u8)> {
    match key_number {
        None => Ok((data, 0)),
        Some(number) => {
            let sealed = svc.keys.seal(number, &data).map_err(|e| {
                tracing::error!(error = %e, "sealing a record failed");
                ApiError::internal()
            })?;
            Ok((sealed, FLAG_ENCRYPTED))
        }
    }
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
    created_ms: i64,
    max_record_bytes: usize,
    /// The key new records are sealed with, while the stream is encrypted.
    encryption: Option<u32>,
    /// Open shards, sorted by hash range.
    shards: Arc<[OpenShard]>,
    /// Shard-level metrics enabled by EnableEnhancedMonitoring.
    shard_metrics: Vec<String>,
}

impl Target {
    fn route(&self, hash: u128) -> ApiResult<&OpenShard> {
        crate::control::route(&self.shards, hash).ok_or_else(ApiError::internal)
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
    let shards = stream.open_shards();
    Ok(Target {
        created_ms: stream.meta.created_ms,
        max_record_bytes: (stream.meta.max_record_size_kib as usize) << 10,
        encryption: stream.meta.encryption.as_ref().map(|e| e.key_number),
        shards,
        shard_metrics: stream.meta.shard_level_metrics.clone(),
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

/// A record ready to write: its place in the request and the hash key it routes by.
struct Routed {
    slot: usize,
    hash: u128,
    record: PendingRecord,
}

/// Where one record of a request landed: shard index and sequence number.
type Landed = Result<(u32, String), Failure>;

/// Why a record was not written.
#[derive(Debug, Clone, Copy)]
enum Failure {
    /// The shard's write throughput was exceeded.
    Throttled(u32),
    Internal,
    /// The file system is full: nothing was written; retrying later succeeds.
    DiskFull,
}

fn rate_exceeded(svc: &Kinesis, shard_index: u32, stream: &str) -> String {
    format!(
        "Rate exceeded for shard {} in stream {stream} under account {}.",
        crate::control::shard_id(shard_index),
        svc.account()
    )
}

/// One shard's share of a request: shard index, (slot, hash key) of each record, records.
type ShardGroup = (u32, Vec<(usize, u128)>, Vec<PendingRecord>);

/// How many times records that met a shard closed by a split or merge are routed again.
const ROUTE_ATTEMPTS_MAX: usize = 8;

/// Writes records to the shards their hash keys route to: one write per shard, in request
/// order within each shard, all shards concurrently. Records that reach a shard a split or
/// merge closed meanwhile come back unwritten and are routed again with the new shard map,
/// so writes keep flowing during resharding and a key's records never skip ahead of each
/// other across parent and child.
async fn write_routed(
    svc: &Arc<Kinesis>,
    name: &str,
    records: Vec<Routed>,
    slots: usize,
) -> ApiResult<Vec<Landed>> {
    let mut landed: Vec<Option<Landed>> = (0..slots).map(|_| None).collect();
    let mut pending = records;
    for _ in 0..ROUTE_ATTEMPTS_MAX {
        if pending.is_empty() {
            break;
        }
        let target = Arc::new(target(svc, name)?);
        let mut groups: Vec<ShardGroup> = Vec::new();
        let mut group_of: HashMap<u32, usize> = HashMap::new();
        for r in pending.drain(..) {
            let index = target.route(r.hash)?.index;
            let i = *group_of.entry(index).or_insert_with(|| {
                groups.push((index, Vec::new(), Vec::new()));
                groups.len() - 1
            });
            groups[i].1.push((r.slot, r.hash));
            groups[i].2.push(r.record);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (index, mut keys, mut records) in groups {
            let shard = target.route(keys[0].1)?.runtime.clone();
            // Per-shard write throughput: records past the shard's budget are refused with
            // ProvisionedThroughputExceededException while the others are written.
            let sizes = records.iter().map(|r| r.data.len() + r.partition_key.len());
            let admitted = shard.throughput.admit_writes(sizes, svc.now_ms());
            if admitted < records.len() {
                ShardCounters::add(
                    &shard.counters.write_throttled,
                    (records.len() - admitted) as u64,
                );
                svc.monitor.shard(
                    name,
                    &crate::control::shard_id(index),
                    &target.shard_metrics,
                    &[(
                        "WriteProvisionedThroughputExceeded",
                        "Count",
                        (records.len() - admitted) as f64,
                    )],
                );
                for (slot, _) in keys.drain(admitted..) {
                    landed[slot] = Some(Err(Failure::Throttled(index)));
                }
                records.truncate(admitted);
            }
            if records.is_empty() {
                continue;
            }
            let svc = svc.clone();
            let lane = lane(target.created_ms, index);
            let bytes: u64 = records
                .iter()
                .map(|r| (r.data.len() + r.partition_key.len()) as u64)
                .sum();
            let target = target.clone();
            let name = name.to_owned();
            tasks.spawn(async move {
                let result = svc.writers.write(lane, shard.clone(), records).await;
                if result.is_ok() {
                    ShardCounters::add(&shard.counters.incoming_records, keys.len() as u64);
                    ShardCounters::add(&shard.counters.incoming_bytes, bytes);
                    shard.load.record_hashes(keys.iter().map(|(_, hash)| *hash));
                    if !target.shard_metrics.is_empty() {
                        svc.monitor.shard(
                            &name,
                            &crate::control::shard_id(index),
                            &target.shard_metrics,
                            &[
                                ("IncomingBytes", "Bytes", bytes as f64),
                                ("IncomingRecords", "Count", keys.len() as f64),
                                ("WriteProvisionedThroughputExceeded", "Count", 0.0),
                            ],
                        );
                    }
                }
                (index, keys, result)
            });
        }
        while let Some(joined) = tasks.join_next().await {
            let (index, keys, result) = joined?;
            match result {
                Ok(appended) => {
                    for (k, (slot, _)) in keys.into_iter().enumerate() {
                        let seq = target.sequence_number(index, appended.first_position + k as u64);
                        landed[slot] = Some(Ok((index, seq)));
                    }
                }
                Err(WriteError::ShardClosed(records)) => {
                    pending.extend(
                        keys.into_iter()
                            .zip(records)
                            .map(|((slot, hash), record)| Routed { slot, hash, record }),
                    );
                }
                Err(e) => {
                    tracing::error!(error = %e, stream = %name, "write failed");
                    let full = matches!(&e, WriteError::Storage(s) if s.is_storage_full());
                    for (slot, _) in keys {
                        landed[slot] = Some(Err(if full {
                            Failure::DiskFull
                        } else {
                            Failure::Internal
                        }));
                    }
                }
            }
        }
        // Keep request order among records that go round again.
        pending.sort_by_key(|r| r.slot);
    }
    Ok(landed
        .into_iter()
        .map(|l| l.unwrap_or(Err(Failure::Internal)))
        .collect())
}

pub async fn put_record(svc: &Arc<Kinesis>, body: &[u8]) -> ApiResult<Vec<u8>> {
    let started = std::time::Instant::now();
    let input: PutRecordInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    v.string("streamId", input.stream_id.as_deref(), validate::STREAM_ID);
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
    let record_bytes = (data.len() + key.len()) as u64;
    let (data, flags) = protect(svc, target.encryption, data)?;
    // Positions only grow within a shard, so every acknowledged record already has a larger
    // sequence number than any earlier one: SequenceNumberForOrdering holds by construction.
    let hash = record_hash(key, input.explicit_hash_key.as_deref())?;
    let record = PendingRecord {
        partition_key: key.to_owned(),
        data,
        flags,
    };
    let landed = write_routed(
        svc,
        &name,
        vec![Routed {
            slot: 0,
            hash,
            record,
        }],
        1,
    )
    .await?;
    let landed = landed.into_iter().next().expect("one record");
    let outcome = PutOutcome {
        total_records: 1,
        ok_records: landed.is_ok() as u64,
        ok_bytes: if landed.is_ok() { record_bytes } else { 0 },
        throttled_records: matches!(landed, Err(Failure::Throttled(_))) as u64,
        failed_records: matches!(landed, Err(Failure::Internal | Failure::DiskFull)) as u64,
    };
    svc.monitor
        .put_record(&name, outcome, started.elapsed().as_secs_f64() * 1000.0);
    let (index, sequence_number) = landed.map_err(|failure| match failure {
        Failure::Throttled(index) => ApiError::new(
            ErrorKind::ProvisionedThroughputExceeded,
            rate_exceeded(svc, index, &name),
        ),
        Failure::Internal => ApiError::internal(),
        Failure::DiskFull => {
            ApiError::new(ErrorKind::InternalFailure, crate::api::error::DISK_FULL)
        }
    })?;
    let out = PutRecordOutput {
        shard_id: crate::control::shard_id(index),
        sequence_number,
        encryption_type: target.encryption.map(|_| "KMS"),
    };
    Ok(serde_json::to_vec(&out).expect("serializes"))
}

pub async fn put_records(svc: &Arc<Kinesis>, body: &[u8]) -> ApiResult<Vec<u8>> {
    let started = std::time::Instant::now();
    let input: PutRecordsInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    v.string("streamId", input.stream_id.as_deref(), validate::STREAM_ID);
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
            // The common case, a well-formed entry, costs no path strings.
            let key_ok = e
                .partition_key
                .as_deref()
                .is_some_and(|k| (1..=256).contains(&k.chars().count()));
            let hash_ok = e
                .explicit_hash_key
                .as_deref()
                .is_none_or(|h| parse_hash_key(h).is_some());
            if e.data.is_some() && key_ok && hash_ok {
                continue;
            }
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
    let max_record_bytes = target.max_record_bytes;

    // Decode, size-check and hash every record before writing any.
    let mut total = 0usize;
    let mut sizes = Vec::with_capacity(entries.len());
    let mut routed = Vec::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        let data = decode_data(e.data.as_deref().expect("checked"))?;
        let key = e.partition_key.as_deref().expect("checked");
        if data.len() + key.len() > max_record_bytes {
            check_record_size(
                &format!("records.{}.member.data", i + 1),
                &data,
                key,
                max_record_bytes,
            )?;
        }
        total += data.len() + key.len();
        sizes.push((data.len() + key.len()) as u64);
        let hash = record_hash(key, e.explicit_hash_key.as_deref())?;
        let (data, flags) = protect(svc, target.encryption, data)?;
        routed.push(Routed {
            slot: i,
            hash,
            record: PendingRecord {
                partition_key: key.to_owned(),
                data,
                flags,
            },
        });
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
    let landed = write_routed(svc, &name, routed, entries.len()).await?;
    let mut outcome = PutOutcome {
        total_records: landed.len() as u64,
        ..PutOutcome::default()
    };
    for (l, size) in landed.iter().zip(&sizes) {
        match l {
            Ok(_) => {
                outcome.ok_records += 1;
                outcome.ok_bytes += size;
            }
            Err(Failure::Throttled(_)) => outcome.throttled_records += 1,
            Err(Failure::Internal | Failure::DiskFull) => outcome.failed_records += 1,
        }
    }
    svc.monitor
        .put_records(&name, outcome, started.elapsed().as_secs_f64() * 1000.0);
    let mut failed = 0;
    // Shard ids formatted once per shard, not once per record.
    let mut ids: Vec<(u32, String)> = Vec::new();
    let mut id_of = |index: u32| match ids.iter().find(|(i, _)| *i == index) {
        Some((_, id)) => id.clone(),
        None => {
            let id = crate::control::shard_id(index);
            ids.push((index, id.clone()));
            id
        }
    };
    let records = landed
        .into_iter()
        .map(|l| match l {
            Ok((index, seq)) => PutRecordsResultEntry {
                sequence_number: Some(seq),
                shard_id: Some(id_of(index)),
                error_code: None,
                error_message: None,
            },
            Err(Failure::Throttled(index)) => {
                failed += 1;
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some("ProvisionedThroughputExceededException"),
                    error_message: Some(rate_exceeded(svc, index, &name)),
                }
            }
            Err(f @ (Failure::Internal | Failure::DiskFull)) => {
                failed += 1;
                let message = match f {
                    Failure::DiskFull => crate::api::error::DISK_FULL,
                    _ => "Internal service failure.",
                };
                PutRecordsResultEntry {
                    sequence_number: None,
                    shard_id: None,
                    error_code: Some("InternalFailure"),
                    error_message: Some(message.into()),
                }
            }
        })
        .collect();
    let out = PutRecordsOutput {
        failed_record_count: failed,
        records,
        encryption_type: target.encryption.map(|_| "KMS"),
    };
    Ok(serde_json::to_vec(&out).expect("serializes"))
}
