//! DescribeTransactions and ListTransactions (KIP-664): what the
//! coordinators of this broker hold, as `kafka-transactions.sh describe`
//! and `list` (and `find-hanging`) ask. Admin clients send DescribeTransactions
//! to each id's coordinator and ListTransactions to every broker.

use std::collections::BTreeMap;
use std::rc::Rc;

use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as Listed;
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId,
};
use kafka_protocol::ResponseError;

use super::groups::sb;
use super::txn::coordinator_shard;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::messages::ShardWork;
use crate::shard_state::ShardState;
use crate::txn::state::TxnState;

/// One id's state as its coordinator shard has it.
#[derive(Debug, Clone)]
pub struct Described {
    pub state: &'static str,
    pub timeout_ms: i32,
    pub start_ms: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub partitions: Vec<(String, i32)>,
}

pub struct DescribeTxn(pub String);

impl ShardWork for DescribeTxn {
    type Out = Result<Described, ResponseError>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        let part = s.txn.partition_for(&s, &self.0)?;
        let txns = part.txns.borrow();
        match txns.get(&self.0) {
            Some(m) if m.state != TxnState::Dead => Ok(Described {
                state: m.state.name(),
                timeout_ms: m.timeout_ms,
                start_ms: m.start_ms,
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                partitions: m.partitions.iter().cloned().collect(),
            }),
            _ => Err(ResponseError::TransactionalIdNotFound),
        }
    }
}

pub async fn describe_transactions(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut resp = DescribeTransactionsResponse::default();
    for id in req.transactional_ids {
        let name = id.to_string();
        let out = TransactionState::default()
            .with_transactional_id(id)
            .with_transaction_state(sb(""))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        if !ctx.allowed(
            state,
            Operation::Describe,
            ResourceType::TransactionalId,
            &name,
        ) {
            resp.transaction_states.push(
                out.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code()),
            );
            continue;
        }
        let described = match coordinator_shard(state, &name) {
            Err(e) => Err(e),
            Ok(shard) => state
                .ask(shard, DescribeTxn(name.clone()))
                .await
                .unwrap_or(Err(ResponseError::CoordinatorNotAvailable)),
        };
        let d = match described {
            Ok(d) => d,
            Err(e) => {
                resp.transaction_states.push(out.with_error_code(e.code()));
                continue;
            }
        };
        // Kafka leaves out the topics the caller may not DESCRIBE.
        let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        let acl = ctx.checker(state);
        for (t, p) in d.partitions {
            if acl.allows(Operation::Describe, ResourceType::Topic, &t) {
                topics.entry(t).or_default().push(p);
            }
        }
        drop(acl);
        resp.transaction_states.push(
            out.with_transaction_state(sb(d.state))
                .with_transaction_timeout_ms(d.timeout_ms)
                .with_transaction_start_time_ms(d.start_ms)
                .with_producer_id(ProducerId(d.producer_id))
                .with_producer_epoch(d.producer_epoch)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(t, ps)| {
                            TopicData::default()
                                .with_topic(sb(t).into())
                                .with_partitions(ps)
                        })
                        .collect(),
                ),
        );
    }
    resp
}

/// One shard's transactions passing the filters: (id, producer id, state);
/// `Err` while one of its partitions is still loading.
pub struct ListTxns {
    pub states: Vec<TxnState>,
    pub producer_ids: Vec<i64>,
    pub duration_ms: i64,
}

impl ShardWork for ListTxns {
    type Out = Result<Vec<(String, i64, &'static str)>, ResponseError>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        if s.txn.loading() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        let now = crate::replica::now_ms();
        let mut out = Vec::new();
        for part in s.txn.loaded() {
            for (id, m) in part.txns.borrow().iter() {
                let keep = m.state != TxnState::Dead
                    && (self.states.is_empty() || self.states.contains(&m.state))
                    && (self.producer_ids.is_empty() || self.producer_ids.contains(&m.producer_id))
                    // Kafka's test, start -1 (none yet) included.
                    && (self.duration_ms < 0 || now - m.start_ms > self.duration_ms);
                if keep {
                    out.push((id.clone(), m.producer_id, m.state.name()));
                }
            }
        }
        Ok(out)
    }
}

pub async fn list_transactions(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let mut resp = ListTransactionsResponse::default();
    let mut states = Vec::new();
    for f in &req.state_filters {
        match TxnState::from_name(f.as_str()) {
            Some(s) => states.push(s),
            None => resp.unknown_state_filters.push(f.clone()),
        }
    }
    // Only unknown states asked for: nothing can match (Kafka's answer).
    if !req.state_filters.is_empty() && states.is_empty() {
        return resp;
    }
    let producer_ids: Vec<i64> = req.producer_id_filters.iter().map(|p| p.0).collect();
    for shard in 0..state.shards() {
        let work = ListTxns {
            states: states.clone(),
            producer_ids: producer_ids.clone(),
            duration_ms: req.duration_filter,
        };
        match state.ask(shard, work).await {
            Ok(Ok(found)) => {
                for (id, pid, st) in found {
                    if ctx.allowed(
                        state,
                        Operation::Describe,
                        ResourceType::TransactionalId,
                        &id,
                    ) {
                        resp.transaction_states.push(
                            Listed::default()
                                .with_transactional_id(sb(id).into())
                                .with_producer_id(ProducerId(pid))
                                .with_transaction_state(sb(st)),
                        );
                    }
                }
            }
            Ok(Err(e)) => {
                resp.error_code = e.code();
                resp.transaction_states.clear();
                return resp;
            }
            Err(_) => {
                resp.error_code = ResponseError::CoordinatorNotAvailable.code();
                resp.transaction_states.clear();
                return resp;
            }
        }
    }
    resp
}
