//! Shard iterators: opaque, signed tokens naming a stream incarnation, a shard and a
//! position, valid for five minutes.
//!
//! Layout before base64: version u8 | stream created ms i64 | shard index u32 |
//! position u64 | issued ms i64 | stream name len u8 | stream name | HMAC-SHA256 tag
//! (first 16 bytes) over everything before it. The key is per data directory, so iterators
//! survive a restart but cannot be forged, nor edited to read another stream or shard.

use hmac::{Hmac, Mac};
use sha2::Sha256;

const VERSION: u8 = 1;
const TAG_BYTES: usize = 16;
const FIXED_BYTES: usize = 1 + 8 + 4 + 8 + 8 + 1;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIterator {
    pub stream_name: String,
    pub stream_created_ms: i64,
    pub shard_index: u32,
    pub position: u64,
    pub issued_ms: i64,
}

/// Signs and checks iterators with one secret key.
#[derive(Clone)]
pub struct IteratorCodec {
    key: [u8; 32],
}

impl IteratorCodec {
    pub fn new(key: [u8; 32]) -> IteratorCodec {
        IteratorCodec { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("hmac takes any key length")
    }

    pub fn encode(&self, it: &ShardIterator) -> String {
        let name = it.stream_name.as_bytes();
        assert!(name.len() <= 255, "stream names are at most 128 bytes");
        let mut buf = Vec::with_capacity(FIXED_BYTES + name.len() + TAG_BYTES);
        buf.push(VERSION);
        buf.extend_from_slice(&it.stream_created_ms.to_le_bytes());
        buf.extend_from_slice(&it.shard_index.to_le_bytes());
        buf.extend_from_slice(&it.position.to_le_bytes());
        buf.extend_from_slice(&it.issued_ms.to_le_bytes());
        buf.push(name.len() as u8);
        buf.extend_from_slice(name);
        let mut mac = self.mac();
        mac.update(&buf);
        buf.extend_from_slice(&mac.finalize().into_bytes()[..TAG_BYTES]);
        base64_simd::STANDARD.encode_to_string(&buf)
    }

    /// `None` for anything that is not an untampered iterator of this server.
    pub fn decode(&self, token: &str) -> Option<ShardIterator> {
        let buf = base64_simd::STANDARD.decode_to_vec(token.as_bytes()).ok()?;
        if buf.len() < FIXED_BYTES + TAG_BYTES || buf[0] != VERSION {
            return None;
        }
        let (body, tag) = buf.split_at(buf.len() - TAG_BYTES);
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_truncated_left(tag).ok()?;
        let name_len = body[FIXED_BYTES - 1] as usize;
        if body.len() != FIXED_BYTES + name_len {
            return None;
        }
        Some(ShardIterator {
            stream_created_ms: i64::from_le_bytes(body[1..9].try_into().ok()?),
            shard_index: u32::from_le_bytes(body[9..13].try_into().ok()?),
            position: u64::from_le_bytes(body[13..21].try_into().ok()?),
            issued_ms: i64::from_le_bytes(body[21..29].try_into().ok()?),
            stream_name: String::from_utf8(body[FIXED_BYTES..].to_vec()).ok()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ShardIterator {
        ShardIterator {
            stream_name: "orders".into(),
            stream_created_ms: 1_700_000_000_123,
            shard_index: 2,
            position: 99,
            issued_ms: 1_700_000_100_000,
        }
    }

    #[test]
    fn round_trips_and_fits_the_model_length() {
        let codec = IteratorCodec::new([7; 32]);
        let token = codec.encode(&sample());
        assert_eq!(codec.decode(&token), Some(sample()));
        let long = ShardIterator {
            stream_name: "x".repeat(128),
            ..sample()
        };
        assert!(codec.encode(&long).len() <= 512);
    }

    proptest::proptest! {
        /// Any string decodes to nothing or to an iterator, without panicking, and any
        /// change to a real iterator's bytes is refused.
        #[test]
        fn arbitrary_tokens_are_refused_safely(token in ".{0,600}", at in 0usize..200, bit in 0u8..8) {
            let codec = IteratorCodec::new([7; 32]);
            let _ = codec.decode(&token);
            let mut raw = base64_simd::STANDARD.decode_to_vec(codec.encode(&sample()).as_bytes()).unwrap();
            let at = at % raw.len();
            raw[at] ^= 1 << bit;
            proptest::prop_assert_eq!(codec.decode(&base64_simd::STANDARD.encode_to_string(&raw)), None);
        }
    }

    #[test]
    fn rejects_tampering_and_other_keys() {
        let codec = IteratorCodec::new([7; 32]);
        let token = codec.encode(&sample());
        let mut raw = base64_simd::STANDARD
            .decode_to_vec(token.as_bytes())
            .unwrap();
        raw[10] ^= 1; // another shard
        assert_eq!(
            codec.decode(&base64_simd::STANDARD.encode_to_string(&raw)),
            None
        );
        assert_eq!(IteratorCodec::new([8; 32]).decode(&token), None);
        assert_eq!(codec.decode("not an iterator"), None);
        assert_eq!(codec.decode(""), None);
    }
}
