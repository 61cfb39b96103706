//! Reads: from the tail cache when the offset is recent, else by aligned
//! DMA reads whose buffers travel to the socket uncopied; and lookups by
//! timestamp.
//!
//! Every batch read from disk is checked as recovery checks it (length,
//! header, CRC32C, offsets going forward; see `walk`). Damage found in a
//! segment is measured once (where valid batches resume), logged once with
//! the file, byte and offsets, and recorded on the segment: from then on a
//! read of those offsets answers [`LogError::Damaged`] (Kafka's
//! CORRUPT_MESSAGE) at once, and reads on either side keep working.

use bytes::Bytes;
use glommio::io::ReadResult;

use super::error::LogError;
use super::open_files::{OpenFile, SegmentFile};
use super::partition::PartitionLog;
use super::read_ahead::{self, ReadAhead};
use super::segment::{Damage, Segment};
use super::txn_index::AbortedTxn;
use super::walk::{self, Expect, ReadAt, Visit};
use crate::record::{self, BatchView};

/// How often one read may plan again (after finding damage, or when its
/// segment was replaced while its file was being opened).
const MAX_REPLANS: usize = 8;

/// A read from disk is split at batch boundaries into pieces of about this
/// size, read [`READ_DEPTH`] at a time: one large read keeps one request in
/// the device's queue and is checked only after all of it arrived, while
/// pieces overlap the device's work with the checking of the pieces before.
/// Just under 1 MiB, so the page-aligned read fits a 1 MiB block of the
/// shard's registered I/O memory.
const READ_PIECE: usize = (1 << 20) - (8 << 10);
const READ_DEPTH: usize = 8;

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadLimit {
    /// Consumers: below the high watermark.
    HighWatermark,
    /// Followers: below the durable end.
    Durable,
    /// read_committed consumers: below the last stable offset.
    LastStable,
}

#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub batches: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// The last stable offset when the read was made.
    pub last_stable_offset: i64,
    /// For read_committed reads, the aborted transactions that overlap the
    /// batches returned (empty when none do, or nothing was returned); for
    /// other reads `None` (Kafka answers null to read_uncommitted).
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
}

impl ReadOutcome {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

/// A read of one segment, planned under the borrow and run after it.
struct DiskPlan {
    base: i64,
    file: SegmentFile,
    start: u64,
    end: u64,
    expect: Expect,
    written: u64,
    next_base: Option<i64>,
    /// The first bytes to read, split at batch boundaries (see [`READ_PIECE`]).
    pieces: Vec<(u64, usize)>,
    /// The log's generation when planned (a read-ahead must match it).
    generation: u64,
    /// Bytes read ahead for this read by the one before.
    ahead: Option<ReadAhead>,
}

impl DiskPlan {
    fn new(base: i64, seg: &Segment, at: i64, next_base: Option<i64>, segment_end: i64) -> Self {
        let (start, expect, end) = seg.read_bounds(at, segment_end);
        Self {
            base,
            file: seg.file.clone(),
            start,
            end,
            expect,
            written: seg.written,
            next_base,
            pieces: Vec::new(),
            generation: 0,
            ahead: None,
        }
    }

    /// Plan to read about `budget` bytes first, in pieces.
    fn with_pieces(mut self, seg: &Segment, budget: usize) -> Self {
        let until = self.end.min(self.start.saturating_add(budget as u64));
        self.pieces = seg.index.split_at_batches(self.start, until, READ_PIECE);
        self
    }
}

impl PartitionLog {
    /// Batches from `offset` on, at most about `max_bytes` (the first batch
    /// whole), never at or beyond the high watermark: what is not yet as
    /// durable as the flush mode promises is not served. An offset between
    /// the high watermark and the log end gives an empty result, as in
    /// Kafka; one beyond the log end is out of range.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, LogError> {
        self.read_below(offset, max_bytes, ReadLimit::HighWatermark)
            .await
    }

    /// [`read`](Self::read) for a read_committed consumer (Kafka's
    /// `FetchIsolation.TXN_COMMITTED`): below the last stable offset, with
    /// the aborted transactions that overlap what is returned, from the
    /// fetch offset to the offset after the last batch returned (Kafka's
    /// `collectAbortedTransactions(fetchOffset, upperBoundOffset)`).
    pub async fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, LogError> {
        let mut out = self
            .read_below(offset, max_bytes, ReadLimit::LastStable)
            .await?;
        let aborted = match super::txn::end_of_batches(&out.batches) {
            Some(upper) => {
                debug_assert!(
                    upper <= out.last_stable_offset,
                    "read_committed returned offsets up to {upper}, past the last stable \
                     offset {}",
                    out.last_stable_offset
                );
                self.aborted_transactions(offset, upper)
            }
            None => Vec::new(),
        };
        out.aborted_transactions = Some(aborted);
        Ok(out)
    }

    /// [`read`](Self::read) for a follower: up to the durable end rather
    /// than the high watermark (a follower copies what its leader holds as
    /// durably as the flush mode promises; the high watermark is what the
    /// followers have, so it cannot be their limit).
    pub async fn read_for_follower(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadOutcome, LogError> {
        self.read_below(offset, max_bytes, ReadLimit::Durable).await
    }

    async fn read_below(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: ReadLimit,
    ) -> Result<ReadOutcome, LogError> {
        let mut at = offset;
        let mut replans = 0;
        loop {
            let (mut out, mut plan, upto) = {
                let inner = self.inner.borrow();
                if offset < inner.offsets.log_start() || offset > inner.offsets.log_end() {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start: inner.offsets.log_start(),
                        log_end: inner.offsets.log_end(),
                    });
                }
                let hwm = inner.offsets.high_watermark();
                let upto = match limit {
                    ReadLimit::HighWatermark => hwm,
                    ReadLimit::Durable => inner.offsets.durable(),
                    ReadLimit::LastStable => inner.offsets.last_stable(),
                };
                let mut out = ReadOutcome {
                    batches: Vec::new(),
                    high_watermark: hwm,
                    log_start_offset: inner.offsets.log_start(),
                    last_stable_offset: inner.offsets.last_stable(),
                    aborted_transactions: None,
                };
                if at >= upto {
                    return Ok(out);
                }
                if inner.cache.first_offset().is_some_and(|first| at >= first) {
                    out.batches = inner.cache.read(at, max_bytes, upto);
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
                let next_base = inner.segments.range(base + 1..).next().map(|(b, _)| *b);
                let segment_end = next_base.unwrap_or(inner.offsets.log_end());
                if let Some(d) = seg.damage_covering(at, segment_end) {
                    return Err(damaged(&self.name, seg, d, at, segment_end));
                }
                let mut plan = DiskPlan::new(base, seg, at, next_base, segment_end)
                    .with_pieces(seg, read_budget(max_bytes));
                plan.generation = inner.generation;
                self.use_read_ahead(&mut plan, seg, at, max_bytes);
                (out, plan, upto)
            };
            let opened = plan.file.get().await;
            let changed = !self.segment_is(plan.base, &plan.file)
                || (opened.is_err() && self.segment_files_settled().await);
            if changed {
                // Replaced (compaction) or deleted (retention) while its
                // file was being opened: plan again.
                replans += 1;
                if replans > MAX_REPLANS {
                    return Err(LogError::Storage(format!(
                        "{}: segment {} keeps changing under a read",
                        self.name, plan.base
                    )));
                }
                continue;
            }
            let file = opened?;
            let read = match plan.ahead.take() {
                Some(ahead) => {
                    let src = ahead.into_source(file.clone()).await;
                    read_batches(&src, &plan, at, max_bytes, upto).await?
                }
                None => read_batches(&*file, &plan, at, max_bytes, upto).await?,
            };
            if let Some((pos, next)) = read.full_at {
                self.read_ahead_from(&plan, file.clone(), pos, next, max_bytes);
            }
            if let Some((pos, next, why)) = read.damage {
                let expect = Expect {
                    next,
                    limit: plan.expect.limit,
                };
                let damage = Damage::measure(&*file, pos, plan.written, expect, why).await?;
                self.record_damage(plan.base, &plan.file, damage);
                if read.batches.is_empty() {
                    // Plan again: the damage is on record now, so this read
                    // either answers it or starts after it.
                    replans += 1;
                    if replans > MAX_REPLANS {
                        return Err(LogError::Damaged(format!(
                            "{}: offset {at} cannot be read past damage at byte {pos}",
                            self.name
                        )));
                    }
                    continue;
                }
            }
            if !read.batches.is_empty() {
                out.batches = read.batches;
                return Ok(out);
            }
            match plan.next_base {
                Some(next) if next > at && next < upto => at = next,
                _ => return Ok(out),
            }
        }
    }

    /// Take this log's read-ahead into `plan` if it was made for a read
    /// of offset `at` in this very segment file and generation; it is
    /// dropped otherwise (its consumer went elsewhere).
    fn use_read_ahead(&self, plan: &mut DiskPlan, seg: &Segment, at: i64, max_bytes: usize) {
        let Some(ahead) = self.read_ahead.borrow_mut().take() else {
            return;
        };
        let read_to = ahead.pieces.last().map_or(0, |&(p, len)| p + len as u64);
        let fits = ahead.base == plan.base
            && ahead.file.same(&plan.file)
            && ahead.generation == plan.generation
            && ahead.next_offset == at
            && ahead.pos >= plan.start
            && read_to <= plan.end;
        if !fits {
            return;
        }
        plan.start = ahead.pos;
        plan.expect.next = at;
        plan.pieces = ahead.pieces.clone();
        // A fetch larger than the last one: the rest is read in pieces too.
        let until = plan.end.min(ahead.pos.saturating_add(max_bytes as u64));
        if until > read_to {
            let more = seg.index.split_at_batches(read_to, until, READ_PIECE);
            plan.pieces.extend(more);
        }
        plan.ahead = Some(ahead);
    }

    /// A read of `plan` stopped full at byte `pos`, offset `next`: start
    /// reading what the next fetch will ask for (`read_ahead.rs`), unless
    /// that will come from the tail cache.
    fn read_ahead_from(
        &self,
        plan: &DiskPlan,
        file: OpenFile,
        pos: u64,
        next: i64,
        max_bytes: usize,
    ) {
        let pieces = {
            let inner = self.inner.borrow();
            if inner.generation != plan.generation
                || inner
                    .cache
                    .first_offset()
                    .is_some_and(|first| next >= first)
            {
                return;
            }
            let Some(seg) = inner
                .segments
                .get(&plan.base)
                .filter(|s| s.file.same(&plan.file))
            else {
                return;
            };
            let budget = max_bytes.clamp(64 << 10, read_ahead::MAX_ONE);
            let until = plan.end.min(pos.saturating_add(budget as u64));
            seg.index.split_at_batches(pos, until, READ_PIECE)
        };
        ReadAhead::start(
            &self.read_ahead,
            plan.base,
            plan.file.clone(),
            file,
            plan.generation,
            next,
            pieces,
            READ_DEPTH,
        );
    }

    /// After a segment file failed to open: if the segment files are being
    /// changed (a compaction swap renames and unlinks them on the blocking
    /// pool before the segment map follows), wait until that is done and
    /// answer true, so the read plans again on the new map.
    async fn segment_files_settled(&self) -> bool {
        if !self.files_lock.is_locked() {
            return false;
        }
        drop(self.files_lock.lock().await);
        true
    }

    /// The segment at `base` is still the one whose file is `file`.
    fn segment_is(&self, base: i64, file: &SegmentFile) -> bool {
        self.inner
            .borrow()
            .segments
            .get(&base)
            .is_some_and(|s| s.file.same(file))
    }

    /// Put damage a read found on record, and log it the first time.
    fn record_damage(&self, base: i64, file: &SegmentFile, damage: Damage) {
        let mut inner = self.inner.borrow_mut();
        let next_base = inner.segments.range(base + 1..).next().map(|(b, _)| *b);
        let segment_end = next_base.unwrap_or(inner.offsets.log_end());
        let Some(seg) = inner.segments.get_mut(&base).filter(|s| s.file.same(file)) else {
            return;
        };
        let (pos, first, reason) = (damage.pos, damage.first_offset, damage.reason.clone());
        let resume = damage.resume_offset(segment_end);
        if seg.note_damage(damage) {
            tracing::error!(
                "{}: segment {} is damaged at byte {pos}: {reason}; offsets {first} to {} \
                 cannot be read and fetches of them answer CORRUPT_MESSAGE (consumers must \
                 seek past them); `shardline log verify` lists every damaged range",
                self.name,
                seg.path.display(),
                resume - 1,
            );
        }
    }

    /// Offset and timestamp of the first record with a timestamp at or
    /// after `timestamp` (ListOffsets by time), skipping damaged ranges.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        self.offset_for_timestamp_below(timestamp, false).await
    }

    /// [`offset_for_timestamp`](Self::offset_for_timestamp) for
    /// read_committed (ListOffsets v2+ with isolation level 1): as Kafka, a
    /// record at or beyond the last stable offset is not found.
    pub async fn offset_for_timestamp_committed(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        self.offset_for_timestamp_below(timestamp, true).await
    }

    async fn offset_for_timestamp_below(
        &self,
        timestamp: i64,
        committed: bool,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let (candidates, log_start): (Vec<(i64, i64)>, i64) = {
            let inner = self.inner.borrow();
            let candidates = inner
                .segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp && s.size > 0)
                .map(|s| {
                    let rel = s.time_index.lookup(timestamp);
                    (s.base_offset, s.base_offset + rel as i64)
                })
                .collect();
            (candidates, inner.offsets.log_start())
        };
        let hwm = {
            let inner = self.inner.borrow();
            if committed {
                inner.offsets.last_stable()
            } else {
                inner.offsets.high_watermark()
            }
        };
        // As Kafka: a record at or beyond the high watermark (the last
        // stable offset for read_committed) is not found.
        let visible = |found: (i64, i64)| Some(found).filter(|(offset, _)| *offset < hwm);
        for (base, from) in candidates {
            if let Some(found) = self
                .find_time_in_segment(base, from, timestamp, log_start)
                .await?
            {
                return Ok(visible(found));
            }
        }
        // Batches not yet on disk are only in the cache.
        let cached: Vec<Bytes> = {
            let inner = self.inner.borrow();
            inner
                .cache
                .iter_from(inner.offsets.written())
                .take_while(|b| b.base_offset < hwm)
                .filter(|b| b.max_timestamp >= timestamp)
                .map(|b| b.bytes.clone())
                .collect()
        };
        for b in cached {
            if let Some(found) = first_record_at_or_after(&b, timestamp, log_start)? {
                return Ok(visible(found));
            }
        }
        Ok(None)
    }

    /// The first record at or after `timestamp` in segment `base`, from
    /// offset `from` on; damaged ranges are passed over.
    async fn find_time_in_segment(
        &self,
        base: i64,
        from: i64,
        timestamp: i64,
        log_start: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let mut at = from;
        for _ in 0..=MAX_REPLANS {
            let plan = {
                let inner = self.inner.borrow();
                let Some(seg) = inner.segments.get(&base) else {
                    return Ok(None);
                };
                let next_base = inner.segments.range(base + 1..).next().map(|(b, _)| *b);
                let segment_end = next_base.unwrap_or(inner.offsets.log_end());
                if let Some(d) = seg.damage_covering(at, segment_end) {
                    at = d.resume_offset(segment_end);
                    if at >= segment_end {
                        return Ok(None);
                    }
                    continue;
                }
                DiskPlan::new(base, seg, at, next_base, segment_end)
            };
            let file = match plan.file.get().await {
                Ok(file) => file,
                // Deleted by retention meanwhile: nothing to find here.
                Err(_) if !self.segment_is(base, &plan.file) => return Ok(None),
                Err(_) if self.segment_files_settled().await => continue,
                Err(e) => return Err(e),
            };
            let mut found = Ok(None);
            let walked = walk::walk(
                &*file,
                plan.start,
                plan.end,
                plan.expect,
                1 << 20,
                |buf, range, _, _| {
                    found = first_record_at_or_after(&buf[range], timestamp, log_start);
                    if matches!(found, Ok(None)) {
                        Visit::Continue
                    } else {
                        Visit::Stop
                    }
                },
            )
            .await?;
            if found.as_ref().map_or(true, Option::is_some) {
                return found;
            }
            match walked.damage {
                Some(why) => {
                    let expect = Expect {
                        next: walked.next_offset,
                        limit: plan.expect.limit,
                    };
                    let damage =
                        Damage::measure(&*file, walked.pos, plan.written, expect, why).await?;
                    at = damage.first_offset;
                    self.record_damage(base, &plan.file, damage);
                }
                // Stopped at known damage: go on after it.
                None if plan.end < plan.written => at = walked.next_offset.max(at),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the record with the largest timestamp (the
    /// first such record when several share it, as Kafka answers since
    /// KAFKA-16310); `None` if no record at or after the log start offset
    /// and below the high watermark carries it.
    ///
    /// The largest timestamp is taken over whole segments, records before
    /// the log start included (Kafka's segment maxima are too); Kafka then
    /// names the deleted record, we name the first remaining one holding
    /// that timestamp (README, Differences from Apache Kafka).
    pub async fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.max_timestamp_offset_below(false).await
    }

    /// [`max_timestamp_offset`](Self::max_timestamp_offset) for
    /// read_committed: `None` when that record is at or beyond the last
    /// stable offset (Kafka filters every timestamp lookup so).
    pub async fn max_timestamp_offset_committed(&self) -> Result<Option<(i64, i64)>, LogError> {
        self.max_timestamp_offset_below(true).await
    }

    async fn max_timestamp_offset_below(
        &self,
        committed: bool,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let Some(max_ts) = self.max_timestamp() else {
            return Ok(None);
        };
        // The segments know the batch, not the record: the first record at
        // or after the largest timestamp is the first one carrying it.
        Ok(self
            .offset_for_timestamp_below(max_ts, committed)
            .await?
            .filter(|(_, ts)| *ts == max_ts))
    }

    /// The largest record timestamp of the log's segments, if any.
    fn max_timestamp(&self) -> Option<i64> {
        let inner = self.inner.borrow();
        inner
            .segments
            .values()
            .map(|s| s.max_timestamp)
            .filter(|ts| *ts >= 0)
            .max()
    }
}

/// What a read from one segment found.
struct DiskRead {
    batches: Vec<Bytes>,
    /// The read stopped because it was full: the position and offset of
    /// the next batch.
    full_at: Option<(u64, i64)>,
    /// Damage the read ran into: (byte, first unreadable offset, why).
    damage: Option<(u64, i64, String)>,
}

/// Read whole batches of `plan.start..plan.end`, skipping those that end
/// before `offset` and stopping at the first that starts at or beyond
/// `limit` (the high watermark), up to `max_bytes` (the first wanted batch
/// whole). Consecutive batches of one read buffer go out as one span of it.
async fn read_batches<R: ReadAt<Buf = ReadResult>>(
    file: &R,
    plan: &DiskPlan,
    offset: i64,
    max_bytes: usize,
    limit: i64,
) -> Result<DiskRead, LogError> {
    let mut spans: Vec<Bytes> = Vec::new();
    let mut span: Option<(ReadResult, std::ops::Range<usize>)> = None;
    let mut total = 0usize;
    // Set when the read stopped because it was full: where the first batch
    // not taken starts, and its offset.
    let mut full: Option<(u64, i64)> = None;
    let walked = walk::walk_ahead(
        file,
        &plan.pieces,
        plan.end,
        plan.expect,
        READ_PIECE,
        READ_DEPTH,
        |buf, range, pos, batch| {
            if batch.base_offset() >= limit {
                return Visit::Stop;
            }
            if batch.last_offset() < offset {
                return Visit::Continue;
            }
            if total > 0 && total + range.len() > max_bytes {
                full = Some((pos, batch.base_offset()));
                return Visit::Stop;
            }
            total += range.len();
            let batch_end = pos + range.len() as u64;
            match &mut span {
                Some((b, r)) if b.as_ptr() == buf.as_ptr() && r.end == range.start => {
                    r.end = range.end
                }
                _ => {
                    if let Some((b, r)) = span.replace((buf.clone(), range)) {
                        // No copy: the DMA buffer itself travels to the socket.
                        spans.push(crate::foreign::dma_bytes(&b, r.start, r.len()));
                    }
                }
            }
            if total >= max_bytes {
                full = Some((batch_end, batch.last_offset() + 1));
                Visit::Stop
            } else {
                Visit::Continue
            }
        },
    )
    .await?;
    if let Some((b, r)) = span {
        spans.push(crate::foreign::dma_bytes(&b, r.start, r.len()));
    }
    // Read ahead only where more batches of this segment follow.
    let full_at = full.filter(|&(pos, next)| pos < plan.end && next < limit);
    Ok(DiskRead {
        batches: spans,
        full_at,
        damage: walked
            .damage
            .map(|why| (walked.pos, walked.next_offset, why)),
    })
}

/// Bytes to read for a fetch of `max_bytes`: the reader starts at the
/// indexed batch at or before the offset, so up to an index interval more.
fn read_budget(max_bytes: usize) -> usize {
    max_bytes.max(64 << 10) + 8192
}

/// The answer to a read of an offset in known damage.
fn damaged(name: &str, seg: &Segment, d: &Damage, at: i64, segment_end: i64) -> LogError {
    LogError::Damaged(format!(
        "{name}: offset {at} is in a damaged range of {} (offsets {} to {}, from byte {}: {})",
        seg.path.display(),
        d.first_offset,
        d.resume_offset(segment_end) - 1,
        d.pos,
        d.reason
    ))
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
