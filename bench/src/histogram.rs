//! Latency histograms: HDR, nanosecond values, 3 significant digits, up to
//! 60 s (anything slower is clamped to 60 s rather than dropped).

use std::sync::Mutex;

use hdrhistogram::Histogram;
use serde::Serialize;

pub const MAX_NS: u64 = 60_000_000_000;

pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_NS, 3).expect("static histogram bounds are valid")
}

pub fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.clamp(1, MAX_NS));
}

/// A histogram shared between workers and the progress printer. Workers
/// lock it once per response (produce) or fold in a local histogram (e2e
/// consumer, which records per message).
pub struct SharedHist(Mutex<Histogram<u64>>);

impl Default for SharedHist {
    fn default() -> Self {
        SharedHist(Mutex::new(new_hist()))
    }
}

impl SharedHist {
    pub fn record(&self, ns: u64) {
        record(&mut self.0.lock().unwrap(), ns);
    }

    pub fn merge(&self, other: &Histogram<u64>) {
        // Same bounds on both sides, so `add` cannot fail.
        let _ = self.0.lock().unwrap().add(other);
    }

    pub fn quantile_us(&self, q: f64) -> Option<f64> {
        let h = self.0.lock().unwrap();
        (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e3)
    }

    pub fn snapshot(&self) -> Histogram<u64> {
        self.0.lock().unwrap().clone()
    }

    /// The values so far, leaving the histogram empty (per-window figures).
    pub fn take(&self) -> Histogram<u64> {
        std::mem::replace(&mut *self.0.lock().unwrap(), new_hist())
    }
}

/// Percentiles in microseconds, as reported.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    /// `None` for an empty histogram: no latency was measured.
    pub fn from_hist(h: &Histogram<u64>) -> Option<LatencySummary> {
        if h.is_empty() {
            return None;
        }
        let us = |v: u64| v as f64 / 1e3;
        Some(LatencySummary {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1e3,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            p9999_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Within HDR's 3-significant-digit precision.
    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= b * 0.001 + 0.001
    }

    #[test]
    fn percentiles_of_uniform_1_to_10000_us() {
        let mut h = new_hist();
        for us in 1..=10_000u64 {
            record(&mut h, us * 1000);
        }
        let s = LatencySummary::from_hist(&h).unwrap();
        assert_eq!(s.count, 10_000);
        assert!(close(s.p50_us, 5000.0), "{s:?}");
        assert!(close(s.p90_us, 9000.0), "{s:?}");
        assert!(close(s.p99_us, 9900.0), "{s:?}");
        assert!(close(s.p999_us, 9990.0), "{s:?}");
        assert!(close(s.max_us, 10_000.0), "{s:?}");
        assert!(close(s.min_us, 1.0), "{s:?}");
        assert!(close(s.mean_us, 5000.5), "{s:?}");
    }

    #[test]
    fn empty_means_not_measured_and_huge_values_clamp() {
        let mut h = new_hist();
        assert!(LatencySummary::from_hist(&h).is_none());
        record(&mut h, u64::MAX);
        record(&mut h, 0);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_NS - MAX_NS / 1000);
    }

    #[test]
    fn shared_merge_accumulates() {
        let s = SharedHist::default();
        let mut local = new_hist();
        record(&mut local, 2_000);
        s.merge(&local);
        s.record(4_000);
        assert_eq!(s.snapshot().len(), 2);
        assert!(close(s.quantile_us(1.0).unwrap(), 4.0));
    }
}
