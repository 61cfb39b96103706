//! A partition leader asking a transaction coordinator about a producer's
//! transaction before it appends a transactional batch that would start
//! one there (KIP-890): "is this partition in your open transaction?"
//! (part 1, `VerifyOnly`, for producers that add partitions themselves) or
//! "add it" (part 2, transaction version 2, where producers no longer send
//! AddPartitionsToTxn for produce partitions). Without this check a batch
//! that arrived after its transaction ended would open a transaction no
//! coordinator knows, holding back read_committed consumers for ever.
//!
//! The coordinator may be on this broker (a cross-shard ask) or another
//! (AddPartitionsToTxn v4/v5 over the inter-broker listener, as Kafka's
//! `AddPartitionsToTxnManager` sends it).

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ProducerId, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use replication::conn::Dialer;
use shard::fifo::FifoLock;

use crate::shard_state::ShardState;

/// A transactional producer's appends to one partition, one at a time in
/// the order they arrived. Kafka reads a connection's next request only
/// once it has answered the last, so a producer's pipelined batches reach
/// a partition in order even when one waits for its coordinator; this
/// broker handles a connection's requests at once, and a batch waiting for
/// the coordinator's answer (the first of a transaction here) was overtaken
/// by the producer's next one: out of sequence, answered after the first
/// one's success, so the client took it for lost data and aborted.
#[derive(Default)]
pub struct AppendGates {
    gates: Gates,
}

/// (topic, partition, producer id) → its gate.
type Gates = RefCell<HashMap<(String, i32, i64), Rc<FifoLock>>>;

impl AppendGates {
    /// Run `append` (a verification, then the append) after every earlier
    /// one of `producer_id` on `topic`-`partition`. Must be called before
    /// the caller's first await, so that arrival order is call order.
    pub async fn in_order<T>(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        append: impl Future<Output = T>,
    ) -> T {
        // Dropped last (locals drop in reverse order): after the turn and
        // this call's reference to the gate.
        let forget = Forget {
            gates: &self.gates,
            key: (topic.to_string(), partition, producer_id),
        };
        let gate = self
            .gates
            .borrow_mut()
            .entry(forget.key.clone())
            .or_insert_with(|| Rc::new(FifoLock::new()))
            .clone();
        let _turn = gate.lock().await;
        append.await
    }

    /// Producers with a gate now (tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.gates.borrow().len()
    }
}

/// Drops a gate nobody holds or waits for any more (also when the append
/// is cancelled).
struct Forget<'a> {
    gates: &'a Gates,
    key: (String, i32, i64),
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        let mut gates = self.gates.borrow_mut();
        // Only the map's reference is left when no other call holds or
        // waits for the gate.
        if gates
            .get(&self.key)
            .is_some_and(|g| Rc::strong_count(g) == 1 && !g.is_locked())
        {
            gates.remove(&self.key);
        }
    }
}

const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Verify (or, `add`, add) `topic`-`partition` in the open transaction of
/// `transactional_id`'s producer: 0, or the coordinator's error code.
pub async fn add_or_verify(
    state: &Rc<ShardState>,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
    add: bool,
) -> i16 {
    let snap = state.metadata.snapshot();
    let Some((_, leader)) = super::topic::coordinator_of(&snap, transactional_id) else {
        return ResponseError::CoordinatorNotAvailable.code();
    };
    if leader < 0 {
        return ResponseError::CoordinatorNotAvailable.code();
    }
    let tp = (topic.to_string(), partition);
    if leader == state.config.node_id {
        let shard = match crate::handlers::txn::coordinator_shard(state, transactional_id) {
            Ok(s) => s,
            Err(e) => return e.code(),
        };
        let work = crate::handlers::txn::AddTxnPartitions {
            id: transactional_id.to_string(),
            producer_id,
            epoch,
            partitions: vec![tp],
            verify_only: !add,
            client_tv: if add { 2 } else { 1 },
        };
        return match state.ask(shard, work).await {
            Ok(Ok(codes)) => codes.first().copied().unwrap_or(0),
            Ok(Err(e)) => e.code(),
            Err(_) => ResponseError::CoordinatorNotAvailable.code(),
        };
    }
    let Some(addr) = crate::inter_broker::peer_addr(&snap, leader, &state.config) else {
        return ResponseError::CoordinatorNotAvailable.code();
    };
    drop(snap);
    remote(
        state,
        addr,
        transactional_id,
        producer_id,
        epoch,
        topic,
        partition,
        add,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
async fn remote(
    state: &Rc<ShardState>,
    addr: SocketAddr,
    transactional_id: &str,
    producer_id: i64,
    epoch: i16,
    topic: &str,
    partition: i32,
    add: bool,
) -> i16 {
    let txn = AddPartitionsToTxnTransaction::default()
        .with_transactional_id(TransactionalId(StrBytes::from_string(
            transactional_id.to_string(),
        )))
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(epoch)
        .with_verify_only(!add)
        .with_topics(vec![AddPartitionsToTxnTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![partition])]);
    let req = AddPartitionsToTxnRequest::default().with_transactions(vec![txn]);
    // v5 adds with transaction version 2 semantics; v4 verifies.
    let version = if add { 5 } else { 4 };
    let coordinator = state.txn.as_ref();
    let mut conn = match coordinator.take_conn(addr) {
        Some(c) => c,
        None => match state.partitions.dialer().dial(addr, CONNECT_TIMEOUT).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("AddPartitionsToTxn to {addr}: {e:#}");
                return ResponseError::CoordinatorNotAvailable.code();
            }
        },
    };
    let resp: AddPartitionsToTxnResponse = match conn.call(&req, version, CALL_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("AddPartitionsToTxn to {addr}: {e:#}");
            return ResponseError::CoordinatorNotAvailable.code();
        }
    };
    coordinator.put_conn(conn);
    if resp.error_code != 0 {
        return resp.error_code;
    }
    resp.results_by_transaction
        .iter()
        .flat_map(|t| t.topic_results.iter())
        .flat_map(|t| t.results_by_partition.iter())
        .map(|p| p.partition_error_code)
        .find(|c| *c != 0)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::rc::Rc;
    use std::time::Duration;

    use super::AppendGates;

    /// Appends of one producer run one at a time in the order they came,
    /// however long each waits; another producer's do not wait for them;
    /// the gates are forgotten once idle.
    #[test]
    fn a_producers_appends_run_in_arrival_order() {
        let (order, left) = shard::rt::run_local(|| async {
            let gates = Rc::new(AppendGates::default());
            let order = Rc::new(RefCell::new(Vec::new()));
            let mut tasks = Vec::new();
            for (pid, i, wait_ms) in [(7, 0, 30u64), (7, 1, 0), (7, 2, 10), (8, 3, 0)] {
                let (gates, order) = (gates.clone(), order.clone());
                tasks.push(shard::rt::spawn_local(async move {
                    let append = async {
                        order.borrow_mut().push(format!("start {i}"));
                        shard::rt::sleep(Duration::from_millis(wait_ms)).await;
                        order.borrow_mut().push(format!("end {i}"));
                    };
                    gates.in_order("t", 0, pid, append).await
                }));
            }
            for t in tasks {
                t.await;
            }
            let order = order.borrow().clone();
            (order, gates.len())
        });
        assert_eq!(
            order,
            ["start 0", "start 3", "end 3", "end 0", "start 1", "end 1", "start 2", "end 2"]
        );
        assert_eq!(left, 0);
    }

    /// An append given up while it waits (its request cancelled) lets the
    /// next one through and leaves no gate behind.
    #[test]
    fn a_cancelled_append_does_not_hold_the_next() {
        let (ran, left) = shard::rt::run_local(|| async {
            let gates = Rc::new(AppendGates::default());
            let ran = Rc::new(RefCell::new(Vec::new()));
            let spawn = |i: u32, wait_ms: u64| {
                let (gates, ran) = (gates.clone(), ran.clone());
                shard::rt::spawn_local(async move {
                    let append = async {
                        shard::rt::sleep(Duration::from_millis(wait_ms)).await;
                        ran.borrow_mut().push(i);
                    };
                    gates.in_order("t", 1, 9, append).await
                })
            };
            let first = spawn(0, 20);
            let cancelled = spawn(1, 0);
            let last = spawn(2, 0);
            shard::rt::sleep(Duration::from_millis(5)).await;
            drop(cancelled);
            first.await;
            last.await;
            let ran = ran.borrow().clone();
            (ran, gates.len())
        });
        assert_eq!(ran, [0, 2]);
        assert_eq!(left, 0);
    }
}
