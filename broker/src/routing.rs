//! Finding the shard that owns a partition, and running per-partition work
//! on the owners: one cross-shard message per owner shard, all in parallel,
//! results put back in the caller's order.

use std::collections::BTreeMap;
use std::future::Future;
use std::rc::Rc;

use futures::future::join_all;

use crate::metadata::ClusterState;
use crate::shard_state::ShardState;

/// Owner shard of `topic`/`partition`, or `None` if it does not exist.
pub fn owner(snap: &ClusterState, topic: &str, partition: i32) -> Option<usize> {
    let t = snap.topic(topic)?;
    usize::try_from(partition)
        .ok()
        .and_then(|p| t.partitions.get(p))
        .map(|p| p.shard as usize)
}

/// Run `work(state, item)` for every `(shard, item)` on its shard, items of
/// one shard concurrently; returns outputs in input order.
pub async fn scatter<I, O, F, Fut>(
    state: &Rc<ShardState>,
    items: Vec<(usize, I)>,
    work: F,
) -> Vec<O>
where
    I: Send + 'static,
    O: Send + Default + 'static,
    F: Fn(Rc<ShardState>, I) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = O> + 'static,
{
    let n = items.len();
    let mut by_shard: BTreeMap<usize, Vec<(usize, I)>> = BTreeMap::new();
    for (i, (shard, item)) in items.into_iter().enumerate() {
        by_shard.entry(shard).or_default().push((i, item));
    }
    let calls = by_shard.into_iter().map(|(shard, batch)| {
        let work = work.clone();
        state.on_shard(shard, move |s| async move {
            let outs = join_all(batch.into_iter().map(|(i, item)| {
                let s = s.clone();
                let work = work.clone();
                async move { (i, work(s, item).await) }
            }))
            .await;
            outs
        })
    });
    let mut out: Vec<Option<O>> = (0..n).map(|_| None).collect();
    // A shard that is gone (shutdown) leaves defaults, which callers turn
    // into an error code.
    for outs in join_all(calls).await.into_iter().flatten() {
        for (i, o) in outs {
            out[i] = Some(o);
        }
    }
    out.into_iter().map(Option::unwrap_or_default).collect()
}
