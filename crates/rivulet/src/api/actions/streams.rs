//! CreateStream, DeleteStream, DescribeStream, DescribeStreamSummary, ListStreams,
//! DescribeLimits and the two retention operations.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::shards::shard_json;
use super::tags::check_tags;
use super::{ApiResult, check_stream_ref, empty, parse, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations};
use crate::control::hash::even_ranges;
use crate::control::{Pending, ShardMeta, Stream, StreamMeta, StreamMode, StreamStatus};
use crate::limits;
use crate::service::{Kinesis, Registry, require_active};

/// The stream a request names, if it exists and its deletion has not completed.
pub fn find<'a>(svc: &Kinesis, registry: &'a Registry, name: &str) -> ApiResult<&'a Stream> {
    registry
        .get(name)
        .filter(|s| s.status_at(svc.now_ms()).is_some())
        .ok_or_else(|| ApiError::stream_not_found(name, svc.account()))
}

pub fn find_mut<'a>(
    svc: &Kinesis,
    registry: &'a mut Registry,
    name: &str,
) -> ApiResult<&'a mut Stream> {
    let now = svc.now_ms();
    registry
        .get_mut(name)
        .filter(|s| s.status_at(now).is_some())
        .ok_or_else(|| ApiError::stream_not_found(name, svc.account()))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StreamModeDetails {
    stream_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateStreamInput {
    stream_name: Option<String>,
    shard_count: Option<i64>,
    stream_mode_details: Option<StreamModeDetails>,
    tags: Option<BTreeMap<String, String>>,
    warm_throughput_mi_bps: Option<i64>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

pub fn create_stream(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: CreateStreamInput = parse(body)?;
    let mut v = Violations::default();
    let name = v.required("streamName", input.stream_name.as_deref());
    v.string("streamName", name, validate::STREAM_NAME);
    v.int("shardCount", input.shard_count, Some(1), None);
    let has_mode_details = input.stream_mode_details.is_some();
    let mode_details = input.stream_mode_details.unwrap_or_default();
    if has_mode_details {
        v.required(
            "streamModeDetails.streamMode",
            mode_details.stream_mode.as_deref(),
        );
    }
    v.one_of(
        "streamModeDetails.streamMode",
        mode_details.stream_mode.as_deref(),
        &["PROVISIONED", "ON_DEMAND"],
    );
    if let Some(tags) = &input.tags {
        check_tags(&mut v, tags);
    }
    v.int(
        "warmThroughputMiBps",
        input.warm_throughput_mi_bps,
        Some(0),
        None,
    );
    v.int(
        "maxRecordSizeInKiB",
        input.max_record_size_in_kib,
        Some(1024),
        Some(10240),
    );
    v.finish()?;
    let name = name.expect("checked");
    let mode = match mode_details.stream_mode.as_deref() {
        Some("ON_DEMAND") => StreamMode::OnDemand,
        _ => StreamMode::Provisioned,
    };
    let shard_count = match mode {
        StreamMode::OnDemand => limits::SHARD_COUNT_DEFAULT,
        StreamMode::Provisioned => input.shard_count.map_or(limits::SHARD_COUNT_DEFAULT, |n| {
            n.min(u32::MAX as i64) as u32
        }),
    };
    let tags = input.tags.unwrap_or_default();
    if tags.len() > limits::TAGS_PER_STREAM_MAX {
        return Err(too_many_tags(name, svc.account()));
    }

    let now = svc.now_ms();
    let mut registry = svc.write();
    if registry
        .get(name)
        .is_some_and(|s| s.status_at(now).is_some())
    {
        return Err(ApiError::new(
            ErrorKind::ResourceInUse,
            format!(
                "Stream {name} under account {} already exists.",
                svc.account()
            ),
        ));
    }
    let open = open_shards(&registry, now);
    if open + u64::from(shard_count) > u64::from(svc.config.shard_limit) {
        return Err(shard_limit_exceeded(svc, open, shard_count));
    }
    let creating = registry
        .values()
        .filter(|s| s.status_at(now) == Some(StreamStatus::Creating))
        .count();
    if creating >= 5 {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            format!(
                "Account {} has 5 streams in CREATING state, the most allowed at once.",
                svc.account()
            ),
        ));
    }
    // A stream whose deletion completed while nobody looked is replaced here.
    if let Some(old) = registry.remove(name) {
        svc.backend.delete_stream(&old.storage_key())?;
    }
    let shards = even_ranges(shard_count)
        .into_iter()
        .enumerate()
        .map(|(i, (start_hash, end_hash))| ShardMeta {
            index: i as u32,
            parent: None,
            adjacent_parent: None,
            start_hash,
            end_hash,
            created_ms: now,
            closed: None,
        })
        .collect();
    let delay = svc.config.state_delay_ms as i64;
    let meta = StreamMeta {
        name: name.to_owned(),
        created_ms: now,
        status: if delay > 0 {
            StreamStatus::Creating
        } else {
            StreamStatus::Active
        },
        pending: (delay > 0).then_some(Pending {
            until_ms: now + delay,
            then: Some(StreamStatus::Active),
        }),
        mode,
        retention_hours: limits::RETENTION_HOURS_DEFAULT,
        tags,
        shards,
        next_shard_index: shard_count,
        max_record_size_kib: input
            .max_record_size_in_kib
            .map_or(limits::RECORD_SIZE_KIB_DEFAULT, |k| k as u32),
        shard_level_metrics: Vec::new(),
        scalings_ms: Vec::new(),
        mode_switches_ms: Vec::new(),
        warm_throughput_mibps: None,
        policy: None,
        consumers: Vec::new(),
        encryption: None,
        encryption_changes_ms: Vec::new(),
    };
    let shard_logs = svc.open_shards(&meta)?;
    let key = crate::control::storage_key(name, now);
    registry.insert(name.to_owned(), Stream::new(meta, shard_logs));
    if let Err(e) = svc.persist(&registry) {
        registry.remove(name);
        let _ = svc.backend.delete_stream(&key);
        return Err(e);
    }
    empty()
}

/// Open shards across the account, for the shard limit.
pub(super) fn open_shards(registry: &Registry, now: i64) -> u64 {
    registry
        .values()
        .filter(|s| s.status_at(now).is_some())
        .map(|s| s.open_shard_count() as u64)
        .sum()
}

pub(super) fn shard_limit_exceeded(svc: &Kinesis, open: u64, extra: u32) -> ApiError {
    ApiError::new(
        ErrorKind::LimitExceeded,
        format!(
            "This request would exceed the shard limit for the account {} in {}. Current shard count \
             for the account: {open}. Limit: {}. Number of additional shards that would have resulted \
             from this request: {extra}. Refer to the AWS Service Limits page \
             (http://docs.aws.amazon.com/general/latest/gr/aws_service_limits.html) for current \
             limits and how to request higher limits.",
            svc.account(),
            svc.config.region,
            svc.config.shard_limit
        ),
    )
}

pub fn too_many_tags(name: &str, account: &str) -> ApiError {
    ApiError::invalid_argument(format!(
        "Failed to add tags to stream {name} under account {account} because a given stream cannot \
         have more than {} tags associated with it.",
        limits::TAGS_PER_STREAM_MAX
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DeleteStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    enforce_consumer_deletion: Option<bool>,
}

pub fn delete_stream(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: DeleteStreamInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    v.finish()?;
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let stream = find_mut(svc, &mut registry, &name)?;
    if stream.status_at(now) == Some(StreamStatus::Deleting) {
        return Err(ApiError::stream_in_use(&name, svc.account(), "DELETING"));
    }
    let consumers = stream.live_consumers(now).count();
    if consumers > 0 && input.enforce_consumer_deletion != Some(true) {
        return Err(ApiError::new(
            ErrorKind::ResourceInUse,
            format!(
                "Stream {name} under account {} has {consumers} registered consumers; deregister them or set EnforceConsumerDeletion.",
                svc.account()
            ),
        ));
    }
    let delay = svc.config.state_delay_ms as i64;
    if delay > 0 {
        stream.meta.status = StreamStatus::Deleting;
        stream.meta.pending = Some(Pending {
            until_ms: now + delay,
            then: None,
        });
        return svc.persist(&registry).and_then(|_| empty());
    }
    let removed = registry.remove(&name).expect("found above");
    svc.persist(&registry)?;
    drop(registry);
    svc.backend.delete_stream(&removed.storage_key())?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DescribeStreamInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    limit: Option<i64>,
    exclusive_start_shard_id: Option<String>,
}

pub fn describe_stream(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: DescribeStreamInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    v.int("limit", input.limit, Some(1), Some(10000));
    v.string(
        "exclusiveStartShardId",
        input.exclusive_start_shard_id.as_deref(),
        validate::SHARD_ID,
    );
    v.finish()?;
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let limit = input.limit.map_or(limits::DESCRIBE_STREAM_SHARDS_MAX, |l| {
        (l as usize).min(limits::DESCRIBE_STREAM_SHARDS_MAX)
    });
    let after = input
        .exclusive_start_shard_id
        .as_deref()
        .and_then(crate::control::parse_shard_id);
    let registry = svc.read();
    let stream = find(svc, &registry, &name)?;
    let now = svc.now_ms();
    let mut shards = stream
        .visible_shards(now)
        .filter(|s| after.is_none_or(|a| s.index > a));
    let page: Vec<Value> = shards
        .by_ref()
        .take(limit)
        .map(|s| shard_json(stream, s))
        .collect();
    let has_more = shards.next().is_some();
    let mut description = summary_fields(svc, stream, now);
    description["Shards"] = Value::Array(page);
    description["HasMoreShards"] = has_more.into();
    super::json(json!({ "StreamDescription": description }))
}

/// The members DescribeStream and DescribeStreamSummary share.
fn summary_fields(svc: &Kinesis, stream: &Stream, now: i64) -> Value {
    let m = &stream.meta;
    let mut out = json!({
        "StreamName": m.name,
        "StreamARN": svc.stream_arn(&m.name),
        "StreamStatus": stream.status_at(now).unwrap_or(m.status).as_str(),
        "StreamModeDetails": { "StreamMode": m.mode.as_str() },
        "RetentionPeriodHours": m.retention_hours,
        "StreamCreationTimestamp": m.created_ms / 1000,
        "EnhancedMonitoring": [{ "ShardLevelMetrics": m.shard_level_metrics }],
        "EncryptionType": if m.encryption.is_some() { "KMS" } else { "NONE" },
    });
    if let Some(e) = &m.encryption {
        out["KeyId"] = e.key_id.clone().into();
    }
    out
}

pub fn describe_stream_summary(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: DescribeStreamInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    v.finish()?;
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let registry = svc.read();
    let stream = find(svc, &registry, &name)?;
    let now = svc.now_ms();
    let mut summary = summary_fields(svc, stream, now);
    summary["OpenShardCount"] = stream.open_shard_count().into();
    let consumers = stream.live_consumers(now).count();
    summary["ConsumerCount"] = consumers.into();
    if let Some(target) = stream.meta.warm_throughput_mibps {
        summary["WarmThroughput"] = super::settings::warm_throughput(target);
    }
    summary["MaxRecordSizeInKiB"] = stream.meta.max_record_size_kib.into();
    super::json(json!({ "StreamDescriptionSummary": summary }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListStreamsInput {
    limit: Option<i64>,
    exclusive_start_stream_name: Option<String>,
    next_token: Option<String>,
}

pub fn list_streams(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: ListStreamsInput = parse(body)?;
    let mut v = Violations::default();
    v.int("limit", input.limit, Some(1), Some(10000));
    v.string(
        "exclusiveStartStreamName",
        input.exclusive_start_stream_name.as_deref(),
        validate::STREAM_NAME,
    );
    v.string(
        "nextToken",
        input.next_token.as_deref(),
        validate::NEXT_TOKEN,
    );
    v.finish()?;
    let now = svc.now_ms();
    let after = match &input.next_token {
        Some(token) => Some(decode_list_token(token, now)?),
        None => input.exclusive_start_stream_name.clone(),
    };
    let limit = input.limit.map_or(limits::LIST_STREAMS_MAX, |l| {
        (l as usize).min(limits::LIST_STREAMS_MAX)
    });
    let registry = svc.read();
    let mut streams = registry
        .values()
        .filter(|s| s.status_at(now).is_some())
        .filter(|s| after.as_deref().is_none_or(|a| s.meta.name.as_str() > a));
    let page: Vec<&Stream> = streams.by_ref().take(limit).collect();
    let has_more = streams.next().is_some();
    let summaries: Vec<Value> = page
        .iter()
        .map(|s| {
            json!({
                "StreamName": s.meta.name,
                "StreamARN": svc.stream_arn(&s.meta.name),
                "StreamStatus": s.status_at(now).unwrap_or(s.meta.status).as_str(),
                "StreamModeDetails": { "StreamMode": s.meta.mode.as_str() },
                "StreamCreationTimestamp": s.meta.created_ms / 1000,
            })
        })
        .collect();
    let mut out = json!({
        "StreamNames": page.iter().map(|s| s.meta.name.clone()).collect::<Vec<_>>(),
        "HasMoreStreams": has_more,
        "StreamSummaries": summaries,
    });
    if has_more && let Some(last) = page.last() {
        out["NextToken"] = encode_list_token(&last.meta.name, now).into();
    }
    super::json(out)
}

/// ListStreams tokens: the last name returned and when, base64 so clients treat them as
/// opaque.
fn encode_list_token(last: &str, now_ms: i64) -> String {
    base64_simd::STANDARD.encode_to_string(format!("{now_ms}|{last}"))
}

fn decode_list_token(token: &str, now_ms: i64) -> ApiResult<String> {
    let invalid = || ApiError::invalid_argument("Invalid NextToken.");
    let raw = base64_simd::STANDARD
        .decode_to_vec(token.as_bytes())
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let (issued, last) = raw.split_once('|').ok_or_else(invalid)?;
    let issued: i64 = issued.parse().map_err(|_| invalid())?;
    if now_ms - issued > limits::NEXT_TOKEN_LIFETIME_MS {
        return Err(ApiError::new(
            ErrorKind::ExpiredNextToken,
            "The NextToken has expired.",
        ));
    }
    Ok(last.to_owned())
}

pub fn describe_limits(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let _: serde_json::Map<String, Value> = parse(body)?;
    let now = svc.now_ms();
    let registry = svc.read();
    let live = registry.values().filter(|s| s.status_at(now).is_some());
    let (mut open, mut on_demand) = (0usize, 0usize);
    for s in live {
        open += s.open_shard_count();
        on_demand += usize::from(s.meta.mode == StreamMode::OnDemand);
    }
    super::json(json!({
        "ShardLimit": svc.config.shard_limit,
        "OpenShardCount": open,
        "OnDemandStreamCount": on_demand,
        "OnDemandStreamCountLimit": limits::ON_DEMAND_STREAM_COUNT_LIMIT,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RetentionInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    retention_period_hours: Option<i64>,
}

pub fn increase_retention(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    change_retention(svc, body, true)
}

pub fn decrease_retention(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    change_retention(svc, body, false)
}

fn change_retention(svc: &Kinesis, body: &[u8], increase: bool) -> ApiResult<Vec<u8>> {
    let input: RetentionInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let hours = v.required("retentionPeriodHours", input.retention_period_hours);
    v.finish()?;
    let hours = hours.expect("checked");
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let stream = find_mut(svc, &mut registry, &name)?;
    require_active(stream, now, svc.account())?;
    let current = stream.meta.retention_hours;
    if hours < limits::RETENTION_HOURS_MIN {
        return Err(ApiError::invalid_argument(format!(
            "Minimum allowed retention period is {} hours. Requested retention period ({hours} hours) is too short.",
            limits::RETENTION_HOURS_MIN
        )));
    }
    if hours > limits::RETENTION_HOURS_MAX {
        return Err(ApiError::invalid_argument(format!(
            "Maximum allowed retention period is {} hours. Requested retention period ({hours} hours) is too long.",
            limits::RETENTION_HOURS_MAX
        )));
    }
    if increase && hours < current {
        return Err(ApiError::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be shorter than \
             existing retention period ({current} hours). Use DecreaseRetentionPeriod API."
        )));
    }
    if !increase && hours > current {
        return Err(ApiError::invalid_argument(format!(
            "Requested retention period ({hours} hours) for stream {name} can not be longer than \
             existing retention period ({current} hours). Use IncreaseRetentionPeriod API."
        )));
    }
    stream.meta.retention_hours = hours;
    svc.persist(&registry)?;
    empty()
}
