#![no_main]
// KPL de-aggregation of arbitrary bytes must never panic; with the magic and a valid MD5
// around them, the protobuf parser itself is reached.
use libfuzzer_sys::fuzz_target;
use md5::{Digest, Md5};
use rivulet::client::kpl::deaggregate;

fuzz_target!(|data: &[u8]| {
    let _ = deaggregate(data);
    let mut framed = vec![0xF3, 0x89, 0x9A, 0xC2];
    framed.extend_from_slice(data);
    framed.extend_from_slice(&Md5::digest(data));
    let _ = deaggregate(&framed);
});
