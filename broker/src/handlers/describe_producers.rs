//! DescribeProducers (KIP-664): the producer state a replica of each
//! partition keeps (epoch, last sequence, last timestamp, the coordinator
//! epoch of its last marker, its open transaction's first offset), as
//! `kafka-transactions.sh describe-producers` and `find-hanging` ask. Kafka
//! answers from any replica, leader or follower (the admin client asks the
//! leader unless told a broker id), so this does too.

use std::rc::Rc;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};
use kafka_protocol::ResponseError;
use shard::log::ActiveProducer;

use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::routing::{scatter, PartitionWork};
use crate::shard_state::ShardState;

/// One partition's answer: an error code, or its producers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Producers {
    pub error: i16,
    pub producers: Vec<ActiveProducer>,
}

impl Default for Producers {
    /// A shard that did not answer (shutdown), or no replica here.
    fn default() -> Self {
        Self::error(ResponseError::NotLeaderOrFollower)
    }
}

impl Producers {
    fn error(e: ResponseError) -> Self {
        Self {
            error: e.code(),
            producers: Vec::new(),
        }
    }
}

/// One partition's DescribeProducers, on the shard that holds its replica.
pub struct ProducersOf(pub String, pub i32);

impl PartitionWork for ProducersOf {
    type Out = Producers;

    async fn run(self, state: Rc<ShardState>) -> Producers {
        let ProducersOf(topic, partition) = self;
        match state.partitions.log(&topic, partition) {
            Some(log) => Producers {
                error: 0,
                producers: log.active_producers(),
            },
            None => Producers::error(ResponseError::NotLeaderOrFollower),
        }
    }
}

pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let snap = state.metadata.snapshot();
    let node = state.config.node_id;
    // One slot per requested partition: an early answer, or None for one
    // that goes to a shard (in `items`' order).
    let mut early = Vec::new();
    let mut items = Vec::new();
    let acl = ctx.checker(state);
    for t in &req.topics {
        let topic = t.name.0.as_str();
        let topic_error = if crate::metadata::validate_topic_name(topic).is_err() {
            Some(ResponseError::InvalidTopicException)
        } else if !acl.allows(Operation::Read, ResourceType::Topic, topic) {
            Some(ResponseError::TopicAuthorizationFailed)
        } else if snap.topic(topic).is_none() {
            Some(ResponseError::UnknownTopicOrPartition)
        } else {
            None
        };
        for &p in &t.partition_indexes {
            if let Some(e) = topic_error {
                early.push(Some(Producers::error(e)));
                continue;
            }
            let meta = snap
                .topic(topic)
                .and_then(|m| usize::try_from(p).ok().and_then(|i| m.partitions.get(i)));
            match meta.map(|m| m.shard_on(node)) {
                None => early.push(Some(Producers::error(
                    ResponseError::UnknownTopicOrPartition,
                ))),
                Some(None) => early.push(Some(Producers::default())),
                Some(Some(shard)) => {
                    items.push((shard as usize, ProducersOf(topic.to_string(), p)));
                    early.push(None);
                }
            }
        }
    }
    drop(acl);
    let mut done = scatter(state, items).await.into_iter();
    let mut results = early
        .into_iter()
        .map(|e| e.unwrap_or_else(|| done.next().expect("one answer per item")));
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&p| {
                    let r = results.next().expect("one result per partition");
                    PartitionResponse::default()
                        .with_partition_index(p)
                        .with_error_code(r.error)
                        .with_active_producers(r.producers.iter().map(producer_state).collect())
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn producer_state(p: &ActiveProducer) -> ProducerState {
    ProducerState::default()
        .with_producer_id(ProducerId(p.producer_id))
        .with_producer_epoch(i32::from(p.producer_epoch))
        .with_last_sequence(p.last_sequence)
        .with_last_timestamp(p.last_timestamp)
        .with_coordinator_epoch(p.coordinator_epoch)
        .with_current_txn_start_offset(p.current_txn_start_offset)
}
