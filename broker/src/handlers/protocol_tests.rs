//! Every advertised API at every advertised version, end to end through
//! `handle_frame` on a real one-shard broker state: the request survives a
//! kafka-protocol encode/decode round trip, reaches its handler (no API we
//! advertise falls through `dispatch`), and the response our handler builds
//! encodes at that version and decodes again with kafka-protocol.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeQuorumRequest, DescribeUserScramCredentialsRequest, SaslAuthenticateRequest,
    SaslHandshakeRequest, UnregisterBrokerRequest,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use kafka_protocol::ResponseError;
use shard::mesh::Mesh;

use super::{api_versions, handle_frame, ConnInfo, Reply, SUPPORTED_APIS};
use crate::config::BrokerConfig;
use crate::controller::{self, NewTopic};
use crate::metadata::MetadataStore;
use crate::shard_state::ShardState;

mod admin;
mod consumer_groups;
mod groups;
mod replicas;
mod transactions;
mod txn;

const TOPIC: &str = "t";
const GROW: &str = "grow";

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn tn(v: &str) -> TopicName {
    TopicName(s(v))
}

/// Records as a producer of `version` sends them: message sets of magic 0
/// (v0–v1) or 1 (v2), record batches from v3.
fn records_for(version: i16) -> Bytes {
    let magic = match version {
        0 | 1 => 0,
        2 => 1,
        _ => 2,
    };
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("value {i} for v{version}"))),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: magic,
            compression: Compression::None,
        },
    )
    .expect("records encode");
    buf.freeze()
}

/// A representative request of `key` at `version`, using only fields that
/// exist in that version. Requests of one API across versions are built so
/// they can all run against the same broker in order.
fn sample_request(key: ApiKey, v: i16, topic_id: uuid::Uuid) -> RequestKind {
    match key {
        ApiKey::Produce => RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(tn(TOPIC))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records_for(v)))])]),
        ),
        ApiKey::Fetch => {
            let mut topic = FetchTopic::default().with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_partition_max_bytes(1 << 20)]);
            topic = if v >= 13 {
                topic.with_topic_id(topic_id)
            } else {
                topic.with_topic(tn(TOPIC))
            };
            RequestKind::Fetch(
                FetchRequest::default()
                    .with_max_wait_ms(0)
                    .with_min_bytes(1)
                    .with_topics(vec![topic]),
            )
        }
        ApiKey::ListOffsets => {
            let mut p = ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1);
            if v == 0 {
                p = p.with_max_num_offsets(1);
            }
            RequestKind::ListOffsets(
                ListOffsetsRequest::default()
                    .with_replica_id(BrokerId(-1))
                    .with_topics(vec![ListOffsetsTopic::default()
                        .with_name(tn(TOPIC))
                        .with_partitions(vec![p])]),
            )
        }
        ApiKey::Metadata => {
            let mut r = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(tn(TOPIC))),
            ]));
            if v >= 4 {
                r = r.with_allow_auto_topic_creation(false);
            }
            RequestKind::Metadata(r)
        }
        ApiKey::ApiVersions => {
            let mut r = ApiVersionsRequest::default();
            if v >= 3 {
                r = r
                    .with_client_software_name(s("shardline-tests"))
                    .with_client_software_version(s("1.0"));
            }
            RequestKind::ApiVersions(r)
        }
        ApiKey::CreateTopics => RequestKind::CreateTopics(
            CreateTopicsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(tn(&format!("created-v{v}")))
                    .with_num_partitions(1)
                    .with_replication_factor(1)]),
        ),
        ApiKey::DeleteTopics => {
            let name = format!("created-v{v}");
            let r = DeleteTopicsRequest::default().with_timeout_ms(5000);
            RequestKind::DeleteTopics(if v >= 6 {
                r.with_topics(vec![DeleteTopicState::default().with_name(Some(tn(&name)))])
            } else {
                r.with_topic_names(vec![tn(&name)])
            })
        }
        ApiKey::InitProducerId => RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000),
        ),
        ApiKey::CreatePartitions => RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![CreatePartitionsTopic::default()
                    .with_name(tn(GROW))
                    .with_count(i32::from(v) + 2)]),
        ),
        ApiKey::DescribeConfigs => {
            let resources = vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(TOPIC))
                    .with_configuration_keys(None),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(s("0"))
                    .with_configuration_keys(None),
            ];
            let mut r = DescribeConfigsRequest::default().with_resources(resources);
            if v >= 1 {
                r = r.with_include_synonyms(true);
            }
            if v >= 3 {
                r = r.with_include_documentation(true);
            }
            RequestKind::DescribeConfigs(r)
        }
        ApiKey::AlterConfigs => {
            use kafka_protocol::messages::alter_configs_request::{
                AlterConfigsResource, AlterableConfig,
            };
            RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(TOPIC))
                    .with_configs(vec![AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s(&format!("{}", 3_600_000 + i64::from(v)))))]),
            ]))
        }
        ApiKey::IncrementalAlterConfigs => {
            use kafka_protocol::messages::incremental_alter_configs_request::{
                AlterConfigsResource, AlterableConfig,
            };
            RequestKind::IncrementalAlterConfigs(
                IncrementalAlterConfigsRequest::default().with_resources(vec![
                    AlterConfigsResource::default()
                        .with_resource_type(2)
                        .with_resource_name(s(TOPIC))
                        .with_configs(vec![AlterableConfig::default()
                            .with_name(s("cleanup.policy"))
                            .with_config_operation(2)
                            .with_value(Some(s("compact")))]),
                ]),
            )
        }
        ApiKey::DeleteRecords => RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![DeleteRecordsTopic::default()
                    .with_name(tn(TOPIC))
                    .with_partitions(vec![DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(i64::from(v) + 1)])]),
        ),
        ApiKey::DescribeCluster => {
            let mut r =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true);
            if v >= 1 {
                r = r.with_endpoint_type(1);
            }
            RequestKind::DescribeCluster(r)
        }
        ApiKey::DescribeQuorum => {
            RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                kafka_protocol::messages::describe_quorum_request::TopicData::default()
                    .with_topic_name(TopicName(s("__cluster_metadata")))
                    .with_partitions(vec![
                        kafka_protocol::messages::describe_quorum_request::PartitionData::default(),
                    ]),
            ]))
        }
        ApiKey::UnregisterBroker => RequestKind::UnregisterBroker(
            UnregisterBrokerRequest::default().with_broker_id(BrokerId(0)),
        ),
        ApiKey::DescribeLogDirs => {
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None))
        }
        ApiKey::OffsetForLeaderEpoch => {
            let mut p = OffsetForLeaderPartition::default()
                .with_partition(0)
                .with_leader_epoch(0);
            if v >= 2 {
                p = p.with_current_leader_epoch(0);
            }
            let mut r = OffsetForLeaderEpochRequest::default().with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(tn(TOPIC))
                    .with_partitions(vec![p]),
            ]);
            if v >= 3 {
                r = r.with_replica_id(BrokerId(-1));
            }
            RequestKind::OffsetForLeaderEpoch(r)
        }
        ApiKey::SaslHandshake => {
            RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism(s("PLAIN")))
        }
        ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(
            SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\0a\0b")),
        ),
        ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
            DescribeUserScramCredentialsRequest::default().with_users(None),
        ),
        ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(
            AlterUserScramCredentialsRequest::default().with_upsertions(vec![
                ScramCredentialUpsertion::default()
                    .with_name(s("bob"))
                    .with_mechanism(1)
                    .with_iterations(4096)
                    .with_salt(Bytes::from_static(b"salt"))
                    .with_salted_password(Bytes::from(vec![7u8; 32])),
            ]),
        ),
        ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(
            kafka_protocol::messages::DescribeClientQuotasRequest::default(),
        ),
        ApiKey::AlterClientQuotas => {
            use kafka_protocol::messages::alter_client_quotas_request::{
                EntityData, EntryData, OpData,
            };
            RequestKind::AlterClientQuotas(
                kafka_protocol::messages::AlterClientQuotasRequest::default()
                    .with_validate_only(true)
                    .with_entries(vec![EntryData::default()
                        .with_entity(vec![EntityData::default()
                            .with_entity_type(s("client-id"))
                            .with_entity_name(None)])
                        .with_ops(vec![OpData::default()
                            .with_key(s("producer_byte_rate"))
                            .with_value(1024.0)])]),
            )
        }
        ApiKey::CreateAcls => {
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                kafka_protocol::messages::create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ]))
        }
        ApiKey::DescribeAcls => RequestKind::DescribeAcls(
            DescribeAclsRequest::default()
                .with_resource_type_filter(1)
                .with_operation(1)
                .with_permission_type(1),
        ),
        ApiKey::DeleteAcls => {
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                kafka_protocol::messages::delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(2)
                    .with_resource_name_filter(Some(s("t")))
                    .with_operation(1)
                    .with_permission_type(1),
            ]))
        }
        other => groups::sample_request(other, v)
            .or_else(|| consumer_groups::sample_request(other, v))
            .or_else(|| replicas::sample_request(other))
            .or_else(|| txn::sample_request(other, v))
            .unwrap_or_else(|| {
                panic!("{other:?} is advertised but has no sample request here; add one")
            }),
    }
}

/// Encode a request frame body (no size prefix) as a client would.
fn request_frame(key: ApiKey, version: i16, correlation_id: i32, req: &RequestKind) -> Bytes {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(s("protocol-tests")))
        .encode(&mut buf, key.request_header_version(version))
        .expect("header encodes");
    req.encode(&mut buf, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} request encodes: {e:#}"));
    buf.freeze()
}

/// The request decodes back to what was encoded.
fn round_trip(key: ApiKey, version: i16, frame: &Bytes, sent: &RequestKind) {
    let mut body = frame.clone();
    let header = RequestHeader::decode(&mut body, key.request_header_version(version)).unwrap();
    assert_eq!(header.request_api_version, version);
    let decoded = RequestKind::decode(key, &mut body, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} request decodes: {e:#}"));
    assert!(
        body.is_empty(),
        "{key:?} v{version}: request bytes left over"
    );
    assert_eq!(&decoded, sent, "{key:?} v{version} request round trip");
}

/// Decode a reply frame (with size prefix) as the client would.
fn decode_reply(key: ApiKey, version: i16, correlation_id: i32, reply: Reply) -> ResponseKind {
    let bytes: Vec<u8> = match reply {
        Reply::Frame(b) => b.to_vec(),
        Reply::Parts(parts) => parts.iter().flat_map(|p| p.iter().copied()).collect(),
        Reply::None => panic!("{key:?} v{version}: no response"),
        Reply::Close(why) => panic!("{key:?} v{version}: connection closed: {why}"),
        Reply::Throttled(..) => panic!("{key:?} v{version}: throttled without quotas"),
    };
    let mut frame = Bytes::from(bytes);
    let size = frame.get_i32() as usize;
    assert_eq!(size, frame.len(), "{key:?} v{version}: frame size");
    let header_version = if key == ApiKey::ApiVersions {
        0
    } else {
        key.response_header_version(version)
    };
    let header = ResponseHeader::decode(&mut frame, header_version).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    let resp = ResponseKind::decode(key, &mut frame, version)
        .unwrap_or_else(|e| panic!("{key:?} v{version} response decodes: {e:#}"));
    assert!(
        frame.is_empty(),
        "{key:?} v{version}: {} response bytes left over",
        frame.len()
    );
    resp
}

/// The errors in a response that must be clean for the sample requests.
fn errors_of(resp: &ResponseKind) -> Vec<i16> {
    match resp {
        ResponseKind::Produce(r) => r
            .responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::Fetch(r) => r
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::ListOffsets(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::Metadata(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::ApiVersions(r) => vec![r.error_code],
        ResponseKind::CreateTopics(r) => r.topics.iter().map(|t| t.error_code).collect(),
        ResponseKind::DeleteTopics(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::InitProducerId(r) => vec![r.error_code],
        ResponseKind::CreatePartitions(r) => r.results.iter().map(|t| t.error_code).collect(),
        ResponseKind::DescribeConfigs(r) => r.results.iter().map(|t| t.error_code).collect(),
        ResponseKind::AlterConfigs(r) => r.responses.iter().map(|t| t.error_code).collect(),
        ResponseKind::IncrementalAlterConfigs(r) => {
            r.responses.iter().map(|t| t.error_code).collect()
        }
        ResponseKind::DeleteRecords(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::DescribeCluster(r) => vec![r.error_code],
        ResponseKind::DescribeQuorum(r) => std::iter::once(r.error_code)
            .chain(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            )
            .collect(),
        ResponseKind::UnregisterBroker(r) => vec![r.error_code],
        ResponseKind::DescribeLogDirs(r) => r.results.iter().map(|d| d.error_code).collect(),
        ResponseKind::OffsetForLeaderEpoch(r) => r
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect(),
        ResponseKind::SaslHandshake(r) => vec![r.error_code],
        ResponseKind::SaslAuthenticate(r) => vec![r.error_code],
        ResponseKind::DescribeUserScramCredentials(r) => std::iter::once(r.error_code)
            .chain(r.results.iter().map(|u| u.error_code))
            .collect(),
        ResponseKind::AlterUserScramCredentials(r) => {
            r.results.iter().map(|u| u.error_code).collect()
        }
        ResponseKind::DescribeClientQuotas(r) => vec![r.error_code],
        ResponseKind::AlterClientQuotas(r) => r.entries.iter().map(|e| e.error_code).collect(),
        ResponseKind::CreateAcls(r) => r.results.iter().map(|a| a.error_code).collect(),
        ResponseKind::DescribeAcls(r) => vec![r.error_code],
        ResponseKind::DeleteAcls(r) => r.filter_results.iter().map(|f| f.error_code).collect(),
        other => groups::errors_of(other)
            .or_else(|| consumer_groups::errors_of(other))
            .or_else(|| replicas::errors_of(other))
            .or_else(|| txn::errors_of(other))
            .unwrap_or_else(|| panic!("no error extraction for {other:?}")),
    }
}

fn peer() -> ConnInfo {
    let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    ConnInfo {
        peer: addr,
        listener: Arc::new(crate::listeners::Listener::plaintext(
            "127.0.0.1:9092".parse().unwrap(),
            None,
        )),
        principal: Arc::from(super::ANONYMOUS),
    }
}

async fn new_state(dir: &std::path::Path) -> Rc<ShardState> {
    let config = Arc::new(BrokerConfig {
        data_dir: dir.to_path_buf(),
        shards: 1,
        group_initial_rebalance_delay_ms: 0,
        // The ACL APIs answer SECURITY_DISABLED without an authorizer; with
        // one, the anonymous test client must be allowed everything.
        authorizer_enabled: true,
        super_users: vec![super::ANONYMOUS.to_string()],
        ..Default::default()
    });
    let metadata = Arc::new(MetadataStore::load_or_init(dir, 1, config.node_id).unwrap());
    let (mesh, mut inboxes) = Mesh::<ShardState>::new(1, shard::mesh::DEFAULT_QUEUE_DEPTH);
    let security = Arc::new(crate::security::sasl::Security::in_memory(&config).unwrap());
    security
        .credentials
        .ensure_bootstrap_user("alice", "secret", 4096)
        .unwrap();
    let state = Rc::new(ShardState::new(0, config, metadata, mesh, security));
    shard::rt::spawn_detached(inboxes.remove(0).serve(state.clone()));
    state.open_group_log().await.unwrap();
    for (name, partitions) in [(TOPIC, 2), (GROW, 1)] {
        let t = NewTopic {
            name: name.into(),
            partitions,
            assignments: Vec::new(),
            replication_factor: 1,
            configs: Default::default(),
            internal: false,
        };
        controller::create_topic(state.clone(), t, false)
            .await
            .unwrap();
    }
    state
}

#[test]
fn every_advertised_api_and_version_round_trips_through_its_handler() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    shard::runtime::run_local(move || async move {
        let state = new_state(&path).await;
        let topic_id = state.metadata.snapshot().topic(TOPIC).unwrap().id;
        let mut correlation_id = 0;
        for &(key, min, max) in SUPPORTED_APIS {
            for version in min..=max {
                correlation_id += 1;
                groups::prepare(&state, key, version).await;
                consumer_groups::prepare(&state, key, version).await;
                // Versions kafka-protocol lacks are served as an older one.
                let codec = super::codec_version(key, version);
                let req = sample_request(key, codec, topic_id);
                let frame = request_frame(key, codec, correlation_id, &req);
                round_trip(key, codec, &frame, &req);
                let frame = super::consumer_groups::frame_as_version(key, version, frame);
                let frame = txn::frame_as_version(key, version, codec, frame);
                let reply = handle_frame(&state, frame, peer()).await;
                if txn::check_raw_reply(key, version, correlation_id, &reply) {
                    continue;
                }
                let resp = decode_reply(key, codec, correlation_id, reply);
                let errors = errors_of(&resp);
                if matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
                    // Only a SASL listener's connection takes part in SASL.
                    assert_eq!(errors, [ResponseError::IllegalSaslState.code()]);
                    continue;
                }
                if key == ApiKey::UnregisterBroker {
                    // The sample names this broker, which has not
                    // registered here (no lifecycle in this test).
                    assert_eq!(errors, [ResponseError::BrokerIdNotRegistered.code()]);
                    continue;
                }
                if key == ApiKey::ElectLeaders {
                    // The only replica of `t` leads it already.
                    assert_eq!(errors, [0, ResponseError::ElectionNotNeeded.code()]);
                    continue;
                }
                if key == ApiKey::AlterPartitionReassignments {
                    // The sample cancels a move that is not there.
                    let none = ResponseError::NoReassignmentInProgress.code();
                    assert_eq!(errors, [0, none]);
                    continue;
                }
                if let Some(want) = txn::expected(key) {
                    assert_eq!(errors, want, "{key:?} v{version}: {resp:?}");
                    continue;
                }
                assert!(!errors.is_empty(), "{key:?} v{version}: empty response");
                assert!(
                    errors.iter().all(|e| *e == 0),
                    "{key:?} v{version}: errors {errors:?} in {resp:?}"
                );
                check_content(key, version, &resp);
            }
        }
        state.close_all().await;
    });
}

/// Spot checks that the handlers' answers carry the version's fields.
fn check_content(key: ApiKey, version: i16, resp: &ResponseKind) {
    match resp {
        ResponseKind::DescribeConfigs(r) => {
            let topic = &r.results[0].configs;
            assert!(topic.iter().any(|c| c.name.as_str() == "retention.ms"));
            let broker = &r.results[1].configs;
            assert!(
                broker.iter().all(|c| c.read_only),
                "broker configs are read-only"
            );
            if version >= 1 {
                // All but the throttled replica lists, which (as in
                // Kafka) come from no broker setting.
                assert!(topic
                    .iter()
                    .filter(|c| !c.name.contains("replication.throttled"))
                    .all(|c| !c.synonyms.is_empty()));
            }
            if version >= 3 {
                assert!(topic
                    .iter()
                    .all(|c| c.config_type != 0 && c.documentation.is_some()));
            }
        }
        ResponseKind::DescribeLogDirs(r) => {
            let dir = &r.results[0];
            assert!(dir.log_dir.starts_with('/'));
            let names: BTreeSet<&str> = dir.topics.iter().map(|t| t.name.0.as_str()).collect();
            assert!(names.contains(TOPIC), "{names:?}");
            if version >= 4 {
                assert!(dir.total_bytes > 0 && dir.usable_bytes >= 0);
            }
        }
        ResponseKind::OffsetForLeaderEpoch(r) => {
            let p = &r.topics[0].partitions[0];
            assert!(p.end_offset > 0, "{key:?} v{version}: {p:?}");
            if version >= 1 {
                assert_eq!(p.leader_epoch, 0);
            }
        }
        ResponseKind::DeleteRecords(r) => {
            assert_eq!(
                r.topics[0].partitions[0].low_watermark,
                i64::from(version) + 1
            );
        }
        ResponseKind::ApiVersions(r) => {
            assert_eq!(r.api_keys.len(), SUPPORTED_APIS.len());
        }
        _ => {}
    }
}

#[test]
fn unsupported_api_versions_version_gets_the_v0_answer_with_every_key() {
    let frame = api_versions::unsupported_version_reply(99);
    let mut b = frame.clone();
    assert_eq!(b.get_i32() as usize, b.len());
    let header = ResponseHeader::decode(&mut b, 0).unwrap();
    assert_eq!(header.correlation_id, 99);
    let resp = ApiVersionsResponse::decode(&mut b, 0).unwrap();
    assert!(b.is_empty());
    assert_eq!(resp.error_code, ResponseError::UnsupportedVersion.code());
    assert_eq!(resp.error_code, 35);
    let got: Vec<(i16, i16, i16)> = resp
        .api_keys
        .iter()
        .map(|k| (k.api_key, k.min_version, k.max_version))
        .collect();
    let want: Vec<(i16, i16, i16)> = SUPPORTED_APIS
        .iter()
        .map(|(k, min, max)| (*k as i16, *min, *max))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn advertised_ranges_are_within_what_kafka_protocol_serves() {
    let mut seen = BTreeSet::new();
    for &(key, min, max) in SUPPORTED_APIS {
        assert!(seen.insert(key as i16), "{key:?} listed twice");
        let range = key.valid_versions();
        let max = super::codec_version(key, max);
        assert!(
            min >= range.min && max <= range.max && min <= max,
            "{key:?} v{min}-v{max} outside kafka-protocol's v{}-v{}",
            range.min,
            range.max
        );
    }
}
