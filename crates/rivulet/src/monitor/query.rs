//! Reading the store back as CloudWatch does: one statistic per period over a time range
//! (GetMetricStatistics, alarms), and GetMetricData's queries, metric-math expressions
//! included.

use std::collections::HashMap;

use super::agg::Agg;
use super::expr::{self, TimeSeries, Value};
use super::store::{MetricStore, SeriesKey};

/// Most datapoints one query may return (CloudWatch's limit for GetMetricStatistics).
pub const DATAPOINTS_MAX: i64 = 1440;
/// Most datapoints GetMetricData returns over all its queries in one call.
pub const METRIC_DATA_POINTS_MAX: usize = 100_800;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Stat {
    SampleCount,
    Average,
    Sum,
    Minimum,
    Maximum,
    Percentile(f64),
}

impl Stat {
    pub fn parse(s: &str) -> Option<Stat> {
        Some(match s {
            "SampleCount" => Stat::SampleCount,
            "Average" => Stat::Average,
            "Sum" => Stat::Sum,
            "Minimum" => Stat::Minimum,
            "Maximum" => Stat::Maximum,
            _ => {
                let p: f64 = s.strip_prefix('p')?.parse().ok()?;
                let two_decimals = s.split('.').nth(1).is_none_or(|d| d.len() <= 2);
                if !(0.0..=100.0).contains(&p) || !two_decimals || s.contains(['e', 'E', '+', '-'])
                {
                    return None;
                }
                Stat::Percentile(p)
            }
        })
    }

    pub fn of(&self, a: &Agg) -> Option<f64> {
        Some(match self {
            Stat::SampleCount => a.count,
            Stat::Average => a.average(),
            Stat::Sum => a.sum,
            Stat::Minimum => a.min,
            Stat::Maximum => a.max,
            Stat::Percentile(p) => a.percentile(*p)?,
        })
    }
}

/// `(period start in seconds, aggregate)`, ascending.
pub type Periods = Vec<(i64, Agg)>;

/// Per-period aggregates of a metric, one list per unit its data came in (only `unit`'s
/// when given): `(period start in seconds, aggregate)`, ascending; periods without data are
/// absent.
pub fn periods_by_unit(
    store: &MetricStore,
    key: &SeriesKey,
    unit: Option<&str>,
    start_s: i64,
    end_s: i64,
    period_s: i64,
) -> Result<Vec<(String, Periods)>, String> {
    let series: Vec<_> = store
        .lookup(key)
        .into_iter()
        .filter(|s| unit.is_none_or(|u| u == s.unit))
        .collect();
    if series.is_empty() {
        return Ok(Vec::new());
    }
    let first = start_s - start_s.rem_euclid(period_s);
    let ids: Vec<u32> = series.iter().map(|s| s.id).collect();
    let mut points = store
        .fetch(&ids, first * 1000, end_s * 1000)
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for s in series {
        let mut list: Vec<(i64, Agg)> = Vec::new();
        for p in points.remove(&s.id).unwrap_or_default() {
            let t = p.start_ms.div_euclid(1000);
            let slot = t - (t - first).rem_euclid(period_s);
            match list.last_mut() {
                Some((at, agg)) if *at == slot => agg.merge(&p.agg),
                _ => list.push((slot, p.agg)),
            }
        }
        if !list.is_empty() {
            out.push((s.unit, list));
        }
    }
    Ok(out)
}

/// Per-period aggregates of a metric with the data of every unit (or only `unit`'s) merged.
pub fn periods(
    store: &MetricStore,
    key: &SeriesKey,
    unit: Option<&str>,
    start_s: i64,
    end_s: i64,
    period_s: i64,
) -> Result<Vec<(i64, Agg)>, String> {
    let mut merged: std::collections::BTreeMap<i64, Agg> = Default::default();
    for (_, list) in periods_by_unit(store, key, unit, start_s, end_s, period_s)? {
        for (t, a) in list {
            merged.entry(t).and_modify(|m| m.merge(&a)).or_insert(a);
        }
    }
    Ok(merged.into_iter().collect())
}

/// One GetMetricData query.
#[derive(Debug, Clone)]
pub struct Query {
    pub id: String,
    pub metric: Option<MetricStat>,
    pub expression: Option<String>,
    pub label: Option<String>,
    pub return_data: bool,
    pub period_s: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct MetricStat {
    pub key: SeriesKey,
    pub period_s: i64,
    pub stat: Stat,
    pub unit: Option<String>,
}

#[derive(Debug, Clone)]
pub struct QueryResult {
    pub id: String,
    pub label: String,
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    pub complete: bool,
    pub message: Option<String>,
}

struct Env<'a> {
    results: &'a HashMap<String, Value>,
    metric_ids: Vec<String>,
    grid: Vec<i64>,
    period_s: i64,
}

impl expr::Env for Env<'_> {
    fn series(&self, id: &str) -> Option<Value> {
        self.results.get(id).cloned()
    }
    fn metric_ids(&self) -> Vec<String> {
        self.metric_ids.clone()
    }
    fn grid(&self) -> Vec<i64> {
        self.grid.clone()
    }
    fn period_seconds(&self) -> i64 {
        self.period_s
    }
}

/// Runs GetMetricData queries over `[start_s, end_s)`. Expressions may refer to any query
/// by id, in any order; a cycle or an unknown id is an error of the whole call, as in
/// CloudWatch (ValidationError). Results come back in request order, `ReturnData` ones only.
pub fn metric_data(
    store: &MetricStore,
    queries: &[Query],
    start_s: i64,
    end_s: i64,
) -> Result<Vec<QueryResult>, String> {
    let mut results: HashMap<String, Value> = HashMap::new();
    let metric_ids: Vec<String> = queries
        .iter()
        .filter(|q| q.metric.is_some())
        .map(|q| q.id.clone())
        .collect();
    for q in queries
        .iter()
        .filter_map(|q| q.metric.as_ref().map(|m| (q, m)))
    {
        let (q, m) = q;
        let points = periods(store, &m.key, m.unit.as_deref(), start_s, end_s, m.period_s)?;
        let (timestamps, values) = points
            .iter()
            .filter_map(|(t, a)| m.stat.of(a).map(|v| (*t, v)))
            .unzip();
        let label = q.label.clone().unwrap_or_else(|| m.key.name.clone());
        results.insert(
            q.id.clone(),
            Value::Series(TimeSeries {
                label,
                timestamps,
                values,
            }),
        );
    }
    // Expressions in dependency order: repeat passes until nothing more resolves.
    let mut parsed: Vec<(&Query, expr::Expr)> = Vec::new();
    for q in queries {
        if let Some(text) = &q.expression {
            let e =
                expr::parse(text).map_err(|m| format!("Error in expression '{}': {m}", q.id))?;
            parsed.push((q, e));
        }
    }
    let period_s = queries
        .iter()
        .filter_map(|q| q.metric.as_ref().map(|m| m.period_s).or(q.period_s))
        .min()
        .unwrap_or(60);
    let first = start_s - start_s.rem_euclid(period_s);
    let grid: Vec<i64> = (0..)
        .map(|k| first + k * period_s)
        .take_while(|t| *t < end_s)
        .take(METRIC_DATA_POINTS_MAX)
        .collect();
    while !parsed.is_empty() {
        let before = parsed.len();
        let mut waiting = Vec::new();
        for (q, e) in parsed {
            let ready = e.ids().iter().all(|id| results.contains_key(id))
                && (!e.uses_metrics_fn() || metric_ids.iter().all(|id| results.contains_key(id)));
            if !ready {
                waiting.push((q, e));
                continue;
            }
            let env = Env {
                results: &results,
                metric_ids: metric_ids.clone(),
                grid: grid.clone(),
                period_s,
            };
            let v =
                expr::eval(&e, &env).map_err(|m| format!("Error in expression '{}': {m}", q.id))?;
            results.insert(q.id.clone(), v);
        }
        if waiting.len() == before {
            let ids: Vec<&str> = waiting.iter().map(|(q, _)| q.id.as_str()).collect();
            return Err(format!(
                "Expressions {ids:?} refer to unknown ids or to each other in a cycle"
            ));
        }
        parsed = waiting;
    }
    let mut out = Vec::new();
    for q in queries.iter().filter(|q| q.return_data) {
        let label = q.label.clone();
        match results.remove(&q.id) {
            Some(Value::Series(s)) => {
                let label = label.unwrap_or_else(|| match q.metric {
                    Some(_) => s.label.clone(),
                    None => q.id.clone(),
                });
                out.push(result(q, label, s))
            }
            Some(Value::Scalar(v)) => {
                // A scalar is a value at every period of the grid.
                let s = TimeSeries {
                    label: q.id.clone(),
                    timestamps: grid.clone(),
                    values: vec![v; grid.len()],
                };
                out.push(result(q, label.unwrap_or(q.id.clone()), s));
            }
            Some(Value::Array(list)) => {
                // An array result (e.g. RATE(METRICS())) gives one result per element, each
                // with the id of the expression.
                for s in list {
                    let label = label.clone().unwrap_or(s.label.clone());
                    out.push(result(q, label, s));
                }
            }
            None => {}
        }
    }
    Ok(out)
}

fn result(q: &Query, label: String, s: TimeSeries) -> QueryResult {
    QueryResult {
        id: q.id.clone(),
        label,
        timestamps: s.timestamps,
        values: s.values,
        complete: true,
        message: None,
    }
}
