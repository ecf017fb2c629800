#![no_main]
// CBOR decoding in both timestamp units must never panic, and what decodes re-encodes and
// decodes to the same value.
use libfuzzer_sys::fuzz_target;
use rivulet::cbor::{Field, TimeUnit, decode, encode};

fuzz_target!(|data: &[u8]| {
    for unit in [TimeUnit::Seconds, TimeUnit::Millis] {
        if let Ok(v) = decode(data, unit) {
            let again = encode(&v, unit, &|_| Field::Plain);
            assert_eq!(decode(&again, unit).ok(), Some(v));
        }
    }
});
