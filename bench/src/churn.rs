//! `--admin-churn RATE`: while the produce workload runs, a side connection
//! creates and deletes a one-partition topic RATE times a second. Topic
//! creation and deletion are the broker's metadata path (controller, file
//! writes, fsyncs, cross-shard work); this mode shows whether that path
//! stalls the produce path, as the produce latency tail (p99.99) measured
//! in the same window.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Result;
use serde::Serialize;

use crate::cluster::{create_topic, delete_topic};
use crate::conn::{connect_bootstrap, Conn};
use crate::histogram::{LatencySummary, SharedHist};
use crate::rate::now_ns;
use crate::run::RunState;

pub struct ChurnCfg {
    pub bootstrap: String,
    /// Create+delete cycles per second.
    pub rate: f64,
    /// Churned topics are named `{prefix}-{n}`.
    pub prefix: String,
    /// Topic configs of each churned topic (e.g. segment.bytes).
    pub configs: Vec<(String, String)>,
}

/// What the churn thread counts; latencies only after warm-up, like produce.
#[derive(Default)]
pub struct ChurnStats {
    pub cycles: AtomicU64,
    pub measured_cycles: AtomicU64,
    pub create: SharedHist,
    pub delete: SharedHist,
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl ChurnStats {
    fn error(&self, what: String) {
        *self.errors.lock().unwrap().entry(what).or_default() += 1;
    }
}

/// The churn part of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    /// Asked-for create+delete cycles per second.
    pub target_rate: f64,
    /// Completed cycles, whole run; and per second over the measured window.
    pub cycles: u64,
    pub cycles_per_sec: f64,
    pub create_latency_us: Option<LatencySummary>,
    pub delete_latency_us: Option<LatencySummary>,
    /// Produce request latency p99.99 (µs) in the churn window: churn runs
    /// for the whole measured window, so this is the produce figure.
    pub produce_p9999_us: Option<f64>,
    pub errors: BTreeMap<String, u64>,
}

impl ChurnReport {
    pub fn new(
        cfg: &ChurnCfg,
        s: &ChurnStats,
        measured_seconds: f64,
        produce: Option<&LatencySummary>,
    ) -> ChurnReport {
        let m = s.measured_cycles.load(Relaxed) as f64;
        ChurnReport {
            target_rate: cfg.rate,
            cycles: s.cycles.load(Relaxed),
            cycles_per_sec: if measured_seconds > 0.0 {
                m / measured_seconds
            } else {
                0.0
            },
            create_latency_us: LatencySummary::from_hist(&s.create.snapshot()),
            delete_latency_us: LatencySummary::from_hist(&s.delete.snapshot()),
            produce_p9999_us: produce.map(|l| l.p9999_us),
            errors: s.errors.lock().unwrap().clone(),
        }
    }
}

/// Run cycles on schedule until the producers stop. A failed request is
/// counted and the connection replaced; the run goes on.
pub fn churn(cfg: &ChurnCfg, st: &RunState, stats: &ChurnStats) -> Result<()> {
    let period_ns = (1e9 / cfg.rate) as u64;
    let mut conn: Option<Conn> = None;
    let mut next = now_ns();
    let mut n = 0u64;
    while !st.stop_produce.load(Relaxed) {
        let now = now_ns();
        if now < next {
            // Short sleeps so the end of the run is noticed promptly.
            std::thread::sleep(Duration::from_nanos((next - now).min(50_000_000)));
            continue;
        }
        // A cycle slower than the period delays the next; no catch-up burst.
        next = next.max(now.saturating_sub(period_ns)) + period_ns;
        let c = match &mut conn {
            Some(c) => c,
            None => match connect_bootstrap(&cfg.bootstrap) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.error(format!("connect: {e:#}"));
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let topic = format!("{}-{n}", cfg.prefix);
        n += 1;
        let measured = now >= st.warmup_end_ns;
        let t0 = now_ns();
        if let Err(e) = create_topic(c, &topic, 1, &cfg.configs) {
            stats.error(format!("CreateTopics: {e:#}"));
            conn = None;
            continue;
        }
        let t1 = now_ns();
        if let Err(e) = delete_topic(c, &topic) {
            stats.error(format!("DeleteTopics: {e:#}"));
            conn = None;
            continue;
        }
        let t2 = now_ns();
        stats.cycles.fetch_add(1, Relaxed);
        if measured {
            stats.measured_cycles.fetch_add(1, Relaxed);
            stats.create.record(t1 - t0);
            stats.delete.record(t2 - t1);
        }
    }
    Ok(())
}
