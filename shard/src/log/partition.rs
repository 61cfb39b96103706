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

use crate::time::{Clock, LogClock};

use bytes::{Bytes, BytesMut};

use super::config::LogConfig;
use super::epoch_cache::LeaderEpochCache;
use super::error::LogError;
use super::flusher::SealJob;
pub(super) use super::load::{delete_segments_from, load, note_epoch, save_producer_snapshot};
use super::offsets::Offsets;
use super::open_files::SegmentFile;
use super::pending::PendingWrite;
use super::producer_state::{ProducerStates, SeqCheck};
use super::segment::Segment;
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
    /// Kafka's last stable offset (ListOffsets LATEST for read_committed).
    pub last_stable_offset: i64,
    pub size_bytes: u64,
}

pub(super) struct Inner {
    pub(super) segments: BTreeMap<i64, Segment>,
    /// Log start, high watermark, written, synced, log end: moved only by
    /// the methods of `offsets.rs`, which check their order.
    pub(super) offsets: Offsets,
    pub(super) cache: TailCache,
    pub(super) active: PendingWrite,
    pub(super) sealing: VecDeque<SealJob>,
    pub(super) unsynced_bytes: u64,
    /// The segment file the last active write went to, until a sync covers
    /// it. Not always the active segment's: a roll while that write was in
    /// flight made another segment active, and an fdatasync of that one
    /// would not cover it.
    pub(super) unsynced_file: Option<SegmentFile>,
    pub(super) last_sync: Instant,
    pub(super) producers: ProducerStates,
    pub(super) leader_epoch: i32,
    /// Leader epoch → start offset (`epoch_cache.rs`), and the version of
    /// it the checkpoint file holds.
    pub(super) epochs: LeaderEpochCache,
    pub(super) epochs_persisted: u64,
    /// Set when a write or sync failed: appends are refused until the log
    /// recovers in place from its files (`recovery.rs`).
    pub(super) storage_error: Option<String>,
    /// When the next recovery may be tried, and how many failed in a row.
    pub(super) retry_recovery_at: Option<Instant>,
    pub(super) faults_in_a_row: u32,
    /// Bumped by each recovery: an append that waits for durability across
    /// one fails, as its bytes may have been dropped and its offsets reused.
    pub(super) generation: u64,
    /// The generation before the last recovery in place and the high
    /// watermark it had reached: an append of that generation below it was
    /// durable (and kept) even if its waiter learns so only afterwards.
    pub(super) durable_before: (u64, i64),
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
    /// Serialises writes of the `log-start-offset` file (done on the
    /// blocking pool, so two could otherwise land out of order).
    pub(super) log_start_lock: crate::fifo::FifoLock,
    /// Serialises changes to the set of segment files, which run on the
    /// blocking pool and so span awaits: the compaction swap, the unlinks of
    /// retention and DeleteRecords, and recovery in place. Each takes it
    /// before it decides which segments to touch and keeps it until the
    /// segment map matches the files again.
    pub(super) files_lock: crate::fifo::FifoLock,
    /// The same for the `leader-epoch-checkpoint` file.
    pub(super) epoch_lock: crate::fifo::FifoLock,
    /// New data appended: wakes fetch long-polls.
    pub(super) data_signal: Signal,
    /// Bytes waiting to be written: wakes the flusher.
    pub(super) flush_signal: Signal,
    /// Written/synced offsets advanced (or an error happened).
    pub(super) progress_signal: Signal,
    pub(super) closed: Cell<bool>,
    /// Asks the flusher to stop once nothing is pending (`truncate_to`).
    pub(super) quiesce: Cell<bool>,
    pub(super) flusher_running: Cell<bool>,
    /// Wall and monotonic time for this log (the system's, or a manual
    /// clock in tests and the simulation).
    pub(super) clock: LogClock,
    /// The shard's write-ahead ring (`wal/`), when batch-mode durability
    /// comes from it, and the group of this log's latest entries there.
    pub(super) wal: Option<super::wal::glue::WalLink>,
    pub(super) wal_seq: Cell<Option<u64>>,
    /// Tickets of the ring groups whose bytes this log has not written to
    /// its segments yet (oldest first), and since when the oldest is held
    /// (`wal/writeback.rs`). Only the flusher changes them.
    pub(super) held: RefCell<Vec<super::wal::WalTicket>>,
    pub(super) held_since: Cell<Option<Instant>>,
    /// Set by `destroy`: bytes that could not be written are dropped with
    /// the partition instead of kept in the ring until a restart.
    pub(super) discarding: Cell<bool>,
    /// This log's share of the shard's tail-cache budget.
    pub(super) cache_share: super::tail_cache::CacheShare,
    /// Bytes read ahead for the next fetch from disk (`read_ahead.rs`).
    pub(super) read_ahead: Rc<RefCell<Option<super::read_ahead::ReadAhead>>>,
    #[cfg(test)]
    pub(super) inject: super::flusher::Injection,
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

impl PartitionLog {
    /// Open (recovering if needed) or create the log in `dir`, and start its
    /// flusher task on the current shard.
    pub async fn open(dir: PathBuf, name: String, config: LogConfig) -> Result<Rc<Self>, LogError> {
        Self::open_with_clock(dir, name, config, LogClock::System).await
    }

    /// [`open`](Self::open) reading time from `clock`.
    pub async fn open_with_clock(
        dir: PathBuf,
        name: String,
        config: LogConfig,
        clock: LogClock,
    ) -> Result<Rc<Self>, LogError> {
        super::direct_io::prepare_dir(&dir).await?;
        let inner = load(&dir, &name, &config, &clock).await?;
        let wal = super::wal::glue::WalLink::for_dir(&dir);
        let log = Rc::new_cyclic(|me| Self {
            me: me.clone(),
            dir,
            name,
            config: RefCell::new(config),
            inner: RefCell::new(inner),
            cleaner: RefCell::default(),
            append_lock: crate::fifo::FifoLock::new(),
            log_start_lock: crate::fifo::FifoLock::new(),
            files_lock: crate::fifo::FifoLock::new(),
            epoch_lock: crate::fifo::FifoLock::new(),
            data_signal: Signal::new(),
            flush_signal: Signal::new(),
            progress_signal: Signal::new(),
            closed: Cell::new(false),
            quiesce: Cell::new(false),
            flusher_running: Cell::new(true),
            clock,
            wal,
            wal_seq: Cell::new(None),
            held: RefCell::new(Vec::new()),
            held_since: Cell::new(None),
            discarding: Cell::new(false),
            cache_share: super::tail_cache::CacheShare::register(),
            read_ahead: Rc::default(),
            #[cfg(test)]
            inject: Default::default(),
        });
        crate::rt::spawn_detached(log.clone().run_flusher());
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

    /// This node leads the partition in `epoch`. As Kafka's `makeLeader`,
    /// a new epoch starts at the log end (OffsetForLeaderEpoch sees it at
    /// once). Its entry is written before the first batch of the epoch
    /// (`append`); until then it need not be durable: the broker sets the
    /// epoch again at every open.
    /// The epoch of the leader this log appends under.
    pub fn leader_epoch(&self) -> i32 {
        self.inner.borrow().leader_epoch
    }

    pub fn set_leader_epoch(&self, epoch: i32) {
        let mut inner = self.inner.borrow_mut();
        inner.leader_epoch = epoch;
        let end = inner.offsets.log_end();
        if epoch > inner.epochs.latest_epoch().unwrap_or(-1) {
            inner.epochs.assign(epoch, end);
        }
    }

    /// [`set_leader_epoch`](Self::set_leader_epoch), and write the epoch's
    /// entry now rather than before the first batch of the epoch: as
    /// Kafka's `makeLeader`, the checkpoint is written when leadership
    /// starts, so the first produce to a new partition does not wait for
    /// a durable file write (with 10,000 new partitions that was about
    /// 1 ms each, all on the first requests).
    pub async fn become_leader(&self, epoch: i32) -> Result<(), LogError> {
        self.set_leader_epoch(epoch);
        self.persist_epochs_if_changed().await
    }

    pub fn offsets(&self) -> LogOffsets {
        let inner = self.inner.borrow();
        LogOffsets {
            log_start_offset: inner.offsets.log_start(),
            high_watermark: inner.offsets.high_watermark(),
            last_stable_offset: inner.offsets.last_stable(),
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
        self.note_leader_epoch().await?;
        let info = self.append_validated(&records, &batches, true);
        self.finish_append(info, _permit, ack).await
    }

    /// After an append (leader or follower): let the next one in, wake the
    /// flusher, and for `Durable` wait until the batches are synced.
    pub(super) async fn finish_append(
        &self,
        info: AppendInfo,
        permit: crate::fifo::FifoGuard<'_>,
        ack: AckLevel,
    ) -> Result<AppendInfo, LogError> {
        let generation = self.inner.borrow().generation;
        drop(permit);
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
    pub(super) async fn wait_for_write_room(&self) -> Result<(), LogError> {
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
        let now = self.clock.now_ms();
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
            if batch.is_control() {
                // Markers come from transaction coordinators only
                // (`append_txn_marker`), as in Kafka's LogValidator.
                return Err(LogError::InvalidRecord(
                    "Clients are not allowed to write control records".into(),
                ));
            }
            if batch.record_count() == 0 {
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
            self.validate_records(&config, &batch, now)?;
            recompress |= config.compression.is_some_and(|c| c != batch.compression());
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
    /// Transactions: a batch that does not fit its producer's transaction
    /// is refused (`txn_state.rs`); a batch of the request that opens one
    /// counts for the batches after it.
    fn check_duplicate(
        &self,
        records: &Bytes,
        batches: &[std::ops::Range<usize>],
    ) -> Result<Option<AppendInfo>, LogError> {
        let inner = self.inner.borrow();
        let mut duplicate_of = None;
        // Producers whose transaction an earlier batch of this request opens.
        let mut opening: Vec<i64> = Vec::new();
        for range in batches {
            let b = BatchView::parse(&records[range.clone()]).expect("validated");
            if b.producer_id() == NO_PRODUCER_ID {
                continue;
            }
            let pid = b.producer_id();
            if opening.contains(&pid) && !b.is_transactional() {
                return Err(LogError::InvalidTxnState(format!(
                    "non-transactional batch from producer {pid} after its transactional one"
                )));
            }
            match inner.producers.check(
                b.producer_id(),
                b.producer_epoch(),
                b.base_sequence(),
                b.last_sequence(),
            ) {
                SeqCheck::Accept => {
                    inner.producers.check_txn_data(
                        pid,
                        b.producer_epoch(),
                        b.is_transactional(),
                    )?;
                    if b.is_transactional() && inner.producers.open_transaction(pid).is_none() {
                        opening.push(pid);
                    }
                }
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
            log_start_offset: inner.offsets.log_start(),
            duplicate: true,
        }))
    }

    pub(super) fn needs_roll(&self, incoming: usize) -> bool {
        let config = self.config.borrow();
        let inner = self.inner.borrow();
        let active = inner.segments.values().next_back().expect("active segment");
        if active.size == 0 {
            return false;
        }
        let too_big = active.size + incoming as u64 > config.segment_bytes;
        let too_old = active
            .first_append_ms
            .is_some_and(|t| self.clock.now_ms() - t >= config.segment_ms);
        // Relative offsets and positions in the index are 32-bit.
        let offsets_full =
            inner.offsets.log_end() - active.base_offset > (i32::MAX as i64 - 1_000_000);
        too_big || too_old || offsets_full
    }

    /// Start a new segment at the log end; the old one is sealed by the flusher.
    pub(super) async fn roll(&self) -> Result<(), LogError> {
        let base = self.inner.borrow().offsets.log_end();
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

    /// The leader's epoch is in the epoch cache, durably, before a batch
    /// stamped with it is written (a new epoch starts at the log end).
    pub(super) async fn note_leader_epoch(&self) -> Result<(), LogError> {
        {
            let mut inner = self.inner.borrow_mut();
            let (epoch, end) = (inner.leader_epoch, inner.offsets.log_end());
            if epoch > inner.epochs.latest_epoch().unwrap_or(-1) {
                inner.epochs.assign(epoch, end);
            }
        }
        self.persist_epochs_if_changed().await
    }

    /// Put validated batches at the log end: segment, index, tail cache,
    /// producer state, the flusher's pending write. The leader assigns
    /// offsets and stamps its epoch (and the log append time); a follower's
    /// batches (`follower.rs`) come with both, checked, and stay as sent.
    pub(super) fn append_validated(
        &self,
        records: &Bytes,
        batches: &[std::ops::Range<usize>],
        leader: bool,
    ) -> AppendInfo {
        let config = self.config.borrow();
        let mut inner = self.inner.borrow_mut();
        let inner = &mut *inner;
        let now = self.clock.now_ms();
        let first_offset = inner.offsets.log_end();
        for range in batches {
            let bytes = if leader {
                let mut bytes = BytesMut::from(&records[range.clone()]);
                record::set_base_offset(&mut bytes, inner.offsets.log_end());
                record::set_partition_leader_epoch(&mut bytes, inner.leader_epoch);
                if config.log_append_time {
                    record::set_log_append_time(&mut bytes, now);
                }
                bytes.freeze()
            } else {
                records.slice(range.clone())
            };
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
            let seg = inner
                .segments
                .values_mut()
                .next_back()
                .expect("active segment");
            // Opens or closes transactions; an abort marker is indexed in
            // the active segment (where it is written).
            super::txn::apply_batch(&mut inner.producers, &mut seg.txn_index, &batch);
            inner.cache.push(CachedBatch {
                base_offset: batch.base_offset(),
                last_offset: batch.last_offset(),
                max_timestamp: batch.max_timestamp(),
                bytes: bytes.clone(),
            });
            inner.offsets.append(batch.last_offset());
        }
        inner.offsets.debug_check_segments(&inner.segments);
        // A transaction opened at the log end is above the high watermark,
        // so this never moves the last stable offset; it records where the
        // next one must stop.
        inner.refresh_last_stable();
        let written = inner.offsets.written();
        inner
            .cache
            .trim(self.cache_share.cap(config.tail_cache_bytes), written);
        AppendInfo {
            base_offset: first_offset,
            last_offset: inner.offsets.log_end() - 1,
            log_append_time: if config.log_append_time && leader {
                now
            } else {
                -1
            },
            log_start_offset: inner.offsets.log_start(),
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
        self.inner.borrow().offsets.high_watermark()
    }

    pub fn log_end_offset(&self) -> i64 {
        self.inner.borrow().offsets.log_end()
    }

    /// Close the log and delete its directory (DeleteTopics).
    pub async fn destroy(&self) -> Result<(), LogError> {
        self.discarding.set(true);
        let _ = self.close().await;
        let _files = self.lock_files().await?;
        let dir = self.dir.clone();
        super::index::off_shard(move || {
            crate::blocking::assert_not_shard("removing a partition directory");
            std::fs::remove_dir_all(dir)
        })
        .await?;
        Ok(())
    }

    pub fn segment_count(&self) -> usize {
        self.inner.borrow().segments.len()
    }
}
