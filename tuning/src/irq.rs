//! Interrupt placement: do the data disk's and the NICs' interrupts land on
//! cores that run shards? A shard interrupted for someone else's I/O stalls
//! its event loop, so on hosts with spare cores interrupts belong there.

use std::collections::BTreeSet;
use std::path::Path;

use crate::checks::{finding, Finding, Status, Write};
use crate::host::{self, FileValue, Host, Needs};

/// One line of `/proc/interrupts` that carries a numbered IRQ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IrqLine {
    pub irq: u32,
    /// The action name(s) at the end of the line ("virtio1-req.0", "nvme0q3").
    pub name: String,
}

/// Parse `/proc/interrupts`: the CPU count from the header, numbered IRQs.
pub fn parse_interrupts(text: &str) -> (usize, Vec<IrqLine>) {
    let mut lines = text.lines();
    let cpus = lines.next().map_or(0, |h| {
        h.split_whitespace()
            .filter(|c| c.starts_with("CPU"))
            .count()
    });
    let irqs = lines
        .filter_map(|line| {
            let (num, rest) = line.trim_start().split_once(':')?;
            let irq = num.parse().ok()?;
            // Counts (one per CPU), then chip, hwirq, and the name(s) last.
            let fields: Vec<&str> = rest.split_whitespace().skip(cpus).collect();
            let name = fields.get(2..).map(|n| n.join(" ")).unwrap_or_default();
            Some(IrqLine { irq, name })
        })
        .collect();
    (cpus, irqs)
}

/// Parse a CPU list like "0-3,8,10-11".
pub fn parse_cpu_list(s: &str) -> BTreeSet<usize> {
    let mut out = BTreeSet::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                if let (Ok(a), Ok(b)) = (a.trim().parse::<usize>(), b.trim().parse::<usize>()) {
                    out.extend(a..=b);
                }
            }
            None => {
                if let Ok(n) = part.trim().parse() {
                    out.insert(n);
                }
            }
        }
    }
    out
}

fn format_cpu_list(cpus: &BTreeSet<usize>) -> String {
    cpus.iter()
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Does an IRQ action name belong to a device called `dev`? "virtio1-req.0"
/// and "nvme0q3" belong to virtio1 and nvme0, "virtio10-..." is not virtio1.
fn name_matches(irq_name: &str, dev: &str) -> bool {
    irq_name.split_whitespace().any(|n| {
        n.strip_prefix(dev)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
    })
}

/// IRQs of a device directory in sysfs: the MSI vectors of its PCI device
/// (the device itself or, for virtio/nvme class devices, its parent), and
/// IRQ lines named after the device.
fn device_irqs(dev_dir: &Path, names: &[String], lines: &[IrqLine]) -> BTreeSet<u32> {
    let mut out = BTreeSet::new();
    let real = std::fs::canonicalize(dev_dir.join("device")).ok();
    let mut names = names.to_vec();
    if let Some(real) = &real {
        if let Some(n) = real.file_name() {
            names.push(n.to_string_lossy().into_owned());
        }
        for dir in [Some(real.as_path()), real.parent()].into_iter().flatten() {
            if let Ok(entries) = std::fs::read_dir(dir.join("msi_irqs")) {
                out.extend(
                    entries
                        .flatten()
                        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok()),
                );
                break;
            }
        }
    }
    for line in lines {
        if names.iter().any(|n| name_matches(&line.name, n)) {
            out.insert(line.irq);
        }
    }
    // MSI vectors include config/admin ones the kernel never fires for I/O;
    // keep only IRQs /proc/interrupts knows (a stale msi entry is no IRQ).
    out.retain(|irq| lines.iter().any(|l| l.irq == *irq));
    out
}

pub fn irq_affinity(host: &Host, needs: &Needs) -> Finding {
    let mut f = finding(
        "irq_affinity",
        "an interrupt handled on a shard's core preempts that shard's event loop; with spare cores, disk and NIC interrupts belong there",
    );
    let text = match host.read("proc/interrupts") {
        FileValue::Value(t) => t,
        FileValue::Absent => {
            f.status = Status::NotApplicable;
            f.current = "/proc/interrupts does not exist".into();
            return f;
        }
        FileValue::Unreadable(e) => {
            f.status = Status::Warn;
            f.current = format!("cannot read: {e}");
            return f;
        }
    };
    let (cpus, lines) = parse_interrupts(&text);
    let shard_cores: BTreeSet<usize> = needs.shard_cores.iter().copied().collect();
    let spare: BTreeSet<usize> = (0..cpus).filter(|c| !shard_cores.contains(c)).collect();
    f.wanted = if spare.is_empty() {
        format!(
            "disk/NIC IRQs off shard cores (impossible here: shards use every core {})",
            format_cpu_list(&shard_cores)
        )
    } else {
        format!(
            "disk/NIC IRQs on non-shard cores {}",
            format_cpu_list(&spare)
        )
    };

    let mut devices: Vec<(String, BTreeSet<u32>)> = Vec::new();
    if let Some(disk) = needs.data_dev.and_then(|d| host::block_device(host, d)) {
        let irqs = device_irqs(&disk.dir, std::slice::from_ref(&disk.name), &lines);
        devices.push((disk.name, irqs));
    }
    let net = host.path("sys/class/net");
    let mut nics: Vec<_> = std::fs::read_dir(&net)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("device").exists()) // physical NICs only
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    nics.sort();
    for nic in nics {
        let irqs = device_irqs(&net.join(&nic), std::slice::from_ref(&nic), &lines);
        devices.push((nic, irqs));
    }
    devices.retain(|(_, irqs)| !irqs.is_empty());
    if devices.is_empty() {
        f.status = Status::NotApplicable;
        f.current = "no IRQs found for the data disk or any NIC".into();
        return f;
    }

    let mut overlapping = Vec::new();
    let mut summary = Vec::new();
    for (dev, irqs) in &devices {
        let mut on_shards = 0;
        for irq in irqs {
            let dir = format!("proc/irq/{irq}");
            let list = match host.read(&format!("{dir}/effective_affinity_list")) {
                FileValue::Value(v) => v,
                _ => match host.read(&format!("{dir}/smp_affinity_list")) {
                    FileValue::Value(v) => v,
                    _ => continue,
                },
            };
            if parse_cpu_list(&list)
                .iter()
                .any(|c| shard_cores.contains(c))
            {
                on_shards += 1;
                overlapping.push(*irq);
            }
        }
        summary.push(format!(
            "{dev}: {on_shards} of {} IRQs on shard cores",
            irqs.len()
        ));
    }
    f.current = summary.join("; ");
    if overlapping.is_empty() {
        return f;
    }
    f.status = Status::Warn;
    if spare.is_empty() {
        f.fix = "nothing to move them to: every core runs a shard. Fine on small hosts; on larger ones run shards = cores - 1 (or fewer) and re-run tune".into();
    } else {
        let list = format_cpu_list(&spare);
        f.fix = format!("stop irqbalance, then write {list} to /proc/irq/N/smp_affinity_list for IRQs {overlapping:?}");
        for irq in overlapping {
            f.writes.push(Write {
                path: host.path(&format!("proc/irq/{irq}/smp_affinity_list")),
                value: list.clone(),
            });
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interrupts_and_cpu_lists_parse() {
        let text = "           CPU0       CPU1\n 36:          0     775214 PCI-MSIX-0000:00:02.0   1-edge      virtio1-req.0\n 40:  1 2 PCI-MSIX-0000:00:04.0 0-edge nvme0q1\nNMI:          0          0   Non-maskable interrupts\n";
        let (cpus, lines) = parse_interrupts(text);
        assert_eq!(cpus, 2);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].name, "virtio1-req.0");
        assert!(name_matches(&lines[0].name, "virtio1"));
        assert!(!name_matches("virtio10-req.0", "virtio1"));
        assert!(name_matches(&lines[1].name, "nvme0"));
        assert_eq!(parse_cpu_list("0-2,5"), BTreeSet::from([0, 1, 2, 5]));
        assert_eq!(parse_cpu_list(""), BTreeSet::new());
    }
}
