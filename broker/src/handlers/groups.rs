//! Group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups, DescribeGroups, DeleteGroups. Thin: decode,
//! send to the group's owner shard, encode with the version's fields. The
//! state machine is in `crate::groups`.

use std::rc::Rc;

use futures::future::join_all;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::{Operation, ResourceType};
use crate::groups::{owner_shard, GroupSummary, JoinParams, JoinResult, SyncParams, SyncResult};
use crate::messages::ShardWork;
use crate::shard_state::ShardState;

pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Owner shard of a group on this broker.
pub fn owner(state: &ShardState, group_id: &str) -> usize {
    owner_shard(group_id, state.shards())
}

/// May the principal do `op` on the group?
pub fn group_allowed(state: &ShardState, ctx: &RequestContext, op: Operation, group: &str) -> bool {
    ctx.allowed(state, op, ResourceType::Group, group)
}

/// This broker coordinates `group`: it leads the group's
/// `__consumer_offsets` partition (or, before the coordinators are placed,
/// it is the only broker). Others answer NOT_COORDINATOR, and clients ask
/// FindCoordinator again.
pub fn coordinates(state: &ShardState, group: &str) -> bool {
    let snap = state.metadata.snapshot();
    match snap.coordinator_of(group) {
        Some(leader) => leader == state.config.node_id,
        None => snap.brokers.len() <= 1,
    }
}

/// Where `group` is coordinated, as (node, host, port) on the client's
/// listener, or the error to answer.
async fn coordinator_endpoint(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    group: &str,
) -> Result<(i32, String, i32), (i16, &'static str)> {
    let not_available = (
        ResponseError::CoordinatorNotAvailable.code(),
        "the group's coordinator is not available",
    );
    let mut snap = state.metadata.snapshot();
    if snap.coordinator_of(group).is_none() && !snap.brokers.is_empty() {
        // The first FindCoordinator places the coordinators.
        let placed = state
            .ask(
                crate::controller::CONTROLLER_SHARD,
                crate::controller::PlaceCoordinators,
            )
            .await;
        if let Ok(Err(e)) = placed {
            tracing::warn!("placing the group coordinators: {}", e.message);
        }
        snap = state.metadata.snapshot();
    }
    let node = match snap.coordinator_of(group) {
        None if snap.brokers.len() <= 1 => state.config.node_id,
        None => return Err(not_available),
        Some(l) if l < 0 => return Err(not_available),
        Some(l) => l,
    };
    if node == state.config.node_id && snap.brokers.is_empty() {
        let (host, port) = ctx.listener.advertised();
        return Ok((node, host, port));
    }
    let endpoint = snap
        .brokers
        .get(&node)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(&ctx.listener.name));
    match endpoint {
        Some(e) => Ok((node, e.host.clone(), e.port as i32)),
        None => Err(not_available),
    }
}

/// Where transactional id `id` is coordinated: the leader of its
/// `__transaction_state` partition, which is created on the first ask.
async fn txn_coordinator_endpoint(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    id: &str,
) -> Result<(i32, String, i32), (i16, &'static str)> {
    let not_available = (
        ResponseError::CoordinatorNotAvailable.code(),
        "the transaction coordinator is not available",
    );
    if crate::txn::topic::ensure(state).await.is_err() {
        return Err(not_available);
    }
    let snap = state.metadata.snapshot();
    let node = match crate::txn::topic::coordinator_of(&snap, id) {
        Some((_, leader)) if leader >= 0 => leader,
        _ => return Err(not_available),
    };
    if node == state.config.node_id && snap.brokers.is_empty() {
        let (host, port) = ctx.listener.advertised();
        return Ok((node, host, port));
    }
    snap.brokers
        .get(&node)
        .filter(|b| !b.fenced)
        .and_then(|b| b.endpoint(&ctx.listener.name))
        .map(|e| (node, e.host.clone(), e.port as i32))
        .ok_or(not_available)
}

pub async fn find_coordinator(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    // Groups (key type 0) and transactional ids (1) are coordinated by the
    // broker leading their partition. DESCRIBE on the group or
    // transactional id named by the key.
    let answer = |key_type: i8, key: String| async move {
        match key_type {
            0 if !group_allowed(state, ctx, Operation::Describe, &key) => Err((
                ResponseError::GroupAuthorizationFailed.code(),
                "not allowed to DESCRIBE the group",
            )),
            1 if !ctx.allowed(
                state,
                Operation::Describe,
                ResourceType::TransactionalId,
                &key,
            ) =>
            {
                Err((
                    ResponseError::TransactionalIdAuthorizationFailed.code(),
                    "not allowed to DESCRIBE the transactional id",
                ))
            }
            0 => coordinator_endpoint(state, ctx, &key).await,
            1 => txn_coordinator_endpoint(state, ctx, &key).await,
            _ => Err((ResponseError::InvalidRequest.code(), "unknown key type")),
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.version >= 4 {
        let mut coordinators = Vec::with_capacity(req.coordinator_keys.len());
        for key in &req.coordinator_keys {
            let c = Coordinator::default().with_key(key.clone());
            coordinators.push(match answer(req.key_type, key.to_string()).await {
                Ok((node, host, port)) => c
                    .with_node_id(BrokerId(node))
                    .with_host(sb(host))
                    .with_port(port),
                Err((error, msg)) => c
                    .with_node_id(BrokerId(-1))
                    .with_host(sb(""))
                    .with_port(-1)
                    .with_error_code(error)
                    .with_error_message(Some(sb(msg))),
            });
        }
        resp.coordinators = coordinators;
        return resp;
    }
    match answer(req.key_type, req.key.to_string()).await {
        Ok((node, host, port)) => {
            resp.node_id = BrokerId(node);
            resp.host = sb(host);
            resp.port = port;
        }
        Err((error, msg)) => {
            resp.error_code = error;
            resp.node_id = BrokerId(-1);
            resp.port = -1;
            if ctx.version >= 1 {
                resp.error_message = Some(sb(msg));
            }
        }
    }
    resp
}

pub async fn join_group(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: JoinGroupRequest,
) -> JoinGroupResponse {
    let v = ctx.version;
    let group_id = req.group_id.0.to_string();
    let params = JoinParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: format!("/{}", ctx.peer.ip()),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout; Kafka uses the session timeout.
        rebalance_timeout_ms: if v == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: v >= 4,
    };
    let result = if !group_allowed(state, ctx, Operation::Read, &group_id) {
        JoinResult::error(ResponseError::GroupAuthorizationFailed, &params.member_id)
    } else if !coordinates(state, &group_id) {
        JoinResult::error(ResponseError::NotCoordinator, &params.member_id)
    } else if group_id.is_empty() {
        JoinResult::error(ResponseError::InvalidGroupId, &params.member_id)
    } else if params.session_timeout_ms < state.config.group_min_session_timeout_ms
        || params.session_timeout_ms > state.config.group_max_session_timeout_ms
    {
        // Kafka's group.min/max.session.timeout.ms bounds.
        JoinResult::error(ResponseError::InvalidSessionTimeout, &params.member_id)
    } else {
        let member_id = params.member_id.clone();
        let shard = owner(state, &group_id);
        state
            .ask(shard, JoinGroup { group_id, params })
            .await
            .unwrap_or_else(|_| {
                JoinResult::error(ResponseError::CoordinatorNotAvailable, &member_id)
            })
    };
    let mut resp = JoinGroupResponse::default()
        .with_error_code(result.error)
        .with_generation_id(result.generation)
        .with_leader(sb(result.leader))
        .with_member_id(sb(result.member_id))
        .with_members(
            result
                .members
                .into_iter()
                .map(|(id, inst, metadata)| {
                    let mut m = JoinGroupResponseMember::default()
                        .with_member_id(sb(id))
                        .with_metadata(metadata);
                    if v >= 5 {
                        m.group_instance_id = inst.map(sb);
                    }
                    m
                })
                .collect(),
        );
    // Before v7 the protocol name is not nullable.
    resp.protocol_name = match (v >= 7, result.protocol_name) {
        (true, name) => name.map(sb),
        (false, name) => Some(sb(name.unwrap_or_default())),
    };
    if v >= 7 {
        resp.protocol_type = result.protocol_type.map(sb);
    }
    if v >= 9 {
        resp.skip_assignment = result.skip_assignment;
    }
    resp
}

pub async fn sync_group(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: SyncGroupRequest,
) -> SyncGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !group_allowed(state, ctx, Operation::Read, &group_id) {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if !coordinates(state, &group_id) {
        return SyncGroupResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    let params = SyncParams {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        generation: req.generation_id,
        protocol_type: req.protocol_type.as_ref().map(|s| s.to_string()),
        protocol_name: req.protocol_name.as_ref().map(|s| s.to_string()),
        assignments: req
            .assignments
            .iter()
            .map(|a| (a.member_id.to_string(), a.assignment.clone()))
            .collect(),
    };
    let shard = owner(state, &group_id);
    let sync = SyncGroup { group_id, params };
    let result = state
        .ask(shard, sync)
        .await
        .unwrap_or_else(|_| SyncResult::error(ResponseError::CoordinatorNotAvailable));
    let mut resp = SyncGroupResponse::default()
        .with_error_code(result.error)
        .with_assignment(result.assignment);
    if ctx.version >= 5 {
        resp.protocol_type = result.protocol_type.map(sb);
        resp.protocol_name = result.protocol_name.map(sb);
    }
    resp
}

pub async fn heartbeat(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: HeartbeatRequest,
) -> HeartbeatResponse {
    let group_id = req.group_id.0.to_string();
    if !group_allowed(state, ctx, Operation::Read, &group_id) {
        return HeartbeatResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if !coordinates(state, &group_id) {
        return HeartbeatResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    let member_id = req.member_id.to_string();
    let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
    let generation = req.generation_id;
    let shard = owner(state, &group_id);
    let heartbeat = Heartbeat {
        group_id,
        member_id,
        instance_id,
        generation,
    };
    let error = state
        .ask(shard, heartbeat)
        .await
        .unwrap_or(ResponseError::CoordinatorNotAvailable.code());
    HeartbeatResponse::default().with_error_code(error)
}

pub async fn leave_group(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let group_id = req.group_id.0.to_string();
    if !group_allowed(state, ctx, Operation::Read, &group_id) {
        return LeaveGroupResponse::default()
            .with_error_code(ResponseError::GroupAuthorizationFailed.code());
    }
    if !coordinates(state, &group_id) {
        return LeaveGroupResponse::default().with_error_code(ResponseError::NotCoordinator.code());
    }
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|s| s.to_string()),
                )
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let asked = members.clone();
    let shard = owner(state, &group_id);
    let errors = state
        .ask(shard, LeaveGroup { group_id, members })
        .await
        .unwrap_or_else(|_| vec![ResponseError::CoordinatorNotAvailable.code(); asked.len()]);
    if ctx.version < 3 {
        return LeaveGroupResponse::default().with_error_code(errors.first().copied().unwrap_or(0));
    }
    LeaveGroupResponse::default().with_members(
        asked
            .into_iter()
            .zip(errors)
            .map(|((id, inst), error)| {
                MemberResponse::default()
                    .with_member_id(sb(id))
                    .with_group_instance_id(inst.map(sb))
                    .with_error_code(error)
            })
            .collect(),
    )
}

pub async fn list_groups(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let v = ctx.version;
    let states: Vec<String> = if v >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if v >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let calls = (0..state.shards()).map(|shard| state.ask(shard, ListGroups));
    // Kafka: DESCRIBE on the cluster lists every group; otherwise only the
    // groups the principal may DESCRIBE are listed.
    let acl = ctx.checker(state);
    let all = acl.allows(
        Operation::Describe,
        ResourceType::Cluster,
        crate::acl::model::CLUSTER_NAME,
    );
    let mut groups: Vec<ListedGroup> = Vec::new();
    for (id, protocol_type, group_state, group_type) in
        join_all(calls).await.into_iter().flatten().flatten()
    {
        if !all && !acl.allows(Operation::Describe, ResourceType::Group, &id) {
            continue;
        }
        if !states.is_empty() && !states.contains(&group_state.to_lowercase()) {
            continue;
        }
        if !types.is_empty() && !types.iter().any(|t| t == group_type) {
            continue;
        }
        let mut g = ListedGroup::default()
            .with_group_id(GroupId(sb(id)))
            .with_protocol_type(sb(protocol_type));
        if v >= 4 {
            g.group_state = sb(group_state);
        }
        if v >= 5 {
            g.group_type = sb(group_type);
        }
        groups.push(g);
    }
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe_groups(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let allowed: Vec<bool> = req
        .groups
        .iter()
        .map(|g| group_allowed(state, ctx, Operation::Describe, g))
        .collect();
    let calls = req.groups.iter().map(|g| {
        let id = g.0.to_string();
        state.ask(owner(state, &id), DescribeGroup { group_id: id })
    });
    let summaries = join_all(calls).await;
    let groups = req
        .groups
        .iter()
        .zip(summaries)
        .zip(allowed)
        .map(|((id, summary), allowed)| {
            let (error, summary) = match summary {
                // Kafka answers the group id and the error only.
                _ if !allowed => (
                    ResponseError::GroupAuthorizationFailed.code(),
                    GroupSummary::default(),
                ),
                _ if !coordinates(state, id) => (
                    ResponseError::NotCoordinator.code(),
                    GroupSummary::default(),
                ),
                Ok(s) => (0, s),
                Err(_) => (
                    ResponseError::CoordinatorNotAvailable.code(),
                    GroupSummary::default(),
                ),
            };
            DescribedGroup::default()
                .with_error_code(error)
                .with_group_id(id.clone())
                .with_group_state(sb(summary.state))
                .with_protocol_type(sb(summary.protocol_type))
                .with_protocol_data(sb(summary.protocol))
                .with_members(
                    summary
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut d = DescribedGroupMember::default()
                                .with_member_id(sb(m.member_id))
                                .with_client_id(sb(m.client_id))
                                .with_client_host(sb(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if ctx.version >= 4 {
                                d.group_instance_id = m.instance_id.map(sb);
                            }
                            d
                        })
                        .collect(),
                )
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete_groups(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let calls = req.groups_names.iter().map(|g| {
        let id = g.0.to_string();
        let allowed = group_allowed(state, ctx, Operation::Delete, &id);
        async move {
            if !allowed {
                return Ok(ResponseError::GroupAuthorizationFailed.code());
            }
            if !coordinates(state, &id) {
                return Ok(ResponseError::NotCoordinator.code());
            }
            state
                .ask(owner(state, &id), DeleteGroup { group_id: id })
                .await
        }
    });
    let results = join_all(calls).await;
    DeleteGroupsResponse::default().with_results(
        req.groups_names
            .iter()
            .zip(results)
            .map(|(id, r)| {
                DeletableGroupResult::default()
                    .with_group_id(id.clone())
                    .with_error_code(r.unwrap_or(ResponseError::CoordinatorNotAvailable.code()))
            })
            .collect(),
    )
}

/// JoinGroup, for the group's owner shard.
pub struct JoinGroup {
    group_id: String,
    params: JoinParams,
}

impl ShardWork for JoinGroup {
    type Out = JoinResult;

    async fn run(self, s: Rc<ShardState>) -> JoinResult {
        s.groups.join(self.group_id, self.params).await
    }
}

/// SyncGroup, for the group's owner shard.
pub struct SyncGroup {
    group_id: String,
    params: SyncParams,
}

impl ShardWork for SyncGroup {
    type Out = SyncResult;

    async fn run(self, s: Rc<ShardState>) -> SyncResult {
        s.groups.sync(self.group_id, self.params).await
    }
}

/// Heartbeat (classic protocol), for the group's owner shard; answers the
/// error code.
pub struct Heartbeat {
    group_id: String,
    member_id: String,
    instance_id: Option<String>,
    generation: i32,
}

impl ShardWork for Heartbeat {
    type Out = i16;

    async fn run(self, s: Rc<ShardState>) -> i16 {
        s.groups.heartbeat(
            &self.group_id,
            &self.member_id,
            self.instance_id.as_deref(),
            self.generation,
        )
    }
}

/// LeaveGroup, for the group's owner shard; answers an error code per
/// (member id, instance id) in `members`.
pub struct LeaveGroup {
    group_id: String,
    members: Vec<(String, Option<String>)>,
}

impl ShardWork for LeaveGroup {
    type Out = Vec<i16>;

    async fn run(self, s: Rc<ShardState>) -> Vec<i16> {
        s.groups.leave(&self.group_id, self.members).await
    }
}

/// ListGroups, for every shard: its groups as (group id, protocol type,
/// state, group type).
pub struct ListGroups;

impl ShardWork for ListGroups {
    type Out = Vec<(String, String, String, &'static str)>;

    async fn run(self, s: Rc<ShardState>) -> Self::Out {
        // A consumer-protocol group keeps its offsets in a classic entry
        // of the same id; it is listed once, as what it is.
        let consumer = s.groups.consumer.list();
        let mut out: Self::Out = s
            .groups
            .list()
            .into_iter()
            .filter(|(id, _, _)| !consumer.iter().any(|(c, _)| c == id))
            .map(|(id, pt, st)| (id, pt, st.name().to_string(), "classic"))
            .collect();
        out.extend(
            consumer
                .into_iter()
                .map(|(id, st)| (id, "consumer".to_string(), st.to_string(), "consumer")),
        );
        out
    }
}

/// DescribeGroups of one group, for its owner shard.
pub struct DescribeGroup {
    group_id: String,
}

impl ShardWork for DescribeGroup {
    type Out = GroupSummary;

    async fn run(self, s: Rc<ShardState>) -> GroupSummary {
        s.groups.describe(&self.group_id)
    }
}

/// DeleteGroups of one group, for its owner shard; answers the error code.
pub struct DeleteGroup {
    group_id: String,
}

impl ShardWork for DeleteGroup {
    type Out = i16;

    async fn run(self, s: Rc<ShardState>) -> i16 {
        s.groups.delete(&self.group_id).await
    }
}
