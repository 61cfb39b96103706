//! Compaction against real files: latest value per key, unchanged offsets,
//! reads from any offset, tombstones, codecs, `compact,delete`, crash
//! leftovers and idempotent-producer state.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;

use super::super::tests::test_dir;
use super::super::{AckLevel, LogConfig, PartitionLog};
use crate::record::{decode_records, BatchBuilder, BatchView, Compression};
use crate::runtime::run_local;

pub(in crate::log) const TS: i64 = 1_000_000;
const HOUR: i64 = 3_600_000;

/// (offset, key, value) of one record.
pub(in crate::log) type Rec = (i64, String, Option<String>);

pub(in crate::log) fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4 << 10,
        index_interval_bytes: 512,
        tail_cache_bytes: 8 << 10,
        cleanup_compact: true,
        cleanup_delete: false,
        delete_retention_ms: HOUR,
        ..LogConfig::default()
    }
}

pub(in crate::log) async fn open(dir: &Path, config: LogConfig) -> Rc<PartitionLog> {
    PartitionLog::open(dir.to_path_buf(), "c-0".into(), config)
        .await
        .unwrap()
}

pub(in crate::log) fn keyed_batch(
    codec: Compression,
    records: &[(String, Option<String>)],
    ts: i64,
    producer: Option<(i64, i16, i32)>,
) -> Bytes {
    let mut b = BatchBuilder::new(codec);
    if let Some((pid, epoch, seq)) = producer {
        b = b.producer(pid, epoch, seq);
    }
    for (i, (k, v)) in records.iter().enumerate() {
        let value = v.clone().map(Bytes::from);
        b.append(ts + i as i64, Some(Bytes::from(k.clone())), value, vec![])
            .unwrap();
    }
    Bytes::from(b.build().unwrap())
}

/// Append `batches` batches of 1..=3 records over `keys` keys; returns
/// every record written.
pub(in crate::log) async fn fill(
    log: &PartitionLog,
    codec: Compression,
    batches: usize,
    keys: usize,
) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut n = 0usize;
    for i in 0..batches {
        let recs: Vec<(String, Option<String>)> = (0..1 + i % 3)
            .map(|j| {
                n += 1;
                (
                    format!("key-{}", (n * 7) % keys),
                    Some(format!("v{i}-{j}-{}", "p".repeat(i % 40))),
                )
            })
            .collect();
        let info = log
            .append(
                keyed_batch(codec, &recs, TS + i as i64, None),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        for (j, (k, v)) in recs.into_iter().enumerate() {
            out.push((info.base_offset + j as i64, k, v));
        }
    }
    out
}

/// Every record readable from `from`, one fetch at a time.
pub(in crate::log) async fn read_records(log: &PartitionLog, from: i64) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut at = from;
    loop {
        let r = log.read(at, 2048).await.unwrap();
        if r.batches.is_empty() {
            return out;
        }
        for chunk in &r.batches {
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let b = BatchView::parse_verified(rest).unwrap();
                for rec in decode_records(&b).unwrap() {
                    let offset = b.base_offset() + rec.offset_delta as i64;
                    if offset >= at {
                        let key = String::from_utf8(rec.key.unwrap().to_vec()).unwrap();
                        let value = rec.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                        out.push((offset, key, value));
                    }
                }
                at = at.max(b.last_offset() + 1);
                rest = &rest[b.size()..];
            }
        }
    }
}

pub(in crate::log) fn bases(dir: &Path, ext: &str) -> Vec<i64> {
    let mut v: Vec<i64> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(&format!(".{ext}"))?.parse().ok()
        })
        .collect();
    v.sort_unstable();
    v
}

pub(in crate::log) fn active_base(dir: &Path) -> i64 {
    *bases(dir, "log").last().unwrap()
}

/// What a compacted log must hold: below `active`, exactly the latest record
/// of each key; from `active` on, everything.
pub(in crate::log) fn expected_after(written: &[Rec], active: i64) -> Vec<Rec> {
    let mut latest: HashMap<&str, i64> = HashMap::new();
    for (o, k, _) in written {
        latest.insert(k, *o);
    }
    written
        .iter()
        .filter(|(o, k, _)| *o >= active || latest[k.as_str()] == *o)
        .cloned()
        .collect()
}

#[test]
fn only_the_latest_value_per_key_survives_at_its_offset() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, compact_config()).await;
        let written = fill(&log, Compression::None, 400, 12).await;
        assert!(log.segment_count() > 10);
        let end_before = log.log_end_offset();
        let stats = log.compact(TS).await.unwrap();
        assert!(!stats.skipped && stats.groups_rewritten > 0, "{stats:?}");
        assert!(stats.records_removed > 0 && stats.bytes_after < stats.bytes_before);
        assert_eq!(log.log_end_offset(), end_before);
        let active = active_base(&path);
        let expected = expected_after(&written, active);
        assert_eq!(read_records(&log, 0).await, expected);

        // Nothing new: the next run has nothing to do.
        assert!(log.compact(TS).await.unwrap().skipped);
        // Keys overwritten again, then rolled: the next run removes more.
        let more = fill(&log, Compression::None, 200, 12).await;
        let all: Vec<Rec> = read_records(&log, 0).await;
        let segments_before = log.segment_count();
        let stats = log.compact_with_ratio(TS, 0.0).await.unwrap();
        assert!(stats.records_removed > 0, "{stats:?}");
        // Groups are formed by the old sizes (as in Kafka): segments cleaned
        // small by the first run merge in the second.
        assert!(
            log.segment_count() < segments_before,
            "small cleaned segments merge"
        );
        let active = active_base(&path);
        let mut written2 = written.clone();
        written2.extend(more);
        assert_eq!(
            read_records(&log, 0).await,
            expected_after(&written2, active)
        );
        assert!(read_records(&log, 0).await.len() < all.len());

        // Reopen: the indexes on disk describe the new files.
        log.close().await.unwrap();
        let sealed = bases(&path, "log");
        assert_eq!(bases(&path, "index"), sealed[..sealed.len() - 1].to_vec());
        let log = open(&path, compact_config()).await;
        assert_eq!(
            read_records(&log, 0).await,
            expected_after(&written2, active)
        );
        log.close().await.unwrap();
    });
}

#[test]
fn reads_from_any_offset_find_the_next_surviving_record() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, compact_config()).await;
        let written = fill(&log, Compression::Lz4, 300, 5).await;
        log.compact(TS).await.unwrap();
        let survivors: Vec<i64> = read_records(&log, 0).await.iter().map(|r| r.0).collect();
        let by_offset: BTreeMap<i64, &Rec> = written.iter().map(|r| (r.0, r)).collect();
        for o in 0..log.log_end_offset() {
            let got = read_records(&log, o).await;
            let want = survivors.iter().copied().find(|&s| s >= o).unwrap();
            assert_eq!(got[0].0, want, "read from {o}");
            assert_eq!(&got[0], by_offset[&want], "offsets are preserved");
        }
        // Time lookups still work over compacted segments.
        let (off, ts) = log.offset_for_timestamp(TS).await.unwrap().unwrap();
        assert_eq!(off, survivors[0]);
        assert!(ts >= TS);
        log.close().await.unwrap();
    });
}

#[test]
fn tombstones_stay_until_delete_retention_passes() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, compact_config()).await;
        let rec = |k: &str, v: Option<&str>| (k.to_string(), v.map(str::to_string));
        let put =
            |recs: Vec<(String, Option<String>)>| keyed_batch(Compression::Zstd, &recs, TS, None);
        log.append(
            put(vec![rec("a", Some("1")), rec("b", Some("1"))]),
            AckLevel::Durable,
        )
        .await
        .unwrap();
        let tomb = log
            .append(
                put(vec![rec("b", None), rec("c", Some("1"))]),
                AckLevel::Durable,
            )
            .await
            .unwrap()
            .base_offset;
        // Push the tombstone into a sealed segment.
        fill(&log, Compression::None, 150, 20).await;
        let stats = log.compact(TS + 10).await.unwrap();
        assert_eq!(stats.tombstones_removed, 0);
        let recs = read_records(&log, 0).await;
        assert!(recs.contains(&(tomb, "b".into(), None)), "tombstone kept");
        assert!(!recs.iter().any(|r| r.1 == "b" && r.2.is_some()));
        assert!(recs.iter().any(|r| r.1 == "a") && recs.iter().any(|r| r.1 == "c"));

        // Not yet due: nothing to do.
        assert!(log.compact(TS + HOUR / 2).await.unwrap().skipped);
        let stats = log.compact(TS + 2 * HOUR).await.unwrap();
        assert_eq!(stats.tombstones_removed, 1, "{stats:?}");
        let recs = read_records(&log, 0).await;
        assert!(!recs.iter().any(|r| r.1 == "b"));
        assert!(recs.iter().any(|r| r.1 == "a") && recs.iter().any(|r| r.1 == "c"));
        log.close().await.unwrap();
    });
}

#[test]
fn codecs_producer_fields_and_timestamps_are_preserved() {
    for codec in Compression::ALL {
        let dir = test_dir();
        let path = dir.path().to_path_buf();
        run_local(move || async move {
            let log = open(&path, compact_config()).await;
            let mut written = Vec::new();
            for i in 0..120i32 {
                // Three records, two keys: the first record of every batch is
                // overwritten by the second, so every batch is rewritten.
                let recs: Vec<(String, Option<String>)> = vec![
                    (format!("x{i}"), Some(format!("old-{i}"))),
                    (format!("x{i}"), Some(format!("new-{i}"))),
                    (format!("y{}", i % 4), Some(format!("y-{i}"))),
                ];
                let batch = keyed_batch(codec, &recs, TS + i as i64 * 10, Some((42, 3, i * 3)));
                let info = log.append(batch, AckLevel::Durable).await.unwrap();
                for (j, (k, v)) in recs.into_iter().enumerate() {
                    written.push((info.base_offset + j as i64, k, v));
                }
            }
            let stats = log.compact(TS).await.unwrap();
            assert!(stats.records_removed > 0);
            let active = active_base(&path);
            assert_eq!(
                read_records(&log, 0).await,
                expected_after(&written, active)
            );
            let r = log.read(0, 1 << 20).await.unwrap();
            let mut seen = 0;
            for chunk in &r.batches {
                let mut rest = &chunk[..];
                while !rest.is_empty() {
                    let b = BatchView::parse_verified(rest).unwrap();
                    assert_eq!(b.compression(), codec);
                    assert_eq!((b.producer_id(), b.producer_epoch()), (42, 3));
                    let i = b.base_offset() / 3;
                    assert_eq!(b.base_sequence() as i64, i * 3, "base sequence kept");
                    assert_eq!(b.base_offset() % 3, 0, "base offset kept");
                    let recs = decode_records(&b).unwrap();
                    for rec in &recs {
                        let ts = b.base_timestamp() + rec.timestamp_delta;
                        assert_eq!(ts, TS + i * 10 + rec.offset_delta as i64);
                    }
                    assert_eq!(
                        b.last_sequence(),
                        b.base_sequence() + recs.last().unwrap().offset_delta
                    );
                    seen += 1;
                    rest = &rest[b.size()..];
                }
            }
            assert!(seen > 0);
            log.close().await.unwrap();
        });
    }
}

#[test]
fn compact_delete_also_applies_retention() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let config = LogConfig {
            cleanup_delete: true,
            retention_ms: HOUR,
            ..compact_config()
        };
        let log = open(&path, config).await;
        let old_ts = now - 3 * HOUR;
        for i in 0..100 {
            let recs = vec![(format!("old{}", i % 7), Some("x".repeat(60)))];
            log.append(
                keyed_batch(Compression::None, &recs, old_ts, None),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        }
        let mut fresh = Vec::new();
        for i in 0..100 {
            let recs = vec![(
                format!("new{}", i % 7),
                Some(format!("{i}-{}", "y".repeat(60))),
            )];
            let info = log
                .append(
                    keyed_batch(Compression::None, &recs, now, None),
                    AckLevel::Durable,
                )
                .await
                .unwrap();
            fresh.push((info.base_offset, recs[0].0.clone(), recs[0].1.clone()));
        }
        let stats = log.compact(now).await.unwrap();
        assert!(stats.retention_deleted_segments > 0, "{stats:?}");
        let start = log.offsets().log_start_offset;
        assert!(start > 0);
        let recs = read_records(&log, start).await;
        assert!(!recs.iter().any(|r| r.1.starts_with("old") && r.0 < start));
        let active = active_base(&path);
        let want: Vec<Rec> = expected_after(&fresh, active)
            .into_iter()
            .filter(|r| r.0 >= start)
            .collect();
        let got: Vec<Rec> = recs
            .into_iter()
            .filter(|r| r.1.starts_with("new"))
            .collect();
        assert_eq!(got, want);
        log.close().await.unwrap();
    });
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

pub(in crate::log) fn seg_path(dir: &Path, base: i64, ext: &str) -> PathBuf {
    dir.join(super::segment_file_name(base, ext))
}

/// Reopen a crash image and check it holds a valid compacted log: offsets
/// preserved, every key's latest record present, the prefix below `clean_to`
/// exactly as `compacted`, and no leftovers.
async fn check_image(dir: &Path, written: &[Rec], compacted: &[Rec], clean_to: i64) {
    let log = open(dir, compact_config()).await;
    let got = read_records(&log, 0).await;
    let by_offset: BTreeMap<i64, &Rec> = written.iter().map(|r| (r.0, r)).collect();
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    assert!(got.iter().all(|r| by_offset[&r.0] == r));
    for r in expected_after(written, i64::MAX) {
        assert!(got.contains(&r), "latest {r:?} lost");
    }
    let prefix = |v: &[Rec]| {
        v.iter()
            .filter(|r| r.0 < clean_to)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(prefix(&got), prefix(compacted));
    log.close().await.unwrap();
    let names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with(".swap") || n == ".cleaner"),
        "{names:?}"
    );
}

#[test]
fn crash_leftovers_are_rolled_back_or_forward_on_open() {
    let dir = test_dir();
    let root = dir.path().to_path_buf();
    run_local(move || async move {
        let before = root.join("before");
        let after = root.join("after");
        let log = open(&before, compact_config()).await;
        let written = fill(&log, Compression::Snappy, 300, 9).await;
        // A first run cleans segment by segment; the run after a reopen
        // merges the small results into groups.
        log.compact(TS).await.unwrap();
        log.close().await.unwrap();
        drop(log);
        copy_dir(&before, &after);
        let log = open(&after, compact_config()).await;
        assert!(log.compact(TS).await.unwrap().groups_rewritten > 0);
        let compacted = read_records(&log, 0).await;
        log.close().await.unwrap();
        drop(log);
        let old = bases(&before, "log");
        let new = bases(&after, "log");
        let (first, group_end) = (new[0], new[1]);
        let members: Vec<i64> = old.iter().copied().filter(|&b| b < group_end).collect();
        assert!(members.len() > 1, "the first group merged segments");

        // 1. Crash while writing the cleaned file: rolled back.
        let img = root.join("img1");
        copy_dir(&before, &img);
        std::fs::create_dir_all(img.join(".cleaner")).unwrap();
        std::fs::write(
            seg_path(&img.join(".cleaner"), first, "log"),
            b"half a segment",
        )
        .unwrap();
        check_image(&img, &written, &[], -1).await;
        assert_eq!(bases(&img, "log"), old);

        // 2. Crash right after the swap file was committed: rolled forward.
        let img = root.join("img2");
        copy_dir(&before, &img);
        std::fs::copy(
            seg_path(&after, first, "log"),
            seg_path(&img, first, "log.swap"),
        )
        .unwrap();
        check_image(&img, &written, &compacted, group_end).await;
        // Old members the new file covers are gone; later ones, all of whose
        // records were superseded, may stay (valid, merely uncompacted).
        let covered_to = compacted
            .iter()
            .map(|r| r.0)
            .filter(|&o| o < group_end)
            .max();
        let left = bases(&img, "log");
        assert!(members[1..]
            .iter()
            .all(|b| Some(*b) > covered_to || !left.contains(b)));

        // 3. Crash halfway through deleting the old segments.
        let img = root.join("img3");
        copy_dir(&before, &img);
        std::fs::copy(
            seg_path(&after, first, "log"),
            seg_path(&img, first, "log.swap"),
        )
        .unwrap();
        for ext in ["index", "timeindex"] {
            std::fs::remove_file(seg_path(&img, first, ext)).unwrap();
        }
        std::fs::remove_file(seg_path(&img, members[1], "log")).unwrap();
        check_image(&img, &written, &compacted, group_end).await;

        // 4. Crash after the rename, before the new indexes were written.
        let img = root.join("img4");
        copy_dir(&after, &img);
        for ext in ["index", "timeindex"] {
            std::fs::remove_file(seg_path(&img, first, ext)).unwrap();
        }
        check_image(&img, &written, &compacted, i64::MAX).await;
        assert!(seg_path(&img, first, "index").exists(), "index rebuilt");
    });
}

#[test]
fn idempotent_duplicates_of_the_last_batch_are_still_detected() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let log = open(&path, compact_config()).await;
        let recs = |i: i32| vec![(format!("k{}", i % 3), Some(format!("p{i}")))];
        let mut last = None;
        for i in 0..5 {
            let b = keyed_batch(Compression::Gzip, &recs(i), TS, Some((9, 0, i)));
            last = Some((b.clone(), log.append(b, AckLevel::Durable).await.unwrap()));
        }
        let (last_batch, last_info) = last.unwrap();
        // Overwrite the producer's keys and roll past its batches.
        for i in 0..120 {
            let r = vec![(format!("k{}", i % 3), Some("z".repeat(80)))];
            log.append(
                keyed_batch(Compression::None, &r, TS, None),
                AckLevel::Durable,
            )
            .await
            .unwrap();
        }
        let stats = log.compact(TS).await.unwrap();
        assert!(stats.batches_removed >= 5, "{stats:?}");
        let recs_now = read_records(&log, 0).await;
        assert!(!recs_now.iter().any(|r| r.0 <= last_info.last_offset));

        let dup = log
            .append(last_batch.clone(), AckLevel::Durable)
            .await
            .unwrap();
        assert!(dup.duplicate);
        assert_eq!(dup.base_offset, last_info.base_offset);
        log.close().await.unwrap();
        drop(log);

        let log = open(&path, compact_config()).await;
        let dup = log.append(last_batch, AckLevel::Durable).await.unwrap();
        assert!(dup.duplicate, "after reopen too");
        assert_eq!(dup.base_offset, last_info.base_offset);
        let next = keyed_batch(Compression::Gzip, &recs(5), TS, Some((9, 0, 5)));
        assert!(!log.append(next, AckLevel::Durable).await.unwrap().duplicate);
        let gap = keyed_batch(Compression::Gzip, &recs(9), TS, Some((9, 0, 9)));
        assert!(log.append(gap, AckLevel::Durable).await.is_err());
        log.close().await.unwrap();
    });
}

#[test]
fn only_compacted_topics_are_compacted_and_runs_do_not_overlap() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let config = LogConfig {
            cleanup_compact: false,
            ..compact_config()
        };
        let log = open(&path, config).await;
        let written = fill(&log, Compression::None, 200, 4).await;
        assert!(log.compact(TS).await.unwrap().skipped);
        assert_eq!(read_records(&log, 0).await, written);
        log.set_config(compact_config());
        let (a, b) = futures::join!(log.compact(TS), log.compact(TS));
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a.skipped != b.skipped, "one run at a time: {a:?} {b:?}");
        let active = active_base(&path);
        assert_eq!(
            read_records(&log, 0).await,
            expected_after(&written, active)
        );
        log.close().await.unwrap();
    });
}
