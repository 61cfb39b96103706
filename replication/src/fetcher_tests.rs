//! Where a follower cuts its log (KIP-101 / KIP-279), on real logs.

use std::path::Path;

use bytes::{Bytes, BytesMut};
use shard::log::{AckLevel, LogConfig, PartitionLog};
use shard::record::{self, BatchBuilder, Compression};
use shard::rt::run_local;

use super::truncation_point;

fn test_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-data");
    std::fs::create_dir_all(&root).unwrap();
    tempfile::tempdir_in(root).unwrap()
}

/// `n` records numbered by a leader from `base` in `epoch`.
fn leader_batch(base: i64, n: usize, epoch: i32) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        b.append(
            1000 + i as i64,
            None,
            Some(Bytes::from(format!("v{i}"))),
            vec![],
        )
        .unwrap();
    }
    let mut out = BytesMut::from(&b.build().unwrap()[..]);
    record::set_base_offset(&mut out, base);
    record::set_partition_leader_epoch(&mut out, epoch);
    out.freeze()
}

/// A follower log: epoch 1 on 0..10, epoch 3 on 10..15.
async fn follower(dir: &Path) -> std::rc::Rc<PartitionLog> {
    let log = PartitionLog::open(dir.to_path_buf(), "t-0".into(), LogConfig::default())
        .await
        .unwrap();
    for base in (0..10).step_by(2) {
        log.append_as_follower(leader_batch(base, 2, 1), AckLevel::Durable)
            .await
            .unwrap();
    }
    log.append_as_follower(leader_batch(10, 5, 3), AckLevel::Durable)
        .await
        .unwrap();
    log
}

#[test]
fn a_follower_cuts_where_its_last_epoch_ends_on_the_leader() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = follower(&path).await;
        // The leader has epoch 3 too, ending at 12: cut there, done.
        assert_eq!(truncation_point(&log, 3, 3, 12), Some((12, true)));
        // The leader's epoch 3 is longer than ours: nothing to cut.
        assert_eq!(truncation_point(&log, 3, 3, 40), Some((15, true)));
        // The leader never had epoch 3; its epoch 1 ends at 8: cut at 8
        // (ours ends at 10) and ask again with epoch 1.
        assert_eq!(truncation_point(&log, 3, 1, 8), Some((8, false)));
        // Its epoch 1 ends past ours: cut at ours (10), ask again.
        assert_eq!(truncation_point(&log, 3, 1, 12), Some((10, false)));
        // It knows no epoch at or below ours (it does not lead in its
        // epoch yet): nothing is cut, not even down to a bound that
        // following reset to the log start.
        log.reset_replicated_bound(0);
        assert_eq!(truncation_point(&log, 3, -1, -1), None);
        // The whole round trip on the log: cut at 8, then epochs agree.
        assert!(log.truncate_to(8).await.unwrap());
        assert_eq!(log.log_end_offset(), 8);
        let last = log.leader_epoch_entries().last().unwrap().epoch;
        assert_eq!(last, 1);
        assert_eq!(truncation_point(&log, 1, 1, 8), Some((8, true)));
    });
}

/// A fetcher's shared state for leader 2, following nothing yet.
fn shared() -> super::Shared {
    super::Shared {
        id: u64::MAX,
        leader: 2,
        me: 1,
        dialer: std::rc::Rc::new(crate::conn::PlainDialer),
        addr: std::cell::Cell::new("127.0.0.1:9".parse().unwrap()),
        partitions: std::cell::RefCell::new(std::collections::BTreeMap::new()),
        changed: shard::signal::Signal::new(),
        stopped: std::cell::Cell::new(false),
    }
}

fn follow(s: &super::Shared, log: &std::rc::Rc<PartitionLog>, epoch: i32) {
    s.partitions.borrow_mut().insert(
        ("t".to_string(), 0),
        super::Followed {
            log: log.clone(),
            leader_epoch: epoch,
            state: super::State::Truncating,
            retry_at: None,
            lag_messages: 0,
            caught_up_ms: 0,
        },
    );
}

#[test]
fn a_former_leaders_epoch_answer_cuts_nothing() {
    use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = follower(&path).await;
        let tp = ("t".to_string(), 0);
        // Leader 2 (asked in epoch 3, our last epoch 3) says its epoch 1
        // ends at 8.
        let answer = || {
            std::collections::BTreeMap::from([(
                tp.clone(),
                EpochEndOffset::default()
                    .with_partition(0)
                    .with_leader_epoch(1)
                    .with_end_offset(8),
            )])
        };
        let s = shared();
        // The answer came after this replica was elected leader (the
        // partition is followed no more): its log stays whole.
        super::apply_epoch_answers(&s, vec![(tp.clone(), log.clone(), 3, 3)], answer()).await;
        assert_eq!(log.log_end_offset(), 15);
        // Or after it began to follow in a newer epoch: the same.
        follow(&s, &log, 4);
        super::apply_epoch_answers(&s, vec![(tp.clone(), log.clone(), 3, 3)], answer()).await;
        assert_eq!(log.log_end_offset(), 15);
        // A leader that knows no epoch at or below ours (UNDEFINED): asked
        // again later, nothing cut (the bound is the log start here).
        let undefined = std::collections::BTreeMap::from([(
            tp.clone(),
            EpochEndOffset::default()
                .with_partition(0)
                .with_leader_epoch(-1)
                .with_end_offset(-1),
        )]);
        log.reset_replicated_bound(0);
        super::apply_epoch_answers(&s, vec![(tp.clone(), log.clone(), 4, 3)], undefined).await;
        assert_eq!(log.log_end_offset(), 15);
        assert!(s.partitions.borrow()[&tp].retry_at.is_some());
        // Asked in the epoch it is followed in: cut.
        super::apply_epoch_answers(&s, vec![(tp.clone(), log.clone(), 4, 3)], answer()).await;
        assert_eq!(log.log_end_offset(), 8);
    });
}

#[test]
fn a_former_leaders_fetch_answer_appends_nothing() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = follower(&path).await;
        log.reset_replicated_bound(10);
        let tp = ("t".to_string(), 0);
        let s = shared();
        let answer = || super::LeaderOffsets {
            high_watermark: 17,
            log_start: 0,
        };
        // Sent in epoch 3, answered after this replica was elected.
        super::append(
            &s,
            tp.clone(),
            log.clone(),
            3,
            15,
            leader_batch(15, 2, 3),
            answer(),
        )
        .await;
        assert_eq!(log.log_end_offset(), 15);
        assert_eq!(log.high_watermark(), 10, "nor does its high watermark move");
        // Still followed as asked: appended.
        follow(&s, &log, 3);
        super::append(&s, tp, log.clone(), 3, 15, leader_batch(15, 2, 3), answer()).await;
        assert_eq!(log.log_end_offset(), 17);
        assert_eq!(log.high_watermark(), 17);
    });
}

#[test]
fn records_with_a_small_share_of_their_answer_are_copied_out() {
    let answer = Bytes::from(vec![7u8; 10_000]);
    let held = answer.as_ptr_range();
    // A few markers among other partitions' data: copied, so the cache
    // does not keep the whole answer alive.
    let small = super::own_records(answer.slice(100..400), answer.len());
    assert!(
        !held.contains(&small.as_ptr()),
        "a slice of the answer was kept"
    );
    assert_eq!(small, answer.slice(100..400));
    // Most of the answer: kept as the slice it is (no copy on the bulk
    // path); what it keeps alive is at most twice what it counts.
    let bulk = super::own_records(answer.slice(40..9_000), answer.len());
    assert_eq!(bulk.as_ptr(), answer.slice(40..).as_ptr());
    let half = super::own_records(answer.slice(0..5_000), answer.len());
    assert_eq!(half.as_ptr(), answer.as_ptr());
}
