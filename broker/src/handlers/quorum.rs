//! DescribeQuorum on the client listeners (what `kafka-metadata-quorum
//! --bootstrap-server` sends): answered by the quorum leader, so a broker
//! that does not lead asks the leader's controller listener, as Kafka's
//! brokers forward it to the active controller. The asking happens on the
//! blocking pool, never on the shard.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::{
    DescribeQuorumRequest, DescribeQuorumResponse, TopicName, UnregisterBrokerRequest,
    UnregisterBrokerResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

use super::RequestContext;
use crate::acl::Operation;
use crate::config::BrokerConfig;
use crate::metadata::MetadataStore;
use crate::quorum::active::Rpc;
use crate::quorum::controller_api::describe_quorum_response;
use crate::shard_state::ShardState;

pub async fn describe_quorum(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    _req: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    if !ctx.cluster_allowed(state, Operation::Describe) {
        return DescribeQuorumResponse::default()
            .with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let (store, config) = (state.metadata.clone(), state.config.clone());
    shard::blocking::run(move || ask_leader(&store, &config)).await
}

/// UnregisterBroker: ALTER on the cluster, done by the controller shard.
pub async fn unregister_broker(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let resp = UnregisterBrokerResponse::default();
    if !ctx.cluster_allowed(state, Operation::Alter) {
        return resp.with_error_code(ResponseError::ClusterAuthorizationFailed.code());
    }
    let work = crate::controller::UnregisterBroker(req.broker_id.0);
    match state.ask(crate::controller::CONTROLLER_SHARD, work).await {
        Ok(Ok(())) => resp,
        Ok(Err(e)) => resp
            .with_error_code(e.code)
            .with_error_message(Some(StrBytes::from_string(e.message))),
        Err(_) => resp.with_error_code(ResponseError::UnknownServerError.code()),
    }
}

fn ask_leader(store: &Arc<MetadataStore>, config: &BrokerConfig) -> DescribeQuorumResponse {
    let voters: HashMap<i32, String> = config.quorum_voters.iter().cloned().collect();
    let name = config
        .controller_listener
        .as_ref()
        .map_or("CONTROLLER".to_string(), |l| l.name.clone());
    let view = store.quorum().view();
    let leader_addr = view.leader.and_then(|l| voters.get(&l).cloned());
    match leader_addr {
        Some(addr) if !view.is_leader => match forward(&addr) {
            Ok(resp) => resp,
            Err(e) => {
                tracing::debug!("DescribeQuorum to the active controller at {addr}: {e:#}");
                describe_quorum_response(None, &voters, &name)
            }
        },
        _ => {
            let answer = store
                .quorum()
                .rpc(Rpc::DescribeQuorum, Duration::from_secs(5));
            describe_quorum_response(answer, &voters, &name)
        }
    }
}

fn forward(addr: &str) -> anyhow::Result<DescribeQuorumResponse> {
    let mut opts = shardline_client::Options::new("shardline-broker");
    opts.io_timeout = Duration::from_secs(5);
    opts.connect_timeout = Duration::from_secs(1);
    let mut conn = shardline_client::Conn::<()>::connect(addr, &opts)?;
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    conn.call(&req)
}
