//! Enhanced fan-out consumers as metadata (RegisterStreamConsumer, DescribeStreamConsumer,
//! ListStreamConsumers, DeregisterStreamConsumer) and resource policies on streams and
//! consumers (Put/Get/DeleteResourcePolicy). SubscribeToShard, the push path, comes with
//! fan-out.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::streams::find_mut;
use super::tags::check_tags;
use super::{ApiResult, de_timestamp, empty, parse, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations};
use crate::control::{ConsumerMeta, ConsumerStatus, Stream};
use crate::service::{Kinesis, Registry};

const CONSUMERS_PER_STREAM_MAX: usize = 20;
const CONSUMERS_CREATING_MAX: usize = 5;
const LIST_CONSUMERS_MAX: usize = 100;

pub fn consumer_arn(svc: &Kinesis, stream: &str, consumer: &ConsumerMeta) -> String {
    format!(
        "{}/consumer/{}:{}",
        svc.stream_arn(stream),
        consumer.name,
        consumer.created_ms / 1000
    )
}

fn consumer_json(svc: &Kinesis, stream: &str, c: &ConsumerMeta, now: i64) -> Value {
    json!({
        "ConsumerName": c.name,
        "ConsumerARN": consumer_arn(svc, stream, c),
        "ConsumerStatus": c.status_at(now).unwrap_or(c.status).as_str(),
        "ConsumerCreationTimestamp": c.created_ms / 1000,
    })
}

/// A resource ARN of a stream or of one of its consumers.
pub enum Resource {
    Stream(String),
    Consumer {
        stream: String,
        name: String,
        created_s: Option<i64>,
    },
}

/// Resolves a stream or consumer ARN (`<stream arn>/consumer/<name>:<creation seconds>`).
pub fn resource(svc: &Kinesis, arn: &str) -> ApiResult<Resource> {
    match arn.split_once("/consumer/") {
        None => Ok(Resource::Stream(stream_name(svc, None, Some(arn))?)),
        Some((stream_arn, rest)) => {
            let stream = stream_name(svc, None, Some(stream_arn))?;
            let (name, created_s) = match rest.rsplit_once(':') {
                Some((n, t)) => (
                    n,
                    Some(t.parse().map_err(|_| {
                        ApiError::invalid_argument(format!("Invalid ConsumerARN {arn}."))
                    })?),
                ),
                None => (rest, None),
            };
            Ok(Resource::Consumer {
                stream,
                name: name.to_owned(),
                created_s,
            })
        }
    }
}

/// The live consumer `name` of `stream`, optionally of a given incarnation.
pub fn find_consumer<'a>(
    svc: &Kinesis,
    stream: &'a mut Stream,
    name: &str,
    created_s: Option<i64>,
) -> ApiResult<&'a mut ConsumerMeta> {
    match stream.consumer_index(name, created_s, svc.now_ms()) {
        Some(i) => Ok(&mut stream.meta.consumers[i]),
        None => Err(consumer_not_found(svc, &stream.meta.name, name)),
    }
}

pub fn consumer_not_found(svc: &Kinesis, stream: &str, name: &str) -> ApiError {
    ApiError::new(
        ErrorKind::ResourceNotFound,
        format!(
            "Consumer {name} under stream {stream} under account {} not found.",
            svc.account()
        ),
    )
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RegisterInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    tags: Option<BTreeMap<String, String>>,
}

pub fn register_stream_consumer(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: RegisterInput = parse(body)?;
    let mut v = Violations::default();
    let arn = v.required("streamARN", input.stream_arn.as_deref());
    v.string("streamARN", arn, validate::STREAM_ARN);
    let name = v.required("consumerName", input.consumer_name.as_deref());
    v.string("consumerName", name, validate::STREAM_NAME);
    if let Some(tags) = &input.tags {
        check_tags(&mut v, tags);
    }
    v.finish()?;
    let (arn, name) = (arn.expect("checked"), name.expect("checked"));
    let stream = stream_name(svc, None, Some(arn))?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let s = find_mut(svc, &mut registry, &stream)?;
    let live: Vec<&ConsumerMeta> = s.live_consumers(now).collect();
    if live.iter().any(|c| c.name == name) {
        return Err(ApiError::new(
            ErrorKind::ResourceInUse,
            format!(
                "Consumer {name} under stream {stream} already exists for account {}.",
                svc.account()
            ),
        ));
    }
    if live.len() >= CONSUMERS_PER_STREAM_MAX {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            format!(
                "Stream {stream} under account {} already has {CONSUMERS_PER_STREAM_MAX} consumers.",
                svc.account()
            ),
        ));
    }
    if live
        .iter()
        .filter(|c| c.status_at(now) == Some(ConsumerStatus::Creating))
        .count()
        >= CONSUMERS_CREATING_MAX
    {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            format!(
                "Stream {stream} under account {} already has {CONSUMERS_CREATING_MAX} consumers in CREATING state.",
                svc.account()
            ),
        ));
    }
    let delay = svc.config.state_delay_ms as i64;
    let consumer = ConsumerMeta {
        name: name.to_owned(),
        created_ms: now,
        status: if delay > 0 {
            ConsumerStatus::Creating
        } else {
            ConsumerStatus::Active
        },
        pending_until_ms: (delay > 0).then_some(now + delay),
        tags: input.tags.unwrap_or_default(),
        policy: None,
    };
    let out = consumer_json(svc, &stream, &consumer, now);
    s.meta.consumers.retain(|c| c.status_at(now).is_some());
    s.meta.consumers.push(consumer);
    svc.persist(&registry)?;
    super::json(json!({ "Consumer": out }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ConsumerRefInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    consumer_name: Option<String>,
    #[serde(rename = "ConsumerARN")]
    consumer_arn: Option<String>,
}

/// (stream, consumer name, creation seconds) from ConsumerARN, or StreamARN and
/// ConsumerName, or all three (which must agree).
fn consumer_ref(
    svc: &Kinesis,
    input: &ConsumerRefInput,
) -> ApiResult<(String, String, Option<i64>)> {
    let mut v = Violations::default();
    v.string(
        "streamARN",
        input.stream_arn.as_deref(),
        validate::STREAM_ARN,
    );
    v.string(
        "consumerName",
        input.consumer_name.as_deref(),
        validate::STREAM_NAME,
    );
    v.string(
        "consumerARN",
        input.consumer_arn.as_deref(),
        validate::RESOURCE_ARN,
    );
    v.finish()?;
    let by_arn = match input.consumer_arn.as_deref() {
        Some(arn) => match resource(svc, arn)? {
            Resource::Consumer {
                stream,
                name,
                created_s,
            } => Some((stream, name, created_s)),
            Resource::Stream(_) => {
                return Err(ApiError::invalid_argument(format!(
                    "Invalid ConsumerARN {arn}."
                )));
            }
        },
        None => None,
    };
    let by_name = match (input.stream_arn.as_deref(), input.consumer_name.as_deref()) {
        (Some(arn), Some(name)) => Some((stream_name(svc, None, Some(arn))?, name.to_owned())),
        _ => None,
    };
    match (by_arn, by_name) {
        (Some((s, n, _)), Some((s2, n2))) if s != s2 || n != n2 => Err(ApiError::invalid_argument(
            "ConsumerARN does not match StreamARN and ConsumerName.",
        )),
        (Some(found), _) => Ok(found),
        (None, Some((s, n))) => Ok((s, n, None)),
        (None, None) => Err(ApiError::invalid_argument(
            "Either ConsumerARN or both StreamARN and ConsumerName must be provided.",
        )),
    }
}

pub fn describe_stream_consumer(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: ConsumerRefInput = parse(body)?;
    let (stream, name, created_s) = consumer_ref(svc, &input)?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let s = find_mut(svc, &mut registry, &stream)?;
    let consumer = find_consumer(svc, s, &name, created_s)?.clone();
    let mut out = consumer_json(svc, &stream, &consumer, now);
    out["StreamARN"] = svc.stream_arn(&stream).into();
    super::json(json!({ "ConsumerDescription": out }))
}

pub fn deregister_stream_consumer(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: ConsumerRefInput = parse(body)?;
    let (stream, name, created_s) = consumer_ref(svc, &input)?;
    let now = svc.now_ms();
    let delay = svc.config.state_delay_ms as i64;
    let mut registry = svc.write();
    let s = find_mut(svc, &mut registry, &stream)?;
    let consumer = find_consumer(svc, s, &name, created_s)?;
    consumer.status = ConsumerStatus::Deleting;
    consumer.pending_until_ms = Some(now + delay);
    s.meta.consumers.retain(|c| c.status_at(now).is_some());
    svc.persist(&registry)?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListConsumersInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_timestamp")]
    stream_creation_timestamp: Option<f64>,
}

pub fn list_stream_consumers(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: ListConsumersInput = parse(body)?;
    let mut v = Violations::default();
    let arn = v.required("streamARN", input.stream_arn.as_deref());
    v.string("streamARN", arn, validate::STREAM_ARN);
    v.string(
        "nextToken",
        input.next_token.as_deref(),
        validate::NEXT_TOKEN,
    );
    v.int("maxResults", input.max_results, Some(1), Some(10000));
    v.finish()?;
    let stream = stream_name(svc, None, arn)?;
    let now = svc.now_ms();
    let max = input
        .max_results
        .map_or(LIST_CONSUMERS_MAX, |m| (m as usize).min(LIST_CONSUMERS_MAX));
    let skip = match input.next_token.as_deref() {
        None => 0,
        Some(token) => decode_token(token, &stream, now)?,
    };
    let registry = svc.read();
    let s = super::streams::find(svc, &registry, &stream)?;
    if input
        .stream_creation_timestamp
        .is_some_and(|t| t as i64 != s.meta.created_ms / 1000)
    {
        return Err(ApiError::stream_not_found(&stream, svc.account()));
    }
    let live: Vec<&ConsumerMeta> = s.live_consumers(now).collect();
    let page: Vec<Value> = live
        .iter()
        .skip(skip)
        .take(max)
        .map(|c| consumer_json(svc, &stream, c, now))
        .collect();
    let mut out = json!({ "Consumers": page });
    if skip + max < live.len() {
        out["NextToken"] = base64_simd::STANDARD
            .encode_to_string(format!("{now}|{}|{stream}", skip + max))
            .into();
    }
    super::json(out)
}

fn decode_token(token: &str, stream: &str, now: i64) -> ApiResult<usize> {
    let invalid = || ApiError::invalid_argument("Invalid NextToken.");
    let raw = base64_simd::STANDARD
        .decode_to_vec(token.as_bytes())
        .map_err(|_| invalid())?;
    let raw = String::from_utf8(raw).map_err(|_| invalid())?;
    let mut parts = raw.splitn(3, '|');
    let issued: i64 = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    let skip: usize = parts
        .next()
        .and_then(|p| p.parse().ok())
        .ok_or_else(invalid)?;
    if parts.next() != Some(stream) {
        return Err(invalid());
    }
    if now - issued > crate::limits::NEXT_TOKEN_LIFETIME_MS {
        return Err(ApiError::new(
            ErrorKind::ExpiredNextToken,
            "The NextToken has expired.",
        ));
    }
    Ok(skip)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PolicyInput {
    #[serde(rename = "ResourceARN")]
    resource_arn: Option<String>,
    policy: Option<String>,
}

/// Runs `f` on the policy slot of the stream or consumer an ARN names.
fn with_policy<T>(
    svc: &Kinesis,
    registry: &mut Registry,
    arn: &str,
    f: impl FnOnce(&mut Option<String>) -> T,
) -> ApiResult<T> {
    match resource(svc, arn)? {
        Resource::Stream(name) => Ok(f(&mut find_mut(svc, registry, &name)?.meta.policy)),
        Resource::Consumer {
            stream,
            name,
            created_s,
        } => {
            let s = find_mut(svc, registry, &stream)?;
            Ok(f(&mut find_consumer(svc, s, &name, created_s)?.policy))
        }
    }
}

fn policy_arn(input: &PolicyInput, v: &mut Violations) -> Option<String> {
    let arn = v.required("resourceARN", input.resource_arn.as_deref());
    v.string("resourceARN", arn, validate::RESOURCE_ARN);
    arn.map(str::to_owned)
}

pub fn put_resource_policy(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: PolicyInput = parse(body)?;
    let mut v = Violations::default();
    let arn = policy_arn(&input, &mut v);
    let policy = v.required("policy", input.policy.as_deref());
    v.finish()?;
    let policy = policy.expect("checked");
    if !serde_json::from_str::<Value>(policy).is_ok_and(|p| p.is_object()) {
        return Err(ApiError::invalid_argument(
            "Policy is not a valid JSON policy document.",
        ));
    }
    let mut registry = svc.write();
    with_policy(svc, &mut registry, &arn.expect("checked"), |slot| {
        *slot = Some(policy.to_owned())
    })?;
    svc.persist(&registry)?;
    empty()
}

pub fn get_resource_policy(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: PolicyInput = parse(body)?;
    let mut v = Violations::default();
    let arn = policy_arn(&input, &mut v);
    v.finish()?;
    let mut registry = svc.write();
    let policy = with_policy(svc, &mut registry, &arn.expect("checked"), |slot| {
        slot.clone()
    })?;
    // Kinesis answers "{}" for a resource without a policy.
    super::json(json!({ "Policy": policy.unwrap_or_else(|| "{}".into()) }))
}

pub fn delete_resource_policy(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: PolicyInput = parse(body)?;
    let mut v = Violations::default();
    let arn = policy_arn(&input, &mut v);
    v.finish()?;
    let mut registry = svc.write();
    with_policy(svc, &mut registry, &arn.expect("checked"), |slot| {
        *slot = None
    })?;
    svc.persist(&registry)?;
    empty()
}
