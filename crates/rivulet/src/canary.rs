//! The health-check canary (seed 000, built in): a producer writes
//! `{"currentInstant":"<ISO-8601 UTC>"}` to a stream every interval, with that instant as the
//! partition key; a consumer reads every shard from LATEST and publishes the end-to-end
//! latency, in fractional seconds, as `KinesisServiceHealthCheck` / `HealthCheckSinceSeconds`
//! (dimension StreamName). The alarm `Kinesis-Data-Streams-HealthCheck-Alarm` (Maximum over
//! one period > 1 s, 1 of 1, missing data breaching) fires when producing, storing or
//! consuming fails, since any of them stops the datapoints.
//!
//! It talks to the server through the public API with the CLI's client, like any client, so
//! it checks the whole path. `rivulet serve --canary` runs it against the server itself;
//! `rivulet canary --endpoint-url URL` runs it (or only its producer or consumer) elsewhere.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use crate::client::{Client, Connection};
use crate::clock::{Clock, SystemClock, instant, parse_time};

pub const ALARM_NAME: &str = "Kinesis-Data-Streams-HealthCheck-Alarm";
pub const NAMESPACE: &str = "KinesisServiceHealthCheck";
pub const METRIC: &str = "HealthCheckSinceSeconds";
pub const DEFAULT_STREAM: &str = "health-check-stream";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the consumer polls each shard (a Lambda event source mapping polls once a second).
const POLL: Duration = Duration::from_millis(250);
/// How often the consumer looks for new shards (after on-demand scaling).
const RELIST_EVERY: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Both,
    Produce,
    Consume,
}

#[derive(Debug, Clone)]
pub struct CanaryConfig {
    pub stream: String,
    pub interval: Duration,
    pub role: Role,
    /// Actions of the alarm (ALARM and OK).
    pub alarm_actions: Vec<String>,
}

impl CanaryConfig {
    pub fn new(stream: &str, interval: Duration) -> CanaryConfig {
        CanaryConfig {
            stream: stream.into(),
            interval,
            role: Role::Both,
            alarm_actions: Vec::new(),
        }
    }

    /// The alarm's period: a minute, or for a faster canary the smallest period CloudWatch
    /// allows that is at least the interval (10, 20 or 30 s).
    pub fn alarm_period_s(&self) -> i64 {
        let s = self.interval.as_secs().max(1) as i64;
        match [10, 20, 30, 60].into_iter().find(|p| *p >= s) {
            Some(p) => p,
            None => (s + 59) / 60 * 60,
        }
    }
}

/// An API error: (type, message).
type CallError = (String, String);

/// The CLI's client (signed requests, pooled connections, retries of transient failures),
/// with errors as (type, message) for the canary's logs.
struct Api {
    client: Client,
}

impl Api {
    async fn kinesis(&self, op: &str, body: Value) -> Result<Value, CallError> {
        self.client
            .kinesis(op, body)
            .await
            .map_err(|e| (e.kind, e.message))
    }

    async fn cloudwatch(&self, op: &str, body: Value) -> Result<Value, CallError> {
        self.client
            .cloudwatch(op, body)
            .await
            .map_err(|e| (e.kind, e.message))
    }
}

/// Runs the canary until `stopped` turns true.
pub async fn run(endpoint: String, cfg: CanaryConfig, mut stopped: watch::Receiver<bool>) {
    let connection = Connection {
        endpoint_url: Some(endpoint),
        ..Connection::default()
    };
    let mut client = match Client::new(&connection) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "the canary cannot reach its endpoint");
            return;
        }
    };
    // A few quick retries: a tick must not outlast the interval.
    client.retry.attempts = 3;
    client.timeout = CALL_TIMEOUT;
    let api = Api { client };
    // Setup retries until it works: the server may still be starting.
    loop {
        match setup(&api, &cfg).await {
            Ok(()) => break,
            Err((kind, m)) => tracing::warn!(%kind, message = %m, "canary setup failed; retrying"),
        }
        tokio::select! {
            _ = stopped.changed() => if *stopped.borrow() { return },
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
    tracing::info!(stream = %cfg.stream, interval_ms = cfg.interval.as_millis() as u64, "canary running");
    let produce = matches!(cfg.role, Role::Both | Role::Produce);
    let consume = matches!(cfg.role, Role::Both | Role::Consume);
    let mut consumer = Consumer::default();
    if consume {
        consumer.relist(&api, &cfg.stream, "LATEST").await;
    }
    let mut next_put = tokio::time::Instant::now();
    let mut next_relist = tokio::time::Instant::now() + RELIST_EVERY;
    loop {
        let now = tokio::time::Instant::now();
        if produce && now >= next_put {
            next_put += cfg.interval;
            if let Err((kind, m)) = put(&api, &cfg.stream).await {
                tracing::warn!(%kind, message = %m, "canary put failed");
            }
        }
        if consume {
            if now >= next_relist {
                next_relist = now + RELIST_EVERY;
                consumer.relist(&api, &cfg.stream, "TRIM_HORIZON").await;
            }
            consumer.poll(&api, &cfg).await;
        }
        let wait = if consume {
            POLL
        } else {
            next_put.saturating_duration_since(tokio::time::Instant::now())
        };
        tokio::select! {
            _ = stopped.changed() => if *stopped.borrow() { return },
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn setup(api: &Api, cfg: &CanaryConfig) -> Result<(), CallError> {
    let name = json!({"StreamName": cfg.stream});
    match api.kinesis("DescribeStreamSummary", name.clone()).await {
        Ok(_) => {}
        Err((kind, _)) if kind == "ResourceNotFoundException" => {
            let create =
                json!({"StreamName": cfg.stream, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}});
            match api.kinesis("CreateStream", create).await {
                Ok(_) => {}
                Err((kind, _)) if kind == "ResourceInUseException" => {}
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    // Wait for ACTIVE, then encrypt with the AWS-managed key as the seed stack does.
    for _ in 0..600 {
        let d = api.kinesis("DescribeStreamSummary", name.clone()).await?;
        let s = &d["StreamDescriptionSummary"];
        if s["StreamStatus"] == "ACTIVE" {
            if s["EncryptionType"] != "KMS" {
                let enc = json!({"StreamName": cfg.stream, "EncryptionType": "KMS", "KeyId": "alias/aws/kinesis"});
                if let Err(e) = api.kinesis("StartStreamEncryption", enc).await {
                    tracing::warn!(kind = %e.0, message = %e.1, "canary stream not encrypted");
                }
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if cfg.role != Role::Produce {
        let alarm = json!({
            "AlarmName": ALARM_NAME,
            "AlarmDescription": "Kinesis health check: the canary's end-to-end latency exceeded 1 s, or no canary record arrived",
            "Namespace": NAMESPACE,
            "MetricName": METRIC,
            "Dimensions": [{"Name": "StreamName", "Value": cfg.stream}],
            "Statistic": "Maximum",
            "Period": cfg.alarm_period_s(),
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "breaching",
            "AlarmActions": cfg.alarm_actions,
            "OKActions": cfg.alarm_actions,
        });
        api.cloudwatch("PutMetricAlarm", alarm).await?;
    }
    Ok(())
}

async fn put(api: &Api, stream: &str) -> Result<(), CallError> {
    let at = instant(SystemClock.now_ms());
    let data = json!({ "currentInstant": at }).to_string();
    let body = json!({
        "StreamName": stream,
        "PartitionKey": at,
        "Data": base64_simd::STANDARD.encode_to_string(data),
    });
    api.kinesis("PutRecord", body).await.map(|_| ())
}

/// Per-shard iterators, and the last sequence number seen to resume after an error.
#[derive(Default)]
struct Consumer {
    shards: BTreeMap<String, (Option<String>, Option<String>)>,
}

impl Consumer {
    /// Picks up shards not followed yet: at start from LATEST, later (children of a
    /// reshard) from TRIM_HORIZON.
    async fn relist(&mut self, api: &Api, stream: &str, from: &str) {
        let Ok(list) = api
            .kinesis("ListShards", json!({"StreamName": stream}))
            .await
        else {
            return;
        };
        for shard in list["Shards"].as_array().into_iter().flatten() {
            let Some(id) = shard["ShardId"].as_str() else {
                continue;
            };
            if self.shards.contains_key(id) {
                continue;
            }
            let closed = shard["SequenceNumberRange"]["EndingSequenceNumber"].is_string();
            if closed && from == "TRIM_HORIZON" {
                continue;
            }
            let it = iterator(api, stream, id, from, None).await;
            self.shards.insert(id.into(), (it, None));
        }
    }

    async fn poll(&mut self, api: &Api, cfg: &CanaryConfig) {
        let ids: Vec<String> = self.shards.keys().cloned().collect();
        for id in ids {
            let (it, last) = self.shards[&id].clone();
            let it = match it {
                Some(it) => it,
                None => match iterator(api, &cfg.stream, &id, "LATEST", last.as_deref()).await {
                    Some(it) => it,
                    None => continue,
                },
            };
            match api
                .kinesis("GetRecords", json!({"ShardIterator": it, "Limit": 100}))
                .await
            {
                Ok(out) => {
                    let mut last = last;
                    for r in out["Records"].as_array().into_iter().flatten() {
                        last = r["SequenceNumber"].as_str().map(str::to_owned);
                        publish(api, cfg, r).await;
                    }
                    match out["NextShardIterator"].as_str() {
                        Some(next) => {
                            self.shards.insert(id, (Some(next.into()), last));
                        }
                        None => {
                            // The shard was closed by a reshard; its children come next.
                            self.shards.remove(&id);
                            self.relist(api, &cfg.stream, "TRIM_HORIZON").await;
                        }
                    }
                }
                Err((kind, m)) => {
                    tracing::warn!(%kind, message = %m, shard = %id, "canary get failed");
                    self.shards.insert(id, (None, last));
                }
            }
        }
    }
}

async fn iterator(
    api: &Api,
    stream: &str,
    shard: &str,
    from: &str,
    after: Option<&str>,
) -> Option<String> {
    let body = match after {
        Some(seq) => {
            json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "StartingSequenceNumber": seq})
        }
        None => json!({"StreamName": stream, "ShardId": shard, "ShardIteratorType": from}),
    };
    match api.kinesis("GetShardIterator", body).await {
        Ok(v) => v["ShardIterator"].as_str().map(str::to_owned),
        Err((kind, m)) => {
            tracing::warn!(%kind, message = %m, shard, "canary iterator failed");
            None
        }
    }
}

/// Publishes one record's end-to-end latency: now minus the instant it carries.
async fn publish(api: &Api, cfg: &CanaryConfig, record: &Value) {
    let Some(data) = record["Data"]
        .as_str()
        .and_then(|d| base64_simd::STANDARD.decode_to_vec(d).ok())
    else {
        return;
    };
    let Some(sent_ms) = serde_json::from_slice::<Value>(&data)
        .ok()
        .and_then(|v| v["currentInstant"].as_str().and_then(parse_time))
    else {
        tracing::warn!("canary record without currentInstant ignored");
        return;
    };
    let seconds = (SystemClock.now_ms() - sent_ms).max(0) as f64 / 1000.0;
    let datum = json!({
        "Namespace": NAMESPACE,
        "MetricData": [{
            "MetricName": METRIC,
            "Dimensions": [{"Name": "StreamName", "Value": cfg.stream}],
            "Value": seconds,
            "Unit": "Seconds",
            "StorageResolution": if cfg.alarm_period_s() < 60 { 1 } else { 60 },
        }],
    });
    if let Err((kind, m)) = api.cloudwatch("PutMetricData", datum).await {
        tracing::warn!(%kind, message = %m, "canary metric not published");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_period_follows_the_interval() {
        let p = |s| CanaryConfig::new("s", Duration::from_secs(s)).alarm_period_s();
        assert_eq!(p(60), 60);
        assert_eq!(p(1), 10);
        assert_eq!(p(10), 10);
        assert_eq!(p(15), 20);
        assert_eq!(p(45), 60);
        assert_eq!(p(90), 120);
    }
}
