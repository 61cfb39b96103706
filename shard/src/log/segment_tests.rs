//! Tests of damaged segments, lazily opened segment files and proportional
//! preallocation, against real files.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use super::tests::{open, test_dir};
use super::*;
use crate::record::{BatchBuilder, Compression};
use crate::runtime::run_local;

/// A batch of `n` records whose values name their index.
fn batch(n: usize, ts: i64, tag: usize) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        let value = format!("v-{tag}-{i}-{}", "y".repeat(40));
        b.append(ts + i as i64, None, Some(Bytes::from(value)), vec![])
            .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 16 << 10,
        index_interval_bytes: 1024,
        tail_cache_bytes: 4 << 10,
        ..LogConfig::default()
    }
}

/// (position, base offset, last offset) of every batch in a segment file.
fn batches_in(path: &Path) -> Vec<(u64, i64, i64)> {
    let data = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 61 <= data.len() {
        let b = crate::record::BatchView::parse(&data[pos..]).unwrap();
        out.push((pos as u64, b.base_offset(), b.last_offset()));
        pos += b.size();
    }
    out
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Fill a log over several segments (2 records per batch, 300 batches) and
/// close it cleanly.
async fn filled_log(dir: &Path) {
    let log = open(dir, config()).await;
    for i in 0..300 {
        log.append(batch(2, 1_000 + 2 * i as i64, i), AckLevel::Durable)
            .await
            .unwrap();
    }
    log.close().await.unwrap();
}

/// Overwrite bytes of the middle batch of the second segment; returns its
/// path, position, and offsets.
fn damage_middle_batch(dir: &Path, at: usize, bytes: &[u8]) -> (PathBuf, u64, i64, i64) {
    use std::os::unix::fs::FileExt;
    let seg = segment_files(dir)[1].clone();
    let batches = batches_in(&seg);
    assert!(batches.len() > 10, "{batches:?}");
    let (pos, first, last) = batches[batches.len() / 2];
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    f.write_all_at(bytes, pos + at as u64).unwrap();
    (seg, pos, first, last)
}

fn damage_of(log: &PartitionLog, base: i64) -> Vec<segment::Damage> {
    log.inner.borrow().segments[&base].damage.clone()
}

fn base_of(seg: &Path) -> i64 {
    seg.file_stem().unwrap().to_str().unwrap().parse().unwrap()
}

/// The offsets a fetch at `at` returns.
async fn offsets_read(log: &PartitionLog, at: i64) -> Result<Vec<i64>, LogError> {
    let out = log.read(at, 64 << 10).await?;
    let mut offsets = Vec::new();
    for span in &out.batches {
        let mut rest = &span[..];
        while !rest.is_empty() {
            let b = crate::record::BatchView::parse(rest).unwrap();
            offsets.extend(b.base_offset()..=b.last_offset());
            rest = &rest[b.size()..];
        }
    }
    Ok(offsets)
}

fn check_damaged_segment(length: &'static [u8]) {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        filled_log(&path).await;
        let (seg, pos, first, last) = damage_middle_batch(&path, 8, length);
        let log = open(&path, config()).await;
        // Healthy data before the damage, up to it.
        let before = offsets_read(&log, first - 3).await.unwrap();
        assert_eq!(before, vec![first - 4, first - 3, first - 2, first - 1]);
        // The damaged offsets answer Damaged, recorded once.
        for at in [first, last] {
            match log.read(at, 1 << 20).await {
                Err(LogError::Damaged(msg)) => {
                    assert!(msg.contains(&seg.display().to_string()), "{msg}")
                }
                other => panic!("offset {at}: {other:?}"),
            }
        }
        let damage = damage_of(&log, base_of(&seg));
        assert_eq!(damage.len(), 1, "{damage:?}");
        assert_eq!((damage[0].pos, damage[0].first_offset), (pos, first));
        assert_eq!(damage[0].resume.map(|r| r.1), Some(last + 1));
        // Healthy data after it, in the same segment and the next ones.
        assert_eq!(offsets_read(&log, last + 1).await.unwrap()[0], last + 1);
        let end = log.log_end_offset();
        let mut at = last + 1;
        while at < end {
            let got = offsets_read(&log, at).await.unwrap();
            assert_eq!(got[0], at);
            at = *got.last().unwrap() + 1;
        }
        // A timestamp lookup passes over the damage.
        let ts_of_first = 1_000 + first;
        let found = log.offset_for_timestamp(ts_of_first).await.unwrap();
        assert_eq!(found.map(|f| f.0), Some(last + 1));
        log.close().await.unwrap();
    });
}

#[test]
fn a_length_running_past_the_segment_is_damage_not_the_end() {
    check_damaged_segment(b"AAAA");
}

#[test]
fn a_length_below_the_minimum_is_damage() {
    check_damaged_segment(&[0, 0, 0, 5]);
}

#[test]
fn a_length_inside_the_segment_is_caught_by_the_crc() {
    // Plausible but wrong: the batch would swallow its neighbours.
    check_damaged_segment(&[0, 0, 2, 0]);
}

/// Descriptors this process has open on files under `dir` (tests run in
/// parallel, so the others are not counted).
fn open_descriptors(dir: &Path) -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

/// `n` partitions under `path`, each given 100 batches of 2 records.
async fn partitions_of_200_records(path: &Path, n: usize) -> Vec<Rc<PartitionLog>> {
    let mut logs = Vec::new();
    for p in 0..n {
        let log = open(&path.join(format!("p-{p}")), config()).await;
        for i in 0..100 {
            log.append(batch(2, 1_000, i), AckLevel::Durable)
                .await
                .unwrap();
        }
        logs.push(log);
    }
    logs
}

#[test]
fn idle_segment_files_are_closed_beyond_the_cap() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        open_files::set_cap(8);
        let logs = partitions_of_200_records(&path, 40).await;
        // Let the asynchronous closes run.
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        let st = open_files::stats();
        assert_eq!(st.cap, 8);
        assert!(st.peak <= st.cap, "{st:?}");
        assert!(st.closed_total > 0 && st.opened_total - st.closed_total == st.open as u64);
        let cap = st.cap;
        let segments: usize = logs.iter().map(|l| l.segment_count()).sum();
        assert!(segments > 40);
        let fds = open_descriptors(&path);
        assert!(fds <= cap + 2, "{fds} descriptors for {segments} segments");
        // Every partition still reads and writes, reopening files on demand.
        for log in &logs {
            assert_eq!(offsets_read(log, 0).await.unwrap()[0], 0);
            log.append(batch(1, 2_000, 7), AckLevel::Durable)
                .await
                .unwrap();
        }
        for log in &logs {
            log.close().await.unwrap();
        }
        // And reopen after a restart with only a few files open.
        drop(logs);
        glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
        for p in 0..40 {
            let log: Rc<PartitionLog> = open(&path.join(format!("p-{p}")), config()).await;
            assert_eq!(log.log_end_offset(), 201);
            log.close().await.unwrap();
        }
        assert!(open_files::stats().peak <= 8);
    });
}

#[test]
fn reads_of_more_partitions_than_the_cap_wait_their_turn() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        open_files::set_cap(4);
        let logs = partitions_of_200_records(&path, 30).await;
        // Every partition at once, each reading two segments: at most four
        // files open at any moment, and every read succeeds.
        let reads = logs.iter().map(|log| async move {
            let first = offsets_read(log, 0).await.unwrap();
            let later = offsets_read(log, 150).await.unwrap();
            (first[0], later[0])
        });
        let got = futures::future::join_all(reads).await;
        assert!(got.iter().all(|&g| g == (0, 150)), "{got:?}");
        let st = open_files::stats();
        assert!(st.peak <= 4, "{st:?}");
        assert!(open_descriptors(&path) <= 4 + 2);
        for log in &logs {
            log.close().await.unwrap();
        }
    });
}

/// Disk blocks held under `dir`, in bytes.
fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            disk_usage(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    total
}

#[test]
fn lightly_written_partitions_reserve_little_disk() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let cfg = LogConfig {
            preallocate: true,
            ..LogConfig::default()
        };
        let partitions = 200u64;
        let mut logs = Vec::new();
        for p in 0..partitions {
            let log = open(&path.join(format!("p-{p}")), cfg.clone()).await;
            log.append(batch(3, 1_000, p as usize), AckLevel::Durable)
                .await
                .unwrap();
            logs.push(log);
        }
        let used = disk_usage(&path);
        let per_partition = used / partitions;
        // A few records and a 64 KiB reservation, not 32 MiB.
        assert!(
            per_partition <= preallocate::MIN_STEP + (16 << 10),
            "{per_partition} bytes per lightly written partition"
        );
        for log in &logs {
            log.close().await.unwrap();
        }
    });
}
