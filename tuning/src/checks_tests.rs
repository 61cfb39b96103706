//! Every check against a fake `/proc` + `/sys` tree: ok, warn, fail and n/a
//! cases, `--apply` writing fixes (old -> new), and no writes without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checks::{self, Status};
use crate::host::{Host, Limit, Needs};
use crate::report::tune;

struct Fake {
    dir: tempfile::TempDir,
}

const DISK: &str = "sys/devices/pci0000:00/0000:00:02.0/virtio1/block/vda";
const NIC_PCI: &str = "sys/devices/pci0000:00/0000:00:03.0";

impl Fake {
    fn empty() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn file(&self, rel: &str, content: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }

    fn link(&self, rel: &str, target: &str) {
        let p = self.root().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, p).unwrap();
    }

    /// A 4-CPU host tuned as the broker wants, data on partition vda1.
    fn healthy() -> Self {
        let f = Self::empty();
        f.file("proc/sys/kernel/io_uring_disabled", "0\n");
        f.file("proc/sys/vm/swappiness", "1\n");
        f.file("proc/sys/fs/aio-max-nr", "1048576\n");
        f.file(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "always [madvise] never\n",
        );
        for cpu in 0..4 {
            f.file(
                &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor"),
                "performance\n",
            );
        }
        f.file("sys/devices/system/cpu/online", "0-3\n");
        f.file(
            &format!("{DISK}/queue/scheduler"),
            "[none] mq-deadline kyber\n",
        );
        f.file(&format!("{DISK}/queue/nomerges"), "2\n");
        f.file(&format!("{DISK}/vda1/partition"), "1\n");
        f.link("sys/dev/block/254:1", &format!("../../../{DISK}/vda1"));
        f.link(&format!("{DISK}/device"), "../../../virtio1");
        f.file("sys/devices/pci0000:00/0000:00:02.0/msi_irqs/35", "msix\n");
        f.file("sys/devices/pci0000:00/0000:00:02.0/msi_irqs/36", "msix\n");
        f.file(&format!("{NIC_PCI}/virtio2/uevent"), "\n");
        f.file(&format!("{NIC_PCI}/msi_irqs/38"), "msix\n");
        f.link(
            "sys/class/net/eth0/device",
            &format!("../../../../{NIC_PCI}/virtio2"),
        );
        f.file("sys/class/net/lo/mtu", "65536\n");
        f.file(
            "proc/interrupts",
            "           CPU0       CPU1       CPU2       CPU3\n\
             \x2035:          0          0          0          0  PCI-MSIX-0000:00:02.0   0-edge      virtio1-config\n\
             \x2036:          0          0       5000          0  PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n\
             \x2038:          0          0          0        300  PCI-MSIX-0000:00:03.0   1-edge      virtio2-input.0\n\
             \x2026:         14          0          0          0  IO-APIC   4-edge      ttyS0\n\
             NMI:          0          0          0          0   Non-maskable interrupts\n",
        );
        for irq in [35, 36, 38] {
            f.file(&format!("proc/irq/{irq}/smp_affinity_list"), "2-3\n");
        }
        f.file("proc/irq/26/smp_affinity_list", "0\n");
        f
    }

    fn host(&self) -> Host {
        Host {
            root: self.root().to_path_buf(),
            memlock: Some(Limit {
                soft: 64 << 10,
                hard: u64::MAX,
            }),
            nofile: Some(Limit {
                soft: 65536,
                hard: 1 << 20,
            }),
            io_uring_setup: Ok(()),
        }
    }

    fn needs(&self) -> Needs {
        Needs {
            shards: 2,
            io_memory_bytes: 4 << 20,
            data_dir: PathBuf::from("/var/lib/shardline"),
            data_dev: Some((254, 1)),
            shard_cores: vec![0, 1],
        }
    }

    /// Every regular file under the root with its content.
    fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
            for e in std::fs::read_dir(dir).unwrap().flatten() {
                let ty = e.file_type().unwrap();
                if ty.is_dir() {
                    walk(&e.path(), out);
                } else if ty.is_file() {
                    out.insert(e.path(), std::fs::read_to_string(e.path()).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(self.root(), &mut out);
        out
    }

    /// The healthy host detuned the way a stock distribution ships.
    fn stock() -> Self {
        let f = Self::healthy();
        f.file("proc/sys/vm/swappiness", "60\n");
        f.file("proc/sys/fs/aio-max-nr", "65536\n");
        f.file(
            "sys/kernel/mm/transparent_hugepage/enabled",
            "[always] madvise never\n",
        );
        f.file(
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "powersave\n",
        );
        f.file(
            &format!("{DISK}/queue/scheduler"),
            "[mq-deadline] kyber none\n",
        );
        f.file(&format!("{DISK}/queue/nomerges"), "0\n");
        f.file("proc/irq/36/smp_affinity_list", "0-3\n");
        f
    }
}

fn status_of(report: &crate::TuneReport, name: &str) -> Status {
    report
        .checks
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .status
}

#[test]
fn a_tuned_host_passes_every_check() {
    let f = Fake::healthy();
    let r = tune(&f.host(), &f.needs(), false);
    for c in &r.checks {
        assert_eq!(c.status, Status::Ok, "{}: {}", c.name, c.current);
        assert!(!c.why.is_empty() && !c.wanted.is_empty(), "{}", c.name);
    }
    assert!(r.fit);
    let names: Vec<_> = r.checks.iter().map(|c| c.name).collect();
    assert_eq!(names, checks::CHECK_NAMES);
    let disk = r
        .checks
        .iter()
        .find(|c| c.name == "disk_scheduler")
        .unwrap();
    assert_eq!(disk.current, "none on vda");
}

#[test]
fn a_stock_host_warns_and_explains() {
    let f = Fake::stock();
    let r = tune(&f.host(), &f.needs(), false);
    for name in [
        "swappiness",
        "aio_max_nr",
        "transparent_hugepages",
        "cpu_governor",
        "disk_scheduler",
        "disk_nomerges",
        "irq_affinity",
    ] {
        let c = r.checks.iter().find(|c| c.name == name).unwrap();
        assert_eq!(c.status, Status::Warn, "{name}: {}", c.current);
        assert!(!c.fix.is_empty(), "{name} has no fix");
        assert!(!c.writes.is_empty(), "{name} offers nothing to apply");
    }
    assert!(r.fit, "warnings do not make a host unfit");
    let irq = r.checks.iter().find(|c| c.name == "irq_affinity").unwrap();
    assert_eq!(
        irq.current,
        "vda: 1 of 2 IRQs on shard cores; eth0: 0 of 1 IRQs on shard cores"
    );
    assert_eq!(irq.writes[0].value, "2,3");
    let text = r.to_text();
    assert!(text.contains("[warn] swappiness"), "{text}");
}

#[test]
fn limits_and_io_uring_fail_when_the_broker_cannot_run() {
    let f = Fake::healthy();
    f.file("proc/sys/kernel/io_uring_disabled", "2\n");
    let mut host = f.host();
    host.io_uring_setup = Err("Operation not permitted (os error 1)".into());
    host.memlock = Some(Limit {
        soft: 64 << 10,
        hard: 512 << 10,
    });
    host.nofile = Some(Limit {
        soft: 256,
        hard: 256,
    });
    let r = tune(&host, &f.needs(), false);
    assert_eq!(status_of(&r, "io_uring"), Status::Fail);
    assert_eq!(status_of(&r, "memlock"), Status::Fail);
    assert_eq!(status_of(&r, "open_files"), Status::Fail);
    assert!(!r.fit);
    let io = r.checks.iter().find(|c| c.name == "io_uring").unwrap();
    assert!(
        io.current.contains("io_uring_disabled = 2"),
        "{}",
        io.current
    );

    // In between: the broker runs, but degraded.
    host.io_uring_setup = Ok(());
    host.memlock = Some(Limit {
        soft: 8 << 20,
        hard: 8 << 20,
    }); // needs 9 MiB
    host.nofile = Some(Limit {
        soft: 1024,
        hard: 4096,
    });
    let r = tune(&host, &f.needs(), false);
    assert_eq!(
        status_of(&r, "io_uring"),
        Status::Warn,
        "knob 2 but setup works"
    );
    assert_eq!(status_of(&r, "memlock"), Status::Warn);
    assert_eq!(status_of(&r, "open_files"), Status::Warn);
    assert!(r.fit);
    let m = r.checks.iter().find(|c| c.name == "memlock").unwrap();
    assert!(m.wanted.starts_with(">= 9 MiB"), "{}", m.wanted);
    assert!(m.fix.contains("LimitMEMLOCK"), "{}", m.fix);
}

#[test]
fn missing_files_are_not_applicable_never_a_panic() {
    let f = Fake::empty();
    let mut needs = f.needs();
    let r = tune(&f.host(), &needs, false);
    for name in [
        "cpu_governor",
        "transparent_hugepages",
        "swappiness",
        "aio_max_nr",
        "disk_scheduler",
        "disk_nomerges",
        "irq_affinity",
    ] {
        assert_eq!(status_of(&r, name), Status::NotApplicable, "{name}");
    }
    // No knob on older kernels: the syscall result decides.
    assert_eq!(status_of(&r, "io_uring"), Status::Ok);
    let sched = r
        .checks
        .iter()
        .find(|c| c.name == "disk_scheduler")
        .unwrap();
    assert!(
        sched.current.contains("not a block device"),
        "{}",
        sched.current
    );
    needs.data_dev = None;
    let r = tune(&f.host(), &needs, true);
    assert_eq!(status_of(&r, "disk_nomerges"), Status::NotApplicable);
    assert!(r.changes.unwrap().is_empty());
}

#[test]
fn unreadable_files_warn_with_the_reason() {
    let f = Fake::healthy();
    let p = f.root().join("proc/sys/vm/swappiness");
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap(); // reading a directory fails, even as root
    let g = f
        .root()
        .join("sys/devices/system/cpu/cpu2/cpufreq/scaling_governor");
    std::fs::remove_file(&g).unwrap();
    std::fs::create_dir(&g).unwrap();
    let r = tune(&f.host(), &f.needs(), false);
    let c = r.checks.iter().find(|c| c.name == "swappiness").unwrap();
    assert_eq!(c.status, Status::Warn);
    assert!(c.current.starts_with("cannot read"), "{}", c.current);
    let g = r.checks.iter().find(|c| c.name == "cpu_governor").unwrap();
    assert_eq!(
        (g.status, g.current.as_str()),
        (Status::Warn, "cpu2=unreadable")
    );
}

#[test]
fn without_apply_nothing_is_written() {
    let f = Fake::stock();
    let before = f.snapshot();
    let r = tune(&f.host(), &f.needs(), false);
    assert!(r.changes.is_none());
    assert_eq!(f.snapshot(), before);
}

#[test]
fn apply_writes_fixes_and_reports_old_and_new() {
    let f = Fake::stock();
    f.file("proc/sys/kernel/io_uring_disabled", "1\n");
    let r = tune(&f.host(), &f.needs(), true);
    let changes = r.changes.clone().unwrap();
    let find = |check: &str| changes.iter().find(|c| c.check == check).unwrap().clone();
    let sw = find("swappiness");
    assert_eq!(
        (sw.old.as_str(), sw.new.as_str(), sw.error),
        ("60", "1", None)
    );
    let thp = find("transparent_hugepages");
    assert_eq!((thp.old.as_str(), thp.new.as_str()), ("always", "madvise"));
    assert_eq!(find("disk_scheduler").old, "mq-deadline");
    assert_eq!(find("io_uring").new, "0");
    assert_eq!(
        find("irq_affinity").path,
        f.root()
            .join("proc/irq/36/smp_affinity_list")
            .display()
            .to_string()
    );
    assert_eq!(changes.len(), 8);
    let read = |rel: &str| std::fs::read_to_string(f.root().join(rel)).unwrap();
    assert_eq!(read("proc/sys/vm/swappiness"), "1");
    assert_eq!(read("proc/sys/fs/aio-max-nr"), "1048576");
    assert_eq!(read(&format!("{DISK}/queue/nomerges")), "2");
    assert_eq!(
        read("sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"),
        "performance"
    );
    assert_eq!(read("proc/irq/36/smp_affinity_list"), "2,3");
    // The report shows the state after the changes. (A fake sysfs file
    // holds exactly what was written, so the scheduler reads back "none".)
    for c in &r.checks {
        assert_eq!(c.status, Status::Ok, "{}: {}", c.name, c.current);
    }
    assert!(r.to_text().contains("swappiness: "));
    assert!(r.to_text().contains("60 -> 1"));
}

#[test]
fn apply_failures_are_reported_not_fatal() {
    let f = Fake::stock();
    let mut found = checks::run_all(&f.host(), &f.needs());
    // A read-only /proc or a vanished file: the write fails, the rest go on.
    let sw = found.iter_mut().find(|c| c.name == "swappiness").unwrap();
    sw.writes[0].path = f.root().join("proc/sys/vm/gone/swappiness");
    let changes = crate::report::apply_fixes(&found);
    let sw = changes.iter().find(|c| c.check == "swappiness").unwrap();
    assert_eq!(sw.old, "(absent)");
    assert!(
        sw.error.as_deref().unwrap().contains("No such file"),
        "{sw:?}"
    );
    assert!(changes
        .iter()
        .any(|c| c.check == "aio_max_nr" && c.error.is_none()));
    let text = crate::TuneReport {
        fit: true,
        data_dir: String::new(),
        shards: 1,
        checks: vec![],
        changes: Some(changes),
    }
    .to_text();
    assert!(text.contains("NOT changed"), "{text}");
}

#[test]
fn json_has_every_check() {
    let f = Fake::stock();
    let r = tune(&f.host(), &f.needs(), false);
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(v["fit"], true);
    let names: Vec<&str> = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, checks::CHECK_NAMES);
    for c in v["checks"].as_array().unwrap() {
        for key in ["status", "current", "wanted", "why", "fix"] {
            assert!(c.get(key).is_some(), "{key} missing in {c}");
        }
    }
    assert_eq!(v["checks"][5]["status"], "warn");
    let empty = Fake::empty();
    let r = tune(&empty.host(), &empty.needs(), false);
    assert!(r.to_json().contains("\"n/a\""));
}
