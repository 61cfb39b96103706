//! The controller: topic creation and deletion, partition expansion, topic
//! config changes and producer-id allocation. All of it runs on shard 0, one
//! operation at a time, so metadata updates never race; the partitions'
//! logs are then opened or deleted on their owner shards.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::ResponseError;
use uuid::Uuid;

use crate::messages::{ShardReply, ShardRequest, ShardWork};
use crate::metadata::placement::{PlaceError, Placer};
use crate::metadata::{
    internal, topic_config, validate_topic_name, ClusterState, Effect, MetadataCommand, TopicMeta,
    PRODUCER_ID_BLOCK,
};
use crate::partitions::PartitionAdmin;
use crate::quorum::core::ProposeError;
use crate::shard_state::ShardState;
use shard::mesh::ShardGone;

pub mod replicas;

pub const CONTROLLER_SHARD: usize = 0;

/// The controller's own state, which only the controller shard has.
pub struct Controller {
    /// Admin operations run one at a time, in arrival order.
    admin_lock: shard::fifo::FifoLock,
    /// The producer ids left in the current block: `(next, end)`.
    producer_ids: RefCell<(i64, i64)>,
    /// The metadata the local logs were last brought in line with
    /// ([`crate::reconcile`]); starts as the state partitions open from.
    pub known: RefCell<Arc<ClusterState>>,
}

impl Controller {
    pub fn new(known: Arc<ClusterState>) -> Self {
        Self {
            admin_lock: shard::fifo::FifoLock::new(),
            producer_ids: RefCell::new((0, 0)),
            known: RefCell::new(known),
        }
    }
}

/// A failed admin operation: a Kafka error code and a message for the client.
#[derive(Debug, Clone)]
pub struct AdminError {
    pub code: i16,
    pub message: String,
}

impl AdminError {
    pub fn new(err: ResponseError, message: impl Into<String>) -> Self {
        Self {
            code: err.code(),
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewTopic {
    pub name: String,
    /// -1: the broker default.
    pub partitions: i32,
    pub replication_factor: i16,
    /// Replicas chosen by the client, by partition (then `partitions` and
    /// `replication_factor` are -1).
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
    /// Created by the broker itself (`__transaction_state`): the one case
    /// where a reserved name may be created.
    pub internal: bool,
}

/// Kafka caps partitions per request far above this; we refuse silly counts.
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;
/// More copies than this is a mistake, not a durability setting.
pub const MAX_REPLICATION_FACTOR: i16 = 16;

/// Check a topic creation without doing it; returns the partition count.
pub fn validate_new_topic(state: &ShardState, t: &NewTopic) -> Result<i32, AdminError> {
    validate_topic_name(&t.name)
        .map_err(|m| AdminError::new(ResponseError::InvalidTopicException, m))?;
    let ours = t.internal && t.name == internal::TRANSACTION_STATE;
    if internal::is_reserved(&t.name) && !ours {
        // Kafka 4.4.0's answer for __cluster_metadata (it would create the
        // others if absent; only the broker creates its internal topics).
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            internal::creation_prohibited(&t.name),
        ));
    }
    let partitions = if !t.assignments.is_empty() {
        t.assignments.len() as i32
    } else if t.partitions == -1 {
        state.config.num_partitions
    } else {
        t.partitions
    };
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            format!("partition count must be between 1 and {MAX_PARTITIONS_PER_TOPIC}, not {partitions}"),
        ));
    }
    if !t.assignments.is_empty() && (t.partitions != -1 || t.replication_factor != -1) {
        // Kafka's words.
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            "Both numPartitions or replicationFactor and replicasAssignments were set. \
             Both cannot be used at the same time.",
        ));
    }
    if t.assignments.is_empty()
        && t.replication_factor != -1
        && !(1..=MAX_REPLICATION_FACTOR).contains(&t.replication_factor)
    {
        return Err(AdminError::new(
            ResponseError::InvalidReplicationFactor,
            format!(
                "replication factor must be between 1 and {MAX_REPLICATION_FACTOR}, not {}",
                t.replication_factor
            ),
        ));
    }
    for (k, v) in &t.configs {
        topic_config::validate(k, v)
            .map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
    }
    if state.metadata.snapshot().topic(&t.name).is_some() {
        return Err(AdminError::new(
            ResponseError::TopicAlreadyExists,
            format!("topic '{}' already exists", t.name),
        ));
    }
    Ok(partitions)
}

/// Create topics (runs on the controller shard).
pub async fn create_topic(
    state: Rc<ShardState>,
    t: NewTopic,
    validate_only: bool,
) -> Result<Arc<TopicMeta>, AdminError> {
    let _guard = admin_turn(&state).await;
    let partitions = validate_new_topic(&state, &t)?;
    if validate_only {
        return Ok(Arc::new(TopicMeta {
            name: t.name,
            id: Uuid::nil(),
            partitions: vec![],
            configs: t.configs,
        }));
    }
    // Placement and the id are decided here, so the command is a value
    // that `apply` turns into the same state wherever it is applied.
    let snap = state.metadata.snapshot();
    let mut placer = placer(&state, &snap);
    let placed = if t.assignments.is_empty() {
        let rf = if t.replication_factor == -1 {
            state.config.default_replication_factor as i16
        } else {
            t.replication_factor
        };
        placer.place(partitions as usize, rf as usize)
    } else {
        placer.assigned(&snap, &t.assignments)
    };
    let create = MetadataCommand::CreateTopic {
        name: t.name.clone(),
        id: Uuid::new_v4(),
        partitions: placed.map_err(placement_error)?,
        configs: t.configs,
    };
    let meta = execute(&state, create).await.map(topic_of)?;
    if let Err(e) = open_here(&state, &meta).await {
        // All or nothing: forget the topic (which closes and deletes what
        // was opened here), so the name is free.
        let name = meta.name.clone();
        let forget = MetadataCommand::DeleteTopic {
            name: name.clone(),
            id: meta.id,
        };
        let forgotten = state
            .metadata
            .execute(forget)
            .await
            .map(drop)
            .map_err(|e| e.to_string());
        crate::reconcile::reconcile(&state).await;
        return Err(rolled_back(
            e,
            forgotten,
            &format!("topic '{name}' was not created"),
        ));
    }
    tracing::info!(
        "created topic {} with {} partition(s)",
        meta.name,
        meta.partitions.len()
    );
    Ok(meta)
}

/// Placement over the cluster's live brokers (this broker alone while it
/// has not registered: a single node's first start).
fn placer(state: &ShardState, snap: &ClusterState) -> Placer {
    Placer::new(snap, (state.config.node_id, state.shards() as u32))
}

fn placement_error(e: PlaceError) -> AdminError {
    match e {
        PlaceError::ReplicationFactor(m) => {
            AdminError::new(ResponseError::InvalidReplicationFactor, m)
        }
        PlaceError::Assignment(m) => AdminError::new(ResponseError::InvalidReplicaAssignment, m),
    }
}

/// Bring this broker's logs in line with the command just applied, and
/// say whether the partitions of `meta` that live here opened.
async fn open_here(state: &Rc<ShardState>, meta: &TopicMeta) -> Result<(), AdminError> {
    let failures = crate::reconcile::reconcile(state).await;
    match failures.into_iter().find(|((t, _), _)| *t == meta.name) {
        None => Ok(()),
        Some(((t, p), why)) => Err(AdminError::new(
            ResponseError::KafkaStorageError,
            describe_open_failure(&format!("{t}-{p}: {why}")),
        )),
    }
}

/// The error of a failed creation whose undo is done (or, if forgetting
/// the metadata entry failed too, says so: the topic can still be deleted).
fn rolled_back(e: AdminError, forgotten: Result<(), String>, what: &str) -> AdminError {
    match forgotten {
        Ok(()) => {
            tracing::warn!("{}; {what}, nothing was left behind", e.message);
            AdminError {
                code: e.code,
                message: format!("{}; {what}, nothing was left behind", e.message),
            }
        }
        Err(m) => {
            tracing::error!(
                "{}; undoing it failed too ({m}); delete it to clean up",
                e.message
            );
            AdminError {
                code: e.code,
                message: format!(
                    "{}; undoing it failed too ({m}): its partitions are closed, delete it to clean up",
                    e.message
                ),
            }
        }
    }
}

/// Send `op` to a partition's owner shard. On this shard it goes straight
/// to the partition manager: through [`ShardState::call`] the controller's
/// own future would contain itself (a controller command opens partitions).
pub async fn ask_owner(
    state: &Rc<ShardState>,
    shard: usize,
    op: PartitionAdmin,
) -> Result<ShardReply, ShardGone> {
    if shard == state.id {
        Ok(state.partitions.handle(op).await)
    } else {
        state
            .mesh
            .call(shard, ShardRequest::PartitionAdmin(Box::new(op)))
            .await
    }
}

/// A partition that failed to open, explained; running out of descriptors
/// says which limit and how to raise it.
fn describe_open_failure(err: &str) -> String {
    // EMFILE (24): this process's limit; ENFILE (23): the system's.
    if err.contains("os error 24") || err.contains("Too many open files") {
        let limit = shard::runtime::nofile_limit()
            .map(|(soft, hard)| format!(" (RLIMIT_NOFILE soft {soft}, hard {hard})"))
            .unwrap_or_default();
        format!(
            "{err}: the broker ran out of file descriptors{limit}; raise the hard limit \
             (`ulimit -Hn`, systemd LimitNOFILE=, /etc/security/limits.conf) and restart, \
             or use fewer partitions"
        )
    } else if err.contains("os error 23") {
        format!("{err}: the system ran out of file descriptors (raise fs.file-max)")
    } else {
        err.to_string()
    }
}

pub async fn delete_topic(state: Rc<ShardState>, name: String) -> Result<Uuid, AdminError> {
    let _guard = admin_turn(&state).await;
    // A reserved name is only deletable as a topic a client made before the
    // names were reserved (an old data dir); never the broker's own
    // `__transaction_state`.
    let absent = state.metadata.snapshot().topic(&name).is_none();
    if internal::is_reserved(&name) && (absent || name == internal::TRANSACTION_STATE) {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            internal::change_prohibited("Deletion", &name),
        ));
    }
    // Admin operations run one at a time, so the topic is still there: a
    // failure now is the metadata write (e.g. a full disk even after the
    // disk reserve was released), answered and logged as what it is.
    let existing = existing_topic(&state, &name)?;
    let delete = MetadataCommand::DeleteTopic {
        name: name.clone(),
        id: existing.id,
    };
    let meta = match state.metadata.execute(delete).await {
        Ok(effect) => topic_of(effect),
        Err(m) => {
            tracing::error!("deleting topic {name}: {m}");
            return Err(admin_error(m));
        }
    };
    // Closes and deletes the replicas here; other brokers do theirs when
    // they apply the deletion.
    crate::reconcile::reconcile(&state).await;
    tracing::info!("deleted topic {name}");
    Ok(meta.id)
}

pub async fn create_partitions(
    state: Rc<ShardState>,
    name: String,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), AdminError> {
    let _guard = admin_turn(&state).await;
    refuse_internal(&name, "Changing the partitions")?;
    let existing = existing_topic(&state, &name)?;
    let current = existing.partitions.len() as i32;
    if count <= current {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            format!(
                "topic '{name}' has {current} partitions; the new count {count} must be larger"
            ),
        ));
    }
    if count > MAX_PARTITIONS_PER_TOPIC {
        return Err(AdminError::new(
            ResponseError::InvalidPartitions,
            format!("at most {MAX_PARTITIONS_PER_TOPIC} partitions"),
        ));
    }
    let snap = state.metadata.snapshot();
    let mut placer = placer(&state, &snap);
    let placed = match assignments {
        Some(a) => {
            if a.len() != (count - current) as usize {
                return Err(AdminError::new(
                    ResponseError::InvalidReplicaAssignment,
                    format!(
                        "{} assignment(s) for {} new partition(s)",
                        a.len(),
                        count - current
                    ),
                ));
            }
            placer.assigned(&snap, &a)
        }
        // New partitions keep the topic's replication factor (Kafka's).
        None => placer.place(
            (count - current) as usize,
            existing.partitions[0].replicas.len(),
        ),
    };
    let placed = placed.map_err(placement_error)?;
    if validate_only {
        return Ok(());
    }
    let grow = MetadataCommand::CreatePartitions {
        name: name.clone(),
        id: existing.id,
        first: current as u32,
        partitions: placed,
    };
    let meta = execute(&state, grow).await.map(topic_of)?;
    if let Err(e) = open_here(&state, &meta).await {
        // All or nothing, as for a new topic: the old partitions stay.
        let shrink = MetadataCommand::TruncatePartitions {
            name: name.clone(),
            id: meta.id,
            count: current as u32,
        };
        let forgotten = state
            .metadata
            .execute(shrink)
            .await
            .map(drop)
            .map_err(|e| e.to_string());
        crate::reconcile::reconcile(&state).await;
        return Err(rolled_back(
            e,
            forgotten,
            &format!("topic '{name}' keeps its {current} partition(s)"),
        ));
    }
    Ok(())
}

/// Replace (`incremental == false`) or patch a topic's config overrides.
/// `changes`: name → Some(value) to set, None to delete.
pub async fn alter_topic_configs(
    state: Rc<ShardState>,
    name: String,
    changes: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> Result<(), AdminError> {
    let _guard = admin_turn(&state).await;
    refuse_internal(&name, "Changing the configs")?;
    let existing = existing_topic(&state, &name)?;
    let mut configs = if incremental {
        existing.configs.clone()
    } else {
        BTreeMap::new()
    };
    for (k, v) in changes {
        match v {
            Some(v) => {
                topic_config::validate(&k, &v)
                    .map_err(|m| AdminError::new(ResponseError::InvalidConfig, m))?;
                configs.insert(k, v);
            }
            None => {
                if topic_config::definition(&k).is_none() {
                    return Err(AdminError::new(
                        ResponseError::InvalidConfig,
                        topic_config::unknown(&k),
                    ));
                }
                configs.remove(&k);
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    let alter = MetadataCommand::AlterTopicConfigs {
        name: name.clone(),
        id: existing.id,
        configs,
    };
    execute(&state, alter).await?;
    crate::reconcile::reconcile(&state).await;
    Ok(())
}

/// A fresh producer id (InitProducerId without a transactional id).
pub async fn allocate_producer_id(state: Rc<ShardState>) -> Result<i64, AdminError> {
    let (next, end) = *state.controller().producer_ids.borrow();
    if next < end {
        state.controller().producer_ids.borrow_mut().0 += 1;
        return Ok(next);
    }
    let _guard = admin_turn(&state).await;
    // Persist the end of the block before handing out any id from it, so a
    // restart never reuses an id; the log decides where the block starts,
    // so brokers asking at once get different blocks.
    let reserve = MetadataCommand::ReserveProducerIds {
        count: PRODUCER_ID_BLOCK,
    };
    let start = match execute(&state, reserve).await? {
        Effect::ProducerIds { start, end } => {
            debug_assert_eq!(end - start, PRODUCER_ID_BLOCK);
            start
        }
        other => unreachable!("allocating producer ids had the effect {other:?}"),
    };
    *state.controller().producer_ids.borrow_mut() = (start + 1, start + PRODUCER_ID_BLOCK);
    Ok(start)
}

/// Apply a metadata change durably; a failure is the broker's storage (the
/// controller checked the command against the state it holds the turn on).
async fn execute(state: &ShardState, cmd: MetadataCommand) -> Result<Effect, AdminError> {
    state.metadata.execute(cmd).await.map_err(admin_error)
}

/// A proposal that did not commit, as the Kafka error a client acts on:
/// no controller (retriable: NOT_CONTROLLER), no answer in time
/// (REQUEST_TIMED_OUT), else the metadata log's storage.
fn admin_error(e: ProposeError) -> AdminError {
    let code = match &e {
        ProposeError::NotLeader { .. } => ResponseError::NotController,
        ProposeError::TimedOut => ResponseError::RequestTimedOut,
        ProposeError::Rejected(_) | ProposeError::Invalid(_) => ResponseError::KafkaStorageError,
    };
    AdminError::new(code, e.to_string())
}

/// The topic a topic command left (or removed).
fn topic_of(effect: Effect) -> Arc<TopicMeta> {
    match effect {
        Effect::Topic(t) | Effect::TopicDeleted(t) => t,
        other => unreachable!("a topic command had the effect {other:?}"),
    }
}

/// Place the group coordinators if nobody has (the first FindCoordinator
/// of the cluster, as Kafka creates `__consumer_offsets` then): over the
/// live brokers, `offsets_topic_replication_factor` replicas capped at
/// their number. Losing a race to another broker's placement is fine.
pub async fn place_coordinators(state: Rc<ShardState>) -> Result<(), AdminError> {
    let _guard = admin_turn(&state).await;
    let snap = state.metadata.snapshot();
    if !snap.coordinators.is_empty() {
        return Ok(());
    }
    let mut placer = placer(&state, &snap);
    let rf = (state.config.offsets_topic_replication_factor as usize).min(placer.live());
    let mut partitions = placer
        .place(state.config.offsets_topic_num_partitions as usize, rf)
        .map_err(placement_error)?;
    // A group's state lives on the shard that coordinates it and is not
    // copied to the other replicas yet: only the leader is in sync, so a
    // coordinator is never moved to a replica without its groups.
    for p in &mut partitions {
        p.isr = vec![p.leader];
    }
    match state
        .metadata
        .execute(MetadataCommand::PlaceCoordinators { partitions })
        .await
    {
        Ok(_) => Ok(()),
        Err(_) if !state.metadata.snapshot().coordinators.is_empty() => Ok(()),
        Err(e) => Err(admin_error(e)),
    }
}

/// UnregisterBroker (decommission): only a fenced broker, so a running
/// one is not pulled out from under its clients.
pub async fn unregister_broker(state: Rc<ShardState>, id: i32) -> Result<(), AdminError> {
    let _guard = admin_turn(&state).await;
    match state.metadata.snapshot().brokers.get(&id) {
        None => {
            return Err(AdminError::new(
                ResponseError::BrokerIdNotRegistered,
                format!("broker {id} is not registered"),
            ))
        }
        Some(b) if !b.fenced => {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!("broker {id} is alive: stop it first (it would register again)"),
            ))
        }
        Some(_) => {}
    }
    execute(&state, MetadataCommand::UnregisterBroker { id }).await?;
    tracing::info!("broker {id} is unregistered");
    Ok(())
}

pub struct UnregisterBroker(pub i32);

impl ShardWork for UnregisterBroker {
    type Out = Result<(), AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        unregister_broker(state, self.0).await
    }
}

pub struct PlaceCoordinators;

impl ShardWork for PlaceCoordinators {
    type Out = Result<(), AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        place_coordinators(state).await
    }
}

/// CreateTopics (and auto-creation), for the controller shard.
pub struct CreateTopic {
    pub topic: NewTopic,
    pub validate_only: bool,
}

impl ShardWork for CreateTopic {
    type Out = Result<Arc<TopicMeta>, AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        create_topic(state, self.topic, self.validate_only).await
    }
}

/// DeleteTopics, for the controller shard.
pub struct DeleteTopic {
    pub name: String,
}

impl ShardWork for DeleteTopic {
    type Out = Result<Uuid, AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        delete_topic(state, self.name).await
    }
}

/// CreatePartitions, for the controller shard.
pub struct CreatePartitions {
    pub name: String,
    pub count: i32,
    /// The new partitions' replicas, if the client chose them.
    pub assignments: Option<Vec<Vec<i32>>>,
    pub validate_only: bool,
}

impl ShardWork for CreatePartitions {
    type Out = Result<(), AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        create_partitions(
            state,
            self.name,
            self.count,
            self.assignments,
            self.validate_only,
        )
        .await
    }
}

/// InitProducerId's new producer id, from the controller shard.
pub struct AllocateProducerId;

impl ShardWork for AllocateProducerId {
    type Out = Result<i64, AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        allocate_producer_id(state).await
    }
}

/// Wait for this operation's turn: admin operations run one at a time, in
/// the order they arrived (a client's pipelined create-then-delete stays so).
pub async fn admin_turn(state: &ShardState) -> shard::fifo::FifoGuard<'_> {
    state.controller().admin_lock.lock().await
}

fn existing_topic(state: &ShardState, name: &str) -> Result<Arc<TopicMeta>, AdminError> {
    state
        .metadata
        .snapshot()
        .topic(name)
        .cloned()
        .ok_or_else(|| {
            AdminError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("unknown topic '{name}'"),
            )
        })
}

/// Kafka 4.4.0 lets a client grow and reconfigure its internal topics;
/// Shardline's internal state is not a topic, so such changes are refused.
fn refuse_internal(name: &str, what: &str) -> Result<(), AdminError> {
    if internal::is_reserved(name) {
        return Err(AdminError::new(
            ResponseError::InvalidRequest,
            internal::change_prohibited(what, name),
        ));
    }
    Ok(())
}
