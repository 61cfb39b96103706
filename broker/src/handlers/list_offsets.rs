//! ListOffsets: earliest, latest, max-timestamp and by-timestamp lookups,
//! including v0's array of offsets. With `isolation_level` 1 (v2+,
//! read_committed) LATEST is the last stable offset and the timestamp
//! lookups find only records below it, as Kafka's
//! `Partition.fetchOffsetForTimestamp`.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;
use shard::log::LogError;

use super::errors::log_error_code;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::routing::{placement, scatter, PartitionWork, Placement};
use crate::shard_state::ShardState;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

#[derive(Default)]
pub struct Found {
    error: i16,
    offset: i64,
    timestamp: i64,
    leader_epoch: i32,
}

impl Found {
    fn error(code: i16) -> Found {
        Found {
            error: code,
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        }
    }

    /// As Kafka: no offset found, no leader epoch either.
    fn hit(offset: i64, timestamp: i64) -> Found {
        Found {
            error: 0,
            offset,
            timestamp,
            leader_epoch: if offset < 0 { -1 } else { 0 },
        }
    }

    /// A lookup in the log: the record's (offset, timestamp), none, or why not.
    fn of(found: Result<Option<(i64, i64)>, LogError>) -> Found {
        match found {
            Ok(Some((offset, ts))) => Found::hit(offset, ts),
            Ok(None) => Found::hit(-1, -1),
            Err(e) => Found::error(log_error_code(&e)),
        }
    }
}

/// One partition's offset lookup (topic, partition, timestamp,
/// read_committed), on its owner shard.
pub struct Lookup(String, i32, i64, bool);

impl PartitionWork for Lookup {
    type Out = Found;

    async fn run(self, state: Rc<ShardState>) -> Found {
        let Lookup(topic, partition, timestamp, committed) = self;
        lookup(state, topic, partition, timestamp, committed).await
    }
}

async fn lookup(
    state: Rc<ShardState>,
    topic: String,
    partition: i32,
    timestamp: i64,
    committed: bool,
) -> Found {
    let Some(log) = state.partitions.log(&topic, partition) else {
        return Found::error(ResponseError::NotLeaderOrFollower.code());
    };
    let o = log.offsets();
    match timestamp {
        LATEST if committed => Found::hit(o.last_stable_offset, -1),
        LATEST => Found::hit(o.high_watermark, -1),
        EARLIEST | EARLIEST_LOCAL => Found::hit(o.log_start_offset, -1),
        // No tiered storage: nothing is tiered.
        LATEST_TIERED => Found::hit(-1, -1),
        MAX_TIMESTAMP if committed => Found::of(log.max_timestamp_offset_committed().await),
        MAX_TIMESTAMP => Found::of(log.max_timestamp_offset().await),
        ts if ts >= 0 && committed => Found::of(log.offset_for_timestamp_committed(ts).await),
        ts if ts >= 0 => Found::of(log.offset_for_timestamp(ts).await),
        _ => Found::error(ResponseError::InvalidRequest.code()),
    }
}

/// ListOffsets `isolation_level` READ_COMMITTED (v2+).
const READ_COMMITTED: i8 = 1;

pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let snap = state.metadata.snapshot();
    let acl = ctx.checker(state);
    let committed = ctx.version >= 2 && req.isolation_level == READ_COMMITTED;
    let mut items = Vec::new();
    // Per partition: the error answered without a lookup, if any.
    let mut missing = Vec::new();
    for t in &req.topics {
        let authorized = acl.allows(Operation::Describe, ResourceType::Topic, &t.name);
        for p in &t.partitions {
            let topic = t.name.0.to_string();
            if !authorized {
                missing.push(Some(ResponseError::TopicAuthorizationFailed));
                continue;
            }
            match placement(&snap, state.config.node_id, &topic, p.partition_index) {
                Placement::Here(shard) => {
                    items.push((
                        shard,
                        Lookup(topic, p.partition_index, p.timestamp, committed),
                    ));
                    missing.push(None);
                }
                Placement::Elsewhere => missing.push(Some(ResponseError::NotLeaderOrFollower)),
                Placement::Unknown => missing.push(Some(ResponseError::UnknownTopicOrPartition)),
            }
        }
    }
    drop(acl);
    let found = scatter(state, items).await;
    let mut found = found.into_iter();
    let mut missing = missing.into_iter();
    let mut resp = ListOffsetsResponse::default();
    for t in req.topics {
        let mut topic = ListOffsetsTopicResponse::default().with_name(t.name);
        for p in t.partitions {
            let f = if let Some(e) = missing.next().expect("one per partition") {
                Found {
                    error: e.code(),
                    offset: -1,
                    timestamp: -1,
                    leader_epoch: -1,
                }
            } else {
                found.next().expect("one per item")
            };
            let mut pr = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_error_code(f.error);
            if ctx.version == 0 {
                let offsets = if f.error == 0 && f.offset >= 0 && p.max_num_offsets > 0 {
                    vec![f.offset]
                } else {
                    vec![]
                };
                pr = pr.with_old_style_offsets(offsets);
            } else {
                pr = pr.with_offset(f.offset).with_timestamp(f.timestamp);
                if ctx.version >= 4 {
                    pr = pr.with_leader_epoch(f.leader_epoch);
                }
            }
            topic.partitions.push(pr);
        }
        resp.topics.push(topic);
    }
    resp
}
