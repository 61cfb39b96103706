//! One transactional id's state at its coordinator, and the transitions
//! between states (Kafka's `TransactionMetadata`).
//!
//! A change is two steps, because it must be durable in
//! `__transaction_state` before it takes effect: `prepare_*` checks the
//! request against the current state and returns the [`Transit`] (the
//! record to write), marking the change pending; once the record is
//! replicated, [`TxnMetadata::complete`] makes it current (or
//! [`TxnMetadata::abandon`] drops it when the write failed). While a change
//! is pending, other requests for the same id get CONCURRENT_TRANSACTIONS,
//! which clients retry.
//!
//! Everything here is pure: no clock (times are arguments), no I/O.

use std::collections::BTreeSet;

use kafka_protocol::ResponseError;

pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// A partition of a transaction: (topic, partition).
pub type TxnPartition = (String, i32);

/// Kafka's transaction states, with their ids in the log and names in
/// DescribeTransactions / ListTransactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnState {
    pub fn from_id(id: i8) -> Option<Self> {
        use TxnState::*;
        Some(match id {
            0 => Empty,
            1 => Ongoing,
            2 => PrepareCommit,
            3 => PrepareAbort,
            4 => CompleteCommit,
            5 => CompleteAbort,
            6 => Dead,
            7 => PrepareEpochFence,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        use TxnState::*;
        match self {
            Empty => "Empty",
            Ongoing => "Ongoing",
            PrepareCommit => "PrepareCommit",
            PrepareAbort => "PrepareAbort",
            CompleteCommit => "CompleteCommit",
            CompleteAbort => "CompleteAbort",
            Dead => "Dead",
            PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        (0..=7).filter_map(Self::from_id).find(|s| s.name() == name)
    }

    /// The states a transition into `self` may start from.
    fn valid_previous(self) -> &'static [TxnState] {
        use TxnState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[Ongoing, PrepareEpochFence],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// An id in this state may expire (`transactional_id_expiration_ms`).
    pub fn expiration_allowed(self) -> bool {
        matches!(
            self,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        )
    }

    /// A transaction is open or its end is not yet written to its partitions.
    pub fn in_transaction(self) -> bool {
        matches!(
            self,
            TxnState::Ongoing | TxnState::PrepareCommit | TxnState::PrepareAbort
        )
    }
}

/// Commit or abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnResult {
    Abort,
    Commit,
}

/// A state change waiting to be written (Kafka's `TxnTransitMetadata`):
/// what the record in `__transaction_state` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transit {
    pub producer_id: i64,
    pub prev_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    pub start_ms: i64,
    pub last_update_ms: i64,
    /// The client's transaction version (2: an epoch bump per transaction).
    pub client_tv: i16,
}

/// What the coordinator holds for one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhaustion).
    pub prev_producer_id: i64,
    /// The producer id the next completion switches to (transaction
    /// version 2 only, when the epoch overflowed).
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump, to recognise a retried InitProducerId.
    pub last_producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the current transaction started (-1: none yet).
    pub start_ms: i64,
    pub last_update_ms: i64,
    pub client_tv: i16,
    /// The state being written, if any.
    pub pending: Option<TxnState>,
    /// An epoch fence whose write failed: its bump was never returned, so
    /// the next fence reuses it rather than bumping again.
    pub failed_epoch_fence: bool,
}

/// Kafka leaves the last two epochs unused so a coordinator can always
/// fence a producer.
pub fn epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

pub type TxnError = ResponseError;

impl TxnMetadata {
    /// A transactional id seen for the first time: a producer id, no epoch.
    pub fn new(transactional_id: String, producer_id: i64, timeout_ms: i32, now_ms: i64) -> Self {
        Self {
            transactional_id,
            producer_id,
            prev_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            client_tv: 0,
            pending: None,
            failed_epoch_fence: false,
        }
    }

    /// The state a record read back from the log describes.
    pub fn from_transit(transactional_id: String, t: &Transit) -> Self {
        Self {
            transactional_id,
            producer_id: t.producer_id,
            prev_producer_id: t.prev_producer_id,
            next_producer_id: t.next_producer_id,
            producer_epoch: t.producer_epoch,
            last_producer_epoch: t.last_producer_epoch,
            timeout_ms: t.timeout_ms,
            state: t.state,
            partitions: t.partitions.clone(),
            start_ms: t.start_ms,
            last_update_ms: t.last_update_ms,
            client_tv: t.client_tv,
            pending: None,
            failed_epoch_fence: false,
        }
    }

    pub fn pending(&self) -> bool {
        self.pending.is_some()
    }

    pub fn epoch_exhausted(&self) -> bool {
        epoch_exhausted(self.producer_epoch)
    }

    fn supports_epoch_bump(&self) -> bool {
        self.client_tv >= 2
    }

    /// The transit to `state` with the given fields; marks it pending.
    #[allow(clippy::too_many_arguments)]
    fn transit(
        &mut self,
        state: TxnState,
        producer_id: i64,
        next_producer_id: i64,
        epoch: i16,
        last_epoch: i16,
        timeout_ms: i32,
        partitions: BTreeSet<TxnPartition>,
        start_ms: i64,
        now_ms: i64,
        client_tv: i16,
    ) -> Transit {
        assert!(
            self.pending.is_none(),
            "{}: a transition to {state:?} while {:?} is pending",
            self.transactional_id,
            self.pending
        );
        assert!(producer_id >= 0, "producer id {producer_id}");
        assert!(state == TxnState::Dead || epoch >= 0, "epoch {epoch}");
        assert!(
            state.valid_previous().contains(&self.state),
            "{}: {:?} cannot follow {:?}",
            self.transactional_id,
            state,
            self.state
        );
        self.pending = Some(state);
        Transit {
            producer_id,
            prev_producer_id: self.producer_id,
            next_producer_id,
            producer_epoch: epoch,
            last_producer_epoch: last_epoch,
            timeout_ms,
            state,
            partitions,
            start_ms,
            last_update_ms: now_ms,
            client_tv,
        }
    }

    /// InitProducerId on an id with an open transaction: bump the epoch to
    /// fence the current producer; the coordinator then aborts with it.
    pub fn prepare_fence_producer_epoch(&mut self) -> Transit {
        assert!(self.producer_epoch < i16::MAX, "fencing would overflow");
        let epoch = if self.failed_epoch_fence {
            self.producer_epoch
        } else {
            self.producer_epoch + 1
        };
        let (pid, timeout, parts, start) = (
            self.producer_id,
            self.timeout_ms,
            self.partitions.clone(),
            self.start_ms,
        );
        let last_update = self.last_update_ms;
        self.transit(
            TxnState::PrepareEpochFence,
            pid,
            NO_PRODUCER_ID,
            epoch,
            NO_PRODUCER_EPOCH,
            timeout,
            parts,
            start,
            last_update,
            0,
        )
    }

    /// InitProducerId with no transaction open: the next epoch, or the
    /// current one again for a retry of a call that succeeded (KIP-360).
    pub fn prepare_increment_producer_epoch(
        &mut self,
        timeout_ms: i32,
        expected_epoch: Option<i16>,
        now_ms: i64,
    ) -> Result<Transit, TxnError> {
        assert!(
            !self.epoch_exhausted(),
            "no epoch left for {}",
            self.producer_id
        );
        let bumped = self.producer_epoch + 1;
        let (epoch, last) = match expected_epoch {
            None => (bumped, NO_PRODUCER_EPOCH),
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                (bumped, self.producer_epoch)
            }
            Some(e) if e == self.last_producer_epoch => {
                (self.producer_epoch, self.last_producer_epoch)
            }
            Some(_) => return Err(ResponseError::ProducerFenced),
        };
        let pid = self.producer_id;
        Ok(self.transit(
            TxnState::Empty,
            pid,
            NO_PRODUCER_ID,
            epoch,
            last,
            timeout_ms,
            BTreeSet::new(),
            -1,
            now_ms,
            0,
        ))
    }

    /// InitProducerId when the epoch is exhausted: a new producer id at
    /// epoch 0.
    pub fn prepare_producer_id_rotation(
        &mut self,
        new_producer_id: i64,
        timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Transit {
        assert!(
            !self.state.in_transaction(),
            "rotating the producer id of {} in {:?}",
            self.transactional_id,
            self.state
        );
        let last = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        self.transit(
            TxnState::Empty,
            new_producer_id,
            NO_PRODUCER_ID,
            0,
            last,
            timeout_ms,
            BTreeSet::new(),
            -1,
            now_ms,
            0,
        )
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the transaction is (or stays)
    /// Ongoing with these partitions added; it starts now if none was open.
    pub fn prepare_add_partitions(
        &mut self,
        added: impl IntoIterator<Item = TxnPartition>,
        now_ms: i64,
        client_tv: i16,
    ) -> Transit {
        let start = match self.state {
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => now_ms,
            _ => self.start_ms,
        };
        let mut parts = self.partitions.clone();
        parts.extend(added);
        let (pid, epoch, last, timeout) = (
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
        );
        let tv = if self.state.in_transaction() {
            self.client_tv
        } else {
            client_tv
        };
        self.transit(
            TxnState::Ongoing,
            pid,
            NO_PRODUCER_ID,
            epoch,
            last,
            timeout,
            parts,
            start,
            now_ms,
            tv,
        )
    }

    /// EndTxn (or an abort by the coordinator): PrepareCommit or
    /// PrepareAbort. With transaction version 2 the epoch is bumped here,
    /// and `next_producer_id` is the id to switch to when it overflowed.
    pub fn prepare_abort_or_commit(
        &mut self,
        state: TxnState,
        client_tv: i16,
        next_producer_id: i64,
        now_ms: i64,
    ) -> Transit {
        debug_assert!(matches!(
            state,
            TxnState::PrepareCommit | TxnState::PrepareAbort
        ));
        let (epoch, last) = if client_tv >= 2 {
            (self.producer_epoch + 1, self.producer_epoch)
        } else {
            (self.producer_epoch, self.last_producer_epoch)
        };
        let (pid, timeout, parts, start) = (
            self.producer_id,
            self.timeout_ms,
            self.partitions.clone(),
            self.start_ms,
        );
        self.transit(
            state,
            pid,
            next_producer_id,
            epoch,
            last,
            timeout,
            parts,
            start,
            now_ms,
            client_tv,
        )
    }

    /// Every marker is written: CompleteCommit or CompleteAbort.
    pub fn prepare_complete(&mut self, now_ms: i64) -> Transit {
        let state = if self.state == TxnState::PrepareCommit {
            TxnState::CompleteCommit
        } else {
            TxnState::CompleteAbort
        };
        self.failed_epoch_fence = false;
        let (pid, epoch) = if self.supports_epoch_bump() && self.next_producer_id != NO_PRODUCER_ID
        {
            (self.next_producer_id, 0)
        } else {
            (self.producer_id, self.producer_epoch)
        };
        let (last, timeout, start, tv) = (
            self.producer_epoch,
            self.timeout_ms,
            self.start_ms,
            self.client_tv,
        );
        self.transit(
            state,
            pid,
            NO_PRODUCER_ID,
            epoch,
            last,
            timeout,
            BTreeSet::new(),
            start,
            now_ms,
            tv,
        )
    }

    /// The id expired: a tombstone follows.
    pub fn prepare_dead(&mut self) -> Transit {
        let (pid, epoch, last, timeout, start, update) = (
            self.producer_id,
            self.producer_epoch,
            self.last_producer_epoch,
            self.timeout_ms,
            self.start_ms,
            self.last_update_ms,
        );
        self.transit(
            TxnState::Dead,
            pid,
            NO_PRODUCER_ID,
            epoch,
            last,
            timeout,
            BTreeSet::new(),
            start,
            update,
            0,
        )
    }

    /// The transit was written: make it current. Checks what Kafka's
    /// `completeTransitionTo` checks; a violation is a coordinator bug.
    pub fn complete(&mut self, t: &Transit) {
        let to = self.pending.unwrap_or_else(|| {
            panic!(
                "{}: completing {:?} with nothing pending",
                self.transactional_id, t.state
            )
        });
        assert_eq!(to, t.state, "{}: pending {to:?}", self.transactional_id);
        let bad = |what: &str| -> ! {
            panic!(
                "{}: transition from {:?} to {t:?} fails: {what}",
                self.transactional_id, self
            )
        };
        let tv2 = t.client_tv >= 2;
        match to {
            TxnState::Empty => {
                if self.producer_epoch != t.producer_epoch && !self.valid_epoch_bump(t) {
                    bad("epoch");
                }
                if !t.partitions.is_empty() || t.start_ms != -1 {
                    bad("an Empty transaction with partitions or a start");
                }
                self.timeout_ms = t.timeout_ms;
                self.producer_epoch = t.producer_epoch;
                self.last_producer_epoch = t.last_producer_epoch;
                self.producer_id = t.producer_id;
                self.prev_producer_id = t.prev_producer_id;
            }
            TxnState::Ongoing => {
                if !self.valid_epoch(t) || self.timeout_ms != t.timeout_ms {
                    bad("epoch or timeout");
                }
                if !self.partitions.is_subset(&t.partitions) {
                    bad("partitions removed");
                }
                self.start_ms = t.start_ms;
                self.partitions = t.partitions.clone();
            }
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                if !self.valid_epoch(t)
                    || self.partitions != t.partitions
                    || self.timeout_ms != t.timeout_ms
                    || self.start_ms != t.start_ms
                {
                    bad("epoch, partitions, timeout or start");
                }
                if tv2 {
                    self.producer_epoch = t.producer_epoch;
                    self.last_producer_epoch = t.last_producer_epoch;
                    self.next_producer_id = t.next_producer_id;
                }
            }
            TxnState::CompleteCommit | TxnState::CompleteAbort => {
                if !self.valid_epoch(t) || self.timeout_ms != t.timeout_ms || t.start_ms == -1 {
                    bad("epoch, timeout or start");
                }
                self.start_ms = t.start_ms;
                self.partitions.clear();
                if tv2 {
                    self.producer_epoch = t.producer_epoch;
                    self.last_producer_epoch = t.last_producer_epoch;
                    self.prev_producer_id = t.prev_producer_id;
                    self.producer_id = t.producer_id;
                    self.next_producer_id = t.next_producer_id;
                }
            }
            TxnState::PrepareEpochFence | TxnState::Dead => {
                bad("never completed: a fence becomes an abort, and Dead is removed")
            }
        }
        self.client_tv = t.client_tv;
        self.last_update_ms = t.last_update_ms;
        self.pending = None;
        self.state = to;
    }

    /// Kafka's `validProducerEpoch`: the transit continues this producer
    /// id and epoch (for version 2's bumps, the epoch before the bump).
    fn valid_epoch(&self, t: &Transit) -> bool {
        let tv2 = t.client_tv >= 2;
        let overflow_complete = tv2
            && matches!(t.state, TxnState::CompleteCommit | TxnState::CompleteAbort)
            && t.producer_epoch == 0;
        let bumping = tv2 && matches!(t.state, TxnState::PrepareCommit | TxnState::PrepareAbort);
        let epoch = if overflow_complete || bumping {
            t.last_producer_epoch
        } else {
            t.producer_epoch
        };
        let pid = if overflow_complete {
            t.prev_producer_id
        } else {
            t.producer_id
        };
        epoch == self.producer_epoch && pid == self.producer_id
    }

    fn valid_epoch_bump(&self, t: &Transit) -> bool {
        t.producer_epoch == self.producer_epoch.wrapping_add(1)
            || (t.producer_epoch == 0 && t.producer_id != self.producer_id)
    }

    /// The fence transit is never written: it becomes the abort that
    /// follows it at once, with the bumped epoch (Kafka's endTransaction
    /// from PrepareEpochFence).
    pub fn take_fence(&mut self, fence: &Transit) {
        assert_eq!(self.pending, Some(TxnState::PrepareEpochFence));
        self.pending = None;
        self.producer_epoch = fence.producer_epoch;
        self.last_producer_epoch = NO_PRODUCER_EPOCH;
    }

    /// The write of the pending transit failed: nothing changes.
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// With transaction version 2, every EndTxn bumps the epoch: a retried
    /// EndTxn carries the epoch before that bump.
    pub fn end_txn_epoch_bumped(&self, epoch: i16) -> bool {
        self.pending != Some(TxnState::PrepareEpochFence)
            && self.supports_epoch_bump()
            && self.producer_epoch == epoch.saturating_add(1)
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
