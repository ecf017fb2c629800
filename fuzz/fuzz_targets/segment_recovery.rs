#![no_main]
// Arbitrary bytes as a shard's only segment file: recovery either refuses them or opens a
// log whose every record reads back without a panic.
use std::path::Path;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use seglog::fs::{Fs, SimFs};
use seglog::{Log, LogConfig};

fuzz_target!(|data: &[u8]| {
    let fs = SimFs::new();
    let dir = Path::new("/shard");
    fs.create_dir_all(dir).unwrap();
    let file = fs.create(&dir.join("00000000000000000000.seg")).unwrap();
    file.write_all_at(data, 0).unwrap();
    if let Ok(log) = Log::open_with(Arc::new(fs), dir, LogConfig::default()) {
        let mut position = log.start_position();
        for _ in 0..1000 {
            match log.read(position, 1000, 1 << 20) {
                Ok(batch) if !batch.records.is_empty() => position = batch.next_position,
                _ => break,
            }
        }
    }
});
