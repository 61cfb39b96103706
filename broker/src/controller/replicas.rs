//! Leader elections, replica reassignments and dynamic broker configs, for
//! the controller shard (Kafka's ElectLeaders, AlterPartitionReassignments
//! and the controller's automatic elections). The state changes themselves
//! are `MetadataCommand`s applied by [`crate::metadata::reassignment`];
//! here the controller resolves names, chooses shards for new replicas and
//! maps the outcomes back to partitions.
//!
//! The automatic elections run on every broker's controller shard but act
//! only on the active controller's (the quorum leader), as Kafka's run in
//! its active controller:
//! - **unclean**: after each metadata change, partitions with no leader
//!   whose topic enables `unclean.leader.election.enable` take a live
//!   replica;
//! - **preferred**: every `leader_imbalance_check_interval_seconds` (with
//!   `auto_leader_rebalance_enable`), partitions whose preferred replica is
//!   a live in-sync replica that does not lead get it back.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use kafka_protocol::ResponseError;

use super::{admin_turn, execute, AdminError};
use crate::messages::ShardWork;
use crate::metadata::reassignment::{codes, Election, Move, Outcome, PartitionRef};
use crate::metadata::{placement, topic_config, ClusterState, Effect, MetadataCommand};
use crate::shard_state::ShardState;

/// A partition by name.
pub type Tp = (String, i32);

/// A partition and its target replicas (`None`: cancel its reassignment).
pub type Target = (Tp, Option<Vec<i32>>);

/// The dynamic broker configs Shardline applies (Kafka's replication
/// throttles); `replica.alter.log.dirs.io.max.bytes.per.second` is kept for
/// the tools that set it and has no effect (one log directory per shard).
pub const DYNAMIC_BROKER_CONFIGS: &[&str] = &[
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
    "replica.alter.log.dirs.io.max.bytes.per.second",
];

/// The partitions of `names` that exist, as commands name them; the
/// others get UNKNOWN_TOPIC_OR_PARTITION.
fn resolve(
    snap: &ClusterState,
    wanted: &[Tp],
) -> (Vec<(usize, PartitionRef)>, Vec<Option<Outcome>>) {
    let mut refs = Vec::new();
    let mut results = vec![None; wanted.len()];
    for (i, (topic, partition)) in wanted.iter().enumerate() {
        match snap.topic(topic) {
            Some(t) if *partition >= 0 && (*partition as usize) < t.partitions.len() => {
                refs.push((
                    i,
                    PartitionRef {
                        topic: topic.clone(),
                        id: t.id,
                        partition: *partition,
                    },
                ))
            }
            _ => {
                results[i] = Some((
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(format!("{topic}-{partition} does not exist")),
                ))
            }
        }
    }
    (refs, results)
}

/// Run a command with per-partition outcomes for `refs`, filling `results`.
async fn run_outcomes(
    state: &ShardState,
    cmd: MetadataCommand,
    refs: &[(usize, PartitionRef)],
    results: &mut [Option<Outcome>],
) -> Result<(), AdminError> {
    if refs.is_empty() {
        return Ok(());
    }
    match execute(state, cmd).await? {
        Effect::Outcomes(outcomes) => {
            assert_eq!(outcomes.len(), refs.len(), "one outcome per partition");
            for ((i, _), o) in refs.iter().zip(outcomes) {
                results[*i] = Some(o);
            }
            Ok(())
        }
        other => unreachable!("an election or reassignment had the effect {other:?}"),
    }
}

/// ElectLeaders. `partitions: None` is every partition (Kafka's null
/// list); then only the partitions an election was tried on are reported.
pub async fn elect_leaders(
    state: Rc<ShardState>,
    election: Election,
    partitions: Option<Vec<Tp>>,
) -> Result<Vec<(Tp, Outcome)>, AdminError> {
    let _guard = admin_turn(&state).await;
    let snap = state.metadata.snapshot();
    let all = partitions.is_none();
    let wanted = partitions.unwrap_or_else(|| candidates(&snap, election));
    let (refs, mut results) = resolve(&snap, &wanted);
    let cmd = MetadataCommand::ElectLeaders {
        election,
        partitions: refs.iter().map(|(_, r)| r.clone()).collect(),
    };
    run_outcomes(&state, cmd, &refs, &mut results).await?;
    crate::reconcile::reconcile(&state).await;
    Ok(wanted
        .into_iter()
        .zip(results)
        .map(|(tp, o)| (tp, o.expect("every partition has an outcome")))
        .filter(|(_, o)| !(all && o.0 == codes::ELECTION_NOT_NEEDED))
        .collect())
}

/// The partitions an election of every partition would change.
fn candidates(snap: &ClusterState, election: Election) -> Vec<Tp> {
    let mut out = Vec::new();
    for t in snap.topics.values() {
        for (i, p) in t.partitions.iter().enumerate() {
            let wanted = match election {
                Election::Preferred => {
                    let preferred = p.replicas[0];
                    p.leader != preferred && p.isr.contains(&preferred) && snap.is_live(preferred)
                }
                Election::Unclean => p.leader < 0,
            };
            if wanted {
                out.push((t.name.clone(), i as i32));
            }
        }
    }
    out
}

/// AlterPartitionReassignments: each partition to its target replicas, or
/// `None` to cancel its reassignment.
pub async fn alter_reassignments(
    state: Rc<ShardState>,
    moves: Vec<Target>,
) -> Result<Vec<Outcome>, AdminError> {
    let _guard = admin_turn(&state).await;
    let snap = state.metadata.snapshot();
    let wanted: Vec<Tp> = moves.iter().map(|(tp, _)| tp.clone()).collect();
    let (refs, mut results) = resolve(&snap, &wanted);
    let mut loads: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut planned = Vec::new();
    for (i, r) in &refs {
        let m = match &moves[*i].1 {
            None => Move::Cancel,
            Some(target) => {
                if let Some(b) = target.iter().find(|b| !snap.brokers.contains_key(b)) {
                    results[*i] = Some((
                        codes::INVALID_REPLICA_ASSIGNMENT,
                        Some(format!(
                            "Replica assignment of {}-{} has broker {b}, which is not registered",
                            r.topic, r.partition
                        )),
                    ));
                    continue;
                }
                let p = &snap.topic(&r.topic).expect("resolved").partitions[r.partition as usize];
                let original = p.original_replicas();
                let shards = target
                    .iter()
                    .map(|b| match p.shard_on(*b) {
                        Some(s) if original.contains(b) => s,
                        _ => {
                            let n = snap.brokers[b].shards as usize;
                            let load = loads.entry(*b).or_insert_with(|| snap.shard_load(*b, n));
                            placement::least_loaded(load) as u32
                        }
                    })
                    .collect();
                Move::To {
                    replicas: target.clone(),
                    shards,
                }
            }
        };
        planned.push((*i, r.clone(), m));
    }
    let refs: Vec<(usize, PartitionRef)> =
        planned.iter().map(|(i, r, _)| (*i, r.clone())).collect();
    let cmd = MetadataCommand::Reassign {
        moves: planned.into_iter().map(|(_, r, m)| (r, m)).collect(),
    };
    run_outcomes(&state, cmd, &refs, &mut results).await?;
    crate::reconcile::reconcile(&state).await;
    Ok(results
        .into_iter()
        .map(|o| o.expect("every partition has an outcome"))
        .collect())
}

/// Replace the dynamic configs of `broker` (-1: the cluster default).
pub async fn alter_broker_configs(
    state: Rc<ShardState>,
    broker: i32,
    changes: Vec<(String, Option<String>)>,
    incremental: bool,
    validate_only: bool,
) -> Result<(), AdminError> {
    let _guard = admin_turn(&state).await;
    let snap = state.metadata.snapshot();
    let mut configs = if incremental {
        snap.broker_configs
            .get(&broker)
            .cloned()
            .unwrap_or_default()
    } else {
        BTreeMap::new()
    };
    for (k, v) in changes {
        if !DYNAMIC_BROKER_CONFIGS.contains(&k.as_str()) {
            return Err(AdminError::new(
                ResponseError::InvalidRequest,
                format!(
                    "broker configs are read-only in Shardline but for {}: set {k} in the \
                     config file or on the command line and restart",
                    DYNAMIC_BROKER_CONFIGS.join(", ")
                ),
            ));
        }
        match v {
            Some(v) => {
                match v.trim().parse::<i64>() {
                    Ok(n) if n >= 0 => {}
                    _ => {
                        return Err(AdminError::new(
                            ResponseError::InvalidConfig,
                            format!("{k} must be a number of bytes per second ≥ 0, not '{v}'"),
                        ))
                    }
                }
                configs.insert(k, v.trim().to_string());
            }
            None => {
                configs.remove(&k);
            }
        }
    }
    if validate_only {
        return Ok(());
    }
    execute(
        &state,
        MetadataCommand::AlterBrokerConfigs { broker, configs },
    )
    .await?;
    Ok(())
}

/// Whether this broker is the active controller (leads the metadata log).
fn active(state: &ShardState) -> bool {
    state.metadata.quorum().view().leader == Some(state.config.node_id)
}

/// After a metadata change: unclean elections for offline partitions of
/// topics that allow them (active controller only). Runs in its own task,
/// one at a time: the change its command makes triggers the next look.
pub fn after_change(state: &Rc<ShardState>, busy: &Rc<Cell<bool>>) {
    if busy.get() || !active(state) {
        return;
    }
    let snap = state.metadata.snapshot();
    let offline: Vec<Tp> = candidates(&snap, Election::Unclean)
        .into_iter()
        .filter(|(topic, _)| {
            let t = snap.topic(topic).expect("a candidate's topic exists");
            topic_config::effective("unclean.leader.election.enable", &t.configs, &state.config)
                .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        })
        .filter(|(topic, p)| {
            // Only if a replica could lead: else nothing changes and the
            // next change would try again for nothing.
            let t = snap.topic(topic).expect("a candidate's topic exists");
            t.partitions[*p as usize]
                .replicas
                .iter()
                .any(|r| snap.is_live(*r))
        })
        .collect();
    if offline.is_empty() {
        return;
    }
    busy.set(true);
    let (state, busy) = (state.clone(), busy.clone());
    shard::rt::spawn_detached(async move {
        match elect_leaders(state, Election::Unclean, Some(offline)).await {
            Ok(results) => {
                for ((topic, p), (code, why)) in results {
                    if code == 0 {
                        tracing::warn!(
                            "{topic}-{p}: unclean leader election (unclean.leader.election.enable): \
                             acknowledged records may be lost"
                        );
                    } else {
                        tracing::debug!("{topic}-{p}: no unclean election: {why:?}");
                    }
                }
            }
            Err(e) => tracing::warn!("unclean leader election failed: {}", e.message),
        }
        busy.set(false);
    });
}

/// Preferred-leader balancing (Kafka's `auto.leader.rebalance.enable`),
/// every `leader_imbalance_check_interval_seconds` until the broker stops.
pub async fn balance_leaders(state: Rc<ShardState>) {
    if !state.config.auto_leader_rebalance_enable {
        return;
    }
    let every = Duration::from_secs(state.config.leader_imbalance_check_interval_seconds);
    loop {
        shard::rt::sleep(every).await;
        if !active(&state) {
            continue;
        }
        let snap = state.metadata.snapshot();
        let imbalanced: Vec<Tp> = candidates(&snap, Election::Preferred)
            .into_iter()
            .filter(|(topic, p)| {
                !snap.topic(topic).expect("exists").partitions[*p as usize].reassigning()
            })
            .collect();
        if imbalanced.is_empty() {
            continue;
        }
        match elect_leaders(state.clone(), Election::Preferred, Some(imbalanced)).await {
            Ok(results) => {
                let moved = results.iter().filter(|(_, (code, _))| *code == 0).count();
                if moved > 0 {
                    tracing::info!("{moved} partition(s) led by their preferred replica again");
                }
            }
            Err(e) => tracing::warn!("preferred leader balancing failed: {}", e.message),
        }
    }
}

/// ElectLeaders, for the controller shard.
pub struct ElectLeaders {
    pub election: Election,
    pub partitions: Option<Vec<Tp>>,
}

impl ShardWork for ElectLeaders {
    type Out = Result<Vec<(Tp, Outcome)>, AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        elect_leaders(state, self.election, self.partitions).await
    }
}

/// AlterPartitionReassignments, for the controller shard.
pub struct AlterReassignments(pub Vec<Target>);

impl ShardWork for AlterReassignments {
    type Out = Result<Vec<Outcome>, AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        alter_reassignments(state, self.0).await
    }
}

/// Dynamic broker configs, for the controller shard.
pub struct AlterBrokerConfigs {
    pub broker: i32,
    pub changes: Vec<(String, Option<String>)>,
    pub incremental: bool,
    pub validate_only: bool,
}

impl ShardWork for AlterBrokerConfigs {
    type Out = Result<(), AdminError>;

    async fn run(self, state: Rc<ShardState>) -> Self::Out {
        alter_broker_configs(
            state,
            self.broker,
            self.changes,
            self.incremental,
            self.validate_only,
        )
        .await
    }
}
