//! WriteTxnMarkers, the partition leader's side: a transaction coordinator
//! (this broker's or another's) asks for commit or abort markers on the
//! partitions a transaction wrote to. Each marker is appended by the
//! partition's owner shard as the leader and answered once the in-sync
//! replicas have it (Kafka appends markers with acks=all), so a
//! read_committed consumer of any replica that becomes leader sees the
//! transaction's end.
//!
//! Broker to broker only: CLUSTER_ACTION on the cluster, as in Kafka.

use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use kafka_protocol::ResponseError;
use shard::log::{AckLevel, TxnMarker};
use shard::record::{EndTxnMarker, TxnResult};

use super::errors::log_error_code;
use super::produce::{await_replicas, min_insync_replicas, Refusal};
use super::RequestContext;
use crate::acl::Operation;
use crate::messages::ShardWork;
use crate::metadata::internal::CONSUMER_OFFSETS;
use crate::shard_state::ShardState;

/// How long a marker may wait for the in-sync replicas (Kafka uses the
/// request timeout of the coordinator's channel, 30 s by default).
const REPLICA_WAIT: Duration = Duration::from_secs(30);

/// The tagged field (a Shardline extension on v1, ignored by others) by
/// which our coordinators tell the transaction version the transaction was
/// completed with: the leader checks the marker's producer epoch by it
/// (with version 2 the coordinator bumped the epoch at EndTxn).
pub const TRANSACTION_VERSION_TAG: i32 = 10_000;

/// Where a marker goes: a data partition's owner shard (if this broker
/// has the partition: whether it leads it, and on which shard), or the
/// group coordinator's pending offsets.
enum Target {
    Partition(Option<(bool, Option<u32>)>),
    Groups,
}

/// One partition's marker, on its owner shard.
pub struct MarkerAppend {
    pub topic: String,
    pub partition: i32,
    pub marker: TxnMarker,
}

impl ShardWork for MarkerAppend {
    type Out = i16;

    async fn run(self, s: Rc<ShardState>) -> i16 {
        let tp = (self.topic, self.partition);
        let Some(log) = s.partitions.log(&tp.0, tp.1) else {
            return ResponseError::NotLeaderOrFollower.code();
        };
        let Some((isr, replicas)) = s.partitions.leaders().isr_and_replicas(&tp) else {
            return ResponseError::NotLeaderOrFollower.code();
        };
        let min_isr = (replicas > 1).then(|| min_insync_replicas(&s, &tp.0));
        if min_isr.is_some_and(|m| isr < m) {
            return ResponseError::NotEnoughReplicas.code();
        }
        let info = match log.append_txn_marker(self.marker, AckLevel::Durable).await {
            Ok(info) => info,
            Err(e) => {
                tracing::debug!("marker on {}-{} refused: {e}", tp.0, tp.1);
                return log_error_code(&e);
            }
        };
        if let Some(min_isr) = min_isr {
            match await_replicas(&s, &log, &tp, info, min_isr, REPLICA_WAIT).await {
                Ok(_) => {}
                Err(Refusal::Log(e)) => return log_error_code(&e),
                Err(Refusal::Replication(e, _)) => return e.code(),
            }
        }
        0
    }
}

pub async fn write_txn_markers(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let allowed = ctx.cluster_allowed(state, Operation::ClusterAction);
    let snap = state.metadata.snapshot();
    let node = state.config.node_id;
    let mut resp = WriteTxnMarkersResponse::default();
    for m in req.markers {
        let tv = m
            .unknown_tagged_fields
            .get(&TRANSACTION_VERSION_TAG)
            .and_then(|b| b.first().copied())
            .map_or(0, |v| v as i16);
        let marker = TxnMarker {
            producer_id: m.producer_id.0,
            producer_epoch: m.producer_epoch,
            marker: EndTxnMarker {
                result: if m.transaction_result {
                    TxnResult::Commit
                } else {
                    TxnResult::Abort
                },
                coordinator_epoch: m.coordinator_epoch,
            },
            transaction_version: tv,
        };
        let mut jobs = Vec::new();
        for t in &m.topics {
            let topic = t.name.0.to_string();
            if topic == CONSUMER_OFFSETS {
                for &p in &t.partition_indexes {
                    jobs.push((topic.clone(), p, Target::Groups));
                }
                continue;
            }
            for &p in &t.partition_indexes {
                let owner = snap
                    .topic(&topic)
                    .and_then(|meta| meta.partitions.get(p as usize))
                    .map(|meta| (meta.leader == node, meta.shard_on(node)));
                jobs.push((topic.clone(), p, Target::Partition(owner)));
            }
        }
        let answers = futures::future::join_all(jobs.into_iter().map(|(topic, p, owner)| {
            let state = state.clone();
            async move {
                let code = if !allowed {
                    ResponseError::ClusterAuthorizationFailed.code()
                } else {
                    let owner = match owner {
                        Target::Groups => {
                            let commit = marker.marker.result == TxnResult::Commit;
                            let code = super::txn_offsets::complete_group_txn(
                                &state,
                                p,
                                marker.producer_id,
                                commit,
                            )
                            .await;
                            return (topic, p, code);
                        }
                        Target::Partition(owner) => owner,
                    };
                    match owner {
                        None => ResponseError::UnknownTopicOrPartition.code(),
                        Some((false, _)) | Some((true, None)) => {
                            ResponseError::NotLeaderOrFollower.code()
                        }
                        Some((true, Some(shard))) => {
                            let work = MarkerAppend {
                                topic: topic.clone(),
                                partition: p,
                                marker,
                            };
                            state
                                .ask(shard as usize, work)
                                .await
                                .unwrap_or(ResponseError::NotLeaderOrFollower.code())
                        }
                    }
                };
                (topic, p, code)
            }
        }))
        .await;
        let mut topics: Vec<WritableTxnMarkerTopicResult> = Vec::new();
        for (topic, p, code) in answers {
            let r = WritableTxnMarkerPartitionResult::default()
                .with_partition_index(p)
                .with_error_code(code);
            match topics.iter_mut().find(|x| x.name.0.as_str() == topic) {
                Some(x) => x.partitions.push(r),
                None => topics.push(
                    WritableTxnMarkerTopicResult::default()
                        .with_name(super::groups::sb(topic).into())
                        .with_partitions(vec![r]),
                ),
            }
        }
        resp.markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    resp
}
