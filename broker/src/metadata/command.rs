//! Metadata changes as commands, applied by a pure function.
//!
//! Every change to [`ClusterState`] is a [`MetadataCommand`] value applied by
//! [`ClusterState::apply`], which does no I/O and reads no clock or random
//! number: whatever a change needs that is not in the state (a topic id, the
//! shard of each new partition) is decided by the controller before it
//! builds the command. So the same commands replayed on the same state give
//! the same state — what a replicated metadata log (KRaft's model) needs —
//! and a roll-back is one more command (the inverse), not a closure.
//!
//! `apply` checks the command against the state and the invariants before
//! changing anything: a rejected command leaves the state as it was.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{BrokerMeta, ClusterState, PartitionMeta, TopicMeta};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetadataCommand {
    /// A new topic with all its partitions placed (Kafka's TopicRecord plus
    /// PartitionRecords plus ConfigRecords).
    CreateTopic {
        name: String,
        id: Uuid,
        partitions: Vec<PartitionMeta>,
        configs: BTreeMap<String, String>,
    },
    /// Forget a topic (Kafka's RemoveTopicRecord); also the inverse of `CreateTopic`.
    DeleteTopic { name: String, id: Uuid },
    /// Append partitions `first..first + partitions.len()` to a topic.
    CreatePartitions {
        name: String,
        id: Uuid,
        first: u32,
        partitions: Vec<PartitionMeta>,
    },
    /// Keep only the first `count` partitions: the inverse of
    /// `CreatePartitions` when opening the new ones failed (Kafka never
    /// shrinks a topic, and neither does anything else here).
    TruncatePartitions { name: String, id: Uuid, count: u32 },
    /// Replace a topic's config overrides with `configs` (the controller
    /// resolves incremental changes against the current overrides).
    AlterTopicConfigs {
        name: String,
        id: Uuid,
        configs: BTreeMap<String, String>,
    },
    /// Reserve producer ids up to `block_end` (Kafka's ProducerIdsRecord):
    /// persisted before any id of the block is handed out. Written by single
    /// nodes before `ReserveProducerIds`; still applied from their logs.
    AllocateProducerIds { block_end: i64 },
    /// Reserve the next `count` producer ids, wherever the block ends now
    /// (any broker may ask; concurrent asks get consecutive blocks).
    ReserveProducerIds { count: i64 },
    /// Name the cluster: the first command of a new metadata log, proposed
    /// by its first leader (Kafka formats each node's storage with it).
    SetClusterId { cluster_id: String },
    /// A broker (re)registers (Kafka's RegisterBrokerRecord); it starts
    /// fenced. `epoch` is ignored: the state assigns the next one.
    RegisterBroker(BrokerMeta),
    /// The active controller lost the broker's heartbeats.
    FenceBroker { id: i32, epoch: i64 },
    /// The active controller heard the broker's first heartbeat.
    UnfenceBroker { id: i32, epoch: i64 },
    /// Remove a broker from the cluster (decommission).
    UnregisterBroker { id: i32 },
    /// Place the group coordinators (`__consumer_offsets`' partitions);
    /// refused once they are placed.
    PlaceCoordinators { partitions: Vec<PartitionMeta> },
    /// ACLs, SCRAM credentials, client quotas (see [`super::security`]).
    Security(super::security::SecurityCommand),
    /// A partition's leader changes its in-sync replicas (Kafka's
    /// AlterPartition). Applied only if `leader` still leads in
    /// `leader_epoch` and the partition is still at `partition_epoch` (a
    /// change computed from an older state is refused); a member added must
    /// be a live broker.
    AlterPartition {
        topic: String,
        id: Uuid,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// Elect leaders (Kafka's ElectLeaders; the controller's automatic
    /// preferred-leader balancing and unclean elections too). Each
    /// partition gets its own outcome.
    ElectLeaders {
        election: super::reassignment::Election,
        partitions: Vec<super::reassignment::PartitionRef>,
    },
    /// Start, replace or cancel reassignments (Kafka's
    /// AlterPartitionReassignments). Each partition gets its own outcome.
    Reassign {
        moves: Vec<(super::reassignment::PartitionRef, super::reassignment::Move)>,
    },
    /// Replace the dynamic configs of broker `broker` (-1: the cluster-wide
    /// default); the controller resolves incremental changes.
    AlterBrokerConfigs {
        broker: i32,
        configs: BTreeMap<String, String>,
    },
    /// Alert rules, silences and alert transitions (see [`super::alerts`]).
    Alerts(super::alerts::AlertCommand),
}

/// What an applied command changed, for the controller's next steps.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// The topic as it is after the command.
    Topic(Arc<TopicMeta>),
    /// The topic as it was before it was deleted.
    TopicDeleted(Arc<TopicMeta>),
    /// Producer ids `start..end` are reserved.
    ProducerIds {
        start: i64,
        end: i64,
    },
    /// The cluster has its id.
    ClusterId,
    /// The broker's registration epoch.
    BrokerRegistered {
        epoch: i64,
    },
    /// A broker's state changed; so did the leaders of `moved` partitions.
    BrokerChanged {
        moved: usize,
    },
    /// The coordinators are placed.
    CoordinatorsPlaced,
    /// The partition's new ISR is committed, at this partition epoch.
    PartitionAltered {
        partition_epoch: i32,
    },
    Security(super::security::SecurityEffect),
    /// Per-partition outcomes of an election or reassignment command, in
    /// the order it named them.
    Outcomes(Vec<super::reassignment::Outcome>),
    /// The broker configs are replaced.
    BrokerConfigs,
    /// The alerting state changed.
    Alerts,
}

impl ClusterState {
    /// Apply `cmd` (see the module doc). `shards` is this broker's shard
    /// count: every partition must be placed on one of them.
    pub fn apply(&mut self, cmd: &MetadataCommand, shards: usize) -> Result<Effect, String> {
        let effect = match cmd {
            MetadataCommand::CreateTopic {
                name,
                id,
                partitions,
                configs,
            } => {
                if self.topics.contains_key(name) {
                    return Err(format!("topic '{name}' already exists"));
                }
                if id.is_nil() || self.topic_by_id(id).is_some() {
                    return Err(format!("topic id {id} of '{name}' is not unique"));
                }
                if partitions.is_empty() {
                    return Err(format!("topic '{name}' needs at least one partition"));
                }
                for p in partitions {
                    self.check_new_partition(p, shards)?;
                }
                let t = Arc::new(TopicMeta {
                    name: name.clone(),
                    id: *id,
                    partitions: partitions.clone(),
                    configs: configs.clone(),
                });
                self.insert_topic(t.clone());
                Effect::Topic(t)
            }
            MetadataCommand::DeleteTopic { name, id } => {
                self.existing(name, id)?;
                let t = self.topics.remove(name).expect("checked above");
                self.by_id.remove(id);
                Effect::TopicDeleted(t)
            }
            MetadataCommand::CreatePartitions {
                name,
                id,
                first,
                partitions,
            } => {
                let old = self.existing(name, id)?;
                if *first as usize != old.partitions.len() {
                    // Partition numbers are dense: new ones follow the last.
                    return Err(format!(
                        "topic '{name}' has {} partitions; new ones cannot start at {first}",
                        old.partitions.len()
                    ));
                }
                if partitions.is_empty() {
                    return Err(format!("no partitions to add to '{name}'"));
                }
                for p in partitions {
                    self.check_new_partition(p, shards)?;
                }
                let mut t = (*old).clone();
                t.partitions.extend(partitions.iter().cloned());
                let t = Arc::new(t);
                self.insert_topic(t.clone());
                Effect::Topic(t)
            }
            MetadataCommand::TruncatePartitions { name, id, count } => {
                let old = self.existing(name, id)?;
                if *count == 0 || *count as usize > old.partitions.len() {
                    return Err(format!(
                        "topic '{name}' has {} partitions; cannot keep {count}",
                        old.partitions.len()
                    ));
                }
                let mut t = (*old).clone();
                t.partitions.truncate(*count as usize);
                let t = Arc::new(t);
                self.insert_topic(t.clone());
                Effect::Topic(t)
            }
            MetadataCommand::AlterTopicConfigs { name, id, configs } => {
                let old = self.existing(name, id)?;
                let mut t = (*old).clone();
                t.configs = configs.clone();
                let t = Arc::new(t);
                self.insert_topic(t.clone());
                Effect::Topic(t)
            }
            MetadataCommand::AllocateProducerIds { block_end } => {
                let start = self.producer_id_block_end;
                if *block_end <= start {
                    // Ids are never reused: the reserved range only grows.
                    return Err(format!(
                        "producer id block end {block_end} is not past {start}"
                    ));
                }
                self.producer_id_block_end = *block_end;
                Effect::ProducerIds {
                    start,
                    end: *block_end,
                }
            }
            MetadataCommand::ReserveProducerIds { count } => {
                if *count <= 0 || *count > 1_000_000 {
                    return Err(format!("cannot reserve {count} producer ids"));
                }
                let start = self.producer_id_block_end;
                self.producer_id_block_end = start + count;
                Effect::ProducerIds {
                    start,
                    end: start + count,
                }
            }
            MetadataCommand::SetClusterId { cluster_id } => {
                if cluster_id.is_empty() {
                    return Err("a cluster id cannot be empty".into());
                }
                if !self.cluster_id.is_empty() && &self.cluster_id != cluster_id {
                    // Only the first one counts: a second leader racing to
                    // name a new log loses to whichever committed first.
                    return Err(format!("the cluster is already named {}", self.cluster_id));
                }
                self.cluster_id = cluster_id.clone();
                Effect::ClusterId
            }
            MetadataCommand::RegisterBroker(b) => Effect::BrokerRegistered {
                epoch: self.register_broker(b.clone())?,
            },
            MetadataCommand::FenceBroker { id, epoch } => Effect::BrokerChanged {
                moved: self.fence_broker(*id, *epoch)?,
            },
            MetadataCommand::UnfenceBroker { id, epoch } => Effect::BrokerChanged {
                moved: self.unfence_broker(*id, *epoch)?,
            },
            MetadataCommand::UnregisterBroker { id } => Effect::BrokerChanged {
                moved: self.unregister_broker(*id)?,
            },
            MetadataCommand::PlaceCoordinators { partitions } => {
                if !self.coordinators.is_empty() {
                    return Err("the group coordinators are placed already".into());
                }
                if partitions.is_empty() {
                    return Err("no coordinator partitions to place".into());
                }
                for p in partitions {
                    self.check_new_partition(p, shards)?;
                }
                self.coordinators = partitions.clone();
                Effect::CoordinatorsPlaced
            }
            MetadataCommand::Security(cmd) => self.security.apply(cmd)?,
            MetadataCommand::AlterPartition {
                topic,
                id,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let old = self.existing(topic, id)?;
                let Some(p) = old.partitions.get(*partition as usize) else {
                    return Err(format!("'{topic}' has no partition {partition}"));
                };
                if p.leader != *leader || p.leader_epoch != *leader_epoch {
                    return Err(format!(
                        "FENCED_LEADER_EPOCH: {topic}-{partition} is led by {} in epoch {}, \
                         not by {leader} in epoch {leader_epoch}",
                        p.leader, p.leader_epoch
                    ));
                }
                if p.partition_epoch != *partition_epoch {
                    return Err(format!(
                        "INVALID_UPDATE_VERSION: {topic}-{partition} is at partition epoch {}, \
                         not {partition_epoch}",
                        p.partition_epoch
                    ));
                }
                if let Some(r) = isr
                    .iter()
                    .find(|r| !p.isr.contains(r) && !self.is_live(**r))
                {
                    return Err(format!(
                        "INELIGIBLE_REPLICA: broker {r} is not live and cannot join the ISR of \
                         {topic}-{partition}"
                    ));
                }
                let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
                let mut t = (*old).clone();
                let p = &mut t.partitions[*partition as usize];
                p.isr = isr.clone();
                p.partition_epoch += 1;
                // The last target replica in sync finishes a reassignment.
                super::reassignment::complete_if_in_sync(p, &live);
                // The shape (ISR among replicas, leader in it, no repeats).
                check_partition(p, shards)?;
                let partition_epoch = p.partition_epoch;
                self.insert_topic(Arc::new(t));
                Effect::PartitionAltered { partition_epoch }
            }
            MetadataCommand::ElectLeaders {
                election,
                partitions,
            } => Effect::Outcomes(self.elect_leaders(*election, partitions)),
            MetadataCommand::Reassign { moves } => Effect::Outcomes(
                moves
                    .iter()
                    .map(|(r, m)| self.reassign(r, m, shards))
                    .collect(),
            ),
            MetadataCommand::AlterBrokerConfigs { broker, configs } => {
                if *broker < -1 {
                    return Err(format!("broker id {broker} is negative"));
                }
                if configs.is_empty() {
                    self.broker_configs.remove(broker);
                } else {
                    self.broker_configs.insert(*broker, configs.clone());
                }
                Effect::BrokerConfigs
            }
            MetadataCommand::Alerts(cmd) => {
                std::sync::Arc::make_mut(&mut self.alerts).apply(cmd)?;
                Effect::Alerts
            }
        };
        debug_assert_eq!(self.check_invariants(shards), Ok(()));
        Ok(effect)
    }

    /// The whole state's invariants (what `apply` keeps true): the name and
    /// id indexes agree, ids are unique, every partition is well placed.
    pub fn check_invariants(&self, shards: usize) -> Result<(), String> {
        if self.by_id.len() != self.topics.len() {
            return Err(format!(
                "{} topics but {} distinct ids",
                self.topics.len(),
                self.by_id.len()
            ));
        }
        for (name, t) in &self.topics {
            if &t.name != name || self.by_id.get(&t.id) != Some(name) {
                return Err(format!("topic '{name}' is indexed wrongly"));
            }
            for p in &t.partitions {
                check_partition(p, shards)?;
            }
        }
        for p in &self.coordinators {
            check_partition(p, shards)?;
        }
        for (id, b) in &self.brokers {
            if *id != b.id || b.epoch >= self.next_broker_epoch {
                return Err(format!("broker {id} is recorded wrongly: {b:?}"));
            }
        }
        Ok(())
    }

    /// The topic `name` if its id is `id` (a command names both, so one
    /// meant for a deleted topic cannot hit a new one of the same name).
    fn existing(&self, name: &str, id: &Uuid) -> Result<Arc<TopicMeta>, String> {
        match self.topics.get(name) {
            Some(t) if t.id == *id => Ok(t.clone()),
            Some(t) => Err(format!("topic '{name}' has id {}, not {id}", t.id)),
            None => Err(format!("unknown topic '{name}'")),
        }
    }

    /// Put a topic in place, keeping the id index; a topic that replaces
    /// one of the same id keeps its partitions' leader epochs monotonic.
    fn insert_topic(&mut self, t: Arc<TopicMeta>) {
        if let Some(old) = self.topics.get(&t.name) {
            debug_assert_eq!(old.id, t.id, "a topic keeps its id");
            for (before, after) in old.partitions.iter().zip(&t.partitions) {
                assert!(
                    after.leader_epoch >= before.leader_epoch,
                    "{}: leader epoch went back from {} to {}",
                    t.name,
                    before.leader_epoch,
                    after.leader_epoch
                );
            }
        }
        self.by_id.insert(t.id, t.name.clone());
        self.topics.insert(t.name.clone(), t);
    }
}

impl ClusterState {
    /// A new partition: well formed, and each replica on a shard its
    /// broker has, if the broker is registered (a single node places its
    /// first partitions before it registers).
    fn check_new_partition(&self, p: &PartitionMeta, shards: usize) -> Result<(), String> {
        check_partition(p, shards)?;
        if p.leader < 0 {
            return Err("a new partition needs a leader".into());
        }
        for (node, shard) in p.replicas.iter().zip(&p.shards) {
            if let Some(b) = self.brokers.get(node) {
                if *shard >= b.shards {
                    return Err(format!(
                        "replica on broker {node} placed on shard {shard} of its {}",
                        b.shards
                    ));
                }
            }
        }
        Ok(())
    }
}

/// One partition's placement: each replica on a shard, led by one of its
/// in-sync replicas (or by none: offline), replicas distinct, with an
/// in-sync set among them.
fn check_partition(p: &PartitionMeta, shards: usize) -> Result<(), String> {
    if p.shards.len() != p.replicas.len() {
        return Err(format!(
            "{} replica(s) but {} shard(s) for them",
            p.replicas.len(),
            p.shards.len()
        ));
    }
    if let Some(s) = p.shards.iter().find(|s| **s as usize >= shards) {
        return Err(format!("partition placed on shard {s} of {shards}"));
    }
    if p.leader_epoch < 0 {
        return Err(format!("leader epoch {} is negative", p.leader_epoch));
    }
    if p.isr.is_empty() {
        return Err("the in-sync set is empty".into());
    }
    if p.leader != -1 && (!p.replicas.contains(&p.leader) || !p.isr.contains(&p.leader)) {
        return Err(format!(
            "leader {} is not among the in-sync replicas {:?} of {:?}",
            p.leader, p.isr, p.replicas
        ));
    }
    let mut seen = p.replicas.clone();
    seen.sort_unstable();
    seen.dedup();
    let mut isr = p.isr.clone();
    isr.sort_unstable();
    isr.dedup();
    if p.adding
        .iter()
        .chain(&p.removing)
        .any(|r| !p.replicas.contains(r))
        || p.adding.iter().any(|r| p.removing.contains(r))
    {
        return Err(format!(
            "a reassignment adds {:?} and removes {:?} of replicas {:?}",
            p.adding, p.removing, p.replicas
        ));
    }
    if seen.len() != p.replicas.len()
        || isr.len() != p.isr.len()
        || p.isr.iter().any(|r| !p.replicas.contains(r))
    {
        return Err(format!(
            "replicas {:?} repeat a node, or the in-sync set {:?} is not among them",
            p.replicas, p.isr
        ));
    }
    Ok(())
}
