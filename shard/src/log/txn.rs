//! Transactions on the partition log: transaction markers appended by the
//! leader (for the WriteTxnMarkers handler), the last stable offset, and
//! the transaction state rules applied to every appended batch (leader,
//! follower, replay at load). The rules are `txn_state.rs`'s; the per
//! segment aborted-transaction index is `txn_index.rs`'s.

use std::time::Duration;

use bytes::Bytes;

use super::error::LogError;
use super::partition::{AckLevel, AppendInfo, Inner, PartitionLog};
use super::producer_state::ProducerStates;
use super::txn_index::{AbortedTxn, TxnIndex};
use super::txn_state::CompletedTxn;
use crate::record::{self, BatchView, EndTxnMarker, NO_PRODUCER_ID};
use crate::time::Clock;

/// A transaction marker to append as the leader (one partition's share of
/// a WriteTxnMarkers request).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    pub producer_id: i64,
    /// The producer epoch the coordinator gives the marker: the
    /// transaction's with transaction version 1, the bumped one (epoch + 1)
    /// with version 2.
    pub producer_epoch: i16,
    /// Commit or abort, and the coordinator's epoch.
    pub marker: EndTxnMarker,
    /// The transaction version the coordinator completed the transaction
    /// with (WriteTxnMarkers' `TransactionVersion`; 0 or 1 before KIP-890
    /// part 2). It decides which producer epochs are stale (`txn_state.rs`).
    pub transaction_version: i16,
}

/// One producer's state in a partition, as DescribeProducers reports it
/// (-1 where there is none: no batch kept, no marker, no open transaction).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    pub coordinator_epoch: i32,
    pub current_txn_start_offset: i64,
}

impl Inner {
    /// After the high watermark moved, or the transactions changed:
    /// transactions whose marker is below the high watermark are stable,
    /// and the last stable offset follows. Returns true if it moved.
    pub(super) fn refresh_last_stable(&mut self) -> bool {
        let hw = self.offsets.high_watermark();
        self.producers.on_high_watermark(hw);
        let first_unstable = self.producers.first_unstable_offset();
        self.offsets.set_first_unstable(first_unstable)
    }
}

/// Record `batch`, just appended (or replayed, or copied from the leader),
/// in the producer state; an abort marker adds its transaction to `index`,
/// the active segment's. Returns the transaction it completed.
pub(super) fn apply_batch(
    producers: &mut ProducerStates,
    index: &mut TxnIndex,
    batch: &BatchView,
) -> Option<CompletedTxn> {
    let done = super::load::record_producer(producers, batch)?;
    if done.aborted {
        index.push(AbortedTxn {
            producer_id: done.producer_id,
            first_offset: done.first_offset,
            last_offset: done.last_offset,
            last_stable_offset: producers.last_stable_offset_for(&done),
        });
    }
    producers.complete(done);
    Some(done)
}

impl PartitionLog {
    /// Append a transaction marker as the leader (Kafka's
    /// `appendAsLeader` with origin COORDINATOR, called for each partition
    /// of a WriteTxnMarkers request): checks the producer and coordinator
    /// epochs (`txn_state.rs`), then writes the control batch at the log
    /// end. A marker for a producer with no open transaction is written
    /// too and completes nothing. Returns once the marker is as durable as
    /// `ack` asks (Kafka answers WriteTxnMarkers after the ISR has it:
    /// the caller then waits for the high watermark, as for acks=all).
    pub async fn append_txn_marker(
        &self,
        marker: TxnMarker,
        ack: AckLevel,
    ) -> Result<AppendInfo, LogError> {
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        if marker.producer_id == NO_PRODUCER_ID || marker.producer_epoch < 0 {
            return Err(LogError::InvalidRecord(format!(
                "transaction marker for producer {} epoch {}",
                marker.producer_id, marker.producer_epoch
            )));
        }
        let _permit = self.append_lock.lock().await;
        if self.inner.borrow().storage_error.is_some() {
            self.try_recover().await?;
        }
        // Under the append lock: no other append changes the state until
        // this one is in.
        self.inner.borrow().producers.check_marker(
            marker.producer_id,
            marker.producer_epoch,
            marker.marker,
            marker.transaction_version,
        )?;
        self.wait_for_write_room().await?;
        let now = self.clock.now_ms();
        let bytes = Bytes::from(record::build_txn_marker_batch(
            0,
            now,
            -1,
            marker.producer_id,
            marker.producer_epoch,
            marker.marker,
        ));
        if self.needs_roll(bytes.len()) {
            self.roll().await?;
        }
        self.note_leader_epoch().await?;
        let range = 0..bytes.len();
        let info = self.append_validated(&bytes, &[range], true);
        self.finish_append(info, _permit, ack).await
    }

    /// Kafka's last stable offset: min(high watermark, first unstable
    /// offset). read_committed consumers see only what lies below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.inner.borrow().offsets.last_stable()
    }

    /// The first offset of an open transaction or of a completed one whose
    /// marker is not yet below the high watermark, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.inner.borrow().producers.first_unstable_offset()
    }

    /// Whether `producer_id` has a transaction open in `epoch` here (Kafka's
    /// `hasOngoingTransaction`): the produce path's KIP-890 verification
    /// asks it before a transactional batch that would start one.
    pub fn has_ongoing_transaction(&self, producer_id: i64, epoch: i16) -> bool {
        self.inner
            .borrow()
            .producers
            .has_ongoing_transaction(producer_id, epoch)
    }

    /// Every producer the partition keeps state for (Kafka's
    /// `activeProducers`, answered by DescribeProducers), by producer id.
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        let inner = self.inner.borrow();
        let mut out: Vec<ActiveProducer> = inner
            .producers
            .iter()
            .map(|(&producer_id, e)| ActiveProducer {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.batches.back().map_or(-1, |b| b.last_seq),
                last_timestamp: if e.batches.is_empty() && e.last_timestamp == 0 {
                    -1
                } else {
                    e.last_timestamp
                },
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Whether `producer_id` has no batch here in its current epoch (no
    /// state, or a marker bumped its epoch since): with transaction version
    /// 2 its next batch that opens a transaction must start at sequence 0.
    pub fn producer_has_no_batches(&self, producer_id: i64) -> bool {
        self.inner.borrow().producers.has_no_batches(producer_id)
    }

    /// Open transactions, oldest first: (first offset, producer id)
    /// (DescribeProducers, ListTransactions' hanging-transaction search).
    pub fn ongoing_transactions(&self) -> Vec<(i64, i64)> {
        self.inner.borrow().producers.ongoing_transactions()
    }

    /// The aborted transactions that overlap `fetch_offset..upper_bound`
    /// (Kafka's `collectAbortedTransactions`): from the segment holding the
    /// fetch offset on, until one segment's index says no later one can
    /// add more.
    pub fn aborted_transactions(&self, fetch_offset: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let inner = self.inner.borrow();
        let from = inner
            .segments
            .range(..=fetch_offset)
            .next_back()
            .map_or(i64::MIN, |(&base, _)| base);
        let mut out = Vec::new();
        for seg in inner.segments.range(from..).map(|(_, s)| s) {
            if seg.txn_index.collect(fetch_offset, upper_bound, &mut out) {
                break;
            }
        }
        debug_assert!(
            out.windows(2).all(|w| w[0].last_offset < w[1].last_offset),
            "aborted transactions out of marker order"
        );
        out
    }

    /// Wait until the last stable offset passes `offset` or `timeout`
    /// passes (a read_committed fetch's long-poll). The last stable offset
    /// moves only when the high watermark does (a marker is appended above
    /// it and becomes stable once it passes) or the log is reloaded, and
    /// both wake the high watermark's waiters.
    pub async fn wait_for_stable_data(&self, offset: i64, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let notified = self.data_signal.notified();
            if self.last_stable_offset() > offset || self.closed.get() {
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            let _ = glommio::timer::timeout(left, async {
                notified.await;
                Ok(())
            })
            .await;
        }
    }
}

/// One past the last offset of the batches in `chunks` (concatenated
/// whole batches, as reads return them), if any.
pub(super) fn end_of_batches(chunks: &[Bytes]) -> Option<i64> {
    let last = chunks.last()?;
    let mut at = 0;
    let mut end = None;
    while at < last.len() {
        let Ok(batch) = BatchView::parse(&last[at..]) else {
            break;
        };
        end = Some(batch.last_offset() + 1);
        at += batch.size();
    }
    end
}
