//! Prometheus exposition at `GET /metrics` (text format 0.0.4): requests by operation and
//! outcome with a latency histogram, shard writer group commits and fsyncs, and per-shard
//! traffic, throttling and bytes on disk. Every label set is bounded: operations come from
//! the model, shards from the registry.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::actions::MODEL_OPERATIONS;
use crate::service::Kinesis;

/// Latency bucket bounds, seconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
const OUTCOMES: [&str; 3] = ["ok", "client_error", "server_error"];
/// Model operations, then one slot for requests that named none.
const SLOTS: usize = MODEL_OPERATIONS.len() + 1;

#[derive(Default)]
struct OperationMetrics {
    outcomes: [AtomicU64; 3],
    buckets: [AtomicU64; BUCKETS.len()],
    sum_micros: AtomicU64,
}

pub struct RequestMetrics {
    operations: Vec<OperationMetrics>,
}

impl Default for RequestMetrics {
    fn default() -> RequestMetrics {
        RequestMetrics {
            operations: (0..SLOTS).map(|_| OperationMetrics::default()).collect(),
        }
    }
}

impl RequestMetrics {
    pub fn record(&self, operation: Option<&str>, status: u16, elapsed: Duration) {
        let slot = operation
            .and_then(|op| MODEL_OPERATIONS.iter().position(|o| *o == op))
            .unwrap_or(SLOTS - 1);
        let m = &self.operations[slot];
        let outcome = match status {
            500.. => 2,
            400.. => 1,
            _ => 0,
        };
        m.outcomes[outcome].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            m.buckets[i].fetch_add(1, Ordering::Relaxed);
        }
        m.sum_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }
}

fn name_of(slot: usize) -> &'static str {
    MODEL_OPERATIONS.get(slot).copied().unwrap_or("none")
}

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub fn render(svc: &Kinesis) -> String {
    let mut out = String::new();
    let requests = &svc.request_metrics;
    out.push_str("# HELP rivulet_requests_total Kinesis API requests by operation and outcome.\n");
    out.push_str("# TYPE rivulet_requests_total counter\n");
    for (slot, m) in requests.operations.iter().enumerate() {
        for (i, outcome) in OUTCOMES.iter().enumerate() {
            let n = m.outcomes[i].load(Ordering::Relaxed);
            if n > 0 {
                let _ = writeln!(
                    out,
                    "rivulet_requests_total{{operation=\"{}\",outcome=\"{outcome}\"}} {n}",
                    name_of(slot)
                );
            }
        }
    }
    out.push_str(
        "# HELP rivulet_request_duration_seconds Time from a request's arrival to its response.\n",
    );
    out.push_str("# TYPE rivulet_request_duration_seconds histogram\n");
    for (slot, m) in requests.operations.iter().enumerate() {
        let count: u64 = m.outcomes.iter().map(|o| o.load(Ordering::Relaxed)).sum();
        if count == 0 {
            continue;
        }
        let op = name_of(slot);
        let mut cumulative = 0;
        for (i, bound) in BUCKETS.iter().enumerate() {
            cumulative += m.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(
                out,
                "rivulet_request_duration_seconds_bucket{{operation=\"{op}\",le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "rivulet_request_duration_seconds_bucket{{operation=\"{op}\",le=\"+Inf\"}} {count}"
        );
        let sum = m.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(
            out,
            "rivulet_request_duration_seconds_sum{{operation=\"{op}\"}} {sum}"
        );
        let _ = writeln!(
            out,
            "rivulet_request_duration_seconds_count{{operation=\"{op}\"}} {count}"
        );
    }
    let w = &svc.writers.stats;
    let counters = [
        (
            "rivulet_write_groups_total",
            "Group commits by the shard writers.",
            w.groups.load(Ordering::Relaxed) as f64,
        ),
        (
            "rivulet_fsyncs_total",
            "Durable commits (fsyncs) of shard logs.",
            w.fsyncs.load(Ordering::Relaxed) as f64,
        ),
        (
            "rivulet_fsync_seconds_total",
            "Time spent in fsyncs of shard logs.",
            w.fsync_micros.load(Ordering::Relaxed) as f64 / 1e6,
        ),
    ];
    for (name, help, value) in counters {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
    render_shards(svc, &mut out);
    render_monitoring(svc, &mut out);
    out
}

/// The metric store and alarms: series and bytes kept, dropped datapoints, one gauge per
/// alarm and state (1 for the current state), and notifications waiting for delivery.
fn render_monitoring(svc: &Kinesis, out: &mut String) {
    let m = &svc.monitor;
    let gauges = [
        (
            "rivulet_metric_series",
            "Metric series in the store.",
            m.store.series_count() as f64,
        ),
        (
            "rivulet_metric_store_bytes",
            "Bytes of metric log segments.",
            m.store.size_bytes() as f64,
        ),
        (
            "rivulet_metric_datapoints_dropped_total",
            "Internal datapoints dropped because the series limit was reached.",
            m.store.dropped() as f64,
        ),
        (
            "rivulet_alarm_notifications_queued",
            "Alarm notifications waiting for delivery or a retry.",
            m.outbox.len() as f64,
        ),
    ];
    for (name, help, value) in gauges {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP rivulet_alarm_state Alarm states: 1 for the state an alarm is in.\n# TYPE rivulet_alarm_state gauge"
    );
    for a in m.alarms.list() {
        for state in ["OK", "ALARM", "INSUFFICIENT_DATA"] {
            let _ = writeln!(
                out,
                "rivulet_alarm_state{{alarm=\"{}\",state=\"{state}\"}} {}",
                label(&a.spec.name),
                u8::from(a.state.as_str() == state)
            );
        }
    }
}

fn render_shards(svc: &Kinesis, out: &mut String) {
    type Read = fn(&crate::control::ShardCounters) -> u64;
    let series: [(&str, &str, Read); 6] = [
        (
            "rivulet_shard_incoming_records_total",
            "Records written to a shard.",
            |c| c.incoming_records.load(Ordering::Relaxed),
        ),
        (
            "rivulet_shard_incoming_bytes_total",
            "Data and partition-key bytes written to a shard.",
            |c| c.incoming_bytes.load(Ordering::Relaxed),
        ),
        (
            "rivulet_shard_outgoing_records_total",
            "Records returned by GetRecords.",
            |c| c.outgoing_records.load(Ordering::Relaxed),
        ),
        (
            "rivulet_shard_outgoing_bytes_total",
            "Bytes returned by GetRecords.",
            |c| c.outgoing_bytes.load(Ordering::Relaxed),
        ),
        (
            "rivulet_shard_write_throttled_total",
            "Records refused with ProvisionedThroughputExceededException.",
            |c| c.write_throttled.load(Ordering::Relaxed),
        ),
        (
            "rivulet_shard_read_throttled_total",
            "GetRecords calls refused with ProvisionedThroughputExceededException.",
            |c| c.read_throttled.load(Ordering::Relaxed),
        ),
    ];
    let registry = svc.read();
    let now = svc.now_ms();
    let live: Vec<_> = registry
        .values()
        .filter(|s| s.status_at(now).is_some())
        .collect();
    for (name, help, read) in series {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        for stream in &live {
            for (index, shard) in &stream.shards {
                let _ = writeln!(
                    out,
                    "{name}{{stream=\"{}\",shard=\"{}\"}} {}",
                    label(&stream.meta.name),
                    crate::control::shard_id(*index),
                    read(&shard.counters)
                );
            }
        }
    }
    let _ = writeln!(
        out,
        "# HELP rivulet_shard_storage_bytes Bytes of segment files of a shard.\n# TYPE rivulet_shard_storage_bytes gauge"
    );
    for stream in &live {
        for (index, shard) in &stream.shards {
            let _ = writeln!(
                out,
                "rivulet_shard_storage_bytes{{stream=\"{}\",shard=\"{}\"}} {}",
                label(&stream.meta.name),
                crate::control::shard_id(*index),
                shard.log.size_bytes()
            );
        }
    }
    let open: usize = live.iter().map(|s| s.open_shard_count()).sum();
    let _ = writeln!(
        out,
        "# HELP rivulet_streams Streams that exist.\n# TYPE rivulet_streams gauge\nrivulet_streams {}",
        live.len()
    );
    let _ = writeln!(
        out,
        "# HELP rivulet_open_shards Open shards across all streams.\n# TYPE rivulet_open_shards gauge\nrivulet_open_shards {open}"
    );
}
