//! Derivation of settings from measurement tables, the file format, and a
//! quick real run against a directory on a real filesystem.

use std::path::Path;
use std::time::Duration;

use super::fanout::{FANOUT_FILES, SYNC_MODES};
use super::*;

fn table(bw: impl Fn(usize, usize) -> f64, p50: u64) -> Measurements {
    let mut write = Vec::new();
    for size in SIZES {
        for qd in QUEUE_DEPTHS {
            let mib_s = bw(size, qd);
            write.push(WriteResult {
                size,
                queue_depth: qd,
                mib_s,
                iops: mib_s * (1 << 20) as f64 / size as f64,
            });
        }
    }
    Measurements {
        fdatasync_p50_us: p50,
        fdatasync_p99_us: p50 * 3,
        read_128k_qd16_mib_s: 900.0,
        write,
        sync_fanout: Vec::new(),
    }
}

/// An SSD-like device: bandwidth grows with size and depth up to 2000 MiB/s.
fn ssd(size: usize, qd: usize) -> f64 {
    let per_op_us = 20.0 + size as f64 / 2000.0 / 1.048_576;
    (size as f64 * qd as f64 / per_op_us / 1.048_576).min(2000.0)
}

#[test]
fn settings_follow_the_measurements() {
    let s = derive(&table(ssd, 400));
    // 128 KiB: qd1 ~1720, qd4 = 2000 (capped): qd 1 is not within 90%.
    assert_eq!(s.write_queue_depth, 4);
    // At qd 4: 64 KiB reaches 2000 too, 16 KiB does not; but no chunk is
    // chosen below 512 KiB (per-write CPU cost the device test cannot see).
    assert_eq!(s.write_chunk_bytes, 512 << 10);
    assert_eq!(s.group_commit_window_us, 100);

    // A device that saturates at qd 1 with 1 MiB writes only.
    let s = derive(&table(
        |size, _| {
            if size == 1 << 20 {
                500.0
            } else {
                size as f64 / 1024.0
            }
        },
        20,
    ));
    assert_eq!(s.write_queue_depth, 1);
    assert_eq!(s.write_chunk_bytes, 1 << 20);
    assert_eq!(s.group_commit_window_us, 0, "fast syncs: no window");

    // Slow syncs (HDD-like): the window is capped.
    assert_eq!(derive(&table(ssd, 8_000)).group_commit_window_us, 500);
    // Small chunks never go below 512 KiB even if they look as fast.
    assert_eq!(
        derive(&table(|_, _| 100.0, 60)).write_chunk_bytes,
        512 << 10
    );
    // An empty table keeps the defaults.
    let empty = Measurements {
        write: vec![],
        ..table(ssd, 0)
    };
    let d = derive(&empty);
    assert_eq!((d.write_queue_depth, d.write_chunk_bytes), (4, 1 << 20));
}

fn sample() -> IotuneFile {
    let m = table(ssd, 400);
    IotuneFile {
        settings: derive(&m),
        device: Device {
            name: "nvme0n1".into(),
            data_dir: "/var/lib/shardline".into(),
            date: file::utc_now(),
            duration_per_test_s: 1.0,
        },
        measurements: m,
    }
}

#[test]
fn the_file_round_trips() {
    let f = sample();
    let text = f.to_toml();
    assert!(text.starts_with("# Written by `shardline iotune`"));
    let back = IotuneFile::parse(&text).unwrap();
    assert_eq!(back.settings, f.settings);
    assert_eq!(back.device, f.device);
    assert_eq!(back.measurements.write.len(), 20);
    assert!((back.measurements.write[7].mib_s - f.measurements.write[7].mib_s).abs() < 0.06);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iotune.toml");
    f.write_to(&path).unwrap();
    let (settings, device) = read_settings(&path).unwrap();
    assert_eq!(settings, f.settings);
    assert_eq!(device.as_deref(), Some("nvme0n1"));
    assert!(f.table().contains("write_queue_depth = 4"));
    assert_eq!(file::utc_now().len(), 20);
}

#[test]
fn malformed_files_name_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("iotune.toml");
    let text = sample().to_toml();
    let bad = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
        let err = format!("{:#}", read_settings(&path).unwrap_err());
        assert!(err.contains(&path.display().to_string()), "{err}");
        err
    };
    let e = bad("write_queue_depth = 4", "write_queue_depth = \"four\"");
    assert!(e.contains("write_queue_depth"), "{e}");
    let e = bad("write_queue_depth = 4", "write_queue_depth = 0");
    assert!(e.contains("settings.write_queue_depth = 0"), "{e}");
    let e = bad("write_chunk_bytes = 524288", "write_chunk_bytes = 5000");
    assert!(e.contains("write_chunk_bytes"), "{e}");
    let e = bad(
        "group_commit_window_us = 100",
        "group_commit_window_us = -1",
    );
    assert!(e.contains("group_commit_window_us"), "{e}");
    let e = bad("group_commit_window_us = 100", "");
    assert!(e.contains("group_commit_window_us"), "{e}");
    let e = bad(
        "write_chunk_bytes = 524288",
        "write_chunk_bytes = 524288\nwrite_chunk = 1",
    );
    assert!(e.contains("write_chunk"), "{e}");
    std::fs::write(&path, "not toml [").unwrap();
    assert!(read_settings(&path).is_err());
}

/// O_DIRECT needs a real filesystem; /tmp may be tmpfs.
fn real_dir() -> tempfile::TempDir {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/test-data");
    std::fs::create_dir_all(&root).unwrap();
    tempfile::tempdir_in(root).unwrap()
}

#[test]
fn a_quick_run_measures_writes_the_file_and_cleans_up() {
    let dir = real_dir();
    let mut opts = IotuneOptions::new(dir.path());
    opts.quick = true;
    opts.duration_per_test = Duration::from_millis(20);
    opts.io_memory_bytes = 1 << 20;
    let result = run(&opts).unwrap();
    assert_eq!(
        result.measurements.write.len(),
        SIZES.len() * QUEUE_DEPTHS.len()
    );
    assert!(result.measurements.write.iter().all(|w| w.mib_s > 0.0));
    assert!(result.measurements.read_128k_qd16_mib_s > 0.0);
    assert!(result.measurements.fdatasync_p99_us >= result.measurements.fdatasync_p50_us);
    let fanout = &result.measurements.sync_fanout;
    assert_eq!(fanout.len(), FANOUT_FILES.len() * SYNC_MODES.len());
    assert!(fanout
        .iter()
        .all(|r| r.round_p50_us > 0 && r.round_p99_us >= r.round_p50_us));
    let (settings, _) = read_settings(&dir.path().join("iotune.toml")).unwrap();
    assert_eq!(settings, result.settings);
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["iotune.toml"], "scratch and probe files are removed");
}
