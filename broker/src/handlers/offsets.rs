//! Committed offsets: OffsetCommit, OffsetFetch (v8+ several groups at
//! once), OffsetDelete. Each group's offsets live on its owner shard.

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::groups::{owner, sb};
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::groups::group::CommittedOffset;
use crate::groups::offsets::{CommitEntry, FetchedOffsets};
use crate::messages::ShardWork;
use crate::shard_state::ShardState;

/// Kafka's `offset.metadata.max.bytes` default.
const MAX_METADATA_BYTES: usize = 4096;

pub async fn offset_commit(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let group_id = req.group_id.0.to_string();
    // The empty group id is valid here, as in Kafka (KIP-289 keeps it for
    // OffsetCommit/OffsetFetch): it was the consumer's default group.id before
    // 2.2, so assign-only consumers of clients 0.10-2.1 commit and fetch under "".
    let snap = state.metadata.snapshot();
    // Per-partition errors first; the rest go to the coordinator together.
    let mut errors: Vec<Vec<i16>> = Vec::new();
    let mut entries = Vec::new();
    // Kafka: READ on the group, then READ on each topic.
    let acl = ctx.checker(state);
    let group_allowed = acl.allows(Operation::Read, ResourceType::Group, &group_id);
    let coordinator = super::groups::coordinates(state, &group_id);
    for t in &req.topics {
        let topic = snap.topic(t.name.0.as_str());
        let topic_allowed = acl.allows(Operation::Read, ResourceType::Topic, &t.name);
        errors.push(
            t.partitions
                .iter()
                .map(|p| {
                    let exists = topic.is_some_and(|tm| {
                        p.partition_index >= 0 && (p.partition_index as usize) < tm.partitions.len()
                    });
                    let metadata = p.committed_metadata.as_ref().map(|m| m.to_string());
                    if !group_allowed {
                        ResponseError::GroupAuthorizationFailed.code()
                    } else if !coordinator {
                        ResponseError::NotCoordinator.code()
                    } else if !topic_allowed {
                        ResponseError::TopicAuthorizationFailed.code()
                    } else if !exists {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else if metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
                    {
                        ResponseError::OffsetMetadataTooLarge.code()
                    } else {
                        entries.push(CommitEntry {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            offset: p.committed_offset,
                            leader_epoch: if ctx.version >= 6 {
                                p.committed_leader_epoch
                            } else {
                                -1
                            },
                            metadata: metadata.unwrap_or_default(),
                        });
                        -1 // filled in with the group's answer below
                    }
                })
                .collect(),
        );
    }
    drop(acl);
    let common = if entries.is_empty() {
        0
    } else {
        // v0 commits carry no membership: Kafka stored them outside the group.
        let (member_id, generation) = if ctx.version == 0 {
            (String::new(), -1)
        } else {
            (req.member_id.to_string(), req.generation_id_or_member_epoch)
        };
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let shard = owner(state, &group_id);
        let commit = OffsetCommit {
            group_id,
            member_id,
            instance_id,
            generation,
            entries,
        };
        state
            .ask(shard, commit)
            .await
            .unwrap_or(ResponseError::CoordinatorNotAvailable.code())
    };
    let topics = req
        .topics
        .iter()
        .zip(errors)
        .map(|(t, errs)| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .zip(errs)
                        .map(|(p, e)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if e == -1 { common } else { e })
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// Kafka's UNSTABLE_OFFSET_COMMIT (KIP-447), newer than kafka-protocol's
/// error list.
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;

/// One topic's fetched offsets (each with its own error: 0, or
/// UNSTABLE_OFFSET_COMMIT), and the error of all its partitions.
type FetchedTopic = (String, Vec<(i32, Option<CommittedOffset>, i16)>, i16);

/// Fetch one group's offsets on its owner shard. Kafka: DESCRIBE on the
/// group; topics the principal may not DESCRIBE are left out of an
/// all-topics answer and answered TOPIC_AUTHORIZATION_FAILED when named.
/// The empty group id is served like any other (see offset_commit).
async fn fetch_group(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<FetchedTopic>, i16> {
    if !ctx.allowed(state, Operation::Describe, ResourceType::Group, &group_id) {
        return Err(ResponseError::GroupAuthorizationFailed.code());
    }
    if !super::groups::coordinates(state, &group_id) {
        return Err(ResponseError::NotCoordinator.code());
    }
    let named = topics.is_some();
    let shard = owner(state, &group_id);
    let (found, unstable) = state
        .ask(
            shard,
            OffsetFetch {
                group_id,
                topics,
                require_stable,
            },
        )
        .await
        .map_err(|_| ResponseError::CoordinatorNotAvailable.code())?;
    let acl = ctx.checker(state);
    let unstable_code = UNSTABLE_OFFSET_COMMIT;
    Ok(found
        .into_iter()
        .filter_map(|(t, parts)| {
            if acl.allows(Operation::Describe, ResourceType::Topic, &t) {
                // Kafka: a partition with a transaction's offset pending
                // answers no offset and UNSTABLE_OFFSET_COMMIT.
                let parts = parts
                    .into_iter()
                    .map(|(p, c)| match unstable.contains(&(t.clone(), p)) {
                        true => (p, None, unstable_code),
                        false => (p, c, 0),
                    })
                    .collect();
                Some((t, parts, 0))
            } else if named {
                let parts = parts.into_iter().map(|(p, _)| (p, None, 0)).collect();
                Some((t, parts, ResponseError::TopicAuthorizationFailed.code()))
            } else {
                None
            }
        })
        .collect())
}

/// (partition, offset, leader epoch, metadata) with Kafka's "none" values.
fn fields(c: Option<&crate::groups::group::CommittedOffset>, v: i16) -> (i64, i32, String) {
    match c {
        Some(c) => (
            c.offset,
            if v >= 5 { c.leader_epoch } else { -1 },
            c.metadata.clone(),
        ),
        None => (-1, -1, String::new()),
    }
}

pub async fn offset_fetch(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let v = ctx.version;
    if v < 8 {
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        let mut resp = OffsetFetchResponse::default();
        let stable = v >= 7 && req.require_stable;
        match fetch_group(state, ctx, req.group_id.0.to_string(), topics, stable).await {
            Ok(found) => {
                resp.topics = found
                    .into_iter()
                    .map(|(t, parts, error)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(TopicName(sb(t)))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, c, own)| {
                                        let (offset, epoch, md) = fields(c.as_ref(), v);
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_error_code(if own != 0 { own } else { error })
                                            .with_committed_offset(offset)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(Some(sb(md)))
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
            Err(e) if v >= 2 => resp.error_code = e,
            Err(e) => {
                // v0–v1 have no top-level error: put it on every partition.
                resp.topics = req
                    .topics
                    .iter()
                    .flatten()
                    .map(|t| {
                        OffsetFetchResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(*p)
                                            .with_committed_offset(-1)
                                            .with_metadata(Some(sb("")))
                                            .with_error_code(e)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
            }
        }
        return resp;
    }
    let calls = req.groups.iter().map(|g| {
        let topics = g.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                .collect()
        });
        fetch_group(
            state,
            ctx,
            g.group_id.0.to_string(),
            topics,
            req.require_stable,
        )
    });
    let results = join_all(calls).await;
    let groups = req
        .groups
        .iter()
        .zip(results)
        .map(|(g, r)| {
            let group = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
            match r {
                Err(e) => group.with_error_code(e),
                Ok(found) => group.with_topics(
                    found
                        .into_iter()
                        .map(|(t, parts, error)| {
                            OffsetFetchResponseTopics::default()
                                .with_name(TopicName(sb(t)))
                                .with_partitions(
                                    parts
                                        .into_iter()
                                        .map(|(p, c, own)| {
                                            let (offset, epoch, md) = fields(c.as_ref(), v);
                                            OffsetFetchResponsePartitions::default()
                                                .with_partition_index(p)
                                                .with_error_code(if own != 0 { own } else { error })
                                                .with_committed_offset(offset)
                                                .with_committed_leader_epoch(epoch)
                                                .with_metadata(Some(sb(md)))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                ),
            }
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

pub async fn offset_delete(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group_id = req.group_id.0.to_string();
    // Kafka: DELETE on the group, READ on each topic.
    if !ctx.allowed(state, Operation::Delete, ResourceType::Group, &group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if !super::groups::coordinates(state, &group_id) {
        return OffsetDeleteResponse::default()
            .with_error_code(ResponseError::NotCoordinator.code());
    }
    let acl = ctx.checker(state);
    let denied: Vec<bool> = req
        .topics
        .iter()
        .map(|t| !acl.allows(Operation::Read, ResourceType::Topic, &t.name))
        .collect();
    drop(acl);
    let parts: Vec<(String, i32)> = req
        .topics
        .iter()
        .zip(&denied)
        .filter(|(_, denied)| !**denied)
        .flat_map(|(t, _)| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let shard = owner(state, &group_id);
    let result = state
        .ask(shard, OffsetDelete { group_id, parts })
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable.code()));
    let errors = match result {
        Ok(errors) => errors,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e),
    };
    let mut errors = errors.into_iter();
    let topics = req
        .topics
        .iter()
        .zip(denied)
        .map(|(t, denied)| {
            OffsetDeleteResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let error = if denied {
                                ResponseError::TopicAuthorizationFailed.code()
                            } else {
                                errors.next().unwrap_or(0)
                            };
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// OffsetCommit's entries that passed the per-partition checks, for the
/// group's owner shard; answers their common error code.
pub struct OffsetCommit {
    group_id: String,
    /// Empty, with generation -1, for a v0 commit (no membership).
    member_id: String,
    instance_id: Option<String>,
    generation: i32,
    entries: Vec<CommitEntry>,
}

impl ShardWork for OffsetCommit {
    type Out = i16;

    async fn run(self, s: Rc<ShardState>) -> i16 {
        s.groups
            .commit(
                &self.group_id,
                &self.member_id,
                self.instance_id.as_deref(),
                self.generation,
                self.entries,
            )
            .await
    }
}

/// OffsetFetch of one group, for its owner shard: the named topics'
/// partitions, or every committed offset when `topics` is None.
pub struct OffsetFetch {
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    /// OffsetFetch v7+ `RequireStable`: also name the partitions with a
    /// transaction's offset pending.
    require_stable: bool,
}

impl ShardWork for OffsetFetch {
    type Out = (FetchedOffsets, Vec<(String, i32)>);

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        let found = s.groups.fetch_offsets(&self.group_id, self.topics);
        let unstable = if self.require_stable {
            s.groups.unstable_partitions(&self.group_id, &found)
        } else {
            Vec::new()
        };
        (found, unstable)
    }
}

/// OffsetDelete of the allowed (topic, partition)s, for the group's owner
/// shard: an error per partition, or the group's error.
pub struct OffsetDelete {
    group_id: String,
    parts: Vec<(String, i32)>,
}

impl ShardWork for OffsetDelete {
    type Out = Result<Vec<i16>, i16>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        s.groups.delete_offsets(&self.group_id, self.parts).await
    }
}
