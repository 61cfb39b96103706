//! Per-partition log settings, resolved from broker defaults and topic
//! overrides by the broker before a log is opened or reconfigured.

use serde::{Deserialize, Serialize};

use crate::record::Compression;

/// When an appended batch counts as safe enough to acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// Group commit: a batch is acknowledged after the `fdatasync` that
    /// covers it; batches that arrive during one sync share the next.
    Batch,
    /// A batch is acknowledged once written to the device (it survives a
    /// process crash); `fdatasync` runs every `flush_interval_ms` or
    /// `flush_interval_bytes`, so a power loss can lose up to that much.
    Interval,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: i64,
    /// -1 keeps data forever.
    pub retention_ms: i64,
    /// -1 means no size limit.
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    pub max_message_bytes: usize,
    pub cleanup_delete: bool,
    pub cleanup_compact: bool,
    pub delete_retention_ms: i64,
    pub log_append_time: bool,
    /// CreateTime topics: a record whose timestamp is more than this before
    /// the broker's clock is refused (INVALID_TIMESTAMP); `i64::MAX`: no limit.
    pub timestamp_before_max_ms: i64,
    /// ... or more than this after it.
    pub timestamp_after_max_ms: i64,
    /// Topic `compression.type` other than `producer`: batches in another
    /// codec are recompressed to this one (`None`: stored as produced).
    pub compression: Option<Compression>,
    /// The KIP-390 level for `compression` (`None`: the codec's default).
    pub compression_level: Option<i32>,
    pub flush_mode: FlushMode,
    pub flush_interval_ms: u64,
    pub flush_interval_bytes: u64,
    /// Bytes of recent batches kept in memory per partition for tail reads.
    pub tail_cache_bytes: usize,
    /// Reserve segment space up front so appends do not extend the file.
    pub preallocate: bool,
    /// Pending bytes above this are written as several page-aligned pieces
    /// of this size (rounded down to whole pages) issued concurrently.
    pub write_chunk_bytes: usize,
    /// Most pieces of one flush in flight at once.
    pub write_queue_depth: usize,
    /// Batch mode only: a partition that keeps receiving appends waits this
    /// long before `fdatasync` so more batches share it; 0 syncs at once.
    pub group_commit_window_us: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 3 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            cleanup_delete: true,
            cleanup_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            log_append_time: false,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: i64::MAX,
            compression: None,
            compression_level: None,
            flush_mode: FlushMode::Batch,
            flush_interval_ms: 100,
            flush_interval_bytes: 1 << 20,
            tail_cache_bytes: 4 << 20,
            preallocate: true,
            write_chunk_bytes: 1 << 20,
            write_queue_depth: 4,
            group_commit_window_us: 0,
        }
    }
}
