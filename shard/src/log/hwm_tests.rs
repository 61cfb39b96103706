//! The high watermark and storage faults: reads never return what is not
//! yet as durable as the flush mode promises, with a slow or a failing
//! device (injected into the flusher); a failed write is never served; the
//! log recovers in place from its files and idempotent retries stay exact.

use std::time::{Duration, Instant};

use super::tests::{
    batch, batch_with_producer, open, open_manual, read_all, small_config, test_dir,
};
use super::*;
use crate::runtime::run_local;

const LONG: Duration = Duration::from_secs(10);

fn interval_config() -> LogConfig {
    LogConfig {
        flush_mode: FlushMode::Interval,
        flush_interval_ms: 600_000,
        flush_interval_bytes: u64::MAX,
        ..small_config()
    }
}

/// Let the flusher run (it is a task on this executor).
async fn settle() {
    glommio::timer::sleep(Duration::from_millis(50)).await;
}

#[test]
fn a_slow_write_is_invisible_until_synced_and_appends_do_not_wake_fetches() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        for i in 0..3u64 {
            log.append(batch(2, 1000, i), AckLevel::Durable)
                .await
                .unwrap();
        }
        let durable_end = log.high_watermark();
        assert_eq!(durable_end, 6);
        // The device stalls: an acks=0 batch is in the log's memory only,
        // and an acks=all one waits for it.
        log.inject.hold_writes.set(true);
        let unacked = log
            .append(batch(1, 5000, 10), AckLevel::None)
            .await
            .unwrap();
        assert_eq!(unacked.base_offset, durable_end);
        let waiting = crate::rt::spawn_local({
            let log = log.clone();
            async move { log.append(batch(1, 6000, 11), AckLevel::Durable).await }
        });
        settle().await;
        assert_eq!(log.log_end_offset(), durable_end + 2);

        let r = log.read(durable_end, 1 << 20).await.unwrap();
        assert!(r.batches.is_empty(), "served a batch that is not durable");
        assert_eq!(r.high_watermark, durable_end);
        assert_eq!(log.offsets().high_watermark, durable_end);
        assert_eq!(read_all(&log, 0).await.len(), 3);
        // Timestamp lookups do not find it either (Kafka answers -1).
        assert_eq!(log.offset_for_timestamp(5000).await.unwrap(), None);
        assert_eq!(log.max_timestamp_offset().await.unwrap(), None);

        // A fetch long-poll is not woken by the appends.
        let started = Instant::now();
        log.wait_for_data(durable_end, Duration::from_millis(300))
            .await;
        assert!(started.elapsed() >= Duration::from_millis(250));
        assert_eq!(log.high_watermark(), durable_end);

        // The write and its sync complete: both become visible, the
        // waiting producer is answered, the long-poll wakes at once.
        log.inject.release_writes();
        let started = Instant::now();
        log.wait_for_data(durable_end, LONG).await;
        assert!(started.elapsed() < Duration::from_secs(2));
        let acked = waiting.await.unwrap();
        assert!(log.high_watermark() > acked.last_offset);
        assert_eq!(read_all(&log, 0).await.len(), 5);
        assert_eq!(
            log.offset_for_timestamp(5000).await.unwrap(),
            Some((durable_end, 5000))
        );
        {
            let inner = log.inner.borrow();
            assert_eq!(inner.offsets.high_watermark(), inner.offsets.synced());
        }
        log.close().await.unwrap();
    });
}

#[test]
fn interval_mode_shows_what_is_written_before_it_is_synced() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, interval_config()).await;
        log.inject.hold_writes.set(true);
        log.append(batch(3, 1000, 1), AckLevel::None).await.unwrap();
        settle().await;
        assert!(log.read(0, 1 << 20).await.unwrap().batches.is_empty());
        log.inject.release_writes();
        log.wait_for_data(0, LONG).await;
        assert_eq!(read_all(&log, 0).await, vec![(0, 2)]);
        {
            let inner = log.inner.borrow();
            assert_eq!(inner.offsets.high_watermark(), 3);
            assert_eq!(inner.offsets.synced(), 0, "visible before any fdatasync");
        }
        log.close().await.unwrap();
    });
}

#[test]
fn a_failed_write_is_never_served_and_writes_resume_after_recovery() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let (log, clock) = open_manual(&path, small_config()).await;
        let a = log
            .append(batch(2, 1000, 1), AckLevel::Durable)
            .await
            .unwrap();
        let durable_end = a.last_offset + 1;
        log.inject.fail_writes.set(true);
        // acks=0 is accepted into memory; acks=all learns of the failure.
        log.append(batch(1, 1000, 2), AckLevel::None).await.unwrap();
        let err = log
            .append(batch(1, 1000, 3), AckLevel::Durable)
            .await
            .unwrap_err();
        assert!(matches!(err, LogError::Storage(_)), "{err:?}");
        assert!(err.to_string().contains("disk holding"), "{err}");
        assert!(log.is_offline());
        assert_eq!(log.high_watermark(), durable_end);
        assert_eq!(log.log_end_offset(), durable_end + 2);
        // Never served: not now, and not under a later long-poll.
        assert!(log
            .read(durable_end, 1 << 20)
            .await
            .unwrap()
            .batches
            .is_empty());
        assert_eq!(read_all(&log, 0).await, vec![(0, 1)]);

        // Within the backoff, appends are refused without a recovery.
        log.inject.fail_writes.set(false);
        let refused = log.append(batch(1, 1000, 4), AckLevel::Durable).await;
        assert!(refused.is_err(), "recovered before the backoff");

        // Space is back: the next append (after the 1 s backoff, moved on
        // the log's clock rather than slept) recovers the log from its
        // files. The lost batches' offsets were never seen by anybody, so
        // the new batch takes the first of them.
        clock.advance(Duration::from_millis(999));
        let refused = log.append(batch(1, 1000, 4), AckLevel::Durable).await;
        assert!(refused.is_err(), "recovered 1 ms before the backoff ends");
        clock.advance(Duration::from_millis(1));
        let d = log
            .append(batch(3, 1000, 5), AckLevel::Durable)
            .await
            .unwrap();
        assert!(!log.is_offline());
        assert_eq!(d.base_offset, durable_end);
        let expected = vec![(0, 1), (durable_end, durable_end + 2)];
        assert_eq!(read_all(&log, 0).await, expected);
        let e = log
            .append(batch(1, 1000, 6), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(e.base_offset, durable_end + 3);
        log.close().await.unwrap();

        let reopened = open(&path, small_config()).await;
        assert_eq!(reopened.log_end_offset(), durable_end + 4);
        assert_eq!(read_all(&reopened, 0).await.len(), 3);
        reopened.close().await.unwrap();
    });
}

#[test]
fn a_failed_sync_keeps_the_written_batch_and_its_retry_is_a_duplicate() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        let p = |seq| Some((7, 0, seq));
        let first = log
            .append(batch_with_producer(2, 1000, 1, p(0)), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(first.base_offset, 0);
        // The write lands but its fdatasync fails: the producer gets an
        // error, consumers never see the batch while it is not synced.
        log.inject.fail_syncs.set(true);
        let second = batch_with_producer(2, 1000, 2, p(2));
        assert!(log.append(second.clone(), AckLevel::Durable).await.is_err());
        assert_eq!(log.high_watermark(), 2);
        assert!(log.read(2, 1 << 20).await.unwrap().batches.is_empty());

        log.inject.fail_syncs.set(false);
        log.inner.borrow_mut().retry_recovery_at = None;
        // The producer retries: recovery found the batch in the file and
        // replayed producer state from it, so the retry is answered with
        // the batch's offsets, not written twice.
        let retried = log.append(second, AckLevel::Durable).await.unwrap();
        assert!(retried.duplicate);
        assert_eq!(retried.base_offset, 2);
        assert_eq!(log.high_watermark(), 4);
        let third = log
            .append(batch_with_producer(1, 1000, 3, p(4)), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(third.base_offset, 4);
        assert_eq!(read_all(&log, 0).await, vec![(0, 1), (2, 3), (4, 4)]);
        log.close().await.unwrap();
    });
}

#[test]
fn batches_lost_across_segment_rolls_are_accepted_again_after_recovery() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        let p = |seq| Some((9, 0, seq));
        let mut seq = 0;
        for i in 0..30u64 {
            log.append(batch_with_producer(1, 1000, i, p(seq)), AckLevel::Durable)
                .await
                .unwrap();
            seq += 1;
        }
        let durable_end = log.high_watermark();
        assert_eq!(durable_end, 30);
        // Unacknowledged batches pile up across several 4 KiB segments
        // while the device stalls, then it fails.
        let segments_before = log.segment_count();
        log.inject.hold_writes.set(true);
        log.inject.fail_writes.set(true);
        let lost_from = seq;
        for i in 0..40u64 {
            log.append(
                batch_with_producer(4, 1000, 140 + i, p(seq)),
                AckLevel::None,
            )
            .await
            .unwrap();
            seq += 4;
        }
        log.inject.release_writes();
        settle().await;
        assert!(log.is_offline());
        assert!(
            log.segment_count() > segments_before + 1,
            "the burst rolled segments"
        );
        assert_eq!(log.high_watermark(), durable_end);

        log.inject.fail_writes.set(false);
        log.inner.borrow_mut().retry_recovery_at = None;
        // The producer resends the first lost batch: the recovered producer
        // state must not take it for a duplicate of a batch that is gone.
        let resent = log
            .append(
                batch_with_producer(1, 1000, 100, p(lost_from)),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        assert!(!resent.duplicate, "a lost batch was answered as written");
        assert!(resent.base_offset >= durable_end);
        let all = read_all(&log, 0).await;
        assert_eq!(all.len(), 31);
        assert_eq!(all.last(), Some(&(resent.base_offset, resent.base_offset)));
        log.close().await.unwrap();
        let reopened = open(&path, small_config()).await;
        assert_eq!(read_all(&reopened, 0).await, all);
        reopened.close().await.unwrap();
    });
}

#[test]
fn delete_records_stops_at_the_high_watermark() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        log.append(batch(4, 1000, 1), AckLevel::Durable)
            .await
            .unwrap();
        log.inject.hold_writes.set(true);
        log.append(batch(4, 1000, 2), AckLevel::None).await.unwrap();
        assert!(matches!(
            log.delete_records_before(6).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert_eq!(log.delete_records_before(-1).await.unwrap(), 4);
        log.inject.release_writes();
        log.wait_for_data(4, LONG).await;
        assert_eq!(log.delete_records_before(-1).await.unwrap(), 8);
        log.close().await.unwrap();
    });
}
