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
use replication::conn::LeaderConn;

use crate::shard_state::ShardState;

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
    let Some(addr) = crate::replica::inter_broker_addr(&snap, leader) else {
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
        None => match LeaderConn::connect(addr, CONNECT_TIMEOUT).await {
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
