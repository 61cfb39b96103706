//! Transactional offset commits (TxnOffsetCommit, KIP-98 / KIP-447): a
//! transactional producer commits a group's offsets as part of its
//! transaction. They wait, per producer id, beside the group's committed
//! offsets until the transaction coordinator's marker reaches this group's
//! `__consumer_offsets` partition: a commit makes them the committed
//! offsets, an abort drops them. Meanwhile OffsetFetch with
//! `RequireStable` answers UNSTABLE_OFFSET_COMMIT for their partitions, so
//! a read_committed consumer does not start from an offset that may still
//! move.
//!
//! Durability: a pending offset is a `txn_offset` record of the group log
//! (keyed by group, partition and producer id); its completion writes, in
//! one batch, the committed `offset` records (for a commit) and the
//! tombstones of the pending ones, so a restart rebuilds exactly what was
//! pending.

use std::collections::BTreeMap;

use kafka_protocol::ResponseError;

use super::group::{CommittedOffset, Group};
use super::offsets::CommitEntry;
use super::{store, Coordinator};

/// Offsets a producer's open transaction committed, by partition.
pub type PendingOffsets = BTreeMap<(String, i32), CommittedOffset>;

impl Group {
    /// A transaction of some producer has an offset of this partition
    /// pending.
    pub fn has_pending_txn_offset(&self, topic: &str, partition: i32) -> bool {
        let key = (topic.to_string(), partition);
        self.pending_txn.values().any(|m| m.contains_key(&key))
    }
}

impl Coordinator {
    /// The partitions of `found` with a transaction's offset pending.
    pub fn unstable_partitions(
        &self,
        group_id: &str,
        found: &super::offsets::FetchedOffsets,
    ) -> Vec<(String, i32)> {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group_id) else {
            return Vec::new();
        };
        found
            .iter()
            .flat_map(|(t, parts)| parts.iter().map(move |(p, _)| (t.clone(), *p)))
            .filter(|(t, p)| g.has_pending_txn_offset(t, *p))
            .collect()
    }

    /// TxnOffsetCommit: hold `entries` for `producer_id`'s transaction.
    /// The checks are Kafka's for transactional commits (members and
    /// generation when given; none for a commit without member and
    /// generation, as versions 0-2 send, even to a group with members).
    pub async fn txn_commit(
        &self,
        group_id: &str,
        producer_id: i64,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        entries: Vec<CommitEntry>,
    ) -> i16 {
        let now = self.now();
        if let Err(e) = self.admit_commit(group_id, member_id, instance_id, generation, true) {
            return e;
        }
        let committed: Vec<CommittedOffset> = entries.iter().map(|e| e.committed(now)).collect();
        let records: Vec<store::Entry> = entries
            .iter()
            .zip(&committed)
            .map(|(e, c)| {
                store::txn_offset_entry(group_id, &e.topic, e.partition, producer_id, Some(c))
            })
            .collect();
        let base = match self.append(&records).await {
            Ok(base) => base,
            Err(e) => {
                tracing::warn!("group {group_id}: writing transactional offsets: {e}");
                return e.code.code();
            }
        };
        let mut groups = self.groups.borrow_mut();
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id.to_string(), now));
        let pending = g.pending_txn.entry(producer_id).or_default();
        for (i, (e, mut c)) in entries.into_iter().zip(committed).enumerate() {
            c.log_offset = base + i as i64;
            pending.insert((e.topic, e.partition), c);
        }
        0
    }

    /// A marker of `producer_id` reached this shard's groups of
    /// `__consumer_offsets` partition `partition` (of `partitions`): their
    /// pending offsets are committed or dropped, durably.
    pub async fn complete_txn_offsets(
        &self,
        partition: usize,
        partitions: usize,
        producer_id: i64,
        commit: bool,
    ) -> Result<(), ResponseError> {
        let now = self.now();
        let affected: Vec<(String, PendingOffsets)> = self
            .groups
            .borrow()
            .iter()
            .filter(|(id, g)| {
                g.pending_txn.contains_key(&producer_id)
                    && crate::metadata::coordinator_partition(id, partitions) == partition
            })
            .map(|(id, g)| (id.clone(), g.pending_txn[&producer_id].clone()))
            .collect();
        for (group_id, pending) in affected {
            let mut records: Vec<store::Entry> = Vec::new();
            for ((t, p), c) in &pending {
                if commit {
                    let mut c = c.clone();
                    c.commit_timestamp = now;
                    records.push(store::offset_entry(&group_id, t, *p, &c));
                }
                records.push(store::txn_offset_entry(&group_id, t, *p, producer_id, None));
            }
            let base = self.append(&records).await.map_err(|e| {
                tracing::warn!("group {group_id}: completing transactional offsets: {e}");
                e.code
            })?;
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&group_id) else {
                continue;
            };
            g.pending_txn.remove(&producer_id);
            if commit {
                // The committed records come first in the batch, two
                // records per partition (offset, then tombstone).
                for (i, ((t, p), c)) in pending.into_iter().enumerate() {
                    let mut c = c;
                    c.commit_timestamp = now;
                    c.log_offset = base + 2 * i as i64;
                    g.apply_offset(t, p, c);
                }
            }
        }
        Ok(())
    }
}
