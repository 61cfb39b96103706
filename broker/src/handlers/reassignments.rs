//! ElectLeaders, AlterPartitionReassignments and ListPartitionReassignments
//! (what `kafka-leader-election` and `kafka-reassign-partitions` send).
//! ALTER (DESCRIBE to list) on the cluster; the changes are made by the
//! controller shard ([`crate::controller::replicas`]).

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ElectLeadersRequest, ElectLeadersResponse, ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::Operation;
use crate::controller::replicas::{AlterReassignments, ElectLeaders, Target};
use crate::controller::CONTROLLER_SHARD;
use crate::metadata::reassignment::Election;
use crate::shard_state::ShardState;

fn msg(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|b| BrokerId(*b)).collect()
}

pub async fn elect_leaders(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let wanted: Option<Vec<(String, i32)>> = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect()
    });
    let resp = ElectLeadersResponse::default();
    let fail_all = |code: ResponseError, why: String| {
        let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
        for (t, p) in wanted.iter().flatten() {
            by_topic.entry(t.clone()).or_default().push(
                PartitionResult::default()
                    .with_partition_id(*p)
                    .with_error_code(code.code())
                    .with_error_message(msg(why.clone())),
            );
        }
        ElectLeadersResponse::default()
            .with_error_code(code.code())
            .with_replica_election_results(results(by_topic))
    };
    if !ctx.cluster_allowed(state, Operation::Alter) {
        return fail_all(
            ResponseError::ClusterAuthorizationFailed,
            "not allowed to ALTER the cluster".into(),
        );
    }
    // Version 0 has no election type: preferred.
    let election = match (ctx.version, req.election_type) {
        (0, _) | (_, 0) => Election::Preferred,
        (_, 1) => Election::Unclean,
        (_, other) => {
            return fail_all(
                ResponseError::InvalidRequest,
                format!("unknown election type {other}"),
            )
        }
    };
    let work = ElectLeaders {
        election,
        partitions: wanted.clone(),
    };
    match state.ask(CONTROLLER_SHARD, work).await {
        Ok(Ok(outcomes)) => {
            let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
            for ((t, p), (code, why)) in outcomes {
                by_topic.entry(t).or_default().push(
                    PartitionResult::default()
                        .with_partition_id(p)
                        .with_error_code(code)
                        .with_error_message(why.map(StrBytes::from_string)),
                );
            }
            resp.with_replica_election_results(results(by_topic))
        }
        Ok(Err(e)) => fail_all(
            ResponseError::try_from_code(e.code).unwrap_or(ResponseError::UnknownServerError),
            e.message,
        ),
        Err(_) => fail_all(
            ResponseError::BrokerNotAvailable,
            "controller shard is not running".into(),
        ),
    }
}

fn results(by_topic: BTreeMap<String, Vec<PartitionResult>>) -> Vec<ReplicaElectionResult> {
    by_topic
        .into_iter()
        .map(|(t, parts)| {
            ReplicaElectionResult::default()
                .with_topic(TopicName(StrBytes::from_string(t)))
                .with_partition_result(parts)
        })
        .collect()
}

pub async fn alter_partition_reassignments(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let resp = AlterPartitionReassignmentsResponse::default();
    if !ctx.cluster_allowed(state, Operation::Alter) {
        return resp
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(msg("not allowed to ALTER the cluster"));
    }
    let moves: Vec<Target> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions.iter().map(|p| {
                (
                    (t.name.0.to_string(), p.partition_index),
                    p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect()),
                )
            })
        })
        .collect();
    let outcome = state
        .ask(CONTROLLER_SHARD, AlterReassignments(moves.clone()))
        .await;
    let outcomes = match outcome {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            return resp
                .with_error_code(e.code)
                .with_error_message(msg(e.message))
        }
        Err(_) => {
            return resp
                .with_error_code(ResponseError::BrokerNotAvailable.code())
                .with_error_message(msg("controller shard is not running"))
        }
    };
    let mut by_topic: BTreeMap<String, Vec<ReassignablePartitionResponse>> = BTreeMap::new();
    for (((t, p), _), (code, why)) in moves.into_iter().zip(outcomes) {
        by_topic.entry(t).or_default().push(
            ReassignablePartitionResponse::default()
                .with_partition_index(p)
                .with_error_code(code)
                .with_error_message(why.map(StrBytes::from_string)),
        );
    }
    resp.with_responses(
        by_topic
            .into_iter()
            .map(|(t, parts)| {
                ReassignableTopicResponse::default()
                    .with_name(TopicName(StrBytes::from_string(t)))
                    .with_partitions(parts)
            })
            .collect(),
    )
}

pub fn list_partition_reassignments(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let resp = ListPartitionReassignmentsResponse::default();
    if !ctx.cluster_allowed(state, Operation::Describe) {
        return resp
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code())
            .with_error_message(msg("not allowed to DESCRIBE the cluster"));
    }
    let snap = state.metadata.snapshot();
    // Null: every partition; else the named ones (unknown ones skipped,
    // as Kafka's controller does).
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let mut topics = Vec::new();
    for t in snap.topics.values() {
        let only = match &wanted {
            Some(w) => match w.get(&t.name) {
                Some(parts) => Some(parts),
                None => continue,
            },
            None => None,
        };
        let parts: Vec<OngoingPartitionReassignment> = t
            .partitions
            .iter()
            .enumerate()
            .filter(|(i, p)| p.reassigning() && only.is_none_or(|o| o.contains(&(*i as i32))))
            .map(|(i, p)| {
                OngoingPartitionReassignment::default()
                    .with_partition_index(i as i32)
                    .with_replicas(ids(&p.replicas))
                    .with_adding_replicas(ids(&p.adding))
                    .with_removing_replicas(ids(&p.removing))
            })
            .collect();
        if !parts.is_empty() {
            topics.push(
                OngoingTopicReassignment::default()
                    .with_name(TopicName(StrBytes::from_string(t.name.clone())))
                    .with_partitions(parts),
            );
        }
    }
    resp.with_topics(topics)
}
