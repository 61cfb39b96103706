//! Consumer groups: list, describe (state, protocol, members and their
//! assignments, committed offsets and lag per partition), delete, reset
//! offsets (a preview, then apply; refused while members are active, as
//! the CLI and Kafka's tool refuse), and the lag history.

use serde::Deserialize;
use serde_json::{json, Value};

use super::super::error::ApiError;
use super::super::router::ApiResult;
use super::super::{done, ok, Call};
use super::topics::topic_name;
use crate::ops::groups::{self as ops, decode_assignment, Target};
use crate::ops::time::parse_time;

fn group_of(c: &Call) -> Result<String, ApiError> {
    let g = c.param("group").to_string();
    super::name("group", &g)?;
    Ok(g)
}

pub fn list(c: &mut Call) -> ApiResult {
    c.kafka(|client| {
        let groups: Vec<Value> = ops::list_groups(client)?
            .into_iter()
            .map(|g| json!({"group": g.group, "state": g.state, "protocol_type": g.protocol_type}))
            .collect();
        Ok(json!({"groups": groups}))
    })
    .and_then(ok)
}

pub fn describe(c: &mut Call) -> ApiResult {
    let group = group_of(c)?;
    c.kafka(|client| {
        let d = ops::describe(client, &group)?;
        let g = &d.group;
        if g.group_state.as_str() == "Dead" && g.members.is_empty() && d.rows.is_empty() {
            return Err(ApiError::not_found(format!("group {group} does not exist"))
                .with_code("GROUP_ID_NOT_FOUND"));
        }
        let members: Vec<Value> = g
            .members
            .iter()
            .map(|m| {
                let assigned: Vec<Value> = if g.protocol_type.as_str() == "consumer" {
                    decode_assignment(&m.member_assignment)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(t, p)| json!({"topic": t, "partition": p}))
                        .collect()
                } else {
                    Vec::new()
                };
                json!({
                    "member_id": m.member_id.to_string(),
                    "group_instance_id": m.group_instance_id.as_ref().map(|s| s.to_string()),
                    "client_id": m.client_id.to_string(),
                    "host": m.client_host.to_string(),
                    "assignment": assigned,
                })
            })
            .collect();
        let offsets: Vec<Value> = d
            .rows
            .iter()
            .map(|r| {
                json!({
                    "topic": r.topic,
                    "partition": r.partition,
                    "committed_offset": r.committed,
                    "log_end_offset": r.log_end,
                    "lag": r.lag,
                    "member_id": r.member.map(|i| g.members[i].member_id.to_string()),
                })
            })
            .collect();
        let total: i64 = d.rows.iter().filter_map(|r| r.lag).sum();
        Ok(json!({
            "group": group,
            "state": g.group_state.to_string(),
            "protocol_type": g.protocol_type.to_string(),
            "protocol": g.protocol_data.to_string(),
            "members": members,
            "offsets": offsets,
            "total_lag": total,
            "warnings": d.warnings,
        }))
    })
    .and_then(ok)
}

pub fn delete(c: &mut Call) -> ApiResult {
    let group = group_of(c)?;
    c.kafka(|client| Ok(ops::delete(client, &group)?))?;
    done(&format!("deleted group {group}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicSpec {
    topic: String,
    partitions: Option<Vec<i32>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Reset {
    #[serde(default)]
    topics: Vec<TopicSpec>,
    #[serde(default)]
    all_topics: bool,
    /// earliest, latest, offset, time or shift.
    to: String,
    offset: Option<i64>,
    /// Epoch ms (a number) or ISO8601 (a string).
    time: Option<Value>,
    shift: Option<i64>,
    #[serde(default)]
    apply: bool,
}

fn target_of(r: &Reset) -> Result<Target, ApiError> {
    let need = |what: &str| ApiError::bad(format!("to = {:?} needs {what}", r.to));
    Ok(match r.to.as_str() {
        "earliest" => Target::Earliest,
        "latest" => Target::Latest,
        "offset" => {
            let o = r.offset.ok_or_else(|| need("offset"))?;
            if o < 0 {
                return Err(ApiError::bad("offset must be 0 or more"));
            }
            Target::Offset(o)
        }
        "time" => Target::Time(match r.time.as_ref().ok_or_else(|| need("time"))? {
            Value::Number(n) => n
                .as_i64()
                .filter(|t| *t >= 0)
                .ok_or_else(|| ApiError::bad("time must be epoch ms, 0 or more"))?,
            Value::String(s) => parse_time(s).map_err(|e| ApiError::bad(format!("time: {e}")))?,
            _ => return Err(ApiError::bad("time is epoch ms or an ISO8601 string")),
        }),
        "shift" => Target::Shift(r.shift.ok_or_else(|| need("shift"))?),
        other => {
            return Err(ApiError::bad(format!(
                "to = {other:?}: earliest, latest, offset, time or shift"
            )))
        }
    })
}

pub fn reset_offsets(c: &mut Call) -> ApiResult {
    let group = group_of(c)?;
    let r: Reset = c.body()?;
    let target = target_of(&r)?;
    if r.topics.is_empty() && !r.all_topics {
        return Err(ApiError::bad(
            "give topics ([{\"topic\": ..., \"partitions\": [...]}]) or all_topics: true",
        ));
    }
    for t in &r.topics {
        topic_name(&t.topic)?;
        if t.partitions
            .as_ref()
            .is_some_and(|ps| ps.is_empty() || ps.iter().any(|p| *p < 0))
        {
            return Err(ApiError::bad(format!(
                "partitions of {}: a non-empty list of partition numbers",
                t.topic
            )));
        }
    }
    let specs: Vec<(String, Option<Vec<i32>>)> = r
        .topics
        .iter()
        .map(|t| (t.topic.clone(), t.partitions.clone()))
        .collect();
    c.kafka(|client| {
        let plan = ops::plan_reset(client, &group, &specs, r.all_topics, target)?;
        if r.apply {
            ops::refuse_active(&group, &plan)?;
            ops::apply_reset(client, &group, &plan)?;
        }
        let rows: Vec<Value> = plan
            .rows
            .iter()
            .flat_map(|(t, rows)| {
                rows.iter().map(move |row| {
                    json!({
                        "topic": t,
                        "partition": row.partition,
                        "current_offset": row.current,
                        "new_offset": row.new,
                    })
                })
            })
            .collect();
        Ok(json!({
            "group": group,
            "state": plan.state,
            "can_apply": plan.inactive,
            "applied": r.apply,
            "partitions": rows,
        }))
    })
    .and_then(ok)
}

/// The group's lag over time, from this broker's history (sampled while
/// the group is among those it follows). Asks the coordinator first, so a
/// caller who may not DESCRIBE the group gets its 403, not its history.
pub fn lag_history(c: &mut Call) -> ApiResult {
    let group = group_of(c)?;
    let since = c.query_as::<i64>("since")?.unwrap_or(0);
    c.kafka(|client| Ok(ops::describe_group(client, &group)?))?;
    let prefix = super::super::history::lag_series_prefix(&group);
    let series = c.console.history.matching(&prefix, since);
    ok(json!({
        "group": group,
        "resolution_s": super::super::history::STEP.as_secs(),
        "series": series,
    }))
}
