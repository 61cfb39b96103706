//! What one shard holds: the logs of the partitions it owns, and handles to
//! the shared metadata and to the other shards. Only this shard's thread
//! touches its logs; other shards reach them through [`ShardState::on_shard`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;

use shard::log::{LogConfig, PartitionLog};
use shard::mesh::{Mesh, ShardGone};

use crate::config::BrokerConfig;
use crate::metadata::{partition_dir, topic_config, MetadataStore};

pub type TopicPartition = (String, i32);

pub struct ShardState {
    pub id: usize,
    pub config: Arc<BrokerConfig>,
    pub metadata: Arc<MetadataStore>,
    pub mesh: Mesh<ShardState>,
    logs: RefCell<HashMap<TopicPartition, Rc<PartitionLog>>>,
    /// Controller-only state (shard 0): admin operations run one at a time.
    pub admin_lock: shard::fifo::FifoLock,
    pub producer_ids: RefCell<(i64, i64)>,
    /// The consumer groups this shard coordinates, and their log.
    pub groups: crate::groups::Coordinator,
    /// Credentials and authentication state shared by every shard.
    pub security: Arc<crate::security::sasl::Security>,
    /// Client quotas and their rates, shared by every shard.
    pub quotas: Arc<crate::quotas::Quotas>,
    /// `max_connections` / `max_connections_per_ip`, shared by every shard.
    pub connection_limits: Arc<crate::server::limits::ConnectionLimits>,
    /// Open connections of the client addresses this shard keeps count of.
    pub connection_counts: crate::server::limits::PerIpCounts,
}

impl ShardState {
    pub fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        metadata: Arc<MetadataStore>,
        mesh: Mesh<ShardState>,
        security: Arc<crate::security::sasl::Security>,
    ) -> Self {
        let groups = crate::groups::Coordinator::new(
            config.group_config(),
            Box::new(crate::groups::wall_clock_ms),
        );
        groups.consumer.cfg.set(config.consumer_group_config());
        Self {
            id,
            config: config.clone(),
            metadata,
            mesh,
            logs: RefCell::new(HashMap::new()),
            admin_lock: shard::fifo::FifoLock::new(),
            producer_ids: RefCell::new((0, 0)),
            groups,
            security,
            quotas: Arc::new(crate::quotas::Quotas::in_memory()),
            connection_limits: crate::server::limits::ConnectionLimits::unlimited(),
            connection_counts: Default::default(),
        }
    }

    /// Use the broker's shared connection limits (instead of none).
    pub fn with_connection_limits(
        mut self,
        limits: Arc<crate::server::limits::ConnectionLimits>,
    ) -> Self {
        self.connection_limits = limits;
        self
    }

    /// Use the broker's shared quotas (instead of none).
    pub fn with_quotas(mut self, quotas: Arc<crate::quotas::Quotas>) -> Self {
        self.quotas = quotas;
        self
    }

    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// Run `work` on `shard`: inline when it is this shard, else by message.
    pub async fn on_shard<R, F, Fut>(self: &Rc<Self>, shard: usize, work: F) -> Result<R, ShardGone>
    where
        R: Send + 'static,
        F: FnOnce(Rc<ShardState>) -> Fut + Send + 'static,
        Fut: Future<Output = R> + 'static,
    {
        if shard == self.id {
            Ok(work(self.clone()).await)
        } else {
            self.mesh.invoke_on(shard, work).await
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

    /// Open (or create) the log of a partition this shard owns.
    pub async fn open_partition(
        &self,
        topic: &str,
        partition: i32,
        leader_epoch: i32,
    ) -> Result<(), String> {
        if self.log(topic, partition).is_some() {
            return Ok(());
        }
        let dir = partition_dir(&self.config.data_dir, topic, partition);
        let config = self.log_config_for(topic);
        let log = PartitionLog::open(dir, format!("{topic}-{partition}"), config)
            .await
            .map_err(|e| format!("opening {topic}-{partition}: {e}"))?;
        log.set_leader_epoch(leader_epoch);
        self.logs
            .borrow_mut()
            .insert((topic.to_string(), partition), log);
        Ok(())
    }

    /// Open every partition the metadata places on this shard (start-up).
    pub async fn open_owned_partitions(&self) -> anyhow::Result<usize> {
        let snap = self.metadata.snapshot();
        let mut opened = 0;
        for t in snap.topics.values() {
            for (p, meta) in t.partitions.iter().enumerate() {
                if meta.shard as usize == self.id {
                    self.open_partition(&t.name, p as i32, meta.leader_epoch)
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
                match std::fs::remove_dir_all(&dir) {
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

    /// Open this shard's group log (compacted, never a topic, under
    /// `DATA_DIR/@internal`) and restore its groups.
    pub async fn open_group_log(&self) -> anyhow::Result<()> {
        let config = crate::groups::group_log_config(&self.config);
        self.groups
            .open(&self.config.data_dir, self.id, config)
            .await
    }

    /// Flush and close every local log (shutdown).
    pub async fn close_all(&self) {
        self.groups.close().await;
        let logs: Vec<_> = self.logs.borrow_mut().drain().collect();
        for ((t, p), log) in logs {
            if let Err(e) = log.close().await {
                tracing::error!("closing {t}-{p}: {e}");
            }
        }
    }
}
