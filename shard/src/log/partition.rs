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
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use super::config::LogConfig;
use super::error::LogError;
use super::flusher::{PendingWrite, SealJob};
use super::producer_state::{BatchSeq, ProducerStates, SeqCheck};
use super::retention::read_log_start;
use super::segment::{segment_file_name, Segment};
use super::tail_cache::{CachedBatch, TailCache};
use crate::record::{self, BatchView, NO_PRODUCER_ID};
use crate::signal::Signal;

pub(super) const PAGE: usize = 4096;

/// How far an append must get before `append` returns.
/// Most appended bytes a partition keeps waiting for the flusher; appends
/// beyond it wait. Acknowledged producers are held back by their acks
/// already; this bounds the memory of acks=0 producers faster than the disk.
pub const MAX_UNWRITTEN_BYTES: usize = 32 << 20;

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

/// Offsets of a partition as ListOffsets and DescribeLogDirs see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
}

pub(super) struct Inner {
    pub(super) segments: BTreeMap<i64, Segment>,
    pub(super) next_offset: i64,
    pub(super) log_start_offset: i64,
    pub(super) cache: TailCache,
    pub(super) active: PendingWrite,
    pub(super) sealing: VecDeque<SealJob>,
    /// Offsets below this are written to the device.
    pub(super) written_offset: i64,
    /// Offsets below this are covered by an fdatasync.
    pub(super) synced_offset: i64,
    pub(super) unsynced_bytes: u64,
    pub(super) last_sync: Instant,
    pub(super) producers: ProducerStates,
    pub(super) leader_epoch: i32,
    /// Kafka's high watermark on one node: offsets below it are as durable
    /// as the flush mode promises, and only they are served to consumers.
    /// Owned by `watermarks.rs`, which alone moves it.
    pub(super) high_watermark: i64,
    /// Set when a write or sync failed: appends are refused until the log
    /// recovers in place from its files (`recovery.rs`).
    pub(super) storage_error: Option<String>,
    /// When the next recovery may be tried, and how many failed in a row.
    pub(super) retry_recovery_at: Option<Instant>,
    pub(super) faults_in_a_row: u32,
    /// Bumped by each recovery: an append that waits for durability across
    /// one fails, as its bytes may have been dropped and its offsets reused.
    pub(super) generation: u64,
}

pub struct PartitionLog {
    /// This log itself, to start a new flusher after a recovery in place.
    pub(super) me: Weak<PartitionLog>,
    pub(super) dir: PathBuf,
    pub(super) name: String,
    pub(super) config: RefCell<LogConfig>,
    pub(super) inner: RefCell<Inner>,
    pub(super) cleaner: RefCell<super::compaction::CleanerState>,
    /// Serialises appends with segment rolls (which await file creation).
    pub(super) append_lock: crate::fifo::FifoLock,
    /// New data appended: wakes fetch long-polls.
    pub(super) data_signal: Signal,
    /// Bytes waiting to be written: wakes the flusher.
    pub(super) flush_signal: Signal,
    /// Written/synced offsets advanced (or an error happened).
    pub(super) progress_signal: Signal,
    pub(super) closed: Cell<bool>,
    pub(super) flusher_running: Cell<bool>,
    #[cfg(test)]
    pub(super) inject: super::flusher::Injection,
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `records` with every batch not in the topic's codec recompressed to it
/// (Kafka recompresses on the broker when `compression.type` is a codec).
/// Off the fast path: only topics with a codec set, and only for batches
/// that differ; the others are copied as they are.
fn recompressed(
    config: &LogConfig,
    records: &Bytes,
    ranges: &[std::ops::Range<usize>],
) -> Result<(Bytes, Vec<std::ops::Range<usize>>), LogError> {
    let codec = config.compression.expect("a codec to recompress to");
    let mut out = BytesMut::with_capacity(records.len());
    let mut out_ranges = Vec::with_capacity(ranges.len());
    for range in ranges {
        let batch = BatchView::parse(&records[range.clone()]).expect("validated");
        let start = out.len();
        if batch.is_control() || batch.compression() == codec {
            out.extend_from_slice(batch.bytes());
        } else {
            let rewritten = record::recompress_batch(&batch, codec, config.compression_level)
                .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
            // Kafka checks the size of what it stores, after recompression.
            if rewritten.len() > config.max_message_bytes {
                return Err(LogError::MessageTooLarge {
                    size: rewritten.len(),
                    max: config.max_message_bytes,
                });
            }
            out.extend_from_slice(&rewritten);
        }
        out_ranges.push(start..out.len());
    }
    Ok((out.freeze(), out_ranges))
}

fn parse_segment_base(name: &str) -> Option<i64> {
    name.strip_suffix(".log")?.parse().ok()
}

impl PartitionLog {
    /// Open (recovering if needed) or create the log in `dir`, and start its
    /// flusher task on the current shard.
    pub async fn open(dir: PathBuf, name: String, config: LogConfig) -> Result<Rc<Self>, LogError> {
        super::direct_io::prepare_dir(&dir).await?;
        let inner = load(&dir, &name, &config).await?;
        let log = Rc::new_cyclic(|me| Self {
            me: me.clone(),
            dir,
            name,
            config: RefCell::new(config),
            inner: RefCell::new(inner),
            cleaner: RefCell::default(),
            append_lock: crate::fifo::FifoLock::new(),
            data_signal: Signal::new(),
            flush_signal: Signal::new(),
            progress_signal: Signal::new(),
            closed: Cell::new(false),
            flusher_running: Cell::new(true),
            #[cfg(test)]
            inject: Default::default(),
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
            high_watermark: inner.high_watermark,
            size_bytes: inner.segments.values().map(|s| s.size).sum(),
        }
    }

    /// Append one or more magic-2 batches (a Produce request's records for
    /// this partition). All batches are validated before any is appended.
    pub async fn append(&self, records: Bytes, ack: AckLevel) -> Result<AppendInfo, LogError> {
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let (records, batches) = self.validate(records)?;
        // In arrival order: a producer's pipelined requests keep their order.
        let _permit = self.append_lock.lock().await;
        if self.inner.borrow().storage_error.is_some() {
            // Refused until the log recovers from its files, which is tried
            // here (at a bounded rate) so that a freed disk is used again.
            self.try_recover().await?;
        }
        if let Some(dup) = self.check_duplicate(&records, &batches)? {
            // The first append may not be durable yet: answer the retry
            // only when it is, as Kafka's delayed produce does.
            let generation = self.inner.borrow().generation;
            drop(_permit);
            if ack == AckLevel::Durable {
                self.wait_durable(dup.last_offset, generation).await?;
            }
            return Ok(dup);
        }
        // Back-pressure: producers that do not wait for acks (acks=0) must
        // not pile up more unwritten data than the device can take.
        self.wait_for_write_room().await?;
        let total: usize = batches.iter().map(|r| r.len()).sum();
        if self.needs_roll(total) {
            self.roll().await?;
        }
        let info = self.append_validated(&records, &batches);
        let generation = self.inner.borrow().generation;
        drop(_permit);
        self.flush_signal.notify_all();
        if ack == AckLevel::Durable {
            self.wait_durable(info.last_offset, generation).await?;
        }
        Ok(info)
    }

    /// Bytes appended but not yet handed to the device.
    pub(super) fn unwritten_bytes(&self) -> usize {
        let inner = self.inner.borrow();
        inner.active.len() + inner.sealing.iter().map(|j| j.pending.len()).sum::<usize>()
    }

    /// Wait while more than [`MAX_UNWRITTEN_BYTES`] wait for the flusher.
    async fn wait_for_write_room(&self) -> Result<(), LogError> {
        while self.unwritten_bytes() > MAX_UNWRITTEN_BYTES {
            let progressed = self.progress_signal.notified();
            if let Some(err) = &self.inner.borrow().storage_error {
                return Err(LogError::Storage(err.clone()));
            }
            if !self.flusher_running.get() {
                return Err(LogError::Closed);
            }
            self.flush_signal.notify_all();
            progressed.await;
        }
        Ok(())
    }

    /// Check every batch before any is appended; returns the records to
    /// append (recompressed when the topic's `compression.type` asks for a
    /// codec some batch does not have) and each batch's range in them.
    fn validate(&self, records: Bytes) -> Result<(Bytes, Vec<std::ops::Range<usize>>), LogError> {
        let config = self.config.borrow();
        let now = now_ms();
        let mut ranges = Vec::new();
        let mut recompress = false;
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
            if !batch.is_control() {
                self.validate_records(&config, &batch, now)?;
                recompress |= config.compression.is_some_and(|c| c != batch.compression());
            }
            ranges.push(at..at + batch.size());
            at += batch.size();
        }
        if ranges.is_empty() {
            return Err(LogError::InvalidRecord("no record batch".into()));
        }
        if recompress {
            return recompressed(&config, &records, &ranges);
        }
        Ok((records, ranges))
    }

    /// Kafka's per-record checks (LogValidator): keys on compacted topics
    /// and, on CreateTime topics, timestamps within
    /// `message.timestamp.before.max.ms` / `after.max.ms` of the broker's
    /// clock. Every bad record is named (KIP-467) and the batch is refused.
    /// Records are decoded only when a check needs them: with the default
    /// limits (no `before`, and a batch whose header max timestamp is not
    /// past `after`) a batch of a non-compacted topic is not opened.
    fn validate_records(
        &self,
        config: &LogConfig,
        batch: &BatchView,
        now: i64,
    ) -> Result<(), LogError> {
        let earliest = now.saturating_sub(config.timestamp_before_max_ms);
        let latest = now.saturating_add(config.timestamp_after_max_ms);
        let check_time = !config.log_append_time
            && (config.timestamp_before_max_ms != i64::MAX || batch.max_timestamp() > latest);
        if !config.cleanup_compact && !check_time {
            return Ok(());
        }
        let recs =
            record::decode_records(batch).map_err(|e| LogError::InvalidRecord(e.to_string()))?;
        let mut errors = Vec::new();
        let mut invalid_timestamp = false;
        for (index, r) in recs.iter().enumerate() {
            if config.cleanup_compact && r.key.is_none() {
                errors.push((
                    index as i32,
                    format!(
                        "Compacted topic cannot accept message without key in topic partition {}",
                        self.name
                    ),
                ));
                continue;
            }
            let timestamp = batch.base_timestamp().wrapping_add(r.timestamp_delta);
            if check_time
                && timestamp != record::NO_TIMESTAMP
                && (timestamp < earliest || timestamp > latest)
            {
                invalid_timestamp = true;
                // The offset as the producer numbered it (base offset + delta).
                let offset = batch.base_offset().wrapping_add(r.offset_delta as i64);
                errors.push((
                    index as i32,
                    format!(
                        "Timestamp {timestamp} of message with offset {offset} is out of range. \
                         The timestamp should be within [{earliest}, {latest}]"
                    ),
                ));
            }
        }
        if errors.is_empty() {
            return Ok(());
        }
        Err(LogError::RecordErrors {
            errors,
            invalid_timestamp,
        })
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
    pub(super) async fn roll(&self) -> Result<(), LogError> {
        let base = self.inner.borrow().next_offset;
        let mut seg = Segment::create(&self.dir, base).await?;
        let mut inner = self.inner.borrow_mut();
        let old = inner.segments.values().next_back().expect("active");
        let final_size = old.size;
        seg.preallocation = old.preallocation.carry_over();
        let fresh = PendingWrite::new(base, seg.file.clone(), 0, Vec::new());
        let old = std::mem::replace(&mut inner.active, fresh);
        // Producer state as of the new segment's start; the flusher saves it
        // once the old segment is sealed (never before its batches are on
        // disk, or a replay would trust batches that were lost).
        let snapshot = inner.producers.clone();
        inner.sealing.push_back(SealJob {
            pending: old,
            final_size,
            next_base: base,
            snapshot,
        });
        inner.segments.insert(base, seg);
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
            inner.active.push(bytes.clone());
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

    /// Wait until the high watermark passes `offset` or `timeout` passes
    /// (fetch long-poll).
    pub async fn wait_for_data(&self, offset: i64, timeout: Duration) {
        if self.high_watermark() > offset || self.closed.get() {
            return;
        }
        let notified = self.data_signal.notified();
        let _ = glommio::timer::timeout(timeout, async {
            notified.await;
            Ok(())
        })
        .await;
    }

    /// Register interest in the next advance of the high watermark (for
    /// waits over many partitions). Appends alone do not wake it: their
    /// data is not visible until it is durable.
    pub fn data_notified(&self) -> crate::signal::Notified {
        self.data_signal.notified()
    }

    /// Offsets below this are visible to consumers (see `watermarks.rs`).
    pub fn high_watermark(&self) -> i64 {
        self.inner.borrow().high_watermark
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.borrow().next_offset
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

/// Rebuild a log's state from its files: every segment, indexes rebuilt
/// where missing, the active segment scanned (torn tail truncated) and
/// synced, producer state replayed. Used at open and by recovery in place.
pub(super) async fn load(dir: &Path, name: &str, config: &LogConfig) -> Result<Inner, LogError> {
    super::compaction::recover_leftovers(dir).await?;
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| parse_segment_base(e.file_name().to_str()?))
        .collect();
    bases.sort_unstable();
    let checkpoint_start = read_log_start(dir);
    let mut opened: Vec<Option<Segment>> = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        let sealed = match bases.get(i + 1) {
            Some(&next) => Segment::open_sealed(dir, base, next).await?,
            None => None,
        };
        opened.push(sealed);
    }
    // Segments are sealed in order, so those not sealed cleanly form a
    // trailing run (the active one, plus any rolled away from but not yet
    // sealed at a crash or a failed write). Producer state is replayed over
    // that run from the snapshot at its start: a snapshot is written only
    // after the segment before it is sealed, so it never counts batches
    // that did not reach the disk.
    let replay_from = opened
        .iter()
        .rposition(Option::is_some)
        .map_or(0, |i| i + 1);
    let mut producers = match bases.get(replay_from) {
        Some(&base) => load_producer_snapshot(dir, base),
        None => ProducerStates::default(),
    };
    let mut segments = BTreeMap::new();
    for (i, (&base, sealed)) in bases.iter().zip(opened).enumerate() {
        if let Some(seg) = sealed {
            segments.insert(base, seg);
            continue;
        }
        let is_last = i + 1 == bases.len();
        if !is_last {
            tracing::info!("{name}: segment {base} has no index; rebuilding it");
        }
        let replay = i >= replay_from;
        let (mut seg, outcome) = Segment::recover(
            dir,
            base,
            bases.get(i + 1).copied(),
            config.index_interval_bytes,
            |batch| {
                if replay {
                    record_producer(&mut producers, batch);
                }
            },
        )
        .await?;
        if let Some(why) = &outcome.stopped_because {
            tracing::warn!(
                "{name}: segment {base}: truncated to {} bytes (next offset {}): {why}",
                outcome.valid_end,
                outcome.next_offset
            );
        }
        if !is_last {
            seg.file.get().await?.fdatasync().await?;
            match seg.write_indexes(dir) {
                Ok(()) => {}
                // On a full disk the log still opens: the indexes are in
                // memory and are rebuilt again at the next start.
                Err(e) if super::health::is_out_of_space(&e) => {
                    tracing::warn!("{name}: segment {base}: index not saved ({e})");
                }
                Err(e) => return Err(e.into()),
            }
            seg.sealed = true;
            seg.file.close_if_idle();
        }
        segments.insert(base, seg);
    }
    if segments.is_empty() {
        let base = checkpoint_start.unwrap_or(0);
        let seg = Segment::create(dir, base).await?;
        segments.insert(base, seg);
    }
    let (&active_base, active) = segments.iter().next_back().expect("at least one segment");
    let next_offset = active.next_offset;
    let aligned = active.size / PAGE as u64 * PAGE as u64;
    let tail = if aligned < active.size {
        active
            .file
            .get()
            .await?
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
    // What was found is durable from now on (a crash may have left it in
    // the page cache only), so it may all be served.
    let active_file = &segments.values().next_back().expect("active").file;
    active_file.get().await?.fdatasync().await?;
    // Opened only to recover; the partition's first read or write reopens.
    active_file.close_if_idle();
    let inner = Inner {
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
        high_watermark: next_offset,
        storage_error: None,
        retry_recovery_at: None,
        faults_in_a_row: 0,
        generation: 0,
    };
    inner.check_watermarks();
    Ok(inner)
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

pub(super) fn save_producer_snapshot(
    dir: &Path,
    base: i64,
    states: &ProducerStates,
) -> std::io::Result<()> {
    let bytes = serde_json::to_vec(states).map_err(std::io::Error::other)?;
    super::index::write_durably(&dir.join(segment_file_name(base, "snapshot")), &bytes)
}
