//! KIP-392 in Fetch: consumers reading from followers.
//!
//! As in Kafka (`KafkaApis.handleFetchRequest`, `ReplicaManager.readFromLog`):
//! - A consumer's Fetch v11+ carries its `client.rack` ([`ClientMetadata`]);
//!   such a consumer may read from any replica (Kafka's `fetchOnlyLeader`
//!   is false for it), an older one only from the leader.
//! - The leader picks a preferred read replica for a consumer whose rack is
//!   not its own (`replication::selector`, with `replica_selector = rack`)
//!   and answers that partition with it: no records, error 0, the high
//!   watermark and log start (Kafka skips the read then, and answers at
//!   once rather than long-polling).
//! - A follower serves a consumer below its high watermark (its leader's
//!   high watermark as of its last fetch, capped at its log end), with the
//!   consumer's leader epoch checked against the epoch it follows. It never
//!   redirects (KAFKA-13778): a consumer goes back to the leader on an error
//!   or when its preferred replica expires (Java: `metadata.max.age.ms`).

use std::sync::Arc;

use kafka_protocol::ResponseError;
use replication::selector::{preferred_read_replica, ReplicaView};
use shard::log::PartitionLog;

use crate::config::ReplicaSelector;
use crate::metadata::ClusterState;
use crate::routing::{placement, Placement};
use crate::shard_state::ShardState;

/// What a consumer's Fetch v11+ tells the broker about the client.
#[derive(Debug, Clone)]
pub struct ClientMetadata {
    /// `client.rack`; empty when none.
    pub rack: Arc<str>,
    /// The listener the client came in on: a preferred replica must be
    /// reachable there (Kafka's `getPartitionReplicaEndpoints(listener)`).
    pub listener: Arc<str>,
}

/// Where a partition is read on this broker: the shard of its replica here,
/// if this broker leads it, or follows it and `followers_too` (a consumer
/// that may read from followers).
pub fn read_placement(
    snap: &ClusterState,
    node: i32,
    topic: &str,
    partition: i32,
    followers_too: bool,
) -> Result<usize, ResponseError> {
    match placement(snap, node, topic, partition) {
        Placement::Here(shard) => Ok(shard),
        Placement::Unknown => Err(ResponseError::UnknownTopicOrPartition),
        Placement::Elsewhere if followers_too => snap
            .topic(topic)
            .and_then(|t| t.partitions.get(usize::try_from(partition).ok()?))
            .filter(|p| p.leader >= 0)
            .and_then(|p| p.shard_on(node))
            .map(|s| s as usize)
            .ok_or(ResponseError::NotLeaderOrFollower),
        Placement::Elsewhere => Err(ResponseError::NotLeaderOrFollower),
    }
}

/// Kafka's `Partition.checkCurrentLeaderEpoch`: a fetcher's epoch (-1: not
/// given) against the one this replica knows.
pub fn epoch_error(requested: i32, known: i32) -> Option<ResponseError> {
    if requested >= 0 && requested < known {
        Some(ResponseError::FencedLeaderEpoch)
    } else if requested > known {
        Some(ResponseError::UnknownLeaderEpoch)
    } else {
        None
    }
}

/// On the leader: the follower `client` should read `tp` from at `offset`,
/// if `replica_selector = rack` finds one (`replication::selector`).
pub fn preferred_replica(
    s: &ShardState,
    tp: &(String, i32),
    log: &PartitionLog,
    client: &ClientMetadata,
    offset: i64,
) -> Option<i32> {
    let own_rack = s.config.broker_rack.as_deref();
    if s.config.replica_selector == ReplicaSelector::Leader
        || client.rack.is_empty()
        || own_rack == Some(&*client.rack)
    {
        return None; // the common cases, without a snapshot or a lookup
    }
    let snap = s.metadata.snapshot();
    let now = crate::replica::now_ms();
    let log_start = log.offsets().log_start_offset;
    s.partitions
        .leaders()
        .with_progress(tp, |progress| {
            let isr = progress.isr();
            let views: Vec<ReplicaView<'_>> = progress
                .followers()
                .map(|(id, log_end, caught_up_ms)| {
                    let broker = snap.brokers.get(&id);
                    ReplicaView {
                        id,
                        rack: broker.and_then(|b| b.rack.as_deref()),
                        in_sync: isr.contains(&id),
                        live: broker
                            .is_some_and(|b| !b.fenced && b.endpoint(&client.listener).is_some()),
                        log_end,
                        since_caught_up_ms: now - caught_up_ms,
                    }
                })
                .collect();
            preferred_read_replica(&client.rack, offset, log_start, own_rack, &views)
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_consumers_leader_epoch_is_checked_as_kafka_does() {
        assert_eq!(epoch_error(-1, 5), None, "not given");
        assert_eq!(epoch_error(5, 5), None);
        assert_eq!(epoch_error(4, 5), Some(ResponseError::FencedLeaderEpoch));
        assert_eq!(epoch_error(6, 5), Some(ResponseError::UnknownLeaderEpoch));
    }
}
