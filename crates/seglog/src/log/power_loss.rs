//! Power loss, simulated: the log runs on `SimFs`, which forgets every write that was not
//! fsynced when the power goes. Every record acknowledged by a durable commit must survive,
//! at its position and byte for byte; nothing else may appear in its place; and recovery
//! must never mistake the aftermath for corruption. Crash points are taken at every single
//! file-system mutation of a run that rolls segments and deletes them for retention, and
//! each is ended in every way of `Crash`: all unsynced changes lost, directory changes kept
//! but data lost, half of the unsynced appends kept, and a process kill that keeps them all.

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;

use super::*;
use crate::fs::{Crash, Fs, SimFs};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes_max: 400,
        index_interval_bytes: 120,
    }
}

fn open(fs: &SimFs) -> Result<Log> {
    Log::open_with(Arc::new(fs.clone()), Path::new("/sim/shard"), config())
}

fn payload(n: usize) -> Vec<u8> {
    format!("record-{n}-").repeat(1 + n % 7).into_bytes()
}

/// Checks the reopened log against what was appended and acknowledged.
fn check(log: &Log, appended: &[Vec<u8>], acked: usize) {
    let end = log.end_position() as usize;
    assert!(
        end >= acked,
        "acknowledged records lost: {acked} acknowledged, log ends at {end}"
    );
    assert!(
        end <= appended.len(),
        "log ends at {end} but only {} were appended",
        appended.len()
    );
    let read = log
        .read(0, usize::MAX, usize::MAX)
        .expect("a recovered log reads");
    let start = log.start_position() as usize;
    assert_eq!(read.records.len(), end - start, "positions are dense");
    for r in &read.records {
        assert_eq!(
            &r.data, &appended[r.position as usize],
            "record {} changed",
            r.position
        );
    }
}

/// One run: appends with durable commits, rolling several segments, then a retention pass
/// and more appends. Stops at the first error (the simulated power loss). Returns what was
/// appended or attempted (the last may have failed halfway, and may or may not survive)
/// and how many records were acknowledged.
fn scenario(fs: &SimFs) -> (Vec<Vec<u8>>, usize) {
    let mut appended = Vec::new();
    let mut acked = 0;
    let Ok(log) = open(fs) else {
        return (appended, acked);
    };
    for i in 0..40 {
        let data = payload(i);
        let r = RecordRef {
            timestamp_ms: i as i64,
            flags: 0,
            key: b"k",
            data: &data,
        };
        appended.push(data.clone());
        if log.append(&[r]).is_err() {
            return (appended, acked);
        }
        if log.commit(true).is_err() {
            return (appended, acked);
        }
        acked = appended.len();
        if i == 25 && log.trim(15).is_err() {
            return (appended, acked);
        }
    }
    (appended, acked)
}

#[test]
fn every_crash_point_keeps_every_acknowledged_record() {
    let probe = SimFs::new();
    let (appended, acked) = scenario(&probe);
    assert_eq!(acked, 40);
    let log = open(&probe).unwrap();
    assert!(
        log.start_position() > 0,
        "the scenario must delete segments"
    );
    drop(log);
    let total = probe.mutations();
    assert!(total > 100, "{total} mutations");
    for (n, how) in (0..total).flat_map(|n| Crash::ALL.map(|how| (n, how))) {
        let fs = SimFs::new();
        fs.fail_after(n);
        let (appended, acked) = scenario(&fs);
        fs.crash_as(how);
        let log = open(&fs)
            .unwrap_or_else(|e| panic!("{how:?} after mutation {n}: recovery failed: {e}"));
        check(&log, &appended, acked);
        // And the log takes writes again.
        let r = RecordRef {
            timestamp_ms: 100,
            flags: 0,
            key: b"k",
            data: b"after",
        };
        let next = log.append(&[r]).unwrap().first_position;
        log.commit(true).unwrap();
        assert_eq!(next as usize, log.end_position() as usize - 1);
    }
    drop(appended);
}

/// Three logs committed together by one file-system sync (as the shard writers do for a
/// group that touched many shards), rolling segments: at every crash point, each log keeps
/// what was acknowledged after the shared sync.
#[test]
fn a_shared_file_system_sync_keeps_every_acknowledged_record_of_every_log() {
    const LOGS: usize = 3;
    fn open_at(fs: &SimFs, i: usize) -> Result<Log> {
        Log::open_with(
            Arc::new(fs.clone()),
            Path::new(&format!("/sim/{i}")),
            config(),
        )
    }
    fn run(fs: &SimFs) -> Vec<(Vec<Vec<u8>>, usize)> {
        let mut state = vec![(Vec::new(), 0); LOGS];
        let mut logs = Vec::new();
        for i in 0..LOGS {
            match open_at(fs, i) {
                Ok(log) => logs.push(log),
                Err(_) => return state,
            }
        }
        for round in 0..25 {
            for (i, log) in logs.iter().enumerate() {
                let data = payload(round * LOGS + i);
                let r = RecordRef {
                    timestamp_ms: round as i64,
                    flags: 0,
                    key: b"k",
                    data: &data,
                };
                state[i].0.push(data.clone());
                if log.append(&[r]).is_err() {
                    return state;
                }
            }
            if logs[round % LOGS].sync_filesystem().is_err() {
                return state;
            }
            for (i, log) in logs.iter().enumerate() {
                if log.commit_synced().is_err() {
                    return state;
                }
                state[i].1 = state[i].0.len();
            }
        }
        state
    }
    let probe = SimFs::new();
    let state = run(&probe);
    assert!(state.iter().all(|(_, acked)| *acked == 25));
    let total = probe.mutations();
    for (n, how) in (0..total).flat_map(|n| Crash::ALL.map(|how| (n, how))) {
        let fs = SimFs::new();
        fs.fail_after(n);
        let state = run(&fs);
        fs.crash_as(how);
        for (i, (appended, acked)) in state.iter().enumerate() {
            let log = open_at(&fs, i)
                .unwrap_or_else(|e| panic!("{how:?} after mutation {n}: log {i}: {e}"));
            check(&log, appended, *acked);
        }
    }
}

/// A failed file-system sync poisons nothing by itself; the per-log commit that follows it
/// finds the failure and stops that log.
#[test]
fn a_failed_file_system_sync_falls_back_to_each_log() {
    let fs = SimFs::new();
    let log = open(&fs).unwrap();
    let r = RecordRef {
        timestamp_ms: 0,
        flags: 0,
        key: b"k",
        data: b"x",
    };
    log.append(&[r]).unwrap();
    fs.fail_syncs(true);
    assert!(matches!(log.sync_filesystem(), Err(Error::Io { .. })));
    assert!(matches!(log.commit(true), Err(Error::Io { .. })));
    assert!(matches!(log.commit_synced(), Err(Error::Poisoned { .. })));
}

/// After a failed fsync the kernel may have dropped the dirty pages, so retrying the fsync
/// can report success for data that is gone. The log must stop acknowledging instead.
#[test]
fn a_failed_fsync_stops_acknowledgements_until_reopened() {
    let fs = SimFs::new();
    let log = open(&fs).unwrap();
    let r = |data: &'static [u8]| RecordRef {
        timestamp_ms: 0,
        flags: 0,
        key: b"k",
        data,
    };
    log.append(&[r(b"kept")]).unwrap();
    log.commit(true).unwrap();
    fs.fail_syncs(true);
    log.append(&[r(b"lost")]).unwrap();
    assert!(matches!(log.commit(true), Err(Error::Io { .. })));
    fs.fail_syncs(false);
    assert!(
        matches!(log.commit(true), Err(Error::Poisoned { .. })),
        "no retry of a failed fsync"
    );
    assert!(matches!(
        log.append(&[r(b"later")]),
        Err(Error::Poisoned { .. })
    ));
    drop(log);
    fs.crash();
    let log = open(&fs).unwrap();
    let read = log.read(0, 10, 1 << 20).unwrap();
    assert_eq!(
        read.records
            .iter()
            .map(|r| r.data.as_slice())
            .collect::<Vec<_>>(),
        [b"kept"]
    );
    log.append(&[r(b"again")]).unwrap();
    log.commit(true).unwrap();
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Commit { durable: bool },
    Trim(i64),
    Crash(Crash),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..4).prop_map(Op::Append),
        3 => any::<bool>().prop_map(|durable| Op::Commit { durable }),
        1 => (0i64..60).prop_map(Op::Trim),
        1 => prop::sample::select(Crash::ALL.to_vec()).prop_map(Op::Crash),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random appends, commits with and without fsync, retention and crashes of every kind:
    /// what a durable commit acknowledged is always there after the power comes back.
    #[test]
    fn power_loss_never_loses_a_durable_commit(ops in prop::collection::vec(op(), 1..80)) {
        let fs = SimFs::new();
        let mut log = open(&fs).unwrap();
        let mut appended: Vec<Vec<u8>> = Vec::new();
        let mut acked = 0usize;
        let mut clock = 0i64;
        for op in ops {
            match op {
                Op::Append(n) => {
                    let batch: Vec<Vec<u8>> = (0..n).map(|i| payload(appended.len() + i)).collect();
                    let refs: Vec<RecordRef<'_>> = batch
                        .iter()
                        .map(|d| RecordRef { timestamp_ms: clock, flags: 0, key: b"k", data: d })
                        .collect();
                    log.append(&refs).unwrap();
                    appended.extend(batch);
                    clock += 1;
                }
                Op::Commit { durable } => {
                    log.commit(durable).unwrap();
                    if durable {
                        acked = appended.len();
                    }
                }
                Op::Trim(cutoff) => {
                    log.trim(cutoff).unwrap();
                }
                Op::Crash(how) => {
                    drop(log);
                    fs.crash_as(how);
                    log = open(&fs).unwrap();
                    check(&log, &appended, acked);
                    appended.truncate(log.end_position() as usize);
                    acked = acked.min(appended.len());
                }
            }
        }
        drop(log);
        fs.crash();
        let log = open(&fs).unwrap();
        check(&log, &appended, acked);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever bytes a segment file holds, opening and reading the log returns records or an
    /// error naming the damage; it never panics, and never returns a record whose checksum
    /// did not hold (every record read back is one that was written).
    #[test]
    fn arbitrary_segment_bytes_never_panic(
        flips in prop::collection::vec((0usize..600, any::<u8>()), 0..8),
        cut in 0usize..700,
        garbage in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let fs = SimFs::new();
        let log = open(&fs).unwrap();
        let written: Vec<Vec<u8>> = (0..6).map(payload).collect();
        for data in &written {
            log.append(&[RecordRef { timestamp_ms: 1, flags: 0, key: b"k", data }]).unwrap();
            log.commit(true).unwrap();
        }
        drop(log);
        let path = Path::new("/sim/shard/00000000000000000000.seg");
        let file = fs.open(path).unwrap();
        let len = file.size().unwrap() as usize;
        let mut bytes = vec![0u8; len];
        file.read_exact_at(&mut bytes, 0).unwrap();
        for (at, value) in flips {
            if at < bytes.len() {
                bytes[at] = value;
            }
        }
        bytes.truncate(cut.min(bytes.len()));
        bytes.extend_from_slice(&garbage);
        file.set_len(0).unwrap();
        file.write_all_at(&bytes, 0).unwrap();
        file.sync().unwrap();
        if let Ok(log) = open(&fs)
            && let Ok(read) = log.read(0, usize::MAX, usize::MAX)
        {
            for r in read.records {
                prop_assert_eq!(&r.data, &written[r.position as usize]);
            }
        }
    }
}
