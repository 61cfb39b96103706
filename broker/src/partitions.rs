//! The partitions this shard owns: their logs, opened, closed, deleted
//! and reconfigured here, on the owner shard's thread only (other shards
//! ask by message).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use shard::log::{LogConfig, PartitionLog};

use crate::config::BrokerConfig;
use crate::messages::ShardReply;
use crate::metadata::{partition_dir, topic_config, MetadataStore};

pub type TopicPartition = (String, i32);

/// What the controller asks of a partition's owner shard.
#[derive(Debug)]
pub enum PartitionAdmin {
    /// Open (or create) a partition's log, or bring an open one to a new
    /// leader epoch; answered with [`ShardReply::Opened`].
    Open {
        topic: String,
        partition: i32,
        leader_epoch: i32,
        /// This node leads it (a follower's log takes epochs from its leader).
        leads: bool,
    },
    /// Close a partition's log, keeping its files.
    Close { topic: String, partition: i32 },
    /// Close a partition's log and delete its files.
    Destroy { topic: String, partition: i32 },
    /// Re-read the log settings of a topic's partitions here.
    Reconfigure { topic: String },
}

pub struct PartitionManager {
    shard: usize,
    config: Arc<BrokerConfig>,
    metadata: Arc<MetadataStore>,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
}

impl PartitionManager {
    pub fn new(shard: usize, config: Arc<BrokerConfig>, metadata: Arc<MetadataStore>) -> Self {
        Self {
            shard,
            config,
            metadata,
            logs: RefCell::new(HashMap::new()),
        }
    }

    /// Answer a [`PartitionAdmin`] request on this (the owner) shard.
    pub async fn handle(&self, op: PartitionAdmin) -> ShardReply {
        match op {
            PartitionAdmin::Open {
                topic,
                partition,
                leader_epoch,
                leads,
            } => ShardReply::Opened(
                self.open_partition(&topic, partition, leader_epoch, leads)
                    .await,
            ),
            PartitionAdmin::Close { topic, partition } => {
                self.close_partition(&topic, partition).await;
                ShardReply::Done
            }
            PartitionAdmin::Destroy { topic, partition } => {
                self.destroy_partition(&topic, partition).await;
                ShardReply::Done
            }
            PartitionAdmin::Reconfigure { topic } => {
                self.reconfigure_topic(&topic);
                ShardReply::Done
            }
        }
    }

    pub fn log(&self, topic: &str, partition: i32) -> Option<Rc<PartitionLog>> {
        self.logs
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    pub fn local_logs(&self) -> Vec<(TopicPartition, Rc<PartitionLog>)> {
        self.logs
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn log_config_for(&self, topic: &str) -> LogConfig {
        let snap = self.metadata.snapshot();
        let overrides = snap
            .topic(topic)
            .map(|t| t.configs.clone())
            .unwrap_or_default();
        topic_config::log_config(&overrides, &self.config)
    }

    /// Open (or create) the log of a partition this shard owns; an open
    /// one that this node now leads takes the new leader epoch.
    pub async fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
        leads: bool,
    ) -> Result<(), String> {
        let (log, fresh) = match self.log(topic, partition) {
            Some(log) => (log, false),
            None => {
                let dir = partition_dir(&self.config.data_dir, topic, partition);
                let config = self.log_config_for(topic);
                let log = PartitionLog::open(dir, format!("{topic}-{partition}"), config)
                    .await
                    .map_err(|e| format!("opening {topic}-{partition}: {e}"))?;
                self.logs
                    .borrow_mut()
                    .insert((topic.to_string(), partition), log.clone());
                (log, true)
            }
        };
        if leads && (fresh || log.leader_epoch() < leader_epoch) {
            if let Err(e) = log.become_leader(leader_epoch).await {
                // Not fatal (a full disk must not stop a start-up): the first
                // append of the epoch writes the entry before its batch.
                tracing::warn!("{topic}-{partition}: writing its leader-epoch checkpoint: {e}");
            }
        }
        Ok(())
    }

    /// Open every partition the metadata places on this shard (start-up).
    pub async fn open_owned_partitions(&self) -> anyhow::Result<usize> {
        let snap = self.metadata.snapshot();
        let node = self.config.node_id;
        let mut opened = 0;
        for t in snap.topics.values() {
            for (p, meta) in t.partitions.iter().enumerate() {
                if meta.shard_on(node) == Some(self.shard as u32) {
                    self.open_partition(&t.name, p as i32, meta.leader_epoch, meta.leader == node)
                        .await
                        .map_err(anyhow::Error::msg)?;
                    opened += 1;
                }
            }
        }
        Ok(opened)
    }

    /// Close the log of a partition, keeping its files (the first step of
    /// undoing a creation: closing everything first frees the descriptors
    /// that deleting directories needs).
    pub async fn close_partition(&self, topic: &str, partition: i32) {
        let log = self
            .logs
            .borrow_mut()
            .remove(&(topic.to_string(), partition));
        if let Some(log) = log {
            if let Err(e) = log.close().await {
                tracing::warn!("closing {topic}-{partition}: {e}");
            }
        }
    }

    /// Close and delete the log of a partition (topic deletion).
    pub async fn destroy_partition(&self, topic: &str, partition: i32) {
        let log = self
            .logs
            .borrow_mut()
            .remove(&(topic.to_string(), partition));
        match log {
            Some(log) => {
                if let Err(e) = log.destroy().await {
                    tracing::warn!("deleting {topic}-{partition}: {e}");
                }
            }
            None => {
                let dir = partition_dir(&self.config.data_dir, topic, partition);
                let target = dir.clone();
                // Frames of this shard's ring may still name its files: a
                // checkpoint first, so that no restart redoes them into a
                // partition created again under the same name.
                shard::log::wal::checkpoint_all().await;
                // A directory of many segments: unlinked off the shard thread.
                match shard::blocking::run(move || std::fs::remove_dir_all(target)).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => tracing::warn!("deleting {}: {e}", dir.display()),
                }
            }
        }
    }

    /// Re-resolve the log settings of a topic's local partitions after a config change.
    pub fn reconfigure_topic(&self, topic: &str) {
        let config = self.log_config_for(topic);
        for ((t, _), log) in self.logs.borrow().iter() {
            if t == topic {
                log.set_config(config.clone());
            }
        }
    }

    /// Flush and close every local log (shutdown).
    pub async fn close_all(&self) {
        let logs: Vec<_> = self.logs.borrow_mut().drain().collect();
        for ((t, p), log) in logs {
            if let Err(e) = log.close().await {
                tracing::error!("closing {t}-{p}: {e}");
            }
        }
    }
}
