//! Stream and account settings: Enable/DisableEnhancedMonitoring, UpdateMaxRecordSize,
//! UpdateStreamMode, UpdateStreamWarmThroughput, Describe/UpdateAccountSettings.

use serde::Deserialize;
use serde_json::{Value, json};

use super::streams::find_mut;
use super::{ApiResult, check_stream_ref, empty, ms_to_seconds, parse, stream_name};
use crate::api::error::{ApiError, ErrorKind};
use crate::api::validate::{self, Violations};
use crate::control::count_last_day;
use crate::control::{Commitment, StreamMode};
use crate::limits;
use crate::service::{Kinesis, require_active};

/// Shard-level metrics in the order Kinesis lists them.
const SHARD_LEVEL_METRICS: [&str; 7] = [
    "IncomingBytes",
    "IncomingRecords",
    "OutgoingBytes",
    "OutgoingRecords",
    "WriteProvisionedThroughputExceeded",
    "ReadProvisionedThroughputExceeded",
    "IteratorAgeMilliseconds",
];
const MODE_SWITCHES_PER_DAY_MAX: usize = 2;
const WARM_THROUGHPUT_MIBPS_MAX: i64 = 10_240;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MonitoringInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    shard_level_metrics: Option<Vec<String>>,
}

pub fn enable_enhanced_monitoring(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    change_monitoring(svc, body, true)
}

pub fn disable_enhanced_monitoring(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    change_monitoring(svc, body, false)
}

fn change_monitoring(svc: &Kinesis, body: &[u8], enable: bool) -> ApiResult<Vec<u8>> {
    let input: MonitoringInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let metrics = v.required("shardLevelMetrics", input.shard_level_metrics.as_deref());
    if let Some(metrics) = metrics {
        v.count("shardLevelMetrics", "'[…]'", metrics.len(), 1, 7);
        let mut allowed = SHARD_LEVEL_METRICS.to_vec();
        allowed.push("ALL");
        for m in metrics {
            v.one_of("shardLevelMetrics.member", Some(m), &allowed);
        }
    }
    v.finish()?;
    let metrics = metrics.expect("checked");
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let stream = find_mut(svc, &mut registry, &name)?;
    require_active(stream, now, svc.account())?;
    let current = stream.meta.shard_level_metrics.clone();
    let named = |m: &&str| metrics.iter().any(|x| x == m || x == "ALL");
    let desired: Vec<String> = SHARD_LEVEL_METRICS
        .iter()
        .filter(|m| {
            if enable {
                current.iter().any(|c| c == *m) || named(m)
            } else {
                current.iter().any(|c| c == *m) && !named(m)
            }
        })
        .map(|m| m.to_string())
        .collect();
    stream.meta.shard_level_metrics = desired.clone();
    svc.persist(&registry)?;
    super::json(json!({
        "StreamName": name,
        "StreamARN": svc.stream_arn(&name),
        "CurrentShardLevelMetrics": current,
        "DesiredShardLevelMetrics": desired,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct MaxRecordSizeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    #[serde(rename = "MaxRecordSizeInKiB")]
    max_record_size_in_kib: Option<i64>,
}

pub fn update_max_record_size(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: MaxRecordSizeInput = parse(body)?;
    let mut v = Violations::default();
    v.string(
        "streamARN",
        input.stream_arn.as_deref(),
        validate::STREAM_ARN,
    );
    let kib = v.required("maxRecordSizeInKiB", input.max_record_size_in_kib);
    v.int("maxRecordSizeInKiB", kib, Some(1024), Some(10240));
    v.finish()?;
    let name = arn_only(svc, input.stream_arn.as_deref())?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let stream = find_mut(svc, &mut registry, &name)?;
    require_active(stream, now, svc.account())?;
    stream.meta.max_record_size_kib = kib.expect("checked") as u32;
    svc.persist(&registry)?;
    empty()
}

/// The stream of an operation the model addresses by StreamARN alone.
fn arn_only(svc: &Kinesis, arn: Option<&str>) -> ApiResult<String> {
    match arn {
        Some(arn) => stream_name(svc, None, Some(arn)),
        None => Err(ApiError::invalid_argument("StreamARN must be provided.")),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ModeDetails {
    stream_mode: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StreamModeInput {
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    stream_mode_details: Option<ModeDetails>,
    warm_throughput_mi_bps: Option<i64>,
}

pub fn update_stream_mode(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: StreamModeInput = parse(body)?;
    let mut v = Violations::default();
    let arn = v.required("streamARN", input.stream_arn.as_deref());
    v.string("streamARN", arn, validate::STREAM_ARN);
    let details = v.required("streamModeDetails", input.stream_mode_details.as_ref());
    let mode =
        details.and_then(|d| v.required("streamModeDetails.streamMode", d.stream_mode.as_deref()));
    v.one_of(
        "streamModeDetails.streamMode",
        mode,
        &["PROVISIONED", "ON_DEMAND"],
    );
    v.int(
        "warmThroughputMiBps",
        input.warm_throughput_mi_bps,
        Some(0),
        None,
    );
    v.finish()?;
    let mode = if mode == Some("ON_DEMAND") {
        StreamMode::OnDemand
    } else {
        StreamMode::Provisioned
    };
    let name = arn_only(svc, arn)?;
    if input.warm_throughput_mi_bps.is_some() {
        if mode != StreamMode::OnDemand {
            return Err(validation(
                "WarmThroughputMiBps can only be set when switching to ON_DEMAND mode.",
            ));
        }
        require_commitment(svc)?;
    }
    let now = svc.now_ms();
    let mut registry = svc.write();
    let on_demand = registry
        .values()
        .filter(|s| s.status_at(now).is_some() && s.meta.mode == StreamMode::OnDemand)
        .count();
    let stream = find_mut(svc, &mut registry, &name)?;
    require_active(stream, now, svc.account())?;
    if stream.meta.mode == mode {
        return Err(ApiError::new(
            ErrorKind::ResourceInUse,
            format!(
                "Stream {name} under account {} is already in {} mode.",
                svc.account(),
                mode.as_str()
            ),
        ));
    }
    if count_last_day(&mut stream.meta.mode_switches_ms, now) >= MODE_SWITCHES_PER_DAY_MAX {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            format!(
                "Stream {name} under account {} has already switched capacity mode {MODE_SWITCHES_PER_DAY_MAX} times in the last 24 hours.",
                svc.account()
            ),
        ));
    }
    if mode == StreamMode::OnDemand && on_demand as u32 >= limits::ON_DEMAND_STREAM_COUNT_LIMIT {
        return Err(ApiError::new(
            ErrorKind::LimitExceeded,
            format!(
                "Account {} already has {on_demand} ON_DEMAND streams, the limit is {}.",
                svc.account(),
                limits::ON_DEMAND_STREAM_COUNT_LIMIT
            ),
        ));
    }
    stream.meta.mode = mode;
    stream.meta.mode_switches_ms.push(now);
    stream.meta.warm_throughput_mibps = if mode == StreamMode::OnDemand {
        input.warm_throughput_mi_bps
    } else {
        None
    };
    stream.begin_update(now, svc.config.state_delay_ms as i64);
    svc.persist(&registry)?;
    empty()
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WarmThroughputInput {
    stream_name: Option<String>,
    #[serde(rename = "StreamARN")]
    stream_arn: Option<String>,
    warm_throughput_mi_bps: Option<i64>,
}

pub fn update_stream_warm_throughput(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: WarmThroughputInput = parse(body)?;
    let mut v = Violations::default();
    check_stream_ref(
        &mut v,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    );
    let target = v.required("warmThroughputMiBps", input.warm_throughput_mi_bps);
    v.int("warmThroughputMiBps", target, Some(0), None);
    v.finish()?;
    let target = target.expect("checked");
    if target > WARM_THROUGHPUT_MIBPS_MAX {
        return Err(validation(&format!(
            "WarmThroughputMiBps {target} is above the maximum of {WARM_THROUGHPUT_MIBPS_MAX} MiB/s."
        )));
    }
    require_commitment(svc)?;
    let name = stream_name(
        svc,
        input.stream_name.as_deref(),
        input.stream_arn.as_deref(),
    )?;
    let now = svc.now_ms();
    let mut registry = svc.write();
    let stream = find_mut(svc, &mut registry, &name)?;
    require_active(stream, now, svc.account())?;
    if stream.meta.mode != StreamMode::OnDemand {
        return Err(validation(&format!(
            "Stream {name} under account {} is not in ON_DEMAND mode; warm throughput applies to ON_DEMAND streams only.",
            svc.account()
        )));
    }
    stream.meta.warm_throughput_mibps = Some(target);
    svc.persist(&registry)?;
    super::json(json!({
        "StreamARN": svc.stream_arn(&name),
        "StreamName": name,
        "WarmThroughput": warm_throughput(target),
    }))
}

/// The WarmThroughput member: Rivulet has the capacity at once, so current equals target.
pub fn warm_throughput(target_mibps: i64) -> Value {
    json!({ "TargetMiBps": target_mibps, "CurrentMiBps": target_mibps })
}

fn validation(message: &str) -> ApiError {
    ApiError::new(ErrorKind::Validation, message)
}

fn require_commitment(svc: &Kinesis) -> ApiResult<()> {
    let account = svc.account.lock().expect("account lock");
    if account.commitment.is_some_and(|c| c.is_active()) {
        return Ok(());
    }
    Err(validation(
        "Warm throughput requires the account's MinimumThroughputBillingCommitment to be ENABLED (UpdateAccountSettings).",
    ))
}

fn account_settings_json(commitment: Option<Commitment>) -> Value {
    let details = match commitment {
        None => json!({ "Status": "DISABLED" }),
        Some(c) => {
            let mut d = json!({
                "Status": if c.is_active() { "ENABLED" } else { "DISABLED" },
                "StartedAt": ms_to_seconds(c.started_ms),
            });
            match c.ended_ms {
                Some(end) => d["EndedAt"] = ms_to_seconds(end).into(),
                None => {
                    d["EarliestAllowedEndAt"] =
                        ms_to_seconds(c.started_ms + Commitment::MINIMUM_MS).into()
                }
            }
            d
        }
    };
    json!({ "MinimumThroughputBillingCommitment": details })
}

pub fn describe_account_settings(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let _: serde_json::Map<String, Value> = parse(body)?;
    let commitment = svc.account.lock().expect("account lock").commitment;
    super::json(account_settings_json(commitment))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CommitmentInput {
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AccountSettingsInput {
    minimum_throughput_billing_commitment: Option<CommitmentInput>,
}

pub fn update_account_settings(svc: &Kinesis, body: &[u8]) -> ApiResult<Vec<u8>> {
    let input: AccountSettingsInput = parse(body)?;
    let mut v = Violations::default();
    let c = v.required(
        "minimumThroughputBillingCommitment",
        input.minimum_throughput_billing_commitment.as_ref(),
    );
    let status = c.and_then(|c| {
        v.required(
            "minimumThroughputBillingCommitment.status",
            c.status.as_deref(),
        )
    });
    v.one_of(
        "minimumThroughputBillingCommitment.status",
        status,
        &["ENABLED", "DISABLED"],
    );
    v.finish()?;
    let now = svc.now_ms();
    // The registry lock comes first, as in `persist`.
    let registry = svc.write();
    let commitment = {
        let mut account = svc.account.lock().expect("account lock");
        let current = account.commitment.filter(|c| c.is_active());
        account.commitment = match (status, current) {
            (Some("ENABLED"), Some(c)) => Some(c),
            (Some("ENABLED"), None) => Some(Commitment {
                started_ms: now,
                ended_ms: None,
            }),
            (_, Some(c)) if now < c.started_ms + Commitment::MINIMUM_MS => {
                return Err(validation(&format!(
                    "MinimumThroughputBillingCommitment cannot be disabled before its earliest allowed end, {}.",
                    crate::clock::java_date(c.started_ms + Commitment::MINIMUM_MS)
                )));
            }
            (_, Some(c)) => Some(Commitment {
                ended_ms: Some(now),
                ..c
            }),
            (_, None) => account.commitment,
        };
        account.commitment
    };
    svc.persist(&registry)?;
    super::json(account_settings_json(commitment))
}
