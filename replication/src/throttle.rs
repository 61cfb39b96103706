//! Replication throttles (Kafka's `leader.replication.throttled.rate` and
//! `follower.replication.throttled.rate`, KIP-73), enforced by the leader
//! when it serves a follower's fetch.
//!
//! As in Kafka, only *throttled* replicas (those the topic's
//! `*.replication.throttled.replicas` lists) that are *not in the ISR* are
//! held back: catching-up replicas of a reassignment, never the in-sync
//! ones acks=all waits for. A throttled partition whose quota is used up
//! gets no records in that fetch (the follower asks again), and the bytes
//! sent for throttled partitions count against the quota.
//!
//! Kafka measures a rate over sample windows; a token bucket that refills
//! at the rate and holds at most one second of it gives the same average
//! and the same one-second burst. The leader rate is per broker in Kafka;
//! each shard here holds its share (the rate divided by the shard count),
//! so no shard waits on another. The follower rate is enforced by the
//! leaders the follower fetches from, each shard for its share too.
//! Pure: time comes in.

use std::collections::HashMap;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last_ms: i64,
}

impl Bucket {
    fn full(rate: u64, now_ms: i64) -> Self {
        Self {
            tokens: rate as f64,
            last_ms: now_ms,
        }
    }

    fn refill(&mut self, rate: u64, now_ms: i64) {
        let elapsed = (now_ms - self.last_ms).max(0) as f64 / 1000.0;
        self.tokens = (self.tokens + elapsed * rate as f64).min(rate as f64);
        self.last_ms = now_ms;
    }
}

/// One shard's replication quotas: its share of this broker's leader rate,
/// and of each follower's follower rate.
#[derive(Debug, Default)]
pub struct ReplicationThrottle {
    leader: Option<Bucket>,
    followers: HashMap<i32, Bucket>,
}

/// The rates (bytes/s, this shard's share) that apply to one fetch of a
/// throttled replica; `None`: that side is not throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rates {
    pub leader: Option<u64>,
    pub follower: Option<u64>,
}

impl ReplicationThrottle {
    /// How many bytes a throttled, out-of-sync replica on `follower` may
    /// get now: `None` while either quota that applies is used up, else
    /// what is left of the smaller one (the read sends at least one batch
    /// even if it is larger, and [`Self::record`] overdraws the quota).
    pub fn admit(&mut self, follower: i32, rates: Rates, now_ms: i64) -> Option<usize> {
        let mut left = f64::INFINITY;
        if let Some(rate) = rates.leader {
            let b = self
                .leader
                .get_or_insert_with(|| Bucket::full(rate, now_ms));
            b.refill(rate, now_ms);
            left = left.min(b.tokens);
        }
        if let Some(rate) = rates.follower {
            let b = self
                .followers
                .entry(follower)
                .or_insert_with(|| Bucket::full(rate, now_ms));
            b.refill(rate, now_ms);
            left = left.min(b.tokens);
        }
        (left > 0.0).then(|| {
            if left.is_finite() {
                left as usize
            } else {
                usize::MAX
            }
        })
    }

    /// `bytes` of a throttled replica went to `follower`.
    pub fn record(&mut self, follower: i32, rates: Rates, bytes: usize) {
        if rates.leader.is_some() {
            if let Some(b) = &mut self.leader {
                b.tokens -= bytes as f64;
            }
        }
        if rates.follower.is_some() {
            if let Some(b) = self.followers.get_mut(&follower) {
                b.tokens -= bytes as f64;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: Rates = Rates {
        leader: Some(1000),
        follower: Some(500),
    };

    #[test]
    fn a_used_up_quota_holds_records_back_until_it_refills() {
        let mut t = ReplicationThrottle::default();
        let leader_only = Rates {
            leader: Some(1000),
            follower: None,
        };
        assert_eq!(t.admit(2, leader_only, 0), Some(1000));
        t.record(2, leader_only, 3000); // a large batch overdraws it
        assert_eq!(
            t.admit(2, leader_only, 1000),
            None,
            "still 1000 bytes short"
        );
        assert_eq!(
            t.admit(3, leader_only, 1500),
            None,
            "the leader quota is shared"
        );
        assert_eq!(t.admit(2, leader_only, 2100), Some(100));
        // Over a long run the rate is what was asked for.
        let mut t = ReplicationThrottle::default();
        let mut sent = 0;
        for ms in (0..10_000).step_by(10) {
            if t.admit(2, leader_only, ms).is_some() {
                t.record(2, leader_only, 100);
                sent += 100;
            }
        }
        assert!((10_000..=11_100).contains(&sent), "{sent}");
    }

    #[test]
    fn follower_quotas_are_per_follower_and_both_must_allow() {
        let mut t = ReplicationThrottle::default();
        assert_eq!(t.admit(2, BOTH, 0), Some(500), "the smaller quota");
        t.record(2, BOTH, 600);
        assert_eq!(
            t.admit(2, BOTH, 0),
            None,
            "follower 2's 500 B/s are used up"
        );
        assert_eq!(t.admit(3, BOTH, 0), Some(400), "follower 3 has its own");
        let none = Rates {
            leader: None,
            follower: None,
        };
        assert_eq!(t.admit(2, none, 0), Some(usize::MAX), "unthrottled: always");
    }
}
