//! Cluster metadata of a single node: topics, their partitions' owning
//! shards, topic config overrides, and the producer-id counter.
//!
//! One immutable snapshot is shared by all shards behind an `Arc`; readers
//! take a clone of the `Arc` (a brief read lock) and never block writers for
//! long. Changes are [`MetadataCommand`]s that the controller (shard 0)
//! proposes to the metadata quorum (`crate::quorum`); the quorum thread
//! commits each to its log, applies it to its copy and publishes the result.

pub mod command;
pub mod internal;
pub mod topic_config;

pub use command::{Effect, MetadataCommand};

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
pub struct PartitionMeta {
    /// The shard that owns this partition's log (on this broker).
    pub shard: u32,
    pub leader_epoch: i32,
    /// The node that leads the partition. Files written before it was
    /// recorded leave it out: [`ClusterState::adopt_unrecorded_replicas`]
    /// makes this node the leader, as it was.
    #[serde(default = "unrecorded_node")]
    pub leader: i32,
    /// The nodes holding a replica (Kafka's assignment), leader included.
    #[serde(default)]
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    #[serde(default)]
    pub isr: Vec<i32>,
}

/// `leader` of a file that predates it.
fn unrecorded_node() -> i32 {
    -1
}

impl PartitionMeta {
    /// A partition of a single-node cluster: `node` leads its only replica.
    pub fn local(shard: u32, node: i32) -> Self {
        Self {
            shard,
            leader_epoch: 0,
            leader: node,
            replicas: vec![node],
            isr: vec![node],
        }
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
            if t.partitions.iter().all(|p| p.leader >= 0) {
                continue;
            }
            let t = Arc::make_mut(t);
            for p in t.partitions.iter_mut().filter(|p| p.leader < 0) {
                debug_assert!(p.replicas.is_empty() && p.isr.is_empty());
                p.leader = node;
                p.replicas = vec![node];
                p.isr = vec![node];
            }
        }
    }

    /// Partition counts per shard, for least-loaded placement.
    pub fn shard_load(&self, shards: usize) -> Vec<usize> {
        let mut load = vec![0; shards];
        for t in self.topics.values() {
            for p in &t.partitions {
                if let Some(l) = load.get_mut(p.shard as usize) {
                    *l += 1;
                }
            }
        }
        load
    }
}

pub struct MetadataStore {
    quorum: crate::quorum::Quorum,
}

impl MetadataStore {
    /// Start the metadata quorum of `data_dir` (a quorum of this node
    /// alone). A data dir from before the quorum has its metadata file
    /// instead: the new log starts from it (`node_id` becomes the leader
    /// and replica of partitions from files that predate those) and the
    /// file is renamed `cluster-metadata.json.migrated`.
    pub fn load_or_init(data_dir: &Path, shards: usize, node_id: i32) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let log_dir = internal::metadata_log_dir(data_dir);
        let legacy_path = data_dir.join(METADATA_FILE);
        let legacy = if !log_dir.exists() && legacy_path.exists() {
            Some(load_legacy(&legacy_path, node_id)?)
        } else {
            None
        };
        let migrated = legacy.is_some();
        let quorum = crate::quorum::Quorum::start(
            &log_dir,
            crate::quorum::CoreConfig {
                node_id: crate::quorum::raft_id(node_id),
                voters: vec![crate::quorum::raft_id(node_id)],
                legacy,
                snapshot_every: crate::quorum::core::SNAPSHOT_EVERY,
            },
            new_cluster_id,
            std::time::Duration::from_secs(30),
        )
        .with_context(|| format!("starting the metadata log in {}", log_dir.display()))?;
        if migrated {
            // The log holds it now (synced before `start` returned).
            let to = data_dir.join(format!("{METADATA_FILE}.migrated"));
            std::fs::rename(&legacy_path, &to).with_context(|| {
                format!("renaming {} to {}", legacy_path.display(), to.display())
            })?;
        }
        let store = Self { quorum };
        let state = store.snapshot();
        if let Some((t, p)) = state.topics.values().find_map(|t| {
            t.partitions
                .iter()
                .find(|p| p.shard as usize >= shards)
                .map(|p| (t, p))
        }) {
            anyhow::bail!(
                "topic {} has a partition on shard {} but only {shards} shards are configured; \
                 start with --shards {} or more (shard count cannot shrink yet)",
                t.name,
                p.shard,
                p.shard + 1
            );
        }
        state
            .check_invariants(shards)
            .map_err(|m| anyhow::anyhow!("{}: {m}", log_dir.display()))?;
        Ok(store)
    }

    pub fn snapshot(&self) -> Arc<ClusterState> {
        self.quorum.state()
    }

    /// Apply `cmd` durably: proposed to the metadata quorum, answered once
    /// it is committed (in the log on a majority, synced) and applied here;
    /// the new state is visible through [`MetadataStore::snapshot`] by then.
    /// A refused command leaves the metadata as it was.
    pub async fn execute(&self, cmd: MetadataCommand) -> Result<Effect, String> {
        self.quorum.propose(cmd).await.map_err(|e| e.to_string())
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
        assert_eq!(snap.shard_load(2), vec![0, 1]);
        assert!(
            MetadataStore::load_or_init(dir.path(), 1, 0).is_err(),
            "shrinking shards is refused"
        );
    }
}

#[cfg(test)]
mod command_tests;
