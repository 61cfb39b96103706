//! A reserve of disk space (a "ballast" file in the data directory) given
//! back when a small metadata write finds the disk full, so that the writes
//! that free space — DeleteTopics persisting the cluster metadata,
//! DeleteRecords persisting the new log start offset — still succeed on a
//! full disk. The disk monitor re-creates it once there is room again.
//!
//! The state is one atomic so that a shard (releasing) and the monitor
//! thread (re-creating) never both touch the file, and nobody waits.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

use super::health::{is_out_of_space, HEALTH};

const ABSENT: u8 = 0;
const PRESENT: u8 = 1;
/// Being created or removed by someone: leave it alone.
const BUSY: u8 = 2;

struct Reserve {
    path: PathBuf,
    bytes: u64,
}

static RESERVE: OnceLock<Reserve> = OnceLock::new();
static STATE: AtomicU8 = AtomicU8::new(ABSENT);

/// Name of the reserve file in the data directory. It cannot collide with
/// a partition directory, which always ends in `-<partition number>`.
pub const RESERVE_FILE: &str = "disk-reserve.ballast";

/// Set up the reserve (once per process). One left by the previous run is
/// kept; else the disk monitor creates it once it has measured the room.
pub fn init(data_dir: &Path, bytes: u64) {
    let path = data_dir.join(RESERVE_FILE);
    if bytes == 0 {
        let _ = std::fs::remove_file(&path);
        return;
    }
    let kept = std::fs::metadata(&path).is_ok_and(|m| m.len() >= bytes);
    if !kept {
        let _ = std::fs::remove_file(&path);
    }
    if RESERVE.set(Reserve { path, bytes }).is_ok() && kept {
        STATE.store(PRESENT, Ordering::Release);
    }
}

/// Bytes the reserve holds when present (0 when none is configured).
pub fn size() -> u64 {
    RESERVE.get().map_or(0, |r| r.bytes)
}

pub fn present() -> bool {
    STATE.load(Ordering::Relaxed) == PRESENT
}

/// Re-create a missing reserve if `free_bytes` leaves room for it (called
/// by the disk monitor). Returns true if it was created.
pub fn restore(free_bytes: u64) -> bool {
    let Some(r) = RESERVE.get() else {
        return false;
    };
    if free_bytes < r.bytes.saturating_mul(2) {
        return false;
    }
    if STATE
        .compare_exchange(ABSENT, BUSY, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    match create(&r.path, r.bytes) {
        Ok(()) => {
            STATE.store(PRESENT, Ordering::Release);
            tracing::info!(
                "disk reserve {} ({} bytes) in place",
                r.path.display(),
                r.bytes
            );
            true
        }
        Err(e) => {
            let _ = std::fs::remove_file(&r.path);
            STATE.store(ABSENT, Ordering::Release);
            tracing::warn!("creating the disk reserve {}: {e}", r.path.display());
            false
        }
    }
}

fn create(path: &Path, bytes: u64) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    // SAFETY: a valid descriptor; fallocate reserves real blocks, so the
    // space counts as used until the file is removed.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, bytes as libc::off_t) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if is_out_of_space(&e) || e.raw_os_error() != Some(libc::EOPNOTSUPP) {
            return Err(e);
        }
        // A filesystem without fallocate: write zeros instead.
        let zeros = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(zeros.len() as u64) as usize;
            f.write_all(&zeros[..n])?;
            left -= n as u64;
        }
    }
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Give the reserve back to the filesystem. Returns true if it was freed.
pub fn release() -> bool {
    let Some(r) = RESERVE.get() else {
        return false;
    };
    if STATE
        .compare_exchange(PRESENT, BUSY, Ordering::AcqRel, Ordering::Relaxed)
        .is_err()
    {
        return false;
    }
    let freed = std::fs::remove_file(&r.path).is_ok();
    STATE.store(ABSENT, Ordering::Release);
    if freed {
        tracing::warn!(
            "disk full: released the {}-byte disk reserve {} so metadata can be written; \
             it is re-created once there is room",
            r.bytes,
            r.path.display()
        );
    }
    freed
}

/// `write_durably`, releasing the reserve and trying once more if the disk
/// is full. For the small writes that must succeed to free space.
pub fn write_durably_or_release(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    match super::index::write_durably(path, bytes) {
        Err(e) if is_out_of_space(&e) && release() => {
            super::index::write_durably(path, bytes).inspect_err(|_| HEALTH.count_storage_error())
        }
        Err(e) => {
            HEALTH.count_storage_error();
            Err(e)
        }
        Ok(()) => Ok(()),
    }
}
