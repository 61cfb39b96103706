//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs.
//!
//! Topic configs are the overrides in the cluster metadata over defaults
//! derived from the broker config (`metadata::topic_config`); changes go
//! through the controller shard, which re-resolves the live logs' settings.
//! Broker configs are static (the config file and flags): they can be
//! described under Kafka's names but not altered.

use crate::acl::model::CLUSTER_NAME;
use crate::acl::{Operation, ResourceType};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{
    alter_configs_response, incremental_alter_configs_response, AlterConfigsRequest,
    AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::config::BrokerConfig;
use crate::controller::{self, AdminError, CONTROLLER_SHARD};
use crate::messages::ShardWork;
use crate::metadata::topic_config::{self, ConfigType};
use crate::metadata::{validate_topic_name, ClusterState};
use crate::shard_state::ShardState;

/// Kafka's config resource types.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's config sources.
pub const SOURCE_TOPIC_CONFIG: i8 = 1;
pub const SOURCE_DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const SOURCE_STATIC_BROKER_CONFIG: i8 = 4;
pub const SOURCE_DEFAULT_CONFIG: i8 = 5;

/// IncrementalAlterConfigs operations.
pub const OP_SET: i8 = 0;
pub const OP_DELETE: i8 = 1;
pub const OP_APPEND: i8 = 2;
pub const OP_SUBTRACT: i8 = 3;

/// STATIC_BROKER_CONFIG when the broker's value differs from the built-in
/// default (so it was configured), else DEFAULT_CONFIG.
fn broker_source(value: &str, builtin_default: &str) -> i8 {
    if value == builtin_default {
        SOURCE_DEFAULT_CONFIG
    } else {
        SOURCE_STATIC_BROKER_CONFIG
    }
}

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// What one config entry says, before the version decides which fields go out.
struct Entry {
    name: String,
    value: String,
    read_only: bool,
    source: i8,
    kind: ConfigType,
    doc: &'static str,
    /// (name, value, source), most specific first.
    synonyms: Vec<(String, String, i8)>,
}

struct Options {
    version: i16,
    synonyms: bool,
    documentation: bool,
}

fn entry_result(e: Entry, o: &Options) -> DescribeConfigsResourceResult {
    let mut r = DescribeConfigsResourceResult::default()
        .with_name(s(e.name))
        .with_value(Some(s(e.value)))
        .with_read_only(e.read_only)
        .with_is_sensitive(false)
        .with_documentation(None);
    if o.version == 0 {
        r = r.with_is_default(e.source == SOURCE_DEFAULT_CONFIG);
    } else {
        r = r.with_config_source(e.source);
        if o.synonyms {
            r = r.with_synonyms(
                e.synonyms
                    .into_iter()
                    .map(|(n, v, src)| {
                        DescribeConfigsSynonym::default()
                            .with_name(s(n))
                            .with_value(Some(s(v)))
                            .with_source(src)
                    })
                    .collect(),
            );
        }
    }
    if o.version >= 3 {
        r = r.with_config_type(e.kind as i8);
        if o.documentation {
            r = r.with_documentation(Some(StrBytes::from_static_str(e.doc)));
        }
    }
    r
}

fn wanted(keys: &Option<Vec<StrBytes>>, name: &str) -> bool {
    // null: every config; a list (even an empty one, as in Kafka): those named.
    keys.as_ref()
        .is_none_or(|k| k.iter().any(|k| k.as_str() == name))
}

fn topic_entries(
    overrides: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    keys: &Option<Vec<StrBytes>>,
) -> Vec<Entry> {
    let builtin = BrokerConfig::default();
    topic_config::TOPIC_CONFIGS
        .iter()
        .filter(|def| wanted(keys, def.name))
        .map(|def| {
            let broker_value = topic_config::default_value(def, broker);
            let source = broker_source(&broker_value, &topic_config::default_value(def, &builtin));
            let mut synonyms = Vec::new();
            let (value, top_source) = match overrides.get(def.name) {
                Some(v) => {
                    synonyms.push((def.name.to_string(), v.clone(), SOURCE_TOPIC_CONFIG));
                    (v.clone(), SOURCE_TOPIC_CONFIG)
                }
                None => (broker_value.clone(), source),
            };
            // Kafka lists the broker setting a default comes from; a
            // topic config with none (the throttled replica lists) has no
            // synonym but its own override.
            if let Some(synonym) = def.broker_synonym {
                synonyms.push((synonym.to_string(), broker_value, source));
            }
            Entry {
                name: def.name.to_string(),
                value,
                read_only: false,
                source: top_source,
                kind: def.kind,
                doc: def.doc,
                synonyms,
            }
        })
        .collect()
}

/// The broker's settings under Kafka's names (Shardline-only ones under
/// their key with dots), as `config/table.rs` declares them.
fn broker_entries(broker: &BrokerConfig, keys: &Option<Vec<StrBytes>>) -> Vec<Entry> {
    let builtin: BTreeMap<String, String> = BrokerConfig::default()
        .described()
        .into_iter()
        .map(|b| (b.name, b.value))
        .collect();
    broker
        .described()
        .into_iter()
        .filter(|b| wanted(keys, &b.name))
        .map(|b| {
            let source = broker_source(&b.value, builtin.get(&b.name).map_or("", |v| v));
            Entry {
                name: b.name.clone(),
                synonyms: vec![(b.name, b.value.clone(), source)],
                value: b.value,
                read_only: true,
                source,
                kind: b.kind,
                doc: b.doc,
            }
        })
        .collect()
}

/// The dynamic broker configs set for `broker` (None: the cluster-wide
/// default), the broker's own value first, as Kafka resolves them.
fn dynamic_entries(
    snap: &ClusterState,
    broker: Option<i32>,
    keys: &Option<Vec<StrBytes>>,
) -> Vec<Entry> {
    let own = broker.and_then(|b| snap.broker_configs.get(&b));
    let default = snap.broker_configs.get(&-1);
    crate::controller::replicas::DYNAMIC_BROKER_CONFIGS
        .iter()
        .filter(|name| wanted(keys, name))
        .filter_map(|name| {
            let mut synonyms = Vec::new();
            if let Some(v) = own.and_then(|c| c.get(*name)) {
                synonyms.push((name.to_string(), v.clone(), SOURCE_DYNAMIC_BROKER_CONFIG));
            }
            if let Some(v) = default.and_then(|c| c.get(*name)) {
                synonyms.push((
                    name.to_string(),
                    v.clone(),
                    SOURCE_DYNAMIC_DEFAULT_BROKER_CONFIG,
                ));
            }
            let (_, value, source) = synonyms.first()?.clone();
            Some(Entry {
                name: name.to_string(),
                value,
                read_only: false,
                source,
                kind: ConfigType::Long,
                doc: "Replication throttle (bytes/s), set dynamically",
                synonyms,
            })
        })
        .collect()
}

/// AlterConfigs / IncrementalAlterConfigs of a broker resource: only the
/// dynamic configs Shardline has ([`crate::controller::replicas`]).
async fn change_broker(
    state: &Rc<ShardState>,
    name: &str,
    changes: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> Result<(), AdminError> {
    let broker = if name.is_empty() {
        -1
    } else {
        match name.parse::<i32>() {
            Ok(id) if id >= 0 => id,
            _ => {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("'{name}' is not a broker id"),
                ))
            }
        }
    };
    check_duplicates(changes.iter().map(|(k, _)| k.as_str()))?;
    let work = crate::controller::replicas::AlterBrokerConfigs {
        broker,
        changes,
        incremental,
        validate_only,
    };
    state
        .ask(crate::controller::CONTROLLER_SHARD, work)
        .await
        .unwrap_or_else(|_| Err(gone()))
}

/// DescribeConfigs: everything comes from the metadata snapshot and the
/// broker config, so this needs no other shard.
pub fn describe_configs(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let mut resp =
        build_describe_configs(ctx.version, &req, &state.metadata.snapshot(), &state.config);
    for r in &mut resp.results {
        let name = r.resource_name.to_string();
        if let Err(e) = config_access(
            state,
            ctx,
            r.resource_type,
            &name,
            Operation::DescribeConfigs,
        ) {
            r.configs.clear();
            r.error_code = e.code;
            r.error_message = Some(s(e.message));
        }
    }
    resp
}

/// Kafka: DESCRIBE_CONFIGS / ALTER_CONFIGS on the topic, or on the cluster
/// for broker resources.
fn config_access(
    state: &ShardState,
    ctx: &RequestContext,
    resource_type: i8,
    name: &str,
    op: Operation,
) -> Result<(), AdminError> {
    let (kind, name, error) = match resource_type {
        RESOURCE_TOPIC => (
            ResourceType::Topic,
            name,
            ResponseError::TopicAuthorizationFailed,
        ),
        _ => (
            ResourceType::Cluster,
            CLUSTER_NAME,
            ResponseError::ClusterAuthorizationFailed,
        ),
    };
    if ctx.allowed(state, op, kind, name) {
        Ok(())
    } else {
        Err(AdminError::new(
            error,
            format!("not allowed to {}", op.name()),
        ))
    }
}

pub fn build_describe_configs(
    version: i16,
    req: &DescribeConfigsRequest,
    snap: &ClusterState,
    broker: &BrokerConfig,
) -> DescribeConfigsResponse {
    let o = Options {
        version,
        synonyms: version >= 1 && req.include_synonyms,
        documentation: version >= 3 && req.include_documentation,
    };
    let results = req
        .resources
        .iter()
        .map(|r| {
            let name = r.resource_name.to_string();
            let outcome = match r.resource_type {
                RESOURCE_TOPIC => match snap.topic(&name) {
                    Some(t) => Ok(topic_entries(&t.configs, broker, &r.configuration_keys)),
                    None if validate_topic_name(&name).is_err() => Err(AdminError::new(
                        ResponseError::InvalidTopicException,
                        format!("'{name}' is not a valid topic name"),
                    )),
                    None => Err(AdminError::new(
                        ResponseError::UnknownTopicOrPartition,
                        format!("unknown topic '{name}'"),
                    )),
                },
                // The cluster-wide default ("") holds dynamic defaults only.
                RESOURCE_BROKER if name.is_empty() => {
                    Ok(dynamic_entries(snap, None, &r.configuration_keys))
                }
                RESOURCE_BROKER if name == broker.node_id.to_string() => {
                    let mut entries = broker_entries(broker, &r.configuration_keys);
                    entries.extend(dynamic_entries(
                        snap,
                        Some(broker.node_id),
                        &r.configuration_keys,
                    ));
                    Ok(entries)
                }
                RESOURCE_BROKER => Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!(
                        "this is broker {}; broker configs can only be described on the broker itself, not '{name}'",
                        broker.node_id
                    ),
                )),
                other => Err(unsupported_resource(other)),
            };
            let result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone());
            match outcome {
                Ok(entries) => result.with_error_message(None).with_configs(
                    entries.into_iter().map(|e| entry_result(e, &o)).collect(),
                ),
                Err(e) => result
                    .with_error_code(e.code)
                    .with_error_message(Some(s(e.message))),
            }
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

fn unsupported_resource(kind: i8) -> AdminError {
    AdminError::new(
        ResponseError::InvalidRequest,
        format!(
            "resource type {kind} is not supported; Shardline has topic (2) and broker (4) configs"
        ),
    )
}

fn gone() -> AdminError {
    AdminError::new(
        ResponseError::BrokerNotAvailable,
        "controller shard is not running",
    )
}

/// Refuse a config named twice in one resource, as Kafka does.
fn check_duplicates<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), AdminError> {
    let mut seen = HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("config '{n}' appears more than once for this resource"),
            ));
        }
    }
    Ok(())
}

/// A change to one topic's overrides, resolved on the controller shard.
pub enum Change {
    /// AlterConfigs: the new complete override set.
    Replace(Vec<(String, String)>),
    /// IncrementalAlterConfigs: (name, operation, value).
    Patch(Vec<(String, i8, Option<String>)>),
}

async fn change_topic(
    state: &Rc<ShardState>,
    topic: String,
    change: Change,
    validate_only: bool,
) -> Result<(), AdminError> {
    let change = ChangeTopicConfigs {
        topic,
        change,
        validate_only,
    };
    state
        .ask(CONTROLLER_SHARD, change)
        .await
        .unwrap_or_else(|_| Err(gone()))
}

/// AlterConfigs / IncrementalAlterConfigs of one topic, for the controller
/// shard (an incremental change is resolved there, against the current
/// overrides).
pub struct ChangeTopicConfigs {
    topic: String,
    change: Change,
    validate_only: bool,
}

impl ShardWork for ChangeTopicConfigs {
    type Out = Result<(), AdminError>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        let ChangeTopicConfigs {
            topic,
            change,
            validate_only,
        } = self;
        let (changes, incremental) = match change {
            Change::Replace(set) => (set.into_iter().map(|(k, v)| (k, Some(v))).collect(), false),
            Change::Patch(ops) => {
                let current = s
                    .metadata
                    .snapshot()
                    .topic(&topic)
                    .map(|t| t.configs.clone())
                    .unwrap_or_default();
                (resolve_ops(&current, &s.config, ops)?, true)
            }
        };
        controller::alter_topic_configs(s, topic, changes, incremental, validate_only).await
    }
}

/// Turn incremental operations into set/delete changes against the current
/// overrides (APPEND and SUBTRACT work on the effective list value).
fn resolve_ops(
    current: &BTreeMap<String, String>,
    broker: &BrokerConfig,
    ops: Vec<(String, i8, Option<String>)>,
) -> Result<Vec<(String, Option<String>)>, AdminError> {
    let mut out = Vec::new();
    for (name, op, value) in ops {
        let Some(def) = topic_config::definition(&name) else {
            return Err(AdminError::new(
                ResponseError::InvalidConfig,
                topic_config::unknown(&name),
            ));
        };
        let need_value = || {
            value.clone().ok_or_else(|| {
                AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("null value is not allowed for '{name}'"),
                )
            })
        };
        match op {
            OP_SET => out.push((name.clone(), Some(need_value()?))),
            OP_DELETE => out.push((name.clone(), None)),
            OP_APPEND | OP_SUBTRACT => {
                if def.kind != ConfigType::List {
                    return Err(AdminError::new(
                        ResponseError::InvalidConfig,
                        format!("'{name}' is not a list config; APPEND and SUBTRACT apply to list configs only"),
                    ));
                }
                let base = topic_config::effective(&name, current, broker).unwrap_or_default();
                let mut items: Vec<String> = split_list(&base);
                let given = split_list(&need_value()?);
                if op == OP_APPEND {
                    for g in given {
                        if !items.contains(&g) {
                            items.push(g);
                        }
                    }
                } else {
                    items.retain(|i| !given.contains(i));
                }
                out.push((name.clone(), Some(items.join(","))));
            }
            other => {
                return Err(AdminError::new(
                    ResponseError::InvalidRequest,
                    format!("unknown config operation {other} for '{name}'"),
                ))
            }
        }
    }
    Ok(out)
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(String::from)
        .collect()
}

pub async fn alter_configs(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        let access = config_access(
            state,
            ctx,
            r.resource_type,
            &r.resource_name,
            Operation::AlterConfigs,
        );
        let outcome = match r.resource_type {
            _ if access.is_err() => access,
            RESOURCE_TOPIC => {
                let dup = check_duplicates(r.configs.iter().map(|c| c.name.as_str()));
                let nulls: Vec<&str> = r
                    .configs
                    .iter()
                    .filter(|c| c.value.is_none())
                    .map(|c| c.name.as_str())
                    .collect();
                match dup {
                    Err(e) => Err(e),
                    Ok(()) if !nulls.is_empty() => Err(AdminError::new(
                        ResponseError::InvalidRequest,
                        format!("null values are not allowed: {}", nulls.join(", ")),
                    )),
                    Ok(()) => {
                        let set = r
                            .configs
                            .iter()
                            .map(|c| {
                                (
                                    c.name.to_string(),
                                    c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                                )
                            })
                            .collect();
                        let topic = r.resource_name.to_string();
                        change_topic(state, topic, Change::Replace(set), req.validate_only).await
                    }
                }
            }
            RESOURCE_BROKER => {
                let set = r
                    .configs
                    .iter()
                    .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                    .collect();
                change_broker(state, &r.resource_name, set, false, req.validate_only).await
            }
            other => Err(unsupported_resource(other)),
        };
        let (code, message) = split_outcome(outcome);
        responses.push(
            alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for r in req.resources {
        let access = config_access(
            state,
            ctx,
            r.resource_type,
            &r.resource_name,
            Operation::AlterConfigs,
        );
        let outcome = match r.resource_type {
            _ if access.is_err() => access,
            RESOURCE_TOPIC => match check_duplicates(r.configs.iter().map(|c| c.name.as_str())) {
                Err(e) => Err(e),
                Ok(()) => {
                    let ops = r
                        .configs
                        .iter()
                        .map(|c| {
                            (
                                c.name.to_string(),
                                c.config_operation,
                                c.value.as_ref().map(|v| v.to_string()),
                            )
                        })
                        .collect();
                    let topic = r.resource_name.to_string();
                    change_topic(state, topic, Change::Patch(ops), req.validate_only).await
                }
            },
            RESOURCE_BROKER => {
                let mut changes = Vec::new();
                let mut bad = None;
                for c in &r.configs {
                    match c.config_operation {
                        OP_SET => changes.push((
                            c.name.to_string(),
                            Some(c.value.as_ref().map(|v| v.to_string()).unwrap_or_default()),
                        )),
                        OP_DELETE => changes.push((c.name.to_string(), None)),
                        op => {
                            bad = Some(AdminError::new(
                                ResponseError::InvalidConfig,
                                format!("operation {op} does not apply to {}: not a list", c.name),
                            ))
                        }
                    }
                }
                match bad {
                    Some(e) => Err(e),
                    None => {
                        change_broker(state, &r.resource_name, changes, true, req.validate_only)
                            .await
                    }
                }
            }
            other => Err(unsupported_resource(other)),
        };
        let (code, message) = split_outcome(outcome);
        responses.push(
            incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

fn split_outcome(outcome: Result<(), AdminError>) -> (i16, Option<StrBytes>) {
    match outcome {
        Ok(()) => (0, None),
        Err(e) => (e.code, Some(s(e.message))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;

    fn request(kind: i8, name: &str, keys: Option<Vec<&str>>) -> DescribeConfigsRequest {
        DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(s(name))
                .with_configuration_keys(keys.map(|k| k.into_iter().map(s).collect()))])
            .with_include_synonyms(true)
            .with_include_documentation(true)
    }

    #[test]
    fn every_topic_default_has_its_broker_setting() {
        let broker = BrokerConfig::default();
        let settings = broker.described();
        for def in topic_config::TOPIC_CONFIGS {
            // The throttled replica lists come from no broker setting.
            let Some(syn) = def.broker_synonym else {
                assert!(def.name.contains("replication.throttled"), "{}", def.name);
                continue;
            };
            let b = settings
                .iter()
                .find(|b| b.name == syn)
                .unwrap_or_else(|| panic!("broker setting {syn} missing"));
            assert_eq!(b.value, topic_config::default_value(def, &broker), "{syn}");
        }
        let mut names: Vec<_> = settings.iter().map(|b| b.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(
            names.len(),
            settings.len(),
            "broker setting names are unique"
        );
    }

    #[test]
    fn unknown_topics_and_wrong_brokers_are_errors() {
        let snap = ClusterState::default();
        let broker = BrokerConfig::default();
        let r = build_describe_configs(2, &request(RESOURCE_TOPIC, "nope", None), &snap, &broker);
        assert_eq!(
            r.results[0].error_code,
            ResponseError::UnknownTopicOrPartition.code()
        );
        let r = build_describe_configs(2, &request(RESOURCE_BROKER, "7", None), &snap, &broker);
        assert_eq!(
            r.results[0].error_code,
            ResponseError::InvalidRequest.code()
        );
        let r = build_describe_configs(
            4,
            &request(RESOURCE_BROKER, "0", Some(vec!["num.partitions"])),
            &snap,
            &broker,
        );
        let c = &r.results[0].configs;
        assert_eq!(c.len(), 1);
        assert!(c[0].read_only);
        assert_eq!(c[0].value.as_deref(), Some("1"));
        assert_eq!(c[0].config_source, SOURCE_DEFAULT_CONFIG);
    }

    #[test]
    fn incremental_ops_resolve_against_the_effective_value() {
        let broker = BrokerConfig::default();
        let mut cur = BTreeMap::new();
        let out = resolve_ops(
            &cur,
            &broker,
            vec![("cleanup.policy".into(), OP_APPEND, Some("compact".into()))],
        )
        .unwrap();
        assert_eq!(out[0].1.as_deref(), Some("delete,compact"));
        cur.insert("cleanup.policy".to_string(), "delete,compact".to_string());
        let out = resolve_ops(
            &cur,
            &broker,
            vec![("cleanup.policy".into(), OP_SUBTRACT, Some("delete".into()))],
        )
        .unwrap();
        assert_eq!(out[0].1.as_deref(), Some("compact"));
        let err = resolve_ops(
            &cur,
            &broker,
            vec![("retention.ms".into(), OP_APPEND, Some("5".into()))],
        )
        .unwrap_err();
        assert_eq!(err.code, ResponseError::InvalidConfig.code());
        let err = resolve_ops(
            &cur,
            &broker,
            vec![("no.such".into(), OP_SET, Some("5".into()))],
        )
        .unwrap_err();
        assert_eq!(err.code, ResponseError::InvalidConfig.code());
    }
}
