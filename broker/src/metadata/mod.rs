//! Cluster metadata of a single node: topics, their partitions' owning
//! shards, topic config overrides, and the producer-id counter.
//!
//! One immutable snapshot is shared by all shards behind an `Arc`; readers
//! take a clone of the `Arc` (a brief read lock) and never block writers for
//! long. Only the controller (shard 0) writes, by copying the snapshot,
//! applying a [`MetadataCommand`] to it, persisting it durably (off the
//! shard thread), and swapping it in.

pub mod command;
pub mod internal;
pub mod topic_config;

pub use command::{Effect, MetadataCommand};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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
    fn reindex(&mut self) {
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
    path: PathBuf,
    shards: usize,
    current: RwLock<Arc<ClusterState>>,
    /// Writers one at a time, each answered after its change is durable.
    /// Only the controller shard writes, and it already runs admin
    /// operations one at a time; this keeps a second writer from copying a
    /// snapshot that a first one, waiting for its fsync, is about to
    /// replace. An async lock: a waiting writer yields, never blocks the thread.
    writer: futures::lock::Mutex<()>,
}

impl MetadataStore {
    /// Load the metadata of `data_dir` (or start it). `node_id` becomes
    /// the leader and replica of partitions from files that predate those.
    pub fn load_or_init(data_dir: &Path, shards: usize, node_id: i32) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating data dir {}", data_dir.display()))?;
        let path = data_dir.join(METADATA_FILE);
        let mut on_disk = None;
        let mut state = if path.exists() {
            let bytes =
                std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let state = serde_json::from_slice::<ClusterState>(&bytes)
                .with_context(|| format!("{} is not valid cluster metadata", path.display()))?;
            on_disk = Some(bytes);
            state
        } else {
            ClusterState {
                cluster_id: new_cluster_id(),
                ..Default::default()
            }
        };
        for t in state.topics.values() {
            if let Some(p) = t.partitions.iter().find(|p| p.shard as usize >= shards) {
                anyhow::bail!(
                    "topic {} has a partition on shard {} but only {shards} shards are configured; \
                     start with --shards {} or more (shard count cannot shrink yet)",
                    t.name,
                    p.shard,
                    p.shard + 1
                );
            }
        }
        state.adopt_unrecorded_replicas(node_id);
        state.reindex();
        state
            .check_invariants(shards)
            .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
        let store = Self {
            path,
            shards,
            current: RwLock::new(Arc::new(state)),
            writer: futures::lock::Mutex::new(()),
        };
        // Written when new or when its format changed, not at every start:
        // a broker must be able to start on a full disk.
        let current = serde_json::to_vec_pretty(&*store.snapshot())?;
        if on_disk.as_deref() != Some(&current[..]) {
            write_metadata(&store.path, &current)?;
        }
        Ok(store)
    }

    pub fn snapshot(&self) -> Arc<ClusterState> {
        self.current.read().expect("metadata lock").clone()
    }

    /// Apply `cmd` durably: to a copy of the current state, written to the
    /// file (whole, fsynced, on the blocking pool) before it is swapped in
    /// and answered. Call only on the controller shard. A rejected command
    /// or a failed write leaves the metadata as it was.
    pub async fn execute(&self, cmd: MetadataCommand) -> Result<Effect, String> {
        let _turn = self.writer.lock().await;
        let mut next = (*self.snapshot()).clone();
        let effect = next.apply(&cmd, self.shards)?;
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| format!("encoding metadata: {e}"))?;
        let path = self.path.clone();
        shard::blocking::run(move || write_metadata(&path, &bytes))
            .await
            .map_err(|e| format!("persisting metadata: {e:#}"))?;
        *self.current.write().expect("metadata lock") = Arc::new(next);
        Ok(effect)
    }
}

/// Write the metadata file durably (blocks: not on a shard thread).
fn write_metadata(path: &Path, bytes: &[u8]) -> Result<()> {
    // On a full disk the disk reserve is given back for this write, so
    // the metadata changes that free space (DeleteTopics) still work.
    Ok(shard::log::reserve::write_durably_or_release(path, bytes)?)
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
