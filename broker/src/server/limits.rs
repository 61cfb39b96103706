//! Connection admission: Kafka's `max.connections` (all listeners, all
//! shards) and `max.connections.per.ip`, and logs that say how often
//! something happened instead of repeating a line hundreds of times a second.
//!
//! The total is one atomic shared by the shards (a counter, not a lock).
//! Per-address counts live on one shard per address (`owner_shard`), which
//! the accepting shard asks by message, so no table is shared between
//! threads; with no per-IP limit set (Kafka's default) no message is sent.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::messages::{ShardReply, ShardRequest};
use crate::shard_state::ShardState;

/// Broker-wide limits and the shared total, one per broker process.
#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: Option<usize>,
    max_per_ip: Option<u32>,
    open: AtomicUsize,
}

/// Kafka's default for both limits, which means "no limit".
const UNLIMITED: u32 = i32::MAX as u32;

impl ConnectionLimits {
    /// Kafka's values: `i32::MAX` (the default) or more is no limit.
    pub fn new(max_total: u32, max_per_ip: u32) -> Arc<Self> {
        Arc::new(Self {
            max_total: (max_total < UNLIMITED).then_some(max_total as usize),
            max_per_ip: (max_per_ip < UNLIMITED).then_some(max_per_ip),
            open: AtomicUsize::new(0),
        })
    }

    pub fn unlimited() -> Arc<Self> {
        Self::new(UNLIMITED, UNLIMITED)
    }
}

/// Why a new connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Total(usize),
    PerIp(IpAddr, u32),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Total(max) => write!(f, "the broker has max_connections = {max} open"),
            Refusal::PerIp(ip, max) => write!(
                f,
                "{ip} already has max_connections_per_ip = {max} connections"
            ),
        }
    }
}

/// A shard's connection service: the broker-wide limits and the
/// per-address counts of the addresses this shard owns.
pub struct Connections {
    pub limits: Arc<ConnectionLimits>,
    pub counts: PerIpCounts,
}

impl Connections {
    pub fn new(limits: Arc<ConnectionLimits>) -> Self {
        Self {
            limits,
            counts: PerIpCounts::default(),
        }
    }
}

/// Requests to the shard that keeps an address's count.
#[derive(Debug)]
pub enum ConnOp {
    /// Count one more connection of `ip` unless it has `max` already;
    /// answered with [`ShardReply::Admitted`].
    TryAdd { ip: IpAddr, max: u32 },
    /// A connection of `ip` closed.
    Remove { ip: IpAddr },
}

impl Connections {
    /// Answer a [`ConnOp`] on the address's owner shard.
    pub fn handle(&self, op: ConnOp) -> ShardReply {
        match op {
            ConnOp::TryAdd { ip, max } => ShardReply::Admitted(self.counts.try_add(ip, max)),
            ConnOp::Remove { ip } => {
                self.counts.remove(ip);
                ShardReply::Done
            }
        }
    }
}

/// Per-address counts of the addresses this shard owns.
#[derive(Default)]
pub struct PerIpCounts(RefCell<HashMap<IpAddr, u32>>);

impl PerIpCounts {
    fn try_add(&self, ip: IpAddr, max: u32) -> bool {
        let mut counts = self.0.borrow_mut();
        let n = counts.entry(ip).or_insert(0);
        if *n >= max {
            return false;
        }
        *n += 1;
        true
    }

    fn remove(&self, ip: IpAddr) {
        let mut counts = self.0.borrow_mut();
        match counts.get_mut(&ip) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                counts.remove(&ip);
            }
            None => unreachable!("released a connection of {ip} never admitted"),
        }
    }
}

fn owner_shard(ip: IpAddr, shards: usize) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ip.hash(&mut h);
    (h.finish() % shards as u64) as usize
}

/// An admitted connection: counted until `release` (or drop, for the
/// total; the per-address count needs the async `release`).
pub struct Admission {
    limits: Arc<ConnectionLimits>,
    ip: Option<IpAddr>,
}

impl Admission {
    /// Give back the per-address slot (a message to its owner shard).
    pub async fn release(mut self, state: &Rc<ShardState>) {
        if let Some(ip) = self.ip.take() {
            let owner = owner_shard(ip, state.shards());
            let _ = state
                .call(owner, ShardRequest::Conn(ConnOp::Remove { ip }))
                .await;
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        let before = self.limits.open.fetch_sub(1, Ordering::Relaxed);
        assert!(before > 0, "connection count went below zero");
    }
}

/// Count a new connection from `ip`, or say why it must be closed.
pub async fn admit(state: &Rc<ShardState>, ip: IpAddr) -> Result<Admission, Refusal> {
    let limits = state.connections.limits.clone();
    let open = limits.open.fetch_add(1, Ordering::Relaxed) + 1;
    // From here on dropping `admission` gives the slot back.
    let mut admission = Admission {
        limits: limits.clone(),
        ip: None,
    };
    if let Some(max) = limits.max_total.filter(|max| open > *max) {
        return Err(Refusal::Total(max));
    }
    if let Some(max) = limits.max_per_ip {
        let owner = owner_shard(ip, state.shards());
        let added = match state
            .call(owner, ShardRequest::Conn(ConnOp::TryAdd { ip, max }))
            .await
        {
            Ok(ShardReply::Admitted(added)) => added,
            Ok(other) => unreachable!("admitting a connection was answered {other:?}"),
            // The owner is gone (shutdown): refuse.
            Err(_) => false,
        };
        if !added {
            return Err(Refusal::PerIp(ip, max));
        }
        admission.ip = Some(ip);
    }
    Ok(admission)
}

/// A warning that repeats at most once per `every`, with how many times it
/// happened in between: an accept loop hitting EMFILE fails hundreds of
/// times a second, and one line with a count says the same.
pub struct RateLimitedLog {
    every: Duration,
    last: Cell<Option<Instant>>,
    suppressed: Cell<u64>,
}

impl RateLimitedLog {
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: Cell::new(None),
            suppressed: Cell::new(0),
        }
    }

    /// Count one occurrence; returns the line to log (with the number of
    /// occurrences not logged since the last line) when it is time to.
    pub fn note(&self, now: Instant, what: impl FnOnce() -> String) -> Option<String> {
        let due = self.last.get().is_none_or(|t| now >= t + self.every);
        if !due {
            self.suppressed.set(self.suppressed.get() + 1);
            return None;
        }
        self.last.set(Some(now));
        let skipped = self.suppressed.replace(0);
        Some(if skipped == 0 {
            what()
        } else {
            format!(
                "{} ({skipped} more time(s) in the last {} s)",
                what(),
                self.every.as_secs()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limited_log_counts_what_it_does_not_print() {
        let log = RateLimitedLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(log.note(t0, || "x".into()).as_deref(), Some("x"));
        for i in 1..=500 {
            assert!(log
                .note(t0 + Duration::from_millis(i), || "x".into())
                .is_none());
        }
        let line = log
            .note(t0 + Duration::from_secs(10), || "x".into())
            .unwrap();
        assert_eq!(line, "x (500 more time(s) in the last 10 s)");
        assert!(log
            .note(t0 + Duration::from_secs(11), || "x".into())
            .is_none());
    }

    #[test]
    fn per_ip_counts_admit_up_to_the_limit_and_release() {
        let counts = PerIpCounts::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(counts.try_add(ip, 2));
        assert!(counts.try_add(ip, 2));
        assert!(!counts.try_add(ip, 2), "third connection from one address");
        assert!(counts.try_add(other, 2), "other addresses are unaffected");
        counts.remove(ip);
        assert!(counts.try_add(ip, 2), "a released slot is reusable");
        counts.remove(ip);
        counts.remove(ip);
        assert!(!counts.0.borrow().contains_key(&ip), "no entry left behind");
    }

    #[test]
    fn an_address_always_has_the_same_owner() {
        let ip: IpAddr = "192.168.1.7".parse().unwrap();
        let owner = owner_shard(ip, 4);
        assert!(owner < 4);
        assert_eq!(owner, owner_shard(ip, 4));
    }
}
