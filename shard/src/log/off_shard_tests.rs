//! The log's blocking file calls run on the blocking pool, not on the shard
//! thread: durable small-file writes (segment indexes and producer
//! snapshots at a seal, the log start file, the direct-I/O probe), the
//! compaction swap (renames, unlinks, directory fsyncs), the recovery of an
//! interrupted swap, segment unlinks by retention and DeleteRecords, the
//! reads at open and a topic's directory removal. These tests mark the
//! executor thread as a shard thread, as `run_shards` does, so the debug
//! assertions in those functions fail them if a call comes back onto it.

use std::path::Path;

use super::tests::{batch, open, read_all, small_config, test_dir};
use super::*;
use crate::runtime::run_local;

fn files_with(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn roll_seal_retention_delete_records_and_reopen_do_not_block_the_shard() {
    let dir = test_dir();
    let path = dir.path().join("fresh").join("t-0");
    run_local(move || async move {
        crate::blocking::forbid_here();
        let config = LogConfig {
            retention_bytes: 24 << 10,
            retention_ms: -1,
            ..small_config()
        };
        // Open creates the directory and probes direct I/O (blocking pool).
        let log = open(&path, config.clone()).await;
        let mut expected = Vec::new();
        for i in 0..200u64 {
            let info = log
                .append(batch(2, 1000 + i as i64, i), AckLevel::Durable)
                .await
                .unwrap();
            expected.push((info.base_offset, info.last_offset));
        }
        // Rolled and sealed: indexes and producer snapshots are on disk.
        let indexes = files_with(&path, "index");
        assert!(indexes.len() >= 3, "several sealed segments: {indexes:?}");
        assert!(files_with(&path, "timeindex").len() >= indexes.len());
        assert!(!files_with(&path, "snapshot").is_empty());

        assert!(log.enforce_retention().await.unwrap() > 0);
        let start = log.offsets().log_start_offset;
        assert!(start > 0);
        let cut = start + 10;
        assert_eq!(log.delete_records_before(cut).await.unwrap(), cut);
        // The answer came after the file was durable.
        let file = std::fs::read_to_string(path.join("log-start-offset")).unwrap();
        assert_eq!(file.trim().parse::<i64>().unwrap(), cut);
        log.close().await.unwrap();

        // Reopen with a sealed segment's index missing: recovery rebuilds
        // and writes it, also off the shard.
        let indexes = files_with(&path, "index");
        std::fs::remove_file(&indexes[0]).unwrap();
        let log = open(&path, config).await;
        assert!(indexes[0].exists(), "the missing index was written again");
        assert_eq!(log.offsets().log_start_offset, cut, "log start persists");
        let tail: Vec<_> = expected
            .into_iter()
            .filter(|&(_, last)| last >= cut)
            .collect();
        let read = read_all(&log, cut).await;
        assert_eq!(read.last(), tail.last());
        log.close().await.unwrap();
    });
}

#[test]
fn compaction_swap_leftover_recovery_and_destroy_do_not_block_the_shard() {
    use super::compaction::tests as c;
    use crate::record::Compression;
    let dir = test_dir();
    let path = dir.path().join("c-0");
    run_local(move || async move {
        crate::blocking::forbid_here();
        let log = c::open(&path, c::compact_config()).await;
        let written = c::fill(&log, Compression::None, 200, 4).await;
        // Compaction: staging directory, the swap's renames, unlinks and
        // directory syncs, the new indexes.
        let stats = log.compact(c::TS).await.unwrap();
        assert!(
            stats.groups_rewritten > 0 && stats.records_removed > 0,
            "{stats:?}"
        );
        let active = c::active_base(&path);
        let compacted = c::read_records(&log, 0).await;
        assert_eq!(compacted, c::expected_after(&written, active));
        log.close().await.unwrap();
        drop(log);

        // A crash left a staged clean and a committed swap whose old
        // indexes were not yet deleted: open rolls back the one and
        // finishes the other, off the shard.
        let first = c::bases(&path, "log")[0];
        std::fs::create_dir_all(path.join(".cleaner")).unwrap();
        std::fs::write(c::seg_path(&path.join(".cleaner"), first, "log"), b"x").unwrap();
        std::fs::copy(
            c::seg_path(&path, first, "log"),
            c::seg_path(&path, first, "log.swap"),
        )
        .unwrap();
        let log = c::open(&path, c::compact_config()).await;
        assert!(!path.join(".cleaner").exists(), "staged clean rolled back");
        assert!(
            !c::seg_path(&path, first, "log.swap").exists(),
            "swap finished"
        );
        assert_eq!(c::read_records(&log, 0).await, compacted);

        // DeleteTopics: the directory goes on the blocking pool.
        log.destroy().await.unwrap();
        assert!(!path.exists());
    });
}

/// A compaction swap and DeleteRecords' unlinks in flight together: the
/// files lock keeps the segment map and the files in step, so a reopen
/// finds exactly what the log served.
#[test]
fn a_compaction_swap_and_delete_records_together_leave_map_and_files_in_step() {
    use super::compaction::tests as c;
    use crate::record::Compression;
    let dir = test_dir();
    let path = dir.path().join("c-0");
    run_local(move || async move {
        crate::blocking::forbid_here();
        let log = c::open(&path, c::compact_config()).await;
        let written = c::fill(&log, Compression::None, 300, 4).await;
        let cut = written[written.len() / 3].0;
        let (stats, start) = futures::join!(log.compact(c::TS), async {
            log.delete_records_before(cut).await
        });
        stats.unwrap();
        assert_eq!(start.unwrap(), cut);
        let served = c::read_records(&log, cut).await;
        let latest = c::expected_after(&written, i64::MAX);
        for r in latest.iter().filter(|r| r.0 >= cut) {
            assert!(served.contains(r), "latest {r:?} lost");
        }
        log.close().await.unwrap();
        drop(log);
        let log = c::open(&path, c::compact_config()).await;
        assert_eq!(log.offsets().log_start_offset, cut);
        assert_eq!(c::read_records(&log, cut).await, served);
        log.close().await.unwrap();
    });
}

/// The assertion the test above relies on is live in debug builds.
#[cfg(debug_assertions)]
#[test]
fn write_durably_on_a_shard_thread_panics_in_debug_builds() {
    let dir = test_dir();
    let file = dir.path().join("x");
    let result = std::thread::spawn(move || {
        crate::blocking::forbid_here();
        index::write_durably(&file, b"1")
    })
    .join();
    assert!(
        result.is_err(),
        "write_durably on a shard thread must panic"
    );
}
