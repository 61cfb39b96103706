//! `max_groups`: how many consumer groups (classic and consumer-protocol,
//! with members or only committed offsets) the whole broker holds, so that
//! clients cannot grow the coordinators' memory without bound.
//!
//! Groups live on the shard their id hashes to, so the total is one atomic
//! shared by the shards (a counter, not a lock). Each shard adds the change
//! of its own count when it checks the limit, after creating a group, and
//! after the operations that remove groups (DeleteGroups, the timers, the
//! load); another shard's removals therefore count from its next such
//! operation, which is at most one timer run away.

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The broker's limit and its running total, one per broker process.
#[derive(Debug)]
pub struct GroupCensus {
    max: usize,
    total: AtomicUsize,
}

impl GroupCensus {
    /// `max` as configured; `i32::MAX` (the default) or more is no limit.
    pub fn new(max: u32) -> Option<Arc<Self>> {
        (max < i32::MAX as u32).then(|| {
            Arc::new(Self {
                max: max as usize,
                total: AtomicUsize::new(0),
            })
        })
    }
}

/// One shard's part of the census: what it last added to the total.
#[derive(Debug, Default)]
pub struct ShardCount {
    census: std::cell::OnceCell<Arc<GroupCensus>>,
    counted: Cell<usize>,
}

impl ShardCount {
    /// Join the broker's census (once, at shard start).
    pub fn join(&self, census: Arc<GroupCensus>) {
        let joined = self.census.set(census).is_ok();
        debug_assert!(joined, "a shard joins the group census once");
    }

    /// Bring the shared total up to date with this shard's `count`.
    pub fn publish(&self, count: usize) {
        let Some(census) = self.census.get() else {
            return;
        };
        let before = self.counted.replace(count);
        if count > before {
            census.total.fetch_add(count - before, Ordering::Relaxed);
        } else if before > count {
            census.total.fetch_sub(before - count, Ordering::Relaxed);
        }
    }

    /// `Some(max)` when one more group would go over `max_groups`.
    pub fn full(&self, count: usize) -> Option<usize> {
        let census = self.census.get()?;
        self.publish(count);
        (census.total.load(Ordering::Relaxed) >= census.max).then_some(census.max)
    }
}

/// The message clients see (ConsumerGroupHeartbeat, logs).
pub fn broker_full(max: usize) -> String {
    format!("The broker holds max_groups = {max} consumer groups; no new group can be created.")
}
