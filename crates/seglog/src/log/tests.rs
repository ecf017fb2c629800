//! Tests of one log against the file system: append, read, reopen, roll, retention, and
//! recovery from torn tails and from corruption.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use proptest::prelude::*;

use std::fs;

use super::*;

/// A fresh directory under the target dir, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "seglog-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn small() -> LogConfig {
    LogConfig {
        segment_bytes_max: 300,
        index_interval_bytes: 100,
    }
}

fn put(log: &Log, ts: i64, data: &str) -> u64 {
    let r = RecordRef {
        timestamp_ms: ts,
        flags: 0,
        key: b"pk",
        data: data.as_bytes(),
    };
    let appended = log.append(&[r]).unwrap();
    log.commit(true).unwrap();
    appended.first_position
}

fn all(log: &Log) -> Vec<(u64, String)> {
    let batch = log.read(0, usize::MAX, usize::MAX).unwrap();
    batch
        .records
        .into_iter()
        .map(|r| (r.position, String::from_utf8(r.data).unwrap()))
        .collect()
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

#[test]
fn appends_read_back_in_order_across_rolls_and_reopen() {
    let dir = TempDir::new("roundtrip");
    let log = Log::open(&dir.0, small()).unwrap();
    for i in 0..50 {
        assert_eq!(put(&log, i, &format!("record-{i}")), i as u64);
    }
    assert!(segment_files(&dir.0).len() > 3, "small segments roll");
    let before = all(&log);
    assert_eq!(before.len(), 50);
    drop(log);
    let log = Log::open(&dir.0, small()).unwrap();
    assert_eq!(log.recovery(), &Recovery::default());
    assert_eq!(all(&log), before);
    assert_eq!(put(&log, 100, "after"), 50);
}

#[test]
fn uncommitted_appends_are_invisible() {
    let dir = TempDir::new("invisible");
    let log = Log::open(&dir.0, LogConfig::default()).unwrap();
    let r = RecordRef {
        timestamp_ms: 1,
        flags: 0,
        key: b"k",
        data: b"d",
    };
    log.append(&[r]).unwrap();
    assert_eq!(log.end_position(), 0);
    assert!(log.read(0, 10, 1000).unwrap().records.is_empty());
    log.commit(false).unwrap();
    assert_eq!(log.read(0, 10, 1000).unwrap().records.len(), 1);
}

#[test]
fn read_respects_record_and_byte_limits() {
    let dir = TempDir::new("limits");
    let log = Log::open(&dir.0, small()).unwrap();
    for i in 0..20 {
        put(&log, i, "0123456789");
    }
    let batch = log.read(3, 5, usize::MAX).unwrap();
    assert_eq!(
        batch.records.iter().map(|r| r.position).collect::<Vec<_>>(),
        [3, 4, 5, 6, 7]
    );
    assert_eq!(batch.next_position, 8);
    // 12 bytes per record (key "pk" + 10 bytes of data): 30 bytes fit two records.
    let batch = log.read(0, 100, 30).unwrap();
    assert_eq!(batch.records.len(), 2);
    // The first record is returned even when it alone is over the byte limit.
    let batch = log.read(0, 100, 1).unwrap();
    assert_eq!(batch.records.len(), 1);
    let batch = log.read(20, 100, 1000).unwrap();
    assert!(batch.records.is_empty());
    assert_eq!(batch.next_position, 20);
}

#[test]
fn timestamps_seek_and_never_decrease() {
    let dir = TempDir::new("timestamps");
    let log = Log::open(&dir.0, small()).unwrap();
    for i in 0..30 {
        put(&log, 1000 + i * 10, "x");
    }
    put(&log, 5, "clock went backwards");
    assert_eq!(log.position_at_timestamp(0).unwrap(), 0);
    assert_eq!(log.position_at_timestamp(1000).unwrap(), 0);
    assert_eq!(log.position_at_timestamp(1001).unwrap(), 1);
    assert_eq!(log.position_at_timestamp(1150).unwrap(), 15);
    assert_eq!(log.position_at_timestamp(1155).unwrap(), 16);
    let last = log.read(30, 1, 100).unwrap().records.remove(0);
    assert_eq!(
        last.timestamp_ms, 1290,
        "a timestamp is never below the one before it"
    );
    assert_eq!(log.position_at_timestamp(99_999).unwrap(), 31);
}

#[test]
fn trim_removes_whole_expired_segments_and_positions_continue() {
    let dir = TempDir::new("trim");
    let log = Log::open(&dir.0, small()).unwrap();
    for i in 0..40 {
        put(&log, i, "data-data");
    }
    let files_before = segment_files(&dir.0).len();
    let report = log.trim(20).unwrap();
    assert!(report.segments_removed > 0);
    assert!(segment_files(&dir.0).len() < files_before);
    let start = log.start_position();
    assert!(start > 0 && start <= 20, "start {start}");
    let left = all(&log);
    assert_eq!(left.first().unwrap().0, start);
    assert_eq!(left.last().unwrap().0, 39);
    // Everything expired: the active segment is sealed and removed too, numbering goes on.
    log.trim(1000).unwrap();
    assert!(all(&log).is_empty());
    assert_eq!(log.start_position(), 40);
    drop(log);
    let log = Log::open(&dir.0, small()).unwrap();
    assert_eq!(put(&log, 2000, "next"), 40);
}

#[test]
fn torn_tail_is_truncated_and_reported() {
    let dir = TempDir::new("torn");
    let log = Log::open(&dir.0, LogConfig::default()).unwrap();
    for i in 0..5 {
        put(&log, i, "payload");
    }
    drop(log);
    let seg = segment_files(&dir.0).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    // Cut the last batch in half.
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 10)
        .unwrap();
    let log = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert!(log.recovery().truncated_bytes > 0);
    assert_eq!(all(&log).len(), 4);
    assert_eq!(put(&log, 9, "again"), 4);
}

#[test]
fn zeroed_tail_is_truncated() {
    let dir = TempDir::new("zeros");
    let log = Log::open(&dir.0, LogConfig::default()).unwrap();
    put(&log, 1, "one");
    drop(log);
    let seg = segment_files(&dir.0).pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    let file = OpenOptions::new().write(true).open(&seg).unwrap();
    FileExt::write_all_at(&file, &[0u8; 4096], len).unwrap();
    let log = Log::open(&dir.0, LogConfig::default()).unwrap();
    assert_eq!(log.recovery().truncated_bytes, 4096);
    assert_eq!(all(&log).len(), 1);
}

#[test]
fn corruption_in_the_middle_of_the_active_segment_is_refused() {
    let dir = TempDir::new("middle");
    let log = Log::open(&dir.0, LogConfig::default()).unwrap();
    for i in 0..5 {
        put(&log, i, "payload-payload");
    }
    drop(log);
    let seg = segment_files(&dir.0).pop().unwrap();
    let file = OpenOptions::new()
        .write(true)
        .read(true)
        .open(&seg)
        .unwrap();
    // Flip a bit inside the second batch's data.
    let offset = SEGMENT_HEADER_LEN + 60;
    let mut byte = [0u8];
    FileExt::read_exact_at(&file, &mut byte, offset).unwrap();
    FileExt::write_all_at(&file, &[byte[0] ^ 0x04], offset).unwrap();
    match Log::open(&dir.0, LogConfig::default()) {
        Err(Error::Corrupt { path, offset, .. }) => {
            assert_eq!(path, seg);
            assert!(
                offset > SEGMENT_HEADER_LEN,
                "names the damaged batch: {offset}"
            );
        }
        Err(e) => panic!("expected corruption, got {e}"),
        Ok(_) => panic!("expected corruption, the log opened"),
    }
}

#[test]
fn corruption_in_a_sealed_segment_is_refused_on_read_and_on_reopen() {
    let dir = TempDir::new("sealed");
    let log = Log::open(&dir.0, small()).unwrap();
    for i in 0..30 {
        put(&log, i, "sealed-data");
    }
    let first = segment_files(&dir.0).remove(0);
    let file = OpenOptions::new().write(true).open(&first).unwrap();
    FileExt::write_all_at(&file, b"XX", SEGMENT_HEADER_LEN + 30).unwrap();
    assert!(matches!(
        log.read(0, 100, 100_000),
        Err(Error::Corrupt { .. })
    ));
    drop(log);
    // The index still matches the length, so open trusts it; reads still catch the damage.
    let log = Log::open(&dir.0, small()).unwrap();
    assert!(matches!(
        log.read(0, 100, 100_000),
        Err(Error::Corrupt { .. })
    ));
    drop(log);
    // Without the index the segment is rescanned, and the damage stops the open.
    fs::remove_file(first.with_extension("idx")).unwrap();
    assert!(matches!(
        Log::open(&dir.0, small()),
        Err(Error::Corrupt { .. })
    ));
}

#[test]
fn missing_index_is_rebuilt() {
    let dir = TempDir::new("rebuild");
    let log = Log::open(&dir.0, small()).unwrap();
    for i in 0..30 {
        put(&log, i, "abc");
    }
    let before = all(&log);
    drop(log);
    let first = segment_files(&dir.0).remove(0);
    fs::remove_file(first.with_extension("idx")).unwrap();
    let log = Log::open(&dir.0, small()).unwrap();
    assert_eq!(log.recovery().rebuilt_indexes, 1);
    assert_eq!(all(&log), before);
}

#[test]
fn a_missing_middle_segment_is_refused() {
    let dir = TempDir::new("gap");
    let log = Log::open(&dir.0, small()).unwrap();
    for i in 0..40 {
        put(&log, i, "abcdefgh");
    }
    drop(log);
    let files = segment_files(&dir.0);
    assert!(files.len() >= 3);
    fs::remove_file(&files[1]).unwrap();
    assert!(matches!(
        Log::open(&dir.0, small()),
        Err(Error::Corrupt { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The log behaves like a `Vec` of records, across commits, reopens and torn tails.
    #[test]
    fn log_matches_a_vec_model(
        ops in prop::collection::vec((0u8..4, prop::collection::vec(any::<u8>(), 0..40), 1usize..4), 1..40)
    ) {
        let dir = TempDir::new("model");
        let mut log = Log::open(&dir.0, small()).unwrap();
        let mut model: Vec<Vec<u8>> = Vec::new();
        let mut ts = 0;
        for (op, data, n) in ops {
            match op {
                0 | 1 => {
                    let records: Vec<RecordRef<'_>> = (0..n)
                        .map(|_| RecordRef { timestamp_ms: ts, flags: 0, key: b"k", data: &data })
                        .collect();
                    ts += 1;
                    log.append(&records).unwrap();
                    log.commit(op == 0).unwrap();
                    model.extend(std::iter::repeat_n(data.clone(), n));
                }
                2 => {
                    drop(log);
                    log = Log::open(&dir.0, small()).unwrap();
                }
                _ => {
                    // An append that never commits is lost at a crash, and nothing else is.
                    log.append(&[RecordRef { timestamp_ms: ts, flags: 0, key: b"k", data: &data }]).unwrap();
                    drop(log);
                    log = Log::open(&dir.0, small()).unwrap();
                    // The append reached the page cache, so it survives a process restart.
                    model.push(data.clone());
                }
            }
            let got: Vec<Vec<u8>> = log.read(0, usize::MAX, usize::MAX).unwrap().records.into_iter().map(|r| r.data).collect();
            prop_assert_eq!(&got, &model);
            prop_assert_eq!(log.end_position(), model.len() as u64);
        }
    }
}

/// A SIGKILL between creating a new segment and writing its header leaves an empty last
/// segment: recovery makes it again instead of refusing to open (found by the crash loop).
#[test]
fn an_empty_last_segment_from_a_cut_short_roll_is_made_again() {
    let dir = TempDir::new("short-last");
    let log = Log::open(&dir.0, small()).unwrap();
    put(&log, 1, "kept");
    let end = log.end_position();
    drop(log);
    fs::File::create(dir.0.join(format!("{end:020}.seg"))).unwrap();
    let log = Log::open(&dir.0, small()).unwrap();
    assert_eq!(log.end_position(), end);
    assert_eq!(all(&log), [(0, "kept".to_owned())]);
    put(&log, 2, "after");
    drop(log);
    let log = Log::open(&dir.0, small()).unwrap();
    assert_eq!(all(&log).len(), 2);
}
