//! Kafka transactions, the coordinator side (KIP-98, KIP-890): each
//! transactional id belongs to one partition of the replicated internal
//! topic `__transaction_state` (Kafka's hash of the id), and the broker
//! leading that partition coordinates it, on the shard that owns the
//! partition. The coordinator keeps each id's state ([`state`]) in memory,
//! writes every change to the partition as a record ([`record`]) and
//! answers once the in-sync replicas have it, so the broker that takes
//! over the partition after a failure loads the same state from its copy
//! and finishes what was in flight ([`coordinator`]).

pub mod coordinator;
pub mod markers;
pub mod ops;
pub mod record;
pub mod state;
pub mod topic;
pub mod verify;

use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use crate::metadata::internal::TRANSACTION_STATE;
use crate::shard_state::ShardState;

/// Make this shard's coordinator follow the leadership of its
/// `__transaction_state` replicas, and start its timers (timeouts and
/// expiry). Called once per shard before its partitions open.
pub fn install(state: &Rc<ShardState>) {
    let weak = Rc::downgrade(state);
    state
        .partitions
        .observe_leadership(Box::new(move |topic, partition, led| {
            if topic != TRANSACTION_STATE {
                return;
            }
            let Some(state) = weak.upgrade() else { return };
            match led {
                Some((epoch, log)) => state.txn.on_led(&state, partition, epoch, log),
                None => state.txn.on_resigned(partition),
            }
        }));
    shard::rt::spawn_detached(timers(Rc::downgrade(state)));
}

/// Abort timed-out transactions every
/// `transaction_abort_timed_out_transaction_cleanup_interval_ms`, and
/// remove expired ids every
/// `transaction_remove_expired_transaction_cleanup_interval_ms`.
async fn timers(weak: Weak<ShardState>) {
    let (abort_every, expire_every) = match weak.upgrade() {
        Some(s) => (
            Duration::from_millis(
                s.config
                    .transaction_abort_timed_out_transaction_cleanup_interval_ms
                    as u64,
            ),
            Duration::from_millis(
                s.config
                    .transaction_remove_expired_transaction_cleanup_interval_ms
                    as u64,
            ),
        ),
        None => return,
    };
    let mut next_expiry = Instant::now() + expire_every;
    loop {
        shard::rt::sleep(abort_every).await;
        let Some(state) = weak.upgrade() else { return };
        for part in state.txn.loaded() {
            ops::abort_timed_out(&state, &part).await;
        }
        if Instant::now() >= next_expiry {
            next_expiry = Instant::now() + expire_every;
            for part in state.txn.loaded() {
                ops::expire_ids(&state, &part).await;
            }
        }
    }
}

/// Kafka's partition of a transactional id:
/// `Utils.abs(transactionalId.hashCode) % partitions` (Java's
/// `String.hashCode` over UTF-16 code units; `Utils.abs` maps
/// `Integer.MIN_VALUE` to 0), the same rule as for groups.
pub fn partition_for(transactional_id: &str, partitions: i32) -> i32 {
    assert!(partitions > 0, "{partitions} transaction state partitions");
    crate::metadata::coordinator_partition(transactional_id, partitions as usize) as i32
}

#[cfg(test)]
mod tests {
    use super::partition_for;

    #[test]
    fn partitions_are_kafkas() {
        // Java: "my-txn".hashCode() = -1061187895, Utils.abs 1061187895.
        assert_eq!(partition_for("my-txn", 50), 1_061_187_895 % 50);
        assert_eq!(partition_for("", 50), 0);
        // Non-ASCII ids hash their UTF-16 units, as Java does.
        assert_eq!(partition_for("é", 1000), 233);
        for id in ["a", "tx-1", "payments-7"] {
            assert!((0..50).contains(&partition_for(id, 50)));
        }
    }
}
