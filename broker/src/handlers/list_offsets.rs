//! ListOffsets: earliest, latest, max-timestamp and by-timestamp lookups,
//! including v0's array of offsets.

use std::rc::Rc;

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use kafka_protocol::ResponseError;

use super::errors::log_error_code;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::routing::{owner, scatter};
use crate::shard_state::ShardState;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

#[derive(Default)]
struct Found {
    error: i16,
    offset: i64,
    timestamp: i64,
    leader_epoch: i32,
}

async fn lookup(state: Rc<ShardState>, topic: String, partition: i32, timestamp: i64) -> Found {
    let Some(log) = state.log(&topic, partition) else {
        return Found {
            error: ResponseError::NotLeaderOrFollower.code(),
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        };
    };
    let o = log.offsets();
    // As Kafka: no offset found, no leader epoch either.
    let hit = |offset: i64, timestamp| Found {
        error: 0,
        offset,
        timestamp,
        leader_epoch: if offset < 0 { -1 } else { 0 },
    };
    match timestamp {
        LATEST => hit(o.high_watermark, -1),
        EARLIEST | EARLIEST_LOCAL => hit(o.log_start_offset, -1),
        // No tiered storage: nothing is tiered.
        LATEST_TIERED => hit(-1, -1),
        MAX_TIMESTAMP => match log.max_timestamp_offset().await {
            Ok(Some((offset, ts))) => hit(offset, ts),
            Ok(None) => hit(-1, -1),
            Err(e) => Found {
                error: log_error_code(&e),
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            },
        },
        ts if ts >= 0 => match log.offset_for_timestamp(ts).await {
            Ok(Some((offset, ts))) => hit(offset, ts),
            Ok(None) => hit(-1, -1),
            Err(e) => Found {
                error: log_error_code(&e),
                offset: -1,
                timestamp: -1,
                leader_epoch: -1,
            },
        },
        _ => Found {
            error: ResponseError::InvalidRequest.code(),
            offset: -1,
            timestamp: -1,
            leader_epoch: -1,
        },
    }
}

pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let snap = state.metadata.snapshot();
    let acl = ctx.checker(state);
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
            match owner(&snap, &topic, p.partition_index) {
                Some(shard) => {
                    items.push((shard, (topic, p.partition_index, p.timestamp)));
                    missing.push(None);
                }
                None => missing.push(Some(ResponseError::UnknownTopicOrPartition)),
            }
        }
    }
    drop(acl);
    let found = scatter(
        state,
        items,
        |s, (topic, partition, ts): (String, i32, i64)| lookup(s, topic, partition, ts),
    )
    .await;
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
