//! Setup before a run: find the topic's partitions and their leaders with
//! Metadata (creating the topic if asked), look up start offsets with
//! ListOffsets, and spread partitions over connections per leader.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, ListOffsetsRequest, MetadataRequest, TopicName,
};

use crate::conn::{error_name, sb, Conn};

pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// A partition and the advertised host:port of its leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub partition: i32,
    pub leader: String,
}

pub fn connect_bootstrap(bootstrap: &str) -> Result<Conn> {
    let mut last = None;
    for addr in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        match Conn::connect(addr) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no bootstrap address given")))
}

/// The first `want` partitions of `topic` (all when `None`) with leaders,
/// creating the topic when `create` and it does not exist.
pub fn topic_parts(
    conn: &mut Conn,
    topic: &str,
    want: Option<u32>,
    create: bool,
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
            Err(code) if code == 3 && create && !created => {
                create_topic(conn, topic, want.unwrap_or(1) as i32)?;
                created = true;
            }
            Err(3) if !create => {
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
    let v = conn.version(ApiKey::Metadata)?;
    let req = MetadataRequest::default()
        // Only v4+ can ask not to auto-create; we create explicitly instead.
        .with_allow_auto_topic_creation(v < 4)
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(TopicName(sb(topic))))
        ]));
    let resp = conn.call(&req)?;
    let brokers: HashMap<i32, String> = resp
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    let Some(t) = resp.topics.into_iter().next() else {
        bail!("Metadata returned no topics");
    };
    if t.error_code != 0 {
        return Ok(Err(t.error_code));
    }
    if t.partitions.is_empty() {
        return Ok(Err(5));
    }
    let mut parts = Vec::new();
    for p in t.partitions {
        let Some(leader) = brokers.get(&p.leader_id.0) else {
            return Ok(Err(5)); // LEADER_NOT_AVAILABLE
        };
        if p.error_code != 0 {
            return Ok(Err(p.error_code));
        }
        parts.push(Part {
            partition: p.partition_index,
            leader: leader.clone(),
        });
    }
    parts.sort_by_key(|p| p.partition);
    Ok(Ok(parts))
}

fn create_topic(conn: &mut Conn, topic: &str, partitions: i32) -> Result<()> {
    let v = conn.version(ApiKey::CreateTopics)?;
    // -1 (broker default replication) needs v4; older brokers get 1.
    let rf = if v >= 4 { -1 } else { 1 };
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(sb(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(rf)]);
    let resp = conn.call(&req)?;
    let r = resp
        .topics
        .first()
        .ok_or_else(|| anyhow!("CreateTopics returned no result"))?;
    // Someone else creating it at the same time is fine.
    if r.error_code != 0 && r.error_code != 36 {
        bail!("creating topic {topic}: {}", error_name(r.error_code));
    }
    Ok(())
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
        let mut conn = Conn::connect(leader)?;
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
