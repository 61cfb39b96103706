//! Topics: list (size, partitions, retention), create, describe (per
//! partition leader, replicas, ISR, log start/end offsets, size), delete,
//! add partitions, configs and config edits.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};
use shardline_client::Client;

use super::super::error::ApiError;
use super::super::router::{ApiResult, Reply};
use super::super::{done, ok, Call};
use crate::ops::topics::{self as ops, RESOURCE_TOPIC};

/// Kafka's rule for topic names: at most 249 of `[a-zA-Z0-9._-]`, not `.`
/// or `..`.
pub fn topic_name(v: &str) -> Result<(), ApiError> {
    super::name("topic", v)?;
    if v == "." || v == ".." {
        return Err(ApiError::bad("topic must not be '.' or '..'"));
    }
    if let Some(c) = v
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(ApiError::bad(format!(
            "topic {v:?} has {c:?}: names are letters, digits, '.', '_' and '-'"
        ))
        .with_code("INVALID_TOPIC_EXCEPTION"));
    }
    Ok(())
}

/// Bytes per (topic, partition) over every broker, as far as the caller
/// may see them: `None` when no broker answered DescribeLogDirs (it needs
/// DESCRIBE on the cluster).
fn sizes(client: &mut Client) -> Option<BTreeMap<(String, i32), i64>> {
    let mut out: Option<BTreeMap<(String, i32), i64>> = None;
    let ids = client.broker_ids();
    for id in ids {
        if let Ok(d) = ops::log_dirs(client, id) {
            let out = out.get_or_insert_with(BTreeMap::new);
            for (k, v) in d.sizes {
                // Replicas hold the same bytes: show the largest copy.
                let e = out.entry(k).or_insert(0);
                *e = v.max(*e);
            }
        }
    }
    out
}

pub fn list(c: &mut Call) -> ApiResult {
    let internal = c.query_as::<bool>("internal")?.unwrap_or(false);
    c.kafka(|client| {
        let topics = ops::list(client, internal)?;
        let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
        let retention = ops::configs_of(
            client,
            &names,
            &["retention.ms", "retention.bytes", "cleanup.policy"],
        )?;
        let sizes = sizes(client);
        let rows: Vec<Value> = topics
            .iter()
            .map(|t| {
                let conf = retention.get(&t.name);
                let get = |k: &str| conf.and_then(|m| m.get(k).cloned().flatten());
                let size: Option<i64> = sizes.as_ref().map(|m| {
                    m.iter()
                        .filter(|((n, _), _)| n == &t.name)
                        .map(|(_, v)| *v)
                        .sum()
                });
                json!({
                    "name": t.name,
                    "internal": t.internal,
                    "partitions": t.partitions,
                    "replication_factor": t.replication_factor,
                    "size_bytes": size,
                    "retention_ms": get("retention.ms").and_then(|v| v.parse::<i64>().ok()),
                    "retention_bytes": get("retention.bytes").and_then(|v| v.parse::<i64>().ok()),
                    "cleanup_policy": get("cleanup.policy"),
                })
            })
            .collect();
        Ok(json!({"topics": rows}))
    })
    .and_then(ok)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTopic {
    name: String,
    partitions: Option<i32>,
    replication_factor: Option<i16>,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

pub fn create(c: &mut Call) -> ApiResult {
    let t: NewTopic = c.body()?;
    topic_name(&t.name)?;
    if t.partitions.is_some_and(|p| p < 1) {
        return Err(ApiError::bad("partitions must be at least 1").with_code("INVALID_PARTITIONS"));
    }
    if t.replication_factor.is_some_and(|r| r < 1) {
        return Err(ApiError::bad("replication_factor must be at least 1")
            .with_code("INVALID_REPLICATION_FACTOR"));
    }
    let configs: Vec<(String, String)> = t.configs.into_iter().collect();
    c.kafka(|client| {
        Ok(ops::create(
            client,
            &t.name,
            t.partitions,
            t.replication_factor,
            &configs,
        )?)
    })?;
    Ok(Reply::created(json!({"ok": true, "name": t.name})))
}

pub fn describe(c: &mut Call) -> ApiResult {
    let name = c.param("topic").to_string();
    topic_name(&name)?;
    c.kafka(|client| {
        let d = ops::describe(client, &name)?;
        let configs = ops::configs(client, RESOURCE_TOPIC, &name)?;
        let sizes = sizes(client);
        let partitions: Vec<Value> = d
            .partitions
            .iter()
            .map(|p| {
                json!({
                    "partition": p.partition,
                    "leader": p.leader,
                    "replicas": p.replicas,
                    "isr": p.isr,
                    "under_replicated": p.isr.len() < p.replicas.len(),
                    "log_start_offset": d.log_start.get(&p.partition),
                    "log_end_offset": d.log_end.get(&p.partition),
                    "size_bytes": sizes.as_ref().map(|m| m.get(&(name.clone(), p.partition)).copied().unwrap_or(0)),
                    "error": (p.error != 0).then(|| shardline_client::error_name(p.error)),
                })
            })
            .collect();
        let overrides: BTreeMap<String, Option<String>> = configs
            .into_iter()
            .filter(|c| c.is_override)
            .map(|c| (c.name, c.value))
            .collect();
        Ok(json!({
            "name": name,
            "topic_id": d.topic_id,
            "partitions": partitions,
            "config_overrides": overrides,
        }))
    })
    .and_then(ok)
}

pub fn delete(c: &mut Call) -> ApiResult {
    let name = c.param("topic").to_string();
    topic_name(&name)?;
    c.kafka(|client| Ok(ops::delete(client, &name)?))?;
    done(&format!("deleted topic {name}"))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPartitions {
    count: i32,
}

pub fn add_partitions(c: &mut Call) -> ApiResult {
    let name = c.param("topic").to_string();
    topic_name(&name)?;
    let body: AddPartitions = c.body()?;
    if body.count < 1 {
        return Err(ApiError::bad("count (the new total) must be at least 1")
            .with_code("INVALID_PARTITIONS"));
    }
    c.kafka(|client| Ok(ops::add_partitions(client, &name, body.count)?))?;
    done(&format!("topic {name} now has {} partitions", body.count))
}

pub fn configs(c: &mut Call) -> ApiResult {
    let name = c.param("topic").to_string();
    topic_name(&name)?;
    c.kafka(|client| {
        let entries: Vec<Value> = ops::configs(client, RESOURCE_TOPIC, &name)?
            .into_iter()
            .map(|e| {
                json!({
                    "name": e.name,
                    "value": e.value,
                    "override": e.is_override,
                    "sensitive": e.sensitive,
                    "read_only": e.read_only,
                })
            })
            .collect();
        Ok(json!({"name": name, "configs": entries}))
    })
    .and_then(ok)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigEdit {
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

pub fn alter_configs(c: &mut Call) -> ApiResult {
    let name = c.param("topic").to_string();
    topic_name(&name)?;
    let edit: ConfigEdit = c.body()?;
    if edit.set.is_empty() && edit.delete.is_empty() {
        return Err(ApiError::bad(
            "give configs to set ({\"set\": {k: v}}) or delete ({\"delete\": [k]})",
        ));
    }
    if let Some(k) = edit.delete.iter().find(|k| edit.set.contains_key(*k)) {
        return Err(ApiError::bad(format!("{k} is both set and deleted")));
    }
    let changes: Vec<(String, Option<String>)> = edit
        .set
        .into_iter()
        .map(|(k, v)| (k, Some(v)))
        .chain(edit.delete.into_iter().map(|k| (k, None)))
        .collect();
    c.kafka(|client| Ok(ops::alter_configs(client, &name, &changes)?))?;
    done(&format!("configs of {name} changed"))
}
