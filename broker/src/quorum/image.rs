//! The metadata image in a snapshot: [`ClusterState`] archived with rkyv.
//!
//! rkyv lays the archive out as the in-memory structs it stands for, so a
//! restarting node (or a follower installing a snapshot) validates the
//! bytes once (bytecheck: offsets, lengths, UTF-8) and reads the topics
//! straight from them, without a parser building an intermediate tree as
//! JSON would. Mirror structs keep the archive format independent of the
//! in-memory types (`Arc`s, indexes, `Uuid`); `VERSION` changes when the
//! layout does.

use std::collections::BTreeMap;
use std::sync::Arc;

use rkyv::rancor;
use uuid::Uuid;

use crate::metadata::proposals::AppliedProposals;
use crate::metadata::{BrokerMeta, ClusterState, Endpoint, PartitionMeta, TopicMeta};

#[path = "image_security.rs"]
mod security;

#[path = "image_alerts.rs"]
mod alerts;

/// 2: replicas' shards per broker, registered brokers.
/// 3: ACLs, SCRAM credentials, client quotas ([`ImageV3`]).
/// 4: partition epochs ([`ImageV4`]).
/// 5: reassignments in progress, dynamic broker configs ([`ImageV5`]).
/// 6: the proposals applied lately, and the alerting state: rules,
/// silences, firing alerts and their history ([`ImageV6`]).
const VERSION: u32 = 6;
/// Images of versions 2 (an [`Image`] alone) to 5 are still read.
const VERSION_2: u32 = 2;
const VERSION_3: u32 = 3;
const VERSION_4: u32 = 4;
const VERSION_5: u32 = 5;

/// Version 6: the version 5 image, the window of applied proposals
/// (`crate::metadata::proposals`), which every node must know alike to
/// skip the same copies, and the alerting state.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct ImageV6 {
    version: u32,
    v5: ImageV5,
    /// (proposing node's raft id, proposal ids oldest first).
    proposals: Vec<(u64, Vec<u64>)>,
    alerts: alerts::AlertsImage,
}

/// Version 5: the version 4 image, the partitions being reassigned and
/// the dynamic broker configs.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct ImageV5 {
    version: u32,
    v4: ImageV4,
    /// Only the partitions with a reassignment in progress.
    moves: Vec<MoveImage>,
    /// Broker id (-1: the cluster-wide default) and its dynamic configs.
    broker_configs: Vec<(i32, Vec<(String, String)>)>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct MoveImage {
    topic: String,
    partition: u32,
    adding: Vec<i32>,
    removing: Vec<i32>,
}

/// Version 4: the version 3 image and the partition epochs.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct ImageV4 {
    version: u32,
    base: Image,
    security: SecurityImage,
    /// Each topic's partitions' epochs, in the order of `base.topics`.
    topic_partition_epochs: Vec<Vec<i32>>,
    coordinator_partition_epochs: Vec<i32>,
}

/// Version 3: the version 2 image and the security state.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct ImageV3 {
    version: u32,
    base: Image,
    security: SecurityImage,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct SecurityImage {
    acls: Vec<AclImage>,
    users: Vec<UserImage>,
    fake_salt_secret: Vec<u8>,
    quotas: Vec<QuotaImage>,
}

/// Kafka's codes for the enums.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct AclImage {
    resource_type: i8,
    resource_name: String,
    pattern_type: i8,
    principal: String,
    host: String,
    operation: i8,
    permission: i8,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct UserImage {
    name: String,
    credentials: Vec<CredentialImage>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct CredentialImage {
    /// Kafka's mechanism type (1: SHA-256, 2: SHA-512).
    mechanism: i8,
    salt: Vec<u8>,
    iterations: u32,
    stored_key: Vec<u8>,
    server_key: Vec<u8>,
}

/// An entity part: `None` absent, `Some(None)` the default entity.
#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct QuotaImage {
    user: Option<Option<String>>,
    client_id: Option<Option<String>>,
    /// Kafka's key names (`producer_byte_rate`).
    values: Vec<(String, f64)>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Image {
    version: u32,
    cluster_id: String,
    producer_id_block_end: i64,
    topics: Vec<TopicImage>,
    brokers: Vec<BrokerImage>,
    next_broker_epoch: i64,
    coordinators: Vec<PartitionImage>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct BrokerImage {
    id: i32,
    incarnation: [u8; 16],
    epoch: i64,
    endpoints: Vec<EndpointImage>,
    rack: Option<String>,
    shards: u32,
    fenced: bool,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct EndpointImage {
    name: String,
    host: String,
    port: u16,
    security_protocol: i16,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct TopicImage {
    name: String,
    id: [u8; 16],
    partitions: Vec<PartitionImage>,
    configs: Vec<(String, String)>,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct PartitionImage {
    shards: Vec<u32>,
    leader_epoch: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// The archive of `state`.
pub fn encode(state: &ClusterState) -> Vec<u8> {
    let image = ImageV6 {
        version: VERSION,
        v5: image_v5(state),
        proposals: state
            .applied_proposals
            .iter()
            .map(|(origin, ids)| (origin, ids.iter().copied().collect()))
            .collect(),
        alerts: alerts::image(&state.alerts),
    };
    rkyv::to_bytes::<rancor::Error>(&image)
        .expect("archiving metadata into memory cannot fail")
        .into_vec()
}

fn image_v5(state: &ClusterState) -> ImageV5 {
    let epochs = |ps: &[PartitionMeta]| ps.iter().map(|p| p.partition_epoch).collect();
    let moves = state
        .topics
        .values()
        .flat_map(|t| {
            t.partitions
                .iter()
                .enumerate()
                .filter(|(_, p)| p.reassigning())
                .map(|(i, p)| MoveImage {
                    topic: t.name.clone(),
                    partition: i as u32,
                    adding: p.adding.clone(),
                    removing: p.removing.clone(),
                })
        })
        .collect();
    let broker_configs = state
        .broker_configs
        .iter()
        .map(|(id, c)| (*id, c.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
        .collect();
    let v4 = ImageV4 {
        version: VERSION_4,
        base: base_image(state),
        security: security::image(&state.security),
        topic_partition_epochs: state
            .topics
            .values()
            .map(|t| epochs(&t.partitions))
            .collect(),
        coordinator_partition_epochs: epochs(&state.coordinators),
    };
    ImageV5 {
        version: VERSION_5,
        v4,
        moves,
        broker_configs,
    }
}

fn base_image(state: &ClusterState) -> Image {
    Image {
        version: VERSION,
        cluster_id: state.cluster_id.clone(),
        producer_id_block_end: state.producer_id_block_end,
        topics: state
            .topics
            .values()
            .map(|t| TopicImage {
                name: t.name.clone(),
                id: *t.id.as_bytes(),
                partitions: t.partitions.iter().map(partition_image).collect(),
                configs: t
                    .configs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect(),
        brokers: state
            .brokers
            .values()
            .map(|b| BrokerImage {
                id: b.id,
                incarnation: *b.incarnation.as_bytes(),
                epoch: b.epoch,
                endpoints: b
                    .endpoints
                    .iter()
                    .map(|e| EndpointImage {
                        name: e.name.clone(),
                        host: e.host.clone(),
                        port: e.port,
                        security_protocol: e.security_protocol,
                    })
                    .collect(),
                rack: b.rack.clone(),
                shards: b.shards,
                fenced: b.fenced,
            })
            .collect(),
        next_broker_epoch: state.next_broker_epoch,
        coordinators: state.coordinators.iter().map(partition_image).collect(),
    }
}

/// The state archived in `bytes`, validated.
pub fn decode(bytes: &[u8]) -> Result<ClusterState, String> {
    // rkyv reads fields in place, so the buffer must be aligned as the
    // archive was written; a file read into a Vec<u8> need not be.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    // The version is the first field of both layouts; an archive of one
    // does not validate as the other (its root sits elsewhere).
    if let Ok(image) = rkyv::access::<ArchivedImageV6, rancor::Error>(&aligned) {
        if image.version.to_native() == VERSION {
            let mut state = state_v5(&image.v5)?;
            let lists = image.proposals.iter().map(|entry| {
                let ids = entry.1.iter().map(|id| id.to_native()).collect();
                (entry.0.to_native(), ids)
            });
            state.applied_proposals = Arc::new(AppliedProposals::from_lists(lists));
            state.alerts = Arc::new(alerts::state(&image.alerts)?);
            return Ok(state);
        }
    }
    if let Ok(image) = rkyv::access::<ArchivedImageV5, rancor::Error>(&aligned) {
        if image.version.to_native() == VERSION_5 {
            return state_v5(image);
        }
    }
    if let Ok(image) = rkyv::access::<ArchivedImageV4, rancor::Error>(&aligned) {
        if image.version.to_native() == VERSION_4 {
            let mut state = base_state(&image.base)?;
            state.security = security::state(&image.security)?;
            set_partition_epochs(&mut state, image)?;
            return Ok(state);
        }
    }
    if let Ok(image) = rkyv::access::<ArchivedImageV3, rancor::Error>(&aligned) {
        if image.version.to_native() == VERSION_3 {
            let mut state = base_state(&image.base)?;
            state.security = security::state(&image.security)?;
            return Ok(state);
        }
    }
    let image = rkyv::access::<ArchivedImage, rancor::Error>(&aligned)
        .map_err(|e| format!("metadata image is invalid: {e}"))?;
    let version = image.version.to_native();
    if version != VERSION_2 {
        return Err(format!(
            "metadata image version {version}; this build reads versions {VERSION_2} to {VERSION}"
        ));
    }
    base_state(image)
}

fn state_v5(image: &ArchivedImageV5) -> Result<ClusterState, String> {
    let v4 = &image.v4;
    let mut state = base_state(&v4.base)?;
    state.security = security::state(&v4.security)?;
    set_partition_epochs(&mut state, v4)?;
    set_moves(&mut state, image)?;
    Ok(state)
}

fn base_state(image: &ArchivedImage) -> Result<ClusterState, String> {
    let mut state = ClusterState::default();
    state.cluster_id = image.cluster_id.as_str().to_string();
    state.producer_id_block_end = image.producer_id_block_end.to_native();
    for t in image.topics.iter() {
        let topic = TopicMeta {
            name: t.name.as_str().to_string(),
            id: Uuid::from_bytes(t.id),
            partitions: t.partitions.iter().map(partition_meta).collect(),
            configs: t
                .configs
                .iter()
                .map(|kv| (kv.0.as_str().to_string(), kv.1.as_str().to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        state.topics.insert(topic.name.clone(), Arc::new(topic));
    }
    for b in image.brokers.iter() {
        let broker = BrokerMeta {
            id: b.id.to_native(),
            incarnation: Uuid::from_bytes(b.incarnation),
            epoch: b.epoch.to_native(),
            endpoints: b
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    name: e.name.as_str().to_string(),
                    host: e.host.as_str().to_string(),
                    port: e.port.to_native(),
                    security_protocol: e.security_protocol.to_native(),
                })
                .collect(),
            rack: b.rack.as_ref().map(|r| r.as_str().to_string()),
            shards: b.shards.to_native(),
            fenced: b.fenced,
        };
        state.brokers.insert(broker.id, broker);
    }
    state.next_broker_epoch = image.next_broker_epoch.to_native();
    state.coordinators = image.coordinators.iter().map(partition_meta).collect();
    state.reindex();
    Ok(state)
}

/// The partition epochs of a version 4 image, which must match its topics.
fn set_partition_epochs(state: &mut ClusterState, image: &ArchivedImageV4) -> Result<(), String> {
    let topics = &image.topic_partition_epochs;
    if topics.len() != image.base.topics.len() {
        return Err(format!(
            "metadata image has partition epochs for {} topics but {} topics",
            topics.len(),
            image.base.topics.len()
        ));
    }
    let set = |partitions: &mut [PartitionMeta], epochs: &[rkyv::Archived<i32>]| {
        if partitions.len() != epochs.len() {
            return Err(format!(
                "metadata image has {} partition epochs for {} partitions",
                epochs.len(),
                partitions.len()
            ));
        }
        for (p, e) in partitions.iter_mut().zip(epochs) {
            p.partition_epoch = e.to_native();
        }
        Ok(())
    };
    for (t, epochs) in image.base.topics.iter().zip(topics.iter()) {
        let topic = state
            .topics
            .get_mut(t.name.as_str())
            .expect("base_state read this topic");
        set(&mut Arc::make_mut(topic).partitions, epochs)?;
    }
    set(&mut state.coordinators, &image.coordinator_partition_epochs)
}

/// The reassignments and broker configs of a version 5 image.
fn set_moves(state: &mut ClusterState, image: &ArchivedImageV5) -> Result<(), String> {
    let ids = |v: &rkyv::vec::ArchivedVec<rkyv::Archived<i32>>| -> Vec<i32> {
        v.iter().map(|r| r.to_native()).collect()
    };
    for m in image.moves.iter() {
        let Some(t) = state.topics.get_mut(m.topic.as_str()) else {
            return Err(format!(
                "metadata image moves a partition of unknown topic '{}'",
                m.topic.as_str()
            ));
        };
        let t = Arc::make_mut(t);
        let i = m.partition.to_native() as usize;
        let Some(p) = t.partitions.get_mut(i) else {
            return Err(format!(
                "metadata image moves partition {i} of '{}', which has {}",
                t.name,
                t.partitions.len()
            ));
        };
        p.adding = ids(&m.adding);
        p.removing = ids(&m.removing);
    }
    for kv in image.broker_configs.iter() {
        let configs =
            kv.1.iter()
                .map(|c| (c.0.as_str().to_string(), c.1.as_str().to_string()))
                .collect();
        state.broker_configs.insert(kv.0.to_native(), configs);
    }
    Ok(())
}

fn partition_image(p: &PartitionMeta) -> PartitionImage {
    PartitionImage {
        shards: p.shards.clone(),
        leader_epoch: p.leader_epoch,
        leader: p.leader,
        replicas: p.replicas.clone(),
        isr: p.isr.clone(),
    }
}

fn partition_meta(p: &ArchivedPartitionImage) -> PartitionMeta {
    PartitionMeta {
        shards: p.shards.iter().map(|s| s.to_native()).collect(),
        leader_epoch: p.leader_epoch.to_native(),
        partition_epoch: 0, // version 4 sets it (set_partition_epochs)
        leader: p.leader.to_native(),
        replicas: p.replicas.iter().map(|r| r.to_native()).collect(),
        isr: p.isr.iter().map(|r| r.to_native()).collect(),
        adding: Vec::new(), // version 5 sets them (set_moves)
        removing: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::MetadataCommand;

    #[test]
    fn a_cluster_image_round_trips() {
        let mut s = ClusterState::default();
        let broker = |id: i32, rack: Option<&str>| BrokerMeta {
            id,
            incarnation: Uuid::from_u64_pair(7, id as u64),
            epoch: 0,
            endpoints: vec![Endpoint {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9000 + id as u16,
                security_protocol: 0,
            }],
            rack: rack.map(str::to_string),
            shards: 2,
            fenced: true,
        };
        for (id, rack) in [(1, Some("a")), (2, None)] {
            s.apply(
                &MetadataCommand::RegisterBroker(broker(id, rack)),
                usize::MAX,
            )
            .unwrap();
        }
        let mut p = PartitionMeta::local(1, 1);
        p.replicas = vec![1, 2];
        p.shards = vec![1, 0];
        p.partition_epoch = 6;
        s.apply(
            &MetadataCommand::CreateTopic {
                name: "t".into(),
                id: Uuid::from_u64_pair(1, 2),
                partitions: vec![p.clone()],
                configs: BTreeMap::from([("retention.ms".into(), "5".into())]),
            },
            usize::MAX,
        )
        .unwrap();
        s.apply(
            &MetadataCommand::PlaceCoordinators {
                partitions: vec![PartitionMeta::local(0, 2)],
            },
            usize::MAX,
        )
        .unwrap();
        add_security(&mut s);
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.security.acls.bindings.len(), 1);
        assert_eq!(
            back.topic_by_id(&Uuid::from_u64_pair(1, 2)).unwrap().name,
            "t"
        );
        assert!(decode(b"garbage, not an archive").is_err());
    }

    fn add_security(s: &mut ClusterState) {
        use crate::acl::model::{AclBinding, Operation, PatternType, Permission, ResourceType};
        use crate::metadata::security::SecurityCommand;
        use crate::quotas::entity::{Entity, Name, QuotaKey};
        use crate::security::credentials::StoredCredential;
        use crate::security::scram::{ScramCredential, ScramMechanism};
        let acl = AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: "t".into(),
            pattern_type: PatternType::Prefixed,
            principal: "User:a".into(),
            host: "*".into(),
            operation: Operation::Read,
            permission: Permission::Deny,
        };
        let cred = ScramCredential::new(ScramMechanism::Sha512, "pw", 4096).unwrap();
        let entity = Entity {
            user: Some(Name::Default),
            client_id: Some(Name::Named("app".into())),
        };
        s.apply(
            &MetadataCommand::Security(SecurityCommand::Import {
                acls: vec![acl],
                users: vec![("alice".into(), vec![StoredCredential::from(&cred)])],
                quotas: vec![(entity, vec![(QuotaKey::ProducerByteRate, Some(1024.0))])],
                fake_salt_secret: Some(vec![9; 32]),
            }),
            usize::MAX,
        )
        .unwrap();
        assert_eq!(s.security.acls.bindings.len(), 1);
        assert_eq!(s.security.scram.users.len(), 1);
        assert_eq!(s.security.quotas.entities.len(), 1);
    }

    /// Snapshots of versions 2 (before the security state), 3 and 4 still load.
    #[test]
    fn older_images_are_read() {
        let mut s = ClusterState::default();
        s.cluster_id = "old".into();
        s.apply(
            &MetadataCommand::PlaceCoordinators {
                partitions: vec![PartitionMeta::local(0, 2)],
            },
            usize::MAX,
        )
        .unwrap();
        let mut v2 = base_image(&s);
        v2.version = VERSION_2;
        let bytes = rkyv::to_bytes::<rancor::Error>(&v2).unwrap().into_vec();
        assert_eq!(decode(&bytes).unwrap(), s);
        // And a version 3 image does not pass for a version 2 one.
        add_security(&mut s);
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back.security, s.security);
        // Version 3: the security state, no partition epochs.
        let v3 = ImageV3 {
            version: VERSION_3,
            base: base_image(&s),
            security: security::image(&s.security),
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&v3).unwrap().into_vec();
        assert_eq!(decode(&bytes).unwrap(), s);
        // Version 4: partition epochs, no moves or broker configs.
        let epochs = |ps: &[PartitionMeta]| ps.iter().map(|p| p.partition_epoch).collect();
        let v4 = ImageV4 {
            version: VERSION_4,
            base: base_image(&s),
            security: security::image(&s.security),
            topic_partition_epochs: s.topics.values().map(|t| epochs(&t.partitions)).collect(),
            coordinator_partition_epochs: epochs(&s.coordinators),
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&v4).unwrap().into_vec();
        assert_eq!(decode(&bytes).unwrap(), s);
        // Version 5: no window of applied proposals.
        let v5 = image_v5(&s);
        let bytes = rkyv::to_bytes::<rancor::Error>(&v5).unwrap().into_vec();
        assert_eq!(decode(&bytes).unwrap(), s);
        // Version 6 keeps the window.
        let mut window = AppliedProposals::default();
        window.record(1, 7);
        window.record(3, 1 << 40);
        s.applied_proposals = Arc::new(window);
        let back = decode(&encode(&s)).unwrap();
        assert!(back.applied_proposals.contains(3, 1 << 40));
        assert_eq!(back, s);
        let mut v9 = base_image(&s);
        v9.version = 9;
        let bytes = rkyv::to_bytes::<rancor::Error>(&v9).unwrap().into_vec();
        assert!(decode(&bytes).unwrap_err().contains("version 9"));
    }

    /// Alert rules, silences, firing alerts and history survive a
    /// snapshot; a version 5 image (before alerts) still loads, without them.
    #[test]
    fn alerts_round_trip_and_version_5_still_loads() {
        use crate::metadata::alerts::tests::sample_state;
        let mut s = ClusterState::default();
        s.cluster_id = "c".into();
        add_security(&mut s);
        s.alerts = Arc::new(sample_state());
        assert!(!s.alerts.rules.is_empty() && !s.alerts.history.is_empty());
        let back = decode(&encode(&s)).unwrap();
        assert_eq!(back.alerts, s.alerts);
        assert_eq!(back, s);
        // The same state as a version 5 writer archived it.
        let v4 = ImageV4 {
            version: VERSION_4,
            base: base_image(&s),
            security: security::image(&s.security),
            topic_partition_epochs: vec![],
            coordinator_partition_epochs: vec![],
        };
        let v5 = ImageV5 {
            version: VERSION_5,
            v4,
            moves: vec![],
            broker_configs: vec![],
        };
        let bytes = rkyv::to_bytes::<rancor::Error>(&v5).unwrap().into_vec();
        let old = decode(&bytes).unwrap();
        assert_eq!(old.alerts, Default::default());
        assert_eq!(old.security, s.security);
        assert_eq!(old.cluster_id, "c");
    }
}
