//! The consumer group protocol of KIP-848: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe. Thin: topic ids to names and back, a call to the
//! group's owner shard; the logic is in `crate::groups::consumer_protocol`.

use std::rc::Rc;

use bytes::{Bytes, BytesMut};

use futures::future::join_all;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member,
    TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::*;
use kafka_protocol::ResponseError;

use super::groups::{owner, sb};
use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::groups::consumer_protocol::{self as cp, HeartbeatParams, HeartbeatResult};
use crate::messages::ShardWork;
use crate::shard_state::ShardState;

pub async fn heartbeat(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    let member_id = req.member_id.to_string();
    let fail = |code: i16, msg: &str| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_error_message(Some(sb(msg)))
            .with_member_id(Some(sb(member_id.clone())))
            .with_member_epoch(-1)
    };
    // Kafka: READ on the group, DESCRIBE on every subscribed topic.
    let acl = ctx.checker(state);
    if !acl.allows(Operation::Read, ResourceType::Group, &group_id) {
        return fail(
            ResponseError::GroupAuthorizationFailed.code(),
            "not allowed to READ the group",
        );
    }
    let hidden: Vec<&str> = req
        .subscribed_topic_names
        .iter()
        .flatten()
        .map(|t| t.0.as_str())
        .filter(|t| !acl.allows(Operation::Describe, ResourceType::Topic, t))
        .collect();
    if !hidden.is_empty() {
        return fail(
            ResponseError::TopicAuthorizationFailed.code(),
            &format!("not allowed to DESCRIBE subscribed topics {hidden:?}"),
        );
    }
    drop(acl);
    if group_id.is_empty() {
        return fail(ResponseError::InvalidGroupId.code(), "empty group id");
    }
    if !super::groups::coordinates(state, &group_id) {
        return fail(
            ResponseError::NotCoordinator.code(),
            "this broker does not coordinate the group",
        );
    }
    let regex = ctx.subscribed_topic_regex.clone();
    if req.subscribed_topic_names.is_none() && regex.is_none() && req.member_epoch == 0 {
        return fail(
            ResponseError::InvalidRequest.code(),
            "a joining member must give subscribed topic names or a regex",
        );
    }
    let snap = state.metadata.snapshot();
    let owned = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .filter_map(|tp| {
                let t = snap.topic_by_id(&tp.topic_id)?;
                Some((t.name.clone(), tp.partitions.iter().copied().collect()))
            })
            .collect()
    });
    let params = HeartbeatParams {
        member_id: member_id.clone(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect()),
        subscribed_regex: regex,
        server_assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned,
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
    };
    let shard = owner(state, &group_id);
    let result = state
        .ask(shard, ConsumerGroupHeartbeat { group_id, params })
        .await
        .unwrap_or_else(|_| HeartbeatResult {
            error: ResponseError::CoordinatorNotAvailable.code(),
            member_id: member_id.clone(),
            ..Default::default()
        });
    let mut resp = ConsumerGroupHeartbeatResponse::default()
        .with_error_code(result.error)
        .with_error_message(result.message.map(sb))
        .with_member_id(Some(sb(result.member_id)))
        .with_member_epoch(result.member_epoch)
        .with_heartbeat_interval_ms(result.heartbeat_interval_ms);
    if let Some(a) = result.assignment {
        let snap = state.metadata.snapshot();
        let topic_partitions = a
            .into_iter()
            .filter_map(|(t, ps)| {
                let meta = snap.topic(&t)?;
                Some(
                    TopicPartitions::default()
                        .with_topic_id(meta.id)
                        .with_partitions(ps.into_iter().collect()),
                )
            })
            .collect();
        resp.assignment = Some(Assignment::default().with_topic_partitions(topic_partitions));
    }
    resp
}

pub async fn describe(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let allowed: Vec<bool> = req
        .group_ids
        .iter()
        .map(|g| ctx.allowed(state, Operation::Describe, ResourceType::Group, g))
        .collect();
    let calls = req.group_ids.iter().map(|g| {
        let id = g.0.to_string();
        state.ask(owner(state, &id), ConsumerGroupDescribe { group_id: id })
    });
    let results = join_all(calls).await;
    let snap = state.metadata.snapshot();
    let to_wire = |a: &cp::Assignment| {
        DescribedAssignment::default().with_topic_partitions(
            a.iter()
                .filter_map(|(t, ps)| {
                    let meta = snap.topic(t)?;
                    Some(
                        DescribedPartitions::default()
                            .with_topic_id(meta.id)
                            .with_topic_name(TopicName(sb(t.clone())))
                            .with_partitions(ps.iter().copied().collect()),
                    )
                })
                .collect(),
        )
    };
    let groups = req
        .group_ids
        .iter()
        .zip(results)
        .zip(allowed)
        .map(|((id, r), allowed)| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(i32::MIN);
            if !allowed {
                return base.with_error_code(ResponseError::GroupAuthorizationFailed.code());
            }
            match r {
                Ok((Some(g), _)) => base
                    .with_group_state(sb(g.state_name()))
                    .with_group_epoch(g.epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(sb(g.preferred_assignor()))
                    .with_members(
                        g.members
                            .values()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(sb(m.id.clone()))
                                    .with_instance_id(m.instance_id.clone().map(sb))
                                    .with_rack_id(m.rack_id.clone().map(sb))
                                    .with_member_epoch(m.epoch)
                                    .with_client_id(sb(m.client_id.clone()))
                                    .with_client_host(sb(m.client_host.clone()))
                                    .with_subscribed_topic_names(
                                        m.subscribed
                                            .iter()
                                            .map(|t| TopicName(sb(t.clone())))
                                            .collect(),
                                    )
                                    .with_subscribed_topic_regex(
                                        m.subscribed_regex.as_ref().map(|r| sb(r.source.clone())),
                                    )
                                    .with_assignment(to_wire(&m.assigned))
                                    .with_target_assignment(to_wire(
                                        g.target.get(&m.id).unwrap_or(&cp::Assignment::new()),
                                    ))
                            })
                            .collect(),
                    ),
                Ok((None, true)) => base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(sb(format!("{} is not a consumer group", id.0)))),
                Ok((None, false)) => base
                    .with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(sb(format!("group {} not found", id.0)))),
                Err(_) => base.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
            }
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// ConsumerGroupHeartbeat v1 is v0 plus `SubscribedTopicRegex` (a compact
/// nullable string after `SubscribedTopicNames`); responses are the same.
/// kafka-protocol only knows v0, so the regex is cut out of a v1 body,
/// which is then decoded as v0; the regex travels beside it in the
/// request context.
pub fn downgrade_heartbeat_v1(body: Bytes) -> Result<(Bytes, Option<String>), String> {
    let b = &body[..];
    let start = topic_names_end(b)?;
    let mut end = start;
    let regex = read_nullable_str(b, &mut end)?;
    let mut out = BytesMut::with_capacity(b.len());
    out.extend_from_slice(&b[..start]);
    out.extend_from_slice(&b[end..]);
    Ok((out.freeze(), regex))
}

/// A compact nullable string (length + 1 as an unsigned varint, 0 = null).
fn read_nullable_str(b: &[u8], pos: &mut usize) -> Result<Option<String>, String> {
    let n = varint(b, pos)?;
    if n == 0 {
        return Ok(None);
    }
    let len = (n - 1) as usize;
    let bytes = b
        .get(*pos..pos.saturating_add(len))
        .ok_or("truncated string")?;
    *pos += len;
    String::from_utf8(bytes.to_vec())
        .map(Some)
        .map_err(|_| "string is not UTF-8".to_string())
}

fn varint(b: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

fn skip_str(b: &[u8], pos: &mut usize) -> Result<(), String> {
    let n = varint(b, pos)?;
    *pos += n.saturating_sub(1) as usize;
    if *pos > b.len() {
        return Err("truncated string".into());
    }
    Ok(())
}

/// Where `SubscribedTopicNames` of a heartbeat body ends.
fn topic_names_end(b: &[u8]) -> Result<usize, String> {
    let mut pos = 0;
    skip_str(b, &mut pos)?; // group id
    skip_str(b, &mut pos)?; // member id
    pos += 4; // member epoch
    skip_str(b, &mut pos)?; // instance id
    skip_str(b, &mut pos)?; // rack id
    pos += 4; // rebalance timeout
    let topics = varint(b, &mut pos)?;
    for _ in 1..topics {
        skip_str(b, &mut pos)?;
    }
    if pos > b.len() {
        return Err("truncated ConsumerGroupHeartbeat".into());
    }
    Ok(pos)
}

/// The version kafka-protocol encodes and decodes `version` of `key` with.
pub fn codec_version(key: ApiKey, version: i16) -> i16 {
    match (key, version) {
        (ApiKey::ConsumerGroupHeartbeat, 1) => 0,
        _ => version,
    }
}

/// ConsumerGroupHeartbeat, for the group's owner shard (which resolves the
/// subscription against its own metadata snapshot).
pub struct ConsumerGroupHeartbeat {
    group_id: String,
    params: HeartbeatParams,
}

impl ShardWork for ConsumerGroupHeartbeat {
    type Out = HeartbeatResult;

    async fn run(self, s: Rc<ShardState>) -> HeartbeatResult {
        let snap = s.metadata.snapshot();
        s.groups
            .consumer_heartbeat(&self.group_id, self.params, &*snap)
            .await
    }
}

/// ConsumerGroupDescribe of one group, for its owner shard: the consumer
/// group if there is one, and whether a classic group of that id exists.
pub struct ConsumerGroupDescribe {
    group_id: String,
}

impl ShardWork for ConsumerGroupDescribe {
    type Out = (Option<cp::ConsumerGroup>, bool);

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        let classic = s.groups.describe(&self.group_id);
        (
            s.groups.consumer_describe(&self.group_id),
            classic.state != "Dead",
        )
    }
}

/// Tests: turn a v0 heartbeat frame (header + body) into v1, with a null regex.
#[cfg(test)]
pub fn frame_as_version(key: ApiKey, version: i16, frame: Bytes) -> Bytes {
    use kafka_protocol::protocol::Decodable;
    if codec_version(key, version) == version {
        return frame;
    }
    let mut body = frame.clone();
    RequestHeader::decode(&mut body, key.request_header_version(0)).expect("header");
    let header_len = frame.len() - body.len();
    let at = header_len + topic_names_end(&body).expect("v0 body");
    let mut out = BytesMut::from(&frame[..at]);
    out.extend_from_slice(&[0]);
    out.extend_from_slice(&frame[at..]);
    out[2..4].copy_from_slice(&version.to_be_bytes());
    out.freeze()
}

#[cfg(test)]
mod tests {
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

    use super::*;

    fn v0_body() -> BytesMut {
        let req = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_member_id(StrBytes::from_static_str("m"))
            .with_subscribed_topic_names(Some(vec![]))
            .with_server_assignor(Some(StrBytes::from_static_str("range")));
        let mut buf = BytesMut::new();
        req.encode(&mut buf, 0).unwrap();
        buf
    }

    /// The v0 body with `regex` spliced in where v1 carries it.
    fn v1_body(regex: Option<&str>) -> Bytes {
        let v0 = v0_body();
        let at = topic_names_end(&v0).unwrap();
        let mut out = BytesMut::from(&v0[..at]);
        match regex {
            None => out.extend_from_slice(&[0]),
            Some(r) => {
                assert!(r.len() < 127);
                out.extend_from_slice(&[r.len() as u8 + 1]);
                out.extend_from_slice(r.as_bytes());
            }
        }
        out.extend_from_slice(&v0[at..]);
        out.freeze()
    }

    #[test]
    fn a_v1_heartbeat_gives_up_its_regex_and_decodes_as_v0() {
        for regex in [None, Some(""), Some("^orders-.*")] {
            let (mut body, got) = downgrade_heartbeat_v1(v1_body(regex)).unwrap();
            assert_eq!(got.as_deref(), regex);
            let req = ConsumerGroupHeartbeatRequest::decode(&mut body, 0).unwrap();
            assert_eq!(req.server_assignor.as_deref(), Some("range"));
            assert!(body.is_empty());
        }
    }

    #[test]
    fn a_truncated_or_lying_v1_heartbeat_is_an_error_not_a_panic() {
        let full = v1_body(Some("^abc"));
        for cut in 0..full.len() {
            let _ = downgrade_heartbeat_v1(full.slice(..cut));
        }
        let v0 = v0_body();
        let at = topic_names_end(&v0).unwrap();
        let mut lying = BytesMut::from(&v0[..at]);
        lying.extend_from_slice(&[0xff, 0xff, 0xff, 0x0f]);
        assert!(downgrade_heartbeat_v1(lying.freeze()).is_err());
    }
}
