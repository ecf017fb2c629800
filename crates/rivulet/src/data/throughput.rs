//! Throughput limits as Kinesis enforces them: per shard, writes of 1 MiB/s and 1,000
//! records/s, reads of 2 MiB/s and 5 GetRecords calls/s (with a penalty after a large read),
//! 5 GetShardIterator calls/s; and per operation, the control-plane rates.
//!
//! Each limit is a token bucket holding at most one second of its rate and refilled from the
//! injected clock, so tests can throttle and recover by moving time.

use std::collections::HashMap;
use std::sync::Mutex;

/// The per-shard rates in force. `None` is unlimited (`--limits off`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShardRates {
    pub write_bytes_per_s: Option<u64>,
    pub write_records_per_s: Option<u64>,
    pub read_bytes_per_s: Option<u64>,
    pub read_calls_per_s: Option<u64>,
    pub iterator_calls_per_s: Option<u64>,
}

impl ShardRates {
    /// The rates Kinesis documents for a provisioned shard.
    pub const AWS: ShardRates = ShardRates {
        write_bytes_per_s: Some(1 << 20),
        write_records_per_s: Some(1000),
        read_bytes_per_s: Some(2 << 20),
        read_calls_per_s: Some(5),
        iterator_calls_per_s: Some(5),
    };

    pub const OFF: ShardRates = ShardRates {
        write_bytes_per_s: None,
        write_records_per_s: None,
        read_bytes_per_s: None,
        read_calls_per_s: None,
        iterator_calls_per_s: None,
    };
}

/// A token bucket that holds at most one second of its rate.
#[derive(Debug)]
struct Bucket {
    per_s: f64,
    tokens: f64,
    last_ms: i64,
}

impl Bucket {
    fn new(per_s: u64, now_ms: i64) -> Bucket {
        Bucket {
            per_s: per_s as f64,
            tokens: per_s as f64,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64;
        self.tokens = (self.tokens + elapsed * self.per_s / 1000.0).min(self.per_s);
        self.last_ms = self.last_ms.max(now_ms);
    }
}

fn bucket(per_s: Option<u64>, now_ms: i64) -> Option<Bucket> {
    per_s.map(|r| Bucket::new(r, now_ms))
}

/// One shard's buckets.
#[derive(Debug)]
pub struct ShardThroughput {
    state: Mutex<ShardBuckets>,
}

#[derive(Debug)]
struct ShardBuckets {
    write_bytes: Option<Bucket>,
    write_records: Option<Bucket>,
    read_bytes: Option<Bucket>,
    read_calls: Option<Bucket>,
    iterator_calls: Option<Bucket>,
    /// After a read larger than one second of read throughput, reads wait until then.
    reads_blocked_until_ms: i64,
}

impl ShardThroughput {
    pub fn new(rates: ShardRates, now_ms: i64) -> ShardThroughput {
        ShardThroughput {
            state: Mutex::new(ShardBuckets {
                write_bytes: bucket(rates.write_bytes_per_s, now_ms),
                write_records: bucket(rates.write_records_per_s, now_ms),
                read_bytes: bucket(rates.read_bytes_per_s, now_ms),
                read_calls: bucket(rates.read_calls_per_s, now_ms),
                iterator_calls: bucket(rates.iterator_calls_per_s, now_ms),
                reads_blocked_until_ms: i64::MIN,
            }),
        }
    }

    /// Admits records of the given sizes (data plus partition key), in order, until one does
    /// not fit; returns how many were admitted. The rest of the request's records for this
    /// shard are throttled too, so a key's records never overtake each other.
    pub fn admit_writes(&self, sizes: impl IntoIterator<Item = usize>, now_ms: i64) -> usize {
        let mut s = self.state.lock().expect("throughput lock");
        let ShardBuckets {
            write_bytes,
            write_records,
            ..
        } = &mut *s;
        for b in [write_bytes.as_mut(), write_records.as_mut()]
            .into_iter()
            .flatten()
        {
            b.refill(now_ms);
        }
        let mut admitted = 0;
        for size in sizes {
            let bytes_ok = write_bytes.as_ref().is_none_or(|b| b.tokens >= size as f64);
            let records_ok = write_records.as_ref().is_none_or(|b| b.tokens >= 1.0);
            if !(bytes_ok && records_ok) {
                break;
            }
            if let Some(b) = write_bytes.as_mut() {
                b.tokens -= size as f64;
            }
            if let Some(b) = write_records.as_mut() {
                b.tokens -= 1.0;
            }
            admitted += 1;
        }
        admitted
    }

    /// Admits one GetRecords call, or says it is throttled.
    pub fn admit_read(&self, now_ms: i64) -> bool {
        let mut s = self.state.lock().expect("throughput lock");
        if now_ms < s.reads_blocked_until_ms {
            return false;
        }
        if let Some(b) = s.read_bytes.as_mut() {
            b.refill(now_ms);
            if b.tokens <= 0.0 {
                return false;
            }
        }
        match s.read_calls.as_mut() {
            Some(b) => {
                b.refill(now_ms);
                if b.tokens < 1.0 {
                    return false;
                }
                b.tokens -= 1.0;
                true
            }
            None => true,
        }
    }

    /// Charges the bytes a GetRecords call returned. A response larger than one second of
    /// read throughput blocks further reads for as many seconds as it took: 5 s after a
    /// 10 MiB response at 2 MiB/s, as Kinesis documents.
    pub fn charge_read(&self, bytes: usize, now_ms: i64) {
        let mut s = self.state.lock().expect("throughput lock");
        let Some(b) = s.read_bytes.as_mut() else {
            return;
        };
        b.refill(now_ms);
        b.tokens -= bytes as f64;
        if bytes as f64 > b.per_s {
            let seconds = (bytes as f64 / b.per_s).ceil() as i64;
            s.reads_blocked_until_ms = now_ms + seconds * 1000;
        }
    }

    /// Admits one GetShardIterator call.
    pub fn admit_iterator(&self, now_ms: i64) -> bool {
        let mut s = self.state.lock().expect("throughput lock");
        match s.iterator_calls.as_mut() {
            Some(b) => {
                b.refill(now_ms);
                if b.tokens < 1.0 {
                    return false;
                }
                b.tokens -= 1.0;
                true
            }
            None => true,
        }
    }
}

/// Control-plane rates: calls per second per account, except where Kinesis counts per
/// stream (ListShards, ListStreamConsumers).
pub struct ControlPlaneRates {
    enabled: bool,
    buckets: Mutex<HashMap<(String, String), Bucket>>,
}

/// Kinesis's documented control-plane rates (`shared/reference/kinesis-api.md`, section c).
pub fn control_plane_rate(operation: &str) -> Option<(u64, bool)> {
    // (calls per second, counted per stream)
    Some(match operation {
        "AddTagsToStream"
        | "CreateStream"
        | "DecreaseStreamRetentionPeriod"
        | "DeleteStream"
        | "DeregisterStreamConsumer"
        | "EnableEnhancedMonitoring"
        | "DisableEnhancedMonitoring"
        | "IncreaseStreamRetentionPeriod"
        | "ListStreams"
        | "ListTagsForStream"
        | "MergeShards"
        | "RegisterStreamConsumer"
        | "RemoveTagsFromStream"
        | "SplitShard"
        | "UpdateStreamWarmThroughput"
        | "DescribeAccountSettings"
        | "UpdateAccountSettings" => (5, false),
        "DescribeLimits" => (1, false),
        "DescribeStream" | "UpdateShardCount" => (10, false),
        "DescribeStreamConsumer" | "DescribeStreamSummary" => (20, false),
        "ListShards" => (1000, true),
        "ListStreamConsumers" => (5, true),
        _ => return None,
    })
}

/// Bounds the bucket map: distinct (operation, stream) pairs remembered at once.
const CONTROL_BUCKETS_MAX: usize = 100_000;

impl ControlPlaneRates {
    pub fn new(enabled: bool) -> ControlPlaneRates {
        ControlPlaneRates {
            enabled,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Admits one call of `operation` (on `stream`, for per-stream limits).
    pub fn admit(&self, operation: &str, stream: &str, now_ms: i64) -> bool {
        if !self.enabled {
            return true;
        }
        let Some((per_s, per_stream)) = control_plane_rate(operation) else {
            return true;
        };
        let key = (
            operation.to_owned(),
            if per_stream {
                stream.to_owned()
            } else {
                String::new()
            },
        );
        let mut buckets = self.buckets.lock().expect("control rates lock");
        if buckets.len() >= CONTROL_BUCKETS_MAX && !buckets.contains_key(&key) {
            // Full buckets admit nothing new only in theory; forgetting all is the bound.
            buckets.clear();
        }
        let b = buckets
            .entry(key)
            .or_insert_with(|| Bucket::new(per_s, now_ms));
        b.refill(now_ms);
        if b.tokens < 1.0 {
            return false;
        }
        b.tokens -= 1.0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_fill_a_second_then_refill_with_time() {
        let t = ShardThroughput::new(ShardRates::AWS, 0);
        assert_eq!(
            t.admit_writes(std::iter::repeat_n(100, 1500), 0),
            1000,
            "1,000 records/s"
        );
        assert_eq!(t.admit_writes([100], 0), 0);
        assert_eq!(t.admit_writes([100; 10], 10), 10, "10 ms refill 10 records");
        let t = ShardThroughput::new(ShardRates::AWS, 0);
        assert_eq!(t.admit_writes([512 << 10, 512 << 10, 1], 0), 2, "1 MiB/s");
        assert_eq!(t.admit_writes([1], 1000), 1);
    }

    #[test]
    fn a_ten_mib_read_blocks_reads_for_five_seconds() {
        let t = ShardThroughput::new(ShardRates::AWS, 0);
        for _ in 0..5 {
            assert!(t.admit_read(0));
        }
        assert!(!t.admit_read(0), "5 calls/s");
        assert!(t.admit_read(1000));
        t.charge_read(10 << 20, 1000);
        assert!(!t.admit_read(5999));
        assert!(t.admit_read(6000), "the debt is paid when the block ends");
    }

    #[test]
    fn off_admits_everything() {
        let t = ShardThroughput::new(ShardRates::OFF, 0);
        assert_eq!(t.admit_writes(std::iter::repeat_n(1 << 20, 100), 0), 100);
        for _ in 0..100 {
            assert!(t.admit_read(0));
        }
        let c = ControlPlaneRates::new(false);
        assert!((0..100).all(|_| c.admit("DescribeLimits", "", 0)));
    }

    #[test]
    fn control_plane_rates_count_per_account_or_stream() {
        let c = ControlPlaneRates::new(true);
        assert!(c.admit("DescribeLimits", "", 0));
        assert!(!c.admit("DescribeLimits", "", 10));
        assert!(c.admit("DescribeLimits", "", 1000));
        assert!((0..5).all(|_| c.admit("ListStreamConsumers", "a", 0)));
        assert!(!c.admit("ListStreamConsumers", "a", 0));
        assert!(c.admit("ListStreamConsumers", "b", 0));
        assert!(
            c.admit("PutRecord", "a", 0),
            "data-plane calls are not control-plane limited"
        );
    }
}
