//! An offline check of partition logs (`shardline log verify`): every
//! segment's batch lengths, CRC32C and offset continuity, with the same walk
//! the broker uses, and whether the offset index points at batch starts.
//!
//! It only reads, with plain std I/O (no O_DIRECT, no executor), so it is
//! safe beside a running broker. A broker writes while it runs: the active
//! segment (and one being sealed, which has no index yet) may end in a
//! partly written batch or page padding; such a tail is reported as a note,
//! not damage, since the broker cuts it at start. A segment with an index
//! was synced and cut to its exact size when sealed, so anything invalid in
//! it is damage.

use std::io;
use std::path::{Path, PathBuf};

use super::index::{OffsetIndex, TimeIndex};
use super::segment::{scan_all, segment_file_name, Damage};
use super::walk::{block_on, Expect};

/// What the check of one segment file found.
#[derive(Debug, Clone)]
pub struct SegmentReport {
    pub path: PathBuf,
    pub base_offset: i64,
    pub size: u64,
    pub batches: u64,
    /// One past the last valid offset.
    pub next_offset: i64,
    /// Invalid bytes with valid batches after them.
    pub damage: Vec<Damage>,
    /// Invalid bytes after the last valid batch: (position, why).
    pub tail: Option<(u64, String)>,
    /// The tail is a write in progress or cut at start, not damage.
    pub tail_is_unfinished_write: bool,
    /// The base offset of the next segment, if any.
    pub next_segment: Option<i64>,
    pub index_problems: Vec<String>,
    /// The file disappeared while being checked (retention, compaction).
    pub vanished: bool,
}

impl SegmentReport {
    pub fn is_damaged(&self) -> bool {
        !self.damage.is_empty()
            || (self.tail.is_some() && !self.tail_is_unfinished_write)
            || !self.index_problems.is_empty()
    }
}

/// Check every segment of the partition log in `dir`, in offset order.
pub fn verify_partition(dir: &Path) -> io::Result<Vec<SegmentReport>> {
    let mut bases: Vec<i64> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    bases.sort_unstable();
    let mut out = Vec::with_capacity(bases.len());
    for (i, &base) in bases.iter().enumerate() {
        out.push(verify_segment(dir, base, bases.get(i + 1).copied())?);
    }
    Ok(out)
}

fn verify_segment(dir: &Path, base: i64, next_segment: Option<i64>) -> io::Result<SegmentReport> {
    let path = dir.join(segment_file_name(base, "log"));
    let index_path = dir.join(segment_file_name(base, "index"));
    let mut report = SegmentReport {
        path: path.clone(),
        base_offset: base,
        size: 0,
        batches: 0,
        next_offset: base,
        damage: Vec::new(),
        tail: None,
        tail_is_unfinished_write: false,
        next_segment,
        index_problems: Vec::new(),
        vanished: false,
    };
    let file = match std::fs::File::open(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            report.vanished = true;
            return Ok(report);
        }
        other => other?,
    };
    report.size = file.metadata()?.len();
    let expect = Expect {
        next: base,
        limit: next_segment.unwrap_or(i64::MAX),
    };
    let mut starts: Vec<(u64, i64)> = Vec::new();
    let scanned = block_on(scan_all(&file, report.size, expect, |pos, batch| {
        starts.push((pos, batch.base_offset()));
    }))?;
    report.batches = scanned.batches;
    report.next_offset = scanned.next_offset;
    report.damage = scanned.damage;
    report.tail = scanned.tail;
    let sealed = index_path.exists();
    report.tail_is_unfinished_write = !sealed;
    if sealed {
        report.index_problems = check_indexes(dir, base, report.size, &starts);
    }
    Ok(report)
}

/// Every offset-index entry must point at the start of the batch holding
/// its offset; both index files must parse.
fn check_indexes(dir: &Path, base: i64, size: u64, starts: &[(u64, i64)]) -> Vec<String> {
    let mut problems = Vec::new();
    match OffsetIndex::read_from(&dir.join(segment_file_name(base, "index"))) {
        Err(e) => problems.push(format!("offset index unreadable: {e}")),
        Ok(index) => {
            for e in index.entries() {
                let offset = base + e.relative_offset as i64;
                let pos = e.position as u64;
                let found = starts.binary_search_by_key(&pos, |s| s.0);
                match found {
                    Ok(i) if starts[i].1 == offset => {}
                    Ok(i) => problems.push(format!(
                        "offset index maps offset {offset} to byte {pos}, where offset {} starts",
                        starts[i].1
                    )),
                    Err(_) if pos >= size => problems.push(format!(
                        "offset index maps offset {offset} to byte {pos}, past the end ({size})"
                    )),
                    Err(_) => problems.push(format!(
                        "offset index maps offset {offset} to byte {pos}, which is not the start \
                         of a valid batch"
                    )),
                }
                if problems.len() >= 10 {
                    problems.push("(further index problems not listed)".into());
                    break;
                }
            }
        }
    }
    if let Err(e) = TimeIndex::read_from(&dir.join(segment_file_name(base, "timeindex"))) {
        problems.push(format!("time index unreadable: {e}"));
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::{open, test_dir};
    use crate::log::{AckLevel, LogConfig};
    use crate::record::{BatchBuilder, Compression};
    use crate::runtime::run_local;

    fn fill(dir: PathBuf) {
        run_local(move || async move {
            let config = LogConfig {
                segment_bytes: 8 << 10,
                index_interval_bytes: 512,
                ..LogConfig::default()
            };
            let log = open(&dir, config).await;
            for i in 0..120 {
                let mut b = BatchBuilder::new(Compression::None);
                b.append(i, None, Some(bytes::Bytes::from(vec![b'z'; 150])), vec![])
                    .unwrap();
                let batch = bytes::Bytes::from(b.build().unwrap());
                log.append(batch, AckLevel::Durable).await.unwrap();
            }
            log.close().await.unwrap();
        });
    }

    #[test]
    fn a_healthy_log_has_no_damage() {
        let dir = test_dir();
        fill(dir.path().to_path_buf());
        let reports = verify_partition(dir.path()).unwrap();
        assert!(reports.len() > 2);
        assert!(reports.iter().all(|r| !r.is_damaged()), "{reports:?}");
        assert_eq!(reports.iter().map(|r| r.batches).sum::<u64>(), 120);
        assert_eq!(reports.last().unwrap().next_offset, 120);
    }

    #[test]
    fn damage_index_and_tail_problems_are_found() {
        use std::os::unix::fs::FileExt;
        let dir = test_dir();
        fill(dir.path().to_path_buf());
        let mut reports = verify_partition(dir.path()).unwrap();
        // Garbage length in the middle of the first (sealed) segment.
        let seg = &reports[0];
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg.path)
            .unwrap();
        let victim = 5 * (seg.size / seg.batches);
        f.write_all_at(b"AAAA", victim + 8).unwrap();
        // An index entry pointing into the middle of a batch in the second.
        let index = reports[1].path.with_extension("index");
        let mut bytes = std::fs::read(&index).unwrap();
        bytes[8 + 7] = bytes[8 + 7].wrapping_add(3);
        std::fs::write(&index, bytes).unwrap();
        // Stray bytes after the active segment: a note, not damage.
        let active = reports.last().unwrap().path.clone();
        let len = std::fs::metadata(&active).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&active)
            .unwrap()
            .write_all_at(&[0; 100], len)
            .unwrap();
        reports = verify_partition(dir.path()).unwrap();
        let d = &reports[0].damage;
        assert_eq!(d.len(), 1, "{:?}", reports[0]);
        assert_eq!(d[0].pos, victim);
        assert_eq!((d[0].first_offset, d[0].resume.map(|r| r.1)), (5, Some(6)));
        assert!(d[0].reason.contains("runs past the end"), "{}", d[0].reason);
        assert!(reports[1].index_problems[0].contains("not the start"));
        let last = reports.last().unwrap();
        assert!(last.tail.is_some() && !last.is_damaged(), "{last:?}");
        assert_eq!(reports.iter().filter(|r| r.is_damaged()).count(), 2);
    }
}
