//! The transaction coordinator of one shard: the `__transaction_state`
//! partitions this shard leads, each with the state of the transactional
//! ids that hash to it.
//!
//! A partition becomes ours when its replica here is made leader (the
//! partition manager calls [`TxnCoordinator::on_led`]): its records are
//! replayed from the log, last record per id winning, and transactions
//! found between PrepareCommit/PrepareAbort and their completion get their
//! markers sent again. Until the replay is done requests are answered
//! COORDINATOR_LOAD_IN_PROGRESS; after the replica stops leading,
//! NOT_COORDINATOR. Every request runs here, on the owner shard, so the
//! state needs no lock: a `RefCell` borrowed only between awaits, and a
//! change that is being written marks its id pending (see `state.rs`).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use shard::log::PartitionLog;
use shard::record::{decode_records, BatchBuilder, BatchView, Compression};

use super::record::{decode_key, decode_value, encode_key, encode_value};
use super::state::{Transit, TxnMetadata, TxnState};
use crate::metadata::internal::TRANSACTION_STATE;
use crate::shard_state::ShardState;

/// How long a state change may wait for the in-sync replicas (Kafka's
/// `transaction.state.log` writes use the request timeout).
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// One `__transaction_state` partition led by this shard.
pub struct TxnPartition {
    pub index: i32,
    /// The partition's leader epoch: markers carry it, and partition
    /// leaders refuse markers from an older coordinator.
    pub coordinator_epoch: i32,
    log: Rc<PartitionLog>,
    loaded: Cell<bool>,
    /// Set when this replica stops leading: work in flight for the
    /// partition stops and answers NOT_COORDINATOR.
    resigned: Cell<bool>,
    pub txns: RefCell<HashMap<String, TxnMetadata>>,
}

impl TxnPartition {
    pub fn resigned(&self) -> bool {
        self.resigned.get()
    }
}

/// Idle connections kept per broker for markers: enough for the
/// transactions one shard completes at once, never more.
const IDLE_CONNS_PER_BROKER: usize = 4;

/// An idle connection unused this long is closed, and a broker with none
/// left is forgotten: a departed broker's address (or a peer restarted on a
/// new port) must not keep its dead sockets for the life of the process.
/// Kafka closes idle connections after `connections.max.idle.ms` (9 min).
const IDLE_CONN_TIMEOUT: Duration = Duration::from_secs(300);

/// A connection kept for the next markers, and since when it is idle.
type IdleConn = (std::time::Instant, replication::conn::LeaderConn);

#[derive(Default)]
pub struct TxnCoordinator {
    partitions: RefCell<HashMap<i32, Rc<TxnPartition>>>,
    /// Idle inter-broker connections for WriteTxnMarkers, by address,
    /// oldest first.
    conns: RefCell<HashMap<std::net::SocketAddr, Vec<IdleConn>>>,
    /// The partition-leader side: transactional producers' appends to this
    /// shard's partitions, kept in arrival order.
    pub appends: super::verify::AppendGates,
}

impl TxnCoordinator {
    pub fn take_conn(&self, addr: std::net::SocketAddr) -> Option<replication::conn::LeaderConn> {
        let mut conns = self.conns.borrow_mut();
        close_idle(&mut conns, std::time::Instant::now());
        conns.get_mut(&addr)?.pop().map(|(_, conn)| conn)
    }

    /// Keep a connection whose last call succeeded, within the bound.
    pub fn put_conn(&self, conn: replication::conn::LeaderConn) {
        let now = std::time::Instant::now();
        let mut conns = self.conns.borrow_mut();
        close_idle(&mut conns, now);
        let idle = conns.entry(conn.addr()).or_default();
        if idle.len() < IDLE_CONNS_PER_BROKER {
            idle.push((now, conn));
        }
    }

    /// This shard's replica of `__transaction_state-index` leads in
    /// `epoch`: load it (a new epoch replaces what was loaded before).
    pub fn on_led(&self, state: &Rc<ShardState>, index: i32, epoch: i32, log: Rc<PartitionLog>) {
        if let Some(p) = self.partitions.borrow().get(&index) {
            if p.coordinator_epoch == epoch {
                return;
            }
        }
        let part = Rc::new(TxnPartition {
            index,
            coordinator_epoch: epoch,
            log,
            loaded: Cell::new(false),
            resigned: Cell::new(false),
            txns: RefCell::new(HashMap::new()),
        });
        if let Some(old) = self.partitions.borrow_mut().insert(index, part.clone()) {
            old.resigned.set(true);
        }
        tracing::debug!("{TRANSACTION_STATE}-{index}: coordinating in epoch {epoch}, loading");
        let state = state.clone();
        shard::rt::spawn_detached(async move { load(state, part).await });
    }

    /// The replica here no longer leads `index` (or is closed).
    pub fn on_resigned(&self, index: i32) {
        if let Some(old) = self.partitions.borrow_mut().remove(&index) {
            old.resigned.set(true);
            tracing::info!(
                "{TRANSACTION_STATE}-{index}: no longer coordinating (epoch {})",
                old.coordinator_epoch
            );
        }
    }

    /// The partition coordinating `transactional_id`, if it is loaded here.
    pub fn partition_for(
        &self,
        state: &ShardState,
        transactional_id: &str,
    ) -> Result<Rc<TxnPartition>, ResponseError> {
        let snap = state.metadata.snapshot();
        let Some(topic) = snap.topic(TRANSACTION_STATE) else {
            return Err(ResponseError::NotCoordinator);
        };
        let index = super::partition_for(transactional_id, topic.partitions.len() as i32);
        match self.partitions.borrow().get(&index) {
            None => Err(ResponseError::NotCoordinator),
            Some(p) if !p.loaded.get() => Err(ResponseError::CoordinatorLoadInProgress),
            Some(p) => Ok(p.clone()),
        }
    }

    /// A partition led here is still loading.
    pub fn loading(&self) -> bool {
        self.partitions.borrow().values().any(|p| !p.loaded.get())
    }

    /// The loaded partitions (for timeouts, expiry and ListTransactions).
    pub fn loaded(&self) -> Vec<Rc<TxnPartition>> {
        self.partitions
            .borrow()
            .values()
            .filter(|p| p.loaded.get())
            .cloned()
            .collect()
    }
}

/// Close the connections idle longer than [`IDLE_CONN_TIMEOUT`] at `now`
/// and forget brokers with none left (each list is oldest first).
fn close_idle<C>(
    conns: &mut HashMap<std::net::SocketAddr, Vec<(std::time::Instant, C)>>,
    now: std::time::Instant,
) {
    conns.retain(|_, idle| {
        idle.retain(|(since, _)| now.saturating_duration_since(*since) < IDLE_CONN_TIMEOUT);
        !idle.is_empty()
    });
}

/// Replay a partition's records into its state, then finish what the
/// previous coordinator left between prepare and complete.
async fn load(state: Rc<ShardState>, part: Rc<TxnPartition>) {
    let started = std::time::Instant::now();
    let mut txns: HashMap<String, TxnMetadata> = HashMap::new();
    let mut bad = 0usize;
    let replayed = replay(&part.log, |key, value| {
        let Ok(Some(id)) = decode_key(&key) else {
            bad += 1;
            return;
        };
        match value {
            None => {
                txns.remove(&id);
            }
            Some(v) => match decode_value(&v) {
                Ok(t) => {
                    txns.insert(id.clone(), TxnMetadata::from_transit(id, &t));
                }
                Err(e) => {
                    bad += 1;
                    tracing::warn!("{TRANSACTION_STATE}-{}: record of {id}: {e}", part.index);
                }
            },
        }
    })
    .await;
    if let Err(e) = replayed {
        // Left unloaded: requests keep answering LOAD_IN_PROGRESS until a
        // new leadership (or a restart) loads it again.
        tracing::error!("{TRANSACTION_STATE}-{}: loading failed: {e}", part.index);
        return;
    }
    if part.resigned() {
        return;
    }
    if bad > 0 {
        tracing::warn!(
            "{TRANSACTION_STATE}-{}: {bad} record(s) not understood were skipped",
            part.index
        );
    }
    let unfinished: Vec<String> = txns
        .iter()
        .filter(|(_, m)| matches!(m.state, TxnState::PrepareCommit | TxnState::PrepareAbort))
        .map(|(id, _)| id.clone())
        .collect();
    let count = txns.len();
    *part.txns.borrow_mut() = txns;
    part.loaded.set(true);
    let ms = started.elapsed().as_millis();
    if count > 0 {
        tracing::info!(
            "{TRANSACTION_STATE}-{} (epoch {}): loaded {count} transactional id(s) in {ms} ms; \
             {} to complete",
            part.index,
            part.coordinator_epoch,
            unfinished.len()
        );
    } else {
        tracing::debug!("{TRANSACTION_STATE}-{}: nothing to load", part.index);
    }
    for id in unfinished {
        super::markers::spawn_completion(state.clone(), part.clone(), id);
    }
}

/// Every record of `log` from its start to its durable end (a new leader's
/// high watermark may still trail records the old one had committed).
async fn replay(log: &PartitionLog, mut f: impl FnMut(Bytes, Option<Bytes>)) -> anyhow::Result<()> {
    let mut at = log.offsets().log_start_offset;
    loop {
        let out = log
            .read_for_follower(at, 1 << 20)
            .await
            .map_err(|e| anyhow::anyhow!("reading at offset {at}: {e}"))?;
        if out.batches.is_empty() {
            return Ok(());
        }
        for chunk in &out.batches {
            let mut pos = 0;
            while pos < chunk.len() {
                let view = BatchView::parse(&chunk[pos..])
                    .map_err(|e| anyhow::anyhow!("batch after offset {at}: {e}"))?;
                pos += view.size();
                if view.last_offset() < at {
                    continue;
                }
                at = view.last_offset() + 1;
                if view.is_control() {
                    continue;
                }
                let records = decode_records(&view)
                    .map_err(|e| anyhow::anyhow!("batch at {}: {e}", view.base_offset()))?;
                for r in records {
                    f(r.key.unwrap_or_default(), r.value);
                }
            }
        }
    }
}

/// Write `transit` for `id` to the partition (acks=all) and make it
/// current; on failure the pending change is dropped and the error is the
/// one Kafka's coordinator answers for such a failed write.
pub async fn write(
    state: &Rc<ShardState>,
    part: &Rc<TxnPartition>,
    id: &str,
    transit: Transit,
) -> Result<(), ResponseError> {
    let written = append(state, part, id, &transit).await;
    let mut txns = part.txns.borrow_mut();
    let Some(md) = txns.get_mut(id) else {
        // The partition was reloaded (a new epoch) meanwhile.
        return Err(ResponseError::NotCoordinator);
    };
    match written {
        Ok(()) if !part.resigned() => {
            if transit.state == TxnState::Dead {
                txns.remove(id);
            } else {
                md.complete(&transit);
            }
            Ok(())
        }
        Ok(()) => {
            md.abandon();
            Err(ResponseError::NotCoordinator)
        }
        Err(e) => {
            md.abandon();
            Err(e)
        }
    }
}

async fn append(
    state: &Rc<ShardState>,
    part: &TxnPartition,
    id: &str,
    transit: &Transit,
) -> Result<(), ResponseError> {
    let value = (transit.state != TxnState::Dead).then(|| encode_value(transit));
    let mut b = BatchBuilder::new(Compression::None);
    b.append(
        crate::replica::now_ms(),
        Some(encode_key(id)),
        value,
        Vec::new(),
    )
    .map_err(|_| ResponseError::UnknownServerError)?;
    let batch = Bytes::from(b.build().map_err(|_| ResponseError::UnknownServerError)?);
    let (code, message) = crate::handlers::produce::append_replicated(
        state,
        TRANSACTION_STATE,
        part.index,
        batch,
        WRITE_TIMEOUT,
    )
    .await;
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    tracing::warn!(
        "{TRANSACTION_STATE}-{}: writing the state of {id} failed: {error:?} {}",
        part.index,
        message.unwrap_or_default()
    );
    // Kafka's TransactionStateManager.appendTransactionToLog.
    Err(match error {
        ResponseError::UnknownTopicOrPartition
        | ResponseError::NotEnoughReplicas
        | ResponseError::NotEnoughReplicasAfterAppend
        | ResponseError::RequestTimedOut => ResponseError::CoordinatorNotAvailable,
        ResponseError::NotLeaderOrFollower | ResponseError::KafkaStorageError => {
            ResponseError::NotCoordinator
        }
        _ => ResponseError::UnknownServerError,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn idle_marker_connections_close_and_departed_brokers_are_forgotten() {
        let (a, b): (std::net::SocketAddr, std::net::SocketAddr) = (
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        );
        let t0 = Instant::now();
        let later = |s: u64| t0 + Duration::from_secs(s);
        let mut conns: HashMap<_, Vec<(Instant, u32)>> = HashMap::new();
        conns.entry(a).or_default().push((t0, 1));
        conns.entry(a).or_default().push((later(200), 2));
        conns.entry(b).or_default().push((later(10), 3));
        close_idle(&mut conns, later(250));
        assert_eq!(conns.values().map(Vec::len).sum::<usize>(), 3);
        close_idle(&mut conns, later(305));
        assert_eq!(conns[&a], vec![(later(200), 2)], "the oldest of a closed");
        assert!(conns.contains_key(&b));
        close_idle(&mut conns, later(320));
        assert!(
            !conns.contains_key(&b),
            "a broker with no connection is forgotten"
        );
        close_idle(&mut conns, later(600));
        assert!(conns.is_empty());
    }
}
