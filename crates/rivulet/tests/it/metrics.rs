//! `GET /metrics`: Prometheus text with request counts and latencies, fsyncs and per-shard
//! traffic, on the Kinesis port.

use aws_sdk_kinesis::primitives::Blob;

use crate::harness::{TestServer, raw_get, read_shard};

/// The value of the first sample line starting with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

#[tokio::test]
async fn metrics_count_requests_fsyncs_and_shard_traffic() {
    let s = TestServer::start().await;
    s.create_stream("m", 1).await;
    for i in 0..3 {
        s.client
            .put_record()
            .stream_name("m")
            .partition_key("k")
            .data(Blob::new(format!("v{i}")))
            .send()
            .await
            .unwrap();
    }
    let _ = s
        .client
        .describe_stream()
        .stream_name("missing")
        .send()
        .await;
    assert_eq!(
        read_shard(&s.client, "m", "shardId-000000000000")
            .await
            .len(),
        3
    );
    let text = raw_get(s.handle.addr(), "/metrics").await;
    assert_eq!(
        sample(
            &text,
            "rivulet_requests_total{operation=\"PutRecord\",outcome=\"ok\"}"
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "rivulet_requests_total{operation=\"DescribeStream\",outcome=\"client_error\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "rivulet_request_duration_seconds_count{operation=\"PutRecord\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "rivulet_request_duration_seconds_bucket{operation=\"PutRecord\",le=\"+Inf\"}"
        ),
        Some(3.0)
    );
    assert!(
        sample(&text, "rivulet_fsyncs_total").unwrap() >= 3.0,
        "every acknowledged put was fsynced"
    );
    assert_eq!(
        sample(
            &text,
            "rivulet_shard_incoming_records_total{stream=\"m\",shard=\"shardId-000000000000\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "rivulet_shard_incoming_bytes_total{stream=\"m\",shard=\"shardId-000000000000\"}"
        ),
        Some(9.0)
    );
    assert_eq!(
        sample(
            &text,
            "rivulet_shard_outgoing_records_total{stream=\"m\",shard=\"shardId-000000000000\"}"
        ),
        Some(3.0)
    );
    assert!(sample(&text, "rivulet_shard_storage_bytes{stream=\"m\"").unwrap() > 0.0);
    assert_eq!(sample(&text, "rivulet_open_shards"), Some(1.0));
    // The stream-level AWS/Kinesis series the puts created are in the metric store.
    assert!(sample(&text, "rivulet_metric_series").unwrap() >= 5.0);
    // Every sample line parses as `name{labels} value`.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(),
            "bad sample line {line:?}"
        );
    }
}

#[tokio::test]
async fn metrics_show_each_alarm_state() {
    let s = TestServer::start().await;
    let cw = crate::cloudwatch::cloudwatch(&s.handle.endpoint());
    cw.put_metric_alarm()
        .alarm_name("a \"quoted\" alarm")
        .namespace("App")
        .metric_name("m")
        .statistic(aws_sdk_cloudwatch::types::Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(aws_sdk_cloudwatch::types::ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .unwrap();
    let text = raw_get(s.handle.addr(), "/metrics").await;
    let prefix = "rivulet_alarm_state{alarm=\"a \\\"quoted\\\" alarm\",";
    assert_eq!(
        sample(&text, &format!("{prefix}state=\"INSUFFICIENT_DATA\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, &format!("{prefix}state=\"OK\"}}")), Some(0.0));
    assert_eq!(
        sample(&text, "rivulet_alarm_notifications_queued"),
        Some(0.0)
    );
}
