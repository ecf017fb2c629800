//! On-demand scaling: which shards of an ON_DEMAND stream are hot, and where to split them.
//!
//! The policy (ARCHITECTURE.md states it too):
//! - every housekeeping tick (1 s), each open shard of an ON_DEMAND stream is evaluated over
//!   the time since the last evaluation;
//! - it is over capacity in an evaluation if it had writes refused for throughput, or if it
//!   took at least `HOT_FRACTION` (80 %) of a shard's write capacity in records/s or bytes/s
//!   (the configured per-shard rates, or Kinesis's 1,000 records/s and 1 MiB/s when limits
//!   are off);
//! - a shard over capacity in `HOT_EVALUATIONS` (5) consecutive evaluations is split;
//! - the split key is the median of the last `SAMPLE_MAX` (1,024) hash keys written to the
//!   shard, or the middle of its range when the median would make an invalid split;
//! - splits respect the account shard limit; children start with fresh windows, so a range
//!   that stays hot splits again after another 5 s.

use std::sync::Mutex;

use crate::data::throughput::ShardRates;

pub const HOT_FRACTION: f64 = 0.8;
pub const HOT_EVALUATIONS: u32 = 5;
pub const SAMPLE_MAX: usize = 1024;

/// A shard's recent load: a ring of recent hash keys and the evaluation window.
#[derive(Debug, Default)]
pub struct ShardLoad {
    state: Mutex<LoadState>,
}

#[derive(Debug, Default)]
struct LoadState {
    hashes: Vec<u128>,
    next: usize,
    /// Counter values and time at the last evaluation.
    last: Option<(u64, u64, u64, i64)>,
    hot_evaluations: u32,
}

impl ShardLoad {
    /// Remembers hash keys of records written to the shard (a bounded ring).
    pub fn record_hashes(&self, hashes: impl IntoIterator<Item = u128>) {
        let mut s = self.state.lock().expect("load lock");
        for h in hashes {
            if s.hashes.len() < SAMPLE_MAX {
                s.hashes.push(h);
            } else {
                let i = s.next;
                s.hashes[i] = h;
            }
            s.next = (s.next + 1) % SAMPLE_MAX;
        }
    }

    /// Evaluates the shard given its cumulative counters; true when it has been over
    /// capacity for `HOT_EVALUATIONS` evaluations in a row.
    pub fn evaluate(
        &self,
        records: u64,
        bytes: u64,
        throttled: u64,
        now_ms: i64,
        rates: ShardRates,
    ) -> bool {
        let mut s = self.state.lock().expect("load lock");
        let Some((r0, b0, t0, then)) = s.last.replace((records, bytes, throttled, now_ms)) else {
            return false;
        };
        let seconds = (now_ms - then) as f64 / 1000.0;
        if seconds <= 0.0 {
            return false;
        }
        let records_cap = rates.write_records_per_s.unwrap_or(1000) as f64;
        let bytes_cap = rates.write_bytes_per_s.unwrap_or(1 << 20) as f64;
        let over = throttled > t0
            || (records - r0) as f64 / seconds >= HOT_FRACTION * records_cap
            || (bytes - b0) as f64 / seconds >= HOT_FRACTION * bytes_cap;
        s.hot_evaluations = if over { s.hot_evaluations + 1 } else { 0 };
        s.hot_evaluations >= HOT_EVALUATIONS
    }

    /// Where to split a shard covering `[start, end]`: the traffic's median hash key if it
    /// is a valid split key (greater than `start + 1`, less than `end`), else the middle.
    pub fn split_key(&self, start: u128, end: u128) -> u128 {
        let mut sample = self.state.lock().expect("load lock").hashes.clone();
        let valid = |k: u128| k > start.saturating_add(1) && k < end;
        if !sample.is_empty() {
            sample.sort_unstable();
            let median = sample[sample.len() / 2];
            if valid(median) {
                return median;
            }
        }
        start + (end - start) / 2 + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_after_five_evaluations_over_capacity() {
        let load = ShardLoad::default();
        let rates = ShardRates::OFF;
        assert!(!load.evaluate(0, 0, 0, 0, rates));
        for i in 1..=4 {
            assert!(
                !load.evaluate(900 * i, 0, 0, 1000 * i as i64, rates),
                "evaluation {i}"
            );
        }
        assert!(load.evaluate(900 * 5, 0, 0, 5000, rates));
        // A quiet second resets the count.
        let load = ShardLoad::default();
        load.evaluate(0, 0, 0, 0, rates);
        for i in 1..=4 {
            load.evaluate(900 * i, 0, 0, 1000 * i as i64, rates);
        }
        assert!(!load.evaluate(3600, 0, 0, 5000, rates));
        // Throttling alone counts.
        let load = ShardLoad::default();
        load.evaluate(0, 0, 0, 0, ShardRates::AWS);
        let hot = (1..=5)
            .map(|i| load.evaluate(0, 0, i, 1000 * i as i64, ShardRates::AWS))
            .last();
        assert_eq!(hot, Some(true));
    }

    #[test]
    fn splits_at_the_traffic_median() {
        let load = ShardLoad::default();
        load.record_hashes([10, 20, 30, 40, 1000]);
        assert_eq!(load.split_key(0, 2000), 30);
        assert_eq!(ShardLoad::default().split_key(0, 2000), 1001);
        let skewed = ShardLoad::default();
        skewed.record_hashes([0, 0, 0]);
        assert_eq!(
            skewed.split_key(0, 2000),
            1001,
            "an invalid median falls back to the middle"
        );
        let ring = ShardLoad::default();
        ring.record_hashes(0..5000u128);
        assert_eq!(ring.state.lock().unwrap().hashes.len(), SAMPLE_MAX);
    }
}
