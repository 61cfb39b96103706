//! A member of a classic group: its identity, timeouts, protocols, the
//! assignment the leader gave it, and the answers it is waiting for.

use bytes::Bytes;
use futures::channel::oneshot;

use super::group::{JoinParams, JoinResult, SyncResult};

#[derive(Debug)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: i64,
    pub(super) join_waiter: Option<oneshot::Sender<JoinResult>>,
    pub(super) sync_waiter: Option<oneshot::Sender<SyncResult>>,
}

impl Member {
    pub(super) fn new(id: String, p: &JoinParams, now: i64) -> Self {
        Self {
            id,
            instance_id: p.instance_id.clone(),
            client_id: p.client_id.clone(),
            client_host: p.client_host.clone(),
            session_timeout_ms: p.session_timeout_ms,
            rebalance_timeout_ms: p.rebalance_timeout_ms,
            protocol_type: p.protocol_type.clone(),
            protocols: p.protocols.clone(),
            assignment: Bytes::new(),
            last_heartbeat: now,
            join_waiter: None,
            sync_waiter: None,
        }
    }

    pub fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }

    pub(super) fn update(&mut self, p: &JoinParams) {
        self.protocols = p.protocols.clone();
        self.session_timeout_ms = p.session_timeout_ms;
        self.rebalance_timeout_ms = p.rebalance_timeout_ms;
        self.client_id = p.client_id.clone();
        self.client_host = p.client_host.clone();
    }

    pub(super) fn same_protocols(&self, p: &JoinParams) -> bool {
        self.protocols == p.protocols
    }
}
