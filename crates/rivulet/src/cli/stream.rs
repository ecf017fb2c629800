//! `rivulet stream create | list | describe | delete | scale | split | merge | retention | mode`.

use clap::Subcommand;
use serde_json::{Value, json};

use super::{hash_range, is_open, list_shards, table, wait_for};
use crate::client::Client;

#[derive(Subcommand, Debug)]
pub enum StreamCommand {
    /// Create a stream: --shards N (provisioned) or --on-demand.
    Create {
        name: String,
        #[arg(
            long,
            conflicts_with = "on_demand",
            required_unless_present = "on_demand"
        )]
        shards: Option<u32>,
        #[arg(long)]
        on_demand: bool,
        #[command(flatten)]
        out: Out,
    },
    /// List streams.
    List {
        #[command(flatten)]
        out: Out,
    },
    /// Show a stream and its shards with their hash-key ranges.
    Describe {
        name: String,
        #[command(flatten)]
        out: Out,
    },
    /// Delete a stream (--force also deregisters its consumers).
    Delete {
        name: String,
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        out: Out,
    },
    /// Change the number of open shards (UpdateShardCount, uniform scaling).
    Scale {
        name: String,
        #[arg(long)]
        shards: u32,
        #[command(flatten)]
        out: Out,
    },
    /// Split a shard at a hash key (default: the middle of its range).
    Split {
        name: String,
        shard: String,
        #[arg(long)]
        hash_key: Option<u128>,
        #[command(flatten)]
        out: Out,
    },
    /// Merge a shard with the adjacent one.
    Merge {
        name: String,
        shard: String,
        adjacent: String,
        #[command(flatten)]
        out: Out,
    },
    /// Set the retention period in hours (24 to 8760).
    Retention {
        name: String,
        hours: u32,
        #[command(flatten)]
        out: Out,
    },
    /// Switch the capacity mode: provisioned or on-demand.
    Mode {
        name: String,
        #[arg(value_parser = ["provisioned", "on-demand"])]
        mode: String,
        #[command(flatten)]
        out: Out,
    },
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct Out {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Return without waiting for the stream to become ACTIVE.
    #[arg(long)]
    pub no_wait: bool,
}

pub async fn run_owned(client: Client, cmd: StreamCommand) -> anyhow::Result<()> {
    run(&client, cmd).await
}

pub async fn run(client: &Client, cmd: StreamCommand) -> anyhow::Result<()> {
    use StreamCommand::*;
    match cmd {
        Create {
            name,
            shards,
            on_demand,
            out,
        } => {
            let body = if on_demand {
                json!({"StreamName": name, "StreamModeDetails": {"StreamMode": "ON_DEMAND"}})
            } else {
                json!({"StreamName": name, "ShardCount": shards,
                       "StreamModeDetails": {"StreamMode": "PROVISIONED"}})
            };
            client.kinesis("CreateStream", body).await?;
            settle(client, &name, out).await
        }
        List { out } => {
            let mut names = Vec::new();
            let mut body = json!({});
            loop {
                let page = client.kinesis("ListStreams", body).await?;
                for s in page["StreamSummaries"].as_array().into_iter().flatten() {
                    names.push(s.clone());
                }
                match (page["HasMoreStreams"].as_bool(), page["NextToken"].as_str()) {
                    (Some(true), Some(t)) => body = json!({"NextToken": t}),
                    _ => break,
                }
            }
            if out.json {
                println!("{}", json!({ "Streams": names }));
            } else {
                let rows: Vec<Vec<String>> = names
                    .iter()
                    .map(|s| {
                        vec![
                            s["StreamName"].as_str().unwrap_or("").into(),
                            s["StreamStatus"].as_str().unwrap_or("").into(),
                            s["StreamModeDetails"]["StreamMode"]
                                .as_str()
                                .unwrap_or("")
                                .into(),
                        ]
                    })
                    .collect();
                print!("{}", table(&["STREAM", "STATUS", "MODE"], &rows));
            }
            Ok(())
        }
        Describe { name, out } => describe(client, &name, out.json).await,
        Delete { name, force, out } => {
            client
                .kinesis(
                    "DeleteStream",
                    json!({"StreamName": name, "EnforceConsumerDeletion": force}),
                )
                .await?;
            if !out.no_wait {
                wait_for(client, &name, true).await?;
            }
            if out.json {
                println!("{}", json!({"StreamName": name, "Deleted": true}));
            } else {
                println!("deleted {name}");
            }
            Ok(())
        }
        Scale { name, shards, out } => {
            client
                .kinesis(
                    "UpdateShardCount",
                    json!({"StreamName": name, "TargetShardCount": shards,
                           "ScalingType": "UNIFORM_SCALING"}),
                )
                .await?;
            settle(client, &name, out).await
        }
        Split {
            name,
            shard,
            hash_key,
            out,
        } => {
            let key = match hash_key {
                Some(k) => k,
                None => {
                    let shards = list_shards(client, &name).await?;
                    let s = shards
                        .iter()
                        .find(|s| s["ShardId"] == shard.as_str())
                        .ok_or_else(|| anyhow::anyhow!("{name} has no shard {shard}"))?;
                    let (lo, hi) = hash_range(s);
                    lo + (hi - lo) / 2 + 1
                }
            };
            client
                .kinesis(
                    "SplitShard",
                    json!({"StreamName": name, "ShardToSplit": shard,
                           "NewStartingHashKey": key.to_string()}),
                )
                .await?;
            settle(client, &name, out).await
        }
        Merge {
            name,
            shard,
            adjacent,
            out,
        } => {
            client
                .kinesis(
                    "MergeShards",
                    json!({"StreamName": name, "ShardToMerge": shard,
                           "AdjacentShardToMerge": adjacent}),
                )
                .await?;
            settle(client, &name, out).await
        }
        Retention { name, hours, out } => {
            let d = client
                .kinesis("DescribeStreamSummary", json!({"StreamName": name}))
                .await?;
            let current = d["StreamDescriptionSummary"]["RetentionPeriodHours"]
                .as_u64()
                .unwrap_or(24);
            let op = match (hours as u64).cmp(&current) {
                std::cmp::Ordering::Greater => Some("IncreaseStreamRetentionPeriod"),
                std::cmp::Ordering::Less => Some("DecreaseStreamRetentionPeriod"),
                std::cmp::Ordering::Equal => None,
            };
            if let Some(op) = op {
                client
                    .kinesis(
                        op,
                        json!({"StreamName": name, "RetentionPeriodHours": hours}),
                    )
                    .await?;
            }
            settle(client, &name, out).await
        }
        Mode { name, mode, out } => {
            let d = client
                .kinesis("DescribeStreamSummary", json!({"StreamName": name}))
                .await?;
            let arn = d["StreamDescriptionSummary"]["StreamARN"]
                .as_str()
                .unwrap_or("");
            let mode = if mode == "on-demand" {
                "ON_DEMAND"
            } else {
                "PROVISIONED"
            };
            client
                .kinesis(
                    "UpdateStreamMode",
                    json!({"StreamARN": arn, "StreamModeDetails": {"StreamMode": mode}}),
                )
                .await?;
            settle(client, &name, out).await
        }
    }
}

/// Waits for ACTIVE unless --no-wait, then describes the stream.
async fn settle(client: &Client, name: &str, out: Out) -> anyhow::Result<()> {
    if !out.no_wait {
        wait_for(client, name, false).await?;
    }
    describe(client, name, out.json).await
}

async fn describe(client: &Client, name: &str, as_json: bool) -> anyhow::Result<()> {
    let summary = client
        .kinesis("DescribeStreamSummary", json!({"StreamName": name}))
        .await?;
    let s = &summary["StreamDescriptionSummary"];
    let shards = if s["StreamStatus"] == "CREATING" {
        Vec::new()
    } else {
        list_shards(client, name).await?
    };
    if as_json {
        println!("{}", json!({"Stream": s, "Shards": shards}));
        return Ok(());
    }
    let field = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    println!(
        "{}  {}  {}  retention {} h  {} open shards  encryption {}",
        field(&s["StreamName"]),
        field(&s["StreamStatus"]),
        field(&s["StreamModeDetails"]["StreamMode"]),
        field(&s["RetentionPeriodHours"]),
        field(&s["OpenShardCount"]),
        field(&s["EncryptionType"]),
    );
    let rows: Vec<Vec<String>> = shards
        .iter()
        .map(|sh| {
            let (lo, hi) = hash_range(sh);
            vec![
                field(&sh["ShardId"]),
                if is_open(sh) { "open" } else { "closed" }.into(),
                field(&sh["ParentShardId"]),
                lo.to_string(),
                hi.to_string(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        print!(
            "{}",
            table(
                &[
                    "SHARD",
                    "STATE",
                    "PARENT",
                    "STARTING HASH KEY",
                    "ENDING HASH KEY"
                ],
                &rows
            )
        );
    }
    Ok(())
}
