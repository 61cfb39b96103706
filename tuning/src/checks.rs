//! The host checks of `shardline tune`. Each returns a [`Finding`] that says
//! what was found, what the broker wants, why, how to fix it, and which
//! files `--apply` may write to fix it. Missing or unreadable files give a
//! clear status (n/a or warn), never a panic.

use std::path::PathBuf;

use serde::Serialize;

use crate::host::{self, bytes, choices, selected, FileValue, Host, Needs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Status {
    #[serde(rename = "ok")]
    Ok,
    #[serde(rename = "warn")]
    Warn,
    #[serde(rename = "fail")]
    Fail,
    #[serde(rename = "n/a")]
    NotApplicable,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::NotApplicable => "n/a",
        }
    }
}

/// One file `--apply` writes to fix a finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Write {
    pub path: PathBuf,
    pub value: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub name: &'static str,
    pub status: Status,
    pub current: String,
    pub wanted: String,
    pub why: &'static str,
    pub fix: String,
    /// What `--apply` would write (empty: nothing it can change).
    pub writes: Vec<Write>,
}

/// Names of every check, in report order.
pub const CHECK_NAMES: [&str; 10] = [
    "io_uring",
    "memlock",
    "open_files",
    "cpu_governor",
    "transparent_hugepages",
    "swappiness",
    "disk_scheduler",
    "disk_nomerges",
    "irq_affinity",
    "aio_max_nr",
];

pub fn run_all(host: &Host, needs: &Needs) -> Vec<Finding> {
    vec![
        io_uring(host),
        memlock(host, needs),
        open_files(host),
        cpu_governor(host),
        transparent_hugepages(host),
        swappiness(host),
        disk_scheduler(host, needs),
        disk_nomerges(host, needs),
        crate::irq::irq_affinity(host, needs),
        aio_max_nr(host),
    ]
}

pub(crate) fn finding(name: &'static str, why: &'static str) -> Finding {
    Finding {
        name,
        status: Status::Ok,
        current: String::new(),
        wanted: String::new(),
        why,
        fix: String::new(),
        writes: Vec::new(),
    }
}

fn write(host: &Host, rel: &str, value: &str) -> Write {
    Write {
        path: host.path(rel),
        value: value.to_string(),
    }
}

/// The common shape of a missing/unreadable file: n/a or warn.
fn unavailable(mut f: Finding, what: &str, value: FileValue) -> Finding {
    match value {
        FileValue::Absent => {
            f.status = Status::NotApplicable;
            f.current = format!("{what} does not exist on this host");
        }
        FileValue::Unreadable(e) => {
            f.status = Status::Warn;
            f.current = format!("cannot read: {e}");
            f.fix = "run `shardline tune` with permission to read it".into();
        }
        FileValue::Value(_) => unreachable!("only called without a value"),
    }
    f
}

pub fn io_uring(host: &Host) -> Finding {
    let mut f = finding(
        "io_uring",
        "every read, write and socket operation of a shard goes through io_uring; without it the broker cannot start",
    );
    f.wanted = "io_uring_disabled = 0 and io_uring_setup succeeds".into();
    let knob = host.read("proc/sys/kernel/io_uring_disabled");
    let knob_text = match &knob {
        FileValue::Value(v) => format!("io_uring_disabled = {v}"),
        FileValue::Absent => "no io_uring_disabled knob (kernel < 6.6)".into(),
        FileValue::Unreadable(e) => format!("io_uring_disabled unreadable ({e})"),
    };
    let setup = match &host.io_uring_setup {
        Ok(()) => "io_uring_setup works".to_string(),
        Err(e) => format!("io_uring_setup fails: {e}"),
    };
    f.current = format!("{knob_text}; {setup}");
    let knob_value = match &knob {
        FileValue::Value(v) => v.as_str(),
        _ => "0",
    };
    f.status = match (&host.io_uring_setup, knob_value) {
        (Err(_), _) => Status::Fail,
        (Ok(()), "0") => Status::Ok,
        // 1: only privileged processes (or io_uring_group) may use it; we
        // can, but a broker started as another user may not.
        (Ok(()), _) => Status::Warn,
    };
    if f.status != Status::Ok {
        f.fix = "sysctl -w kernel.io_uring_disabled=0 (persist in /etc/sysctl.d/); in a container allow io_uring_setup/enter/register in the seccomp profile".into();
        if !matches!(knob, FileValue::Absent) && knob_value != "0" {
            f.writes
                .push(write(host, "proc/sys/kernel/io_uring_disabled", "0"));
        }
    }
    f
}

pub fn memlock(host: &Host, needs: &Needs) -> Finding {
    let mut f = finding(
        "memlock",
        "the broker registers (locks) its io_uring I/O buffers per shard; below the limit the broker shrinks them and large writes slow down",
    );
    let need = needs.memlock_bytes();
    let floor = needs.shards as u64 * host::MIN_IO_MEMORY + host::MEMLOCK_SLACK;
    f.wanted = format!(
        ">= {} ({} shards x {} io_memory_bytes + {} for rings)",
        bytes(need),
        needs.shards,
        bytes(needs.io_memory_bytes),
        bytes(host::MEMLOCK_SLACK)
    );
    let Some(lim) = host.memlock else {
        f.status = Status::Warn;
        f.current = "getrlimit(RLIMIT_MEMLOCK) failed".into();
        return f;
    };
    f.current = format!("soft {}, hard {}", bytes(lim.soft), bytes(lim.hard));
    // The runtime raises its own soft limit up to the hard one at start.
    f.status = if lim.hard >= need {
        Status::Ok
    } else if lim.hard >= floor {
        Status::Warn
    } else {
        Status::Fail
    };
    if f.status != Status::Ok {
        f.fix = "limits are per process, so tune cannot change the broker's: start it after `ulimit -l unlimited`, set LimitMEMLOCK=infinity in its systemd unit, or add `<user> - memlock unlimited` to /etc/security/limits.conf".into();
    }
    f
}

pub fn open_files(host: &Host) -> Finding {
    const WANT: u64 = 65536;
    let mut f = finding(
        "open_files",
        "every client connection and every segment/index file holds a descriptor; at the limit accepts and segment rolls fail",
    );
    f.wanted = format!("soft limit >= {WANT}");
    let Some(lim) = host.nofile else {
        f.status = Status::Warn;
        f.current = "getrlimit(RLIMIT_NOFILE) failed".into();
        return f;
    };
    f.current = format!("soft {}, hard {}", lim.soft, lim.hard);
    f.status = if lim.soft >= WANT {
        Status::Ok
    } else if lim.soft >= 1024 {
        Status::Warn
    } else {
        Status::Fail
    };
    if f.status != Status::Ok {
        f.fix = format!("limits are per process: start the broker after `ulimit -n {WANT}`, or set LimitNOFILE={WANT} in its systemd unit");
    }
    f
}

pub fn cpu_governor(host: &Host) -> Finding {
    let mut f = finding(
        "cpu_governor",
        "shards poll and never sleep long; power-saving governors lower the clock between bursts and add wake-up latency",
    );
    f.wanted = "performance on every CPU".into();
    let cpu_dir = host.path("sys/devices/system/cpu");
    let mut cpus: Vec<(usize, FileValue)> = std::fs::read_dir(&cpu_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: usize = name.strip_prefix("cpu")?.parse().ok()?;
            Some((
                n,
                host::read_value(&e.path().join("cpufreq/scaling_governor")),
            ))
        })
        .filter(|(_, v)| *v != FileValue::Absent)
        .collect();
    cpus.sort_by_key(|(n, _)| *n);
    if cpus.is_empty() {
        f.status = Status::NotApplicable;
        f.current = "no cpufreq scaling (virtual machine or fixed clock)".into();
        return f;
    }
    let mut other = Vec::new();
    for (n, v) in &cpus {
        match v {
            FileValue::Value(g) if g == "performance" => {}
            FileValue::Value(g) => {
                other.push(format!("cpu{n}={g}"));
                f.writes.push(write(
                    host,
                    &format!("sys/devices/system/cpu/cpu{n}/cpufreq/scaling_governor"),
                    "performance",
                ));
            }
            _ => other.push(format!("cpu{n}=unreadable")),
        }
    }
    if other.is_empty() {
        f.current = format!("performance on all {} CPUs", cpus.len());
    } else {
        f.status = Status::Warn;
        f.current = other.join(", ");
        f.fix = "cpupower frequency-set -g performance (or write it to each cpu*/cpufreq/scaling_governor)".into();
    }
    f
}

pub fn transparent_hugepages(host: &Host) -> Finding {
    let mut f = finding(
        "transparent_hugepages",
        "with `always` the kernel stalls allocations to compact memory and khugepaged rewrites heaps behind the shards' backs; \
         `madvise` keeps huge pages for code that asks (the broker allocates small, short-lived buffers)",
    );
    f.wanted = "madvise (or never)".into();
    let rel = "sys/kernel/mm/transparent_hugepage/enabled";
    let v = match host.read(rel) {
        FileValue::Value(v) => v,
        other => return unavailable(f, "transparent_hugepage/enabled", other),
    };
    let mode = selected(&v).to_string();
    f.current = mode.clone();
    if mode != "madvise" && mode != "never" {
        f.status = Status::Warn;
        f.fix = format!("echo madvise > /{rel} (persist with transparent_hugepage=madvise on the kernel command line)");
        f.writes.push(write(host, rel, "madvise"));
    }
    f
}

pub fn swappiness(host: &Host) -> Finding {
    let mut f = finding(
        "swappiness",
        "a swapped-out page of a shard stalls that whole core's event loop for a disk read",
    );
    f.wanted = "<= 10 (1 recommended)".into();
    let rel = "proc/sys/vm/swappiness";
    let v = match host.read(rel) {
        FileValue::Value(v) => v,
        other => return unavailable(f, "vm.swappiness", other),
    };
    f.current = v.clone();
    match v.parse::<u32>() {
        Ok(n) if n <= 10 => {}
        Ok(_) => {
            f.status = Status::Warn;
            f.fix = "sysctl -w vm.swappiness=1 (persist in /etc/sysctl.d/)".into();
            f.writes.push(write(host, rel, "1"));
        }
        Err(_) => {
            f.status = Status::Warn;
            f.current = format!("unparsable: {v:?}");
        }
    }
    f
}

pub fn aio_max_nr(host: &Host) -> Finding {
    const WANT: u64 = 1_048_576;
    let mut f = finding(
        "aio_max_nr",
        "io_uring does not use this pool, but Linux-AIO users on the host (and the broker runtime's fallbacks) fail with EAGAIN once the system-wide limit is reached",
    );
    f.wanted = format!(">= {WANT}");
    let rel = "proc/sys/fs/aio-max-nr";
    let v = match host.read(rel) {
        FileValue::Value(v) => v,
        other => return unavailable(f, "fs.aio-max-nr", other),
    };
    f.current = v.clone();
    if v.parse::<u64>().map_or(true, |n| n < WANT) {
        f.status = Status::Warn;
        f.fix = format!("sysctl -w fs.aio-max-nr={WANT} (persist in /etc/sysctl.d/)");
        f.writes.push(write(host, rel, &WANT.to_string()));
    }
    f
}

/// The data dir's disk, or a finding explaining why there is none.
fn data_disk(host: &Host, needs: &Needs, f: &mut Finding) -> Option<host::BlockDev> {
    let Some(dev) = needs.data_dev else {
        f.status = Status::NotApplicable;
        f.current = format!("cannot stat {}", needs.data_dir.display());
        return None;
    };
    let disk = host::block_device(host, dev);
    if disk.is_none() {
        f.status = Status::NotApplicable;
        f.current = format!(
            "{} is on device {}:{}, which is not a block device (tmpfs, overlay or network filesystem)",
            needs.data_dir.display(),
            dev.0,
            dev.1
        );
    }
    disk
}

fn rel_to_root(host: &Host, path: &std::path::Path) -> String {
    path.strip_prefix(&host.root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

pub fn disk_scheduler(host: &Host, needs: &Needs) -> Finding {
    let mut f = finding(
        "disk_scheduler",
        "the broker already issues large, ordered, page-aligned writes; an I/O scheduler only adds queueing latency and CPU on fast devices",
    );
    f.wanted = "none (or noop)".into();
    let Some(disk) = data_disk(host, needs, &mut f) else {
        return f;
    };
    let rel = rel_to_root(host, &disk.dir.join("queue/scheduler"));
    let v = match host.read(&rel) {
        FileValue::Value(v) => v,
        other => return unavailable(f, &format!("{}'s queue/scheduler", disk.name), other),
    };
    let sel = selected(&v).to_string();
    f.current = format!("{} on {}", sel, disk.name);
    if sel != "none" && sel != "noop" {
        f.status = Status::Warn;
        f.fix = format!(
            "echo none > /sys/block/{}/queue/scheduler (persist with a udev rule)",
            disk.name
        );
        if choices(&v).contains(&"none") {
            f.writes.push(write(host, &rel, "none"));
        } else {
            f.fix
                .push_str("; this kernel offers no `none` scheduler for it");
        }
    }
    f
}

pub fn disk_nomerges(host: &Host, needs: &Needs) -> Finding {
    let mut f = finding(
        "disk_nomerges",
        "the flusher already writes contiguous chunks; merge lookups cost CPU on every request for nothing",
    );
    f.wanted = "2 (never merge)".into();
    let Some(disk) = data_disk(host, needs, &mut f) else {
        return f;
    };
    let rel = rel_to_root(host, &disk.dir.join("queue/nomerges"));
    let v = match host.read(&rel) {
        FileValue::Value(v) => v,
        other => return unavailable(f, &format!("{}'s queue/nomerges", disk.name), other),
    };
    f.current = format!("{v} on {}", disk.name);
    if v != "2" {
        f.status = Status::Warn;
        f.fix = format!(
            "echo 2 > /sys/block/{}/queue/nomerges (persist with a udev rule)",
            disk.name
        );
        f.writes.push(write(host, &rel, "2"));
    }
    f
}
