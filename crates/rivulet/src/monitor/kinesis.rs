//! The `AWS/Kinesis` metrics, named, united and dimensioned as CloudWatch publishes them.
//! Stream-level metrics are always recorded; shard-level ones (dimensions StreamName and
//! ShardId) only for the metrics EnableEnhancedMonitoring turned on for the stream.

use super::Monitor;
use super::agg::Agg;
use super::store::SeriesKey;

pub const NAMESPACE: &str = "AWS/Kinesis";

/// What one PutRecord or PutRecords call did.
#[derive(Debug, Default, Clone, Copy)]
pub struct PutOutcome {
    pub total_records: u64,
    pub ok_records: u64,
    pub ok_bytes: u64,
    pub throttled_records: u64,
    pub failed_records: u64,
}

/// What one GetRecords call did; `None` for a call refused for throughput.
#[derive(Debug, Clone, Copy)]
pub struct GetOutcome {
    pub records: u64,
    pub bytes: u64,
    /// Age of the last record returned; 0 when none was.
    pub iterator_age_ms: i64,
}

fn stream_key(stream: &str, name: &str) -> SeriesKey {
    SeriesKey::new(NAMESPACE, name, &[("StreamName", stream)])
}

impl Monitor {
    fn stream_points(&self, stream: &str, points: &[(&str, &'static str, f64)]) {
        let points = points
            .iter()
            .map(|(name, unit, v)| (stream_key(stream, name), *unit, Agg::one(*v)))
            .collect();
        self.store.record_internal(self.clock.now_ms(), points);
    }

    pub fn put_record(&self, stream: &str, o: PutOutcome, latency_ms: f64) {
        let ok = o.ok_records > 0;
        let mut points = vec![
            ("PutRecord.Latency", "Milliseconds", latency_ms),
            ("PutRecord.Success", "Count", if ok { 1.0 } else { 0.0 }),
            (
                "WriteProvisionedThroughputExceeded",
                "Count",
                o.throttled_records as f64,
            ),
        ];
        if ok {
            points.push(("PutRecord.Bytes", "Bytes", o.ok_bytes as f64));
            points.push(("IncomingBytes", "Bytes", o.ok_bytes as f64));
            points.push(("IncomingRecords", "Count", 1.0));
        }
        self.stream_points(stream, &points);
    }

    pub fn put_records(&self, stream: &str, o: PutOutcome, latency_ms: f64) {
        let ok = o.ok_records > 0;
        let mut points = vec![
            ("PutRecords.Latency", "Milliseconds", latency_ms),
            ("PutRecords.Success", "Count", if ok { 1.0 } else { 0.0 }),
            ("PutRecords.TotalRecords", "Count", o.total_records as f64),
            ("PutRecords.SuccessfulRecords", "Count", o.ok_records as f64),
            ("PutRecords.FailedRecords", "Count", o.failed_records as f64),
            (
                "PutRecords.ThrottledRecords",
                "Count",
                o.throttled_records as f64,
            ),
            (
                "WriteProvisionedThroughputExceeded",
                "Count",
                o.throttled_records as f64,
            ),
        ];
        if ok {
            points.push(("PutRecords.Bytes", "Bytes", o.ok_bytes as f64));
            points.push(("PutRecords.Records", "Count", o.ok_records as f64));
            points.push(("IncomingBytes", "Bytes", o.ok_bytes as f64));
            points.push(("IncomingRecords", "Count", o.ok_records as f64));
        }
        self.stream_points(stream, &points);
    }

    pub fn get_records(&self, stream: &str, o: Option<GetOutcome>, latency_ms: f64) {
        match o {
            Some(o) => self.stream_points(
                stream,
                &[
                    ("GetRecords.Latency", "Milliseconds", latency_ms),
                    ("GetRecords.Success", "Count", 1.0),
                    ("GetRecords.Records", "Count", o.records as f64),
                    ("GetRecords.Bytes", "Bytes", o.bytes as f64),
                    (
                        "GetRecords.IteratorAgeMilliseconds",
                        "Milliseconds",
                        o.iterator_age_ms as f64,
                    ),
                    ("ReadProvisionedThroughputExceeded", "Count", 0.0),
                ],
            ),
            None => self.stream_points(
                stream,
                &[
                    ("GetRecords.Latency", "Milliseconds", latency_ms),
                    ("GetRecords.Success", "Count", 0.0),
                    ("ReadProvisionedThroughputExceeded", "Count", 1.0),
                ],
            ),
        }
    }

    pub fn subscribe(&self, stream: &str, consumer: &str, ok: bool, rate_exceeded: bool) {
        let dims = [("StreamName", stream), ("ConsumerName", consumer)];
        let mut points = vec![(
            SeriesKey::new(NAMESPACE, "SubscribeToShard.Success", &dims),
            "Count",
            Agg::one(if ok { 1.0 } else { 0.0 }),
        )];
        if rate_exceeded {
            points.push((
                SeriesKey::new(NAMESPACE, "SubscribeToShard.RateExceeded", &dims),
                "Count",
                Agg::one(1.0),
            ));
        }
        self.store.record_internal(self.clock.now_ms(), points);
    }

    pub fn subscribe_event(
        &self,
        stream: &str,
        consumer: &str,
        records: u64,
        bytes: u64,
        behind_ms: i64,
    ) {
        let dims = [("StreamName", stream), ("ConsumerName", consumer)];
        let points = [
            ("SubscribeToShardEvent.Success", "Count", 1.0),
            ("SubscribeToShardEvent.Records", "Count", records as f64),
            ("SubscribeToShardEvent.Bytes", "Bytes", bytes as f64),
            (
                "SubscribeToShardEvent.MillisBehindLatest",
                "Milliseconds",
                behind_ms as f64,
            ),
        ]
        .into_iter()
        .map(|(n, u, v)| (SeriesKey::new(NAMESPACE, n, &dims), u, Agg::one(v)))
        .collect();
        self.store.record_internal(self.clock.now_ms(), points);
    }

    /// Shard-level metrics; `enabled` is the stream's ShardLevelMetrics list, and only the
    /// metrics named in it are kept.
    pub fn shard(
        &self,
        stream: &str,
        shard_id: &str,
        enabled: &[String],
        points: &[(&str, &'static str, f64)],
    ) {
        let points: Vec<_> = points
            .iter()
            .filter(|(name, ..)| enabled.iter().any(|e| e == name))
            .map(|(name, unit, v)| {
                (
                    SeriesKey::new(
                        NAMESPACE,
                        name,
                        &[("StreamName", stream), ("ShardId", shard_id)],
                    ),
                    *unit,
                    Agg::one(*v),
                )
            })
            .collect();
        if !points.is_empty() {
            self.store.record_internal(self.clock.now_ms(), points);
        }
    }
}
