//! Metadata: the cluster's brokers, topics and partitions (leaders,
//! replicas, in-sync replicas), with auto-creation.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::model::CLUSTER_NAME;
use crate::acl::{Operation, ResourceType};
use crate::controller::{self, NewTopic, CONTROLLER_SHARD};
use crate::listeners::Listener;
use crate::metadata::{internal, validate_topic_name, ClusterState, TopicMeta};
use crate::shard_state::ShardState;

/// Create the topics in `names` that do not exist (when `auto_create`), and
/// return a snapshot that has them. Invalid names are left for the caller
/// to report; so are topics the principal may not CREATE (on the cluster
/// or the topic, as Kafka's auto-creation requires).
pub async fn ensure_topics(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    names: &[String],
    auto_create: bool,
) -> Arc<ClusterState> {
    let snap = state.metadata.snapshot();
    if !auto_create {
        return snap;
    }
    let acl = ctx.checker(state);
    let may_create_any = acl.allows(Operation::Create, ResourceType::Cluster, CLUSTER_NAME);
    let missing: Vec<String> = names
        .iter()
        .filter(|n| snap.topic(n).is_none() && validate_topic_name(n).is_ok())
        // Never a user topic of an internal name (Kafka would create its own
        // internal topic here; Shardline's internal state is not a topic).
        .filter(|n| !internal::is_reserved(n))
        .filter(|n| may_create_any || acl.allows(Operation::Create, ResourceType::Topic, n))
        .cloned()
        .collect();
    if missing.is_empty() {
        return snap;
    }
    for name in missing {
        let t = NewTopic {
            name,
            partitions: -1,
            replication_factor: -1,
            assignments: Vec::new(),
            configs: BTreeMap::new(),
            internal: false,
        };
        let create = controller::CreateTopic {
            topic: t,
            validate_only: false,
        };
        let outcome = state.ask(CONTROLLER_SHARD, create).await;
        if let Ok(Err(e)) = outcome {
            // Another request may have created it first: that is fine.
            if e.code != ResponseError::TopicAlreadyExists.code() {
                tracing::warn!("auto-creating a topic: {}", e.message);
            }
        }
    }
    state.metadata.snapshot()
}

/// A broker as clients of one listener see it.
pub struct BrokerView {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// The live brokers with an endpoint for `listener` (clients stay on the
/// listener they came in through, as with Kafka). Before this broker has
/// registered (a tool's embedded broker), it alone.
pub fn live_brokers(
    state: &ShardState,
    snap: &ClusterState,
    listener: &Listener,
) -> Vec<BrokerView> {
    if snap.brokers.is_empty() {
        let (host, port) = listener.advertised();
        return vec![BrokerView {
            id: state.config.node_id,
            host,
            port,
            rack: state.config.broker_rack.clone(),
        }];
    }
    snap.live_brokers()
        .filter_map(|b| {
            let e = b.endpoint(&listener.name)?;
            Some(BrokerView {
                id: b.id,
                host: e.host.clone(),
                port: e.port as i32,
                rack: b.rack.clone(),
            })
        })
        .collect()
}

/// The controller DescribeCluster reports: the active controller when it
/// is a live broker, else this broker (KRaft brokers name a broker, since
/// clients cannot reach controllers; admin requests to it are forwarded).
pub fn controller_id(state: &ShardState, snap: &ClusterState) -> i32 {
    match state.metadata.quorum().view().leader {
        Some(l) if snap.is_live(l) => l,
        _ => state.config.node_id,
    }
}

fn partitions_of(snap: &ClusterState, t: &TopicMeta) -> Vec<MetadataResponsePartition> {
    let ids = |v: &[i32]| v.iter().map(|b| BrokerId(*b)).collect::<Vec<_>>();
    t.partitions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let offline: Vec<i32> = p
                .replicas
                .iter()
                .copied()
                .filter(|r| !snap.brokers.is_empty() && !snap.is_live(*r))
                .collect();
            MetadataResponsePartition::default()
                .with_error_code(if p.leader < 0 {
                    ResponseError::LeaderNotAvailable.code()
                } else {
                    0
                })
                .with_partition_index(i as i32)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(ids(&p.replicas))
                .with_isr_nodes(ids(&p.isr))
                .with_offline_replicas(ids(&offline))
        })
        .collect()
}

fn topic_entry(snap: &ClusterState, t: &TopicMeta) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name.clone()))))
        .with_topic_id(t.id)
        .with_is_internal(internal::is_internal(&t.name))
        .with_partitions(partitions_of(snap, t))
        .with_topic_authorized_operations(i32::MIN)
}

pub async fn handle(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: MetadataRequest,
) -> MetadataResponse {
    // v0: an empty list means all topics; v1+: null means all, empty none.
    let wanted: Option<Vec<(Option<String>, uuid::Uuid)>> = match req.topics {
        None => None,
        Some(ts) if ts.is_empty() && ctx.version == 0 => None,
        Some(ts) => Some(
            ts.into_iter()
                .map(|t| (t.name.map(|n| n.0.to_string()), t.topic_id))
                .collect(),
        ),
    };
    // Before v4 there is no flag and auto-creation follows the broker setting.
    let allow_auto = ctx.version < 4 || req.allow_auto_topic_creation;
    let auto_create = allow_auto && state.config.auto_create_topics_enable;
    // Topics the principal may not DESCRIBE are left out of an all-topics
    // listing, and answered TOPIC_AUTHORIZATION_FAILED when named (before
    // auto-creation, so no topic is created for someone who cannot see it).
    let acl = ctx.checker(state);
    let may_describe = |name: &str| acl.allows(Operation::Describe, ResourceType::Topic, name);
    let snap = match &wanted {
        Some(list) => {
            let names: Vec<String> = list
                .iter()
                .filter_map(|(n, _)| n.clone())
                .filter(|n| may_describe(n))
                .collect();
            ensure_topics(state, ctx, &names, auto_create).await
        }
        None => state.metadata.snapshot(),
    };
    let topics = match wanted {
        None => snap
            .topics
            .values()
            .filter(|t| may_describe(&t.name))
            .map(|t| topic_entry(&snap, t))
            .collect(),
        Some(list) => list
            .into_iter()
            .map(|(name, id)| {
                let found = match &name {
                    Some(n) => snap.topic(n),
                    None => snap.topic_by_id(&id),
                };
                let denied = match (&name, found) {
                    (Some(n), _) => !may_describe(n),
                    (None, Some(t)) => !may_describe(&t.name),
                    (None, None) => false,
                };
                if denied {
                    return MetadataResponseTopic::default()
                        .with_error_code(ResponseError::TopicAuthorizationFailed.code())
                        .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
                        .with_topic_id(id);
                }
                match found {
                    Some(t) => topic_entry(&snap, t),
                    None => {
                        let err = match &name {
                            // A reserved name can never be a topic here, so
                            // it is invalid rather than unknown: clients fail
                            // fast with the code Kafka's Produce gives it,
                            // instead of waiting for it to appear.
                            Some(n)
                                if validate_topic_name(n).is_err() || internal::is_reserved(n) =>
                            {
                                ResponseError::InvalidTopicException
                            }
                            Some(_) => ResponseError::UnknownTopicOrPartition,
                            None => ResponseError::UnknownTopicId,
                        };
                        // Kafka 4.4.0 marks even an absent internal topic is_internal.
                        let is_internal = name.as_deref().is_some_and(internal::is_internal);
                        MetadataResponseTopic::default()
                            .with_error_code(err.code())
                            .with_is_internal(is_internal)
                            .with_name(name.map(|n| TopicName(StrBytes::from_string(n))))
                            .with_topic_id(id)
                    }
                }
            })
            .collect(),
    };
    MetadataResponse::default()
        .with_brokers(
            live_brokers(state, &snap, &ctx.listener)
                .into_iter()
                .map(|b| {
                    MetadataResponseBroker::default()
                        .with_node_id(BrokerId(b.id))
                        .with_host(StrBytes::from_string(b.host))
                        .with_port(b.port)
                        .with_rack(b.rack.map(StrBytes::from_string))
                })
                .collect(),
        )
        .with_cluster_id(Some(StrBytes::from_string(snap.cluster_id.clone())))
        // Clients send admin requests to the "controller" named here: this
        // broker, which the client evidently reaches and which proposes them
        // to the quorum itself (KRaft brokers name an alive broker too and
        // forward). Naming the active controller would point clients at a
        // dead node for as long as this broker has not heard of the next
        // one (librdkafka then waits on it until its request times out).
        .with_controller_id(BrokerId(state.config.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(i32::MIN)
}
