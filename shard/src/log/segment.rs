//! One segment of a partition log: a direct-I/O file of record batches named
//! by its base offset, with its sparse indexes.
//!
//! Invariant used by recovery: a segment whose `.index` file exists was
//! sealed cleanly (written, synced, truncated to its exact size, indexes
//! written last). The active segment never has index files on disk.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use glommio::io::{DmaFile, OpenOptions};

use super::error::LogError;
use super::index::{OffsetIndex, TimeIndex};
use crate::record::{peek_batch_size, BatchView, NO_TIMESTAMP};

/// Read granularity when scanning a segment.
const SCAN_CHUNK: usize = 1 << 20;
/// A length field above this is treated as corruption, not a batch.
pub const MAX_BATCH_BYTES: usize = 256 << 20;

pub fn segment_file_name(base_offset: i64, ext: &str) -> String {
    format!("{base_offset:020}.{ext}")
}

pub struct Segment {
    pub base_offset: i64,
    pub file: Rc<DmaFile>,
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
    bytes_since_index: u64,
    pub sealed: bool,
    /// File space reserved so far (fallocate, size kept): appends grow it a
    /// step at a time rather than reserving the whole segment up front.
    pub allocated: u64,
}

/// How much file space a segment reserves at a time when `preallocate` is
/// on. Reserving whole segments (1 GiB by default) would tie up 64 GiB for
/// one 64-partition topic before a byte is written.
pub const PREALLOCATE_STEP: u64 = 32 << 20;

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

    async fn open_file(path: &Path, create: bool) -> Result<DmaFile, LogError> {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .dma_open(path)
            .await
            .map_err(|e| LogError::Storage(format!("open {}: {e}", path.display())))
    }

    /// A fresh, empty segment starting at `base_offset`.
    pub async fn create(
        dir: &Path,
        base_offset: i64,
        preallocate: Option<u64>,
    ) -> Result<Self, LogError> {
        let (path, _, _) = Self::paths(dir, base_offset);
        let file = Self::open_file(&path, true).await?;
        file.truncate(0).await?;
        let mut seg = Self::empty(base_offset, file, path);
        if let Some(limit) = preallocate {
            seg.reserve(PREALLOCATE_STEP.min(limit)).await;
        }
        Ok(seg)
    }

    fn empty(base_offset: i64, file: DmaFile, path: PathBuf) -> Self {
        Self {
            base_offset,
            file: Rc::new(file),
            path,
            size: 0,
            written: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            first_append_ms: None,
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            bytes_since_index: 0,
            sealed: false,
            allocated: 0,
        }
    }

    /// Reserve file space up to `end` (best effort: without it appends
    /// still work, the writes just extend the file).
    pub async fn reserve(&mut self, end: u64) {
        if end <= self.allocated {
            return;
        }
        match self.file.pre_allocate(end, true).await {
            Ok(()) => self.allocated = end,
            Err(e) => tracing::debug!("pre-allocating {}: {e}", self.path.display()),
        }
    }

    /// Open a segment that was sealed cleanly, trusting its index files.
    /// Returns `Ok(None)` if the index files are missing or unreadable, in
    /// which case the caller rebuilds by scanning.
    pub async fn open_sealed(
        dir: &Path,
        base_offset: i64,
        next_segment_base: i64,
    ) -> Result<Option<Self>, LogError> {
        let (path, index_path, time_path) = Self::paths(dir, base_offset);
        if !index_path.exists() || !time_path.exists() {
            return Ok(None);
        }
        let (index, time_index) = match (
            OffsetIndex::read_from(&index_path),
            TimeIndex::read_from(&time_path),
        ) {
            (Ok(i), Ok(t)) => (i, t),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!("{e}; rebuilding the index by scanning");
                return Ok(None);
            }
        };
        let file = Self::open_file(&path, false).await?;
        let size = file.file_size().await?;
        let mut seg = Self::empty(base_offset, file, path);
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
        seg.sealed = true;
        Ok(Some(seg))
    }

    /// Open a segment by scanning every batch (the active segment, or a
    /// sealed one whose indexes are missing): verifies CRCs, rebuilds the
    /// indexes, and truncates the file after the last valid batch.
    /// `visit` sees every valid batch (producer-state replay).
    pub async fn recover(
        dir: &Path,
        base_offset: i64,
        index_interval: u64,
        mut visit: impl FnMut(&BatchView),
    ) -> Result<(Self, ScanOutcome), LogError> {
        let (path, index_path, time_path) = Self::paths(dir, base_offset);
        let file = Self::open_file(&path, false).await?;
        let mut seg = Self::empty(base_offset, file, path);
        let file_len = seg.file.file_size().await?;
        let file = seg.file.clone();
        let outcome = scan(&file, file_len, base_offset, |pos, batch| {
            seg.size = pos;
            seg.note_batch(batch, index_interval);
            seg.size = pos + batch.size() as u64;
            visit(batch);
        })
        .await?;
        debug_assert_eq!(seg.size, outcome.valid_end);
        seg.size = outcome.valid_end;
        seg.written = outcome.valid_end;
        seg.next_offset = outcome.next_offset;
        if outcome.valid_end != file_len {
            // Drops a torn tail and any pre-allocated space; re-reserved on append.
            seg.file.truncate(outcome.valid_end).await?;
        }
        // Stale indexes of a segment that is being rebuilt must not survive.
        let _ = std::fs::remove_file(index_path);
        let _ = std::fs::remove_file(time_path);
        Ok((seg, outcome))
    }

    /// Update indexes and bookkeeping for a batch placed at `self.size`.
    /// The caller advances `size` afterwards.
    pub fn note_batch(&mut self, batch: &BatchView, index_interval: u64) {
        let relative = (batch.base_offset() - self.base_offset) as u32;
        let position = self.size as u32;
        if self.size == 0 || self.bytes_since_index >= index_interval {
            self.index.push(relative, position);
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += batch.size() as u64;
        let ts = batch.max_timestamp();
        if ts > self.max_timestamp {
            self.max_timestamp = ts;
            self.offset_of_max_timestamp = batch.last_offset();
            self.time_index.push(ts, relative);
        }
        self.next_offset = batch.last_offset() + 1;
    }

    /// Persist the indexes of a sealed segment (its data is already synced).
    pub fn write_indexes(&self, dir: &Path) -> std::io::Result<()> {
        let (_, index_path, time_path) = Self::paths(dir, self.base_offset);
        self.time_index.write_to(&time_path)?;
        // The offset index is written last: its presence marks a clean seal.
        self.index.write_to(&index_path)
    }

    pub fn delete_files(&self, dir: &Path) {
        let (log, index, time) = Self::paths(dir, self.base_offset);
        for p in [index, time, log] {
            if let Err(e) = std::fs::remove_file(&p) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!("removing {}: {e}", p.display());
                }
            }
        }
    }
}

/// Walk the batches of a segment file from the start; stop at the first
/// thing that is not a valid, CRC-correct batch continuing the offsets.
pub async fn scan(
    file: &DmaFile,
    file_len: u64,
    base_offset: i64,
    mut visit: impl FnMut(u64, &BatchView),
) -> Result<ScanOutcome, LogError> {
    let mut pos = 0u64;
    let mut next_offset = base_offset;
    let stop = |pos: u64, next_offset: i64, why: String| ScanOutcome {
        valid_end: pos,
        next_offset,
        stopped_because: Some(why),
    };
    while pos < file_len {
        let want = SCAN_CHUNK.min((file_len - pos) as usize);
        let chunk = file.read_at(pos, want).await?;
        let mut at = 0usize;
        let mut progressed = false;
        while at < chunk.len() {
            let rest = &chunk[at..];
            let size = match peek_batch_size(rest) {
                None => break, // header straddles the chunk end
                Some(Err(e)) => {
                    return Ok(stop(
                        pos + at as u64,
                        next_offset,
                        format!("at byte {}: {e}", pos + at as u64),
                    ))
                }
                Some(Ok(size)) => size,
            };
            if size > MAX_BATCH_BYTES || pos + at as u64 + size as u64 > file_len {
                return Ok(stop(
                    pos + at as u64,
                    next_offset,
                    format!(
                        "at byte {}: batch of {size} bytes runs past the end",
                        pos + at as u64
                    ),
                ));
            }
            if size > rest.len() {
                break; // batch straddles the chunk end: read from its start
            }
            let batch = match BatchView::parse_verified(rest) {
                Ok(b) => b,
                Err(e) => {
                    return Ok(stop(
                        pos + at as u64,
                        next_offset,
                        format!("at byte {}: {e}", pos + at as u64),
                    ))
                }
            };
            if batch.base_offset() < next_offset {
                return Ok(stop(
                    pos + at as u64,
                    next_offset,
                    format!(
                        "at byte {}: offset {} does not follow {}",
                        pos + at as u64,
                        batch.base_offset(),
                        next_offset - 1
                    ),
                ));
            }
            visit(pos + at as u64, &batch);
            next_offset = batch.last_offset() + 1;
            at += size;
            progressed = true;
        }
        if !progressed {
            // A single batch larger than the chunk: read exactly it.
            let size = peek_batch_size(&chunk[..])
                .and_then(Result::ok)
                .unwrap_or(0);
            if size <= chunk.len() {
                return Ok(stop(
                    pos,
                    next_offset,
                    format!("at byte {pos}: unreadable header"),
                ));
            }
            let whole = file.read_at(pos, size).await?;
            match BatchView::parse_verified(&whole) {
                Ok(batch) if batch.base_offset() >= next_offset => {
                    visit(pos, &batch);
                    next_offset = batch.last_offset() + 1;
                    pos += size as u64;
                }
                Ok(_) => {
                    return Ok(stop(
                        pos,
                        next_offset,
                        format!("at byte {pos}: offsets go backwards"),
                    ))
                }
                Err(e) => return Ok(stop(pos, next_offset, format!("at byte {pos}: {e}"))),
            }
            continue;
        }
        pos += at as u64;
    }
    Ok(ScanOutcome {
        valid_end: pos,
        next_offset,
        stopped_because: None,
    })
}
