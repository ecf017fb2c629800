//! PutDashboard, GetDashboard, ListDashboards, DeleteDashboards. Bodies are checked against
//! CloudWatch's widget format: errors refuse the dashboard, questionable but usable parts
//! come back as DashboardValidationMessages.

use std::sync::Arc;

use serde_json::{Value, json};

use super::CwError;
use super::ops::In;
use crate::service::Kinesis;

/// Largest dashboard body CloudWatch accepts.
const BODY_BYTES_MAX: usize = 1 << 20;
const WIDGETS_MAX: usize = 500;
const WIDGET_TYPES: [&str; 7] = [
    "metric",
    "text",
    "alarm",
    "log",
    "explorer",
    "custom",
    "dashboard",
];
const PAGE: usize = 1000;

fn invalid_input(message: String, messages: Vec<Value>) -> CwError {
    let _ = messages;
    CwError {
        shape: "DashboardInvalidInputError",
        code: "InvalidParameterInput",
        status: 400,
        message,
    }
}

fn check_name(name: &str) -> Result<(), CwError> {
    let ok = !name.is_empty()
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(CwError::invalid(format!(
            "The value {name} for parameter DashboardName is not valid: use 1 to 255 letters, digits, dashes and underscores."
        )))
    }
}

/// Checks a body; returns warnings, or the error that refuses it.
fn validate(body: &str) -> Result<Vec<Value>, CwError> {
    let bad = |path: &str, msg: &str| {
        let m = json!({"DataPath": path, "Message": msg});
        invalid_input(format!("The field {path} is invalid: {msg}"), vec![m])
    };
    if body.len() > BODY_BYTES_MAX {
        return Err(bad("/", "the dashboard body must be at most 1 MB"));
    }
    let v: Value =
        serde_json::from_str(body).map_err(|e| bad("/", &format!("not valid JSON: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| bad("/", "the dashboard body must be a JSON object"))?;
    let widgets = match obj.get("widgets") {
        Some(Value::Array(w)) => w,
        Some(_) => return Err(bad("/widgets", "should be an array")),
        None => return Err(bad("/", "should have required property 'widgets'")),
    };
    if widgets.len() > WIDGETS_MAX {
        return Err(bad("/widgets", "a dashboard holds at most 500 widgets"));
    }
    let mut warnings = Vec::new();
    for (n, w) in widgets.iter().enumerate() {
        let path = format!("/widgets/{n}");
        let w = w
            .as_object()
            .ok_or_else(|| bad(&path, "should be an object"))?;
        let kind = w
            .get("type")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(&path, "should have required property 'type'"))?;
        if !WIDGET_TYPES.contains(&kind) {
            return Err(bad(
                &format!("{path}/type"),
                &format!("should be one of {WIDGET_TYPES:?}"),
            ));
        }
        for (k, lo, hi) in [
            ("x", 0, 23),
            ("y", 0, i64::MAX),
            ("width", 1, 24),
            ("height", 1, 1000),
        ] {
            if let Some(v) = w.get(k) {
                let ok = v.as_i64().is_some_and(|i| (lo..=hi).contains(&i));
                if !ok {
                    return Err(bad(
                        &format!("{path}/{k}"),
                        &format!("should be an integer from {lo} to {hi}"),
                    ));
                }
            }
        }
        let props = w.get("properties");
        let has = |k: &str| props.and_then(|p| p.get(k));
        match kind {
            "text" if has("markdown").and_then(Value::as_str).is_none() => {
                return Err(bad(
                    &format!("{path}/properties"),
                    "should have required property 'markdown'",
                ));
            }
            "metric" => {
                let p = props
                    .ok_or_else(|| bad(&path, "should have required property 'properties'"))?;
                let has_metrics = p.get("metrics").is_some_and(Value::is_array);
                let has_alarm = p.get("annotations").and_then(|a| a.get("alarms")).is_some();
                if !has_metrics && !has_alarm {
                    return Err(bad(
                        &format!("{path}/properties"),
                        "should have required property 'metrics'",
                    ));
                }
                if p.get("region").is_none() {
                    warnings.push(json!({"DataPath": format!("{path}/properties/region"), "Message": "no region given; the dashboard's region is used"}));
                }
            }
            "alarm" if !has("alarms").is_some_and(Value::is_array) => {
                return Err(bad(
                    &format!("{path}/properties"),
                    "should have required property 'alarms'",
                ));
            }
            _ => {}
        }
    }
    Ok(warnings)
}

pub fn put(svc: &Arc<Kinesis>, i: In<'_>) -> Result<Value, CwError> {
    let name = i.req_str("DashboardName")?;
    check_name(name)?;
    let body = i.req_str("DashboardBody")?;
    let warnings = validate(body)?;
    svc.monitor
        .dashboards
        .put(name, body.to_owned(), svc.now_ms())
        .map_err(CwError::limit)?;
    Ok(json!({"DashboardValidationMessages": warnings}))
}

fn arn(svc: &Kinesis, name: &str) -> String {
    format!(
        "arn:aws:cloudwatch::{}:dashboard/{name}",
        svc.config.account_id
    )
}

pub fn get(svc: &Arc<Kinesis>, i: In<'_>) -> Result<Value, CwError> {
    let name = i.req_str("DashboardName")?;
    let d = svc.monitor.dashboards.get(name).ok_or_else(|| CwError {
        shape: "DashboardNotFoundError",
        code: "ResourceNotFound",
        status: 404,
        message: format!("Dashboard {name} does not exist"),
    })?;
    Ok(json!({"DashboardArn": arn(svc, name), "DashboardBody": d.body, "DashboardName": name}))
}

pub fn list(svc: &Arc<Kinesis>, i: In<'_>) -> Result<Value, CwError> {
    let prefix = i.str("DashboardNamePrefix")?.unwrap_or("");
    let offset = match i.str("NextToken")? {
        None => 0,
        Some(t) => t.parse::<usize>().map_err(|_| CwError::next_token())?,
    };
    let all: Vec<Value> = svc
        .monitor
        .dashboards
        .list()
        .into_iter()
        .filter(|(n, _)| n.starts_with(prefix))
        .map(|(n, d)| {
            json!({
                "DashboardName": n,
                "DashboardArn": arn(svc, &n),
                "LastModified": d.last_modified_ms as f64 / 1000.0,
                "Size": d.body.len(),
            })
        })
        .collect();
    let total = all.len();
    let page: Vec<Value> = all.into_iter().skip(offset).take(PAGE).collect();
    let mut out = json!({"DashboardEntries": page});
    if offset + PAGE < total {
        out["NextToken"] = json!((offset + PAGE).to_string());
    }
    Ok(out)
}

pub fn delete(svc: &Arc<Kinesis>, i: In<'_>) -> Result<Value, CwError> {
    if i.get("DashboardNames").is_none() {
        return Err(CwError::missing("DashboardNames"));
    }
    let names = i.strings("DashboardNames")?;
    match svc
        .monitor
        .dashboards
        .delete(&names)
        .map_err(CwError::internal)?
    {
        Ok(()) => Ok(json!({})),
        Err(missing) => Err(CwError {
            shape: "DashboardNotFoundError",
            code: "ResourceNotFound",
            status: 404,
            message: format!("Dashboard {missing} does not exist"),
        }),
    }
}
