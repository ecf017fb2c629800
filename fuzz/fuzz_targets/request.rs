#![no_main]
// Request decoding through the real dispatcher (the check is in fuzz/checks/request.rs). The
// service runs on a scratch data dir and keeps its state between inputs, so mutations of
// valid requests reach the operations themselves; every 20,000 inputs it is emptied.
use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use rivulet::config::{Config, FsyncPolicy};
use rivulet::service::Kinesis;

#[path = "../checks/request.rs"]
mod check;

struct Target {
    runtime: tokio::runtime::Runtime,
    svc: Arc<Kinesis>,
    inputs: Mutex<u64>,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rivulet-fuzz-request-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::new(&dir);
        config.fsync = FsyncPolicy::Never;
        config.state_delay_ms = 0;
        config.control_plane_limits = false;
        config.shard_rates = rivulet::data::throughput::ShardRates::OFF;
        let clock: rivulet::clock::SharedClock = Arc::new(rivulet::clock::SystemClock);
        let backend = Arc::new(rivulet::storage::DiskBackend::new(&dir, 1 << 20));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let svc = {
            let _inside = runtime.enter();
            Arc::new(Kinesis::open(config, clock, backend).unwrap())
        };
        runtime.block_on(check::prepare(&svc));
        Target {
            runtime,
            svc,
            inputs: Mutex::new(0),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let t = target();
    let reset = {
        let mut inputs = t.inputs.lock().unwrap();
        *inputs += 1;
        inputs.is_multiple_of(20_000)
    };
    t.runtime.block_on(async {
        if reset {
            check::prepare(&t.svc).await;
        }
        check::check(&t.svc, data).await;
    });
});
