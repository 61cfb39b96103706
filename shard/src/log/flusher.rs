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

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use glommio::io::{DmaBuffer, DmaFile};

use super::config::FlushMode;
use super::disk;
use super::error::LogError;
use super::health::HEALTH;
use super::open_files::SegmentFile;
use super::partition::{save_producer_snapshot, PartitionLog, PAGE};
use super::producer_state::ProducerStates;
use super::wal::glue::WalLink;
use super::wal::WalEntry;
use crate::rt::{spawn_local, Task};
use crate::time::Clock;

/// Unwritten bytes of one segment, starting at `file_pos` (page aligned):
/// `tail`, the bytes of the last partial page already on disk (rewritten
/// with whatever follows them), then the appended batches themselves.
/// The batches are the same `Bytes` the tail cache holds, so appending
/// copies nothing; the one copy is into the DMA buffers at write time.
pub(super) struct PendingWrite {
    pub(super) segment_base: i64,
    pub(super) file: SegmentFile,
    pub(super) file_pos: u64,
    tail: Vec<u8>,
    batches: Vec<Bytes>,
    batches_len: usize,
    pub(super) dirty: bool,
    pub(super) last_offset: i64,
}

impl PendingWrite {
    pub(super) fn new(segment_base: i64, file: SegmentFile, file_pos: u64, tail: Vec<u8>) -> Self {
        debug_assert_eq!(file_pos % PAGE as u64, 0);
        debug_assert!(tail.len() < PAGE);
        Self {
            segment_base,
            file,
            file_pos,
            tail,
            batches: Vec::new(),
            batches_len: 0,
            dirty: false,
            last_offset: -1,
        }
    }

    /// Bytes from `file_pos` to the end of what was appended.
    pub(super) fn len(&self) -> usize {
        self.tail.len() + self.batches_len
    }

    pub(super) fn push(&mut self, batch: Bytes) {
        self.batches_len += batch.len();
        self.batches.push(batch);
        self.dirty = true;
    }

    /// The same bytes as an entry of the write-ahead ring (no copy of the
    /// batches; the tail, under a page, is copied).
    pub(super) fn wal_entry(&self, link: &WalLink) -> Option<WalEntry> {
        if !self.dirty || self.len() == 0 {
            return None;
        }
        let mut pieces = Vec::with_capacity(self.batches.len() + 1);
        if !self.tail.is_empty() {
            pieces.push(Bytes::copy_from_slice(&self.tail));
        }
        pieces.extend(self.batches.iter().cloned());
        Some(WalEntry {
            path: link.entry(self.segment_base),
            pos: self.file_pos,
            pieces,
            len: self.len(),
        })
    }

    /// The pending bytes in order: the tail, then each batch.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.tail[..]).chain(self.batches.iter().map(|b| &b[..]))
    }

    /// Everything up to the last whole page is written: keep only the
    /// partial page after it (at most one page is copied).
    fn advance_to_last_page(&mut self) {
        let len = self.len();
        let full = len / PAGE * PAGE;
        let mut tail = Vec::with_capacity(PAGE);
        let mut at = 0;
        for piece in self.pieces() {
            let end = at + piece.len();
            if end > full {
                tail.extend_from_slice(&piece[full.saturating_sub(at)..]);
            }
            at = end;
        }
        debug_assert_eq!(tail.len(), len - full);
        self.tail = tail;
        self.batches.clear();
        self.batches_len = 0;
        self.file_pos += full as u64;
    }
}

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

/// A segment whose data is written and synced, and whose index files and
/// the next segment's producer snapshot are still to be written.
pub(super) struct SealMeta {
    base: i64,
    next_base: i64,
    snapshot: ProducerStates,
}

pub(super) struct WriteJob {
    pub(super) segment_base: i64,
    pub(super) file: SegmentFile,
    /// Page-aligned pieces of at most `write_chunk_bytes`, with their file
    /// positions; together they cover the job contiguously.
    pub(super) chunks: Vec<(u64, DmaBuffer)>,
    pub(super) queue_depth: usize,
    pub(super) logical_end: u64,
    pub(super) last_offset: i64,
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
                if inner.offsets.high_watermark() > last_offset {
                    return Ok(());
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
            let (seals, active, entries) = self.take_write_work();
            if seals.is_empty() && active.is_none() {
                streaming = false;
                if let Some(task) = meta.take() {
                    // Idle: finish it before sleeping or stopping, so a
                    // stopped flusher (close, truncation) has nothing in
                    // flight on the segment files.
                    if let Err(e) = task.await {
                        self.fail(e);
                        break;
                    }
                    continue;
                }
                if self.closed.get() || self.quiesce.get() {
                    break;
                }
                let notified = self.flush_signal.notified();
                match self.interval_sync_due() {
                    Some(due) => {
                        self.clock.wait_at_most(due, notified).await;
                        if let Err(e) = self.sync_if_due(false).await {
                            self.fail(e);
                            break;
                        }
                    }
                    None => notified.await,
                }
                continue;
            }
            if !seals.is_empty() {
                // One seal's files at a time, in segment order.
                if let Some(task) = meta.take() {
                    if let Err(e) = task.await {
                        self.fail(e);
                        break;
                    }
                }
            }
            match self.execute(seals, active, entries, streaming).await {
                Ok(metas) if metas.is_empty() => {}
                Ok(metas) => meta = Some(spawn_local(Rc::clone(&self).write_seal_metas(metas))),
                Err(e) => {
                    self.fail(e);
                    break;
                }
            }
            streaming = true;
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

    /// A write or sync failed: the partition goes offline for writes.
    /// Nothing at or above the high watermark will ever be served (its bytes
    /// may not be on the device); appends are refused with this error until
    /// a recovery in place succeeds (`recovery.rs`).
    fn fail(&self, e: LogError) {
        let hwm = self.high_watermark();
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

    /// The writes of one cycle, and (when the ring is in use) the same
    /// bytes as its entries, in the order they are written.
    fn take_write_work(&self) -> (Vec<SealWork>, Option<WriteJob>, Vec<WalEntry>) {
        let shape = {
            let config = self.config.borrow();
            ChunkShape::new(config.write_chunk_bytes, config.write_queue_depth)
        };
        let link = self.wal_for_batch();
        let mut entries = Vec::new();
        let mut inner = self.inner.borrow_mut();
        let seals = inner
            .sealing
            .drain(..)
            .map(|mut job| {
                if let Some(link) = link {
                    entries.extend(job.pending.wal_entry(link));
                }
                let write = snapshot_pending(&mut job.pending, true, shape);
                (write, job.final_size, job.next_base, job.snapshot)
            })
            .collect();
        if let Some(link) = link {
            entries.extend(inner.active.wal_entry(link));
            let bytes: usize = entries.iter().map(WalEntry::body_len).sum();
            if bytes > link.wal.max_round_body() {
                // Too big for one frame: this round syncs its own files,
                // as without a ring. Redoing older entries at start-up
                // still writes the same bytes these files hold.
                entries.clear();
            }
        }
        let active = inner
            .active
            .dirty
            .then(|| snapshot_pending(&mut inner.active, false, shape));
        (seals, active, entries)
    }

    /// One cycle: write, hold for the commit window, sync, wake the acks.
    /// Returns the sealed segments whose index and snapshot files are
    /// still to be written: after the acks, off their path.
    async fn execute(
        &self,
        seals: Vec<SealWork>,
        active: Option<WriteJob>,
        entries: Vec<WalEntry>,
        streaming: bool,
    ) -> Result<Vec<SealMeta>, LogError> {
        if !entries.is_empty() {
            return self.execute_with_ring(seals, active, entries).await;
        }
        let mut metas = self.write_work(seals, active).await?;
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
            let (seals, active, _) = self.take_write_work();
            metas.extend(self.write_work(seals, active).await?);
        }
        self.sync_if_due(batch).await?;
        self.progress_signal.notify_all();
        Ok(metas)
    }

    /// A batch-mode cycle with the shard's ring: the segment writes and the
    /// ring's frame (the same bytes) run together; the cycle is durable
    /// when both are done, with no fdatasync of the segment files (a
    /// checkpoint makes them durable later; see `wal/`).
    async fn execute_with_ring(
        &self,
        seals: Vec<SealWork>,
        active: Option<WriteJob>,
        entries: Vec<WalEntry>,
    ) -> Result<Vec<SealMeta>, LogError> {
        let wal = self
            .wal
            .as_ref()
            .expect("entries come from the ring")
            .wal
            .clone();
        let ticket = wal.append(entries);
        let seq = ticket.seq();
        self.wal_seq.set(Some(seq));
        let write = async {
            let outcome = self.write_work(seals, active).await;
            // The segment write is over (done or failed): checkpoints may
            // pass this group now.
            drop(ticket);
            outcome
        };
        let (metas, durable) = futures::join!(write, wal.wait_durable(seq));
        let metas = metas?;
        durable?;
        let written = self.inner.borrow().offsets.written();
        // The frame covers every file this cycle wrote.
        self.note_synced(written, None);
        self.progress_signal.notify_all();
        Ok(metas)
    }

    /// Write the index files and producer snapshots of segments whose data
    /// is synced, then mark them sealed. Runs after the acks of the cycle
    /// that sealed them: nothing acknowledged depends on these files (an
    /// index is rebuilt by scanning when missing, a snapshot by replaying
    /// the segments before it), and each one was three or four device
    /// flushes in front of every ack waiting at a roll.
    async fn write_seal_metas(self: Rc<Self>, metas: Vec<SealMeta>) -> Result<(), LogError> {
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
    fn note_synced(&self, target: i64, file: Option<&SegmentFile>) {
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

/// How a job is cut into writes: piece size (whole pages) and pieces in flight.
#[derive(Clone, Copy)]
pub(super) struct ChunkShape {
    pub(super) chunk_bytes: usize,
    pub(super) queue_depth: usize,
}

impl ChunkShape {
    pub(super) fn new(chunk_bytes: usize, queue_depth: usize) -> Self {
        Self {
            chunk_bytes: (chunk_bytes / PAGE).max(1) * PAGE,
            queue_depth: queue_depth.max(1),
        }
    }
}

/// Copy the unwritten bytes of `pending` into aligned buffers of at most
/// `shape.chunk_bytes` and keep only the last partial page (it is rewritten
/// with the next bytes). Copying straight into the pieces costs the same
/// single copy as one big buffer did.
fn snapshot_pending(pending: &mut PendingWrite, sealing: bool, shape: ChunkShape) -> WriteJob {
    let len = if pending.dirty { pending.len() } else { 0 };
    let padded = len.div_ceil(PAGE) * PAGE;
    let mut chunks = Vec::with_capacity(padded.div_ceil(shape.chunk_bytes));
    let mut source = pending.pieces().flat_map(|p| p.chunks(shape.chunk_bytes));
    let mut carry: &[u8] = &[];
    let mut start = 0;
    while start < padded {
        let piece = shape.chunk_bytes.min(padded - start);
        let mut data = glommio::allocate_dma_buffer(piece);
        let dst = data.as_bytes_mut();
        // Fill the chunk from the pending pieces, which need not line up
        // with chunk boundaries.
        let mut filled = 0;
        while filled < piece {
            if carry.is_empty() {
                match source.next() {
                    Some(next) => carry = next,
                    None => break,
                }
                continue;
            }
            let n = carry.len().min(piece - filled);
            dst[filled..filled + n].copy_from_slice(&carry[..n]);
            carry = &carry[n..];
            filled += n;
        }
        debug_assert_eq!(filled, len.saturating_sub(start).min(piece));
        dst[filled..].fill(0);
        chunks.push((pending.file_pos + start as u64, data));
        start += piece;
    }
    drop(source);
    let job = WriteJob {
        segment_base: pending.segment_base,
        file: pending.file.clone(),
        chunks,
        queue_depth: shape.queue_depth,
        logical_end: pending.file_pos + len as u64,
        last_offset: pending.last_offset,
    };
    if !sealing {
        pending.advance_to_last_page();
        pending.dirty = false;
    }
    job
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
