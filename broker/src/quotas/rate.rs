//! Kafka's sampled rate (`org.apache.kafka.common.metrics.stats.Rate`) and
//! quota throttle time (`QuotaUtils.throttleTime`), on an explicit clock in
//! milliseconds so tests can drive it.
//!
//! The rate is measured over `num` samples of `window_ms` each: the current
//! sample plus `num - 1` full ones. While fewer full windows have passed the
//! elapsed time is padded to `num - 1` windows, so a new client is not
//! throttled for its first burst (Kafka does the same).

/// A sliding-window rate of one quota entity.
#[derive(Debug, Clone)]
pub struct Rate {
    num: usize,
    window_ms: u64,
    /// (start of the sample's window, value recorded in it).
    samples: Vec<(u64, f64)>,
    current: usize,
    /// Last time anything was recorded, for dropping idle rates.
    pub last_record_ms: u64,
}

impl Rate {
    pub fn new(num: usize, window_ms: u64) -> Rate {
        assert!(num >= 2 && window_ms >= 1, "checked by the config");
        Rate {
            num,
            window_ms,
            samples: Vec::with_capacity(num),
            current: 0,
            last_record_ms: 0,
        }
    }

    pub fn record(&mut self, now_ms: u64, value: f64) {
        self.last_record_ms = now_ms;
        if self.samples.is_empty() {
            self.samples.push((now_ms, 0.0));
            self.current = 0;
        } else if now_ms >= self.samples[self.current].0 + self.window_ms {
            // The current sample is complete: move on, reusing the oldest.
            self.current = (self.current + 1) % self.num;
            if self.current >= self.samples.len() {
                self.samples.push((now_ms, 0.0));
            } else {
                self.samples[self.current] = (now_ms, 0.0);
            }
        }
        self.samples[self.current].1 += value;
    }

    /// Samples older than the whole window no longer count.
    fn purge(&mut self, now_ms: u64) {
        let expire = self.num as u64 * self.window_ms;
        for s in &mut self.samples {
            if now_ms.saturating_sub(s.0) >= expire {
                *s = (now_ms, 0.0);
            }
        }
    }

    /// The time the rate is measured over, in ms (Kafka's `windowSize`).
    pub fn window_size_ms(&mut self, now_ms: u64) -> u64 {
        self.purge(now_ms);
        let oldest = self.samples.iter().map(|s| s.0).min().unwrap_or(now_ms);
        let mut elapsed = now_ms.saturating_sub(oldest);
        let full = elapsed / self.window_ms;
        let min_full = self.num as u64 - 1;
        if full < min_full {
            elapsed += (min_full - full) * self.window_ms;
        }
        elapsed.max(1)
    }

    /// Per second.
    pub fn measure(&mut self, now_ms: u64) -> f64 {
        let window = self.window_size_ms(now_ms);
        let total: f64 = self.samples.iter().map(|s| s.1).sum();
        total * 1000.0 / window as f64
    }

    /// How long to throttle a client whose rate is measured against `quota`
    /// (per second): `(observed - quota) / quota * window`, 0 within quota.
    pub fn throttle_ms(&mut self, now_ms: u64, quota: f64) -> u64 {
        let observed = self.measure(now_ms);
        if observed <= quota {
            return 0;
        }
        let window = self.window_size_ms(now_ms) as f64;
        ((observed - quota) / quota * window).round() as u64
    }

    /// The most a quota allows over the whole measured window (Kafka caps
    /// Fetch responses with this so one response can ever be allowed).
    pub fn max_in_window(num: usize, window_ms: u64, quota: f64) -> f64 {
        quota * ((num as u64 - 1) * window_ms) as f64 / 1000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_rate_pads_to_the_full_window() {
        let mut r = Rate::new(11, 1000);
        r.record(5_000, 10_000.0);
        // 10 000 bytes over a padded 10 s window.
        assert_eq!(r.window_size_ms(5_000), 10_000);
        assert!((r.measure(5_000) - 1_000.0).abs() < 1e-9);
        assert_eq!(r.throttle_ms(5_000, 1_000.0), 0);
        r.record(5_000, 10_000.0);
        // 2000/s against 1000/s: (2000-1000)/1000 * 10 s.
        assert_eq!(r.throttle_ms(5_000, 1_000.0), 10_000);
    }

    #[test]
    fn throttle_time_follows_kafkas_formula_with_a_fake_clock() {
        let mut r = Rate::new(11, 1000);
        // 1500 bytes every 100 ms for 20 s: 15 000/s against a 10 000/s quota.
        let mut t = 0;
        while t < 20_000 {
            r.record(t, 1500.0);
            t += 100;
        }
        let now = t - 100;
        let window = r.window_size_ms(now);
        assert!((10_000..=11_000).contains(&window), "{window}");
        let rate = r.measure(now);
        assert!((rate - 15_000.0).abs() / 15_000.0 < 0.1, "{rate}");
        let expected = ((rate - 10_000.0) / 10_000.0 * window as f64).round() as u64;
        assert_eq!(r.throttle_ms(now, 10_000.0), expected);
        assert!((4_000..=6_000).contains(&expected), "{expected}");
    }

    #[test]
    fn old_samples_expire() {
        let mut r = Rate::new(3, 1000);
        r.record(0, 9_000.0);
        assert!(r.throttle_ms(0, 1_000.0) > 0);
        // After the whole window (3 samples) everything has expired.
        assert_eq!(r.measure(3_000), 0.0);
        r.record(3_000, 500.0);
        // A fresh start pads to 2 windows again: 500 over 2 s.
        assert_eq!(r.measure(3_000), 250.0);
        assert_eq!(Rate::max_in_window(11, 1000, 1_000.0), 10_000.0);
    }

    #[test]
    fn samples_rotate_through_a_bounded_ring() {
        let mut r = Rate::new(4, 100);
        for t in (0..10_000).step_by(50) {
            r.record(t, 1.0);
        }
        assert_eq!(r.samples.len(), 4);
        // 2 per 100 ms window = 20/s.
        let rate = r.measure(9_950);
        assert!((rate - 20.0).abs() < 3.0, "{rate}");
    }
}
