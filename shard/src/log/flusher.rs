//! The flusher: one task per partition that writes appended bytes to the
//! segment files with direct I/O (page aligned, the partial last page kept
//! in memory and rewritten), syncs them as the flush mode says, seals
//! rolled segments, and wakes the appends waiting for durability.
//!
//! Large jobs are split into `write_chunk_bytes` pieces written with up to
//! `write_queue_depth` in flight, because one huge write is served by one
//! device queue slot while several medium ones keep an SSD's channels busy.
//! In batch mode a streaming partition may hold its `fdatasync` for
//! `group_commit_window_us` so the batches arriving meanwhile share it.
//! With the shard's write-ahead ring the cycle is `wal/writeback.rs`'s;
//! the pending bytes and the snapshots writes take of them are
//! `pending.rs`.

use std::rc::Rc;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use glommio::io::{DmaBuffer, DmaFile};

use super::config::FlushMode;
use super::disk;
use super::error::LogError;
use super::health::HEALTH;
use super::open_files::SegmentFile;
use super::partition::{save_producer_snapshot, PartitionLog};
use super::pending::{snapshot_pending, ChunkShape, PendingWrite, TakenBytes, WriteJob};
use super::producer_state::ProducerStates;
use crate::rt::{spawn_local, Task};
use crate::time::Clock;

/// A segment that has been rolled away from and must be finished on disk.
pub(super) struct SealJob {
    pub(super) pending: PendingWrite,
    pub(super) final_size: u64,
    /// Base of the segment that follows, and the producer state as of its
    /// start: saved as its snapshot once this segment is sealed.
    pub(super) next_base: i64,
    pub(super) snapshot: ProducerStates,
}

/// A rolled segment's last write, final size, and the next segment's
/// base with its producer snapshot.
pub(super) type SealWork = (WriteJob, u64, i64, ProducerStates);

/// A snapshot of every unwritten byte of a log, and what it covered.
pub(super) struct WritePlan {
    seals: Vec<SealWork>,
    active: Option<WriteJob>,
    taken_seals: usize,
    taken_active: Option<TakenBytes>,
}

impl WritePlan {
    pub(super) fn has_seals(&self) -> bool {
        !self.seals.is_empty()
    }
}

/// What the flusher does after a cycle.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Step {
    Continue,
    Stop,
}

/// A segment whose data is written and synced, and whose index files and
/// the next segment's producer snapshot are still to be written.
pub(super) struct SealMeta {
    base: i64,
    next_base: i64,
    snapshot: ProducerStates,
}

impl PartitionLog {
    /// Wait until the high watermark passes `last_offset`, appended in
    /// `generation` (a recovery in between means the batch may be gone).
    pub(super) async fn wait_durable(
        &self,
        last_offset: i64,
        generation: u64,
    ) -> Result<(), LogError> {
        loop {
            let notified = self.progress_signal.notified();
            {
                let inner = self.inner.borrow();
                // Durable first: a fault after the batch became durable
                // (a failed segment write-back after its ring frame was
                // synced, say) does not undo it, and the batch stays
                // readable, so its producer must hear success.
                let durable = if inner.generation == generation {
                    inner.offsets.durable()
                } else if inner.durable_before.0 == generation {
                    inner.durable_before.1
                } else {
                    i64::MIN
                };
                if durable > last_offset {
                    return Ok(());
                }
                if let Some(err) = &inner.storage_error {
                    return Err(LogError::Storage(err.clone()));
                }
                if inner.generation != generation {
                    return Err(LogError::Storage(format!(
                        "{}: the write of this batch failed; the partition has recovered \
                         from its files since and the batch may not be in the log",
                        self.name
                    )));
                }
            }
            if !self.flusher_running.get() {
                return Err(LogError::Closed);
            }
            notified.await;
        }
    }

    pub(super) async fn run_flusher(self: Rc<Self>) {
        // True while every cycle finds new work waiting the moment the last
        // one finished: more appends are then likely within the commit
        // window. An idle partition's lone write never waits.
        let mut streaming = false;
        // The index and snapshot files of the segments sealed in the last
        // cycle, being written while this one runs (see `SealMeta`).
        let mut meta: Option<Task<Result<(), LogError>>> = None;
        loop {
            let ring = self.wal_for_batch().map(|link| Rc::clone(&link.wal));
            let step = match ring {
                Some(wal) => self.ring_step(&wal, &mut streaming, &mut meta).await,
                None => self.classic_step(&mut streaming, &mut meta).await,
            };
            if step == Step::Stop {
                break;
            }
        }
        if let Some(task) = meta.take() {
            // Stopping after a failure: a pending seal's files are still
            // written (its data is synced), or the failure is the cause.
            if let Err(e) = task.await {
                tracing::debug!("{}: writing a sealed segment's files: {e}", self.name);
            }
        }
        self.flusher_running.set(false);
        self.progress_signal.notify_all();
    }

    /// One cycle without the ring: write, sync as the flush mode says.
    async fn classic_step(
        self: &Rc<Self>,
        streaming: &mut bool,
        meta: &mut Option<Task<Result<(), LogError>>>,
    ) -> Step {
        let Some(plan) = self.take_write_work() else {
            *streaming = false;
            if let Some(step) = self.finish_meta(meta).await {
                return step;
            }
            if self.closed.get() || self.quiesce.get() {
                return Step::Stop;
            }
            let notified = self.flush_signal.notified();
            match self.interval_sync_due() {
                Some(due) => {
                    self.clock.wait_at_most(due, notified).await;
                    if let Err(e) = self.sync_if_due(false).await {
                        return self.write_failed(e).await;
                    }
                }
                None => notified.await,
            }
            return Step::Continue;
        };
        if plan.has_seals() {
            // One seal's files at a time, in segment order.
            if let Some(Step::Stop) = self.finish_meta(meta).await {
                return Step::Stop;
            }
        }
        match self.execute(plan, *streaming).await {
            Ok(metas) => self.spawn_meta(meta, metas),
            Err(e) => return self.write_failed(e).await,
        }
        *streaming = true;
        Step::Continue
    }

    /// Wait for the last sealed segment's files, if they are being written:
    /// `Some(step)` when there was such a task (the cycle ends there).
    pub(super) async fn finish_meta(
        &self,
        meta: &mut Option<Task<Result<(), LogError>>>,
    ) -> Option<Step> {
        let task = meta.take()?;
        // Idle or about to seal: finish it before sleeping or stopping, so
        // a stopped flusher (close, truncation) has nothing in flight on
        // the segment files.
        Some(match task.await {
            Ok(()) => Step::Continue,
            Err(e) => {
                self.fail(e);
                Step::Stop
            }
        })
    }

    pub(super) fn spawn_meta(
        self: &Rc<Self>,
        meta: &mut Option<Task<Result<(), LogError>>>,
        metas: Vec<SealMeta>,
    ) {
        if !metas.is_empty() {
            *meta = Some(spawn_local(Rc::clone(self).write_seal_metas(metas)));
        }
    }

    /// A write failed. Without acknowledged bytes that exist only in the
    /// ring, the partition goes offline until a recovery in place reloads
    /// it from its files; with them, it keeps retrying their write.
    pub(super) async fn write_failed(self: &Rc<Self>, e: LogError) -> Step {
        if self.held.borrow().is_empty() {
            self.fail(e);
            Step::Stop
        } else {
            self.ring_fault(e).await
        }
    }

    /// A write or sync failed: the partition goes offline for writes.
    /// Without the ring, nothing at or above the high watermark will ever be
    /// served (its bytes may not be on the device); appends are refused with
    /// this error until a recovery in place succeeds (`recovery.rs`). With
    /// the ring, `ring_fault` keeps every batch appended so far and writes
    /// them all back once it can: a producer told of the failure (a
    /// retriable error, whose outcome is unknown as in Kafka) may find its
    /// batch kept.
    pub(super) fn fail(&self, e: LogError) {
        let hwm = self.inner.borrow().offsets.durable();
        let cause = match &e {
            LogError::NoSpace(detail) => format!(
                "the disk holding {} is full ({detail}); free space (delete topics or \
                 records) and writes resume",
                self.dir.display()
            ),
            other => format!("writing to {} failed: {other}", self.dir.display()),
        };
        tracing::error!(
            "{}: {cause}. Partition offline for writes; reads are served up to offset {hwm}",
            self.name
        );
        HEALTH.count_storage_error();
        HEALTH.partition_offline();
        self.note_fault(format!("{}: {cause}", self.name));
        self.progress_signal.notify_all();
    }

    /// A snapshot of every unwritten byte: the rolled segments' and the
    /// active one's. The bytes stay pending until the write succeeds
    /// (`write_plan`).
    pub(super) fn take_write_work(&self) -> Option<WritePlan> {
        let shape = {
            let config = self.config.borrow();
            ChunkShape::new(config.write_chunk_bytes, config.write_queue_depth)
        };
        let inner = self.inner.borrow();
        let seals: Vec<SealWork> = inner
            .sealing
            .iter()
            .map(|job| {
                let (write, _) = snapshot_pending(&job.pending, shape);
                (write, job.final_size, job.next_base, job.snapshot.clone())
            })
            .collect();
        let (active, taken_active) = if inner.active.dirty {
            let (job, taken) = snapshot_pending(&inner.active, shape);
            (Some(job), Some(taken))
        } else {
            (None, None)
        };
        if seals.is_empty() && active.is_none() {
            return None;
        }
        Some(WritePlan {
            taken_seals: seals.len(),
            seals,
            active,
            taken_active,
        })
    }

    /// Write a plan; once it succeeded, drop what it covered from the
    /// pending bytes (a segment rolled meanwhile is found among the
    /// sealing ones).
    pub(super) async fn write_plan(&self, plan: WritePlan) -> Result<Vec<SealMeta>, LogError> {
        let WritePlan {
            seals,
            active,
            taken_seals,
            taken_active,
        } = plan;
        let metas = self.write_work(seals, active).await?;
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        for _ in 0..taken_seals {
            inner.sealing.pop_front().expect("a sealed segment's job");
        }
        if let Some(taken) = taken_active {
            if inner.active.segment_base == taken.segment_base {
                inner.active.written_through(taken);
            } else {
                let job = inner
                    .sealing
                    .iter_mut()
                    .find(|job| job.pending.segment_base == taken.segment_base)
                    .expect("a segment rolled during its write is sealing");
                job.pending.written_through(taken);
            }
        }
        Ok(metas)
    }

    /// One cycle without the ring: write, hold for the commit window,
    /// sync, wake the acks. Returns the sealed segments whose index and
    /// snapshot files are still to be written: after the acks, off their
    /// path.
    async fn execute(&self, plan: WritePlan, streaming: bool) -> Result<Vec<SealMeta>, LogError> {
        let mut metas = self.write_plan(plan).await?;
        let (batch, window) = {
            let config = self.config.borrow();
            (
                config.flush_mode == FlushMode::Batch,
                config.group_commit_window_us,
            )
        };
        if batch && window > 0 && streaming && !self.closed.get() {
            // Nobody waiting on this sync has been acknowledged yet, so
            // holding it only delays acks; batches appended meanwhile are
            // written now and covered by the same fdatasync.
            glommio::timer::sleep(Duration::from_micros(window)).await;
            if let Some(plan) = self.take_write_work() {
                metas.extend(self.write_plan(plan).await?);
            }
        }
        self.sync_if_due(batch).await?;
        // Ring groups held from batch-mode cycles: their bytes are written.
        self.release_held(usize::MAX);
        self.progress_signal.notify_all();
        Ok(metas)
    }

    /// Write the index files and producer snapshots of segments whose data
    /// is synced, then mark them sealed. Runs after the acks of the cycle
    /// that sealed them: nothing acknowledged depends on these files (an
    /// index is rebuilt by scanning when missing, a snapshot by replaying
    /// the segments before it), and each one was three or four device
    /// flushes in front of every ack waiting at a roll.
    pub(super) async fn write_seal_metas(
        self: Rc<Self>,
        metas: Vec<SealMeta>,
    ) -> Result<(), LogError> {
        for meta in metas {
            // Encoded under the borrow, written on the blocking pool.
            let indexes = self
                .inner
                .borrow()
                .segments
                .get(&meta.base)
                .map(|seg| seg.index_files(&self.dir));
            if let Some(indexes) = indexes {
                indexes.write().await?;
            }
            // Every batch before `next_base` is on disk and synced.
            save_producer_snapshot(&self.dir, meta.next_base, &meta.snapshot).await?;
            // Sealed only once its indexes and the snapshot are durable, so
            // whoever waits for the seal (retention) sees all of it.
            if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&meta.base) {
                seg.sealed = true;
            }
            // `wait_sealed` listens here.
            self.progress_signal.notify_all();
        }
        Ok(())
    }

    /// Write (and for rolled segments, seal) the given jobs; advances
    /// `written_offset` but does not sync the active segment.
    async fn write_work(
        &self,
        seals: Vec<SealWork>,
        active: Option<WriteJob>,
    ) -> Result<Vec<SealMeta>, LogError> {
        let mut last_written = None;
        let mut metas = Vec::with_capacity(seals.len());
        for (job, final_size, next_base, snapshot) in seals {
            let file = job.file.clone();
            let base = job.segment_base;
            last_written = Some(self.write_job(job).await?.max(last_written.unwrap_or(-1)));
            let file = file.get().await?;
            disk::truncate(&file, final_size).await?;
            disk::fdatasync(&file).await?;
            metas.push(SealMeta {
                base,
                next_base,
                snapshot,
            });
        }
        if let Some(job) = active {
            let file = job.file.clone();
            last_written = Some(self.write_job(job).await?.max(last_written.unwrap_or(-1)));
            // Earlier unsynced writes went to this file too, or to one
            // sealed (and so synced) since: this one sync covers them all.
            self.inner.borrow_mut().unsynced_file = Some(file);
        }
        if let Some(last) = last_written {
            let mut inner = self.inner.borrow_mut();
            inner.offsets.mark_written(last + 1);
            inner.faults_in_a_row = 0;
            let config = self.config.borrow();
            let written = inner.offsets.written();
            inner
                .cache
                .trim(self.cache_share.cap(config.tail_cache_bytes), written);
            drop(config);
            drop(inner);
            self.publish_durable();
        }
        Ok(metas)
    }

    /// Write one job; returns the last offset it made durable-on-device.
    async fn write_job(&self, job: WriteJob) -> Result<i64, LogError> {
        #[cfg(test)]
        self.inject.before_write().await?;
        // Held until the job is written: an open file in use is never closed.
        let file = job.file.get().await?;
        if let Some((pos, buf)) = job.chunks.last() {
            self.reserve_space(job.segment_base, &file, pos + buf.len() as u64)
                .await;
        }
        let file = &*file;
        let write = |(pos, buf): (u64, DmaBuffer)| async move {
            let len = buf.len();
            let n = disk::write_at(file, buf, pos).await?;
            if n != len {
                return Err(LogError::Storage(format!(
                    "short write at {pos}: {n} of {len} bytes"
                )));
            }
            Ok(())
        };
        if job.chunks.len() == 1 {
            // The common case: no stream machinery on the hot path.
            let chunk = job.chunks.into_iter().next().expect("one chunk");
            write(chunk).await?;
        } else {
            let mut writes = stream::iter(job.chunks)
                .map(write)
                .buffer_unordered(job.queue_depth.max(1));
            // Every piece must land before the job counts as written; on an
            // error the rest are dropped (the partition turns read-only).
            while let Some(outcome) = writes.next().await {
                outcome?;
            }
        }
        if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&job.segment_base) {
            seg.written = seg.written.max(job.logical_end);
        }
        Ok(job.last_offset)
    }

    /// With `preallocate`, reserve file space before a write would go past
    /// what is reserved, in steps that follow the partition's write rate
    /// (see `preallocate`); best effort, like Kafka's.
    async fn reserve_space(&self, segment_base: i64, file: &DmaFile, end: u64) {
        let target = {
            let config = self.config.borrow();
            if !config.preallocate {
                return;
            }
            let mut inner = self.inner.borrow_mut();
            match inner.segments.get_mut(&segment_base) {
                Some(seg) if end > seg.allocated => {
                    seg.preallocation
                        .next_target(end, config.segment_bytes, self.clock.monotonic())
                }
                _ => return,
            }
        };
        match disk::pre_allocate(file, target).await {
            Ok(()) => {
                if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&segment_base) {
                    seg.allocated = seg.allocated.max(target);
                }
            }
            Err(e) => tracing::debug!("{}: pre-allocating {target} bytes: {e}", self.name),
        }
    }

    fn since_last_sync(&self, inner: &super::partition::Inner) -> Duration {
        self.clock
            .monotonic()
            .saturating_duration_since(inner.last_sync)
    }

    fn interval_sync_due(&self) -> Option<Duration> {
        let config = self.config.borrow();
        let inner = self.inner.borrow();
        if config.flush_mode != FlushMode::Interval
            || inner.offsets.synced() >= inner.offsets.written()
        {
            return None;
        }
        let interval = Duration::from_millis(config.flush_interval_ms);
        Some(interval.saturating_sub(self.since_last_sync(&inner)))
    }

    async fn sync_if_due(&self, force: bool) -> Result<(), LogError> {
        let (file, target) = {
            let config = self.config.borrow();
            let inner = self.inner.borrow();
            if inner.offsets.synced() >= inner.offsets.written() {
                return Ok(());
            }
            let due = force
                || inner.unsynced_bytes >= config.flush_interval_bytes
                || self.since_last_sync(&inner) >= Duration::from_millis(config.flush_interval_ms);
            if !due {
                return Ok(());
            }
            // The file written last, which may no longer be the active one
            // (rolled since); other written segments were synced when sealed.
            let file = inner
                .unsynced_file
                .clone()
                .unwrap_or_else(|| inner.active.file.clone());
            (file, inner.offsets.written())
        };
        #[cfg(test)]
        self.inject.before_sync()?;
        disk::fdatasync(&*file.get().await?).await?;
        self.note_synced(target, Some(&file));
        Ok(())
    }

    /// Everything before `target` is durable: by an fdatasync of `file`,
    /// or (`None`) by a write-ahead frame covering every file written.
    pub(super) fn note_synced(&self, target: i64, file: Option<&SegmentFile>) {
        let mut inner = self.inner.borrow_mut();
        inner.offsets.mark_synced(target);
        inner.unsynced_bytes = 0;
        let covered = match (file, &inner.unsynced_file) {
            (None, _) => true,
            (Some(synced), Some(pending)) => pending.same(synced),
            (Some(_), None) => false,
        };
        if covered {
            inner.unsynced_file = None;
        }
        inner.last_sync = self.clock.monotonic();
        drop(inner);
        self.publish_durable();
    }

    /// Stop accepting appends, write and sync everything, end the flusher.
    pub async fn close(&self) -> Result<(), LogError> {
        self.closed.set(true);
        self.flush_signal.notify_all();
        self.data_signal.notify_all();
        while self.flusher_running.get() {
            let notified = self.progress_signal.notified();
            if !self.flusher_running.get() {
                break;
            }
            notified.await;
        }
        let (file, size) = {
            let inner = self.inner.borrow();
            (
                inner.active.file.clone(),
                inner.segments.values().next_back().map_or(0, |s| s.size),
            )
        };
        if self.inner.borrow().storage_error.is_none() {
            // A clean shutdown leaves the active segment at its exact size.
            let file = file.get().await?;
            disk::truncate(&file, size).await?;
            disk::fdatasync(&file).await?;
        }
        if let Some(err) = &self.inner.borrow().storage_error {
            // Closed for good: it no longer counts as an offline partition.
            HEALTH.partition_online();
            return Err(LogError::Storage(err.clone()));
        }
        Ok(())
    }
}

/// Test-only faults for the flusher: hold writes (a slow device), or fail
/// writes or syncs with ENOSPC (a full one).
#[cfg(test)]
#[derive(Default)]
pub(super) struct Injection {
    pub(super) hold_writes: std::cell::Cell<bool>,
    pub(super) fail_writes: std::cell::Cell<bool>,
    pub(super) fail_syncs: std::cell::Cell<bool>,
    released: crate::signal::Signal,
}

#[cfg(test)]
impl Injection {
    pub(super) fn release_writes(&self) {
        self.hold_writes.set(false);
        self.released.notify_all();
    }

    async fn before_write(&self) -> Result<(), LogError> {
        loop {
            let released = self.released.notified();
            if !self.hold_writes.get() {
                break;
            }
            released.await;
        }
        if self.fail_writes.get() {
            return Err(LogError::NoSpace("injected ENOSPC on write".into()));
        }
        Ok(())
    }

    fn before_sync(&self) -> Result<(), LogError> {
        if self.fail_syncs.get() {
            return Err(LogError::NoSpace("injected ENOSPC on fdatasync".into()));
        }
        Ok(())
    }
}
