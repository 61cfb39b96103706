//! The write-ahead ring: what it acknowledged survives the loss of every
//! segment write after the last checkpoint; replay never brings back what a
//! truncation cut; laps of the ring and a torn frame are handled.

use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use super::frame::{self, PAGE};
use super::replay::{self, walk};
use crate::log::tests::{batch, read_all, small_config, test_dir};
use crate::log::{AckLevel, LogConfig, PartitionLog};
use crate::runtime::run_local;

const RING: u64 = 1 << 20;

async fn open_in(data_dir: &Path, name: &str, config: LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(data_dir.join(name), name.into(), config)
        .await
        .unwrap()
}

/// Prepare the ring and install it on this executor, as a broker shard does.
async fn install(data_dir: &Path) {
    let dir = data_dir.to_path_buf();
    let (next, _) = crate::blocking::run(move || replay::prepare(&dir, 1, RING))
        .await
        .unwrap();
    super::install(data_dir, 0, next[0].unwrap()).await.unwrap();
}

/// The executor ends with no close and no shutdown: a crash.
fn crash_after<F, Fut>(data_dir: &Path, f: F)
where
    F: FnOnce(std::path::PathBuf) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    let dir = data_dir.to_path_buf();
    run_local(move || async move {
        install(&dir).await;
        f(dir).await;
    });
}

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    out.sort();
    out
}

/// The tests' small config with segments of `bytes`.
fn with_segments(bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes: bytes,
        ..small_config()
    }
}

/// Append one batch of `records` records per tag, each acknowledged.
async fn append_durable(log: &PartitionLog, tags: std::ops::Range<u64>, records: usize) {
    for tag in tags {
        log.append(batch(records, 1000, tag), AckLevel::Durable)
            .await
            .unwrap();
    }
}

async fn offsets_after_restart(data_dir: &Path, name: &str) -> Vec<(i64, i64)> {
    let log = open_in(data_dir, name, small_config()).await;
    let got = read_all(&log, 0).await;
    log.close().await.unwrap();
    got
}

#[test]
fn acknowledged_batches_survive_losing_every_segment_write() {
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    let config = with_segments(1 << 20);
    crash_after(&data, move |data| async move {
        let a = open_in(&data, "a-0", config.clone()).await;
        let b = open_in(&data, "b-0", config).await;
        assert!(a.wal.is_some(), "batch mode uses the ring");
        // Both partitions in the same rounds: one frame covers both.
        let mut acks = Vec::new();
        for i in 0..20u64 {
            let (a, b) = (a.clone(), b.clone());
            acks.push(crate::rt::spawn_local(async move {
                a.append(batch(3, 1000, i), AckLevel::Durable)
                    .await
                    .unwrap();
                b.append(batch(2, 1000, i), AckLevel::Durable)
                    .await
                    .unwrap();
            }));
        }
        for ack in acks {
            ack.await;
        }
        assert_eq!((a.high_watermark(), b.high_watermark()), (60, 40));
    });
    // The power went: no segment write since the last checkpoint (there
    // was none after the ring's creation) reached the device.
    for part in ["a-0", "b-0"] {
        for seg in segment_files(&data.join(part)) {
            std::fs::OpenOptions::new()
                .write(true)
                .open(&seg)
                .unwrap()
                .set_len(0)
                .unwrap();
        }
    }
    let d = data.clone();
    let (_, stats) = replay::prepare(&d, 1, RING).unwrap();
    assert!(stats.frames >= 2 && stats.entries >= 2, "{stats:?}");
    assert_eq!(stats.skipped, 0);
    let got = run_local(move || async move {
        (
            offsets_after_restart(&data, "a-0").await,
            offsets_after_restart(&data, "b-0").await,
        )
    });
    assert_eq!(got.0.len(), 20);
    assert_eq!(got.0.last(), Some(&(57, 59)));
    assert_eq!(got.1.last(), Some(&(38, 39)));
}

#[test]
fn replay_never_brings_back_what_a_truncation_cut() {
    // Old and new batches have the same sizes, so if the old frames were
    // redone after the truncation, the old batches after the new ones
    // would line up and come back as valid batches.
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    crash_after(&data, move |data| async move {
        let config = with_segments(1 << 20);
        let log = open_in(&data, "t-0", config).await;
        append_durable(&log, 100..110, 1).await;
        let wal = log.wal.as_ref().unwrap().wal.clone();
        let before = wal.state.borrow().durable_checkpoint;
        assert!(log.truncate_to(5).await.unwrap());
        // The barrier took a checkpoint past the old frames.
        assert!(wal.state.borrow().durable_checkpoint.seq > before.seq);
        for tag in [155u64, 156] {
            log.append(batch(1, 1000, tag), AckLevel::Durable)
                .await
                .unwrap();
        }
        assert_eq!(log.log_end_offset(), 7);
    });
    replay::prepare(&data, 1, RING).unwrap();
    let got = run_local(move || async move { offsets_after_restart(&data, "t-0").await });
    assert_eq!(got.len(), 7, "{got:?}");
}

#[test]
fn laps_of_the_ring_checkpoint_and_replay_cleanly() {
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    crash_after(&data, move |data| async move {
        let config = with_segments(256 << 10);
        let log = open_in(&data, "t-0", config).await;
        // ~3 MiB through a 1 MiB ring: laps, wraps, checkpoints.
        append_durable(&log, 0..600, 40).await;
        let wal = log.wal.as_ref().unwrap().wal.clone();
        let st = wal.state.borrow();
        assert!(st.head > 2 * RING, "head {}", st.head);
        assert!(st.durable_checkpoint.lsn > RING);
        assert!(st.head - st.durable_checkpoint.lsn <= RING);
    });
    let (next, stats) = replay::prepare(&data, 1, RING).unwrap();
    assert!(next[0].unwrap() > 2 * RING);
    assert!(stats.frames >= 1);
    let got = run_local(move || async move { offsets_after_restart(&data, "t-0").await });
    assert_eq!(got.len(), 600);
    assert_eq!(got.last(), Some(&(599 * 40, 600 * 40 - 1)));
}

#[test]
fn a_clean_shutdown_leaves_nothing_to_redo() {
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    let d = data.clone();
    run_local(move || async move {
        install(&d).await;
        let log = open_in(&d, "t-0", small_config()).await;
        append_durable(&log, 0..5, 2).await;
        log.close().await.unwrap();
        super::shutdown().await.unwrap();
    });
    let (_, stats) = replay::prepare(&data, 1, RING).unwrap();
    assert_eq!(
        (stats.rings, stats.frames),
        (1, 1),
        "only the last marker: {stats:?}"
    );
    assert_eq!(stats.entries, 0);
}

#[test]
fn rounds_too_big_for_one_frame_are_split_or_synced_apart() {
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    crash_after(&data, move |data| async move {
        let config = with_segments(8 << 20);
        let a = open_in(&data, "a-0", config.clone()).await;
        let b = open_in(&data, "b-0", config.clone()).await;
        let c = open_in(&data, "c-0", config).await;
        let wal = a.wal.as_ref().unwrap().wal.clone();
        let max = wal.max_round_body();
        assert!(max < RING as usize / 2 && max > RING as usize / 2 - 2 * PAGE);
        // One round alone is over half the ring: it cannot be a frame, so
        // the partition syncs its segment itself (before: the ring refused
        // it and the produce failed).
        let big = batch(24000, 1000, 1);
        assert!(big.len() > max, "{} <= {max}", big.len());
        a.append(big, AckLevel::Durable).await.unwrap();
        // Three rounds that fit together in no frame (each small enough
        // to go through the ring, see DIRECT_ROUND_BYTES): several frames.
        let third = batch(9000, 1000, 2);
        assert!(
            third.len() < 256 << 10 && 3 * third.len() > max,
            "{}",
            third.len()
        );
        let frames_before = wal.state.borrow().head;
        let (x, y, z) = futures::join!(
            a.append(third.clone(), AckLevel::Durable),
            b.append(third.clone(), AckLevel::Durable),
            c.append(third, AckLevel::Durable)
        );
        x.unwrap();
        y.unwrap();
        z.unwrap();
        assert!(wal.state.borrow().head > frames_before);
        let hw = (a.high_watermark(), b.high_watermark(), c.high_watermark());
        assert_eq!(hw, (33000, 9000, 9000));
    });
    replay::prepare(&data, 1, RING).unwrap();
    let got = run_local(move || async move {
        (
            offsets_after_restart(&data, "a-0").await,
            offsets_after_restart(&data, "b-0").await,
            offsets_after_restart(&data, "c-0").await,
        )
    });
    assert_eq!(got.0, vec![(0, 23999), (24000, 32999)]);
    assert_eq!(got.1, vec![(0, 8999)]);
    assert_eq!(got.2, vec![(0, 8999)]);
}

/// A synthetic ring: frames at their LSNs, each with one entry of `data`.
fn ring_with(frames: &[(u64, u64, usize)]) -> Vec<u8> {
    let mut ring = vec![0u8; 16 * PAGE];
    for &(lsn, checkpoint, data_len) in frames {
        let body = frame::entry_len(3, data_len);
        let len = frame::frame_len(body);
        let mut f = vec![0u8; len];
        let at = frame::put_entry_header(&mut f, frame::HEADER, b"p/x", lsn, data_len);
        f[at..at + data_len].fill(1);
        frame::seal(&mut f, 0, lsn, checkpoint, 1, body);
        let off = (lsn % ring.len() as u64) as usize;
        ring[off..off + len].copy_from_slice(&f);
    }
    ring
}

#[test]
fn the_walk_follows_the_chain_from_the_newest_checkpoint() {
    let lap = 16 * PAGE as u64;
    let p = PAGE as u64;
    // Lap 0 left frames at 8..; lap 1 wrote 0, 1, 2 (checkpoint at 1).
    let ring = ring_with(&[
        (8 * p, 0, 10),
        (9 * p, 0, 10),
        (lap, lap, 10),
        (lap + p, lap + p, 10),
        (lap + 2 * p, lap + p, 10),
    ]);
    let w = walk(&ring);
    let lsns: Vec<u64> = w.frames.iter().map(|(h, _)| h.lsn).collect();
    assert_eq!(lsns, vec![lap + p, lap + 2 * p]);
    assert_eq!(w.next_lsn, lap + 3 * p);
    assert_eq!(w.damaged_at, None);

    // The newest frame torn: the walk ends before it, nothing is damaged.
    let mut torn = ring.clone();
    torn[2 * PAGE + frame::HEADER + 20] ^= 0xff;
    let w = walk(&torn);
    assert_eq!(w.frames.len(), 1);
    assert_eq!(w.damaged_at, None);

    // A frame in the middle damaged, a newer one whole: reported.
    let ring = ring_with(&[(lap, lap, 10), (lap + p, lap, 10), (lap + 2 * p, lap, 10)]);
    let mut bad = ring.clone();
    bad[PAGE + frame::HEADER + 20] ^= 0xff;
    let w = walk(&bad);
    assert_eq!(w.frames.len(), 1);
    assert_eq!(w.damaged_at, Some(lap + p));

    // An empty ring: nothing to do, start at 0.
    let w = walk(&vec![0u8; 4 * PAGE]);
    assert!(w.frames.is_empty() && w.next_lsn == 0);
}

#[test]
fn the_walk_follows_a_wrap_marker_to_the_next_lap() {
    let lap = 16 * PAGE as u64;
    let p = PAGE as u64;
    let mut ring = ring_with(&[(14 * p, 14 * p, 10), (lap, 14 * p, 10)]);
    // A wrap marker at 15 (the next frame did not fit).
    let mut marker = vec![0u8; PAGE];
    frame::seal(&mut marker, frame::FLAG_WRAP, 15 * p, 14 * p, 0, 0);
    ring[15 * PAGE..16 * PAGE].copy_from_slice(&marker);
    let w = walk(&ring);
    let lsns: Vec<u64> = w.frames.iter().map(|(h, _)| h.lsn).collect();
    assert_eq!(lsns, vec![14 * p, 15 * p, lap]);
    assert_eq!(w.next_lsn, lap + p);
}

#[test]
fn frames_near_half_the_ring_wrap_without_overrunning_it() {
    // Five partitions appending ~60 KiB batches together: frames of
    // ~300 KiB through a 1 MiB ring, so most laps end in a wrap marker and
    // space is short at almost every frame.
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    crash_after(&data, move |data| async move {
        let config = LogConfig {
            segment_bytes: 8 << 20,
            tail_cache_bytes: 1 << 20,
            ..small_config()
        };
        let mut logs = Vec::new();
        for p in 0..5 {
            logs.push(open_in(&data, &format!("t-{p}"), config.clone()).await);
        }
        for round in 0..40u64 {
            let acks: Vec<_> = logs
                .iter()
                .map(|log| {
                    let log = log.clone();
                    crate::rt::spawn_local(async move {
                        log.append(batch(1000, 1000, 49 + 50 * round), AckLevel::Durable)
                            .await
                            .unwrap();
                    })
                })
                .collect();
            for ack in acks {
                ack.await;
            }
        }
        let wal = logs[0].wal.as_ref().unwrap().wal.clone();
        let st = wal.state.borrow();
        assert!(st.head > 8 * RING, "head {}", st.head);
        assert!(st.head - st.durable_checkpoint.lsn <= RING);
    });
    replay::prepare(&data, 1, RING).unwrap();
    let got = run_local(move || async move {
        let mut counts = Vec::new();
        for p in 0..5 {
            counts.push(offsets_after_restart(&data, &format!("t-{p}")).await.len());
        }
        counts
    });
    assert_eq!(got, vec![40; 5]);
}

#[test]
fn batches_are_acknowledged_before_their_segment_write() {
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    crash_after(&data, move |data| async move {
        let config = with_segments(1 << 20);
        let log = open_in(&data, "t-0", config).await;
        append_durable(&log, 0..5, 2).await;
        let (written, synced, hw) = {
            let inner = log.inner.borrow();
            let o = &inner.offsets;
            (o.written(), o.synced(), o.high_watermark())
        };
        assert_eq!((synced, hw), (10, 10));
        // A few small batches: their write-back waits for more bytes (or
        // a checkpoint, or a second), so they are durable only in the ring.
        assert!(written < hw, "written {written}");
        assert_eq!(log.held.borrow().len(), 5);
        // Served from the tail cache meanwhile.
        assert_eq!(read_all(&log, 0).await.len(), 5);
    });
    // The crash left them to the ring: the restart redoes them.
    let (_, stats) = replay::prepare(&data, 1, RING).unwrap();
    assert!(stats.entries >= 5, "{stats:?}");
    let got = run_local(move || async move { offsets_after_restart(&data, "t-0").await });
    assert_eq!(got.len(), 5);
    assert_eq!(got.last(), Some(&(8, 9)));
}

#[test]
fn a_failed_write_back_is_retried_and_nothing_acknowledged_is_lost() {
    let dir = test_dir();
    let data = dir.path().to_path_buf();
    crash_after(&data, move |data| async move {
        let clock = Rc::new(crate::time::ManualClock::new(1_700_000_000_000));
        let config = with_segments(8 << 20);
        let log = PartitionLog::open_with_clock(
            data.join("t-0"),
            "t-0".into(),
            config,
            crate::time::LogClock::Manual(clock.clone()),
        )
        .await
        .unwrap();
        append_durable(&log, 0..3, 2).await;
        log.inject.fail_writes.set(true);
        // Over the write-back threshold: the write-back of all four
        // batches fails. Its producer may be told of the failure (when
        // the write fails before the frame is durable): the batch is kept
        // either way, as after any storage error that may have landed.
        let big = batch(12000, 1000, 3);
        assert!(big.len() > 256 << 10);
        let _ = log.append(big, AckLevel::Durable).await;
        while !log.is_offline() {
            crate::rt::sleep(Duration::from_millis(1)).await;
        }
        let refused = log.append(batch(1, 1000, 4), AckLevel::Durable).await;
        assert!(refused.is_err(), "an offline partition took an append");
        // Everything acknowledged is still served (from memory).
        assert!(read_all(&log, 0).await.len() >= 3);
        assert!(log.inner.borrow().offsets.written() < log.high_watermark());
        // The device is back; after the backoff the flusher writes them.
        log.inject.fail_writes.set(false);
        clock.advance(Duration::from_secs(1));
        while log.is_offline() {
            crate::rt::sleep(Duration::from_millis(1)).await;
        }
        assert!(log.held.borrow().is_empty());
        let end = log.log_end_offset();
        assert_eq!(log.inner.borrow().offsets.written(), end);
        log.append(batch(1, 1000, 5), AckLevel::Durable)
            .await
            .unwrap();
    });
    replay::prepare(&data, 1, RING).unwrap();
    let got = run_local(move || async move { offsets_after_restart(&data, "t-0").await });
    assert_eq!(got.len(), 5, "{got:?}");
}
