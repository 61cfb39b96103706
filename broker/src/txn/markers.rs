//! Completing a transaction: its commit or abort markers are written to
//! every partition it touched (WriteTxnMarkers to each partition's leader,
//! this broker included, over the inter-broker listener), then the
//! coordinator records CompleteCommit / CompleteAbort (Kafka's
//! `TransactionMarkerChannelManager`).
//!
//! The client was answered once PrepareCommit / PrepareAbort was written,
//! so this runs in the background, retrying with a bounded backoff until
//! every partition has its marker, the partition's topic is deleted, or
//! this coordinator loses the `__transaction_state` partition (then the
//! next coordinator does it again from the log: markers are idempotent).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use replication::conn::Dialer;

use super::coordinator::{write, TxnPartition};
use super::state::{TxnPartition as Tp, TxnResult, TxnState};
use crate::shard_state::ShardState;

/// WriteTxnMarkers v1 (flexible), which every Shardline broker serves.
const MARKERS_VERSION: i16 = 1;
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Finish `id`'s prepared transaction in the background.
pub fn spawn_completion(state: Rc<ShardState>, part: Rc<TxnPartition>, id: String) {
    shard::rt::spawn_detached(async move {
        if let Err(e) = complete(&state, &part, &id).await {
            tracing::info!(
                "transaction of {id} not completed by this coordinator \
                 (__transaction_state-{} epoch {}): {e:?}",
                part.index,
                part.coordinator_epoch
            );
        }
    });
}

/// Write the markers of `id`'s prepared transaction, then its completion.
async fn complete(
    state: &Rc<ShardState>,
    part: &Rc<TxnPartition>,
    id: &str,
) -> Result<(), ResponseError> {
    let (producer, result, partitions) = {
        let txns = part.txns.borrow();
        let md = txns.get(id).ok_or(ResponseError::NotCoordinator)?;
        let result = match md.state {
            TxnState::PrepareCommit => TxnResult::Commit,
            TxnState::PrepareAbort => TxnResult::Abort,
            other => unreachable!("completing {id} in {other:?}"),
        };
        let producer = Producer {
            id: md.producer_id,
            epoch: md.producer_epoch,
            tv: md.client_tv,
        };
        (producer, result, md.partitions.clone())
    };
    send_markers(state, part, producer, result, partitions).await?;
    // Nothing else changes a transaction in Prepare*: requests that find
    // it so are refused (CONCURRENT_TRANSACTIONS) and timeouts skip it.
    // The completion is retried until written or the partition is lost.
    loop {
        if part.resigned() {
            return Err(ResponseError::NotCoordinator);
        }
        let transit = {
            let mut txns = part.txns.borrow_mut();
            let md = txns.get_mut(id).ok_or(ResponseError::NotCoordinator)?;
            if !matches!(md.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                return Ok(());
            }
            debug_assert!(!md.pending(), "{id}: a change pending in {:?}", md.state);
            if md.pending() {
                return Ok(());
            }
            md.prepare_complete(crate::replica::now_ms())
        };
        match write(state, part, id, transit).await {
            Ok(()) => return Ok(()),
            Err(ResponseError::NotCoordinator) => return Err(ResponseError::NotCoordinator),
            Err(e) => {
                tracing::warn!("{id}: recording the completion failed ({e:?}); retrying");
                shard::rt::sleep(MAX_BACKOFF).await;
            }
        }
    }
}

/// The producer a marker is written for, and its transaction version.
#[derive(Debug, Clone, Copy)]
struct Producer {
    id: i64,
    epoch: i16,
    tv: i16,
}

async fn send_markers(
    state: &Rc<ShardState>,
    part: &Rc<TxnPartition>,
    producer: Producer,
    result: TxnResult,
    partitions: BTreeSet<Tp>,
) -> Result<(), ResponseError> {
    let mut left = partitions;
    let mut backoff = Duration::from_millis(20);
    while !left.is_empty() {
        if part.resigned() {
            return Err(ResponseError::NotCoordinator);
        }
        let snap = state.metadata.snapshot();
        // Partitions of deleted topics need no marker (Kafka drops them).
        left.retain(|(t, p)| {
            snap.topic(t)
                .is_some_and(|m| (*p as usize) < m.partitions.len())
                || t == crate::metadata::internal::CONSUMER_OFFSETS
        });
        let node = state.config.node_id;
        let mut by_leader: BTreeMap<i32, Vec<Tp>> = BTreeMap::new();
        for tp in &left {
            let leader = leader_of(&snap, tp, node);
            if leader >= 0 {
                by_leader.entry(leader).or_default().push(tp.clone());
            }
        }
        let calls = by_leader.into_iter().map(|(broker, tps)| {
            let addr = crate::inter_broker::peer_addr(&snap, broker, &state.config).or_else(|| {
                (broker == node)
                    .then(|| crate::inter_broker::own_addr(&state.config))
                    .flatten()
            });
            let part = part.clone();
            async move {
                let Some(addr) = addr else {
                    return Vec::new();
                };
                call(state, addr, &part, producer, result, &tps).await
            }
        });
        let done: Vec<Tp> = futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect();
        for tp in done {
            left.remove(&tp);
        }
        if !left.is_empty() {
            shard::rt::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
    Ok(())
}

fn leader_of(snap: &crate::metadata::ClusterState, (topic, p): &Tp, node: i32) -> i32 {
    if topic == crate::metadata::internal::CONSUMER_OFFSETS {
        if snap.coordinators.is_empty() && snap.brokers.len() <= 1 {
            // Not placed yet: a single node coordinates every group.
            return node;
        }
        return snap.coordinators.get(*p as usize).map_or(-1, |c| c.leader);
    }
    snap.topic(topic)
        .and_then(|t| t.partitions.get(*p as usize))
        .map_or(-1, |m| m.leader)
}

/// One WriteTxnMarkers call; the partitions that have their marker.
async fn call(
    state: &Rc<ShardState>,
    addr: SocketAddr,
    part: &TxnPartition,
    producer: Producer,
    result: TxnResult,
    tps: &[Tp],
) -> Vec<Tp> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    let marker = WritableTxnMarker::default()
        .with_producer_id(ProducerId(producer.id))
        .with_producer_epoch(producer.epoch)
        .with_unknown_tagged_field(
            crate::handlers::txn_markers::TRANSACTION_VERSION_TAG,
            bytes::Bytes::from(vec![producer.tv as u8]),
        )
        .with_transaction_result(result == TxnResult::Commit)
        .with_coordinator_epoch(part.coordinator_epoch)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    WritableTxnMarkerTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_string())))
                        .with_partition_indexes(ps)
                })
                .collect(),
        );
    let req = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
    let coordinator = state.txn.as_ref();
    let mut conn = match coordinator.take_conn(addr) {
        Some(c) => c,
        None => match state.partitions.dialer().dial(addr, CONNECT_TIMEOUT).await {
            Ok(c) => c,
            Err(e) => {
                tracing::debug!("markers to {addr}: {e:#}");
                return Vec::new();
            }
        },
    };
    let resp: WriteTxnMarkersResponse = match conn.call(&req, MARKERS_VERSION, CALL_TIMEOUT).await {
        Ok(r) => r,
        Err(e) => {
            tracing::debug!("markers to {addr}: {e:#}");
            return Vec::new();
        }
    };
    coordinator.put_conn(conn);
    let mut done = Vec::new();
    for m in resp.markers {
        for t in m.topics {
            for p in t.partitions {
                let tp = (t.name.0.to_string(), p.partition_index);
                match ResponseError::try_from_code(p.error_code) {
                    None => done.push(tp),
                    Some(ResponseError::InvalidProducerEpoch)
                    | Some(ResponseError::TransactionCoordinatorFenced) => {
                        // A newer epoch or coordinator wrote past us: the
                        // marker is moot for this partition (Kafka drops it).
                        tracing::info!(
                            "marker for {}-{} refused ({:?}): a newer producer epoch or \
                             coordinator owns it",
                            tp.0,
                            tp.1,
                            ResponseError::try_from_code(p.error_code)
                        );
                        done.push(tp);
                    }
                    Some(e) => {
                        tracing::debug!("marker for {}-{}: {e:?}, will retry", tp.0, tp.1);
                    }
                }
            }
        }
    }
    done
}
