//! The transactional side of producer state (Kafka's `ProducerAppendInfo`
//! and `ProducerStateManager` transaction bookkeeping): each producer's open
//! transaction and coordinator epoch, the open transactions by first
//! offset, the completed ones whose marker is not yet below the high
//! watermark, and from both the first unstable offset, which bounds the
//! last stable offset (LSO).
//!
//! Transitions, the same on a leader, a follower and a replay at load:
//! - a transactional data batch of a producer with no open transaction
//!   opens one at its base offset;
//! - a marker (COMMIT or ABORT) closes it: the producer's epoch becomes the
//!   marker's (KIP-890's end-of-transaction bump), its coordinator epoch
//!   the marker's, and the transaction is *completed* until the high
//!   watermark passes the marker. A marker of a producer with no open
//!   transaction is written all the same but completes nothing (Kafka).
//!
//! Checks a leader makes before it appends (Kafka 4.x, `ProducerAppendInfo`
//! and `UnifiedLog.append`); followers and replays do not check (what the
//! leader wrote is the log):
//! - a non-transactional data batch from a producer with an open
//!   transaction: INVALID_TXN_STATE;
//! - a transactional data batch of a producer whose open transaction has
//!   another epoch: INVALID_TXN_STATE (the new epoch must not join the old
//!   epoch's transaction; Kafka refuses it as unverified, KIP-890 part 1);
//! - a marker with an older producer epoch: INVALID_PRODUCER_EPOCH. With
//!   transaction version 2 a marker carries the coordinator's bumped epoch,
//!   so it must be above the transaction's: a marker with the producer's
//!   current epoch while a transaction is open is one of an earlier
//!   transaction arriving late, refused the same way; with no open
//!   transaction it is a retry of a marker already written, accepted
//!   (KAFKA-19999);
//! - a marker with an older coordinator epoch than the producer's last
//!   one: TRANSACTION_COORDINATOR_FENCED (a zombie coordinator).

use std::collections::BTreeMap;

use super::error::LogError;
use super::producer_state::{ProducerEntry, ProducerStates};
use crate::record::{EndTxnMarker, TxnResult};

/// A transaction a marker closed (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The marker's offset.
    pub last_offset: i64,
    pub aborted: bool,
}

/// Open and completed-but-unreplicated transactions, by first offset.
/// Derived from the producers' entries (and the appends since a load), so
/// never in a snapshot.
#[derive(Debug, Clone, Default)]
pub(super) struct Transactions {
    /// First offset → producer id.
    ongoing: BTreeMap<i64, i64>,
    /// First offset → (producer id, marker offset): completed, but the
    /// marker is not yet below the high watermark, so a consumer could
    /// still see the transaction's data without its end.
    unreplicated: BTreeMap<i64, (i64, i64)>,
}

impl Transactions {
    /// Producers whose completed transaction is not yet stable.
    pub(super) fn unstable_producers(&self) -> Vec<i64> {
        self.unreplicated.values().map(|&(pid, _)| pid).collect()
    }
}

/// `transaction_version` of markers from coordinators before KIP-890 part 2.
pub const TRANSACTION_VERSION_1: i16 = 1;

impl ProducerStates {
    /// The lowest first offset of the open transactions and of the
    /// completed ones whose marker is not yet below the high watermark:
    /// consumers reading committed data stop there.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        let txns = &self.txns;
        let ongoing = txns.ongoing.keys().next().copied();
        let unreplicated = txns.unreplicated.keys().next().copied();
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The high watermark reached `hw`: completed transactions whose marker
    /// lies below it are stable (Kafka's `removeUnreplicatedTransactions`).
    pub fn on_high_watermark(&mut self, hw: i64) {
        self.txns
            .unreplicated
            .retain(|_, &mut (_, marker)| marker >= hw);
    }

    /// Whether `producer_id` has an open transaction in `epoch` (Kafka's
    /// `hasOngoingTransaction`).
    pub fn has_ongoing_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.entry(producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some() && e.epoch == epoch)
    }

    /// The first offset of `producer_id`'s open transaction, if any.
    pub fn open_transaction(&self, producer_id: i64) -> Option<i64> {
        self.entry(producer_id)?.current_txn_first_offset
    }

    /// Open transactions, oldest first: (first offset, producer id).
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.txns.ongoing.iter().map(|(&f, &p)| (f, p)).collect()
    }

    /// A leader's check of a data batch (see the module comment). The
    /// sequence and epoch checks of idempotence come first (`check`).
    pub fn check_txn_data(
        &self,
        producer_id: i64,
        epoch: i16,
        transactional: bool,
    ) -> Result<(), LogError> {
        let Some(entry) = self.entry(producer_id) else {
            return Ok(());
        };
        match (entry.current_txn_first_offset, transactional) {
            (Some(first), false) => Err(LogError::InvalidTxnState(format!(
                "non-transactional batch from producer {producer_id}, which has a transaction \
                 open since offset {first}"
            ))),
            (Some(first), true) if epoch != entry.epoch => Err(LogError::InvalidTxnState(format!(
                "transactional batch of producer {producer_id} in epoch {epoch}, whose \
                 transaction open since offset {first} is of epoch {}",
                entry.epoch
            ))),
            _ => Ok(()),
        }
    }

    /// A leader's check of a marker (see the module comment).
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
        transaction_version: i16,
    ) -> Result<(), LogError> {
        let Some(entry) = self.entry(producer_id) else {
            return Ok(());
        };
        let open = entry.current_txn_first_offset.is_some();
        let stale = if transaction_version >= 2 {
            epoch < entry.epoch || (epoch == entry.epoch && open)
        } else {
            epoch < entry.epoch
        };
        if stale {
            return Err(LogError::InvalidProducerEpoch);
        }
        if marker.coordinator_epoch < entry.coordinator_epoch {
            return Err(LogError::TransactionCoordinatorFenced {
                producer_id,
                coordinator_epoch: marker.coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// A data batch was appended: a transactional one opens a transaction
    /// if its producer has none. Returns true if it opened one.
    pub(super) fn note_txn_data(
        &mut self,
        producer_id: i64,
        base_offset: i64,
        transactional: bool,
    ) -> bool {
        if !transactional {
            return false;
        }
        let entry = self.entry_mut(producer_id);
        if entry.current_txn_first_offset.is_some() {
            return false;
        }
        entry.current_txn_first_offset = Some(base_offset);
        let previous = self.txns.ongoing.insert(base_offset, producer_id);
        debug_assert!(previous.is_none(), "two transactions open at {base_offset}");
        true
    }

    /// A marker was appended at `offset`: close the producer's transaction
    /// (if open), take the marker's producer and coordinator epochs.
    /// Returns the completed transaction, which the caller indexes (if
    /// aborted) and then passes to [`complete`](Self::complete).
    pub(super) fn note_marker(
        &mut self,
        producer_id: i64,
        epoch: i16,
        marker: EndTxnMarker,
        offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        let entry = self.entry_mut(producer_id);
        if entry.epoch != epoch {
            // Kafka's `maybeUpdateProducerEpoch`: a new epoch restarts the
            // sequences (KIP-890's bump at the end of every transaction).
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.coordinator_epoch = marker.coordinator_epoch;
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
        let first = entry.current_txn_first_offset.take()?;
        assert!(
            first <= offset,
            "transaction of producer {producer_id} opened at {first}, after its marker at {offset}"
        );
        let removed = self.txns.ongoing.remove(&first);
        debug_assert_eq!(removed, Some(producer_id), "open transaction at {first}");
        Some(CompletedTxn {
            producer_id,
            first_offset: first,
            last_offset: offset,
            aborted: marker.result == TxnResult::Abort,
        })
    }

    /// The last stable offset to record with `txn`'s index entry (Kafka's
    /// `lastStableOffset(completedTxn)`): the first open transaction of
    /// another producer, else the offset after the marker.
    pub(super) fn last_stable_offset_for(&self, txn: &CompletedTxn) -> i64 {
        self.txns
            .ongoing
            .iter()
            .find(|&(_, &pid)| pid != txn.producer_id)
            .map_or(txn.last_offset + 1, |(&first, _)| first)
    }

    /// Hold `txn` as unstable until the high watermark passes its marker.
    pub(super) fn complete(&mut self, txn: CompletedTxn) {
        self.txns
            .unreplicated
            .insert(txn.first_offset, (txn.producer_id, txn.last_offset));
    }

    /// Rebuild the derived maps from the entries (after a snapshot load).
    pub(super) fn rebuild_transactions(&mut self) {
        let ongoing = self
            .entries()
            .filter_map(|(&pid, e)| Some((e.current_txn_first_offset?, pid)))
            .collect();
        self.txns = Transactions {
            ongoing,
            unreplicated: BTreeMap::new(),
        };
    }

    /// Forget the transactional state at or past `offset` (truncation): a
    /// transaction opened there is not open any more, and one whose marker
    /// was cut while it was still unstable is open again. (The log's own
    /// truncation rebuilds everything by a replay of the files instead,
    /// which also reopens transactions whose marker was already stable.)
    pub(super) fn truncate_transactions_from(&mut self, offset: i64) {
        for entry in self.entries_mut() {
            if entry.current_txn_first_offset.is_some_and(|f| f >= offset) {
                entry.current_txn_first_offset = None;
            }
        }
        let cut: Vec<(i64, i64)> = self
            .txns
            .unreplicated
            .iter()
            .filter(|(_, &(_, marker))| marker >= offset)
            .map(|(&first, &(pid, _))| (first, pid))
            .collect();
        for (first, pid) in cut {
            self.txns.unreplicated.remove(&first);
            if first < offset {
                self.entry_mut(pid).current_txn_first_offset = Some(first);
            }
        }
        self.rebuild_ongoing_only();
    }

    fn rebuild_ongoing_only(&mut self) {
        let ongoing: BTreeMap<i64, i64> = self
            .entries()
            .filter_map(|(&pid, e)| Some((e.current_txn_first_offset?, pid)))
            .collect();
        self.txns.ongoing = ongoing;
    }
}

/// Whether an entry carries transactional state worth keeping when it
/// holds no batches (an open transaction, or a coordinator epoch that
/// fences older coordinators).
pub(super) fn has_txn_state(entry: &ProducerEntry) -> bool {
    entry.current_txn_first_offset.is_some() || entry.coordinator_epoch >= 0
}
