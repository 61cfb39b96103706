//! Offsets in transactions (consume-transform-produce): AddOffsetsToTxn,
//! to the transaction coordinator, adds the group's `__consumer_offsets`
//! partition to the transaction; TxnOffsetCommit, to the group
//! coordinator, holds the offsets until the transaction's marker reaches
//! that partition (`groups::txn_offsets`); [`CompleteGroupTxn`] is that
//! marker on each shard of the group coordinator's broker.

use std::rc::Rc;

use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};
use kafka_protocol::ResponseError;

use super::groups::owner;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::groups::offsets::CommitEntry;
use crate::messages::ShardWork;
use crate::metadata::internal::CONSUMER_OFFSETS;
use crate::shard_state::ShardState;

/// The number of `__consumer_offsets` partitions groups hash over: the
/// placed coordinators', or the configured count before they are placed.
pub fn offsets_partitions(state: &ShardState) -> usize {
    let n = state.metadata.snapshot().coordinators.len();
    if n > 0 {
        n
    } else {
        state.config.offsets_topic_num_partitions as usize
    }
}

pub async fn add_offsets_to_txn(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let id = req.transactional_id.to_string();
    let group = req.group_id.to_string();
    let resp = AddOffsetsToTxnResponse::default();
    // Kafka: WRITE on the transactional id, then READ on the group.
    if !ctx.allowed(state, Operation::Write, ResourceType::TransactionalId, &id) {
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    if !ctx.allowed(state, Operation::Read, ResourceType::Group, &group) {
        return resp.with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    let p = crate::metadata::coordinator_partition(&group, offsets_partitions(state)) as i32;
    let work = super::txn::AddTxnPartitions {
        id: id.clone(),
        producer_id: req.producer_id.0,
        epoch: req.producer_epoch,
        partitions: vec![(CONSUMER_OFFSETS.to_string(), p)],
        verify_only: false,
        client_tv: 0,
    };
    let shard = match super::txn::coordinator_shard(state, &id) {
        Ok(s) => s,
        Err(e) => return resp.with_error_code(e.code()),
    };
    let code = match state.ask(shard, work).await {
        Ok(Ok(_)) => 0,
        Ok(Err(ResponseError::ProducerFenced)) if ctx.version < 2 => {
            ResponseError::InvalidProducerEpoch.code()
        }
        Ok(Err(e)) => e.code(),
        Err(_) => ResponseError::CoordinatorNotAvailable.code(),
    };
    resp.with_error_code(code)
}

/// TxnOffsetCommit on the group's owner shard: one error for all.
pub struct TxnCommit {
    pub group_id: String,
    pub producer_id: i64,
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    pub entries: Vec<CommitEntry>,
}

impl ShardWork for TxnCommit {
    type Out = i16;

    async fn run(self, s: Rc<ShardState>) -> i16 {
        s.groups
            .txn_commit(
                &self.group_id,
                self.producer_id,
                &self.member_id,
                self.instance_id.as_deref(),
                self.generation,
                self.entries,
            )
            .await
    }
}

pub async fn txn_offset_commit(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let id = req.transactional_id.to_string();
    let group = req.group_id.to_string();
    let snap = state.metadata.snapshot();
    // Kafka: WRITE on the transactional id, READ on the group, READ on each
    // topic; unknown partitions are refused one by one.
    let common = if !ctx.allowed(state, Operation::Write, ResourceType::TransactionalId, &id) {
        ResponseError::TransactionalIdAuthorizationFailed.code()
    } else if !ctx.allowed(state, Operation::Read, ResourceType::Group, &group) {
        ResponseError::GroupAuthorizationFailed.code()
    } else if !super::groups::coordinates(state, &group) {
        ResponseError::NotCoordinator.code()
    } else {
        0
    };
    let acl = ctx.checker(state);
    let mut own: Vec<Vec<i16>> = Vec::new();
    let mut entries = Vec::new();
    for t in &req.topics {
        let allowed = acl.allows(Operation::Read, ResourceType::Topic, &t.name);
        let meta = snap.topic(t.name.0.as_str());
        own.push(
            t.partitions
                .iter()
                .map(|p| {
                    let exists = meta.is_some_and(|m| {
                        p.partition_index >= 0 && (p.partition_index as usize) < m.partitions.len()
                    });
                    if common != 0 {
                        common
                    } else if !allowed {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else if !exists {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        entries.push(CommitEntry {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: p.committed_leader_epoch,
                            metadata: p
                                .committed_metadata
                                .as_ref()
                                .map(|m| m.to_string())
                                .unwrap_or_default(),
                        });
                        -1 // the group's answer
                    }
                })
                .collect(),
        );
    }
    drop(acl);
    let group_error = if entries.is_empty() {
        0
    } else if let Some(refused) = verify(state, ctx, &req, &id, &group).await {
        refused
    } else {
        let work = TxnCommit {
            group_id: group.clone(),
            producer_id: req.producer_id.0,
            member_id: req.member_id.to_string(),
            instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
            generation: if ctx.version >= 3 {
                req.generation_id
            } else {
                -1
            },
            entries,
        };
        state
            .ask(owner(state, &group), work)
            .await
            .unwrap_or(ResponseError::CoordinatorNotAvailable.code())
    };
    let topics = req
        .topics
        .iter()
        .zip(own)
        .map(|(t, codes)| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(codes)
                        .map(|(p, c)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if c == -1 { group_error } else { c })
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// KIP-890: the group's `__consumer_offsets` partition must be in the
/// producer's transaction: added by the broker for TxnOffsetCommit v5
/// (transaction version 2, where producers send no AddOffsetsToTxn),
/// verified before that. `Some` is the error for every partition.
async fn verify(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: &TxnOffsetCommitRequest,
    id: &str,
    group: &str,
) -> Option<i16> {
    let add = ctx.wire_version >= 5;
    let p = crate::metadata::coordinator_partition(group, offsets_partitions(state)) as i32;
    let code = crate::txn::verify::add_or_verify(
        state,
        id,
        req.producer_id.0,
        req.producer_epoch,
        CONSUMER_OFFSETS,
        p,
        add,
    )
    .await;
    if code == 0 {
        return None;
    }
    Some(match ResponseError::try_from_code(code) {
        Some(
            ResponseError::NotCoordinator
            | ResponseError::CoordinatorNotAvailable
            | ResponseError::CoordinatorLoadInProgress,
        ) => ResponseError::CoordinatorLoadInProgress.code(),
        Some(ResponseError::ProducerFenced) if ctx.version < 3 => {
            ResponseError::InvalidProducerEpoch.code()
        }
        _ if code == crate::txn::ops::TRANSACTION_ABORTABLE && !add => {
            ResponseError::InvalidTxnState.code()
        }
        _ => code,
    })
}

/// A transaction marker for `__consumer_offsets-partition`, on one shard.
pub struct CompleteGroupTxn {
    pub partition: usize,
    pub partitions: usize,
    pub producer_id: i64,
    pub commit: bool,
}

impl ShardWork for CompleteGroupTxn {
    type Out = i16;

    async fn run(self, s: Rc<ShardState>) -> i16 {
        match s
            .groups
            .complete_txn_offsets(
                self.partition,
                self.partitions,
                self.producer_id,
                self.commit,
            )
            .await
        {
            Ok(()) => 0,
            Err(e) => e.code(),
        }
    }
}

/// The marker on every shard (a partition's groups hash to all of them);
/// the first error, if any, for the coordinator to retry.
pub async fn complete_group_txn(
    state: &Rc<ShardState>,
    partition: i32,
    producer_id: i64,
    commit: bool,
) -> i16 {
    let snap = state.metadata.snapshot();
    let node = state.config.node_id;
    let partitions = offsets_partitions(state);
    let leads = match snap.coordinators.get(partition as usize) {
        Some(c) => c.leader == node,
        // Coordinators not placed: a single node coordinates every group.
        None => snap.coordinators.is_empty() && snap.brokers.len() <= 1,
    };
    if partition < 0 || partition as usize >= partitions {
        return ResponseError::UnknownTopicOrPartition.code();
    }
    if !leads {
        return ResponseError::NotLeaderOrFollower.code();
    }
    let calls = (0..state.shards()).map(|shard| {
        let work = CompleteGroupTxn {
            partition: partition as usize,
            partitions,
            producer_id,
            commit,
        };
        async move {
            state
                .ask(shard, work)
                .await
                .unwrap_or(ResponseError::CoordinatorNotAvailable.code())
        }
    });
    futures::future::join_all(calls)
        .await
        .into_iter()
        .find(|c| *c != 0)
        .unwrap_or(0)
}
