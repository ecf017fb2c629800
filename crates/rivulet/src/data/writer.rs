//! Shard writers: a few threads that own the appends of a share of the shards each, and
//! group-commit them.
//!
//! A request is routed to its shard's thread through a bounded queue. The thread takes
//! everything queued (up to a cap), appends each request as one batch, then commits each
//! touched shard once: with the `Always` policy that is one fsync per shard for all the
//! requests that arrived while the previous fsync ran, or, when the group touched several
//! shards, one `syncfs` for all of them. Replies go out only after the
//! commit, so an acknowledged record is durable as the policy promises, and it is visible
//! to readers from the moment the client learns its sequence number.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::clock::SharedClock;
use crate::config::FsyncPolicy;
use crate::control::ShardRuntime;
use crate::storage::{Appended, RecordRef, ShardLog, StorageError, StorageResult};

/// Requests queued per writer thread.
const QUEUE_REQUESTS_MAX: usize = 1024;
/// Requests one group commit takes at most.
const GROUP_REQUESTS_MAX: usize = 1024;
/// Bytes of record data and keys queued or being written, over all writers; a request
/// waits for room before it is queued.
const IN_FLIGHT_BYTES_MAX: usize = 256 << 20;

/// One record to write.
#[derive(Debug)]
pub struct PendingRecord {
    pub partition_key: String,
    pub data: Vec<u8>,
    pub flags: u8,
}

struct WriteRequest {
    shard: ShardRuntime,
    records: Vec<PendingRecord>,
    reply: oneshot::Sender<Result<Appended, WriteError>>,
}

/// A barrier in a shard's queue: everything queued before it is written and committed, then
/// the shard is sealed and its end position returned. Writes queued after it fail with
/// `ShardClosed`, and their senders route them again.
struct SealRequest {
    shard: ShardRuntime,
    reply: oneshot::Sender<StorageResult<u64>>,
}

enum Job {
    Write(WriteRequest),
    Seal(SealRequest),
}

/// What the writers did, for `/metrics`.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Group commits: one per batch of requests a writer thread took from its queue.
    pub groups: AtomicU64,
    /// Durable commits (fsyncs) of shard logs.
    pub fsyncs: AtomicU64,
    /// Time spent in those fsyncs, in microseconds.
    pub fsync_micros: AtomicU64,
}

pub struct WriterPool {
    pub stats: Arc<WriterStats>,
    senders: Mutex<Vec<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    in_flight: Arc<Semaphore>,
    lanes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the server is shutting down")]
    ShuttingDown,
    /// The shard was closed by a split or merge before these records reached it; they were
    /// not written and come back to be routed again.
    #[error("the shard is closed")]
    ShardClosed(Vec<PendingRecord>),
}

impl WriterPool {
    pub fn start(threads: usize, policy: FsyncPolicy, clock: SharedClock) -> WriterPool {
        let stats = Arc::new(WriterStats::default());
        let mut senders = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let (tx, rx) = mpsc::channel(QUEUE_REQUESTS_MAX);
            let clock = clock.clone();
            let stats = stats.clone();
            let handle = std::thread::Builder::new()
                .name(format!("shard-writer-{i}"))
                .spawn(move || writer_loop(rx, policy, clock, &stats))
                .expect("spawn shard writer thread");
            senders.push(tx);
            handles.push(handle);
        }
        WriterPool {
            stats,
            senders: Mutex::new(senders),
            threads: Mutex::new(handles),
            in_flight: Arc::new(Semaphore::new(IN_FLIGHT_BYTES_MAX >> 10)),
            lanes: threads,
        }
    }

    /// Appends `records` to `log` as one batch and waits until they are committed.
    /// `lane` picks the writer thread: the same shard must always use the same lane so
    /// its writes stay in order.
    pub async fn write(
        &self,
        lane: u64,
        shard: ShardRuntime,
        records: Vec<PendingRecord>,
    ) -> Result<Appended, WriteError> {
        let bytes: usize = records
            .iter()
            .map(|r| r.data.len() + r.partition_key.len())
            .sum();
        let units = ((bytes >> 10) + 1).min(IN_FLIGHT_BYTES_MAX >> 10) as u32;
        let _permit = self
            .in_flight
            .acquire_many(units)
            .await
            .map_err(|_| WriteError::ShuttingDown)?;
        let sender = self.sender(lane)?;
        let (reply, answer) = oneshot::channel();
        let job = Job::Write(WriteRequest {
            shard,
            records,
            reply,
        });
        sender
            .send(job)
            .await
            .map_err(|_| WriteError::ShuttingDown)?;
        answer.await.map_err(|_| WriteError::ShuttingDown)?
    }

    /// Seals a shard behind every write already queued for it and returns its end position.
    /// Blocks: for control-plane handlers, which run on blocking threads.
    pub fn seal_blocking(&self, lane: u64, shard: &ShardRuntime) -> Result<u64, WriteError> {
        let sender = self.sender(lane)?;
        let (reply, answer) = oneshot::channel();
        let job = Job::Seal(SealRequest {
            shard: shard.clone(),
            reply,
        });
        sender
            .blocking_send(job)
            .map_err(|_| WriteError::ShuttingDown)?;
        Ok(answer
            .blocking_recv()
            .map_err(|_| WriteError::ShuttingDown)??)
    }

    fn sender(&self, lane: u64) -> Result<mpsc::Sender<Job>, WriteError> {
        let senders = self.senders.lock().expect("senders lock");
        if senders.is_empty() {
            return Err(WriteError::ShuttingDown);
        }
        Ok(senders[(lane % self.lanes as u64) as usize].clone())
    }

    /// Stops taking writes, lets the queued ones finish, and joins the threads.
    pub fn shutdown(&self) {
        self.senders.lock().expect("senders lock").clear();
        self.in_flight.close();
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        for t in threads {
            let _ = t.join();
        }
    }
}

fn writer_loop(
    mut rx: mpsc::Receiver<Job>,
    policy: FsyncPolicy,
    clock: SharedClock,
    stats: &WriterStats,
) {
    let durable = policy == FsyncPolicy::Always;
    let mut group: Vec<WriteRequest> = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Write(w) => group.push(w),
                Job::Seal(seal) => {
                    // Writes queued before the seal land before it.
                    write_group(&mut group, durable, clock.now_ms(), stats);
                    seal_shard(seal, durable);
                }
            }
            if group.len() < GROUP_REQUESTS_MAX {
                next = rx.try_recv().ok();
            }
        }
        write_group(&mut group, durable, clock.now_ms(), stats);
    }
}

fn seal_shard(seal: SealRequest, durable: bool) {
    seal.shard.sealed.store(true, Ordering::SeqCst);
    let log = &seal.shard.log;
    let result = log.commit(durable).map(|()| log.end_position());
    let _ = seal.reply.send(result);
}

/// From this many touched logs on one file system, a group is made durable with one
/// `syncfs` rather than an fsync per log: every fsync ends in its own flush of the device's
/// cache, and with thousands of shards a group touches hundreds of logs. Measured on the
/// benchmark machine, 512 B written to each file: 1 file 0.18 ms by fdatasync and 0.24 ms
/// by syncfs; 2 files 0.31 against 0.26 ms; 8 files 1.36 against 0.37 ms; 500 files 112
/// against 8 ms.
const SHARED_SYNC_MIN_LOGS: usize = 2;

/// Commits each log once: durably by one file-system sync for logs that share a file
/// system (when there are enough of them), else by an fsync each. If the shared sync fails,
/// each of its logs is committed on its own, so the failing file is the one poisoned.
fn commit_all<'a>(
    logs: &[&'a Arc<dyn ShardLog>],
    durable: bool,
    stats: &WriterStats,
) -> Vec<(&'a Arc<dyn ShardLog>, StorageResult<()>)> {
    let mut out = Vec::with_capacity(logs.len());
    let mut alone: Vec<&Arc<dyn ShardLog>> = Vec::new();
    if durable && logs.len() >= SHARED_SYNC_MIN_LOGS {
        let mut by_fs: Vec<(u64, Vec<&Arc<dyn ShardLog>>)> = Vec::new();
        for &log in logs {
            match log.filesystem_id() {
                Some(id) => match by_fs.iter_mut().find(|(fs, _)| *fs == id) {
                    Some((_, group)) => group.push(log),
                    None => by_fs.push((id, vec![log])),
                },
                None => alone.push(log),
            }
        }
        for (_, group) in by_fs {
            if group.len() < SHARED_SYNC_MIN_LOGS {
                alone.extend(group);
                continue;
            }
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            match group[0].sync_filesystem() {
                Ok(()) => out.extend(group.into_iter().map(|log| (log, log.commit_synced()))),
                Err(e) => {
                    tracing::warn!(error = %e, "file-system sync failed; syncing each log");
                    alone.extend(group);
                }
            }
        }
    } else {
        alone.extend(logs.iter().copied());
    }
    for log in alone {
        if durable {
            stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        out.push((log, log.commit(durable)));
    }
    out
}

/// Appends every request of the group, commits each touched log once, then replies.
fn write_group(group: &mut Vec<WriteRequest>, durable: bool, now_ms: i64, stats: &WriterStats) {
    if group.is_empty() {
        return;
    }
    stats.groups.fetch_add(1, Ordering::Relaxed);
    // `None`: the shard was sealed before this request; it is answered without touching
    // the log.
    let mut results: Vec<Option<StorageResult<Appended>>> = Vec::with_capacity(group.len());
    let mut refs: Vec<RecordRef<'_>> = Vec::new();
    for req in group.iter() {
        if req.shard.sealed.load(Ordering::SeqCst) {
            results.push(None);
            continue;
        }
        refs.clear();
        refs.extend(req.records.iter().map(|r| RecordRef {
            timestamp_ms: now_ms,
            flags: r.flags,
            key: r.partition_key.as_bytes(),
            data: &r.data,
        }));
        results.push(Some(req.shard.log.append(&refs)));
    }
    drop(refs);
    let mut touched: Vec<&Arc<dyn ShardLog>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (req, result) in group.iter().zip(&results) {
        let log = &req.shard.log;
        if matches!(result, Some(Ok(_))) && seen.insert(Arc::as_ptr(log) as *const ()) {
            touched.push(log);
        }
    }
    let mut failed: Vec<(*const (), String)> = Vec::new();
    let started = std::time::Instant::now();
    for (log, committed) in commit_all(&touched, durable, stats) {
        if let Err(e) = committed {
            tracing::error!(error = %e, "commit failed; the shard stops acknowledging writes");
            failed.push((Arc::as_ptr(log) as *const (), e.to_string()));
        }
    }
    if durable {
        stats
            .fsync_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
    for (req, result) in group.iter().zip(&results) {
        if matches!(result, Some(Ok(_))) {
            req.shard.appended.notify_waiters();
        }
    }
    for (req, result) in group.drain(..).zip(results) {
        let ptr = Arc::as_ptr(&req.shard.log) as *const ();
        let result = match (result, failed.iter().find(|(p, _)| *p == ptr)) {
            (None, _) => Err(WriteError::ShardClosed(req.records)),
            (Some(Ok(_)), Some((_, message))) => Err(WriteError::Storage(StorageError::Io {
                path: Default::default(),
                source: std::io::Error::other(message.clone()),
            })),
            (Some(result), _) => result.map_err(WriteError::from),
        };
        let _ = req.reply.send(result);
    }
}
