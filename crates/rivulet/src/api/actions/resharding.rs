//! SplitShard, MergeShards and UpdateShardCount.
//!
//! A parent shard is closed by a seal barrier in its writer's queue (`WriterPool::seal_blocking`):
//! every write queued before the barrier lands in the parent, every write after it comes
//! back and is routed to the children. Children only exist once the parent is sealed, so for
//! each partition key all records in the parent come before all records in its child, and a
//! reader that finishes a parent before starting its children reads each key in order.
//! UpdateShardCount is built from the same splits and merges, so its short-lived shards have
//! the two-parent lineage Kinesis clients know how to follow.

use serde::Deserialize;
use serde_json::json;

use super::streams::{find_mut, open_shards, shard_limit_exceeded};
use super::{ApiResult, check_stream_ref, empty, parse, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations};
use crate::control::count_last_day;
use crate::control::hash::{even_ranges, parse_hash_key};
use crate::control::{
    Closed, ShardMeta, Stream, StreamMode, StreamStatus, lane, parse_shard_id, shard_id,
};
use crate::service::{Kinesis, Registry, require_active};

/// Scalings allowed per stream in a rolling day, and the largest stream UpdateShardCount
/// makes.
const SCALINGS_PER_DAY_MAX: usize = 10;
const UPDATE_SHARD_COUNT_TARGET_MAX: i64 = 10_000;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SplitShardInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_split: Option<String>,
    new_starting_hash_key: Option<String>,
}

pub fn split_shard(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: SplitShardInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let shard = v.required("shardToSplit", input.shard_to_split.as_deref());
    v.string("shardToSplit", shard, validate::SHARD_ID);
    let key = v.required("newStartingHashKey", input.new_starting_hash_key.as_deref());
    v.string("newStartingHashKey", key, validate::HASH_KEY);
    v.finish()?;
    let (shard, key) = (shard.expect("checked"), key.expect("checked"));
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let open_in_account = open_shards(&registry, now);
    let stream = mutable_stream(svc, &mut registry, &name, now)?;
    let parent = open_shard(svc, stream, shard)?;
    let invalid_key = || {
        ApiError::invalid_argument(format!(
            "NewStartingHashKey {key} used in SplitShard() on shard {shard} in stream {name} under account {} \
             is not both greater than one plus the shard's StartingHashKey {} and less than the shard's \
             EndingHashKey {}.",
            svc.account(),
            parent.start_hash,
            parent.end_hash
        ))
    };
    let split_at = parse_hash_key(key).ok_or_else(invalid_key)?;
    if split_at <= parent.start_hash.saturating_add(1) || split_at >= parent.end_hash {
        return Err(invalid_key());
    }
    if open_in_account + 1 > u64::from(svc.config.shard_limit) {
        return Err(shard_limit_exceeded(svc, open_in_account, 1));
    }
    let parent = parent.index;
    change(svc, stream, now, |svc, stream| {
        split(svc, stream, parent, split_at, now).map(|_| ())
    })?;
    svc.persist(&registry)?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MergeShardsInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_to_merge: Option<String>,
    adjacent_shard_to_merge: Option<String>,
}

pub fn merge_shards(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: MergeShardsInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let a = v.required("shardToMerge", input.shard_to_merge.as_deref());
    v.string("shardToMerge", a, validate::SHARD_ID);
    let b = v.required(
        "adjacentShardToMerge",
        input.adjacent_shard_to_merge.as_deref(),
    );
    v.string("adjacentShardToMerge", b, validate::SHARD_ID);
    v.finish()?;
    let (a, b) = (a.expect("checked"), b.expect("checked"));
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let stream = mutable_stream(svc, &mut registry, &name, now)?;
    let (first, second) = (open_shard(svc, stream, a)?, open_shard(svc, stream, b)?);
    let adjacent = first.end_hash.checked_add(1) == Some(second.start_hash)
        || second.end_hash.checked_add(1) == Some(first.start_hash);
    if !adjacent || first.index == second.index {
        return Err(ApiError::invalid_argument(format!(
            "Shards {a} and {b} in stream {name} under account {} are not an adjacent pair of shards eligible for merging",
            svc.account()
        )));
    }
    let (first, second) = (first.index, second.index);
    change(svc, stream, now, |svc, stream| {
        merge(svc, stream, first, second, now).map(|_| ())
    })?;
    svc.persist(&registry)?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UpdateShardCountInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    target_shard_count: Option<i64>,
    scaling_type: Option<String>,
}

pub fn update_shard_count(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: UpdateShardCountInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let target = v.required("targetShardCount", input.target_shard_count);
    v.int("targetShardCount", target, Some(1), None);
    let scaling = v.required("scalingType", input.scaling_type.as_deref());
    v.one_of("scalingType", scaling, &["UNIFORM_SCALING"]);
    v.finish()?;
    let target = target.expect("checked");
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let open_in_account = open_shards(&registry, now);
    let stream = mutable_stream(svc, &mut registry, &name, now)?;
    let current = stream.open_shard_count() as i64;
    let limit = |message: String| ApiError::new(ErrorKind::LimitExceeded, message);
    if target > current * 2 {
        return Err(limit(format!(
            "UpdateShardCount cannot scale up over double your current open shard count. \
             Current open shard count: {current} Target shard count: {target}"
        )));
    }
    if target * 2 < current {
        return Err(limit(format!(
            "UpdateShardCount cannot scale down below half your current open shard count. \
             Current open shard count: {current} Target shard count: {target}"
        )));
    }
    if target > UPDATE_SHARD_COUNT_TARGET_MAX {
        return Err(limit(format!(
            "UpdateShardCount cannot scale a stream above {UPDATE_SHARD_COUNT_TARGET_MAX} shards. Target shard count: {target}"
        )));
    }
    if open_in_account as i64 - current + target > i64::from(svc.config.shard_limit) {
        return Err(shard_limit_exceeded(
            svc,
            open_in_account,
            (target - current).max(0) as u32,
        ));
    }
    if count_last_day(&mut stream.meta.scalings_ms, now) >= SCALINGS_PER_DAY_MAX {
        return Err(limit(format!(
            "Stream {name} under account {} has already been scaled {SCALINGS_PER_DAY_MAX} times in the last 24 hours.",
            svc.account()
        )));
    }
    change(svc, stream, now, |svc, stream| {
        scale_uniformly(svc, stream, target as u32, now)
    })?;
    stream.meta.scalings_ms.push(now);
    svc.persist(&registry)?;
    super::json(json!({
        "StreamName": name,
        "StreamARN": svc.stream_arn(&name),
        "CurrentShardCount": current,
        "TargetShardCount": target,
    }))
}

/// Splits a hot shard of an ON_DEMAND stream at `at`: on-demand scaling
/// (`control::autoscale`). Does nothing if the stream is no longer ACTIVE and ON_DEMAND or
/// the shard is no longer open.
pub(crate) fn split_hot_shard(svc: &Kinesis, name: &str, index: u32, at: u128) -> ApiResult<()> {
    let now = svc.now_ms();
    let mut registry = svc.write();
    let open_in_account = open_shards(&registry, now);
    if open_in_account + 1 > u64::from(svc.config.shard_limit) {
        return Err(shard_limit_exceeded(svc, open_in_account, 1));
    }
    let stream = find_mut(svc, &mut registry, name)?;
    let eligible = stream.status_at(now) == Some(StreamStatus::Active)
        && stream.meta.mode == StreamMode::OnDemand
        && stream
            .shard(index)
            .is_some_and(|s| s.is_open() && s.start_hash.saturating_add(1) < at && at < s.end_hash);
    if !eligible {
        return Ok(());
    }
    change(svc, stream, now, |svc, stream| {
        split(svc, stream, index, at, now).map(|_| ())
    })?;
    svc.persist(&registry)
}

/// The stream a resharding request changes: ACTIVE and provisioned.
fn mutable_stream<'a>(
    svc: &Kinesis,
    registry: &'a mut Registry,
    name: &str,
    now: i64,
) -> ApiResult<&'a mut Stream> {
    let stream = find_mut(svc, registry, name)?;
    require_active(stream, now, svc.account())?;
    if stream.meta.mode == StreamMode::OnDemand {
        return Err(ApiError::new(
            ErrorKind::Validation,
            format!(
                "Stream {name} under account {} is in ON_DEMAND mode; resharding is only for PROVISIONED streams.",
                svc.account()
            ),
        ));
    }
    Ok(stream)
}

fn open_shard<'a>(svc: &Kinesis, stream: &'a Stream, id: &str) -> ApiResult<&'a ShardMeta> {
    let shard = parse_shard_id(id)
        .and_then(|i| stream.shard(i))
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::ResourceNotFound,
                format!(
                    "Could not find shard {id} in stream {} under account {}.",
                    stream.meta.name,
                    svc.account()
                ),
            )
        })?;
    if !shard.is_open() {
        return Err(ApiError::invalid_argument(format!(
            "Shard {id} in stream {} under account {} has already been merged or split, and thus is not eligible for merging or splitting.",
            stream.meta.name,
            svc.account()
        )));
    }
    Ok(shard)
}

/// Applies a shard-map change, or on failure puts the stream back as it was: metadata,
/// seal flags and the logs of shards the change had created.
fn change(
    svc: &Kinesis,
    stream: &mut Stream,
    now: i64,
    apply: impl FnOnce(&Kinesis, &mut Stream) -> ApiResult<()>,
) -> ApiResult<()> {
    let before = stream.meta.clone();
    if let Err(e) = apply(svc, stream) {
        let created: Vec<u32> = stream
            .shards
            .keys()
            .copied()
            .filter(|i| before.shards.iter().all(|s| s.index != *i))
            .collect();
        for index in created {
            stream.shards.remove(&index);
            let _ = svc
                .backend
                .delete_shard(&stream.storage_key(), &shard_id(index));
        }
        for shard in &before.shards {
            if let Some(runtime) = stream.shards.get(&shard.index) {
                runtime
                    .sealed
                    .store(shard.closed.is_some(), std::sync::atomic::Ordering::SeqCst);
            }
        }
        stream.meta = before;
        return Err(e);
    }
    stream.begin_update(now, svc.config.state_delay_ms as i64);
    Ok(())
}

/// Closes a shard behind the writes already queued for it and records where it ended.
fn close(svc: &Kinesis, stream: &mut Stream, index: u32, now: i64) -> ApiResult<()> {
    let runtime = stream.shards.get(&index).ok_or_else(ApiError::internal)?;
    let end_position = svc
        .writers
        .seal_blocking(lane(stream.meta.created_ms, index), runtime)?;
    let shard = stream
        .meta
        .shards
        .iter_mut()
        .find(|s| s.index == index)
        .ok_or_else(ApiError::internal)?;
    shard.closed = Some(Closed {
        end_position,
        closed_ms: now,
    });
    Ok(())
}

/// Adds an open shard with a new index and an empty log.
fn add(
    svc: &Kinesis,
    stream: &mut Stream,
    range: (u128, u128),
    parents: (u32, Option<u32>),
    now: i64,
) -> ApiResult<u32> {
    let index = stream.meta.next_shard_index;
    let log = svc
        .backend
        .open_shard(&stream.storage_key(), &shard_id(index))?;
    stream.meta.next_shard_index += 1;
    stream.shards.insert(index, svc.shard_runtime(log, false));
    stream.meta.shards.push(ShardMeta {
        index,
        parent: Some(parents.0),
        adjacent_parent: parents.1,
        start_hash: range.0,
        end_hash: range.1,
        created_ms: now,
        closed: None,
    });
    Ok(index)
}

fn split(
    svc: &Kinesis,
    stream: &mut Stream,
    index: u32,
    at: u128,
    now: i64,
) -> ApiResult<(u32, u32)> {
    let parent = stream.shard(index).ok_or_else(ApiError::internal)?;
    let (start, end) = (parent.start_hash, parent.end_hash);
    close(svc, stream, index, now)?;
    let low = add(svc, stream, (start, at - 1), (index, None), now)?;
    let high = add(svc, stream, (at, end), (index, None), now)?;
    Ok((low, high))
}

fn merge(
    svc: &Kinesis,
    stream: &mut Stream,
    index: u32,
    adjacent: u32,
    now: i64,
) -> ApiResult<u32> {
    let (a, b) = (
        stream.shard(index).ok_or_else(ApiError::internal)?,
        stream.shard(adjacent).ok_or_else(ApiError::internal)?,
    );
    let range = (a.start_hash.min(b.start_hash), a.end_hash.max(b.end_hash));
    close(svc, stream, index, now)?;
    close(svc, stream, adjacent, now)?;
    add(svc, stream, range, (index, Some(adjacent)), now)
}

/// Reaches `target` evenly sized open shards by splits and merges: first split every open
/// shard that a target boundary crosses, so each open shard lies inside one target range,
/// then merge the shards inside each target range left to right.
fn scale_uniformly(svc: &Kinesis, stream: &mut Stream, target: u32, now: i64) -> ApiResult<()> {
    let ranges = even_ranges(target);
    for &(boundary, _) in &ranges[1..] {
        let crossing = stream
            .meta
            .shards
            .iter()
            .find(|s| s.is_open() && s.start_hash < boundary && boundary <= s.end_hash)
            .map(|s| s.index);
        if let Some(index) = crossing {
            split(svc, stream, index, boundary, now)?;
        }
    }
    for &(start, end) in &ranges {
        loop {
            let mut inside: Vec<(u128, u32)> = stream
                .meta
                .shards
                .iter()
                .filter(|s| s.is_open() && start <= s.start_hash && s.end_hash <= end)
                .map(|s| (s.start_hash, s.index))
                .collect();
            if inside.len() < 2 {
                break;
            }
            inside.sort_unstable();
            merge(svc, stream, inside[0].1, inside[1].1, now)?;
        }
    }
    Ok(())
}
