//! One module per Kafka API family, and the dispatch between them.
//!
//! `handle_frame` turns a request frame into a reply: it checks the API key
//! and version against what we serve, decodes with kafka-protocol, runs the
//! handler, and encodes the response with the header version the API needs.
//! A request we cannot parse closes the connection, as Kafka does.

pub mod acls;
pub mod admin_topics;
pub mod api_versions;
pub mod client_quotas;
pub mod cluster;
pub mod configs;
pub mod consumer_groups;
pub mod delete_records;
pub mod describe_producers;
pub mod errors;
pub mod fetch;
pub mod fetch_encode;
mod fetch_from_follower;
pub mod groups;
pub mod list_offsets;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer_id;
#[cfg(test)]
mod protocol_tests;
pub mod quorum;
pub mod reassignments;
pub mod sasl;
pub mod throttle;
pub mod txn;
pub mod txn_admin;
pub mod txn_markers;
pub mod txn_offsets;

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::listeners::Listener;
use crate::shard_state::ShardState;

/// What goes back on the connection for one request.
pub enum Reply {
    /// A complete response frame: size prefix, header, message.
    Frame(Bytes),
    /// A complete response frame in parts, sent back to back (zero-copy Fetch).
    Parts(Vec<Bytes>),
    /// No response (Produce with acks=0).
    None,
    /// Close the connection after the responses before this one.
    Close(String),
    /// A reply over a client quota: send it, then read nothing from the
    /// connection for this long (KIP-219).
    Throttled(Box<Reply>, std::time::Duration),
}

/// The APIs and version ranges we serve; ApiVersions advertises exactly this.
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 12),
    (ApiKey::Fetch, 0, 17),
    (ApiKey::ListOffsets, 0, 9),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 0, 7),
    (ApiKey::DeleteTopics, 0, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DescribeConfigs, 0, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::DescribeCluster, 0, 1),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::DescribeLogDirs, 0, 4),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 0, 9),
    (ApiKey::OffsetFetch, 0, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 0),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeAcls, 0, 3),
    (ApiKey::CreateAcls, 0, 3),
    (ApiKey::DeleteAcls, 0, 3),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::WriteTxnMarkers, 0, 1),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeProducers, 0, 0),
];

/// The version a request is decoded as when kafka-protocol (0.15) lacks
/// the one sent. Produce v12, EndTxn v5 and TxnOffsetCommit v5 (KIP-890
/// part 2) have the previous version's request schema; only EndTxn v5's
/// response differs (`txn::encode_end_txn`). ConsumerGroupHeartbeat v1
/// adds a field that `consumer_groups` strips.
pub fn codec_version(key: ApiKey, version: i16) -> i16 {
    match (key, version) {
        (ApiKey::Produce, 12) => 11,
        (ApiKey::EndTxn, 5) => 4,
        (ApiKey::TxnOffsetCommit, 5) => 4,
        _ => consumer_groups::codec_version(key, version),
    }
}

pub fn supported_range(key: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, min, max)| (*min, *max))
}

/// What a handler learns about the request besides its body.
pub struct RequestContext {
    pub api_key: ApiKey,
    /// The version the body was decoded (and the answer is encoded) as.
    pub version: i16,
    /// The version the client sent, when kafka-protocol lacks it and it is
    /// served as `version` (see [`codec_version`]).
    pub wire_version: i16,
    /// Who sent it, for log lines.
    pub client_id: String,
    pub peer: SocketAddr,
    /// ConsumerGroupHeartbeat v1's `SubscribedTopicRegex`, which
    /// kafka-protocol cannot decode (see `consumer_groups::codec_version`).
    pub subscribed_topic_regex: Option<String>,
    /// The listener the connection came in on (what Metadata advertises).
    pub listener: Arc<Listener>,
    /// `User:<name>` after SASL, `User:ANONYMOUS` otherwise.
    pub principal: Arc<str>,
}

/// What a request learns about its connection.
#[derive(Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub listener: Arc<Listener>,
    pub principal: Arc<str>,
}

pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Authorization of the request's principal and host. Every check passes
/// at the cost of one branch when `authorizer_enabled` is false.
impl RequestContext {
    /// May the principal do `op` on the named resource?
    pub fn allowed(
        &self,
        state: &ShardState,
        op: crate::acl::Operation,
        kind: crate::acl::ResourceType,
        name: &str,
    ) -> bool {
        state
            .security
            .authorizer
            .authorize(&self.principal, self.peer.ip(), op, kind, name)
    }

    /// May the principal do `op` on the cluster?
    pub fn cluster_allowed(&self, state: &ShardState, op: crate::acl::Operation) -> bool {
        self.allowed(
            state,
            op,
            crate::acl::ResourceType::Cluster,
            crate::acl::model::CLUSTER_NAME,
        )
    }

    /// One ACL snapshot for checking many resources (topics of a request).
    pub fn checker<'a>(&'a self, state: &'a ShardState) -> crate::acl::Checker<'a> {
        state
            .security
            .authorizer
            .checker(&self.principal, self.peer.ip())
    }
}

/// A request decoded and ready for its handler.
pub struct Decoded {
    pub ctx: RequestContext,
    pub correlation_id: i32,
    pub request: RequestKind,
    /// Size of the request frame (what a producer quota counts).
    pub size: usize,
}

/// Decode and handle one request frame; the request metrics count it here
/// (`metrics::requests`: its API, latency, bytes and whether it failed).
pub async fn handle_frame(state: &Rc<ShardState>, frame: Bytes, conn: ConnInfo) -> Reply {
    let timer = crate::metrics::requests::RequestTimer::start(&frame);
    let reply = match decode_frame(frame, &conn) {
        Ok(d) => handle_decoded(state, d).await,
        Err(reply) => reply,
    };
    timer.finish(&reply);
    reply
}

/// Check the API key and version and decode the request; `Err` is the
/// reply instead (KIP-511's ApiVersions answer, or Close).
pub fn decode_frame(frame: Bytes, conn: &ConnInfo) -> Result<Decoded, Reply> {
    if frame.len() < 8 {
        return Err(Reply::Close(format!(
            "request of {} bytes is too short for a header",
            frame.len()
        )));
    }
    let mut peek = &frame[..];
    let (raw_key, version, correlation_id) = (peek.get_i16(), peek.get_i16(), peek.get_i32());
    let Ok(api_key) = ApiKey::try_from(raw_key) else {
        return Err(Reply::Close(format!("unknown API key {raw_key}")));
    };
    let range = supported_range(api_key);
    let in_range = range.is_some_and(|(min, max)| version >= min && version <= max);
    if !in_range {
        if api_versions::is_api_versions(api_key) {
            return Err(Reply::Frame(api_versions::unsupported_version_reply(
                correlation_id,
            )));
        }
        return Err(Reply::Close(match range {
            Some((min, max)) => {
                format!("{api_key:?} v{version} is not supported (we serve v{min}-v{max})")
            }
            None => format!("{api_key:?} is not supported by this broker"),
        }));
    }
    let size = frame.len();
    let mut body = frame.clone();
    let header = match RequestHeader::decode(&mut body, api_key.request_header_version(version)) {
        Ok(h) => h,
        Err(e) => {
            return Err(Reply::Close(format!(
                "malformed {api_key:?} request header: {e}"
            )))
        }
    };
    // Versions kafka-protocol lacks are decoded and answered as an older one.
    let codec = codec_version(api_key, version);
    let wire_version = version;
    let mut subscribed_topic_regex = None;
    if codec != version && api_key == ApiKey::ConsumerGroupHeartbeat {
        (body, subscribed_topic_regex) = match consumer_groups::downgrade_heartbeat_v1(body) {
            Ok(b) => b,
            Err(e) => {
                return Err(Reply::Close(format!(
                    "malformed {api_key:?} v{version} request: {e}"
                )))
            }
        };
    }
    let version = codec;
    let request = match RequestKind::decode(api_key, &mut body, version) {
        Ok(r) => r,
        Err(e) => {
            return Err(Reply::Close(format!(
                "malformed {api_key:?} v{version} request: {e:#}"
            )))
        }
    };
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let ctx = RequestContext {
        api_key,
        version,
        wire_version,
        client_id,
        peer: conn.peer,
        subscribed_topic_regex,
        listener: conn.listener.clone(),
        principal: conn.principal.clone(),
    };
    Ok(Decoded {
        ctx,
        correlation_id,
        request,
        size,
    })
}

/// Run a decoded request's handler and encode its response. One path with
/// and without quotas: the [`throttle::Meter`] does nothing when none is
/// configured.
pub async fn handle_decoded(state: &Rc<ShardState>, d: Decoded) -> Reply {
    let Decoded {
        ctx,
        correlation_id,
        request,
        size,
    } = d;
    let mut meter = throttle::Meter::new(&state.quotas, &ctx);
    if let RequestKind::Fetch(r) = request {
        return fetch_reply(state, &ctx, r, correlation_id, &mut meter).await;
    }
    if let RequestKind::EndTxn(r) = request {
        // v5's answer has fields kafka-protocol lacks: encoded in `txn`.
        let (resp, producer) = meter.time(txn::end_txn(state, &ctx, r)).await;
        meter.record_request_time();
        let wait = meter.throttle();
        let mut response = ResponseKind::EndTxn(resp);
        meter.stamp(&mut response);
        let ResponseKind::EndTxn(resp) = response else {
            unreachable!("stamped in place")
        };
        return throttle::throttled(
            txn::encode_end_txn(&ctx, correlation_id, resp, producer),
            wait,
        );
    }
    let outcome = meter.time(dispatch(state, &ctx, request)).await;
    meter.record_request_time();
    if ctx.api_key == ApiKey::Produce {
        meter.record_produce(size);
    }
    let wait = meter.throttle();
    let mut response = match outcome {
        Ok(Some(r)) => r,
        // acks=0: no response, but the connection is still muted.
        Ok(None) => return throttle::throttled(Reply::None, wait),
        Err(why) => return Reply::Close(why),
    };
    meter.stamp(&mut response);
    throttle::throttled(encode_response(&ctx, correlation_id, response), wait)
}

/// Fetch is encoded by hand so record bytes are never copied. Under a
/// consumer quota the request is capped to what one window allows, the
/// response's bytes are counted, and the throttle time is patched into the
/// encoded header.
async fn fetch_reply(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    mut req: kafka_protocol::messages::FetchRequest,
    correlation_id: i32,
    meter: &mut throttle::Meter<'_>,
) -> Reply {
    meter.cap_fetch(&mut req);
    let mut parts = meter
        .time(fetch::handle(state, ctx, req, correlation_id))
        .await;
    meter.record_fetched(&parts);
    meter.record_request_time();
    let wait = meter.throttle();
    if !wait.is_zero() {
        fetch_encode::set_throttle_time(&mut parts, ctx.version, throttle::millis(wait));
    }
    throttle::throttled(Reply::Parts(parts), wait)
}

pub fn encode_response(ctx: &RequestContext, correlation_id: i32, response: ResponseKind) -> Reply {
    let mut out = BytesMut::with_capacity(256);
    // Room for the frame's size prefix, filled in below, so the connection
    // writes this buffer as is.
    out.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    // ApiVersions always answers with header v0, whatever its version.
    let header_version = if ctx.api_key == ApiKey::ApiVersions {
        0
    } else {
        ctx.api_key.response_header_version(ctx.version)
    };
    if let Err(e) = header.encode(&mut out, header_version) {
        return Reply::Close(format!("encoding response header: {e}"));
    }
    if let Err(e) = response.encode(&mut out, ctx.version) {
        tracing::error!(
            "encoding {:?} v{} response for client '{}' at {}: {e:#}",
            ctx.api_key,
            ctx.version,
            ctx.client_id,
            ctx.peer
        );
        return Reply::Close(format!("could not encode the {:?} response", ctx.api_key));
    }
    Reply::Frame(finish_frame(out))
}

/// Fill in the size prefix of a frame built after 4 reserved bytes.
pub fn finish_frame(mut out: BytesMut) -> Bytes {
    let size = (out.len() - 4) as i32;
    out[..4].copy_from_slice(&size.to_be_bytes());
    out.freeze()
}

/// Run the handler for one decoded request. `Ok(None)`: send nothing.
async fn dispatch(
    state: &Rc<ShardState>,
    ctx: &RequestContext,
    request: RequestKind,
) -> Result<Option<ResponseKind>, String> {
    Ok(Some(match request {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(
            r,
            state.config.transaction_version as i16,
        )),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::handle(state, ctx, r).await),
        RequestKind::Produce(r) => match produce::handle(state, ctx, r).await? {
            Some(resp) => ResponseKind::Produce(resp),
            None => return Ok(None),
        },
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(list_offsets::handle(state, ctx, r).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin_topics::create_topics(state, ctx, r).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin_topics::delete_topics(state, ctx, r).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin_topics::create_partitions(state, ctx, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(producer_id::handle(state, ctx, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe_configs(state, ctx, r))
        }
        RequestKind::AlterConfigs(r) => {
            ResponseKind::AlterConfigs(configs::alter_configs(state, ctx, r).await)
        }
        RequestKind::IncrementalAlterConfigs(r) => ResponseKind::IncrementalAlterConfigs(
            configs::incremental_alter_configs(state, ctx, r).await,
        ),
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(delete_records::handle(state, ctx, r).await)
        }
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(cluster::describe_cluster(state, ctx, r))
        }
        RequestKind::DescribeQuorum(r) => {
            ResponseKind::DescribeQuorum(quorum::describe_quorum(state, ctx, r).await)
        }
        RequestKind::UnregisterBroker(r) => {
            ResponseKind::UnregisterBroker(quorum::unregister_broker(state, ctx, r).await)
        }
        RequestKind::ElectLeaders(r) => {
            ResponseKind::ElectLeaders(reassignments::elect_leaders(state, ctx, r).await)
        }
        RequestKind::AlterPartitionReassignments(r) => ResponseKind::AlterPartitionReassignments(
            reassignments::alter_partition_reassignments(state, ctx, r).await,
        ),
        RequestKind::ListPartitionReassignments(r) => ResponseKind::ListPartitionReassignments(
            reassignments::list_partition_reassignments(state, ctx, r),
        ),
        RequestKind::DescribeLogDirs(r) => {
            ResponseKind::DescribeLogDirs(cluster::describe_log_dirs(state, ctx, r).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => ResponseKind::OffsetForLeaderEpoch(
            cluster::offset_for_leader_epoch(state, ctx, r).await,
        ),
        RequestKind::AddPartitionsToTxn(r) => {
            ResponseKind::AddPartitionsToTxn(txn::add_partitions_to_txn(state, ctx, r).await)
        }
        RequestKind::WriteTxnMarkers(r) => {
            ResponseKind::WriteTxnMarkers(txn_markers::write_txn_markers(state, ctx, r).await)
        }
        RequestKind::AddOffsetsToTxn(r) => {
            ResponseKind::AddOffsetsToTxn(txn_offsets::add_offsets_to_txn(state, ctx, r).await)
        }
        RequestKind::TxnOffsetCommit(r) => {
            ResponseKind::TxnOffsetCommit(txn_offsets::txn_offset_commit(state, ctx, r).await)
        }
        RequestKind::DescribeTransactions(r) => ResponseKind::DescribeTransactions(
            txn_admin::describe_transactions(state, ctx, r).await,
        ),
        RequestKind::ListTransactions(r) => {
            ResponseKind::ListTransactions(txn_admin::list_transactions(state, ctx, r).await)
        }
        RequestKind::DescribeProducers(r) => {
            ResponseKind::DescribeProducers(describe_producers::handle(state, ctx, r).await)
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(state, ctx, r).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join_group(state, ctx, r).await)
        }
        RequestKind::SyncGroup(r) => {
            ResponseKind::SyncGroup(groups::sync_group(state, ctx, r).await)
        }
        RequestKind::Heartbeat(r) => {
            ResponseKind::Heartbeat(groups::heartbeat(state, ctx, r).await)
        }
        RequestKind::LeaveGroup(r) => {
            ResponseKind::LeaveGroup(groups::leave_group(state, ctx, r).await)
        }
        RequestKind::ListGroups(r) => {
            ResponseKind::ListGroups(groups::list_groups(state, ctx, r).await)
        }
        RequestKind::DescribeGroups(r) => {
            ResponseKind::DescribeGroups(groups::describe_groups(state, ctx, r).await)
        }
        RequestKind::DeleteGroups(r) => {
            ResponseKind::DeleteGroups(groups::delete_groups(state, ctx, r).await)
        }
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(offsets::offset_commit(state, ctx, r).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(offsets::offset_fetch(state, ctx, r).await)
        }
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(offsets::offset_delete(state, ctx, r).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_groups::heartbeat(state, ctx, r).await)
        }
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_groups::describe(state, ctx, r).await)
        }
        // A SASL listener's connection answers these itself; here the
        // listener has no SASL, as Kafka answers then.
        RequestKind::SaslHandshake(_) => ResponseKind::SaslHandshake(sasl::handshake_response(
            kafka_protocol::ResponseError::IllegalSaslState.code(),
            &state.security,
        )),
        RequestKind::SaslAuthenticate(_) => {
            ResponseKind::SaslAuthenticate(sasl::authenticate_error(
                kafka_protocol::ResponseError::IllegalSaslState.code(),
                &format!("listener {} does not use SASL", ctx.listener.name),
            ))
        }
        RequestKind::DescribeUserScramCredentials(r) => ResponseKind::DescribeUserScramCredentials(
            sasl::describe_user_scram_credentials(state, ctx, r),
        ),
        RequestKind::AlterUserScramCredentials(r) => ResponseKind::AlterUserScramCredentials(
            sasl::alter_user_scram_credentials(state, ctx, r).await,
        ),
        RequestKind::DescribeClientQuotas(r) => {
            ResponseKind::DescribeClientQuotas(client_quotas::describe(state, ctx, r))
        }
        RequestKind::AlterClientQuotas(r) => {
            ResponseKind::AlterClientQuotas(client_quotas::alter(state, ctx, r).await)
        }
        RequestKind::CreateAcls(r) => {
            ResponseKind::CreateAcls(acls::create_acls(state, ctx, r).await)
        }
        RequestKind::DescribeAcls(r) => {
            ResponseKind::DescribeAcls(acls::describe_acls(state, ctx, r))
        }
        RequestKind::DeleteAcls(r) => {
            ResponseKind::DeleteAcls(acls::delete_acls(state, ctx, r).await)
        }
        other => {
            return Err(format!(
                "{:?} is not handled",
                std::mem::discriminant(&other)
            ))
        }
    }))
}
