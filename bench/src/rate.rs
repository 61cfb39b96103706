//! Time base and the open-loop send schedule.
//!
//! With `--rate`, request i of a connection is *due* at `start + i * interval`
//! whether or not the broker kept up; latency is taken from that intended
//! time, so a stall also charges the requests that could not be sent during
//! it (coordinated-omission correction). The uncorrected latency, from the
//! actual send, is kept alongside for comparison.

use std::sync::OnceLock;
use std::time::Instant;

static BASE: OnceLock<Instant> = OnceLock::new();

/// Nanoseconds since the process's time base. Monotonic and shared by all
/// threads, so a producer's timestamp can be compared with a consumer's
/// clock in e2e mode.
pub fn now_ns() -> u64 {
    BASE.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start_ns: u64,
    interval_ns: f64,
}

impl Schedule {
    /// `rate` messages per second on this connection, `per_request`
    /// messages in each request.
    pub fn new(start_ns: u64, rate: f64, per_request: u64) -> Schedule {
        Schedule {
            start_ns,
            interval_ns: per_request as f64 * 1e9 / rate,
        }
    }

    /// When request `i` (0-based) should be sent.
    pub fn intended(&self, i: u64) -> u64 {
        self.start_ns + (i as f64 * self.interval_ns) as u64
    }
}

/// Latency of a request both ways: (corrected, from the intended send time;
/// uncorrected, from the actual send). Unthrottled runs have no schedule and
/// pass `intended == sent`.
pub fn latencies(intended_ns: u64, sent_ns: u64, done_ns: u64) -> (u64, u64) {
    (
        done_ns.saturating_sub(intended_ns.min(sent_ns)),
        done_ns.saturating_sub(sent_ns),
    )
}

/// Records per batch in rate-limited mode: a real producer sends a batch
/// when it is full or when `linger_ms` has passed since its first record,
/// so at a low rate a batch holds what arrives within one linger.
pub fn records_per_batch(rate_per_partition: f64, linger_ms: u64, max_records: usize) -> usize {
    let in_linger = (rate_per_partition * linger_ms as f64 / 1e3).floor() as usize;
    in_linger.clamp(1, max_records.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_follow_the_rate() {
        // 1000 msgs/s in requests of 10: one request every 10 ms.
        let s = Schedule::new(5_000, 1000.0, 10);
        assert_eq!(s.intended(0), 5_000);
        assert_eq!(s.intended(1), 5_000 + 10_000_000);
        assert_eq!(s.intended(100), 5_000 + 1_000_000_000);
    }

    #[test]
    fn coordinated_omission_is_charged_from_intended_time() {
        let s = Schedule::new(0, 1000.0, 1); // every 1 ms
                                             // A 50 ms stall: request 10 was due at 10 ms but only sent at 60 ms,
                                             // and answered 1 ms later.
        let (corrected, uncorrected) = latencies(s.intended(10), 60_000_000, 61_000_000);
        assert_eq!(uncorrected, 1_000_000);
        assert_eq!(corrected, 51_000_000);
        // Unthrottled: no schedule, both the same.
        assert_eq!(latencies(7, 7, 10), (3, 3));
    }

    #[test]
    fn linger_limits_batch_size_at_low_rates() {
        assert_eq!(records_per_batch(1000.0, 5, 500), 5);
        assert_eq!(records_per_batch(1e6, 5, 500), 500);
        assert_eq!(records_per_batch(10.0, 5, 500), 1);
        assert_eq!(records_per_batch(10.0, 0, 500), 1);
    }

    #[test]
    fn clock_is_monotonic() {
        let a = now_ns();
        let b = now_ns();
        assert!(b >= a);
    }
}
