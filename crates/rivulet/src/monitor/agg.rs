//! One datapoint's statistics: sample count, sum, minimum, maximum, and a log-bucketed
//! histogram for percentiles. Aggregates merge, so partial aggregates of the same period
//! (flushed at different times, or written late) combine exactly at query time.

/// Histogram bucket ratio: a value is reported within 1 % of the truth.
const GAMMA: f64 = 1.02;
/// Buckets above this offset are positive values, below its negation negative ones.
const OFFSET: i32 = 2000;
/// Distinct histogram buckets one aggregate keeps; past it, the closest buckets merge.
const HIST_BUCKETS_MAX: usize = 512;

#[derive(Debug, Clone, PartialEq)]
pub struct Agg {
    pub count: f64,
    pub sum: f64,
    pub min: f64,
    pub max: f64,
    /// Sorted by bucket key; counts of samples. Empty when only statistic sets were added.
    hist: Vec<(i16, u32)>,
}

impl Agg {
    pub fn one(value: f64) -> Agg {
        let mut a = Agg::set(1.0, value, value, value);
        a.hist.push((key(value), 1));
        a
    }

    /// A statistic set (PutMetricData `StatisticValues`): no percentiles.
    pub fn set(count: f64, sum: f64, min: f64, max: f64) -> Agg {
        Agg {
            count,
            sum,
            min,
            max,
            hist: Vec::new(),
        }
    }

    /// `count` samples of `value` (PutMetricData `Values` with `Counts`).
    pub fn repeated(value: f64, count: f64) -> Agg {
        let mut a = Agg::set(count, value * count, value, value);
        let n = count.round().clamp(0.0, u32::MAX as f64) as u32;
        if n > 0 {
            a.hist.push((key(value), n));
        }
        a
    }

    pub fn add(&mut self, value: f64) {
        self.merge(&Agg::one(value));
    }

    pub fn merge(&mut self, other: &Agg) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.hist.is_empty() {
            return;
        }
        let mut merged: Vec<(i16, u32)> = Vec::with_capacity(self.hist.len() + other.hist.len());
        let (mut i, mut j) = (0, 0);
        while i < self.hist.len() || j < other.hist.len() {
            let take_left =
                j >= other.hist.len() || (i < self.hist.len() && self.hist[i].0 <= other.hist[j].0);
            let (k, n) = if take_left {
                i += 1;
                self.hist[i - 1]
            } else {
                j += 1;
                other.hist[j - 1]
            };
            match merged.last_mut() {
                Some((last, m)) if *last == k => *m = m.saturating_add(n),
                _ => merged.push((k, n)),
            }
        }
        while merged.len() > HIST_BUCKETS_MAX {
            // Fold the two lowest buckets together: precision is lost at the low tail only.
            let (_, n) = merged.remove(0);
            merged[0].1 = merged[0].1.saturating_add(n);
        }
        self.hist = merged;
    }

    pub fn average(&self) -> f64 {
        if self.count > 0.0 {
            self.sum / self.count
        } else {
            0.0
        }
    }

    /// The `p`th percentile (0–100), or None when the datapoint has no per-sample values.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        let total: u64 = self.hist.iter().map(|(_, n)| *n as u64).sum();
        if total == 0 {
            return None;
        }
        // The extremes are known exactly.
        if p <= 0.0 {
            return Some(self.min);
        }
        if p >= 100.0 {
            return Some(self.max);
        }
        let rank = ((p / 100.0) * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (k, n) in &self.hist {
            seen += *n as u64;
            if seen >= rank {
                return Some(value_of(*k).clamp(self.min, self.max));
            }
        }
        Some(self.max)
    }

    /// Samples that carry a value (for `EvaluateLowSampleCountPercentile`).
    pub fn valued_samples(&self) -> u64 {
        self.hist.iter().map(|(_, n)| *n as u64).sum()
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        for f in [self.count, self.sum, self.min, self.max] {
            out.extend_from_slice(&f.to_le_bytes());
        }
        let n = self.hist.len().min(HIST_BUCKETS_MAX) as u16;
        out.extend_from_slice(&n.to_le_bytes());
        for (k, c) in &self.hist[..n as usize] {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
    }

    /// Decodes from the front of `bytes`, returning the rest.
    pub fn decode(bytes: &[u8]) -> Option<(Agg, &[u8])> {
        let f = |i: usize| -> Option<f64> {
            Some(f64::from_le_bytes(
                bytes.get(i * 8..i * 8 + 8)?.try_into().ok()?,
            ))
        };
        let (count, sum, min, max) = (f(0)?, f(1)?, f(2)?, f(3)?);
        let n = u16::from_le_bytes(bytes.get(32..34)?.try_into().ok()?) as usize;
        if n > HIST_BUCKETS_MAX {
            return None;
        }
        let body = bytes.get(34..34 + n * 6)?;
        let hist = body
            .chunks_exact(6)
            .map(|c| {
                (
                    i16::from_le_bytes([c[0], c[1]]),
                    u32::from_le_bytes([c[2], c[3], c[4], c[5]]),
                )
            })
            .collect();
        let agg = Agg {
            count,
            sum,
            min,
            max,
            hist,
        };
        Some((agg, &bytes[34 + n * 6..]))
    }
}

/// The histogram bucket of a value: 0 for zero, positive keys for positive values and
/// negative keys for negative ones, ordered like the values.
fn key(v: f64) -> i16 {
    if v == 0.0 || !v.is_finite() {
        return 0;
    }
    let idx = (v.abs().ln() / GAMMA.ln()).floor() as i32;
    let k = (idx + OFFSET).clamp(1, i16::MAX as i32) as i16;
    if v > 0.0 { k } else { -k }
}

/// A bucket's representative value: the geometric middle of its range.
fn value_of(k: i16) -> f64 {
    if k == 0 {
        return 0.0;
    }
    let idx = (k.unsigned_abs() as i32 - OFFSET) as f64;
    let v = GAMMA.powf(idx + 0.5);
    if k > 0 { v } else { -v }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_within_two_percent() {
        let mut a = Agg::one(1.0);
        for v in 2..=1000 {
            a.add(v as f64);
        }
        assert_eq!(a.count, 1000.0);
        assert_eq!(a.sum, 500_500.0);
        for (p, want) in [(50.0, 500.0), (90.0, 900.0), (99.0, 990.0), (100.0, 1000.0)] {
            let got = a.percentile(p).unwrap();
            assert!((got - want).abs() / want < 0.02, "p{p}: {got} vs {want}");
        }
        assert_eq!(a.percentile(0.0).unwrap(), 1.0);
    }

    #[test]
    fn negative_and_zero_values_order_correctly() {
        let mut a = Agg::one(-5.0);
        a.add(0.0);
        a.add(5.0);
        assert!(a.percentile(10.0).unwrap() < -4.8);
        assert_eq!(a.percentile(50.0).unwrap(), 0.0);
        assert!(a.percentile(100.0).unwrap() > 4.8);
    }

    #[test]
    fn statistic_sets_have_no_percentiles_and_encode_round_trips() {
        let mut a = Agg::set(10.0, 55.0, 1.0, 10.0);
        assert_eq!(a.percentile(50.0), None);
        a.merge(&Agg::repeated(3.0, 4.0));
        assert_eq!(a.count, 14.0);
        assert_eq!(a.sum, 67.0);
        let mut bytes = Vec::new();
        a.encode(&mut bytes);
        bytes.push(7);
        let (back, rest) = Agg::decode(&bytes).unwrap();
        assert_eq!(back, a);
        assert_eq!(rest, &[7]);
        assert!(Agg::decode(&bytes[..20]).is_none());
    }
}
