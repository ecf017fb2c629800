//! Monitoring built in: the metric store (`store`), the `AWS/Kinesis` metrics the data path
//! records (`kinesis`), statistics and metric math over them (`query`, `expr`), alarms
//! (`alarms`) and the delivery of their notifications (`notify`). The CloudWatch-compatible
//! API in `api::cloudwatch` is the way in and out; the server's timer calls `tick`.

pub mod agg;
pub mod alarms;
pub mod dashboards;
pub mod expr;
pub mod kinesis;
pub mod notify;
pub mod query;
pub mod store;

use std::path::Path;
use std::sync::Mutex;

use crate::clock::SharedClock;
use alarms::{Alarms, Notification};
use store::MetricStore;

/// Metric data kept: 15 days, as CloudWatch keeps 1-minute data.
pub const RETENTION_MS: i64 = 15 * 86_400_000;
/// Series the store holds at most, whatever the number of streams and shards.
pub const SERIES_MAX_DEFAULT: usize = 50_000;

pub struct Monitor {
    pub store: MetricStore,
    pub alarms: Alarms,
    pub dashboards: dashboards::Dashboards,
    pub clock: SharedClock,
    pub outbox: notify::Outbox,
    last_retention_ms: Mutex<i64>,
}

impl Monitor {
    pub fn open(
        data_dir: &Path,
        clock: SharedClock,
        region: &str,
        account: &str,
        series_max: usize,
        topics: Vec<(String, String)>,
    ) -> anyhow::Result<Monitor> {
        let dir = data_dir.join("metrics");
        let store = MetricStore::open(&dir, series_max, RETENTION_MS)?;
        let alarms = Alarms::open(&dir, region, account)?;
        let dashboards = dashboards::Dashboards::open(&dir)?;
        Ok(Monitor {
            store,
            alarms,
            dashboards,
            clock,
            outbox: notify::Outbox::new(topics),
            last_retention_ms: Mutex::new(0),
        })
    }

    /// Flushes closed buckets, evaluates due alarms and queues their notifications, and
    /// once an hour trims data past retention.
    pub fn tick(&self) {
        let now = self.clock.now_ms();
        if let Err(e) = self.store.flush(now, false) {
            tracing::error!(error = %e, "metric flush failed");
        }
        let notifications = self.alarms.evaluate(&self.store, now);
        self.enqueue(notifications);
        let mut last = self.last_retention_ms.lock().expect("retention lock");
        if now - *last >= 3_600_000 {
            *last = now;
            if let Err(e) = self.store.enforce_retention(now) {
                tracing::error!(error = %e, "metric retention failed");
            }
        }
    }

    pub fn enqueue(&self, notifications: Vec<Notification>) {
        let now = self.clock.now_ms();
        for n in notifications {
            if let Err(n) = self.outbox.push(n, now) {
                self.alarms.action_result(
                    &n.alarm_name,
                    format!(
                        "Failed to execute action {}: the notification queue is full",
                        n.action
                    ),
                    serde_json::json!({"actionState": "Failed", "notificationResource": n.action}),
                    now,
                );
            }
        }
    }

    /// Writes every open bucket; called at shutdown.
    pub fn flush_all(&self) {
        if let Err(e) = self.store.flush(self.clock.now_ms(), true) {
            tracing::error!(error = %e, "metric flush failed");
        }
    }
}
