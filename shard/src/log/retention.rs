//! Deleting data: retention by time and size, DeleteRecords, and the
//! persisted log start offset. Only whole sealed segments are removed, off
//! the request path.

use std::path::Path;

use super::error::LogError;
use super::partition::PartitionLog;
use super::segment::{segment_file_name, Segment};
use crate::time::Clock;

const LOG_START_FILE: &str = "log-start-offset";

impl PartitionLog {
    /// DeleteRecords: make `offset` the new log start (-1 = high watermark).
    /// As in Kafka, an offset beyond the high watermark is out of range.
    /// Works on a full disk: the checkpoint is small and may use the disk
    /// reserve, and whole segments are removed without writing anything.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let new_start = {
            let mut inner = self.inner.borrow_mut();
            let hwm = inner.offsets.high_watermark();
            let target = if offset == -1 { hwm } else { offset };
            if target < 0 || target > hwm {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: inner.offsets.log_start(),
                    log_end: hwm,
                });
            }
            if inner.offsets.advance_log_start(target) {
                inner.cache.drop_before(target);
                inner.epochs.truncate_from_start(target);
            }
            inner.offsets.log_start()
        };
        // Answered only once the new log start is durable.
        self.persist_log_start().await?;
        self.persist_epochs_after_start_moved().await;
        self.delete_segments_below(new_start).await;
        Ok(new_start)
    }

    /// Write the log start now in memory to its file, durably, on the
    /// blocking pool. Writers take turns and each writes the value current
    /// at its turn (it only grows), so the file never goes back.
    async fn persist_log_start(&self) -> std::io::Result<()> {
        let _turn = self.log_start_lock.lock().await;
        let start = self.inner.borrow().offsets.log_start();
        let dir = self.dir.clone();
        super::index::off_shard(move || write_log_start(&dir, start)).await
    }

    /// The epoch cache was trimmed to a new log start. Its file may lag
    /// (the next load trims it again), so a failed write is only logged.
    async fn persist_epochs_after_start_moved(&self) {
        if let Err(e) = self.persist_epochs().await {
            tracing::warn!("{}: leader epoch checkpoint not written: {e}", self.name);
        }
    }

    /// Remove sealed segments that lie entirely below `offset`: out of the
    /// map first (no reader plans on them any more), then their files, on
    /// the blocking pool. Under the files lock, so a compaction swap never
    /// puts back a segment this removed, nor renames a file under it.
    async fn delete_segments_below(&self, offset: i64) {
        // No ring barrier: a start-up replay skips the frames of a segment
        // whose file is gone (`wal/replay.rs`), so unlinking whole sealed
        // segments needs no checkpoint first. That matters on a full disk,
        // where DeleteRecords frees the space a partition waits for to
        // write back its acknowledged batches (and so to let checkpoints
        // pass).
        let _files = self.files_lock.lock().await;
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
        if doomed.is_empty() {
            return;
        }
        #[cfg(any(test, feature = "sim"))]
        for seg in &doomed {
            super::sim_disk::note(|| format!("  delete segment {}", seg.base_offset));
        }
        let bases: Vec<i64> = doomed.iter().map(|s| s.base_offset).collect();
        // Open files stay readable by readers holding them (unlinked inode).
        drop(doomed);
        let dir = self.dir.clone();
        super::index::off_shard(move || {
            for base in bases {
                delete_segment_files(&dir, base);
            }
        })
        .await;
    }

    /// Forget producers idle for `expiration_ms` (see
    /// `ProducerStates::expire`); the next snapshot leaves them out.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.inner
            .borrow_mut()
            .producers
            .expire(now_ms, expiration_ms)
    }

    /// Apply `retention.ms` and `retention.bytes`: delete whole sealed
    /// segments from the front. Rolls an expired active segment first so that
    /// an idle topic's data still ages out. Returns segments deleted.
    pub async fn enforce_retention(&self) -> Result<usize, LogError> {
        let config = self.config();
        if !config.cleanup_delete {
            return Ok(0);
        }
        let now = self.clock.now_ms();
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
            let _permit = self.append_lock.lock().await;
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
            // Never past what consumers may see (the flusher seals a segment
            // a moment before it raises the high watermark over it).
            new_start.map(|s: i64| s.min(inner.offsets.high_watermark()))
        };
        let Some(new_start) = new_start else {
            return Ok(0);
        };
        let before = self.inner.borrow().segments.len();
        {
            let mut inner = self.inner.borrow_mut();
            if inner.offsets.advance_log_start(new_start) {
                inner.cache.drop_before(new_start);
                inner.epochs.truncate_from_start(new_start);
            }
        }
        self.persist_log_start().await?;
        self.persist_epochs_after_start_moved().await;
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
}

/// Unlink a deleted segment's files: data, indexes and producer snapshot
/// (blocks; a file already gone is fine).
fn delete_segment_files(dir: &Path, base: i64) {
    crate::blocking::assert_not_shard("deleting segment files");
    for ext in ["index", "timeindex", "txnindex", "log", "snapshot"] {
        let p = dir.join(segment_file_name(base, ext));
        if let Err(e) = std::fs::remove_file(&p) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!("removing {}: {e}", p.display());
            }
        }
    }
}

/// The persisted log start, if any (blocks).
pub(super) fn read_log_start(dir: &Path) -> Option<i64> {
    crate::blocking::assert_not_shard("reading the log start file");
    std::fs::read_to_string(dir.join(LOG_START_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
}

pub(super) fn write_log_start(dir: &Path, offset: i64) -> std::io::Result<()> {
    super::reserve::write_durably_or_release(
        &dir.join(LOG_START_FILE),
        offset.to_string().as_bytes(),
    )
}
