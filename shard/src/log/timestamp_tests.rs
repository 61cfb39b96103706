//! Timestamp lookups against real files: ListOffsets by time and
//! MAX_TIMESTAMP, and the sparse time index behind them, in the active
//! segment, sealed ones and after a reopen.

use std::rc::Rc;

use bytes::Bytes;

use super::tests::{batch, open, small_config, test_dir};
use super::*;
use crate::record::{BatchBuilder, Compression};
use crate::runtime::run_local;

#[test]
fn offsets_for_timestamps_find_the_first_record_at_or_after() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        // Batch i holds 3 records with timestamps 10_000 + 10*i + {0,1,2}.
        for i in 0..100i64 {
            log.append(batch(3, 10_000 + 10 * i, i as u64), AckLevel::Durable)
                .await
                .unwrap();
        }
        assert_eq!(
            log.offset_for_timestamp(0).await.unwrap(),
            Some((0, 10_000))
        );
        assert_eq!(
            log.offset_for_timestamp(10_501).await.unwrap(),
            Some((151, 10_501))
        );
        assert_eq!(
            log.offset_for_timestamp(10_503).await.unwrap(),
            Some((153, 10_510))
        );
        assert_eq!(log.offset_for_timestamp(99_999).await.unwrap(), None);
        assert_eq!(
            log.max_timestamp_offset().await.unwrap(),
            Some((299, 10_992))
        );
        log.close().await.unwrap();
    });
}

#[test]
fn the_time_index_is_sparse_and_finds_every_timestamp() {
    // One record per batch, as transaction markers and small producers
    // write: the time index gets an entry per offset-index entry (every
    // `index_interval_bytes`), not per batch, and lookups stay exact in
    // the active segment, in sealed ones and after a reopen.
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        for i in 0..600i64 {
            log.append(batch(1, 50_000 + 10 * i, 1), AckLevel::Durable)
                .await
                .unwrap();
        }
        let check = |log: Rc<PartitionLog>| async move {
            {
                let inner = log.inner.borrow();
                assert!(inner.segments.len() > 3, "{}", inner.segments.len());
                for seg in inner.segments.values() {
                    let most = seg.size / small_config().index_interval_bytes + 2;
                    assert!(
                        seg.time_index.len() as u64 <= most,
                        "segment {}: {} time-index entries for {} bytes",
                        seg.base_offset,
                        seg.time_index.len(),
                        seg.size
                    );
                }
            }
            for i in (0..600i64).step_by(7).chain([599]) {
                let ts = 50_000 + 10 * i;
                assert_eq!(
                    log.offset_for_timestamp(ts).await.unwrap(),
                    Some((i, ts)),
                    "at {ts}"
                );
                assert_eq!(
                    log.offset_for_timestamp(ts - 5).await.unwrap(),
                    Some((i, ts)),
                    "before {ts}"
                );
            }
            assert_eq!(log.offset_for_timestamp(56_000).await.unwrap(), None);
            assert_eq!(
                log.max_timestamp_offset().await.unwrap(),
                Some((599, 55_990))
            );
            log
        };
        let log = check(log).await;
        log.close().await.unwrap();
        let log = open(&path, small_config()).await;
        let log = check(log).await;
        log.close().await.unwrap();
    });
}

fn batch_with_timestamps(timestamps: &[i64], compression: Compression) -> Bytes {
    let mut b = BatchBuilder::new(compression);
    for (i, ts) in timestamps.iter().enumerate() {
        b.append(*ts, None, Some(Bytes::from(format!("v{i}"))), vec![])
            .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

#[test]
fn max_timestamp_is_the_first_record_carrying_it() {
    // Kafka (since KAFKA-16310) answers ListOffsets MAX_TIMESTAMP with the
    // first record that has the largest timestamp, not the batch's last
    // offset, also inside a compressed batch and after a reopen.
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        log.append(
            batch_with_timestamps(&[500], Compression::None),
            AckLevel::Durable,
        )
        .await
        .unwrap();
        log.append(
            batch_with_timestamps(&[1000, 3000, 3000, 2000], Compression::Gzip),
            AckLevel::Durable,
        )
        .await
        .unwrap();
        // A later record with the same timestamp does not win.
        log.append(
            batch_with_timestamps(&[3000, 100], Compression::None),
            AckLevel::Durable,
        )
        .await
        .unwrap();
        assert_eq!(log.max_timestamp_offset().await.unwrap(), Some((2, 3000)));
        log.close().await.unwrap();
        let log = open(&path, small_config()).await;
        assert_eq!(log.max_timestamp_offset().await.unwrap(), Some((2, 3000)));
        log.close().await.unwrap();
    });
}
