//! The active controller's part of the quorum thread: broker registrations
//! and heartbeats, and fencing brokers that fall silent (Kafka's
//! `BrokerHeartbeatManager`).
//!
//! Only the quorum leader answers these; liveness is its memory, not the
//! log: a new leader gives every broker a full session before fencing it,
//! as Kafka's new active controller does. What the log records are the
//! decisions — `RegisterBroker`, `FenceBroker`, `UnfenceBroker` — so every
//! node agrees on who is fenced and who leads what.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::core::{ProposeError, QuorumCore, Resend};
use super::node::Reply;
use crate::metadata::{BrokerMeta, ClusterState, Effect, MetadataCommand};

/// A request the controller listener (or this node's own broker) brings
/// to the quorum thread.
#[derive(Debug)]
pub enum Rpc {
    Register(BrokerMeta),
    Heartbeat {
        id: i32,
        epoch: i64,
        /// The broker has not caught up with the log yet (stay fenced).
        want_fence: bool,
        /// Controlled shutdown: fence it and move its leaderships now.
        want_shut_down: bool,
    },
    DescribeQuorum,
}

#[derive(Debug)]
pub enum RpcAnswer {
    /// Not the active controller; the leader it knows of (a node id).
    NotController(Option<i32>),
    /// The registration is proposed: its epoch comes on the receiver.
    Registering(oneshot::Receiver<Result<Effect, ProposeError>>),
    /// The registration cannot be taken (a bad request).
    Refused(String),
    Heartbeat(HeartbeatAnswer),
    Quorum(QuorumStatus),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAnswer {
    /// The broker registered again since (or never did): register.
    Stale,
    Alive {
        fenced: bool,
        /// Its controlled shutdown is done: it leads nothing any more.
        shut_down: bool,
    },
}

/// What DescribeQuorum reports (Kafka's names).
#[derive(Debug, Clone, Default)]
pub struct QuorumStatus {
    pub leader_id: i32,
    pub leader_epoch: i32,
    pub high_watermark: i64,
    pub voters: Vec<ReplicaState>,
    pub observers: Vec<ReplicaState>,
}

#[derive(Debug, Clone, Default)]
pub struct ReplicaState {
    pub node_id: i32,
    pub log_end_offset: i64,
    /// Milliseconds since the epoch; -1 unknown.
    pub last_fetch_timestamp: i64,
    pub last_caught_up_timestamp: i64,
}

/// Liveness of brokers, kept by the leader.
pub struct Sessions {
    last_heard: HashMap<i32, Instant>,
    /// When a raft message last came from each peer (by raft id).
    pub peer_heard: HashMap<u64, Instant>,
    /// Fence/unfence proposals in flight, so each is proposed once.
    proposed: HashMap<i32, (i64, bool)>,
    timeout: Duration,
    /// The raft term `last_heard` was started in (by [`Sessions::on_elected`]).
    term: u64,
}

impl Sessions {
    pub fn new(timeout: Duration) -> Self {
        Self {
            last_heard: HashMap::new(),
            peer_heard: HashMap::new(),
            proposed: HashMap::new(),
            timeout,
            term: 0,
        }
    }

    /// Whether the sessions were started when this node was elected in
    /// `term` (a node deposed and elected again between two looks at its
    /// role starts them again).
    pub fn started_in(&self, term: u64) -> bool {
        self.term == term
    }

    /// This node just became the leader in `term`: every broker starts a
    /// session.
    pub fn on_elected(&mut self, state: &ClusterState, now: Instant, term: u64) {
        self.last_heard = state.brokers.keys().map(|id| (*id, now)).collect();
        self.proposed.clear();
        self.term = term;
    }

    /// Fence the brokers whose sessions ran out. Only a leader does: a
    /// follower's proposal would be forwarded to the leader, carrying this
    /// node's view of sessions, which is not the leader's.
    pub fn fence_expired<W: Default>(&mut self, core: &mut QuorumCore<W>, now: Instant) {
        if !core.is_leader() || core.term() != self.term {
            return;
        }
        let state = core.state();
        self.proposed.retain(|id, (epoch, fence)| {
            // Done once the state shows it (or the broker moved on).
            state
                .brokers
                .get(id)
                .is_some_and(|b| b.epoch == *epoch && b.fenced != *fence)
        });
        let expired: Vec<(i32, i64)> = state
            .live_brokers()
            .filter(|b| {
                self.last_heard
                    .get(&b.id)
                    .is_none_or(|t| now.duration_since(*t) > self.timeout)
            })
            .filter(|b| !self.proposed.contains_key(&b.id))
            .map(|b| (b.id, b.epoch))
            .collect();
        for (id, epoch) in expired {
            tracing::warn!(
                "broker {id} sent no heartbeat for {:?}: fencing it",
                self.timeout
            );
            if core
                .propose(
                    &MetadataCommand::FenceBroker { id, epoch },
                    W::default(),
                    Resend::Never,
                )
                .is_ok()
            {
                self.proposed.insert(id, (epoch, true));
            }
        }
    }

    /// Answer `rpc` (the caller is the quorum thread, `core` the leader or not).
    pub fn handle<W: Default + From<Reply>>(
        &mut self,
        core: &mut QuorumCore<W>,
        rpc: Rpc,
        now: Instant,
    ) -> RpcAnswer {
        if let Rpc::DescribeQuorum = rpc {
            if !core.is_leader() {
                return RpcAnswer::NotController(leader_node(core));
            }
            return RpcAnswer::Quorum(describe(core, &self.peer_heard, now));
        }
        if !core.is_leader() {
            return RpcAnswer::NotController(leader_node(core));
        }
        match rpc {
            Rpc::Register(b) => {
                if let Err(e) = ensure_in_quorum(core, b.id) {
                    return RpcAnswer::Refused(e.to_string());
                }
                let id = b.id;
                let (tx, rx) = oneshot::channel();
                match core.propose(
                    &MetadataCommand::RegisterBroker(b),
                    W::from(tx),
                    Resend::Never,
                ) {
                    Ok(()) => {
                        self.last_heard.insert(id, now);
                        RpcAnswer::Registering(rx)
                    }
                    Err((_, ProposeError::NotLeader { .. })) => {
                        RpcAnswer::NotController(leader_node(core))
                    }
                    Err((_, e)) => RpcAnswer::Refused(e.to_string()),
                }
            }
            Rpc::Heartbeat {
                id,
                epoch,
                want_fence,
                want_shut_down,
            } => {
                let Some(b) = core.state().brokers.get(&id).cloned() else {
                    return RpcAnswer::Heartbeat(HeartbeatAnswer::Stale);
                };
                if b.epoch != epoch {
                    return RpcAnswer::Heartbeat(HeartbeatAnswer::Stale);
                }
                self.last_heard.insert(id, now);
                if want_fence {
                    // Not caught up: perhaps its learner change was dropped
                    // (raft-rs takes one at a time); ask again.
                    let _ = ensure_in_quorum(core, id);
                }
                if want_shut_down {
                    // Kafka's controlled shutdown: the broker is fenced now
                    // rather than when its session runs out, and the same
                    // command elects new leaders for what it led (or marks
                    // them offline when no other replica is in sync).
                    if !b.fenced && !self.proposed.contains_key(&id) {
                        let cmd = MetadataCommand::FenceBroker { id, epoch };
                        if core.propose(&cmd, W::default(), Resend::Never).is_ok() {
                            tracing::info!(
                                "broker {id} is shutting down: fencing it and moving its leaderships"
                            );
                            self.proposed.insert(id, (epoch, true));
                        }
                    }
                } else if b.fenced && !want_fence && !self.proposed.contains_key(&id) {
                    let cmd = MetadataCommand::UnfenceBroker { id, epoch };
                    if core.propose(&cmd, W::default(), Resend::Never).is_ok() {
                        tracing::info!("broker {id} is alive: unfencing it");
                        self.proposed.insert(id, (epoch, false));
                    }
                }
                RpcAnswer::Heartbeat(HeartbeatAnswer::Alive {
                    fenced: b.fenced,
                    shut_down: want_shut_down && b.fenced,
                })
            }
            Rpc::DescribeQuorum => unreachable!("answered above"),
        }
    }
}

/// A broker that does not vote still needs the log: it joins raft as a
/// learner (proposed before its registration, so it gets that too). A
/// change proposed while another is pending is dropped by raft-rs, so the
/// broker's heartbeats ask again until it is in.
fn ensure_in_quorum<W>(core: &mut QuorumCore<W>, node: i32) -> Result<(), ProposeError> {
    let raft_id = super::raft_id(node);
    let cs = core.conf_state();
    if cs.voters.contains(&raft_id) || cs.learners.contains(&raft_id) {
        return Ok(());
    }
    core.add_learner(raft_id)?;
    tracing::info!("broker {node} joins the metadata quorum as a learner");
    Ok(())
}

/// The leader as a Kafka node id.
fn leader_node<W>(core: &QuorumCore<W>) -> Option<i32> {
    core.leader().map(|l| l as i32 - 1)
}

fn describe<W>(core: &QuorumCore<W>, heard: &HashMap<u64, Instant>, now: Instant) -> QuorumStatus {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let heard_ms = |raft_id: u64| {
        if raft_id == core.id() {
            return now_ms;
        }
        heard
            .get(&raft_id)
            .map_or(-1, |t| now_ms - now.duration_since(*t).as_millis() as i64)
    };
    let cs = core.conf_state();
    let progress = core.progress();
    let last = core.last_index() as i64;
    let replica = |raft_id: u64| {
        let matched = if raft_id == core.id() {
            last
        } else {
            progress
                .iter()
                .find(|(id, _)| *id == raft_id)
                .map_or(-1, |(_, m)| *m as i64)
        };
        let fetched = heard_ms(raft_id);
        ReplicaState {
            node_id: raft_id as i32 - 1,
            log_end_offset: matched,
            // The last message from the replica: raft pushes, so an answer
            // to an append stands for Kafka's fetch.
            last_fetch_timestamp: fetched,
            last_caught_up_timestamp: if matched >= core.commit_index() as i64 {
                fetched
            } else {
                -1
            },
        }
    };
    QuorumStatus {
        leader_id: core.id() as i32 - 1,
        leader_epoch: core.term() as i32,
        high_watermark: core.commit_index() as i64,
        voters: cs.voters.iter().map(|v| replica(*v)).collect(),
        observers: cs.learners.iter().map(|v| replica(*v)).collect(),
    }
}
