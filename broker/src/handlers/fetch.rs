//! Fetch: read from the owner shards, long-poll until `min_bytes` or
//! `max_wait_ms`, honour `max_bytes` and per-partition limits, and
//! down-convert to magic 0/1 message sets for Fetch v0–v3.
//!
//! Fetch sessions (KIP-227) are answered sessionless (session id 0), which
//! the protocol allows: clients then send full fetch requests.
//!
//! Consumers of Fetch v11+ may read from followers, and leaders send them
//! to one in their rack (KIP-392, `fetch_from_follower`).

use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use futures::future::{select, select_all, Either};
use kafka_protocol::messages::FetchRequest;
use kafka_protocol::ResponseError;
use shard::record;

use super::errors::log_error_code;
use super::fetch_encode::{self, PartitionOut, TopicOut};
use super::fetch_from_follower::{epoch_error, preferred_replica, read_placement, ClientMetadata};
use super::RequestContext;
use crate::acl::model::CLUSTER_NAME;
use crate::acl::{Operation, ResourceType};
use crate::messages::ShardRequest;
use crate::metadata::ClusterState;
use crate::routing::{placement, scatter, PartitionWork, Placement};
use crate::shard_state::ShardState;

/// Longest long-poll we honour, whatever the client asks.
const MAX_WAIT: Duration = Duration::from_secs(30);

struct Wanted {
    topic: String,
    topic_id: uuid::Uuid,
    partition: i32,
    offset: i64,
    /// The leader epoch the fetcher knows (-1: none given).
    leader_epoch: i32,
    max_bytes: usize,
    shard: Option<usize>,
    error: Option<ResponseError>,
}

/// Fetch v4+ `isolation_level`: read_committed consumers read below the
/// last stable offset and are told the aborted transactions.
const READ_COMMITTED: i8 = 1;

pub struct PartitionRead {
    error: i16,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
    /// read_committed: the aborted transactions overlapping `batches`.
    aborted_transactions: Option<Vec<shard::log::AbortedTxn>>,
    batches: Vec<Bytes>,
    /// KIP-392: the replica the consumer should read from instead (-1: none).
    preferred_read_replica: i32,
    /// Read from a replica this broker follows (for the metrics).
    from_follower: bool,
}

/// What a read left undone answers (its owner shard is gone): nothing.
impl Default for PartitionRead {
    fn default() -> Self {
        PartitionRead {
            error: 0,
            high_watermark: 0,
            last_stable_offset: 0,
            log_start_offset: 0,
            aborted_transactions: None,
            batches: vec![],
            preferred_read_replica: -1,
            from_follower: false,
        }
    }
}

impl PartitionRead {
    fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: FetchRequest,
    correlation_id: i32,
) -> Vec<Bytes> {
    let snap = state.metadata.snapshot();
    // A follower's fetch needs CLUSTER_ACTION; a consumer's, READ on each
    // topic (checked before existence, so names do not leak), as in Kafka.
    // The follower's node id: in the request (v0–v14) or its ReplicaState (v15+).
    let replica = if req.replica_state.replica_id.0 >= 0 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0.max(-1)
    };
    let follower = replica >= 0;
    // KIP-392: a consumer of v11+ may read from followers (Kafka's
    // `fetchOnlyLeader` is false for it), and names its rack.
    let client = (!follower && ctx.version >= 11).then(|| ClientMetadata {
        rack: Arc::from(req.rack_id.as_str()),
        listener: Arc::from(ctx.listener.name.as_str()),
    });
    let acl = ctx.checker(state);
    let follower_allowed = follower
        && acl.allows(
            Operation::ClusterAction,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
    let mut wanted = Vec::new();
    for t in &req.topics {
        let (name, id, topic_error) = if ctx.version >= 13 {
            match snap.topic_by_id(&t.topic_id) {
                Some(meta) => (meta.name.clone(), t.topic_id, None),
                None => (
                    String::new(),
                    t.topic_id,
                    Some(ResponseError::UnknownTopicId),
                ),
            }
        } else {
            let name = t.topic.0.to_string();
            let id = snap.topic(&name).map(|m| m.id).unwrap_or_default();
            (name, id, None)
        };
        let topic_error = match topic_error {
            Some(e) => Some(e),
            None if follower && !follower_allowed => Some(ResponseError::TopicAuthorizationFailed),
            None if !follower && !acl.allows(Operation::Read, ResourceType::Topic, &name) => {
                Some(ResponseError::TopicAuthorizationFailed)
            }
            None => None,
        };
        for p in &t.partitions {
            let (shard, error) = match topic_error {
                Some(e) => (None, Some(e)),
                None => match read_placement(
                    &snap,
                    state.config.node_id,
                    &name,
                    p.partition,
                    client.is_some(),
                ) {
                    Ok(shard) => (Some(shard), None),
                    Err(e) => (None, Some(e)),
                },
            };
            wanted.push(Wanted {
                topic: name.clone(),
                topic_id: id,
                partition: p.partition,
                offset: p.fetch_offset,
                leader_epoch: p.current_leader_epoch,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                shard,
                error,
            });
        }
    }
    // v0–v2 have no response-wide limit.
    let max_bytes = if ctx.version >= 3 {
        req.max_bytes.max(0) as usize
    } else {
        usize::MAX
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline =
        Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT);

    // Only a fetch authorized as a follower's is served as one.
    let replica = if follower_allowed { replica } else { -1 };
    // Followers copy everything; v0–v3 have no isolation level (uncommitted).
    let read_committed = replica < 0 && ctx.version >= 4 && req.isolation_level == READ_COMMITTED;
    let reads = loop {
        let reads = read_all(state, &wanted, replica, &client, read_committed).await;
        let total: usize = reads.iter().map(PartitionRead::bytes).sum();
        // As Kafka: an error or a preferred read replica is answered at once.
        let any_error = reads
            .iter()
            .any(|r| r.error != 0 || r.preferred_read_replica >= 0);
        let now = Instant::now();
        if total >= min_bytes.max(1) || any_error || now >= deadline || wanted.is_empty() {
            break reads;
        }
        // `max_pending_fetch_waits`: past it, answer now with what there is,
        // as if the wait had expired (clients simply fetch again).
        let Some(_parked) = Parked::take(state.config.max_pending_fetch_waits) else {
            break reads;
        };
        wait_for_data(
            state,
            &wanted,
            &reads,
            read_committed,
            deadline - now,
            replica >= 0,
        )
        .await;
        if Instant::now() >= deadline {
            // One last look: data may have arrived just at the deadline.
            break read_all(state, &wanted, replica, &client, read_committed).await;
        }
    };

    // Apply the response-wide limit in request order; the first non-empty
    // partition is returned whole so a consumer can always progress (KIP-74).
    let mut budget = max_bytes;
    let mut first = true;
    let mut topics: Vec<TopicOut> = Vec::new();
    let mut from_follower = false;
    for (w, mut r) in wanted.into_iter().zip(reads) {
        from_follower |= r.from_follower;
        if r.preferred_read_replica >= 0 {
            crate::metrics::replication::redirect();
        }
        let size = r.bytes();
        if size > 0 {
            if !first && size > budget {
                r.batches.clear();
            } else {
                budget = budget.saturating_sub(size);
                first = false;
            }
        }
        let partition = PartitionOut {
            partition: w.partition,
            error_code: r.error,
            high_watermark: r.high_watermark,
            last_stable_offset: r.last_stable_offset,
            log_start_offset: r.log_start_offset,
            // Batches dropped by the response limit take their list along.
            aborted_transactions: r.aborted_transactions.map(|aborted| {
                if r.batches.is_empty() {
                    Vec::new()
                } else {
                    aborted
                        .iter()
                        .map(|t| (t.producer_id, t.first_offset))
                        .collect()
                }
            }),
            preferred_read_replica: r.preferred_read_replica,
            records: records_for(ctx.version, r.batches),
        };
        match topics.last_mut() {
            Some(t) if t.name == w.topic && t.topic_id == w.topic_id => {
                t.partitions.push(partition)
            }
            _ => topics.push(TopicOut {
                name: w.topic,
                topic_id: w.topic_id,
                partitions: vec![partition],
            }),
        }
    }
    if from_follower {
        crate::metrics::replication::follower_fetch();
    }
    fetch_encode::encode(ctx.version, correlation_id, topics)
}

thread_local! {
    /// Fetches parked waiting for data on this shard's thread (one thread
    /// per shard, so this is the shard's count).
    static PARKED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// One parked Fetch, counted while it lives.
struct Parked;

impl Parked {
    fn take(limit: usize) -> Option<Parked> {
        PARKED.with(|n| {
            (n.get() < limit).then(|| {
                n.set(n.get() + 1);
                Parked
            })
        })
    }
}

impl Drop for Parked {
    fn drop(&mut self) {
        PARKED.with(|n| {
            debug_assert!(n.get() > 0, "parked fetch count underflow");
            n.set(n.get() - 1)
        });
    }
}

/// Fetch v4+ clients get the stored batches as they are; v0–v3 clients get
/// them down-converted to magic 0/1 message sets.
fn records_for(version: i16, batches: Vec<Bytes>) -> Vec<Bytes> {
    if version > 3 || batches.is_empty() {
        return batches;
    }
    let mut joined = BytesMut::with_capacity(batches.iter().map(Bytes::len).sum());
    for b in &batches {
        joined.extend_from_slice(b);
    }
    let magic = if version <= 1 { 0 } else { 1 };
    match record::batches_to_message_set(&joined, magic) {
        Ok(set) => vec![Bytes::from(set)],
        Err(e) => {
            tracing::error!("down-converting fetched data for a v{version} client: {e}");
            vec![]
        }
    }
}

async fn read_all(
    state: &Rc<ShardState>,
    wanted: &[Wanted],
    replica: i32,
    client: &Option<ClientMetadata>,
    read_committed: bool,
) -> Vec<PartitionRead> {
    let mut reads: Vec<Option<PartitionRead>> = Vec::with_capacity(wanted.len());
    let mut items = Vec::new();
    for w in wanted {
        match (w.error, w.shard) {
            (None, Some(shard)) => {
                items.push((
                    shard,
                    Read {
                        topic: w.topic.clone(),
                        partition: w.partition,
                        offset: w.offset,
                        max_bytes: w.max_bytes,
                        replica,
                        leader_epoch: w.leader_epoch,
                        client: client.clone(),
                        read_committed,
                    },
                ));
                reads.push(None);
            }
            (err, _) => reads.push(Some(PartitionRead::failed(
                err.unwrap_or(ResponseError::UnknownTopicOrPartition),
            ))),
        }
    }
    let results = scatter(state, items).await;
    let mut results = results.into_iter();
    reads
        .into_iter()
        .map(|r| r.unwrap_or_else(|| results.next().expect("one per item")))
        .collect()
}

/// One partition's read, on its owner shard.
pub struct Read {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    /// The follower's node id, or -1 for a consumer.
    replica: i32,
    leader_epoch: i32,
    /// A consumer that may read from followers (Fetch v11+).
    client: Option<ClientMetadata>,
    /// A read_committed consumer (Fetch v4+ `isolation_level` 1): reads
    /// below the last stable offset, on a follower too (its own, from its
    /// high watermark).
    read_committed: bool,
}

impl PartitionWork for Read {
    type Out = PartitionRead;

    async fn run(self, s: Rc<ShardState>) -> PartitionRead {
        let Read {
            topic,
            partition,
            offset,
            max_bytes,
            replica,
            leader_epoch,
            client,
            read_committed,
        } = self;
        let Some(log) = s.partitions.log(&topic, partition) else {
            return PartitionRead::failed(ResponseError::NotLeaderOrFollower);
        };
        if replica >= 0 {
            return follower_read(
                &s,
                log,
                topic,
                partition,
                offset,
                max_bytes,
                replica,
                leader_epoch,
            )
            .await;
        }
        let tp = (topic, partition);
        let from_follower = match s.partitions.leaders().leader_epoch(&tp) {
            Some(epoch) => {
                if let Some(e) = epoch_error(leader_epoch, epoch) {
                    return PartitionRead::failed(e);
                }
                let preferred = client
                    .as_ref()
                    .and_then(|c| preferred_replica(&s, &tp, &log, c, offset));
                if let Some(id) = preferred {
                    // As Kafka: no read, the watermarks, and the replica.
                    let offsets = log.offsets();
                    return PartitionRead {
                        high_watermark: offsets.high_watermark,
                        last_stable_offset: offsets.last_stable_offset,
                        log_start_offset: offsets.log_start_offset,
                        preferred_read_replica: id,
                        ..PartitionRead::default()
                    };
                }
                false
            }
            None => match s.partitions.followed(&tp) {
                // A follower serves consumers that may read from it, below
                // its high watermark (the leader's, as of its last fetch).
                Some((_, epoch)) if client.is_some() => {
                    if let Some(e) = epoch_error(leader_epoch, epoch) {
                        return PartitionRead::failed(e);
                    }
                    true
                }
                Some(_) => return PartitionRead::failed(ResponseError::NotLeaderOrFollower),
                // Neither led nor followed here: a role on its way. If the
                // metadata makes this broker the leader, the log serves
                // what it shows as committed meanwhile (as before roles).
                None => {
                    let snap = s.metadata.snapshot();
                    if placement(&snap, s.config.node_id, &tp.0, tp.1) == Placement::Here(s.id) {
                        false
                    } else {
                        return PartitionRead::failed(ResponseError::NotLeaderOrFollower);
                    }
                }
            },
        };
        let read = if read_committed {
            log.read_committed(offset, max_bytes).await
        } else {
            log.read(offset, max_bytes).await
        };
        match read {
            Ok(out) => PartitionRead {
                error: 0,
                high_watermark: out.high_watermark,
                last_stable_offset: out.last_stable_offset,
                log_start_offset: out.log_start_offset,
                aborted_transactions: out.aborted_transactions,
                batches: out.batches,
                preferred_read_replica: -1,
                from_follower,
            },
            // As Kafka: a partition answered with an error (offset out
            // of range included) carries no watermarks.
            Err(e) => PartitionRead::failed_with(log_error_code(&e)),
        }
    }
}

impl PartitionRead {
    /// An answer with an error carries no watermarks (as Kafka's).
    fn failed(e: ResponseError) -> Self {
        Self::failed_with(e.code())
    }

    fn failed_with(code: i16) -> Self {
        PartitionRead {
            error: code,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            ..PartitionRead::default()
        }
    }
}

/// A follower's read (Kafka's `Partition.fetchRecords` for a replica):
/// only from the leader of the epoch it knows, up to the durable end; what
/// it asked for tells the leader its log end (`replication::progress`),
/// and its answer carries the high watermark that made.
#[allow(clippy::too_many_arguments)]
async fn follower_read(
    s: &Rc<ShardState>,
    log: Rc<shard::log::PartitionLog>,
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    replica: i32,
    leader_epoch: i32,
) -> PartitionRead {
    let tp = (topic, partition);
    let Some(epoch) = s.partitions.leaders().leader_epoch(&tp) else {
        return PartitionRead::failed(ResponseError::NotLeaderOrFollower);
    };
    if let Some(e) = epoch_error(leader_epoch, epoch) {
        return PartitionRead::failed(e);
    }
    // A catching-up replica over its replication quota gets no records
    // this time (and no read is made); its fetch still counts as progress.
    let snap = s.metadata.snapshot();
    let now = crate::replica::now_ms();
    let rates = throttle_rates(s, &snap, &tp, replica)
        .filter(|_| !s.partitions.leaders().in_isr(&tp, replica));
    let allowed = match rates {
        Some(r) => s.partitions.leaders().admit_throttled(replica, r, now),
        None => Some(max_bytes),
    };
    let read = match allowed {
        Some(max_bytes) => log.read_for_follower(offset, max_bytes).await,
        None => Ok(shard::log::ReadOutcome {
            log_start_offset: log.offsets().log_start_offset,
            ..Default::default()
        }),
    };
    match read {
        Ok(out) => {
            if let (Some(r), Some(_)) = (rates, allowed) {
                let bytes = out.batches.iter().map(Bytes::len).sum();
                s.partitions.leaders().record_throttled(replica, r, bytes);
            }
            let live = snap.is_live(replica);
            if let Some(change) = s
                .partitions
                .leaders()
                .on_fetch(&tp, replica, offset, now, live)
            {
                tracing::info!(
                    "{}-{}: follower {replica} caught up; proposing ISR {:?}",
                    tp.0,
                    tp.1,
                    change.isr
                );
                crate::replica::propose(&s.partitions, tp, change);
            }
            PartitionRead {
                error: 0,
                high_watermark: log.high_watermark(),
                last_stable_offset: log.last_stable_offset(),
                log_start_offset: out.log_start_offset,
                batches: out.batches,
                ..PartitionRead::default()
            }
        }
        Err(e) => PartitionRead::failed_with(log_error_code(&e)),
    }
}

/// The replication quotas that apply to `replica` fetching `tp` from this
/// leader (this shard's share of each rate), if the topic's throttled
/// replica lists name it and a rate is set (KIP-73).
fn throttle_rates(
    s: &ShardState,
    snap: &ClusterState,
    tp: &(String, i32),
    replica: i32,
) -> Option<replication::throttle::Rates> {
    use crate::metadata::topic_config::throttles;
    let configs = &snap.topic(&tp.0)?.configs;
    let listed = |key: &str, broker: i32| {
        configs
            .get(key)
            .is_some_and(|list| throttles(list, tp.1, broker))
    };
    let rate = |broker: i32, key: &str| {
        [broker, -1]
            .iter()
            .find_map(|b| snap.broker_configs.get(b)?.get(key)?.parse::<u64>().ok())
            .map(|r| (r / s.config.shards.max(1) as u64).max(1))
    };
    let me = s.config.node_id;
    let rates = replication::throttle::Rates {
        leader: rate(me, "leader.replication.throttled.rate")
            .filter(|_| listed("leader.replication.throttled.replicas", me)),
        follower: rate(replica, "follower.replication.throttled.rate")
            .filter(|_| listed("follower.replication.throttled.replicas", replica)),
    };
    (rates.leader.is_some() || rates.follower.is_some()).then_some(rates)
}

/// Wait until any wanted partition's high watermark passes its fetch
/// offset (data became durable, hence visible), or `timeout`.
///
/// A read_committed fetch waits for the last stable offset to pass its
/// offset instead. That offset moves only when the high watermark does
/// (a marker becomes stable when the high watermark passes it) or the log
/// is reloaded, which wakes the same waiters; so a partition whose read
/// stopped at the last stable offset below the high watermark waits for
/// the high watermark to pass what the read saw, and reads again then.
/// Waiting for the high watermark to pass the fetch offset would return at
/// once and spin until the deadline.
async fn wait_for_data(
    state: &Rc<ShardState>,
    wanted: &[Wanted],
    reads: &[PartitionRead],
    read_committed: bool,
    timeout: Duration,
    replica: bool,
) {
    let mut per_shard: std::collections::BTreeMap<usize, Vec<(String, i32, i64)>> =
        Default::default();
    for (w, r) in wanted.iter().zip(reads) {
        if let (None, Some(shard)) = (w.error, w.shard) {
            let offset = if read_committed {
                w.offset.max(r.high_watermark)
            } else {
                w.offset
            };
            per_shard
                .entry(shard)
                .or_default()
                .push((w.topic.clone(), w.partition, offset));
        }
    }
    if per_shard.is_empty() {
        shard::rt::sleep(timeout).await;
        return;
    }
    let waits: Vec<_> = per_shard
        .into_iter()
        .map(|(shard, parts)| {
            Box::pin(state.call(
                shard,
                ShardRequest::WaitForData {
                    parts,
                    timeout,
                    replica,
                },
            ))
        })
        .collect();
    let timer = Box::pin(shard::rt::sleep(timeout));
    let _ = select(select_all(waits), timer).await;
}

/// On the owner shard: wait for the high watermark of any of `parts` to
/// pass its offset, or `timeout`.
pub(crate) async fn wait_local(
    state: &ShardState,
    parts: Vec<(String, i32, i64)>,
    timeout: Duration,
    replica: bool,
) {
    let mut notified = Vec::new();
    for (topic, partition, offset) in parts {
        if let Some(log) = state.partitions.log(&topic, partition) {
            // Register before checking, so an advance in between is not missed.
            let (n, end) = if replica {
                (log.durable_notified(), log.durable_end())
            } else {
                (log.data_notified(), log.high_watermark())
            };
            if end > offset {
                return;
            }
            notified.push(Box::pin(n));
        }
    }
    if notified.is_empty() {
        shard::rt::sleep(timeout).await;
        return;
    }
    let timer = Box::pin(shard::rt::sleep(timeout));
    match select(select_all(notified), timer).await {
        Either::Left(_) | Either::Right(_) => {}
    }
}

#[cfg(test)]
mod parked_tests {
    use super::Parked;

    #[test]
    fn parked_fetches_are_counted_up_to_the_limit() {
        let a = Parked::take(2).expect("first");
        let b = Parked::take(2).expect("second");
        assert!(Parked::take(2).is_none(), "the third answers at once");
        drop(a);
        let c = Parked::take(2).expect("a slot was freed");
        drop((b, c));
        assert!(Parked::take(1).is_some());
    }
}
