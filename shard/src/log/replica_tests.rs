//! The replicated bound on the high watermark (`replica.rs`): what
//! consumers and followers may read, the acks=all wait, and the bound kept
//! across a truncation and a reopen's role reset.

use std::time::Duration;

use super::tests::{batch, open, read_all, small_config, test_dir};
use super::*;
use crate::runtime::run_local;

fn offsets_read(r: &ReadOutcome) -> Vec<i64> {
    r.batches
        .iter()
        .map(|b| crate::record::BatchView::parse(b).unwrap().base_offset())
        .collect()
}

#[test]
fn consumers_read_below_the_bound_and_followers_below_the_durable_end() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        // A leader whose followers have nothing yet.
        log.reset_replicated_bound(0);
        for i in 0..3u64 {
            log.append(batch(2, 1000, i), AckLevel::Durable)
                .await
                .unwrap();
        }
        assert_eq!(log.durable_end(), 6);
        assert_eq!(log.high_watermark(), 0);
        assert!(read_all(&log, 0).await.is_empty(), "nothing is committed");
        let r = log.read_for_follower(0, 1 << 20).await.unwrap();
        assert_eq!(offsets_read(&r), vec![0, 2, 4]);
        assert_eq!(r.high_watermark, 0, "followers learn the high watermark");
        // The followers caught up to 4.
        assert!(log.advance_replicated_bound(4));
        assert_eq!(read_all(&log, 0).await, vec![(0, 1), (2, 3)]);
        assert!(!log.advance_replicated_bound(2), "never back within a role");
        assert_eq!(log.offsets().high_watermark, 4);
    });
}

#[test]
fn an_acks_all_wait_ends_when_the_bound_passes_the_batch_or_at_its_timeout() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        log.reset_replicated_bound(0);
        let info = log
            .append(batch(3, 1000, 1), AckLevel::Durable)
            .await
            .unwrap();
        let never = std::future::pending::<()>();
        let waited = log
            .wait_high_watermark(info.last_offset, Duration::from_millis(50), never)
            .await
            .unwrap();
        assert_eq!(waited, HighWatermarkWait::TimedOut);
        // A follower fetches past the batch a little later.
        let l2 = log.clone();
        let later = crate::rt::spawn_local(async move {
            glommio::timer::sleep(Duration::from_millis(20)).await;
            l2.advance_replicated_bound(3);
        });
        let waited = log
            .wait_high_watermark(info.last_offset, Duration::from_secs(10), never_ends())
            .await
            .unwrap();
        assert_eq!(waited, HighWatermarkWait::Reached);
        later.await;
        // Interrupted: the caller's own reason (the ISR changed) comes first.
        let info = log
            .append(batch(1, 1000, 2), AckLevel::Durable)
            .await
            .unwrap();
        let waited = log
            .wait_high_watermark(
                info.last_offset,
                Duration::from_secs(10),
                glommio::timer::sleep(Duration::from_millis(10)),
            )
            .await
            .unwrap();
        assert_eq!(waited, HighWatermarkWait::Interrupted);
    });
}

async fn never_ends() {
    std::future::pending::<()>().await
}

#[test]
fn a_truncated_follower_keeps_its_bound_and_a_waiter_below_the_cut_hears_of_it() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        for i in 0..4u64 {
            log.append(batch(1, 1000, i), AckLevel::Durable)
                .await
                .unwrap();
        }
        // As a follower of a leader that committed 2.
        log.reset_replicated_bound(2);
        assert_eq!(log.high_watermark(), 2);
        let l2 = log.clone();
        let waiter = crate::rt::spawn_local(async move {
            l2.wait_high_watermark(3, Duration::from_secs(10), never_ends())
                .await
        });
        glommio::timer::sleep(Duration::from_millis(10)).await;
        assert!(log.truncate_to(3).await.unwrap());
        assert_eq!(log.log_end_offset(), 3);
        assert_eq!(log.high_watermark(), 2, "the bound outlives the reload");
        assert!(matches!(waiter.await, Err(LogError::Storage(_))));
        // Leading alone again: everything durable is visible.
        log.reset_replicated_bound(UNBOUNDED);
        assert_eq!(log.high_watermark(), 3);
    });
}
