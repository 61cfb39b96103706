//! `/alerts/...`: alert rules and silences (list, create, change, delete),
//! the alerts firing and pending now, and the history of firing and
//! resolved alerts. Kept in the cluster metadata (`metadata::alerts`), so
//! any broker's console serves the same; evaluated by the active
//! controller (`console::alerts`).
//!
//! Authorized as Kafka authorizes cluster-wide admin: reading needs
//! DESCRIBE on the CLUSTER, changing needs ALTER on it. The check asks
//! the broker over the Kafka protocol, as the session's principal, which
//! cluster operations it may perform (DescribeCluster with
//! `include_cluster_authorized_operations`), so ACLs, super users and
//! `allow_everyone_if_no_acl_found` apply exactly as to any client.

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::super::alerts::{self as engine, Alerts};
use super::super::error::{kafka_code, status_of, ApiError};
use super::super::router::{ApiResult, Reply};
use super::super::{done, ok, Call};
use crate::acl::Operation;
use crate::metadata::alerts::{
    AlertCommand, AlertKind, AlertRule, AlertsState, Severity, Silence, MAX_HISTORY,
};
use crate::metadata::MetadataCommand;
use crate::ops::time::{now_ms, parse_time};
use crate::quorum::core::ProposeError;

fn alerts() -> Result<std::sync::Arc<Alerts>, ApiError> {
    engine::get().ok_or_else(|| {
        ApiError::new(
            503,
            "alerting starts once the cluster metadata is open; try again shortly",
        )
    })
}

/// 403 unless the call's principal may perform `op` on the cluster.
fn authorize(c: &Call, op: Operation) -> Result<(), ApiError> {
    use kafka_protocol::messages::DescribeClusterRequest;
    let bits = c.kafka(|client| {
        let req =
            DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
        let (resp, _) = client.admin_conn()?.send(&req)?;
        Ok(resp.cluster_authorized_operations)
    })?;
    if bits != i32::MIN && bits & (1 << op.code()) == 0 {
        return Err(ApiError::new(
            403,
            format!(
                "CLUSTER_AUTHORIZATION_FAILED: {} may not {} the cluster, which alerts need",
                c.principal(),
                op.name()
            ),
        )
        .with_code("CLUSTER_AUTHORIZATION_FAILED"));
    }
    Ok(())
}

/// Commit `cmd` to the metadata; a refusal keeps its Kafka error name.
fn execute(a: &Alerts, cmd: AlertCommand) -> Result<(), ApiError> {
    let result = futures::executor::block_on(a.metadata.execute(MetadataCommand::Alerts(cmd)));
    match result {
        Ok(_) => Ok(()),
        Err(ProposeError::Rejected(m)) => {
            let code = kafka_code(&m).map(str::to_string);
            let status = code.as_deref().map_or(400, status_of);
            let mut e = ApiError::new(status, m);
            e.code = code;
            Err(e)
        }
        Err(e) => {
            Err(ApiError::new(503, format!("the change was not made: {e}"))
                .with_code("NOT_CONTROLLER"))
        }
    }
}

fn state(a: &Alerts) -> std::sync::Arc<crate::metadata::ClusterState> {
    a.metadata.snapshot()
}

/// A rule as the API takes it; omitted fields take their defaults.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleInput {
    name: Option<String>,
    kind: String,
    group: Option<String>,
    topic: Option<String>,
    api: Option<String>,
    threshold: Option<f64>,
    for_ms: Option<u64>,
    severity: Option<String>,
    webhooks: Option<Vec<String>>,
    enabled: Option<bool>,
    description: Option<String>,
}

fn rule_of(v: Value, name: Option<&str>) -> Result<AlertRule, ApiError> {
    let r: RuleInput =
        serde_json::from_value(v).map_err(|e| ApiError::bad(format!("bad alert rule: {e}")))?;
    let name = match (name, r.name) {
        (Some(path), Some(body)) if path != body => {
            return Err(ApiError::bad(format!(
                "the body names rule {body:?} but the path {path:?}; a rule cannot be renamed"
            )))
        }
        (Some(path), _) => path.to_string(),
        (None, Some(body)) => body,
        (None, None) => return Err(ApiError::bad("an alert rule needs a name")),
    };
    let kind = AlertKind::parse(&r.kind).ok_or_else(|| {
        let all: Vec<&str> = AlertKind::ALL.iter().map(|k| k.name()).collect();
        ApiError::bad(format!(
            "unknown alert kind {:?}; one of {}",
            r.kind,
            all.join(", ")
        ))
        .with_code("INVALID_REQUEST")
    })?;
    let severity = match r.severity.as_deref() {
        None => Severity::Warning,
        Some(s) => Severity::ALL
            .into_iter()
            .find(|v| v.name() == s)
            .ok_or_else(|| ApiError::bad(format!("severity {s:?}: critical, warning or info")))?,
    };
    let rule = AlertRule {
        name,
        kind,
        group: r.group.filter(|g| !g.is_empty()),
        topic: r.topic.filter(|t| !t.is_empty()),
        api: r.api.filter(|a| !a.is_empty()),
        threshold: r.threshold.unwrap_or(0.0),
        for_ms: r.for_ms.unwrap_or(0),
        severity,
        webhooks: r.webhooks.unwrap_or_default(),
        enabled: r.enabled.unwrap_or(true),
        description: r.description.unwrap_or_default(),
    };
    rule.validate().map_err(|e| {
        let code = kafka_code(&e).map(str::to_string);
        ApiError {
            status: 400,
            error: e,
            code,
        }
    })?;
    Ok(rule)
}

/// The rule's webhooks are all to hosts this broker may send to
/// (`alert_webhook_allowed_hosts`).
fn check_hosts(rule: &AlertRule, a: &Alerts) -> Result<(), ApiError> {
    for w in &rule.webhooks {
        crate::metadata::webhook::check_allowed(w, &a.webhook_hosts).map_err(|e| ApiError {
            status: 400,
            code: kafka_code(&e).map(str::to_string),
            error: e,
        })?;
    }
    Ok(())
}

fn rule_json(r: &AlertRule, s: &AlertsState) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["firing"] = json!(s.active.keys().filter(|(n, _)| *n == r.name).count());
    v
}

fn body_value(c: &Call) -> Result<Value, ApiError> {
    let v: Value = c.body()?;
    if !v.is_object() {
        return Err(ApiError::bad("the body must be a JSON object"));
    }
    Ok(v)
}

pub fn list_rules(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    authorize(c, Operation::Describe)?;
    let s = state(&a);
    let rules: Vec<Value> = s
        .alerts
        .rules
        .values()
        .map(|r| rule_json(r, &s.alerts))
        .collect();
    ok(json!({"rules": rules}))
}

pub fn get_rule(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    authorize(c, Operation::Describe)?;
    let s = state(&a);
    let name = c.param("rule");
    match s.alerts.rules.get(name) {
        Some(r) => ok(rule_json(r, &s.alerts)),
        None => Err(no_rule(name)),
    }
}

fn no_rule(name: &str) -> ApiError {
    ApiError::not_found(format!("RESOURCE_NOT_FOUND: no alert rule {name:?}"))
        .with_code("RESOURCE_NOT_FOUND")
}

pub fn create_rule(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    let rule = rule_of(body_value(c)?, None)?;
    authorize(c, Operation::Alter)?;
    check_hosts(&rule, &a)?;
    execute(
        &a,
        AlertCommand::PutRule {
            rule: rule.clone(),
            create: true,
        },
    )?;
    Ok(Reply::created(rule_json(&rule, &state(&a).alerts)))
}

pub fn replace_rule(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    let name = c.param("rule").to_string();
    let rule = rule_of(body_value(c)?, Some(&name))?;
    authorize(c, Operation::Alter)?;
    check_hosts(&rule, &a)?;
    execute(
        &a,
        AlertCommand::PutRule {
            rule: rule.clone(),
            create: false,
        },
    )?;
    ok(rule_json(&rule, &state(&a).alerts))
}

/// PATCH: the fields given replace the rule's (e.g. `{"enabled": false}`).
pub fn patch_rule(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    let name = c.param("rule").to_string();
    let patch = body_value(c)?;
    authorize(c, Operation::Alter)?;
    let old = state(&a)
        .alerts
        .rules
        .get(&name)
        .cloned()
        .ok_or_else(|| no_rule(&name))?;
    let mut merged: Map<String, Value> = match serde_json::to_value(&old) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    // Only webhooks the patch sets are checked against this broker's
    // allowed hosts: disabling a rule never needs its hosts allowed here.
    let new_hooks = patch.get("webhooks").is_some();
    if let Value::Object(p) = patch {
        merged.extend(p);
    }
    let rule = rule_of(Value::Object(merged), Some(&name))?;
    if new_hooks {
        check_hosts(&rule, &a)?;
    }
    execute(
        &a,
        AlertCommand::PutRule {
            rule: rule.clone(),
            create: false,
        },
    )?;
    ok(rule_json(&rule, &state(&a).alerts))
}

pub fn delete_rule(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    let name = c.param("rule").to_string();
    authorize(c, Operation::Alter)?;
    let at = crate::ops::time::now_ms();
    execute(
        &a,
        AlertCommand::DeleteRule {
            name: name.clone(),
            at,
        },
    )?;
    done(&format!("deleted alert rule {name}"))
}

/// A silence as the API shows it: its fields and its state now. One
/// expired before it started (ends_at == starts_at) is expired, not pending.
fn silence_json(s: &Silence, now: i64) -> Value {
    let state = if s.ends_at <= now || s.ends_at <= s.starts_at {
        "expired"
    } else if s.starts_at > now {
        "pending"
    } else {
        "active"
    };
    let mut v = serde_json::to_value(s).unwrap_or_default();
    v["state"] = json!(state);
    v
}

pub fn list_silences(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    authorize(c, Operation::Describe)?;
    let now = now_ms();
    let s = state(&a);
    let mut list: Vec<&Silence> = s.alerts.silences.values().collect();
    list.sort_by_key(|x| std::cmp::Reverse(x.ends_at));
    ok(json!({"silences": list.iter().map(|x| silence_json(x, now)).collect::<Vec<_>>()}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceInput {
    rule: Option<String>,
    subject: Option<String>,
    /// Epoch ms or ISO 8601; default now.
    starts_at: Option<Value>,
    /// Epoch ms or ISO 8601; or `duration_ms` from the start.
    ends_at: Option<Value>,
    duration_ms: Option<u64>,
    comment: Option<String>,
}

fn time_of(field: &str, v: &Value) -> Result<i64, ApiError> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => parse_time(s).ok(),
        _ => None,
    }
    .filter(|t| *t >= 0)
    .ok_or_else(|| ApiError::bad(format!("{field} must be epoch milliseconds or ISO 8601")))
}

pub fn create_silence(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    let i: SilenceInput = c.body()?;
    let now = now_ms();
    let starts_at = i
        .starts_at
        .as_ref()
        .map_or(Ok(now), |v| time_of("starts_at", v))?;
    let ends_at = match (&i.ends_at, i.duration_ms) {
        (Some(_), Some(_)) => return Err(ApiError::bad("give ends_at or duration_ms, not both")),
        (Some(v), None) => time_of("ends_at", v)?,
        (None, Some(d)) if d > 0 && d <= 366 * 86_400_000 => starts_at + d as i64,
        (None, Some(_)) => return Err(ApiError::bad("duration_ms must be 1 ms to 366 days")),
        (None, None) => return Err(ApiError::bad("a silence needs ends_at or duration_ms")),
    };
    if ends_at <= now {
        return Err(ApiError::bad("the silence would already be over"));
    }
    authorize(c, Operation::Alter)?;
    let silence = Silence {
        id: uuid::Uuid::new_v4().to_string(),
        rule: i.rule.filter(|r| !r.is_empty()),
        subject: i.subject.filter(|s| !s.is_empty()),
        starts_at,
        ends_at,
        comment: i.comment.unwrap_or_default(),
        created_by: c.principal(),
    };
    execute(&a, AlertCommand::PutSilence(silence.clone())).map_err(|mut e| {
        if e.status == 400 {
            // The metadata's words for the API's fields.
            e.error = e.error.replace("INVALID_REQUEST: ", "");
        }
        e
    })?;
    Ok(Reply::created(silence_json(&silence, now)))
}

/// DELETE a silence: it expires now (and stays listed, as Alertmanager's).
pub fn expire_silence(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    let id = c.param("silence").to_string();
    authorize(c, Operation::Alter)?;
    execute(
        &a,
        AlertCommand::ExpireSilence {
            id: id.clone(),
            at: now_ms(),
        },
    )?;
    done(&format!("silence {id} expired"))
}

pub fn history(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    let limit = c.query_as::<usize>("limit")?.unwrap_or(100);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(ApiError::bad(format!("limit must be 1 to {MAX_HISTORY}")));
    }
    let rule = c.query("rule").map(str::to_string);
    authorize(c, Operation::Describe)?;
    let s = state(&a);
    let events: Vec<Value> = s
        .alerts
        .history
        .iter()
        .rev()
        .filter(|e| rule.as_deref().is_none_or(|r| e.rule == r))
        .take(limit)
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .collect();
    ok(json!({"events": events, "kept_at_most": MAX_HISTORY}))
}

/// The alerts firing (from the metadata: the same on every broker) and
/// pending (known to the active controller only).
pub fn current(c: &mut Call) -> ApiResult {
    let a = alerts()?;
    authorize(c, Operation::Describe)?;
    let s = state(&a);
    let view = a.metadata.quorum().view();
    let status = a.status.lock().expect("alerts status lock").clone();
    let now = now_ms();
    let firing: Vec<Value> = s
        .alerts
        .active
        .values()
        .map(|x| {
            let mut v = serde_json::to_value(x).unwrap_or_default();
            v["silenced_now"] = json!(s.alerts.silenced_by(&x.rule, &x.subject, now).is_some());
            v
        })
        .collect();
    let pending = status.evaluating.then(|| {
        status
            .pending
            .iter()
            .map(|(rule, subject, since, value)| {
                json!({"rule": rule, "subject": subject, "since": since,
                       "value": value.is_finite().then_some(*value)})
            })
            .collect::<Vec<_>>()
    });
    ok(json!({
        "controller": view.leader,
        "this_node": a.node_id,
        "evaluated_here": status.evaluating,
        "last_evaluation": status.last_round_ms,
        "interval_ms": a.interval.as_millis() as u64,
        "firing": firing,
        "pending": pending,
        "problems": status.problems,
        "message": if status.evaluating { Value::Null } else {
            json!(format!("alerts are evaluated by the active controller (node {}); pending alerts are shown on its console",
                view.leader.map_or("unknown".into(), |l| l.to_string())))
        },
    }))
}

/// The kinds, with what each watches: the UI builds its form from this.
pub fn kinds(_c: &mut Call) -> ApiResult {
    let kinds: Vec<Value> = AlertKind::ALL
        .iter()
        .map(|k| {
            let (unit, filters, what) = match k {
                AlertKind::ConsumerLag => (
                    "messages",
                    vec!["group", "topic"],
                    "a group's lag, summed over its partitions",
                ),
                AlertKind::ConsumerLagSeconds => (
                    "seconds",
                    vec!["group", "topic"],
                    "age of a group's oldest unconsumed message",
                ),
                AlertKind::UnderReplicatedPartitions => (
                    "partitions",
                    vec!["topic"],
                    "partitions with fewer in-sync replicas than replicas",
                ),
                AlertKind::OfflinePartitions => {
                    ("partitions", vec!["topic"], "partitions without a leader")
                }
                AlertKind::BrokerDown => ("", vec![], "a broker fenced or gone (threshold 0)"),
                AlertKind::DiskFreeBytes => (
                    "bytes",
                    vec![],
                    "free bytes of a broker's log dir, fires below",
                ),
                AlertKind::DiskFreePercent => (
                    "percent",
                    vec![],
                    "free space of a broker's log dir, fires below",
                ),
                AlertKind::ProduceErrorRate => (
                    "errors/s",
                    vec![],
                    "produce errors per second (the controller's own)",
                ),
                AlertKind::FetchErrorRate => (
                    "errors/s",
                    vec![],
                    "fetch errors per second (the controller's own)",
                ),
                AlertKind::RequestP99Ms => (
                    "ms",
                    vec!["api"],
                    "p99 request latency per API (the controller's own)",
                ),
            };
            json!({"kind": k.name(), "unit": unit, "filters": filters, "description": what,
                   "fires_below": k.fires_below()})
        })
        .collect();
    ok(json!({"kinds": kinds}))
}
