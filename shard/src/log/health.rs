//! The health of the data directory, shared by every shard and the broker's
//! helper threads: free space as last measured, whether new client writes
//! are refused for low disk, and counters of storage faults.
//!
//! Plain atomics in one process-wide value, because the readers are the
//! shards' hot paths (one relaxed load per produce) and the writers are a
//! helper thread (the disk monitor) and the logs' flushers; nothing here
//! blocks or locks. The broker's metrics endpoint reads the same values.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

/// Faulted logs retry their recovery only while at least this much space
/// is free (when a disk monitor is running), so a full disk is not
/// rescanned on every produce.
pub const RECOVERY_MIN_FREE_BYTES: u64 = 1 << 20;

#[derive(Debug, Default)]
pub struct StorageHealth {
    /// A disk monitor has measured the data directory at least once.
    monitored: AtomicBool,
    total_bytes: AtomicU64,
    /// Bytes available to the broker (statvfs `f_bavail`).
    free_bytes: AtomicU64,
    /// The free-space floor in bytes (`disk_free_min_bytes`/`_percent`).
    min_free_bytes: AtomicU64,
    /// Free space is below the floor: client produce is refused.
    refusing_writes: AtomicBool,
    /// Produce batches refused because free space is below the floor.
    writes_refused: AtomicU64,
    /// Partition logs whose last write failed and that have not recovered.
    offline_partitions: AtomicI64,
    /// Failed writes, syncs and metadata persists since start.
    storage_errors: AtomicU64,
}

/// The process's storage health.
pub static HEALTH: StorageHealth = StorageHealth {
    monitored: AtomicBool::new(false),
    total_bytes: AtomicU64::new(0),
    free_bytes: AtomicU64::new(0),
    min_free_bytes: AtomicU64::new(0),
    refusing_writes: AtomicBool::new(false),
    writes_refused: AtomicU64::new(0),
    offline_partitions: AtomicI64::new(0),
    storage_errors: AtomicU64::new(0),
};

/// A space measurement and what it means for writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpaceReading {
    pub total_bytes: u64,
    pub free_bytes: u64,
    pub min_free_bytes: u64,
}

impl SpaceReading {
    pub fn below_floor(&self) -> bool {
        self.min_free_bytes > 0 && self.free_bytes < self.min_free_bytes
    }
}

impl StorageHealth {
    /// Record a measurement; returns true if writes are now refused.
    pub fn record_space(&self, r: SpaceReading) -> bool {
        self.total_bytes.store(r.total_bytes, Ordering::Relaxed);
        self.free_bytes.store(r.free_bytes, Ordering::Relaxed);
        self.min_free_bytes
            .store(r.min_free_bytes, Ordering::Relaxed);
        self.monitored.store(true, Ordering::Relaxed);
        let refuse = r.below_floor();
        self.refusing_writes.store(refuse, Ordering::Relaxed);
        refuse
    }

    /// The last measurement, if a monitor runs.
    pub fn space(&self) -> Option<SpaceReading> {
        self.monitored
            .load(Ordering::Relaxed)
            .then(|| SpaceReading {
                total_bytes: self.total_bytes.load(Ordering::Relaxed),
                free_bytes: self.free_bytes.load(Ordering::Relaxed),
                min_free_bytes: self.min_free_bytes.load(Ordering::Relaxed),
            })
    }

    /// Client writes must be refused (free space below the floor).
    pub fn refusing_writes(&self) -> bool {
        self.refusing_writes.load(Ordering::Relaxed)
    }

    /// Whether a faulted log should try to recover now: without a monitor
    /// always (its own backoff bounds the attempts), else only once space
    /// is above the floor again.
    pub fn has_room_for_recovery(&self) -> bool {
        match self.space() {
            None => true,
            Some(r) => !r.below_floor() && r.free_bytes >= RECOVERY_MIN_FREE_BYTES,
        }
    }

    pub fn count_refused_write(&self) {
        self.writes_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn writes_refused(&self) -> u64 {
        self.writes_refused.load(Ordering::Relaxed)
    }

    pub fn count_storage_error(&self) {
        self.storage_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn storage_errors(&self) -> u64 {
        self.storage_errors.load(Ordering::Relaxed)
    }

    pub(crate) fn partition_offline(&self) {
        self.offline_partitions.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn partition_online(&self) {
        self.offline_partitions.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn offline_partitions(&self) -> i64 {
        self.offline_partitions.load(Ordering::Relaxed)
    }
}

/// `ENOSPC` or `EDQUOT`: the device (or the user's quota) is full.
pub fn is_out_of_space(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}
