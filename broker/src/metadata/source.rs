//! Where a store of cluster-wide state (ACLs, SCRAM credentials, client
//! quotas) reads the state and sends its changes: the metadata quorum, or
//! a state kept in memory that applies the same commands with the same
//! [`ClusterState::apply`] (unit tests, and the stand-in a shard holds
//! before the broker hands it the real stores).

use std::sync::{Arc, RwLock};

use super::command::{Effect, MetadataCommand};
use super::ClusterState;
use crate::quorum::core::ProposeError;
use crate::quorum::node::Watcher;
use crate::quorum::Quorum;

#[derive(Clone)]
pub enum Source {
    Quorum(Arc<Quorum>),
    Memory(Arc<Memory>),
}

pub struct Memory {
    state: RwLock<Arc<ClusterState>>,
    watchers: std::sync::Mutex<Vec<Watcher>>,
}

impl Source {
    /// An empty state in memory.
    pub fn memory() -> Source {
        Source::Memory(Arc::new(Memory {
            state: RwLock::new(Arc::new(ClusterState::default())),
            watchers: std::sync::Mutex::new(Vec::new()),
        }))
    }

    /// The state as of the last applied command.
    pub fn state(&self) -> Arc<ClusterState> {
        match self {
            Source::Quorum(q) => q.state(),
            Source::Memory(m) => m.state.read().expect("state lock").clone(),
        }
    }

    /// Apply `cmd`: committed to the log and applied here (see
    /// [`Quorum::propose`]), or applied in memory at once.
    pub async fn execute(&self, cmd: MetadataCommand) -> Result<Effect, ProposeError> {
        match self {
            Source::Quorum(q) => q.propose(cmd).await,
            Source::Memory(m) => m.apply(&cmd),
        }
    }

    /// [`Self::execute`] from a thread that may block: start-up, tools,
    /// tests; never a shard.
    pub fn execute_blocking(&self, cmd: MetadataCommand) -> Result<Effect, ProposeError> {
        shard::blocking::assert_not_shard("metadata::Source::execute_blocking");
        futures::executor::block_on(self.execute(cmd))
    }

    /// See [`Quorum::watch`].
    pub fn watch(&self, watcher: Watcher) {
        match self {
            Source::Quorum(q) => q.watch(watcher),
            Source::Memory(m) => {
                let mut watchers = m.watchers.lock().expect("watchers lock");
                watcher(&m.state.read().expect("state lock"));
                watchers.push(watcher);
            }
        }
    }
}

impl Memory {
    fn apply(&self, cmd: &MetadataCommand) -> Result<Effect, ProposeError> {
        // Writers take the watchers' lock first: one change at a time, and
        // watchers see states in order.
        let watchers = self.watchers.lock().expect("watchers lock");
        let mut next = (**self.state.read().expect("state lock")).clone();
        let effect = next
            .apply(cmd, usize::MAX)
            .map_err(ProposeError::Rejected)?;
        let next = Arc::new(next);
        *self.state.write().expect("state lock") = next.clone();
        for w in watchers.iter() {
            w(&next);
        }
        Ok(effect)
    }
}
