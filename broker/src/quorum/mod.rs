//! The metadata quorum: every cluster-wide change is a command in a log
//! replicated by Raft (Kafka's KRaft model), applied by the pure
//! [`ClusterState::apply`](crate::metadata::ClusterState::apply).
//!
//! Consensus is raft-rs (TiKV's `raft` crate), not our own: it is a
//! "sans-I/O" library — a `RawNode` that takes ticks, messages and
//! proposals and hands back what to persist, send and apply — so it needs
//! no async runtime of its own beside glommio's, runs on one thread we
//! control, and runs unchanged in a deterministic simulation
//! (`sim_tests.rs`). It brings leader election with pre-vote and check
//! quorum, log replication, snapshots for lagging nodes, learners and joint
//! membership changes. The pieces that are ours: the log files
//! (`storage.rs`), the snapshot image (`image.rs`, rkyv), the driver
//! (`core.rs`) and its thread (`node.rs`).
//!
//! Raft node ids start at 1 and Kafka's `node.id` at 0, so the raft id of
//! a node is its `node.id` + 1 ([`raft_id`]).

pub mod active;
pub mod controller_api;
pub mod core;
pub mod image;
pub mod lifecycle;
mod log;
pub mod node;
pub mod observe;
pub mod storage;
pub mod transport;
pub mod wire;

#[cfg(test)]
mod sim_tests;

pub use self::core::CoreConfig;

use crate::metadata::{ClusterState, MetadataCommand};
pub use node::Quorum;

/// The metadata committed in the log at `dir`, read offline (the log is
/// not opened for writing): the snapshot's image and the committed
/// commands after it. `None` when there is no log there.
pub fn read_committed(dir: &std::path::Path) -> anyhow::Result<Option<ClusterState>> {
    let Some((snapshot, entries, hs)) = storage::read_log(dir)? else {
        return Ok(None);
    };
    let mut state = if snapshot.data.is_empty() {
        ClusterState::default()
    } else {
        image::decode(&snapshot.data).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
    };
    for e in entries.iter().take_while(|e| e.index <= hs.commit) {
        if e.get_entry_type() == raft::prelude::EntryType::EntryNormal && !e.data.is_empty() {
            if let Ok(cmd) = serde_json::from_slice::<MetadataCommand>(&e.data) {
                // A refused command changed nothing where it ran either;
                // any shard count is accepted offline.
                let _ = state.apply(&cmd, usize::MAX);
            }
        }
    }
    Ok(Some(state))
}

/// The raft id of Kafka node `node_id`.
pub fn raft_id(node_id: i32) -> u64 {
    assert!(node_id >= 0, "node ids are not negative");
    node_id as u64 + 1
}
