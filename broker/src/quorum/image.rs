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

use crate::metadata::{ClusterState, PartitionMeta, TopicMeta};

const VERSION: u32 = 1;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
struct Image {
    version: u32,
    cluster_id: String,
    producer_id_block_end: i64,
    topics: Vec<TopicImage>,
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
    shard: u32,
    leader_epoch: i32,
    leader: i32,
    replicas: Vec<i32>,
    isr: Vec<i32>,
}

/// The archive of `state`.
pub fn encode(state: &ClusterState) -> Vec<u8> {
    let image = Image {
        version: VERSION,
        cluster_id: state.cluster_id.clone(),
        producer_id_block_end: state.producer_id_block_end,
        topics: state
            .topics
            .values()
            .map(|t| TopicImage {
                name: t.name.clone(),
                id: *t.id.as_bytes(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionImage {
                        shard: p.shard,
                        leader_epoch: p.leader_epoch,
                        leader: p.leader,
                        replicas: p.replicas.clone(),
                        isr: p.isr.clone(),
                    })
                    .collect(),
                configs: t
                    .configs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect(),
    };
    rkyv::to_bytes::<rancor::Error>(&image)
        .expect("archiving metadata into memory cannot fail")
        .into_vec()
}

/// The state archived in `bytes`, validated.
pub fn decode(bytes: &[u8]) -> Result<ClusterState, String> {
    // rkyv reads fields in place, so the buffer must be aligned as the
    // archive was written; a file read into a Vec<u8> need not be.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(bytes.len());
    aligned.extend_from_slice(bytes);
    let image = rkyv::access::<ArchivedImage, rancor::Error>(&aligned)
        .map_err(|e| format!("metadata image is invalid: {e}"))?;
    let version = image.version.to_native();
    if version != VERSION {
        return Err(format!(
            "metadata image version {version}; this build reads version {VERSION}"
        ));
    }
    let mut state = ClusterState::default();
    state.cluster_id = image.cluster_id.as_str().to_string();
    state.producer_id_block_end = image.producer_id_block_end.to_native();
    for t in image.topics.iter() {
        let topic = TopicMeta {
            name: t.name.as_str().to_string(),
            id: Uuid::from_bytes(t.id),
            partitions: t
                .partitions
                .iter()
                .map(|p| PartitionMeta {
                    shard: p.shard.to_native(),
                    leader_epoch: p.leader_epoch.to_native(),
                    leader: p.leader.to_native(),
                    replicas: p.replicas.iter().map(|r| r.to_native()).collect(),
                    isr: p.isr.iter().map(|r| r.to_native()).collect(),
                })
                .collect(),
            configs: t
                .configs
                .iter()
                .map(|kv| (kv.0.as_str().to_string(), kv.1.as_str().to_string()))
                .collect::<BTreeMap<_, _>>(),
        };
        state.topics.insert(topic.name.clone(), Arc::new(topic));
    }
    state.reindex();
    Ok(state)
}
