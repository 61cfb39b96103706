//! Log compaction (`cleanup.policy=compact`), after Kafka's log cleaner.
//!
//! A run builds an offset map (key -> highest offset) from every record that
//! is not yet known to be deduplicated: the dirty sealed segments and the
//! unsealed/active tail (whose records win too, though the tail itself is
//! never rewritten). Then it rewrites the sealed segments in offset order,
//! in groups of adjacent segments that fit in one segment, keeping a record
//! only if no later record has its key. Tombstones (null values) that are
//! the latest for their key are kept until `delete.retention.ms` has passed
//! since the max timestamp of the segment holding them.
//!
//! Offsets never change: a batch that loses records is rebuilt with the same
//! base offset, offset deltas, codec, producer id/epoch/base sequence,
//! leader epoch and flags; a batch that loses every record is dropped (the
//! producer state lives in the per-segment snapshots, not in old batches).
//! Control batches are kept as they are.
//!
//! Transactions (Kafka's cleaner does the same): only records below the
//! last stable offset decide what is superseded, and records of aborted
//! transactions never do (they are not in the offset map), so an open or
//! aborted transaction never hides a committed value. Aborted records
//! themselves are compacted like any other (read_committed consumers drop
//! them by the aborted-transaction index, which a cleaned group keeps: the
//! union of its segments' entries, every marker being kept).
//!
//! Swapping a cleaned group in, crash-safely:
//! 1. write `.cleaner/<first>.log` (the "cleaned" file), fdatasync;
//! 2. rename it to `<first>.log.swap` and sync the directory: the commit
//!    point; from here recovery rolls forward;
//! 3. delete the group's index files and the other members' `.log` files;
//! 4. rename `<first>.log.swap` over `<first>.log`; write its indexes.
//!
//! Steps 2–4 run on the blocking pool, under the log's files lock (which
//! retention and DeleteRecords take before they unlink segments), so the
//! shard thread never waits for a rename, unlink or directory fsync.
//!
//! [`recover_leftovers`], run by `PartitionLog::open` before segments are
//! listed, deletes a `.cleaner` directory (rolls back) and finishes any
//! `.swap` (deletes the old segments its offsets cover, renames it in; its
//! indexes are then rebuilt by scanning). Readers holding an old segment's
//! open `Rc<DmaFile>` keep reading the unlinked file; a reader whose segment
//! file was closed meanwhile sees the segment gone and plans again.

use std::cell::RefCell;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::Range;
use std::path::PathBuf;

use bytes::Bytes;
use glommio::io::ReadResult;

use super::config::LogConfig;
use super::error::LogError;
use super::open_files::{OpenFile, SegmentFile};
use super::partition::PartitionLog;
use super::segment::{segment_file_name, Segment, MAX_BATCH_BYTES};
use crate::record::{self, BatchBuilder, BatchView, TimestampType};

const PAGE: usize = 4096;
const CHUNK: usize = 1 << 20;
/// Where cleaned segments are written before they are swapped in.
const STAGING_DIR: &str = ".cleaner";
const SWAP_EXT: &str = "log.swap";
/// Kafka's default `min.cleanable.dirty.ratio`.
pub const DEFAULT_MIN_DIRTY_RATIO: f64 = 0.5;

/// What one compaction run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompactionStats {
    /// Nothing to do (no new data, no tombstone due, too little dirty
    /// data, or another run in progress).
    pub skipped: bool,
    /// Distinct keys in the offset map.
    pub keys: usize,
    /// Groups written and swapped in.
    pub groups_rewritten: usize,
    /// Old segments those groups replaced.
    pub segments_replaced: usize,
    pub records_read: u64,
    pub records_removed: u64,
    pub tombstones_removed: u64,
    pub batches_removed: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Segments deleted by retention first (`compact,delete`).
    pub retention_deleted_segments: usize,
}

/// Cleaner bookkeeping kept in the `PartitionLog` (in memory only: after a
/// restart the first run treats the whole log as dirty).
#[derive(Debug, Default)]
pub struct CleanerState {
    /// Also claimed by `truncate_to`: the two never run at once.
    pub(super) running: bool,
    /// Sealed records below this offset hold at most one record per key.
    first_dirty: i64,
    last_run: Option<RunMark>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RunMark {
    log_end: i64,
    cleanable_end: i64,
    delete_retention_ms: i64,
    /// Earliest time a kept tombstone may be removed.
    tombstone_due: Option<i64>,
}

struct RunGuard<'a>(&'a RefCell<CleanerState>);

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().running = false;
    }
}

/// Key -> highest offset. Keys are stored as 128-bit digests of two
/// independently, randomly keyed SipHashes (Kafka stores MD5s): bounded
/// memory per key, and a collision is astronomically unlikely.
struct OffsetMap {
    hashers: (RandomState, RandomState),
    map: HashMap<u128, i64>,
}

impl OffsetMap {
    fn new() -> Self {
        Self {
            hashers: (RandomState::new(), RandomState::new()),
            map: HashMap::new(),
        }
    }

    fn digest(&self, key: &[u8]) -> u128 {
        let a = self.hashers.0.hash_one(key) as u128;
        let b = self.hashers.1.hash_one(key) as u128;
        (a << 64) | b
    }

    fn put(&mut self, key: &[u8], offset: i64) {
        let d = self.digest(key);
        let slot = self.map.entry(d).or_insert(offset);
        *slot = (*slot).max(offset);
    }

    fn latest(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&self.digest(key)).copied()
    }
}

/// A sealed segment as the run saw it.
#[derive(Clone)]
struct SegRef {
    base: i64,
    /// Base of the next segment.
    end: i64,
    file: SegmentFile,
    size: u64,
    max_timestamp: i64,
}

struct Plan {
    cleanable: Vec<SegRef>,
    /// Unsealed and active segments: (file, bytes written).
    tail: Vec<(SegmentFile, u64)>,
    /// Batches not yet on disk.
    cached: Vec<Bytes>,
    cleanable_end: i64,
    log_end: i64,
    /// Only records below it decide what is superseded: a newer value
    /// that is not durable yet may still be lost, one in an open
    /// transaction may still be aborted. The last stable offset.
    high_watermark: i64,
    /// Producer id → (first offset, marker offset) of its aborted
    /// transactions: their records supersede nothing.
    aborted: HashMap<i64, Vec<(i64, i64)>>,
    dirty_bytes: u64,
    total_bytes: u64,
}

enum Filtered {
    Keep,
    Drop,
    Rewrite(Vec<u8>),
}

impl PartitionLog {
    /// Compact the sealed segments (see the module doc); with
    /// `cleanup.policy=compact,delete` retention is applied first.
    pub async fn compact(&self, now_ms: i64) -> Result<CompactionStats, LogError> {
        self.compact_with_ratio(now_ms, DEFAULT_MIN_DIRTY_RATIO)
            .await
    }

    /// [`compact`](Self::compact), running only if at least
    /// `min_dirty_ratio` of the log's bytes are dirty (or a tombstone is due).
    pub async fn compact_with_ratio(
        &self,
        now_ms: i64,
        min_dirty_ratio: f64,
    ) -> Result<CompactionStats, LogError> {
        let config = self.config();
        let mut stats = CompactionStats::default();
        if !config.cleanup_compact {
            stats.skipped = true;
            return Ok(stats);
        }
        if std::mem::replace(&mut self.cleaner.borrow_mut().running, true) {
            stats.skipped = true;
            return Ok(stats);
        }
        let _guard = RunGuard(&self.cleaner);
        if config.cleanup_delete {
            stats.retention_deleted_segments = self.enforce_retention().await?;
        }
        let first_dirty = self.cleaner.borrow().first_dirty;
        let plan = self.plan(first_dirty);
        if plan.cleanable.is_empty() || !self.worth_running(&plan, &config, now_ms, min_dirty_ratio)
        {
            stats.skipped = true;
            return Ok(stats);
        }
        let map = build_offset_map(&plan, first_dirty).await?;
        stats.keys = map.map.len();
        let mut tombstone_due = None;
        let mut complete = true;
        for range in group_segments(&plan.cleanable, config.segment_bytes) {
            let group = &plan.cleanable[range];
            let done = self
                .clean_group(group, &map, now_ms, &config, &plan, &mut stats)
                .await;
            match done {
                Ok((swapped, due)) => {
                    complete &= swapped;
                    tombstone_due = min_opt(tombstone_due, due);
                }
                Err(e) => {
                    remove_staged(self.staged_path(group[0].base)).await;
                    return Err(e);
                }
            }
        }
        let mut cleaner = self.cleaner.borrow_mut();
        if complete {
            cleaner.first_dirty = plan.cleanable_end;
        }
        cleaner.last_run = complete.then_some(RunMark {
            log_end: plan.log_end,
            cleanable_end: plan.cleanable_end,
            delete_retention_ms: config.delete_retention_ms,
            tombstone_due,
        });
        if stats.groups_rewritten > 0 {
            tracing::info!(
                "{}: compacted {} segment(s) into {}: {} of {} records removed, {} -> {} bytes",
                self.name(),
                stats.segments_replaced,
                stats.groups_rewritten,
                stats.records_removed,
                stats.records_read,
                stats.bytes_before,
                stats.bytes_after
            );
        }
        Ok(stats)
    }

    fn plan(&self, first_dirty: i64) -> Plan {
        let inner = self.inner.borrow();
        let bases: Vec<i64> = inner.segments.keys().copied().collect();
        let mut cleanable = Vec::new();
        let mut tail = Vec::new();
        let (mut dirty_bytes, mut total_bytes) = (0, 0);
        for (i, seg) in inner.segments.values().enumerate() {
            total_bytes += seg.size;
            let next = bases.get(i + 1).copied();
            if next.is_some_and(|n| n > first_dirty) {
                dirty_bytes += seg.size;
            }
            match next {
                Some(end) if seg.sealed && tail.is_empty() => cleanable.push(SegRef {
                    base: seg.base_offset,
                    end,
                    file: seg.file.clone(),
                    size: seg.size,
                    max_timestamp: seg.max_timestamp,
                }),
                _ => {
                    if next.is_none() {
                        dirty_bytes += seg.size;
                    }
                    tail.push((seg.file.clone(), seg.written));
                }
            }
        }
        Plan {
            cleanable_end: cleanable.last().map_or(bases[0], |s| s.end),
            cleanable,
            tail,
            cached: inner
                .cache
                .iter_from(inner.offsets.written())
                .map(|b| b.bytes.clone())
                .collect(),
            log_end: inner.offsets.log_end(),
            high_watermark: inner.offsets.last_stable(),
            aborted: {
                let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
                for txn in inner.segments.values().flat_map(|s| s.txn_index.entries()) {
                    aborted
                        .entry(txn.producer_id)
                        .or_default()
                        .push((txn.first_offset, txn.last_offset));
                }
                aborted
            },
            dirty_bytes,
            total_bytes,
        }
    }

    fn worth_running(&self, plan: &Plan, config: &LogConfig, now: i64, ratio: f64) -> bool {
        let cleaner = self.cleaner.borrow();
        let Some(last) = &cleaner.last_run else {
            return true;
        };
        if last.delete_retention_ms != config.delete_retention_ms
            || last.tombstone_due.is_some_and(|due| now > due)
        {
            return true;
        }
        let unchanged = last.log_end == plan.log_end && last.cleanable_end == plan.cleanable_end;
        !unchanged && plan.dirty_bytes as f64 >= ratio * plan.total_bytes as f64
    }

    fn staged_path(&self, base: i64) -> PathBuf {
        self.dir
            .join(STAGING_DIR)
            .join(segment_file_name(base, "log"))
    }

    /// Clean one group into a new segment and swap it in. Returns whether
    /// the group is now clean, and when its earliest kept tombstone is due.
    async fn clean_group(
        &self,
        group: &[SegRef],
        map: &OffsetMap,
        now: i64,
        config: &LogConfig,
        plan: &Plan,
        stats: &mut CompactionStats,
    ) -> Result<(bool, Option<i64>), LogError> {
        let first = group[0].base;
        let end = group.last().expect("non-empty group").end;
        let staging = self.dir.join(STAGING_DIR);
        let dir = staging.clone();
        super::index::off_shard(move || {
            crate::blocking::assert_not_shard("creating the cleaner's directory");
            std::fs::create_dir_all(dir)
        })
        .await?;
        let mut out = Segment::create(&staging, first).await?;
        let mut writer = AlignedWriter::new(out.file.get().await?);
        let mut changed = group.len() > 1;
        let mut due = None;
        let mut group_stats = CompactionStats::default();
        for src in group {
            group_stats.bytes_before += src.size;
            let drop_tombstones =
                now.saturating_sub(src.max_timestamp) > config.delete_retention_ms;
            let mut kept_tombstone = false;
            let mut reader = ChunkReader::new(src.file.get().await?, src.size);
            while let Some((chunk, ranges)) = reader.next().await? {
                for r in ranges {
                    let batch = BatchView::parse_verified(&chunk[r])?;
                    let filtered = filter_batch(
                        &batch,
                        map,
                        drop_tombstones,
                        &mut group_stats,
                        &mut kept_tombstone,
                    )?;
                    let bytes = match &filtered {
                        Filtered::Keep => batch.bytes(),
                        Filtered::Drop => {
                            changed = true;
                            continue;
                        }
                        Filtered::Rewrite(new) => {
                            changed = true;
                            new.as_slice()
                        }
                    };
                    out.note_batch(&BatchView::parse(bytes)?, config.index_interval_bytes);
                    out.size += bytes.len() as u64;
                    writer.buf.extend_from_slice(bytes);
                }
                writer.write_full_pages(CHUNK).await?;
                glommio::yield_if_needed().await;
            }
            if kept_tombstone {
                due = min_opt(
                    due,
                    Some(src.max_timestamp.saturating_add(config.delete_retention_ms)),
                );
            }
        }
        stats.records_read += group_stats.records_read;
        if !changed {
            drop(out);
            remove_staged(self.staged_path(first)).await;
            return Ok((true, due));
        }
        writer.finish(out.size).await?;
        out.written = out.size;
        out.next_offset = end;
        out.sealed = true;
        group_stats.bytes_after = out.size;
        if !self.commit(group, out, plan.log_end).await? {
            return Ok((false, None));
        }
        stats.groups_rewritten += 1;
        stats.segments_replaced += group.len();
        stats.records_removed += group_stats.records_removed;
        stats.tombstones_removed += group_stats.tombstones_removed;
        stats.batches_removed += group_stats.batches_removed;
        stats.bytes_before += group_stats.bytes_before;
        stats.bytes_after += group_stats.bytes_after;
        Ok((true, due))
    }

    /// Swap a cleaned, synced segment in for `group`, files and map. The
    /// files change on the blocking pool, under the files lock from the
    /// check that the group is unchanged to the map update: retention and
    /// DeleteRecords (which unlink segments) wait meanwhile, and a reader
    /// whose old segment file is gone waits and plans again (`reader.rs`).
    /// `false` if the group changed before (retention, truncation): nothing
    /// is swapped.
    async fn commit(
        &self,
        group: &[SegRef],
        mut seg: Segment,
        map_end: i64,
    ) -> Result<bool, LogError> {
        let first = group[0].base;
        let end = group.last().expect("non-empty").end;
        let staged = self.staged_path(first);
        let _files = self.lock_files().await?;
        let unchanged = {
            let inner = self.inner.borrow();
            // The cleaned segment keeps every marker, so it keeps the
            // group's aborted transactions too.
            for member in inner.segments.range(first..end).map(|(_, s)| s) {
                for txn in member.txn_index.entries() {
                    seg.txn_index.push(*txn);
                }
            }
            inner.offsets.log_end() >= map_end
                && inner.segments.contains_key(&end)
                && inner.segments.range(first..end).count() == group.len()
                && group.iter().all(|g| {
                    inner
                        .segments
                        .get(&g.base)
                        .is_some_and(|s| s.sealed && s.file.same(&g.file))
                })
        };
        if !unchanged {
            drop(seg);
            remove_staged(staged).await;
            return Ok(false);
        }
        let bases: Vec<i64> = group.iter().map(|g| g.base).collect();
        let indexes = seg.index_files(&self.dir);
        let dir = self.dir.clone();
        let moved = bases.clone();
        super::index::off_shard(move || {
            swap_in_files(&dir, &moved, &staged)?;
            indexes.write_blocking()
        })
        .await?;
        seg.path = self.dir.join(segment_file_name(first, "log"));
        seg.file.set_path(seg.path.clone());
        let mut inner = self.inner.borrow_mut();
        debug_assert!(
            bases.iter().all(|b| inner.segments.contains_key(b)),
            "the group's segments stay in the map while the files lock is held"
        );
        for b in &bases {
            inner.segments.remove(b);
        }
        inner.segments.insert(first, seg);
        // Cached copies of cleaned batches would serve stale records.
        inner.cache.drop_before(end);
        Ok(true)
    }
}

/// Remove a staged (cleaned, not swapped in) file, on the blocking pool.
async fn remove_staged(staged: PathBuf) {
    super::index::off_shard(move || {
        crate::blocking::assert_not_shard("removing a staged segment");
        let _ = std::fs::remove_file(staged);
    })
    .await
}

fn min_opt(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Consecutive segments whose combined size fits in one segment and whose
/// offsets fit the 32-bit relative index.
fn group_segments(segs: &[SegRef], segment_bytes: u64) -> Vec<Range<usize>> {
    let max_bytes = segment_bytes.min(i32::MAX as u64);
    let max_span = i32::MAX as i64 - 1_000_000;
    let mut groups = Vec::new();
    let mut i = 0;
    while i < segs.len() {
        let mut j = i + 1;
        let mut bytes = segs[i].size;
        while j < segs.len()
            && bytes + segs[j].size <= max_bytes
            && segs[j].end - segs[i].base <= max_span
        {
            bytes += segs[j].size;
            j += 1;
        }
        groups.push(i..j);
        i = j;
    }
    groups
}

/// Which records of `batch` survive.
fn filter_batch(
    batch: &BatchView,
    map: &OffsetMap,
    drop_tombstones: bool,
    stats: &mut CompactionStats,
    kept_tombstone: &mut bool,
) -> Result<Filtered, LogError> {
    if batch.is_control() {
        return Ok(Filtered::Keep);
    }
    let records = decode(batch)?;
    let total = records.len();
    stats.records_read += total as u64;
    let mut keep = Vec::with_capacity(total);
    for r in records {
        let offset = batch.base_offset() + r.offset_delta as i64;
        // Kafka's cleaner drops keyless records too.
        let Some(key) = &r.key else { continue };
        if map.latest(key).is_some_and(|latest| latest > offset) {
            continue;
        }
        if r.value.is_none() {
            if drop_tombstones {
                stats.tombstones_removed += 1;
                continue;
            }
            *kept_tombstone = true;
        }
        keep.push(r);
    }
    stats.records_removed += (total - keep.len()) as u64;
    if keep.len() == total {
        return Ok(Filtered::Keep);
    }
    if keep.is_empty() {
        stats.batches_removed += 1;
        return Ok(Filtered::Drop);
    }
    let log_append_time = batch.is_log_append_time();
    let mut builder = BatchBuilder::new(batch.compression())
        .base_offset(batch.base_offset())
        .partition_leader_epoch(batch.partition_leader_epoch())
        .timestamp_type(if log_append_time {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        })
        .transactional(batch.is_transactional())
        .producer(
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
        );
    for r in keep {
        let ts = if log_append_time {
            batch.max_timestamp()
        } else {
            batch.base_timestamp().wrapping_add(r.timestamp_delta)
        };
        builder
            .append_with_offset_delta(r.offset_delta, ts, r.key, r.value, r.headers)
            .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
    }
    let bytes = builder
        .build()
        .map_err(|e| LogError::InvalidRecord(e.to_string()))?;
    Ok(Filtered::Rewrite(bytes))
}

fn decode(batch: &BatchView) -> Result<Vec<record::Record>, LogError> {
    record::decode_records(batch).map_err(|e| {
        LogError::InvalidRecord(format!("batch at offset {}: {e}", batch.base_offset()))
    })
}

/// Key -> latest offset over everything from `first_dirty` on.
async fn build_offset_map(plan: &Plan, first_dirty: i64) -> Result<OffsetMap, LogError> {
    let mut map = OffsetMap::new();
    let mut next = i64::MIN;
    let hwm = plan.high_watermark;
    let mut add = |map: &mut OffsetMap, bytes: &[u8]| -> Result<(), LogError> {
        let batch = BatchView::parse_verified(bytes)?;
        if batch.base_offset() >= hwm {
            return Ok(());
        }
        if batch.base_offset() < next {
            return Ok(()); // seen already (the disk and the cache overlap)
        }
        next = batch.last_offset() + 1;
        if batch.is_control() || batch.last_offset() < first_dirty {
            return Ok(());
        }
        let aborted = batch.is_transactional()
            && plan.aborted.get(&batch.producer_id()).is_some_and(|txns| {
                txns.iter().any(|&(first, marker)| {
                    first <= batch.base_offset() && batch.base_offset() < marker
                })
            });
        if aborted {
            return Ok(());
        }
        for r in decode(&batch)? {
            let offset = batch.base_offset() + r.offset_delta as i64;
            if let (Some(key), true) = (&r.key, offset >= first_dirty) {
                map.put(key, offset);
            }
        }
        Ok(())
    };
    let dirty = plan.cleanable.iter().filter(|s| s.end > first_dirty);
    let files = dirty
        .map(|s| (s.file.clone(), s.size))
        .chain(plan.tail.iter().cloned());
    for (file, len) in files {
        let mut reader = ChunkReader::new(file.get().await?, len);
        while let Some((chunk, ranges)) = reader.next().await? {
            for r in ranges {
                add(&mut map, &chunk[r])?;
            }
            glommio::yield_if_needed().await;
        }
    }
    for b in &plan.cached {
        add(&mut map, b)?;
    }
    Ok(map)
}

/// Reads the whole batches of `file[..end]`, about a chunk at a time.
struct ChunkReader {
    file: OpenFile,
    pos: u64,
    end: u64,
}

impl ChunkReader {
    fn new(file: OpenFile, end: u64) -> Self {
        Self { file, pos: 0, end }
    }

    async fn next(&mut self) -> Result<Option<(ReadResult, Vec<Range<usize>>)>, LogError> {
        if self.pos >= self.end {
            return Ok(None);
        }
        let bad = |pos: u64, why: String| {
            LogError::Storage(format!("sealed segment: bad batch at byte {pos}: {why}"))
        };
        let want = CHUNK.min((self.end - self.pos) as usize);
        let chunk = self.file.read_at(self.pos, want).await?;
        let mut ranges = Vec::new();
        let mut at = 0;
        while let Some(size) = record::peek_batch_size(&chunk[at..]) {
            let size = size.map_err(|e| bad(self.pos + at as u64, e.to_string()))?;
            if at + size > chunk.len() {
                break;
            }
            ranges.push(at..at + size);
            at += size;
        }
        if !ranges.is_empty() {
            self.pos += at as u64;
            return Ok(Some((chunk, ranges)));
        }
        // One batch larger than the chunk (or a torn end): read exactly it.
        let size = match record::peek_batch_size(&chunk) {
            Some(Ok(size)) if size <= MAX_BATCH_BYTES && self.pos + size as u64 <= self.end => size,
            _ => return Err(bad(self.pos, "unreadable or past the end".into())),
        };
        let whole = self.file.read_at(self.pos, size).await?;
        if whole.len() < size {
            return Err(bad(self.pos, "short read".into()));
        }
        self.pos += size as u64;
        let whole_batch = 0..size;
        Ok(Some((whole, vec![whole_batch])))
    }
}

/// Appends through page-aligned direct-I/O writes.
struct AlignedWriter {
    file: OpenFile,
    /// File position of `buf[0]`, page aligned.
    pos: u64,
    buf: Vec<u8>,
}

impl AlignedWriter {
    fn new(file: OpenFile) -> Self {
        Self {
            file,
            pos: 0,
            buf: Vec::new(),
        }
    }

    async fn write(&self, len: usize) -> Result<(), LogError> {
        let padded = len.div_ceil(PAGE) * PAGE;
        let mut data = self.file.alloc_dma_buffer(padded);
        let dst = data.as_bytes_mut();
        dst[..len].copy_from_slice(&self.buf[..len]);
        dst[len..].fill(0);
        let n = self.file.write_at(data, self.pos).await?;
        if n != padded {
            return Err(LogError::Storage(format!(
                "short write: {n} of {padded} bytes"
            )));
        }
        Ok(())
    }

    /// Write the whole pages buffered, once at least `threshold` bytes are.
    async fn write_full_pages(&mut self, threshold: usize) -> Result<(), LogError> {
        let full = self.buf.len() / PAGE * PAGE;
        if self.buf.len() < threshold || full == 0 {
            return Ok(());
        }
        self.write(full).await?;
        self.buf.drain(..full);
        self.pos += full as u64;
        Ok(())
    }

    /// Write the rest, cut the file to `size` and sync it.
    async fn finish(self, size: u64) -> Result<(), LogError> {
        if !self.buf.is_empty() {
            self.write(self.buf.len()).await?;
        }
        self.file.truncate(size).await?;
        self.file.fdatasync().await?;
        Ok(())
    }
}

// The swap's file operations and the recovery of an interrupted swap.
#[path = "compaction_swap.rs"]
mod swap;
pub use swap::recover_leftovers;
use swap::swap_in_files;

#[cfg(test)]
#[path = "compaction_tests.rs"]
pub(super) mod tests;
