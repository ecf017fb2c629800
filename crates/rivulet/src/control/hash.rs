//! The 128-bit hash-key space: partition keys to hash keys (MD5, big-endian) and the even
//! split of the space into shards, exactly as Kinesis splits it.

use md5::{Digest, Md5};

/// The hash key Kinesis derives from a partition key: MD5 of its UTF-8 bytes, read as an
/// unsigned big-endian 128-bit integer.
pub fn hash_key(partition_key: &str) -> u128 {
    u128::from_be_bytes(Md5::digest(partition_key.as_bytes()).into())
}

/// The ranges of `count` shards covering the whole space: `step = floor(2^128 / count)`,
/// shard `i` gets `[i*step, (i+1)*step - 1]` and the last one ends at `2^128 - 1`.
/// (kinesis-mock uses `(2^128 - 1) / count`, one lower for even counts; AWS matches this.)
pub fn even_ranges(count: u32) -> Vec<(u128, u128)> {
    assert!(count > 0, "a stream has at least one shard");
    if count == 1 {
        return vec![(0, u128::MAX)];
    }
    let n = u128::from(count);
    // floor(2^128 / n) without overflow: 2^128 = u128::MAX + 1.
    let step = u128::MAX / n + u128::from(u128::MAX % n == n - 1);
    (0..n)
        .map(|i| {
            let start = i * step;
            let end = if i == n - 1 {
                u128::MAX
            } else {
                (i + 1) * step - 1
            };
            (start, end)
        })
        .collect()
}

/// Parses a decimal hash key as the model allows it (`0|([1-9]\d{0,38})`), or `None` when it
/// is not one. Values above `2^128 - 1` are `None` too.
pub fn parse_hash_key(s: &str) -> Option<u128> {
    let well_formed = s == "0"
        || (!s.is_empty()
            && s.len() <= 39
            && !s.starts_with('0')
            && s.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn two_shards_split_where_aws_splits() {
        let ranges = even_ranges(2);
        assert_eq!(
            ranges[0].1.to_string(),
            "170141183460469231731687303715884105727"
        );
        assert_eq!(
            ranges[1].0.to_string(),
            "170141183460469231731687303715884105728"
        );
        assert_eq!(ranges[1].1, u128::MAX);
    }

    #[test]
    fn md5_hash_keys_match_known_values() {
        // MD5("a") = 0cc175b9c0f1b6a831c399e269772661
        assert_eq!(hash_key("a"), 0x0cc175b9c0f1b6a831c399e269772661);
        assert_eq!(hash_key(""), 0xd41d8cd98f00b204e9800998ecf8427e);
    }

    #[test]
    fn hash_keys_parse_as_the_model_says() {
        assert_eq!(parse_hash_key("0"), Some(0));
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211455"),
            Some(u128::MAX)
        );
        assert_eq!(
            parse_hash_key("340282366920938463463374607431768211456"),
            None
        );
        assert_eq!(parse_hash_key("01"), None);
        assert_eq!(parse_hash_key("-1"), None);
        assert_eq!(parse_hash_key(""), None);
    }

    proptest! {
        /// The ranges cover the space in order with no gap and no overlap, and are as even
        /// as integer division allows.
        #[test]
        fn even_ranges_partition_the_space(count in 1u32..2000) {
            let ranges = even_ranges(count);
            prop_assert_eq!(ranges.len(), count as usize);
            prop_assert_eq!(ranges[0].0, 0);
            prop_assert_eq!(ranges.last().unwrap().1, u128::MAX);
            for pair in ranges.windows(2) {
                prop_assert_eq!(pair[0].1 + 1, pair[1].0);
            }
            let widths: Vec<u128> = ranges[..ranges.len() - 1].iter().map(|r| r.1 - r.0).collect();
            prop_assert!(widths.iter().all(|w| *w == widths.first().copied().unwrap_or(*w)));
        }

        /// Every partition key lands in exactly one range.
        #[test]
        fn every_key_routes_to_exactly_one_shard(key in "\\PC{1,256}", count in 1u32..100) {
            let h = hash_key(&key);
            let ranges = even_ranges(count);
            let hits = ranges.iter().filter(|(s, e)| *s <= h && h <= *e).count();
            prop_assert_eq!(hits, 1);
        }
    }
}
