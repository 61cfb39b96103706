//! Cluster metadata of a single node: topics, their partitions' owning
//! shards, topic config overrides, and the producer-id counter.
//!
//! One immutable snapshot is shared by all shards behind an `Arc`; readers
//! take a clone of the `Arc` (a brief read lock) and never block writers for
//! long. Changes are [`MetadataCommand`]s that the controller (shard 0)
//! proposes to the metadata quorum (`crate::quorum`); the quorum thread
//! commits each to its log, applies it to its copy and publishes the result.

pub mod alerts;
pub mod brokers;
pub mod command;
pub mod internal;
pub mod placement;
pub mod proposals;
pub mod reassignment;
pub mod security;
pub mod source;
pub mod topic_config;
pub mod webhook;

pub use brokers::{BrokerMeta, Endpoint, ADMIN_ENDPOINT};
pub use command::{Effect, MetadataCommand};
pub use source::Source;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const METADATA_FILE: &str = "cluster-metadata.json";
/// Producer ids are handed out in blocks so the file is not written per id.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(from = "PartitionRecord")]
pub struct PartitionMeta {
    pub leader_epoch: i32,
    /// Bumped by every change of leader, ISR or replicas (Kafka's partition
    /// epoch): an ISR change computed from an older state is refused.
    pub partition_epoch: i32,
    /// The node that leads the partition; -1 when none can (every in-sync
    /// replica is fenced: the partition is offline).
    pub leader: i32,
    /// The nodes holding a replica (Kafka's assignment), leader included.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
    /// The shard holding each replica on its node, in the order of
    /// `replicas` (Kafka's `directories`: where on the broker the log is).
    /// Chosen by the controller from the shard counts brokers register,
    /// so every node derives the same placement from the log.
    pub shards: Vec<u32>,
    /// Replicas a reassignment adds (Kafka's `addingReplicas`): in
    /// `replicas` already, catching up as followers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub adding: Vec<i32>,
    /// Replicas a reassignment removes once every target replica is in
    /// sync (Kafka's `removingReplicas`): in `replicas` until then.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removing: Vec<i32>,
}

/// A partition as written, including the forms of older files and log
/// entries: one `shard` (this node's) and, before replicas were recorded,
/// no leader ([`ClusterState::adopt_unrecorded_replicas`] fills it in).
#[derive(Deserialize)]
struct PartitionRecord {
    #[serde(default)]
    shard: Option<u32>,
    leader_epoch: i32,
    #[serde(default)]
    partition_epoch: i32,
    #[serde(default = "unrecorded_node")]
    leader: i32,
    #[serde(default)]
    replicas: Vec<i32>,
    #[serde(default)]
    isr: Vec<i32>,
    #[serde(default)]
    shards: Vec<u32>,
    #[serde(default)]
    adding: Vec<i32>,
    #[serde(default)]
    removing: Vec<i32>,
}

impl From<PartitionRecord> for PartitionMeta {
    fn from(r: PartitionRecord) -> Self {
        let shards = match (r.shards.is_empty(), r.shard) {
            // Single-node records: every replica (one, or none yet) is here.
            (true, Some(s)) => vec![s; r.replicas.len().max(1)],
            _ => r.shards,
        };
        Self {
            leader_epoch: r.leader_epoch,
            partition_epoch: r.partition_epoch,
            leader: r.leader,
            replicas: r.replicas,
            isr: r.isr,
            shards,
            adding: r.adding,
            removing: r.removing,
        }
    }
}

/// `leader` of a record that predates it.
fn unrecorded_node() -> i32 {
    -1
}

impl PartitionMeta {
    /// A partition of a single-node cluster: `node` leads its only replica.
    #[cfg(test)]
    pub fn local(shard: u32, node: i32) -> Self {
        Self {
            leader_epoch: 0,
            partition_epoch: 0,
            leader: node,
            replicas: vec![node],
            isr: vec![node],
            shards: vec![shard],
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }

    /// Whether a reassignment of the partition is in progress.
    pub fn reassigning(&self) -> bool {
        !self.adding.is_empty() || !self.removing.is_empty()
    }

    /// The replicas the partition ends up with: all of them but those a
    /// reassignment removes (Kafka's target replicas).
    pub fn target_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.removing.contains(r))
            .collect()
    }

    /// The replicas before the reassignment in progress (all of them but
    /// those it adds): what cancelling it goes back to.
    pub fn original_replicas(&self) -> Vec<i32> {
        self.replicas
            .iter()
            .copied()
            .filter(|r| !self.adding.contains(r))
            .collect()
    }

    /// The shard holding `node`'s replica, if it has one.
    pub fn shard_on(&self, node: i32) -> Option<u32> {
        let i = self.replicas.iter().position(|r| *r == node)?;
        self.shards.get(i).copied()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (Kafka names).
    pub configs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq)]
pub struct ClusterState {
    pub cluster_id: String,
    /// Next producer id block start (persisted before ids are handed out).
    pub producer_id_block_end: i64,
    pub topics: BTreeMap<String, Arc<TopicMeta>>,
    /// Registered brokers by node id.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerMeta>,
    /// The epoch the next registration gets (Kafka uses the registration
    /// record's offset; a counter in the state is as monotonic and keeps
    /// `apply` a function of the commands alone).
    #[serde(default)]
    pub next_broker_epoch: i64,
    /// The group coordinators: where each partition of Kafka's
    /// `__consumer_offsets` is led (groups hash to a partition as in Kafka;
    /// the group's state is kept by the leader's shards, not in a topic).
    /// Empty until the first FindCoordinator places them, as Kafka creates
    /// the topic then.
    #[serde(default)]
    pub coordinators: Vec<PartitionMeta>,
    /// Dynamic broker configs (Kafka's ConfigRecords of BROKER resources)
    /// by broker id, -1 for the cluster-wide default: the replication
    /// throttle rates.
    #[serde(default)]
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// ACLs, SCRAM credentials, client quotas (never in the metadata files
    /// that predate the log).
    #[serde(skip)]
    pub security: security::SecurityState,
    /// The proposals applied lately, so a copy is applied once
    /// (see [`proposals`]). Behind an `Arc`: the state is cloned at every
    /// publish, the window changes far less often.
    #[serde(skip)]
    pub applied_proposals: Arc<proposals::AppliedProposals>,
    /// Alert rules, silences, firing alerts and their history (never in
    /// the metadata files that predate the log). Behind an `Arc`, as the
    /// proposal window: the history (up to 1,000 events) is not copied at
    /// every publish of the state.
    #[serde(skip)]
    pub alerts: Arc<alerts::AlertsState>,
    #[serde(skip)]
    by_id: HashMap<Uuid, String>,
}

impl ClusterState {
    pub(crate) fn reindex(&mut self) {
        self.by_id = self
            .topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect();
    }

    pub fn topic(&self, name: &str) -> Option<&Arc<TopicMeta>> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, id: &Uuid) -> Option<&Arc<TopicMeta>> {
        self.by_id.get(id).and_then(|n| self.topics.get(n))
    }

    /// Make `node` the only replica and leader of the partitions a file
    /// written before replicas were recorded left without them (every
    /// partition was this node's then).
    pub fn adopt_unrecorded_replicas(&mut self, node: i32) {
        for t in self.topics.values_mut() {
            if t.partitions.iter().all(|p| !p.replicas.is_empty()) {
                continue;
            }
            let t = Arc::make_mut(t);
            for p in t.partitions.iter_mut().filter(|p| p.replicas.is_empty()) {
                debug_assert!(p.leader < 0 && p.isr.is_empty());
                debug_assert_eq!(p.shards.len(), 1);
                p.leader = node;
                p.replicas = vec![node];
                p.isr = vec![node];
            }
        }
    }

    /// The broker coordinating `group`: `None` before the coordinators are
    /// placed, -1 when its partition has no leader.
    pub fn coordinator_of(&self, group: &str) -> Option<i32> {
        if self.coordinators.is_empty() {
            return None;
        }
        let p = coordinator_partition(group, self.coordinators.len());
        Some(self.coordinators[p].leader)
    }

    /// Partition counts per shard of `node`, for least-loaded placement.
    pub fn shard_load(&self, node: i32, shards: usize) -> Vec<usize> {
        let mut load = vec![0; shards];
        for t in self.topics.values() {
            for p in &t.partitions {
                if let Some(l) = p.shard_on(node).and_then(|s| load.get_mut(s as usize)) {
                    *l += 1;
                }
            }
        }
        load
    }
}

pub struct MetadataStore {
    quorum: Arc<crate::quorum::Quorum>,
    lifecycle: std::sync::OnceLock<Arc<crate::quorum::lifecycle::Status>>,
}

impl MetadataStore {
    /// A single node's metadata in `data_dir` (tests and tools): a quorum
    /// of this node alone.
    #[cfg(test)]
    pub fn load_or_init(data_dir: &Path, shards: usize, node_id: i32) -> Result<Self> {
        let cfg = crate::config::BrokerConfig {
            data_dir: data_dir.to_path_buf(),
            shards,
            node_id,
            ..Default::default()
        };
        Self::open(&cfg)
    }

    /// Start the metadata quorum of this node: alone, or with the voters
    /// of `controller_quorum_voters` over the controller listener. A
    /// single node's data dir from before the quorum has its metadata file
    /// instead: the new log starts from it (`node_id` becomes the leader
    /// and replica of partitions from files that predate those) and the
    /// file is renamed `cluster-metadata.json.migrated`.
    pub fn open(config: &crate::config::BrokerConfig) -> Result<Self> {
        use crate::quorum::{self, node::NetworkConfig, node::StartOptions, raft_id};
        let (data_dir, shards, node_id) = (&config.data_dir, config.shards, config.node_id);
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let log_dir = internal::metadata_log_dir(data_dir);
        let legacy_path = data_dir.join(METADATA_FILE);
        let legacy = if !log_dir.exists() && legacy_path.exists() {
            if config.is_clustered() {
                anyhow::bail!(
                    "{} is a single node's metadata from before the metadata log: start this \
                     node once alone (without controller_quorum_voters) to move it into the log",
                    legacy_path.display()
                );
            }
            Some(load_legacy(&legacy_path, node_id)?)
        } else {
            None
        };
        let migrated = legacy.is_some();
        let voters: Vec<u64> = if config.is_clustered() {
            config
                .quorum_voters
                .iter()
                .map(|(id, _)| raft_id(*id))
                .collect()
        } else {
            vec![raft_id(node_id)]
        };
        let network = match &config.controller_listener {
            Some(l) => Some(NetworkConfig {
                listener: quorum::transport::bind(l.bind).map_err(anyhow::Error::msg)?,
                voters: config.quorum_voters.iter().cloned().collect(),
                listener_name: l.name.clone(),
            }),
            None => None,
        };
        let quorum = quorum::Quorum::start(
            &log_dir,
            quorum::CoreConfig {
                node_id: raft_id(node_id),
                voters,
                legacy,
                snapshot_every: config.metadata_snapshot_every,
                first_proposal: Uuid::new_v4().as_u64_pair().0 >> 1,
            },
            StartOptions {
                network,
                session_timeout: std::time::Duration::from_millis(config.broker_session_timeout_ms),
                new_cluster_id,
                // A cluster's nodes start in any order: each waits for the
                // others (while registering), not here.
                ready_within: (!config.is_clustered()).then(|| std::time::Duration::from_secs(30)),
            },
        )
        .with_context(|| format!("starting the metadata log in {}", log_dir.display()))?;
        if migrated {
            // The log holds it now (synced before `start` returned).
            let to = data_dir.join(format!("{METADATA_FILE}.migrated"));
            std::fs::rename(&legacy_path, &to).with_context(|| {
                format!("renaming {} to {}", legacy_path.display(), to.display())
            })?;
        }
        let store = Self {
            quorum: Arc::new(quorum),
            lifecycle: std::sync::OnceLock::new(),
        };
        let state = store.snapshot();
        if let Some((t, shard)) = state.topics.values().find_map(|t| {
            t.partitions
                .iter()
                .filter_map(|p| p.shard_on(node_id))
                .find(|s| *s as usize >= shards)
                .map(|s| (t, s))
        }) {
            anyhow::bail!(
                "topic {} has a partition on shard {shard} but only {shards} shards are configured; \
                 start with --shards {} or more (shard count cannot shrink yet)",
                t.name,
                shard + 1
            );
        }
        state
            .check_invariants(usize::MAX)
            .map_err(|m| anyhow::anyhow!("{}: {m}", log_dir.display()))?;
        Ok(store)
    }

    /// Register this broker with the active controller and heartbeat from
    /// now on; returns once the controller has unfenced it (Kafka's broker
    /// serves clients only then).
    pub fn join_cluster(&self, config: &crate::config::BrokerConfig) -> Result<()> {
        use crate::quorum::lifecycle;
        let mut endpoints: Vec<Endpoint> = config
            .resolved_listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.clone(),
                host: l.advertised_host.clone(),
                port: l.advertised_port as u16,
                security_protocol: l.protocol.kafka_id(),
            })
            .collect();
        if let Some(l) = &config.controller_listener {
            // Where the quorum leader reaches this node's log (a learner).
            endpoints.push(Endpoint {
                name: l.name.clone(),
                host: l.advertised_host.clone(),
                port: l.advertised_port as u16,
                security_protocol: l.protocol.kafka_id(),
            });
        }
        if let Some(admin) = brokers::admin_endpoint(config) {
            endpoints.push(admin);
        }
        let me = BrokerMeta {
            id: config.node_id,
            incarnation: Uuid::new_v4(),
            epoch: 0,
            endpoints,
            rack: config.broker_rack.clone(),
            shards: config.shards as u32,
            fenced: true,
        };
        let status = lifecycle::start(
            self.quorum.clone(),
            lifecycle::Settings {
                me,
                voters: config.quorum_voters.clone(),
                heartbeat_interval: std::time::Duration::from_millis(
                    config.broker_heartbeat_interval_ms,
                ),
                session_timeout: std::time::Duration::from_millis(config.broker_session_timeout_ms),
            },
        )?;
        let _ = self.lifecycle.set(status.clone());
        let quorum = self.quorum.clone();
        status.wait_unfenced(std::time::Duration::from_secs(5), || {
            let v = quorum.view();
            match v.leader {
                None => "no active controller is elected yet (are the other voters up?)".into(),
                Some(l) => format!(
                    "the active controller is node {l}; metadata applied up to {}",
                    v.applied
                ),
            }
        });
        Ok(())
    }

    pub fn quorum(&self) -> &crate::quorum::Quorum {
        &self.quorum
    }

    /// Kafka's controlled shutdown, before the shards stop: the active
    /// controller fences this broker and moves the leadership of its
    /// partitions to other in-sync replicas (so clients go there now, not
    /// after the session timeout), then, if this node leads the quorum, it
    /// hands that leadership on. Each step waits at most `within`; a step
    /// that cannot finish (no controller reachable) is logged and skipped.
    pub fn controlled_shutdown(&self, within: std::time::Duration) {
        let started = std::time::Instant::now();
        if let Some(status) = self.lifecycle.get() {
            if status.shut_down(within) {
                tracing::info!(
                    "controlled shutdown: fenced, leaderships moved in {:?}",
                    started.elapsed()
                );
            } else {
                tracing::warn!(
                    "controlled shutdown: the active controller did not confirm within {within:?}; stopping anyway"
                );
            }
        }
        if !self.quorum.resign(within) {
            tracing::warn!("controlled shutdown: no other node leads the metadata quorum yet");
        }
    }

    /// The quorum as the security stores read and change it.
    pub fn source(&self) -> Source {
        Source::Quorum(self.quorum.clone())
    }

    /// This broker's registration: (epoch, fenced), once it has joined.
    pub fn registration(&self) -> Option<(i64, bool)> {
        use std::sync::atomic::Ordering;
        let s = self.lifecycle.get()?;
        Some((
            s.epoch.load(Ordering::Relaxed),
            s.fenced.load(Ordering::Relaxed),
        ))
    }

    pub fn snapshot(&self) -> Arc<ClusterState> {
        self.quorum.state()
    }

    /// Apply `cmd` durably: proposed to the metadata quorum, answered once
    /// it is committed (in the log on a majority, synced) and applied here;
    /// the new state is visible through [`MetadataStore::snapshot`] by then.
    /// A refused command leaves the metadata as it was.
    pub async fn execute(
        &self,
        cmd: MetadataCommand,
    ) -> Result<Effect, crate::quorum::core::ProposeError> {
        self.quorum.propose(cmd).await
    }
}

/// A metadata file from before the quorum.
fn load_legacy(path: &Path, node_id: i32) -> Result<ClusterState> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut state = serde_json::from_slice::<ClusterState>(&bytes)
        .with_context(|| format!("{} is not valid cluster metadata", path.display()))?;
    state.adopt_unrecorded_replicas(node_id);
    state.reindex();
    Ok(state)
}

fn new_cluster_id() -> String {
    // Kafka cluster ids are 22 characters of URL-safe base64 of a UUID.
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let v = Uuid::new_v4().as_u128();
    (0..22)
        .map(|i| ALPHABET[((v >> (i * 6)) & 63) as usize] as char)
        .collect()
}

/// The `__consumer_offsets` partition of `group`, as Kafka computes it:
/// `Utils.abs(groupId.hashCode()) % partitions` (Java's String hash over
/// UTF-16 units; `abs(Integer.MIN_VALUE)` is 0 there).
pub fn coordinator_partition(group: &str, partitions: usize) -> usize {
    let h = group
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(c as i32));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs as usize % partitions
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters; the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic name '{name}' contains '{c}'; allowed are ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

/// Directory of a partition's log under the data dir (as Kafka: topic-N).
pub fn partition_dir(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir.join(format!("{topic}-{partition}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(validate_topic_name("orders.v1_eu-west").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("has space").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn groups_hash_to_kafkas_partitions() {
        // Java's String.hashCode: "test-group" 627841412, "my-group"
        // -1906497762, "polygenelubricants" Integer.MIN_VALUE.
        assert_eq!(coordinator_partition("", 50), 0);
        assert_eq!(coordinator_partition("a", 50), 97 % 50);
        assert_eq!(coordinator_partition("test-group", 50), 627841412 % 50);
        assert_eq!(coordinator_partition("my-group", 50), 1906497762 % 50);
        assert_eq!(coordinator_partition("polygenelubricants", 50), 0);
    }

    #[test]
    fn metadata_persists_and_reloads() {
        let dir = tempfile::tempdir().unwrap();
        let store = MetadataStore::load_or_init(dir.path(), 2, 0).unwrap();
        let id = store.snapshot().cluster_id.clone();
        assert_eq!(id.len(), 22);
        let create = MetadataCommand::CreateTopic {
            name: "a".into(),
            id: Uuid::new_v4(),
            partitions: vec![PartitionMeta::local(1, 0)],
            configs: BTreeMap::new(),
        };
        shard::runtime::run_local(move || async move {
            store.execute(create).await.unwrap();
        });
        let again = MetadataStore::load_or_init(dir.path(), 2, 0).unwrap();
        let snap = again.snapshot();
        drop(again);
        assert_eq!(snap.cluster_id, id);
        let t = snap.topic("a").unwrap();
        assert_eq!(snap.topic_by_id(&t.id).unwrap().name, "a");
        assert_eq!(snap.shard_load(0, 2), vec![0, 1]);
        assert!(
            MetadataStore::load_or_init(dir.path(), 1, 0).is_err(),
            "shrinking shards is refused"
        );
    }
}

#[cfg(test)]
mod command_tests;
