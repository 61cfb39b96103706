//! The partitions this shard owns: their logs, opened, closed, deleted
//! and reconfigured here, on the owner shard's thread only (other shards
//! ask by message), and their replication roles (`crate::replica`): the
//! partitions led here with their followers' progress, and the fetchers of
//! those followed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use shard::log::{LogConfig, PartitionLog};

use crate::config::BrokerConfig;
use crate::messages::ShardReply;
use crate::metadata::{partition_dir, topic_config, MetadataStore};
use crate::replica::{role_of, Role};

pub type TopicPartition = (String, i32);

/// What the controller asks of a partition's owner shard.
#[derive(Debug)]
pub enum PartitionAdmin {
    /// Open (or create) a partition's log, and give it its role (a new
    /// leader epoch, a new ISR, a new leader to follow); answered with
    /// [`ShardReply::Opened`].
    Open {
        topic: String,
        partition: i32,
        role: Role,
    },
    /// Close a partition's log, keeping its files.
    Close { topic: String, partition: i32 },
    /// Close a partition's log and delete its files.
    Destroy { topic: String, partition: i32 },
    /// Re-read the log settings of a topic's partitions here.
    Reconfigure { topic: String },
}

/// Told when a local replica starts leading (its leader epoch and log) or
/// stops (`None`): the transaction coordinator loads and drops its
/// `__transaction_state` partitions this way.
pub type LeadershipObserver = Box<dyn Fn(&str, i32, Option<(i32, Rc<PartitionLog>)>)>;

pub struct PartitionManager {
    shard: usize,
    observer: RefCell<Option<LeadershipObserver>>,
    config: Arc<BrokerConfig>,
    metadata: Arc<MetadataStore>,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// The partitions led here, with their followers' progress.
    leaders: replication::Leaders,
    /// One fetcher per leader this shard follows partitions of.
    fetchers: replication::Fetchers,
    dialer: Rc<crate::inter_broker::BrokerDialer>,
}

impl PartitionManager {
    pub fn new(shard: usize, config: Arc<BrokerConfig>, metadata: Arc<MetadataStore>) -> Self {
        let node = config.node_id;
        let dialer: Rc<crate::inter_broker::BrokerDialer> =
            Rc::new(crate::inter_broker::BrokerDialer::new(&config));
        Self {
            shard,
            observer: RefCell::new(None),
            config,
            metadata,
            logs: RefCell::new(HashMap::new()),
            leaders: replication::Leaders::new(node),
            fetchers: replication::Fetchers::new(node, dialer.clone()),
            dialer,
        }
    }

    /// How this shard connects to peers (the inter-broker listener's
    /// security): fetchers, transaction markers and verification share it.
    pub fn dialer(&self) -> &Rc<crate::inter_broker::BrokerDialer> {
        &self.dialer
    }

    pub fn observe_leadership(&self, observer: LeadershipObserver) {
        *self.observer.borrow_mut() = Some(observer);
    }

    fn notify(&self, topic: &str, partition: i32, led: Option<(i32, Rc<PartitionLog>)>) {
        if let Some(f) = self.observer.borrow().as_ref() {
            f(topic, partition, led);
        }
    }

    pub fn leaders(&self) -> &replication::Leaders {
        &self.leaders
    }

    /// The leader and leader epoch `tp` is followed from here, if it is.
    pub fn followed(&self, tp: &TopicPartition) -> Option<(i32, i32)> {
        self.fetchers.followed(tp)
    }

    pub fn metadata(&self) -> &Arc<MetadataStore> {
        &self.metadata
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// Answer a [`PartitionAdmin`] request on this (the owner) shard.
    pub async fn handle(&self, op: PartitionAdmin) -> ShardReply {
        match op {
            PartitionAdmin::Open {
                topic,
                partition,
                role,
            } => ShardReply::Opened(self.open_partition(&topic, partition, role).await),
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

    /// Open (or create) the log of a partition this shard owns, and give it
    /// `role`: a leader takes its leader epoch and its followers' progress,
    /// a follower starts fetching from its leader.
    pub async fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        role: Role,
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
        let tp = (topic.to_string(), partition);
        match role {
            Role::Leader(l) => {
                // The role is in place before the first await: a produce
                // that finds the log leads it with its ISR (acks=all waits
                // for the followers), never as an unreplicated log.
                self.fetchers.unfollow(&tp);
                // An epoch its log has no entry for: this broker was just
                // elected (or the partition is new). A restart that finds
                // its epoch already in the log is no election.
                let elected = log
                    .leader_epoch_entries()
                    .last()
                    .is_none_or(|e| e.epoch < l.leader_epoch);
                if elected {
                    crate::metrics::replication::leader_election();
                }
                let new_epoch = fresh || log.leader_epoch() < l.leader_epoch;
                if new_epoch {
                    log.set_leader_epoch(l.leader_epoch);
                }
                self.leaders
                    .lead(tp, log.clone(), &l, crate::replica::now_ms());
                self.notify(topic, partition, Some((l.leader_epoch, log.clone())));
                if new_epoch {
                    if let Err(e) = log.become_leader(l.leader_epoch).await {
                        // Not fatal (a full disk must not stop a start-up): the
                        // first append of the epoch writes the entry before its batch.
                        tracing::warn!(
                            "{topic}-{partition}: writing its leader-epoch checkpoint: {e}"
                        );
                    }
                }
            }
            Role::Follower {
                leader,
                addr,
                leader_epoch,
            } => {
                self.leaders.resign(&tp);
                self.notify(topic, partition, None);
                self.fetchers.follow(tp, log, leader, addr, leader_epoch);
            }
            Role::Idle => {
                self.leaders.resign(&tp);
                self.notify(topic, partition, None);
                self.fetchers.unfollow(&tp);
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
                    self.open_partition(&t.name, p as i32, role_of(&snap, &self.config, meta))
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
        self.drop_role(topic, partition);
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
        self.drop_role(topic, partition);
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

    /// Neither lead nor follow a partition any more (closed or deleted).
    fn drop_role(&self, topic: &str, partition: i32) {
        let tp = (topic.to_string(), partition);
        self.leaders.resign(&tp);
        self.notify(topic, partition, None);
        self.fetchers.unfollow(&tp);
    }

    /// Flush and close every local log (shutdown).
    pub async fn close_all(&self) {
        self.fetchers.stop_all();
        let logs: Vec<_> = self.logs.borrow_mut().drain().collect();
        for ((t, p), log) in logs {
            if let Err(e) = log.close().await {
                tracing::error!("closing {t}-{p}: {e}");
            }
        }
    }
}
