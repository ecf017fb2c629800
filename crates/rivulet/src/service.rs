//! `Kinesis`: the state one server holds — configuration, clock, stream registry, shard
//! writers and the iterator key — and the housekeeping that runs on a timer (state
//! transitions, retention, interval fsync).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::api::error::{ApiError, ApiResult};
use crate::clock::SharedClock;
use crate::config::{Config, FsyncPolicy};
use crate::control::keys::KeyStore;
use crate::control::store::MetaStore;
use crate::control::{
    AccountMeta, ShardRuntime, Stream, StreamMeta, StreamMode, StreamStatus, storage_key,
};
use crate::data::iterator::IteratorCodec;
use crate::data::throughput::ControlPlaneRates;
use crate::data::writer::WriterPool;
use crate::ids::{RequestIds, random_bytes};
use crate::storage::Backend;

pub type Registry = BTreeMap<String, Stream>;

pub struct Kinesis {
    pub config: Config,
    pub clock: SharedClock,
    pub backend: Arc<dyn Backend>,
    registry: RwLock<Registry>,
    meta: MetaStore,
    pub writers: WriterPool,
    pub iterators: IteratorCodec,
    pub request_ids: RequestIds,
    pub control_rates: ControlPlaneRates,
    /// Account settings; saved with the registry, locked after it.
    pub account: std::sync::Mutex<AccountMeta>,
    /// Keys for stream encryption.
    pub keys: KeyStore,
    /// Request counts and latencies for `/metrics`.
    pub request_metrics: crate::api::metrics::RequestMetrics,
    /// The memory budget of request and response bodies in flight.
    pub inflight: crate::api::inflight::Inflight,
    /// Live SubscribeToShard streams.
    pub subscriptions: crate::api::actions::subscribe::Subscriptions,
    /// Metrics, alarms and dashboards.
    pub monitor: crate::monitor::Monitor,
}

impl Kinesis {
    /// Loads stream metadata and opens every shard log, recovering each.
    pub fn open(
        config: Config,
        clock: SharedClock,
        backend: Arc<dyn Backend>,
    ) -> anyhow::Result<Kinesis> {
        std::fs::create_dir_all(&config.data_dir)?;
        let meta = MetaStore::new(&config.data_dir);
        let mut registry = Registry::new();
        let (stream_metas, account) = meta.load()?;
        for stream_meta in stream_metas {
            let key = storage_key(&stream_meta.name, stream_meta.created_ms);
            let mut shards = BTreeMap::new();
            let now = clock.now_ms();
            for shard in &stream_meta.shards {
                if shard.is_expired(now, stream_meta.retention_hours) {
                    continue;
                }
                let log = backend.open_shard(&key, &shard.id())?;
                shards.insert(
                    shard.index,
                    ShardRuntime::new(log, shard.closed.is_some(), config.shard_rates, now),
                );
            }
            registry.insert(stream_meta.name.clone(), Stream::new(stream_meta, shards));
        }
        let iterators =
            IteratorCodec::new(load_or_create_key(&config.data_dir.join("iterator.key"))?);
        let control_plane_limits = config.control_plane_limits;
        let keys = KeyStore::open(
            &config.data_dir,
            &config.region,
            &config.account_id,
            &config.kms_key_aliases,
        )?;
        let writers = WriterPool::start(config.writer_threads, config.fsync, clock.clone());
        let monitor = crate::monitor::Monitor::open(
            &config.data_dir,
            clock.clone(),
            &config.region,
            &config.account_id,
            config.metric_series_max,
            config.alarm_topics.clone(),
        )?;
        let inflight = crate::api::inflight::Inflight::new(
            config.inflight_bytes_max,
            std::time::Duration::from_millis(config.inflight_wait_ms),
        );
        Ok(Kinesis {
            config,
            clock,
            backend,
            registry: RwLock::new(registry),
            meta,
            writers,
            iterators,
            request_ids: RequestIds::new(),
            control_rates: ControlPlaneRates::new(control_plane_limits),
            account: std::sync::Mutex::new(account),
            keys,
            subscriptions: Default::default(),
            request_metrics: Default::default(),
            inflight,
            monitor,
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn account(&self) -> &str {
        &self.config.account_id
    }

    pub fn stream_arn(&self, name: &str) -> String {
        format!(
            "arn:aws:kinesis:{}:{}:stream/{name}",
            self.config.region, self.config.account_id
        )
    }

    pub fn read(&self) -> RwLockReadGuard<'_, Registry> {
        self.registry.read().expect("registry lock")
    }

    pub fn write(&self) -> RwLockWriteGuard<'_, Registry> {
        self.registry.write().expect("registry lock")
    }

    /// Persists the registry's metadata. Called with the write lock held, so saves are
    /// serialized and always reflect a state that was current.
    pub fn persist(&self, registry: &Registry) -> ApiResult<()> {
        let account = self.account.lock().expect("account lock").clone();
        self.meta
            .save(registry.values().map(|s| &s.meta), &account)
            .map_err(|e| {
                tracing::error!(error = %e, "failed to save stream metadata");
                ApiError::internal()
            })
    }

    /// The runtime of a shard whose log was just opened.
    pub fn shard_runtime(
        &self,
        log: Arc<dyn crate::storage::ShardLog>,
        sealed: bool,
    ) -> ShardRuntime {
        ShardRuntime::new(log, sealed, self.config.shard_rates, self.now_ms())
    }

    /// Creates the logs of a new stream's shards.
    pub fn open_shards(&self, meta: &StreamMeta) -> ApiResult<BTreeMap<u32, ShardRuntime>> {
        let key = storage_key(&meta.name, meta.created_ms);
        let mut shards = BTreeMap::new();
        for shard in &meta.shards {
            let log = self.backend.open_shard(&key, &shard.id())?;
            shards.insert(shard.index, self.shard_runtime(log, shard.closed.is_some()));
        }
        Ok(shards)
    }

    /// Completes state changes whose delay is over and enforces retention. Runs on a timer;
    /// tests call it after moving the clock.
    pub fn tick(&self) {
        let now = self.now_ms();
        let mut removed = Vec::new();
        {
            let mut registry = self.write();
            let mut changed = false;
            registry.retain(|_, stream| match stream.meta.pending {
                Some(p) if now >= p.until_ms => {
                    changed = true;
                    stream.meta.pending = None;
                    match p.then {
                        Some(status) => {
                            stream.meta.status = status;
                            true
                        }
                        None => {
                            removed.push(stream.storage_key());
                            false
                        }
                    }
                }
                _ => true,
            });
            if changed && let Err(e) = self.persist(&registry) {
                tracing::error!(?e, "state transition not saved");
            }
        }
        for key in removed {
            if let Err(e) = self.backend.delete_stream(&key) {
                tracing::error!(error = %e, "failed to delete stream files");
            }
        }
        self.remove_expired_shards(now);
        self.autoscale(now);
        self.enforce_retention(now);
        self.monitor.tick();
    }

    /// Deletes the logs of closed shards whose records have all passed retention. Their
    /// metadata stays, so children still name them as parents.
    fn remove_expired_shards(&self, now: i64) {
        let mut expired = Vec::new();
        {
            let mut registry = self.write();
            for stream in registry.values_mut() {
                let key = stream.storage_key();
                let retention = stream.meta.retention_hours;
                for shard in &stream.meta.shards {
                    if shard.is_expired(now, retention)
                        && stream.shards.remove(&shard.index).is_some()
                    {
                        expired.push((key.clone(), shard.id()));
                    }
                }
            }
        }
        for (key, shard) in expired {
            if let Err(e) = self.backend.delete_shard(&key, &shard) {
                tracing::error!(error = %e, shard, "failed to delete an expired shard");
            }
        }
    }

    /// Splits the hot shards of ON_DEMAND streams (policy in `control::autoscale`).
    fn autoscale(&self, now: i64) {
        let hot: Vec<(String, u32, u128)> = {
            let registry = self.read();
            let mut hot = Vec::new();
            for stream in registry.values() {
                if stream.meta.mode != StreamMode::OnDemand
                    || stream.status_at(now) != Some(StreamStatus::Active)
                {
                    continue;
                }
                for shard in stream.meta.shards.iter().filter(|s| s.is_open()) {
                    let Some(runtime) = stream.shards.get(&shard.index) else {
                        continue;
                    };
                    let c = &runtime.counters;
                    let load = |counter: &std::sync::atomic::AtomicU64| {
                        counter.load(std::sync::atomic::Ordering::Relaxed)
                    };
                    let is_hot = runtime.load.evaluate(
                        load(&c.incoming_records),
                        load(&c.incoming_bytes),
                        load(&c.write_throttled),
                        now,
                        self.config.shard_rates,
                    );
                    if is_hot {
                        let at = runtime.load.split_key(shard.start_hash, shard.end_hash);
                        hot.push((stream.meta.name.clone(), shard.index, at));
                    }
                }
            }
            hot
        };
        for (name, index, at) in hot {
            match crate::api::actions::resharding::split_hot_shard(self, &name, index, at) {
                Ok(()) => {
                    tracing::info!(stream = %name, shard = index, split_at = %at, "on-demand scaling split a hot shard")
                }
                Err(e) => {
                    tracing::warn!(stream = %name, shard = index, error = ?e, "on-demand scaling could not split a hot shard")
                }
            }
        }
    }

    fn enforce_retention(&self, now: i64) {
        let logs: Vec<_> = {
            let registry = self.read();
            registry
                .values()
                .flat_map(|s| {
                    let cutoff = now - s.meta.retention_hours * 3_600_000;
                    s.shards.values().map(move |r| (r.log.clone(), cutoff))
                })
                .collect()
        };
        for (log, cutoff) in logs {
            match log.trim(cutoff) {
                Ok(report) if report.segments_removed > 0 => {
                    tracing::debug!(
                        segments = report.segments_removed,
                        bytes = report.bytes_removed,
                        "retention"
                    );
                }
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "retention failed"),
            }
        }
    }

    /// For the interval fsync policy: makes everything written so far durable.
    pub fn sync_all(&self) {
        let logs: Vec<_> = self
            .read()
            .values()
            .flat_map(|s| s.shards.values().map(|r| r.log.clone()))
            .collect();
        for log in logs {
            if let Err(e) = log.sync() {
                tracing::error!(error = %e, "interval fsync failed");
            }
        }
    }

    /// Finishes queued writes and, unless fsync is off, makes them durable.
    pub fn shutdown(&self) {
        self.monitor.flush_all();
        self.writers.shutdown();
        if self.config.fsync != FsyncPolicy::Never {
            self.sync_all();
        }
    }
}

/// Returns the state a transitional change leads to, for callers that must refuse
/// mutations unless a stream is ACTIVE.
pub fn require_active(stream: &Stream, now: i64, account: &str) -> ApiResult<()> {
    match stream.status_at(now) {
        Some(StreamStatus::Active) => Ok(()),
        Some(other) => Err(ApiError::stream_in_use(
            &stream.meta.name,
            account,
            other.as_str(),
        )),
        None => Err(ApiError::stream_not_found(&stream.meta.name, account)),
    }
}

fn load_or_create_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path) {
        return bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} is not a 32-byte key", path.display()));
    }
    let key = random_bytes::<32>()?;
    crate::control::store::write_atomic(path, &key)?;
    Ok(key)
}
