//! One shard's log: the active segment that takes appends, the sealed segments before it,
//! their sparse indexes, recovery on open and retention by whole segments.
//!
//! Concurrency: one writer at a time (the `writer` mutex; the server runs each shard's
//! appends on one writer thread anyway) and any number of readers. Readers see only what
//! `commit` has published, so a record is never visible before the durability step the
//! caller asked for. The published state lives behind `segments`, a read-write lock held
//! only to copy a few numbers, never across I/O.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{Error, Result};
use crate::format::{
    self, BATCH_HEADER_LEN, BATCH_LEN_MAX, IndexEntry, IndexFile, Record, RecordRef,
    SEGMENT_HEADER_LEN,
};
use crate::fs::{Fs, FsFile, StdFs};

/// Tuning of one log. Both numbers trade start-up and retention granularity against file
/// count.
#[derive(Debug, Clone, Copy)]
pub struct LogConfig {
    /// A segment is sealed and a new one started once it holds this many bytes.
    pub segment_bytes_max: u64,
    /// A sparse index entry is kept at least every this many bytes of segment.
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> LogConfig {
        LogConfig {
            segment_bytes_max: 64 << 20,
            index_interval_bytes: 64 << 10,
        }
    }
}

/// What recovery did when the log was opened.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Bytes cut from the end of the active segment: a batch that was being written when the
    /// process stopped. Under an fsync-always policy these were never acknowledged.
    pub truncated_bytes: u64,
    /// Sealed segments whose index was missing or stale and was rebuilt by a full scan.
    pub rebuilt_indexes: usize,
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub first_position: u64,
    /// The timestamp given to the first record. Timestamps are made non-decreasing within a
    /// log, so this can be later than the one passed in.
    pub first_timestamp_ms: i64,
}

/// Records read from the log.
#[derive(Debug, Default)]
pub struct ReadBatch {
    pub records: Vec<Record>,
    /// The position to read from next: one past the last record returned, or where the read
    /// started if nothing was there.
    pub next_position: u64,
}

/// What a retention pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrimReport {
    pub segments_removed: usize,
    pub bytes_removed: u64,
}

/// A segment as readers see it.
#[derive(Clone)]
struct Segment {
    base_position: u64,
    path: PathBuf,
    file: Arc<dyn FsFile>,
    /// Published bytes, header included.
    len: u64,
    /// One past the last published record.
    end_position: u64,
    index: Vec<IndexEntry>,
    /// Timestamps of the first and last published record, if any.
    min_timestamp_ms: Option<i64>,
    max_timestamp_ms: Option<i64>,
}

/// The active segment as the writer sees it, ahead of what is published.
struct Writer {
    file: Arc<dyn FsFile>,
    path: PathBuf,
    offset: u64,
    next_position: u64,
    last_timestamp_ms: i64,
    bytes_since_index: u64,
    pending_index: Vec<IndexEntry>,
    pending_min_timestamp_ms: Option<i64>,
    /// Written but not yet fsynced.
    dirty: bool,
    poisoned: bool,
    buf: Vec<u8>,
}

pub struct Log {
    fs: Arc<dyn Fs>,
    dir: PathBuf,
    config: LogConfig,
    writer: Mutex<Writer>,
    segments: RwLock<Vec<Segment>>,
    recovery: Recovery,
}

impl Log {
    /// Opens the log in `dir`, creating it if needed, and recovers: a torn tail of the active
    /// segment is truncated, indexes are checked or rebuilt, and any other damage is an
    /// `Error::Corrupt` naming the file and offset.
    pub fn open(dir: &Path, config: LogConfig) -> Result<Log> {
        Log::open_with(Arc::new(StdFs), dir, config)
    }

    /// `open` on a given file system (`SimFs` in power-loss tests).
    pub fn open_with(fs: Arc<dyn Fs>, dir: &Path, config: LogConfig) -> Result<Log> {
        let fs_ref: &dyn Fs = &*fs;
        fs_ref.create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut bases = Vec::new();
        for name in fs_ref.list(dir).map_err(|e| Error::io(dir, e))? {
            if name.ends_with(".tmp") {
                remove_file(fs_ref, &dir.join(&name))?;
            } else if let Some(base) = name.strip_suffix(".seg").and_then(|s| s.parse().ok()) {
                bases.push(base);
            }
        }
        bases.sort_unstable();
        // A roll cut short (the new segment created, its header not yet written) leaves a
        // last segment shorter than its header. Nothing in it was acknowledged: appends to
        // a segment are acknowledged only after its header is synced. It is made again; a
        // short segment anywhere else is still corruption.
        let mut first_base = 0;
        if let Some(&last) = bases.last() {
            let path = segment_path(dir, last);
            let len = fs_ref
                .open(&path)
                .and_then(|f| f.size())
                .map_err(|e| Error::io(&path, e))?;
            if len < SEGMENT_HEADER_LEN {
                remove_file(fs_ref, &path)?;
                bases.pop();
                first_base = last;
            }
        }
        remove_orphan_indexes(fs_ref, dir, &bases)?;

        let mut recovery = Recovery::default();
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len().max(1));
        if bases.is_empty() {
            segments.push(create_segment(fs_ref, dir, first_base)?);
            sync_dir(fs_ref, dir)?;
        }
        for (i, &base) in bases.iter().enumerate() {
            let is_active = i + 1 == bases.len();
            let segment = if is_active {
                let (segment, truncated) = open_active(fs_ref, dir, base, config)?;
                recovery.truncated_bytes = truncated;
                segment
            } else {
                let (segment, rebuilt) = open_sealed(fs_ref, dir, base, config)?;
                recovery.rebuilt_indexes += usize::from(rebuilt);
                segment
            };
            if let Some(prev) = segments.last()
                && prev.end_position != segment.base_position
            {
                return Err(Error::corrupt(
                    &segment.path,
                    0,
                    format!(
                        "segment starts at position {} but the one before it ends at {}",
                        segment.base_position, prev.end_position
                    ),
                ));
            }
            segments.push(segment);
        }

        let active = segments.last().expect("at least one segment");
        let writer = Writer {
            file: active.file.clone(),
            path: active.path.clone(),
            offset: active.len,
            next_position: active.end_position,
            last_timestamp_ms: segments
                .iter()
                .rev()
                .find_map(|s| s.max_timestamp_ms)
                .unwrap_or(0),
            bytes_since_index: bytes_since_last_entry(active),
            pending_index: Vec::new(),
            pending_min_timestamp_ms: None,
            dirty: false,
            poisoned: false,
            buf: Vec::new(),
        };
        Ok(Log {
            fs,
            dir: dir.to_owned(),
            config,
            writer: Mutex::new(writer),
            segments: RwLock::new(segments),
            recovery,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// Writes `records` as one batch at the end of the log. Nothing is visible to readers,
    /// nor durable, until `commit`.
    pub fn append(&self, records: &[RecordRef<'_>]) -> Result<Appended> {
        let len = format::batch_len(records);
        if len > BATCH_LEN_MAX {
            return Err(Error::TooLarge {
                bytes: len,
                max: BATCH_LEN_MAX,
            });
        }
        if let Some(r) = records.iter().find(|r| r.key.len() > u16::MAX as usize) {
            return Err(Error::TooLarge {
                bytes: r.key.len(),
                max: u16::MAX as usize,
            });
        }
        let mut w = self.writer.lock().expect("writer lock");
        if w.poisoned {
            return Err(Error::Poisoned {
                path: w.path.clone(),
            });
        }
        if w.offset >= self.config.segment_bytes_max && w.offset > SEGMENT_HEADER_LEN {
            self.roll(&mut w)?;
        }
        let first_position = w.next_position;
        let mut clamped: Vec<RecordRef<'_>> = Vec::with_capacity(records.len());
        let mut last = w.last_timestamp_ms;
        for r in records {
            last = last.max(r.timestamp_ms);
            clamped.push(RecordRef {
                timestamp_ms: last,
                ..*r
            });
        }
        let first_timestamp_ms = clamped.first().map_or(last, |r| r.timestamp_ms);
        let mut buf = std::mem::take(&mut w.buf);
        buf.clear();
        format::encode_batch(&mut buf, first_position, &clamped);
        let offset = w.offset;
        let written = w.file.write_all_at(&buf, offset);
        w.buf = buf;
        if let Err(e) = written {
            // A short write may have left part of the batch on disk; the offset does not move,
            // so the next batch overwrites it, and recovery would treat it as a torn tail.
            return Err(Error::io(&w.path, e));
        }
        if w.bytes_since_index >= self.config.index_interval_bytes || offset == SEGMENT_HEADER_LEN {
            w.pending_index.push(IndexEntry {
                position: first_position,
                timestamp_ms: first_timestamp_ms,
                offset,
            });
            w.bytes_since_index = 0;
        }
        w.bytes_since_index += len as u64;
        w.offset += len as u64;
        w.next_position += records.len() as u64;
        w.last_timestamp_ms = last;
        w.pending_min_timestamp_ms.get_or_insert(first_timestamp_ms);
        w.dirty = true;
        Ok(Appended {
            first_position,
            first_timestamp_ms,
        })
    }

    /// Makes every append so far visible to readers, after an fsync if `durable`.
    /// A failed fsync poisons the log: see `Error::Poisoned`.
    pub fn commit(&self, durable: bool) -> Result<()> {
        let mut w = self.writer.lock().expect("writer lock");
        if durable {
            self.sync_locked(&mut w)?;
        }
        self.publish(&mut w);
        Ok(())
    }

    /// The file system of the active segment: logs with the same id can share one
    /// `sync_filesystem`.
    pub fn filesystem_id(&self) -> Option<u64> {
        self.writer
            .lock()
            .expect("writer lock")
            .file
            .filesystem_id()
    }

    /// Makes durable, with one sync of the whole file system, what has been appended to
    /// every log on it so far. Each of those logs then publishes with `commit_synced`. An
    /// error poisons nothing: the caller falls back to `commit(true)` per log, which finds
    /// the file that failed.
    pub fn sync_filesystem(&self) -> Result<()> {
        let w = self.writer.lock().expect("writer lock");
        if w.poisoned {
            return Err(Error::Poisoned {
                path: w.path.clone(),
            });
        }
        w.file.sync_filesystem().map_err(|e| Error::io(&w.path, e))
    }

    /// Publishes appends made durable by a `sync_filesystem` (of any log on the same file
    /// system) that ran after them; nothing may be appended in between.
    pub fn commit_synced(&self) -> Result<()> {
        let mut w = self.writer.lock().expect("writer lock");
        if w.poisoned {
            return Err(Error::Poisoned {
                path: w.path.clone(),
            });
        }
        w.dirty = false;
        self.publish(&mut w);
        Ok(())
    }

    /// Fsyncs what was appended, without publishing it (for interval fsync policies, where
    /// commit already published).
    pub fn sync(&self) -> Result<()> {
        let mut w = self.writer.lock().expect("writer lock");
        self.sync_locked(&mut w)
    }

    fn sync_locked(&self, w: &mut Writer) -> Result<()> {
        if w.poisoned {
            return Err(Error::Poisoned {
                path: w.path.clone(),
            });
        }
        if !w.dirty {
            return Ok(());
        }
        if let Err(e) = w.file.sync() {
            w.poisoned = true;
            return Err(Error::io(&w.path, e));
        }
        w.dirty = false;
        Ok(())
    }

    fn publish(&self, w: &mut Writer) {
        let mut segments = self.segments.write().expect("segments lock");
        let active = segments.last_mut().expect("at least one segment");
        debug_assert_eq!(active.path, w.path);
        active.len = w.offset;
        active.end_position = w.next_position;
        active.index.append(&mut w.pending_index);
        if let Some(ts) = w.pending_min_timestamp_ms.take() {
            active.min_timestamp_ms.get_or_insert(ts);
            active.max_timestamp_ms = Some(w.last_timestamp_ms);
        }
    }

    /// Seals the active segment (fsync, index file) and starts a new one.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        self.sync_locked(w)?;
        self.publish(w);
        let sealed = self.segments.read().expect("segments lock").last().cloned();
        let sealed = sealed.expect("at least one segment");
        write_index(&*self.fs, &self.dir, &sealed)?;
        let next = create_segment(&*self.fs, &self.dir, w.next_position)?;
        sync_dir(&*self.fs, &self.dir)?;
        w.file = next.file.clone();
        w.path = next.path.clone();
        w.offset = next.len;
        w.bytes_since_index = 0;
        self.segments.write().expect("segments lock").push(next);
        Ok(())
    }

    /// The first position still stored. Records before it were removed by retention.
    pub fn start_position(&self) -> u64 {
        self.segments.read().expect("segments lock")[0].base_position
    }

    /// One past the last visible record: the position the next append will get once it is
    /// committed.
    pub fn end_position(&self) -> u64 {
        let segments = self.segments.read().expect("segments lock");
        segments.last().expect("at least one segment").end_position
    }

    /// Timestamp of the last visible record.
    pub fn last_timestamp_ms(&self) -> Option<i64> {
        let segments = self.segments.read().expect("segments lock");
        segments.iter().rev().find_map(|s| s.max_timestamp_ms)
    }

    /// Bytes of segment files, headers included.
    pub fn size_bytes(&self) -> u64 {
        self.segments
            .read()
            .expect("segments lock")
            .iter()
            .map(|s| s.len)
            .sum()
    }

    /// Reads records from `from` on: at most `max_records`, and no more than `max_bytes` of
    /// keys and data except that the first record is always returned whole.
    pub fn read(&self, from: u64, max_records: usize, max_bytes: usize) -> Result<ReadBatch> {
        let mut out = ReadBatch {
            records: Vec::new(),
            next_position: from,
        };
        let mut bytes = 0usize;
        let mut position = from;
        while out.records.len() < max_records {
            let Some((segment, offset)) = self.locate(position) else {
                break;
            };
            position = position.max(segment.base_position);
            out.next_position = position;
            let mut full = false;
            scan(&segment, offset, |p, r| {
                if p < position {
                    return true;
                }
                let size = r.key.len() + r.data.len();
                if out.records.len() >= max_records
                    || (!out.records.is_empty() && bytes + size > max_bytes)
                {
                    full = true;
                    return false;
                }
                bytes += size;
                out.records.push(Record {
                    position: p,
                    timestamp_ms: r.timestamp_ms,
                    flags: r.flags,
                    key: r.key.to_vec(),
                    data: r.data.to_vec(),
                });
                out.next_position = p + 1;
                true
            })?;
            if full {
                break;
            }
            position = segment.end_position;
            out.next_position = out.next_position.max(position);
        }
        Ok(out)
    }

    /// The position of the first record with a timestamp at or after `timestamp_ms`, or the
    /// end position if there is none.
    pub fn position_at_timestamp(&self, timestamp_ms: i64) -> Result<u64> {
        let found = {
            let segments = self.segments.read().expect("segments lock");
            let end = segments.last().expect("at least one segment").end_position;
            match segments
                .iter()
                .find(|s| s.max_timestamp_ms.is_some_and(|t| t >= timestamp_ms))
            {
                None => return Ok(end),
                Some(s) => {
                    let i = s.index.partition_point(|e| e.timestamp_ms < timestamp_ms);
                    let offset = s.index[i.saturating_sub(1)].offset;
                    (s.clone(), offset)
                }
            }
        };
        let (segment, offset) = found;
        let mut position = segment.end_position;
        scan(&segment, offset, |p, r| {
            if r.timestamp_ms >= timestamp_ms {
                position = p;
                return false;
            }
            true
        })?;
        Ok(position)
    }

    /// Finds the segment holding `position` and the offset of the batch to start scanning at.
    /// A position before the first segment maps to the first segment.
    fn locate(&self, position: u64) -> Option<(Segment, u64)> {
        let segments = self.segments.read().expect("segments lock");
        let i = segments
            .partition_point(|s| s.base_position <= position)
            .saturating_sub(1);
        let segment = &segments[i];
        if position >= segment.end_position {
            return None;
        }
        let j = segment
            .index
            .partition_point(|e| e.position <= position)
            .saturating_sub(1);
        let offset = segment
            .index
            .get(j)
            .map_or(SEGMENT_HEADER_LEN, |e| e.offset);
        Some((segment.clone(), offset))
    }

    /// Removes whole segments whose every record is older than `cutoff_ms`, oldest first.
    /// If the active segment is entirely expired too, it is sealed first so its space is
    /// reclaimed; the log always keeps one (possibly empty) segment so positions continue.
    pub fn trim(&self, cutoff_ms: i64) -> Result<TrimReport> {
        let mut w = self.writer.lock().expect("writer lock");
        let expired = |s: &Segment| s.max_timestamp_ms.is_none_or(|t| t < cutoff_ms);
        let roll_active = {
            let segments = self.segments.read().expect("segments lock");
            let active = segments.last().expect("at least one segment");
            segments.iter().all(expired) && active.end_position > active.base_position
        };
        if roll_active && w.next_position == self.end_position() {
            self.roll(&mut w)?;
        }
        let removed: Vec<Segment> = {
            let mut segments = self.segments.write().expect("segments lock");
            let keep_from = segments[..segments.len() - 1]
                .iter()
                .position(|s| !expired(s))
                .unwrap_or(segments.len() - 1);
            segments.drain(..keep_from).collect()
        };
        drop(w);
        let mut report = TrimReport::default();
        for segment in &removed {
            // The segment goes before its index: a crash in between leaves an orphan index,
            // which `open` deletes, rather than a segment without one, which it would rescan.
            remove_file(&*self.fs, &segment.path)?;
            remove_file(&*self.fs, &segment.path.with_extension("idx"))?;
            report.segments_removed += 1;
            report.bytes_removed += segment.len;
        }
        if !removed.is_empty() {
            sync_dir(&*self.fs, &self.dir)?;
        }
        Ok(report)
    }
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn create_segment(fs: &dyn Fs, dir: &Path, base: u64) -> Result<Segment> {
    let path = segment_path(dir, base);
    let file = fs.create_new(&path).map_err(|e| Error::io(&path, e))?;
    file.write_all_at(&format::encode_segment_header(base), 0)
        .map_err(|e| Error::io(&path, e))?;
    file.sync().map_err(|e| Error::io(&path, e))?;
    Ok(Segment {
        base_position: base,
        path,
        file,
        len: SEGMENT_HEADER_LEN,
        end_position: base,
        index: Vec::new(),
        min_timestamp_ms: None,
        max_timestamp_ms: None,
    })
}

fn open_segment_file(
    fs: &dyn Fs,
    dir: &Path,
    base: u64,
) -> Result<(PathBuf, Arc<dyn FsFile>, u64)> {
    let path = segment_path(dir, base);
    let file = fs.open(&path).map_err(|e| Error::io(&path, e))?;
    let len = file.size().map_err(|e| Error::io(&path, e))?;
    let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
    if len < SEGMENT_HEADER_LEN {
        return Err(Error::corrupt(
            &path,
            0,
            "segment is shorter than its header",
        ));
    }
    file.read_exact_at(&mut header, 0)
        .map_err(|e| Error::io(&path, e))?;
    match format::decode_segment_header(&header) {
        Ok(b) if b == base => Ok((path, file, len)),
        Ok(b) => Err(Error::corrupt(
            &path,
            0,
            format!("header says base position {b}"),
        )),
        Err(reason) => Err(Error::corrupt(&path, 0, reason)),
    }
}

/// Opens a sealed segment through its index file, or rebuilds the index by a full scan in
/// which any damage is corruption (a sealed segment was fsynced before it was sealed).
fn open_sealed(fs: &dyn Fs, dir: &Path, base: u64, config: LogConfig) -> Result<(Segment, bool)> {
    let (path, file, len) = open_segment_file(fs, dir, base)?;
    let index_path = path.with_extension("idx");
    match fs.read(&index_path) {
        Ok(bytes) => {
            if let Ok(index) = format::decode_index(&bytes)
                && index.segment_len == len
            {
                let empty = index.end_position == base;
                let segment = Segment {
                    base_position: base,
                    path,
                    file,
                    len,
                    end_position: index.end_position,
                    index: index.entries,
                    min_timestamp_ms: (!empty).then_some(index.min_timestamp_ms),
                    max_timestamp_ms: (!empty).then_some(index.max_timestamp_ms),
                };
                return Ok((segment, false));
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&index_path, e)),
    }
    let (segment, valid_len) = scan_segment(path, file, base, len, config)?;
    if valid_len != len {
        return Err(Error::corrupt(
            &segment.path,
            valid_len,
            "sealed segment has a damaged batch",
        ));
    }
    write_index(fs, dir, &segment)?;
    Ok((segment, true))
}

/// Opens the active segment: scans it, truncates a torn tail, and refuses damage that is not
/// at the tail.
fn open_active(fs: &dyn Fs, dir: &Path, base: u64, config: LogConfig) -> Result<(Segment, u64)> {
    let (path, file, len) = open_segment_file(fs, dir, base)?;
    let (mut segment, valid_len) = scan_segment(path, file, base, len, config)?;
    let mut truncated = 0;
    if valid_len < len {
        let tail =
            tail_kind(&*segment.file, valid_len, len).map_err(|e| Error::io(&segment.path, e))?;
        if !tail.is_torn {
            return Err(Error::corrupt(&segment.path, valid_len, tail.reason));
        }
        segment
            .file
            .set_len(valid_len)
            .map_err(|e| Error::io(&segment.path, e))?;
        segment
            .file
            .sync()
            .map_err(|e| Error::io(&segment.path, e))?;
        truncated = len - valid_len;
    }
    // An index left by a roll that crashed before the next segment was created is stale
    // once this segment takes appends again.
    remove_file(fs, &segment.path.with_extension("idx"))?;
    segment.len = valid_len;
    Ok((segment, truncated))
}

struct Tail {
    is_torn: bool,
    reason: &'static str,
}

/// Decides whether the invalid bytes from `from` to `len` are a torn write (a batch cut
/// short at the end of the file, or zeros a file system left after a crash) or damage.
fn tail_kind(file: &dyn FsFile, from: u64, len: u64) -> std::io::Result<Tail> {
    let mut header = [0u8; BATCH_HEADER_LEN];
    let n = ((len - from) as usize).min(BATCH_HEADER_LEN);
    file.read_exact_at(&mut header[..n], from)?;
    if n < BATCH_HEADER_LEN {
        return Ok(Tail {
            is_torn: true,
            reason: "",
        });
    }
    let claimed = u32::from_le_bytes(header[..4].try_into().expect("four bytes")) as u64;
    if from + claimed.max(BATCH_HEADER_LEN as u64) >= len {
        return Ok(Tail {
            is_torn: true,
            reason: "",
        });
    }
    // The bad batch ends before the file does: only all-zero bytes after it are a torn tail.
    let mut buf = vec![0u8; 64 << 10];
    let mut at = from;
    while at < len {
        let n = ((len - at) as usize).min(buf.len());
        file.read_exact_at(&mut buf[..n], at)?;
        if buf[..n].iter().any(|&b| b != 0) {
            return Ok(Tail {
                is_torn: false,
                reason: "damaged batch followed by more data (not a torn tail)",
            });
        }
        at += n as u64;
    }
    Ok(Tail {
        is_torn: true,
        reason: "",
    })
}

/// Reads every batch of a segment, checking each, and rebuilds its index. Returns the
/// segment as far as it is valid and the offset where validity ends.
fn scan_segment(
    path: PathBuf,
    file: Arc<dyn FsFile>,
    base: u64,
    len: u64,
    config: LogConfig,
) -> Result<(Segment, u64)> {
    let mut segment = Segment {
        base_position: base,
        path,
        file,
        len,
        end_position: u64::MAX,
        index: Vec::new(),
        min_timestamp_ms: None,
        max_timestamp_ms: None,
    };
    let mut reader = ChunkReader::new(&*segment.file, len);
    let mut offset = SEGMENT_HEADER_LEN;
    let mut position = base;
    let mut since_index = u64::MAX;
    while let Some(batch) = reader
        .batch_at(offset)
        .map_err(|e| Error::io(&segment.path, e))?
    {
        let mut last_ts = None;
        let mut first_ts = None;
        let decoded = format::decode_batch(batch, |_, r| {
            first_ts.get_or_insert(r.timestamp_ms);
            last_ts = Some(r.timestamp_ms);
        });
        let Ok(header) = decoded else { break };
        if header.base_position != position {
            break;
        }
        let batch_len = header.len as u64;
        if let Some(ts) = first_ts {
            if since_index >= config.index_interval_bytes {
                segment.index.push(IndexEntry {
                    position,
                    timestamp_ms: ts,
                    offset,
                });
                since_index = 0;
            }
            segment.min_timestamp_ms.get_or_insert(ts);
            segment.max_timestamp_ms = last_ts;
        }
        since_index = since_index.saturating_add(batch_len);
        position += header.record_count as u64;
        offset += batch_len;
    }
    segment.end_position = position;
    segment.len = offset;
    Ok((segment, offset))
}

/// Calls `each` for every record of the published part of `segment` from the batch at
/// `offset` on, until it returns false. Damage is corruption: readers only reach published,
/// recovered bytes.
fn scan(
    segment: &Segment,
    offset: u64,
    mut each: impl FnMut(u64, RecordRef<'_>) -> bool,
) -> Result<()> {
    let mut reader = ChunkReader::new(&*segment.file, segment.len);
    let mut offset = offset;
    while offset < segment.len {
        let batch = reader
            .batch_at(offset)
            .map_err(|e| Error::io(&segment.path, e))?;
        let Some(batch) = batch else {
            return Err(Error::corrupt(
                &segment.path,
                offset,
                "batch runs past the segment end",
            ));
        };
        let mut go_on = true;
        let header = format::decode_batch(batch, |p, r| {
            if go_on {
                go_on = each(p, r);
            }
        })
        .map_err(|reason| Error::corrupt(&segment.path, offset, reason))?;
        if !go_on {
            return Ok(());
        }
        offset += header.len as u64;
    }
    Ok(())
}

/// Reads a segment in large chunks so that scanning many small batches costs few syscalls.
struct ChunkReader<'a> {
    file: &'a dyn FsFile,
    len: u64,
    buf: Vec<u8>,
    buf_start: u64,
}

const CHUNK_BYTES: usize = 256 << 10;

impl<'a> ChunkReader<'a> {
    fn new(file: &'a dyn FsFile, len: u64) -> ChunkReader<'a> {
        ChunkReader {
            file,
            len,
            buf: Vec::new(),
            buf_start: 0,
        }
    }

    /// The whole batch at `offset`, or `None` if its header is invalid or it runs past the
    /// end.
    fn batch_at(&mut self, offset: u64) -> std::io::Result<Option<&[u8]>> {
        if offset + BATCH_HEADER_LEN as u64 > self.len {
            return Ok(None);
        }
        self.fill(offset, BATCH_HEADER_LEN)?;
        let at = (offset - self.buf_start) as usize;
        let Ok(header) = format::decode_batch_header(&self.buf[at..]) else {
            return Ok(None);
        };
        if offset + header.len as u64 > self.len {
            return Ok(None);
        }
        self.fill(offset, header.len)?;
        let at = (offset - self.buf_start) as usize;
        Ok(Some(&self.buf[at..at + header.len]))
    }

    fn fill(&mut self, offset: u64, need: usize) -> std::io::Result<()> {
        let end = self.buf_start + self.buf.len() as u64;
        if offset >= self.buf_start && offset + need as u64 <= end {
            return Ok(());
        }
        let want = need.max(CHUNK_BYTES).min((self.len - offset) as usize);
        self.buf.resize(want, 0);
        self.file.read_exact_at(&mut self.buf, offset)?;
        self.buf_start = offset;
        Ok(())
    }
}

fn bytes_since_last_entry(segment: &Segment) -> u64 {
    match segment.index.last() {
        Some(e) => segment.len - e.offset,
        None => u64::MAX,
    }
}

/// Writes a sealed segment's index atomically: temp file, fsync, rename, directory fsync.
fn write_index(fs: &dyn Fs, dir: &Path, segment: &Segment) -> Result<()> {
    let index = IndexFile {
        segment_len: segment.len,
        end_position: segment.end_position,
        min_timestamp_ms: segment.min_timestamp_ms.unwrap_or(0),
        max_timestamp_ms: segment.max_timestamp_ms.unwrap_or(0),
        entries: segment.index.clone(),
    };
    let path = segment.path.with_extension("idx");
    let tmp = segment.path.with_extension("idx.tmp");
    let file = fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
    file.write_all_at(&format::encode_index(&index), 0)
        .map_err(|e| Error::io(&tmp, e))?;
    file.sync().map_err(|e| Error::io(&tmp, e))?;
    fs.rename(&tmp, &path).map_err(|e| Error::io(&path, e))?;
    sync_dir(fs, dir)
}

fn remove_orphan_indexes(fs: &dyn Fs, dir: &Path, bases: &[u64]) -> Result<()> {
    for name in fs.list(dir).map_err(|e| Error::io(dir, e))? {
        if let Some(base) = name
            .strip_suffix(".idx")
            .and_then(|s| s.parse::<u64>().ok())
            && bases.binary_search(&base).is_err()
        {
            remove_file(fs, &dir.join(&name))?;
        }
    }
    Ok(())
}

fn remove_file(fs: &dyn Fs, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(|e| Error::io(dir, e))
}

#[cfg(test)]
mod power_loss;
#[cfg(test)]
mod tests;
