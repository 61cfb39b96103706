//! How the cost of making N partitions' appends durable grows with N: the
//! measurement behind the flusher's commit path (issue 13).
//!
//! A shard with N partitions receiving a produce request that touches all
//! of them has N segment files to make durable before it can answer. Each
//! round here appends 4 KiB to each of N files (growing them, as segments
//! grow: extent conversion and a new size to journal) and then makes them
//! durable one of three ways:
//! - `serial`: one `fdatasync` after another (N device flushes in a row);
//! - `concurrent`: every `fdatasync` submitted at once through io_uring, so
//!   the filesystem's journal commit and the block layer's flush machinery
//!   can merge them;
//! - `syncfs`: one `syncfs(2)` of the filesystem (on the blocking pool),
//!   one journal commit and one flush for all of them;
//! - `overwrite`: as `concurrent`, but into blocks written before (files
//!   filled once at the start): no extent conversion and no new size, so
//!   each `fdatasync` is only a device cache flush, and the block layer
//!   merges concurrent flushes;
//! - `overwrite-syncfs`: those written blocks, and one `syncfs`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use shard::io_probe::ScratchFile;

/// Files per round measured by `shardline iotune`.
pub const FANOUT_FILES: [usize; 3] = [1, 8, 64];

const APPEND: usize = 4 << 10;
/// Pieces of the `overwrite` modes' first fill.
const FILL: usize = 256 << 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    Serial,
    Concurrent,
    Syncfs,
    Overwrite,
    OverwriteSyncfs,
}

pub const SYNC_MODES: [SyncMode; 5] = [
    SyncMode::Serial,
    SyncMode::Concurrent,
    SyncMode::Syncfs,
    SyncMode::Overwrite,
    SyncMode::OverwriteSyncfs,
];

impl SyncMode {
    pub fn name(self) -> &'static str {
        match self {
            SyncMode::Serial => "serial",
            SyncMode::Concurrent => "concurrent",
            SyncMode::Syncfs => "syncfs",
            SyncMode::Overwrite => "overwrite",
            SyncMode::OverwriteSyncfs => "overwrite-syncfs",
        }
    }
}

/// One (files, mode) case: the time of a whole round (appends + syncs).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FanoutResult {
    pub files: usize,
    pub mode: SyncMode,
    pub round_p50_us: u64,
    pub round_p99_us: u64,
}

/// Run every case on fresh scratch files in `dir`; they are removed after.
/// Appends wrap at `span` bytes per file (a multiple of 256 KiB), so a long
/// run does not fill the disk; `pattern` holds at least 256 KiB.
pub async fn measure(
    dir: &Path,
    pattern: &[u8],
    span: u64,
    duration: Duration,
) -> Result<Vec<FanoutResult>> {
    assert!(pattern.len() >= FILL && span.is_multiple_of(FILL as u64) && span > 0);
    let mut out = Vec::new();
    for files in FANOUT_FILES {
        for mode in SYNC_MODES {
            let paths: Vec<_> = (0..files)
                .map(|i| dir.join(format!(".iotune-fanout-{i}")))
                .collect();
            let outcome = case(dir, &paths, mode, pattern, span, duration).await;
            for p in &paths {
                let _ = std::fs::remove_file(p);
            }
            let (p50, p99) = outcome?;
            out.push(FanoutResult {
                files,
                mode,
                round_p50_us: p50,
                round_p99_us: p99,
            });
        }
    }
    Ok(out)
}

async fn case(
    dir: &Path,
    paths: &[std::path::PathBuf],
    mode: SyncMode,
    pattern: &[u8],
    span: u64,
    duration: Duration,
) -> Result<(u64, u64)> {
    let mut files = Vec::with_capacity(paths.len());
    for p in paths {
        let f = ScratchFile::create(p)
            .await
            .with_context(|| format!("opening {}", p.display()))?;
        // As a segment: extents reserved, the size grows with each write.
        f.reserve(span).await.context("fallocate")?;
        if matches!(mode, SyncMode::Overwrite | SyncMode::OverwriteSyncfs) {
            for pos in (0..span).step_by(FILL) {
                f.write_at(&pattern[..FILL], pos).await.context("filling")?;
            }
            f.fdatasync().await.context("fdatasync")?;
        }
        files.push(f);
    }
    let outcome = rounds(dir, &files, mode, pattern, span, duration).await;
    for f in files {
        f.close().await?;
    }
    outcome
}

async fn rounds(
    dir: &Path,
    files: &[ScratchFile],
    mode: SyncMode,
    pattern: &[u8],
    span: u64,
    duration: Duration,
) -> Result<(u64, u64)> {
    let mut lat = Vec::new();
    let mut pos = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration || lat.len() < 5 {
        let t = Instant::now();
        for r in
            futures::future::join_all(files.iter().map(|f| f.write_at(&pattern[..APPEND], pos)))
                .await
        {
            r.context("scratch write")?;
        }
        match mode {
            SyncMode::Serial => {
                for f in files {
                    f.fdatasync().await.context("fdatasync")?;
                }
            }
            SyncMode::Concurrent | SyncMode::Overwrite => {
                for r in futures::future::join_all(files.iter().map(|f| f.fdatasync())).await {
                    r.context("fdatasync")?;
                }
            }
            SyncMode::Syncfs | SyncMode::OverwriteSyncfs => {
                let dir = dir.to_path_buf();
                shard::blocking::run(move || syncfs(&dir))
                    .await
                    .context("syncfs")?;
            }
        }
        lat.push(t.elapsed().as_micros() as u64);
        pos += APPEND as u64;
        if pos + APPEND as u64 > span {
            pos = 0;
        }
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Ok((pct(0.5), pct(0.99)))
}

/// `syncfs(2)` of the filesystem holding `dir` (blocks: run it off the
/// executor).
fn syncfs(dir: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let d = std::fs::File::open(dir)?;
    // SAFETY: a valid descriptor, owned by `d` for the call's duration.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
