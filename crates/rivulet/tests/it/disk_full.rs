//! A full disk, for real: the server's data dir on a small tmpfs. Writes are refused with a
//! retryable InternalFailure that says the disk is full, nothing acknowledged is lost, and
//! writing resumes by itself once space frees, with every record still there after a kill.
//! Mounting needs root; elsewhere the test says it was skipped.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;

use crate::cli::RealServer;
use crate::harness::{TempDir, client_without_retries, read_shard};

struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system at `dir` with `filler`, then gives `keep` bytes back.
fn fill(filler: &PathBuf, keep: u64) -> u64 {
    let mut f = std::fs::File::create(filler).unwrap();
    let chunk = vec![0u8; 256 << 10];
    let mut written = 0u64;
    while f.write_all(&chunk).is_ok() {
        written += chunk.len() as u64;
    }
    let _ = f.sync_all();
    let len = written.saturating_sub(keep);
    f.set_len(len).unwrap();
    f.sync_all().unwrap();
    len
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_refuses_writes_retryably_loses_nothing_and_recovers() {
    let mnt = TempDir::new("tmpfs");
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tmpfs"])
        .arg(mnt.path())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("SKIPPED a_full_disk_refuses_writes…: cannot mount a tmpfs (needs root)");
        return;
    }
    let _mount = Mount(mnt.path().to_owned());
    let data = mnt.path().join("data");
    let s = RealServer::start_in(&data, &["--segment-mib", "1"]);
    let k = client_without_retries(&s.endpoint);
    k.create_stream()
        .stream_name("full")
        .shard_count(1)
        .send()
        .await
        .unwrap();
    // Leave about 2 MiB free.
    let filler = mnt.path().join("filler");
    fill(&filler, 2 << 20);

    let entry = |i: u32| {
        PutRecordsRequestEntry::builder()
            .partition_key(format!("k{i}"))
            .data(Blob::new(format!("{i:06}-{}", "x".repeat(1000))))
            .build()
            .unwrap()
    };
    let mut acked: Vec<(String, u32)> = Vec::new();
    let mut refusals = Vec::new();
    let mut i = 0u32;
    // Write until the disk refuses several batches in a row.
    while refusals.len() < 3 && i < 20_000 {
        let batch: Vec<_> = (i..i + 100).map(entry).collect();
        match k
            .put_records()
            .stream_name("full")
            .set_records(Some(batch))
            .send()
            .await
        {
            Ok(out) => {
                let mut refused = false;
                for (n, r) in out.records().iter().enumerate() {
                    match r.sequence_number() {
                        Some(seq) => acked.push((seq.to_owned(), i + n as u32)),
                        None => {
                            refused = true;
                            assert_eq!(r.error_code(), Some("InternalFailure"));
                            refusals.push(r.error_message().unwrap_or("").to_owned());
                        }
                    }
                }
                if !refused {
                    refusals.clear();
                }
            }
            Err(e) => panic!("PutRecords failed as a whole: {e:?}"),
        }
        i += 100;
    }
    assert!(
        !acked.is_empty(),
        "nothing was written before the disk filled"
    );
    assert!(
        refusals.iter().all(|m| m.contains("disk is full")),
        "{refusals:?}"
    );
    // PutRecord says the same, as a retryable 500 (a large record, so it cannot fit in
    // what the refused batches left).
    let mut refused = None;
    for _ in 0..5 {
        let data = format!("{:06}{}", 999_999, "y".repeat(1_000_000));
        match k
            .put_record()
            .stream_name("full")
            .partition_key("single")
            .data(Blob::new(data))
            .send()
            .await
        {
            Ok(out) => acked.push((out.sequence_number().to_owned(), 999_999)),
            Err(e) => {
                refused = Some(e.into_service_error());
                break;
            }
        }
    }
    let e = refused.expect("PutRecord refused on a full disk");
    assert_eq!(e.meta().code(), Some("InternalFailure"));
    assert!(
        e.meta().message().unwrap_or("").contains("disk is full"),
        "{e:?}"
    );

    // Free the space: writes resume without a restart.
    std::fs::remove_file(&filler).unwrap();
    let mut resumed = None;
    for _ in 0..50 {
        let out = k
            .put_records()
            .stream_name("full")
            .records(entry(900_000))
            .send()
            .await
            .unwrap();
        if let Some(seq) = out.records()[0].sequence_number() {
            resumed = Some(seq.to_owned());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resumed = resumed.expect("writes resume once space frees");
    acked.push((resumed, 900_000));

    // Every acknowledged record is there, in order, and still after a kill.
    let check = |records: Vec<aws_sdk_kinesis::types::Record>| {
        let got: Vec<(String, u32)> = records
            .iter()
            .map(|r| {
                let data = r.data().as_ref();
                let n: u32 = std::str::from_utf8(&data[..6]).unwrap().parse().unwrap();
                (r.sequence_number().to_owned(), n)
            })
            .collect();
        assert_eq!(
            got, acked,
            "acknowledged records and the shard's contents differ"
        );
    };
    check(read_shard(&k, "full", "shardId-000000000000").await);
    drop(s);
    let s = RealServer::start_in(&data, &["--segment-mib", "1"]);
    let k = client_without_retries(&s.endpoint);
    check(read_shard(&k, "full", "shardId-000000000000").await);
}
