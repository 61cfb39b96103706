//! A partition's flusher when the write-ahead ring makes its batches
//! durable: the ring first, the segment later.
//!
//! Each cycle hands the batches appended since the last one to the ring as
//! one entry, and acknowledges them once that frame is durable. The same
//! bytes reach the segment file by a later **write-back**, which runs
//! beside the next frames, not in front of an ack:
//! - once `WRITE_BACK_BYTES` are unwritten (a busy partition writes large,
//!   page-aligned pieces instead of rewriting its last page every round);
//! - when a segment rolled (it must be sealed), the log closes or stops;
//! - when the ring asks: a checkpoint cannot pass a group whose bytes are
//!   not in their segments yet, so every checkpoint asks the partitions
//!   holding older groups to write them (this bounds what waits in memory
//!   by the ring's size);
//! - after `WRITE_BACK_AGE` at most, so an idle partition's files catch up.
//!
//! Why: with a thousand partitions, a write of every partition's last page
//! every round was a thousand I/Os (through io_uring's worker threads, as
//! extending writes cannot be issued inline) for one frame; the CPU per
//! batch, not the device, set the limit.
//!
//! So `synced` (durable) may be above `written` here: the bytes between are
//! in the ring and in the tail cache (which keeps everything not written),
//! and the ring tickets this log holds keep any checkpoint from passing
//! them. A failed write-back keeps the bytes and the tickets and is
//! retried; the partition refuses appends meanwhile (it never reloads from
//! files that lack acknowledged batches). If it is closed still failing,
//! the tickets are kept until the process ends, so the ring is not
//! checkpointed past those frames and the next start redoes them.

use std::rc::Rc;
use std::time::Duration;

use crate::time::Clock;

use futures::future::Either;

use super::{ShardWal, WalEntry};
use crate::log::disk;
use crate::log::error::LogError;
use crate::log::flusher::{SealMeta, Step};
use crate::log::health::HEALTH;
use crate::log::partition::PartitionLog;
use crate::rt::Task;

/// Unwritten bytes of the active segment that start a write-back.
const WRITE_BACK_BYTES: usize = 256 << 10;
/// A round of at least this many bytes writes its segment and fdatasyncs
/// it, as without a ring: the ring earns its keep by sharing one sync
/// among many small writes, but it writes every byte twice (frame, then
/// segment), which halved the one-partition maximum (930 -> 640 MB/s of
/// 1 KiB records in 512 KiB batches on a 1.27 GB/s device). One large
/// write and its own sync cost about as much as the frame alone.
const DIRECT_ROUND_BYTES: usize = 256 << 10;
/// The longest a held group waits for its write-back.
const WRITE_BACK_AGE: Duration = Duration::from_secs(1);

impl PartitionLog {
    /// One cycle in ring mode.
    pub(in crate::log) async fn ring_step(
        self: &Rc<Self>,
        wal: &Rc<ShardWal>,
        streaming: &mut bool,
        meta: &mut Option<Task<Result<(), LogError>>>,
    ) -> Step {
        // Written while in another mode but not synced: this round syncs
        // its files, so nothing below what the ring acknowledges is only
        // written.
        let behind = {
            let inner = self.inner.borrow();
            inner.offsets.synced() < inner.offsets.written()
        };
        let (entries, durable_to) = self.take_ring_entries();
        let due = self.write_back_due(wal);
        if entries.is_empty() && !due && !behind {
            *streaming = false;
            if let Some(step) = self.finish_meta(meta).await {
                return step;
            }
            if self.closed.get() || self.quiesce.get() {
                return Step::Stop;
            }
            self.wait_for_ring_work(wal).await;
            return Step::Continue;
        }
        if !self.inner.borrow().sealing.is_empty() {
            // One seal's files at a time, in segment order.
            if let Some(Step::Stop) = self.finish_meta(meta).await {
                return Step::Stop;
            }
        }
        let bytes: usize = entries.iter().map(WalEntry::body_len).sum();
        let outcome = if behind || bytes >= DIRECT_ROUND_BYTES.min(wal.max_round_body() + 1) {
            // Large (`DIRECT_ROUND_BYTES`), too big for one frame, or see
            // `behind`: this round writes and fdatasyncs its files, as
            // without a ring. Redoing older entries at start-up still
            // writes the bytes they hold.
            self.write_back_synced().await
        } else {
            self.ring_round(wal, entries, durable_to, due).await
        };
        match outcome {
            Ok(metas) => self.spawn_meta(meta, metas),
            Err(e) => return self.write_failed(e).await,
        }
        *streaming = true;
        Step::Continue
    }

    /// The batches appended since the last cycle as ring entries (they
    /// count as logged), and the offset their frame makes durable.
    fn take_ring_entries(&self) -> (Vec<WalEntry>, i64) {
        let link = self.wal.as_ref().expect("ring mode has a ring");
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let mut entries = Vec::new();
        let mut end = -1;
        for job in inner.sealing.iter_mut() {
            if let Some(e) = job.pending.take_wal_entry(link) {
                entries.push(e);
                end = job.pending.last_offset + 1;
            }
        }
        if let Some(e) = inner.active.take_wal_entry(link) {
            entries.push(e);
            end = inner.active.last_offset + 1;
        }
        (entries, end)
    }

    /// Whether this cycle writes the unwritten bytes to the segments.
    fn write_back_due(&self, wal: &ShardWal) -> bool {
        {
            let inner = self.inner.borrow();
            if !inner.sealing.is_empty() {
                return true;
            }
            if !inner.active.dirty {
                return false;
            }
            if self.closed.get()
                || self.quiesce.get()
                || inner.active.unwritten() >= WRITE_BACK_BYTES
            {
                return true;
            }
        }
        let oldest = self.held.borrow().first().map(|t| t.seq());
        match (oldest, self.held_since.get()) {
            (Some(seq), Some(since)) => {
                wal.write_back_wanted(seq)
                    || self.clock.monotonic().saturating_duration_since(since) >= WRITE_BACK_AGE
            }
            _ => false,
        }
    }

    /// Idle: wait for appends, or for the ring or the age of a held group
    /// to ask for a write-back.
    async fn wait_for_ring_work(&self, wal: &ShardWal) {
        let appended = self.flush_signal.notified();
        let Some(since) = self.held_since.get() else {
            return appended.await;
        };
        let asked = wal.write_back_notified();
        let left =
            WRITE_BACK_AGE.saturating_sub(self.clock.monotonic().saturating_duration_since(since));
        let either = async {
            futures::future::select(std::pin::pin!(appended), std::pin::pin!(asked)).await;
        };
        self.clock.wait_at_most(left, either).await;
    }

    /// Log `entries` and, when due, write back everything unwritten
    /// meanwhile; the acks wait for the frame only.
    async fn ring_round(
        self: &Rc<Self>,
        wal: &Rc<ShardWal>,
        entries: Vec<WalEntry>,
        durable_to: i64,
        due: bool,
    ) -> Result<Vec<SealMeta>, LogError> {
        let seq = (!entries.is_empty()).then(|| {
            let ticket = wal.append(entries);
            let seq = ticket.seq();
            self.wal_seq.set(Some(seq));
            self.hold(ticket);
            seq
        });
        let ack = async {
            if let Some(seq) = seq {
                wal.wait_durable(seq).await?;
                self.note_synced(durable_to, None);
                self.progress_signal.notify_all();
            }
            Ok::<(), LogError>(())
        };
        let metas = if due {
            self.ack_and_write_back(ack).await?
        } else {
            // Not due yet, but while this frame waits the ring may ask for
            // the groups held from earlier rounds: it may need them written
            // to make room for this very frame.
            let mut ack = std::pin::pin!(ack);
            match futures::future::select(ack.as_mut(), std::pin::pin!(self.asked(wal))).await {
                Either::Left((acked, _)) => {
                    acked?;
                    Vec::new()
                }
                Either::Right(((), _)) => self.ack_and_write_back(ack).await?,
            }
        };
        self.progress_signal.notify_all();
        Ok(metas)
    }

    /// Write back everything unwritten beside `ack`; the groups held now
    /// are all covered by the snapshot.
    async fn ack_and_write_back(
        &self,
        ack: impl std::future::Future<Output = Result<(), LogError>>,
    ) -> Result<Vec<SealMeta>, LogError> {
        let plan = self.take_write_work();
        let covered = self.held.borrow().len();
        let write = async {
            let Some(plan) = plan else {
                return Ok(Vec::new());
            };
            let metas = self.write_plan(plan).await?;
            self.release_held(covered);
            Ok::<_, LogError>(metas)
        };
        let (acked, written) = futures::join!(ack, write);
        acked?;
        written
    }

    /// Resolves once the ring wants this log's oldest held group written.
    async fn asked(&self, wal: &ShardWal) {
        loop {
            let notified = wal.write_back_notified();
            let oldest = self.held.borrow().first().map(|t| t.seq());
            if oldest.is_some_and(|seq| wal.write_back_wanted(seq)) {
                return;
            }
            notified.await;
        }
    }

    /// Write every unwritten byte and fdatasync the files, so that they
    /// are durable by themselves (a failed frame, a mode change, a round
    /// too big for the ring); the held groups are released.
    async fn write_back_synced(self: &Rc<Self>) -> Result<Vec<SealMeta>, LogError> {
        let metas = match self.take_write_work() {
            Some(plan) => self.write_plan(plan).await?,
            None => Vec::new(),
        };
        let file = self.inner.borrow().active.file.clone();
        disk::fdatasync(&*file.get().await?).await?;
        let written = self.inner.borrow().offsets.written();
        self.note_synced(written, None);
        self.release_held(usize::MAX);
        self.progress_signal.notify_all();
        Ok(metas)
    }

    fn hold(&self, ticket: super::WalTicket) {
        let mut held = self.held.borrow_mut();
        if held.is_empty() {
            self.held_since.set(Some(self.clock.monotonic()));
        }
        held.push(ticket);
    }

    /// The oldest `n` held groups are written: checkpoints may pass them.
    pub(in crate::log) fn release_held(&self, n: usize) {
        let mut held = self.held.borrow_mut();
        let n = n.min(held.len());
        if n == 0 {
            return;
        }
        held.drain(..n);
        // The remaining groups are younger; timing them from now is close
        // enough for an age limit.
        self.held_since
            .set((!held.is_empty()).then(|| self.clock.monotonic()));
    }

    /// A write-back or a frame failed with acknowledged bytes that are
    /// only in the ring and in memory: refuse appends and retry writing
    /// them (after the recovery backoff, and once there is room) until it
    /// succeeds or the log closes.
    pub(in crate::log) async fn ring_fault(self: &Rc<Self>, e: LogError) -> Step {
        self.fail(e);
        loop {
            if self.closed.get() {
                // One last try, then keep the groups for the next start.
                match self.write_back_synced().await {
                    Ok(_) => self.back_online(),
                    Err(e) => self.keep_held_until_restart(&e),
                }
                return Step::Stop;
            }
            let wait = {
                let inner = self.inner.borrow();
                inner.retry_recovery_at.map_or(Duration::ZERO, |at| {
                    at.saturating_duration_since(self.clock.monotonic())
                })
            };
            if !wait.is_zero() {
                let closing = self.flush_signal.notified();
                self.clock.wait_at_most(wait, closing).await;
                continue;
            }
            let fault = self
                .inner
                .borrow()
                .storage_error
                .clone()
                .unwrap_or_default();
            if !HEALTH.has_room_for_recovery() {
                self.note_fault(fault);
                continue;
            }
            match self.write_back_synced().await {
                Ok(metas) => {
                    if !metas.is_empty() {
                        if let Err(e) = Rc::clone(self).write_seal_metas(metas).await {
                            tracing::warn!("{}: a sealed segment's files: {e}", self.name);
                        }
                    }
                    self.back_online();
                    return Step::Continue;
                }
                Err(e) => {
                    tracing::warn!(
                        "{}: writing back acknowledged batches failed: {e}",
                        self.name
                    );
                    HEALTH.count_storage_error();
                    self.note_fault(fault);
                }
            }
        }
    }

    fn back_online(&self) {
        let was_offline = {
            let mut inner = self.inner.borrow_mut();
            inner.faults_in_a_row = 0;
            inner.retry_recovery_at = None;
            inner.storage_error.take().is_some()
        };
        if was_offline {
            HEALTH.partition_online();
            tracing::info!(
                "{}: the acknowledged batches are written again; writes accepted",
                self.name
            );
        }
        self.progress_signal.notify_all();
    }

    /// Closed with bytes that could not be written: their groups stay
    /// outstanding in the ring until the process ends, so no checkpoint
    /// passes them and the next start redoes them into the segment. A
    /// partition being deleted drops them instead.
    fn keep_held_until_restart(&self, e: &LogError) {
        let held: Vec<_> = self.held.borrow_mut().drain(..).collect();
        self.held_since.set(None);
        if self.discarding.get() || held.is_empty() {
            return;
        }
        tracing::error!(
            "{}: closed with acknowledged batches not written to the segment ({e}); \
             the write-ahead ring keeps them for the next start",
            self.name
        );
        for ticket in held {
            std::mem::forget(ticket);
        }
    }
}
