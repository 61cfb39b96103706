//! The soak's samples and its verdict: did the broker keep answering, lose
//! nothing, and stay flat in memory, CPU and descriptors?
//!
//! "Flat" compares the second quarter of the run with the last quarter
//! (the first quarter is warm-up: caches fill, buffers grow to their
//! working size): the last quarter's peak RSS may exceed the second's by at
//! most max(8 MiB, 5 %), its peak descriptor count by 8, and its mean CPU
//! by half plus one percentage point. A leak of a few bytes per request or
//! per timer tick over hours shows up here; noise does not.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::args::SoakArgs;
use crate::soak::Shared;

#[derive(Debug, Clone, Serialize)]
pub struct ProcSample {
    pub rss_bytes: Option<u64>,
    pub cpu_pct: Option<f64>,
    pub fds: Option<u64>,
    pub threads: Option<u64>,
}

impl ProcSample {
    pub fn read(pid: u32, cpu_pct: Option<f64>) -> ProcSample {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> Option<u64> {
            status
                .lines()
                .find(|l| l.starts_with(name))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        };
        ProcSample {
            rss_bytes: field("VmRSS:").map(|kb| kb * 1024),
            cpu_pct,
            fds: std::fs::read_dir(format!("/proc/{pid}/fd"))
                .ok()
                .map(|d| d.count() as u64),
            threads: field("Threads:"),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub at_s: f64,
    /// Metadata on the long-lived probe connection, or why it failed.
    pub probe_ms: Option<f64>,
    pub probe_error: Option<String>,
    /// When this sample also tried a new connection: how long its
    /// ApiVersions + Metadata took (`Ok`), or why it failed.
    pub connect: Option<Result<f64, String>>,
    pub produced: u64,
    pub consumed: u64,
    pub produce_errors: u64,
    pub idle_open: u64,
    pub idle_lost: u64,
    pub produce_p99_us: Option<f64>,
    pub e2e_p99_us: Option<f64>,
    pub e2e_max_us: Option<f64>,
    pub broker: Option<ProcSample>,
}

fn q_us(h: &Histogram<u64>, q: f64) -> Option<f64> {
    (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e3)
}

impl Sample {
    pub fn new(
        at: Duration,
        s: &Shared,
        probe: Result<Duration, String>,
        connect: Option<Result<Duration, String>>,
        broker: Option<ProcSample>,
        produce: &Histogram<u64>,
        e2e: &Histogram<u64>,
    ) -> Sample {
        let (probe_ms, probe_error) = match probe {
            Ok(d) => (Some(d.as_secs_f64() * 1e3), None),
            Err(e) => (None, Some(e)),
        };
        Sample {
            at_s: at.as_secs_f64(),
            probe_ms,
            probe_error,
            connect: connect.map(|c| c.map(|d| d.as_secs_f64() * 1e3)),
            produced: s.produced.load(Relaxed),
            consumed: s.consumed.load(Relaxed),
            produce_errors: s.produce_errors.load(Relaxed),
            idle_open: s.idle_open.load(Relaxed),
            idle_lost: s.idle_lost.load(Relaxed),
            produce_p99_us: q_us(produce, 0.99),
            e2e_p99_us: q_us(e2e, 0.99),
            e2e_max_us: (!e2e.is_empty()).then(|| e2e.max() as f64 / 1e3),
            broker,
        }
    }

    fn cells(&self) -> Vec<String> {
        let opt = |v: Option<f64>, d: usize| v.map_or("-".into(), |v| format!("{v:.d$}"));
        let b = self.broker.as_ref();
        vec![
            format!("{:.0}", self.at_s),
            self.probe_error
                .as_ref()
                .map_or_else(|| opt(self.probe_ms, 1), |e| format!("FAILED: {e}")),
            match &self.connect {
                None => "".into(),
                Some(Ok(ms)) => format!("{ms:.1}"),
                Some(Err(e)) => format!("FAILED: {e}"),
            },
            self.produced.to_string(),
            self.consumed.to_string(),
            opt(self.produce_p99_us.map(|u| u / 1e3), 2),
            opt(self.e2e_p99_us.map(|u| u / 1e3), 2),
            format!(
                "{}/{}",
                self.idle_open - self.idle_lost.min(self.idle_open),
                self.idle_open
            ),
            opt(b.and_then(|b| b.rss_bytes).map(|r| r as f64 / 1048576.0), 1),
            opt(b.and_then(|b| b.cpu_pct), 2),
            b.and_then(|b| b.fds).map_or("-".into(), |f| f.to_string()),
        ]
    }

    pub fn line(&self) -> String {
        let c = self.cells();
        format!(
            "t={}s probe={}ms new_conn={}ms produced={} consumed={} produce_p99={}ms e2e_p99={}ms idle={} rss={}MiB cpu={}% fds={}",
            c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9], c[10]
        )
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Verdict {
    pub passed: bool,
    pub failures: Vec<String>,
    /// Second-quarter vs last-quarter figures behind the flatness checks.
    pub flatness: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub topic: String,
    pub duration_s: f64,
    pub idle_connections: usize,
    pub rate: u64,
    pub broker_pid: Option<u32>,
    pub samples: Vec<Sample>,
    pub produced: u64,
    pub consumed: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub out_of_order: u64,
    pub produce_errors: u64,
    pub idle_lost: u64,
    pub idle_requests: u64,
    pub last_error: Option<String>,
    pub verdict: Verdict,
}

impl SoakReport {
    pub fn new(a: &SoakArgs) -> SoakReport {
        SoakReport {
            topic: a.topic.clone(),
            duration_s: a.duration.as_secs_f64(),
            idle_connections: a.idle_connections,
            rate: a.rate,
            broker_pid: a.broker_pid,
            samples: Vec::new(),
            produced: 0,
            consumed: 0,
            lost: 0,
            duplicates: 0,
            out_of_order: 0,
            produce_errors: 0,
            idle_lost: 0,
            idle_requests: 0,
            last_error: None,
            verdict: Verdict::default(),
        }
    }

    pub fn finish(&mut self, s: &Shared) {
        self.produced = s.produced.load(Relaxed);
        self.consumed = s.consumed.load(Relaxed);
        self.lost = s.lost();
        self.duplicates = s.duplicates.load(Relaxed);
        self.out_of_order = s.out_of_order.load(Relaxed);
        self.produce_errors = s.produce_errors.load(Relaxed);
        self.idle_lost = s.idle_lost.load(Relaxed);
        self.idle_requests = s.idle_requests.load(Relaxed);
        self.last_error = s.last_error.lock().unwrap().clone();
        self.verdict = self.judge();
    }

    fn judge(&self) -> Verdict {
        let mut v = Verdict::default();
        let mut fail = |what: String| v.failures.push(what);
        let failed_probes: Vec<_> = self
            .samples
            .iter()
            .filter_map(|s| {
                s.probe_error
                    .as_ref()
                    .map(|e| format!("t={:.0}s: {e}", s.at_s))
            })
            .collect();
        if !failed_probes.is_empty() {
            fail(format!(
                "{} of {} probes failed (first: {})",
                failed_probes.len(),
                self.samples.len(),
                failed_probes[0]
            ));
        }
        if self.produced == 0 {
            fail("nothing was produced".into());
        }
        for (n, what) in [
            (self.lost, "acknowledged records never consumed"),
            (self.duplicates, "records consumed twice"),
            (self.out_of_order, "records consumed out of order"),
            (self.produce_errors, "produce requests failed"),
            (self.idle_lost, "idle connections lost"),
        ] {
            if n > 0 {
                fail(format!("{n} {what}"));
            }
        }
        let (flat_failures, flatness) = flatness(&self.samples);
        v.failures.extend(flat_failures);
        v.flatness = flatness;
        v.passed = v.failures.is_empty();
        v
    }

    pub fn print(&self, json: bool) {
        if json {
            println!(
                "{}",
                serde_json::to_string(self).expect("report serializes")
            );
        } else {
            print!("{}", self.markdown());
        }
    }

    pub fn markdown(&self) -> String {
        let mut out = format!(
            "# Soak: {:.1} h, {} idle connections, {} msgs/s acks=all on `{}`\n\n",
            self.duration_s / 3600.0,
            self.idle_connections,
            self.rate,
            self.topic
        );
        out += "| t (s) | probe (ms) | new connection (ms) | produced | consumed | produce p99 (ms) | e2e p99 (ms) | idle open | RSS (MiB) | CPU (%) | fds |\n";
        out += "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
        for s in &self.samples {
            out += &format!("| {} |\n", s.cells().join(" | "));
        }
        out += &format!(
            "\nproduced {}, consumed {}, lost {}, duplicates {}, out of order {}, produce errors {}, \
             idle requests {}, idle connections lost {}\n\n",
            self.produced,
            self.consumed,
            self.lost,
            self.duplicates,
            self.out_of_order,
            self.produce_errors,
            self.idle_requests,
            self.idle_lost
        );
        for f in &self.verdict.flatness {
            out += &format!("- {f}\n");
        }
        if let Some(e) = &self.last_error {
            out += &format!("- last error seen: {e}\n");
        }
        out += &if self.verdict.passed {
            "\n**PASSED**\n".to_string()
        } else {
            format!("\n**FAILED**: {}\n", self.verdict.failures.join("; "))
        };
        out
    }
}

/// Second quarter vs last quarter: failures, and the figures compared.
pub fn flatness(samples: &[Sample]) -> (Vec<String>, Vec<String>) {
    let (mut failures, mut figures) = (Vec::new(), Vec::new());
    let procs: Vec<&ProcSample> = samples.iter().filter_map(|s| s.broker.as_ref()).collect();
    if procs.len() < 8 {
        figures.push(format!(
            "flatness not judged: {} broker samples (need 8; pass --broker-pid and run longer)",
            procs.len()
        ));
        return (failures, figures);
    }
    let q = procs.len() / 4;
    let (second, last) = (&procs[q..2 * q], &procs[procs.len() - q..]);
    let peak = |xs: &[&ProcSample], f: fn(&ProcSample) -> Option<u64>| {
        xs.iter().filter_map(|p| f(p)).max()
    };
    let mean = |xs: &[&ProcSample]| {
        let v: Vec<f64> = xs.iter().filter_map(|p| p.cpu_pct).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    if let (Some(a), Some(b)) = (peak(second, |p| p.rss_bytes), peak(last, |p| p.rss_bytes)) {
        let allowed = a + (8u64 << 20).max(a / 20);
        figures.push(format!(
            "RSS peak: {:.1} MiB (2nd quarter) → {:.1} MiB (last quarter), allowed {:.1}",
            a as f64 / 1048576.0,
            b as f64 / 1048576.0,
            allowed as f64 / 1048576.0
        ));
        if b > allowed {
            failures.push(format!("RSS grew from {a} to {b} bytes"));
        }
    }
    if let (Some(a), Some(b)) = (peak(second, |p| p.fds), peak(last, |p| p.fds)) {
        figures.push(format!("descriptors peak: {a} → {b}, allowed {}", a + 8));
        if b > a + 8 {
            failures.push(format!("open descriptors grew from {a} to {b}"));
        }
    }
    if let (Some(a), Some(b)) = (mean(second), mean(last)) {
        let allowed = a * 1.5 + 1.0;
        figures.push(format!(
            "CPU mean: {a:.2} % → {b:.2} % of one core, allowed {allowed:.2}"
        ));
        if b > allowed {
            failures.push(format!("CPU use grew from {a:.2} % to {b:.2} %"));
        }
    }
    (failures, figures)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(rss_mib: u64, cpu: f64, fds: u64) -> Sample {
        Sample {
            at_s: 0.0,
            probe_ms: Some(1.0),
            probe_error: None,
            connect: None,
            produced: 1,
            consumed: 1,
            produce_errors: 0,
            idle_open: 1,
            idle_lost: 0,
            produce_p99_us: None,
            e2e_p99_us: None,
            e2e_max_us: None,
            broker: Some(ProcSample {
                rss_bytes: Some(rss_mib << 20),
                cpu_pct: Some(cpu),
                fds: Some(fds),
                threads: Some(4),
            }),
        }
    }

    #[test]
    fn flat_runs_pass_and_growth_fails() {
        let flat: Vec<_> = (0..16).map(|i| sample(50 + i % 2, 2.0, 40)).collect();
        assert!(flatness(&flat).0.is_empty(), "{:?}", flatness(&flat));
        // A warm-up in the first quarter is allowed.
        let warm: Vec<_> = (0..16)
            .map(|i| sample(if i < 4 { 20 } else { 60 }, 2.0, 40))
            .collect();
        assert!(flatness(&warm).0.is_empty());
        let leak: Vec<_> = (0..16).map(|i| sample(50 + 4 * i, 2.0, 40)).collect();
        assert_eq!(flatness(&leak).0.len(), 1, "RSS leak");
        let fds: Vec<_> = (0..16).map(|i| sample(50, 2.0, 40 + 2 * i)).collect();
        assert_eq!(flatness(&fds).0.len(), 1, "descriptor leak");
        let cpu: Vec<_> = (0..16).map(|i| sample(50, 1.0 + i as f64, 40)).collect();
        assert_eq!(flatness(&cpu).0.len(), 1, "CPU creep");
        assert!(flatness(&flat[..5]).1[0].contains("not judged"));
    }
}
