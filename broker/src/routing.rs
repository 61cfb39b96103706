//! Finding the shard that owns a partition, and running per-partition work
//! on the owners: one cross-shard message per owner shard, all in parallel,
//! results put back in the caller's order.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use futures::future::join_all;

use crate::messages::{PartitionBatch, PartitionOutputs, ShardReply, ShardRequest};
use crate::metadata::ClusterState;
use crate::shard_state::ShardState;

/// Where a partition is, seen from broker `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// No such topic or partition.
    Unknown,
    /// Another broker leads it (or none does): NOT_LEADER_OR_FOLLOWER.
    Elsewhere,
    /// This broker leads it; its log is on this shard.
    Here(usize),
}

/// Where `topic`/`partition` is led, from broker `node`'s point of view.
pub fn placement(snap: &ClusterState, node: i32, topic: &str, partition: i32) -> Placement {
    let Some(p) = snap.topic(topic).and_then(|t| {
        usize::try_from(partition)
            .ok()
            .and_then(|p| t.partitions.get(p))
    }) else {
        return Placement::Unknown;
    };
    match p.shard_on(node) {
        Some(shard) if p.leader == node => Placement::Here(shard as usize),
        _ => Placement::Elsewhere,
    }
}

/// One partition's share of a request (an append, a read, a lookup), as a
/// value that travels to the partition's owner shard and runs there.
pub trait PartitionWork: Send + Sized + 'static {
    /// The answer; its default stands for "the owner shard is gone".
    type Out: Send + Default + 'static;
    /// Do the work on the owner shard.
    fn run(self, state: Rc<ShardState>) -> impl Future<Output = Self::Out> + 'static;
}

/// A [`PartitionWork`] kind's place in the cross-shard messages
/// (implemented by `partition_work!` in [`crate::messages`]).
pub trait Batched: PartitionWork {
    /// One shard's items as a message.
    fn batch(items: Vec<(usize, Self)>) -> PartitionBatch;
    /// The answers in a reply to [`Self::batch`]'s message.
    fn outputs(outputs: PartitionOutputs) -> Option<Vec<(usize, Self::Out)>>;
}

/// Run every item of one shard's batch there, concurrently; answers keep
/// their item's index.
pub async fn run_batch<W: PartitionWork>(
    state: Rc<ShardState>,
    batch: Vec<(usize, W)>,
) -> Vec<(usize, W::Out)> {
    join_all(batch.into_iter().map(|(i, item)| {
        let state = state.clone();
        async move { (i, item.run(state).await) }
    }))
    .await
}

/// Run every `(shard, item)` on its shard, items of one shard in one
/// message and concurrently there; returns outputs in input order.
pub async fn scatter<W: Batched>(state: &Rc<ShardState>, items: Vec<(usize, W)>) -> Vec<W::Out> {
    let n = items.len();
    let mut by_shard: BTreeMap<usize, Vec<(usize, W)>> = BTreeMap::new();
    for (i, (shard, item)) in items.into_iter().enumerate() {
        by_shard.entry(shard).or_default().push((i, item));
    }
    let calls = by_shard
        .into_iter()
        .map(|(shard, batch)| state.call(shard, ShardRequest::Partitions(W::batch(batch))));
    let mut out: Vec<Option<W::Out>> = (0..n).map(|_| None).collect();
    // A shard that is gone (shutdown) leaves defaults, which callers turn
    // into an error code.
    for reply in join_all(calls).await.into_iter().flatten() {
        let ShardReply::Partitions(outputs) = reply else {
            unreachable!("partition work was answered {reply:?}");
        };
        let outs = W::outputs(outputs).expect("a reply of the request's kind");
        for (i, o) in outs {
            out[i] = Some(o);
        }
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}
