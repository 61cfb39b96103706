//! How far this broker's followed partitions are behind their leaders, for
//! the broker's `/metrics` (Kafka's `ReplicaFetcherManager` `MaxLag`).
//!
//! Each fetcher, after each round, publishes its largest lag (the leader's
//! high watermark in its last answer minus the local log end) and the
//! oldest time one of its partitions was last caught up. The shard keeps
//! its fetchers' figures in a thread-local map and stores the maxima in a
//! slot of two atomics only its thread writes; a scrape (another thread)
//! reads every slot. No lock on a shard thread but the one that registers
//! its slot, once, at its first publish (as the request metrics' slots).

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering::Relaxed};
use std::sync::Mutex;

/// "No followed partition" in a slot's caught-up time.
const NONE: i64 = i64::MAX;

/// One fetcher's figures after its latest round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetcherLag {
    /// Largest `leader high watermark - local log end` over its partitions.
    pub max_lag_messages: i64,
    /// Wall-clock ms at which its least caught up partition last was.
    pub oldest_caught_up_ms: i64,
}

/// The lag over every shard, as a scrape shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FollowerLag {
    pub max_lag_messages: i64,
    /// None when this broker follows nothing.
    pub oldest_caught_up_ms: Option<i64>,
}

/// One shard's maxima, written by that shard's thread only.
#[repr(align(128))]
struct Slot {
    lag_messages: AtomicI64,
    caught_up_ms: AtomicI64,
}

static SLOTS: Mutex<Vec<&'static Slot>> = Mutex::new(Vec::new());

thread_local! {
    static SLOT: &'static Slot = {
        let slot: &'static Slot = Box::leak(Box::new(Slot {
            lag_messages: AtomicI64::new(0),
            caught_up_ms: AtomicI64::new(NONE),
        }));
        SLOTS.lock().expect("lag slots lock").push(slot);
        slot
    };
    /// This shard's fetchers' latest figures, by fetcher id.
    static FETCHERS: RefCell<BTreeMap<u64, FetcherLag>> = const { RefCell::new(BTreeMap::new()) };
}

/// Record fetcher `id`'s figures on this shard (None: it stopped), and
/// publish the shard's maxima.
pub fn publish(id: u64, lag: Option<FetcherLag>) {
    let (max_lag, oldest) = FETCHERS.with(|f| {
        let mut f = f.borrow_mut();
        match lag {
            Some(l) => {
                f.insert(id, l);
            }
            None => {
                f.remove(&id);
            }
        }
        let max_lag = f.values().map(|l| l.max_lag_messages).max().unwrap_or(0);
        let oldest = f
            .values()
            .map(|l| l.oldest_caught_up_ms)
            .min()
            .unwrap_or(NONE);
        (max_lag, oldest)
    });
    SLOT.with(|s| {
        s.lag_messages.store(max_lag, Relaxed);
        s.caught_up_ms.store(oldest, Relaxed);
    });
}

/// Every shard's figures combined, read now (any thread).
pub fn follower_lag() -> FollowerLag {
    let slots = SLOTS.lock().expect("lag slots lock").clone();
    let mut out = FollowerLag::default();
    for s in slots {
        out.max_lag_messages = out.max_lag_messages.max(s.lag_messages.load(Relaxed));
        let c = s.caught_up_ms.load(Relaxed);
        if c != NONE {
            out.oldest_caught_up_ms = Some(out.oldest_caught_up_ms.map_or(c, |o| o.min(c)));
        }
    }
    out
}

/// Wall-clock milliseconds (what the caught-up times are in).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shards_fetchers_are_combined_and_a_stopped_one_forgotten() {
        std::thread::spawn(|| {
            publish(
                1,
                Some(FetcherLag {
                    max_lag_messages: 7,
                    oldest_caught_up_ms: 1_000,
                }),
            );
            publish(
                2,
                Some(FetcherLag {
                    max_lag_messages: 3,
                    oldest_caught_up_ms: 500,
                }),
            );
            let got = SLOT.with(|s| (s.lag_messages.load(Relaxed), s.caught_up_ms.load(Relaxed)));
            assert_eq!(got, (7, 500));
            publish(2, None);
            let got = SLOT.with(|s| (s.lag_messages.load(Relaxed), s.caught_up_ms.load(Relaxed)));
            assert_eq!(got, (7, 1_000));
            // Other tests' threads publish into slots of their own.
            let all = follower_lag();
            assert!(all.max_lag_messages >= 7);
            assert!(all.oldest_caught_up_ms.is_some_and(|c| c <= 1_000));
            publish(1, None);
            let got = SLOT.with(|s| (s.lag_messages.load(Relaxed), s.caught_up_ms.load(Relaxed)));
            assert_eq!(got, (0, NONE), "a shard following nothing shows no lag");
        })
        .join()
        .unwrap();
    }
}
