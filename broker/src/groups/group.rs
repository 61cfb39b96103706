//! One classic consumer group: Kafka's state machine (Empty →
//! PreparingRebalance → CompletingRebalance → Stable, Dead when deleted),
//! members and generations, static membership (KIP-345) and the committed
//! offsets. Pure and synchronous: every entry point takes `now` (ms) so the
//! timers can be driven by tests without sleeping; callers that must wait
//! (JoinGroup, SyncGroup) get a oneshot receiver that a later call resolves.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use futures::channel::oneshot;
use indexmap::IndexMap;
use kafka_protocol::ResponseError;

pub use super::member::Member;

pub use super::group_types::*;

#[derive(Debug)]
pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: IndexMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, and when they lapse.
    pub(super) pending: HashMap<String, i64>,
    /// Static members: instance id → current member id.
    pub static_members: HashMap<String, String>,
    /// End of the join phase (PreparingRebalance) or of the sync phase.
    pub(super) deadline: Option<i64>,
    /// Inside `group.initial.rebalance.delay.ms`: joins do not complete yet.
    initial_delay: bool,
    initial_delay_left: i64,
    new_member_in_delay: bool,
    /// When the group last changed state (offset expiry of Empty groups).
    pub state_timestamp: i64,
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Offsets of open transactions, by producer id (`txn_offsets.rs`).
    pub pending_txn: HashMap<i64, super::txn_offsets::PendingOffsets>,
    /// Group metadata changed in a way that must reach the group log.
    pub dirty: bool,
}

fn err_code(e: ResponseError) -> i16 {
    e.code()
}

impl Group {
    pub fn new(id: String, now: i64) -> Self {
        Self {
            id,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: IndexMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            deadline: None,
            initial_delay: false,
            initial_delay_left: 0,
            new_member_in_delay: false,
            state_timestamp: now,
            offsets: BTreeMap::new(),
            pending_txn: HashMap::new(),
            dirty: false,
        }
    }

    fn set_state(&mut self, state: GroupState, now: i64) {
        // A wrong move here is a coordinator bug that would hand out
        // generations or assignments Kafka never would. Tests and the
        // simulation stop on it (Kafka's `assertValidTransition`); a
        // running broker logs it loudly rather than take every
        // connection of the shard down with a panic.
        let legal = state.may_follow(self.state);
        debug_assert!(
            legal,
            "group {}: illegal transition {} -> {}",
            self.id,
            self.state.name(),
            state.name()
        );
        if !legal {
            tracing::error!(
                "group {}: illegal transition {} -> {} (a coordinator bug; please report it)",
                self.id,
                self.state.name(),
                state.name()
            );
        }
        self.state = state;
        self.state_timestamp = now;
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        let mut members = self.members.values();
        let Some(first) = members.next() else {
            return Vec::new();
        };
        let mut out: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in members {
            out.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        out
    }

    fn supports(&self, p: &JoinParams) -> bool {
        if self.members.is_empty() {
            return !p.protocol_type.is_empty() && !p.protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(p.protocol_type.as_str()) {
            return false;
        }
        // A rejoining member's own old protocols must not count as support.
        let mut members = self.members.values().filter(|m| m.id != p.member_id);
        let Some(first) = members.next() else {
            return !p.protocols.is_empty();
        };
        let mut cands: Vec<&str> = first.protocols.iter().map(|(n, _)| n.as_str()).collect();
        for m in members {
            cands.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        p.protocols.iter().any(|(n, _)| cands.contains(&n.as_str()))
    }

    /// Kafka's vote: each member picks its most preferred candidate.
    fn select_protocol(&self) -> Option<String> {
        let cands = self.candidate_protocols();
        let mut votes: Vec<(String, usize)> = cands.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(n, _)| cands.contains(n)) {
                if let Some(v) = votes.iter_mut().find(|(c, _)| c == name) {
                    v.1 += 1;
                }
            }
        }
        // Ties go to the earliest candidate (the first member's preference).
        let mut best: Option<(String, usize)> = None;
        for (c, n) in votes {
            if best.as_ref().is_none_or(|(_, b)| n > *b) {
                best = Some((c, n));
            }
        }
        best.map(|(c, _)| c)
    }

    fn max_rebalance_timeout(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// The join answer for a member of the current generation.
    fn current_join_result(&self, member_id: &str) -> JoinResult {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.is_leader(member_id);
        JoinResult {
            error: 0,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if leader {
                self.members
                    .values()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.metadata_for(&protocol),
                        )
                    })
                    .collect()
            } else {
                Vec::new()
            },
            skip_assignment: false,
        }
    }

    /// Instance `inst` is now held by a member id other than `member_id`.
    pub(super) fn fenced(&self, member_id: &str, inst: Option<&str>) -> bool {
        inst.and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
    }

    // ------------------------------------------------------------------
    // JoinGroup
    // ------------------------------------------------------------------

    pub fn join(&mut self, p: JoinParams, now: i64, cfg: &GroupConfig) -> Reply<JoinResult> {
        if self.state == GroupState::Dead {
            return Reply::Now(JoinResult::error(
                ResponseError::CoordinatorNotAvailable,
                &p.member_id,
            ));
        }
        if !self.supports(&p) {
            return Reply::Now(JoinResult::error(
                ResponseError::InconsistentGroupProtocol,
                &p.member_id,
            ));
        }
        if p.member_id.is_empty() {
            self.join_new(p, now, cfg)
        } else {
            self.join_known(p, now, cfg)
        }
    }

    fn join_new(&mut self, p: JoinParams, now: i64, cfg: &GroupConfig) -> Reply<JoinResult> {
        let prefix = p.instance_id.as_deref().unwrap_or(&p.client_id);
        let new_id = format!("{prefix}-{}", uuid::Uuid::new_v4());
        if let Some(inst) = &p.instance_id {
            if let Some(old_id) = self.static_members.get(inst).cloned() {
                return self.replace_static(old_id, new_id, p, now, cfg);
            }
            // Static members are known by their instance id: no extra round.
            return self.add_member(new_id, p, now, cfg);
        }
        if p.require_known_member_id {
            // Kafka 4.4.0 refuses a full group's newcomer before an id.
            if !self.accepts_new_member(cfg) {
                return Reply::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
            }
            self.pending
                .insert(new_id.clone(), now + i64::from(p.session_timeout_ms));
            return Reply::Now(JoinResult::error(ResponseError::MemberIdRequired, &new_id));
        }
        self.add_member(new_id, p, now, cfg)
    }

    fn join_known(&mut self, p: JoinParams, now: i64, cfg: &GroupConfig) -> Reply<JoinResult> {
        if self.pending.remove(&p.member_id).is_some() {
            let id = p.member_id.clone();
            return self.add_member(id, p, now, cfg);
        }
        if self.fenced(&p.member_id, p.instance_id.as_deref()) {
            return Reply::Now(JoinResult::error(
                ResponseError::FencedInstanceId,
                &p.member_id,
            ));
        }
        let Some(member) = self.members.get(&p.member_id) else {
            return Reply::Now(JoinResult::error(
                ResponseError::UnknownMemberId,
                &p.member_id,
            ));
        };
        let same = member.same_protocols(&p);
        if self.state == GroupState::PreparingRebalance
            && member.join_waiter.is_none()
            && self.awaiting_join() >= cfg.max_size as usize
        {
            // Kafka: a member rejoining after newcomers filled the group goes.
            self.remove_member(&p.member_id, now, cfg);
            return Reply::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
        }
        match self.state {
            GroupState::PreparingRebalance => self.rejoin(p, now, cfg, false),
            GroupState::CompletingRebalance if same => {
                // A member that lost its join answer: give it again.
                Reply::Now(self.current_join_result(&p.member_id))
            }
            GroupState::Stable if same && !self.is_leader(&p.member_id) => {
                Reply::Now(self.current_join_result(&p.member_id))
            }
            GroupState::CompletingRebalance | GroupState::Stable => self.rejoin(p, now, cfg, true),
            GroupState::Empty | GroupState::Dead => Reply::Now(JoinResult::error(
                ResponseError::UnknownMemberId,
                &p.member_id,
            )),
        }
    }

    /// An existing member joins the (maybe new) rebalance.
    fn rejoin(
        &mut self,
        p: JoinParams,
        now: i64,
        cfg: &GroupConfig,
        start_rebalance: bool,
    ) -> Reply<JoinResult> {
        let (tx, rx) = oneshot::channel();
        let member = self.members.get_mut(&p.member_id).expect("checked");
        member.update(&p);
        member.join_waiter = Some(tx);
        if start_rebalance {
            self.prepare_rebalance(now, cfg);
        }
        self.try_complete_join(now);
        Reply::Wait(rx)
    }

    fn add_member(
        &mut self,
        id: String,
        p: JoinParams,
        now: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResult> {
        if !self.accepts_new_member(cfg) {
            return Reply::Now(JoinResult::error(ResponseError::GroupMaxSizeReached, ""));
        }
        let (tx, rx) = oneshot::channel();
        let mut member = Member::new(id.clone(), &p, now);
        member.join_waiter = Some(tx);
        if let Some(inst) = &p.instance_id {
            self.static_members.insert(inst.clone(), id.clone());
        }
        if self.members.is_empty() {
            self.protocol_type = Some(p.protocol_type.clone());
        }
        self.members.insert(id.clone(), member);
        if self.leader.is_none() {
            self.leader = Some(id);
        }
        match self.state {
            GroupState::PreparingRebalance => self.new_member_in_delay = true,
            _ => self.prepare_rebalance(now, cfg),
        }
        self.try_complete_join(now);
        Reply::Wait(rx)
    }

    /// KIP-345: a static member restarted with a new member id.
    fn replace_static(
        &mut self,
        old_id: String,
        new_id: String,
        mut p: JoinParams,
        now: i64,
        cfg: &GroupConfig,
    ) -> Reply<JoinResult> {
        // From here on the member is known by its new id (`rejoin` looks
        // it up by the id in `p`, which a restarted member sent empty).
        p.member_id = new_id.clone();
        let Some(mut member) = self.members.shift_remove(&old_id) else {
            self.static_members
                .remove(p.instance_id.as_deref().unwrap_or(""));
            return self.add_member(new_id, p, now, cfg);
        };
        // Whoever still waits under the old id is the fenced incarnation.
        if let Some(w) = member.join_waiter.take() {
            let _ = w.send(JoinResult::error(ResponseError::FencedInstanceId, &old_id));
        }
        if let Some(w) = member.sync_waiter.take() {
            let _ = w.send(SyncResult::error(ResponseError::FencedInstanceId));
        }
        let old_protocols = member.protocols.clone();
        member.id = new_id.clone();
        member.update(&p);
        member.last_heartbeat = now;
        self.members.insert(new_id.clone(), member);
        let inst = p.instance_id.clone().unwrap_or_default();
        self.static_members.insert(inst, new_id.clone());
        if self.is_leader(&old_id) {
            self.leader = Some(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                let before = self.protocol.clone();
                if self.select_protocol() != before {
                    // Its new protocols change the group's: rebalance, but
                    // keep the old ones until it actually rejoins.
                    let m = self.members.get_mut(&new_id).expect("inserted");
                    m.protocols = old_protocols;
                    return self.rejoin(p, now, cfg, true);
                }
                self.dirty = true;
                let mut r = self.current_join_result(&new_id);
                r.skip_assignment = self.is_leader(&new_id);
                Reply::Now(r)
            }
            GroupState::CompletingRebalance => self.rejoin(p, now, cfg, true),
            _ => self.rejoin(p, now, cfg, false),
        }
    }

    fn prepare_rebalance(&mut self, now: i64, cfg: &GroupConfig) {
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if let Some(w) = m.sync_waiter.take() {
                    let _ = w.send(SyncResult::error(ResponseError::RebalanceInProgress));
                    // Its session did not run while it waited (see
                    // `next_deadline`); it starts again now, as Kafka's
                    // resetAndPropagateAssignmentError does. Without this
                    // the session is already due and the timers spin.
                    m.last_heartbeat = now;
                }
            }
        }
        let was_empty = self.state == GroupState::Empty;
        self.set_state(GroupState::PreparingRebalance, now);
        let rebalance_timeout = self.max_rebalance_timeout();
        if was_empty && cfg.initial_rebalance_delay_ms > 0 {
            let delay = cfg.initial_rebalance_delay_ms.min(rebalance_timeout);
            self.initial_delay = true;
            self.initial_delay_left = rebalance_timeout - delay;
            self.new_member_in_delay = false;
            self.deadline = Some(now + delay);
        } else {
            self.initial_delay = false;
            self.deadline = Some(now + rebalance_timeout);
        }
    }

    fn try_complete_join(&mut self, now: i64) {
        if self.state != GroupState::PreparingRebalance || self.initial_delay {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join_waiter.is_some());
        if all_joined && self.pending.is_empty() {
            self.complete_join(now);
        }
    }

    /// End of the join phase: drop who did not rejoin, start the next
    /// generation, answer every joined member (the leader gets them all).
    fn complete_join(&mut self, now: i64) {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.drop_member(&id);
        }
        self.initial_delay = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.set_state(GroupState::Empty, now);
            self.protocol = None;
            self.leader = None;
            self.deadline = None;
            self.dirty = true;
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance, now);
        self.deadline = Some(now + self.max_rebalance_timeout());
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let result = self.current_join_result(&id);
            let m = self.members.get_mut(&id).expect("listed");
            m.last_heartbeat = now;
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(result);
            }
        }
    }

    fn drop_member(&mut self, id: &str) {
        if let Some(mut m) = self.members.shift_remove(id) {
            if let Some(inst) = &m.instance_id {
                if self.static_members.get(inst).map(String::as_str) == Some(id) {
                    self.static_members.remove(inst);
                }
            }
            if let Some(w) = m.join_waiter.take() {
                let _ = w.send(JoinResult::error(ResponseError::UnknownMemberId, id));
            }
            if let Some(w) = m.sync_waiter.take() {
                let _ = w.send(SyncResult::error(ResponseError::UnknownMemberId));
            }
        }
        if self.is_leader(id) {
            self.leader = self.members.keys().next().cloned();
        }
    }

    /// A member left or timed out: the rest rebalance.
    fn remove_member(&mut self, id: &str, now: i64, cfg: &GroupConfig) {
        self.drop_member(id);
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, cfg);
                self.try_complete_join(now);
            }
            GroupState::PreparingRebalance => self.try_complete_join(now),
            GroupState::Empty | GroupState::Dead => {}
        }
    }

    // ------------------------------------------------------------------
    // SyncGroup, Heartbeat, LeaveGroup
    // ------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol_type: Option<&str>,
        protocol_name: Option<&str>,
        assignments: Vec<(String, Bytes)>,
        now: i64,
    ) -> Reply<SyncResult> {
        let fail = |e| Reply::Now(SyncResult::error(e));
        if self.fenced(member_id, instance_id) {
            return fail(ResponseError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return fail(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return fail(ResponseError::IllegalGeneration);
        }
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return fail(ResponseError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::Empty | GroupState::Dead => fail(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => fail(ResponseError::RebalanceInProgress),
            GroupState::Stable => {
                let m = self.members.get_mut(member_id).expect("checked");
                m.last_heartbeat = now;
                Reply::Now(self.sync_result(member_id))
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                let m = self.members.get_mut(member_id).expect("checked");
                m.sync_waiter = Some(tx);
                m.last_heartbeat = now;
                if self.is_leader(member_id) {
                    let mut given: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for m in self.members.values_mut() {
                        m.assignment = given.remove(&m.id).unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable, now);
                    self.deadline = None;
                    self.dirty = true;
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let r = self.sync_result(&id);
                        let m = self.members.get_mut(&id).expect("listed");
                        if let Some(w) = m.sync_waiter.take() {
                            let _ = w.send(r);
                            // Kafka's propagateAssignment: the session
                            // starts again once the waiter is answered.
                            m.last_heartbeat = now;
                        }
                    }
                }
                Reply::Wait(rx)
            }
        }
    }

    fn sync_result(&self, member_id: &str) -> SyncResult {
        SyncResult {
            error: 0,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self.members[member_id].assignment.clone(),
        }
    }

    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: i64,
    ) -> i16 {
        if self.fenced(member_id, instance_id) {
            return err_code(ResponseError::FencedInstanceId);
        }
        let state = self.state;
        let current = self.generation;
        let Some(m) = self.members.get_mut(member_id) else {
            return err_code(ResponseError::UnknownMemberId);
        };
        if generation != current {
            return err_code(ResponseError::IllegalGeneration);
        }
        m.last_heartbeat = now;
        match state {
            GroupState::PreparingRebalance => err_code(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => 0,
            GroupState::Empty | GroupState::Dead => err_code(ResponseError::UnknownMemberId),
        }
    }

    /// One member leaves; by member id, or (v3+) by instance id alone.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now: i64,
        cfg: &GroupConfig,
    ) -> i16 {
        let id = match (member_id.is_empty(), instance_id) {
            (true, Some(inst)) => match self.static_members.get(inst) {
                Some(id) => id.clone(),
                None => return err_code(ResponseError::UnknownMemberId),
            },
            _ => {
                if self.fenced(member_id, instance_id) {
                    return err_code(ResponseError::FencedInstanceId);
                }
                member_id.to_string()
            }
        };
        if self.pending.remove(&id).is_some() {
            self.try_complete_join(now);
            return 0;
        }
        if !self.members.contains_key(&id) {
            return err_code(ResponseError::UnknownMemberId);
        }
        self.remove_member(&id, now, cfg);
        if self.state == GroupState::Empty {
            self.dirty = true;
        }
        0
    }

    // ------------------------------------------------------------------
    // Timers
    // ------------------------------------------------------------------

    /// Expire sessions and pending ids, end join and sync phases that ran
    /// out of time. Cheap when nothing is due.
    pub fn tick(&mut self, now: i64, cfg: &GroupConfig) {
        let before = self.pending.len();
        self.pending.retain(|_, lapse| *lapse > now);
        if self.pending.len() != before {
            self.try_complete_join(now);
        }
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.join_waiter.is_none()
                    && m.sync_waiter.is_none()
                    && m.last_heartbeat + i64::from(m.session_timeout_ms) <= now
            })
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!("group {}: member {id} session expired", self.id);
            self.remove_member(&id, now, cfg);
            if self.state == GroupState::Empty {
                self.dirty = true;
            }
        }
        let Some(deadline) = self.deadline else {
            return;
        };
        if now < deadline {
            return;
        }
        match self.state {
            GroupState::PreparingRebalance if self.initial_delay => {
                if self.new_member_in_delay && self.initial_delay_left > 0 {
                    // More members keep arriving: wait a little more, up to
                    // the rebalance timeout in total.
                    let delay = cfg.initial_rebalance_delay_ms.min(self.initial_delay_left);
                    self.initial_delay_left -= delay;
                    self.new_member_in_delay = false;
                    self.deadline = Some(now + delay);
                } else {
                    self.initial_delay = false;
                    self.complete_join(now);
                }
            }
            GroupState::PreparingRebalance => self.complete_join(now),
            GroupState::CompletingRebalance => {
                // Members that never sent SyncGroup are dropped and the rest
                // rebalance, as Kafka does since 2.8.
                let laggards: Vec<String> = self
                    .members
                    .values()
                    .filter(|m| m.sync_waiter.is_none())
                    .map(|m| m.id.clone())
                    .collect();
                for id in &laggards {
                    self.drop_member(id);
                }
                self.prepare_rebalance(now, cfg);
                self.try_complete_join(now);
            }
            _ => self.deadline = None,
        }
    }

    /// The earliest time `tick` has something to do: a pending member id
    /// lapsing, a session expiring (members not waiting in a join or sync),
    /// or the join/sync phase ending. `None`: nothing is timed.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.sync_waiter.is_none())
            .map(|m| m.last_heartbeat + i64::from(m.session_timeout_ms));
        self.pending
            .values()
            .copied()
            .chain(sessions)
            .chain(self.deadline)
            .min()
    }

    pub fn is_empty_and_unused(&self) -> bool {
        self.state == GroupState::Empty
            && self.offsets.is_empty()
            && self.pending.is_empty()
            && self.pending_txn.is_empty()
    }
}
