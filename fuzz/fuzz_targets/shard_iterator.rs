#![no_main]
// Shard-iterator tokens: arbitrary text never panics and never decodes (the HMAC fails).
use libfuzzer_sys::fuzz_target;
use rivulet::data::iterator::IteratorCodec;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let codec = IteratorCodec::new([7u8; 32]);
        assert!(codec.decode(text).is_none());
    }
});
