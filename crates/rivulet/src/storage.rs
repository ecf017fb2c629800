//! The storage boundary: what the server needs from a shard's log, and the backend that
//! creates and removes them. `seglog` on local disk is the first implementation; a NATS
//! JetStream backend can implement the same two traits.
//!
//! Positions are dense per shard, from 0; only `data/` turns them into sequence numbers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use seglog::{Appended, ReadBatch, Record, RecordRef, TrimReport};

pub type StorageError = seglog::Error;
pub type StorageResult<T> = Result<T, StorageError>;

/// One shard's records.
pub trait ShardLog: Send + Sync + 'static {
    /// Appends one batch; invisible and not durable until `commit`.
    fn append(&self, records: &[RecordRef<'_>]) -> StorageResult<Appended>;
    /// Publishes appends to readers, after making them durable if asked.
    fn commit(&self, durable: bool) -> StorageResult<()>;
    /// Makes published appends durable.
    fn sync(&self) -> StorageResult<()>;
    /// The file system the log is on, when one `sync_filesystem` can cover many logs.
    fn filesystem_id(&self) -> Option<u64> {
        None
    }
    /// Makes every log's appends on this log's file system durable with one sync; each of
    /// them then publishes with `commit_synced`.
    fn sync_filesystem(&self) -> StorageResult<()> {
        self.sync()
    }
    /// Publishes appends that a later `sync_filesystem` made durable.
    fn commit_synced(&self) -> StorageResult<()> {
        self.commit(true)
    }
    fn read(&self, from: u64, max_records: usize, max_bytes: usize) -> StorageResult<ReadBatch>;
    fn position_at_timestamp(&self, timestamp_ms: i64) -> StorageResult<u64>;
    fn start_position(&self) -> u64;
    fn end_position(&self) -> u64;
    fn last_timestamp_ms(&self) -> Option<i64>;
    fn size_bytes(&self) -> u64;
    /// Drops records older than `cutoff_ms` where the backend can (whole segments here).
    fn trim(&self, cutoff_ms: i64) -> StorageResult<TrimReport>;
}

/// Creates, opens and removes shard logs. `stream_key` is unique for each stream
/// incarnation (name and creation time), so a recreated stream never sees old records.
pub trait Backend: Send + Sync + 'static {
    fn open_shard(&self, stream_key: &str, shard_id: &str) -> StorageResult<Arc<dyn ShardLog>>;
    fn delete_stream(&self, stream_key: &str) -> StorageResult<()>;
    /// Removes one shard's records, once the shard has expired.
    fn delete_shard(&self, stream_key: &str, shard_id: &str) -> StorageResult<()>;
}

/// Shard logs as `seglog` directories under `<data-dir>/streams/<stream-key>/<shard-id>/`.
pub struct DiskBackend {
    root: PathBuf,
    config: seglog::LogConfig,
}

impl DiskBackend {
    pub fn new(data_dir: &Path, segment_bytes_max: u64) -> DiskBackend {
        let config = seglog::LogConfig {
            segment_bytes_max,
            ..seglog::LogConfig::default()
        };
        DiskBackend {
            root: data_dir.join("streams"),
            config,
        }
    }
}

impl Backend for DiskBackend {
    fn open_shard(&self, stream_key: &str, shard_id: &str) -> StorageResult<Arc<dyn ShardLog>> {
        let dir = self.root.join(stream_key).join(shard_id);
        let log = seglog::Log::open(&dir, self.config)?;
        let recovery = log.recovery();
        if recovery.truncated_bytes > 0 || recovery.rebuilt_indexes > 0 {
            tracing::warn!(
                dir = %dir.display(),
                truncated_bytes = recovery.truncated_bytes,
                rebuilt_indexes = recovery.rebuilt_indexes,
                "recovered shard log"
            );
        }
        Ok(Arc::new(log))
    }

    fn delete_stream(&self, stream_key: &str) -> StorageResult<()> {
        remove_dir(self.root.join(stream_key))
    }

    fn delete_shard(&self, stream_key: &str, shard_id: &str) -> StorageResult<()> {
        remove_dir(self.root.join(stream_key).join(shard_id))
    }
}

fn remove_dir(dir: PathBuf) -> StorageResult<()> {
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(seglog::Error::Io {
            path: dir,
            source: e,
        }),
    }
}

impl ShardLog for seglog::Log {
    fn append(&self, records: &[RecordRef<'_>]) -> StorageResult<Appended> {
        seglog::Log::append(self, records)
    }
    fn commit(&self, durable: bool) -> StorageResult<()> {
        seglog::Log::commit(self, durable)
    }
    fn sync(&self) -> StorageResult<()> {
        seglog::Log::sync(self)
    }
    fn filesystem_id(&self) -> Option<u64> {
        seglog::Log::filesystem_id(self)
    }
    fn sync_filesystem(&self) -> StorageResult<()> {
        seglog::Log::sync_filesystem(self)
    }
    fn commit_synced(&self) -> StorageResult<()> {
        seglog::Log::commit_synced(self)
    }
    fn read(&self, from: u64, max_records: usize, max_bytes: usize) -> StorageResult<ReadBatch> {
        seglog::Log::read(self, from, max_records, max_bytes)
    }
    fn position_at_timestamp(&self, timestamp_ms: i64) -> StorageResult<u64> {
        seglog::Log::position_at_timestamp(self, timestamp_ms)
    }
    fn start_position(&self) -> u64 {
        seglog::Log::start_position(self)
    }
    fn end_position(&self) -> u64 {
        seglog::Log::end_position(self)
    }
    fn last_timestamp_ms(&self) -> Option<i64> {
        seglog::Log::last_timestamp_ms(self)
    }
    fn size_bytes(&self) -> u64 {
        seglog::Log::size_bytes(self)
    }
    fn trim(&self, cutoff_ms: i64) -> StorageResult<TrimReport> {
        seglog::Log::trim(self, cutoff_ms)
    }
}
