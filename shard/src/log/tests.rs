//! Tests of the partition log against real files: appends across rolls,
//! reads from every offset, reopen, crash images cut at arbitrary bytes,
//! corruption, idempotence, retention and timestamp lookups.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::record::{BatchBuilder, BatchView, Compression};
use crate::runtime::run_local;

pub(super) fn batch(n_records: usize, ts: i64, tag: u64) -> Bytes {
    batch_with_producer(n_records, ts, tag, None)
}

pub(super) fn batch_with_producer(
    n_records: usize,
    ts: i64,
    tag: u64,
    producer: Option<(i64, i16, i32)>,
) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    if let Some((pid, epoch, seq)) = producer {
        b = b.producer(pid, epoch, seq);
    }
    for i in 0..n_records {
        let value = format!("value-{tag}-{i}-{}", "x".repeat((tag % 50) as usize));
        b.append(
            ts + i as i64,
            Some(Bytes::from(format!("k{tag}"))),
            Some(Bytes::from(value)),
            vec![],
        )
        .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

/// Direct I/O needs a real filesystem (tmpfs refuses O_DIRECT), so test
/// files live under the target directory rather than /tmp.
pub(super) fn test_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-data");
    std::fs::create_dir_all(&root).unwrap();
    tempfile::tempdir_in(root).unwrap()
}

pub(super) fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 << 10,
        index_interval_bytes: 512,
        tail_cache_bytes: 8 << 10,
        ..LogConfig::default()
    }
}

pub(super) async fn open(dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(dir.to_path_buf(), "t-0".into(), config)
        .await
        .unwrap()
}

/// [`open`] with a clock the test moves by hand.
pub(super) async fn open_manual(
    dir: &Path,
    config: LogConfig,
) -> (Rc<PartitionLog>, Rc<crate::time::ManualClock>) {
    let clock = Rc::new(crate::time::ManualClock::new(1_700_000_000_000));
    let log = PartitionLog::open_with_clock(
        dir.to_path_buf(),
        "t-0".into(),
        config,
        crate::time::LogClock::Manual(clock.clone()),
    )
    .await
    .unwrap();
    (log, clock)
}

/// Every offset of the log, read one fetch at a time from `from`.
pub(super) async fn read_all(log: &PartitionLog, from: i64) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let r = log.read(at, 4096).await.unwrap();
        if r.batches.is_empty() {
            break;
        }
        for chunk in &r.batches {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let b = BatchView::parse_verified(rest).unwrap();
                out.push((b.base_offset(), b.last_offset()));
                at = b.last_offset() + 1;
                rest = &rest[b.size()..];
            }
        }
    }
    out
}

pub(super) fn copy_dir(from: &Path, to: &Path) {
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

fn newest_log_file(dir: &Path) -> PathBuf {
    let mut logs: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().unwrap()
}

#[test]
fn appends_roll_segments_and_every_offset_reads_back() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        let mut expected = Vec::new();
        for i in 0..200u64 {
            let info = log
                .append(
                    batch(1 + (i % 4) as usize, 1000 + i as i64, i),
                    AckLevel::Durable,
                )
                .await
                .unwrap();
            expected.push((info.base_offset, info.last_offset));
        }
        assert!(log.segment_count() > 3, "small segments must roll");
        assert_eq!(read_all(&log, 0).await, expected);
        // A read from the middle of a batch starts with that batch.
        let (base, last) = expected[120];
        if last > base {
            let r = log.read(base + 1, 1).await.unwrap();
            assert_eq!(BatchView::parse(&r.batches[0]).unwrap().base_offset(), base);
        }
        let end = log.log_end_offset();
        assert!(log.read(end, 100).await.unwrap().batches.is_empty());
        assert!(matches!(
            log.read(end + 1, 100).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        log.close().await.unwrap();

        // Reopen: sealed segments come back from their indexes.
        let log = open(&path, small_config()).await;
        assert_eq!(read_all(&log, 0).await, expected);
        let info = log
            .append(batch(2, 5000, 999), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(info.base_offset, end);
        log.close().await.unwrap();
    });
}

#[test]
fn acknowledged_batches_survive_a_crash_image() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path.join("live"), small_config()).await;
        let mut acked = Vec::new();
        for i in 0..60u64 {
            let info = log
                .append(batch(3, 1000, i), AckLevel::Durable)
                .await
                .unwrap();
            acked.push((info.base_offset, info.last_offset));
        }
        // What the disk holds right now is what a kill -9 would leave.
        copy_dir(&path.join("live"), &path.join("crash"));
        let recovered = open(&path.join("crash"), small_config()).await;
        assert_eq!(read_all(&recovered, 0).await, acked);
        recovered.close().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn torn_tail_and_corruption_are_truncated_not_fatal() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..small_config()
        };
        let log = open(&path, config.clone()).await;
        let mut acked = Vec::new();
        for i in 0..20u64 {
            let info = log
                .append(batch(2, 1000, i), AckLevel::Durable)
                .await
                .unwrap();
            acked.push((info.base_offset, info.last_offset));
        }
        log.close().await.unwrap();
        let file = newest_log_file(&path);
        let good_len = std::fs::metadata(&file).unwrap().len();
        // Torn write: half a batch of garbage after the good data.
        let mut bytes = std::fs::read(&file).unwrap();
        bytes.truncate(good_len as usize);
        bytes.extend_from_slice(&batch(5, 1, 77)[..40]);
        std::fs::write(&file, &bytes).unwrap();
        let log = open(&path, config.clone()).await;
        assert_eq!(read_all(&log, 0).await, acked);
        let info = log
            .append(batch(1, 2000, 5), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(info.base_offset, acked.last().unwrap().1 + 1);
        acked.push((info.base_offset, info.last_offset));
        log.close().await.unwrap();

        // Flip a byte inside the 10th batch: everything from it on is dropped.
        let mut bytes = std::fs::read(&file).unwrap();
        let mut pos = 0usize;
        for _ in 0..9 {
            pos += BatchView::parse(&bytes[pos..]).unwrap().size();
        }
        bytes[pos + 70] ^= 0xff;
        std::fs::write(&file, &bytes).unwrap();
        let log = open(&path, config).await;
        assert_eq!(read_all(&log, 0).await, acked[..9].to_vec());
        log.close().await.unwrap();
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    /// Cut the active segment at any byte: recovery keeps exactly the batches
    /// wholly before the cut, and the log accepts appends again.
    #[test]
    fn recovery_keeps_exactly_the_whole_batches_before_any_cut(cut_fraction in 0.0f64..1.0, sizes in prop::collection::vec(1usize..6, 1..25)) {
        let dir = test_dir();
        let path = dir.path().to_path_buf();
        run_local(move || async move {
            let config = LogConfig { segment_bytes: 1 << 20, preallocate: false, ..small_config() };
            let log = open(&path, config.clone()).await;
            let mut ends = Vec::new();
            for (i, n) in sizes.iter().enumerate() {
                let info = log.append(batch(*n, 1000, i as u64), AckLevel::Durable).await.unwrap();
                ends.push(info.last_offset);
            }
            log.close().await.unwrap();
            let file = newest_log_file(&path);
            let bytes = std::fs::read(&file).unwrap();
            let cut = (bytes.len() as f64 * cut_fraction) as usize;
            std::fs::write(&file, &bytes[..cut]).unwrap();
            let mut whole = 0;
            let mut pos = 0;
            while pos < cut {
                let size = BatchView::parse(&bytes[pos..]).unwrap().size();
                if pos + size > cut { break; }
                pos += size;
                whole += 1;
            }
            let log = open(&path, config).await;
            let expected_end = if whole == 0 { 0 } else { ends[whole - 1] + 1 };
            assert_eq!(log.log_end_offset(), expected_end);
            assert_eq!(read_all(&log, 0).await.len(), whole);
            let info = log.append(batch(1, 1, 1), AckLevel::Durable).await.unwrap();
            assert_eq!(info.base_offset, expected_end);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn idempotent_retries_are_not_written_twice() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        let first = log
            .append(
                batch_with_producer(3, 1, 1, Some((42, 0, 0))),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        let second = log
            .append(
                batch_with_producer(2, 1, 2, Some((42, 0, 3))),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        let retry = log
            .append(
                batch_with_producer(3, 1, 1, Some((42, 0, 0))),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        assert!(retry.duplicate);
        assert_eq!(retry.base_offset, first.base_offset);
        assert_eq!(log.log_end_offset(), second.last_offset + 1);
        let gap = log
            .append(
                batch_with_producer(1, 1, 3, Some((42, 0, 9))),
                AckLevel::Durable,
            )
            .await;
        assert!(matches!(
            gap,
            Err(LogError::OutOfOrderSequence {
                expected: 5,
                got: 9
            })
        ));
        let fenced = log
            .append(
                batch_with_producer(1, 1, 3, Some((42, -0, 5))),
                AckLevel::Durable,
            )
            .await;
        assert!(fenced.is_ok());
        log.close().await.unwrap();
        // Producer state is rebuilt from the log on restart.
        let log = open(&path, small_config()).await;
        let retry = log
            .append(
                batch_with_producer(2, 1, 2, Some((42, 0, 3))),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        assert!(retry.duplicate);
        log.close().await.unwrap();
    });
}

#[test]
fn retention_by_size_and_delete_records_move_the_log_start() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            retention_bytes: 40 << 10,
            retention_ms: -1,
            ..small_config()
        };
        let log = open(&path, config.clone()).await;
        for i in 0..300u64 {
            log.append(batch(2, 1000, i), AckLevel::Durable)
                .await
                .unwrap();
        }
        let before = log.offsets();
        let deleted = log.enforce_retention().await.unwrap();
        let after = log.offsets();
        assert!(deleted > 0);
        assert!(after.log_start_offset > before.log_start_offset);
        assert!(after.size_bytes <= (40 << 10) + config.segment_bytes);
        assert!(matches!(
            log.read(0, 100).await,
            Err(LogError::OffsetOutOfRange { .. })
        ));
        assert!(!read_all(&log, after.log_start_offset).await.is_empty());

        let cut = after.log_start_offset + 10;
        assert_eq!(log.delete_records_before(cut).await.unwrap(), cut);
        log.close().await.unwrap();
        let log = open(&path, config).await;
        assert_eq!(log.offsets().log_start_offset, cut, "log start persists");
        log.close().await.unwrap();
    });
}

#[test]
fn retention_by_time_ages_out_old_data_even_in_the_active_segment() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            retention_ms: 60_000,
            ..small_config()
        };
        let log = open(&path, config).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        for i in 0..10u64 {
            log.append(batch(2, now - 3_600_000, i), AckLevel::Durable)
                .await
                .unwrap();
        }
        log.enforce_retention().await.unwrap();
        let o = log.offsets();
        assert_eq!(
            o.log_start_offset, o.high_watermark,
            "all data older than retention.ms is gone"
        );
        log.append(batch(1, now, 99), AckLevel::Durable)
            .await
            .unwrap();
        log.enforce_retention().await.unwrap();
        assert_eq!(
            log.offsets().high_watermark - log.offsets().log_start_offset,
            1
        );
        log.close().await.unwrap();
    });
}

#[test]
fn bad_batches_are_refused_with_clear_errors() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(
            &path,
            LogConfig {
                max_message_bytes: 200,
                ..small_config()
            },
        )
        .await;
        let mut b = batch(1, 1, 1).to_vec();
        b[70] ^= 1;
        assert!(matches!(
            log.append(Bytes::from(b), AckLevel::Durable).await,
            Err(LogError::Corrupt(_))
        ));
        assert!(matches!(
            log.append(batch(20, 1, 1), AckLevel::Durable).await,
            Err(LogError::MessageTooLarge { .. })
        ));
        assert!(log
            .append(Bytes::from_static(&[0u8; 7]), AckLevel::Durable)
            .await
            .is_err());
        assert_eq!(log.log_end_offset(), 0, "nothing was appended");
        log.close().await.unwrap();
    });
}

#[test]
fn interval_mode_acknowledges_written_data_that_survives_a_crash_image() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            flush_mode: FlushMode::Interval,
            flush_interval_ms: 60_000,
            flush_interval_bytes: u64::MAX,
            ..small_config()
        };
        let log = open(&path.join("live"), config.clone()).await;
        let mut acked = Vec::new();
        for i in 0..30u64 {
            let info = log
                .append(batch(2, 1000, i), AckLevel::Durable)
                .await
                .unwrap();
            acked.push((info.base_offset, info.last_offset));
        }
        // Acknowledged means written to the device, so a process crash keeps it.
        copy_dir(&path.join("live"), &path.join("crash"));
        let recovered = open(&path.join("crash"), config).await;
        assert_eq!(read_all(&recovered, 0).await, acked);
        recovered.close().await.unwrap();
        log.close().await.unwrap();
    });
}

#[test]
fn acks_zero_returns_before_the_write_and_the_data_is_still_readable() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        for i in 0..20u64 {
            log.append(batch(1, 1000, i), AckLevel::None).await.unwrap();
        }
        // Visible once durable (the high watermark), not at append.
        while log.high_watermark() < 20 {
            log.wait_for_data(log.high_watermark(), std::time::Duration::from_secs(5))
                .await;
        }
        assert_eq!(read_all(&log, 0).await.len(), 20);
        log.close().await.unwrap();
        let log = open(&path, small_config()).await;
        assert_eq!(log.log_end_offset(), 20, "close flushes everything");
        log.close().await.unwrap();
    });
}

#[test]
fn corrupt_or_missing_index_files_are_rebuilt() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, small_config()).await;
        let mut expected = Vec::new();
        for i in 0..300u64 {
            let info = log
                .append(batch(2, 1000 + i as i64, i), AckLevel::Durable)
                .await
                .unwrap();
            expected.push((info.base_offset, info.last_offset));
        }
        log.close().await.unwrap();
        let mut indexes: Vec<_> = std::fs::read_dir(&path)
            .unwrap()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "index"))
            .collect();
        indexes.sort();
        assert!(indexes.len() >= 3, "several sealed segments");
        std::fs::write(&indexes[0], b"garbage").unwrap(); // unreadable
        std::fs::remove_file(&indexes[1]).unwrap(); // missing
        let log = open(&path, small_config()).await;
        assert_eq!(read_all(&log, 0).await, expected);
        assert!(indexes[1].exists(), "the missing index was written again");
        log.close().await.unwrap();
    });
}

#[test]
fn producers_that_do_not_wait_for_acks_are_held_to_a_bounded_backlog() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, LogConfig::default()).await;
        // ~1 MiB batches appended without waiting, far faster than a disk.
        let big = kib_batch();
        let mut peak = 0;
        for _ in 0..(3 * partition::MAX_UNWRITTEN_BYTES / big.len()) {
            log.append(big.clone(), AckLevel::None).await.unwrap();
            peak = peak.max(log.unwritten_bytes());
        }
        assert!(
            peak <= partition::MAX_UNWRITTEN_BYTES + big.len() + partition::PAGE,
            "backlog reached {peak} bytes"
        );
        let end = log.log_end_offset();
        log.close().await.unwrap();
        let log = open(&path, LogConfig::default()).await;
        assert_eq!(log.log_end_offset(), end);
    });
}

/// About 1 MiB: 1000 records of 1000 bytes.
fn kib_batch() -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for i in 0..1000 {
        b.append(i, None, Some(Bytes::from(vec![b'v'; 1000])), vec![])
            .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

/// Disk blocks a file holds, in bytes.
fn allocated_bytes(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn preallocation_reserves_space_a_step_at_a_time() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            preallocate: true,
            ..LogConfig::default()
        };
        let log = open(&path, config.clone()).await;
        let seg_file = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|e| e == "log"))
            .expect("a segment file");
        let step = preallocate::MAX_STEP;
        let at_start = allocated_bytes(&seg_file);
        // Filesystems without fallocate reserve nothing; never the whole 1 GiB segment.
        assert!(
            at_start <= step + (1 << 20),
            "reserved {at_start} bytes up front"
        );
        let big = kib_batch();
        let mut last = None;
        while (log.offsets().high_watermark as usize) < 40 * 1000 {
            last = Some(log.append(big.clone(), AckLevel::Durable).await.unwrap());
        }
        let written = 40 * big.len() as u64;
        let reserved = allocated_bytes(&seg_file);
        assert!(reserved >= written, "{reserved} < {written}");
        assert!(
            reserved <= written.div_ceil(step) * step + (1 << 20),
            "reserved {reserved}"
        );
        log.close().await.unwrap();
        let log = open(&path, config).await;
        assert_eq!(log.log_end_offset(), last.unwrap().last_offset + 1);
    });
}

#[test]
fn invalid_records_are_named_and_refuse_the_whole_batch() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            cleanup_compact: true,
            timestamp_before_max_ms: 60_000,
            ..small_config()
        };
        let log = open(&path, config).await;
        let now = crate::time::Clock::now_ms(&crate::time::SystemClock);
        let mut b = BatchBuilder::new(Compression::Gzip);
        b.append(now, Some(Bytes::from("k")), None, vec![]).unwrap();
        b.append(now, None, Some(Bytes::from("v")), vec![]).unwrap();
        b.append(now - 120_000, Some(Bytes::from("k")), None, vec![])
            .unwrap();
        let err = log
            .append(Bytes::from(b.build().unwrap()), AckLevel::Durable)
            .await
            .unwrap_err();
        let LogError::RecordErrors {
            errors,
            invalid_timestamp,
        } = err
        else {
            panic!("{err:?}")
        };
        assert!(invalid_timestamp);
        assert_eq!(errors.len(), 2);
        assert_eq!(
            errors[0],
            (
                1,
                "Compacted topic cannot accept message without key in topic partition t-0".into()
            )
        );
        assert_eq!(errors[1].0, 2);
        assert!(errors[1].1.starts_with(&format!(
            "Timestamp {} of message with offset 2 is out of range",
            now - 120_000
        )));
        assert_eq!(log.offsets().high_watermark, 0, "nothing appended");
        let ok = log
            .append(batch(2, now, 1), AckLevel::Durable)
            .await
            .unwrap();
        assert_eq!(ok.base_offset, 0);
    });
}

#[test]
fn batches_in_another_codec_are_recompressed_and_others_kept() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            compression: Some(Compression::Zstd),
            ..small_config()
        };
        let log = open(&path, config).await;
        let plain = batch_with_producer(3, 1_000, 7, Some((42, 1, 0)));
        let mut z = BatchBuilder::new(Compression::Zstd).producer(42, 1, 3);
        z.append(
            2_000,
            Some(Bytes::from("k")),
            Some(Bytes::from("v")),
            vec![],
        )
        .unwrap();
        let zstd = Bytes::from(z.build().unwrap());
        log.append(plain.clone(), AckLevel::Durable).await.unwrap();
        log.append(zstd.clone(), AckLevel::Durable).await.unwrap();
        let r = log.read(0, 1 << 20).await.unwrap();
        let all: Vec<u8> = r.batches.iter().flat_map(|c| c.iter().copied()).collect();
        let first = BatchView::parse_verified(&all).unwrap();
        assert_eq!(first.compression(), Compression::Zstd);
        assert_eq!(
            (
                first.producer_id(),
                first.producer_epoch(),
                first.base_sequence()
            ),
            (42, 1, 0)
        );
        assert_eq!(
            (first.base_timestamp(), first.max_timestamp()),
            (1_000, 1_002)
        );
        let original = BatchView::parse_verified(&plain).unwrap();
        assert_eq!(
            crate::record::decode_records(&first).unwrap(),
            crate::record::decode_records(&original).unwrap()
        );
        // The zstd batch went through untouched: only its base offset and
        // leader epoch (outside the CRC) are the log's.
        let second = &all[first.size()..];
        assert_eq!(second.len(), zstd.len());
        assert_eq!(second[16..], zstd[16..]);
        assert_eq!(BatchView::parse_verified(second).unwrap().base_offset(), 3);
    });
}
