//! Monitoring through aws-sdk-cloudwatch, which speaks rpc-v2-cbor: AWS/Kinesis metrics
//! after puts and gets, custom metrics and statistics, alarms through every state with the
//! injected clock, alarm actions, persistence across a restart, and the canary.

use std::time::Duration;

use aws_sdk_cloudwatch::Client as CloudWatch;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, MetricDatum, StandardUnit, StateValue, Statistic,
};
use aws_sdk_kinesis::primitives::Blob;

use crate::harness::{TestServer, read_shard};

pub fn cloudwatch(endpoint: &str) -> CloudWatch {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
        .endpoint_url(endpoint)
        .build();
    CloudWatch::from_conf(config)
}

/// The error code of a failed call (None if it succeeded).
fn code<T, E, R>(r: Result<T, aws_sdk_cloudwatch::error::SdkError<E, R>>) -> Option<String>
where
    E: aws_sdk_cloudwatch::error::ProvideErrorMetadata,
{
    let e = r.err()?;
    e.as_service_error()
        .and_then(|e| e.code())
        .map(str::to_owned)
}

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// Sum, SampleCount and Maximum of a metric over ten minutes around now.
async fn stats(
    cw: &CloudWatch,
    now_ms: i64,
    ns: &str,
    name: &str,
    dims: &[Dimension],
) -> (f64, f64, f64) {
    let out = cw
        .get_metric_statistics()
        .namespace(ns)
        .metric_name(name)
        .set_dimensions(Some(dims.to_vec()))
        .start_time(DateTime::from_millis(now_ms - 300_000))
        .end_time(DateTime::from_millis(now_ms + 300_000))
        .period(60)
        .statistics(Statistic::Sum)
        .statistics(Statistic::SampleCount)
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap();
    out.datapoints()
        .iter()
        .fold((0.0, 0.0, f64::MIN), |(s, c, m), d| {
            (
                s + d.sum().unwrap(),
                c + d.sample_count().unwrap(),
                m.max(d.maximum().unwrap()),
            )
        })
}

fn now(server: &TestServer) -> i64 {
    server.handle.service().now_ms()
}

/// Moves the clock to just past the next minute boundary.
fn to_next_minute(server: &TestServer) {
    let n = now(server);
    server.advance_ms(60_000 - n.rem_euclid(60_000) + 1);
}

#[tokio::test]
async fn stream_and_shard_metrics_have_exact_sums_and_survive_restart() {
    let server = TestServer::start().await;
    to_next_minute(&server);
    server.create_stream("m", 2).await;
    let k = &server.client;
    k.enable_enhanced_monitoring()
        .stream_name("m")
        .shard_level_metrics(aws_sdk_kinesis::types::MetricsName::All)
        .send()
        .await
        .unwrap();
    // Three PutRecords of 10 + 2 bytes, one PutRecords of (5 + 1) and (7 + 1) bytes.
    for key in ["k1", "k2", "k3"] {
        k.put_record()
            .stream_name("m")
            .partition_key(key)
            .data(Blob::new(vec![7u8; 10]))
            .send()
            .await
            .unwrap();
    }
    k.put_records()
        .stream_name("m")
        .records(
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .partition_key("a")
                .data(Blob::new(vec![1u8; 5]))
                .build()
                .unwrap(),
        )
        .records(
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .partition_key("b")
                .data(Blob::new(vec![1u8; 7]))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let mut read = 0;
    for shard in ["shardId-000000000000", "shardId-000000000001"] {
        read += read_shard(k, "m", shard).await.len();
    }
    assert_eq!(read, 5);

    let cw = cloudwatch(&server.handle.endpoint());
    let s = [dim("StreamName", "m")];
    let check = |cw: CloudWatch, t: i64| async move {
        let s = [dim("StreamName", "m")];
        assert_eq!(
            stats(&cw, t, "AWS/Kinesis", "IncomingBytes", &s).await,
            (50.0, 4.0, 14.0)
        );
        assert_eq!(
            stats(&cw, t, "AWS/Kinesis", "IncomingRecords", &s).await.0,
            5.0
        );
        assert_eq!(
            stats(&cw, t, "AWS/Kinesis", "PutRecord.Bytes", &s).await.0,
            36.0
        );
        assert_eq!(
            stats(&cw, t, "AWS/Kinesis", "PutRecord.Success", &s).await,
            (3.0, 3.0, 1.0)
        );
        assert_eq!(
            stats(&cw, t, "AWS/Kinesis", "PutRecords.TotalRecords", &s)
                .await
                .0,
            2.0
        );
        assert_eq!(
            stats(&cw, t, "AWS/Kinesis", "PutRecords.SuccessfulRecords", &s)
                .await
                .0,
            2.0
        );
        assert_eq!(
            stats(&cw, t, "AWS/Kinesis", "GetRecords.Records", &s)
                .await
                .0,
            5.0
        );
        assert_eq!(
            stats(
                &cw,
                t,
                "AWS/Kinesis",
                "WriteProvisionedThroughputExceeded",
                &s
            )
            .await
            .0,
            0.0
        );
        // Shard level: the two shards add up to the stream.
        let mut incoming = 0.0;
        let mut outgoing = 0.0;
        for shard in ["shardId-000000000000", "shardId-000000000001"] {
            let d = [dim("StreamName", "m"), dim("ShardId", shard)];
            incoming += stats(&cw, t, "AWS/Kinesis", "IncomingBytes", &d).await.0;
            outgoing += stats(&cw, t, "AWS/Kinesis", "OutgoingRecords", &d).await.0;
        }
        assert_eq!((incoming, outgoing), (50.0, 5.0));
    };
    let t = now(&server);
    check(cw.clone(), t).await;
    // Latency percentiles exist for the latency metrics.
    let out = cw
        .get_metric_statistics()
        .namespace("AWS/Kinesis")
        .metric_name("PutRecord.Latency")
        .dimensions(s[0].clone())
        .start_time(DateTime::from_millis(t - 300_000))
        .end_time(DateTime::from_millis(t + 300_000))
        .period(300)
        .extended_statistics("p99")
        .statistics(Statistic::Maximum)
        .send()
        .await
        .unwrap();
    let d = &out.datapoints()[0];
    let p99 = d.extended_statistics().unwrap()["p99"];
    assert!(p99 > 0.0 && p99 <= d.maximum().unwrap(), "{d:?}");
    assert_eq!(d.unit(), Some(&StandardUnit::Milliseconds));

    // After the minute closes the buckets are on disk; a restart keeps them.
    server.advance_ms(61_000);
    server.tick().await;
    let server = server.restart().await;
    check(cloudwatch(&server.handle.endpoint()), t).await;
    // ListMetrics names the shard-level series.
    let listed = cloudwatch(&server.handle.endpoint())
        .list_metrics()
        .namespace("AWS/Kinesis")
        .metric_name("IncomingBytes")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.metrics().len(), 3, "{listed:?}");
}

async fn state_of(cw: &CloudWatch, name: &str) -> StateValue {
    let out = cw.describe_alarms().alarm_names(name).send().await.unwrap();
    out.metric_alarms()[0].state_value().unwrap().clone()
}

async fn put_alarm(cw: &CloudWatch, name: &str, missing: &str) {
    cw.put_metric_alarm()
        .alarm_name(name)
        .namespace("App")
        .metric_name("errors")
        .dimensions(dim("Service", "api"))
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .treat_missing_data(missing)
        .send()
        .await
        .unwrap();
}

async fn put_value(cw: &CloudWatch, value: f64) {
    cw.put_metric_data()
        .namespace("App")
        .metric_data(
            MetricDatum::builder()
                .metric_name("errors")
                .dimensions(dim("Service", "api"))
                .value(value)
                .unit(StandardUnit::Count)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Puts `value` (if any) in the current minute, then moves to the next minute and evaluates.
async fn minute(server: &TestServer, cw: &CloudWatch, value: Option<f64>) {
    if let Some(v) = value {
        put_value(cw, v).await;
    }
    to_next_minute(server);
    server.tick().await;
}

#[tokio::test]
async fn alarms_pass_through_every_state_with_the_injected_clock() {
    let server = TestServer::start().await;
    to_next_minute(&server);
    let cw = cloudwatch(&server.handle.endpoint());
    put_alarm(&cw, "errors-high", "missing").await;
    assert_eq!(
        state_of(&cw, "errors-high").await,
        StateValue::InsufficientData
    );
    minute(&server, &cw, Some(10.0)).await;
    assert_eq!(state_of(&cw, "errors-high").await, StateValue::Alarm);
    minute(&server, &cw, Some(1.0)).await;
    assert_eq!(state_of(&cw, "errors-high").await, StateValue::Ok);
    // No datum: missing → INSUFFICIENT_DATA.
    minute(&server, &cw, None).await;
    assert_eq!(
        state_of(&cw, "errors-high").await,
        StateValue::InsufficientData
    );
    // ignore keeps the state through missing data.
    put_alarm(&cw, "errors-high", "ignore").await;
    minute(&server, &cw, None).await;
    assert_eq!(
        state_of(&cw, "errors-high").await,
        StateValue::InsufficientData
    );
    // breaching: missing data fires the alarm; notBreaching clears it.
    put_alarm(&cw, "errors-high", "breaching").await;
    minute(&server, &cw, None).await;
    assert_eq!(state_of(&cw, "errors-high").await, StateValue::Alarm);
    put_alarm(&cw, "errors-high", "notBreaching").await;
    minute(&server, &cw, None).await;
    assert_eq!(state_of(&cw, "errors-high").await, StateValue::Ok);

    // M out of N: 2 of 3 breaching datapoints.
    cw.put_metric_alarm()
        .alarm_name("two-of-three")
        .namespace("App")
        .metric_name("errors")
        .dimensions(dim("Service", "api"))
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(3)
        .datapoints_to_alarm(2)
        .threshold(5.0)
        .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
        .treat_missing_data("notBreaching")
        .send()
        .await
        .unwrap();
    minute(&server, &cw, Some(9.0)).await;
    assert_eq!(state_of(&cw, "two-of-three").await, StateValue::Ok);
    minute(&server, &cw, Some(2.0)).await;
    assert_eq!(state_of(&cw, "two-of-three").await, StateValue::Ok);
    minute(&server, &cw, Some(6.0)).await;
    assert_eq!(state_of(&cw, "two-of-three").await, StateValue::Alarm);

    // History, newest first, and it all survives a restart.
    let history = cw
        .describe_alarm_history()
        .alarm_name("errors-high")
        .history_item_type(aws_sdk_cloudwatch::types::HistoryItemType::StateUpdate)
        .send()
        .await
        .unwrap();
    let summaries: Vec<&str> = history
        .alarm_history_items()
        .iter()
        .map(|h| h.history_summary().unwrap())
        .collect();
    assert_eq!(
        summaries,
        [
            // The two-of-three minutes (9, 2, 6) move errors-high too: Maximum > 5.
            "Alarm updated from OK to ALARM",
            "Alarm updated from ALARM to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from ALARM to OK",
            "Alarm updated from INSUFFICIENT_DATA to ALARM",
            "Alarm updated from OK to INSUFFICIENT_DATA",
            "Alarm updated from ALARM to OK",
            "Alarm updated from INSUFFICIENT_DATA to ALARM",
        ]
    );
    let data: serde_json::Value =
        serde_json::from_str(history.alarm_history_items()[0].history_data().unwrap()).unwrap();
    assert_eq!(data["newState"]["stateValue"], "ALARM");
    assert_eq!(data["oldState"]["stateValue"], "OK");
    let server = server.restart().await;
    let cw = cloudwatch(&server.handle.endpoint());
    assert_eq!(state_of(&cw, "two-of-three").await, StateValue::Alarm);
    assert_eq!(state_of(&cw, "errors-high").await, StateValue::Alarm);
    let after = cw
        .describe_alarm_history()
        .alarm_name("errors-high")
        .send()
        .await
        .unwrap();
    assert!(after.alarm_history_items().len() >= 10);
}

#[tokio::test]
async fn errors_come_back_with_cloudwatch_codes() {
    let server = TestServer::start().await;
    let cw = cloudwatch(&server.handle.endpoint());
    assert_eq!(
        code(
            cw.put_metric_data()
                .namespace("AWS/Mine")
                .metric_data(MetricDatum::builder().metric_name("m").value(1.0).build())
                .send()
                .await
        ),
        Some("InvalidParameterValue".to_owned())
    );
    assert_eq!(
        code(cw.delete_alarms().alarm_names("nope").send().await),
        Some("ResourceNotFound".to_owned())
    );
    assert_eq!(
        code(
            cw.get_metric_statistics()
                .namespace("App")
                .metric_name("m")
                .start_time(DateTime::from_secs(0))
                .end_time(DateTime::from_secs(86_400 * 2))
                .period(60)
                .statistics(Statistic::Sum)
                .send()
                .await
        ),
        Some("InvalidParameterCombination".to_owned())
    );
    assert_eq!(
        code(cw.get_dashboard().dashboard_name("none").send().await),
        Some("ResourceNotFound".to_owned())
    );
    assert_eq!(
        code(
            cw.put_dashboard()
                .dashboard_name("d")
                .dashboard_body(r#"{"widgets": 3}"#)
                .send()
                .await
        ),
        Some("InvalidParameterInput".to_owned())
    );
}

/// A one-shot HTTP server that collects request bodies.
async fn webhook() -> (String, tokio::sync::mpsc::Receiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read headers and a Content-Length body.
            loop {
                let n = socket.read(&mut chunk).await.unwrap();
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len: usize = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        let body =
                            String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).to_string();
                        socket
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                            .await
                            .unwrap();
                        let _ = tx.send(body).await;
                        break;
                    }
                }
            }
        }
    });
    (url, rx)
}

#[tokio::test]
async fn alarm_actions_reach_a_webhook_and_a_stream_and_failures_retry() {
    let server = TestServer::start().await;
    server.create_stream("alerts", 1).await;
    let cw = cloudwatch(&server.handle.endpoint());
    let (url, mut bodies) = webhook().await;
    cw.put_metric_alarm()
        .alarm_name("hooked")
        .namespace("App")
        .metric_name("errors")
        .statistic(Statistic::Maximum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions(&url)
        .alarm_actions("arn:aws:kinesis:us-east-1:000000000000:stream/alerts")
        .ok_actions("http://127.0.0.1:9/refused")
        .send()
        .await
        .unwrap();
    cw.set_alarm_state()
        .alarm_name("hooked")
        .state_value(StateValue::Alarm)
        .state_reason("testing the actions")
        .send()
        .await
        .unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), bodies.recv())
        .await
        .unwrap()
        .unwrap();
    let envelope: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(envelope["Type"], "Notification");
    let message: serde_json::Value =
        serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap();
    assert_eq!(message["AlarmName"], "hooked");
    assert_eq!(message["NewStateValue"], "ALARM");
    assert_eq!(message["OldStateValue"], "INSUFFICIENT_DATA");
    assert_eq!(message["NewStateReason"], "testing the actions");
    assert_eq!(message["Trigger"]["MetricName"], "errors");
    // The stream action wrote the same message as a record.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let records = read_shard(&server.client, "alerts", "shardId-000000000000").await;
        if let Some(r) = records.first() {
            let m: serde_json::Value = serde_json::from_slice(r.data().as_ref()).unwrap();
            assert_eq!(m["AlarmName"], "hooked");
            assert_eq!(r.partition_key(), Some("hooked"));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no alarm record on the stream"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // OK goes to a refused port: the failure is in the history and retried with backoff.
    cw.set_alarm_state()
        .alarm_name("hooked")
        .state_value(StateValue::Ok)
        .state_reason("back")
        .send()
        .await
        .unwrap();
    let actions = |cw: CloudWatch| async move {
        let h = cw
            .describe_alarm_history()
            .alarm_name("hooked")
            .history_item_type(aws_sdk_cloudwatch::types::HistoryItemType::Action)
            .scan_by(aws_sdk_cloudwatch::types::ScanBy::TimestampAscending)
            .send()
            .await
            .unwrap();
        h.alarm_history_items()
            .iter()
            .map(|i| i.history_summary().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let seen = actions(cw.clone()).await;
        let successes = seen
            .iter()
            .filter(|s| s.starts_with("Successfully executed action"))
            .count();
        let first_failure = seen
            .iter()
            .any(|s| s.contains("http://127.0.0.1:9/refused (attempt 1 of 5"));
        if successes == 2 && first_failure {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{seen:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The retry falls due when the (injected) clock passes the backoff.
    server.advance_ms(1_001);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !actions(cw.clone())
        .await
        .iter()
        .any(|s| s.contains("(attempt 2 of 5"))
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn dashboards_round_trip_and_persist() {
    let server = TestServer::start().await;
    let cw = cloudwatch(&server.handle.endpoint());
    let body = r#"{"widgets":[{"type":"metric","x":0,"y":0,"width":12,"height":6,"properties":{"metrics":[["AWS/Kinesis","IncomingRecords","StreamName","s"]],"period":60,"stat":"Sum","region":"us-east-1","title":"Records"}},{"type":"text","x":0,"y":6,"width":24,"height":1,"properties":{"markdown":"Kinesis Data Stream Metrics"}}]}"#;
    let out = cw
        .put_dashboard()
        .dashboard_name("kinesis")
        .dashboard_body(body)
        .send()
        .await
        .unwrap();
    assert!(out.dashboard_validation_messages().is_empty());
    let server = server.restart().await;
    let cw = cloudwatch(&server.handle.endpoint());
    let got = cw
        .get_dashboard()
        .dashboard_name("kinesis")
        .send()
        .await
        .unwrap();
    assert_eq!(got.dashboard_body(), Some(body));
    let list = cw.list_dashboards().send().await.unwrap();
    assert_eq!(list.dashboard_entries().len(), 1);
    assert_eq!(list.dashboard_entries()[0].size(), Some(body.len() as i64));
    cw.delete_dashboards()
        .dashboard_names("kinesis")
        .send()
        .await
        .unwrap();
    assert!(
        cw.list_dashboards()
            .send()
            .await
            .unwrap()
            .dashboard_entries()
            .is_empty()
    );
}

#[tokio::test]
async fn get_metric_data_runs_metric_math() {
    use aws_sdk_cloudwatch::types::{Metric, MetricDataQuery, MetricStat};
    let server = TestServer::start().await;
    to_next_minute(&server);
    let cw = cloudwatch(&server.handle.endpoint());
    for (name, v) in [("a", 3.0), ("b", 4.0)] {
        cw.put_metric_data()
            .namespace("Math")
            .metric_data(MetricDatum::builder().metric_name(name).value(v).build())
            .send()
            .await
            .unwrap();
    }
    let q = |id: &str, name: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(
                        Metric::builder()
                            .namespace("Math")
                            .metric_name(name)
                            .build(),
                    )
                    .period(60)
                    .stat("Sum")
                    .build(),
            )
            .return_data(false)
            .build()
    };
    let t = now(&server);
    let out = cw
        .get_metric_data()
        .metric_data_queries(q("a", "a"))
        .metric_data_queries(q("b", "b"))
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("total")
                .expression("SUM(METRICS())")
                .build(),
        )
        .metric_data_queries(
            MetricDataQuery::builder()
                .id("ratio")
                .expression("a / b * 100")
                .label("pct")
                .build(),
        )
        .start_time(DateTime::from_millis(t - 120_000))
        .end_time(DateTime::from_millis(t + 120_000))
        .send()
        .await
        .unwrap();
    let results = out.metric_data_results();
    assert_eq!(results.len(), 2, "{results:?}");
    assert_eq!(results[0].id(), Some("total"));
    assert_eq!(results[0].values(), [7.0]);
    assert_eq!(results[1].label(), Some("pct"));
    assert_eq!(results[1].values(), [75.0]);
    assert_eq!(results[1].timestamps().len(), 1);
}

/// The canary as real processes: the server, a producer and a consumer. The alarm (10 s
/// periods for a 1 s canary) goes OK while records flow, ALARM once the consumer is killed,
/// and OK again when a new consumer starts.
#[tokio::test]
async fn canary_alarm_fires_when_the_consumer_stops_and_clears_when_it_restarts() {
    use std::process::{Child, Command, Stdio};
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let bin = env!("CARGO_BIN_EXE_rivulet");
    let server = crate::cli::RealServer::start(&[]);
    let endpoint = server.endpoint.clone();
    let spawn = |args: &[&str]| {
        Kill(
            Command::new(bin)
                .args(args)
                .env("RIVULET_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        )
    };
    let canary = |role: &str| {
        spawn(&[
            "canary",
            "--endpoint-url",
            &endpoint,
            "--role",
            role,
            "--canary-interval-secs",
            "1",
        ])
    };
    let _producer = canary("produce");
    let consumer = canary("consume");
    let cw = cloudwatch(&endpoint);
    let wait_for = |want: StateValue, within: u64| {
        let cw = cw.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(within);
            loop {
                if let Ok(out) = cw
                    .describe_alarms()
                    .alarm_names(rivulet::canary::ALARM_NAME)
                    .send()
                    .await
                    && let Some(a) = out.metric_alarms().first()
                    && a.state_value() == Some(&want)
                {
                    return a.clone();
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "alarm never reached {want:?}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let ok = wait_for(StateValue::Ok, 45).await;
    assert_eq!(ok.period(), Some(10));
    assert_eq!(ok.treat_missing_data(), Some("breaching"));
    // The latency datapoints are real and small.
    let t = rivulet::clock::Clock::now_ms(&rivulet::clock::SystemClock);
    let (sum, count, max) = stats(
        &cw,
        t,
        rivulet::canary::NAMESPACE,
        rivulet::canary::METRIC,
        &[dim("StreamName", rivulet::canary::DEFAULT_STREAM)],
    )
    .await;
    assert!(
        count >= 1.0 && sum >= 0.0 && max < 1.0,
        "{sum} {count} {max}"
    );
    // Stop the consumer: no datapoints, missing data is breaching.
    drop(consumer);
    wait_for(StateValue::Alarm, 35).await;
    let _consumer = canary("consume");
    wait_for(StateValue::Ok, 35).await;
}

/// `serve --canary`: the server runs the canary itself; its stream is created ON_DEMAND and
/// encrypted, its records carry `currentInstant`, and its alarm goes OK.
#[tokio::test]
async fn serve_with_canary_creates_its_stream_and_alarm() {
    let server = crate::cli::RealServer::start(&[
        "--canary",
        "--canary-interval-secs",
        "1",
        "--canary-stream",
        "hc",
    ]);
    let endpoint = server.endpoint.clone();
    let cw = cloudwatch(&endpoint);
    let kinesis = crate::harness::client(&endpoint);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
    let state = loop {
        if let Ok(out) = cw
            .describe_alarms()
            .alarm_names(rivulet::canary::ALARM_NAME)
            .send()
            .await
            && let Some(a) = out.metric_alarms().first()
            && a.state_value() == Some(&StateValue::Ok)
        {
            break a.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the canary alarm never went OK"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(state.dimensions()[0].value(), Some("hc"));
    let summary = kinesis
        .describe_stream_summary()
        .stream_name("hc")
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary().unwrap();
    assert_eq!(
        summary.stream_mode_details().unwrap().stream_mode(),
        &aws_sdk_kinesis::types::StreamMode::OnDemand
    );
    assert_eq!(
        summary.encryption_type(),
        Some(&aws_sdk_kinesis::types::EncryptionType::Kms)
    );
    let mut found = None;
    for shard in kinesis
        .list_shards()
        .stream_name("hc")
        .send()
        .await
        .unwrap()
        .shards()
    {
        for r in read_shard(&kinesis, "hc", shard.shard_id()).await {
            found = Some((
                r.partition_key().unwrap().to_owned(),
                r.data().as_ref().to_vec(),
            ));
        }
    }
    let (key, data) = found.expect("a canary record");
    let v: serde_json::Value = serde_json::from_slice(&data).unwrap();
    assert_eq!(v["currentInstant"].as_str(), Some(key.as_str()));
    assert!(rivulet::clock::parse_time(&key).is_some(), "{key}");
}

/// `--alarm-topic NAME=exec:COMMAND`: an action naming the SNS topic runs the command with
/// the alarm message on stdin.
#[tokio::test]
async fn alarm_topic_runs_a_command() {
    let out = crate::harness::TempDir::new("exec-action");
    let file = out.path().join("message.json");
    let command = format!(
        "cat > {} && echo \"$RIVULET_ALARM_STATE\" >> {}",
        file.display(),
        file.display()
    );
    let topic = ("ops".to_string(), format!("exec:{command}"));
    let server = TestServer::start_with(move |c| c.alarm_topics = vec![topic]).await;
    let cw = cloudwatch(&server.handle.endpoint());
    cw.put_metric_alarm()
        .alarm_name("cmd")
        .namespace("App")
        .metric_name("m")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .alarm_actions("arn:aws:sns:us-east-1:000000000000:ops")
        .send()
        .await
        .unwrap();
    cw.set_alarm_state()
        .alarm_name("cmd")
        .state_value(StateValue::Alarm)
        .state_reason("run the command")
        .send()
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        if let Ok(t) = std::fs::read_to_string(&file)
            && t.ends_with("ALARM\n")
        {
            break t;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the command did not run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The message (no trailing newline), then the state the command saw in its environment.
    let json = text.strip_suffix("ALARM\n").unwrap();
    let message: serde_json::Value = serde_json::from_str(json).unwrap();
    assert_eq!(message["AlarmName"], "cmd");
    assert_eq!(message["NewStateReason"], "run the command");
}
