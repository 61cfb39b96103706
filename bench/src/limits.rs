//! `limits`: what this host can do at best, to judge broker figures against:
//! loopback TCP bandwidth, sequential O_DIRECT write bandwidth, and the
//! latency of a small write + fdatasync (what an fsync-per-batch broker pays).

use std::alloc::{alloc_zeroed, dealloc, Layout};
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::args::LimitsArgs;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Limits {
    pub loopback_bytes_per_sec: f64,
    pub disk_write_bytes_per_sec: f64,
    /// False when the filesystem refused O_DIRECT (tmpfs) and buffered
    /// writes + fdatasync were measured instead.
    pub disk_o_direct: bool,
    pub fsync_p50_us: f64,
    pub fsync_p99_us: f64,
}

impl Limits {
    /// The best a broker could ingest: every byte crosses loopback and disk.
    pub fn produce_limit(&self) -> f64 {
        self.loopback_bytes_per_sec
            .min(self.disk_write_bytes_per_sec)
    }

    pub fn load(path: &Path) -> Result<Limits> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }
}

pub fn run(a: &LimitsArgs) -> Result<()> {
    let loopback = loopback_bandwidth(a.duration)?;
    let (disk, direct) = disk_bandwidth(&a.dir, a.duration, a.disk_bytes)?;
    let (p50, p99) = fsync_latency(&a.dir, a.fsync_iterations.max(1))?;
    let l = Limits {
        loopback_bytes_per_sec: loopback,
        disk_write_bytes_per_sec: disk,
        disk_o_direct: direct,
        fsync_p50_us: p50,
        fsync_p99_us: p99,
    };
    if a.json {
        println!("{}", serde_json::to_string(&l)?);
    } else {
        println!(
            "loopback TCP:        {:>10.1} MB/s",
            l.loopback_bytes_per_sec / 1e6
        );
        println!(
            "disk seq write:      {:>10.1} MB/s ({})",
            l.disk_write_bytes_per_sec / 1e6,
            if direct {
                "O_DIRECT, 128 KiB writes"
            } else {
                "buffered + fdatasync: O_DIRECT refused"
            }
        );
        println!(
            "16 KiB write+fdatasync: p50 {:.0} µs, p99 {:.0} µs",
            p50, p99
        );
    }
    Ok(())
}

/// One sender thread writing 1 MiB chunks to one receiver over 127.0.0.1.
fn loopback_bandwidth(dur: Duration) -> Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let receiver = std::thread::spawn(move || -> Result<u64> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf)?;
            if n == 0 {
                return Ok(total);
            }
            total += n as u64;
        }
    });
    let mut s = TcpStream::connect(addr)?;
    let buf = vec![7u8; 1 << 20];
    let start = Instant::now();
    while start.elapsed() < dur {
        s.write_all(&buf)?;
    }
    drop(s);
    let total = receiver
        .join()
        .map_err(|_| anyhow::anyhow!("receiver panicked"))??;
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// A zeroed buffer aligned for O_DIRECT.
struct Aligned {
    ptr: *mut u8,
    layout: Layout,
}

impl Aligned {
    fn new(len: usize) -> Aligned {
        let layout = Layout::from_size_align(len, 4096).expect("valid layout");
        // SAFETY: non-zero size; freed in Drop with the same layout.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        Aligned { ptr, layout }
    }

    fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for layout.size() initialised bytes.
        unsafe { std::slice::from_raw_parts(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

fn open_test_file(dir: &Path, name: &str, direct: bool) -> Result<std::fs::File> {
    let mut o = OpenOptions::new();
    o.write(true).create(true).truncate(true);
    if direct {
        o.custom_flags(libc::O_DIRECT);
    }
    o.open(dir.join(name))
        .with_context(|| format!("creating test file in {}", dir.display()))
}

fn pwrite_all(f: &std::fs::File, buf: &[u8], off: u64) -> Result<()> {
    // SAFETY: buf is valid for buf.len() bytes for the duration of the call.
    let n = unsafe {
        libc::pwrite(
            f.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            off as libc::off_t,
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if n as usize != buf.len() {
        bail!("short write ({n} of {})", buf.len());
    }
    Ok(())
}

fn fdatasync(f: &std::fs::File) -> Result<()> {
    f.sync_data().context("fdatasync")
}

/// Sequential 128 KiB writes until `max_bytes` or `dur`, then fdatasync;
/// bytes per second, and whether O_DIRECT was possible.
fn disk_bandwidth(dir: &Path, dur: Duration, max_bytes: usize) -> Result<(f64, bool)> {
    const CHUNK: usize = 128 * 1024;
    let name = ".shardline-bench-disk";
    let (f, direct) = match open_test_file(dir, name, true) {
        Ok(f) => (f, true),
        Err(_) => (open_test_file(dir, name, false)?, false),
    };
    let buf = Aligned::new(CHUNK);
    let start = Instant::now();
    let mut off = 0u64;
    let mut res = Ok(());
    while (off as usize) < max_bytes && start.elapsed() < dur {
        res = pwrite_all(&f, buf.as_slice(), off);
        if res.is_err() {
            break;
        }
        off += CHUNK as u64;
    }
    let res = res.and_then(|_| fdatasync(&f));
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(dir.join(name));
    res?;
    Ok((off as f64 / secs, direct))
}

/// p50 and p99 (µs) of a 16 KiB write at the end of a file plus fdatasync.
fn fsync_latency(dir: &Path, iterations: usize) -> Result<(f64, f64)> {
    let name = ".shardline-bench-fsync";
    let f = open_test_file(dir, name, false)?;
    let buf = vec![1u8; 16 * 1024];
    let mut samples = Vec::with_capacity(iterations);
    let mut res = Ok(());
    for i in 0..iterations {
        let t = Instant::now();
        res = pwrite_all(&f, &buf, (i * buf.len()) as u64).and_then(|_| fdatasync(&f));
        if res.is_err() {
            break;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let _ = std::fs::remove_file(dir.join(name));
    res?;
    samples.sort_by(|a, b| a.total_cmp(b));
    Ok((percentile(&samples, 0.5), percentile(&samples, 0.99)))
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 100.0);
        assert_eq!(percentile(&v, 0.99), 198.0);
        assert_eq!(percentile(&v, 1.0), 200.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn limits_json_round_trips_and_picks_the_lower_limit() {
        let l = Limits {
            loopback_bytes_per_sec: 5e9,
            disk_write_bytes_per_sec: 2e9,
            disk_o_direct: true,
            fsync_p50_us: 100.0,
            fsync_p99_us: 900.0,
        };
        let back: Limits = serde_json::from_str(&serde_json::to_string(&l).unwrap()).unwrap();
        assert_eq!(back, l);
        assert_eq!(l.produce_limit(), 2e9);
    }
}
