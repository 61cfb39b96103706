//! Throttling of failed authentications per client IP address.
//!
//! Password guessing over SASL is cheap for a client and costs us a PBKDF2
//! run per try, so after `max_failures` failures within `window` an address
//! is refused for `block_for` (the listener answers
//! SASL_AUTHENTICATION_FAILED at once and closes). One limiter is shared by
//! all shards, otherwise an attacker spreading connections over cores would
//! get `max_failures` per shard; failures are rare, so a mutex is cheap.
//! The table is bounded so a flood of source addresses cannot grow it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

#[derive(Debug)]
pub struct AuthFailureLimiter {
    max_failures: u32,
    window: Duration,
    block_for: Duration,
    capacity: usize,
    entries: Mutex<HashMap<IpAddr, Entry>>,
}

impl AuthFailureLimiter {
    pub fn new(max_failures: u32, window: Duration, block_for: Duration) -> Self {
        Self::with_capacity(max_failures, window, block_for, 65_536)
    }

    pub fn with_capacity(
        max_failures: u32,
        window: Duration,
        block_for: Duration,
        capacity: usize,
    ) -> Self {
        AuthFailureLimiter {
            max_failures: max_failures.max(1),
            window,
            block_for,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(remaining)` while `ip` is blocked: refuse without checking the
    /// credentials.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        match entries.get(&ip).and_then(|e| e.blocked_until) {
            Some(until) if until > now => Err(until - now),
            _ => Ok(()),
        }
    }

    /// Count a failure; returns the block duration if this one started a
    /// block (log it once then, not on every refused try).
    pub fn record_failure(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if !entries.contains_key(&ip) && entries.len() >= self.capacity {
            self.evict(&mut entries, now);
        }
        let e = entries.entry(ip).or_insert(Entry {
            failures: 0,
            window_start: now,
            blocked_until: None,
        });
        if now.duration_since(e.window_start) > self.window
            || e.blocked_until.is_some_and(|u| u <= now)
        {
            *e = Entry {
                failures: 0,
                window_start: now,
                blocked_until: None,
            };
        }
        e.failures += 1;
        if e.failures >= self.max_failures && e.blocked_until.is_none() {
            e.blocked_until = Some(now + self.block_for);
            return Some(self.block_for);
        }
        None
    }

    /// A success forgets earlier failures of the address.
    pub fn record_success(&self, ip: IpAddr) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.remove(&ip);
    }

    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Drop stale entries; if none are stale, drop the oldest unblocked
    /// one (or the oldest overall) to make room.
    fn evict(&self, entries: &mut HashMap<IpAddr, Entry>, now: Instant) {
        let window = self.window;
        entries.retain(|_, e| {
            let blocked = e.blocked_until.is_some_and(|u| u > now);
            blocked || now.duration_since(e.window_start) <= window
        });
        if entries.len() < self.capacity {
            return;
        }
        let victim = entries
            .iter()
            .min_by_key(|(_, e)| (e.blocked_until.is_some(), e.window_start))
            .map(|(ip, _)| *ip);
        if let Some(ip) = victim {
            entries.remove(&ip);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn blocks_after_max_failures_then_expires() {
        let l = AuthFailureLimiter::new(3, Duration::from_secs(60), Duration::from_secs(30));
        let t0 = Instant::now();
        assert_eq!(l.record_failure(ip(1), t0), None);
        assert_eq!(l.record_failure(ip(1), t0), None);
        assert!(l.check(ip(1), t0).is_ok());
        assert_eq!(l.record_failure(ip(1), t0), Some(Duration::from_secs(30)));
        assert_eq!(l.check(ip(1), t0), Err(Duration::from_secs(30)));
        assert!(l.check(ip(2), t0).is_ok(), "other addresses unaffected");
        // Further failures while blocked do not re-announce the block.
        assert_eq!(l.record_failure(ip(1), t0 + Duration::from_secs(1)), None);
        let later = t0 + Duration::from_secs(31);
        assert!(l.check(ip(1), later).is_ok());
        // After the block the count starts over.
        assert_eq!(l.record_failure(ip(1), later), None);
    }

    #[test]
    fn window_resets_and_success_clears() {
        let l = AuthFailureLimiter::new(2, Duration::from_secs(10), Duration::from_secs(30));
        let t0 = Instant::now();
        l.record_failure(ip(1), t0);
        assert_eq!(l.record_failure(ip(1), t0 + Duration::from_secs(11)), None);
        l.record_success(ip(1));
        assert_eq!(l.tracked(), 0);
        assert_eq!(l.record_failure(ip(1), t0 + Duration::from_secs(12)), None);
        assert!(l
            .record_failure(ip(1), t0 + Duration::from_secs(13))
            .is_some());
    }

    #[test]
    fn table_is_bounded_and_keeps_blocked_addresses() {
        let l = AuthFailureLimiter::with_capacity(
            1,
            Duration::from_secs(10),
            Duration::from_secs(100),
            4,
        );
        let t0 = Instant::now();
        assert!(l.record_failure(ip(0), t0).is_some());
        for n in 1..=50 {
            // max_failures 1 blocks each address; the table must still cap.
            l.record_failure(ip(n), t0 + Duration::from_millis(n as u64));
            assert!(l.tracked() <= 4);
        }
        let l = AuthFailureLimiter::with_capacity(
            5,
            Duration::from_secs(10),
            Duration::from_secs(100),
            4,
        );
        for _ in 0..5 {
            l.record_failure(ip(0), t0);
        }
        for n in 1..=50 {
            l.record_failure(ip(n), t0 + Duration::from_millis(n as u64));
        }
        assert!(l.tracked() <= 4);
        assert!(
            l.check(ip(0), t0).is_err(),
            "blocked entry survives eviction"
        );
    }
}
