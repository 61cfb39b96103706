//! InitProducerId: for idempotent producers a fresh producer id (epoch 0),
//! or an epoch bump for a producer that already has one (KIP-360); for a
//! transactional id, the transaction coordinator's answer (`txn`).

use std::rc::Rc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::model::CLUSTER_NAME;
use crate::acl::{Operation, ResourceType};
use crate::controller::{AllocateProducerId, CONTROLLER_SHARD};
use crate::shard_state::ShardState;

pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let fail = |e: ResponseError| {
        InitProducerIdResponse::default()
            .with_error_code(e.code())
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    // Kafka: a transactional producer needs WRITE on its transactional id;
    // an idempotent one IDEMPOTENT_WRITE on the cluster or (KIP-679) WRITE
    // on some topic.
    let acl = ctx.checker(state);
    match &req.transactional_id {
        Some(id) if !acl.allows(Operation::Write, ResourceType::TransactionalId, id) => {
            return fail(ResponseError::TransactionalIdAuthorizationFailed);
        }
        None if !acl.allows(
            Operation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) && !acl.allows_any(Operation::Write, ResourceType::Topic) =>
        {
            return fail(ResponseError::ClusterAuthorizationFailed);
        }
        _ => {}
    }
    drop(acl);
    if let Some(id) = &req.transactional_id {
        let expected = (req.producer_id.0 >= 0 && req.producer_epoch >= 0)
            .then_some((req.producer_id.0, req.producer_epoch));
        return match super::txn::init_producer_id(state, id, req.transaction_timeout_ms, expected)
            .await
        {
            Ok((pid, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch),
            // Clients before v4 know PRODUCER_FENCED as INVALID_PRODUCER_EPOCH.
            Err(ResponseError::ProducerFenced) if ctx.version < 4 => {
                fail(ResponseError::InvalidProducerEpoch)
            }
            Err(e) => fail(e),
        };
    }
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 {
        if req.producer_epoch >= i16::MAX - 1 {
            // Epoch exhausted: a new id, as Kafka does.
        } else {
            return InitProducerIdResponse::default()
                .with_producer_id(req.producer_id)
                .with_producer_epoch(req.producer_epoch + 1);
        }
    }
    match state.ask(CONTROLLER_SHARD, AllocateProducerId).await {
        Ok(Ok(id)) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Ok(Err(e)) => {
            tracing::warn!("allocating a producer id: {}", e.message);
            fail(ResponseError::KafkaStorageError)
        }
        Err(_) => fail(ResponseError::BrokerNotAvailable),
    }
}
