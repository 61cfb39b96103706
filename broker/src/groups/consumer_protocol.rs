//! Groups of the new consumer protocol (KIP-848): ConsumerGroupHeartbeat
//! and ConsumerGroupDescribe. The broker computes the target assignment
//! (`uniform` or `range`) whenever the group epoch moves past the
//! assignment epoch, and each member reconciles towards its target: a
//! partition goes to its new owner only after the previous owner has
//! reported it revoked. Every change of membership, epochs or assignments
//! is written to the shard's group log before the heartbeat that made it
//! is answered (see `persist`); committed offsets of these groups live
//! with the classic groups' offsets.
//!
//! A member subscribes to topic names, a regular expression, or both; the
//! expression is matched against the whole name of every topic on each
//! heartbeat, so a topic created later joins the group's assignment at
//! the next heartbeat of any member.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap};

use kafka_protocol::ResponseError;

pub mod assignors;
pub mod persist;
pub mod subscription;
#[cfg(test)]
mod tests;

pub use assignors::{assign, Assignment};
pub use subscription::{TopicCatalog, TopicRegex};

pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNRELEASED_INSTANCE_ID: i16 = 111;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
/// Kafka 4.0's code for a subscription regex that does not compile.
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
/// Broker settings of consumer-protocol groups.
#[derive(Debug, Clone, Copy)]
pub struct ConsumerConfig {
    pub heartbeat_interval_ms: i32,
    pub session_timeout_ms: i64,
    /// Kafka's `group.consumer.max.size` (`group_max_size` here).
    pub max_size: u32,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval_ms: 5000,
            session_timeout_ms: 45000,
            max_size: i32::MAX as u32,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub epoch: i32,
    pub previous_epoch: i32,
    /// Topic names the member subscribed to by name.
    pub subscribed: Vec<String>,
    /// The member's subscription regex, if any.
    pub subscribed_regex: Option<TopicRegex>,
    /// Names and regex resolved against the topics that exist: what the
    /// assignor works with.
    pub topics: Vec<String>,
    pub server_assignor: Option<String>,
    pub last_seen: i64,
    /// Partitions the member may consume now.
    pub assigned: Assignment,
    /// Partitions the member must give up and has not yet reported gone.
    pub pending_revoke: Assignment,
    /// How long the member may take to revoke partitions (from the client).
    pub rebalance_timeout_ms: i32,
    /// When the pending revocation must be acknowledged by.
    pub revoke_deadline: Option<i64>,
    /// A static member that left with epoch -2, waiting for its instance.
    pub left_static: bool,
    /// `assigned` changed since the member last heard it.
    pub unsent: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ConsumerGroup {
    pub id: String,
    pub epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, Assignment>,
    /// Partition counts of subscribed topics, as last seen.
    pub topic_sizes: BTreeMap<String, i32>,
    pub assignor: String,
    /// Changed since last written to the group log.
    pub dirty: bool,
}

/// One heartbeat, decoded.
#[derive(Debug, Clone, Default)]
pub struct HeartbeatParams {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub subscribed: Option<Vec<String>>,
    /// None: unchanged; Some(""): cleared; Some(re): subscribe by regex.
    pub subscribed_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// Partitions the member owns, when it says.
    pub owned: Option<Assignment>,
    pub client_id: String,
    pub client_host: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HeartbeatResult {
    pub error: i16,
    pub message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// The member's whole assignment, when it changed.
    pub assignment: Option<Assignment>,
}

impl HeartbeatResult {
    fn error(code: i16, member_id: &str, msg: &str) -> Self {
        Self {
            error: code,
            message: Some(msg.to_string()),
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(t, ps)| {
        ps.is_empty() || b.get(t).is_some_and(|bs| ps.iter().all(|p| bs.contains(p)))
    })
}

/// Without topics that have no partitions.
fn normalized(mut a: Assignment) -> Assignment {
    a.retain(|_, ps| !ps.is_empty());
    a
}

fn minus(a: &Assignment, b: &Assignment) -> Assignment {
    let mut out = Assignment::new();
    for (t, ps) in a {
        let rest: BTreeSet<i32> = ps
            .iter()
            .filter(|p| !b.get(t).is_some_and(|bs| bs.contains(p)))
            .copied()
            .collect();
        if !rest.is_empty() {
            out.insert(t.clone(), rest);
        }
    }
    out
}

fn intersects(a: &Assignment, b: &Assignment) -> bool {
    a.iter()
        .any(|(t, ps)| b.get(t).is_some_and(|bs| ps.iter().any(|p| bs.contains(p))))
}

impl ConsumerGroup {
    pub fn new(id: String) -> Self {
        Self {
            id,
            assignor: "uniform".into(),
            ..Default::default()
        }
    }

    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.pending_revoke.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Resolve every member's subscription against the topics that exist
    /// and re-read their partition counts; true on a change.
    fn refresh_metadata(&mut self, catalog: &dyn TopicCatalog) -> bool {
        let mut changed = false;
        if self.members.values().any(|m| m.subscribed_regex.is_some()) {
            let names = catalog.topic_names();
            for m in self.members.values_mut() {
                changed |= resolve_topics(m, &names);
            }
        } else {
            for m in self.members.values_mut() {
                changed |= resolve_topics(m, &[]);
            }
        }
        let topics: BTreeSet<&String> = self
            .members
            .values()
            .flat_map(|m| m.topics.iter())
            .collect();
        let now: BTreeMap<String, i32> = topics
            .into_iter()
            .filter_map(|t| catalog.partition_count(t).map(|n| (t.clone(), n)))
            .collect();
        changed |= now != self.topic_sizes;
        self.topic_sizes = now;
        changed
    }

    /// The server assignor the group uses, as Kafka's
    /// `ConsumerGroup.computePreferredServerAssignor`: the one most members
    /// ask for (ties: the first by name, where Kafka's pick is hash order),
    /// else the broker's default, `uniform`, which is also what an empty
    /// group reports.
    pub fn preferred_assignor(&self) -> String {
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for a in self
            .members
            .values()
            .filter_map(|m| m.server_assignor.as_deref())
        {
            *votes.entry(a).or_default() += 1;
        }
        votes
            .into_iter()
            .max_by(|(a, x), (b, y)| x.cmp(y).then(b.cmp(a)))
            .map_or_else(|| "uniform".to_string(), |(a, _)| a.to_string())
    }

    fn compute_target(&mut self) {
        if self.assignment_epoch >= self.epoch {
            return;
        }
        self.assignor = self.preferred_assignor();
        let subs: BTreeMap<String, Vec<String>> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), m.topics.clone()))
            .collect();
        self.target = assign(&self.assignor, &subs, &self.topic_sizes, &self.target);
        self.assignment_epoch = self.epoch;
    }

    /// Is `(topic, p)` held (assigned or not yet revoked) by another member?
    fn held_by_other(&self, me: &str, topic: &str, p: i32) -> bool {
        self.members.iter().any(|(id, m)| {
            id != me
                && (m.assigned.get(topic).is_some_and(|s| s.contains(&p))
                    || m.pending_revoke.get(topic).is_some_and(|s| s.contains(&p)))
        })
    }

    /// Move a member towards its target assignment.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: i64) {
        let target = self.target.get(member_id).cloned().unwrap_or_default();
        let epoch = self.assignment_epoch;
        let Some(m) = self.members.get(member_id) else {
            return;
        };
        let mut m = m.clone();
        // Revocations acknowledged?
        if !m.pending_revoke.is_empty() {
            if let Some(owned) = owned {
                if !intersects(owned, &m.pending_revoke) {
                    m.pending_revoke.clear();
                    m.revoke_deadline = None;
                }
            }
        }
        if m.pending_revoke.is_empty() {
            let revoke = minus(&m.assigned, &target);
            if !revoke.is_empty() {
                // Take them away first; the new epoch waits for the ack.
                m.assigned = minus(&m.assigned, &revoke);
                m.pending_revoke = revoke;
                m.revoke_deadline = Some(now + i64::from(m.rebalance_timeout_ms.max(0)));
                m.unsent = true;
            } else {
                if m.epoch != epoch {
                    m.previous_epoch = m.epoch;
                    m.epoch = epoch;
                    m.unsent = true;
                }
                // Add what the previous owners have released.
                for (t, ps) in &target {
                    for p in ps {
                        let have = m.assigned.get(t).is_some_and(|s| s.contains(p));
                        if !have && !self.held_by_other(member_id, t, *p) {
                            m.assigned.entry(t.clone()).or_default().insert(*p);
                            m.unsent = true;
                        }
                    }
                }
            }
        }
        let before = &self.members[member_id];
        if (before.epoch, &before.assigned, &before.pending_revoke)
            != (m.epoch, &m.assigned, &m.pending_revoke)
        {
            self.dirty = true;
        }
        self.members.insert(member_id.to_string(), m);
    }

    /// Handle one ConsumerGroupHeartbeat.
    pub fn heartbeat(
        &mut self,
        p: HeartbeatParams,
        now: i64,
        cfg: &ConsumerConfig,
        catalog: &dyn TopicCatalog,
    ) -> HeartbeatResult {
        let mut p = p;
        p.owned = p.owned.map(normalized);
        // Compile a new regex before anything changes, so a bad one leaves
        // the group as it was. Some(None) clears the member's regex.
        let regex = match p.subscribed_regex.take() {
            None => None,
            Some(src) if src.is_empty() => Some(None),
            Some(src) => match TopicRegex::new(&src) {
                Ok(r) => Some(Some(r)),
                Err(e) => {
                    return HeartbeatResult::error(
                        INVALID_REGULAR_EXPRESSION,
                        &p.member_id,
                        &format!("invalid subscription regex {src:?}: {e}"),
                    )
                }
            },
        };
        if let Some(a) = &p.server_assignor {
            if a != "uniform" && a != "range" {
                return HeartbeatResult::error(
                    UNSUPPORTED_ASSIGNOR,
                    &p.member_id,
                    "unknown server assignor",
                );
            }
        }
        let mut member_id = p.member_id.clone();
        // Membership, subscription or metadata changed: one epoch bump.
        let mut bump = false;
        match p.member_epoch {
            0 => {
                // A static member coming back replaces its old incarnation.
                if let Some(inst) = &p.instance_id {
                    let old = self
                        .members
                        .values()
                        .find(|m| m.instance_id.as_deref() == Some(inst) && m.id != member_id)
                        .cloned();
                    if let Some(old) = old {
                        if !old.left_static {
                            return HeartbeatResult::error(
                                UNRELEASED_INSTANCE_ID,
                                &member_id,
                                "instance id still in use",
                            );
                        }
                        self.members.remove(&old.id);
                        self.dirty = true;
                        if member_id.is_empty() {
                            member_id = uuid::Uuid::new_v4().to_string();
                        }
                        let mut m = old.clone();
                        m.id = member_id.clone();
                        m.left_static = false;
                        m.unsent = true;
                        if let Some(t) = self.target.remove(&old.id) {
                            self.target.insert(member_id.clone(), t);
                        }
                        self.members.insert(member_id.clone(), m);
                    }
                }
                if member_id.is_empty() {
                    member_id = uuid::Uuid::new_v4().to_string();
                }
                if !self.members.contains_key(&member_id) {
                    if self.members.len() >= cfg.max_size as usize {
                        let why = crate::groups::max_size::consumer_group_full(cfg.max_size);
                        let code = ResponseError::GroupMaxSizeReached.code();
                        return HeartbeatResult::error(code, &p.member_id, &why);
                    }
                    if p.subscribed.is_none() && regex.is_none() {
                        return HeartbeatResult::error(
                            ResponseError::InvalidRequest.code(),
                            &member_id,
                            "a joining member must give its subscription",
                        );
                    }
                    self.members.insert(
                        member_id.clone(),
                        ConsumerMember {
                            id: member_id.clone(),
                            unsent: true,
                            ..Default::default()
                        },
                    );
                    bump = true;
                } else if let Some(m) = self.members.get_mut(&member_id) {
                    // Rejoin of a known member: it owns nothing now.
                    m.unsent = true;
                }
            }
            -1 | -2 => {
                let Some(m) = self.members.get_mut(&member_id) else {
                    return HeartbeatResult::error(
                        ResponseError::UnknownMemberId.code(),
                        &member_id,
                        "unknown member",
                    );
                };
                if p.member_epoch == -2 && m.instance_id.is_some() {
                    m.left_static = true;
                    m.last_seen = now;
                } else {
                    self.members.remove(&member_id);
                    self.target.remove(&member_id);
                    self.epoch += 1;
                }
                self.dirty = true;
                return HeartbeatResult {
                    member_id,
                    member_epoch: p.member_epoch,
                    heartbeat_interval_ms: cfg.heartbeat_interval_ms,
                    ..Default::default()
                };
            }
            e => {
                let Some(m) = self.members.get(&member_id) else {
                    return HeartbeatResult::error(
                        ResponseError::UnknownMemberId.code(),
                        &member_id,
                        "unknown member",
                    );
                };
                let ok = e == m.epoch
                    || (e == m.previous_epoch
                        && p.owned.as_ref().is_some_and(|o| is_subset(o, &m.assigned)));
                if !ok {
                    return HeartbeatResult::error(
                        FENCED_MEMBER_EPOCH,
                        &member_id,
                        "the member epoch is not current",
                    );
                }
            }
        }
        let m = self.members.get_mut(&member_id).expect("member is present");
        m.last_seen = now;
        m.client_id = p.client_id;
        m.client_host = p.client_host;
        let described = (
            m.instance_id.clone(),
            m.rack_id.clone(),
            m.rebalance_timeout_ms,
        );
        if p.instance_id.is_some() {
            m.instance_id = p.instance_id;
        }
        if p.rebalance_timeout_ms > 0 {
            m.rebalance_timeout_ms = p.rebalance_timeout_ms;
        } else if m.rebalance_timeout_ms <= 0 {
            m.rebalance_timeout_ms = i32::try_from(cfg.session_timeout_ms).unwrap_or(i32::MAX);
        }
        if p.rack_id.is_some() {
            m.rack_id = p.rack_id;
        }
        if described
            != (
                m.instance_id.clone(),
                m.rack_id.clone(),
                m.rebalance_timeout_ms,
            )
        {
            self.dirty = true;
        }
        if p.server_assignor.is_some() && m.server_assignor != p.server_assignor {
            m.server_assignor = p.server_assignor;
            bump = true;
        }
        let m = self.members.get_mut(&member_id).expect("member is present");
        if let Some(mut subs) = p.subscribed {
            subs.sort();
            subs.dedup();
            if subs != m.subscribed {
                m.subscribed = subs;
                bump = true;
            }
        }
        if let Some(re) = regex {
            if re != m.subscribed_regex {
                m.subscribed_regex = re;
                bump = true;
            }
        }
        // A member that says it owns something other than what we gave it
        // (a rejoin, or a lost response) hears its assignment again.
        if let Some(owned) = &p.owned {
            if *owned != m.assigned {
                m.unsent = true;
            }
        }
        if self.refresh_metadata(catalog) || bump {
            self.epoch += 1;
            self.dirty = true;
        }
        self.compute_target();
        self.reconcile(&member_id, p.owned.as_ref(), now);
        let m = self.members.get_mut(&member_id).expect("member is present");
        let assignment = std::mem::take(&mut m.unsent).then(|| m.assigned.clone());
        HeartbeatResult {
            error: 0,
            message: None,
            member_id,
            member_epoch: m.epoch,
            heartbeat_interval_ms: cfg.heartbeat_interval_ms,
            assignment,
        }
    }

    /// Remove members whose session expired; true if any was.
    pub fn expire(&mut self, now: i64, cfg: &ConsumerConfig) -> bool {
        let dead: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.last_seen + cfg.session_timeout_ms <= now
                    || m.revoke_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &dead {
            tracing::info!(
                "consumer group {}: member {id} timed out (session or revocation)",
                self.id
            );
            self.members.remove(id);
            self.target.remove(id);
        }
        if !dead.is_empty() {
            self.epoch += 1;
            self.dirty = true;
        }
        !dead.is_empty()
    }

    /// The earliest time `expire` could remove a member.
    pub fn next_deadline(&self, cfg: &ConsumerConfig) -> Option<i64> {
        self.members
            .values()
            .flat_map(|m| {
                [
                    Some(m.last_seen + cfg.session_timeout_ms),
                    m.revoke_deadline,
                ]
            })
            .flatten()
            .min()
    }

    /// OffsetCommit check for a member of this group.
    pub fn check_commit(&self, member_id: &str, epoch: i32) -> i16 {
        match self.members.get(member_id) {
            None => ResponseError::UnknownMemberId.code(),
            Some(m) if m.epoch != epoch => STALE_MEMBER_EPOCH,
            Some(_) => 0,
        }
    }
}

/// Set `m.topics` to its names plus the existing topics its regex matches
/// (`names`: every topic, empty when no member has a regex); true on a change.
fn resolve_topics(m: &mut ConsumerMember, names: &[String]) -> bool {
    let mut topics = m.subscribed.clone();
    if let Some(re) = &m.subscribed_regex {
        topics.extend(names.iter().filter(|t| re.matches(t)).cloned());
        topics.sort();
        topics.dedup();
    }
    let changed = topics != m.topics;
    m.topics = topics;
    changed
}

/// The consumer-protocol groups of one shard.
#[derive(Default)]
pub struct ConsumerGroups {
    pub groups: RefCell<HashMap<String, ConsumerGroup>>,
    pub cfg: Cell<ConsumerConfig>,
}

impl ConsumerGroups {
    /// Expire silent members; returns the groups that changed.
    pub fn tick(&self, now: i64) -> Vec<String> {
        let cfg = self.cfg.get();
        let mut changed = Vec::new();
        for g in self.groups.borrow_mut().values_mut() {
            if g.expire(now, &cfg) {
                changed.push(g.id.clone());
            }
        }
        changed
    }

    /// The group's log record if it changed since the last one (and marks
    /// it written).
    pub fn take_dirty_entry(&self, group_id: &str) -> Option<super::store::Entry> {
        let mut groups = self.groups.borrow_mut();
        let g = groups.get_mut(group_id)?;
        std::mem::take(&mut g.dirty).then(|| persist::entry(g))
    }

    /// Topics the members of a consumer-protocol group subscribe to.
    pub fn subscribed_topics(&self, group_id: &str) -> Vec<String> {
        self.groups
            .borrow()
            .get(group_id)
            .map(|g| {
                g.members
                    .values()
                    .flat_map(|m| m.topics.iter().cloned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// (id, state) of every consumer-protocol group, for ListGroups.
    pub fn list(&self) -> Vec<(String, &'static str)> {
        self.groups
            .borrow()
            .values()
            .map(|g| (g.id.clone(), g.state_name()))
            .collect()
    }

    /// Does a consumer-protocol group with members use this id?
    pub fn active(&self, group_id: &str) -> bool {
        self.groups
            .borrow()
            .get(group_id)
            .is_some_and(|g| !g.members.is_empty())
    }
}

impl super::Coordinator {
    /// ConsumerGroupHeartbeat on the group's owner shard. What it changed
    /// is in the group log before the answer goes out, so a member never
    /// acts on an assignment a restarted broker would not remember.
    pub async fn consumer_heartbeat(
        &self,
        group_id: &str,
        p: HeartbeatParams,
        catalog: &dyn TopicCatalog,
    ) -> HeartbeatResult {
        let result = self.consumer_heartbeat_now(group_id, p, catalog);
        self.reschedule(group_id);
        if let Some(entry) = self.consumer.take_dirty_entry(group_id) {
            if let Err(e) = self.append(&[entry]).await {
                tracing::warn!("consumer group {group_id}: writing group state: {e}");
            }
        }
        result
    }

    fn consumer_heartbeat_now(
        &self,
        group_id: &str,
        p: HeartbeatParams,
        catalog: &dyn TopicCatalog,
    ) -> HeartbeatResult {
        let classic_in_use = self
            .groups
            .borrow()
            .get(group_id)
            .is_some_and(|g| g.protocol_type.is_some() && !g.members.is_empty());
        if classic_in_use {
            return HeartbeatResult::error(
                ResponseError::GroupIdNotFound.code(),
                &p.member_id,
                "the group is a classic group",
            );
        }
        let now = self.now();
        let cfg = self.consumer.cfg.get();
        let exists = self.consumer.groups.borrow().contains_key(group_id);
        if p.member_epoch != 0 && !exists {
            return HeartbeatResult::error(
                ResponseError::UnknownMemberId.code(),
                &p.member_id,
                "unknown member",
            );
        }
        if !exists {
            if let Some(max) = self.groups_full() {
                return HeartbeatResult::error(
                    ResponseError::GroupMaxSizeReached.code(),
                    &p.member_id,
                    &crate::groups::census::broker_full(max),
                );
            }
        }
        let result = self
            .consumer
            .groups
            .borrow_mut()
            .entry(group_id.to_string())
            .or_insert_with(|| ConsumerGroup::new(group_id.to_string()))
            .heartbeat(p, now, &cfg, catalog);
        if !exists {
            self.publish_group_count();
        }
        result
    }

    /// A copy of a consumer-protocol group, for ConsumerGroupDescribe.
    pub fn consumer_describe(&self, group_id: &str) -> Option<ConsumerGroup> {
        self.consumer.groups.borrow().get(group_id).cloned()
    }

    /// `Some(error)` when the group is a consumer-protocol group (0: the
    /// commit may go ahead), `None` for classic and unknown groups.
    pub fn consumer_commit_check(
        &self,
        group_id: &str,
        member_id: &str,
        epoch: i32,
    ) -> Option<i16> {
        let groups = self.consumer.groups.borrow();
        let g = groups.get(group_id)?;
        if epoch < 0 && g.members.is_empty() {
            return Some(0);
        }
        if epoch < 0 && member_id.is_empty() {
            return Some(ResponseError::UnknownMemberId.code());
        }
        Some(g.check_commit(member_id, epoch))
    }
}
