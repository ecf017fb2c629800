//! Sequence numbers: how a shard position becomes the decimal string Kinesis clients see.
//!
//! Shape: 56 decimal digits, like production ones (`4954…`), made of the fixed prefix `49`
//! and 54 zero-padded digits of a 128-bit value:
//! `stream epoch seconds (32 bits) | shard index (32 bits) | position (64 bits)`.
//! All numbers have the same length and prefix, so comparing them as integers compares the
//! 128-bit values: strictly increasing with the position within a shard, never reused
//! (positions are never reused), and stable across restarts (nothing here depends on
//! memory). The embedded stream epoch and shard index let GetShardIterator tell a number
//! from another stream or shard apart, as Kinesis does.

use std::fmt;

const PREFIX: &str = "49";
const DIGITS: usize = 56;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SequenceNumber {
    /// The stream's creation time in seconds (truncated to 32 bits).
    pub stream_epoch: u32,
    pub shard_index: u32,
    pub position: u64,
}

impl SequenceNumber {
    fn value(self) -> u128 {
        (u128::from(self.stream_epoch) << 96)
            | (u128::from(self.shard_index) << 64)
            | u128::from(self.position)
    }

    /// Parses a number this server made; `None` for anything else.
    pub fn parse(s: &str) -> Option<SequenceNumber> {
        if s.len() != DIGITS || !s.starts_with(PREFIX) || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let value: u128 = s[PREFIX.len()..].parse().ok()?;
        Some(SequenceNumber {
            stream_epoch: (value >> 96) as u32,
            shard_index: (value >> 64) as u32,
            position: value as u64,
        })
    }
}

impl fmt::Display for SequenceNumber {
    /// Hand-rolled: `{:054}` on a u128 showed up in profiles of PutRecords, where every
    /// record gets one. The value is split into 19-digit chunks so the digit loops run on u64.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const CHUNK: u128 = 10_000_000_000_000_000_000; // 10^19
        let mut buf = [b'0'; DIGITS];
        buf[..2].copy_from_slice(PREFIX.as_bytes());
        let v = self.value();
        let chunks = [
            (v / CHUNK / CHUNK) as u64,
            (v / CHUNK % CHUNK) as u64,
            (v % CHUNK) as u64,
        ];
        // 54 digits: 16 for the top chunk (at most 3), then 19 and 19.
        let mut end = DIGITS;
        for (i, mut chunk) in chunks.into_iter().rev().enumerate() {
            let width = if i == 2 { 16 } else { 19 };
            for _ in 0..width {
                end -= 1;
                buf[end] = b'0' + (chunk % 10) as u8;
                chunk /= 10;
            }
        }
        f.write_str(std::str::from_utf8(&buf).expect("ascii digits"))
    }
}

/// The epoch a stream created at `created_ms` stamps into its sequence numbers.
pub fn stream_epoch(created_ms: i64) -> u32 {
    (created_ms / 1000) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn looks_like_a_production_sequence_number() {
        let s = SequenceNumber {
            stream_epoch: 1_763_000_000,
            shard_index: 3,
            position: 7,
        }
        .to_string();
        assert_eq!(s.len(), 56);
        assert!(s.starts_with("49"));
        assert_eq!(SequenceNumber::parse("0"), None);
        assert_eq!(SequenceNumber::parse(&s[..55]), None);
    }

    proptest! {
        #[test]
        fn round_trips(epoch: u32, shard: u32, position: u64) {
            let n = SequenceNumber { stream_epoch: epoch, shard_index: shard, position };
            prop_assert_eq!(SequenceNumber::parse(&n.to_string()), Some(n));
            prop_assert_eq!(n.to_string(), format!("49{:054}", n.value()));
        }

        /// Decimal order, as a BigInteger-parsing client sees it, follows position order.
        #[test]
        fn order_follows_position(epoch: u32, shard: u32, a: u64, b: u64) {
            let x = SequenceNumber { stream_epoch: epoch, shard_index: shard, position: a }.to_string();
            let y = SequenceNumber { stream_epoch: epoch, shard_index: shard, position: b }.to_string();
            prop_assert_eq!(a.cmp(&b), x.cmp(&y));
        }
    }
}
