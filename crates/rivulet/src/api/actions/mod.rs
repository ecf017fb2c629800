//! The Kinesis operations: decoding each input, validating it against the model, and the
//! semantics. One file per family of operations; `call` routes by name.

mod consumers;
mod encryption;
mod reads;
mod records;
pub(crate) mod resharding;
mod settings;
mod shards;
mod streams;
pub(crate) mod subscribe;
mod tags;

use std::sync::Arc;

use axum::body::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

use super::error::{ApiError, ApiResult, ErrorKind};
use super::inflight::Share;
use super::validate::{self, Violations};
use crate::limits;
use crate::service::Kinesis;

/// Every operation of the Kinesis model (botocore 2013-12-02).
pub const MODEL_OPERATIONS: [&str; 39] = [
    "AddTagsToStream",
    "CreateStream",
    "DecreaseStreamRetentionPeriod",
    "DeleteResourcePolicy",
    "DeleteStream",
    "DeregisterStreamConsumer",
    "DescribeAccountSettings",
    "DescribeLimits",
    "DescribeStream",
    "DescribeStreamConsumer",
    "DescribeStreamSummary",
    "DisableEnhancedMonitoring",
    "EnableEnhancedMonitoring",
    "GetRecords",
    "GetResourcePolicy",
    "GetShardIterator",
    "IncreaseStreamRetentionPeriod",
    "ListShards",
    "ListStreamConsumers",
    "ListStreams",
    "ListTagsForResource",
    "ListTagsForStream",
    "MergeShards",
    "PutRecord",
    "PutRecords",
    "PutResourcePolicy",
    "RegisterStreamConsumer",
    "RemoveTagsFromStream",
    "SplitShard",
    "StartStreamEncryption",
    "StopStreamEncryption",
    "SubscribeToShard",
    "TagResource",
    "UntagResource",
    "UpdateAccountSettings",
    "UpdateMaxRecordSize",
    "UpdateShardCount",
    "UpdateStreamMode",
    "UpdateStreamWarmThroughput",
];

pub fn is_known(operation: &str) -> bool {
    MODEL_OPERATIONS.contains(&operation)
}

/// The most memory one GetRecords holds at once: the records it read (10 MiB) and its
/// response (base64 is 4/3 of that, plus each record's JSON members).
const GET_RECORDS_PEAK_BYTES: usize = limits::GET_RECORDS_BYTES_MAX * 5 / 2;
/// The least a GetRecords waits for: room for reading 1 MiB.
const GET_RECORDS_PEAK_BYTES_MIN: usize = limits::RECORD_BYTES_MIN_READ * 5 / 2;

/// What an operation answers: the JSON to send (empty for operations without output), and
/// the share of the server's in-flight memory it holds until the body has been sent.
pub struct Answer {
    pub body: Vec<u8>,
    pub share: Option<Share>,
}

impl From<Vec<u8>> for Answer {
    fn from(body: Vec<u8>) -> Answer {
        Answer { body, share: None }
    }
}

/// Runs one operation.
pub async fn call(svc: &Arc<Kinesis>, operation: &str, body: Bytes) -> ApiResult<Answer> {
    if operation == "GetRecords" {
        return get_records(svc, body).await;
    }
    run(svc, operation, body).await.map(Answer::from)
}

async fn run(svc: &Arc<Kinesis>, operation: &str, body: Bytes) -> ApiResult<Vec<u8>> {
    admit_control_plane(svc, operation, &body)?;
    // The puts (and GetRecords, which `call` answers before this) check StreamId in their
    // own input types, so their (possibly 13 MiB) bodies are parsed once.
    if !matches!(operation, "PutRecord" | "PutRecords") {
        check_stream_id(&body)?;
    }
    match operation {
        "PutRecord" => records::put_record(svc, &body).await,
        "PutRecords" => records::put_records(svc, &body).await,
        "GetShardIterator" => blocking(svc, body, reads::get_shard_iterator).await,
        "CreateStream" => blocking(svc, body, streams::create_stream).await,
        "DeleteStream" => blocking(svc, body, streams::delete_stream).await,
        "DescribeStream" => blocking(svc, body, streams::describe_stream).await,
        "DescribeStreamSummary" => blocking(svc, body, streams::describe_stream_summary).await,
        "ListStreams" => blocking(svc, body, streams::list_streams).await,
        "DescribeLimits" => blocking(svc, body, streams::describe_limits).await,
        "IncreaseStreamRetentionPeriod" => blocking(svc, body, streams::increase_retention).await,
        "DecreaseStreamRetentionPeriod" => blocking(svc, body, streams::decrease_retention).await,
        "ListShards" => blocking(svc, body, shards::list_shards).await,
        "SplitShard" => blocking(svc, body, resharding::split_shard).await,
        "MergeShards" => blocking(svc, body, resharding::merge_shards).await,
        "UpdateShardCount" => blocking(svc, body, resharding::update_shard_count).await,
        "EnableEnhancedMonitoring" => {
            blocking(svc, body, settings::enable_enhanced_monitoring).await
        }
        "DisableEnhancedMonitoring" => {
            blocking(svc, body, settings::disable_enhanced_monitoring).await
        }
        "UpdateMaxRecordSize" => blocking(svc, body, settings::update_max_record_size).await,
        "UpdateStreamMode" => blocking(svc, body, settings::update_stream_mode).await,
        "UpdateStreamWarmThroughput" => {
            blocking(svc, body, settings::update_stream_warm_throughput).await
        }
        "DescribeAccountSettings" => blocking(svc, body, settings::describe_account_settings).await,
        "UpdateAccountSettings" => blocking(svc, body, settings::update_account_settings).await,
        "RegisterStreamConsumer" => blocking(svc, body, consumers::register_stream_consumer).await,
        "DescribeStreamConsumer" => blocking(svc, body, consumers::describe_stream_consumer).await,
        "ListStreamConsumers" => blocking(svc, body, consumers::list_stream_consumers).await,
        "DeregisterStreamConsumer" => {
            blocking(svc, body, consumers::deregister_stream_consumer).await
        }
        "StartStreamEncryption" => blocking(svc, body, encryption::start_stream_encryption).await,
        "StopStreamEncryption" => blocking(svc, body, encryption::stop_stream_encryption).await,
        "PutResourcePolicy" => blocking(svc, body, consumers::put_resource_policy).await,
        "GetResourcePolicy" => blocking(svc, body, consumers::get_resource_policy).await,
        "DeleteResourcePolicy" => blocking(svc, body, consumers::delete_resource_policy).await,
        "AddTagsToStream" => blocking(svc, body, tags::add_tags_to_stream).await,
        "RemoveTagsFromStream" => blocking(svc, body, tags::remove_tags_from_stream).await,
        "ListTagsForStream" => blocking(svc, body, tags::list_tags_for_stream).await,
        "TagResource" => blocking(svc, body, tags::tag_resource).await,
        "UntagResource" => blocking(svc, body, tags::untag_resource).await,
        "ListTagsForResource" => blocking(svc, body, tags::list_tags_for_resource).await,
        other => Err(ApiError::new(
            ErrorKind::UnknownOperation,
            format!("Rivulet does not implement {other} yet"),
        )),
    }
}

/// GetRecords first reserves what its read and its response can take (reading less than
/// its 10 MiB when the server's memory for bodies in flight is short), and its answer keeps
/// that share until the response has been sent.
async fn get_records(svc: &Arc<Kinesis>, body: Bytes) -> ApiResult<Answer> {
    let share = svc
        .inflight
        .reserve_up_to(GET_RECORDS_PEAK_BYTES, GET_RECORDS_PEAK_BYTES_MIN)
        .await?;
    let bytes_max = (share.bytes() * 2 / 5).max(limits::RECORD_BYTES_MIN_READ);
    let svc = svc.clone();
    let body =
        tokio::task::spawn_blocking(move || reads::get_records_within(&svc, &body, bytes_max))
            .await??;
    Ok(Answer {
        body,
        share: Some(share),
    })
}

/// `StreamId` is on nearly every input and "reserved for future use": accepted and ignored
/// when it has the model's shape (`[a-z0-9]{20}-[a-z0-9]{3}`), refused as Kinesis refuses it
/// otherwise.
pub(crate) fn check_stream_id(body: &[u8]) -> ApiResult<()> {
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct WithStreamId {
        stream_id: Option<serde_json::Value>,
    }
    let Ok(WithStreamId {
        stream_id: Some(id),
    }) = serde_json::from_slice(body)
    else {
        return Ok(());
    };
    let Some(id) = id.as_str() else {
        return Err(ApiError::serialization(
            "class java.lang.Integer can not be converted to an String",
        ));
    };
    let mut v = Violations::default();
    v.string("streamId", Some(id), validate::STREAM_ID);
    v.finish()
}

/// Holds control-plane operations to Kinesis's calls per second (`--limits aws`).
fn admit_control_plane(svc: &Kinesis, operation: &str, body: &[u8]) -> ApiResult<()> {
    let Some((_, per_stream)) = crate::data::throughput::control_plane_rate(operation) else {
        return Ok(());
    };
    #[derive(Deserialize, Default)]
    #[serde(rename_all = "PascalCase", default)]
    struct StreamRef {
        stream_name: Option<String>,
        #[serde(rename = "StreamARN")]
        stream_arn: Option<String>,
    }
    let stream = if per_stream {
        let r: StreamRef = serde_json::from_slice(body).unwrap_or_default();
        r.stream_name.or(r.stream_arn).unwrap_or_default()
    } else {
        String::new()
    };
    if svc.control_rates.admit(operation, &stream, svc.now_ms()) {
        return Ok(());
    }
    let message = if per_stream {
        format!(
            "Rate exceeded for stream {stream} under account {}.",
            svc.account()
        )
    } else {
        format!(
            "Rate exceeded for {operation} under account {}.",
            svc.account()
        )
    };
    Err(ApiError::new(ErrorKind::LimitExceeded, message))
}

/// Runs a handler that touches the disk (metadata saves, log reads) off the async threads.
async fn blocking(
    svc: &Arc<Kinesis>,
    body: Bytes,
    handler: fn(&Kinesis, &[u8]) -> ApiResult<Vec<u8>>,
) -> ApiResult<Vec<u8>> {
    let svc = svc.clone();
    tokio::task::spawn_blocking(move || handler(&svc, &body)).await?
}

/// Decodes an operation's input. Malformed JSON is a `SerializationException` without a
/// message, as Kinesis sends it; a member of the wrong type gets one. An empty body is `{}`.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| match e.classify() {
        serde_json::error::Category::Data => ApiError::serialization(e.to_string()),
        _ => ApiError::bare(ErrorKind::Serialization),
    })
}

pub fn json(value: serde_json::Value) -> ApiResult<Vec<u8>> {
    Ok(value.to_string().into_bytes())
}

pub fn empty() -> ApiResult<Vec<u8>> {
    Ok(Vec::new())
}

/// Epoch seconds, as a JSON number (the SDKs send fractional seconds) or a numeric string.
pub fn de_timestamp<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(f64),
        Text(String),
    }
    match Option::<Raw>::deserialize(d)? {
        None => Ok(None),
        Some(Raw::Number(n)) => Ok(Some(n)),
        Some(Raw::Text(s)) => s.parse().map(Some).map_err(|_| {
            serde::de::Error::custom(format!("'{s}' can not be converted to a Timestamp"))
        }),
    }
}

pub fn seconds_to_ms(seconds: f64) -> i64 {
    (seconds * 1000.0).round() as i64
}

pub fn ms_to_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// Checks the shapes of the StreamName and StreamARN members most operations carry.
pub fn check_stream_ref(v: &mut Violations, name: Option<&str>, arn: Option<&str>) {
    v.string("streamName", name, validate::STREAM_NAME);
    v.string("streamARN", arn, validate::STREAM_ARN);
}

/// The stream an operation addresses by StreamName, StreamARN or both (which must agree).
pub fn stream_name(svc: &Kinesis, name: Option<&str>, arn: Option<&str>) -> ApiResult<String> {
    let from_arn = match arn {
        None => None,
        Some(arn) => {
            let parsed = validate::parse_arn(arn)
                .ok_or_else(|| ApiError::invalid_argument("Invalid StreamARN."))?;
            let arn_name = parsed
                .resource
                .strip_prefix("stream/")
                .unwrap_or(parsed.resource);
            if parsed.account != svc.account() || parsed.region != svc.config.region {
                return Err(ApiError::stream_not_found(arn_name, parsed.account));
            }
            Some(arn_name.to_owned())
        }
    };
    match (name, from_arn) {
        (None, None) => Err(ApiError::invalid_argument(
            "Either StreamName or StreamARN must be provided.",
        )),
        (Some(n), None) => Ok(n.to_owned()),
        (None, Some(n)) => Ok(n),
        (Some(n), Some(a)) if n == a => Ok(a),
        (Some(n), Some(_)) => Err(ApiError::invalid_argument(format!(
            "StreamName {n} does not match the stream name in StreamARN {}.",
            arn.unwrap_or_default()
        ))),
    }
}
