//! The log of one partition: segments, appends with group commit, reads from
//! the tail cache or the disk, recovery, retention and delete-records.
//!
//! A `PartitionLog` lives on the shard that owns the partition and is used
//! only from that shard's thread. Appends run their bookkeeping without
//! awaiting (so batches are ordered exactly as they arrive) and then wait
//! for the flusher task to make them as durable as the flush mode promises.
//! `RefCell` borrows are never held across an `.await`.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use glommio::io::DmaFile;
use glommio::sync::Semaphore;

use super::config::{FlushMode, LogConfig};
use super::error::LogError;
use super::producer_state::{BatchSeq, ProducerStates, SeqCheck};
use super::segment::{segment_file_name, Segment};
use super::tail_cache::{CachedBatch, TailCache};
use crate::record::{self, BatchView, NO_PRODUCER_ID};
use crate::signal::Signal;

const PAGE: usize = 4096;
const LOG_START_FILE: &str = "log-start-offset";

/// How far an append must get before `append` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckLevel {
    /// acks=0: return once the batch is in the log's memory.
    None,
    /// Return once the flush mode's promise holds (written, or synced).
    Durable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// Broker time stamped on the batch for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already in the log; nothing was written.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub batches: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl ReadOutcome {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

/// Offsets of a partition as ListOffsets and DescribeLogDirs see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
}

/// Unwritten bytes of one segment: the tail of its last partial page, then
/// everything appended since. `file_pos` is page aligned.
struct PendingWrite {
    segment_base: i64,
    file: Rc<DmaFile>,
    file_pos: u64,
    buf: Vec<u8>,
    dirty: bool,
    last_offset: i64,
}

impl PendingWrite {
    fn new(segment_base: i64, file: Rc<DmaFile>, file_pos: u64, buf: Vec<u8>) -> Self {
        debug_assert_eq!(file_pos % PAGE as u64, 0);
        Self {
            segment_base,
            file,
            file_pos,
            buf,
            dirty: false,
            last_offset: -1,
        }
    }
}

/// A segment that has been rolled away from and must be finished on disk.
struct SealJob {
    pending: PendingWrite,
    final_size: u64,
}

struct WriteJob {
    segment_base: i64,
    file: Rc<DmaFile>,
    pos: u64,
    data: glommio::io::DmaBuffer,
    logical_end: u64,
    last_offset: i64,
}

pub(super) struct Inner {
    pub(super) segments: BTreeMap<i64, Segment>,
    pub(super) next_offset: i64,
    log_start_offset: i64,
    pub(super) cache: TailCache,
    active: PendingWrite,
    sealing: VecDeque<SealJob>,
    /// Offsets below this are written to the device.
    pub(super) written_offset: i64,
    /// Offsets below this are covered by an fdatasync.
    synced_offset: i64,
    unsynced_bytes: u64,
    last_sync: Instant,
    producers: ProducerStates,
    leader_epoch: i32,
    storage_error: Option<String>,
}

pub struct PartitionLog {
    pub(super) dir: PathBuf,
    name: String,
    config: RefCell<LogConfig>,
    pub(super) inner: RefCell<Inner>,
    pub(super) cleaner: RefCell<super::compaction::CleanerState>,
    /// Serialises appends with segment rolls (which await file creation).
    append_lock: Semaphore,
    /// New data appended: wakes fetch long-polls.
    data_signal: Signal,
    /// Bytes waiting to be written: wakes the flusher.
    flush_signal: Signal,
    /// Written/synced offsets advanced (or an error happened).
    progress_signal: Signal,
    closed: Cell<bool>,
    flusher_running: Cell<bool>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse_segment_base(name: &str) -> Option<i64> {
    name.strip_suffix(".log")?.parse().ok()
}

impl PartitionLog {
    /// Open (recovering if needed) or create the log in `dir`, and start its
    /// flusher task on the current shard.
    pub async fn open(dir: PathBuf, name: String, config: LogConfig) -> Result<Rc<Self>, LogError> {
        super::direct_io::prepare_dir(&dir).await?;
        super::compaction::recover_leftovers(&dir).await?;
        let mut bases: Vec<i64> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| parse_segment_base(e.file_name().to_str()?))
            .collect();
        bases.sort_unstable();
        let checkpoint_start = read_log_start(&dir);
        let mut segments = BTreeMap::new();
        let mut producers = ProducerStates::default();
        for (i, &base) in bases.iter().enumerate() {
            let is_last = i + 1 == bases.len();
            let next_base = bases.get(i + 1).copied();
            if !is_last {
                if let Some(seg) = Segment::open_sealed(&dir, base, next_base.unwrap()).await? {
                    segments.insert(base, seg);
                    continue;
                }
                tracing::info!("{name}: segment {base} has no index; rebuilding it");
            } else {
                producers = load_producer_snapshot(&dir, base);
            }
            let (mut seg, outcome) =
                Segment::recover(&dir, base, config.index_interval_bytes, |batch| {
                    if is_last {
                        record_producer(&mut producers, batch);
                    }
                })
                .await?;
            if let Some(why) = &outcome.stopped_because {
                tracing::warn!(
                    "{name}: segment {base}: truncated to {} bytes (next offset {}): {why}",
                    outcome.valid_end,
                    outcome.next_offset
                );
            }
            if !is_last {
                seg.file.fdatasync().await?;
                seg.write_indexes(&dir)?;
                seg.sealed = true;
            }
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            let base = checkpoint_start.unwrap_or(0);
            let seg = Segment::create(
                &dir,
                base,
                config.preallocate.then_some(config.segment_bytes),
            )
            .await?;
            segments.insert(base, seg);
        }
        let (&active_base, active) = segments.iter().next_back().expect("at least one segment");
        let next_offset = active.next_offset;
        let aligned = active.size / PAGE as u64 * PAGE as u64;
        let tail = if aligned < active.size {
            active
                .file
                .read_at(aligned, (active.size - aligned) as usize)
                .await?
                .to_vec()
        } else {
            Vec::new()
        };
        let pending = PendingWrite::new(active_base, active.file.clone(), aligned, tail);
        let first_base = *segments.keys().next().expect("non-empty");
        let log_start_offset = checkpoint_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(next_offset);
        let log = Rc::new(Self {
            dir,
            name,
            config: RefCell::new(config),
            inner: RefCell::new(Inner {
                segments,
                next_offset,
                log_start_offset,
                cache: TailCache::default(),
                active: pending,
                sealing: VecDeque::new(),
                written_offset: next_offset,
                synced_offset: next_offset,
                unsynced_bytes: 0,
                last_sync: Instant::now(),
                producers,
                leader_epoch: 0,
                storage_error: None,
            }),
            cleaner: RefCell::default(),
            append_lock: Semaphore::new(1),
            data_signal: Signal::new(),
            flush_signal: Signal::new(),
            progress_signal: Signal::new(),
            closed: Cell::new(false),
            flusher_running: Cell::new(true),
        });
        glommio::spawn_local(log.clone().run_flusher()).detach();
        Ok(log)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> LogConfig {
        self.config.borrow().clone()
    }

    pub fn set_config(&self, config: LogConfig) {
        *self.config.borrow_mut() = config;
    }

    pub fn set_leader_epoch(&self, epoch: i32) {
        self.inner.borrow_mut().leader_epoch = epoch;
    }

    pub fn offsets(&self) -> LogOffsets {
        let inner = self.inner.borrow();
        LogOffsets {
            log_start_offset: inner.log_start_offset,
            high_watermark: inner.next_offset,
            size_bytes: inner.segments.values().map(|s| s.size).sum(),
        }
    }

    /// Append one or more magic-2 batches (a Produce request's records for
    /// this partition). All batches are validated before any is appended.
    pub async fn append(&self, records: Bytes, ack: AckLevel) -> Result<AppendInfo, LogError> {
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let batches = self.validate(&records)?;
        let _permit = self
            .append_lock
            .acquire_permit(1)
            .await
            .map_err(|_| LogError::Closed)?;
        if let Some(err) = &self.inner.borrow().storage_error {
            return Err(LogError::Storage(err.clone()));
        }
        if let Some(dup) = self.check_duplicate(&records, &batches)? {
            return Ok(dup);
        }
        let total: usize = batches.iter().map(|r| r.len()).sum();
        if self.needs_roll(total) {
            self.roll().await?;
        }
        let info = self.append_validated(&records, &batches);
        drop(_permit);
        self.flush_signal.notify_all();
        self.data_signal.notify_all();
        if ack == AckLevel::Durable {
            self.wait_durable(info.last_offset).await?;
        }
        Ok(info)
    }

    fn validate(&self, records: &Bytes) -> Result<Vec<std::ops::Range<usize>>, LogError> {
        let config = self.config.borrow();
        let mut ranges = Vec::new();
        let mut at = 0;
        while at < records.len() {
            let rest = &records[at..];
            if record::peek_magic(rest).is_some_and(|m| m != 2) {
                return Err(LogError::UnsupportedFormat);
            }
            let batch = BatchView::parse_verified(rest)?;
            if batch.size() > config.max_message_bytes {
                return Err(LogError::MessageTooLarge {
                    size: batch.size(),
                    max: config.max_message_bytes,
                });
            }
            if batch.record_count() == 0 && !batch.is_control() {
                return Err(LogError::InvalidRecord("batch holds no records".into()));
            }
            if batch.record_count() as i64 != batch.last_offset_delta() as i64 + 1
                && !config.cleanup_compact
            {
                return Err(LogError::InvalidRecord(format!(
                    "record count {} does not match last offset delta {}",
                    batch.record_count(),
                    batch.last_offset_delta()
                )));
            }
            if config.cleanup_compact && !batch.is_control() {
                let recs = record::decode_records(&batch)
                    .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
                if recs.iter().any(|r| r.key.is_none()) {
                    return Err(LogError::MissingKey);
                }
            }
            ranges.push(at..at + batch.size());
            at += batch.size();
        }
        if ranges.is_empty() {
            return Err(LogError::InvalidRecord("no record batch".into()));
        }
        Ok(ranges)
    }

    /// Idempotence: a retried batch is answered with its first append.
    fn check_duplicate(
        &self,
        records: &Bytes,
        batches: &[std::ops::Range<usize>],
    ) -> Result<Option<AppendInfo>, LogError> {
        let inner = self.inner.borrow();
        let mut duplicate_of = None;
        for range in batches {
            let b = BatchView::parse(&records[range.clone()]).expect("validated");
            if b.producer_id() == NO_PRODUCER_ID {
                continue;
            }
            match inner.producers.check(
                b.producer_id(),
                b.producer_epoch(),
                b.base_sequence(),
                b.last_sequence(),
            ) {
                SeqCheck::Accept => {}
                SeqCheck::Duplicate { base_offset } => {
                    duplicate_of = Some((base_offset, b.last_offset_delta()))
                }
                SeqCheck::InvalidEpoch => return Err(LogError::InvalidProducerEpoch),
                SeqCheck::OutOfOrder { expected, got } => {
                    return Err(LogError::OutOfOrderSequence { expected, got })
                }
            }
        }
        Ok(duplicate_of.map(|(base, delta)| AppendInfo {
            base_offset: base,
            last_offset: base + delta as i64,
            log_append_time: -1,
            log_start_offset: inner.log_start_offset,
            duplicate: true,
        }))
    }

    fn needs_roll(&self, incoming: usize) -> bool {
        let config = self.config.borrow();
        let inner = self.inner.borrow();
        let active = inner.segments.values().next_back().expect("active segment");
        if active.size == 0 {
            return false;
        }
        let too_big = active.size + incoming as u64 > config.segment_bytes;
        let too_old = active
            .first_append_ms
            .is_some_and(|t| now_ms() - t >= config.segment_ms);
        // Relative offsets and positions in the index are 32-bit.
        let offsets_full = inner.next_offset - active.base_offset > (i32::MAX as i64 - 1_000_000);
        too_big || too_old || offsets_full
    }

    /// Start a new segment at the log end; the old one is sealed by the flusher.
    async fn roll(&self) -> Result<(), LogError> {
        let (base, preallocate) = {
            let config = self.config.borrow();
            (
                self.inner.borrow().next_offset,
                config.preallocate.then_some(config.segment_bytes),
            )
        };
        let seg = Segment::create(&self.dir, base, preallocate).await?;
        let mut inner = self.inner.borrow_mut();
        let final_size = inner.segments.values().next_back().expect("active").size;
        let fresh = PendingWrite::new(base, seg.file.clone(), 0, Vec::new());
        let old = std::mem::replace(&mut inner.active, fresh);
        inner.sealing.push_back(SealJob {
            pending: old,
            final_size,
        });
        inner.segments.insert(base, seg);
        // Replay state for this segment starts from what is known now.
        if let Err(e) = save_producer_snapshot(&self.dir, base, &inner.producers) {
            tracing::warn!("{}: producer snapshot: {e}", self.name);
        }
        drop(inner);
        self.flush_signal.notify_all();
        Ok(())
    }

    fn append_validated(&self, records: &Bytes, batches: &[std::ops::Range<usize>]) -> AppendInfo {
        let config = self.config.borrow();
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let now = now_ms();
        let first_offset = inner.next_offset;
        for range in batches {
            let mut bytes = BytesMut::from(&records[range.clone()]);
            record::set_base_offset(&mut bytes, inner.next_offset);
            record::set_partition_leader_epoch(&mut bytes, inner.leader_epoch);
            if config.log_append_time {
                record::set_log_append_time(&mut bytes, now);
            }
            let bytes = bytes.freeze();
            let batch = BatchView::parse(&bytes).expect("validated");
            let seg = inner
                .segments
                .values_mut()
                .next_back()
                .expect("active segment");
            seg.note_batch(&batch, config.index_interval_bytes);
            seg.size += bytes.len() as u64;
            seg.first_append_ms.get_or_insert(now);
            inner.active.buf.extend_from_slice(&bytes);
            inner.active.dirty = true;
            inner.active.last_offset = batch.last_offset();
            inner.unsynced_bytes += bytes.len() as u64;
            record_producer(&mut inner.producers, &batch);
            inner.cache.push(CachedBatch {
                base_offset: batch.base_offset(),
                last_offset: batch.last_offset(),
                max_timestamp: batch.max_timestamp(),
                bytes: bytes.clone(),
            });
            inner.next_offset = batch.last_offset() + 1;
        }
        let written = inner.written_offset;
        inner.cache.trim(config.tail_cache_bytes, written);
        AppendInfo {
            base_offset: first_offset,
            last_offset: inner.next_offset - 1,
            log_append_time: if config.log_append_time { now } else { -1 },
            log_start_offset: inner.log_start_offset,
            duplicate: false,
        }
    }

    async fn wait_durable(&self, last_offset: i64) -> Result<(), LogError> {
        loop {
            let notified = self.progress_signal.notified();
            {
                let inner = self.inner.borrow();
                if let Some(err) = &inner.storage_error {
                    return Err(LogError::Storage(err.clone()));
                }
                let reached = match self.config.borrow().flush_mode {
                    FlushMode::Batch => inner.synced_offset,
                    FlushMode::Interval => inner.written_offset,
                };
                if reached > last_offset {
                    return Ok(());
                }
            }
            if !self.flusher_running.get() {
                return Err(LogError::Closed);
            }
            notified.await;
        }
    }

    /// Wait until data past `offset` exists or `timeout` passes (fetch long-poll).
    pub async fn wait_for_data(&self, offset: i64, timeout: Duration) {
        if self.inner.borrow().next_offset > offset || self.closed.get() {
            return;
        }
        let notified = self.data_signal.notified();
        let _ = glommio::timer::timeout(timeout, async {
            notified.await;
            Ok(())
        })
        .await;
    }

    /// Register interest in the next append (for waits over many partitions).
    pub fn data_notified(&self) -> crate::signal::Notified {
        self.data_signal.notified()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.borrow().next_offset
    }

    // ---- the flusher -------------------------------------------------

    async fn run_flusher(self: Rc<Self>) {
        loop {
            let (seals, active) = self.take_write_work();
            if seals.is_empty() && active.is_none() {
                if self.closed.get() {
                    break;
                }
                let notified = self.flush_signal.notified();
                match self.interval_sync_due() {
                    Some(due) => {
                        let _ = glommio::timer::timeout(due, async {
                            notified.await;
                            Ok(())
                        })
                        .await;
                        if let Err(e) = self.sync_if_due(false).await {
                            self.fail(e);
                            break;
                        }
                    }
                    None => notified.await,
                }
                continue;
            }
            if let Err(e) = self.execute(seals, active).await {
                self.fail(e);
                break;
            }
        }
        self.flusher_running.set(false);
        self.progress_signal.notify_all();
    }

    fn fail(&self, e: LogError) {
        tracing::error!(
            "{}: write failed, partition is read-only until restart: {e}",
            self.name
        );
        self.inner.borrow_mut().storage_error = Some(e.to_string());
        self.progress_signal.notify_all();
    }

    fn take_write_work(&self) -> (Vec<(WriteJob, u64)>, Option<WriteJob>) {
        let mut inner = self.inner.borrow_mut();
        let seals = inner
            .sealing
            .drain(..)
            .map(|mut job| {
                let final_size = job.final_size;
                (snapshot_pending(&mut job.pending, true), final_size)
            })
            .collect();
        let active = inner
            .active
            .dirty
            .then(|| snapshot_pending(&mut inner.active, false));
        (seals, active)
    }

    async fn execute(
        &self,
        seals: Vec<(WriteJob, u64)>,
        active: Option<WriteJob>,
    ) -> Result<(), LogError> {
        let mut last_written = None;
        for (job, final_size) in seals {
            let file = job.file.clone();
            let base = job.segment_base;
            last_written = Some(self.write_job(job).await?.max(last_written.unwrap_or(-1)));
            file.truncate(final_size).await?;
            file.fdatasync().await?;
            let inner = self.inner.borrow();
            if let Some(seg) = inner.segments.get(&base) {
                seg.write_indexes(&self.dir)?;
            }
            drop(inner);
            if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&base) {
                seg.sealed = true;
            }
        }
        if let Some(job) = active {
            last_written = Some(self.write_job(job).await?.max(last_written.unwrap_or(-1)));
        }
        if let Some(last) = last_written {
            let mut inner = self.inner.borrow_mut();
            inner.written_offset = inner.written_offset.max(last + 1);
            let config = self.config.borrow();
            let written = inner.written_offset;
            inner.cache.trim(config.tail_cache_bytes, written);
        }
        let force = self.config.borrow().flush_mode == FlushMode::Batch;
        self.sync_if_due(force).await?;
        self.progress_signal.notify_all();
        Ok(())
    }

    /// Write one job; returns the last offset it made durable-on-device.
    async fn write_job(&self, job: WriteJob) -> Result<i64, LogError> {
        let len = job.data.len();
        if len == 0 {
            return Ok(job.last_offset);
        }
        let n = job.file.write_at(job.data, job.pos).await?;
        if n != len {
            return Err(LogError::Storage(format!(
                "short write: {n} of {len} bytes"
            )));
        }
        if let Some(seg) = self.inner.borrow_mut().segments.get_mut(&job.segment_base) {
            seg.written = seg.written.max(job.logical_end);
        }
        Ok(job.last_offset)
    }

    fn interval_sync_due(&self) -> Option<Duration> {
        let config = self.config.borrow();
        let inner = self.inner.borrow();
        if config.flush_mode != FlushMode::Interval || inner.synced_offset >= inner.written_offset {
            return None;
        }
        let interval = Duration::from_millis(config.flush_interval_ms);
        Some(
            interval
                .saturating_sub(inner.last_sync.elapsed())
                .max(Duration::from_millis(1)),
        )
    }

    async fn sync_if_due(&self, force: bool) -> Result<(), LogError> {
        let (file, target) = {
            let config = self.config.borrow();
            let inner = self.inner.borrow();
            if inner.synced_offset >= inner.written_offset {
                return Ok(());
            }
            let due = force
                || inner.unsynced_bytes >= config.flush_interval_bytes
                || inner.last_sync.elapsed() >= Duration::from_millis(config.flush_interval_ms);
            if !due {
                return Ok(());
            }
            (inner.active.file.clone(), inner.written_offset)
        };
        file.fdatasync().await?;
        let mut inner = self.inner.borrow_mut();
        inner.synced_offset = inner.synced_offset.max(target);
        inner.unsynced_bytes = 0;
        inner.last_sync = Instant::now();
        Ok(())
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
            file.truncate(size).await?;
            file.fdatasync().await?;
        }
        if let Some(err) = &self.inner.borrow().storage_error {
            return Err(LogError::Storage(err.clone()));
        }
        Ok(())
    }

    // ---- reads -------------------------------------------------------

    /// Batches from `offset` on, at most about `max_bytes` (the first batch
    /// whole). `offset == log end` gives an empty result.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, LogError> {
        let mut at = offset;
        loop {
            let plan = {
                let inner = self.inner.borrow();
                if offset < inner.log_start_offset || offset > inner.next_offset {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start: inner.log_start_offset,
                        log_end: inner.next_offset,
                    });
                }
                let mut out = ReadOutcome {
                    batches: Vec::new(),
                    high_watermark: inner.next_offset,
                    log_start_offset: inner.log_start_offset,
                };
                if at >= inner.next_offset {
                    return Ok(out);
                }
                if inner.cache.first_offset().is_some_and(|first| at >= first) {
                    out.batches = inner.cache.read(at, max_bytes);
                    return Ok(out);
                }
                let Some((&base, seg)) = inner
                    .segments
                    .range(..=at)
                    .next_back()
                    .or_else(|| inner.segments.iter().next())
                else {
                    return Ok(out);
                };
                let start = seg.index.lookup(at.saturating_sub(base).max(0) as u32) as u64;
                let next_base = inner.segments.range(base + 1..).next().map(|(b, _)| *b);
                (out, seg.file.clone(), start, seg.written, next_base)
            };
            let (mut out, file, start, end, next_base) = plan;
            let batches = read_batches(&file, start, end, at, max_bytes).await?;
            if !batches.is_empty() {
                out.batches = batches;
                return Ok(out);
            }
            match next_base {
                Some(next) if next > at => at = next,
                _ => return Ok(out),
            }
        }
    }

    /// First offset whose record timestamp is >= `timestamp`, with that
    /// timestamp (ListOffsets by time); `None` if every record is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let candidates: Vec<_> = {
            let inner = self.inner.borrow();
            inner
                .segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp && s.size > 0)
                .map(|s| {
                    let rel = s.time_index.lookup(timestamp);
                    (s.file.clone(), s.index.lookup(rel) as u64, s.written)
                })
                .collect()
        };
        let log_start = self.inner.borrow().log_start_offset;
        for (file, start, end) in candidates {
            let mut pos = start;
            while pos < end {
                let chunk = read_batches(&file, pos, end, log_start, 1 << 20).await?;
                if chunk.is_empty() {
                    break;
                }
                for span in &chunk {
                    pos += span.len() as u64;
                    for b in split_batches(span) {
                        if let Some(found) = first_record_at_or_after(b, timestamp, log_start)? {
                            return Ok(Some(found));
                        }
                    }
                }
            }
        }
        // Batches not yet on disk are only in the cache.
        let cached: Vec<Bytes> = {
            let inner = self.inner.borrow();
            inner
                .cache
                .iter_from(inner.written_offset)
                .filter(|b| b.max_timestamp >= timestamp)
                .map(|b| b.bytes.clone())
                .collect()
        };
        for b in cached {
            if let Some(found) = first_record_at_or_after(&b, timestamp, log_start)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the record with the largest timestamp.
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let inner = self.inner.borrow();
        inner
            .segments
            .values()
            .filter(|s| s.offset_of_max_timestamp >= inner.log_start_offset)
            .max_by_key(|s| s.max_timestamp)
            .map(|s| (s.offset_of_max_timestamp, s.max_timestamp))
    }

    // ---- deletion ----------------------------------------------------

    /// DeleteRecords: make `offset` the new log start (-1 = high watermark).
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let new_start = {
            let mut inner = self.inner.borrow_mut();
            let target = if offset == -1 {
                inner.next_offset
            } else {
                offset
            };
            if target < 0 || target > inner.next_offset {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: inner.log_start_offset,
                    log_end: inner.next_offset,
                });
            }
            if target > inner.log_start_offset {
                inner.log_start_offset = target;
                inner.cache.drop_before(target);
            }
            inner.log_start_offset
        };
        write_log_start(&self.dir, new_start)?;
        self.delete_segments_below(new_start).await;
        Ok(new_start)
    }

    /// Remove sealed segments that lie entirely below `offset`.
    async fn delete_segments_below(&self, offset: i64) {
        let doomed: Vec<Segment> = {
            let mut inner = self.inner.borrow_mut();
            let active_base = inner.active.segment_base;
            let mut bases: Vec<i64> = Vec::new();
            let keys: Vec<i64> = inner.segments.keys().copied().collect();
            for (i, base) in keys.iter().enumerate() {
                let next = keys.get(i + 1).copied();
                let sealed_done = inner.segments[base].sealed;
                if *base != active_base && sealed_done && next.is_some_and(|n| n <= offset) {
                    bases.push(*base);
                }
            }
            bases
                .iter()
                .filter_map(|b| inner.segments.remove(b))
                .collect()
        };
        for seg in doomed {
            seg.delete_files(&self.dir);
            let _ = std::fs::remove_file(
                self.dir
                    .join(segment_file_name(seg.base_offset, "snapshot")),
            );
        }
    }

    /// Apply `retention.ms` and `retention.bytes`: delete whole sealed
    /// segments from the front. Rolls an expired active segment first so that
    /// an idle topic's data still ages out. Returns segments deleted.
    pub async fn enforce_retention(&self) -> Result<usize, LogError> {
        let config = self.config();
        if !config.cleanup_delete {
            return Ok(0);
        }
        let now = now_ms();
        let expired = |s: &Segment| {
            config.retention_ms >= 0
                && s.max_timestamp >= 0
                && now - s.max_timestamp > config.retention_ms
        };
        let roll_active = {
            let inner = self.inner.borrow();
            let active = inner.segments.values().next_back().expect("active");
            active.size > 0 && expired(active)
        };
        if roll_active {
            let _permit = self
                .append_lock
                .acquire_permit(1)
                .await
                .map_err(|_| LogError::Closed)?;
            self.roll().await?;
            drop(_permit);
            self.wait_sealed().await?;
        }
        let new_start = {
            let inner = self.inner.borrow();
            let mut total: i64 = inner.segments.values().map(|s| s.size as i64).sum();
            let mut new_start = None;
            let keys: Vec<i64> = inner.segments.keys().copied().collect();
            for (i, base) in keys.iter().enumerate() {
                let Some(&next) = keys.get(i + 1) else { break };
                let seg = &inner.segments[base];
                if !seg.sealed {
                    break;
                }
                let over_size = config.retention_bytes >= 0
                    && total - seg.size as i64 >= config.retention_bytes;
                if !(expired(seg) || over_size) {
                    break;
                }
                total -= seg.size as i64;
                new_start = Some(next);
            }
            new_start
        };
        let Some(new_start) = new_start else {
            return Ok(0);
        };
        let before = self.inner.borrow().segments.len();
        {
            let mut inner = self.inner.borrow_mut();
            if new_start > inner.log_start_offset {
                inner.log_start_offset = new_start;
                inner.cache.drop_before(new_start);
            }
        }
        write_log_start(&self.dir, new_start)?;
        self.delete_segments_below(new_start).await;
        let deleted = before - self.inner.borrow().segments.len();
        if deleted > 0 {
            tracing::info!(
                "{}: retention deleted {deleted} segment(s); log start is now {new_start}",
                self.name
            );
        }
        Ok(deleted)
    }

    /// Wait until every rolled segment has been sealed by the flusher.
    async fn wait_sealed(&self) -> Result<(), LogError> {
        loop {
            let notified = self.progress_signal.notified();
            {
                let inner = self.inner.borrow();
                if let Some(err) = &inner.storage_error {
                    return Err(LogError::Storage(err.clone()));
                }
                let active = inner.active.segment_base;
                if inner.segments.iter().all(|(b, s)| *b == active || s.sealed) {
                    return Ok(());
                }
            }
            if !self.flusher_running.get() {
                return Err(LogError::Closed);
            }
            notified.await;
        }
    }

    /// Close the log and delete its directory (DeleteTopics).
    pub async fn destroy(&self) -> Result<(), LogError> {
        let _ = self.close().await;
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.inner.borrow().segments.len()
    }
}

/// Copy the unwritten bytes of `pending` into an aligned buffer and keep
/// only the last partial page (it is rewritten with the next bytes).
fn snapshot_pending(pending: &mut PendingWrite, sealing: bool) -> WriteJob {
    let len = if pending.dirty { pending.buf.len() } else { 0 };
    let padded = len.div_ceil(PAGE) * PAGE;
    let mut data = pending.file.alloc_dma_buffer(padded.max(PAGE));
    let dst = data.as_bytes_mut();
    dst[..len].copy_from_slice(&pending.buf[..len]);
    dst[len..].fill(0);
    data.trim_to_size(padded);
    let job = WriteJob {
        segment_base: pending.segment_base,
        file: pending.file.clone(),
        pos: pending.file_pos,
        data,
        logical_end: pending.file_pos + len as u64,
        last_offset: pending.last_offset,
    };
    if !sealing {
        let full = len / PAGE * PAGE;
        pending.buf.drain(..full);
        pending.file_pos += full as u64;
        pending.dirty = false;
    }
    job
}

/// Read whole batches from `file[start..end]`, skipping those that end
/// before `offset`, up to `max_bytes` (the first wanted batch whole).
async fn read_batches(
    file: &DmaFile,
    start: u64,
    end: u64,
    offset: i64,
    max_bytes: usize,
) -> Result<Vec<Bytes>, LogError> {
    let mut pos = start;
    let mut out: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while pos < end {
        let want = ((end - pos) as usize).min(max_bytes.max(64 << 10) + 8192);
        let chunk = file.read_at(pos, want).await?;
        let mut at = 0usize;
        let mut span: Option<(usize, usize)> = None;
        let mut done = false;
        while at < chunk.len() {
            let Some(Ok(size)) = record::peek_batch_size(&chunk[at..]) else {
                break;
            };
            if at + size > chunk.len() {
                break;
            }
            let b = BatchView::parse(&chunk[at..at + size])?;
            if b.last_offset() >= offset {
                if total > 0 && total + size > max_bytes {
                    done = true;
                    break;
                }
                total += size;
                span = Some((span.map_or(at, |s| s.0), at + size));
                if total >= max_bytes {
                    at += size;
                    done = true;
                    break;
                }
            }
            at += size;
        }
        if let Some((a, b)) = span {
            // No copy: the DMA buffer itself travels to the socket.
            out.push(crate::foreign::dma_bytes(&chunk, a, b - a));
        }
        if done {
            break;
        }
        if at == 0 {
            // The batch at `pos` is larger than the chunk: read exactly it.
            let size = match record::peek_batch_size(&chunk) {
                Some(Ok(size)) if pos + size as u64 <= end => size,
                _ => {
                    return Err(LogError::Storage(format!(
                        "unreadable batch header at byte {pos} of a segment"
                    )))
                }
            };
            let whole = file.read_at(pos, size).await?;
            let b = BatchView::parse(&whole)?;
            if b.last_offset() >= offset {
                if total > 0 && total + size > max_bytes {
                    break;
                }
                total += size;
                out.push(crate::foreign::dma_bytes(&whole, 0, size));
            }
            pos += size as u64;
            continue;
        }
        pos += at as u64;
    }
    Ok(out)
}

/// The batches of a span read from the log (already validated on append).
fn split_batches(span: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = span;
    std::iter::from_fn(move || {
        let size = record::peek_batch_size(rest)?.ok()?;
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(batch)
    })
}

fn first_record_at_or_after(
    batch_bytes: &[u8],
    timestamp: i64,
    log_start: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    let batch = BatchView::parse(batch_bytes)?;
    if batch.max_timestamp() < timestamp || batch.is_control() || batch.last_offset() < log_start {
        return Ok(None);
    }
    if batch.is_log_append_time() {
        return Ok(Some((
            batch.base_offset().max(log_start),
            batch.max_timestamp(),
        )));
    }
    let records =
        record::decode_records(&batch).map_err(|e| LogError::InvalidRecord(e.to_string()))?;
    for r in records {
        let offset = batch.base_offset() + r.offset_delta as i64;
        let ts = batch.base_timestamp() + r.timestamp_delta;
        if offset >= log_start && ts >= timestamp {
            return Ok(Some((offset, ts)));
        }
    }
    Ok(None)
}

fn record_producer(producers: &mut ProducerStates, batch: &BatchView) {
    if batch.producer_id() == NO_PRODUCER_ID || batch.is_control() {
        return;
    }
    producers.record(
        batch.producer_id(),
        batch.producer_epoch(),
        BatchSeq {
            first_seq: batch.base_sequence(),
            last_seq: batch.last_sequence(),
            base_offset: batch.base_offset(),
            last_offset: batch.last_offset(),
        },
        batch.max_timestamp(),
    );
}

fn load_producer_snapshot(dir: &Path, base: i64) -> ProducerStates {
    let path = dir.join(segment_file_name(base, "snapshot"));
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
            tracing::warn!(
                "{}: unreadable producer snapshot ({e}); starting empty",
                path.display()
            );
            ProducerStates::default()
        }),
        Err(_) => ProducerStates::default(),
    }
}

fn save_producer_snapshot(dir: &Path, base: i64, states: &ProducerStates) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(states).map_err(std::io::Error::other)?;
    super::index::write_durably(&dir.join(segment_file_name(base, "snapshot")), &bytes)
}

fn read_log_start(dir: &Path) -> Option<i64> {
    std::fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn write_log_start(dir: &Path, offset: i64) -> std::io::Result<()> {
    super::index::write_durably(&dir.join(LOG_START_FILE), offset.to_string().as_bytes())
}
