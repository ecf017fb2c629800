//! The cargo-fuzz corpus (`fuzz/corpus/<target>/`) replayed on stable, so CI runs every input
//! the fuzzers kept through the same checks as the fuzz targets in `fuzz/fuzz_targets/`.

use std::path::PathBuf;
use std::sync::Arc;

use rivulet::cbor::{Field, TimeUnit, decode, encode};

use crate::harness::TestServer;

#[path = "../../../../fuzz/checks/request.rs"]
mod request_check;

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fuzz/corpus")).join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| std::fs::read(e.ok()?.path()).ok())
        .collect()
}

#[test]
fn fuzz_corpus_replays_cleanly() {
    let mut total = 0;
    for data in corpus("cbor_decode") {
        for unit in [TimeUnit::Seconds, TimeUnit::Millis] {
            if let Ok(v) = decode(&data, unit) {
                let again = encode(&v, unit, &|_| Field::Plain);
                assert_eq!(decode(&again, unit).ok(), Some(v));
            }
        }
        total += 1;
    }
    for data in corpus("kpl_deaggregate") {
        use md5::{Digest, Md5};
        let _ = rivulet::client::kpl::deaggregate(&data);
        let mut framed = vec![0xF3, 0x89, 0x9A, 0xC2];
        framed.extend_from_slice(&data);
        framed.extend_from_slice(&Md5::digest(&data));
        let _ = rivulet::client::kpl::deaggregate(&framed);
        total += 1;
    }
    for data in corpus("metric_math") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = rivulet::monitor::expr::parse(text);
        }
        total += 1;
    }
    for data in corpus("shard_iterator") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let codec = rivulet::data::iterator::IteratorCodec::new([7u8; 32]);
            assert!(codec.decode(text).is_none());
        }
        total += 1;
    }
    for data in corpus("segment_recovery") {
        use seglog::fs::{Fs, SimFs};
        let fs = SimFs::new();
        let dir = std::path::Path::new("/shard");
        fs.create_dir_all(dir).unwrap();
        let file = fs.create(&dir.join("00000000000000000000.seg")).unwrap();
        file.write_all_at(&data, 0).unwrap();
        if let Ok(log) = seglog::Log::open_with(Arc::new(fs), dir, seglog::LogConfig::default()) {
            let mut position = log.start_position();
            for _ in 0..1000 {
                match log.read(position, 1000, 1 << 20) {
                    Ok(batch) if !batch.records.is_empty() => position = batch.next_position,
                    _ => break,
                }
            }
        }
        total += 1;
    }
    eprintln!("replayed {total} corpus inputs");
}

/// The `request` target's corpus through the same check, against a real service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzz_request_corpus_replays_cleanly() {
    let server = TestServer::start().await;
    let svc = server.handle.service().clone();
    request_check::prepare(&svc).await;
    let inputs = corpus("request");
    for data in &inputs {
        request_check::check(&svc, data).await;
    }
    eprintln!("replayed {} request corpus inputs", inputs.len());
    assert!(
        inputs.len() >= 71,
        "the corpus is there, at least as many inputs as fuzz/seeds/request.py writes"
    );
}
