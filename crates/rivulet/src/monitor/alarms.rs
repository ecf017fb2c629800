//! Metric alarms: their definitions and states, evaluation on every tick against the metric
//! store, the history of configuration changes, state changes and actions, and the queue of
//! notifications state changes produce. Everything is one JSON document
//! (`metrics/alarms.json`), saved atomically after each change.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::query::{self, Stat};
use super::store::{MetricStore, SeriesKey};
use crate::clock::iso8601;

/// History items kept, over all alarms; the oldest go first.
pub const HISTORY_MAX: usize = 10_000;
/// Alarms one server holds.
pub const ALARMS_MAX: usize = 5_000;
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    #[serde(rename = "OK")]
    Ok,
    #[serde(rename = "ALARM")]
    Alarm,
    #[serde(rename = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl State {
    pub fn as_str(&self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Alarm => "ALARM",
            State::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
    pub fn parse(s: &str) -> Option<State> {
        Some(match s {
            "OK" => State::Ok,
            "ALARM" => State::Alarm,
            "INSUFFICIENT_DATA" => State::InsufficientData,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparison {
    GreaterThanOrEqualToThreshold,
    GreaterThanThreshold,
    LessThanThreshold,
    LessThanOrEqualToThreshold,
}

impl Comparison {
    pub fn parse(s: &str) -> Option<Comparison> {
        Some(match s {
            "GreaterThanOrEqualToThreshold" => Comparison::GreaterThanOrEqualToThreshold,
            "GreaterThanThreshold" => Comparison::GreaterThanThreshold,
            "LessThanThreshold" => Comparison::LessThanThreshold,
            "LessThanOrEqualToThreshold" => Comparison::LessThanOrEqualToThreshold,
            _ => return None,
        })
    }
    pub fn breaches(&self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => value >= threshold,
            Comparison::GreaterThanThreshold => value > threshold,
            Comparison::LessThanThreshold => value < threshold,
            Comparison::LessThanOrEqualToThreshold => value <= threshold,
        }
    }
    fn symbol(&self) -> &'static str {
        match self {
            Comparison::GreaterThanOrEqualToThreshold => ">=",
            Comparison::GreaterThanThreshold => ">",
            Comparison::LessThanThreshold => "<",
            Comparison::LessThanOrEqualToThreshold => "<=",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MissingData {
    Breaching,
    NotBreaching,
    Ignore,
    Missing,
}

impl MissingData {
    pub fn parse(s: &str) -> Option<MissingData> {
        Some(match s {
            "breaching" => MissingData::Breaching,
            "notBreaching" => MissingData::NotBreaching,
            "ignore" => MissingData::Ignore,
            "missing" => MissingData::Missing,
            _ => return None,
        })
    }
}

/// What an alarm watches.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Watched {
    Metric {
        key: SeriesKey,
        stat: Stat,
        unit: Option<String>,
    },
    /// Metric math: GetMetricData-style queries, one of which returns data. Stored as the
    /// queries' JSON so the API can echo them.
    Math { queries: Vec<serde_json::Value> },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AlarmSpec {
    pub name: String,
    pub watched: Watched,
    pub period_s: i64,
    pub evaluation_periods: u32,
    pub datapoints_to_alarm: u32,
    pub threshold: f64,
    pub comparison: Comparison,
    pub missing: MissingData,
    /// `EvaluateLowSampleCountPercentile` = ignore.
    pub low_sample_ignore: bool,
    pub ok_actions: Vec<String>,
    pub alarm_actions: Vec<String>,
    pub insufficient_data_actions: Vec<String>,
}

impl AlarmSpec {
    fn actions_for(&self, state: State) -> &[String] {
        match state {
            State::Ok => &self.ok_actions,
            State::Alarm => &self.alarm_actions,
            State::InsufficientData => &self.insufficient_data_actions,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Alarm {
    pub spec: AlarmSpec,
    /// The PutMetricAlarm input, echoed by DescribeAlarms.
    pub input: serde_json::Value,
    pub actions_enabled: bool,
    pub state: State,
    pub reason: String,
    pub reason_data: Option<String>,
    pub state_updated_ms: i64,
    pub state_transitioned_ms: i64,
    pub config_updated_ms: i64,
    /// The end of the last evaluated range; evaluation runs once a new period has closed.
    pub evaluated_until_ms: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HistoryItem {
    pub alarm_name: String,
    pub timestamp_ms: i64,
    pub kind: String,
    pub summary: String,
    pub data: String,
}

/// A notification to deliver: one action of one state change.
#[derive(Debug, Clone)]
pub struct Notification {
    pub alarm_name: String,
    pub action: String,
    pub subject: String,
    /// The CloudWatch alarm message (the `Message` of the SNS notification), as JSON.
    pub message: serde_json::Value,
}

#[derive(Default, Serialize, Deserialize)]
struct Book {
    version: u32,
    alarms: BTreeMap<String, Alarm>,
    history: VecDeque<HistoryItem>,
}

pub struct Alarms {
    path: PathBuf,
    book: Mutex<Book>,
    region: String,
    account: String,
}

impl Alarms {
    pub fn open(dir: &Path, region: &str, account: &str) -> anyhow::Result<Alarms> {
        let path = dir.join("alarms.json");
        let book = match std::fs::read(&path) {
            Ok(bytes) => {
                let book: Book = serde_json::from_slice(&bytes)
                    .map_err(|e| anyhow::anyhow!("{} is not an alarm book: {e}", path.display()))?;
                anyhow::ensure!(
                    book.version == FORMAT_VERSION,
                    "alarm book format {} (expected {FORMAT_VERSION})",
                    book.version
                );
                book
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Book {
                version: FORMAT_VERSION,
                ..Book::default()
            },
            Err(e) => return Err(e.into()),
        };
        Ok(Alarms {
            path,
            book: Mutex::new(book),
            region: region.into(),
            account: account.into(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book.lock().expect("alarm lock")
    }

    fn save(&self, book: &Book) {
        let bytes = serde_json::to_vec(book).expect("serializes");
        if let Err(e) = crate::control::store::write_atomic(&self.path, &bytes) {
            tracing::error!(error = %e, "alarm book not saved");
        }
    }

    pub fn arn(&self, name: &str) -> String {
        format!(
            "arn:aws:cloudwatch:{}:{}:alarm:{name}",
            self.region, self.account
        )
    }

    /// Creates or replaces an alarm. A new alarm starts in INSUFFICIENT_DATA; a replaced
    /// one keeps its state until the next evaluation.
    pub fn put(
        &self,
        spec: AlarmSpec,
        input: serde_json::Value,
        actions_enabled: bool,
        now_ms: i64,
    ) -> Result<(), String> {
        let mut book = self.lock();
        let name = spec.name.clone();
        let existing = book.alarms.remove(&name);
        if existing.is_none() && book.alarms.len() >= ALARMS_MAX {
            return Err(format!(
                "The maximum number of alarms ({ALARMS_MAX}) has been reached."
            ));
        }
        let updated = existing.is_some();
        let alarm = match existing {
            Some(old) => Alarm {
                spec,
                input,
                actions_enabled,
                config_updated_ms: now_ms,
                evaluated_until_ms: 0,
                ..old
            },
            None => Alarm {
                spec,
                input,
                actions_enabled,
                state: State::InsufficientData,
                reason: "Unchecked: Initial alarm creation".into(),
                reason_data: None,
                state_updated_ms: now_ms,
                state_transitioned_ms: now_ms,
                config_updated_ms: now_ms,
                evaluated_until_ms: 0,
            },
        };
        let data = json!({
            "type": if updated { "Update" } else { "Create" },
            "updatedAlarm": alarm.input,
            "version": "1.0",
        });
        book.alarms.insert(name.clone(), alarm);
        push_history(
            &mut book,
            HistoryItem {
                alarm_name: name.clone(),
                timestamp_ms: now_ms,
                kind: "ConfigurationUpdate".into(),
                summary: format!(
                    "Alarm \"{name}\" {}",
                    if updated { "updated" } else { "created" }
                ),
                data: data.to_string(),
            },
        );
        self.save(&book);
        Ok(())
    }

    /// Deletes alarms; every name must exist, or nothing is deleted.
    pub fn delete(&self, names: &[String], now_ms: i64) -> Result<(), String> {
        let mut book = self.lock();
        if let Some(missing) = names.iter().find(|n| !book.alarms.contains_key(*n)) {
            return Err(missing.clone());
        }
        for name in names {
            book.alarms.remove(name);
            push_history(
                &mut book,
                HistoryItem {
                    alarm_name: name.clone(),
                    timestamp_ms: now_ms,
                    kind: "ConfigurationUpdate".into(),
                    summary: format!("Alarm \"{name}\" deleted"),
                    data: json!({"type": "Delete", "version": "1.0"}).to_string(),
                },
            );
        }
        self.save(&book);
        Ok(())
    }

    pub fn list(&self) -> Vec<Alarm> {
        self.lock().alarms.values().cloned().collect()
    }

    pub fn history(&self) -> Vec<HistoryItem> {
        self.lock().history.iter().cloned().collect()
    }

    pub fn set_actions_enabled(&self, names: &[String], enabled: bool) {
        let mut book = self.lock();
        for name in names {
            if let Some(a) = book.alarms.get_mut(name) {
                a.actions_enabled = enabled;
            }
        }
        self.save(&book);
    }

    /// SetAlarmState: the state holds until the next evaluation. None for an unknown alarm.
    pub fn set_state(
        &self,
        name: &str,
        state: State,
        reason: &str,
        reason_data: Option<String>,
        now_ms: i64,
    ) -> Option<Vec<Notification>> {
        let mut book = self.lock();
        let alarm = book.alarms.get_mut(name)?;
        if alarm.state == state {
            // No change of state: new reason, no history item, no actions.
            alarm.reason = reason.into();
            alarm.reason_data = reason_data;
            alarm.state_updated_ms = now_ms;
            self.save(&book);
            return Some(Vec::new());
        }
        let out = self.transition(&mut book, name, state, reason.into(), reason_data, now_ms);
        self.save(&book);
        Some(out)
    }

    /// Records an action's outcome in the history.
    pub fn action_result(
        &self,
        alarm_name: &str,
        summary: String,
        data: serde_json::Value,
        now_ms: i64,
    ) {
        let mut book = self.lock();
        push_history(
            &mut book,
            HistoryItem {
                alarm_name: alarm_name.into(),
                timestamp_ms: now_ms,
                kind: "Action".into(),
                summary,
                data: data.to_string(),
            },
        );
        self.save(&book);
    }

    /// Evaluates every alarm whose next period has closed by `now_ms`. Returns the
    /// notifications of the state changes.
    pub fn evaluate(&self, store: &MetricStore, now_ms: i64) -> Vec<Notification> {
        let due: Vec<(String, AlarmSpec, i64)> = {
            let book = self.lock();
            book.alarms
                .values()
                .filter_map(|a| {
                    let p = a.spec.period_s * 1000;
                    // Alarms of a minute or more are evaluated every minute, as CloudWatch does.
                    let step = p.min(60_000);
                    let until = now_ms - now_ms.rem_euclid(step);
                    (until > a.evaluated_until_ms)
                        .then(|| (a.spec.name.clone(), a.spec.clone(), until))
                })
                .collect()
        };
        let mut notifications = Vec::new();
        for (name, spec, until) in due {
            let points = match datapoints(store, &spec, until) {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(alarm = %name, error = %e, "alarm evaluation failed");
                    continue;
                }
            };
            let mut book = self.lock();
            let Some(alarm) = book.alarms.get_mut(&name) else {
                continue;
            };
            alarm.evaluated_until_ms = until;
            let current = alarm.state;
            if let Some((state, reason, data)) = decide(&spec, &points, current) {
                if state != current {
                    notifications.extend(self.transition(
                        &mut book,
                        &name,
                        state,
                        reason,
                        Some(data),
                        now_ms,
                    ));
                    self.save(&book);
                } else if let Some(a) = book.alarms.get_mut(&name) {
                    a.reason = reason;
                    a.reason_data = Some(data);
                }
            }
        }
        notifications
    }

    fn transition(
        &self,
        book: &mut Book,
        name: &str,
        state: State,
        reason: String,
        reason_data: Option<String>,
        now_ms: i64,
    ) -> Vec<Notification> {
        let alarm = book.alarms.get_mut(name).expect("checked");
        let old = alarm.state;
        let old_reason = alarm.reason.clone();
        alarm.state = state;
        alarm.reason = reason.clone();
        alarm.reason_data = reason_data.clone();
        alarm.state_updated_ms = now_ms;
        if old != state {
            alarm.state_transitioned_ms = now_ms;
        }
        let alarm = alarm.clone();
        let data = json!({
            "version": "1.0",
            "oldState": {"stateValue": old.as_str(), "stateReason": old_reason},
            "newState": {
                "stateValue": state.as_str(),
                "stateReason": reason,
                "stateReasonData": reason_data.as_deref().and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()),
            },
        });
        push_history(
            book,
            HistoryItem {
                alarm_name: name.into(),
                timestamp_ms: now_ms,
                kind: "StateUpdate".into(),
                summary: format!("Alarm updated from {} to {}", old.as_str(), state.as_str()),
                data: data.to_string(),
            },
        );
        if !alarm.actions_enabled {
            return Vec::new();
        }
        let message = self.message(&alarm, old, now_ms);
        let subject = format!(
            "{}: \"{name}\" in {}",
            state.as_str(),
            region_name(&self.region)
        );
        alarm
            .spec
            .actions_for(state)
            .iter()
            .map(|action| Notification {
                alarm_name: name.into(),
                action: action.clone(),
                subject: subject.clone(),
                message: message.clone(),
            })
            .collect()
    }

    /// The alarm message CloudWatch publishes to SNS on a state change.
    fn message(&self, a: &Alarm, old: State, now_ms: i64) -> serde_json::Value {
        let trigger = match &a.spec.watched {
            Watched::Metric { key, stat, unit } => json!({
                "MetricName": key.name,
                "Namespace": key.namespace,
                "StatisticType": if matches!(stat, Stat::Percentile(_)) { "ExtendedStatistic" } else { "Statistic" },
                "Statistic": a.input.get("Statistic").and_then(|s| s.as_str()).map(|s| s.to_uppercase()),
                "Unit": unit,
                "Dimensions": key.dims.iter().map(|(n, v)| json!({"value": v, "name": n})).collect::<Vec<_>>(),
                "Period": a.spec.period_s,
                "EvaluationPeriods": a.spec.evaluation_periods,
                "DatapointsToAlarm": a.spec.datapoints_to_alarm,
                "ComparisonOperator": a.spec.comparison,
                "Threshold": a.spec.threshold,
                "TreatMissingData": a.spec.missing,
                "EvaluateLowSampleCountPercentile": "",
            }),
            Watched::Math { queries } => json!({
                "Metrics": queries,
                "Period": a.spec.period_s,
                "EvaluationPeriods": a.spec.evaluation_periods,
                "DatapointsToAlarm": a.spec.datapoints_to_alarm,
                "ComparisonOperator": a.spec.comparison,
                "Threshold": a.spec.threshold,
                "TreatMissingData": a.spec.missing,
            }),
        };
        json!({
            "AlarmName": a.spec.name,
            "AlarmDescription": a.input.get("AlarmDescription"),
            "AWSAccountId": self.account,
            "AlarmConfigurationUpdatedTimestamp": iso8601(a.config_updated_ms),
            "NewStateValue": a.state.as_str(),
            "NewStateReason": a.reason,
            "StateChangeTime": iso8601(now_ms),
            "Region": region_name(&self.region),
            "AlarmArn": self.arn(&a.spec.name),
            "OldStateValue": old.as_str(),
            "OKActions": a.spec.ok_actions,
            "AlarmActions": a.spec.alarm_actions,
            "InsufficientDataActions": a.spec.insufficient_data_actions,
            "Trigger": trigger,
        })
    }
}

/// The region's name as CloudWatch writes it in notifications.
fn region_name(code: &str) -> String {
    let name = match code {
        "us-east-1" => "US East (N. Virginia)",
        "us-east-2" => "US East (Ohio)",
        "us-west-1" => "US West (N. California)",
        "us-west-2" => "US West (Oregon)",
        "eu-west-1" => "EU (Ireland)",
        "eu-west-2" => "EU (London)",
        "eu-west-3" => "EU (Paris)",
        "eu-central-1" => "EU (Frankfurt)",
        "eu-north-1" => "EU (Stockholm)",
        "ap-south-1" => "Asia Pacific (Mumbai)",
        "ap-northeast-1" => "Asia Pacific (Tokyo)",
        "ap-northeast-2" => "Asia Pacific (Seoul)",
        "ap-southeast-1" => "Asia Pacific (Singapore)",
        "ap-southeast-2" => "Asia Pacific (Sydney)",
        "ca-central-1" => "Canada (Central)",
        "sa-east-1" => "South America (Sao Paulo)",
        other => other,
    };
    name.to_owned()
}

fn push_history(book: &mut Book, item: HistoryItem) {
    if book.history.len() >= HISTORY_MAX {
        book.history.pop_front();
    }
    book.history.push_back(item);
}

/// One evaluated period: its start (seconds) and value, or None when missing (or, for a
/// percentile with `ignore`, too few samples).
type Datapoint = (i64, Option<f64>);

/// The evaluation range ending at `until_ms`: `EvaluationPeriods` periods, oldest first.
fn datapoints(
    store: &MetricStore,
    spec: &AlarmSpec,
    until_ms: i64,
) -> Result<Vec<Datapoint>, String> {
    let p = spec.period_s;
    let end = until_ms.div_euclid(1000);
    let end = end - end.rem_euclid(p);
    let start = end - p * spec.evaluation_periods as i64;
    let mut values: BTreeMap<i64, f64> = BTreeMap::new();
    match &spec.watched {
        Watched::Metric { key, stat, unit } => {
            for (t, agg) in query::periods(store, key, unit.as_deref(), start, end, p)? {
                if let Stat::Percentile(pct) = stat
                    && spec.low_sample_ignore
                    && (agg.valued_samples() as f64) < 10.0 / (1.0 - pct / 100.0).max(0.0001)
                {
                    continue;
                }
                if let Some(v) = stat.of(&agg) {
                    values.insert(t, v);
                }
            }
        }
        Watched::Math { queries } => {
            let queries = crate::api::cloudwatch::alarm_queries(queries)?;
            let results = query::metric_data(store, &queries, start, end)?;
            if let Some(r) = results.first() {
                for (t, v) in r.timestamps.iter().zip(&r.values) {
                    values.insert(*t, *v);
                }
            }
        }
    }
    Ok((0..spec.evaluation_periods as i64)
        .map(|k| {
            let t = start + k * p;
            (t, values.get(&t).copied())
        })
        .collect())
}

/// The state an evaluation range calls for, with the reason and its data; None to keep
/// the current state (`ignore` with every point missing).
///
/// CloudWatch decides on the datapoints it has first: ALARM when at least M breach, OK when
/// so many are fine that even missing points counted as breaching could not reach M. Only
/// when the real points cannot decide does TreatMissingData fill the missing ones.
fn decide(
    spec: &AlarmSpec,
    points: &[Datapoint],
    current: State,
) -> Option<(State, String, String)> {
    let m = spec.datapoints_to_alarm as usize;
    let breaching = |v: f64| spec.comparison.breaches(v, spec.threshold);
    let present: Vec<(i64, f64)> = points
        .iter()
        .filter_map(|(t, v)| v.map(|v| (*t, v)))
        .collect();
    let b = present.iter().filter(|(_, v)| breaching(*v)).count();
    let missing = points.len() - present.len();
    let state = if b >= m {
        State::Alarm
    } else if b + missing < m {
        State::Ok
    } else {
        match spec.missing {
            MissingData::Breaching => State::Alarm,
            MissingData::NotBreaching => State::Ok,
            MissingData::Ignore => return None,
            MissingData::Missing if present.is_empty() => State::InsufficientData,
            // With some real points and the rest left out, the alarm fires when every point
            // it has breaches.
            MissingData::Missing if b == present.len() => State::Alarm,
            MissingData::Missing => State::Ok,
        }
    };
    let recent: Vec<f64> = present.iter().rev().map(|(_, v)| *v).collect();
    let shown: Vec<String> = recent.iter().map(|v| format!("{v}")).collect();
    let reason = match state {
        State::InsufficientData => format!(
            "Insufficient Data: {} datapoint{} were unknown.",
            points.len(),
            if points.len() == 1 { "" } else { "s" }
        ),
        _ if present.is_empty() => format!(
            "Threshold Crossed: no datapoints were received for {} period{} and {} missing datapoint{} {} treated as [{}].",
            points.len(),
            if points.len() == 1 { "" } else { "s" },
            missing,
            if missing == 1 { "" } else { "s" },
            if missing == 1 { "was" } else { "were" },
            match spec.missing {
                MissingData::Breaching => "Breaching",
                _ => "NonBreaching",
            }
        ),
        _ => format!(
            "Threshold Crossed: {} out of the last {} datapoints [{}] {} {} the threshold ({}) (minimum {} datapoint{} for {} transition).",
            if state == State::Alarm {
                b
            } else {
                present.len() - b
            },
            points.len(),
            shown.join(", "),
            if state == State::Alarm {
                "was"
            } else {
                "was not"
            },
            match spec.comparison {
                Comparison::GreaterThanOrEqualToThreshold => "greater than or equal to",
                Comparison::GreaterThanThreshold => "greater than",
                Comparison::LessThanThreshold => "less than",
                Comparison::LessThanOrEqualToThreshold => "less than or equal to",
            },
            spec.threshold,
            if state == State::Alarm { m } else { 1 },
            if m == 1 || state != State::Alarm {
                ""
            } else {
                "s"
            },
            if state == State::Alarm {
                "OK -> ALARM"
            } else {
                "ALARM -> OK"
            },
        ),
    };
    let _ = current;
    let data = json!({
        "version": "1.0",
        "queryDate": iso8601(points.last().map_or(0, |(t, _)| *t * 1000)),
        "startDate": iso8601(points.first().map_or(0, |(t, _)| *t * 1000)),
        "period": spec.period_s,
        "recentDatapoints": recent,
        "threshold": spec.threshold,
        "comparison": spec.comparison.symbol(),
        "evaluatedDatapoints": points.iter().rev().map(|(t, v)| match v {
            Some(v) => json!({"timestamp": iso8601(t * 1000), "value": v}),
            None => json!({"timestamp": iso8601(t * 1000)}),
        }).collect::<Vec<_>>(),
    });
    Some((state, reason, data.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(m: u32, n: u32, missing: MissingData) -> AlarmSpec {
        AlarmSpec {
            name: "a".into(),
            watched: Watched::Math { queries: vec![] },
            period_s: 60,
            evaluation_periods: n,
            datapoints_to_alarm: m,
            threshold: 1.0,
            comparison: Comparison::GreaterThanThreshold,
            missing,
            low_sample_ignore: false,
            ok_actions: vec![],
            alarm_actions: vec![],
            insufficient_data_actions: vec![],
        }
    }

    /// `0` fine, `X` breaching, `-` missing, oldest first.
    fn points(s: &str) -> Vec<Datapoint> {
        s.split(' ')
            .enumerate()
            .map(|(i, c)| {
                let v = match c {
                    "0" => Some(0.0),
                    "X" => Some(5.0),
                    _ => None,
                };
                (i as i64 * 60, v)
            })
            .collect()
    }

    fn state(m: u32, n: u32, missing: MissingData, s: &str, current: State) -> Option<State> {
        decide(&spec(m, n, missing), &points(s), current).map(|(s, ..)| s)
    }

    #[test]
    fn real_datapoints_decide_first() {
        use MissingData::*;
        for md in [Breaching, NotBreaching, Ignore, Missing] {
            assert_eq!(state(3, 3, md, "X X X", State::Ok), Some(State::Alarm));
            assert_eq!(state(3, 3, md, "0 X X", State::Alarm), Some(State::Ok));
            assert_eq!(
                state(3, 3, md, "0 - X", State::Alarm),
                Some(State::Ok),
                "{md:?}"
            );
            assert_eq!(state(2, 3, md, "X - X", State::Ok), Some(State::Alarm));
        }
    }

    #[test]
    fn missing_points_fill_in_per_treat_missing_data() {
        use MissingData::*;
        let cur = State::Ok;
        assert_eq!(state(3, 3, Breaching, "- - -", cur), Some(State::Alarm));
        assert_eq!(
            state(3, 3, NotBreaching, "- - -", State::Alarm),
            Some(State::Ok)
        );
        assert_eq!(state(3, 3, Ignore, "- - -", cur), None);
        assert_eq!(
            state(3, 3, Missing, "- - -", cur),
            Some(State::InsufficientData)
        );
        assert_eq!(state(3, 3, Breaching, "X - X", cur), Some(State::Alarm));
        assert_eq!(
            state(3, 3, NotBreaching, "X - X", State::Alarm),
            Some(State::Ok)
        );
        assert_eq!(state(3, 3, Ignore, "X - X", cur), None);
        assert_eq!(state(3, 3, Missing, "- - X", cur), Some(State::Alarm));
        assert_eq!(state(1, 1, Breaching, "-", cur), Some(State::Alarm));
    }

    #[test]
    fn comparisons() {
        assert!(Comparison::GreaterThanOrEqualToThreshold.breaches(1.0, 1.0));
        assert!(!Comparison::GreaterThanThreshold.breaches(1.0, 1.0));
        assert!(Comparison::LessThanOrEqualToThreshold.breaches(1.0, 1.0));
        assert!(!Comparison::LessThanThreshold.breaches(1.0, 1.0));
    }
}
