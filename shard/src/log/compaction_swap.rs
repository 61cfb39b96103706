//! The compaction swap's file operations (steps 2–4 of `compaction.rs`'s
//! module doc) and [`recover_leftovers`], which finishes or rolls back a
//! swap a crash interrupted. Everything here blocks (renames, unlinks,
//! directory fsyncs) and runs on the blocking pool; only the scan of a swap
//! file, through io_uring, runs on the shard.

use std::path::Path;

use glommio::io::DmaFile;

use super::super::error::LogError;
use super::super::segment::{scan, segment_file_name};
use super::{STAGING_DIR, SWAP_EXT};

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    crate::blocking::assert_not_shard("syncing a directory");
    std::fs::File::open(dir)?.sync_all()
}

fn remove_if_present(path: &Path) -> std::io::Result<()> {
    crate::blocking::assert_not_shard("removing a segment file");
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Remove a segment's index files, and with `whole` its data and snapshot.
fn remove_segment_files(dir: &Path, base: i64, whole: bool) -> std::io::Result<()> {
    let mut exts = vec!["index", "timeindex", "txnindex"];
    if whole {
        exts.extend(["log", "snapshot"]);
    }
    for ext in exts {
        remove_if_present(&dir.join(segment_file_name(base, ext)))?;
    }
    Ok(())
}

/// Steps 2–4 of the swap (the module doc), for the group starting at
/// `bases[0]`; indexes are written by the caller.
/// Blocks: run on the blocking pool.
pub(super) fn swap_in_files(dir: &Path, bases: &[i64], staged: &Path) -> std::io::Result<()> {
    crate::blocking::assert_not_shard("the compaction swap");
    let first = bases[0];
    let swap = dir.join(segment_file_name(first, SWAP_EXT));
    std::fs::rename(staged, &swap)?;
    sync_dir(dir)?;
    remove_segment_files(dir, first, false)?;
    for &b in &bases[1..] {
        remove_segment_files(dir, b, true)?;
    }
    sync_dir(dir)?;
    std::fs::rename(&swap, dir.join(segment_file_name(first, "log")))?;
    sync_dir(dir)
}

fn list_bases(dir: &Path, suffix: &str) -> std::io::Result<Vec<i64>> {
    crate::blocking::assert_not_shard("listing segment files");
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(suffix)?.parse().ok())
        .collect();
    bases.sort_unstable();
    Ok(bases)
}

/// Finish or roll back a compaction a crash interrupted (see the module
/// doc). Run before the segments of `dir` are opened. The directory work
/// runs on the blocking pool; only the scan of a swap file (io_uring) runs
/// here.
pub async fn recover_leftovers(dir: &Path) -> Result<(), LogError> {
    let owned = dir.to_path_buf();
    let (swaps, olds) = super::super::index::off_shard(move || find_leftovers(&owned)).await?;
    for first in swaps {
        let swap = dir.join(segment_file_name(first, SWAP_EXT));
        let file = DmaFile::open(&swap).await?;
        let len = file.file_size().await?;
        let outcome = scan(&file, len, first, |_, _| {}).await?;
        file.close().await?;
        tracing::info!(
            "{}: finishing an interrupted compaction (offsets {first}..{})",
            dir.display(),
            outcome.next_offset
        );
        // Old segments starting inside the cleaned range are replaced by it;
        // later ones (all of whose records were superseded) may stay.
        let replaced: Vec<i64> = olds
            .iter()
            .copied()
            .filter(|&b| b > first && b < outcome.next_offset)
            .collect();
        let owned = dir.to_path_buf();
        super::super::index::off_shard(move || finish_swap(&owned, first, &replaced)).await?;
    }
    Ok(())
}

/// Roll back a staged clean (delete `.cleaner`) and list the swaps to
/// finish, with the bases of every old segment file (blocks).
fn find_leftovers(dir: &Path) -> std::io::Result<(Vec<i64>, Vec<i64>)> {
    crate::blocking::assert_not_shard("recovering compaction leftovers");
    let staging = dir.join(STAGING_DIR);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let swaps = list_bases(dir, &format!(".{SWAP_EXT}"))?;
    if swaps.is_empty() {
        return Ok((swaps, Vec::new()));
    }
    let mut olds = list_bases(dir, ".log")?;
    olds.extend(list_bases(dir, ".index")?);
    olds.extend(list_bases(dir, ".timeindex")?);
    olds.sort_unstable();
    olds.dedup();
    Ok((swaps, olds))
}

/// Steps 3 and 4 of the swap at `first`, for an interrupted one: delete the
/// old segments it replaced and its own old indexes, then rename it in
/// (blocks).
fn finish_swap(dir: &Path, first: i64, replaced: &[i64]) -> std::io::Result<()> {
    for &b in replaced {
        remove_segment_files(dir, b, true)?;
    }
    remove_segment_files(dir, first, false)?;
    sync_dir(dir)?;
    let swap = dir.join(segment_file_name(first, SWAP_EXT));
    std::fs::rename(&swap, dir.join(segment_file_name(first, "log")))?;
    sync_dir(dir)
}
