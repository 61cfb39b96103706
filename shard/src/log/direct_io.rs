//! Preparing a data directory for glommio's direct I/O.
//!
//! glommio decides once per block device and thread whether reads may use
//! the io_uring poll ring, by reading the first DMA file opened on that
//! device. If that first file is empty the probe read "succeeds" with zero
//! bytes, polled I/O is wrongly enabled, and every later read on devices
//! without poll queues (virtio, most VMs) fails with EOPNOTSUPP. We open a
//! small non-empty probe file first so the probe measures something real.
//! The same step reports a data directory that cannot do O_DIRECT at all
//! (tmpfs, some network filesystems) with a clear message.

use std::cell::RefCell;
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use glommio::io::DmaFile;

use super::error::LogError;

thread_local!(static PROBED: RefCell<HashSet<u64>> = RefCell::new(HashSet::new()));

const PROBE_FILE: &str = ".direct-io-probe";

/// Make sure direct I/O under `dir` works on this thread; cheap after the
/// first call per device.
/// Its file-system calls run on the blocking pool (this is on the topic
/// creation path of a shard).
pub async fn prepare_dir(dir: &Path) -> Result<(), LogError> {
    let owned = dir.to_path_buf();
    let dev = super::index::off_shard(move || -> std::io::Result<u64> {
        std::fs::create_dir_all(&owned)?;
        Ok(std::fs::metadata(&owned)?.dev())
    })
    .await?;
    if PROBED.with(|p| p.borrow().contains(&dev)) {
        return Ok(());
    }
    let owned = dir.to_path_buf();
    let probe = super::index::off_shard(move || find_or_write_probe(&owned)).await?;
    let outcome = async {
        let file = DmaFile::open(&probe).await?;
        let read = file.read_at(0, 4096).await?;
        if read.len() != 4096 {
            return Err(std::io::Error::other(format!(
                "probe read returned {} bytes",
                read.len()
            )));
        }
        file.close().await?;
        Ok::<_, std::io::Error>(())
    }
    .await;
    if probe
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(PROBE_FILE))
    {
        super::index::off_shard(move || {
            let _ = std::fs::remove_file(&probe);
        })
        .await;
    }
    outcome.map_err(|e| {
        LogError::Storage(format!(
            "direct I/O (O_DIRECT through io_uring) does not work in {}: {e}; \
             use a data directory on a local filesystem such as ext4 or xfs (not tmpfs)",
            dir.display()
        ))
    })?;
    PROBED.with(|p| p.borrow_mut().insert(dev));
    Ok(())
}

/// An existing non-empty file (a segment) serves as the probe, so that a
/// broker can start on a full disk; else a probe file is written. Not a
/// write-ahead ring: its space is reserved but may never have been written,
/// and a read of unwritten space never reaches the device.
fn find_or_write_probe(dir: &Path) -> std::io::Result<std::path::PathBuf> {
    let existing = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_none_or(|x| x != "ring"))
        .filter(|e| !e.file_name().to_string_lossy().starts_with(PROBE_FILE))
        .find(|e| e.metadata().is_ok_and(|m| m.is_file() && m.len() >= 4096))
        .map(|e| e.path());
    match existing {
        Some(path) => Ok(path),
        None => {
            // Named uniquely: two shards probing the same directory
            // at once (the write-ahead rings' `wal/`) must not remove each
            // other's probe.
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let probe = dir.join(format!("{PROBE_FILE}-{}-{n}", std::process::id()));
            std::fs::write(&probe, vec![0u8; 4096])?;
            Ok(probe)
        }
    }
}
