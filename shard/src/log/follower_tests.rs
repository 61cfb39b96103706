//! The replication side of the log: follower appends, `truncate_to`, and
//! the leader-epoch cache as the log keeps it (its file, its trimming).

use std::path::Path;

use bytes::{Bytes, BytesMut};

use super::epoch_cache::{EpochEntry, CHECKPOINT_FILE};
use super::tests::{batch, open, read_all, small_config, test_dir};
use super::*;
use crate::record;
use crate::runtime::run_local;

/// Small segments, so that a few batches span several.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..small_config()
    }
}

/// A batch of `n` records as a leader numbered it.
fn leader_batch(base: i64, n: usize, epoch: i32, tag: u64) -> Bytes {
    let mut b = BytesMut::from(&batch(n, 1000, tag)[..]);
    record::set_base_offset(&mut b, base);
    record::set_partition_leader_epoch(&mut b, epoch);
    b.freeze()
}

fn concat(parts: &[Bytes]) -> Bytes {
    let mut out = BytesMut::new();
    for p in parts {
        out.extend_from_slice(p);
    }
    out.freeze()
}

fn entries(log: &PartitionLog) -> Vec<(i32, i64)> {
    log.leader_epoch_entries()
        .iter()
        .map(|e: &EpochEntry| (e.epoch, e.start_offset))
        .collect()
}

fn checkpoint(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(CHECKPOINT_FILE)).unwrap()
}

#[test]
fn follower_appends_keep_the_leaders_offsets_and_refuse_what_does_not_fit() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, config()).await;
        let a = leader_batch(0, 3, 2, 1);
        let b = leader_batch(3, 2, 2, 2);
        let c = leader_batch(5, 4, 5, 3);
        let info = log
            .append_as_follower(concat(&[a.clone(), b.clone()]), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!((info.base_offset, info.last_offset), (0, 4));
        // Refused, nothing appended: each names what is wrong.
        let refusals = [
            (leader_batch(4, 1, 5, 9), "below the log end"),
            (leader_batch(6, 1, 5, 9), "gap after the log end"),
            (
                concat(&[leader_batch(5, 2, 5, 9), leader_batch(6, 1, 5, 9)]),
                "overlaps",
            ),
            (
                concat(&[leader_batch(5, 2, 5, 9), leader_batch(8, 1, 5, 9)]),
                "gap after the one before",
            ),
            (
                leader_batch(5, 1, 1, 9),
                "leader epoch goes back from 2 to 1",
            ),
            (
                concat(&[leader_batch(5, 1, 7, 9), leader_batch(6, 1, 6, 9)]),
                "goes back from 7 to 6",
            ),
        ];
        for (records, why) in refusals {
            let err = log
                .append_as_follower(records, AckLevel::Durable)
                .await
                .unwrap_err();
            assert!(err.to_string().contains(why), "{err} (expected {why})");
            assert_eq!(log.log_end_offset(), 5);
        }
        let mut bad_crc = BytesMut::from(&c[..]);
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0xff;
        let err = log
            .append_as_follower(bad_crc.freeze(), AckLevel::Durable)
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::Corrupt(_)), "{err}");
        assert_eq!(entries(&log), [(2, 0)], "refused batches add no epoch");
        log.append_as_follower(c.clone(), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(entries(&log), [(2, 0), (5, 5)]);
        assert_eq!(checkpoint(&path), "0\n2\n2 0\n5 5\n");
        // Stored byte for byte as the leader sent them.
        let r = log.read(0, 1 << 20).await.unwrap();
        let stored: Vec<u8> = r.batches.iter().flat_map(|b| b.to_vec()).collect();
        assert_eq!(stored, concat(&[a, b, c]).to_vec());
        assert_eq!(log.end_offset_for_epoch(2), (2, 5));
        assert_eq!(log.end_offset_for_epoch(5), (5, 9));
        log.close().await.unwrap();
        let log = open(&path, config()).await;
        assert_eq!(entries(&log), [(2, 0), (5, 5)]);
        log.close().await.unwrap();
    });
}

/// A log of 30 batches of 3 records (offsets 0..90) over several segments,
/// led in epoch 0 up to offset 30, epoch 1 to 60, then epoch 4.
async fn three_epochs(path: &Path) -> std::rc::Rc<PartitionLog> {
    let log = open(path, config()).await;
    for i in 0..30u64 {
        match i {
            0 => log.set_leader_epoch(0),
            10 => log.set_leader_epoch(1),
            20 => log.set_leader_epoch(4),
            _ => {}
        }
        log.append(batch(3, 1000, i), AckLevel::Durable)
            .await
            .unwrap();
    }
    assert!(log.segment_count() >= 4, "{}", log.segment_count());
    assert_eq!(entries(&log), [(0, 0), (1, 30), (4, 60)]);
    log
}

fn batches_to(end: i64) -> Vec<(i64, i64)> {
    (0..end / 3).map(|i| (i * 3, i * 3 + 2)).collect()
}

#[test]
fn truncate_to_cuts_at_batch_boundaries_across_segments() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = three_epochs(&path).await;
        // Past the end: nothing to do.
        assert!(!log.truncate_to(90).await.unwrap());
        assert!(!log.truncate_to(500).await.unwrap());
        assert_eq!(log.log_end_offset(), 90);
        let segments = log.segment_count();
        // Mid-batch (64 is in 63..=65): the whole batch goes.
        assert!(log.truncate_to(64).await.unwrap());
        assert_eq!(log.log_end_offset(), 63);
        assert_eq!(log.high_watermark(), 63);
        assert_eq!(read_all(&log, 0).await, batches_to(63));
        assert_eq!(entries(&log), [(0, 0), (1, 30), (4, 60)]);
        // At a batch boundary, segments away, an epoch's entries dropped.
        assert!(log.truncate_to(30).await.unwrap());
        assert_eq!(log.log_end_offset(), 30);
        assert!(log.segment_count() < segments);
        assert_eq!(read_all(&log, 0).await, batches_to(30));
        assert_eq!(entries(&log), [(0, 0)]);
        assert_eq!(checkpoint(&path), "0\n1\n0 0\n");
        assert_eq!(log.end_offset_for_epoch(1), (-1, -1));
        // The log goes on from there, with new offsets and a new epoch.
        log.set_leader_epoch(6);
        let info = log
            .append(batch(2, 1000, 77), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(info.base_offset, 30);
        assert_eq!(entries(&log), [(0, 0), (6, 30)]);
        log.close().await.unwrap();
        let log = open(&path, config()).await;
        let mut expected = batches_to(30);
        expected.push((30, 31));
        assert_eq!(read_all(&log, 0).await, expected);
        assert_eq!(entries(&log), [(0, 0), (6, 30)]);
        log.close().await.unwrap();
    });
}

#[test]
fn truncate_to_the_log_start_or_below_empties_the_log() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = three_epochs(&path).await;
        assert!(log.truncate_to(0).await.unwrap());
        assert_eq!((log.log_end_offset(), log.high_watermark()), (0, 0));
        assert!(read_all(&log, 0).await.is_empty());
        assert!(entries(&log).is_empty());
        log.append(batch(1, 1000, 5), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(read_all(&log, 0).await, [(0, 0)]);
        log.close().await.unwrap();

        // Below the first segment (after DeleteRecords and retention moved
        // the log start): Kafka's truncateFullyAndStartAt.
        let dir2 = test_dir();
        let log = three_epochs(dir2.path()).await;
        log.delete_records_before(45).await.unwrap();
        assert_eq!(entries(&log), [(1, 45), (4, 60)], "trimmed from the start");
        let first = *log.inner.borrow().segments.keys().next().unwrap();
        assert!(first > 0 && first <= 45, "{first}");
        let target = first - 1;
        assert!(log.truncate_to(target).await.unwrap());
        assert_eq!(log.log_end_offset(), target);
        assert_eq!(log.offsets().log_start_offset, target);
        assert!(entries(&log).is_empty());
        log.append(batch(1, 1000, 5), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(read_all(&log, target).await, [(target, target)]);
        assert_eq!(entries(&log), [(4, target)]);
        log.close().await.unwrap();
    });
}

#[test]
fn a_crash_after_truncate_to_does_not_bring_the_suffix_back() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let live = path.join("live");
        let log = three_epochs(&live).await;
        assert!(log.truncate_to(33).await.unwrap());
        // kill -9 right after the truncation: the files as they are.
        let crash = path.join("crash");
        std::fs::create_dir_all(&crash).unwrap();
        for e in std::fs::read_dir(&live).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), crash.join(e.file_name())).unwrap();
        }
        let recovered = open(&crash, config()).await;
        assert_eq!(recovered.log_end_offset(), 33);
        assert_eq!(read_all(&recovered, 0).await, batches_to(33));
        assert_eq!(entries(&recovered), [(0, 0), (1, 30)]);
        recovered.close().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn a_corrupt_or_missing_epoch_checkpoint_is_rebuilt_from_the_batches() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = three_epochs(&path).await;
        log.close().await.unwrap();
        assert_eq!(checkpoint(&path), "0\n3\n0 0\n1 30\n4 60\n");
        for damage in [Some("0\n3\n0 0\ngarbage"), Some("7\n"), None] {
            match damage {
                Some(text) => std::fs::write(path.join(CHECKPOINT_FILE), text).unwrap(),
                None => std::fs::remove_file(path.join(CHECKPOINT_FILE)).unwrap(),
            }
            let log = open(&path, config()).await;
            assert_eq!(entries(&log), [(0, 0), (1, 30), (4, 60)], "{damage:?}");
            assert_eq!(checkpoint(&path), "0\n3\n0 0\n1 30\n4 60\n");
            log.close().await.unwrap();
        }
        // A checkpoint that lags the batches of the segment recovery scans
        // (a crash before it was written) is completed from them.
        let log = open(&path, config()).await;
        log.set_leader_epoch(9);
        log.append(batch(1, 1000, 5), AckLevel::Durable)
            .await
            .unwrap();
        log.close().await.unwrap();
        std::fs::write(path.join(CHECKPOINT_FILE), "0\n3\n0 0\n1 30\n4 60\n").unwrap();
        let log = open(&path, config()).await;
        assert_eq!(entries(&log), [(0, 0), (1, 30), (4, 60), (9, 90)]);
        log.close().await.unwrap();
    });
}
