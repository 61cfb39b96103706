//! DeleteRecords: move a partition's log start offset forward on its owner
//! shard (offset -1 = the high watermark); whole segments below it go.

use std::rc::Rc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};
use kafka_protocol::ResponseError;

use super::errors::log_error_code;
use super::RequestContext;
use crate::routing::{placement, scatter, PartitionWork, Placement};
use crate::shard_state::ShardState;

/// Outcome for one partition: error code and the new low watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    pub error: i16,
    pub low_watermark: i64,
}

impl Default for Deleted {
    /// A shard that did not answer (shutdown).
    fn default() -> Self {
        Self::error(ResponseError::NotLeaderOrFollower)
    }
}

impl Deleted {
    fn error(e: ResponseError) -> Self {
        Self {
            error: e.code(),
            low_watermark: -1,
        }
    }
}

/// One partition's DeleteRecords (topic, partition, offset), on its owner shard.
pub struct DeleteBefore(String, i32, i64);

impl PartitionWork for DeleteBefore {
    type Out = Deleted;

    async fn run(self, state: Rc<ShardState>) -> Deleted {
        let DeleteBefore(topic, partition, offset) = self;
        delete_on_owner(state, topic, partition, offset).await
    }
}

async fn delete_on_owner(
    state: Rc<ShardState>,
    topic: String,
    partition: i32,
    offset: i64,
) -> Deleted {
    let Some(log) = state.partitions.log(&topic, partition) else {
        return Deleted::error(ResponseError::NotLeaderOrFollower);
    };
    match log.delete_records_before(offset).await {
        Ok(low_watermark) => {
            tracing::info!("{topic}-{partition}: records before {low_watermark} deleted");
            Deleted {
                error: 0,
                low_watermark,
            }
        }
        Err(e) => {
            tracing::debug!("delete records in {topic}-{partition} before {offset}: {e}");
            // As Kafka: an error (offset beyond the high watermark
            // included) is answered with low watermark -1.
            Deleted {
                error: log_error_code(&e),
                low_watermark: -1,
            }
        }
    }
}

pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let snap = state.metadata.snapshot();
    let mut early = Vec::new();
    let mut items = Vec::new();
    let acl = ctx.checker(state);
    for t in &req.topics {
        let topic = t.name.0.to_string();
        let authorized = acl.allows(
            crate::acl::Operation::Delete,
            crate::acl::ResourceType::Topic,
            &topic,
        );
        for p in &t.partitions {
            if !authorized {
                early.push(Some(Deleted::error(
                    ResponseError::TopicAuthorizationFailed,
                )));
                continue;
            }
            // Kafka 4.4.0 answers INVALID_TOPIC_EXCEPTION for internal topics.
            if crate::metadata::internal::is_reserved(&topic) {
                early.push(Some(Deleted::error(ResponseError::InvalidTopicException)));
                continue;
            }
            match placement(&snap, state.config.node_id, &topic, p.partition_index) {
                Placement::Elsewhere => {
                    early.push(Some(Deleted::error(ResponseError::NotLeaderOrFollower)))
                }
                Placement::Here(shard) => {
                    items.push((
                        shard,
                        DeleteBefore(topic.clone(), p.partition_index, p.offset),
                    ));
                    early.push(None);
                }
                Placement::Unknown => {
                    early.push(Some(Deleted::error(ResponseError::UnknownTopicOrPartition)))
                }
            }
        }
    }
    drop(acl);
    let done = scatter(state, items).await;
    let mut done = done.into_iter();
    let results: Vec<Deleted> = early
        .into_iter()
        .map(|e| e.unwrap_or_else(|| done.next().expect("one per item")))
        .collect();
    build_response(&req, &results)
}

/// The response for `req`, one result per requested partition in order.
pub fn build_response(req: &DeleteRecordsRequest, results: &[Deleted]) -> DeleteRecordsResponse {
    let mut results = results.iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            let r = results.next().copied().unwrap_or_default();
                            DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(r.error)
                                .with_low_watermark(r.low_watermark)
                        })
                        .collect(),
                )
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}
