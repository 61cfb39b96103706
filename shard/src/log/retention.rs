//! Deleting data: retention by time and size, DeleteRecords, and the
//! persisted log start offset. Only whole sealed segments are removed, off
//! the request path.

use std::path::Path;

use super::error::LogError;
use super::partition::{now_ms, PartitionLog};
use super::segment::{segment_file_name, Segment};

const LOG_START_FILE: &str = "log-start-offset";

impl PartitionLog {
    /// DeleteRecords: make `offset` the new log start (-1 = high watermark).
    /// As in Kafka, an offset beyond the high watermark is out of range.
    /// Works on a full disk: the checkpoint is small and may use the disk
    /// reserve, and whole segments are removed without writing anything.
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64, LogError> {
        let new_start = {
            let mut inner = self.inner.borrow_mut();
            let hwm = inner.high_watermark;
            let target = if offset == -1 { hwm } else { offset };
            if target < 0 || target > hwm {
                return Err(LogError::OffsetOutOfRange {
                    offset,
                    log_start: inner.log_start_offset,
                    log_end: hwm,
                });
            }
            if target > inner.log_start_offset {
                inner.log_start_offset = target;
                inner.cache.drop_before(target);
            }
            inner.check_watermarks();
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
            new_start.map(|s: i64| s.min(inner.high_watermark))
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
}

pub(super) fn read_log_start(dir: &Path) -> Option<i64> {
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
