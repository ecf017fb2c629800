//! Random requests to every operation: bodies made of the model's member names with values of
//! random types (strings, numbers, nulls, lists, objects, huge and odd values). Whatever
//! arrives, the answer is a 200 or a Kinesis client error, never a 500, a panic or a dropped
//! connection.

use rivulet::api::actions::MODEL_OPERATIONS;
use serde_json::{Value, json};

use crate::harness::TestServer;

const MEMBERS: [&str; 40] = [
    "StreamName",
    "StreamARN",
    "ShardCount",
    "StreamModeDetails",
    "Tags",
    "Limit",
    "ExclusiveStartShardId",
    "ExclusiveStartStreamName",
    "NextToken",
    "MaxResults",
    "ShardFilter",
    "StreamCreationTimestamp",
    "Data",
    "PartitionKey",
    "ExplicitHashKey",
    "SequenceNumberForOrdering",
    "Records",
    "ShardId",
    "ShardIteratorType",
    "StartingSequenceNumber",
    "Timestamp",
    "ShardIterator",
    "RetentionPeriodHours",
    "TagKeys",
    "ResourceARN",
    "ShardToSplit",
    "NewStartingHashKey",
    "ShardToMerge",
    "AdjacentShardToMerge",
    "TargetShardCount",
    "ScalingType",
    "EncryptionType",
    "KeyId",
    "ShardLevelMetrics",
    "ConsumerName",
    "ConsumerARN",
    "Policy",
    "MaxRecordSizeInKiB",
    "WarmThroughputMiBps",
    "StartingPosition",
];

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn value(&mut self, depth: u32) -> Value {
        let strings = [
            "",
            "fuzz",
            "shardId-000000000000",
            "arn:aws:kinesis:us-east-1:000000000000:stream/fuzz",
            "AAAA",
            "TRIM_HORIZON",
            "AT_SEQUENCE_NUMBER",
            "KMS",
            "alias/aws/kinesis",
            "UNIFORM_SCALING",
            "ALL",
            "340282366920938463463374607431768211456",
            "49000000000000000000000000000000000000000000000000000000",
            "-1",
            "0",
            "\u{0}",
            "ünïcødé",
            "{}",
        ];
        match self.below(if depth > 2 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => json!(self.below(2) == 0),
            2 => json!(self.next() as i64),
            3 => json!([-1, 0, 1, 24, 500, 10_001, i64::MAX][self.below(7) as usize]),
            4 => json!(strings[self.below(strings.len() as u64) as usize]),
            5 => json!("x".repeat(self.below(3000) as usize)),
            6 => Value::Array((0..self.below(4)).map(|_| self.value(depth + 1)).collect()),
            7 => {
                let mut map = serde_json::Map::new();
                for _ in 0..self.below(4) {
                    map.insert(
                        MEMBERS[self.below(MEMBERS.len() as u64) as usize].to_owned(),
                        self.value(depth + 1),
                    );
                }
                map.insert("Type".into(), self.value(depth + 1));
                Value::Object(map)
            }
            _ => json!(1.5e300),
        }
    }
}

#[tokio::test]
async fn random_bodies_never_cause_server_errors() {
    let s = TestServer::start().await;
    s.create_stream("fuzz", 2).await;
    // RIVULET_FUZZ_SEED and RIVULET_FUZZ_ROUNDS widen the search; CI runs the default.
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mut rng = Rng(env("RIVULET_FUZZ_SEED", 0x9E37_79B9_7F4A_7C15) | 1);
    let rounds = env("RIVULET_FUZZ_ROUNDS", 40);
    for operation in MODEL_OPERATIONS {
        for _ in 0..rounds {
            let mut body = serde_json::Map::new();
            for _ in 0..rng.below(5) {
                body.insert(
                    MEMBERS[rng.below(MEMBERS.len() as u64) as usize].to_owned(),
                    rng.value(0),
                );
            }
            let body = Value::Object(body).to_string();
            let r = s
                .raw(
                    Some(operation),
                    "application/x-amz-json-1.1",
                    body.as_bytes(),
                )
                .await;
            assert!(
                r.status == 200 || (400..500).contains(&r.status),
                "{operation} answered {} to {body}: {}",
                r.status,
                r.body.chars().take(300).collect::<String>()
            );
        }
    }
    // Still serving.
    assert_eq!(
        s.raw(Some("ListStreams"), "application/x-amz-json-1.1", b"{}")
            .await
            .status,
        200
    );
}
