//! The CloudWatch operations, on the model's JSON shapes. Validation follows CloudWatch's
//! limits and error codes; see the module docs of `monitor` for what is stored.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::CwError;
use crate::monitor::agg::Agg;
use crate::monitor::alarms::{AlarmSpec, Comparison, MissingData, State, Watched};
use crate::monitor::query::{self, MetricStat, Query, Stat};
use crate::monitor::store::{FUTURE_MS, PAST_MS, SeriesKey, StoreError};
use crate::service::Kinesis;

type R = Result<Value, CwError>;

const UNITS: [&str; 27] = [
    "Seconds",
    "Microseconds",
    "Milliseconds",
    "Bytes",
    "Kilobytes",
    "Megabytes",
    "Gigabytes",
    "Terabytes",
    "Bits",
    "Kilobits",
    "Megabits",
    "Gigabits",
    "Terabits",
    "Percent",
    "Count",
    "Bytes/Second",
    "Kilobytes/Second",
    "Megabytes/Second",
    "Gigabytes/Second",
    "Terabytes/Second",
    "Bits/Second",
    "Kilobits/Second",
    "Megabits/Second",
    "Gigabits/Second",
    "Terabits/Second",
    "Count/Second",
    "None",
];
const STATISTICS: [&str; 5] = ["SampleCount", "Average", "Sum", "Minimum", "Maximum"];
/// CloudWatch's limits.
const METRIC_DATA_MAX: usize = 1000;
const DIMENSIONS_MAX: usize = 30;
const VALUES_MAX: usize = 150;
const QUERIES_MAX: usize = 500;
const ACTIONS_MAX: usize = 5;
const LIST_METRICS_PAGE: usize = 500;
/// Magnitudes CloudWatch rejects (it accepts values within 2^±360).
const VALUE_MAX: f64 = 1.0e108;

pub fn call(svc: &Arc<Kinesis>, op: &str, input: Value) -> R {
    let i = In(&input);
    match op {
        "PutMetricData" => put_metric_data(svc, i),
        "GetMetricStatistics" => get_metric_statistics(svc, i),
        "GetMetricData" => get_metric_data(svc, i),
        "ListMetrics" => list_metrics(svc, i),
        "PutMetricAlarm" => put_metric_alarm(svc, i, &input),
        "DescribeAlarms" => describe_alarms(svc, i),
        "DescribeAlarmsForMetric" => describe_alarms_for_metric(svc, i),
        "DeleteAlarms" => delete_alarms(svc, i),
        "SetAlarmState" => set_alarm_state(svc, i),
        "DescribeAlarmHistory" => describe_alarm_history(svc, i),
        "EnableAlarmActions" => alarm_actions(svc, i, true),
        "DisableAlarmActions" => alarm_actions(svc, i, false),
        "PutDashboard" => super::dashboards::put(svc, i),
        "GetDashboard" => super::dashboards::get(svc, i),
        "ListDashboards" => super::dashboards::list(svc, i),
        "DeleteDashboards" => super::dashboards::delete(svc, i),
        _ => Err(CwError::invalid(format!("unknown operation {op}"))),
    }
}

/// Typed access to a JSON input, with CloudWatch's errors for wrong types.
#[derive(Clone, Copy)]
pub struct In<'a>(pub &'a Value);

impl<'a> In<'a> {
    pub fn get(&self, k: &str) -> Option<&'a Value> {
        self.0.get(k).filter(|v| !v.is_null())
    }
    pub fn str(&self, k: &str) -> Result<Option<&'a str>, CwError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(CwError::invalid(format!(
                "The parameter {k} must be a string."
            ))),
        }
    }
    pub fn req_str(&self, k: &str) -> Result<&'a str, CwError> {
        self.str(k)?.ok_or_else(|| CwError::missing(k))
    }
    /// A string of `min..=max` characters.
    pub fn name(&self, k: &str, min: usize, max: usize) -> Result<Option<&'a str>, CwError> {
        let s = self.str(k)?;
        if let Some(s) = s {
            let n = s.chars().count();
            if n < min || n > max {
                return Err(CwError::invalid(format!(
                    "The parameter {k} must be between {min} and {max} characters long."
                )));
            }
        }
        Ok(s)
    }
    pub fn f64(&self, k: &str) -> Result<Option<f64>, CwError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .map(Some)
                .ok_or_else(|| CwError::invalid(format!("The parameter {k} must be a number."))),
        }
    }
    pub fn int(&self, k: &str) -> Result<Option<i64>, CwError> {
        match self.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_i64()
                .map(Some)
                .ok_or_else(|| CwError::invalid(format!("The parameter {k} must be an integer."))),
        }
    }
    pub fn bool(&self, k: &str) -> Result<Option<bool>, CwError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(CwError::invalid(format!(
                "The parameter {k} must be a boolean."
            ))),
        }
    }
    pub fn list(&self, k: &str) -> Result<&'a [Value], CwError> {
        match self.get(k) {
            None => Ok(&[]),
            Some(Value::Array(a)) => Ok(a),
            Some(_) => Err(CwError::invalid(format!(
                "The parameter {k} must be a list."
            ))),
        }
    }
    pub fn strings(&self, k: &str) -> Result<Vec<String>, CwError> {
        self.list(k)?
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    CwError::invalid(format!("The parameter {k} must be a list of strings."))
                })
            })
            .collect()
    }
    /// A timestamp in epoch seconds (JSON number, or decoded CBOR tag 1), as milliseconds.
    pub fn time_ms(&self, k: &str) -> Result<Option<i64>, CwError> {
        match self.get(k) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some((n.as_f64().unwrap_or(0.0) * 1000.0).round() as i64)),
            Some(Value::String(s)) => crate::clock::parse_time(s)
                .map(Some)
                .ok_or_else(|| CwError::invalid(format!("The parameter {k} must be a timestamp."))),
            Some(_) => Err(CwError::invalid(format!(
                "The parameter {k} must be a timestamp."
            ))),
        }
    }
}

fn unit(i: In<'_>, k: &str) -> Result<Option<String>, CwError> {
    match i.str(k)? {
        None => Ok(None),
        Some(u) if UNITS.contains(&u) => Ok(Some(u.to_owned())),
        Some(u) => Err(CwError::invalid(format!(
            "The value {u} for parameter {k} is not valid. Valid values: {}",
            UNITS.join(", ")
        ))),
    }
}

fn namespace(i: In<'_>, k: &str) -> Result<Option<String>, CwError> {
    let ns = i.name(k, 1, 255)?;
    if let Some(ns) = ns
        && (ns.starts_with(':') || ns.chars().any(|c| c.is_control()))
    {
        return Err(CwError::invalid(format!(
            "The value {ns} for parameter {k} is not valid."
        )));
    }
    Ok(ns.map(str::to_owned))
}

fn dimensions(list: &[Value], path: &str) -> Result<Vec<(String, String)>, CwError> {
    if list.len() > DIMENSIONS_MAX {
        return Err(CwError::invalid(format!(
            "The collection {path} must not have a size greater than {DIMENSIONS_MAX}."
        )));
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(list.len());
    for (n, d) in list.iter().enumerate() {
        let d = In(d);
        let p = format!("{path}.member.{}", n + 1);
        let name = d
            .name("Name", 1, 255)?
            .ok_or_else(|| CwError::missing(&format!("{p}.Name")))?;
        let value = d
            .name("Value", 1, 1024)?
            .ok_or_else(|| CwError::missing(&format!("{p}.Value")))?;
        if out.iter().any(|(n, _)| n == name) {
            return Err(CwError::combination(format!(
                "No Metric may specify the same dimension name twice: {name}"
            )));
        }
        out.push((name.into(), value.into()));
    }
    out.sort();
    Ok(out)
}

fn key(namespace: String, name: &str, dims: Vec<(String, String)>) -> SeriesKey {
    SeriesKey {
        namespace,
        name: name.into(),
        dims,
    }
}

fn metric_json(k: &SeriesKey) -> Value {
    json!({
        "Namespace": k.namespace,
        "MetricName": k.name,
        "Dimensions": k.dims.iter().map(|(n, v)| json!({"Name": n, "Value": v})).collect::<Vec<_>>(),
    })
}

fn secs(ms: i64) -> Value {
    if ms % 1000 == 0 {
        json!(ms / 1000)
    } else {
        json!(ms as f64 / 1000.0)
    }
}

fn put_metric_data(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let ns = namespace(i, "Namespace")?.ok_or_else(|| CwError::missing("Namespace"))?;
    if ns.starts_with("AWS/") {
        return Err(CwError::invalid(format!(
            "The value {ns} for parameter Namespace is invalid: namespaces starting with AWS/ are reserved."
        )));
    }
    let data = i.list("MetricData")?;
    if data.is_empty() {
        return Err(CwError::missing("MetricData"));
    }
    if data.len() > METRIC_DATA_MAX {
        return Err(CwError::invalid(format!(
            "The collection MetricData must not have a size greater than {METRIC_DATA_MAX}."
        )));
    }
    let now = svc.now_ms();
    // Validate everything before storing anything.
    let mut by_time: Vec<(i64, u8, SeriesKey, String, Agg)> = Vec::with_capacity(data.len());
    for (n, d) in data.iter().enumerate() {
        let d = In(d);
        let p = format!("MetricData.member.{}", n + 1);
        let name = d
            .name("MetricName", 1, 255)?
            .ok_or_else(|| CwError::missing(&format!("{p}.MetricName")))?;
        let dims = dimensions(d.list("Dimensions")?, &format!("{p}.Dimensions"))?;
        let ts = d.time_ms("Timestamp")?.unwrap_or(now);
        if ts < now - PAST_MS || ts > now + FUTURE_MS {
            return Err(CwError::invalid(format!(
                "The parameter {p}.Timestamp must specify a time no more than two weeks in the past and no more than two hours in the future."
            )));
        }
        let resolution = match d.int("StorageResolution")? {
            None | Some(60) => 60u8,
            Some(1) => 1,
            Some(r) => {
                return Err(CwError::invalid(format!(
                    "The value {r} for parameter {p}.StorageResolution is not valid: it must be 1 or 60."
                )));
            }
        };
        let unit = unit(d, "Unit")?.unwrap_or_else(|| "None".into());
        let check = |v: f64, what: &str| -> Result<f64, CwError> {
            if v.is_finite() && v.abs() <= VALUE_MAX {
                Ok(v)
            } else {
                Err(CwError::invalid(format!(
                    "The value {v} for parameter {p}.{what} is not valid."
                )))
            }
        };
        let value = d.f64("Value")?;
        let stats = d.get("StatisticValues");
        let values = d.list("Values")?;
        let counts = d.list("Counts")?;
        let given = [value.is_some(), stats.is_some(), !values.is_empty()]
            .iter()
            .filter(|b| **b)
            .count();
        if given > 1 {
            return Err(CwError::combination(format!(
                "The parameters {p}.Value, {p}.StatisticValues and {p}.Values are mutually exclusive."
            )));
        }
        let agg = if let Some(v) = value {
            Agg::one(check(v, "Value")?)
        } else if let Some(s) = stats {
            let s = In(s);
            let field = |k: &str| -> Result<f64, CwError> {
                let v = s
                    .f64(k)?
                    .ok_or_else(|| CwError::missing(&format!("{p}.StatisticValues.{k}")))?;
                check(v, &format!("StatisticValues.{k}"))
            };
            let (count, sum, min, max) = (
                field("SampleCount")?,
                field("Sum")?,
                field("Minimum")?,
                field("Maximum")?,
            );
            if count <= 0.0 || min > max {
                return Err(CwError::invalid(format!(
                    "The parameter {p}.StatisticValues must have SampleCount > 0 and Minimum <= Maximum."
                )));
            }
            Agg::set(count, sum, min, max)
        } else if !values.is_empty() {
            if values.len() > VALUES_MAX {
                return Err(CwError::invalid(format!(
                    "The collection {p}.Values must not have a size greater than {VALUES_MAX}."
                )));
            }
            if !counts.is_empty() && counts.len() != values.len() {
                return Err(CwError::combination(format!(
                    "The parameters {p}.Values and {p}.Counts must be of the same size."
                )));
            }
            let mut agg: Option<Agg> = None;
            for (k, v) in values.iter().enumerate() {
                let v = check(v.as_f64().unwrap_or(f64::NAN), "Values")?;
                let c = match counts.get(k) {
                    Some(c) => c.as_f64().filter(|c| *c >= 0.0).ok_or_else(|| {
                        CwError::invalid(format!(
                            "The parameter {p}.Counts must hold non-negative numbers."
                        ))
                    })?,
                    None => 1.0,
                };
                if c == 0.0 {
                    continue;
                }
                let one = Agg::repeated(v, c);
                match &mut agg {
                    Some(a) => a.merge(&one),
                    None => agg = Some(one),
                }
            }
            match agg {
                Some(a) => a,
                None => continue,
            }
        } else {
            return Err(CwError::missing(&format!("{p}.Value")));
        };
        by_time.push((ts, resolution, key(ns.clone(), name, dims), unit, agg));
    }
    // Points of one call can have different timestamps: group them per (time, resolution).
    by_time.sort_by_key(|(ts, res, ..)| (*ts, *res));
    type Group = (i64, u8, Vec<(SeriesKey, String, Agg)>);
    let mut groups: Vec<Group> = Vec::new();
    for (ts, res, k, u, a) in by_time {
        match groups.last_mut() {
            Some((t, r, g)) if *t == ts && *r == res => g.push((k, u, a)),
            _ => groups.push((ts, res, vec![(k, u, a)])),
        }
    }
    for (ts, res, points) in groups {
        let points = points
            .iter()
            .map(|(k, u, a)| (k.clone(), u.as_str(), a.clone()))
            .collect();
        svc.monitor
            .store
            .record(ts, res, points)
            .map_err(|e| match e {
                StoreError::TooManySeries(_) => CwError::limit(e.to_string()),
                StoreError::Io(m) => CwError::internal(m),
            })?;
    }
    Ok(json!({}))
}

fn check_period(p: i64, k: &str) -> Result<(), CwError> {
    if p < 1 || (p > 60 && p % 60 != 0) || (p < 60 && ![1, 5, 10, 20, 30].contains(&p)) {
        return Err(CwError::invalid(format!(
            "The parameter {k} must be 1, 5, 10, 20, 30, 60, or any multiple of 60."
        )));
    }
    Ok(())
}

fn time_range(i: In<'_>, start: &str, end: &str) -> Result<(i64, i64), CwError> {
    let s = i.time_ms(start)?.ok_or_else(|| CwError::missing(start))?;
    let e = i.time_ms(end)?.ok_or_else(|| CwError::missing(end))?;
    if s >= e {
        return Err(CwError::invalid(format!(
            "The parameter {start} must be less than the parameter {end}."
        )));
    }
    Ok((s, e))
}

fn get_metric_statistics(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let ns = namespace(i, "Namespace")?.ok_or_else(|| CwError::missing("Namespace"))?;
    let name = i
        .name("MetricName", 1, 255)?
        .ok_or_else(|| CwError::missing("MetricName"))?;
    let dims = dimensions(i.list("Dimensions")?, "Dimensions")?;
    let (start_ms, end_ms) = time_range(i, "StartTime", "EndTime")?;
    let period = i.int("Period")?.ok_or_else(|| CwError::missing("Period"))?;
    check_period(period, "Period")?;
    let stats = i.strings("Statistics")?;
    let extended = i.strings("ExtendedStatistics")?;
    if stats.is_empty() && extended.is_empty() {
        return Err(CwError::missing("Statistics or ExtendedStatistics"));
    }
    if stats.len() > 5 || extended.len() > 10 {
        return Err(CwError::invalid(
            "Statistics may name at most 5 statistics and ExtendedStatistics at most 10.",
        ));
    }
    if let Some(bad) = stats.iter().find(|s| !STATISTICS.contains(&s.as_str())) {
        return Err(CwError::invalid(format!(
            "The value {bad} for parameter Statistics is not valid. Valid values: {}",
            STATISTICS.join(", ")
        )));
    }
    let mut ext: Vec<(String, Stat)> = Vec::new();
    for e in &extended {
        match Stat::parse(e) {
            Some(s @ Stat::Percentile(_)) => ext.push((e.clone(), s)),
            _ => {
                return Err(CwError::invalid(format!(
                    "The value {e} for parameter ExtendedStatistics is not a valid percentile (p0.0 to p100)."
                )));
            }
        }
    }
    let (start, end) = (start_ms.div_euclid(1000), (end_ms + 999).div_euclid(1000));
    let requested = (end - start + period - 1) / period;
    if requested > query::DATAPOINTS_MAX {
        return Err(CwError::combination(format!(
            "You have requested up to {requested} datapoints, which exceeds the limit of {}. You may reduce the datapoints requested by increasing Period, or decreasing the time range.",
            query::DATAPOINTS_MAX
        )));
    }
    let unit = unit(i, "Unit")?;
    let series_key = key(ns, name, dims);
    let by_unit = query::periods_by_unit(
        &svc.monitor.store,
        &series_key,
        unit.as_deref(),
        start,
        end,
        period,
    )
    .map_err(CwError::internal)?;
    // A period with data in two units gives one datapoint per unit, each with its unit.
    let datapoints: Vec<Value> = by_unit
        .iter()
        .flat_map(|(u, points)| points.iter().map(move |(t, a)| (u, *t, a)))
        .filter(|(_, t, _)| *t >= start - start.rem_euclid(period))
        .map(|(series_unit, t, a)| {
            let mut d = Map::new();
            d.insert("Timestamp".into(), json!(t));
            for s in &stats {
                let v = Stat::parse(s).and_then(|s| s.of(a)).unwrap_or(0.0);
                d.insert(s.clone(), json!(v));
            }
            if !ext.is_empty() {
                let m: Map<String, Value> = ext
                    .iter()
                    .filter_map(|(n, s)| s.of(a).map(|v| (n.clone(), json!(v))))
                    .collect();
                d.insert("ExtendedStatistics".into(), Value::Object(m));
            }
            d.insert("Unit".into(), json!(series_unit));
            Value::Object(d)
        })
        .collect();
    Ok(json!({"Label": name, "Datapoints": datapoints}))
}

/// Parses MetricDataQueries (GetMetricData, and metric-math alarms).
pub fn parse_queries(list: &[Value], path: &str) -> Result<Vec<Query>, CwError> {
    if list.is_empty() {
        return Err(CwError::missing(path));
    }
    if list.len() > QUERIES_MAX {
        return Err(CwError::invalid(format!(
            "The collection {path} must not have a size greater than {QUERIES_MAX}."
        )));
    }
    let mut out: Vec<Query> = Vec::new();
    for (n, q) in list.iter().enumerate() {
        let q = In(q);
        let p = format!("{path}.member.{}", n + 1);
        let id = q
            .name("Id", 1, 255)?
            .ok_or_else(|| CwError::missing(&format!("{p}.Id")))?;
        let valid_id = id.starts_with(|c: char| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_id {
            return Err(CwError::invalid(format!(
                "The value {id} for parameter {p}.Id is not valid: it must start with a lowercase letter and hold only letters, digits and underscores."
            )));
        }
        if out.iter().any(|o| o.id == id) {
            return Err(CwError::invalid(format!(
                "The Id {id} is used by more than one query."
            )));
        }
        let expression = q.name("Expression", 1, 2048)?;
        let metric = match q.get("MetricStat") {
            None => None,
            Some(m) => {
                let m = In(m);
                let metric = m
                    .get("Metric")
                    .ok_or_else(|| CwError::missing(&format!("{p}.MetricStat.Metric")))?;
                let metric = In(metric);
                let ns = namespace(metric, "Namespace")?
                    .ok_or_else(|| CwError::missing(&format!("{p}.MetricStat.Metric.Namespace")))?;
                let name = metric.name("MetricName", 1, 255)?.ok_or_else(|| {
                    CwError::missing(&format!("{p}.MetricStat.Metric.MetricName"))
                })?;
                let dims = dimensions(
                    metric.list("Dimensions")?,
                    &format!("{p}.MetricStat.Metric.Dimensions"),
                )?;
                let period = m
                    .int("Period")?
                    .ok_or_else(|| CwError::missing(&format!("{p}.MetricStat.Period")))?;
                check_period(period, &format!("{p}.MetricStat.Period"))?;
                let stat_text = m.req_str("Stat")?;
                let stat = Stat::parse(stat_text).ok_or_else(|| {
                    CwError::invalid(format!(
                        "The value {stat_text} for parameter {p}.MetricStat.Stat is not valid: use SampleCount, Average, Sum, Minimum, Maximum or a percentile pNN."
                    ))
                })?;
                Some(MetricStat {
                    key: key(ns, name, dims),
                    period_s: period,
                    stat,
                    unit: unit(m, "Unit")?,
                })
            }
        };
        if metric.is_some() == expression.is_some() {
            return Err(CwError::combination(format!(
                "Exactly one of {p}.MetricStat and {p}.Expression must be given."
            )));
        }
        let period = q.int("Period")?;
        if let Some(period) = period {
            check_period(period, &format!("{p}.Period"))?;
        }
        out.push(Query {
            id: id.into(),
            metric,
            expression: expression.map(str::to_owned),
            label: q.str("Label")?.map(str::to_owned),
            return_data: q.bool("ReturnData")?.unwrap_or(true),
            period_s: period,
        });
    }
    Ok(out)
}

/// The queries of a stored metric-math alarm.
pub fn alarm_queries(list: &[Value]) -> Result<Vec<Query>, String> {
    parse_queries(list, "Metrics").map_err(|e| e.message)
}

fn get_metric_data(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let queries = parse_queries(i.list("MetricDataQueries")?, "MetricDataQueries")?;
    let (start_ms, end_ms) = time_range(i, "StartTime", "EndTime")?;
    // A token counts the datapoints earlier pages returned, in output order.
    let offset = parse_token(i.str("NextToken")?)?;
    let ascending = match i.str("ScanBy")? {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(s) => {
            return Err(CwError::invalid(format!(
                "The value {s} for parameter ScanBy is not valid. Valid values: TimestampDescending, TimestampAscending"
            )));
        }
    };
    let max = i.int("MaxDatapoints")?.map(|m| m.max(0) as usize);
    let (start, end) = (start_ms.div_euclid(1000), (end_ms + 999).div_euclid(1000));
    let results =
        query::metric_data(&svc.monitor.store, &queries, start, end).map_err(|m| CwError {
            shape: "InvalidParameterValueException",
            code: "ValidationError",
            status: 400,
            message: m,
        })?;
    let page = max
        .unwrap_or(query::METRIC_DATA_POINTS_MAX)
        .clamp(1, query::METRIC_DATA_POINTS_MAX);
    let mut skip = offset;
    let mut budget = page;
    let mut returned = 0usize;
    let mut more = false;
    let mut out = Vec::new();
    for r in results {
        let mut pairs: Vec<(i64, f64)> = r
            .timestamps
            .iter()
            .copied()
            .zip(r.values.iter().copied())
            .filter(|(_, v)| v.is_finite())
            .collect();
        if !ascending {
            pairs.reverse();
        }
        let skipped = skip.min(pairs.len());
        skip -= skipped;
        pairs.drain(..skipped);
        let partial = pairs.len() > budget;
        if partial {
            pairs.truncate(budget);
            more = true;
        }
        budget -= pairs.len();
        returned += pairs.len();
        out.push(json!({
            "Id": r.id,
            "Label": r.label,
            "Timestamps": pairs.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            "Values": pairs.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": if partial { "PartialData" } else if r.complete { "Complete" } else { "InternalError" },
            "Messages": r.message.map(|m| vec![json!({"Code": "Warning", "Value": m})]).unwrap_or_default(),
        }));
    }
    let mut body = json!({"MetricDataResults": out, "Messages": []});
    if more {
        body["NextToken"] = json!(token(offset + returned));
    }
    Ok(body)
}

fn token(offset: usize) -> String {
    base64_simd::STANDARD.encode_to_string(format!("rivulet:{offset}"))
}

fn parse_token(t: Option<&str>) -> Result<usize, CwError> {
    let Some(t) = t else { return Ok(0) };
    base64_simd::STANDARD
        .decode_to_vec(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("rivulet:")?.parse().ok())
        .ok_or_else(CwError::next_token)
}

fn list_metrics(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let ns = namespace(i, "Namespace")?;
    let name = i.name("MetricName", 1, 255)?.map(str::to_owned);
    let filters = i.list("Dimensions")?;
    if filters.len() > 10 {
        return Err(CwError::invalid(
            "The collection Dimensions must not have a size greater than 10.",
        ));
    }
    let mut dims: Vec<(String, Option<String>)> = Vec::new();
    for (n, f) in filters.iter().enumerate() {
        let f = In(f);
        let dn = f
            .name("Name", 1, 255)?
            .ok_or_else(|| CwError::missing(&format!("Dimensions.member.{}.Name", n + 1)))?;
        dims.push((dn.into(), f.name("Value", 1, 1024)?.map(str::to_owned)));
    }
    let recent_cutoff = match i.str("RecentlyActive")? {
        None => None,
        Some("PT3H") => Some(svc.now_ms() - 3 * 3_600_000),
        Some(v) => {
            return Err(CwError::invalid(format!(
                "The value {v} for parameter RecentlyActive is not valid. Valid values: PT3H"
            )));
        }
    };
    let offset = parse_token(i.str("NextToken")?)?;
    let matching = svc.monitor.store.list(|s| {
        ns.as_ref().is_none_or(|n| *n == s.key.namespace)
            && name.as_ref().is_none_or(|n| *n == s.key.name)
            && dims.iter().all(|(dn, dv)| {
                s.key
                    .dims
                    .iter()
                    .any(|(n, v)| n == dn && dv.as_ref().is_none_or(|dv| dv == v))
            })
            && recent_cutoff.is_none_or(|c| s.last_ms >= c)
    });
    // One entry per metric, whatever the units of its data.
    let mut matching = matching;
    matching.dedup_by(|a, b| a.key == b.key);
    if offset > matching.len() {
        return Err(CwError::next_token());
    }
    let page: Vec<Value> = matching
        .iter()
        .skip(offset)
        .take(LIST_METRICS_PAGE)
        .map(|s| metric_json(&s.key))
        .collect();
    let mut out = json!({"Metrics": page});
    if offset + LIST_METRICS_PAGE < matching.len() {
        out["NextToken"] = json!(token(offset + LIST_METRICS_PAGE));
    }
    Ok(out)
}

fn actions(i: In<'_>, k: &str) -> Result<Vec<String>, CwError> {
    let list = i.strings(k)?;
    if list.len() > ACTIONS_MAX {
        return Err(CwError::invalid(format!(
            "The collection {k} must not have a size greater than {ACTIONS_MAX}."
        )));
    }
    for a in &list {
        let known = a.starts_with("arn:") || a.starts_with("http://") || a.starts_with("https://");
        if !known || a.is_empty() || a.len() > 1024 {
            return Err(CwError::invalid(format!(
                "Invalid arn syntax: {a} (an action is an ARN or an http:// URL)"
            )));
        }
    }
    Ok(list)
}

fn put_metric_alarm(svc: &Arc<Kinesis>, i: In<'_>, input: &Value) -> R {
    let name = i
        .name("AlarmName", 1, 255)?
        .ok_or_else(|| CwError::missing("AlarmName"))?;
    i.name("AlarmDescription", 0, 1024)?;
    let evaluation_periods = i
        .int("EvaluationPeriods")?
        .ok_or_else(|| CwError::missing("EvaluationPeriods"))?;
    if evaluation_periods < 1 {
        return Err(CwError::invalid(
            "The parameter EvaluationPeriods must be at least 1.",
        ));
    }
    let datapoints = i.int("DatapointsToAlarm")?.unwrap_or(evaluation_periods);
    if datapoints < 1 || datapoints > evaluation_periods {
        return Err(CwError::invalid(
            "DatapointsToAlarm must be between 1 and the value of EvaluationPeriods.",
        ));
    }
    let comparison_text = i.req_str("ComparisonOperator")?;
    let comparison = Comparison::parse(comparison_text).ok_or_else(|| {
        CwError::invalid(format!(
            "The value {comparison_text} for parameter ComparisonOperator is not valid (anomaly detection bands are not supported)."
        ))
    })?;
    let threshold = i
        .f64("Threshold")?
        .ok_or_else(|| CwError::missing("Threshold"))?;
    let missing = match i.str("TreatMissingData")? {
        None => MissingData::Missing,
        Some(m) => MissingData::parse(m).ok_or_else(|| {
            CwError::invalid(format!(
                "The value {m} for parameter TreatMissingData is not valid. Valid values: breaching, notBreaching, ignore, missing"
            ))
        })?,
    };
    let low_sample_ignore = match i.str("EvaluateLowSampleCountPercentile")? {
        None | Some("") | Some("evaluate") => false,
        Some("ignore") => true,
        Some(v) => {
            return Err(CwError::invalid(format!(
                "The value {v} for parameter EvaluateLowSampleCountPercentile is not valid. Valid values: evaluate, ignore"
            )));
        }
    };
    let metrics = i.list("Metrics")?;
    let (watched, period) = if metrics.is_empty() {
        let ns = namespace(i, "Namespace")?.ok_or_else(|| CwError::missing("Namespace"))?;
        let metric = i
            .name("MetricName", 1, 255)?
            .ok_or_else(|| CwError::missing("MetricName"))?;
        let dims = dimensions(i.list("Dimensions")?, "Dimensions")?;
        let stat = match (i.str("Statistic")?, i.str("ExtendedStatistic")?) {
            (Some(s), None) if STATISTICS.contains(&s) => Stat::parse(s).expect("listed"),
            (Some(s), None) => {
                return Err(CwError::invalid(format!(
                    "The value {s} for parameter Statistic is not valid. Valid values: {}",
                    STATISTICS.join(", ")
                )));
            }
            (None, Some(e)) => match Stat::parse(e) {
                Some(s @ Stat::Percentile(_)) => s,
                _ => {
                    return Err(CwError::invalid(format!(
                        "The value {e} for parameter ExtendedStatistic is not valid."
                    )));
                }
            },
            (None, None) => return Err(CwError::missing("Statistic or ExtendedStatistic")),
            (Some(_), Some(_)) => {
                return Err(CwError::combination(
                    "Exactly one of Statistic and ExtendedStatistic must be given.",
                ));
            }
        };
        let period = i.int("Period")?.ok_or_else(|| CwError::missing("Period"))?;
        let watched = Watched::Metric {
            key: key(ns, metric, dims),
            stat,
            unit: unit(i, "Unit")?,
        };
        (watched, period)
    } else {
        if [
            "MetricName",
            "Namespace",
            "Statistic",
            "ExtendedStatistic",
            "Period",
        ]
        .iter()
        .any(|k| i.get(k).is_some())
        {
            return Err(CwError::combination(
                "Metrics cannot be given with MetricName, Namespace, Statistic, ExtendedStatistic or Period.",
            ));
        }
        let queries = parse_queries(metrics, "Metrics")?;
        let returning: Vec<&Query> = queries.iter().filter(|q| q.return_data).collect();
        if returning.len() != 1 {
            return Err(CwError::invalid(
                "Exactly one element of the Metrics list must have ReturnData set to true.",
            ));
        }
        let period = returning[0]
            .metric
            .as_ref()
            .map(|m| m.period_s)
            .or(returning[0].period_s)
            .or(queries
                .iter()
                .filter_map(|q| q.metric.as_ref().map(|m| m.period_s))
                .min())
            .ok_or_else(|| CwError::missing("Metrics.member.N.Period"))?;
        // ReturnData goes first so the evaluator finds the alarm's series at index 0.
        (
            Watched::Math {
                queries: metrics.to_vec(),
            },
            period,
        )
    };
    if ![10, 20, 30].contains(&period) && (period < 60 || period % 60 != 0) {
        return Err(CwError::invalid(
            "The parameter Period must be 10, 20, 30, or a multiple of 60.",
        ));
    }
    if period * evaluation_periods > 7 * 86_400 {
        return Err(CwError::combination(
            "The product of EvaluationPeriods and Period must not exceed 604800 seconds (7 days).",
        ));
    }
    let spec = AlarmSpec {
        name: name.into(),
        watched,
        period_s: period,
        evaluation_periods: evaluation_periods as u32,
        datapoints_to_alarm: datapoints as u32,
        threshold,
        comparison,
        missing,
        low_sample_ignore,
        ok_actions: actions(i, "OKActions")?,
        alarm_actions: actions(i, "AlarmActions")?,
        insufficient_data_actions: actions(i, "InsufficientDataActions")?,
    };
    let enabled = i.bool("ActionsEnabled")?.unwrap_or(true);
    svc.monitor
        .alarms
        .put(spec, input.clone(), enabled, svc.now_ms())
        .map_err(CwError::limit)?;
    Ok(json!({}))
}

fn alarm_json(svc: &Kinesis, a: &crate::monitor::alarms::Alarm) -> Value {
    let mut out = Map::new();
    const ECHOED: [&str; 19] = [
        "AlarmDescription",
        "OKActions",
        "AlarmActions",
        "InsufficientDataActions",
        "MetricName",
        "Namespace",
        "Statistic",
        "ExtendedStatistic",
        "Dimensions",
        "Period",
        "Unit",
        "EvaluationPeriods",
        "DatapointsToAlarm",
        "Threshold",
        "ComparisonOperator",
        "TreatMissingData",
        "EvaluateLowSampleCountPercentile",
        "Metrics",
        "ThresholdMetricId",
    ];
    for k in ECHOED {
        if let Some(v) = a.input.get(k).filter(|v| !v.is_null()) {
            out.insert(k.into(), v.clone());
        }
    }
    for k in [
        "OKActions",
        "AlarmActions",
        "InsufficientDataActions",
        "Dimensions",
    ] {
        out.entry(k).or_insert(json!([]));
    }
    if !out.contains_key("DatapointsToAlarm") {
        out.insert(
            "DatapointsToAlarm".into(),
            json!(a.spec.datapoints_to_alarm),
        );
    }
    // A double on the wire, whatever number form the creating client sent.
    if out.contains_key("Threshold") {
        out.insert("Threshold".into(), json!(a.spec.threshold));
    }
    out.insert("AlarmName".into(), json!(a.spec.name));
    out.insert(
        "AlarmArn".into(),
        json!(svc.monitor.alarms.arn(&a.spec.name)),
    );
    out.insert(
        "AlarmConfigurationUpdatedTimestamp".into(),
        secs(a.config_updated_ms),
    );
    out.insert("ActionsEnabled".into(), json!(a.actions_enabled));
    out.insert("StateValue".into(), json!(a.state.as_str()));
    out.insert("StateReason".into(), json!(a.reason));
    if let Some(d) = &a.reason_data {
        out.insert("StateReasonData".into(), json!(d));
    }
    out.insert("StateUpdatedTimestamp".into(), secs(a.state_updated_ms));
    out.insert(
        "StateTransitionedTimestamp".into(),
        secs(a.state_transitioned_ms),
    );
    Value::Object(out)
}

fn max_records(i: In<'_>, default: usize) -> Result<usize, CwError> {
    match i.int("MaxRecords")? {
        None => Ok(default),
        Some(n) if (1..=100).contains(&n) => Ok(n as usize),
        Some(n) => Err(CwError::invalid(format!(
            "The value {n} for parameter MaxRecords is not valid: it must be between 1 and 100."
        ))),
    }
}

fn describe_alarms(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let names = i.strings("AlarmNames")?;
    if names.len() > 100 {
        return Err(CwError::invalid(
            "The collection AlarmNames must not have a size greater than 100.",
        ));
    }
    let prefix = i.name("AlarmNamePrefix", 1, 255)?;
    if !names.is_empty() && prefix.is_some() {
        return Err(CwError::combination(
            "AlarmNames and AlarmNamePrefix cannot be given together.",
        ));
    }
    let state = match i.str("StateValue")? {
        None => None,
        Some(s) => Some(State::parse(s).ok_or_else(|| {
            CwError::invalid(format!(
                "The value {s} for parameter StateValue is not valid. Valid values: OK, ALARM, INSUFFICIENT_DATA"
            ))
        })?),
    };
    let action_prefix = i.name("ActionPrefix", 1, 1024)?;
    let types = i.strings("AlarmTypes")?;
    if let Some(t) = types
        .iter()
        .find(|t| *t != "MetricAlarm" && *t != "CompositeAlarm")
    {
        return Err(CwError::invalid(format!(
            "The value {t} for parameter AlarmTypes is not valid. Valid values: CompositeAlarm, MetricAlarm"
        )));
    }
    let want_metric = types.is_empty() || types.iter().any(|t| t == "MetricAlarm");
    let max = max_records(i, 50)?;
    let offset = parse_token(i.str("NextToken")?)?;
    let matching: Vec<Value> = svc
        .monitor
        .alarms
        .list()
        .iter()
        .filter(|_| want_metric)
        .filter(|a| names.is_empty() || names.contains(&a.spec.name))
        .filter(|a| prefix.is_none_or(|p| a.spec.name.starts_with(p)))
        .filter(|a| state.is_none_or(|s| a.state == s))
        .filter(|a| {
            action_prefix.is_none_or(|p| {
                a.spec
                    .ok_actions
                    .iter()
                    .chain(&a.spec.alarm_actions)
                    .chain(&a.spec.insufficient_data_actions)
                    .any(|x| x.starts_with(p))
            })
        })
        .map(|a| alarm_json(svc, a))
        .collect();
    let page: Vec<Value> = matching.iter().skip(offset).take(max).cloned().collect();
    let mut out = json!({"MetricAlarms": page, "CompositeAlarms": []});
    if offset + max < matching.len() {
        out["NextToken"] = json!(token(offset + max));
    }
    Ok(out)
}

fn describe_alarms_for_metric(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let ns = namespace(i, "Namespace")?.ok_or_else(|| CwError::missing("Namespace"))?;
    let name = i
        .name("MetricName", 1, 255)?
        .ok_or_else(|| CwError::missing("MetricName"))?;
    let dims = if i.get("Dimensions").is_some() {
        Some(dimensions(i.list("Dimensions")?, "Dimensions")?)
    } else {
        None
    };
    let stat = i.str("Statistic")?;
    let ext = i.str("ExtendedStatistic")?;
    let period = i.int("Period")?;
    let unit = unit(i, "Unit")?;
    let alarms: Vec<Value> = svc
        .monitor
        .alarms
        .list()
        .iter()
        .filter(|a| match &a.spec.watched {
            Watched::Metric { key, unit: u, .. } => {
                key.namespace == ns
                    && key.name == name
                    && dims.as_ref().is_none_or(|d| *d == key.dims)
                    && stat
                        .is_none_or(|s| a.input.get("Statistic").and_then(Value::as_str) == Some(s))
                    && ext.is_none_or(|s| {
                        a.input.get("ExtendedStatistic").and_then(Value::as_str) == Some(s)
                    })
                    && period.is_none_or(|p| p == a.spec.period_s)
                    && unit.as_ref().is_none_or(|x| u.as_ref() == Some(x))
            }
            Watched::Math { .. } => false,
        })
        .map(|a| alarm_json(svc, a))
        .collect();
    Ok(json!({"MetricAlarms": alarms}))
}

fn alarm_names(i: In<'_>) -> Result<Vec<String>, CwError> {
    let names = i.strings("AlarmNames")?;
    if i.get("AlarmNames").is_none() {
        return Err(CwError::missing("AlarmNames"));
    }
    if names.len() > 100 {
        return Err(CwError::invalid(
            "The collection AlarmNames must not have a size greater than 100.",
        ));
    }
    Ok(names)
}

fn delete_alarms(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let names = alarm_names(i)?;
    svc.monitor
        .alarms
        .delete(&names, svc.now_ms())
        .map_err(|missing| CwError::not_found(format!("Alarm {missing} does not exist")))?;
    Ok(json!({}))
}

fn alarm_actions(svc: &Arc<Kinesis>, i: In<'_>, enabled: bool) -> R {
    let names = alarm_names(i)?;
    svc.monitor.alarms.set_actions_enabled(&names, enabled);
    Ok(json!({}))
}

fn set_alarm_state(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let name = i
        .name("AlarmName", 1, 255)?
        .ok_or_else(|| CwError::missing("AlarmName"))?;
    let state_text = i.req_str("StateValue")?;
    let state = State::parse(state_text).ok_or_else(|| {
        CwError::invalid(format!(
            "The value {state_text} for parameter StateValue is not valid. Valid values: OK, ALARM, INSUFFICIENT_DATA"
        ))
    })?;
    let reason = i
        .name("StateReason", 0, 1023)?
        .ok_or_else(|| CwError::missing("StateReason"))?;
    let data = i.name("StateReasonData", 0, 4000)?;
    if let Some(d) = data
        && serde_json::from_str::<Value>(d).is_err()
    {
        return Err(CwError {
            shape: "InvalidFormatFault",
            code: "InvalidFormat",
            status: 400,
            message: "StateReasonData must be valid JSON.".into(),
        });
    }
    let notifications = svc
        .monitor
        .alarms
        .set_state(name, state, reason, data.map(str::to_owned), svc.now_ms())
        .ok_or_else(|| CwError::not_found(format!("Alarm {name} does not exist")))?;
    svc.monitor.enqueue(notifications);
    Ok(json!({}))
}

fn describe_alarm_history(svc: &Arc<Kinesis>, i: In<'_>) -> R {
    let name = i.name("AlarmName", 1, 255)?;
    let kind = match i.str("HistoryItemType")? {
        None => None,
        Some(k @ ("ConfigurationUpdate" | "StateUpdate" | "Action")) => Some(k),
        Some(k @ ("AlarmContributorStateUpdate" | "AlarmContributorAction")) => Some(k),
        Some(k) => {
            return Err(CwError::invalid(format!(
                "The value {k} for parameter HistoryItemType is not valid. Valid values: ConfigurationUpdate, StateUpdate, Action"
            )));
        }
    };
    let start = i.time_ms("StartDate")?;
    let end = i.time_ms("EndDate")?;
    let types = i.strings("AlarmTypes")?;
    let want_metric = types.is_empty() || types.iter().any(|t| t == "MetricAlarm");
    let ascending = match i.str("ScanBy")? {
        None | Some("TimestampDescending") => false,
        Some("TimestampAscending") => true,
        Some(s) => {
            return Err(CwError::invalid(format!(
                "The value {s} for parameter ScanBy is not valid."
            )));
        }
    };
    let max = max_records(i, 100)?;
    let offset = parse_token(i.str("NextToken")?)?;
    let mut items: Vec<_> = svc
        .monitor
        .alarms
        .history()
        .into_iter()
        .filter(|_| want_metric)
        .filter(|h| name.is_none_or(|n| h.alarm_name == n))
        .filter(|h| kind.is_none_or(|k| h.kind == k))
        .filter(|h| start.is_none_or(|s| h.timestamp_ms >= s))
        .filter(|h| end.is_none_or(|e| h.timestamp_ms <= e))
        .collect();
    if !ascending {
        items.reverse();
    }
    let total = items.len();
    let page: Vec<Value> = items
        .into_iter()
        .skip(offset)
        .take(max)
        .map(|h| {
            json!({
                "AlarmName": h.alarm_name,
                "AlarmType": "MetricAlarm",
                "Timestamp": secs(h.timestamp_ms),
                "HistoryItemType": h.kind,
                "HistorySummary": h.summary,
                "HistoryData": h.data,
            })
        })
        .collect();
    let mut out = json!({"AlarmHistoryItems": page});
    if offset + max < total {
        out["NextToken"] = json!(token(offset + max));
    }
    Ok(out)
}

/// The alarms CloudWatch's Kinesis guidance recommends for a stream (period 60 s, 1 of 1):
/// iterator age, read and write throttling, put and get success rates.
pub fn install_recommended(
    svc: &Arc<Kinesis>,
    stream: &str,
    actions: &[String],
) -> Result<Vec<String>, CwError> {
    const ALARMS: [(&str, &str, &str, &str, f64, &str); 6] = [
        (
            "IteratorAge",
            "GetRecords.IteratorAgeMilliseconds",
            "Maximum",
            "GreaterThanOrEqualToThreshold",
            60_000.0,
            "breaching",
        ),
        (
            "ReadProvisionedThroughputExceeded",
            "ReadProvisionedThroughputExceeded",
            "Average",
            "GreaterThanOrEqualToThreshold",
            0.01,
            "breaching",
        ),
        (
            "WriteProvisionedThroughputExceeded",
            "WriteProvisionedThroughputExceeded",
            "Average",
            "GreaterThanOrEqualToThreshold",
            0.01,
            "breaching",
        ),
        (
            "PutRecordSuccess",
            "PutRecord.Success",
            "Average",
            "LessThanOrEqualToThreshold",
            0.95,
            "notBreaching",
        ),
        (
            "PutRecordsSuccess",
            "PutRecords.Success",
            "Average",
            "LessThanOrEqualToThreshold",
            0.95,
            "notBreaching",
        ),
        (
            "GetRecordsSuccess",
            "GetRecords.Success",
            "Average",
            "LessThanOrEqualToThreshold",
            0.98,
            "breaching",
        ),
    ];
    let mut names = Vec::new();
    for (suffix, metric, stat, op, threshold, missing) in ALARMS {
        let name = format!("{stream}-{suffix}");
        let input = json!({
            "AlarmName": name,
            "AlarmDescription": format!("Recommended Kinesis alarm: {metric} {stat} {op} {threshold}"),
            "Namespace": "AWS/Kinesis",
            "MetricName": metric,
            "Dimensions": [{"Name": "StreamName", "Value": stream}],
            "Statistic": stat,
            "Period": 60,
            "EvaluationPeriods": 1,
            "DatapointsToAlarm": 1,
            "Threshold": threshold,
            "ComparisonOperator": op,
            "TreatMissingData": missing,
            "AlarmActions": actions,
            "OKActions": actions,
        });
        put_metric_alarm(svc, In(&input), &input)?;
        names.push(name);
    }
    Ok(names)
}
