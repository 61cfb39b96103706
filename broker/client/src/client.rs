//! A bootstrap connection plus lazily opened connections to other brokers,
//! and the lookups the CLI's commands share: metadata, partition leaders
//! (by node id) and group coordinators.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{ApiKey, FindCoordinatorRequest, MetadataRequest, MetadataResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use crate::conn::{Conn, Options};
use crate::errors::check;
use crate::{sb, topic_name};

/// A connection to the first reachable address of the comma-separated
/// `bootstrap` list (the last error when none is).
pub fn connect_bootstrap<P>(bootstrap: &str, opts: &Options) -> Result<Conn<P>> {
    let mut last = None;
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match Conn::connect(addr, opts) {
            Ok(conn) => return Ok(conn),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no bootstrap address given")))
}

/// A partition of a topic and the advertised `host:port` of its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLeader {
    pub partition: i32,
    pub leader: String,
}

/// The partitions of `topic` with their leaders' addresses, sorted by
/// partition (one Metadata request, never auto-creating), or the error code
/// that keeps them from being used yet: the topic's own error, or
/// LEADER_NOT_AVAILABLE for a partition whose leader is not (yet) known.
pub fn partition_leaders<P>(
    conn: &mut Conn<P>,
    topic: &str,
) -> Result<std::result::Result<Vec<PartitionLeader>, i16>> {
    const LEADER_NOT_AVAILABLE: i16 = 5;
    let v = conn.version(ApiKey::Metadata)?;
    let req = MetadataRequest::default()
        // Only v4+ can ask not to auto-create (and rejects the field below).
        .with_allow_auto_topic_creation(v < 4)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]));
    let resp = conn.call(&req)?;
    let brokers: HashMap<i32, String> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let Some(t) = resp.topics.into_iter().next() else {
        return Err(anyhow!("Metadata returned no topics"));
    };
    if t.error_code != 0 {
        return Ok(Err(t.error_code));
    }
    if t.partitions.is_empty() {
        return Ok(Err(LEADER_NOT_AVAILABLE));
    }
    let mut parts = Vec::with_capacity(t.partitions.len());
    for p in t.partitions {
        let Some(leader) = brokers.get(&p.leader_id.0) else {
            return Ok(Err(LEADER_NOT_AVAILABLE));
        };
        if p.error_code != 0 {
            return Ok(Err(p.error_code));
        }
        parts.push(PartitionLeader {
            partition: p.partition_index,
            leader: leader.clone(),
        });
    }
    parts.sort_by_key(|p| p.partition);
    Ok(Ok(parts))
}

/// The bootstrap connection plus lazily opened connections to other brokers.
pub struct Client {
    opts: Options,
    bootstrap: Conn,
    brokers: HashMap<i32, String>,
    conns: HashMap<i32, Conn>,
    /// Group -> coordinator node, from FindCoordinator.
    coordinators: HashMap<String, i32>,
    pub controller: i32,
}

impl Client {
    /// Connect to the first reachable address of the comma-separated
    /// `bootstrap` list.
    pub fn connect(bootstrap: &str, opts: &Options) -> Result<Client> {
        Ok(Client {
            opts: opts.clone(),
            bootstrap: connect_bootstrap(bootstrap, opts)?,
            brokers: HashMap::new(),
            conns: HashMap::new(),
            coordinators: HashMap::new(),
            controller: -1,
        })
    }

    /// Metadata for `topics` (all topics when `None`), never auto-creating.
    pub fn metadata(&mut self, topics: Option<&[String]>) -> Result<MetadataResponse> {
        let version = self.bootstrap.version(ApiKey::Metadata)?;
        let req = MetadataRequest::default()
            // Only v4+ can ask not to auto-create (and rejects the field below).
            .with_allow_auto_topic_creation(version < 4)
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect()
            }));
        let (resp, _) = self.bootstrap.send(&req)?;
        for b in &resp.brokers {
            self.brokers
                .insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
        }
        self.controller = resp.controller_id.0;
        Ok(resp)
    }

    /// The bootstrap connection.
    pub fn bootstrap(&mut self) -> &mut Conn {
        &mut self.bootstrap
    }

    pub fn broker_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self.brokers.keys().copied().collect();
        ids.sort();
        ids
    }

    /// Connection to broker `node` (the bootstrap one if it has that address
    /// or the node is unknown).
    pub fn conn(&mut self, node: i32) -> Result<&mut Conn> {
        let Some(addr) = self.brokers.get(&node).cloned() else {
            return Ok(&mut self.bootstrap);
        };
        if addr == self.bootstrap.addr {
            return Ok(&mut self.bootstrap);
        }
        match self.conns.entry(node) {
            std::collections::hash_map::Entry::Occupied(e) => Ok(e.into_mut()),
            std::collections::hash_map::Entry::Vacant(v) => {
                let conn =
                    Conn::connect(&addr, &self.opts).with_context(|| format!("broker {node}"))?;
                Ok(v.insert(conn))
            }
        }
    }

    /// Connection to the controller for admin requests (any broker forwards
    /// them in KRaft clusters; the bootstrap broker when the id is unknown).
    pub fn admin_conn(&mut self) -> Result<&mut Conn> {
        if self.brokers.is_empty() {
            self.metadata(Some(&[]))?;
        }
        let controller = self.controller;
        self.conn(controller)
    }

    /// Connection to the coordinator of consumer group `group`.
    pub fn coordinator(&mut self, group: &str) -> Result<&mut Conn> {
        if self.brokers.is_empty() {
            self.metadata(Some(&[]))?;
        }
        let req = FindCoordinatorRequest::default()
            .with_key(sb(group))
            .with_key_type(0)
            .with_coordinator_keys(vec![sb(group)]);
        let version = self.bootstrap.version(ApiKey::FindCoordinator)?;
        let req = if version >= 4 {
            req.with_key(StrBytes::default())
        } else {
            req.with_coordinator_keys(vec![])
        };
        if let Some(node) = self.coordinators.get(group).copied() {
            return self.conn(node);
        }
        // A fresh cluster may answer COORDINATOR_NOT_AVAILABLE (or another
        // retriable error) while it sets up its offsets topic: retry a while.
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        let (node, host, port) = loop {
            let (resp, _) = self.bootstrap.send(&req)?;
            let (code, message, found) = if version >= 4 {
                let c = resp.coordinators.into_iter().next().ok_or_else(|| {
                    anyhow!("FindCoordinator returned no coordinator for {group}")
                })?;
                (
                    c.error_code,
                    c.error_message,
                    (c.node_id.0, c.host.to_string(), c.port),
                )
            } else {
                let found = (resp.node_id.0, resp.host.to_string(), resp.port);
                (resp.error_code, resp.error_message, found)
            };
            let retriable = ResponseError::try_from_code(code).is_some_and(|e| e.is_retriable());
            if code == 0 || !retriable || std::time::Instant::now() >= deadline {
                check(
                    code,
                    format!("finding coordinator of group {group}"),
                    message.as_ref(),
                )?;
                break found;
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        self.coordinators.insert(group.to_string(), node);
        self.brokers
            .entry(node)
            .or_insert_with(|| format!("{host}:{port}"));
        self.conn(node)
    }
}
