//! The values a classic group's entry points take and give: settings,
//! states, join and sync parameters and results, committed offsets. Apart
//! from the state machine in `group.rs` so that file holds one idea.

use bytes::Bytes;
use futures::channel::oneshot;
use kafka_protocol::ResponseError;

/// Group-level settings from the broker config.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long an Empty group waits for
    /// more members after the first one joins, so a fleet of consumers
    /// starting together gets one rebalance instead of one per member.
    pub initial_rebalance_delay_ms: i64,
    /// `offsets.retention.minutes`, in ms.
    pub offsets_retention_ms: i64,
    /// `group.max.size`: members a group may have.
    pub max_size: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }

    /// May a group move from `prev` to this state? Kafka's
    /// `GroupMetadata.validPreviousStates`, which `transitionTo` asserts.
    pub fn may_follow(self, prev: GroupState) -> bool {
        use GroupState::*;
        match self {
            Empty => prev == PreparingRebalance,
            PreparingRebalance => matches!(prev, Stable | CompletingRebalance | Empty),
            CompletingRebalance => prev == PreparingRebalance,
            Stable => prev == CompletingRebalance,
            Dead => true,
        }
    }
}

/// Either an answer now, or one that arrives when the group moves on.
pub enum Reply<T> {
    Now(T),
    Wait(oneshot::Receiver<T>),
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a member without an id gets MEMBER_ID_REQUIRED first.
    pub require_known_member_id: bool,
}

/// A SyncGroup request, as the group's owner shard gets it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncParams {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub generation: i32,
    /// SyncGroup v5+: checked against the group's, when given.
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    /// (member id, assignment), from the leader.
    pub assignments: Vec<(String, Bytes)>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct JoinResult {
    pub error: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// (member id, instance id, metadata): only the leader gets these.
    pub members: Vec<(String, Option<String>, Bytes)>,
    pub skip_assignment: bool,
}

impl JoinResult {
    pub fn error(e: ResponseError, member_id: &str) -> Self {
        Self {
            error: e.code(),
            generation: -1,
            member_id: member_id.to_string(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncResult {
    pub error: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(e: ResponseError) -> Self {
        Self {
            error: e.code(),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Position of the record in the group log; a commit only replaces an
    /// older one, whatever order concurrent appends complete in.
    pub log_offset: i64,
}
