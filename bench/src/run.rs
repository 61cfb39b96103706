//! State shared by the worker threads of a run, and the monitor on the main
//! thread that takes the warm-up snapshot, prints progress and says stop.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::histogram::SharedHist;
use crate::rate::now_ns;
use crate::txn::TxnStats;

/// Counters and latency for one direction (produce or consume).
#[derive(Default)]
pub struct Side {
    /// Acknowledged (produce; sent when acks=0) or consumed messages.
    pub msgs: AtomicU64,
    /// Payload (value) bytes of those messages.
    pub bytes: AtomicU64,
    /// Produce: request latency (CO-corrected under --rate). e2e consume:
    /// produce-to-arrival latency.
    pub hist: SharedHist,
    /// Produce under --rate: latency from the actual send.
    pub hist_uncorrected: SharedHist,
}

impl Side {
    pub fn add(&self, msgs: u64, bytes: u64) {
        self.msgs.fetch_add(msgs, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }
}

pub struct RunState {
    pub stop_produce: AtomicBool,
    pub stop_consume: AtomicBool,
    /// Samples taken before this are warm-up and not recorded.
    pub warmup_end_ns: u64,
    pub produce: Side,
    pub consume: Side,
    /// Messages in produce requests that came back with an error.
    pub produce_failed: AtomicU64,
    /// `--rate`: messages due by the end of the measured run but never sent
    /// (the broker fell behind the schedule); their requests are in the
    /// latency histogram with the latency they had reached at the end.
    pub produce_unsent: AtomicU64,
    /// `--messages` for producers: each request claims its messages here.
    pub produce_budget: Option<u64>,
    pub claimed: AtomicU64,
    /// Consumers stop once this many messages arrived (u64::MAX: no limit).
    pub consume_target: AtomicU64,
    /// consume --messages: count no more than the target. (e2e does not cap,
    /// so duplicates would show as consumed > produced.)
    cap_consumed: bool,
    pub errors: Mutex<BTreeMap<String, u64>>,
    /// Transactional producers: transactions, commit latency. (Their
    /// `produce` side counts records of committed transactions only.)
    pub txn: TxnStats,
}

impl RunState {
    pub fn new(
        warmup_end_ns: u64,
        produce_budget: Option<u64>,
        consume_target: Option<u64>,
    ) -> Self {
        RunState {
            stop_produce: AtomicBool::new(false),
            stop_consume: AtomicBool::new(false),
            warmup_end_ns,
            produce: Side::default(),
            consume: Side::default(),
            produce_failed: AtomicU64::new(0),
            produce_unsent: AtomicU64::new(0),
            produce_budget,
            claimed: AtomicU64::new(0),
            consume_target: AtomicU64::new(consume_target.unwrap_or(u64::MAX)),
            cap_consumed: consume_target.is_some(),
            errors: Mutex::new(BTreeMap::new()),
            txn: TxnStats::default(),
        }
    }

    pub fn add_error(&self, name: &str, n: u64) {
        *self
            .errors
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default() += n;
    }

    /// Count consumed messages, never past `consume_target`, so `--messages
    /// N` reports exactly N even when the last fetch brought more.
    pub fn add_consumed(&self, msgs: u64, bytes: u64) {
        if !self.cap_consumed {
            self.consume.add(msgs, bytes);
            return;
        }
        let target = self.consume_target.load(Relaxed);
        let prev = self
            .consume
            .msgs
            .fetch_update(Relaxed, Relaxed, |c| Some((c + msgs).min(target.max(c))))
            .expect("closure always returns Some");
        let took = (prev + msgs).min(target.max(prev)) - prev;
        let b = (bytes * took).checked_div(msgs).unwrap_or(0);
        self.consume.bytes.fetch_add(b, Relaxed);
    }

    pub fn consume_done(&self) -> bool {
        self.consume.msgs.load(Relaxed) >= self.consume_target.load(Relaxed)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            ns: now_ns(),
            p_msgs: self.produce.msgs.load(Relaxed),
            p_bytes: self.produce.bytes.load(Relaxed),
            p_txns: self.txn.committed.load(Relaxed),
            c_msgs: self.consume.msgs.load(Relaxed),
            c_bytes: self.consume.bytes.load(Relaxed),
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    pub ns: u64,
    pub p_msgs: u64,
    pub p_bytes: u64,
    /// Committed transactions.
    pub p_txns: u64,
    pub c_msgs: u64,
    pub c_bytes: u64,
}

/// Pin the calling thread to a core, counting down from the last one:
/// brokers (Shardline, Redpanda) pin their shards from core 0 up, so on a
/// shared machine the load generator takes the cores they are least likely
/// to use. Pinning is an optimisation, so failure (cpusets) only warns.
pub fn pin(enabled: bool, index: usize) {
    if !enabled {
        return;
    }
    let core = pin_core(index, affinity::get_core_num());
    if let Err(e) = affinity::set_thread_affinity([core]) {
        eprintln!("warning: could not pin thread to core {core}: {e}");
    }
}

/// The core worker `index` is pinned to on a machine with `cores` cores.
pub fn pin_core(index: usize, cores: usize) -> usize {
    let cores = cores.max(1);
    cores - 1 - index % cores
}

/// Join workers; a failed worker is counted as a CLIENT_ERROR and reported.
pub fn join_all(st: &RunState, handles: Vec<JoinHandle<anyhow::Result<()>>>) {
    for h in handles {
        let res = h
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("worker panicked")));
        if let Err(e) = res {
            eprintln!("worker failed: {e:#}");
            st.add_error("CLIENT_ERROR", 1);
        }
    }
}

pub struct Monitor {
    pub start_ns: u64,
    /// Counters when warm-up ended (None while still warming up).
    pub base: Option<Snapshot>,
    progress: bool,
    last: Snapshot,
    next_print_ns: u64,
}

impl Monitor {
    pub fn new(st: &RunState, force_progress: bool) -> Monitor {
        let s = st.snapshot();
        Monitor {
            start_ns: s.ns,
            base: None,
            progress: force_progress || std::io::stderr().is_terminal(),
            last: s,
            next_print_ns: s.ns + 1_000_000_000,
        }
    }

    /// Watch until `done()`; once `stop_at_ns` passes, raise `stop`.
    /// Returns the counters at the end.
    pub fn watch(
        &mut self,
        st: &RunState,
        done: impl Fn() -> bool,
        stop_at_ns: Option<u64>,
        stop: &AtomicBool,
    ) -> Snapshot {
        loop {
            let finished = done();
            let now = now_ns();
            if self.base.is_none() && now >= st.warmup_end_ns {
                self.base = Some(st.snapshot());
            }
            if finished {
                return st.snapshot();
            }
            if stop_at_ns.is_some_and(|t| now >= t) {
                stop.store(true, Relaxed);
            }
            if now >= self.next_print_ns {
                self.print(st);
                self.next_print_ns += 1_000_000_000;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn print(&mut self, st: &RunState) {
        let s = st.snapshot();
        let dt = (s.ns - self.last.ns) as f64 / 1e9;
        if self.progress && dt > 0.0 {
            let mut line = format!("[{:6.1}s]", (s.ns - self.start_ns) as f64 / 1e9);
            let warm = if s.ns < st.warmup_end_ns {
                " (warm-up)"
            } else {
                ""
            };
            if s.p_msgs > 0 || self.last.p_msgs > 0 {
                line += &format!(
                    " produce {:>10.0} msg/s {:>8.1} MB/s p99 {}",
                    (s.p_msgs - self.last.p_msgs) as f64 / dt,
                    (s.p_bytes - self.last.p_bytes) as f64 / dt / 1e6,
                    fmt_us(st.produce.hist.quantile_us(0.99)),
                );
            }
            if s.p_txns > 0 {
                line += &format!(
                    " | {:>7.1} txn/s commit p99 {}",
                    (s.p_txns - self.last.p_txns) as f64 / dt,
                    fmt_us(st.txn.commit.quantile_us(0.99)),
                );
            }
            if s.c_msgs > 0 || self.last.c_msgs > 0 {
                line += &format!(
                    " | consume {:>10.0} msg/s {:>8.1} MB/s",
                    (s.c_msgs - self.last.c_msgs) as f64 / dt,
                    (s.c_bytes - self.last.c_bytes) as f64 / dt / 1e6,
                );
                if let Some(p) = st.consume.hist.quantile_us(0.99) {
                    line += &format!(" e2e p99 {}", fmt_us(Some(p)));
                }
            }
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}{warm}");
        }
        self.last = s;
    }
}

pub fn fmt_us(us: Option<f64>) -> String {
    match us {
        None => "-".into(),
        Some(u) if u >= 1e6 => format!("{:.2} s", u / 1e6),
        Some(u) if u >= 1e3 => format!("{:.2} ms", u / 1e3),
        Some(u) => format!("{u:.0} µs"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumed_count_is_capped_only_with_a_target() {
        let st = RunState::new(0, None, Some(100));
        st.add_consumed(60, 600);
        st.add_consumed(60, 600);
        assert_eq!(st.consume.msgs.load(Relaxed), 100);
        assert_eq!(st.consume.bytes.load(Relaxed), 1000);
        assert!(st.consume_done());
        let free = RunState::new(0, None, None);
        free.add_consumed(60, 600);
        free.consume_target.store(50, Relaxed);
        free.add_consumed(60, 600);
        assert_eq!(free.consume.msgs.load(Relaxed), 120);
    }

    #[test]
    fn workers_take_cores_from_the_last_one_down() {
        assert_eq!(
            (0..5).map(|i| pin_core(i, 4)).collect::<Vec<_>>(),
            vec![3, 2, 1, 0, 3]
        );
        assert_eq!(pin_core(0, 1), 0);
        assert_eq!(pin_core(3, 0), 0);
    }
}
