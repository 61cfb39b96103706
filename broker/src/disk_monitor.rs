//! The disk monitor: a helper thread (not a shard) that measures the data
//! directory's filesystem with `statvfs` every `CHECK_INTERVAL` and
//! publishes the result in `shard::log::health::HEALTH`, where the shards
//! read it with one relaxed atomic load per produce.
//!
//! Why a thread and a period: free space has no event to wait for, and a
//! `statvfs` per request would be a blocking syscall on a shard's hot path.
//! Twice a second costs nothing and bounds how far a produce burst can run
//! past the floor (a 1 GB/s device writes 500 MB in that time; raise the
//! default 256 MiB floor on fast devices).
//!
//! It logs each transition across the floor once (not per request), and
//! re-creates the disk reserve once there is room for it again.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shard::log::health::{SpaceReading, HEALTH};

pub const CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// The free-space floor for a filesystem of `total` bytes.
pub fn floor_bytes(total: u64, min_bytes: u64, min_percent: f64) -> u64 {
    let by_percent = (total as f64 * min_percent / 100.0) as u64;
    min_bytes.max(by_percent)
}

/// Total and available bytes of the filesystem holding `dir`.
pub fn measure(dir: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::other("path holds a NUL byte"))?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` is a valid out-pointer.
    if unsafe { libc::statvfs(path.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let frag = st.f_frsize as u64;
    Ok((st.f_blocks as u64 * frag, st.f_bavail as u64 * frag))
}

pub struct DiskMonitor {
    dir: PathBuf,
    min_bytes: u64,
    min_percent: f64,
}

impl DiskMonitor {
    pub fn new(dir: PathBuf, min_bytes: u64, min_percent: f64) -> Self {
        Self {
            dir,
            min_bytes,
            min_percent,
        }
    }

    /// Measure once and publish; returns the reading.
    pub fn check(&self, was_refusing: bool) -> std::io::Result<SpaceReading> {
        let (total, free) = measure(&self.dir)?;
        let reading = SpaceReading {
            total_bytes: total,
            free_bytes: free,
            min_free_bytes: floor_bytes(total, self.min_bytes, self.min_percent),
        };
        let refusing = HEALTH.record_space(reading);
        if refusing && !was_refusing {
            tracing::error!(
                "disk {}: {} bytes free of {}, below the floor of {} bytes \
                 (disk_free_min_bytes / disk_free_min_percent): produce requests are refused \
                 with KAFKA_STORAGE_ERROR until space is freed (delete topics or records, \
                 shorten retention); reads, deletes and group commits go on",
                self.dir.display(),
                reading.free_bytes,
                reading.total_bytes,
                reading.min_free_bytes
            );
        } else if !refusing && was_refusing {
            tracing::info!(
                "disk {}: {} bytes free, above the floor of {} bytes again: produce accepted",
                self.dir.display(),
                reading.free_bytes,
                reading.min_free_bytes
            );
        }
        shard::log::reserve::restore(reading.free_bytes.saturating_sub(reading.min_free_bytes));
        Ok(reading)
    }

    /// Measure now (so start-up already knows), then every `CHECK_INTERVAL`
    /// on a thread of its own for the life of the process.
    pub fn start(self) -> std::io::Result<()> {
        let first = self.check(false)?;
        tracing::info!(
            "disk {}: {} bytes free of {}; produce is refused below {} bytes",
            self.dir.display(),
            first.free_bytes,
            first.total_bytes,
            first.min_free_bytes
        );
        std::thread::Builder::new()
            .name("disk-monitor".into())
            .spawn(move || {
                let mut refusing = first.below_floor();
                let mut failing = false;
                loop {
                    std::thread::sleep(CHECK_INTERVAL);
                    match self.check(refusing) {
                        Ok(r) => {
                            refusing = r.below_floor();
                            failing = false;
                        }
                        Err(e) if !failing => {
                            failing = true;
                            tracing::warn!("disk {}: statvfs failed: {e}", self.dir.display());
                        }
                        Err(_) => {}
                    }
                }
            })?;
        Ok(())
    }
}

/// Start-up: the disk reserve, the disk monitor and (if configured) the
/// admin listener (`/metrics`, `/health`), all off the shard threads.
pub fn start_storage_services(config: &crate::config::BrokerConfig) -> anyhow::Result<()> {
    use anyhow::Context;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    shard::log::reserve::init(&config.data_dir, config.disk_reserve_bytes);
    DiskMonitor::new(
        config.data_dir.clone(),
        config.disk_free_min_bytes,
        config.disk_free_min_percent,
    )
    .start()
    .with_context(|| format!("measuring free space of {}", config.data_dir.display()))?;
    crate::admin::start(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_larger_of_bytes_and_percent() {
        assert_eq!(floor_bytes(1000, 0, 0.0), 0);
        assert_eq!(floor_bytes(1000, 100, 5.0), 100);
        assert_eq!(floor_bytes(10_000, 100, 5.0), 500);
    }

    #[test]
    fn measures_a_real_filesystem() {
        let (total, free) = measure(Path::new(env!("CARGO_MANIFEST_DIR"))).unwrap();
        assert!(total > 0 && free <= total);
        assert!(measure(Path::new("/no/such/dir")).is_err());
    }
}
