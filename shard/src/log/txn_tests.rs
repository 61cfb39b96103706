//! Transactions on the log against real files: state transitions and the
//! leader's checks, the last stable offset with several producers,
//! read_committed reads and their aborted transactions, the aborted
//! transaction index across seals, reopen, crash images, lost or corrupt
//! index files, truncation, followers, timestamps and compaction.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::tests::{open, small_config, test_dir};
use super::*;
use crate::record::{BatchBuilder, BatchView, Compression, EndTxnMarker, TxnResult};
use crate::runtime::run_local;

/// A transactional batch of `n` records of producer `pid`.
fn txn_batch(pid: i64, epoch: i16, seq: i32, n: usize, key: &str) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None)
        .transactional(true)
        .producer(pid, epoch, seq);
    for i in 0..n {
        b.append(
            1_000 + i as i64,
            Some(Bytes::from(key.to_owned())),
            Some(Bytes::from(format!("{key}-{pid}-{seq}-{i}"))),
            vec![],
        )
        .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

/// An idempotent, non-transactional batch.
fn plain_batch(pid: i64, epoch: i16, seq: i32, key: &str) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None).producer(pid, epoch, seq);
    b.append(1_000, Some(Bytes::from(key.to_owned())), None, vec![])
        .unwrap();
    Bytes::from(b.build().unwrap())
}

fn marker(pid: i64, epoch: i16, result: TxnResult, coordinator_epoch: i32) -> TxnMarker {
    TxnMarker {
        producer_id: pid,
        producer_epoch: epoch,
        marker: EndTxnMarker {
            result,
            coordinator_epoch,
        },
        transaction_version: 1,
    }
}

async fn end(log: &PartitionLog, m: TxnMarker) -> i64 {
    log.append_txn_marker(m, AckLevel::Durable)
        .await
        .unwrap()
        .base_offset
}

async fn put(log: &PartitionLog, b: Bytes) -> i64 {
    log.append(b, AckLevel::Durable).await.unwrap().base_offset
}

/// Every batch read_committed returns from `from` on, as (base offset,
/// control?), and the aborted transactions named on the way.
async fn read_committed_all(log: &PartitionLog, from: i64) -> (Vec<(i64, bool)>, Vec<AbortedTxn>) {
    let (mut batches, mut aborted) = (Vec::new(), Vec::new());
    let mut at = from;
    loop {
        let r = log.read_committed(at, 300).await.unwrap();
        assert!(r.last_stable_offset <= r.high_watermark);
        for t in r.aborted_transactions.expect("read_committed names them") {
            if !aborted.contains(&t) {
                aborted.push(t);
            }
        }
        if r.batches.is_empty() {
            break;
        }
        for chunk in &r.batches {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let b = BatchView::parse_verified(rest).unwrap();
                assert!(b.last_offset() < r.last_stable_offset, "read past the LSO");
                batches.push((b.base_offset(), b.is_control()));
                at = b.last_offset() + 1;
                rest = &rest[b.size()..];
            }
        }
    }
    (batches, aborted)
}

fn files_with(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn the_last_stable_offset_follows_open_and_completed_transactions_of_several_producers() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        put(&log, plain_batch(-1, -1, -1, "x")).await; // 0: no producer
        assert_eq!(log.last_stable_offset(), 1);
        let a0 = put(&log, txn_batch(10, 0, 0, 2, "a")).await; // 1..=2
        assert_eq!(a0, 1);
        assert_eq!(
            log.last_stable_offset(),
            1,
            "an open transaction holds the LSO"
        );
        assert_eq!(log.high_watermark(), 3);
        let b0 = put(&log, txn_batch(20, 0, 0, 1, "b")).await; // 3
        put(&log, txn_batch(10, 0, 2, 1, "a")).await; // 4: same transaction
        assert_eq!(log.ongoing_transactions(), vec![(1, 10), (3, 20)]);
        assert!(log.has_ongoing_transaction(10, 0));
        assert!(!log.has_ongoing_transaction(10, 1));
        // Producer 20 commits: the LSO stays at producer 10's first offset.
        let b_end = end(&log, marker(20, 0, TxnResult::Commit, 1)).await; // 5
        assert_eq!(b_end, 5);
        assert_eq!(log.last_stable_offset(), 1);
        // Producer 10 aborts: everything is stable once the marker is.
        let a_end = end(&log, marker(10, 0, TxnResult::Abort, 1)).await; // 6
        assert_eq!(log.last_stable_offset(), 7);
        assert_eq!(log.high_watermark(), 7);
        assert!(log.ongoing_transactions().is_empty());
        let (batches, aborted) = read_committed_all(&log, 0).await;
        assert_eq!(
            batches,
            vec![
                (0, false),
                (a0, false),
                (b0, false),
                (4, false),
                (b_end, true),
                (a_end, true)
            ]
        );
        assert_eq!(
            aborted,
            vec![AbortedTxn {
                producer_id: 10,
                first_offset: 1,
                last_offset: 6,
                // No other transaction was open when it was aborted.
                last_stable_offset: 7,
            }]
        );
        // read_uncommitted gets no list at all (Kafka answers null).
        assert!(log
            .read(0, 4096)
            .await
            .unwrap()
            .aborted_transactions
            .is_none());
        // A fetch from inside the aborted transaction names it (its marker
        // is at or after the fetch offset, as Kafka's rule), one after its
        // marker does not.
        let r = log.read_committed(b_end, 4096).await.unwrap();
        assert_eq!(r.aborted_transactions.unwrap().len(), 1);
        let r = log.read_committed(a_end + 1, 4096).await.unwrap();
        assert_eq!(r.aborted_transactions, Some(vec![]));
        log.close().await.unwrap();
    });
}

#[test]
fn a_read_committed_fetch_stops_at_the_lso_and_its_wait_wakes_when_it_moves() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        put(&log, txn_batch(7, 0, 0, 1, "k")).await;
        put(&log, plain_batch(8, 0, 0, "other")).await;
        let r = log.read_committed(0, 4096).await.unwrap();
        assert!(r.batches.is_empty(), "nothing below the LSO");
        assert_eq!((r.last_stable_offset, r.high_watermark), (0, 2));
        // read_uncommitted sees both.
        let r = log.read(0, 4096).await.unwrap();
        assert_eq!(super::txn::end_of_batches(&r.batches), Some(2));
        // A waiter at the LSO is not released by the high watermark alone...
        let started = std::time::Instant::now();
        log.wait_for_stable_data(0, Duration::from_millis(100))
            .await;
        assert!(started.elapsed() >= Duration::from_millis(100));
        // ...but is by the commit.
        let waiter = {
            let log = log.clone();
            crate::rt::spawn_local(async move {
                let started = std::time::Instant::now();
                log.wait_for_stable_data(0, Duration::from_secs(10)).await;
                started.elapsed()
            })
        };
        glommio::timer::sleep(Duration::from_millis(20)).await;
        end(&log, marker(7, 0, TxnResult::Commit, 0)).await;
        assert!(waiter.await < Duration::from_secs(5));
        assert_eq!(log.last_stable_offset(), 3);
        log.close().await.unwrap();
    });
}

#[test]
fn the_leader_refuses_what_does_not_fit_a_transaction() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        put(&log, txn_batch(5, 3, 0, 1, "k")).await;
        // Non-transactional while the transaction is open.
        let e = log
            .append(plain_batch(5, 3, 1, "k"), AckLevel::Durable)
            .await
            .unwrap_err();
        assert!(matches!(e, LogError::InvalidTxnState(_)), "{e}");
        // A newer epoch cannot join the older epoch's transaction.
        let e = log
            .append(txn_batch(5, 4, 0, 1, "k"), AckLevel::Durable)
            .await
            .unwrap_err();
        assert!(matches!(e, LogError::InvalidTxnState(_)), "{e}");
        // Clients do not write control batches.
        let forged = Bytes::from(crate::record::build_txn_marker_batch(
            0,
            1,
            -1,
            5,
            3,
            EndTxnMarker {
                result: TxnResult::Commit,
                coordinator_epoch: 0,
            },
        ));
        assert!(matches!(
            log.append(forged, AckLevel::Durable).await.unwrap_err(),
            LogError::InvalidRecord(_)
        ));
        // An older producer epoch.
        let e = log
            .append_txn_marker(marker(5, 2, TxnResult::Commit, 0), AckLevel::Durable)
            .await
            .unwrap_err();
        assert!(matches!(e, LogError::InvalidProducerEpoch), "{e}");
        end(&log, marker(5, 3, TxnResult::Commit, 4)).await;
        // An older coordinator (a zombie's marker).
        let second = put(&log, txn_batch(5, 3, 1, 1, "k")).await;
        let e = log
            .append_txn_marker(marker(5, 3, TxnResult::Abort, 3), AckLevel::Durable)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                LogError::TransactionCoordinatorFenced {
                    producer_id: 5,
                    coordinator_epoch: 3,
                    current: 4
                }
            ),
            "{e}"
        );
        assert_eq!(log.ongoing_transactions(), vec![(second, 5)], "still open");
        end(&log, marker(5, 3, TxnResult::Abort, 4)).await;
        // The producer's next data after its marker: non-transactional is
        // fine again.
        put(&log, plain_batch(5, 3, 2, "k")).await;
        log.close().await.unwrap();
    });
}

#[test]
fn transaction_version_2_markers_carry_the_bumped_epoch() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        let tv2 = |epoch, result| TxnMarker {
            transaction_version: 2,
            ..marker(9, epoch, result, 0)
        };
        put(&log, txn_batch(9, 0, 0, 1, "k")).await;
        // A marker with the transaction's own epoch is an earlier
        // transaction's arriving late: refused.
        let e = log
            .append_txn_marker(tv2(0, TxnResult::Commit), AckLevel::Durable)
            .await
            .unwrap_err();
        assert!(matches!(e, LogError::InvalidProducerEpoch), "{e}");
        // The coordinator's bump: epoch + 1. Sequences restart with it.
        end(&log, tv2(1, TxnResult::Commit)).await;
        assert_eq!(log.last_stable_offset(), log.log_end_offset());
        // A retry of the same marker, the transaction already complete:
        // written again, completing nothing (KAFKA-19999).
        end(&log, tv2(1, TxnResult::Commit)).await;
        put(&log, txn_batch(9, 1, 0, 1, "k")).await;
        end(&log, tv2(2, TxnResult::Abort)).await;
        let (_, aborted) = read_committed_all(&log, 0).await;
        assert_eq!(aborted.len(), 1);
        assert_eq!((aborted[0].first_offset, aborted[0].last_offset), (3, 4));
        // Transaction version 1 (classic): the same epoch is fine.
        put(&log, txn_batch(9, 2, 0, 1, "k")).await;
        end(&log, marker(9, 2, TxnResult::Commit, 0)).await;
        log.close().await.unwrap();
    });
}

#[test]
fn a_marker_without_an_open_transaction_is_written_but_indexes_nothing() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        let at = end(&log, marker(33, 0, TxnResult::Abort, 0)).await;
        assert_eq!(at, 0);
        assert_eq!(log.log_end_offset(), 1);
        assert_eq!(log.last_stable_offset(), 1);
        let (batches, aborted) = read_committed_all(&log, 0).await;
        assert_eq!(batches, vec![(0, true)]);
        assert!(aborted.is_empty());
        log.close().await.unwrap();
    });
}

/// Producer 1 aborts a transaction spanning segments while producer 2's
/// stays open; then everything is closed and the log reopened.
/// Returns the aborted transactions read_committed names, and producer
/// 2's first offset (the LSO).
async fn spanning_transactions(log: &PartitionLog) -> (Vec<AbortedTxn>, i64) {
    let mut seq = 0;
    for _ in 0..8 {
        put(log, txn_batch(1, 0, seq, 40, "one")).await;
        seq += 40;
    }
    let two = put(log, txn_batch(2, 0, 0, 1, "two")).await;
    for _ in 0..8 {
        put(log, txn_batch(1, 0, seq, 40, "one")).await;
        seq += 40;
    }
    end(log, marker(1, 0, TxnResult::Abort, 0)).await;
    for i in 0..20 {
        put(log, plain_batch(3, 0, i, "three")).await;
    }
    assert!(log.segment_count() > 3, "spans segments");
    assert_eq!(log.last_stable_offset(), two);
    let (_, aborted) = read_committed_all(log, 0).await;
    (aborted, two)
}

#[test]
fn the_aborted_transaction_index_survives_seals_reopens_crashes_and_lost_files() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let live = path.join("live");
        let log = open(&live, small_config()).await;
        let (aborted, lso) = spanning_transactions(&log).await;
        assert_eq!(aborted.len(), 1);
        let txn = aborted[0];
        assert_eq!((txn.producer_id, txn.first_offset), (1, 0));
        // Producer 2's transaction was open when 1 aborted.
        assert_eq!(txn.last_stable_offset, lso);
        assert_eq!(lso, 320, "producer 2 holds the LSO");
        // A kill -9 now: the marker's segment may be sealed or not.
        super::tests::copy_dir(&live, &path.join("crash"));
        // Let the flusher seal what it will, and wait for the index files.
        glommio::timer::sleep(Duration::from_millis(200)).await;
        log.close().await.unwrap();
        let txn_files = files_with(&live, "txnindex");
        assert!(
            !txn_files.is_empty(),
            "sealed segments have transaction indexes"
        );
        let with_entry: Vec<_> = txn_files
            .iter()
            .filter(|p| std::fs::metadata(p).unwrap().len() == 34)
            .cloned()
            .collect();
        assert_eq!(with_entry.len(), 1, "one segment holds the abort marker");

        for (name, damage) in [
            ("reopen", None),
            ("lost", Some(None)),
            ("corrupt", Some(Some(b"garbage, not an index".as_slice()))),
        ] {
            let copy = path.join(name);
            super::tests::copy_dir(&live, &copy);
            if let Some(replace) = damage {
                let victim = copy.join(with_entry[0].file_name().unwrap());
                match replace {
                    None => std::fs::remove_file(&victim).unwrap(),
                    Some(bytes) => std::fs::write(&victim, bytes).unwrap(),
                }
            }
            let log = open(&copy, small_config()).await;
            assert_eq!(log.last_stable_offset(), lso, "{name}");
            assert_eq!(log.ongoing_transactions(), vec![(lso, 2)], "{name}");
            let (_, again) = read_committed_all(&log, 0).await;
            assert_eq!(again, aborted, "{name}");
            log.close().await.unwrap();
            // Rebuilt and written again.
            let victim = copy.join(with_entry[0].file_name().unwrap());
            assert_eq!(std::fs::read(&victim).unwrap().len(), 34, "{name}");
        }
        let log = open(&path.join("crash"), small_config()).await;
        assert_eq!(log.last_stable_offset(), lso);
        let (_, again) = read_committed_all(&log, 0).await;
        assert_eq!(again, aborted);
        log.close().await.unwrap();
    });
}

#[test]
fn truncating_a_marker_reopens_its_transaction() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        put(&log, plain_batch(4, 0, 0, "k")).await;
        let first = put(&log, txn_batch(4, 0, 1, 3, "k")).await;
        let abort = end(&log, marker(4, 0, TxnResult::Abort, 2)).await;
        assert_eq!(log.last_stable_offset(), abort + 1);
        assert_eq!(log.aborted_transactions(0, abort + 1).len(), 1);
        assert!(log.truncate_to(abort).await.unwrap());
        assert_eq!(log.log_end_offset(), abort);
        assert_eq!(log.ongoing_transactions(), vec![(first, 4)]);
        assert_eq!(log.last_stable_offset(), first);
        assert!(log.aborted_transactions(0, abort + 1).is_empty());
        // The coordinator writes its marker again (its epoch is unknown
        // again: the marker that set it is gone), now a commit.
        let commit = end(&log, marker(4, 0, TxnResult::Commit, 2)).await;
        assert_eq!(commit, abort);
        assert_eq!(log.last_stable_offset(), commit + 1);
        assert!(log.aborted_transactions(0, commit + 1).is_empty());
        // Truncating into the transaction's data closes it.
        assert!(log.truncate_to(first).await.unwrap());
        assert!(log.ongoing_transactions().is_empty());
        assert_eq!(log.last_stable_offset(), first);
        log.close().await.unwrap();
    });
}

#[test]
fn a_follower_builds_the_same_transaction_state_from_the_batches_it_copies() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let leader = open(&path.join("leader"), small_config()).await;
        let (aborted, lso) = spanning_transactions(&leader).await;
        let follower = open(&path.join("follower"), small_config()).await;
        loop {
            let at = follower.log_end_offset();
            let r = leader.read_for_follower(at, 8192).await.unwrap();
            if r.batches.is_empty() {
                break;
            }
            let mut joined = Vec::new();
            for b in &r.batches {
                joined.extend_from_slice(b);
            }
            follower
                .append_as_follower(Bytes::from(joined), AckLevel::Durable)
                .await
                .unwrap();
        }
        assert_eq!(follower.log_end_offset(), leader.log_end_offset());
        assert_eq!(
            follower.ongoing_transactions(),
            leader.ongoing_transactions()
        );
        assert_eq!(follower.last_stable_offset(), lso);
        let (_, theirs) = read_committed_all(&follower, 0).await;
        assert_eq!(theirs, aborted);
        // A follower's LSO is bounded by its high watermark (its leader's).
        follower.reset_replicated_bound(50);
        assert_eq!(follower.last_stable_offset(), 50);
        follower.advance_replicated_bound(UNBOUNDED);
        assert_eq!(follower.last_stable_offset(), lso);
        leader.close().await.unwrap();
        follower.close().await.unwrap();
    });
}

#[test]
fn a_marker_above_the_high_watermark_keeps_its_transaction_unstable() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        put(&log, txn_batch(6, 0, 0, 2, "k")).await;
        // An ISR member has not copied anything yet: the high watermark
        // stays at 0 while the marker is appended (acks=0: in memory).
        log.reset_replicated_bound(0);
        log.append_txn_marker(marker(6, 0, TxnResult::Commit, 0), AckLevel::None)
            .await
            .unwrap();
        assert!(log.ongoing_transactions().is_empty());
        assert_eq!(
            log.first_unstable_offset(),
            Some(0),
            "completed, not replicated"
        );
        assert_eq!(log.last_stable_offset(), 0);
        // The follower has the data but not the marker yet.
        log.advance_replicated_bound(2);
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (2, 0));
        log.advance_replicated_bound(3);
        glommio::timer::sleep(Duration::from_millis(50)).await;
        assert_eq!(log.high_watermark(), 3);
        assert_eq!(log.last_stable_offset(), 3);
        assert_eq!(log.first_unstable_offset(), None);
        log.close().await.unwrap();
    });
}

#[test]
fn timestamp_lookups_for_read_committed_find_only_stable_records() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        put(&log, plain_batch(-1, -1, -1, "a")).await; // ts 1000, offset 0
        let mut b = BatchBuilder::new(Compression::None)
            .transactional(true)
            .producer(3, 0, 0);
        b.append(5_000, Some(Bytes::from_static(b"k")), None, vec![])
            .unwrap();
        put(&log, Bytes::from(b.build().unwrap())).await; // offset 1, open
        assert_eq!(
            log.offset_for_timestamp(4_000).await.unwrap(),
            Some((1, 5_000))
        );
        assert_eq!(
            log.offset_for_timestamp_committed(4_000).await.unwrap(),
            None
        );
        assert_eq!(log.max_timestamp_offset().await.unwrap(), Some((1, 5_000)));
        assert_eq!(log.max_timestamp_offset_committed().await.unwrap(), None);
        assert_eq!(
            log.offset_for_timestamp_committed(0).await.unwrap(),
            Some((0, 1_000))
        );
        end(&log, marker(3, 0, TxnResult::Commit, 0)).await;
        assert_eq!(
            log.offset_for_timestamp_committed(4_000).await.unwrap(),
            Some((1, 5_000))
        );
        assert_eq!(log.offsets().last_stable_offset, 3);
        log.close().await.unwrap();
    });
}

#[test]
fn aborted_and_open_records_never_supersede_committed_ones_in_compaction() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            cleanup_compact: true,
            ..small_config()
        };
        let log = open(&path, config).await;
        // Committed value of "k", then an aborted one and an open one.
        put(&log, txn_batch(1, 0, 0, 1, "k")).await;
        end(&log, marker(1, 0, TxnResult::Commit, 0)).await;
        put(&log, txn_batch(2, 0, 0, 1, "k")).await;
        end(&log, marker(2, 0, TxnResult::Abort, 0)).await;
        put(&log, txn_batch(3, 0, 0, 1, "k")).await;
        // Filler so the segments holding them are sealed.
        for i in 0..60 {
            put(&log, plain_batch(9, 0, i, &format!("f{i}"))).await;
        }
        glommio::timer::sleep(Duration::from_millis(100)).await;
        log.compact_with_ratio(i64::MAX / 2, 0.0).await.unwrap();
        // The committed value of "k" at offset 0 is still there.
        let r = log.read(0, 100).await.unwrap();
        let first = BatchView::parse(&r.batches[0]).unwrap();
        assert_eq!(first.base_offset(), 0, "the committed record was kept");
        // The aborted transaction is still named after the swap.
        let (_, aborted) = read_committed_all(&log, 0).await;
        assert_eq!(aborted.len(), 1);
        assert_eq!(aborted[0].producer_id, 2);
        log.close().await.unwrap();
    });
}

#[test]
fn active_producers_report_sequences_open_transactions_and_marker_epochs() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        assert!(log.active_producers().is_empty());
        put(&log, plain_batch(5, 0, 0, "a")).await;
        put(&log, txn_batch(9, 2, 0, 3, "b")).await;
        put(&log, txn_batch(9, 2, 3, 2, "b")).await;
        let before = log.active_producers();
        assert_eq!(
            before,
            vec![
                ActiveProducer {
                    producer_id: 5,
                    producer_epoch: 0,
                    last_sequence: 0,
                    last_timestamp: 1_000,
                    coordinator_epoch: -1,
                    current_txn_start_offset: -1,
                },
                ActiveProducer {
                    producer_id: 9,
                    producer_epoch: 2,
                    last_sequence: 4,
                    last_timestamp: 1_002, // the first batch's newest record
                    coordinator_epoch: -1,
                    current_txn_start_offset: 1,
                },
            ]
        );
        end(&log, marker(9, 2, TxnResult::Abort, 7)).await;
        let after = log.active_producers();
        assert_eq!(after[1].current_txn_start_offset, -1);
        assert_eq!(after[1].coordinator_epoch, 7);
        assert_eq!(after[1].last_sequence, 4, "a marker has no sequence");
        // The same state after a reopen (rebuilt from the log or snapshot).
        log.close().await.unwrap();
        let log = open(&path, small_config()).await;
        assert_eq!(log.active_producers(), after);
        log.close().await.unwrap();
    });
}
