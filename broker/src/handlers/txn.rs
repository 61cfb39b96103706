//! The client-facing transaction APIs: InitProducerId with a transactional
//! id, AddPartitionsToTxn (v0–3 from producers, v4+ batched from brokers,
//! KIP-890) and EndTxn. Each is authorized here (as Kafka's `KafkaApis`)
//! and then sent to the shard of this broker that coordinates the id (the
//! owner of its `__transaction_state` partition), which answers
//! NOT_COORDINATOR if this broker does not lead that partition.

use std::rc::Rc;

use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse,
    TransactionalId,
};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::messages::ShardWork;
use crate::metadata::internal::TRANSACTION_STATE;
use crate::shard_state::ShardState;
use crate::txn::ops;
use crate::txn::state::{TxnPartition, TxnResult};

/// The shard of this broker coordinating `id`, or the error to answer.
pub fn coordinator_shard(state: &ShardState, id: &str) -> Result<usize, ResponseError> {
    let snap = state.metadata.snapshot();
    let node = state.config.node_id;
    let Some(topic) = snap.topic(TRANSACTION_STATE) else {
        return Err(ResponseError::NotCoordinator);
    };
    let p = crate::txn::partition_for(id, topic.partitions.len() as i32);
    let meta = &topic.partitions[p as usize];
    if meta.leader != node {
        return Err(ResponseError::NotCoordinator);
    }
    meta.shard_on(node)
        .map(|s| s as usize)
        .ok_or(ResponseError::NotCoordinator)
}

/// Run `work` on the coordinating shard; its error if there is none.
async fn on_coordinator<W, T>(state: &Rc<ShardState>, id: &str, work: W) -> Result<T, ResponseError>
where
    W: crate::messages::Asked<Out = Result<T, ResponseError>>,
{
    let shard = coordinator_shard(state, id)?;
    state
        .ask(shard, work)
        .await
        .unwrap_or(Err(ResponseError::CoordinatorNotAvailable))
}

// ------------------------------------------------------------ InitProducerId
pub struct InitTxnProducer {
    pub id: String,
    pub timeout_ms: i32,
    pub expected: Option<(i64, i16)>,
}

impl ShardWork for InitTxnProducer {
    type Out = Result<(i64, i16), ResponseError>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        ops::init_producer_id(&s, &self.id, self.timeout_ms, self.expected).await
    }
}

/// InitProducerId for a transactional id (WRITE on it checked by the caller).
pub async fn init_producer_id(
    state: &Rc<ShardState>,
    id: &str,
    timeout_ms: i32,
    expected: Option<(i64, i16)>,
) -> Result<(i64, i16), ResponseError> {
    let work = InitTxnProducer {
        id: id.to_string(),
        timeout_ms,
        expected,
    };
    on_coordinator(state, id, work).await
}

// --------------------------------------------------------- AddPartitionsToTxn
pub struct AddTxnPartitions {
    pub id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub partitions: Vec<TxnPartition>,
    pub verify_only: bool,
    pub client_tv: i16,
}

impl ShardWork for AddTxnPartitions {
    /// Per partition (in request order): its error code, 0 = added (or,
    /// verifying, in the transaction).
    type Out = Result<Vec<i16>, ResponseError>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        if self.verify_only {
            return ops::verify_partitions(
                &s,
                &self.id,
                self.producer_id,
                self.epoch,
                &self.partitions,
            );
        }
        let n = self.partitions.len();
        ops::add_partitions(
            &s,
            &self.id,
            self.producer_id,
            self.epoch,
            self.partitions,
            self.client_tv,
        )
        .await
        .map(|()| vec![0; n])
    }
}

pub async fn add_partitions_to_txn(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let mut resp = AddPartitionsToTxnResponse::default();
    if ctx.version <= 3 {
        let one = Txn {
            id: req.v3_and_below_transactional_id,
            producer_id: req.v3_and_below_producer_id.0,
            epoch: req.v3_and_below_producer_epoch,
            verify_only: false,
            topics: req.v3_and_below_topics,
        };
        resp.results_by_topic_v3_and_below = add_one(state, ctx, one, 0).await;
        return resp;
    }
    // v4+ is broker to broker (partition leaders verifying for KIP-890):
    // CLUSTER_ACTION on the cluster, as Kafka requires.
    if !ctx.cluster_allowed(state, Operation::ClusterAction) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return resp;
    }
    let client_tv = if ctx.version >= 5 { 2 } else { 1 };
    for t in req.transactions {
        let id = t.transactional_id.clone();
        let one = Txn {
            id: t.transactional_id,
            producer_id: t.producer_id.0,
            epoch: t.producer_epoch,
            verify_only: t.verify_only,
            topics: t.topics,
        };
        let topic_results = add_one(state, ctx, one, client_tv).await;
        resp.results_by_transaction.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(id)
                .with_topic_results(topic_results),
        );
    }
    resp
}

struct Txn {
    id: TransactionalId,
    producer_id: i64,
    epoch: i16,
    verify_only: bool,
    topics: Vec<AddPartitionsToTxnTopic>,
}

/// One transaction's partitions: authorized and checked here, then added
/// (or verified) by the coordinator; an error that is not a partition's
/// own is every partition's, and partitions left out because of another's
/// error are OPERATION_NOT_ATTEMPTED (Kafka's answer).
async fn add_one(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    t: Txn,
    client_tv: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let id = t.id.to_string();
    let all: Vec<(String, i32)> = t
        .topics
        .iter()
        .flat_map(|topic| {
            let name = topic.name.0.to_string();
            topic.partitions.iter().map(move |p| (name.clone(), *p))
        })
        .collect();
    let answer = |codes: &dyn Fn(&(String, i32)) -> i16| -> Vec<AddPartitionsToTxnTopicResult> {
        let mut out: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
        for tp in &all {
            let r = AddPartitionsToTxnPartitionResult::default()
                .with_partition_index(tp.1)
                .with_partition_error_code(codes(tp));
            match out.iter_mut().find(|x| x.name.0.as_str() == tp.0) {
                Some(x) => x.results_by_partition.push(r),
                None => out.push(
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(super::groups::sb(tp.0.clone()).into())
                        .with_results_by_partition(vec![r]),
                ),
            }
        }
        out
    };
    if !ctx.allowed(state, Operation::Write, ResourceType::TransactionalId, &id) {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return answer(&|_| code);
    }
    let snap = state.metadata.snapshot();
    let acl = ctx.checker(state);
    let mut refused: Vec<((String, i32), ResponseError)> = Vec::new();
    let offsets_partitions = super::txn_offsets::offsets_partitions(state) as i32;
    for tp in &all {
        if ctx.version >= 4 && tp.0 == crate::metadata::internal::CONSUMER_OFFSETS {
            // A group coordinator adding its offsets partition (KIP-890
            // part 2: TxnOffsetCommit v5); the caller is a broker.
            if !(0..offsets_partitions).contains(&tp.1) {
                refused.push((tp.clone(), ResponseError::UnknownTopicOrPartition));
            }
            continue;
        }
        // A client may not write the internal topics (nor add them).
        if crate::metadata::internal::is_reserved(&tp.0)
            || !acl.allows(Operation::Write, ResourceType::Topic, &tp.0)
        {
            refused.push((tp.clone(), ResponseError::TopicAuthorizationFailed));
        } else if snap
            .topic(&tp.0)
            .is_none_or(|m| tp.1 < 0 || tp.1 as usize >= m.partitions.len())
        {
            refused.push((tp.clone(), ResponseError::UnknownTopicOrPartition));
        }
    }
    drop(acl);
    if !refused.is_empty() {
        let not_attempted = ResponseError::OperationNotAttempted.code();
        return answer(&|tp| {
            refused
                .iter()
                .find(|(r, _)| r == tp)
                .map_or(not_attempted, |(_, e)| e.code())
        });
    }
    let work = AddTxnPartitions {
        id: id.clone(),
        producer_id: t.producer_id,
        epoch: t.epoch,
        partitions: all.clone(),
        verify_only: t.verify_only,
        client_tv,
    };
    match on_coordinator(state, &id, work).await {
        Ok(per) => answer(&|tp| {
            let i = all
                .iter()
                .position(|x| x == tp)
                .expect("a requested partition");
            per[i]
        }),
        Err(e) => {
            // Clients older than v4 know PRODUCER_FENCED as
            // INVALID_PRODUCER_EPOCH (Kafka maps it so).
            let e = if e == ResponseError::ProducerFenced && ctx.version < 2 {
                ResponseError::InvalidProducerEpoch
            } else {
                e
            };
            answer(&|_| e.code())
        }
    }
}

// ------------------------------------------------------------------- EndTxn
pub struct EndTxn {
    pub id: String,
    pub producer_id: i64,
    pub epoch: i16,
    pub commit: bool,
    pub client_tv: i16,
}

impl ShardWork for EndTxn {
    type Out = Result<(i64, i16), ResponseError>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        let result = if self.commit {
            TxnResult::Commit
        } else {
            TxnResult::Abort
        };
        ops::end_txn(
            &s,
            &self.id,
            self.producer_id,
            self.epoch,
            result,
            self.client_tv,
        )
        .await
    }
}

/// EndTxn: the answer, and the producer id and epoch to continue with
/// (transaction version 2 bumps the epoch at every end; -1 on errors).
pub async fn end_txn(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: EndTxnRequest,
) -> (EndTxnResponse, (i64, i16)) {
    let id = req.transactional_id.to_string();
    let resp = EndTxnResponse::default();
    let none = (-1, -1);
    if !ctx.allowed(state, Operation::Write, ResourceType::TransactionalId, &id) {
        let code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return (resp.with_error_code(code), none);
    }
    let work = EndTxn {
        id: id.clone(),
        producer_id: req.producer_id.0,
        epoch: req.producer_epoch,
        commit: req.committed,
        client_tv: if ctx.wire_version >= 5 { 2 } else { 0 },
    };
    match on_coordinator(state, &id, work).await {
        Ok(producer) => (resp, producer),
        Err(e) => {
            let e = if e == ResponseError::ProducerFenced && ctx.version < 2 {
                ResponseError::InvalidProducerEpoch
            } else {
                e
            };
            (resp.with_error_code(e.code()), none)
        }
    }
}

/// The EndTxn response frame. v5 (KIP-890 part 2) adds `ProducerId` and
/// `ProducerEpoch` after `ErrorCode`, which kafka-protocol 0.15 does not
/// know: that body is written here (flexible, no tagged fields).
pub fn encode_end_txn(
    ctx: &RequestContext,
    correlation_id: i32,
    resp: EndTxnResponse,
    (producer_id, epoch): (i64, i16),
) -> super::Reply {
    use bytes::BufMut;
    if ctx.wire_version < 5 {
        return super::encode_response(
            ctx,
            correlation_id,
            kafka_protocol::messages::ResponseKind::EndTxn(resp),
        );
    }
    let mut out = bytes::BytesMut::with_capacity(32);
    out.put_i32(0); // size, filled in by finish_frame
    out.put_i32(correlation_id);
    out.put_u8(0); // response header v1: no tagged fields
    out.put_i32(resp.throttle_time_ms);
    out.put_i16(resp.error_code);
    out.put_i64(producer_id);
    out.put_i16(epoch);
    out.put_u8(0); // no tagged fields
    super::Reply::Frame(super::finish_frame(out))
}
