//! What the coordinator does for each request (Kafka's
//! `TransactionCoordinator`): InitProducerId with a transactional id,
//! AddPartitionsToTxn (and its verification-only form, KIP-890),
//! AddOffsetsToTxn, EndTxn, and the abort of transactions that outlive
//! their timeout. Each runs on the shard owning the id's partition.

use std::rc::Rc;

use kafka_protocol::ResponseError;

use super::coordinator::{write, TxnPartition};
use super::markers::spawn_completion;
use super::state::{
    epoch_exhausted, TxnMetadata, TxnPartition as Tp, TxnResult, TxnState, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
};
use crate::shard_state::ShardState;

type R<T> = Result<T, ResponseError>;

/// Kafka's TRANSACTION_ABORTABLE (KIP-890), newer than kafka-protocol's
/// error list.
pub const TRANSACTION_ABORTABLE: i16 = 120;

fn now() -> i64 {
    crate::replica::now_ms()
}

async fn new_producer_id(state: &Rc<ShardState>) -> R<i64> {
    use crate::controller::{AllocateProducerId, CONTROLLER_SHARD};
    match state.ask(CONTROLLER_SHARD, AllocateProducerId).await {
        Ok(Ok(id)) => Ok(id),
        Ok(Err(e)) => {
            tracing::warn!("allocating a producer id: {}", e.message);
            Err(ResponseError::CoordinatorNotAvailable)
        }
        Err(_) => Err(ResponseError::CoordinatorNotAvailable),
    }
}

/// InitProducerId with a transactional id: (producer id, epoch).
pub async fn init_producer_id(
    state: &Rc<ShardState>,
    id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> R<(i64, i16)> {
    if id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    if timeout_ms <= 0 || i64::from(timeout_ms) > state.config.transaction_max_timeout_ms {
        return Err(ResponseError::InvalidTransactionTimeout);
    }
    let part = state.txn.partition_for(state, id)?;
    if !part.txns.borrow().contains_key(id) {
        let pid = new_producer_id(state).await?;
        if part.resigned() {
            return Err(ResponseError::NotCoordinator);
        }
        part.txns
            .borrow_mut()
            .entry(id.to_string())
            .or_insert_with(|| TxnMetadata::new(id.to_string(), pid, timeout_ms, now()));
    }
    // An exhausted epoch needs a new producer id, which is allocated
    // before the state is looked at again (an await in between).
    let rotate_to = {
        let txns = part.txns.borrow();
        let md = &txns[id];
        md.epoch_exhausted()
            && !md.state.in_transaction()
            && expected.is_none_or(|(_, e)| e == md.producer_epoch)
    };
    let rotate_to = if rotate_to {
        Some(new_producer_id(state).await?)
    } else {
        None
    };
    enum Next {
        Write(super::state::Transit),
        Fence(super::state::Transit),
    }
    let next = {
        let mut txns = part.txns.borrow_mut();
        let md = txns.get_mut(id).ok_or(ResponseError::NotCoordinator)?;
        if md.pending() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if let Some((pid, epoch)) = expected {
            // KIP-360: the caller continues this producer id (or the one
            // before a rotation it never heard of), or it is a zombie.
            let valid = md.producer_epoch == NO_PRODUCER_EPOCH
                || pid == md.producer_id
                || (pid == md.prev_producer_id && epoch_exhausted(epoch));
            if !valid {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match md.state {
            TxnState::PrepareAbort | TxnState::PrepareCommit => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Empty | TxnState::CompleteAbort | TxnState::CompleteCommit => match rotate_to
            {
                Some(new_pid) if md.epoch_exhausted() => Next::Write(
                    md.prepare_producer_id_rotation(new_pid, timeout_ms, now(), expected.is_some()),
                ),
                _ if md.epoch_exhausted() => return Err(ResponseError::ConcurrentTransactions),
                _ => Next::Write(md.prepare_increment_producer_epoch(
                    timeout_ms,
                    expected.map(|(_, e)| e),
                    now(),
                )?),
            },
            TxnState::Ongoing => {
                // Fence the producer of the open transaction and abort it;
                // the caller retries (CONCURRENT_TRANSACTIONS) and then gets
                // the next epoch.
                let fence = md.prepare_fence_producer_epoch();
                md.take_fence(&fence);
                let tv = md.client_tv;
                Next::Fence(md.prepare_abort_or_commit(
                    TxnState::PrepareAbort,
                    tv,
                    NO_PRODUCER_ID,
                    now(),
                ))
            }
            TxnState::Dead | TxnState::PrepareEpochFence => {
                unreachable!("{id} is {:?}, which is never current", md.state)
            }
        }
    };
    match next {
        Next::Write(t) => {
            let (pid, epoch) = (t.producer_id, t.producer_epoch);
            write(state, &part, id, t).await?;
            tracing::info!(
                "initialised transactional id {id}: producer id {pid}, epoch {epoch} \
                 (__transaction_state-{})",
                part.index
            );
            Ok((pid, epoch))
        }
        Next::Fence(t) => {
            match write(state, &part, id, t).await {
                Ok(()) => spawn_completion(state.clone(), part.clone(), id.to_string()),
                Err(e) => {
                    if let Some(md) = part.txns.borrow_mut().get_mut(id) {
                        md.failed_epoch_fence = true;
                    }
                    return Err(e);
                }
            }
            Err(ResponseError::ConcurrentTransactions)
        }
    }
}

/// Check the producer of a request on `id` against the coordinator's.
fn check_producer(md: &TxnMetadata, pid: i64, epoch: i16) -> R<()> {
    if md.producer_id != pid {
        Err(ResponseError::InvalidProducerIdMapping)
    } else if md.producer_epoch != epoch {
        Err(ResponseError::ProducerFenced)
    } else {
        Ok(())
    }
}

/// AddPartitionsToTxn / AddOffsetsToTxn: add `partitions` to the open
/// transaction (starting one if none is open).
pub async fn add_partitions(
    state: &Rc<ShardState>,
    id: &str,
    pid: i64,
    epoch: i16,
    partitions: Vec<Tp>,
    client_tv: i16,
) -> R<()> {
    if id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    let part = state.txn.partition_for(state, id)?;
    let transit = {
        let mut txns = part.txns.borrow_mut();
        let md = txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        check_producer(md, pid, epoch)?;
        if md.pending() || matches!(md.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if md.state == TxnState::Ongoing && partitions.iter().all(|p| md.partitions.contains(p)) {
            return Ok(());
        }
        md.prepare_add_partitions(partitions, now(), client_tv)
    };
    write(state, &part, id, transit).await
}

/// AddPartitionsToTxn v4+ with `VerifyOnly` (KIP-890 part 1, sent by
/// partition leaders): per partition, 0 if it is in the open transaction,
/// TRANSACTION_ABORTABLE if not.
pub fn verify_partitions(
    state: &Rc<ShardState>,
    id: &str,
    pid: i64,
    epoch: i16,
    partitions: &[Tp],
) -> R<Vec<i16>> {
    if id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    let part = state.txn.partition_for(state, id)?;
    let txns = part.txns.borrow();
    let md = txns
        .get(id)
        .ok_or(ResponseError::InvalidProducerIdMapping)?;
    check_producer(md, pid, epoch)?;
    if matches!(md.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
        return Err(ResponseError::ConcurrentTransactions);
    }
    Ok(partitions
        .iter()
        .map(|p| {
            if md.partitions.contains(p) {
                0
            } else {
                TRANSACTION_ABORTABLE
            }
        })
        .collect())
}

/// EndTxn: (producer id, epoch) the producer continues with.
pub async fn end_txn(
    state: &Rc<ShardState>,
    id: &str,
    pid: i64,
    epoch: i16,
    result: TxnResult,
    client_tv: i16,
) -> R<(i64, i16)> {
    if id.is_empty() {
        return Err(ResponseError::InvalidRequest);
    }
    let part = state.txn.partition_for(state, id)?;
    let transit = {
        let mut txns = part.txns.borrow_mut();
        let md = txns
            .get_mut(id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        let v2 = md.client_tv >= 2;
        let retry_on_overflow =
            v2 && md.prev_producer_id == pid && epoch == i16::MAX - 1 && md.producer_epoch == 0;
        let retry_on_bump = md.end_txn_epoch_bumped(epoch);
        let valid_epoch = if v2 {
            match md.state {
                TxnState::Ongoing | TxnState::Empty => epoch == md.producer_epoch,
                TxnState::PrepareCommit | TxnState::PrepareAbort => retry_on_bump,
                TxnState::CompleteCommit | TxnState::CompleteAbort => {
                    retry_on_bump || retry_on_overflow
                }
                TxnState::Dead | TxnState::PrepareEpochFence => epoch == md.producer_epoch,
            }
        } else {
            epoch == md.producer_epoch
        };
        if md.producer_id != pid && !retry_on_overflow {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if !valid_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        if md.pending() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        let done = (md.producer_id, md.producer_epoch);
        match (md.state, result) {
            (TxnState::Ongoing, _) => {
                let next_pid = if client_tv >= 2 && md.epoch_exhausted() {
                    // Rare (every 32k transactions of one id): allocated
                    // below, with the borrow released.
                    None
                } else {
                    Some(NO_PRODUCER_ID)
                };
                match next_pid {
                    Some(next) => {
                        let to = match result {
                            TxnResult::Commit => TxnState::PrepareCommit,
                            TxnResult::Abort => TxnState::PrepareAbort,
                        };
                        Some(md.prepare_abort_or_commit(to, client_tv, next, now()))
                    }
                    None => None,
                }
            }
            (TxnState::CompleteCommit, TxnResult::Commit)
            | (TxnState::CompleteAbort, TxnResult::Abort) => return Ok(done),
            (TxnState::PrepareCommit, TxnResult::Commit)
            | (TxnState::PrepareAbort, TxnResult::Abort) => {
                return Err(ResponseError::ConcurrentTransactions)
            }
            (st, _) => {
                // Rare and fatal for the client: keep what the coordinator
                // knew, to tell a client's mistake from ours.
                tracing::info!(
                    "EndTxn({result:?}) of {id} refused (INVALID_TXN_STATE): it is {st:?}, \
                     producer {}/{} (asked {pid}/{epoch}, transaction version {client_tv}), \
                     {} partitions",
                    md.producer_id,
                    md.producer_epoch,
                    md.partitions.len()
                );
                return Err(ResponseError::InvalidTxnState);
            }
        }
    };
    let transit = match transit {
        Some(t) => t,
        None => {
            let next = new_producer_id(state).await?;
            let mut txns = part.txns.borrow_mut();
            let md = txns.get_mut(id).ok_or(ResponseError::NotCoordinator)?;
            if md.pending() || md.state != TxnState::Ongoing || md.producer_id != pid {
                return Err(ResponseError::ConcurrentTransactions);
            }
            let to = match result {
                TxnResult::Commit => TxnState::PrepareCommit,
                TxnResult::Abort => TxnState::PrepareAbort,
            };
            md.prepare_abort_or_commit(to, client_tv, next, now())
        }
    };
    let answer = (transit.producer_id, transit.producer_epoch);
    write(state, &part, id, transit).await?;
    spawn_completion(state.clone(), part.clone(), id.to_string());
    Ok(answer)
}

/// Abort every transaction of `part` open longer than its timeout,
/// fencing its producer (Kafka's `abortTimedOutTransactions`).
pub async fn abort_timed_out(state: &Rc<ShardState>, part: &Rc<TxnPartition>) {
    let now = now();
    let expired: Vec<String> = part
        .txns
        .borrow()
        .iter()
        .filter(|(_, m)| {
            m.state == TxnState::Ongoing
                && !m.pending()
                && m.start_ms + i64::from(m.timeout_ms) < now
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in expired {
        if part.resigned() {
            return;
        }
        let transit = {
            let mut txns = part.txns.borrow_mut();
            let Some(md) = txns.get_mut(&id) else {
                continue;
            };
            if md.state != TxnState::Ongoing || md.pending() {
                continue;
            }
            let fence = md.prepare_fence_producer_epoch();
            md.take_fence(&fence);
            let tv = md.client_tv;
            md.prepare_abort_or_commit(TxnState::PrepareAbort, tv, NO_PRODUCER_ID, now)
        };
        tracing::info!(
            "aborting the transaction of {id}: open longer than its timeout; its producer is \
             fenced (epoch {})",
            transit.producer_epoch
        );
        match write(state, part, &id, transit).await {
            Ok(()) => spawn_completion(state.clone(), part.clone(), id),
            Err(e) => {
                tracing::warn!("aborting the timed-out transaction of {id}: {e:?}");
                if let Some(md) = part.txns.borrow_mut().get_mut(&id) {
                    md.failed_epoch_fence = true;
                }
            }
        }
    }
}

/// Forget the ids of `part` unused for `transactional_id_expiration_ms`
/// with no transaction open: a tombstone each (Kafka's
/// `removeExpiredTransactionalIds`).
pub async fn expire_ids(state: &Rc<ShardState>, part: &Rc<TxnPartition>) {
    let now = now();
    let after = state.config.transactional_id_expiration_ms;
    let expired: Vec<String> = part
        .txns
        .borrow()
        .iter()
        .filter(|(_, m)| {
            m.state.expiration_allowed() && !m.pending() && m.last_update_ms + after < now
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in expired {
        if part.resigned() {
            return;
        }
        let transit = {
            let mut txns = part.txns.borrow_mut();
            let Some(md) = txns.get_mut(&id) else {
                continue;
            };
            if !md.state.expiration_allowed() || md.pending() {
                continue;
            }
            md.prepare_dead()
        };
        match write(state, part, &id, transit).await {
            Ok(()) => tracing::info!("transactional id {id} expired and was removed"),
            Err(e) => tracing::warn!("removing the expired transactional id {id}: {e:?}"),
        }
    }
}
