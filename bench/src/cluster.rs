//! Setup before a run: find the topic's partitions and their leaders with
//! Metadata (creating the topic if asked), look up start offsets with
//! ListOffsets, and spread partitions over connections per leader.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest, TopicName,
};

use shardline_client::{check, check_created, creatable_topic, partition_leaders, PartitionLeader};

use crate::conn::{self, error_name, sb, Conn};

pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// A partition and the advertised host:port of its leader.
pub type Part = PartitionLeader;

/// The first `want` partitions of `topic` (all when `None`) with leaders,
/// creating the topic with the configs in `create` when given and it does
/// not exist.
pub fn topic_parts(
    conn: &mut Conn,
    topic: &str,
    want: Option<u32>,
    create: Option<&[(String, String)]>,
) -> Result<Vec<Part>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut created = false;
    loop {
        match metadata(conn, topic)? {
            Ok(mut parts) => {
                if let Some(n) = want {
                    if (n as usize) > parts.len() {
                        bail!(
                            "topic {topic} has {} partitions, --partitions asks for {n}",
                            parts.len()
                        );
                    }
                    parts.truncate(n as usize);
                }
                if created {
                    wait_until_served(topic, &parts, deadline)?;
                }
                return Ok(parts);
            }
            Err(3) if !created && create.is_some() => {
                create_topic(conn, topic, want.unwrap_or(1) as i32, create.unwrap())?;
                created = true;
            }
            Err(3) if create.is_none() => {
                bail!("topic {topic} does not exist (pass --create-topic to create it)")
            }
            Err(code) if Instant::now() >= deadline => {
                bail!("topic {topic} not ready after 30 s: {}", error_name(code))
            }
            // Leaders not elected yet (or the topic still being created).
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// A just-created topic can be in Metadata before its leaders serve it
/// (Apache Kafka's KRaft brokers answer NOT_LEADER_OR_FOLLOWER for a moment
/// after CreateTopics), which would count as errors of the first requests of
/// a run. ListOffsets is answered by the partition itself, so once it
/// succeeds for every partition, produce and fetch will too.
fn wait_until_served(topic: &str, parts: &[Part], deadline: Instant) -> Result<()> {
    loop {
        match list_offsets(topic, parts, LATEST) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(e.context(format!("topic {topic} not served after 30 s")))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Partitions and leaders, or the error code that prevents using them yet
/// (topic error, or a partition without leader reported as LEADER_NOT_AVAILABLE).
pub fn metadata(conn: &mut Conn, topic: &str) -> Result<std::result::Result<Vec<Part>, i16>> {
    partition_leaders(conn, topic)
}

/// CreateTopics of `topic` with `configs` (e.g. `segment.bytes`); the topic
/// existing already is fine.
pub fn create_topic(
    conn: &mut Conn,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> Result<()> {
    let v = conn.version(ApiKey::CreateTopics)?;
    // -1 (broker default replication) needs v4; older brokers get 1.
    let rf = if v >= 4 { -1 } else { 1 };
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![creatable_topic(topic, partitions, rf, configs)]);
    let resp = conn.call(&req)?;
    // Someone else creating it at the same time is fine.
    check_created(&resp, topic, true)
}

/// DeleteTopics of `topic` by name.
pub fn delete_topic(conn: &mut Conn, topic: &str) -> Result<()> {
    let v = conn.version(ApiKey::DeleteTopics)?;
    let req = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    // v6 names topics in `topics` (which may carry ids instead).
    let req = if v >= 6 {
        req.with_topics(vec![
            DeleteTopicState::default().with_name(Some(TopicName(sb(topic))))
        ])
    } else {
        req.with_topic_names(vec![TopicName(sb(topic))])
    };
    let resp = conn.call(&req)?;
    let r = resp
        .responses
        .first()
        .ok_or_else(|| anyhow!("DeleteTopics returned no result"))?;
    check(
        r.error_code,
        format!("deleting topic {topic}"),
        r.error_message.as_ref(),
    )
}

/// Offsets at `timestamp` (EARLIEST or LATEST) of each partition, asked of
/// its leader.
pub fn list_offsets(topic: &str, parts: &[Part], timestamp: i64) -> Result<HashMap<i32, i64>> {
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in parts {
        by_leader.entry(&p.leader).or_default().push(p.partition);
    }
    let mut out = HashMap::new();
    for (leader, ps) in by_leader {
        let mut conn = conn::connect(leader)?;
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(sb(topic)))
                .with_partitions(
                    ps.iter()
                        .map(|p| {
                            ListOffsetsPartition::default()
                                .with_partition_index(*p)
                                .with_current_leader_epoch(-1)
                                .with_timestamp(timestamp)
                        })
                        .collect(),
                )]);
        let resp = conn
            .call(&req)
            .with_context(|| format!("ListOffsets to {leader}"))?;
        for t in resp.topics {
            for p in t.partitions {
                if p.error_code != 0 {
                    bail!(
                        "ListOffsets {topic}[{}]: {}",
                        p.partition_index,
                        error_name(p.error_code)
                    );
                }
                out.insert(p.partition_index, p.offset);
            }
        }
    }
    for p in parts {
        if !out.contains_key(&p.partition) {
            bail!("ListOffsets gave no offset for {topic}[{}]", p.partition);
        }
    }
    Ok(out)
}

/// Spread partitions over `connections` connections, each to the leader of
/// all its partitions. With `share`, connections beyond the partition count
/// get partitions too (several producers per partition); without it (fetch,
/// where a partition has one position) there are at most as many
/// connections as partitions.
pub fn assign(parts: &[Part], connections: usize, share: bool) -> Vec<(String, Vec<i32>)> {
    let mut by_leader: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for p in parts {
        by_leader.entry(&p.leader).or_default().push(p.partition);
    }
    let leaders = by_leader.len().max(1);
    let mut out = Vec::new();
    for (i, (leader, ps)) in by_leader.into_iter().enumerate() {
        // Connections per leader: an even share, the remainder to the first.
        let mut n = (connections / leaders + usize::from(i < connections % leaders)).max(1);
        if !share {
            n = n.min(ps.len());
        }
        let mut conns: Vec<Vec<i32>> = vec![Vec::new(); n];
        for (j, p) in ps.iter().enumerate() {
            conns[j % n].push(*p);
        }
        for (j, c) in conns.iter_mut().enumerate() {
            if c.is_empty() {
                c.push(ps[j % ps.len()]);
            }
        }
        out.extend(conns.into_iter().map(|c| (leader.to_string(), c)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(leaders: &[&str]) -> Vec<Part> {
        leaders
            .iter()
            .enumerate()
            .map(|(i, l)| Part {
                partition: i as i32,
                leader: l.to_string(),
            })
            .collect()
    }

    #[test]
    fn assignment_round_robins_per_leader() {
        let ps = parts(&["a:1", "a:1", "a:1"]);
        assert_eq!(assign(&ps, 1, true), vec![("a:1".into(), vec![0, 1, 2])]);
        assert_eq!(
            assign(&ps, 2, true),
            vec![("a:1".into(), vec![0, 2]), ("a:1".into(), vec![1])]
        );
        // More connections than partitions: shared for produce, capped for fetch.
        assert_eq!(assign(&ps, 4, true).len(), 4);
        assert_eq!(assign(&ps, 4, true)[3].1, vec![0]);
        assert_eq!(assign(&ps, 4, false).len(), 3);
        let two = parts(&["a:1", "b:2", "a:1"]);
        let got = assign(&two, 1, true);
        assert_eq!(
            got,
            vec![("a:1".into(), vec![0, 2]), ("b:2".into(), vec![1])]
        );
    }
}
