//! What one shard holds: handles to its services — the partitions it
//! owns, the groups it coordinates, the controller (shard 0 only),
//! security, quotas and connection counts — and to the shared metadata
//! and the other shards. Only this shard's thread touches its services;
//! other shards reach them by message ([`ShardState::call`], with the
//! typed requests of [`crate::messages`]).

use std::rc::Rc;
use std::sync::Arc;

use shard::mesh::{LocalMesh, Mesh, Service, ShardGone};

use crate::config::BrokerConfig;
use crate::controller::{Controller, CONTROLLER_SHARD};
use crate::messages::{Asked, ShardReply, ShardRequest};
use crate::metadata::MetadataStore;
use crate::partitions::PartitionManager;
use crate::server::limits::{ConnectionLimits, Connections};

pub struct ShardState {
    pub id: usize,
    pub config: Arc<BrokerConfig>,
    pub metadata: Arc<MetadataStore>,
    /// This shard's senders to every shard's (bounded) inbox.
    pub mesh: LocalMesh<ShardState>,
    /// The logs of the partitions this shard owns.
    pub partitions: Rc<PartitionManager>,
    /// Controller-only state, on the controller shard only.
    controller: Option<Rc<Controller>>,
    /// The consumer groups this shard coordinates, and their log.
    pub groups: Rc<crate::groups::Coordinator>,
    /// The transactions this shard coordinates (its `__transaction_state`
    /// partitions).
    pub txn: Rc<crate::txn::coordinator::TxnCoordinator>,
    /// Credentials and authentication state shared by every shard.
    pub security: Arc<crate::security::sasl::Security>,
    /// Client quotas and their rates, shared by every shard.
    pub quotas: Arc<crate::quotas::Quotas>,
    /// Connection limits, and the per-address counts this shard keeps.
    pub connections: Rc<Connections>,
}

impl ShardState {
    pub fn new(
        id: usize,
        config: Arc<BrokerConfig>,
        metadata: Arc<MetadataStore>,
        mesh: Mesh<ShardState>,
        security: Arc<crate::security::sasl::Security>,
    ) -> Self {
        let groups =
            crate::groups::Coordinator::new(config.group_config(), shard::time::LogClock::System);
        groups.consumer.cfg.set(config.consumer_group_config());
        // The reconciler starts from the state the partitions open from.
        let controller =
            (id == CONTROLLER_SHARD).then(|| Rc::new(Controller::new(metadata.snapshot())));
        Self {
            id,
            config: config.clone(),
            partitions: Rc::new(PartitionManager::new(id, config, metadata.clone())),
            metadata,
            mesh: mesh.local(),
            controller,
            groups: Rc::new(groups),
            txn: Rc::new(Default::default()),
            security,
            quotas: Arc::new(crate::quotas::Quotas::in_memory()),
            connections: Rc::new(Connections::new(ConnectionLimits::unlimited())),
        }
    }

    /// Count this shard's groups in the broker's `max_groups` census
    /// (`None`: no limit).
    pub fn with_group_census(
        self,
        census: Option<Arc<crate::groups::census::GroupCensus>>,
    ) -> Self {
        if let Some(census) = census {
            self.groups.census.join(census);
        }
        self
    }

    /// Use the broker's shared connection limits (instead of none).
    pub fn with_connection_limits(mut self, limits: Arc<ConnectionLimits>) -> Self {
        self.connections = Rc::new(Connections::new(limits));
        self
    }

    /// Use the broker's shared quotas (instead of none).
    pub fn with_quotas(mut self, quotas: Arc<crate::quotas::Quotas>) -> Self {
        self.quotas = quotas;
        self
    }

    /// The controller's state; only the controller shard has it (every
    /// controller operation is sent there).
    pub fn controller(&self) -> &Controller {
        self.controller
            .as_deref()
            .expect("controller operations run on the controller shard")
    }

    pub fn shards(&self) -> usize {
        self.mesh.shards()
    }

    /// Send `request` to `shard` and await the reply: handled inline when
    /// it is this shard, else by message (waiting while that shard's inbox
    /// is full).
    pub async fn call(
        self: &Rc<Self>,
        shard: usize,
        request: ShardRequest,
    ) -> Result<ShardReply, ShardGone> {
        if shard == self.id {
            Ok(self.clone().handle(request).await)
        } else {
            self.mesh.call(shard, request).await
        }
    }

    /// Have `shard` do `work` and return its answer: inline when it is
    /// this shard, else by message.
    pub async fn ask<W: Asked>(
        self: &Rc<Self>,
        shard: usize,
        work: W,
    ) -> Result<W::Out, ShardGone> {
        if shard == self.id {
            return Ok(work.run(self.clone()).await);
        }
        let reply = self.mesh.call(shard, work.request()).await?;
        Ok(W::answer(reply).expect("a reply of the request's kind"))
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
        self.partitions.close_all().await;
    }
}
