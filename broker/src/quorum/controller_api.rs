//! Kafka's controller APIs as the controller listener serves them —
//! ApiVersions, BrokerRegistration, BrokerHeartbeat, DescribeQuorum — each
//! decoded on the connection's thread, answered by the quorum thread
//! ([`super::active`]) and encoded back.

use std::collections::HashMap;
use std::sync::mpsc::SyncSender;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::broker_registration_request::BrokerRegistrationRequest;
use kafka_protocol::messages::describe_quorum_response::{
    Listener as QuorumListener, Node, PartitionData, ReplicaState, TopicData,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerHeartbeatRequest, BrokerHeartbeatResponse, BrokerId,
    BrokerRegistrationResponse, DescribeQuorumRequest, DescribeQuorumResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::active::{HeartbeatAnswer, QuorumStatus, Rpc, RpcAnswer};
use super::node::{rpc_via, Input};
use super::transport::{decode_body, encode_body, Handler};
use crate::metadata::{BrokerMeta, Effect, Endpoint};

/// How long a connection thread waits for the quorum thread's answer.
const ANSWER_WITHIN: Duration = Duration::from_secs(15);

/// The APIs the controller listener serves, with their versions.
pub const SERVED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::BrokerRegistration, 0, 4),
    (ApiKey::BrokerHeartbeat, 0, 1),
];

/// The handler of the controller listener's Kafka requests. `cluster_id`
/// reads the committed id (registrations from another cluster are refused);
/// `voters` are the quorum's controller endpoints, for DescribeQuorum v2.
pub fn handler(
    inbox: SyncSender<Input>,
    cluster_id: Arc<dyn Fn() -> String + Send + Sync>,
    voters: HashMap<i32, String>,
    listener_name: String,
) -> Handler {
    Arc::new(move |key, version, body| {
        if !SERVED
            .iter()
            .any(|(k, a, b)| *k == key && (*a..=*b).contains(&version))
        {
            if key == ApiKey::ApiVersions {
                // KIP-511: answer an unknown ApiVersions version at v0.
                let resp = api_versions().with_error_code(ResponseError::UnsupportedVersion.code());
                return encode_body(&resp, 0);
            }
            return Err(format!(
                "{key:?} v{version} is not served on the controller listener"
            ));
        }
        match key {
            ApiKey::ApiVersions => encode_body(&api_versions(), version),
            ApiKey::BrokerRegistration => {
                let req: BrokerRegistrationRequest = decode_body(body, version)?;
                let resp = register(&inbox, req, version, &cluster_id());
                encode_body(&resp, version)
            }
            ApiKey::BrokerHeartbeat => {
                let req: BrokerHeartbeatRequest = decode_body(body, version)?;
                let rpc = Rpc::Heartbeat {
                    id: req.broker_id.0,
                    epoch: req.broker_epoch,
                    want_fence: req.want_fence,
                    want_shut_down: req.want_shut_down,
                };
                let resp = heartbeat_response(rpc_via(&inbox, rpc, ANSWER_WITHIN));
                encode_body(&resp, version)
            }
            ApiKey::DescribeQuorum => {
                let _req: DescribeQuorumRequest = decode_body(body, version)?;
                let answer = rpc_via(&inbox, Rpc::DescribeQuorum, ANSWER_WITHIN);
                let resp = describe_quorum_response(answer, &voters, &listener_name);
                encode_body(&resp, version)
            }
            other => Err(format!(
                "{other:?} is not served on the controller listener"
            )),
        }
    })
}

fn api_versions() -> ApiVersionsResponse {
    ApiVersionsResponse::default().with_api_keys(crate::handlers::api_versions::versions_of(SERVED))
}

/// The broker a registration describes. Its log dirs are its shards
/// (Kafka's directory of a replica is Shardline's shard), so their count
/// is how many shards it has; before v2 there are none: one shard.
pub fn broker_of(req: &BrokerRegistrationRequest, version: i16) -> BrokerMeta {
    BrokerMeta {
        id: req.broker_id.0,
        incarnation: req.incarnation_id,
        epoch: 0,
        endpoints: req
            .listeners
            .iter()
            .map(|l| Endpoint {
                name: l.name.to_string(),
                host: l.host.to_string(),
                port: l.port,
                security_protocol: l.security_protocol,
            })
            .collect(),
        rack: req.rack.as_ref().map(|r| r.to_string()),
        shards: if version >= 2 {
            req.log_dirs.len().max(1) as u32
        } else {
            1
        },
        fenced: true,
    }
}

fn register(
    inbox: &SyncSender<Input>,
    req: BrokerRegistrationRequest,
    version: i16,
    cluster_id: &str,
) -> BrokerRegistrationResponse {
    let resp = BrokerRegistrationResponse::default();
    let theirs = req.cluster_id.as_str();
    if !cluster_id.is_empty() && !theirs.is_empty() && theirs != cluster_id {
        return resp.with_error_code(ResponseError::InconsistentClusterId.code());
    }
    let broker = broker_of(&req, version);
    match registration_outcome(rpc_via(inbox, Rpc::Register(broker), ANSWER_WITHIN)) {
        Ok(epoch) => resp.with_broker_epoch(epoch),
        Err(code) => resp.with_error_code(code.code()),
    }
}

/// A registration's epoch, or the Kafka error to answer.
pub fn registration_outcome(answer: Option<RpcAnswer>) -> Result<i64, ResponseError> {
    match answer {
        Some(RpcAnswer::Registering(rx)) => match futures::executor::block_on(rx) {
            Ok(Ok(Effect::BrokerRegistered { epoch })) => Ok(epoch),
            Ok(Ok(other)) => unreachable!("a registration had the effect {other:?}"),
            Ok(Err(e)) => {
                tracing::warn!("a broker registration failed: {e}");
                Err(ResponseError::InvalidRequest)
            }
            Err(_) => Err(ResponseError::RequestTimedOut),
        },
        Some(RpcAnswer::NotController(_)) => Err(ResponseError::NotController),
        Some(RpcAnswer::Refused(m)) => {
            tracing::warn!("a broker registration was refused: {m}");
            Err(ResponseError::InvalidRequest)
        }
        Some(other) => unreachable!("a registration was answered {other:?}"),
        None => Err(ResponseError::RequestTimedOut),
    }
}

pub fn heartbeat_response(answer: Option<RpcAnswer>) -> BrokerHeartbeatResponse {
    let resp = BrokerHeartbeatResponse::default();
    match answer {
        Some(RpcAnswer::Heartbeat(HeartbeatAnswer::Alive { fenced, shut_down })) => resp
            .with_is_fenced(fenced)
            .with_is_caught_up(!fenced)
            .with_should_shut_down(shut_down),
        Some(RpcAnswer::Heartbeat(HeartbeatAnswer::Stale)) => {
            resp.with_error_code(ResponseError::StaleBrokerEpoch.code())
        }
        Some(RpcAnswer::NotController(_)) => {
            resp.with_error_code(ResponseError::NotController.code())
        }
        Some(RpcAnswer::Refused(_)) | None => {
            resp.with_error_code(ResponseError::RequestTimedOut.code())
        }
        Some(other) => unreachable!("a heartbeat was answered {other:?}"),
    }
}

/// DescribeQuorum's answer for `__cluster_metadata-0`: the status, or
/// NOT_LEADER_OR_FOLLOWER naming the leader this node knows.
pub fn describe_quorum_response(
    answer: Option<RpcAnswer>,
    voters: &HashMap<i32, String>,
    listener_name: &str,
) -> DescribeQuorumResponse {
    let partition = match answer {
        Some(RpcAnswer::Quorum(status)) => quorum_partition(&status),
        Some(RpcAnswer::NotController(leader)) => PartitionData::default()
            .with_error_code(ResponseError::NotLeaderOrFollower.code())
            .with_leader_id(BrokerId(leader.unwrap_or(-1))),
        _ => PartitionData::default().with_error_code(ResponseError::RequestTimedOut.code()),
    };
    let mut nodes: Vec<Node> = voters
        .iter()
        .filter_map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            Some(Node::default().with_node_id(BrokerId(*id)).with_listeners(
                vec![QuorumListener::default()
                        .with_name(StrBytes::from_string(listener_name.to_string()))
                        .with_host(StrBytes::from_string(host.to_string()))
                        .with_port(port.parse().ok()?)],
            ))
        })
        .collect();
    nodes.sort_by_key(|n| n.node_id.0);
    DescribeQuorumResponse::default()
        .with_topics(vec![TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![partition])])
        .with_nodes(nodes)
}

fn quorum_partition(s: &QuorumStatus) -> PartitionData {
    let replica = |r: &super::active::ReplicaState| {
        ReplicaState::default()
            .with_replica_id(BrokerId(r.node_id))
            .with_log_end_offset(r.log_end_offset)
            .with_last_fetch_timestamp(r.last_fetch_timestamp)
            .with_last_caught_up_timestamp(r.last_caught_up_timestamp)
    };
    PartitionData::default()
        .with_partition_index(0)
        .with_leader_id(BrokerId(s.leader_id))
        .with_leader_epoch(s.leader_epoch)
        .with_high_watermark(s.high_watermark)
        .with_current_voters(s.voters.iter().map(replica).collect())
        .with_observers(s.observers.iter().map(replica).collect())
}
