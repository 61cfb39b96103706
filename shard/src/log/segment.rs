//! One segment of a partition log: a direct-I/O file of record batches named
//! by its base offset, with its sparse indexes.
//!
//! Invariant used by recovery: a segment whose `.index` file exists was
//! sealed cleanly (written, synced, truncated to its exact size, indexes
//! written last). The active segment never has index files on disk.

use std::path::{Path, PathBuf};

use super::error::LogError;
use super::index::{OffsetIndex, TimeIndex};
use super::open_files::SegmentFile;
use super::preallocate::Preallocation;
use super::txn_index::TxnIndex;
use super::walk::{self, Expect};
use crate::record::{BatchView, NO_TIMESTAMP};

pub use super::walk::MAX_BATCH_BYTES;

/// Read granularity when scanning a segment.
const SCAN_CHUNK: usize = 1 << 20;

pub fn segment_file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

pub struct Segment {
    pub base_offset: i64,
    /// Opened on use and closed when idle (see `open_files`).
    pub file: SegmentFile,
    pub path: PathBuf,
    /// Logical size: every appended byte, written or not.
    pub size: u64,
    /// Bytes of this segment already written to the file.
    pub written: u64,
    /// One past the last offset stored here.
    pub next_offset: i64,
    pub max_timestamp: i64,
    pub offset_of_max_timestamp: i64,
    /// Wall-clock ms when the first batch was appended (for `segment.ms`).
    pub first_append_ms: Option<i64>,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    /// The transactions aborted by markers in this segment (`txn_index.rs`).
    pub txn_index: TxnIndex,
    bytes_since_index: u64,
    pub sealed: bool,
    /// File space reserved so far (fallocate, size kept): appends grow it a
    /// step at a time rather than reserving the whole segment up front.
    pub allocated: u64,
    /// How big the next reservation is (with `preallocate`).
    pub preallocation: Preallocation,
    /// Damaged byte ranges found so far, by position: reads of their offsets
    /// answer at once, without touching the file again.
    pub damage: Vec<Damage>,
}

/// Bytes of a segment that are not valid batches, between valid ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Where the damage starts: the end of the last valid batch before it.
    pub pos: u64,
    /// The first offset that cannot be read: one past the last valid batch.
    pub first_offset: i64,
    /// The next valid batch after the damage (byte, base offset); `None`
    /// when none follows in this segment.
    pub resume: Option<(u64, i64)>,
    pub reason: String,
}

impl Damage {
    /// First offset readable again (`segment_end`: the next segment's base).
    pub fn resume_offset(&self, segment_end: i64) -> i64 {
        self.resume.map_or(segment_end, |(_, offset)| offset)
    }

    /// Byte where reading resumes (`size`: the segment's size).
    pub fn resume_pos(&self, size: u64) -> u64 {
        self.resume.map_or(size, |(pos, _)| pos)
    }

    /// Find how far damage found at `pos` reaches in `src[..end]`.
    pub async fn measure<R: walk::ReadAt>(
        src: &R,
        pos: u64,
        end: u64,
        expect: Expect,
        reason: String,
    ) -> std::io::Result<Self> {
        let resume = walk::resync(src, pos, end, expect, SCAN_CHUNK).await?;
        Ok(Self {
            pos,
            first_offset: expect.next,
            resume,
            reason,
        })
    }
}

/// What a scan of a segment file found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanOutcome {
    /// End of the last valid batch.
    pub valid_end: u64,
    /// One past the last offset of the last valid batch.
    pub next_offset: i64,
    /// Why the scan stopped before the end of the file, if it did.
    pub stopped_because: Option<String>,
}

impl Segment {
    fn paths(dir: &Path, base_offset: i64) -> (PathBuf, PathBuf, PathBuf) {
        (
            dir.join(segment_file_name(base_offset, "log")),
            dir.join(segment_file_name(base_offset, "index")),
            dir.join(segment_file_name(base_offset, "timeindex")),
        )
    }

    /// A fresh, empty segment starting at `base_offset`. No space is
    /// reserved yet: the first write reserves what the partition's write
    /// rate calls for (see `preallocate`).
    pub async fn create(dir: &Path, base_offset: i64) -> Result<Self, LogError> {
        let (path, _, _) = Self::paths(dir, base_offset);
        #[cfg(any(test, feature = "sim"))]
        super::sim_disk::note(|| format!("  create segment {base_offset}"));
        let file = SegmentFile::open(&path, true).await?;
        super::disk::truncate(&*file.get().await?, 0).await?;
        Ok(Self::empty(base_offset, file, path))
    }

    fn empty(base_offset: i64, file: SegmentFile, path: PathBuf) -> Self {
        Self {
            base_offset,
            file,
            path,
            size: 0,
            written: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            first_append_ms: None,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            txn_index: TxnIndex::default(),
            bytes_since_index: 0,
            sealed: false,
            allocated: 0,
            preallocation: Preallocation::default(),
            damage: Vec::new(),
        }
    }

    /// Open a segment that was sealed cleanly, trusting its index files.
    /// Returns `Ok(None)` if the index files are missing or unreadable, in
    /// which case the caller rebuilds by scanning. The file itself is not
    /// opened until it is read.
    pub async fn open_sealed(
        dir: &Path,
        base_offset: i64,
        next_segment_base: i64,
    ) -> Result<Option<Self>, LogError> {
        let (path, index_path, time_path) = Self::paths(dir, base_offset);
        let data = path.clone();
        let txn_path = dir.join(segment_file_name(base_offset, "txnindex"));
        let found = super::index::off_shard(move || {
            let found = read_sealed(&data, &index_path, &time_path)?;
            // Without its transaction index a sealed segment is scanned
            // again like one whose indexes are gone (the scan rebuilds it).
            let txn = found.as_ref().and_then(|_| {
                match TxnIndex::read_from(&txn_path, base_offset, next_segment_base) {
                    Ok(Some(txn)) => Some(txn),
                    Ok(None) => {
                        tracing::info!(
                            "{}: no transaction index; rebuilding it by scanning",
                            txn_path.display()
                        );
                        None
                    }
                    Err(e) => {
                        tracing::warn!("{e}; rebuilding the transaction index by scanning");
                        None
                    }
                }
            });
            Ok::<_, LogError>(found.zip(txn))
        })
        .await?;
        let Some(((index, time_index, size), txn_index)) = found else {
            return Ok(None);
        };
        let mut seg = Self::empty(base_offset, SegmentFile::lazy(&path), path);
        seg.size = size;
        seg.written = size;
        seg.next_offset = next_segment_base;
        seg.max_timestamp = time_index.max_timestamp().unwrap_or(NO_TIMESTAMP);
        seg.offset_of_max_timestamp = time_index
            .max_timestamp()
            .map(|_| base_offset + time_index.lookup(i64::MAX) as i64)
            .unwrap_or(-1);
        seg.index = index;
        seg.time_index = time_index;
        seg.txn_index = txn_index;
        seg.sealed = true;
        Ok(Some(seg))
    }

    /// Open a segment by scanning every batch (the active segment, or a
    /// sealed one whose indexes are missing): verifies CRCs, rebuilds the
    /// indexes, and cuts the file after the last valid batch. Such a segment
    /// was not known to be synced, so what follows the first invalid batch
    /// is a torn or unfinished write that was never acknowledged (as in
    /// Kafka's recovery past its recovery point). Damage in segments sealed
    /// cleanly is found by reads instead, and nothing is cut there.
    /// `visit` sees every valid batch (producer-state replay).
    pub async fn recover(
        dir: &Path,
        base_offset: i64,
        next_segment_base: Option<i64>,
        index_interval: u64,
        mut visit: impl FnMut(&BatchView),
    ) -> Result<(Self, ScanOutcome), LogError> {
        let (path, index_path, time_path) = Self::paths(dir, base_offset);
        let handle = SegmentFile::open(&path, false).await?;
        let file = handle.get().await?;
        let mut seg = Self::empty(base_offset, handle, path);
        let file_len = file.file_size().await?;
        let expect = Expect {
            next: base_offset,
            limit: next_segment_base.unwrap_or(i64::MAX),
        };
        let end = walk::walk(
            &*file,
            0,
            file_len,
            expect,
            SCAN_CHUNK,
            |_, _, pos, batch| {
                seg.size = pos;
                seg.note_batch(batch, index_interval);
                seg.size = pos + batch.size() as u64;
                visit(batch);
                walk::Visit::Continue
            },
        )
        .await?;
        assert_eq!(seg.size, end.pos);
        seg.size = end.pos;
        seg.written = end.pos;
        seg.next_offset = end.next_offset;
        if end.pos != file_len {
            // Drops a torn tail and any pre-allocated space; re-reserved on append.
            super::disk::truncate(&file, end.pos).await?;
        }
        // Stale indexes of a segment that is being rebuilt must not survive.
        let txn_path = dir.join(segment_file_name(base_offset, "txnindex"));
        super::index::off_shard(move || {
            crate::blocking::assert_not_shard("removing stale indexes");
            let _ = std::fs::remove_file(index_path);
            let _ = std::fs::remove_file(time_path);
            let _ = std::fs::remove_file(txn_path);
        })
        .await;
        let outcome = ScanOutcome {
            valid_end: end.pos,
            next_offset: end.next_offset,
            stopped_because: end.damage.map(|why| format!("at byte {}: {why}", end.pos)),
        };
        Ok((seg, outcome))
    }

    /// Update indexes and bookkeeping for a batch placed at `self.size`.
    /// The caller advances `size` afterwards.
    pub fn note_batch(&mut self, batch: &BatchView, index_interval: u64) {
        let relative = (batch.base_offset() - self.base_offset) as u32;
        let position = self.size as u32;
        let ts = batch.max_timestamp();
        if ts > self.max_timestamp {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = batch.last_offset();
        }
        if self.size == 0 || self.bytes_since_index >= index_interval {
            self.index.push(relative, position);
            // As Kafka's LogSegment.append: a time-index entry (the largest
            // timestamp so far) only with an offset-index entry. One per
            // batch made a segment of tiny batches (transaction markers)
            // keep 16 bytes per batch in memory; a search from an entry
            // scans at most `index_interval` bytes more.
            self.push_time_entry();
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch.size() as u64;
        self.next_offset = batch.last_offset() + 1;
    }

    /// The segment's largest timestamp and where it is, as a time-index
    /// entry (`None` before any timestamp).
    fn last_time_entry(&self) -> Option<(i64, u32)> {
        (self.max_timestamp != NO_TIMESTAMP && self.offset_of_max_timestamp >= self.base_offset)
            .then(|| {
                (
                    self.max_timestamp,
                    (self.offset_of_max_timestamp - self.base_offset) as u32,
                )
            })
    }

    fn push_time_entry(&mut self) {
        if let Some((ts, relative)) = self.last_time_entry() {
            self.time_index.push(ts, relative);
        }
    }

    /// The known damage that makes `offset` unreadable, if any
    /// (`segment_end`: the next segment's base, or the log end).
    pub fn damage_covering(&self, offset: i64, segment_end: i64) -> Option<&Damage> {
        self.damage
            .iter()
            .find(|d| d.first_offset <= offset && offset < d.resume_offset(segment_end))
    }

    /// Where a read of `offset` starts (byte, and the offsets a batch there
    /// may have) and where it must stop (the next known damage, else the
    /// bytes written). `offset` must not be in a damaged range.
    pub fn read_bounds(&self, offset: i64, segment_end: i64) -> (u64, Expect, u64) {
        let relative = offset
            .saturating_sub(self.base_offset)
            .clamp(0, u32::MAX as i64) as u32;
        let (rel, pos) = self.index.lookup_entry(relative);
        let mut start = pos as u64;
        let mut next = self.base_offset + rel as i64;
        // The index may point before (or into) damage that lies before the
        // offset: start after it instead.
        for d in &self.damage {
            if let Some((resume_pos, resume_offset)) = d.resume {
                if resume_offset <= offset && resume_pos > start {
                    start = resume_pos;
                    next = resume_offset;
                }
            }
        }
        let end = self
            .damage
            .iter()
            .map(|d| d.pos)
            .filter(|&p| p >= start)
            .min()
            .unwrap_or(self.written)
            .min(self.written);
        let expect = Expect {
            next,
            limit: segment_end,
        };
        (start, expect, end)
    }

    /// Record damage found by a read; `false` if it was known already.
    pub fn note_damage(&mut self, damage: Damage) -> bool {
        if self.damage.iter().any(|d| d.pos == damage.pos) {
            return false;
        }
        assert!(damage.resume.is_none_or(|(pos, _)| pos > damage.pos));
        self.damage.push(damage);
        self.damage.sort_by_key(|d| d.pos);
        true
    }

    /// Persist the indexes of a sealed segment (its data is already synced),
    /// off the shard thread.
    pub async fn write_indexes(&self, dir: &Path) -> std::io::Result<()> {
        self.index_files(dir).write().await
    }

    /// The encoded index files, to write once no `RefCell` borrow is held.
    pub fn index_files(&self, dir: &Path) -> IndexFiles {
        let (_, index_path, time_path) = Self::paths(dir, self.base_offset);
        IndexFiles {
            txn: (
                dir.join(segment_file_name(self.base_offset, "txnindex")),
                self.txn_index.encode(),
            ),
            // The file ends with the segment's largest timestamp, which
            // the sparse entries may not have reached: loading it gives the
            // segment's `max_timestamp` back.
            time: (
                time_path,
                self.time_index.encode_with(self.last_time_entry()),
            ),
            offset: (index_path, self.index.encode()),
        }
    }
}

/// A cleanly sealed segment's indexes and data size, read from its files
/// (blocks); `None` when an index is missing or unreadable (rebuilt by
/// scanning).
fn read_sealed(
    path: &Path,
    index_path: &Path,
    time_path: &Path,
) -> Result<Option<(OffsetIndex, TimeIndex, u64)>, LogError> {
    crate::blocking::assert_not_shard("reading a sealed segment's indexes");
    if !index_path.exists() || !time_path.exists() {
        return Ok(None);
    }
    let (index, time_index) = match (
        OffsetIndex::read_from(index_path),
        TimeIndex::read_from(time_path),
    ) {
        (Ok(i), Ok(t)) => (i, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!("{e}; rebuilding the index by scanning");
            return Ok(None);
        }
    };
    let size = std::fs::metadata(path)
        .map_err(|e| LogError::Storage(format!("{}: {e}", path.display())))?
        .len();
    Ok(Some((index, time_index, size)))
}

/// A sealed segment's index files, encoded, ready to be written durably.
pub struct IndexFiles {
    txn: (PathBuf, Vec<u8>),
    time: (PathBuf, Vec<u8>),
    offset: (PathBuf, Vec<u8>),
}

impl IndexFiles {
    /// Write them on the blocking pool; done when all are durable.
    pub async fn write(self) -> std::io::Result<()> {
        super::index::off_shard(move || self.write_blocking()).await
    }

    /// Write both here (blocks): for callers already on the blocking pool.
    pub(super) fn write_blocking(self) -> std::io::Result<()> {
        // Always written, empty too: a sealed segment without one is
        // rebuilt by scanning (`open_sealed`).
        super::index::write_durably(&self.txn.0, &self.txn.1)?;
        super::index::write_durably(&self.time.0, &self.time.1)?;
        // The offset index is written last: its presence marks a clean seal.
        super::index::write_durably(&self.offset.0, &self.offset.1)
    }
}

/// Everything a scan of a whole segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FullScan {
    /// End of the last valid batch.
    pub valid_end: u64,
    /// One past the last offset of the last valid batch.
    pub next_offset: i64,
    /// Damage with valid batches after it.
    pub damage: Vec<Damage>,
    /// Bytes after the last valid batch that are not one: (position, why).
    pub tail: Option<(u64, String)>,
    pub batches: u64,
}

/// Visit every valid batch of `src[..end]`, going past damage to the next
/// valid batch each time (recovery, `shardline log verify`).
pub async fn scan_all<R: walk::ReadAt>(
    src: &R,
    end: u64,
    expect: Expect,
    mut visit: impl FnMut(u64, &BatchView),
) -> std::io::Result<FullScan> {
    let mut out = FullScan {
        valid_end: 0,
        next_offset: expect.next,
        damage: Vec::new(),
        tail: None,
        batches: 0,
    };
    let mut start = 0;
    let mut next = expect.next;
    loop {
        let from = Expect {
            next,
            limit: expect.limit,
        };
        let walked = walk::walk(src, start, end, from, SCAN_CHUNK, |_, _, pos, batch| {
            out.batches += 1;
            visit(pos, batch);
            walk::Visit::Continue
        })
        .await?;
        if walked.pos > start || walked.next_offset > next {
            out.valid_end = walked.pos;
            out.next_offset = walked.next_offset;
        }
        let Some(why) = walked.damage else {
            return Ok(out);
        };
        let from = Expect {
            next: walked.next_offset,
            limit: expect.limit,
        };
        let damage = Damage::measure(src, walked.pos, end, from, why).await?;
        match damage.resume {
            Some((pos, offset)) => {
                start = pos;
                next = offset;
                out.damage.push(damage);
            }
            None => {
                out.tail = Some((damage.pos, damage.reason));
                return Ok(out);
            }
        }
    }
}

/// Walk the batches of a segment file from the start; stop at the first
/// thing that is not a valid, CRC-correct batch continuing the offsets.
pub async fn scan<R: walk::ReadAt>(
    file: &R,
    file_len: u64,
    base_offset: i64,
    mut visit: impl FnMut(u64, &BatchView),
) -> Result<ScanOutcome, LogError> {
    let expect = Expect {
        next: base_offset,
        limit: i64::MAX,
    };
    let end = walk::walk(file, 0, file_len, expect, SCAN_CHUNK, |_, _, pos, batch| {
        visit(pos, batch);
        walk::Visit::Continue
    })
    .await?;
    Ok(ScanOutcome {
        valid_end: end.pos,
        next_offset: end.next_offset,
        stopped_because: end.damage.map(|why| format!("at byte {}: {why}", end.pos)),
    })
}
