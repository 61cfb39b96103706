//! The classic group coordinator. Each group belongs to one shard,
//! `fnv1a(group id) % shards`; requests that arrive elsewhere are sent to it
//! as typed messages (`ShardState::ask`, the `ShardWork` types of
//! `handlers::{groups, offsets, consumer_groups}`), so a group's state is only ever touched by
//! one thread and needs no lock. Per shard, [`Coordinator`] holds the groups
//! in a `RefCell` (never borrowed across an `.await`) and the shard's group
//! log, where commits become durable before they are acknowledged.

pub mod census;
pub mod consumer_protocol;
pub mod group;
pub mod group_types;
#[cfg(test)]
mod invariants;
pub mod max_size;
pub mod member;
pub mod migrate;
pub mod offsets;
#[cfg(test)]
mod sim_tests;
pub mod store;
#[cfg(test)]
mod tests;
pub mod txn_offsets;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::ResponseError;
use shard::log::{AckLevel, LogConfig, PartitionLog};
use shard::time::{Clock, LogClock};

use group::{Group, Reply};
pub use group::{GroupConfig, GroupState, JoinParams, JoinResult, SyncParams, SyncResult};

/// Settings of a shard's group log: compacted, kept forever.
pub fn group_log_config(broker: &crate::config::BrokerConfig) -> LogConfig {
    let mut config = crate::metadata::topic_config::log_config(&Default::default(), broker);
    config.cleanup_compact = true;
    config.cleanup_delete = false;
    config.retention_ms = -1;
    config.retention_bytes = -1;
    // Kafka's offsets.topic.segment.bytes; a group record can be large.
    config.segment_bytes = 100 << 20;
    config.max_message_bytes = config.max_message_bytes.max(16 << 20);
    config.preallocate = false;
    // The broker writes these records itself: no checks or rewrites meant
    // for producers' batches.
    config.timestamp_before_max_ms = i64::MAX;
    config.timestamp_after_max_ms = i64::MAX;
    config.compression = None;
    config
}

/// How often offsets of Empty groups are checked for expiry.
const EXPIRY_CHECK_MS: i64 = 60_000;

/// Owner shard of a group: a stable hash (FNV-1a) of the id's bytes, so
/// every shard and every restart agrees.
pub fn owner_shard(group_id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in group_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

pub fn wall_clock_ms() -> i64 {
    shard::record::now_ms()
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone, Default)]
pub struct GroupSummary {
    pub state: String,
    pub protocol_type: String,
    pub protocol: String,
    /// member id, instance id, client id, host, metadata, assignment
    pub members: Vec<MemberSummary>,
}

#[derive(Debug, Clone, Default)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

pub struct Coordinator {
    groups: RefCell<HashMap<String, Group>>,
    log: RefCell<Option<Rc<PartitionLog>>>,
    cfg: GroupConfig,
    /// The system clock, or a manual one in tests and the simulation
    /// (`sim_tests.rs`): an enum, so a request reads the time with a
    /// branch, not a virtual call.
    clock: LogClock,
    last_expiry_check: Cell<i64>,
    /// Stand-in log positions when no group log is open (unit tests).
    mem_offset: Cell<i64>,
    /// Group log appends under way: the simulation waits for none before
    /// it looks, so a seed replays the same run.
    appends_in_flight: Cell<usize>,
    /// Groups of the consumer protocol (KIP-848).
    pub consumer: consumer_protocol::ConsumerGroups,
    /// When [`run_timers`] plans to tick next (ms; `i64::MAX`: not planned).
    next_tick: Cell<i64>,
    /// Wakes [`run_timers`] when a change brings a deadline before it.
    timer_wake: shard::signal::Signal,
    /// This shard's part of the broker's `max_groups` count.
    pub census: census::ShardCount,
}

impl Coordinator {
    pub fn new(cfg: GroupConfig, clock: LogClock) -> Self {
        let now = clock.now_ms();
        Self {
            groups: RefCell::new(HashMap::new()),
            log: RefCell::new(None),
            cfg,
            clock,
            last_expiry_check: Cell::new(now),
            mem_offset: Cell::new(0),
            appends_in_flight: Cell::new(0),
            consumer: Default::default(),
            next_tick: Cell::new(i64::MAX),
            timer_wake: shard::signal::Signal::new(),
            census: Default::default(),
        }
    }

    /// Groups on this shard (a group id used by both protocols counts
    /// twice: rare, and on the safe side of the limit).
    fn group_count(&self) -> usize {
        self.groups.borrow().len() + self.consumer.groups.borrow().len()
    }

    /// `Some(max)` when a new group would go over `max_groups`.
    pub(crate) fn groups_full(&self) -> Option<usize> {
        let full = self.census.full(self.group_count());
        if let Some(max) = full {
            tracing::debug!("{}", census::broker_full(max));
        }
        full
    }

    /// After groups were created or removed here.
    pub(crate) fn publish_group_count(&self) {
        self.census.publish(self.group_count());
    }

    /// After a request changed `group_id`: if that brought one of its
    /// deadlines before the timer's next tick, wake the timer. Later
    /// deadlines (a heartbeat moving a session on) need no wake-up: the
    /// timer finds them when it ticks. Costs one pass over the group's
    /// members, not over every group.
    pub(crate) fn reschedule(&self, group_id: &str) {
        let classic = self
            .groups
            .borrow()
            .get(group_id)
            .and_then(Group::next_deadline);
        let cfg = self.consumer.cfg.get();
        let consumer = self
            .consumer
            .groups
            .borrow()
            .get(group_id)
            .and_then(|g| g.next_deadline(&cfg));
        if let Some(at) = classic.into_iter().chain(consumer).min() {
            if at < self.next_tick.get() {
                self.next_tick.set(at);
                self.timer_wake.notify_all();
            }
        }
    }

    /// The earliest deadline of any group of this shard, or the next offset
    /// expiry check.
    fn next_deadline(&self) -> i64 {
        let cfg = self.consumer.cfg.get();
        let classic = self
            .groups
            .borrow()
            .values()
            .filter_map(Group::next_deadline)
            .min();
        let consumer = self
            .consumer
            .groups
            .borrow()
            .values()
            .filter_map(|g| g.next_deadline(&cfg))
            .min();
        let expiry = self.last_expiry_check.get() + EXPIRY_CHECK_MS;
        [classic, consumer, Some(expiry)]
            .into_iter()
            .flatten()
            .min()
            .expect("the expiry check is always due some time")
    }

    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Open this shard's group log (`DATA_DIR/@internal/__consumer_offsets-<shard>`)
    /// and rebuild the groups from it. Runs before the listener accepts, so
    /// no request sees a half-loaded state; an error names the directory,
    /// the log offset and what is wrong there, and stops the broker.
    pub async fn open(
        &self,
        data_dir: &Path,
        shard: usize,
        config: LogConfig,
    ) -> anyhow::Result<()> {
        let name = crate::metadata::internal::group_log_name(shard);
        let dir = crate::metadata::internal::group_log_dir(data_dir, shard);
        let log =
            PartitionLog::open_with_clock(dir.clone(), name.clone(), config, self.clock.clone())
                .await
                .map_err(|e| anyhow::anyhow!("opening the group log {}: {e}", dir.display()))?;
        let mut restored = store::Restored::default();
        let replayed = store::replay(&log, &mut restored, self.now()).await;
        let records = match replayed {
            Ok(n) => n,
            Err(e) => {
                let _ = log.close().await;
                anyhow::bail!(
                    "group log {}: {e:#}; the broker cannot serve groups without it: restore \
                     the directory from a backup, or move it away to start with no groups and \
                     committed offsets on this shard",
                    dir.display()
                );
            }
        };
        tracing::info!(
            "{name}: {} classic and {} consumer-protocol group(s) restored from {records} record(s)",
            restored.groups.len(),
            restored.consumer_groups.len()
        );
        *self.groups.borrow_mut() = restored.groups;
        *self.consumer.groups.borrow_mut() = restored.consumer_groups;
        *self.log.borrow_mut() = Some(log);
        // Restored groups count, even beyond the limit (it only stops new
        // ones).
        self.publish_group_count();
        Ok(())
    }

    pub fn log(&self) -> Option<Rc<PartitionLog>> {
        self.log.borrow().clone()
    }

    pub async fn close(&self) {
        let log = self.log.borrow_mut().take();
        if let Some(log) = log {
            if let Err(e) = log.close().await {
                tracing::error!("closing the group log: {e}");
            }
        }
    }

    /// Append records durably; returns the log offset of the first.
    async fn append(&self, entries: &[store::Entry]) -> Result<i64, WriteFailed> {
        if entries.is_empty() {
            return Ok(-1);
        }
        let log = self.log();
        match log {
            Some(log) => {
                let _counted = InFlight::new(&self.appends_in_flight);
                log.append(store::batch(entries, self.now()), AckLevel::Durable)
                    .await
                    .map(|info| info.base_offset)
                    .map_err(WriteFailed::from)
            }
            None => {
                let base = self.mem_offset.get();
                self.mem_offset.set(base + entries.len() as i64);
                Ok(base)
            }
        }
    }

    /// Write the group's record if the state machine marked it changed.
    async fn persist_if_dirty(&self, group_id: &str) {
        let entry = {
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(group_id) {
                Some(g) if g.dirty => {
                    g.dirty = false;
                    Some(store::group_entry(g))
                }
                _ => None,
            }
        };
        if let Some(entry) = entry {
            if let Err(e) = self.append(&[entry]).await {
                tracing::warn!("group {group_id}: writing group metadata: {e}");
            }
        }
    }

    pub async fn join(&self, group_id: String, p: JoinParams) -> JoinResult {
        let member_id = p.member_id.clone();
        let reply = {
            let now = self.now();
            if self.consumer.active(&group_id) {
                return JoinResult::error(ResponseError::InconsistentGroupProtocol, &member_id);
            }
            if !self.groups.borrow().contains_key(&group_id) {
                if !p.member_id.is_empty() {
                    return JoinResult::error(ResponseError::UnknownMemberId, &member_id);
                }
                if self.groups_full().is_some() {
                    // Kafka's answer for a group that cannot take the
                    // member (`group.max.size`); the broker is full instead.
                    return JoinResult::error(ResponseError::GroupMaxSizeReached, &member_id);
                }
            }
            let mut groups = self.groups.borrow_mut();
            let g = groups
                .entry(group_id.clone())
                .or_insert_with(|| Group::new(group_id.clone(), now));
            g.join(p, now, &self.cfg)
        };
        self.publish_group_count();
        self.reschedule(&group_id);
        self.persist_if_dirty(&group_id).await;
        match reply {
            Reply::Now(r) => r,
            Reply::Wait(rx) => rx.await.unwrap_or_else(|_| {
                JoinResult::error(ResponseError::RebalanceInProgress, &member_id)
            }),
        }
    }

    pub async fn sync(&self, group_id: String, p: SyncParams) -> SyncResult {
        let reply = {
            let now = self.now();
            let mut groups = self.groups.borrow_mut();
            let Some(g) = groups.get_mut(&group_id) else {
                return SyncResult::error(ResponseError::UnknownMemberId);
            };
            g.sync(
                &p.member_id,
                p.instance_id.as_deref(),
                p.generation,
                p.protocol_type.as_deref(),
                p.protocol_name.as_deref(),
                p.assignments,
                now,
            )
        };
        self.reschedule(&group_id);
        // The settled assignment is written before the leader hears back.
        self.persist_if_dirty(&group_id).await;
        match reply {
            Reply::Now(r) => r,
            Reply::Wait(rx) => rx
                .await
                .unwrap_or_else(|_| SyncResult::error(ResponseError::RebalanceInProgress)),
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> i16 {
        let now = self.now();
        let mut groups = self.groups.borrow_mut();
        match groups.get_mut(group_id) {
            Some(g) => g.heartbeat(member_id, instance_id, generation, now),
            None => ResponseError::UnknownMemberId.code(),
        }
    }

    /// Leave several members (LeaveGroup v3+ batches); one error each.
    pub async fn leave(&self, group_id: &str, members: Vec<(String, Option<String>)>) -> Vec<i16> {
        let out = {
            let now = self.now();
            let mut groups = self.groups.borrow_mut();
            match groups.get_mut(group_id) {
                Some(g) => members
                    .iter()
                    .map(|(id, inst)| g.leave(id, inst.as_deref(), now, &self.cfg))
                    .collect(),
                None => vec![ResponseError::UnknownMemberId.code(); members.len()],
            }
        };
        self.reschedule(group_id);
        self.persist_if_dirty(group_id).await;
        out
    }

    /// Every group of this shard: (id, protocol type, state).
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        self.groups
            .borrow()
            .values()
            .map(|g| {
                (
                    g.id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect()
    }

    pub fn describe(&self, group_id: &str) -> GroupSummary {
        let groups = self.groups.borrow();
        let Some(g) = groups.get(group_id) else {
            return GroupSummary {
                state: GroupState::Dead.name().into(),
                ..Default::default()
            };
        };
        // As in Kafka, protocol and metadata only for a settled group.
        let stable = g.state == GroupState::Stable;
        let protocol = g.protocol.clone().unwrap_or_default();
        GroupSummary {
            state: g.state.name().into(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: g
                .members
                .values()
                .map(|m| MemberSummary {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    // Kafka 4.x shows the last assignment in every state
                    // (cleared when a rebalance restarts before SyncGroup).
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// DeleteGroups: only groups without members; tombstones for the group
    /// and each of its offsets.
    pub async fn delete(&self, group_id: &str) -> i16 {
        if self.consumer.active(group_id) {
            return ResponseError::NonEmptyGroup.code();
        }
        let consumer_group = self.consumer.groups.borrow_mut().remove(group_id).is_some();
        let mut entries: Vec<store::Entry> = Vec::new();
        if consumer_group {
            entries.push((store::consumer_group_key(group_id), None));
        }
        {
            let groups = self.groups.borrow();
            match groups.get(group_id) {
                None if !consumer_group => return ResponseError::GroupIdNotFound.code(),
                None => {}
                Some(g) if g.state != GroupState::Empty => {
                    return ResponseError::NonEmptyGroup.code()
                }
                Some(g) => {
                    entries.extend(
                        g.offsets
                            .keys()
                            .map(|(t, p)| (store::offset_key(group_id, t, *p), None)),
                    );
                    entries.push((store::group_key(group_id), None));
                }
            }
        }
        if let Err(e) = self.append(&entries).await {
            tracing::warn!("deleting group {group_id}: {e}");
            return e.code.code();
        }
        let mut groups = self.groups.borrow_mut();
        if groups
            .get(group_id)
            .is_some_and(|g| g.state == GroupState::Empty)
        {
            groups.remove(group_id);
        }
        drop(groups);
        self.publish_group_count();
        0
    }

    /// Timers of every group, then (now and then) offset expiry. Called
    /// every few milliseconds by [`run_timers`].
    pub async fn tick(&self) {
        let now = self.now();
        for id in self.consumer.tick(now) {
            if let Some(entry) = self.consumer.take_dirty_entry(&id) {
                if let Err(e) = self.append(&[entry]).await {
                    tracing::warn!("consumer group {id}: writing group state: {e}");
                }
            }
        }
        let dirty: Vec<String> = {
            let mut groups = self.groups.borrow_mut();
            groups
                .values_mut()
                // An Empty group has no timers, but it may hold member ids
                // handed out with MEMBER_ID_REQUIRED, which lapse.
                .filter(|g| g.state != GroupState::Empty || g.dirty || !g.pending.is_empty())
                .filter_map(|g| {
                    g.tick(now, &self.cfg);
                    g.dirty.then(|| g.id.clone())
                })
                .collect()
        };
        for id in dirty {
            self.persist_if_dirty(&id).await;
        }
        if now - self.last_expiry_check.get() >= EXPIRY_CHECK_MS {
            self.last_expiry_check.set(now);
            self.expire_offsets(now).await;
        }
        self.publish_group_count();
    }
}

/// The shard's group timers: session and rebalance timeouts, the initial
/// rebalance delay, offset expiry. Sleeps until the earliest deadline of any
/// group (or until a request brings one earlier, see
/// [`Coordinator::reschedule`]) instead of ticking on a period, so an idle
/// shard does no work here.
pub async fn run_timers(state: Rc<crate::shard_state::ShardState>) {
    let groups = &state.groups;
    loop {
        // Registered before the deadline is read, so a reschedule in
        // between is not missed.
        let woken = groups.timer_wake.notified();
        let next = groups.next_deadline();
        groups.next_tick.set(next);
        let wait = next.saturating_sub(groups.now());
        if wait > 0 {
            let wait = std::time::Duration::from_millis(wait as u64);
            let _ = shard::rt::timeout(wait, woken).await;
            continue; // re-read: woken early, or the deadline moved on
        }
        groups.tick().await;
    }
}

/// Counts an append while its future lives (also when it is dropped).
struct InFlight<'a>(&'a Cell<usize>);

impl<'a> InFlight<'a> {
    fn new(count: &'a Cell<usize>) -> Self {
        count.set(count.get() + 1);
        Self(count)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get() - 1);
    }
}

/// A failed write to the group log, with the error Kafka's group
/// coordinator answers for it (Kafka 4.4 `CoordinatorOperationExceptionHelper`:
/// KAFKA_STORAGE_ERROR and NOT_LEADER_OR_FOLLOWER become NOT_COORDINATOR, so
/// clients look the coordinator up again and retry; the rest, here,
/// COORDINATOR_NOT_AVAILABLE).
#[derive(Debug)]
pub struct WriteFailed {
    pub code: ResponseError,
    pub message: String,
}

impl From<shard::log::LogError> for WriteFailed {
    fn from(e: shard::log::LogError) -> Self {
        use shard::log::LogError;
        let code = match &e {
            LogError::Storage(_) | LogError::NoSpace(_) | LogError::Closed => {
                ResponseError::NotCoordinator
            }
            _ => ResponseError::CoordinatorNotAvailable,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl std::fmt::Display for WriteFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (answered {:?})", self.message, self.code)
    }
}
