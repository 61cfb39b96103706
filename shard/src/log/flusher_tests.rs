//! Tests of the flusher's chunked writes and group-commit window: big
//! flushes split into many concurrent pieces must land byte-exact and
//! recover after a crash; the window must never ack before the covering
//! sync nor delay an idle partition's lone write.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::tests::{open, test_dir};
use super::*;
use crate::record::{BatchBuilder, BatchView, Compression};
use crate::runtime::run_local;

/// A batch of `n` records of `value_len` bytes whose content depends on `tag`
/// (so misplaced pieces would show up as wrong bytes, not just bad CRCs).
fn batch(n: usize, value_len: usize, tag: u64) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..n {
        let seed = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i as u64;
        let value: Vec<u8> = (0..value_len)
            .map(|j| (seed.wrapping_add(j as u64 * 31) >> 3) as u8)
            .collect();
        b.append(1000 + i as i64, None, Some(Bytes::from(value)), vec![])
            .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

fn chunked_config() -> LogConfig {
    LogConfig {
        segment_bytes: 3 << 20,
        max_message_bytes: 8 << 20,
        // Odd sizes on purpose: 3 pages per piece, 3 in flight.
        write_chunk_bytes: 12 << 10,
        write_queue_depth: 3,
        tail_cache_bytes: 64 << 20,
        preallocate: false,
        ..LogConfig::default()
    }
}

/// Raw bytes of every batch from `from`, as `read` returns them.
async fn read_bytes(log: &PartitionLog, from: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let r = log.read(at, 1 << 20).await.unwrap();
        if r.batches.is_empty() {
            return out;
        }
        for chunk in &r.batches {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let b = BatchView::parse_verified(rest).unwrap();
                out.extend_from_slice(&rest[..b.size()]);
                at = b.last_offset() + 1;
                rest = &rest[b.size()..];
            }
        }
    }
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        // A live log's flusher may rename or remove a file between the
        // listing and the copy (a durable write's `.tmp`): a crash image
        // taken a moment later would not have it either.
        match std::fs::copy(e.path(), to.join(e.file_name())) {
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            other => {
                other.unwrap();
            }
        }
    }
}

#[test]
fn big_flushes_split_into_chunks_land_byte_exact_and_recover() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let live = path.join("live");
        let log = open(&live, chunked_config()).await;
        // One 5 MiB batch (a single job of ~430 pieces), then a burst of
        // unacknowledged batches that pile up into multi-MiB flushes and
        // roll segments (so sealing jobs are chunked too).
        log.append(batch(5, 1 << 20, 1), AckLevel::Durable)
            .await
            .unwrap();
        for tag in 2..40u64 {
            log.append(batch(3, 50_000 + tag as usize * 977, tag), AckLevel::None)
                .await
                .unwrap();
        }
        let last = log
            .append(batch(1, 10, 99), AckLevel::Durable)
            .await
            .unwrap();
        assert!(log.segment_count() > 1, "the burst must roll segments");
        {
            let inner = log.inner.borrow();
            assert!(inner.offsets.synced() > last.last_offset);
        }
        // The tail cache holds every batch exactly as appended.
        let expected = read_bytes(&log, 0).await;
        assert_eq!(expected.len() as u64, log.offsets().size_bytes);

        // A kill -9 now leaves what the disk holds: all of it, recoverable.
        copy_dir(&live, &path.join("crash"));
        let crashed = open(&path.join("crash"), chunked_config()).await;
        assert_eq!(crashed.log_end_offset(), last.last_offset + 1);
        assert_eq!(read_bytes(&crashed, 0).await, expected);
        crashed.close().await.unwrap();

        log.close().await.unwrap();
        let on_disk: Vec<u8> = segment_files(&live)
            .iter()
            .flat_map(|f| std::fs::read(f).unwrap())
            .collect();
        assert_eq!(on_disk.len(), expected.len());
        assert!(on_disk == expected, "segment files differ from the appends");

        let reopened = open(&live, chunked_config()).await;
        assert_eq!(read_bytes(&reopened, 0).await, expected);
        let next = reopened
            .append(batch(2, 3000, 7), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(next.base_offset, last.last_offset + 1);
        reopened.close().await.unwrap();
    });
}

#[test]
fn commit_window_acks_only_synced_batches() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            group_commit_window_us: 2_000,
            ..chunked_config()
        };
        let log = open(&path, config.clone()).await;
        // Many concurrent producers: the flusher streams and uses the window.
        let appends = (0..64u64).map(|tag| {
            let log = log.clone();
            async move {
                let info = log
                    .append(batch(2, 500, tag), AckLevel::Durable)
                    .await
                    .unwrap();
                // The ack never precedes the sync that covers the batch.
                assert!(log.inner.borrow().offsets.synced() > info.last_offset);
                info
            }
        });
        let mut infos = futures::future::join_all(appends).await;
        infos.sort_by_key(|i| i.base_offset);
        for pair in infos.windows(2) {
            assert_eq!(pair[0].last_offset + 1, pair[1].base_offset);
        }
        let end = log.log_end_offset();
        assert_eq!(end, 128);
        assert_eq!(log.inner.borrow().offsets.synced(), end);
        log.close().await.unwrap();
        let reopened = open(&path, config).await;
        assert_eq!(reopened.log_end_offset(), end);
        reopened.close().await.unwrap();
    });
}

#[test]
fn commit_window_does_not_delay_an_idle_partition() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            // Absurdly long so a wrongly applied window is obvious.
            group_commit_window_us: 2_000_000,
            ..chunked_config()
        };
        let log = open(&path, config).await;
        for tag in 0..3 {
            let started = Instant::now();
            log.append(batch(1, 100, tag), AckLevel::Durable)
                .await
                .unwrap();
            assert!(
                started.elapsed() < Duration::from_millis(1_000),
                "a lone append waited for the commit window"
            );
        }
        log.close().await.unwrap();
    });
}
