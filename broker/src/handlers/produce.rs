//! Produce: validate, convert legacy message sets, append on the owner
//! shards, answer when the flush mode's promise holds.

use std::collections::HashSet;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use shard::log::health::HEALTH;
use shard::log::{AckLevel, LogError};
use shard::record;

use super::errors::log_error_code;
use super::metadata::ensure_topics;
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::metadata::internal::{self, is_reserved};
use crate::routing::{placement, scatter, PartitionWork, Placement};
use crate::shard_state::ShardState;

#[derive(Default)]
pub struct PartitionResult {
    error: i16,
    message: Option<String>,
    base_offset: i64,
    log_append_time: i64,
    log_start_offset: i64,
    /// KIP-467: the records refused, by index in their batch, and why.
    record_errors: Vec<(i32, String)>,
}

impl PartitionResult {
    fn error(err: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error: err.code(),
            message: Some(message.into()),
            base_offset: -1,
            log_append_time: -1,
            log_start_offset: -1,
            record_errors: Vec::new(),
        }
    }
}

/// Records of a Produce request as magic-2 batches: legacy message sets
/// (Produce v0–v2, or magic 0/1 inside later versions) are converted.
fn to_batches(records: &Bytes) -> Result<Bytes, PartitionResult> {
    match record::peek_magic(records) {
        Some(2) => Ok(records.clone()),
        Some(0) | Some(1) => {
            let batches = record::message_set_to_batches(records).map_err(|e| {
                PartitionResult::error(ResponseError::CorruptMessage, e.to_string())
            })?;
            if batches.is_empty() {
                return Err(PartitionResult::error(
                    ResponseError::InvalidRecord,
                    "empty message set",
                ));
            }
            Ok(Bytes::from(batches.concat()))
        }
        Some(m) => Err(PartitionResult::error(
            ResponseError::CorruptMessage,
            format!("unknown magic {m}"),
        )),
        None => Err(PartitionResult::error(
            ResponseError::CorruptMessage,
            "records too short for a batch header",
        )),
    }
}

/// The error message for produce while free space is below the floor, as
/// KAFKA_STORAGE_ERROR: Kafka's answer when a log directory cannot take
/// writes. (Redpanda answers BROKER_NOT_AVAILABLE for its
/// `storage_min_free_bytes`; librdkafka retries that without counting
/// retries, so clients would only ever see a timeout.)
fn low_disk_refusal(state: &ShardState) -> Option<String> {
    if !HEALTH.refusing_writes() {
        return None;
    }
    let space = HEALTH.space()?;
    Some(format!(
        "the disk holding {} has {} bytes free, below the floor of {} bytes \
         (disk_free_min_bytes/disk_free_min_percent): writes are refused until space is freed",
        state.config.data_dir.display(),
        space.free_bytes,
        space.min_free_bytes
    ))
}

/// One partition's append, on its owner shard.
pub struct Append {
    topic: String,
    partition: i32,
    batches: Bytes,
    ack_level: AckLevel,
    /// acks=all waits for the in-sync replicas of a replicated partition,
    /// at most `timeout` (the request's `timeout_ms`).
    acks_all: bool,
    timeout: std::time::Duration,
    /// A transactional producer's request: its transactional id, and
    /// whether the partition is added to the transaction by the broker
    /// (Produce v12, transaction version 2) or only verified (KIP-890).
    txn: Option<Box<(String, bool)>>,
}

impl PartitionWork for Append {
    type Out = PartitionResult;

    async fn run(self, s: Rc<ShardState>) -> PartitionResult {
        let Append {
            topic,
            partition,
            batches,
            ack_level,
            acks_all,
            timeout,
            txn,
        } = self;
        let Some(log) = s.partitions.log(&topic, partition) else {
            return PartitionResult::error(
                ResponseError::NotLeaderOrFollower,
                "partition is not open on its shard",
            );
        };
        // Only a log this shard leads takes produce (the metadata may say
        // this node leads a moment before its role is in place here).
        // acks=all on a replicated partition: refused before the append
        // when the ISR is below min.insync.replicas (Kafka's check).
        let tp = (topic, partition);
        let Some((isr, replicas)) = s.partitions.leaders().isr_and_replicas(&tp) else {
            return PartitionResult::error(
                ResponseError::NotLeaderOrFollower,
                "this broker does not lead the partition (yet)",
            );
        };
        let replicated = match acks_all.then_some((isr, replicas)) {
            Some((isr, replicas)) if replicas > 1 => {
                let min_isr = min_insync_replicas(&s, &tp.0);
                if isr < min_isr {
                    return PartitionResult::error(
                        ResponseError::NotEnoughReplicas,
                        format!(
                            "{}-{} has {isr} in-sync replica(s), below min.insync.replicas={min_isr}",
                            tp.0, tp.1
                        ),
                    );
                }
                Some(min_isr)
            }
            _ => None,
        };
        // A transactional producer's batches to this partition are verified
        // and appended one at a time, in arrival order (`AppendGates`).
        let txn_producer = txn.as_ref().and_then(|_| {
            let first = record::BatchView::parse(&batches).ok()?;
            (first.is_transactional() && first.producer_id() >= 0).then(|| first.producer_id())
        });
        let appended = match (txn, txn_producer) {
            (Some(txn), Some(pid)) => {
                let append = async {
                    if let Some(refused) = verify_txn(&s, &log, &tp, &batches, &txn).await {
                        return Err(refused);
                    }
                    Ok(log.append(batches, ack_level).await)
                };
                match s.txn.appends.in_order(&tp.0, tp.1, pid, append).await {
                    Ok(appended) => appended,
                    Err(refused) => return refused,
                }
            }
            _ => log.append(batches, ack_level).await,
        };
        let appended = match (appended, replicated) {
            (Ok(info), Some(min_isr)) => {
                match await_replicas(&s, &log, &tp, info, min_isr, timeout).await {
                    Ok(info) => Ok(info),
                    Err(Refusal::Log(e)) => Err(e),
                    Err(Refusal::Replication(error, message)) => {
                        return PartitionResult::error(error, message);
                    }
                }
            }
            (other, _) => other,
        };
        match appended {
            Ok(info) => PartitionResult {
                error: 0,
                message: None,
                base_offset: info.base_offset,
                log_append_time: info.log_append_time,
                log_start_offset: info.log_start_offset,
                record_errors: Vec::new(),
            },
            Err(e) => {
                tracing::debug!("produce to {}-{} refused: {e}", tp.0, tp.1);
                let error = log_error_code(&e);
                // As Kafka's ReplicaManager: refusals of the records
                // themselves (sequence, epoch, timestamps, KIP-467 record
                // errors) carry the log start offset; size, corruption
                // and storage errors not.
                let no_log_start = [
                    ResponseError::MessageTooLarge,
                    ResponseError::RecordListTooLarge,
                    ResponseError::CorruptMessage,
                    ResponseError::KafkaStorageError,
                ];
                let record_refusal = matches!(e, LogError::RecordErrors { .. });
                let log_start_offset =
                    if !record_refusal && no_log_start.iter().any(|r| r.code() == error) {
                        -1
                    } else {
                        log.offsets().log_start_offset
                    };
                let message = Some(e.to_string());
                let record_errors = match e {
                    LogError::RecordErrors { errors, .. } => errors,
                    _ => Vec::new(),
                };
                PartitionResult {
                    error,
                    message,
                    base_offset: -1,
                    log_append_time: -1,
                    log_start_offset,
                    record_errors,
                }
            }
        }
    }
}

/// How long a partition leader keeps asking the coordinator to add a
/// partition while the producer's previous transaction completes, and how
/// long it waits between asks (Kafka 4.x's
/// `add.partitions.to.txn.retry.backoff.max.ms` and
/// `add.partitions.to.txn.retry.backoff.ms` defaults).
const ADD_RETRY_FOR: std::time::Duration = std::time::Duration::from_millis(100);
const ADD_RETRY_BACKOFF: std::time::Duration = std::time::Duration::from_millis(20);

/// KIP-890: a transactional batch that would start a transaction on this
/// partition (its producer has none open here) is first checked with the
/// transaction coordinator, which adds the partition (`add`, transaction
/// version 2) or confirms it was added. `Some` is the refusal to answer.
/// Kafka's translation (`verification_refusal`).
async fn verify_txn(
    s: &Rc<ShardState>,
    log: &shard::log::PartitionLog,
    tp: &(String, i32),
    batches: &Bytes,
    txn: &(String, bool),
) -> Option<PartitionResult> {
    let first = record::BatchView::parse(batches).ok()?;
    if !first.is_transactional() || first.producer_id() < 0 {
        return None;
    }
    let (pid, epoch) = (first.producer_id(), first.producer_epoch());
    if log.has_ongoing_transaction(pid, epoch) {
        return None;
    }
    let (id, add) = txn;
    // Boxed: the coordinator's own writes append through `Append` too,
    // which makes these futures recursive in type (never in fact: the
    // coordinator's batches carry no transactional id).
    let started = std::time::Instant::now();
    let code = loop {
        let code = Box::pin(crate::txn::verify::add_or_verify(
            s, id, pid, epoch, &tp.0, tp.1, *add,
        ))
        .await;
        let concurrent = code == ResponseError::ConcurrentTransactions.code();
        if !(*add && concurrent) || started.elapsed() + ADD_RETRY_BACKOFF > ADD_RETRY_FOR {
            break code;
        }
        shard::rt::sleep(ADD_RETRY_BACKOFF).await;
    };
    if code == 0 {
        // Kafka 4.x (`checkSequence`): with transaction version 2 a
        // producer with no batch here starts at sequence 0. Otherwise the
        // next batch of a transaction whose first one was just refused
        // (CONCURRENT_TRANSACTIONS) is taken for the first, the refused one
        // is out of order when retried, and the transaction stalls until
        // it times out.
        if *add && first.base_sequence() != 0 && log.producer_has_no_batches(pid) {
            return Some(PartitionResult::error(
                ResponseError::OutOfOrderSequenceNumber,
                format!(
                    "out of order sequence: producer {pid} has no batch in {}-{} yet; \
                     expected 0, got {}",
                    tp.0,
                    tp.1,
                    first.base_sequence()
                ),
            ));
        }
        return None;
    }
    let (code, message) = verification_refusal(code, *add);
    Some(PartitionResult {
        error: code,
        message: Some(message.unwrap_or_else(|| {
            format!(
                "the transaction coordinator refused {}-{} for producer {pid} epoch {epoch}",
                tp.0, tp.1
            )
        })),
        base_offset: -1,
        log_append_time: -1,
        log_start_offset: -1,
        record_errors: Vec::new(),
    })
}

/// The produce error for a coordinator's refusal to verify (or add) a
/// partition, as Kafka's ReplicaManager and AddPartitionsToTxnManager
/// translate it: coordinator errors a retry cures become
/// NOT_ENOUGH_REPLICAS, which old clients retry; PRODUCER_FENCED becomes
/// INVALID_PRODUCER_EPOCH, which producers expect from a produce (clients
/// before 2.7 know no PRODUCER_FENCED and raise an unknown server error);
/// TRANSACTION_ABORTABLE becomes INVALID_TXN_STATE for verification only;
/// CONCURRENT_TRANSACTIONS stays for an add (transaction version 2).
/// (code, message where Kafka gives one of its own).
fn verification_refusal(code: i16, add: bool) -> (i16, Option<String>) {
    let error = ResponseError::try_from_code(code);
    if add && error == Some(ResponseError::ConcurrentTransactions) {
        // Still so after `ADD_RETRY_FOR`: transaction version 2 clients
        // retry CONCURRENT_TRANSACTIONS themselves, as from Kafka 4.x.
        return (
            code,
            Some("the producer's previous transaction is still being completed".to_string()),
        );
    }
    let retriable = matches!(
        error,
        Some(
            ResponseError::ConcurrentTransactions
                | ResponseError::NetworkException
                | ResponseError::CoordinatorLoadInProgress
                | ResponseError::CoordinatorNotAvailable
                | ResponseError::NotCoordinator
        )
    );
    if retriable {
        (
            ResponseError::NotEnoughReplicas.code(),
            Some(format!(
                "Unable to verify the partition has been added to the transaction. Underlying \
                 error: {error:?}"
            )),
        )
    } else if error == Some(ResponseError::ProducerFenced) {
        (ResponseError::InvalidProducerEpoch.code(), None)
    } else if code == crate::txn::ops::TRANSACTION_ABORTABLE && !add {
        (
            ResponseError::InvalidTxnState.code(),
            Some("Partition was not added to the transaction".to_string()),
        )
    } else {
        (code, None)
    }
}

/// An acks=all append of a batch the broker writes itself (a
/// coordinator's record in its internal topic), on this shard, which owns
/// the partition: (error code, message), 0 once the in-sync replicas (at
/// least `min.insync.replicas`) have it.
pub(crate) async fn append_replicated(
    s: &Rc<ShardState>,
    topic: &str,
    partition: i32,
    batches: Bytes,
    timeout: std::time::Duration,
) -> (i16, Option<String>) {
    let append = Append {
        topic: topic.to_string(),
        partition,
        batches,
        ack_level: AckLevel::Durable,
        acks_all: true,
        timeout,
        txn: None,
    };
    let r = append.run(s.clone()).await;
    (r.error, r.message)
}

/// Why an acks=all append was not acknowledged.
pub(crate) enum Refusal {
    Log(LogError),
    Replication(ResponseError, String),
}

/// The topic's `min.insync.replicas` (1 unless set).
pub(crate) fn min_insync_replicas(s: &ShardState, topic: &str) -> usize {
    s.metadata
        .snapshot()
        .topic(topic)
        .and_then(|t| t.configs.get("min.insync.replicas")?.parse::<usize>().ok())
        .unwrap_or(1)
        .max(1)
}

/// acks=all on a replicated partition (Kafka's DelayedProduce): answered
/// once the high watermark passes the batch, which is when every in-sync
/// replica has it; NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR shrank below
/// `min_isr` on the way, REQUEST_TIMED_OUT at `timeout`,
/// NOT_LEADER_OR_FOLLOWER if leadership moved meanwhile.
pub(crate) async fn await_replicas(
    s: &ShardState,
    log: &shard::log::PartitionLog,
    tp: &(String, i32),
    info: shard::log::AppendInfo,
    min_isr: usize,
    timeout: std::time::Duration,
) -> Result<shard::log::AppendInfo, Refusal> {
    use shard::log::HighWatermarkWait;
    let deadline = std::time::Instant::now() + timeout;
    let epoch = s.partitions.leaders().leader_epoch(tp);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let changed = s.partitions.leaders().changed();
        let waited = log
            .wait_high_watermark(info.last_offset, left, changed)
            .await
            .map_err(Refusal::Log)?;
        let now_epoch = s.partitions.leaders().leader_epoch(tp);
        if now_epoch.is_none() || now_epoch != epoch {
            return Err(Refusal::Replication(
                ResponseError::NotLeaderOrFollower,
                format!(
                    "leadership of {}-{} moved before the replicas had the batch",
                    tp.0, tp.1
                ),
            ));
        }
        match waited {
            HighWatermarkWait::Reached => {
                let isr = s
                    .partitions
                    .leaders()
                    .isr_and_replicas(tp)
                    .map_or(0, |(isr, _)| isr);
                if isr < min_isr {
                    return Err(Refusal::Replication(
                        ResponseError::NotEnoughReplicasAfterAppend,
                        format!(
                            "written, but {}-{} has {isr} in-sync replica(s), below \
                             min.insync.replicas={min_isr}",
                            tp.0, tp.1
                        ),
                    ));
                }
                return Ok(info);
            }
            HighWatermarkWait::TimedOut => {
                return Err(Refusal::Replication(
                    ResponseError::RequestTimedOut,
                    format!(
                        "the in-sync replicas of {}-{} did not all have the batch within {} ms",
                        tp.0,
                        tp.1,
                        timeout.as_millis()
                    ),
                ));
            }
            HighWatermarkWait::Interrupted => continue, // the ISR changed: look again
        }
    }
}

/// Append a Produce request's batches. `Ok(None)`: acks=0, nothing to
/// answer. `Err(why)`: an acks=0 request failed, and the connection is
/// closed (with `why` logged), as Kafka does.
pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> Result<Option<ProduceResponse>, String> {
    let acks = req.acks;
    let ack_level = if acks == 0 {
        AckLevel::None
    } else {
        AckLevel::Durable
    };
    // WRITE on each topic (unauthorized ones are neither created nor
    // written), and WRITE on the transactional id if there is one.
    let acl = ctx.checker(state);
    let txn_denied = req
        .transactional_id
        .as_ref()
        .is_some_and(|id| !acl.allows(Operation::Write, ResourceType::TransactionalId, id));
    let denied: HashSet<&str> = req
        .topic_data
        .iter()
        .map(|t| t.name.0.as_str())
        .filter(|n| !acl.allows(Operation::Write, ResourceType::Topic, n))
        .collect();
    drop(acl);
    let names: Vec<String> = req
        .topic_data
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| !txn_denied && !denied.contains(n.as_str()) && !is_reserved(n))
        .collect();
    let snap = ensure_topics(state, ctx, &names, state.config.auto_create_topics_enable).await;

    // Below the free-space floor every write is refused (one atomic load,
    // published by the disk monitor thread).
    let low_disk = low_disk_refusal(state);
    // Work items in request order; invalid ones answered without a shard trip.
    let mut early: Vec<Option<PartitionResult>> = Vec::new();
    let mut items = Vec::new();
    for t in &req.topic_data {
        let topic = t.name.0.to_string();
        for p in &t.partition_data {
            let outcome = if txn_denied {
                Err(PartitionResult::error(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    "not allowed to WRITE the transactional id",
                ))
            } else if denied.contains(topic.as_str()) {
                Err(PartitionResult::error(
                    ResponseError::TopicAuthorizationFailed,
                    format!("not allowed to WRITE topic {topic}"),
                ))
            } else if is_reserved(&topic) {
                // Kafka 4.4.0 answers INVALID_TOPIC_EXCEPTION (never auto-creating).
                Err(PartitionResult::error(
                    ResponseError::InvalidTopicException,
                    internal::append_prohibited(&topic),
                ))
            } else if !(-1..=1).contains(&acks) {
                Err(PartitionResult::error(
                    ResponseError::InvalidRequiredAcks,
                    format!("acks={acks} is not -1, 0 or 1"),
                ))
            } else if let Placement::Elsewhere =
                placement(&snap, state.config.node_id, &topic, p.index)
            {
                // Clients refresh their metadata and go to the leader.
                Err(PartitionResult::error(
                    ResponseError::NotLeaderOrFollower,
                    format!(
                        "this broker ({}) does not lead {topic}-{}",
                        state.config.node_id, p.index
                    ),
                ))
            } else if let Placement::Here(shard) =
                placement(&snap, state.config.node_id, &topic, p.index)
            {
                match p.records.as_ref().map(to_batches) {
                    Some(Ok(_)) if low_disk.is_some() => {
                        HEALTH.count_refused_write();
                        Err(PartitionResult::error(
                            ResponseError::KafkaStorageError,
                            low_disk.clone().unwrap_or_default(),
                        ))
                    }
                    None => Err(PartitionResult::error(
                        ResponseError::InvalidRecord,
                        "null records",
                    )),
                    Some(Err(e)) => Err(e),
                    Some(Ok(batches)) => Ok((
                        shard,
                        Append {
                            topic: topic.clone(),
                            partition: p.index,
                            batches,
                            ack_level,
                            acks_all: acks == -1,
                            timeout: std::time::Duration::from_millis(req.timeout_ms.max(0) as u64),
                            txn: req
                                .transactional_id
                                .as_ref()
                                .map(|id| Box::new((id.to_string(), ctx.wire_version >= 12))),
                        },
                    )),
                }
            } else {
                Err(PartitionResult::error(
                    ResponseError::UnknownTopicOrPartition,
                    format!("{topic}-{} does not exist", p.index),
                ))
            };
            match outcome {
                Ok(item) => {
                    items.push(item);
                    early.push(None);
                }
                Err(r) => early.push(Some(r)),
            }
        }
    }
    let appended = scatter(state, items).await;
    let mut appended = appended.into_iter();
    let mut results = early
        .into_iter()
        .map(|e| e.unwrap_or_else(|| appended.next().expect("one result per item")));
    let mut resp = ProduceResponse::default();
    for t in req.topic_data {
        let mut topic = TopicProduceResponse::default().with_name(t.name);
        for p in t.partition_data {
            let r = results.next().expect("one result per partition");
            if acks == 0 && r.error != 0 {
                // Kafka: no response is expected, so the connection is
                // closed instead; the client notices, refreshes its
                // metadata and reconnects.
                let name = ResponseError::try_from_code(r.error)
                    .map_or_else(|| format!("error {}", r.error), |e| format!("{e:?}"));
                return Err(format!(
                    "acks=0 produce to {}-{} failed with {name}{}",
                    topic.name.0,
                    p.index,
                    r.message.map(|m| format!(": {m}")).unwrap_or_default()
                ));
            }
            let mut pr = PartitionProduceResponse::default()
                .with_index(p.index)
                .with_error_code(r.error)
                .with_base_offset(r.base_offset)
                .with_log_append_time_ms(r.log_append_time)
                .with_log_start_offset(r.log_start_offset);
            if r.error != 0 && ctx.version >= 8 {
                pr = pr
                    .with_error_message(r.message.map(StrBytes::from_string))
                    .with_record_errors(
                        r.record_errors
                            .into_iter()
                            .map(|(index, message)| {
                                BatchIndexAndErrorMessage::default()
                                    .with_batch_index(index)
                                    .with_batch_index_error_message(Some(StrBytes::from_string(
                                        message,
                                    )))
                            })
                            .collect(),
                    );
            }
            topic.partition_responses.push(pr);
        }
        resp.responses.push(topic);
    }
    Ok((acks != 0).then_some(resp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinator_refusals_become_the_errors_producers_expect() {
        let code = |e: ResponseError| e.code();
        // A fenced zombie's produce: INVALID_PRODUCER_EPOCH, which every
        // transactional client (0.11 on) raises as fencing; PRODUCER_FENCED
        // is unknown to clients before 2.7.
        for add in [false, true] {
            assert_eq!(
                verification_refusal(code(ResponseError::ProducerFenced), add).0,
                code(ResponseError::InvalidProducerEpoch)
            );
            assert_eq!(
                verification_refusal(code(ResponseError::InvalidTxnState), add).0,
                code(ResponseError::InvalidTxnState)
            );
        }
        // Verifying (version 0/1 clients): retry through NOT_ENOUGH_REPLICAS,
        // which old clients retry; adding (version 2): as it is.
        let concurrent = code(ResponseError::ConcurrentTransactions);
        assert_eq!(
            verification_refusal(concurrent, false).0,
            code(ResponseError::NotEnoughReplicas)
        );
        assert_eq!(verification_refusal(concurrent, true).0, concurrent);
        let abortable = crate::txn::ops::TRANSACTION_ABORTABLE;
        assert_eq!(
            verification_refusal(abortable, false).0,
            code(ResponseError::InvalidTxnState)
        );
        assert_eq!(verification_refusal(abortable, true).0, abortable);
        let (retry, message) = verification_refusal(code(ResponseError::NotCoordinator), false);
        assert_eq!(retry, code(ResponseError::NotEnoughReplicas));
        assert!(message.unwrap().contains("NotCoordinator"));
        assert_eq!(
            verification_refusal(code(ResponseError::InvalidProducerIdMapping), false),
            (code(ResponseError::InvalidProducerIdMapping), None)
        );
    }
}
