//! `iotune.toml`: what `shardline iotune` measured on a data directory's
//! device and the settings derived from it, which the broker reads at start.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Settings the broker takes from the file (its log_* config keys win).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub write_queue_depth: usize,
    pub write_chunk_bytes: usize,
    pub group_commit_window_us: u64,
}

impl Settings {
    /// Reject values the flusher cannot use; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=256).contains(&self.write_queue_depth) {
            return Err(format!(
                "write_queue_depth = {}: must be between 1 and 256",
                self.write_queue_depth
            ));
        }
        if self.write_chunk_bytes < 4096
            || self.write_chunk_bytes > (64 << 20)
            || !self.write_chunk_bytes.is_multiple_of(4096)
        {
            return Err(format!(
                "write_chunk_bytes = {}: must be a multiple of 4096 between 4 KiB and 64 MiB",
                self.write_chunk_bytes
            ));
        }
        if self.group_commit_window_us > 100_000 {
            return Err(format!(
                "group_commit_window_us = {}: must be at most 100000 (100 ms)",
                self.group_commit_window_us
            ));
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Device {
    /// Block device of the data directory ("nvme0n1"), or "unknown".
    pub name: String,
    pub data_dir: String,
    /// UTC, RFC 3339.
    pub date: String,
    pub duration_per_test_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteResult {
    pub size: usize,
    pub queue_depth: usize,
    pub mib_s: f64,
    pub iops: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurements {
    /// 16 KiB write + fdatasync, sequential, as a batch-mode ack sees it.
    pub fdatasync_p50_us: u64,
    pub fdatasync_p99_us: u64,
    /// DMA reads of 128 KiB, 16 in flight.
    pub read_128k_qd16_mib_s: f64,
    pub write: Vec<WriteResult>,
    /// Appends to N files made durable serially, concurrently or by one
    /// `syncfs` (see `fanout.rs`); absent from files of older versions.
    #[serde(default)]
    pub sync_fanout: Vec<super::fanout::FanoutResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IotuneFile {
    pub settings: Settings,
    pub device: Device,
    pub measurements: Measurements,
}

/// What the broker needs from a file: the settings (and the device, for
/// its log line). Measurements are informational and not parsed, so an
/// older or hand-trimmed file still works.
#[derive(Debug, Clone, Deserialize)]
struct SettingsOnly {
    settings: Settings,
    device: Option<DeviceName>,
}

#[derive(Debug, Clone, Deserialize)]
struct DeviceName {
    name: Option<String>,
}

const HEADER: &str = "\
# Written by `shardline iotune`; the broker reads [settings] at start (its
# log_write_* / log_group_commit_window_us config keys win over this file).
# write_queue_depth: smallest queue depth whose 128 KiB write bandwidth is
#   within 10% of the best measured.
# write_chunk_bytes: smallest write size (>= 64 KiB) within 10% of the best
#   bandwidth at that queue depth.
# group_commit_window_us: 1/4 of the median write+fdatasync latency, at most
#   500; 0 when syncs take under 50 us (waiting would cost more than it saves).
";

impl IotuneFile {
    pub fn to_toml(&self) -> String {
        let mut rounded = self.clone();
        for w in &mut rounded.measurements.write {
            w.mib_s = (w.mib_s * 10.0).round() / 10.0;
            w.iops = w.iops.round();
        }
        let m = &mut rounded.measurements;
        m.read_128k_qd16_mib_s = (m.read_128k_qd16_mib_s * 10.0).round() / 10.0;
        format!(
            "{HEADER}\n{}",
            toml::to_string(&rounded).expect("iotune file serialises")
        )
    }

    pub fn write_to(&self, path: &Path) -> Result<()> {
        std::fs::write(path, self.to_toml()).with_context(|| format!("writing {}", path.display()))
    }

    /// Parse a whole file (tests, tools); errors name the offending key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let file: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        file.settings
            .validate()
            .map_err(|e| format!("settings.{e}"))?;
        Ok(file)
    }

    /// The table printed after a run.
    pub fn table(&self) -> String {
        let m = &self.measurements;
        let mut sizes: Vec<usize> = m.write.iter().map(|w| w.size).collect();
        let mut qds: Vec<usize> = m.write.iter().map(|w| w.queue_depth).collect();
        sizes.sort_unstable();
        sizes.dedup();
        qds.sort_unstable();
        qds.dedup();
        let mut s = format!(
            "device {} ({}), {:.2} s per test\n\nwrite MiB/s   ",
            self.device.name, self.device.data_dir, self.device.duration_per_test_s
        );
        for qd in &qds {
            s += &format!("{:>10}", format!("qd {qd}"));
        }
        s += "\n";
        for size in &sizes {
            s += &format!("{:<14}", crate::host::bytes(*size as u64));
            for qd in &qds {
                let v = m
                    .write
                    .iter()
                    .find(|w| w.size == *size && w.queue_depth == *qd)
                    .map_or("-".to_string(), |w| format!("{:.1}", w.mib_s));
                s += &format!("{v:>10}");
            }
            s += "\n";
        }
        s += &format!(
            "\n16 KiB write + fdatasync: p50 {} us, p99 {} us\nread 128 KiB qd 16: {:.1} MiB/s\n\n\
             settings: write_queue_depth = {}, write_chunk_bytes = {}, group_commit_window_us = {}\n",
            m.fdatasync_p50_us,
            m.fdatasync_p99_us,
            m.read_128k_qd16_mib_s,
            self.settings.write_queue_depth,
            self.settings.write_chunk_bytes,
            self.settings.group_commit_window_us
        );
        if !m.sync_fanout.is_empty() {
            s += "\n4 KiB appends to N files, then durable (round p50 / p99 us):\n";
            for r in &m.sync_fanout {
                s += &format!(
                    "  {:>3} files  {:<17} {:>8} {:>8}\n",
                    r.files,
                    r.mode.name(),
                    r.round_p50_us,
                    r.round_p99_us
                );
            }
        }
        s
    }
}

/// Read the settings of an iotune file for the broker. A malformed file is
/// an error naming the file and the key.
pub fn read_settings(path: &Path) -> Result<(Settings, Option<String>)> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let parsed: SettingsOnly = toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.to_string().trim_end()))?;
    if let Err(e) = parsed.settings.validate() {
        bail!("{}: settings.{e}", path.display());
    }
    Ok((parsed.settings, parsed.device.and_then(|d| d.name)))
}

/// Derive the broker's settings from a measurement table.
pub fn derive(m: &Measurements) -> Settings {
    let defaults = Settings {
        write_queue_depth: 4,
        write_chunk_bytes: 1 << 20,
        group_commit_window_us: 0,
    };
    let near_best = |rows: &[&WriteResult]| -> Option<usize> {
        let best = rows.iter().map(|w| w.mib_s).fold(0.0, f64::max);
        (best > 0.0).then_some(())?;
        rows.iter()
            .find(|w| w.mib_s >= 0.9 * best)
            .map(|w| w.queue_depth)
    };
    // Queue depth: 128 KiB writes, the smallest depth near the best.
    let mut by_qd: Vec<&WriteResult> = m.write.iter().filter(|w| w.size == 128 << 10).collect();
    by_qd.sort_by_key(|w| w.queue_depth);
    let qd = near_best(&by_qd).unwrap_or(defaults.write_queue_depth);
    // Chunk: at that depth, the smallest size near the best. Not below
    // MIN_CHUNK: the device test does not see the per-write CPU cost (a
    // buffer, a submission, a completion) that small chunks multiply in the
    // broker; on the development VM, 128 KiB chunks at depth 32 (what the
    // device numbers alone chose) cost ~1.7x the broker CPU of 1 MiB ones.
    let mut by_size: Vec<&WriteResult> = m.write.iter().filter(|w| w.queue_depth == qd).collect();
    by_size.sort_by_key(|w| w.size);
    let best = by_size.iter().map(|w| w.mib_s).fold(0.0, f64::max);
    let chunk = by_size
        .iter()
        .find(|w| best > 0.0 && w.mib_s >= 0.9 * best)
        .map_or(defaults.write_chunk_bytes, |w| w.size.max(MIN_CHUNK));
    // Window: waiting a quarter of a sync adds at most ~25% to a streaming
    // partition's ack latency while batches arriving meanwhile skip a whole
    // sync of their own; capped so slow (HDD, network) disks do not add
    // milliseconds; off when syncs are nearly free (NVMe with PLP, tmpfs-like
    // caches), where waiting costs more than the sync it saves.
    let p50 = m.fdatasync_p50_us;
    let window = if p50 < 50 { 0 } else { (p50 / 4).min(500) };
    Settings {
        write_queue_depth: qd,
        write_chunk_bytes: chunk,
        group_commit_window_us: window,
    }
}

/// Smallest write piece iotune will choose (see `derive`).
const MIN_CHUNK: usize = 512 << 10;

/// Current UTC time as RFC 3339 ("2025-01-31T12:00:00Z").
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
