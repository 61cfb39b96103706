//! Bringing this broker's partitions in line with the metadata: every
//! broker applies the committed log, and what changed for the replicas it
//! holds — a new topic or partition, a deleted one, a new leader epoch, a
//! config change — is done here to their logs on their owner shards.
//!
//! It runs on the controller shard, in the admin operations' turn (so it
//! never interleaves with this broker's own create or delete of the same
//! names): after each local admin command, and whenever the quorum thread
//! says the state changed (a command from another broker, a leader change).
//! It compares the state it last brought the logs to with the newest one,
//! so running it twice does nothing the second time.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use futures::StreamExt;
use uuid::Uuid;

use crate::config::BrokerConfig;
use crate::controller::ask_owner;
use crate::messages::ShardReply;
use crate::metadata::ClusterState;
use crate::partitions::PartitionAdmin;
use crate::replica::{role_of, Role};
use crate::shard_state::ShardState;

/// A replica this node holds, as the metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Replica {
    topic_id: Uuid,
    shard: u32,
    /// Leader (with its ISR and epochs), follower of whom, or idle: any
    /// change is sent to the owner shard.
    role: Role,
}

/// The replicas of `node` in `state`, by (topic, partition).
fn replicas_of(state: &ClusterState, cfg: &BrokerConfig) -> BTreeMap<(String, i32), Replica> {
    let node = cfg.node_id;
    let mut out = BTreeMap::new();
    for t in state.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            if let Some(shard) = p.shard_on(node) {
                out.insert(
                    (t.name.clone(), i as i32),
                    Replica {
                        topic_id: t.id,
                        shard,
                        role: role_of(state, cfg, p),
                    },
                );
            }
        }
    }
    out
}

/// Partitions that failed to open: `(topic, partition)` and why.
pub type Failures = Vec<((String, i32), String)>;

/// Bring the local logs from the state last reconciled to the newest one.
/// The caller holds the admin turn.
pub async fn reconcile(state: &Rc<ShardState>) -> Failures {
    let controller = state.controller();
    let newest = state.metadata.snapshot();
    let known = controller.known.replace(newest.clone());
    if Arc::ptr_eq(&known, &newest) {
        return Vec::new();
    }
    let node = state.config.node_id;
    let before = replicas_of(&known, &state.config);
    let after = replicas_of(&newest, &state.config);
    // Deletions first: a topic deleted and created again under its name
    // reuses the directory names, which must be empty by then. All are
    // closed before any is deleted: after running out of descriptors,
    // deleting a directory needs one.
    let gone: Vec<(&(String, i32), &Replica)> = before
        .iter()
        .filter(|(key, old)| after.get(key).is_none_or(|r| r.topic_id != old.topic_id))
        .collect();
    for ((topic, partition), old) in &gone {
        let close = PartitionAdmin::Close {
            topic: topic.clone(),
            partition: *partition,
        };
        let _ = ask_owner(state, old.shard as usize, close).await;
    }
    for ((topic, partition), old) in &gone {
        let destroy = PartitionAdmin::Destroy {
            topic: topic.clone(),
            partition: *partition,
        };
        let _ = ask_owner(state, old.shard as usize, destroy).await;
    }
    let mut failures = Vec::new();
    for ((topic, partition), r) in &after {
        if before.get(&(topic.clone(), *partition)) == Some(r) {
            continue;
        }
        let open = PartitionAdmin::Open {
            topic: topic.clone(),
            partition: *partition,
            role: r.role.clone(),
        };
        let outcome = match ask_owner(state, r.shard as usize, open).await {
            Ok(ShardReply::Opened(outcome)) => outcome,
            Ok(other) => unreachable!("opening a partition was answered {other:?}"),
            Err(gone) => Err(gone.to_string()),
        };
        if let Err(why) = outcome {
            failures.push(((topic.clone(), *partition), why));
        }
    }
    // Config changes of topics that stay: their owners re-read settings.
    for (name, t) in &newest.topics {
        let Some(old) = known.topic(name) else {
            continue;
        };
        if old.id != t.id || old.configs == t.configs {
            continue;
        }
        let mut owners: Vec<u32> = t
            .partitions
            .iter()
            .filter_map(|p| p.shard_on(node))
            .collect();
        owners.sort_unstable();
        owners.dedup();
        for shard in owners {
            let reconfigure = PartitionAdmin::Reconfigure {
                topic: name.clone(),
            };
            let _ = ask_owner(state, shard as usize, reconfigure).await;
        }
    }
    failures
}

/// Reconcile whenever the quorum thread publishes a change (runs on the
/// controller shard until the broker stops). Changes made meanwhile are
/// coalesced into one run: only the newest state matters.
pub async fn follow(state: Rc<ShardState>, mut changes: futures::channel::mpsc::Receiver<()>) {
    let electing = Rc::new(std::cell::Cell::new(false));
    while changes.next().await.is_some() {
        {
            let _turn = crate::controller::admin_turn(&state).await;
            for ((topic, partition), why) in reconcile(&state).await {
                tracing::error!("{topic}-{partition}: the replica here could not be opened: {why}");
            }
        }
        // The active controller's elections the change may call for.
        crate::controller::replicas::after_change(&state, &electing);
    }
}
