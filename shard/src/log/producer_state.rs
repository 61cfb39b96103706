//! Idempotent-producer bookkeeping for one partition: the producer epoch and
//! the last few batches' sequence ranges of every producer id, so that a
//! retried batch is answered with its original offset instead of being
//! written twice, and a gap in sequences is refused (Kafka's
//! ProducerStateManager). Each producer's transactional state (its open
//! transaction, its coordinator's epoch) is kept here too; the rules and
//! the open transactions by offset are `txn_state.rs`'s.

use std::collections::{HashMap, VecDeque};

use super::txn_state::Transactions;

use serde::{Deserialize, Serialize};

/// Kafka keeps the last five batches per producer: the client limits
/// in-flight requests to five when idempotence is on.
pub const RETAINED_BATCHES: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchSeq {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProducerEntry {
    pub epoch: i16,
    pub batches: VecDeque<BatchSeq>,
    pub last_timestamp: i64,
    /// The first offset of the producer's open transaction. Defaulted so
    /// that snapshots written before transactions still load.
    #[serde(default)]
    pub current_txn_first_offset: Option<i64>,
    /// The epoch of the coordinator that wrote the producer's last marker
    /// (-1: none yet): a marker from an older one is a zombie's.
    #[serde(default = "no_coordinator_epoch")]
    pub coordinator_epoch: i32,
}

fn no_coordinator_epoch() -> i32 {
    -1
}

impl Default for ProducerEntry {
    fn default() -> Self {
        Self {
            epoch: 0,
            batches: VecDeque::new(),
            last_timestamp: 0,
            current_txn_first_offset: None,
            coordinator_epoch: no_coordinator_epoch(),
        }
    }
}

/// What the producer state says about an incoming batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// New, in order: append it.
    Accept,
    /// Already in the log at this base offset: answer success, write nothing.
    Duplicate { base_offset: i64 },
    /// The epoch is older than the producer's current one.
    InvalidEpoch,
    /// Sequence does not follow the last one.
    OutOfOrder { expected: i32, got: i32 },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProducerStates {
    producers: HashMap<i64, ProducerEntry>,
    /// Open and not yet stable transactions by offset, derived from the
    /// entries (rebuilt after a snapshot is read, see `txn_state.rs`).
    #[serde(skip)]
    pub(super) txns: Transactions,
}

fn next_seq(seq: i32) -> i32 {
    if seq == i32::MAX {
        0
    } else {
        seq + 1
    }
}

impl ProducerStates {
    pub fn check(&self, producer_id: i64, epoch: i16, first_seq: i32, last_seq: i32) -> SeqCheck {
        let Some(entry) = self.producers.get(&producer_id) else {
            // Unknown producer (new, or its state expired): Kafka accepts any
            // starting sequence here.
            return SeqCheck::Accept;
        };
        if epoch < entry.epoch {
            return SeqCheck::InvalidEpoch;
        }
        if epoch > entry.epoch {
            // A bumped epoch restarts sequences at zero.
            return if first_seq == 0 {
                SeqCheck::Accept
            } else {
                SeqCheck::OutOfOrder {
                    expected: 0,
                    got: first_seq,
                }
            };
        }
        if let Some(dup) = entry
            .batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
        {
            return SeqCheck::Duplicate {
                base_offset: dup.base_offset,
            };
        }
        // A known producer with no batch in its current epoch (a marker of
        // transaction version 2 bumped the epoch and restarted sequences)
        // continues at zero, as after any bump (Kafka's `checkSequence`:
        // the last sequence is then NO_SEQUENCE). Accepting any sequence
        // here let a later batch of the new epoch land before the first
        // one, whose retry was then refused as out of order for ever.
        let expected = entry
            .batches
            .back()
            .map_or(0, |last| next_seq(last.last_seq));
        if first_seq == expected {
            SeqCheck::Accept
        } else {
            SeqCheck::OutOfOrder {
                expected,
                got: first_seq,
            }
        }
    }

    /// Record an appended batch (also used when replaying the log at start).
    pub fn record(&mut self, producer_id: i64, epoch: i16, seq: BatchSeq, timestamp: i64) {
        let entry = self.producers.entry(producer_id).or_default();
        if epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = epoch;
        }
        entry.batches.push_back(seq);
        while entry.batches.len() > RETAINED_BATCHES {
            entry.batches.pop_front();
        }
        entry.last_timestamp = entry.last_timestamp.max(timestamp);
    }

    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    /// Whether `producer_id` has no batch here in its current epoch: no
    /// state at all, or a marker bumped its epoch since its last batch
    /// (Kafka's `ProducerStateEntry.isEmpty`).
    pub fn has_no_batches(&self, producer_id: i64) -> bool {
        self.producers
            .get(&producer_id)
            .is_none_or(|e| e.batches.is_empty())
    }

    pub fn entry(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    pub(super) fn entry_mut(&mut self, producer_id: i64) -> &mut ProducerEntry {
        self.producers.entry(producer_id).or_default()
    }

    pub(super) fn entries(&self) -> impl Iterator<Item = (&i64, &ProducerEntry)> {
        self.producers.iter()
    }

    pub(super) fn entries_mut(&mut self) -> impl Iterator<Item = &mut ProducerEntry> {
        self.producers.values_mut()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Forget producers idle for `expiration_ms` at `now_ms` (Kafka's
    /// `removeExpiredProducers`, `producer.id.expiration.ms`): those with
    /// no open transaction whose last batch or marker is that old. A
    /// retry from one after that is a new producer to this partition (any
    /// sequence is accepted, as Kafka does). Without it every producer
    /// id ever seen stayed in memory and in every snapshot. Returns how
    /// many were forgotten.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let unstable = self.txns.unstable_producers();
        self.producers.retain(|pid, e| {
            e.current_txn_first_offset.is_some()
                || unstable.contains(pid)
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        before - self.producers.len()
    }

    /// Forget batches at or after `offset` (the log was truncated there),
    /// and the transactions opened or completed there. An entry with no
    /// batches left is dropped unless it has transactional state.
    pub fn truncate_from(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.truncate_transactions_from(offset);
        self.producers
            .retain(|_, e| !e.batches.is_empty() || super::txn_state::has_txn_state(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(first: i32, last: i32, off: i64) -> BatchSeq {
        BatchSeq {
            first_seq: first,
            last_seq: last,
            base_offset: off,
            last_offset: off + (last - first) as i64,
        }
    }

    #[test]
    fn in_order_duplicate_and_gap() {
        let mut s = ProducerStates::default();
        assert_eq!(s.check(7, 0, 0, 4), SeqCheck::Accept);
        s.record(7, 0, seq(0, 4, 100), 1);
        assert_eq!(s.check(7, 0, 5, 9), SeqCheck::Accept);
        s.record(7, 0, seq(5, 9, 105), 2);
        assert_eq!(
            s.check(7, 0, 0, 4),
            SeqCheck::Duplicate { base_offset: 100 }
        );
        assert_eq!(
            s.check(7, 0, 5, 9),
            SeqCheck::Duplicate { base_offset: 105 }
        );
        assert_eq!(
            s.check(7, 0, 11, 12),
            SeqCheck::OutOfOrder {
                expected: 10,
                got: 11
            }
        );
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut s = ProducerStates::default();
        s.record(1, 3, seq(0, 0, 0), 1);
        assert_eq!(s.check(1, 2, 1, 1), SeqCheck::InvalidEpoch);
        assert_eq!(
            s.check(1, 4, 5, 5),
            SeqCheck::OutOfOrder {
                expected: 0,
                got: 5
            }
        );
        assert_eq!(s.check(1, 4, 0, 0), SeqCheck::Accept);
        s.record(1, 4, seq(0, 0, 1), 2);
        assert_eq!(s.check(1, 4, 0, 0), SeqCheck::Duplicate { base_offset: 1 });
    }

    /// Transaction version 2: a marker bumps the epoch and forgets the
    /// batches; the new epoch's data starts at sequence zero, and a later
    /// batch of it (its first one refused and being retried) is out of
    /// order, not the start of the epoch.
    #[test]
    fn a_marker_bump_restarts_sequences_at_zero() {
        let mut s = ProducerStates::default();
        s.record(5, 3, seq(0, 9, 0), 1);
        let marker = crate::record::EndTxnMarker {
            result: crate::record::TxnResult::Commit,
            coordinator_epoch: 0,
        };
        s.note_marker(5, 4, marker, 10, 2);
        assert_eq!(
            s.check(5, 4, 20, 29),
            SeqCheck::OutOfOrder {
                expected: 0,
                got: 20
            }
        );
        assert_eq!(s.check(5, 4, 0, 19), SeqCheck::Accept);
        assert!(s.has_no_batches(5));
        s.record(5, 4, seq(0, 19, 11), 3);
        assert_eq!(s.check(5, 4, 20, 29), SeqCheck::Accept);
        assert!(!s.has_no_batches(5));
        assert!(s.has_no_batches(6), "an unknown producer has none");
    }

    #[test]
    fn only_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        for i in 0..10 {
            s.record(9, 0, seq(i, i, i as i64), 0);
        }
        assert_eq!(s.check(9, 0, 9, 9), SeqCheck::Duplicate { base_offset: 9 });
        assert_eq!(s.check(9, 0, 5, 5), SeqCheck::Duplicate { base_offset: 5 });
        // Older than the retained window: no longer recognised as a duplicate.
        assert!(matches!(s.check(9, 0, 4, 4), SeqCheck::OutOfOrder { .. }));
    }

    #[test]
    fn idle_producers_expire_unless_a_transaction_is_open() {
        let mut s = ProducerStates::default();
        s.record(1, 0, seq(0, 0, 0), 1_000); // idle since 1,000
        s.record(2, 0, seq(0, 0, 1), 5_000); // recent
        s.record(3, 0, seq(0, 0, 2), 1_000); // idle, but in a transaction
        assert!(s.note_txn_data(3, 2, true));
        assert_eq!(s.expire(10_000, 9_000), 1, "producer 1 only");
        assert!(s.entry(1).is_none());
        assert!(s.entry(2).is_some() && s.entry(3).is_some());
        // A retry from the forgotten producer is a new producer here.
        assert_eq!(s.check(1, 0, 7, 7), SeqCheck::Accept);
        // Producer 3's transaction stays open, and holds the LSO, however
        // old its last batch.
        assert_eq!(s.expire(1_000_000, 9_000), 1, "producer 2 now");
        assert_eq!(s.open_transaction(3), Some(2));
        assert_eq!(s.first_unstable_offset(), Some(2));
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        let mut s = ProducerStates::default();
        s.record(2, 0, seq(i32::MAX - 1, i32::MAX, 0), 0);
        assert_eq!(s.check(2, 0, 0, 3), SeqCheck::Accept);
    }

    /// A snapshot written before transactions existed (no transaction
    /// fields) still loads, with no transaction open and no coordinator.
    #[test]
    fn snapshots_from_before_transactions_still_load() {
        let old = r#"{"producers":{"7":{"epoch":2,"batches":[{"first_seq":0,"last_seq":4,
            "base_offset":100,"last_offset":104}],"last_timestamp":55}}}"#;
        let mut s: ProducerStates = serde_json::from_str(old).unwrap();
        s.rebuild_transactions();
        let e = s.entry(7).unwrap();
        assert_eq!((e.epoch, e.last_timestamp), (2, 55));
        assert_eq!(e.current_txn_first_offset, None);
        assert_eq!(e.coordinator_epoch, -1);
        assert_eq!(s.first_unstable_offset(), None);
        assert_eq!(
            s.check(7, 2, 0, 4),
            SeqCheck::Duplicate { base_offset: 100 }
        );
        // And a new one round-trips its transaction.
        s.note_txn_data(7, 105, true);
        let json = serde_json::to_string(&s).unwrap();
        let mut back: ProducerStates = serde_json::from_str(&json).unwrap();
        back.rebuild_transactions();
        assert_eq!(back.first_unstable_offset(), Some(105));
        assert!(back.has_ongoing_transaction(7, 2));
    }

    #[test]
    fn transactions_open_complete_and_become_stable() {
        use crate::record::{EndTxnMarker, TxnResult};
        let abort = EndTxnMarker {
            result: TxnResult::Abort,
            coordinator_epoch: 3,
        };
        let mut s = ProducerStates::default();
        assert!(s.note_txn_data(1, 10, true));
        assert!(!s.note_txn_data(1, 11, true), "already open");
        assert!(!s.note_txn_data(2, 12, false), "not transactional");
        assert!(s.note_txn_data(3, 13, true));
        assert_eq!(s.first_unstable_offset(), Some(10));
        let done = s.note_marker(1, 0, abort, 20, 0).unwrap();
        assert_eq!(
            (done.first_offset, done.last_offset, done.aborted),
            (10, 20, true)
        );
        // Producer 3's transaction is the next one open.
        assert_eq!(s.last_stable_offset_for(&done), 13);
        s.complete(done);
        assert_eq!(s.first_unstable_offset(), Some(10), "marker not yet stable");
        s.on_high_watermark(20);
        assert_eq!(s.first_unstable_offset(), Some(10));
        s.on_high_watermark(21);
        assert_eq!(s.first_unstable_offset(), Some(13));
        assert_eq!(s.entry(1).unwrap().coordinator_epoch, 3);
        // No open transaction: the marker completes nothing.
        assert_eq!(s.note_marker(1, 0, abort, 22, 0), None);
        // Truncation: producer 3's transaction reopens when its unstable
        // marker is cut, and is forgotten when its start is.
        let done = s.note_marker(3, 0, abort, 30, 0).unwrap();
        s.complete(done);
        s.truncate_from(30);
        assert_eq!(s.open_transaction(3), Some(13));
        s.truncate_from(13);
        assert_eq!(s.open_transaction(3), None);
        assert_eq!(s.first_unstable_offset(), None);
        // Entries with transactional state but no batches are kept.
        assert!(s.entry(1).is_some());
    }

    #[test]
    fn truncation_forgets_batches() {
        let mut s = ProducerStates::default();
        s.record(1, 0, seq(0, 0, 0), 0);
        s.record(1, 0, seq(1, 1, 1), 0);
        s.truncate_from(1);
        assert_eq!(s.check(1, 0, 1, 1), SeqCheck::Accept);
    }
}
