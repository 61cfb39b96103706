//! `shardline iotune`: measure the data directory's device through the
//! broker's own I/O path (`shard::io_probe`: O_DIRECT through io_uring,
//! page-aligned buffers from the file) and derive the flusher's settings.

pub mod fanout;
pub mod file;
#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use shard::io_probe::ScratchFile;

pub use file::{derive, read_settings, Device, IotuneFile, Measurements, Settings, WriteResult};

pub const SIZES: [usize; 5] = [4 << 10, 16 << 10, 64 << 10, 128 << 10, 1 << 20];
pub const QUEUE_DEPTHS: [usize; 4] = [1, 4, 16, 32];
const SCRATCH: &str = ".iotune-scratch";

#[derive(Debug, Clone)]
pub struct IotuneOptions {
    pub data_dir: PathBuf,
    /// Default: `DATA_DIR/iotune.toml`.
    pub out: Option<PathBuf>,
    pub duration_per_test: Duration,
    /// Tiny scratch file and very short tests (for tests; numbers are rough).
    pub quick: bool,
    /// The broker's per-shard registered I/O memory.
    pub io_memory_bytes: usize,
}

impl IotuneOptions {
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            out: None,
            duration_per_test: Duration::from_secs(1),
            quick: false,
            io_memory_bytes: 4 << 20,
        }
    }

    pub fn out_path(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| self.data_dir.join("iotune.toml"))
    }
}

/// Measure, derive, write the file; returns what was written.
pub fn run(opts: &IotuneOptions) -> Result<IotuneFile> {
    std::fs::create_dir_all(&opts.data_dir)
        .with_context(|| format!("creating {}", opts.data_dir.display()))?;
    let duration = if opts.quick {
        opts.duration_per_test.min(Duration::from_millis(50))
    } else {
        opts.duration_per_test
    };
    let span = scratch_span(&opts.data_dir, opts.quick);
    let dir = opts.data_dir.clone();
    let measured = shard::rt::run_standalone("iotune", opts.io_memory_bytes, move || async move {
        measure_dir(&dir, span, duration).await
    })?;
    let measurements = measured?;
    let dev = crate::host::device_of(&opts.data_dir)
        .and_then(|d| crate::host::block_device(&crate::host::Host::live(), d));
    let result = IotuneFile {
        settings: derive(&measurements),
        device: Device {
            name: dev.map_or_else(|| "unknown".into(), |d| d.name),
            data_dir: std::fs::canonicalize(&opts.data_dir)
                .unwrap_or_else(|_| opts.data_dir.clone())
                .display()
                .to_string(),
            date: file::utc_now(),
            duration_per_test_s: duration.as_secs_f64(),
        },
        measurements,
    };
    result.write_to(&opts.out_path())?;
    Ok(result)
}

/// Size of the scratch file: big enough that writes spread over the device
/// rather than one hot region, small enough to fit beside real data.
fn scratch_span(dir: &Path, quick: bool) -> u64 {
    let want: u64 = if quick { 16 << 20 } else { 512 << 20 };
    let free = nix_free_bytes(dir).unwrap_or(u64::MAX);
    let span = want.min(free / 4) / (1 << 20) * (1 << 20);
    span.max(4 << 20)
}

fn nix_free_bytes(dir: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    // SAFETY: statvfs writes into the zeroed struct we pass; `c` outlives the call.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    (rc == 0).then(|| st.f_bavail as u64 * st.f_frsize as u64)
}

async fn measure_dir(dir: &Path, span: u64, duration: Duration) -> Result<Measurements> {
    // The broker's own preparation: the runtime's iopoll probe misfires when
    // the first DMA file it opens on a device is empty (our scratch file).
    shard::log::direct_io::prepare_dir(dir)
        .await
        .map_err(|e| anyhow!("{e}"))?;
    let path = dir.join(SCRATCH);
    let outcome = async {
        let file = ScratchFile::create(&path)
            .await
            .with_context(|| format!("opening {}", path.display()))?;
        let m = measure_file(&file, span, duration).await;
        file.close().await?;
        let mut m = m?;
        // 64 files of 8 MiB (256 KiB when quick) at most.
        let fanout_span = (span / 64).clamp(256 << 10, 8 << 20) / (256 << 10) * (256 << 10);
        m.sync_fanout = fanout::measure(dir, &pattern(256 << 10), fanout_span, duration).await?;
        Ok(m)
    }
    .await;
    // The scratch file goes whatever happened.
    let _ = std::fs::remove_file(&path);
    outcome
}

async fn measure_file(file: &ScratchFile, span: u64, duration: Duration) -> Result<Measurements> {
    let pattern = pattern(1 << 20);
    let _ = file.preallocate(span).await;
    // Write every block once first so each test sees the same block state
    // (first writes to preallocated extents also convert them, which would
    // penalise whichever test ran first).
    write_test(file, &pattern, span, 1 << 20, 16, Duration::MAX, Some(span)).await?;
    let mut write = Vec::new();
    for size in SIZES {
        for qd in QUEUE_DEPTHS {
            let (bytes, ops, secs) =
                write_test(file, &pattern, span, size, qd, duration, None).await?;
            write.push(WriteResult {
                size,
                queue_depth: qd,
                mib_s: bytes as f64 / secs / (1 << 20) as f64,
                iops: ops as f64 / secs,
            });
        }
    }
    let (p50, p99) = sync_test(file, &pattern, span, duration).await?;
    let read = read_test(file, span, duration).await?;
    Ok(Measurements {
        fdatasync_p50_us: p50,
        fdatasync_p99_us: p99,
        read_128k_qd16_mib_s: read,
        write,
        sync_fanout: Vec::new(),
    })
}

/// Non-repeating-looking bytes: some virtual disks compress or dedupe zeros.
fn pattern(len: usize) -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `qd` concurrent writers of `size` bytes walking the file sequentially
/// (wrapping), until `duration` passes or `limit` bytes are written.
/// Returns (bytes, writes, seconds).
async fn write_test(
    file: &ScratchFile,
    pattern: &[u8],
    span: u64,
    size: usize,
    qd: usize,
    duration: Duration,
    limit: Option<u64>,
) -> Result<(u64, u64, f64)> {
    let next = Cell::new(0u64);
    let claimed = Cell::new(0u64);
    let (bytes, ops) = (Cell::new(0u64), Cell::new(0u64));
    let started = Instant::now();
    let writer = || async {
        while started.elapsed() < duration && limit.is_none_or(|l| claimed.get() < l) {
            let pos = next.get();
            next.set(if pos + 2 * size as u64 > span {
                0
            } else {
                pos + size as u64
            });
            claimed.set(claimed.get() + size as u64);
            // As the flusher does: a buffer from the file, filled by a copy.
            let n = file.write_at(&pattern[..size], pos).await?;
            bytes.set(bytes.get() + n as u64);
            ops.set(ops.get() + 1);
        }
        Ok::<_, std::io::Error>(())
    };
    for r in futures::future::join_all((0..qd).map(|_| writer())).await {
        r.context("scratch write")?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    Ok((bytes.get(), ops.get(), secs))
}

/// 16 KiB write + fdatasync, one at a time: the latency of a batch-mode ack.
async fn sync_test(
    file: &ScratchFile,
    pattern: &[u8],
    span: u64,
    duration: Duration,
) -> Result<(u64, u64)> {
    const SIZE: usize = 16 << 10;
    let mut lat = Vec::new();
    let mut pos = 0u64;
    let started = Instant::now();
    while started.elapsed() < duration || lat.len() < 5 {
        let t = Instant::now();
        file.write_at(&pattern[..SIZE], pos)
            .await
            .context("scratch write")?;
        file.fdatasync().await.context("fdatasync")?;
        lat.push(t.elapsed().as_micros() as u64);
        pos = if pos + 2 * SIZE as u64 > span {
            0
        } else {
            pos + SIZE as u64
        };
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p).round() as usize];
    Ok((pct(0.5), pct(0.99)))
}

/// 128 KiB DMA reads, 16 in flight, walking the file; MiB/s.
async fn read_test(file: &ScratchFile, span: u64, duration: Duration) -> Result<f64> {
    const SIZE: usize = 128 << 10;
    let next = Cell::new(0u64);
    let bytes = Cell::new(0u64);
    let started = Instant::now();
    let reader = || async {
        while started.elapsed() < duration {
            let pos = next.get();
            next.set(if pos + 2 * SIZE as u64 > span {
                0
            } else {
                pos + SIZE as u64
            });
            let n = file.read_at(pos, SIZE).await?;
            bytes.set(bytes.get() + n as u64);
        }
        Ok::<_, std::io::Error>(())
    };
    for r in futures::future::join_all((0..16).map(|_| reader())).await {
        r.context("scratch read")?;
    }
    Ok(bytes.get() as f64 / started.elapsed().as_secs_f64().max(1e-9) / (1 << 20) as f64)
}
