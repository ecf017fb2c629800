//! GetShardIterator and GetRecords: the read path.
//!
//! Hops: GetShardIterator resolves a position in the shard's log (trim horizon, latest, a
//! timestamp through the sparse index, or a sequence number) and signs it into an iterator.
//! GetRecords checks the iterator, reads from the log up to the record and byte limits,
//! skips what retention has expired, and signs a fresh iterator for the next position.

use crate::monitor::kinesis::GetOutcome;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::records::FLAG_ENCRYPTED;
use super::streams::find;
use super::{
    ApiResult, check_stream_ref, de_timestamp, ms_to_seconds, parse, seconds_to_ms, stream_name,
};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations};
use crate::clock::java_date;
use crate::control::{ShardCounters, ShardMeta, Stream, parse_shard_id, shard_id};
use crate::data::iterator::ShardIterator;
use crate::data::sequence::{SequenceNumber, stream_epoch};
use crate::limits;
use crate::service::Kinesis;

const ITERATOR_TYPES: [&str; 5] = [
    "AT_SEQUENCE_NUMBER",
    "AFTER_SEQUENCE_NUMBER",
    "TRIM_HORIZON",
    "LATEST",
    "AT_TIMESTAMP",
];

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetShardIteratorInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_id: Option<String>,
    shard_iterator_type: Option<String>,
    starting_sequence_number: Option<String>,
    #[serde(default, deserialize_with = "de_timestamp")]
    timestamp: Option<f64>,
}

pub fn get_shard_iterator(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: GetShardIteratorInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let shard = v.required("shardId", input.shard_id.as_deref());
    v.string("shardId", shard, validate::SHARD_ID);
    let kind = v.required("shardIteratorType", input.shard_iterator_type.as_deref());
    v.one_of("shardIteratorType", kind, &ITERATOR_TYPES);
    v.string(
        "startingSequenceNumber",
        input.starting_sequence_number.as_deref(),
        validate::SEQUENCE_NUMBER,
    );
    v.finish()?;
    let (shard_name, kind) = (shard.expect("checked"), kind.expect("checked"));
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let registry = svc.read();
    let stream = find(svc, &registry, &name)?;
    let shard = visible_shard(svc, stream, shard_name, now)?;
    let runtime = stream
        .shards
        .get(&shard.index)
        .ok_or_else(ApiError::internal)?;
    if !runtime.throughput.admit_iterator(now) {
        return Err(rate_exceeded(svc, shard, &name));
    }
    let start = Start {
        kind,
        sequence_number: input.starting_sequence_number.as_deref(),
        timestamp: input.timestamp,
    };
    let position = start_position(svc, stream, shard, &runtime.log, &start, now)?;
    let token = svc.iterators.encode(&ShardIterator {
        stream_name: name,
        stream_created_ms: stream.meta.created_ms,
        shard_index: shard.index,
        position,
        issued_ms: now,
    });
    super::json(json!({ "ShardIterator": token }))
}

/// Where reading starts: an iterator type or starting position type, with its sequence
/// number or timestamp. Shared by GetShardIterator and SubscribeToShard.
pub struct Start<'a> {
    pub kind: &'a str,
    pub sequence_number: Option<&'a str>,
    /// Epoch seconds.
    pub timestamp: Option<f64>,
}

/// The log position a `Start` names, checked as Kinesis checks it.
pub fn start_position(
    svc: &Kinesis,
    stream: &Stream,
    shard: &ShardMeta,
    log: &std::sync::Arc<dyn crate::storage::ShardLog>,
    start: &Start<'_>,
    now: i64,
) -> ApiResult<u64> {
    let kind = start.kind;
    let starting = start.sequence_number;
    let wants_sequence = matches!(kind, "AT_SEQUENCE_NUMBER" | "AFTER_SEQUENCE_NUMBER");
    if wants_sequence != starting.is_some() && kind != "AT_TIMESTAMP" {
        let clause = if wants_sequence {
            "and no StartingSequenceNumber"
        } else {
            "and also a StartingSequenceNumber"
        };
        return Err(ApiError::invalid_argument(format!(
            "Must either specify (1) AT_SEQUENCE_NUMBER or AFTER_SEQUENCE_NUMBER and StartingSequenceNumber \
             or (2) TRIM_HORIZON or LATEST and no StartingSequenceNumber. Request specified {kind} {clause}."
        )));
    }
    Ok(match kind {
        "TRIM_HORIZON" => log.start_position(),
        "LATEST" => log.end_position(),
        "AT_TIMESTAMP" => {
            let ts = start.timestamp.map(seconds_to_ms).ok_or_else(|| {
                ApiError::invalid_argument(
                    "Must specify timestampInMillis parameter for iterator of type AT_TIMESTAMP. \
                     Current request has no timestamp parameter.",
                )
            })?;
            if ts > now {
                return Err(ApiError::invalid_argument(format!(
                    "The timestampInMillis parameter cannot be greater than the currentTimestampInMillis. \
                     timestampInMillis: {ts}, currentTimestampInMillis: {now}"
                )));
            }
            log.position_at_timestamp(ts)?
        }
        _ => {
            let seq = starting.expect("checked");
            let position = sequence_position(svc, stream, shard, seq)?;
            if position > log.end_position() {
                return Err(invalid_sequence(svc, stream, shard, seq, ""));
            }
            position + u64::from(kind == "AFTER_SEQUENCE_NUMBER")
        }
    })
}

pub fn rate_exceeded(svc: &Kinesis, shard: &ShardMeta, stream: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ProvisionedThroughputExceeded,
        format!(
            "Rate exceeded for shard {} in stream {stream} under account {}.",
            shard.id(),
            svc.account()
        ),
    )
}

/// A shard of the stream that has not expired, by any accepted spelling of its id.
pub fn visible_shard<'a>(
    svc: &Kinesis,
    stream: &'a Stream,
    id: &str,
    now: i64,
) -> ApiResult<&'a ShardMeta> {
    parse_shard_id(id)
        .and_then(|i| stream.shard(i))
        .filter(|s| !s.is_expired(now, stream.meta.retention_hours))
        .ok_or_else(|| ApiError::shard_not_found(id, &stream.meta.name, svc.account()))
}

fn sequence_position(
    svc: &Kinesis,
    stream: &Stream,
    shard: &ShardMeta,
    seq: &str,
) -> ApiResult<u64> {
    let parsed =
        SequenceNumber::parse(seq).ok_or_else(|| invalid_sequence(svc, stream, shard, seq, ""))?;
    if parsed.stream_epoch != stream_epoch(stream.meta.created_ms) {
        return Err(invalid_sequence(
            svc,
            stream,
            shard,
            seq,
            " because it did not come from this stream",
        ));
    }
    if parsed.shard_index != shard.index {
        return Err(ApiError::invalid_argument(format!(
            "Invalid StartingSequenceNumber. It encodes {}, while it was used in a call to a shard with {}",
            shard_id(parsed.shard_index),
            shard.id()
        )));
    }
    Ok(parsed.position)
}

fn invalid_sequence(
    svc: &Kinesis,
    stream: &Stream,
    shard: &ShardMeta,
    seq: &str,
    why: &str,
) -> ApiError {
    ApiError::invalid_argument(format!(
        "StartingSequenceNumber {seq} used in GetShardIterator on shard {} in stream {} under account {} is invalid{why}.",
        shard.id(),
        stream.meta.name,
        svc.account()
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsInput {
    /// Reserved by Kinesis; checked here rather than by a second parse of a large body.
    stream_id: Option<String>,
    shard_iterator: Option<String>,
    limit: Option<i64>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RecordOut<'a> {
    sequence_number: String,
    approximate_arrival_timestamp: f64,
    data: String,
    partition_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    encryption_type: Option<&'static str>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GetRecordsOutput<'a> {
    records: Vec<RecordOut<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_shard_iterator: Option<String>,
    millis_behind_latest: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    child_shards: Option<Vec<serde_json::Value>>,
}

/// GetRecords reading no more than `bytes_max` of records (the first whole).
pub fn get_records_within(svc: &Kinesis, body: &[u8], bytes_max: usize) -> ApiResult<Vec<u8>> {
    let bytes_max = bytes_max.min(limits::GET_RECORDS_BYTES_MAX);
    let started = std::time::Instant::now();
    let input: GetRecordsInput = parse(body)?;
    let mut v = Violations::default();
    let token = v.required("shardIterator", input.shard_iterator.as_deref());
    v.string("shardIterator", token, validate::SHARD_ITERATOR);
    v.int(
        "limit",
        input.limit,
        Some(1),
        Some(limits::GET_RECORDS_COUNT_MAX as i64),
    );
    v.string(
        "streamARN",
        input.stream_arn.as_deref(),
        validate::STREAM_ARN,
    );
    v.string("streamId", input.stream_id.as_deref(), validate::STREAM_ID);
    v.finish()?;
    let invalid = || ApiError::invalid_argument("Invalid ShardIterator.");
    let it = svc
        .iterators
        .decode(token.expect("checked"))
        .ok_or_else(invalid)?;
    let now = svc.now_ms();
    if now - it.issued_ms > limits::ITERATOR_LIFETIME_MS {
        return Err(ApiError::new(
            ErrorKind::ExpiredIterator,
            format!(
                "Iterator expired. The iterator was created at time {} while right now it is {} which is \
                 further in the future than the tolerated delay of {} milliseconds.",
                java_date(it.issued_ms),
                java_date(now),
                limits::ITERATOR_LIFETIME_MS
            ),
        ));
    }
    if let Some(arn) = input.stream_arn.as_deref()
        && stream_name(svc, None, Some(arn))? != it.stream_name
    {
        return Err(invalid());
    }
    let (shard, runtime, child_shards, retention_hours, created_ms, shard_metrics) = {
        let registry = svc.read();
        let stream = find(svc, &registry, &it.stream_name)?;
        if stream.meta.created_ms != it.stream_created_ms {
            return Err(invalid());
        }
        let shard = visible_shard(svc, stream, &shard_id(it.shard_index), now)?.clone();
        let runtime = stream
            .shards
            .get(&shard.index)
            .ok_or_else(ApiError::internal)?
            .clone();
        let children = children_json(stream, &shard);
        let m = &stream.meta;
        let metrics = m.shard_level_metrics.clone();
        (
            shard,
            runtime,
            children,
            m.retention_hours,
            m.created_ms,
            metrics,
        )
    };
    let (log, counters) = (&runtime.log, &runtime.counters);
    let latency_ms = || started.elapsed().as_secs_f64() * 1000.0;
    if !runtime.throughput.admit_read(now) {
        ShardCounters::add(&counters.read_throttled, 1);
        svc.monitor.get_records(&it.stream_name, None, latency_ms());
        svc.monitor.shard(
            &it.stream_name,
            &shard.id(),
            &shard_metrics,
            &[("ReadProvisionedThroughputExceeded", "Count", 1.0)],
        );
        return Err(rate_exceeded(svc, &shard, &it.stream_name));
    }
    let limit = input
        .limit
        .map_or(limits::GET_RECORDS_COUNT_MAX, |l| l as usize);
    let cutoff = now - retention_hours * 3_600_000;
    let mut batch = log.read(it.position, limit, bytes_max)?;
    if batch
        .records
        .first()
        .is_some_and(|r| r.timestamp_ms < cutoff)
    {
        // Retention removes whole segments; records it has not reached yet are skipped here.
        let horizon = log.position_at_timestamp(cutoff)?.max(it.position);
        batch = log.read(horizon, limit, bytes_max)?;
    }
    let end = log.end_position();
    let caught_up = batch.next_position >= end;
    let millis_behind = match (caught_up, batch.records.last()) {
        (false, Some(last)) => (now - last.timestamp_ms).max(0),
        _ => 0,
    };
    let epoch = stream_epoch(created_ms);
    let shard_ended = shard
        .closed
        .is_some_and(|c| batch.next_position >= c.end_position);
    let next_shard_iterator = (!shard_ended).then(|| {
        svc.iterators.encode(&ShardIterator {
            position: batch.next_position,
            issued_ms: now,
            ..it.clone()
        })
    });
    let bytes: usize = batch
        .records
        .iter()
        .map(|r| r.data.len() + r.key.len())
        .sum();
    ShardCounters::add(&counters.outgoing_records, batch.records.len() as u64);
    ShardCounters::add(&counters.outgoing_bytes, bytes as u64);
    let iterator_age_ms = batch
        .records
        .last()
        .map_or(0, |r| (now - r.timestamp_ms).max(0));
    let outcome = GetOutcome {
        records: batch.records.len() as u64,
        bytes: bytes as u64,
        iterator_age_ms,
    };
    svc.monitor
        .get_records(&it.stream_name, Some(outcome), latency_ms());
    svc.monitor.shard(
        &it.stream_name,
        &shard.id(),
        &shard_metrics,
        &[
            ("OutgoingBytes", "Bytes", bytes as f64),
            ("OutgoingRecords", "Count", batch.records.len() as f64),
            (
                "IteratorAgeMilliseconds",
                "Milliseconds",
                iterator_age_ms as f64,
            ),
            ("ReadProvisionedThroughputExceeded", "Count", 0.0),
        ],
    );
    runtime.throughput.charge_read(bytes, now);
    let rest = GetRecordsOutput {
        records: Vec::new(),
        next_shard_iterator,
        millis_behind_latest: millis_behind,
        child_shards: shard_ended.then_some(child_shards),
    };
    get_records_json(svc, epoch, &shard, &batch.records, &rest)
}

/// GetRecords' output, the same bytes as serializing `GetRecordsOutput` with its records,
/// but written into one buffer sized up front: each record's base64 is encoded straight into
/// it, without a copy of the record's data, an intermediate string, or serde's scan of the
/// base64 for characters to escape. `rest` carries everything but the records.
fn get_records_json(
    svc: &Kinesis,
    epoch: u32,
    shard: &ShardMeta,
    records: &[crate::storage::Record],
    rest: &GetRecordsOutput<'_>,
) -> ApiResult<Vec<u8>> {
    const HEAD: &[u8] = b"{\"Records\":[";
    let tail = serde_json::to_vec(rest).expect("serializes");
    debug_assert!(tail.starts_with(HEAD) && rest.records.is_empty());
    let size: usize = records
        .iter()
        .map(|r| r.data.len().div_ceil(3) * 4 + r.key.len() + 160)
        .sum();
    let mut out = Vec::with_capacity(size + tail.len());
    out.extend_from_slice(HEAD);
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_record(&mut out, svc, epoch, shard, r)?;
    }
    out.extend_from_slice(&tail[HEAD.len()..]);
    Ok(out)
}

/// One record as `RecordOut` serializes it.
fn write_record(
    out: &mut Vec<u8>,
    svc: &Kinesis,
    epoch: u32,
    shard: &ShardMeta,
    r: &crate::storage::Record,
) -> ApiResult<()> {
    use std::io::Write;
    let sequence = SequenceNumber {
        stream_epoch: epoch,
        shard_index: shard.index,
        position: r.position,
    };
    let _ = write!(
        out,
        "{{\"SequenceNumber\":\"{sequence}\",\"ApproximateArrivalTimestamp\":"
    );
    serde_json::to_writer(&mut *out, &ms_to_seconds(r.timestamp_ms)).expect("writes to a Vec");
    out.extend_from_slice(b",\"Data\":\"");
    let encrypted = r.flags & FLAG_ENCRYPTED != 0;
    if encrypted {
        let data = svc.keys.open_sealed(&r.data).map_err(|e| {
            tracing::error!(error = %e, shard = %shard.id(), position = r.position, "cannot open a sealed record");
            ApiError::internal()
        })?;
        base64_simd::STANDARD.encode_append(&data, out);
    } else {
        base64_simd::STANDARD.encode_append(&r.data, out);
    }
    out.extend_from_slice(b"\",\"PartitionKey\":");
    // Keys were validated UTF-8 on the way in; a damaged one shows as replacement chars.
    let key = std::str::from_utf8(&r.key).unwrap_or("\u{fffd}");
    serde_json::to_writer(&mut *out, key).expect("writes to a Vec");
    if encrypted {
        out.extend_from_slice(b",\"EncryptionType\":\"KMS\"");
    }
    out.push(b'}');
    Ok(())
}

/// Records as GetRecords and SubscribeToShard events show them: sequence numbers, arrival
/// times, base64 data (opened first if sealed).
pub fn records_out<'a>(
    svc: &Kinesis,
    epoch: u32,
    shard: &ShardMeta,
    records: &'a [crate::storage::Record],
) -> ApiResult<Vec<RecordOut<'a>>> {
    records
        .iter()
        .map(|r| {
            let encrypted = r.flags & FLAG_ENCRYPTED != 0;
            let data = if encrypted {
                svc.keys.open_sealed(&r.data).map_err(|e| {
                    tracing::error!(error = %e, shard = %shard.id(), position = r.position, "cannot open a sealed record");
                    ApiError::internal()
                })?
            } else {
                r.data.clone()
            };
            Ok(RecordOut {
                sequence_number: SequenceNumber { stream_epoch: epoch, shard_index: shard.index, position: r.position }
                    .to_string(),
                approximate_arrival_timestamp: ms_to_seconds(r.timestamp_ms),
                data: base64_simd::STANDARD.encode_to_string(&data),
                // Keys were validated UTF-8 on the way in; a damaged one shows as replacement chars.
                partition_key: std::str::from_utf8(&r.key).unwrap_or("\u{fffd}"),
                encryption_type: encrypted.then_some("KMS"),
            })
        })
        .collect()
}

/// The ChildShards of a closed shard: the shards that name it as a parent.
pub fn children_json(stream: &Stream, shard: &ShardMeta) -> Vec<serde_json::Value> {
    stream
        .meta
        .shards
        .iter()
        .filter(|c| c.parent == Some(shard.index) || c.adjacent_parent == Some(shard.index))
        .map(|c| {
            let parents: Vec<String> = c
                .parent
                .into_iter()
                .chain(c.adjacent_parent)
                .map(shard_id)
                .collect();
            json!({
                "ShardId": c.id(),
                "ParentShards": parents,
                "HashKeyRange": {
                    "StartingHashKey": c.start_hash.to_string(),
                    "EndingHashKey": c.end_hash.to_string(),
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::storage::{DiskBackend, Record};

    /// The hand-written GetRecords output is byte for byte what serde writes.
    #[test]
    fn the_written_output_is_what_serde_writes() {
        let dir = std::env::temp_dir().join(format!("rivulet-reads-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let clock: crate::clock::SharedClock = Arc::new(crate::clock::SystemClock);
        let backend = Arc::new(DiskBackend::new(&dir, 1 << 20));
        let svc = Kinesis::open(Config::new(&dir), clock, backend).unwrap();
        let key = svc.keys.resolve("alias/aws/kinesis").unwrap();
        let shard = ShardMeta {
            index: 7,
            parent: None,
            adjacent_parent: None,
            start_hash: 0,
            end_hash: u128::MAX,
            created_ms: 0,
            closed: None,
        };
        let record =
            |position: u64, timestamp_ms: i64, key: &[u8], data: Vec<u8>, flags: u8| Record {
                position,
                timestamp_ms,
                flags,
                key: key.to_vec(),
                data,
            };
        let records = [
            record(0, 1_700_000_000_123, b"plain", b"hello".to_vec(), 0),
            record(1, 1_700_000_000_100, b"", Vec::new(), 0),
            record(
                2,
                1,
                "quote\" back\\ tab\t é \u{1}".as_bytes(),
                vec![0, 255, 7],
                0,
            ),
            record(3, 1_700_000_001_000, b"k", (0..=255).collect(), 0),
            record(
                4,
                5,
                b"sealed",
                svc.keys.seal(key, b"secret").unwrap(),
                FLAG_ENCRYPTED,
            ),
            record(5, 6, b"\xff\xfe", b"x".repeat(1000), 0),
        ];
        for (iterator, child_shards) in [
            (Some("AAAA".to_owned()), None),
            (
                None,
                Some(vec![serde_json::json!({"ShardId": "shardId-000000000008"})]),
            ),
        ] {
            for n in [0, 1, records.len()] {
                let expected = serde_json::to_vec(&GetRecordsOutput {
                    records: records_out(&svc, 3, &shard, &records[..n]).unwrap(),
                    next_shard_iterator: iterator.clone(),
                    millis_behind_latest: 42,
                    child_shards: child_shards.clone(),
                })
                .unwrap();
                let rest = GetRecordsOutput {
                    records: Vec::new(),
                    next_shard_iterator: iterator.clone(),
                    millis_behind_latest: 42,
                    child_shards: child_shards.clone(),
                };
                let written = get_records_json(&svc, 3, &shard, &records[..n], &rest).unwrap();
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(expected).unwrap()
                );
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
