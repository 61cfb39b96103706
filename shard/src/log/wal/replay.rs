//! Startup: redo what the rings hold after their last checkpoints, before
//! any partition is opened, and prepare one ring per shard.
//!
//! Runs on the main thread before the shards start (plain blocking file
//! I/O is right here: nothing else is running). The ring is read whole;
//! the newest valid frame names the checkpoint; the frames from there on
//! are followed by LSN while each is whole and where expected (a torn last
//! frame ends the chain: it was never acknowledged). Each entry's bytes are
//! written back at their position in their segment file, then every file
//! touched is synced. Redoing is idempotent: the same bytes land again.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use super::frame::{self, FrameHeader, PAGE};

/// Smallest ring accepted: a frame must fit in half of it.
pub const MIN_RING_BYTES: u64 = 1 << 20;

pub fn wal_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("wal")
}

pub fn ring_path(data_dir: &Path, shard: usize) -> PathBuf {
    wal_dir(data_dir).join(format!("shard-{shard}.ring"))
}

/// What startup redid, for its log line and the tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayStats {
    pub rings: usize,
    pub frames: usize,
    pub entries: usize,
    pub bytes: u64,
    /// Entries whose partition directory no longer exists (deleted).
    pub skipped: usize,
}

/// The frames of one ring that are to be redone, in order.
#[derive(Debug)]
pub struct Walk {
    /// `(header, offset of the frame in the ring)`.
    pub frames: Vec<(FrameHeader, usize)>,
    /// Where the next frame goes.
    pub next_lsn: u64,
    /// Set when the chain ends before the newest valid frame: a frame in
    /// the middle is damaged (not a torn write, which is always the last).
    pub damaged_at: Option<u64>,
}

/// Find the chain of frames to redo in a ring's bytes.
pub fn walk(ring: &[u8]) -> Walk {
    let size = ring.len() as u64;
    assert!(size.is_multiple_of(PAGE as u64), "ring of whole pages");
    let valid_at = |off: usize, lsn: Option<u64>| -> Option<FrameHeader> {
        let h = frame::parse_header(&ring[off..])?;
        if h.lsn % size != off as u64 || lsn.is_some_and(|l| l != h.lsn) {
            return None;
        }
        if off as u64 + h.frame_len() > size {
            return None;
        }
        frame::body(&ring[off..], &h).map(|_| h)
    };
    let newest = (0..ring.len())
        .step_by(PAGE)
        .filter_map(|off| valid_at(off, None))
        .max_by_key(|h| h.lsn);
    let Some(newest) = newest else {
        return Walk {
            frames: Vec::new(),
            next_lsn: 0,
            damaged_at: None,
        };
    };
    let end = newest.lsn + newest.frame_len();
    let mut frames = Vec::new();
    let mut lsn = newest.checkpoint;
    while lsn < end {
        let off = (lsn % size) as usize;
        let Some(h) = valid_at(off, Some(lsn)) else {
            break;
        };
        frames.push((h, off));
        lsn = if h.is_wrap() {
            (lsn / size + 1) * size
        } else {
            lsn + h.frame_len()
        };
    }
    Walk {
        frames,
        next_lsn: lsn.max(end),
        damaged_at: (lsn < end).then_some(lsn),
    }
}

/// A relative segment path from a frame, checked to stay inside the data
/// directory.
fn segment_path(data_dir: &Path, rel: &[u8]) -> Option<PathBuf> {
    let rel = Path::new(std::str::from_utf8(rel).ok()?);
    let normal = rel.components().all(|c| matches!(c, Component::Normal(_)));
    (normal && rel.components().count() >= 2).then(|| data_dir.join(rel))
}

/// Redo the frames of `walk` from `ring` into the segment files under
/// `data_dir`; the files written are synced before this returns.
fn redo(data_dir: &Path, ring: &[u8], walk: &Walk, stats: &mut ReplayStats) -> std::io::Result<()> {
    let mut files: BTreeMap<PathBuf, File> = BTreeMap::new();
    for (h, off) in &walk.frames {
        stats.frames += 1;
        let body = frame::body(&ring[*off..], h).expect("walked frames are whole");
        let entries = frame::entries(body, h.entries).map_err(|e| {
            std::io::Error::other(format!("write-ahead frame at LSN {}: {e}", h.lsn))
        })?;
        for e in entries {
            let Some(path) = segment_path(data_dir, e.path) else {
                return Err(std::io::Error::other(format!(
                    "write-ahead frame at LSN {}: bad segment path {:?}",
                    h.lsn,
                    String::from_utf8_lossy(e.path)
                )));
            };
            if !files.contains_key(&path) && !path.is_file() {
                // The segment (or its partition) was deleted. A frame only
                // names a segment whose creation was durable before it, so
                // nothing is lost: retention, DeleteRecords or a deletion
                // removed the file, and redoing the write would bring a
                // piece of it back.
                stats.skipped += 1;
                continue;
            }
            if !files.contains_key(&path) {
                let file = OpenOptions::new().write(true).truncate(false).open(&path)?;
                files.insert(path.clone(), file);
            }
            files[&path].write_all_at(e.data, e.pos)?;
            stats.entries += 1;
            stats.bytes += e.data.len() as u64;
        }
    }
    let mut dirs = std::collections::BTreeSet::new();
    for (path, file) in files {
        file.sync_data()?;
        if let Some(parent) = path.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    for dir in dirs {
        crate::log::index::sync_dir(&dir)?;
    }
    Ok(())
}

fn read_ring(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    // A ring is whole pages; a shorter tail (never written by us) is ignored.
    bytes.truncate(bytes.len() / PAGE * PAGE);
    Ok(bytes)
}

/// Create an empty ring of `bytes`, space reserved (its first lap allocates
/// nothing, so no ENOSPC mid-run), synced with its directory.
fn create_ring(path: &Path, bytes: u64) -> std::io::Result<()> {
    let tmp = path.with_extension("new");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    use std::os::fd::AsRawFd;
    // SAFETY: a valid descriptor and a non-negative range.
    let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, 0, bytes as libc::off_t) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOSPC) {
            return Err(std::io::Error::from_raw_os_error(libc::ENOSPC));
        }
        // A file system without fallocate: a sparse file works the same.
        file.set_len(bytes)?;
    }
    file.sync_all()?;
    std::fs::rename(&tmp, path)?;
    crate::log::index::sync_dir(path.parent().expect("a ring has a directory"))
}

/// Redo every ring under `data_dir/wal`, then leave one ring of
/// `ring_bytes` for each of `shards` (none when `ring_bytes` is 0: the
/// partitions then sync their own files). Returns each shard's next LSN,
/// `None` for a shard without a ring: when `ring_bytes` is 0, or when the
/// disk has no room for one (that shard's partitions sync their own files,
/// and a warning says so).
pub fn prepare(
    data_dir: &Path,
    shards: usize,
    ring_bytes: u64,
) -> std::io::Result<(Vec<Option<u64>>, ReplayStats)> {
    crate::blocking::assert_not_shard("replaying the write-ahead rings");
    let dir = wal_dir(data_dir);
    let mut stats = ReplayStats::default();
    let mut next: Vec<Option<u64>> = vec![None; shards];
    let mut found = Vec::new();
    if dir.is_dir() {
        for entry in std::fs::read_dir(&dir)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if let Some(n) = name
                .strip_prefix("shard-")
                .and_then(|n| n.strip_suffix(".ring"))
            {
                if let Ok(n) = n.parse::<usize>() {
                    found.push((n, path));
                }
            } else if name.ends_with(".new") {
                // An interrupted creation: never used.
                std::fs::remove_file(&path)?;
            }
        }
    }
    found.sort();
    for (shard, path) in &found {
        let ring = read_ring(path)?;
        stats.rings += 1;
        let walk = walk(&ring);
        if let Some(lsn) = walk.damaged_at {
            tracing::error!(
                "{}: damaged frame at LSN {lsn} before the newest one; redoing the {} \
                 frame(s) before it. Batches acknowledged after it may be missing",
                path.display(),
                walk.frames.len()
            );
        }
        redo(data_dir, &ring, &walk, &mut stats)?;
        let keep = *shard < shards && ring_bytes > 0 && ring.len() as u64 == ring_bytes;
        if keep {
            next[*shard] = Some(walk.next_lsn);
        } else {
            // Redone and synced above: this ring has nothing more to give.
            std::fs::remove_file(path)?;
            crate::log::index::sync_dir(&dir)?;
        }
    }
    if ring_bytes > 0 {
        assert!(ring_bytes >= MIN_RING_BYTES && ring_bytes.is_multiple_of(PAGE as u64));
        std::fs::create_dir_all(&dir)?;
        for (shard, next) in next.iter_mut().enumerate() {
            let path = ring_path(data_dir, shard);
            if path.exists() {
                continue;
            }
            match create_ring(&path, ring_bytes) {
                Ok(()) => *next = Some(0),
                Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                    let _ = std::fs::remove_file(path.with_extension("new"));
                    tracing::warn!(
                        "{}: no room for a write-ahead ring of {ring_bytes} bytes ({e}): shard {shard} runs without a write-ahead ring (each partition \
                         fdatasyncs its own segment: slower with many partitions); free \
                         space or lower log_wal_bytes",
                        path.display()
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok((next, stats))
}
