//! Stream and account settings, consumers as metadata, and resource policies, including
//! that they survive a restart.

use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::{
    MetricsName, MinimumThroughputBillingCommitmentInputStatus, StreamMode, StreamModeDetails,
};

use crate::harness::{TestServer, code};

const ARN: &str = "arn:aws:kinesis:us-east-1:000000000000:stream/cfg";

#[tokio::test]
async fn enhanced_monitoring_settings() {
    let s = TestServer::start().await;
    s.create_stream("cfg", 1).await;
    let on = s
        .client
        .enable_enhanced_monitoring()
        .stream_name("cfg")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await
        .unwrap();
    assert!(on.current_shard_level_metrics().is_empty());
    assert_eq!(
        on.desired_shard_level_metrics(),
        [MetricsName::IncomingBytes]
    );
    let all = s
        .client
        .enable_enhanced_monitoring()
        .stream_arn(ARN)
        .shard_level_metrics(MetricsName::All)
        .send()
        .await
        .unwrap();
    assert_eq!(all.desired_shard_level_metrics().len(), 7);
    let off = s
        .client
        .disable_enhanced_monitoring()
        .stream_name("cfg")
        .shard_level_metrics(MetricsName::IncomingBytes)
        .send()
        .await
        .unwrap();
    assert_eq!(off.desired_shard_level_metrics().len(), 6);
    let s = s.restart().await;
    let d = s
        .client
        .describe_stream()
        .stream_name("cfg")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(d.enhanced_monitoring[0].shard_level_metrics().len(), 6);
}

#[tokio::test]
async fn max_record_size_can_be_raised_to_ten_mib() {
    let s = TestServer::start().await;
    s.create_stream("cfg", 1).await;
    let big = Blob::new(vec![3u8; 3 << 20]);
    let refused = s
        .client
        .put_record()
        .stream_name("cfg")
        .partition_key("k")
        .data(big.clone())
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&refused), "ValidationException");
    s.client
        .update_max_record_size()
        .stream_arn(ARN)
        .max_record_size_in_kib(4096)
        .send()
        .await
        .unwrap();
    s.client
        .put_record()
        .stream_name("cfg")
        .partition_key("k")
        .data(big)
        .send()
        .await
        .unwrap();
    let out_of_range = s
        .client
        .update_max_record_size()
        .stream_arn(ARN)
        .max_record_size_in_kib(10241)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&out_of_range), "ValidationException");
    let s = s.restart().await;
    let summary = s
        .client
        .describe_stream_summary()
        .stream_name("cfg")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary
            .stream_description_summary
            .unwrap()
            .max_record_size_in_kib,
        Some(4096)
    );
}

#[tokio::test]
async fn account_commitment_and_warm_throughput() {
    let s = TestServer::start().await;
    let d = s.client.describe_account_settings().send().await.unwrap();
    assert_eq!(
        d.minimum_throughput_billing_commitment
            .unwrap()
            .status
            .as_str(),
        "DISABLED"
    );
    s.client
        .create_stream()
        .stream_name("cfg")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let no_commitment = s
        .client
        .update_stream_warm_throughput()
        .stream_name("cfg")
        .warm_throughput_mibps(100)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&no_commitment), "ValidationException");
    let enable = |status| {
        s.client
            .update_account_settings()
            .minimum_throughput_billing_commitment(
                aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentInput::builder()
                    .status(status)
                    .build()
                    .unwrap(),
            )
    };
    let on = enable(MinimumThroughputBillingCommitmentInputStatus::Enabled)
        .send()
        .await
        .unwrap();
    let on = on.minimum_throughput_billing_commitment.unwrap();
    assert_eq!(on.status.as_str(), "ENABLED");
    assert!(on.earliest_allowed_end_at.is_some());
    let warm = s
        .client
        .update_stream_warm_throughput()
        .stream_name("cfg")
        .warm_throughput_mibps(100)
        .send()
        .await
        .unwrap();
    assert_eq!(warm.warm_throughput.unwrap().target_mibps, Some(100));
    let early = enable(MinimumThroughputBillingCommitmentInputStatus::Disabled)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&early), "ValidationException");
    let s = s.restart().await;
    let summary = s
        .client
        .describe_stream_summary()
        .stream_name("cfg")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(summary.warm_throughput.unwrap().target_mibps, Some(100));
    s.advance_ms(86_400_000);
    let off = s
        .client
        .update_account_settings()
        .minimum_throughput_billing_commitment(
            aws_sdk_kinesis::types::MinimumThroughputBillingCommitmentInput::builder()
                .status(MinimumThroughputBillingCommitmentInputStatus::Disabled)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        off.minimum_throughput_billing_commitment
            .unwrap()
            .status
            .as_str(),
        "DISABLED"
    );
}

#[tokio::test]
async fn stream_mode_switches_at_most_twice_a_day() {
    let s = TestServer::start().await;
    s.create_stream("cfg", 3).await;
    let mode = |m| StreamModeDetails::builder().stream_mode(m).build().unwrap();
    s.client
        .update_stream_mode()
        .stream_arn(ARN)
        .stream_mode_details(mode(StreamMode::OnDemand))
        .send()
        .await
        .unwrap();
    let summary = s
        .client
        .describe_stream_summary()
        .stream_name("cfg")
        .send()
        .await
        .unwrap()
        .stream_description_summary
        .unwrap();
    assert_eq!(
        summary.stream_mode_details.unwrap().stream_mode,
        StreamMode::OnDemand
    );
    assert_eq!(
        summary.open_shard_count, 3,
        "the shard count is kept at the switch"
    );
    let split = s
        .client
        .split_shard()
        .stream_name("cfg")
        .shard_to_split("shardId-000000000000")
        .new_starting_hash_key("1000")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&split), "ValidationException");
    s.client
        .update_stream_mode()
        .stream_arn(ARN)
        .stream_mode_details(mode(StreamMode::Provisioned))
        .send()
        .await
        .unwrap();
    let third = s
        .client
        .update_stream_mode()
        .stream_arn(ARN)
        .stream_mode_details(mode(StreamMode::OnDemand))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&third), "LimitExceededException");
    s.advance_ms(86_400_000);
    s.client
        .update_stream_mode()
        .stream_arn(ARN)
        .stream_mode_details(mode(StreamMode::OnDemand))
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn consumers_are_registered_listed_tagged_and_deregistered() {
    let s = TestServer::start().await;
    s.create_stream("cfg", 1).await;
    let c = s
        .client
        .register_stream_consumer()
        .stream_arn(ARN)
        .consumer_name("app")
        .send()
        .await
        .unwrap()
        .consumer
        .unwrap();
    assert!(c.consumer_arn.starts_with(&format!("{ARN}/consumer/app:")));
    assert_eq!(c.consumer_status.as_str(), "ACTIVE");
    let dup = s
        .client
        .register_stream_consumer()
        .stream_arn(ARN)
        .consumer_name("app")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup), "ResourceInUseException");
    s.client
        .register_stream_consumer()
        .stream_arn(ARN)
        .consumer_name("other")
        .send()
        .await
        .unwrap();
    let by_arn = s
        .client
        .describe_stream_consumer()
        .consumer_arn(&c.consumer_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.consumer_description.unwrap().stream_arn, ARN);
    let by_name = s
        .client
        .describe_stream_consumer()
        .stream_arn(ARN)
        .consumer_name("app")
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_name.consumer_description.unwrap().consumer_arn,
        c.consumer_arn
    );
    let page = s
        .client
        .list_stream_consumers()
        .stream_arn(ARN)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.consumers().len(), 1);
    let rest = s
        .client
        .list_stream_consumers()
        .stream_arn(ARN)
        .next_token(page.next_token.unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.consumers()[0].consumer_name, "other");
    s.client
        .tag_resource()
        .resource_arn(&c.consumer_arn)
        .tags("team", "a")
        .send()
        .await
        .unwrap();
    let tags = s
        .client
        .list_tags_for_resource()
        .resource_arn(&c.consumer_arn)
        .send()
        .await
        .unwrap();
    assert_eq!(tags.tags()[0].key, "team");

    let s = s.restart().await;
    let summary = s
        .client
        .describe_stream_summary()
        .stream_name("cfg")
        .send()
        .await
        .unwrap();
    assert_eq!(
        summary.stream_description_summary.unwrap().consumer_count,
        Some(2)
    );
    let in_use = s
        .client
        .delete_stream()
        .stream_name("cfg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&in_use), "ResourceInUseException");
    s.client
        .deregister_stream_consumer()
        .consumer_arn(&c.consumer_arn)
        .send()
        .await
        .unwrap();
    let gone = s
        .client
        .describe_stream_consumer()
        .consumer_arn(&c.consumer_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&gone), "ResourceNotFoundException");
    s.client
        .delete_stream()
        .stream_name("cfg")
        .enforce_consumer_deletion(true)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn resource_policies_are_stored_and_returned() {
    let s = TestServer::start().await;
    s.create_stream("cfg", 1).await;
    let none = s
        .client
        .get_resource_policy()
        .resource_arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(none.policy, "{}");
    let policy = r#"{"Version":"2012-10-17","Statement":[]}"#;
    s.client
        .put_resource_policy()
        .resource_arn(ARN)
        .policy(policy)
        .send()
        .await
        .unwrap();
    let s = s.restart().await;
    assert_eq!(
        s.client
            .get_resource_policy()
            .resource_arn(ARN)
            .send()
            .await
            .unwrap()
            .policy,
        policy
    );
    let bad = s
        .client
        .put_resource_policy()
        .resource_arn(ARN)
        .policy("not json")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&bad), "InvalidArgumentException");
    s.client
        .delete_resource_policy()
        .resource_arn(ARN)
        .send()
        .await
        .unwrap();
    assert_eq!(
        s.client
            .get_resource_policy()
            .resource_arn(ARN)
            .send()
            .await
            .unwrap()
            .policy,
        "{}"
    );
}
