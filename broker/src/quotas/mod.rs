//! Client quotas (KIP-13 byte rates, KIP-124 request percentage, KIP-546
//! admin APIs), shared by every shard.
//!
//! A user's connections can land on different shards, so the rates live
//! here, one Mutex'd [`rate::Rate`] per (quota key, entity tags), not per
//! shard. They are only touched when a quota is configured: with none, the
//! hot path costs one relaxed atomic load ([`Quotas::enabled`]).
//!
//! `controller_mutation_rate` is stored and described but not enforced.

pub mod entity;
pub mod filter;
pub mod rate;
pub mod store;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use entity::{precedence, QuotaKey, Tags};
use rate::Rate;
use store::{Change, QuotaStore, Snapshot};

/// Rates kept before idle ones are dropped (one per active client entity).
const MAX_RATES: usize = 10_000;

pub struct Quotas {
    store: QuotaStore,
    rates: Mutex<HashMap<(QuotaKey, Tags), Rate>>,
    samples: usize,
    window_ms: u64,
    epoch: Instant,
}

/// The quota user of a principal: `User:alice` -> `alice`; an
/// unauthenticated connection is user `ANONYMOUS`, as in Kafka.
pub fn quota_user(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

impl Quotas {
    pub fn new(store: QuotaStore, samples: usize, window_seconds: u64) -> Quotas {
        Quotas {
            store,
            rates: Mutex::new(HashMap::new()),
            samples,
            window_ms: window_seconds * 1000,
            epoch: Instant::now(),
        }
    }

    /// No quotas, nothing persisted (tests, tools).
    pub fn in_memory() -> Quotas {
        Quotas::new(QuotaStore::in_memory(), 11, 1)
    }

    /// Whether any enforced quota is configured.
    #[inline]
    pub fn enabled(&self) -> bool {
        self.store.enforces_any()
    }

    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.store.snapshot()
    }

    /// Apply and persist `changes`; returns once they are durable (the
    /// store keeps [`Self::enabled`] in step with what it publishes).
    pub async fn apply(&self, changes: Vec<Change>) -> Result<(), String> {
        self.store.apply(changes).await
    }

    #[cfg(test)]
    pub fn apply_blocking(&self, changes: Vec<Change>) -> Result<(), String> {
        self.store.apply_blocking(changes)
    }

    /// The quota of `key` for (user, client-id) and the tags its rate is
    /// kept under: the first entity in Kafka's precedence order with `key`.
    pub fn resolve(&self, key: QuotaKey, user: &str, client_id: &str) -> Option<(f64, Tags)> {
        let snap = self.store.snapshot();
        precedence(user, client_id)
            .into_iter()
            .find_map(|(e, tags)| snap.entities.get(&e)?.get(&key).map(|v| (*v, tags)))
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Record `value` against the quota of `key` and return how long the
    /// client is to be throttled (zero without a quota or within it).
    pub fn record(&self, key: QuotaKey, user: &str, client_id: &str, value: f64) -> Duration {
        self.record_at(self.now_ms(), key, user, client_id, value)
    }

    fn record_at(
        &self,
        now_ms: u64,
        key: QuotaKey,
        user: &str,
        client_id: &str,
        value: f64,
    ) -> Duration {
        let Some((quota, tags)) = self.resolve(key, user, client_id) else {
            return Duration::ZERO;
        };
        let mut rates = self.rates.lock().expect("quota rates lock");
        if rates.len() >= MAX_RATES && !rates.contains_key(&(key, tags.clone())) {
            let idle = self.samples as u64 * self.window_ms;
            rates.retain(|_, r| now_ms.saturating_sub(r.last_record_ms) < idle);
        }
        let rate = rates
            .entry((key, tags))
            .or_insert_with(|| Rate::new(self.samples, self.window_ms));
        rate.record(now_ms, value);
        // Explicit limit: never mute a client for more than the whole
        // measured window, whatever one huge request did to the rate.
        let max = self.samples as u64 * self.window_ms;
        Duration::from_millis(rate.throttle_ms(now_ms, quota).min(max))
    }

    /// The largest Fetch response the consumer quota of (user, client-id)
    /// allows in one window, if one applies (Kafka caps `max_bytes` so).
    pub fn fetch_cap(&self, user: &str, client_id: &str) -> Option<usize> {
        let (quota, _) = self.resolve(QuotaKey::ConsumerByteRate, user, client_id)?;
        Some(Rate::max_in_window(self.samples, self.window_ms, quota).max(1.0) as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::entity::{Entity, Name};
    use super::*;

    fn ent(user: Option<Option<&str>>, client: Option<Option<&str>>) -> Entity {
        Entity {
            user: user.map(Name::from_wire),
            client_id: client.map(Name::from_wire),
        }
    }

    fn set(q: &Quotas, e: Entity, key: QuotaKey, v: f64) {
        q.apply_blocking(vec![(e, vec![(key, Some(v))])]).unwrap();
    }

    #[test]
    fn resolution_walks_the_precedence_per_key() {
        let q = Quotas::in_memory();
        assert!(!q.enabled());
        let p = QuotaKey::ProducerByteRate;
        set(&q, ent(None, Some(None)), p, 8.0);
        assert!(q.enabled());
        assert_eq!(q.resolve(p, "alice", "app").unwrap().0, 8.0);
        set(&q, ent(None, Some(Some("app"))), p, 7.0);
        assert_eq!(q.resolve(p, "alice", "app").unwrap().0, 7.0);
        set(&q, ent(Some(None), None), p, 6.0);
        assert_eq!(q.resolve(p, "alice", "app").unwrap().0, 6.0);
        set(&q, ent(Some(None), Some(None)), p, 5.0);
        set(&q, ent(Some(None), Some(Some("app"))), p, 4.0);
        assert_eq!(q.resolve(p, "alice", "app").unwrap().0, 4.0);
        assert_eq!(q.resolve(p, "alice", "other").unwrap().0, 5.0);
        set(&q, ent(Some(Some("alice")), None), p, 3.0);
        set(&q, ent(Some(Some("alice")), Some(None)), p, 2.0);
        assert_eq!(q.resolve(p, "alice", "other").unwrap().0, 2.0);
        set(&q, ent(Some(Some("alice")), Some(Some("app"))), p, 1.0);
        let (v, tags) = q.resolve(p, "alice", "app").unwrap();
        assert_eq!(
            (v, tags.user.as_str(), tags.client_id.as_str()),
            (1.0, "alice", "app")
        );
        // Another key is resolved on its own.
        assert!(q
            .resolve(QuotaKey::ConsumerByteRate, "alice", "app")
            .is_none());
        // ANONYMOUS is a user like any other (and gets default-user quotas).
        assert_eq!(quota_user("User:ANONYMOUS"), "ANONYMOUS");
        assert_eq!(q.resolve(p, "ANONYMOUS", "x").unwrap().0, 5.0);
    }

    #[test]
    fn rates_are_shared_by_entity_tags() {
        let q = Quotas::in_memory();
        let p = QuotaKey::ProducerByteRate;
        // A default client-id quota: each client-id has its own rate.
        set(&q, ent(None, Some(None)), p, 1000.0);
        assert_eq!(q.record_at(0, p, "u1", "a", 10_000.0), Duration::ZERO);
        assert_eq!(q.record_at(0, p, "u2", "b", 10_000.0), Duration::ZERO);
        // Same client-id from another user: same rate, now over quota.
        assert_eq!(
            q.record_at(0, p, "u3", "a", 10_000.0),
            Duration::from_millis(10_000)
        );
        // No quota for the key: nothing recorded.
        assert_eq!(
            q.record_at(0, QuotaKey::ConsumerByteRate, "u", "a", 1e12),
            Duration::ZERO
        );
        // Capped at the whole window.
        assert_eq!(
            q.record_at(0, p, "u3", "a", 1e12),
            Duration::from_millis(11_000)
        );
        assert_eq!(q.fetch_cap("u", "a"), None);
        set(&q, ent(Some(None), None), QuotaKey::ConsumerByteRate, 100.0);
        assert_eq!(q.fetch_cap("u", "a"), Some(1000));
    }
}
