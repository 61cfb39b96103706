//! What the checks look at: a root directory holding `proc/` and `sys/`
//! (the real `/`, or a fake tree in tests), the process limits and whether
//! io_uring can be set up, plus what the broker will need from the host.
//! Everything the checks read goes through here so tests need no root.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// A soft/hard resource limit; `u64::MAX` means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub soft: u64,
    pub hard: u64,
}

/// The host as the checks see it.
#[derive(Debug, Clone)]
pub struct Host {
    /// Directory containing `proc/` and `sys/`; `/` on a real host.
    pub root: PathBuf,
    pub memlock: Option<Limit>,
    pub nofile: Option<Limit>,
    /// Outcome of a real `io_uring_setup` call (it can fail for seccomp or
    /// container reasons the sysctl does not show).
    pub io_uring_setup: Result<(), String>,
}

/// What the broker will ask of the host, as plain values from its config.
#[derive(Debug, Clone)]
pub struct Needs {
    pub shards: usize,
    /// Locked I/O memory the broker registers per shard.
    pub io_memory_bytes: u64,
    pub data_dir: PathBuf,
    /// `st_dev` of the data directory (or its nearest existing ancestor).
    pub data_dev: Option<(u32, u32)>,
    /// CPUs the shards are pinned to.
    pub shard_cores: Vec<usize>,
}

/// Extra locked memory the broker's runtime reserves beyond the per-shard
/// I/O memory (kept equal to `shard::runtime::fit_io_memory`'s slack).
pub const MEMLOCK_SLACK: u64 = 1 << 20;
/// Smallest per-shard I/O memory the runtime falls back to.
pub const MIN_IO_MEMORY: u64 = 64 << 10;

impl Host {
    /// The machine this process runs on.
    pub fn live() -> Self {
        Self {
            root: PathBuf::from("/"),
            memlock: rlimit(libc::RLIMIT_MEMLOCK),
            nofile: rlimit(libc::RLIMIT_NOFILE),
            io_uring_setup: try_io_uring_setup(),
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Read a small proc/sys file.
    pub fn read(&self, rel: &str) -> FileValue {
        read_value(&self.path(rel))
    }
}

impl Needs {
    /// Shards pinned as the runtime pins them: shard `i` on CPU `i % cores`.
    pub fn new(shards: usize, io_memory_bytes: u64, data_dir: &Path, cores: usize) -> Self {
        let cores = cores.max(1);
        let mut shard_cores: Vec<usize> = (0..shards).map(|s| s % cores).collect();
        shard_cores.sort_unstable();
        shard_cores.dedup();
        Self {
            shards,
            io_memory_bytes,
            data_dir: data_dir.to_path_buf(),
            data_dev: device_of(data_dir),
            shard_cores,
        }
    }

    /// Locked memory the broker asks for at start.
    pub fn memlock_bytes(&self) -> u64 {
        self.shards as u64 * self.io_memory_bytes + MEMLOCK_SLACK
    }
}

/// `major:minor` of the filesystem holding `dir`; a data directory that
/// does not exist yet is created under its nearest existing ancestor.
pub fn device_of(dir: &Path) -> Option<(u32, u32)> {
    let mut at = Some(dir);
    while let Some(p) = at {
        if let Ok(meta) = std::fs::metadata(p) {
            let dev = meta.dev();
            return Some((libc::major(dev), libc::minor(dev)));
        }
        at = p.parent().filter(|p| !p.as_os_str().is_empty());
    }
    std::fs::metadata(".").ok().map(|m| {
        let dev = m.dev();
        (libc::major(dev), libc::minor(dev))
    })
}

/// A proc/sys file's content, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileValue {
    /// Trimmed content.
    Value(String),
    Absent,
    Unreadable(String),
}

pub fn read_value(path: &Path) -> FileValue {
    match std::fs::read_to_string(path) {
        Ok(s) => FileValue::Value(s.trim().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileValue::Absent,
        Err(e) => FileValue::Unreadable(format!("{}: {e}", path.display())),
    }
}

/// The bracketed choice of a sysfs selector ("always [madvise] never").
pub fn selected(value: &str) -> &str {
    match (value.find('['), value.find(']')) {
        (Some(a), Some(b)) if a < b => &value[a + 1..b],
        _ => value.trim(),
    }
}

/// Every choice a sysfs selector offers.
pub fn choices(value: &str) -> Vec<&str> {
    value
        .split_whitespace()
        .map(|c| c.trim_matches(['[', ']']))
        .collect()
}

/// A whole-disk block device under `/sys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockDev {
    pub name: String,
    /// The disk's directory in `/sys/devices/...` (holds `queue/`).
    pub dir: PathBuf,
}

/// The disk holding `major:minor`: `/sys/dev/block/MAJ:MIN` is a link to the
/// device (or to a partition, whose parent directory is the disk).
pub fn block_device(host: &Host, dev: (u32, u32)) -> Option<BlockDev> {
    let link = host.path(&format!("sys/dev/block/{}:{}", dev.0, dev.1));
    let mut dir = std::fs::canonicalize(link).ok()?;
    if dir.join("partition").exists() {
        dir = dir.parent()?.to_path_buf();
    }
    let name = dir.file_name()?.to_string_lossy().into_owned();
    Some(BlockDev { name, dir })
}

/// Human form of a byte count.
pub fn bytes(n: u64) -> String {
    if n == u64::MAX {
        "unlimited".into()
    } else if n >= 1 << 30 && n.is_multiple_of(1 << 30) {
        format!("{} GiB", n >> 30)
    } else if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn rlimit(resource: libc::__rlimit_resource_t) -> Option<Limit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(resource, &mut lim) };
    let conv = |v: libc::rlim_t| {
        if v == libc::RLIM_INFINITY {
            u64::MAX
        } else {
            v
        }
    };
    (rc == 0).then(|| Limit {
        soft: conv(lim.rlim_cur),
        hard: conv(lim.rlim_max),
    })
}

/// Set up (and close) a one-entry ring with the raw syscall: the only way
/// to know that seccomp, a container runtime or the sysctl allows it.
pub fn try_io_uring_setup() -> Result<(), String> {
    // struct io_uring_params is 120 bytes; zeroed means "no flags".
    let mut params = [0u8; 120];
    // SAFETY: the kernel reads/writes at most sizeof(io_uring_params) bytes
    // of `params`, which is that size; the returned fd is closed below.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error().to_string());
    }
    // SAFETY: fd is a descriptor we own.
    unsafe { libc::close(fd as i32) };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_parse() {
        assert_eq!(selected("always [madvise] never"), "madvise");
        assert_eq!(selected("none"), "none");
        assert_eq!(
            choices("[mq-deadline] kyber none"),
            ["mq-deadline", "kyber", "none"]
        );
        assert_eq!(bytes(4 << 20), "4 MiB");
        assert_eq!(bytes(u64::MAX), "unlimited");
    }

    #[test]
    fn shards_map_to_cores_like_the_runtime() {
        let n = Needs::new(3, 4 << 20, Path::new("/nonexistent/x/y"), 2);
        assert_eq!(n.shard_cores, [0, 1]);
        assert_eq!(n.memlock_bytes(), 13 << 20);
        // A missing data dir is measured at its nearest existing ancestor.
        assert_eq!(n.data_dev, device_of(Path::new("/")));
    }
}
