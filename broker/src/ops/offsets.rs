//! Partition layout of a topic and ListOffsets, sent to each partition's leader.

use std::collections::{BTreeMap, HashMap};

use anyhow::{anyhow, bail, Result};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest};

use shardline_client::{check, topic_name, Client};

pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// One partition of a topic as Metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    pub partition: i32,
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub error: i16,
}

/// The partitions of `topic`, sorted, or the topic's error.
pub fn topic_partitions(client: &mut Client, topic: &str) -> Result<Vec<PartitionInfo>> {
    let md = client.metadata(Some(&[topic.to_string()]))?;
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.as_str()) == Some(topic))
        .ok_or_else(|| anyhow!("UNKNOWN_TOPIC_OR_PARTITION: topic {topic} not in metadata"))?;
    check(t.error_code, format!("topic {topic}"), None)?;
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    let mut parts: Vec<PartitionInfo> = t
        .partitions
        .iter()
        .map(|p| PartitionInfo {
            partition: p.partition_index,
            leader: p.leader_id.0,
            replicas: ids(&p.replica_nodes),
            isr: ids(&p.isr_nodes),
            error: p.error_code,
        })
        .collect();
    parts.sort_by_key(|p| p.partition);
    Ok(parts)
}

/// Leaders of the given partitions (all listed ones must exist).
pub fn leaders(parts: &[PartitionInfo], wanted: &[i32], topic: &str) -> Result<BTreeMap<i32, i32>> {
    let mut out = BTreeMap::new();
    for p in wanted {
        let info = parts
            .iter()
            .find(|i| i.partition == *p)
            .ok_or_else(|| anyhow!("UNKNOWN_TOPIC_OR_PARTITION: {topic} has no partition {p}"))?;
        if info.leader < 0 {
            bail!("LEADER_NOT_AVAILABLE: {topic}[{p}] has no leader");
        }
        out.insert(*p, info.leader);
    }
    Ok(out)
}

/// ListOffsets for `timestamp` (EARLIEST, LATEST or epoch ms) on each of
/// `leaders` (partition -> leader). Returns partition -> offset (-1 when no
/// message has a timestamp at or after `timestamp`).
pub fn list_offsets(
    client: &mut Client,
    topic: &str,
    leaders: &BTreeMap<i32, i32>,
    timestamp: i64,
) -> Result<BTreeMap<i32, i64>> {
    let mut by_leader: HashMap<i32, Vec<i32>> = HashMap::new();
    for (p, l) in leaders {
        by_leader.entry(*l).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (leader, parts) in by_leader {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    parts
                        .iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let (resp, _) = client.conn(leader)?.send(&req)?;
        for t in resp.topics {
            for p in t.partitions {
                check(
                    p.error_code,
                    format!("ListOffsets {topic}[{}]", p.partition_index),
                    None,
                )?;
                out.insert(p.partition_index, p.offset);
            }
        }
    }
    for p in leaders.keys() {
        if !out.contains_key(p) {
            bail!("ListOffsets returned nothing for {topic}[{p}]");
        }
    }
    Ok(out)
}
