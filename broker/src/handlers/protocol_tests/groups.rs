//! Sample requests of the group and offset APIs. Most need a group in a
//! given state first (a Stable member, or committed offsets), which
//! [`prepare`] builds through the coordinator; the sample then addresses it.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::*;

use super::{s, tn, TOPIC};
use crate::groups::offsets::CommitEntry;
use crate::groups::{JoinParams, SyncParams};
use crate::shard_state::ShardState;

thread_local! {
    /// (member id, generation) of the group `prepare` made for the next sample.
    static FIXTURE: RefCell<(String, i32)> = const { RefCell::new((String::new(), -1)) };
}

fn group_name(key: ApiKey, v: i16) -> String {
    format!("pt-{key:?}-{v}")
}

/// A consumer-protocol subscription to `TOPIC` (version 0).
fn subscription() -> Bytes {
    let mut b = vec![0u8, 0, 0, 0, 0, 1];
    b.extend_from_slice(&(TOPIC.len() as i16).to_be_bytes());
    b.extend_from_slice(TOPIC.as_bytes());
    b.extend_from_slice(&[0, 0, 0, 0]);
    Bytes::from(b)
}

/// Put the group of `key`/`v` in the state its sample request needs.
pub async fn prepare(state: &Rc<ShardState>, key: ApiKey, v: i16) {
    let group = group_name(key, v);
    let fixture = match (key, v) {
        (ApiKey::JoinGroup, 4..) => stable_member(state, &group).await,
        (ApiKey::OffsetCommit, 0) | (ApiKey::DeleteGroups, _) | (ApiKey::OffsetDelete, _) => {
            let entry = CommitEntry {
                topic: TOPIC.into(),
                partition: 0,
                offset: 3,
                leader_epoch: -1,
                metadata: String::new(),
            };
            let e = state.groups.commit(&group, "", None, -1, vec![entry]).await;
            assert_eq!(e, 0, "simple commit for {group}");
            (String::new(), -1)
        }
        (
            ApiKey::SyncGroup
            | ApiKey::Heartbeat
            | ApiKey::LeaveGroup
            | ApiKey::OffsetCommit
            | ApiKey::OffsetFetch
            | ApiKey::DescribeGroups,
            _,
        ) => stable_member(state, &group).await,
        _ => (String::new(), -1),
    };
    FIXTURE.with(|f| *f.borrow_mut() = fixture);
}

async fn stable_member(state: &Rc<ShardState>, group: &str) -> (String, i32) {
    let params = JoinParams {
        client_id: "protocol-tests".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 30_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription())],
        ..Default::default()
    };
    let joined = state.groups.join(group.to_string(), params).await;
    assert_eq!(joined.error, 0, "{joined:?}");
    let member = joined.member_id.clone();
    let synced = state
        .groups
        .sync(
            group.to_string(),
            SyncParams {
                member_id: member.clone(),
                generation: joined.generation,
                assignments: vec![(member.clone(), Bytes::from_static(b"assignment"))],
                ..Default::default()
            },
        )
        .await;
    assert_eq!(synced.error, 0, "{synced:?}");
    (member, joined.generation)
}

pub fn sample_request(key: ApiKey, v: i16) -> Option<RequestKind> {
    let group = group_name(key, v);
    let gid = GroupId(s(&group));
    let (member, generation) = FIXTURE.with(|f| f.borrow().clone());
    Some(match key {
        ApiKey::FindCoordinator => {
            let r = FindCoordinatorRequest::default().with_key_type(0);
            RequestKind::FindCoordinator(if v >= 4 {
                r.with_coordinator_keys(vec![s(&group)])
            } else {
                r.with_key(s(&group))
            })
        }
        ApiKey::JoinGroup => {
            let mut r = JoinGroupRequest::default()
                .with_group_id(gid)
                .with_session_timeout_ms(30_000)
                .with_member_id(s(&member))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(subscription())]);
            if v >= 1 {
                r = r.with_rebalance_timeout_ms(30_000);
            }
            RequestKind::JoinGroup(r)
        }
        ApiKey::SyncGroup => {
            let mut r = SyncGroupRequest::default()
                .with_group_id(gid)
                .with_generation_id(generation)
                .with_member_id(s(&member));
            if v >= 5 {
                r = r
                    .with_protocol_type(Some(s("consumer")))
                    .with_protocol_name(Some(s("range")));
            }
            RequestKind::SyncGroup(r)
        }
        ApiKey::Heartbeat => RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(gid)
                .with_generation_id(generation)
                .with_member_id(s(&member)),
        ),
        ApiKey::LeaveGroup => {
            let r = LeaveGroupRequest::default().with_group_id(gid);
            RequestKind::LeaveGroup(if v >= 3 {
                r.with_members(vec![MemberIdentity::default().with_member_id(s(&member))])
            } else {
                r.with_member_id(s(&member))
            })
        }
        ApiKey::OffsetCommit => {
            let mut p = OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(7)
                .with_committed_metadata(Some(s("md")));
            if v >= 6 {
                p = p.with_committed_leader_epoch(0);
            }
            let mut r = OffsetCommitRequest::default()
                .with_group_id(gid)
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(tn(TOPIC))
                    .with_partitions(vec![p])]);
            if v >= 1 {
                r = r
                    .with_generation_id_or_member_epoch(generation)
                    .with_member_id(s(&member));
            }
            RequestKind::OffsetCommit(r)
        }
        ApiKey::OffsetFetch => {
            let r = OffsetFetchRequest::default();
            RequestKind::OffsetFetch(if v >= 8 {
                r.with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(gid)
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(tn(TOPIC))
                        .with_partition_indexes(vec![0])]))])
            } else {
                r.with_group_id(gid)
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(tn(TOPIC))
                        .with_partition_indexes(vec![0])]))
            })
        }
        ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            RequestKind::DescribeGroups(DescribeGroupsRequest::default().with_groups(vec![gid]))
        }
        ApiKey::DeleteGroups => {
            RequestKind::DeleteGroups(DeleteGroupsRequest::default().with_groups_names(vec![gid]))
        }
        ApiKey::OffsetDelete => RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(gid)
                .with_topics(vec![OffsetDeleteRequestTopic::default()
                    .with_name(tn(TOPIC))
                    .with_partitions(vec![
                        OffsetDeleteRequestPartition::default().with_partition_index(0)
                    ])]),
        ),
        _ => return None,
    })
}

pub fn errors_of(resp: &ResponseKind) -> Option<Vec<i16>> {
    Some(match resp {
        ResponseKind::FindCoordinator(r) if r.coordinators.is_empty() => {
            assert!(r.port > 0 && !r.host.is_empty(), "{r:?}");
            vec![r.error_code]
        }
        ResponseKind::FindCoordinator(r) => r.coordinators.iter().map(|c| c.error_code).collect(),
        ResponseKind::JoinGroup(r) => {
            assert!(r.generation_id >= 1 && !r.member_id.is_empty(), "{r:?}");
            vec![r.error_code]
        }
        ResponseKind::SyncGroup(r) => {
            assert_eq!(&r.assignment[..], b"assignment");
            vec![r.error_code]
        }
        ResponseKind::Heartbeat(r) => vec![r.error_code],
        ResponseKind::LeaveGroup(r) => std::iter::once(r.error_code)
            .chain(r.members.iter().map(|m| m.error_code))
            .collect(),
        ResponseKind::OffsetCommit(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::OffsetFetch(r) => std::iter::once(r.error_code)
            .chain(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            )
            .chain(r.groups.iter().flat_map(|g| {
                std::iter::once(g.error_code).chain(
                    g.topics
                        .iter()
                        .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
                )
            }))
            .collect(),
        ResponseKind::ListGroups(r) => {
            assert!(!r.groups.is_empty(), "{r:?}");
            vec![r.error_code]
        }
        ResponseKind::DescribeGroups(r) => {
            assert_eq!(r.groups[0].group_state.as_str(), "Stable", "{r:?}");
            r.groups.iter().map(|g| g.error_code).collect()
        }
        ResponseKind::DeleteGroups(r) => r.results.iter().map(|g| g.error_code).collect(),
        ResponseKind::OffsetDelete(r) => std::iter::once(r.error_code)
            .chain(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            )
            .collect(),
        _ => return None,
    })
}
