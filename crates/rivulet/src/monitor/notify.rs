//! Alarm actions. An action is an ARN as CloudWatch takes it; Rivulet maps it to a target:
//! - `arn:aws:sns:REGION:ACCOUNT:TOPIC` → the target `--alarm-topic TOPIC=TARGET` names;
//! - `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME` → a record on that stream;
//! - an `http://` URL → a webhook.
//!
//! A target is `http://…` (an SNS-style JSON notification is POSTed), `exec:COMMAND` (run by
//! `sh -c` with the notification on stdin; only from server configuration, never from the
//! API) or `kinesis:STREAM`. Deliveries are queued (bounded), tried up to `ATTEMPTS_MAX`
//! times with doubling backoff, and every outcome is an `Action` item in the alarm history.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::alarms::Notification;
use crate::clock::iso8601;
use crate::service::Kinesis;

/// Notifications waiting for delivery at most; past it new ones fail at once.
pub const OUTBOX_MAX: usize = 1_000;
pub const ATTEMPTS_MAX: u32 = 5;
/// Backoff before the second attempt; it doubles each time.
pub const BACKOFF_MS: i64 = 1_000;
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

struct Pending {
    n: Notification,
    attempt: u32,
    due_ms: i64,
    id: u64,
}

pub struct Outbox {
    queue: Mutex<VecDeque<Pending>>,
    topics: Vec<(String, String)>,
    next_id: std::sync::atomic::AtomicU64,
}

enum Target {
    Webhook(String),
    Command(String),
    Stream(String),
}

impl Outbox {
    pub fn new(topics: Vec<(String, String)>) -> Outbox {
        Outbox {
            queue: Mutex::new(VecDeque::new()),
            topics,
            next_id: Default::default(),
        }
    }

    pub fn push(&self, n: Notification, now_ms: i64) -> Result<(), Notification> {
        let mut q = self.queue.lock().expect("outbox lock");
        if q.len() >= OUTBOX_MAX {
            return Err(n);
        }
        let id = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        q.push_back(Pending {
            n,
            attempt: 1,
            due_ms: now_ms,
            id,
        });
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.queue.lock().expect("outbox lock").len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn take_due(&self, now_ms: i64) -> Vec<Pending> {
        let mut q = self.queue.lock().expect("outbox lock");
        let (due, later): (Vec<Pending>, Vec<Pending>) =
            q.drain(..).partition(|p| p.due_ms <= now_ms);
        q.extend(later);
        due
    }

    fn target(&self, action: &str) -> Result<Target, String> {
        if action.starts_with("http://") || action.starts_with("https://") {
            return Ok(Target::Webhook(action.into()));
        }
        let parts: Vec<&str> = action.splitn(6, ':').collect();
        match parts.as_slice() {
            ["arn", _, "sns", _, _, topic] => {
                let target = self
                    .topics
                    .iter()
                    .find(|(name, _)| name == topic)
                    .map(|(_, t)| t.as_str())
                    .ok_or_else(|| format!("no target is configured for topic {topic} (rivulet serve --alarm-topic {topic}=http://…)"))?;
                parse_target(target)
            }
            ["arn", _, "kinesis", _, _, resource] => resource
                .strip_prefix("stream/")
                .map(|s| Target::Stream(s.into()))
                .ok_or_else(|| format!("{action} is not a stream ARN")),
            _ => Err(format!("Rivulet does not run actions of the kind {action}")),
        }
    }
}

fn parse_target(t: &str) -> Result<Target, String> {
    if t.starts_with("http://") || t.starts_with("https://") {
        Ok(Target::Webhook(t.into()))
    } else if let Some(cmd) = t.strip_prefix("exec:") {
        Ok(Target::Command(cmd.into()))
    } else if let Some(stream) = t.strip_prefix("kinesis:") {
        Ok(Target::Stream(stream.into()))
    } else {
        Err(format!(
            "alarm topic target '{t}' must be http://…, exec:COMMAND or kinesis:STREAM"
        ))
    }
}

/// Checks a `--alarm-topic NAME=TARGET` value.
pub fn parse_topic(s: &str) -> Result<(String, String), String> {
    let (name, target) = s
        .split_once('=')
        .ok_or_else(|| format!("alarm topic '{s}' must be NAME=TARGET"))?;
    parse_target(target)?;
    Ok((name.into(), target.into()))
}

/// The SNS-style envelope a webhook receives.
fn sns_envelope(svc: &Kinesis, n: &Notification, id: u64, now_ms: i64) -> serde_json::Value {
    let topic = if n.action.starts_with("arn:aws:sns:") {
        n.action.clone()
    } else {
        format!(
            "arn:aws:sns:{}:{}:rivulet-alarms",
            svc.config.region, svc.config.account_id
        )
    };
    json!({
        "Type": "Notification",
        "MessageId": format!("{:08x}-0000-4000-8000-{:012x}", id, now_ms),
        "TopicArn": topic,
        "Subject": n.subject,
        "Message": n.message.to_string(),
        "Timestamp": iso8601(now_ms).replace("+0000", "Z"),
        "SignatureVersion": "1",
        "Signature": "",
        "SigningCertURL": "",
        "UnsubscribeURL": "",
    })
}

async fn attempt(
    svc: &Arc<Kinesis>,
    target: Target,
    n: &Notification,
    id: u64,
) -> Result<String, String> {
    let now = svc.now_ms();
    match target {
        Target::Webhook(url) => {
            let body = sns_envelope(svc, n, id, now).to_string().into_bytes();
            let r = crate::httpc::post(
                &url,
                &[
                    ("content-type", "text/plain; charset=UTF-8"),
                    ("x-amz-sns-message-type", "Notification"),
                ],
                body,
                WEBHOOK_TIMEOUT,
            )
            .await?;
            if (200..300).contains(&r.status) {
                Ok(format!("HTTP {}", r.status))
            } else {
                Err(format!("the webhook answered HTTP {}", r.status))
            }
        }
        Target::Command(cmd) => {
            use tokio::io::AsyncWriteExt;
            let mut child = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&cmd)
                .env("RIVULET_ALARM_NAME", &n.alarm_name)
                .env(
                    "RIVULET_ALARM_STATE",
                    n.message["NewStateValue"].as_str().unwrap_or(""),
                )
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| format!("cannot run '{cmd}': {e}"))?;
            let mut stdin = child.stdin.take().expect("piped");
            let input = n.message.to_string();
            let _ = stdin.write_all(input.as_bytes()).await;
            drop(stdin);
            let out = tokio::time::timeout(COMMAND_TIMEOUT, child.wait_with_output())
                .await
                .map_err(|_| {
                    format!(
                        "'{cmd}' did not finish within {} s",
                        COMMAND_TIMEOUT.as_secs()
                    )
                })?
                .map_err(|e| e.to_string())?;
            if out.status.success() {
                Ok("exit status 0".into())
            } else {
                let err = String::from_utf8_lossy(&out.stderr);
                Err(format!("'{cmd}' failed ({}): {}", out.status, err.trim()))
            }
        }
        Target::Stream(stream) => {
            let record = json!({
                "StreamName": stream,
                "PartitionKey": n.alarm_name,
                "Data": base64_simd::STANDARD.encode_to_string(n.message.to_string()),
            });
            let body = axum::body::Bytes::from(record.to_string());
            crate::api::actions::call(svc, "PutRecord", body)
                .await
                .map(|_| format!("record written to stream {stream}"))
                .map_err(|e| {
                    let why = e.message.unwrap_or_else(|| e.kind.type_name().into());
                    format!("writing to stream {stream}: {why}")
                })
        }
    }
}

/// Delivers every notification that is due, concurrently, recording each outcome.
pub async fn deliver_due(svc: &Arc<Kinesis>) {
    let monitor = &svc.monitor;
    let due = monitor.outbox.take_due(svc.now_ms());
    let mut tasks = tokio::task::JoinSet::new();
    for p in due {
        let svc = svc.clone();
        tasks.spawn(async move {
            let target = svc.monitor.outbox.target(&p.n.action);
            let result = match target {
                Ok(t) => attempt(&svc, t, &p.n, p.id).await,
                Err(e) => Err(e),
            };
            (p, result)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        let Ok((mut p, result)) = joined else {
            continue;
        };
        let now = svc.now_ms();
        let data = |state: &str, detail: &str| json!({"actionState": state, "notificationResource": p.n.action, "detail": detail, "attempt": p.attempt});
        match result {
            Ok(detail) => monitor.alarms.action_result(
                &p.n.alarm_name,
                format!("Successfully executed action {}", p.n.action),
                data("Succeeded", &detail),
                now,
            ),
            Err(e) if p.attempt < ATTEMPTS_MAX => {
                let wait = BACKOFF_MS << (p.attempt - 1);
                monitor.alarms.action_result(
                    &p.n.alarm_name,
                    format!(
                        "Failed to execute action {} (attempt {} of {ATTEMPTS_MAX}, retrying in {} ms): {e}",
                        p.n.action, p.attempt, wait
                    ),
                    data("Retrying", &e),
                    now,
                );
                p.attempt += 1;
                p.due_ms = now + wait;
                monitor
                    .outbox
                    .queue
                    .lock()
                    .expect("outbox lock")
                    .push_back(p);
            }
            Err(e) => monitor.alarms.action_result(
                &p.n.alarm_name,
                format!(
                    "Failed to execute action {} after {ATTEMPTS_MAX} attempts: {e}",
                    p.n.action
                ),
                data("Failed", &e),
                now,
            ),
        }
    }
}
