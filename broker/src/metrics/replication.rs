//! Replication metrics this broker counts itself (the ones read from the
//! metadata, under-replicated and offline partitions, are in `cluster`):
//! consumer fetches served as a follower and KIP-392 redirects sent, the
//! ISR changes its leaders got committed, the leaderships it took, and its
//! followers' lag (`replication::stats`).
//!
//! The counters are per shard, as the request metrics' are: each thread
//! that counts gets a slot of its own on its first count, only it writes
//! the slot (a relaxed load and store, no read-modify-write, no lock), and
//! a scrape sums the slots.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::gauge::ConstGauge;

/// One shard's counters.
#[derive(Default)]
#[repr(align(128))]
struct Slot {
    follower_fetches: AtomicU64,
    redirects: AtomicU64,
    isr_shrinks: AtomicU64,
    isr_expands: AtomicU64,
    leader_elections: AtomicU64,
}

static SLOTS: Mutex<Vec<&'static Slot>> = Mutex::new(Vec::new());

thread_local! {
    static SLOT: &'static Slot = {
        let slot: &'static Slot = Box::leak(Box::default());
        SLOTS.lock().expect("replication slots lock").push(slot);
        slot
    };
}

/// Add one to a counter of this thread's slot (its only writer).
fn bump(counter: impl FnOnce(&Slot) -> &AtomicU64) {
    SLOT.with(|s| {
        let c = counter(s);
        c.store(c.load(Relaxed) + 1, Relaxed);
    });
}

/// A consumer's Fetch read at least one partition from a local follower.
pub fn follower_fetch() {
    bump(|s| &s.follower_fetches);
}

/// A partition of a consumer's Fetch was answered with a preferred read
/// replica instead of records.
pub fn redirect() {
    bump(|s| &s.redirects);
}

/// An ISR change a leader here proposed was committed; `shrink`: it
/// removed members (else it added one).
pub fn isr_change_committed(shrink: bool) {
    if shrink {
        bump(|s| &s.isr_shrinks);
    } else {
        bump(|s| &s.isr_expands);
    }
}

/// A partition became led here in a leader epoch new to its log.
pub fn leader_election() {
    bump(|s| &s.leader_elections);
}

/// The counters summed over the shards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub follower_fetches: u64,
    pub redirects: u64,
    pub isr_shrinks: u64,
    pub isr_expands: u64,
    pub leader_elections: u64,
}

pub fn totals() -> Totals {
    let slots = SLOTS.lock().expect("replication slots lock").clone();
    let mut t = Totals::default();
    for s in slots {
        t.follower_fetches += s.follower_fetches.load(Relaxed);
        t.redirects += s.redirects.load(Relaxed);
        t.isr_shrinks += s.isr_shrinks.load(Relaxed);
        t.isr_expands += s.isr_expands.load(Relaxed);
        t.leader_elections += s.leader_elections.load(Relaxed);
    }
    t
}

/// The replication counters and the followers' lag, read at scrape time.
#[derive(Debug)]
pub struct ReplicationCollector;

impl Collector for ReplicationCollector {
    fn encode(&self, mut e: DescriptorEncoder) -> fmt::Result {
        let t = totals();
        let counters = [
            (
                "shardline_follower_fetch_requests",
                "Consumer Fetch requests this broker served as a follower (KIP-392: at least one \
                 partition read from a replica it does not lead)",
                t.follower_fetches,
            ),
            (
                "shardline_preferred_read_replica_redirects",
                "Partitions of consumer Fetch requests this broker, as leader, answered with a \
                 preferred read replica (a follower in the client's rack) instead of records",
                t.redirects,
            ),
            (
                "shardline_isr_shrinks",
                "ISR shrinks proposed by leaders on this broker and committed to the metadata log",
                t.isr_shrinks,
            ),
            (
                "shardline_isr_expands",
                "ISR expansions proposed by leaders on this broker and committed to the metadata log",
                t.isr_expands,
            ),
            (
                "shardline_leader_elections",
                "Partitions this broker became the leader of in a leader epoch new to its log \
                 (elections it won, new partitions led here); counted by the broker, not the \
                 controller",
                t.leader_elections,
            ),
        ];
        for (name, help, v) in counters {
            super::counter(&mut e, name, help, v)?;
        }
        let lag = replication::stats::follower_lag();
        super::gauge(
            &mut e,
            "shardline_replica_fetch_lag_messages",
            "Largest lag over the partitions this broker follows: the leader's high watermark in \
             its last fetch answer minus the local log end",
            lag.max_lag_messages,
        )?;
        let behind_s = lag.oldest_caught_up_ms.map_or(0.0, |at| {
            (replication::stats::now_ms() - at).max(0) as f64 / 1000.0
        });
        let g = ConstGauge::new(behind_s);
        g.encode(e.encode_descriptor(
            "shardline_replica_fetch_lag_seconds",
            "Longest time any partition this broker follows has not been caught up with its \
             leader's high watermark (since its last fetch answer that left it there, or since \
             following began); 0 when it follows nothing",
            None,
            g.metric_type(),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_of_each_thread_are_summed() {
        let before = totals();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    follower_fetch();
                    redirect();
                    redirect();
                    isr_change_committed(true);
                    isr_change_committed(false);
                    leader_election();
                });
            }
        });
        let after = totals();
        // Other tests' threads may count at the same time: at least ours.
        assert!(after.follower_fetches >= before.follower_fetches + 2);
        assert!(after.redirects >= before.redirects + 4);
        assert!(after.isr_shrinks >= before.isr_shrinks + 2);
        assert!(after.isr_expands >= before.isr_expands + 2);
        assert!(after.leader_elections >= before.leader_elections + 2);
    }
}
