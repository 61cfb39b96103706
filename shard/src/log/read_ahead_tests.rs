//! Read-ahead (`read_ahead.rs`) and reads in pieces (`walk_ahead`): a
//! consumer reading a backlog in full fetches gets exactly the batches of
//! the log, the next fetch uses what was read ahead, and a log truncated
//! and rewritten meanwhile is never served from the stale read-ahead.

use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;

use super::read_ahead;
use super::tests::{batch, open, test_dir};
use super::*;
use crate::record::BatchView;
use crate::runtime::run_local;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        index_interval_bytes: 4096,
        // Nothing recent stays in memory: every read below goes to disk.
        tail_cache_bytes: 0,
        ..LogConfig::default()
    }
}

/// Every batch read from `from` on in fetches of `max_bytes`, as bytes.
async fn fetch_all(log: &PartitionLog, from: i64, max_bytes: usize) -> Vec<Bytes> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let r = log.read(at, max_bytes).await.unwrap();
        if r.batches.is_empty() {
            return out;
        }
        for span in &r.batches {
            let mut rest = span.clone();
            while !rest.is_empty() {
                let b = BatchView::parse_verified(&rest).unwrap();
                let size = b.size();
                if b.last_offset() >= at {
                    at = b.last_offset() + 1;
                    out.push(rest.slice(..size));
                }
                rest = rest.slice(size..);
            }
        }
    }
}

/// Appended batches (with their offsets set) and the log.
async fn filled(dir: &Path, batches: u64) -> (Rc<PartitionLog>, Vec<Bytes>) {
    let log = open(dir, config()).await;
    for i in 0..batches {
        log.append(batch(40, 1000 + i as i64, i), AckLevel::Durable)
            .await
            .unwrap();
    }
    // Written to the segment (not only in the ring) before reading it back.
    log.close().await.unwrap();
    let log = open(dir, config()).await;
    let all = fetch_all_direct(&log).await;
    assert_eq!(all.len() as u64, batches);
    (log, all)
}

/// The log's batches read one fetch of everything at a time.
async fn fetch_all_direct(log: &PartitionLog) -> Vec<Bytes> {
    fetch_all(log, 0, 1 << 30).await
}

#[test]
fn full_fetches_in_order_use_the_read_ahead_and_get_every_batch() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let (log, expected) = filled(&path, 3000).await;
        let total: usize = expected.iter().map(Bytes::len).sum();
        assert!(total > 3 << 20, "several pieces of reading: {total} bytes");
        let before = read_ahead::stats();
        // Fetches of 256 KiB: each stops full, so each starts a read-ahead
        // that the next one uses.
        let got = fetch_all(&log, 0, 256 << 10).await;
        assert_eq!(got, expected);
        let after = read_ahead::stats();
        let fetches = (total / (256 << 10)) as u64;
        assert!(
            after.started - before.started >= fetches - 1,
            "{before:?} {after:?}"
        );
        assert!(
            after.used - before.used >= fetches - 2,
            "{before:?} {after:?}"
        );
        // Fetches from the middle of batches and of different sizes.
        for (from, max) in [(7, 1000), (333, 100 << 10), (20_000, 3 << 20)] {
            let got = fetch_all(&log, from, max).await;
            let want: Vec<Bytes> = expected
                .iter()
                .filter(|b| BatchView::parse(b).unwrap().last_offset() >= from)
                .cloned()
                .collect();
            assert_eq!(got, want, "from {from}, {max} bytes a fetch");
        }
        log.close().await.unwrap();
        drop(log);
        assert!(read_ahead::stats().held_bytes <= read_ahead::SHARD_BUDGET);
    });
}

#[test]
fn a_log_truncated_and_rewritten_is_not_served_from_a_stale_read_ahead() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let (log, old) = filled(&path, 400).await;
        // A full fetch from 0 reads ahead from the next batch on.
        let first = log.read(0, 64 << 10).await.unwrap();
        let served: usize = first.batches.iter().map(Bytes::len).sum();
        assert!(served > 0 && served <= 64 << 10);
        let started = read_ahead::stats().started;
        assert!(started > 0);
        let next = {
            let mut at = 0;
            for span in &first.batches {
                let mut rest = &span[..];
                while !rest.is_empty() {
                    let b = BatchView::parse(rest).unwrap();
                    at = b.last_offset() + 1;
                    rest = &rest[b.size()..];
                }
            }
            at
        };
        // Cut the log there and append other batches at the same offsets.
        assert!(log.truncate_to(next).await.unwrap());
        let mut fresh = Vec::new();
        for i in 0..50u64 {
            let info = log
                .append(batch(40, 9000 + i as i64, 10_000 + i), AckLevel::Durable)
                .await
                .unwrap();
            fresh.push(info);
        }
        assert_eq!(fresh[0].base_offset, next);
        let got = fetch_all(&log, next, 64 << 10).await;
        assert_eq!(got.len(), 50);
        for (b, want) in got.iter().zip(&fresh) {
            let view = BatchView::parse(b).unwrap();
            assert_eq!(view.base_offset(), want.base_offset);
            assert!(
                view.base_timestamp() >= 9000,
                "a batch of the old log was served"
            );
        }
        let old_next = old
            .iter()
            .find(|b| BatchView::parse(b).unwrap().base_offset() == next)
            .unwrap();
        assert_ne!(&got[0], old_next);
        log.close().await.unwrap();
    });
}
