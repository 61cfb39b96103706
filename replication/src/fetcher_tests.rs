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
        assert_eq!(truncation_point(&log, 3, 3, 12), (12, true));
        // The leader's epoch 3 is longer than ours: nothing to cut.
        assert_eq!(truncation_point(&log, 3, 3, 40), (15, true));
        // The leader never had epoch 3; its epoch 1 ends at 8: cut at 8
        // (ours ends at 10) and ask again with epoch 1.
        assert_eq!(truncation_point(&log, 3, 1, 8), (8, false));
        // Its epoch 1 ends past ours: cut at ours (10), ask again.
        assert_eq!(truncation_point(&log, 3, 1, 12), (10, false));
        // It knows no epoch at or below ours: keep what is committed.
        log.reset_replicated_bound(6);
        assert_eq!(truncation_point(&log, 3, -1, -1), (6, true));
        // The whole round trip on the log: cut at 8, then epochs agree.
        assert!(log.truncate_to(8).await.unwrap());
        assert_eq!(log.log_end_offset(), 8);
        let last = log.leader_epoch_entries().last().unwrap().epoch;
        assert_eq!(last, 1);
        assert_eq!(truncation_point(&log, 1, 1, 8), (8, true));
    });
}
