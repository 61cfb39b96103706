//! Consumer groups: ListGroups, DescribeGroups, OffsetFetch + ListOffsets
//! (lag), DeleteGroups, and offset resets (a plan, then OffsetCommit).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{anyhow, bail, Result};
use bytes::{Buf, Bytes};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, DescribeGroupsRequest, GroupId,
    ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::Decodable;
use shardline_client::{check, error_name, sb, topic_name, Client};

use super::offsets::{leaders, list_offsets, topic_partitions, EARLIEST, LATEST};

pub fn gid(g: &str) -> GroupId {
    GroupId(sb(g))
}

/// DescribeGroups of one group, from its coordinator.
pub fn describe_group(client: &mut Client, group: &str) -> Result<DescribedGroup> {
    let req = DescribeGroupsRequest::default().with_groups(vec![gid(group)]);
    let (resp, _) = client.coordinator(group)?.send(&req)?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("DescribeGroups returned nothing for {group}"))?;
    check(g.error_code, format!("describing group {group}"), None)?;
    Ok(g)
}

/// Committed offsets of `group` for every topic it has any for.
pub fn committed(client: &mut Client, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
    let req = OffsetFetchRequest::default()
        .with_group_id(gid(group))
        .with_topics(None);
    let (resp, _) = client.coordinator(group)?.send(&req)?;
    check(
        resp.error_code,
        format!("fetching offsets of group {group}"),
        None,
    )?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            check(
                p.error_code,
                format!(
                    "offset of {group} on {}[{}]",
                    t.name.as_str(),
                    p.partition_index
                ),
                None,
            )?;
            if p.committed_offset >= 0 {
                out.insert((t.name.to_string(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// The partitions in a member's assignment (consumer protocol), if readable.
pub fn decode_assignment(raw: &Bytes) -> Option<Vec<(String, i32)>> {
    if raw.len() < 2 {
        return None;
    }
    let mut buf = raw.clone();
    let version = buf.get_i16().clamp(0, 3);
    let a = ConsumerProtocolAssignment::decode(&mut buf, version).ok()?;
    Some(
        a.assigned_partitions
            .iter()
            .flat_map(|tp| {
                tp.partitions
                    .iter()
                    .map(move |p| (tp.topic.to_string(), *p))
            })
            .collect(),
    )
}

/// One group as ListGroups names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group: String,
    pub state: String,
    pub protocol_type: String,
}

/// Every group of every broker (ListGroups to each), by name. A group the
/// caller may not DESCRIBE is not listed (the broker leaves it out).
pub fn list_groups(client: &mut Client) -> Result<Vec<GroupListing>> {
    client.metadata(Some(&[]))?;
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut ids = client.broker_ids();
    if ids.is_empty() {
        ids.push(-1);
    }
    for node in ids {
        let (resp, _) = client.conn(node)?.send(&ListGroupsRequest::default())?;
        check(resp.error_code, "listing groups", None)?;
        for g in resp.groups {
            groups.insert(
                g.group_id.to_string(),
                (g.group_state.to_string(), g.protocol_type.to_string()),
            );
        }
    }
    let mut out = Vec::with_capacity(groups.len());
    for (group, (mut state, protocol_type)) in groups {
        if state.is_empty() {
            // ListGroups before v4 has no state; ask the coordinator.
            state =
                describe_group(client, &group).map_or("-".into(), |g| g.group_state.to_string());
        }
        out.push(GroupListing {
            group,
            state,
            protocol_type,
        });
    }
    Ok(out)
}

/// One partition of a group's offsets: committed, log end, lag, and the
/// member it is assigned to (an index into the group's members).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagRow {
    pub topic: String,
    pub partition: i32,
    pub committed: Option<i64>,
    pub log_end: Option<i64>,
    pub lag: Option<i64>,
    pub member: Option<usize>,
}

/// A group described: DescribeGroups plus a row per partition it has a
/// committed offset for or a member assigned, and the topics whose log end
/// offsets could not be read (with why).
pub struct GroupDescription {
    pub group: DescribedGroup,
    pub rows: Vec<LagRow>,
    pub warnings: Vec<String>,
}

pub fn describe(client: &mut Client, group: &str) -> Result<GroupDescription> {
    let g = describe_group(client, group)?;
    let offsets = committed(client, group)?;
    let mut owner: BTreeMap<(String, i32), usize> = BTreeMap::new();
    for (i, m) in g.members.iter().enumerate() {
        if g.protocol_type.as_str() == "consumer" {
            for tp in decode_assignment(&m.member_assignment).unwrap_or_default() {
                owner.insert(tp, i);
            }
        }
    }
    let all: BTreeSet<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    let topics: BTreeSet<String> = all.iter().map(|(t, _)| t.clone()).collect();
    let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let mut warnings = Vec::new();
    for t in &topics {
        let wanted: Vec<i32> = all
            .iter()
            .filter(|(tt, _)| tt == t)
            .map(|(_, p)| *p)
            .collect();
        let got = topic_partitions(client, t).and_then(|parts| {
            let l = leaders(&parts, &wanted, t)?;
            list_offsets(client, t, &l, LATEST)
        });
        match got {
            Ok(m) => ends.extend(m.into_iter().map(|(p, o)| ((t.clone(), p), o))),
            Err(e) => warnings.push(format!("no log end offsets for {t}: {e:#}")),
        }
    }
    let rows = all
        .into_iter()
        .map(|tp| {
            let committed = offsets.get(&tp).copied();
            let log_end = ends.get(&tp).copied();
            let lag = committed.zip(log_end).map(|(c, e)| (e - c).max(0));
            let member = owner.get(&tp).copied();
            LagRow {
                topic: tp.0,
                partition: tp.1,
                committed,
                log_end,
                lag,
                member,
            }
        })
        .collect();
    Ok(GroupDescription {
        group: g,
        rows,
        warnings,
    })
}

pub fn delete(client: &mut Client, group: &str) -> Result<()> {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]);
    let (resp, _) = client.coordinator(group)?.send(&req)?;
    let r = resp
        .results
        .first()
        .ok_or_else(|| anyhow!("DeleteGroups returned no result"))?;
    check(r.error_code, format!("deleting group {group}"), None)
}

/// Where a reset moves the committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Earliest,
    Latest,
    Offset(i64),
    /// Epoch ms; the offset comes from ListOffsets by timestamp.
    Time(i64),
    Shift(i64),
}

/// `TOPIC` or `TOPIC:P1,P2,...`.
pub fn parse_topic_spec(s: &str) -> Result<(String, Option<Vec<i32>>)> {
    match s.split_once(':') {
        None if !s.is_empty() => Ok((s.to_string(), None)),
        Some((t, ps)) if !t.is_empty() => {
            let parts = ps
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .map_err(|_| anyhow!("bad partition '{p}' in '{s}'"))
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((t.to_string(), Some(parts)))
        }
        _ => bail!("bad topic '{s}' (expected TOPIC or TOPIC:P1,P2)"),
    }
}

/// The new offset of one partition, clamped into `[earliest, latest]` as
/// Kafka's tool does. `at_time` is ListOffsets' answer for `Target::Time`
/// (-1: no message that late, so the log end).
pub fn new_offset(
    target: Target,
    current: Option<i64>,
    earliest: i64,
    latest: i64,
    at_time: Option<i64>,
) -> Result<i64> {
    let clamp = |o: i64| o.clamp(earliest, latest.max(earliest));
    Ok(match target {
        Target::Earliest => earliest,
        Target::Latest => latest,
        Target::Offset(o) => clamp(o),
        Target::Time(_) => match at_time {
            Some(o) if o >= 0 => o,
            _ => latest,
        },
        Target::Shift(n) => match current {
            Some(c) => clamp(c.saturating_add(n)),
            None => bail!("no committed offset to shift"),
        },
    })
}

/// One partition of a reset: its committed offset now and the new one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ResetRow {
    pub partition: i32,
    pub current: Option<i64>,
    pub new: i64,
}

/// What a reset would do, and whether it may be applied now.
#[derive(Debug, Clone)]
pub struct ResetPlan {
    pub state: String,
    /// Kafka's tool executes only while the group has no active members.
    pub inactive: bool,
    /// topic -> rows by partition.
    pub rows: BTreeMap<String, Vec<ResetRow>>,
}

/// The plan of a reset of `group` on `specs` (topic, partitions or all of
/// them), plus every topic it has offsets for with `all_topics`.
pub fn plan_reset(
    client: &mut Client,
    group: &str,
    specs: &[(String, Option<Vec<i32>>)],
    all_topics: bool,
    target: Target,
) -> Result<ResetPlan> {
    let state = describe_group(client, group)?.group_state.to_string();
    let inactive = matches!(state.as_str(), "Empty" | "Dead");
    let current = committed(client, group)?;
    let mut specs = specs.to_vec();
    if all_topics {
        let seen: BTreeSet<String> = current.keys().map(|(t, _)| t.clone()).collect();
        specs.extend(seen.into_iter().map(|t| (t, None)));
    }
    let mut plan: BTreeMap<String, Vec<ResetRow>> = BTreeMap::new();
    for (topic, ps) in specs {
        let parts = topic_partitions(client, &topic)?;
        let wanted = ps.unwrap_or_else(|| parts.iter().map(|p| p.partition).collect());
        let l = leaders(&parts, &wanted, &topic)?;
        let earliest = list_offsets(client, &topic, &l, EARLIEST)?;
        let latest = list_offsets(client, &topic, &l, LATEST)?;
        let at_time = match target {
            Target::Time(ts) => Some(list_offsets(client, &topic, &l, ts)?),
            _ => None,
        };
        let rows = plan.entry(topic.clone()).or_default();
        for p in wanted {
            let cur = current.get(&(topic.clone(), p)).copied();
            let new = new_offset(
                target,
                cur,
                earliest[&p],
                latest[&p],
                at_time.as_ref().map(|m| m[&p]),
            )
            .map_err(|e| anyhow!("cannot reset {topic}[{p}]: {e}"))?;
            rows.retain(|r| r.partition != p);
            rows.push(ResetRow {
                partition: p,
                current: cur,
                new,
            });
        }
        rows.sort();
    }
    Ok(ResetPlan {
        state,
        inactive,
        rows: plan,
    })
}

/// The refusal of Kafka's tool to reset a group with active members.
pub fn refuse_active(group: &str, plan: &ResetPlan) -> Result<()> {
    if !plan.inactive {
        bail!(
            "NON_EMPTY_GROUP: Assignments can only be reset if the group '{group}' is inactive, \
             but the current state is {}.",
            plan.state
        );
    }
    Ok(())
}

/// Commit a plan's new offsets (OffsetCommit with no generation, as an
/// admin client does: the coordinator refuses it while members are active).
pub fn apply_reset(client: &mut Client, group: &str, plan: &ResetPlan) -> Result<()> {
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(sb(""))
        .with_retention_time_ms(-1)
        .with_topics(
            plan.rows
                .iter()
                .map(|(t, rows)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            rows.iter()
                                .map(|r| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(r.partition)
                                        .with_committed_offset(r.new)
                                        .with_committed_leader_epoch(-1)
                                        .with_committed_metadata(Some(sb("")))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let (resp, _) = client.coordinator(group)?.send(&req)?;
    let failed: Vec<String> = resp
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .filter(|p| p.error_code != 0)
                .map(move |p| {
                    format!(
                        "{}[{}]: {}",
                        t.name.as_str(),
                        p.partition_index,
                        error_name(p.error_code)
                    )
                })
        })
        .collect();
    if let Some(first) = resp
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.error_code != 0)
    {
        return Err(anyhow!(
            "{}: committing offsets for group {group} failed: {}",
            error_name(first.error_code),
            failed.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn topic_specs() {
        assert_eq!(parse_topic_spec("t").unwrap(), ("t".into(), None));
        assert_eq!(
            parse_topic_spec("t:0,2").unwrap(),
            ("t".into(), Some(vec![0, 2]))
        );
        assert!(parse_topic_spec("t:x").is_err());
        assert!(parse_topic_spec(":1").is_err());
        assert!(parse_topic_spec("").is_err());
    }

    #[test]
    fn plans_offsets() {
        let (e, l) = (5, 20);
        let n = |t, c| new_offset(t, c, e, l, None).unwrap();
        assert_eq!(n(Target::Earliest, Some(10)), 5);
        assert_eq!(n(Target::Latest, None), 20);
        assert_eq!(n(Target::Offset(7), Some(10)), 7);
        assert_eq!(n(Target::Offset(1), Some(10)), 5);
        assert_eq!(n(Target::Offset(99), Some(10)), 20);
        assert_eq!(n(Target::Shift(-3), Some(10)), 7);
        assert_eq!(n(Target::Shift(-30), Some(10)), 5);
        assert_eq!(n(Target::Shift(30), Some(10)), 20);
        assert!(new_offset(Target::Shift(1), None, e, l, None).is_err());
        assert_eq!(
            new_offset(Target::Time(0), None, e, l, Some(12)).unwrap(),
            12
        );
        assert_eq!(
            new_offset(Target::Time(0), None, e, l, Some(-1)).unwrap(),
            20
        );
    }

    #[test]
    fn decodes_consumer_assignment() {
        let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            TopicPartition::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![0, 3]),
        ]);
        let mut buf = bytes::BytesMut::new();
        bytes::BufMut::put_i16(&mut buf, 1);
        a.encode(&mut buf, 1).unwrap();
        assert_eq!(
            decode_assignment(&buf.freeze()),
            Some(vec![("t".into(), 0), ("t".into(), 3)])
        );
        assert_eq!(decode_assignment(&Bytes::new()), None);
    }

    #[test]
    fn active_groups_are_refused_as_kafka_does() {
        let plan = |state: &str, inactive| ResetPlan {
            state: state.into(),
            inactive,
            rows: BTreeMap::new(),
        };
        assert!(refuse_active("g", &plan("Empty", true)).is_ok());
        let e = refuse_active("g", &plan("Stable", false)).unwrap_err();
        assert!(e.to_string().starts_with("NON_EMPTY_GROUP: "), "{e}");
        assert!(e.to_string().contains("current state is Stable"), "{e}");
    }
}
