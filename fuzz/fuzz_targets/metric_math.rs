#![no_main]
// Metric-math parsing of arbitrary text must never panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = rivulet::monitor::expr::parse(text);
    }
});
