//! The `__transaction_state` topic: created by the controller the first
//! time a client looks for a transaction coordinator (as Kafka creates it),
//! a compacted, replicated topic like any other, so leader election,
//! reassignment and the replication pipeline all apply to it; and where
//! each transactional id's coordinator is.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::ResponseError;

use crate::config::BrokerConfig;
use crate::controller::{CreateTopic, NewTopic, CONTROLLER_SHARD};
use crate::metadata::internal::TRANSACTION_STATE;
use crate::metadata::ClusterState;
use crate::shard_state::ShardState;

/// The topic's settings (Kafka's `TransactionLog` enforces compaction,
/// no compression and unclean election off; `min.insync.replicas` is
/// `transaction.state.log.min.isr`, capped at the replicas).
pub fn topic_configs(config: &BrokerConfig, replicas: i32) -> BTreeMap<String, String> {
    let min_isr = config.transaction_state_log_min_isr.min(replicas).max(1);
    [
        ("cleanup.policy", "compact".to_string()),
        ("compression.type", "uncompressed".to_string()),
        ("unclean.leader.election.enable", "false".to_string()),
        ("min.insync.replicas", min_isr.to_string()),
        ("segment.bytes", (100 << 20).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Where `transactional_id` is coordinated: (partition, leader node), the
/// leader -1 while the partition has none; `None` before the topic exists.
pub fn coordinator_of(snap: &ClusterState, transactional_id: &str) -> Option<(i32, i32)> {
    let topic = snap.topic(TRANSACTION_STATE)?;
    let p = super::partition_for(transactional_id, topic.partitions.len() as i32);
    Some((p, topic.partitions[p as usize].leader))
}

/// Create the topic unless it exists: `transaction_state_log_num_partitions`
/// partitions with `transaction_state_log_replication_factor` replicas,
/// capped at the live brokers (Kafka refuses to create it with fewer
/// brokers than its replication factor; a single node could then never
/// run a transaction, so Shardline caps as it does for the group
/// coordinators).
pub async fn ensure(state: &Rc<ShardState>) -> Result<(), ResponseError> {
    let snap = state.metadata.snapshot();
    if snap.topic(TRANSACTION_STATE).is_some() {
        return Ok(());
    }
    let live = snap.live_brokers().count().max(1) as i32;
    let rf = state
        .config
        .transaction_state_log_replication_factor
        .min(live);
    let topic = NewTopic {
        name: TRANSACTION_STATE.to_string(),
        partitions: state.config.transaction_state_log_num_partitions,
        replication_factor: rf as i16,
        assignments: Vec::new(),
        configs: topic_configs(&state.config, rf),
        internal: true,
    };
    let created = state
        .ask(
            CONTROLLER_SHARD,
            CreateTopic {
                topic,
                validate_only: false,
            },
        )
        .await;
    match created {
        Ok(Ok(_)) => {
            tracing::info!("created {TRANSACTION_STATE} with {rf} replica(s) per partition");
            Ok(())
        }
        Ok(Err(e)) if e.code == ResponseError::TopicAlreadyExists.code() => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!("creating {TRANSACTION_STATE}: {}", e.message);
            Err(ResponseError::CoordinatorNotAvailable)
        }
        Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}
