//! ListShards and the shard description every listing shares.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::streams::find;
use super::{ApiResult, check_stream_ref, de_timestamp, parse, seconds_to_ms, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations};
use crate::control::{ShardMeta, Stream, parse_shard_id, shard_id};
use crate::data::sequence::{SequenceNumber, stream_epoch};
use crate::limits;
use crate::service::Kinesis;

/// A shard as DescribeStream and ListShards show it.
pub fn shard_json(stream: &Stream, shard: &ShardMeta) -> Value {
    let seq = |position| {
        SequenceNumber {
            stream_epoch: stream_epoch(stream.meta.created_ms),
            shard_index: shard.index,
            position,
        }
        .to_string()
    };
    let mut range = json!({ "StartingSequenceNumber": seq(0) });
    if let Some(closed) = shard.closed {
        range["EndingSequenceNumber"] = seq(closed.end_position.saturating_sub(1)).into();
    }
    let mut out = json!({
        "ShardId": shard.id(),
        "HashKeyRange": {
            "StartingHashKey": shard.start_hash.to_string(),
            "EndingHashKey": shard.end_hash.to_string(),
        },
        "SequenceNumberRange": range,
    });
    if let Some(p) = shard.parent {
        out["ParentShardId"] = shard_id(p).into();
    }
    if let Some(p) = shard.adjacent_parent {
        out["AdjacentParentShardId"] = shard_id(p).into();
    }
    out
}

#[derive(Deserialize, Serialize, Clone, Default)]
#[serde(rename_all = "PascalCase")]
struct ShardFilter {
    #[serde(rename = "Type")]
    kind: Option<String>,
    shard_id: Option<String>,
    #[serde(default, deserialize_with = "de_timestamp")]
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    next_token: Option<String>,
    exclusive_start_shard_id: Option<String>,
    max_results: Option<i64>,
    #[serde(default, deserialize_with = "de_timestamp")]
    stream_creation_timestamp: Option<f64>,
    shard_filter: Option<ShardFilter>,
}

/// What a ListShards NextToken carries: enough to continue the same listing.
#[derive(Serialize, Deserialize)]
struct Token {
    stream: String,
    created_ms: i64,
    after: u32,
    filter: ShardFilter,
    issued_ms: i64,
}

const FILTER_TYPES: [&str; 6] = [
    "AFTER_SHARD_ID",
    "AT_TRIM_HORIZON",
    "FROM_TRIM_HORIZON",
    "AT_LATEST",
    "AT_TIMESTAMP",
    "FROM_TIMESTAMP",
];

pub fn list_shards(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: ListShardsInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    v.string(
        "nextToken",
        input.next_token.as_deref(),
        validate::NEXT_TOKEN,
    );
    v.string(
        "exclusiveStartShardId",
        input.exclusive_start_shard_id.as_deref(),
        validate::SHARD_ID,
    );
    v.int("maxResults", input.max_results, Some(1), Some(10000));
    if let Some(f) = &input.shard_filter {
        v.required("shardFilter.type", f.kind.as_deref());
        v.one_of("shardFilter.type", f.kind.as_deref(), &FILTER_TYPES);
        v.string(
            "shardFilter.shardId",
            f.shard_id.as_deref(),
            validate::SHARD_ID,
        );
    }
    v.finish()?;
    let now = svc.now_ms();
    let max = input.max_results.map_or(limits::LIST_SHARDS_MAX, |m| {
        (m as usize).min(limits::LIST_SHARDS_MAX)
    });

    let (name, created_ms, after, filter) = match &input.next_token {
        Some(token) => {
            if input.stream_name.is_some() || input.stream_arn.is_some() {
                return Err(ApiError::invalid_argument(
                    "NextToken and StreamName cannot be provided together.",
                ));
            }
            if input.exclusive_start_shard_id.is_some() || input.stream_creation_timestamp.is_some()
            {
                return Err(ApiError::invalid_argument(
                    "NextToken cannot be provided together with ExclusiveStartShardId or StreamCreationTimestamp.",
                ));
            }
            let t = decode_token(token, now)?;
            (t.stream, Some(t.created_ms), Some(t.after), t.filter)
        }
        None => {
            if input.stream_name.is_none() && input.stream_arn.is_none() {
                return Err(ApiError::invalid_argument(
                    "Either NextToken or StreamName should be provided.",
                ));
            }
            let name = stream_name(
                svc,
                input.stream_name.as_deref(),
                input.stream_arn.as_deref(),
            )?;
            let after = input
                .exclusive_start_shard_id
                .as_deref()
                .and_then(parse_shard_id);
            (
                name,
                None,
                after,
                input.shard_filter.clone().unwrap_or_default(),
            )
        }
    };
    let registry = svc.read();
    let stream = find(svc, &registry, &name)?;
    let created_s = stream.meta.created_ms / 1000;
    let stale_token = created_ms.is_some_and(|c| c != stream.meta.created_ms);
    let other_incarnation = input
        .stream_creation_timestamp
        .is_some_and(|t| (t as i64) != created_s);
    if stale_token || other_incarnation {
        return Err(ApiError::stream_not_found(&name, svc.account()));
    }
    let keep = shard_predicate(stream, &filter, now)?;
    let mut shards = stream
        .visible_shards(now)
        .filter(|s| after.is_none_or(|a| s.index > a))
        .filter(|s| keep(s));
    let page: Vec<&ShardMeta> = shards.by_ref().take(max).collect();
    let more = shards.next().is_some();
    let mut out =
        json!({ "Shards": page.iter().map(|s| shard_json(stream, s)).collect::<Vec<_>>() });
    if more && let Some(last) = page.last() {
        let token = Token {
            stream: name.clone(),
            created_ms: stream.meta.created_ms,
            after: last.index,
            filter,
            issued_ms: now,
        };
        out["NextToken"] = encode_token(&token).into();
    }
    super::json(out)
}

type ShardPredicate<'a> = Box<dyn Fn(&ShardMeta) -> bool + 'a>;

/// Which shards a ShardFilter keeps, following lineage through open and close times.
fn shard_predicate<'a>(
    stream: &'a Stream,
    filter: &ShardFilter,
    now: i64,
) -> ApiResult<ShardPredicate<'a>> {
    let created = stream.meta.created_ms;
    // The shards open at `t`; at or before the stream's creation, the shards it was created
    // with (a reshard in the stream's first millisecond must not hide them).
    let open_at = move |t: i64| {
        move |s: &ShardMeta| {
            if t <= created {
                return s.parent.is_none() && s.adjacent_parent.is_none();
            }
            s.created_ms <= t && s.closed.is_none_or(|c| c.closed_ms > t)
        }
    };
    let timestamp = || {
        filter.timestamp.map(seconds_to_ms).ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "Timestamp must be specified for ShardFilter of type {}.",
                filter.kind.as_deref().unwrap_or_default()
            ))
        })
    };
    Ok(match filter.kind.as_deref() {
        None | Some("FROM_TRIM_HORIZON") => Box::new(|_| true),
        Some("AT_LATEST") => Box::new(|s| s.is_open()),
        Some("AT_TRIM_HORIZON") => {
            let horizon = (now - stream.meta.retention_hours * 3_600_000).max(created);
            Box::new(open_at(horizon))
        }
        Some("AT_TIMESTAMP") => Box::new(open_at(timestamp()?.max(created))),
        Some("FROM_TIMESTAMP") => {
            let t = timestamp()?.max(created);
            Box::new(move |s| s.closed.is_none_or(|c| c.closed_ms > t))
        }
        Some("AFTER_SHARD_ID") => {
            let id = filter.shard_id.as_deref().ok_or_else(|| {
                ApiError::invalid_argument(
                    "ShardId must be specified for ShardFilter of type AFTER_SHARD_ID.",
                )
            })?;
            let index = parse_shard_id(id).ok_or_else(|| {
                ApiError::invalid_argument(format!("Invalid ShardId {id} in ShardFilter."))
            })?;
            Box::new(move |s| s.index > index)
        }
        Some(other) => {
            return Err(ApiError::invalid_argument(format!(
                "Unknown ShardFilter type {other}."
            )));
        }
    })
}

fn encode_token(token: &Token) -> String {
    base64_simd::STANDARD.encode_to_string(serde_json::to_vec(token).expect("token serializes"))
}

fn decode_token(token: &str, now: i64) -> ApiResult<Token> {
    let invalid = || ApiError::invalid_argument("Invalid NextToken.");
    let raw = base64_simd::STANDARD
        .decode_to_vec(token.as_bytes())
        .map_err(|_| invalid())?;
    let token: Token = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    if now - token.issued_ms > limits::NEXT_TOKEN_LIFETIME_MS {
        return Err(ApiError::new(
            ErrorKind::ExpiredNextToken,
            "The NextToken has expired.",
        ));
    }
    Ok(token)
}
