//! The control plane's model: streams, shards and their lineage, hash-key ranges, states,
//! retention and tags, and how this metadata is stored.
//!
//! The model already holds what resharding needs: closed shards keep their range and gain
//! an ending position, children name their parents, and shard indexes only grow.

pub mod autoscale;
pub mod hash;
pub mod keys;
pub mod store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::data::throughput::{ShardRates, ShardThroughput};
use crate::storage::ShardLog;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamStatus {
    Creating,
    Deleting,
    Active,
    Updating,
}

impl StreamStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamStatus::Creating => "CREATING",
            StreamStatus::Deleting => "DELETING",
            StreamStatus::Active => "ACTIVE",
            StreamStatus::Updating => "UPDATING",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StreamMode {
    Provisioned,
    OnDemand,
}

impl StreamMode {
    pub fn as_str(self) -> &'static str {
        match self {
            StreamMode::Provisioned => "PROVISIONED",
            StreamMode::OnDemand => "ON_DEMAND",
        }
    }
}

/// What happens when a transitional state's delay is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub until_ms: i64,
    /// `None` means the stream is removed (the end of DELETING).
    pub then: Option<StreamStatus>,
}

/// A stream's persisted description.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamMeta {
    pub name: String,
    pub created_ms: i64,
    pub status: StreamStatus,
    pub pending: Option<Pending>,
    pub mode: StreamMode,
    pub retention_hours: i64,
    pub tags: BTreeMap<String, String>,
    pub shards: Vec<ShardMeta>,
    /// The index the next new shard gets; indexes are never reused.
    pub next_shard_index: u32,
    pub max_record_size_kib: u32,
    pub shard_level_metrics: Vec<String>,
    /// When UpdateShardCount ran, for its limit per rolling 24 hours.
    #[serde(default)]
    pub scalings_ms: Vec<i64>,
    /// When UpdateStreamMode switched the mode, for its limit of 2 per rolling 24 hours.
    #[serde(default)]
    pub mode_switches_ms: Vec<i64>,
    /// UpdateStreamWarmThroughput's target, for on-demand streams.
    #[serde(default)]
    pub warm_throughput_mibps: Option<i64>,
    /// The resource policy attached to the stream, as the JSON text it was given.
    #[serde(default)]
    pub policy: Option<String>,
    /// Registered enhanced fan-out consumers.
    #[serde(default)]
    pub consumers: Vec<ConsumerMeta>,
    /// Server-side encryption of new records, while on.
    #[serde(default)]
    pub encryption: Option<Encryption>,
    /// When Start/StopStreamEncryption succeeded, for their limits per rolling 24 hours.
    #[serde(default)]
    pub encryption_changes_ms: Vec<i64>,
}

/// A stream's encryption: the KeyId as the client gave it, and the key it names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Encryption {
    pub key_id: String,
    pub key_number: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConsumerStatus {
    Creating,
    Deleting,
    Active,
}

impl ConsumerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsumerStatus::Creating => "CREATING",
            ConsumerStatus::Deleting => "DELETING",
            ConsumerStatus::Active => "ACTIVE",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsumerMeta {
    pub name: String,
    pub created_ms: i64,
    pub status: ConsumerStatus,
    /// When a CREATING or DELETING consumer's change completes; `None` once settled.
    pub pending_until_ms: Option<i64>,
    pub tags: BTreeMap<String, String>,
    pub policy: Option<String>,
}

impl ConsumerMeta {
    /// The state at `now_ms`, or `None` once a deregistration has completed.
    pub fn status_at(&self, now_ms: i64) -> Option<ConsumerStatus> {
        match (self.status, self.pending_until_ms) {
            (ConsumerStatus::Deleting, Some(t)) if now_ms >= t => None,
            (ConsumerStatus::Creating, Some(t)) if now_ms >= t => Some(ConsumerStatus::Active),
            (status, _) => Some(status),
        }
    }
}

/// Account-wide settings (DescribeAccountSettings / UpdateAccountSettings).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountMeta {
    /// The minimum throughput billing commitment ("On-demand Advantage"), once enabled.
    pub commitment: Option<Commitment>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Commitment {
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
}

impl Commitment {
    /// A commitment lasts at least a day.
    pub const MINIMUM_MS: i64 = 86_400_000;

    pub fn is_active(&self) -> bool {
        self.ended_ms.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardMeta {
    pub index: u32,
    pub parent: Option<u32>,
    pub adjacent_parent: Option<u32>,
    #[serde(with = "u128_decimal")]
    pub start_hash: u128,
    #[serde(with = "u128_decimal")]
    pub end_hash: u128,
    pub created_ms: i64,
    pub closed: Option<Closed>,
}

/// A shard that no longer takes writes (after a split or merge).
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Closed {
    /// One past its last record.
    pub end_position: u64,
    pub closed_ms: i64,
}

impl ShardMeta {
    pub fn id(&self) -> String {
        shard_id(self.index)
    }

    pub fn is_open(&self) -> bool {
        self.closed.is_none()
    }

    /// A closed shard expires once everything in it is past retention; it then disappears
    /// from DescribeStream and ListShards.
    pub fn is_expired(&self, now_ms: i64, retention_hours: i64) -> bool {
        self.closed
            .is_some_and(|c| c.closed_ms + retention_hours * 3_600_000 <= now_ms)
    }
}

pub fn shard_id(index: u32) -> String {
    format!("shardId-{index:012}")
}

/// Parses `shardId-000000000001`, and the short forms peers accept (`shardId-1`, `1`).
pub fn parse_shard_id(id: &str) -> Option<u32> {
    let digits = id.strip_prefix("shardId-").unwrap_or(id);
    if digits.is_empty() || digits.len() > 12 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Counters the write and read paths bump for each shard; the metrics issue builds
/// CloudWatch and Prometheus figures on them.
#[derive(Debug, Default)]
pub struct ShardCounters {
    pub incoming_records: AtomicU64,
    pub incoming_bytes: AtomicU64,
    pub outgoing_records: AtomicU64,
    pub outgoing_bytes: AtomicU64,
    /// Records refused with ProvisionedThroughputExceededException.
    pub write_throttled: AtomicU64,
    /// GetRecords calls refused with ProvisionedThroughputExceededException.
    pub read_throttled: AtomicU64,
}

impl ShardCounters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// A shard's open log and counters.
#[derive(Clone)]
pub struct ShardRuntime {
    pub log: Arc<dyn ShardLog>,
    pub counters: Arc<ShardCounters>,
    pub throughput: Arc<ShardThroughput>,
    /// Set by the shard's writer when a split or merge closes it; no write lands after.
    pub sealed: Arc<AtomicBool>,
    /// Recent traffic, for on-demand scaling.
    pub load: Arc<autoscale::ShardLoad>,
    /// Woken by the shard's writer when new records become visible, so SubscribeToShard
    /// pushes them at once instead of at its next poll.
    pub appended: Arc<tokio::sync::Notify>,
}

impl ShardRuntime {
    pub fn new(
        log: Arc<dyn ShardLog>,
        sealed: bool,
        rates: ShardRates,
        now_ms: i64,
    ) -> ShardRuntime {
        ShardRuntime {
            log,
            counters: Arc::default(),
            throughput: Arc::new(ShardThroughput::new(rates, now_ms)),
            sealed: Arc::new(AtomicBool::new(sealed)),
            load: Arc::default(),
            appended: Arc::default(),
        }
    }
}

/// The writer lane of a shard: stable for the shard, spread across shards, so that one
/// shard's writes always go through one writer thread, in order.
pub fn lane(stream_created_ms: i64, shard_index: u32) -> u64 {
    (stream_created_ms as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(shard_index)
}

/// A stream in memory: its metadata and the runtime of each shard that still has a log.
pub struct Stream {
    pub meta: StreamMeta,
    pub shards: BTreeMap<u32, ShardRuntime>,
    /// The open shards in hash-key order, built on first use after the shard list changed
    /// (keyed by its length and last index: resharding always adds shards with new, higher
    /// indices, and expiry removes closed ones).
    routes: Mutex<Option<(RoutesKey, Arc<[OpenShard]>)>>,
}

/// The shard list's length and last index, which change whenever its shards do.
type RoutesKey = (usize, u32);

/// The open shard whose hash range holds `hash` (`open` sorted by start hash).
pub fn route(open: &[OpenShard], hash: u128) -> Option<&OpenShard> {
    let after = open.partition_point(|s| s.start_hash <= hash);
    open[..after].last().filter(|s| hash <= s.end_hash)
}

/// An open shard as writes route to it.
#[derive(Clone)]
pub struct OpenShard {
    pub index: u32,
    pub start_hash: u128,
    pub end_hash: u128,
    pub runtime: ShardRuntime,
}

impl Stream {
    pub fn new(meta: StreamMeta, shards: BTreeMap<u32, ShardRuntime>) -> Stream {
        Stream {
            meta,
            shards,
            routes: Mutex::new(None),
        }
    }

    /// The open shards sorted by hash range, for `route`; shared until the shards change, so
    /// a write costs the same with 1 or 10,000 shards.
    pub fn open_shards(&self) -> Arc<[OpenShard]> {
        let key = (
            self.meta.shards.len(),
            self.meta.shards.last().map_or(0, |s| s.index),
        );
        let mut routes = self.routes.lock().expect("routes lock");
        if let Some((k, open)) = routes.as_ref()
            && *k == key
        {
            return open.clone();
        }
        let mut open: Vec<OpenShard> = self
            .meta
            .shards
            .iter()
            .filter(|s| s.is_open())
            .filter_map(|s| {
                self.shards.get(&s.index).map(|r| OpenShard {
                    index: s.index,
                    start_hash: s.start_hash,
                    end_hash: s.end_hash,
                    runtime: r.clone(),
                })
            })
            .collect();
        open.sort_by_key(|s| s.start_hash);
        let open: Arc<[OpenShard]> = open.into();
        *routes = Some((key, open.clone()));
        open
    }

    /// Unique per incarnation, so a recreated stream never sees an old one's files.
    pub fn storage_key(&self) -> String {
        storage_key(&self.meta.name, self.meta.created_ms)
    }

    /// The state as clients see it at `now_ms`, or `None` once a deletion has completed.
    pub fn status_at(&self, now_ms: i64) -> Option<StreamStatus> {
        match self.meta.pending {
            Some(p) if now_ms >= p.until_ms => p.then,
            _ => Some(self.meta.status),
        }
    }

    /// Consumers registered and not yet deregistered at `now_ms`.
    pub fn live_consumers(&self, now_ms: i64) -> impl Iterator<Item = &ConsumerMeta> {
        self.meta
            .consumers
            .iter()
            .filter(move |c| c.status_at(now_ms).is_some())
    }

    /// Where the live consumer `name` is (of the incarnation created at `created_s`, if
    /// given) in `meta.consumers`.
    pub fn consumer_index(&self, name: &str, created_s: Option<i64>, now_ms: i64) -> Option<usize> {
        self.meta.consumers.iter().position(|c| {
            c.name == name
                && c.status_at(now_ms).is_some()
                && created_s.is_none_or(|t| t == c.created_ms / 1000)
        })
    }

    /// Shows UPDATING for `delay_ms` after a change, as Kinesis does while it applies one.
    pub fn begin_update(&mut self, now_ms: i64, delay_ms: i64) {
        if delay_ms > 0 {
            self.meta.status = StreamStatus::Updating;
            self.meta.pending = Some(Pending {
                until_ms: now_ms + delay_ms,
                then: Some(StreamStatus::Active),
            });
        }
    }

    /// The open shard whose hash range holds `hash_key`.
    pub fn route(&self, hash_key: u128) -> Option<&ShardMeta> {
        self.meta
            .shards
            .iter()
            .find(|s| s.is_open() && s.start_hash <= hash_key && hash_key <= s.end_hash)
    }

    pub fn shard(&self, index: u32) -> Option<&ShardMeta> {
        self.meta.shards.iter().find(|s| s.index == index)
    }

    pub fn open_shard_count(&self) -> usize {
        self.meta.shards.iter().filter(|s| s.is_open()).count()
    }

    /// Shards not yet expired, in index order.
    pub fn visible_shards(&self, now_ms: i64) -> impl Iterator<Item = &ShardMeta> {
        let retention = self.meta.retention_hours;
        self.meta
            .shards
            .iter()
            .filter(move |s| !s.is_expired(now_ms, retention))
    }
}

/// Forgets the times older than a day and returns how many are left: the count that
/// Kinesis's per-rolling-day limits are checked against.
pub fn count_last_day(times: &mut Vec<i64>, now_ms: i64) -> usize {
    times.retain(|t| now_ms - t < 86_400_000);
    times.len()
}

pub fn storage_key(name: &str, created_ms: i64) -> String {
    format!("{name}.{created_ms}")
}

mod u128_decimal {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &u128, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u128, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_ids_format_and_parse() {
        assert_eq!(shard_id(0), "shardId-000000000000");
        assert_eq!(shard_id(42), "shardId-000000000042");
        assert_eq!(parse_shard_id("shardId-000000000042"), Some(42));
        assert_eq!(parse_shard_id("shardId-7"), Some(7));
        assert_eq!(parse_shard_id("7"), Some(7));
        assert_eq!(parse_shard_id("shardId-"), None);
        assert_eq!(parse_shard_id("shard-x"), None);
    }

    #[test]
    fn route_finds_the_range_holding_a_hash_key_by_binary_search() {
        let dir = std::env::temp_dir().join(format!("rivulet-route-{}", std::process::id()));
        let log: Arc<dyn ShardLog> =
            Arc::new(seglog::Log::open(&dir, seglog::LogConfig::default()).unwrap());
        let runtime = ShardRuntime::new(log, false, ShardRates::OFF, 0);
        // 1,000 equal ranges, listed out of order.
        let width = u128::MAX / 1000;
        let mut open: Vec<OpenShard> = (0..1000u32)
            .rev()
            .map(|i| OpenShard {
                index: i,
                start_hash: width * i as u128,
                end_hash: if i == 999 {
                    u128::MAX
                } else {
                    width * (i as u128 + 1) - 1
                },
                runtime: runtime.clone(),
            })
            .collect();
        open.sort_by_key(|s| s.start_hash);
        for i in [0u32, 1, 499, 998, 999] {
            let start = width * i as u128;
            assert_eq!(route(&open, start).unwrap().index, i);
            assert_eq!(route(&open, start + width / 2).unwrap().index, i);
        }
        assert_eq!(route(&open, width - 1).unwrap().index, 0);
        assert_eq!(route(&open, u128::MAX).unwrap().index, 999);
        // A hash in no open range (between a closed parent's children, say) routes nowhere.
        open.remove(500);
        assert!(route(&open, width * 500).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
