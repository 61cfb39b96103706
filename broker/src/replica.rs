//! This broker's side of the replication pipeline (the `replication`
//! crate): what role each local replica has by the metadata log, the ISR
//! changes its leaders propose, and the periodic lag check.
//!
//! Roles are derived from the committed metadata only (every node derives
//! the same): the leader leads in its leader epoch; every other replica
//! follows the leader named there, from that broker's inter-broker
//! listener; a partition with no leader (offline) is neither led nor
//! followed here.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use replication::{IsrChange, Leadership, TopicPartition};

use crate::config::BrokerConfig;
use crate::metadata::{ClusterState, MetadataCommand, MetadataStore, PartitionMeta};
use crate::partitions::PartitionManager;

/// A local replica's role, as the owner shard is told it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    Leader(Leadership),
    Follower {
        leader: i32,
        addr: SocketAddr,
        leader_epoch: i32,
    },
    /// No leader, or none reachable: neither led nor followed here.
    Idle,
}

/// The role of `node`'s replica of `p` in `snap`.
pub fn role_of(snap: &ClusterState, cfg: &BrokerConfig, p: &PartitionMeta) -> Role {
    let node = cfg.node_id;
    if p.leader == node {
        return Role::Leader(Leadership {
            replicas: p.replicas.clone(),
            isr: p.isr.clone(),
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
        });
    }
    if p.leader < 0 || !p.replicas.contains(&node) {
        return Role::Idle;
    }
    match crate::inter_broker::peer_addr(snap, p.leader, cfg) {
        Some(addr) => Role::Follower {
            leader: p.leader,
            addr,
            leader_epoch: p.leader_epoch,
        },
        None => Role::Idle,
    }
}

/// Propose `change` of `tp` to the metadata log (a task of the owner
/// shard); a refusal lets the leader propose again later.
pub fn propose(partitions: &Rc<PartitionManager>, tp: TopicPartition, change: IsrChange) {
    let partitions = partitions.clone();
    let metadata: Arc<MetadataStore> = partitions.metadata().clone();
    let me = partitions.node_id();
    // Shrink or expand, against the ISR committed now (for the metrics).
    let isr_before = partitions.leaders().isr_and_replicas(&tp).map(|(n, _)| n);
    shard::rt::spawn_detached(async move {
        let Some(id) = metadata.snapshot().topic(&tp.0).map(|t| t.id) else {
            partitions.leaders().change_failed(&tp, &change);
            return;
        };
        let cmd = MetadataCommand::AlterPartition {
            topic: tp.0.clone(),
            id,
            partition: tp.1,
            leader: me,
            leader_epoch: change.leader_epoch,
            partition_epoch: change.partition_epoch,
            isr: change.isr.clone(),
        };
        match metadata.execute(cmd).await {
            Ok(_) => {
                tracing::info!(
                    "{}-{}: ISR is now {:?} (leader epoch {})",
                    tp.0,
                    tp.1,
                    change.isr,
                    change.leader_epoch
                );
                if let Some(before) = isr_before.filter(|&n| n != change.isr.len()) {
                    crate::metrics::replication::isr_change_committed(change.isr.len() < before);
                }
            }
            Err(e) => {
                tracing::info!(
                    "{}-{}: ISR change to {:?} refused: {e}",
                    tp.0,
                    tp.1,
                    change.isr
                );
                partitions.leaders().change_failed(&tp, &change);
            }
        }
    });
}

/// Every half lag time (Kafka's `isr-expiration` task): drop from the ISRs
/// this shard leads the followers that lag or are fenced. Runs until the
/// shard stops.
pub async fn check_lagging(partitions: Rc<PartitionManager>, lag_ms: u64) {
    let every = Duration::from_millis((lag_ms / 2).max(50));
    loop {
        shard::rt::sleep(every).await;
        let snap = partitions.metadata().snapshot();
        let changes = partitions
            .leaders()
            .check_lagging(now_ms(), lag_ms as i64, |r| snap.is_live(r));
        for (tp, change) in changes {
            tracing::info!(
                "{}-{}: shrinking the ISR to {:?} (followers lagging or fenced)",
                tp.0,
                tp.1,
                change.isr
            );
            propose(&partitions, tp, change);
        }
    }
}

/// Wall-clock milliseconds (the followers' lag is measured in them).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
