//! Stream lifecycle and listings: CreateStream, DescribeStream(Summary), ListStreams,
//! ListShards, DeleteStream, retention changes, tags and DescribeLimits.

use aws_sdk_kinesis::types::{
    ShardFilter, ShardFilterType, StreamMode, StreamModeDetails, StreamStatus,
};

use crate::harness::{TestServer, code, message};

#[tokio::test]
async fn create_describe_list_and_delete() {
    let s = TestServer::start().await;
    s.create_stream("orders", 2).await;
    let d = s
        .client
        .describe_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap();
    assert_eq!(d.stream_status, StreamStatus::Active);
    assert_eq!(
        d.stream_arn,
        "arn:aws:kinesis:us-east-1:000000000000:stream/orders"
    );
    assert_eq!(d.retention_period_hours, 24);
    assert!(!d.has_more_shards);
    let ids: Vec<&str> = d.shards.iter().map(|s| s.shard_id.as_str()).collect();
    assert_eq!(ids, ["shardId-000000000000", "shardId-000000000001"]);
    let r0 = d.shards[0].hash_key_range.as_ref().unwrap();
    assert_eq!(r0.starting_hash_key, "0");
    assert_eq!(
        r0.ending_hash_key,
        "170141183460469231731687303715884105727"
    );
    assert_eq!(
        d.shards[1].hash_key_range.as_ref().unwrap().ending_hash_key,
        u128::MAX.to_string()
    );

    let summary = s
        .client
        .describe_stream_summary()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let summary = summary.stream_description_summary.unwrap();
    assert_eq!(summary.open_shard_count, 2);
    assert_eq!(
        summary.stream_mode_details.unwrap().stream_mode,
        StreamMode::Provisioned
    );

    let listed = s.client.list_streams().send().await.unwrap();
    assert_eq!(listed.stream_names, ["orders"]);
    assert_eq!(listed.stream_summaries().len(), 1);

    s.client
        .delete_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap();
    let gone = s
        .client
        .describe_stream()
        .stream_name("orders")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&gone), "ResourceNotFoundException");
    assert_eq!(
        message(&gone),
        "Stream orders under account 000000000000 not found."
    );
}

#[tokio::test]
async fn no_shard_count_gives_four_even_shards_and_on_demand_works() {
    let s = TestServer::start().await;
    s.client
        .create_stream()
        .stream_name("default")
        .send()
        .await
        .unwrap();
    let shards = s
        .client
        .list_shards()
        .stream_name("default")
        .send()
        .await
        .unwrap()
        .shards
        .unwrap();
    assert_eq!(shards.len(), 4);
    let step = u128::MAX / 4 + 1;
    for (i, shard) in shards.iter().enumerate() {
        let range = shard.hash_key_range.as_ref().unwrap();
        assert_eq!(range.starting_hash_key, (step * i as u128).to_string());
    }
    s.client
        .create_stream()
        .stream_name("ondemand")
        .stream_mode_details(
            StreamModeDetails::builder()
                .stream_mode(StreamMode::OnDemand)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let limits = s.client.describe_limits().send().await.unwrap();
    assert_eq!(limits.open_shard_count, 8);
    assert_eq!(limits.on_demand_stream_count, 1);
    assert_eq!(limits.shard_limit, 500);
}

#[tokio::test]
async fn creating_and_deleting_states_follow_the_configured_delay() {
    let s = TestServer::start_with(|c| c.state_delay_ms = 500).await;
    s.create_stream("slow", 1).await;
    let status = |s: &TestServer| {
        let client = s.client.clone();
        async move {
            client
                .describe_stream()
                .stream_name("slow")
                .send()
                .await
                .map(|d| d.stream_description.unwrap().stream_status)
        }
    };
    assert_eq!(status(&s).await.unwrap(), StreamStatus::Creating);
    let early = s
        .client
        .put_record()
        .stream_name("slow")
        .partition_key("k")
        .data(b"x".to_vec().into())
        .send()
        .await;
    assert_eq!(code(&early.unwrap_err()), "ResourceNotFoundException");
    s.advance_ms(500);
    assert_eq!(status(&s).await.unwrap(), StreamStatus::Active);
    s.client
        .delete_stream()
        .stream_name("slow")
        .send()
        .await
        .unwrap();
    assert_eq!(status(&s).await.unwrap(), StreamStatus::Deleting);
    s.advance_ms(500);
    s.tick().await;
    assert_eq!(
        code(&status(&s).await.unwrap_err()),
        "ResourceNotFoundException"
    );
    // The name is free again, and the new stream starts empty.
    s.create_stream("slow", 1).await;
}

#[tokio::test]
async fn existing_stream_and_shard_limit_are_refused() {
    let s = TestServer::start_with(|c| c.shard_limit = 5).await;
    s.create_stream("a", 3).await;
    let dup = s
        .client
        .create_stream()
        .stream_name("a")
        .shard_count(1)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&dup), "ResourceInUseException");
    assert_eq!(
        message(&dup),
        "Stream a under account 000000000000 already exists."
    );
    let over = s
        .client
        .create_stream()
        .stream_name("b")
        .shard_count(3)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&over), "LimitExceededException");
    assert!(
        message(&over).contains("Current shard count for the account: 3. Limit: 5."),
        "{}",
        message(&over)
    );
}

#[tokio::test]
async fn list_streams_pages_with_limit_and_tokens() {
    let s = TestServer::start().await;
    for name in ["s1", "s2", "s3", "s4", "s5"] {
        s.create_stream(name, 1).await;
    }
    let first = s.client.list_streams().limit(2).send().await.unwrap();
    assert_eq!(first.stream_names, ["s1", "s2"]);
    assert!(first.has_more_streams);
    let second = s
        .client
        .list_streams()
        .next_token(first.next_token.unwrap())
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(second.stream_names, ["s3", "s4"]);
    let rest = s
        .client
        .list_streams()
        .exclusive_start_stream_name("s4")
        .send()
        .await
        .unwrap();
    assert_eq!(rest.stream_names, ["s5"]);
    assert!(!rest.has_more_streams);
}

#[tokio::test]
async fn list_shards_pages_and_filters() {
    let s = TestServer::start().await;
    s.create_stream("many", 5).await;
    let page = s
        .client
        .list_shards()
        .stream_name("many")
        .max_results(2)
        .send()
        .await
        .unwrap();
    assert_eq!(page.shards().len(), 2);
    let token = page.next_token.unwrap();
    let next = s
        .client
        .list_shards()
        .next_token(&token)
        .max_results(10)
        .send()
        .await
        .unwrap();
    assert_eq!(next.shards()[0].shard_id, "shardId-000000000002");
    assert_eq!(next.shards().len(), 3);
    assert!(next.next_token.is_none());
    let both = s
        .client
        .list_shards()
        .stream_name("many")
        .next_token(&token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&both), "InvalidArgumentException");
    let after = s
        .client
        .list_shards()
        .stream_name("many")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AfterShardId)
                .shard_id("shardId-000000000003")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(after.shards().len(), 1);
    let latest = s
        .client
        .list_shards()
        .stream_name("many")
        .shard_filter(
            ShardFilter::builder()
                .r#type(ShardFilterType::AtLatest)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(latest.shards().len(), 5);
    // Tokens expire after 300 seconds.
    s.advance_ms(301_000);
    let expired = s
        .client
        .list_shards()
        .next_token(&token)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&expired), "ExpiredNextTokenException");
}

#[tokio::test]
async fn retention_changes_follow_kinesis_rules() {
    let s = TestServer::start().await;
    s.create_stream("r", 1).await;
    s.client
        .increase_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(48)
        .send()
        .await
        .unwrap();
    let shorter = s
        .client
        .increase_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(30)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&shorter), "InvalidArgumentException");
    assert_eq!(
        message(&shorter),
        "Requested retention period (30 hours) for stream r can not be shorter than existing retention period (48 hours). Use DecreaseRetentionPeriod API."
    );
    let too_long = s
        .client
        .increase_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(8761)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&too_long), "InvalidArgumentException");
    let too_short = s
        .client
        .decrease_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(23)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        message(&too_short),
        "Minimum allowed retention period is 24 hours. Requested retention period (23 hours) is too short."
    );
    s.client
        .decrease_stream_retention_period()
        .stream_name("r")
        .retention_period_hours(24)
        .send()
        .await
        .unwrap();
    let d = s
        .client
        .describe_stream_summary()
        .stream_name("r")
        .send()
        .await
        .unwrap();
    assert_eq!(
        d.stream_description_summary.unwrap().retention_period_hours,
        24
    );
}

#[tokio::test]
async fn tags_by_stream_name_and_by_arn() {
    let s = TestServer::start().await;
    s.client
        .create_stream()
        .stream_name("t")
        .shard_count(1)
        .tags("team", "data")
        .send()
        .await
        .unwrap();
    s.client
        .add_tags_to_stream()
        .stream_name("t")
        .tags("env", "dev")
        .tags("cost", "1")
        .send()
        .await
        .unwrap();
    let tags = s
        .client
        .list_tags_for_stream()
        .stream_name("t")
        .limit(2)
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags.tags.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        ["cost", "env"]
    );
    assert!(tags.has_more_tags);
    s.client
        .remove_tags_from_stream()
        .stream_name("t")
        .tag_keys("cost")
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/t";
    s.client
        .tag_resource()
        .resource_arn(arn)
        .tags("owner", "me")
        .send()
        .await
        .unwrap();
    s.client
        .untag_resource()
        .resource_arn(arn)
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    let by_arn = s
        .client
        .list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap();
    let keys: Vec<_> = by_arn.tags().iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["owner", "team"]);
    let mut too_many = s.client.add_tags_to_stream().stream_name("t");
    for i in 0..49 {
        too_many = too_many.tags(format!("k{i}"), "v");
    }
    assert_eq!(
        code(&too_many.send().await.unwrap_err()),
        "InvalidArgumentException"
    );
}

#[tokio::test]
async fn stream_arn_works_wherever_the_name_does() {
    let s = TestServer::start().await;
    s.create_stream("byarn", 1).await;
    let arn = "arn:aws:kinesis:us-east-1:000000000000:stream/byarn";
    let d = s
        .client
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.stream_description.unwrap().stream_name, "byarn");
    let put = s
        .client
        .put_record()
        .stream_arn(arn)
        .partition_key("k")
        .data(b"v".to_vec().into())
        .send()
        .await
        .unwrap();
    assert_eq!(put.shard_id, "shardId-000000000000");
    let other_account = "arn:aws:kinesis:us-east-1:111111111111:stream/byarn";
    let e = s
        .client
        .describe_stream()
        .stream_arn(other_account)
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&e), "ResourceNotFoundException");
    let neither = s.client.describe_stream().send().await.unwrap_err();
    assert_eq!(code(&neither), "InvalidArgumentException");
}
