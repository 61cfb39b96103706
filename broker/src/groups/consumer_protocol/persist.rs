//! Consumer-protocol groups in the group log: one record per group with
//! its epochs, members (subscriptions, epochs, assignments, pending
//! revocations) and target assignment, rewritten whenever one of those
//! changes. Heartbeat times are not written: after a restart every
//! member's session clock starts again, so members that are gone time out
//! and the ones still running carry on with their epochs.

use serde::{Deserialize, Serialize};

use super::{Assignment, ConsumerGroup, ConsumerMember, TopicRegex};
use crate::groups::store::{self, Entry, FORMAT};

#[derive(Debug, Serialize, Deserialize)]
struct MemberValue {
    id: String,
    instance_id: Option<String>,
    rack_id: Option<String>,
    client_id: String,
    client_host: String,
    epoch: i32,
    previous_epoch: i32,
    subscribed: Vec<String>,
    regex: Option<String>,
    server_assignor: Option<String>,
    assigned: Assignment,
    pending_revoke: Assignment,
    rebalance_timeout_ms: i32,
    left_static: bool,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GroupValue {
    v: u8,
    epoch: i32,
    assignment_epoch: i32,
    assignor: String,
    members: Vec<MemberValue>,
    target: Vec<(String, Assignment)>,
}

/// The group's record as it stands.
pub fn entry(g: &ConsumerGroup) -> Entry {
    let v = GroupValue {
        v: FORMAT,
        epoch: g.epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: g.assignor.clone(),
        members: g
            .members
            .values()
            .map(|m| MemberValue {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                rack_id: m.rack_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                epoch: m.epoch,
                previous_epoch: m.previous_epoch,
                subscribed: m.subscribed.clone(),
                regex: m.subscribed_regex.as_ref().map(|r| r.source.clone()),
                server_assignor: m.server_assignor.clone(),
                assigned: m.assigned.clone(),
                pending_revoke: m.pending_revoke.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                left_static: m.left_static,
            })
            .collect(),
        target: g
            .target
            .iter()
            .map(|(id, a)| (id.clone(), a.clone()))
            .collect(),
    };
    (
        store::consumer_group_key(&g.id),
        Some(serde_json::to_vec(&v).expect("values serialize")),
    )
}

/// Rebuild a group from its record; sessions (and revocation deadlines)
/// restart at `now`.
pub(crate) fn restore(id: String, v: GroupValue, now: i64) -> ConsumerGroup {
    let mut g = ConsumerGroup::new(id);
    g.epoch = v.epoch;
    g.assignment_epoch = v.assignment_epoch;
    g.assignor = v.assignor;
    g.target = v.target.into_iter().collect();
    for m in v.members {
        let subscribed_regex = m.regex.as_deref().and_then(|r| match TopicRegex::new(r) {
            Ok(re) => Some(re),
            Err(e) => {
                tracing::warn!("consumer group {}: stored regex {r:?} dropped: {e}", g.id);
                None
            }
        });
        let revoke_deadline =
            (!m.pending_revoke.is_empty()).then(|| now + i64::from(m.rebalance_timeout_ms.max(0)));
        let member = ConsumerMember {
            id: m.id.clone(),
            instance_id: m.instance_id,
            rack_id: m.rack_id,
            client_id: m.client_id,
            client_host: m.client_host,
            epoch: m.epoch,
            previous_epoch: m.previous_epoch,
            subscribed: m.subscribed,
            subscribed_regex,
            // Resolved again against the topics at the next heartbeat.
            topics: Vec::new(),
            server_assignor: m.server_assignor,
            last_seen: now,
            assigned: m.assigned,
            pending_revoke: m.pending_revoke,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            revoke_deadline,
            left_static: m.left_static,
            unsent: false,
        };
        g.members.insert(m.id, member);
    }
    g
}
