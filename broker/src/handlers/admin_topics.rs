//! CreateTopics, DeleteTopics, CreatePartitions: forwarded to the
//! controller shard, one topic at a time, errors per topic.

use crate::acl::model::CLUSTER_NAME;
use crate::acl::{Operation, ResourceType};
use std::collections::{BTreeMap, HashSet};
use std::rc::Rc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::controller::{self, AdminError, NewTopic, CONTROLLER_SHARD};
use crate::metadata::topic_config;
use crate::shard_state::ShardState;

fn gone() -> AdminError {
    AdminError::new(
        ResponseError::BrokerNotAvailable,
        "controller shard is not running",
    )
}

fn msg(s: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(s))
}

pub async fn create_topics(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut resp = CreateTopicsResponse::default();
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !seen.insert(n.clone()))
        .collect();
    // Kafka: CREATE on the cluster, or CREATE on each topic.
    let acl = ctx.checker(state);
    let may_create_any = acl.allows(Operation::Create, ResourceType::Cluster, CLUSTER_NAME);
    for t in req.topics {
        let name = t.name.0.to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !may_create_any && !acl.allows(Operation::Create, ResourceType::Topic, &name) {
            result = result
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                .with_error_message(msg(format!("not allowed to CREATE topic '{name}'")));
            resp.topics.push(result);
            continue;
        }
        if duplicates.contains(&name) {
            result = result
                .with_error_code(ResponseError::InvalidRequest.code())
                .with_error_message(msg(format!(
                    "topic '{name}' appears more than once in the request"
                )));
            resp.topics.push(result);
            continue;
        }
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let partitions = if t.assignments.is_empty() {
            t.num_partitions
        } else {
            t.assignments.len() as i32
        };
        // Kafka wants the assignments for partitions 0..n, each once.
        let mut assignments: Vec<_> = t
            .assignments
            .iter()
            .map(|a| {
                (
                    a.partition_index,
                    a.broker_ids.iter().map(|b| b.0).collect(),
                )
            })
            .collect();
        assignments.sort_by_key(|(p, _)| *p);
        if assignments
            .iter()
            .enumerate()
            .any(|(i, (p, _))| *p != i as i32)
        {
            result = result
                .with_error_code(ResponseError::InvalidReplicaAssignment.code())
                .with_error_message(msg(
                    "partitions should be a consecutive 0-based integer sequence".to_string(),
                ));
            resp.topics.push(result);
            continue;
        }
        let new = NewTopic {
            name: name.clone(),
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: assignments.into_iter().map(|(_, b)| b).collect(),
            configs: configs.clone(),
            internal: false,
        };
        let validate_only = req.validate_only;
        let create = controller::CreateTopic {
            topic: new,
            validate_only,
        };
        let outcome = state
            .ask(CONTROLLER_SHARD, create)
            .await
            .unwrap_or_else(|_| Err(gone()));
        match outcome {
            Ok(meta) => {
                let count = if validate_only {
                    if partitions == -1 {
                        state.config.num_partitions
                    } else {
                        partitions
                    }
                } else {
                    meta.partitions.len() as i32
                };
                let factor = meta.partitions.first().map_or(
                    if t.replication_factor == -1 {
                        state.config.default_replication_factor as i16
                    } else {
                        t.replication_factor
                    },
                    |p| p.replicas.len() as i16,
                );
                result = result
                    .with_topic_id(meta.id)
                    .with_num_partitions(count)
                    .with_replication_factor(factor);
                if ctx.version >= 5 {
                    result = result.with_configs(Some(describe_new_topic_configs(state, &configs)));
                }
            }
            Err(e) => {
                result = result
                    .with_error_code(e.code)
                    .with_error_message(msg(e.message));
            }
        }
        resp.topics.push(result);
    }
    resp
}

/// The configs of a just-created topic (CreateTopics v5+ returns them).
fn describe_new_topic_configs(
    state: &ShardState,
    overrides: &BTreeMap<String, String>,
) -> Vec<CreatableTopicConfigs> {
    topic_config::TOPIC_CONFIGS
        .iter()
        .map(|def| {
            let (value, source) = match overrides.get(def.name) {
                Some(v) => (v.clone(), 1), // TOPIC_CONFIG
                None => (topic_config::default_value(def, &state.config), 5), // DEFAULT_CONFIG
            };
            CreatableTopicConfigs::default()
                .with_name(StrBytes::from_static_str(def.name))
                .with_value(Some(StrBytes::from_string(value)))
                .with_config_source(source)
        })
        .collect()
}

pub async fn delete_topics(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    // v6 names topics by name or id; earlier versions by name only.
    let targets: Vec<(Option<String>, uuid::Uuid)> = if ctx.version >= 6 {
        req.topics
            .into_iter()
            .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .into_iter()
            .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
            .collect()
    };
    let mut resp = DeleteTopicsResponse::default();
    for (name, id) in targets {
        let snap = state.metadata.snapshot();
        let resolved = match &name {
            Some(n) => Some(n.clone()),
            None => snap.topic_by_id(&id).map(|t| t.name.clone()),
        };
        let mut result = DeletableTopicResult::default()
            .with_name(name.clone().map(|n| TopicName(StrBytes::from_string(n))))
            .with_topic_id(id);
        let Some(topic) = resolved else {
            result = result
                .with_error_code(ResponseError::UnknownTopicId.code())
                .with_error_message(msg(format!("no topic has id {id}")));
            resp.responses.push(result);
            continue;
        };
        if !ctx.allowed(state, Operation::Delete, ResourceType::Topic, &topic) {
            result = result
                .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                .with_error_message(msg(format!("not allowed to DELETE topic '{topic}'")));
            resp.responses.push(result);
            continue;
        }
        let outcome = state
            .ask(CONTROLLER_SHARD, controller::DeleteTopic { name: topic })
            .await
            .unwrap_or_else(|_| Err(gone()));
        match outcome {
            Ok(deleted_id) => result = result.with_topic_id(deleted_id),
            Err(e) => {
                result = result
                    .with_error_code(e.code)
                    .with_error_message(msg(e.message))
            }
        }
        resp.responses.push(result);
    }
    resp
}

pub async fn create_partitions(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut resp = CreatePartitionsResponse::default();
    for t in req.topics {
        let name = t.name.0.to_string();
        if !ctx.allowed(state, Operation::Alter, ResourceType::Topic, &name) {
            resp.results.push(
                CreatePartitionsTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                    .with_error_message(msg(format!("not allowed to ALTER topic '{name}'"))),
            );
            continue;
        }
        let count = t.count;
        let validate_only = req.validate_only;
        let grow = controller::CreatePartitions {
            name,
            count,
            assignments: t.assignments.as_ref().filter(|a| !a.is_empty()).map(|a| {
                a.iter()
                    .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            }),
            validate_only,
        };
        let outcome = state
            .ask(CONTROLLER_SHARD, grow)
            .await
            .unwrap_or_else(|_| Err(gone()));
        let mut result = CreatePartitionsTopicResult::default().with_name(t.name);
        if let Err(e) = outcome {
            result = result
                .with_error_code(e.code)
                .with_error_message(msg(e.message));
        }
        resp.results.push(result);
    }
    resp
}
