//! The quorum's state machine driver, without threads or sockets.
//!
//! [`QuorumCore`] owns raft-rs's `RawNode` (the consensus: elections, log
//! replication, commit), the durable log ([`MetaStorage`]) and the state
//! machine ([`ClusterState`] and its pure `apply`). Its inputs are calls —
//! a clock tick, a message from a peer, a proposal — and its output is what
//! to send to whom and which proposals finished. Nothing in it reads a
//! clock or a socket, so the thread in `node.rs` runs it for real and the
//! tests in `sim_tests.rs` run several of them in one thread with a seeded
//! network that drops, delays and partitions.
//!
//! The order of a ready cycle is raft-rs's (see `RawNode::ready`): send
//! the leader's messages, install a snapshot, apply committed entries,
//! persist new entries and the hard state and sync, then send the messages
//! that must follow persistence, then advance.

use std::collections::HashMap;
use std::sync::Arc;

use protobuf::Message as _;
use raft::prelude::{ConfChange, ConfChangeV2, ConfState, Entry, EntryType, Message};
use raft::{RawNode, StateRole};

use super::image;
use super::storage::{Bootstrap, MetaStorage};
use crate::metadata::{ClusterState, Effect, MetadataCommand};

/// Raft's clock: the node thread ticks every `TICK_MS`.
pub const TICK_MS: u64 = 100;
/// An election after 1–2 s without a leader (10–20 ticks); heartbeats every 200 ms.
const ELECTION_TICKS: usize = 10;
const HEARTBEAT_TICKS: usize = 2;
/// Most undelivered proposals kept for another try (see
/// [`QuorumCore::undelivered`]).
const MAX_UNDELIVERED: usize = 1024;
/// A proposal not applied within this many ticks (10 s) is answered
/// `TimedOut`: its forward to the leader, or the leader, was lost. (It may
/// still commit later, as a Kafka request that timed out may have
/// happened; its caller is told it is unknown.)
pub const PROPOSAL_TIMEOUT_TICKS: u64 = 100;

/// An entry's context names its proposal: the proposing node's raft id and
/// the proposal's id, 8 bytes each, little-endian. Every copy of a proposal
/// carries the same one, and `apply` keeps only the first copy (see
/// `crate::metadata::proposals`).
const CONTEXT_LEN: usize = 16;

/// Which proposal an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProposalId {
    origin: u64,
    id: u64,
}

impl ProposalId {
    fn parse(ctx: &[u8]) -> Option<Self> {
        (ctx.len() == CONTEXT_LEN).then(|| Self {
            origin: u64::from_le_bytes(ctx[..8].try_into().expect("8 bytes")),
            id: u64::from_le_bytes(ctx[8..16].try_into().expect("8 bytes")),
        })
    }

    fn encode(&self) -> Vec<u8> {
        let mut ctx = Vec::with_capacity(CONTEXT_LEN);
        ctx.extend_from_slice(&self.origin.to_le_bytes());
        ctx.extend_from_slice(&self.id.to_le_bytes());
        ctx
    }
}

/// Whether a proposal goes to the next leader when the one it was sent to
/// loses the leadership before committing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// A broker's or client's request (an admin change, an ISR change): the
    /// change is wanted whoever leads, as Kafka's broker-to-controller
    /// channel re-sends a request to the new controller.
    ToNewLeader,
    /// The active controller's own decision (fencing a silent broker),
    /// taken from what it saw while it led: a new leader decides afresh.
    Never,
}

/// A resendable proposal's entry, and the (term, leader) it was last sent
/// under.
struct Sent {
    ctx: Vec<u8>,
    data: Vec<u8>,
    term: u64,
    leader: u64,
}

/// A proposal waiting to be applied.
struct Pending<W> {
    waiter: W,
    /// The tick it times out at.
    deadline: u64,
    sent: Option<Sent>,
}

/// Why a proposal did not commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeError {
    /// This node does not lead the quorum (Kafka's NOT_CONTROLLER).
    NotLeader { leader: Option<u64> },
    /// Committed, but `apply` refused it (the state is unchanged).
    Rejected(String),
    /// The log could not take it (encoding, size).
    Invalid(String),
    /// Not applied in time (see [`PROPOSAL_TIMEOUT_TICKS`]).
    TimedOut,
}

impl std::fmt::Display for ProposeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProposeError::NotLeader { leader: Some(l) } => {
                write!(f, "this node is not the active controller (node {l} is)")
            }
            ProposeError::NotLeader { leader: None } => {
                write!(
                    f,
                    "this node is not the active controller (no controller is elected)"
                )
            }
            ProposeError::Rejected(m) | ProposeError::Invalid(m) => f.write_str(m),
            ProposeError::TimedOut => f.write_str(
                "the metadata change was not committed in time (the active controller \
                 changed or is unreachable); whether it happened is unknown",
            ),
        }
    }
}

/// What one cycle produced.
pub struct Output<W> {
    /// Messages for peers (`to` names the peer).
    pub messages: Vec<Message>,
    /// Proposals that finished, with their result.
    pub done: Vec<(W, Result<Effect, ProposeError>)>,
}

impl<W> Default for Output<W> {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            done: Vec::new(),
        }
    }
}

/// How a node starts.
#[derive(Clone)]
pub struct CoreConfig {
    pub node_id: u64,
    /// The voters a new log starts with (`controller_quorum_voters`).
    pub voters: Vec<u64>,
    /// State to start a new log from (a single node's metadata file).
    pub legacy: Option<ClusterState>,
    pub snapshot_every: u64,
    /// Where this process's proposal ids start: different for each start
    /// (a random number), so an entry proposed before a restart is never
    /// taken for one proposed after it.
    pub first_proposal: u64,
}

pub struct QuorumCore<W> {
    node: RawNode<MetaStorage>,
    id: u64,
    state: ClusterState,
    applied: u64,
    conf_state: ConfState,
    /// Proposals waiting to be applied, by proposal id.
    pending: HashMap<u64, Pending<W>>,
    /// Proposals forwarded to a leader that never received them (the
    /// transport could not deliver): (context, command, leader it missed,
    /// tick it failed at), proposed again once a leader can take them.
    undelivered: Vec<(Vec<u8>, Vec<u8>, u64, u64)>,
    next_proposal: u64,
    ticks: u64,
    snapshot_every: u64,
    /// The state changed since [`QuorumCore::take_changed`].
    changed: bool,
    /// Proposals sent again to a new leader, and copies `apply` skipped.
    resent: u64,
    duplicates: u64,
    /// Every proposal applied (not skipped), in order: the simulation
    /// checks none is applied twice.
    #[cfg(test)]
    pub applied_ids: Vec<(u64, u64)>,
}

impl<W> QuorumCore<W> {
    pub fn open(dir: &std::path::Path, cfg: CoreConfig) -> anyhow::Result<Self> {
        assert!(cfg.node_id > 0, "raft node ids start at 1");
        let voters = cfg.voters.clone();
        let legacy = cfg.legacy;
        let store = MetaStorage::open(dir, || Bootstrap {
            conf_state: ConfState::from((voters, vec![])),
            image: legacy.as_ref().map(image::encode),
        })?;
        let snap = store.snapshot_ref().clone();
        let state = if snap.data.is_empty() {
            ClusterState::default()
        } else {
            image::decode(&snap.data).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        };
        let applied = snap.get_metadata().index;
        let conf_state = snap.get_metadata().get_conf_state().clone();
        let config = raft::Config {
            id: cfg.node_id,
            election_tick: ELECTION_TICKS,
            heartbeat_tick: HEARTBEAT_TICKS,
            applied,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 64,
            check_quorum: true,
            pre_vote: true,
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| anyhow::anyhow!("raft config: {e}"))?;
        let node = RawNode::new(&config, store, &super::log::logger(cfg.node_id))
            .map_err(|e| anyhow::anyhow!("starting the metadata quorum: {e}"))?;
        let mut core = Self {
            node,
            id: cfg.node_id,
            state,
            applied,
            conf_state,
            pending: HashMap::new(),
            undelivered: Vec::new(),
            next_proposal: cfg.first_proposal,
            ticks: 0,
            snapshot_every: cfg.snapshot_every.max(1),
            changed: true,
            resent: 0,
            duplicates: 0,
            #[cfg(test)]
            applied_ids: Vec::new(),
        };
        // A quorum of one elects itself now rather than after a timeout.
        if core.conf_state.voters == [core.id] && core.conf_state.learners.is_empty() {
            core.node
                .campaign()
                .map_err(|e| anyhow::anyhow!("campaigning: {e}"))?;
        }
        Ok(core)
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// Whether this node leads now: raft's own state, which a message just
    /// stepped may have changed before the next ready cycle. A leader that
    /// was paused (a long stall, SIGSTOP) and hears a newer term is a
    /// follower from that message on; going by the last cycle's role it
    /// would act as the active controller once more, and the proposals it
    /// then made (fencing every broker its stale sessions found silent)
    /// raft forwards to the new leader, which commits them.
    pub fn is_leader(&self) -> bool {
        self.node.raft.state == StateRole::Leader
    }

    /// The leader this node knows of.
    pub fn leader(&self) -> Option<u64> {
        let leader = self.node.raft.leader_id;
        (leader != raft::INVALID_ID).then_some(leader)
    }

    pub fn term(&self) -> u64 {
        self.node.raft.term
    }

    /// For each peer the leader tracks: (node, matched index).
    pub fn progress(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .node
            .raft
            .prs()
            .iter()
            .map(|(id, pr)| (*id, pr.matched))
            .collect();
        v.sort_unstable();
        v
    }

    /// Hand the leadership to the voter most caught up (raft's leader
    /// transfer: it campaigns at once instead of after an election
    /// timeout). Returns it; `None` when this node does not lead or no
    /// other voter exists.
    pub fn transfer_leadership(&mut self) -> Option<u64> {
        if !self.is_leader() {
            return None;
        }
        let voters = self.conf_state.voters.clone();
        // Among the voters heard from lately (raft's check-quorum flag): a
        // stopped one would take the leadership nowhere.
        let to = self
            .node
            .raft
            .prs()
            .iter()
            .filter(|(id, pr)| **id != self.id && voters.contains(id) && pr.recent_active)
            .map(|(id, pr)| (*id, pr.matched))
            .max_by_key(|(id, matched)| (*matched, std::cmp::Reverse(*id)))?
            .0;
        self.node.transfer_leader(to);
        Some(to)
    }

    /// The proposals waiting for their entries, taken (to answer them when
    /// this core is given up).
    pub fn take_pending(&mut self) -> Vec<W> {
        self.pending.drain().map(|(_, p)| p.waiter).collect()
    }

    /// How many proposals were sent again to a new leader, and how many
    /// committed copies were skipped as already applied.
    pub fn resend_counts(&self) -> (u64, u64) {
        (self.resent, self.duplicates)
    }

    /// True once since the state last changed.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Forwarded proposals the transport failed to hand to `leader` (it
    /// never received them, so proposing them again cannot apply one
    /// twice). raft-rs forwards a follower's proposal to the leader it
    /// knows and forgets it; when that leader has just died the proposal
    /// would wait out its timeout although a new leader is elected within
    /// a second or two. They go out again at the next tick with a leader
    /// (a new one, or the same one a tick later), until their deadline.
    pub fn undelivered(&mut self, leader: u64, entries: Vec<raft::prelude::Entry>) {
        for mut e in entries {
            let mine = ProposalId::parse(&e.context)
                .is_some_and(|p| p.origin == self.id && self.pending.contains_key(&p.id));
            if mine && self.undelivered.len() < MAX_UNDELIVERED {
                self.undelivered.push((
                    std::mem::take(&mut e.context).to_vec(),
                    std::mem::take(&mut e.data).to_vec(),
                    leader,
                    self.ticks,
                ));
            }
        }
    }

    fn resubmit_undelivered(&mut self) {
        // raft's own view: the soft state cached in `leader` lags a cycle.
        let leader = self.node.raft.leader_id;
        if leader == raft::INVALID_ID || self.undelivered.is_empty() {
            return;
        }
        let now = self.ticks;
        for (ctx, data, missed, at) in std::mem::take(&mut self.undelivered) {
            let pid = ProposalId::parse(&ctx).expect("checked when kept").id;
            if !self.pending.contains_key(&pid) {
                continue; // timed out meanwhile
            }
            if missed == leader && at >= now {
                self.undelivered.push((ctx, data, missed, at));
                continue;
            }
            if let Err(e) = self.node.propose(ctx.clone(), data.clone()) {
                tracing::debug!(target: "raft", "proposal {pid} not proposed again yet: {e}");
                self.undelivered.push((ctx, data, missed, now));
            }
        }
    }

    /// Send the resendable proposals not applied yet to the leader, when
    /// it is not the one (or the term) they were sent under. The old leader
    /// may have died with them uncommitted, or been deposed and its log cut;
    /// if it did commit one, or the new leader holds it, the copy commits
    /// too and `apply` skips it (its id is in the state's window). Kafka's
    /// broker-to-controller channel re-sends a request the same way when
    /// the controller it went to is gone.
    fn resend_to_new_leader(&mut self) {
        let (term, leader) = (self.node.raft.term, self.node.raft.leader_id);
        if leader == raft::INVALID_ID {
            return; // an election is under way: once it is won
        }
        let mut stale: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| {
                p.sent
                    .as_ref()
                    .is_some_and(|s| (s.term, s.leader) != (term, leader))
            })
            .map(|(pid, _)| *pid)
            .collect();
        stale.sort_unstable(); // ids grow: the order they were proposed in
        for pid in stale {
            let sent = self.pending.get_mut(&pid).and_then(|p| p.sent.as_mut());
            let sent = sent.expect("chosen above");
            match self.node.propose(sent.ctx.clone(), sent.data.clone()) {
                Ok(()) => {
                    tracing::info!(
                        target: "raft",
                        "proposal {pid} sent again, to node {} in term {term} (was node {} in term {})",
                        leader as i64 - 1,
                        sent.leader as i64 - 1,
                        sent.term
                    );
                    (sent.term, sent.leader) = (term, leader);
                    self.resent += 1;
                }
                // A leader transfer in progress drops proposals: next tick.
                Err(e) => tracing::debug!(target: "raft", "proposal {pid} not sent again yet: {e}"),
            }
        }
    }

    /// Raft's clock; returns the proposals that timed out.
    pub fn tick(&mut self) -> Vec<W> {
        self.node.tick();
        self.ticks += 1;
        self.resubmit_undelivered();
        self.resend_to_new_leader();
        let now = self.ticks;
        let expired: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(pid, _)| *pid)
            .collect();
        expired
            .into_iter()
            .filter_map(|pid| self.pending.remove(&pid).map(|p| p.waiter))
            .collect()
    }

    /// A message from a peer. Errors (a message from a node not in the
    /// configuration, a stale one) are raft's to ignore.
    pub fn step(&mut self, msg: Message) {
        if let Err(e) = self.node.step(msg) {
            tracing::debug!(target: "raft", "dropped a message: {e}");
        }
    }

    /// Whether a snapshot message to `to` reached it: raft-rs holds that
    /// follower's replication until it hears (the transport must say).
    pub fn report_snapshot(&mut self, to: u64, delivered: bool) {
        let status = if delivered {
            raft::SnapshotStatus::Finish
        } else {
            raft::SnapshotStatus::Failure
        };
        self.node.report_snapshot(to, status);
    }

    /// A peer could not be reached: raft probes it instead of streaming.
    pub fn report_unreachable(&mut self, to: u64) {
        self.node.report_unreachable(to);
    }

    /// Add `raft_id` to the quorum as a learner (a broker that does not
    /// vote: it receives the log). Applied like any entry; raft-rs takes one
    /// configuration change at a time, so a second one while the first is
    /// pending is dropped (the caller asks again later).
    pub fn add_learner(&mut self, raft_id: u64) -> Result<(), ProposeError> {
        if !self.is_leader() {
            return Err(ProposeError::NotLeader {
                leader: self.leader(),
            });
        }
        let mut cc = ConfChange::default();
        cc.set_change_type(raft::prelude::ConfChangeType::AddLearnerNode);
        cc.node_id = raft_id;
        self.node
            .propose_conf_change(Vec::new(), cc)
            .map_err(|e| ProposeError::Invalid(e.to_string()))
    }

    /// Voters and learners.
    pub fn conf_state(&self) -> &ConfState {
        &self.conf_state
    }

    /// The id the next proposal gets: a core reopened in the same process
    /// starts from here (ids are never reused within a process).
    pub fn next_proposal_id(&self) -> u64 {
        self.next_proposal
    }

    /// The committed index.
    pub fn commit_index(&self) -> u64 {
        self.node.raft.raft_log.committed
    }

    /// The last index in this node's log.
    pub fn last_index(&self) -> u64 {
        self.node.raft.raft_log.last_index()
    }

    /// Propose `cmd`; `waiter` comes back in [`Output::done`] once it is
    /// committed and applied (or refused, or timed out). A follower's
    /// proposal goes to the leader (raft-rs forwards it); the entry carries
    /// this node's id and the proposal's, so the follower knows it when it
    /// applies it. `resend` says whether it follows a change of leader.
    pub fn propose(
        &mut self,
        cmd: &MetadataCommand,
        waiter: W,
        resend: Resend,
    ) -> Result<(), (W, ProposeError)> {
        if self.leader().is_none() {
            return Err((waiter, ProposeError::NotLeader { leader: None }));
        }
        let data = match serde_json::to_vec(cmd) {
            Ok(d) if d.len() < super::storage::MAX_RECORD / 2 => d,
            Ok(d) => {
                return Err((
                    waiter,
                    ProposeError::Invalid(format!(
                        "a metadata change of {} bytes is too large",
                        d.len()
                    )),
                ))
            }
            Err(e) => return Err((waiter, ProposeError::Invalid(e.to_string()))),
        };
        let pid = self.next_proposal;
        self.next_proposal += 1;
        let ctx = ProposalId {
            origin: self.id,
            id: pid,
        }
        .encode();
        let sent = (resend == Resend::ToNewLeader).then(|| Sent {
            ctx: ctx.clone(),
            data: data.clone(),
            term: self.node.raft.term,
            leader: self.node.raft.leader_id,
        });
        match self.node.propose(ctx, data) {
            Ok(()) => {
                let deadline = self.ticks + PROPOSAL_TIMEOUT_TICKS;
                let pending = Pending {
                    waiter,
                    deadline,
                    sent,
                };
                assert!(
                    self.pending.insert(pid, pending).is_none(),
                    "ids are unique"
                );
                Ok(())
            }
            Err(e) => Err((
                waiter,
                match e {
                    raft::Error::ProposalDropped => ProposeError::NotLeader {
                        leader: self.leader(),
                    },
                    other => ProposeError::Invalid(other.to_string()),
                },
            )),
        }
    }

    /// Run ready cycles until raft has nothing more to do.
    pub fn process(&mut self) -> anyhow::Result<Output<W>> {
        let mut out = Output::default();
        while self.node.has_ready() {
            self.cycle(&mut out)?;
        }
        Ok(out)
    }

    fn cycle(&mut self, out: &mut Output<W>) -> anyhow::Result<()> {
        // A change of leader keeps the pending proposals: they may still
        // commit under the new leader, and apply here then; else they time
        // out.
        let mut rd = self.node.ready();
        out.messages.extend(rd.take_messages());
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            let state = image::decode(&snap.data)
                .map_err(|e| anyhow::anyhow!("snapshot from the leader: {e}"))?;
            self.node.mut_store().apply_snapshot(&snap)?;
            self.state = state;
            self.applied = snap.get_metadata().index;
            self.conf_state = snap.get_metadata().get_conf_state().clone();
            self.changed = true;
            tracing::info!(
                "installed the leader's metadata snapshot at index {} ({} bytes, {} topics)",
                self.applied,
                snap.data.len(),
                self.state.topics.len()
            );
        }
        self.apply_entries(rd.take_committed_entries(), out)?;
        if !rd.entries().is_empty() {
            self.node.mut_store().append(rd.entries())?;
        }
        if let Some(hs) = rd.hs() {
            self.node.mut_store().set_hard_state(hs)?;
        }
        self.node.mut_store().sync()?;
        out.messages.extend(rd.take_persisted_messages());
        let mut light = self.node.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().set_commit(commit)?;
        }
        out.messages.extend(light.take_messages());
        self.apply_entries(light.take_committed_entries(), out)?;
        self.node.advance_apply();
        self.maybe_snapshot()?;
        Ok(())
    }

    fn apply_entries(&mut self, entries: Vec<Entry>, out: &mut Output<W>) -> anyhow::Result<()> {
        for e in entries {
            assert_eq!(e.index, self.applied + 1, "entries apply in order, once");
            self.applied = e.index;
            match e.get_entry_type() {
                EntryType::EntryNormal => {
                    if e.data.is_empty() {
                        continue; // a new leader's empty entry
                    }
                    let id = ProposalId::parse(&e.context);
                    if let Some(p) = id {
                        if self.state.applied_proposals.contains(p.origin, p.id) {
                            // A copy of a proposal sent again (to a new
                            // leader, or after the transport lost it); the
                            // first one applied and was answered.
                            self.duplicates += 1;
                            tracing::info!(
                                target: "raft",
                                "entry {} is a copy of node {}'s proposal {}, applied already; skipped",
                                e.index,
                                p.origin as i64 - 1,
                                p.id
                            );
                            continue;
                        }
                        // Whatever the outcome (applied or refused), it is
                        // the proposal's, once.
                        Arc::make_mut(&mut self.state.applied_proposals).record(p.origin, p.id);
                    }
                    #[cfg(test)]
                    if let Some(p) = id {
                        self.applied_ids.push((p.origin, p.id));
                    }
                    debug_assert!(id.is_some() || e.context.is_empty());
                    // Every node applies the same commands the same way,
                    // whatever its own shard count (usize::MAX: no bound);
                    // the broker checks placements against its shards.
                    let result = match serde_json::from_slice::<MetadataCommand>(&e.data) {
                        Ok(cmd) => self
                            .state
                            .apply(&cmd, usize::MAX)
                            .map_err(ProposeError::Rejected),
                        Err(err) => {
                            // Every node decodes the same bytes the same way,
                            // so skipping keeps them all in step.
                            tracing::error!(
                                "metadata log entry {} is not a command this build knows ({err}); skipped",
                                e.index
                            );
                            Err(ProposeError::Invalid(err.to_string()))
                        }
                    };
                    if result.is_ok() {
                        self.changed = true;
                    }
                    if let Some(w) = id.and_then(|p| self.proposal_of(p)) {
                        out.done.push((w, result));
                    }
                }
                EntryType::EntryConfChange => {
                    let cc = ConfChange::parse_from_bytes(&e.data)?;
                    let applied = self.node.apply_conf_change(&cc);
                    self.conf_changed(applied)?;
                }
                EntryType::EntryConfChangeV2 => {
                    let cc = ConfChangeV2::parse_from_bytes(&e.data)?;
                    let applied = self.node.apply_conf_change(&cc);
                    self.conf_changed(applied)?;
                }
            }
        }
        Ok(())
    }

    fn conf_changed(&mut self, applied: raft::Result<ConfState>) -> anyhow::Result<()> {
        self.conf_state =
            applied.map_err(|e| anyhow::anyhow!("applying a quorum configuration change: {e}"))?;
        self.changed = true;
        Ok(())
    }

    fn proposal_of(&mut self, p: ProposalId) -> Option<W> {
        if p.origin != self.id {
            return None;
        }
        self.pending.remove(&p.id).map(|p| p.waiter)
    }

    fn maybe_snapshot(&mut self) -> anyhow::Result<()> {
        let store = self.node.store();
        let snap_index = store.snapshot_ref().get_metadata().index;
        if self.applied < snap_index + self.snapshot_every
            || self.applied > store.hard_state().commit
        {
            return Ok(());
        }
        let data = image::encode(&self.state);
        let (applied, conf) = (self.applied, self.conf_state.clone());
        self.node.mut_store().compact_to(applied, conf, data)
    }
}
