//! The metric store: every series (namespace, metric name, dimensions) gets a number, and
//! its datapoints are aggregated in memory per period bucket (1 s for high-resolution
//! metrics, 60 s otherwise) until the bucket closes. Closed buckets are appended to a
//! `seglog` log under `metrics/points` as partial aggregates and fsynced; queries merge the
//! partials in the log with the still-open buckets, so late data (PutMetricData accepts
//! timestamps two weeks back) simply adds another partial.
//!
//! Bounds: at most `series_max` series (PutMetricData past it is refused, internal metrics
//! are dropped and counted), open buckets only for series written since the last flush,
//! whole log segments trimmed after the retention period. The series registry is one JSON
//! document (`metrics/series.json`), rewritten atomically before points that use a new series.
//! Points written by record timestamp = flush time; a crash loses at most the buckets not
//! yet flushed (one tick for high-resolution series, the current minute otherwise).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use seglog::{Log, LogConfig, RecordRef};
use serde::{Deserialize, Serialize};

use super::agg::Agg;

/// How far in the future a datum may be timestamped (CloudWatch accepts two hours).
pub const FUTURE_MS: i64 = 2 * 3_600_000;
/// How far in the past a datum may be timestamped (CloudWatch accepts two weeks).
pub const PAST_MS: i64 = 14 * 86_400_000;
const FORMAT_VERSION: u32 = 1;
/// Records per appended batch when flushing.
const FLUSH_CHUNK: usize = 4096;
/// Records and bytes per log read while scanning.
const READ_RECORDS: usize = 8192;
const READ_BYTES: usize = 8 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    pub namespace: String,
    pub name: String,
    /// Sorted by name; names are unique.
    pub dims: Vec<(String, String)>,
}

impl SeriesKey {
    pub fn new(namespace: &str, name: &str, dims: &[(&str, &str)]) -> SeriesKey {
        let mut dims: Vec<(String, String)> = dims
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        dims.sort();
        SeriesKey {
            namespace: namespace.into(),
            name: name.into(),
            dims,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SeriesInfo {
    pub id: u32,
    #[serde(flatten)]
    pub key: SeriesKey,
    pub unit: String,
    /// Timestamp of the newest datum.
    pub last_ms: i64,
}

#[derive(Serialize, Deserialize)]
struct Registry {
    version: u32,
    next_id: u32,
    series: Vec<SeriesInfo>,
}

/// One bucket of one series: its start, its length in seconds, its aggregate.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub start_ms: i64,
    pub resolution_s: u8,
    pub agg: Agg,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the metric store holds its maximum of {0} series")]
    TooManySeries(usize),
    #[error("metric store I/O: {0}")]
    Io(String),
}

struct Inner {
    /// A metric with data in several units is one series per unit, as CloudWatch keeps a
    /// unit with every datapoint.
    ids: HashMap<(SeriesKey, String), u32>,
    /// The series of each metric, whatever their units.
    by_key: HashMap<SeriesKey, Vec<u32>>,
    series: BTreeMap<u32, SeriesInfo>,
    next_id: u32,
    /// Open buckets: (series, bucket start ms, resolution) → aggregate.
    open: HashMap<(u32, i64, u8), Agg>,
    registry_dirty: bool,
    registry_saved_ms: i64,
    /// Internal datapoints dropped because the series cap was reached.
    dropped: u64,
}

pub struct MetricStore {
    dir: PathBuf,
    log: Log,
    inner: Mutex<Inner>,
    /// Held shared by queries across their log scan and open-bucket snapshot, exclusively by
    /// a flush, so no partial is counted twice or missed.
    gate: RwLock<()>,
    series_max: usize,
    retention_ms: i64,
}

impl MetricStore {
    pub fn open(dir: &Path, series_max: usize, retention_ms: i64) -> anyhow::Result<MetricStore> {
        std::fs::create_dir_all(dir)?;
        let log = Log::open(
            &dir.join("points"),
            LogConfig {
                segment_bytes_max: 8 << 20,
                index_interval_bytes: 64 << 10,
            },
        )?;
        let mut inner = Inner {
            ids: HashMap::new(),
            by_key: HashMap::new(),
            series: BTreeMap::new(),
            next_id: 1,
            open: HashMap::new(),
            registry_dirty: false,
            registry_saved_ms: 0,
            dropped: 0,
        };
        match std::fs::read(dir.join("series.json")) {
            Ok(bytes) => {
                let reg: Registry = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!("{} is not a metric registry: {e}", dir.display())
                })?;
                anyhow::ensure!(
                    reg.version == FORMAT_VERSION,
                    "metric registry format {} (expected {FORMAT_VERSION})",
                    reg.version
                );
                inner.next_id = reg.next_id;
                for s in reg.series {
                    inner.ids.insert((s.key.clone(), s.unit.clone()), s.id);
                    inner.by_key.entry(s.key.clone()).or_default().push(s.id);
                    inner.series.insert(s.id, s);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(MetricStore {
            dir: dir.to_owned(),
            log,
            inner: Mutex::new(inner),
            gate: RwLock::new(()),
            series_max,
            retention_ms,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().expect("metric store lock")
    }

    /// Adds datapoints at `ts_ms`, all in buckets of `resolution_s` (1 or 60) seconds.
    /// Fails without adding any if a new series would pass the cap.
    pub fn record(
        &self,
        ts_ms: i64,
        resolution_s: u8,
        points: Vec<(SeriesKey, &str, Agg)>,
    ) -> Result<(), StoreError> {
        let bucket = ts_ms - ts_ms.rem_euclid(resolution_s as i64 * 1000);
        let mut inner = self.lock();
        let new = points
            .iter()
            .filter(|(k, u, _)| !inner.ids.contains_key(&(k.clone(), u.to_string())))
            .map(|(k, u, _)| (k, *u))
            .collect::<HashSet<_>>()
            .len();
        if new > 0 && inner.series.len() + new > self.series_max {
            return Err(StoreError::TooManySeries(self.series_max));
        }
        for (key, unit, agg) in points {
            let ids_key = (key, unit.to_owned());
            let id = match inner.ids.get(&ids_key) {
                Some(id) => *id,
                None => {
                    let id = inner.next_id;
                    inner.next_id += 1;
                    let key = ids_key.0.clone();
                    inner.ids.insert(ids_key, id);
                    inner.by_key.entry(key.clone()).or_default().push(id);
                    inner.series.insert(
                        id,
                        SeriesInfo {
                            id,
                            key,
                            unit: unit.to_owned(),
                            last_ms: ts_ms,
                        },
                    );
                    inner.registry_dirty = true;
                    id
                }
            };
            let info = inner.series.get_mut(&id).expect("registered");
            info.last_ms = info.last_ms.max(ts_ms);
            inner
                .open
                .entry((id, bucket, resolution_s))
                .and_modify(|a| a.merge(&agg))
                .or_insert(agg);
        }
        Ok(())
    }

    /// Like `record`, for the server's own metrics: past the series cap they are dropped and
    /// counted rather than refused.
    pub fn record_internal(&self, ts_ms: i64, points: Vec<(SeriesKey, &str, Agg)>) {
        if self.record(ts_ms, 60, points).is_err() {
            self.lock().dropped += 1;
        }
    }

    pub fn dropped(&self) -> u64 {
        self.lock().dropped
    }

    pub fn series_count(&self) -> usize {
        self.lock().series.len()
    }

    pub fn size_bytes(&self) -> u64 {
        self.log.size_bytes()
    }

    /// Writes buckets that have closed by `now_ms` (every open bucket with `all`), after the
    /// registry if it names new series. Fsyncs before returning.
    pub fn flush(&self, now_ms: i64, all: bool) -> Result<usize, StoreError> {
        let _gate = self.gate.write().expect("gate");
        let mut inner = self.lock();
        let closed: Vec<(u32, i64, u8)> = inner
            .open
            .keys()
            .filter(|(_, start, res)| all || start + *res as i64 * 1000 <= now_ms)
            .copied()
            .collect();
        let registry_stale = now_ms - inner.registry_saved_ms > 600_000;
        if inner.registry_dirty || (registry_stale && !closed.is_empty()) {
            self.save_registry(&inner)?;
            inner.registry_dirty = false;
            inner.registry_saved_ms = now_ms;
        }
        if closed.is_empty() {
            return Ok(0);
        }
        let mut encoded = Vec::with_capacity(closed.len());
        for k in &closed {
            let agg = inner.open.remove(k).expect("listed");
            let mut data = Vec::with_capacity(64);
            data.extend_from_slice(&k.1.to_le_bytes());
            data.push(k.2);
            agg.encode(&mut data);
            encoded.push((k.0.to_le_bytes(), data));
        }
        drop(inner);
        for chunk in encoded.chunks(FLUSH_CHUNK) {
            let refs: Vec<RecordRef<'_>> = chunk
                .iter()
                .map(|(key, data)| RecordRef {
                    timestamp_ms: now_ms,
                    flags: 0,
                    key,
                    data,
                })
                .collect();
            self.log.append(&refs).map_err(io)?;
        }
        self.log.commit(true).map_err(io)?;
        Ok(closed.len())
    }

    fn save_registry(&self, inner: &Inner) -> Result<(), StoreError> {
        let reg = Registry {
            version: FORMAT_VERSION,
            next_id: inner.next_id,
            series: inner.series.values().cloned().collect(),
        };
        let bytes = serde_json::to_vec(&reg).map_err(|e| StoreError::Io(e.to_string()))?;
        crate::control::store::write_atomic(&self.dir.join("series.json"), &bytes)
            .map_err(|e| StoreError::Io(e.to_string()))
    }

    /// Removes log segments older than the retention period and forgets series with no
    /// datum in it.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<(), StoreError> {
        let cutoff = now_ms - self.retention_ms;
        self.log.trim(cutoff).map_err(io)?;
        let mut inner = self.lock();
        let old: Vec<u32> = inner
            .series
            .values()
            .filter(|s| s.last_ms < cutoff)
            .map(|s| s.id)
            .collect();
        if !old.is_empty() {
            for id in old {
                if let Some(s) = inner.series.remove(&id) {
                    if let Some(list) = inner.by_key.get_mut(&s.key) {
                        list.retain(|x| *x != id);
                        if list.is_empty() {
                            inner.by_key.remove(&s.key);
                        }
                    }
                    inner.ids.remove(&(s.key, s.unit));
                }
            }
            inner.registry_dirty = true;
        }
        Ok(())
    }

    /// The series of a metric, one per unit its data came in.
    pub fn lookup(&self, key: &SeriesKey) -> Vec<SeriesInfo> {
        let inner = self.lock();
        let mut out: Vec<SeriesInfo> = inner
            .by_key
            .get(key)
            .into_iter()
            .flatten()
            .map(|id| inner.series[id].clone())
            .collect();
        out.sort_by(|a, b| a.unit.cmp(&b.unit));
        out
    }

    /// Series matching a filter, in key order.
    pub fn list(&self, filter: impl Fn(&SeriesInfo) -> bool) -> Vec<SeriesInfo> {
        let inner = self.lock();
        let mut out: Vec<SeriesInfo> = inner
            .series
            .values()
            .filter(|s| filter(s))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    /// Every bucket of the given series starting in `[start_ms, end_ms)`, partials merged,
    /// ordered by bucket start.
    pub fn fetch(
        &self,
        ids: &[u32],
        start_ms: i64,
        end_ms: i64,
    ) -> Result<HashMap<u32, Vec<Point>>, StoreError> {
        let wanted: HashSet<u32> = ids.iter().copied().collect();
        let mut merged: HashMap<u32, BTreeMap<(i64, u8), Agg>> = HashMap::new();
        let mut add = |id: u32, start: i64, res: u8, agg: &Agg| {
            if !wanted.contains(&id) || start < start_ms || start >= end_ms {
                return;
            }
            merged
                .entry(id)
                .or_default()
                .entry((start, res))
                .and_modify(|a| a.merge(agg))
                .or_insert_with(|| agg.clone());
        };
        let _gate = self.gate.read().expect("gate");
        // A datum for a bucket can be written up to FUTURE_MS before the bucket starts.
        let mut position = self
            .log
            .position_at_timestamp(start_ms.saturating_sub(FUTURE_MS))
            .map_err(io)?;
        loop {
            let batch = self
                .log
                .read(position, READ_RECORDS, READ_BYTES)
                .map_err(io)?;
            if batch.records.is_empty() {
                break;
            }
            for r in &batch.records {
                let Some(id) = r
                    .key
                    .get(..4)
                    .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
                else {
                    continue;
                };
                if !wanted.contains(&id) {
                    continue;
                }
                let Some((start, res, agg)) = decode_point(&r.data) else {
                    tracing::warn!(position = r.position, "undecodable metric point skipped");
                    continue;
                };
                add(id, start, res, &agg);
            }
            position = batch.next_position;
        }
        let inner = self.lock();
        for ((id, start, res), agg) in &inner.open {
            add(*id, *start, *res, agg);
        }
        drop(inner);
        Ok(merged
            .into_iter()
            .map(|(id, points)| {
                let points = points
                    .into_iter()
                    .map(|((start_ms, resolution_s), agg)| Point {
                        start_ms,
                        resolution_s,
                        agg,
                    })
                    .collect();
                (id, points)
            })
            .collect())
    }
}

fn decode_point(data: &[u8]) -> Option<(i64, u8, Agg)> {
    let start = i64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let res = *data.get(8)?;
    let (agg, _) = Agg::decode(data.get(9..)?)?;
    Some((start, res, agg))
}

fn io(e: seglog::Error) -> StoreError {
    StoreError::Io(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> SeriesKey {
        SeriesKey::new("AWS/Kinesis", name, &[("StreamName", "s")])
    }

    #[test]
    fn open_and_flushed_buckets_merge_and_survive_reopen() {
        let dir = std::env::temp_dir().join(format!("rivulet-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = MetricStore::open(&dir, 10, 15 * 86_400_000).unwrap();
        let t0 = 1_700_000_040_000; // a minute boundary
        store
            .record(t0 + 1_000, 60, vec![(key("a"), "Bytes", Agg::one(10.0))])
            .unwrap();
        store
            .record(t0 + 2_000, 60, vec![(key("a"), "Bytes", Agg::one(30.0))])
            .unwrap();
        assert_eq!(
            store.flush(t0 + 30_000, false).unwrap(),
            0,
            "bucket still open"
        );
        assert_eq!(store.flush(t0 + 60_000, false).unwrap(), 1);
        // Late datum for the flushed bucket, and one for the next.
        store
            .record(t0 + 5_000, 60, vec![(key("a"), "Bytes", Agg::one(5.0))])
            .unwrap();
        store
            .record(t0 + 61_000, 60, vec![(key("a"), "Bytes", Agg::one(7.0))])
            .unwrap();
        let id = store.lookup(&key("a"))[0].id;
        let got = store
            .fetch(&[id], t0, t0 + 120_000)
            .unwrap()
            .remove(&id)
            .unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].agg.sum, got[0].agg.count, got[0].agg.min),
            (45.0, 3.0, 5.0)
        );
        assert_eq!(got[1].agg.sum, 7.0);
        store.flush(t0 + 61_000, true).unwrap();
        drop(store);
        let store = MetricStore::open(&dir, 10, 15 * 86_400_000).unwrap();
        let got = store
            .fetch(&[id], t0, t0 + 120_000)
            .unwrap()
            .remove(&id)
            .unwrap();
        assert_eq!(
            got.iter().map(|p| p.agg.sum).collect::<Vec<_>>(),
            [45.0, 7.0]
        );
        assert!(
            store
                .fetch(&[id], t0 + 120_000, t0 + 180_000)
                .unwrap()
                .is_empty()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn retention_removes_old_segments_and_forgets_idle_series() {
        let dir = std::env::temp_dir().join(format!("rivulet-store-ret-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let day = 86_400_000;
        let store = MetricStore::open(&dir, 10, 15 * day).unwrap();
        let t0 = 1_700_000_040_000;
        store
            .record(t0, 60, vec![(key("old"), "Count", Agg::one(1.0))])
            .unwrap();
        store.flush(t0 + 60_000, false).unwrap();
        // Sixteen days later another series is written; a new segment holds it.
        let later = t0 + 16 * day;
        store.log.trim(t0 + 60_001).unwrap();
        store
            .record(later, 60, vec![(key("new"), "Count", Agg::one(2.0))])
            .unwrap();
        store.flush(later + 60_000, false).unwrap();
        store.enforce_retention(later + 60_000).unwrap();
        assert!(
            store.lookup(&key("old")).is_empty(),
            "idle series forgotten"
        );
        let id = store.lookup(&key("new"))[0].id;
        let got = store.fetch(&[id], later - 60_000, later + 60_000).unwrap();
        assert_eq!(got[&id][0].agg.sum, 2.0);
        assert_eq!(store.series_count(), 1);
        // The registry written afterwards no longer names it.
        store.flush(later + 120_000, true).unwrap();
        drop(store);
        let store = MetricStore::open(&dir, 10, 15 * day).unwrap();
        assert_eq!(store.series_count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn series_cap_refuses_new_series_only() {
        let dir = std::env::temp_dir().join(format!("rivulet-store-cap-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = MetricStore::open(&dir, 2, 86_400_000).unwrap();
        store
            .record(0, 60, vec![(key("a"), "None", Agg::one(1.0))])
            .unwrap();
        store
            .record(0, 60, vec![(key("b"), "None", Agg::one(1.0))])
            .unwrap();
        assert!(matches!(
            store.record(0, 60, vec![(key("c"), "None", Agg::one(1.0))]),
            Err(StoreError::TooManySeries(2))
        ));
        store
            .record(0, 60, vec![(key("a"), "None", Agg::one(1.0))])
            .unwrap();
        store.record_internal(0, vec![(key("d"), "None", Agg::one(1.0))]);
        assert_eq!(store.dropped(), 1);
        assert_eq!(store.series_count(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
