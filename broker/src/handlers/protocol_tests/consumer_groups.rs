//! Sample requests of the consumer group protocol (KIP-848) APIs.

use std::rc::Rc;

use kafka_protocol::messages::*;

use super::{s, tn, TOPIC};
use crate::groups::consumer_protocol::HeartbeatParams;
use crate::shard_state::ShardState;

fn group_name(key: ApiKey, v: i16) -> String {
    format!("pt-{key:?}-{v}")
}

/// ConsumerGroupDescribe needs a group with a member.
pub async fn prepare(state: &Rc<ShardState>, key: ApiKey, v: i16) {
    if key != ApiKey::ConsumerGroupDescribe {
        return;
    }
    let snap = state.metadata.snapshot();
    let params = HeartbeatParams {
        member_id: "pt-member".into(),
        subscribed: Some(vec![TOPIC.into()]),
        ..Default::default()
    };
    let r = state
        .groups
        .consumer_heartbeat(&group_name(key, v), params, &*snap)
        .await;
    assert_eq!(r.error, 0, "{r:?}");
}

pub fn sample_request(key: ApiKey, v: i16) -> Option<RequestKind> {
    let gid = GroupId(s(&group_name(key, v)));
    Some(match key {
        ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(gid)
                .with_member_id(s("pt-member"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![tn(TOPIC)]))
                .with_topic_partitions(Some(vec![])),
        ),
        ApiKey::ConsumerGroupDescribe => RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default().with_group_ids(vec![gid]),
        ),
        _ => return None,
    })
}

pub fn errors_of(resp: &ResponseKind) -> Option<Vec<i16>> {
    Some(match resp {
        ResponseKind::ConsumerGroupHeartbeat(r) => {
            assert!(r.member_epoch >= 1, "{r:?}");
            let a = r.assignment.as_ref().expect("an assignment");
            let n: usize = a.topic_partitions.iter().map(|t| t.partitions.len()).sum();
            assert_eq!(n, 2, "{r:?}");
            vec![r.error_code]
        }
        ResponseKind::ConsumerGroupDescribe(r) => {
            let g = &r.groups[0];
            assert_eq!(g.members.len(), 1, "{r:?}");
            assert_eq!(g.group_state.as_str(), "Stable", "{r:?}");
            r.groups.iter().map(|g| g.error_code).collect()
        }
        _ => return None,
    })
}
