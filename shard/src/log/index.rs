//! Sparse per-segment indexes, kept in memory and written beside a segment
//! when it is sealed (`.index`, `.timeindex`).
//!
//! The offset index maps a relative offset to the byte position of the batch
//! that starts there, one entry per `index.interval.bytes` of log; the time
//! index maps a running maximum timestamp to the first offset at which it was
//! reached. Lookups find the last entry at or before the target, and the
//! reader scans forward from there.

use std::io::{Read, Write};
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

#[derive(Debug, Default, Clone)]
pub struct OffsetIndex {
    entries: Vec<OffsetEntry>,
}

impl OffsetIndex {
    pub fn push(&mut self, relative_offset: u32, position: u32) {
        if let Some(last) = self.entries.last() {
            // Entries must grow in both coordinates or lookups break.
            if relative_offset <= last.relative_offset || position <= last.position {
                return;
            }
        }
        self.entries.push(OffsetEntry {
            relative_offset,
            position,
        });
    }

    /// Byte position to start scanning from for `relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> u32 {
        self.lookup_entry(relative_offset).1
    }

    /// The entry to start scanning from for `relative_offset`: (relative
    /// offset of the batch there, its position); (0, 0) before the first.
    pub fn lookup_entry(&self, relative_offset: u32) -> (u32, u32) {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        if idx == 0 {
            (0, 0)
        } else {
            let e = self.entries[idx - 1];
            (e.relative_offset, e.position)
        }
    }

    /// Split the bytes `start..end` into contiguous `(position, length)`
    /// pieces of about `piece` bytes that each start where a batch starts
    /// (an indexed position), so they can be read at the same time and
    /// checked one by one. Where no indexed position falls within `piece`
    /// bytes of a piece's start, that piece is longer.
    pub fn split_at_batches(&self, start: u64, end: u64, piece: usize) -> Vec<(u64, usize)> {
        assert!(piece > 0 && start <= end);
        let mut pieces = Vec::with_capacity(((end - start) as usize / piece) + 1);
        let mut from = start;
        while end - from > piece as u64 {
            let target = from + piece as u64;
            let idx = self
                .entries
                .partition_point(|e| u64::from(e.position) <= target);
            let cut = match idx
                .checked_sub(1)
                .map(|i| u64::from(self.entries[i].position))
            {
                Some(p) if p > from => p,
                // The next indexed position after `target`, if any.
                _ => match self.entries.get(idx).map(|e| u64::from(e.position)) {
                    Some(p) if p < end => p,
                    _ => break,
                },
            };
            pieces.push((from, (cut - from) as usize));
            from = cut;
        }
        if end > from {
            pieces.push((from, (end - from) as usize));
        }
        pieces
    }

    /// Drop entries at or beyond `position` (log truncated there).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.entries.truncate(keep);
    }

    pub fn entries(&self) -> &[OffsetEntry] {
        &self.entries
    }

    /// The file's bytes (big-endian relative offset, position).
    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * 8);
        for e in &self.entries {
            buf.extend_from_slice(&e.relative_offset.to_be_bytes());
            buf.extend_from_slice(&e.position.to_be_bytes());
        }
        buf
    }

    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        write_durably(path, &self.encode())
    }

    pub fn read_from(path: &Path) -> std::io::Result<Self> {
        let buf = read_all(path)?;
        if buf.len() % 8 != 0 {
            return Err(invalid(path, "offset index length is not a multiple of 8"));
        }
        let mut index = Self::default();
        for chunk in buf.chunks_exact(8) {
            let rel = u32::from_be_bytes(chunk[0..4].try_into().expect("4"));
            let pos = u32::from_be_bytes(chunk[4..8].try_into().expect("4"));
            let before = index.entries.len();
            index.push(rel, pos);
            if index.entries.len() == before {
                return Err(invalid(path, "offset index entries are not increasing"));
            }
        }
        Ok(index)
    }
}

#[derive(Debug, Default, Clone)]
pub struct TimeIndex {
    entries: Vec<TimeEntry>,
}

impl TimeIndex {
    /// Record that `timestamp` (a new running maximum) is first reached at
    /// `relative_offset`; ignored unless it grows.
    pub fn push(&mut self, timestamp: i64, relative_offset: u32) {
        if let Some(last) = self.entries.last() {
            if timestamp <= last.timestamp || relative_offset < last.relative_offset {
                return;
            }
        }
        self.entries.push(TimeEntry {
            timestamp,
            relative_offset,
        });
    }

    /// Relative offset to start searching from for the first record with a
    /// timestamp >= `timestamp`: the last entry whose timestamp is smaller.
    pub fn lookup(&self, timestamp: i64) -> u32 {
        let idx = self.entries.partition_point(|e| e.timestamp < timestamp);
        if idx == 0 {
            0
        } else {
            self.entries[idx - 1].relative_offset
        }
    }

    pub fn max_timestamp(&self) -> Option<i64> {
        self.entries.last().map(|e| e.timestamp)
    }

    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.entries.truncate(keep);
    }

    /// The file's bytes (big-endian timestamp, relative offset).
    pub fn encode(&self) -> Vec<u8> {
        self.encode_with(None)
    }

    /// The file's bytes with `last` (timestamp, relative offset) appended
    /// when it would be pushed (it grows the maximum), without keeping it.
    pub fn encode_with(&self, last: Option<(i64, u32)>) -> Vec<u8> {
        let extra = last.filter(|&(ts, rel)| {
            self.entries
                .last()
                .is_none_or(|e| ts > e.timestamp && rel >= e.relative_offset)
        });
        let mut buf = Vec::with_capacity((self.entries.len() + 1) * 12);
        let all = self
            .entries
            .iter()
            .map(|e| (e.timestamp, e.relative_offset))
            .chain(extra);
        for (ts, rel) in all {
            buf.extend_from_slice(&ts.to_be_bytes());
            buf.extend_from_slice(&rel.to_be_bytes());
        }
        buf
    }

    /// Entries held (for tests of how sparse the index is).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn write_to(&self, path: &Path) -> std::io::Result<()> {
        write_durably(path, &self.encode())
    }

    pub fn read_from(path: &Path) -> std::io::Result<Self> {
        let buf = read_all(path)?;
        if buf.len() % 12 != 0 {
            return Err(invalid(path, "time index length is not a multiple of 12"));
        }
        let mut index = Self::default();
        for chunk in buf.chunks_exact(12) {
            let ts = i64::from_be_bytes(chunk[0..8].try_into().expect("8"));
            let rel = u32::from_be_bytes(chunk[8..12].try_into().expect("4"));
            index.entries.push(TimeEntry {
                timestamp: ts,
                relative_offset: rel,
            });
        }
        Ok(index)
    }
}

fn invalid(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    crate::blocking::assert_not_shard("reading an index file");
    let mut buf = Vec::new();
    std::fs::File::open(path)?.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Write to a temporary name, fsync, rename, fsync the directory: a reader
/// sees the old file or the whole new one, never half of it, and the new
/// one survives a crash once this returns.
pub fn write_durably(path: &Path, data: &[u8]) -> std::io::Result<()> {
    write_durably_with_mode(path, data, 0o644)
}

/// `write_durably` for secrets: the file is created with `mode` (e.g. 0600)
/// before any byte is written, so it is never readable by others.
pub fn write_durably_with_mode(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    crate::blocking::assert_not_shard("write_durably");
    write_durably_here(path, data, mode)
}

/// Run `f` (which may call `write_durably`) on the executor's blocking pool
/// and await it alone (never in a select; see `crate::wake`). Under the log
/// simulation the caller's "skip device syncs" setting goes along with it.
pub async fn off_shard<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    #[cfg(any(test, feature = "sim"))]
    let skip_syncs = !real_syncs();
    super::disk::device(crate::blocking::run(move || {
        #[cfg(any(test, feature = "sim"))]
        let _guard = SkipSyncs::set(skip_syncs);
        f()
    }))
    .await
}

fn write_durably_here(path: &Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(data)?;
            if real_syncs() {
                f.sync_data()?;
            }
            Ok(())
        });
    if let Err(e) = written {
        // A half-written temporary file (a full disk) must not keep the
        // space it took.
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, path)?;
    sync_dir(parent_dir(path))
}

/// The directory holding `path`.
pub(super) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Make the entries of `dir` durable (files created or renamed in it):
/// an fsync of a file does not cover its name. Blocking.
pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(any(test, feature = "sim"))]
    super::sim_disk::dir_synced(dir);
    let dir = std::fs::File::open(dir)?;
    if real_syncs() {
        dir.sync_all()?;
    }
    Ok(())
}

/// Under the log simulation (tests), durability is what the simulated disk
/// models; these files count as durable once renamed, so skip the slow
/// device syncs. Always true in the broker.
#[inline]
fn real_syncs() -> bool {
    #[cfg(any(test, feature = "sim"))]
    if super::sim_disk::current().is_some() || SKIP_SYNCS.with(|s| s.get()) {
        return false;
    }
    true
}

#[cfg(any(test, feature = "sim"))]
thread_local!(static SKIP_SYNCS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });

/// Carries the simulation's "skip device syncs" onto a blocking-pool thread
/// for one closure (the simulated disk is thread-local to the shard).
#[cfg(any(test, feature = "sim"))]
struct SkipSyncs(bool);

#[cfg(any(test, feature = "sim"))]
impl SkipSyncs {
    fn set(skip: bool) -> Self {
        SkipSyncs(SKIP_SYNCS.with(|s| s.replace(skip)))
    }
}

#[cfg(any(test, feature = "sim"))]
impl Drop for SkipSyncs {
    fn drop(&mut self) {
        SKIP_SYNCS.with(|s| s.set(self.0));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_split_at_indexed_batch_starts() {
        let mut idx = OffsetIndex::default();
        // Batches indexed every ~5000 bytes, with one 40,000-byte gap.
        let mut positions: Vec<u32> = (0..20).map(|i| i * 5000 + 7).collect();
        positions.extend((0..10).map(|i| 140_007 + i * 5000));
        for (i, p) in positions.iter().enumerate() {
            idx.push(i as u32 * 10, *p);
        }
        for (start, end, piece) in [
            (7u64, 180_000u64, 16_384usize),
            (12_007, 60_000, 5000),
            (0, 100, 64),
        ] {
            let pieces = idx.split_at_batches(start, end, piece);
            assert_eq!(pieces[0].0, start);
            let last = pieces.last().unwrap();
            assert_eq!(last.0 + last.1 as u64, end, "the pieces cover the range");
            for w in pieces.windows(2) {
                assert_eq!(w[0].0 + w[0].1 as u64, w[1].0, "contiguous");
                assert!(
                    positions.contains(&(w[1].0 as u32)),
                    "{} starts a batch",
                    w[1].0
                );
                // Longer than a piece only where no batch starts within it.
                let cut_in_reach = positions
                    .iter()
                    .any(|&p| u64::from(p) > w[0].0 && u64::from(p) <= w[0].0 + piece as u64);
                assert!(w[0].1 <= piece || !cut_in_reach, "{w:?}");
            }
        }
        assert_eq!(
            OffsetIndex::default().split_at_batches(0, 10_000, 4096),
            vec![(0, 10_000)]
        );
    }

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(20, 8192);
        idx.push(15, 9000); // not increasing: ignored
        assert_eq!(idx.lookup(0), 0);
        assert_eq!(idx.lookup(9), 0);
        assert_eq!(idx.lookup(10), 4096);
        assert_eq!(idx.lookup(19), 4096);
        assert_eq!(idx.lookup(1000), 8192);
        idx.truncate_to_position(8192);
        assert_eq!(idx.lookup(1000), 4096);
    }

    #[test]
    fn time_lookup_starts_before_first_match() {
        let mut idx = TimeIndex::default();
        idx.push(100, 0);
        idx.push(200, 5);
        idx.push(150, 7); // not a new maximum: ignored
        idx.push(300, 9);
        assert_eq!(idx.lookup(50), 0);
        assert_eq!(idx.lookup(100), 0);
        assert_eq!(idx.lookup(201), 5);
        assert_eq!(idx.lookup(300), 5);
        assert_eq!(idx.lookup(301), 9);
        assert_eq!(idx.max_timestamp(), Some(300));
    }

    #[test]
    fn indexes_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = OffsetIndex::default();
        let mut t = TimeIndex::default();
        for i in 0..100u32 {
            o.push(i * 3, i * 4096);
            t.push(1_000 + i as i64, i * 3);
        }
        o.write_to(&dir.path().join("a.index")).unwrap();
        t.write_to(&dir.path().join("a.timeindex")).unwrap();
        let o2 = OffsetIndex::read_from(&dir.path().join("a.index")).unwrap();
        let t2 = TimeIndex::read_from(&dir.path().join("a.timeindex")).unwrap();
        assert_eq!(o.entries(), o2.entries());
        assert_eq!(t2.lookup(1_050), t.lookup(1_050));
    }

    #[test]
    fn corrupt_index_file_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.index");
        std::fs::write(&p, [1, 2, 3]).unwrap();
        assert!(OffsetIndex::read_from(&p).is_err());
        std::fs::write(&p, [0, 0, 0, 5, 0, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2]).unwrap();
        assert!(OffsetIndex::read_from(&p).is_err());
    }
}
