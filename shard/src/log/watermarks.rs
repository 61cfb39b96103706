//! The offsets that bound a partition, and the one place that moves its
//! high watermark.
//!
//! ```text
//! log_start ≤ high_watermark ≤ written ≤ log_end      synced ≤ written
//! ```
//! - `log_end` (`next_offset`): the next offset to assign; batches up to it
//!   are in memory, maybe not yet on the device.
//! - `written`: below it, batches are written to the device (they survive a
//!   process crash); `synced`: below it, covered by an `fdatasync` (they
//!   survive a power loss).
//! - `high_watermark`: below it, batches are as durable as the flush mode
//!   promises (`batch`: synced, `interval`: written). It is Kafka's high
//!   watermark on one node: consumers see only what lies below it, so they
//!   never see a record that a failed write or a crash can take back, and
//!   whose offset could then be given to a different record. Acknowledged
//!   produces (`acks=1/all`) are answered when it passes their batch, so
//!   acknowledged and visible mean the same thing.
//!
//! It only grows while the log lives; a recovery in place (after a failed
//! write) starts it again at the recovered log end, which is never below
//! it (what lay below it was on the device).

use super::config::FlushMode;
use super::partition::{Inner, PartitionLog};

impl Inner {
    /// Raise the high watermark to what the flush mode makes durable.
    /// Returns true if it moved.
    pub(super) fn advance_high_watermark(&mut self, mode: FlushMode) -> bool {
        let durable = match mode {
            FlushMode::Batch => self.synced_offset,
            FlushMode::Interval => self.written_offset,
        };
        let moved = durable > self.high_watermark;
        if moved {
            self.high_watermark = durable;
        }
        self.check_watermarks();
        moved
    }

    /// The invariants above. Cheap; checked whenever an offset moves.
    pub(super) fn check_watermarks(&self) {
        assert!(
            self.log_start_offset <= self.high_watermark,
            "log start {} above high watermark {}",
            self.log_start_offset,
            self.high_watermark
        );
        assert!(
            self.high_watermark <= self.written_offset,
            "high watermark {} above written {}",
            self.high_watermark,
            self.written_offset
        );
        assert!(
            self.synced_offset <= self.written_offset,
            "synced {} above written {}",
            self.synced_offset,
            self.written_offset
        );
        assert!(
            self.written_offset <= self.next_offset,
            "written {} above log end {}",
            self.written_offset,
            self.next_offset
        );
    }
}

impl PartitionLog {
    /// After the flusher moved `written`/`synced`: raise the high watermark
    /// and wake the fetches waiting for it (appends alone never wake them).
    pub(super) fn publish_durable(&self) {
        let mode = self.config.borrow().flush_mode;
        let moved = self.inner.borrow_mut().advance_high_watermark(mode);
        if moved {
            self.data_signal.notify_all();
        }
    }
}
