//! `shardline group ...`: ListGroups, DescribeGroups + OffsetFetch +
//! ListOffsets (lag), DeleteGroups, and offset resets via OffsetCommit.

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

use super::client::{check, error_name, sb, topic_name, Client};
use super::offsets::{leaders, list_offsets, topic_partitions, EARLIEST, LATEST};
use super::{GroupCommand, ResetArgs};

pub fn run(bootstrap: &str, cmd: GroupCommand) -> Result<()> {
    let mut client = super::client::connect(bootstrap)?;
    match cmd {
        GroupCommand::List => list(&mut client),
        GroupCommand::Describe { group } => describe(&mut client, &group),
        GroupCommand::Delete { group } => delete(&mut client, &group),
        GroupCommand::ResetOffsets(args) => reset(&mut client, &args),
    }
}

fn gid(g: &str) -> GroupId {
    GroupId(sb(g))
}

fn describe_group(client: &mut Client, group: &str) -> Result<DescribedGroup> {
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
fn committed(client: &mut Client, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
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

fn list(client: &mut Client) -> Result<()> {
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
    println!("{:<40} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
    for (name, (mut state, ptype)) in groups {
        if state.is_empty() {
            // ListGroups before v4 has no state; ask the coordinator.
            state = describe_group(client, &name).map_or("-".into(), |g| g.group_state.to_string());
        }
        println!(
            "{name:<40} {state:<20} {}",
            if ptype.is_empty() { "-" } else { &ptype }
        );
    }
    Ok(())
}

fn describe(client: &mut Client, group: &str) -> Result<()> {
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
            Err(e) => eprintln!("warning: no log end offsets for {t}: {e:#}"),
        }
    }
    println!(
        "GROUP: {group}  STATE: {}  PROTOCOL: {} {}  MEMBERS: {}",
        g.group_state.as_str(),
        g.protocol_type.as_str(),
        g.protocol_data.as_str(),
        g.members.len()
    );
    println!();
    println!(
        "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<20} CLIENT-ID",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    );
    let dash = || "-".to_string();
    for tp in &all {
        let cur = offsets.get(tp).copied();
        let end = ends.get(tp).copied();
        let lag = match (cur, end) {
            (Some(c), Some(e)) => (e - c).max(0).to_string(),
            _ => dash(),
        };
        let m = owner.get(tp).map(|i| &g.members[*i]);
        println!(
            "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<20} {}",
            tp.0,
            tp.1,
            cur.map_or_else(dash, |v| v.to_string()),
            end.map_or_else(dash, |v| v.to_string()),
            lag,
            m.map_or_else(dash, |m| m.member_id.to_string()),
            m.map_or_else(dash, |m| m.client_host.to_string()),
            m.map_or_else(dash, |m| m.client_id.to_string()),
        );
    }
    for m in &g.members {
        let assigned = decode_assignment(&m.member_assignment).unwrap_or_default();
        if assigned.is_empty() {
            println!(
                "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<20} {}",
                "-",
                "-",
                "-",
                "-",
                "-",
                m.member_id.as_str(),
                m.client_host.as_str(),
                m.client_id.as_str()
            );
        }
    }
    Ok(())
}

fn delete(client: &mut Client, group: &str) -> Result<()> {
    let req = DeleteGroupsRequest::default().with_groups_names(vec![gid(group)]);
    let (resp, _) = client.coordinator(group)?.send(&req)?;
    let r = resp
        .results
        .first()
        .ok_or_else(|| anyhow!("DeleteGroups returned no result"))?;
    check(r.error_code, format!("deleting group {group}"), None)?;
    println!("Deleted group {group}.");
    Ok(())
}

/// Where `reset-offsets` moves the committed offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Earliest,
    Latest,
    Offset(i64),
    /// Epoch ms; the offset comes from ListOffsets by timestamp.
    Time(i64),
    Shift(i64),
}

impl Target {
    fn of(a: &ResetArgs) -> Result<Target> {
        Ok(match (a.to_earliest, a.to_latest, a.to_offset, a.to_datetime, a.shift_by) {
            (true, ..) => Target::Earliest,
            (_, true, ..) => Target::Latest,
            (_, _, Some(o), ..) => Target::Offset(o),
            (_, _, _, Some(t), _) => Target::Time(t),
            (_, _, _, _, Some(n)) => Target::Shift(n),
            _ => bail!("choose one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by"),
        })
    }
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

fn reset(client: &mut Client, args: &ResetArgs) -> Result<()> {
    let group = args.group.as_str();
    let target = Target::of(args)?;
    let state = describe_group(client, group)?.group_state.to_string();
    let inactive = matches!(state.as_str(), "Empty" | "Dead");
    if args.execute && !inactive {
        bail!("Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}.");
    }
    let current = committed(client, group)?;
    let mut specs: Vec<(String, Option<Vec<i32>>)> = args
        .topic
        .iter()
        .map(|s| parse_topic_spec(s))
        .collect::<Result<_>>()?;
    if args.all_topics {
        let seen: BTreeSet<String> = current.keys().map(|(t, _)| t.clone()).collect();
        specs.extend(seen.into_iter().map(|t| (t, None)));
    }
    // topic -> [(partition, current, new)]
    let mut plan: BTreeMap<String, Vec<(i32, Option<i64>, i64)>> = BTreeMap::new();
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
            rows.retain(|r| r.0 != p);
            rows.push((p, cur, new));
        }
        rows.sort();
    }
    println!(
        "{:<30} {:<30} {:>9} {:>15} {:>12}",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"
    );
    for (t, rows) in &plan {
        for (p, cur, new) in rows {
            let cur = cur.map_or("-".to_string(), |c| c.to_string());
            println!("{group:<30} {t:<30} {p:>9} {cur:>15} {new:>12}");
        }
    }
    if !args.execute {
        if !inactive {
            println!(
                "Note: group '{group}' is {state}; --execute requires it to be inactive (Empty)."
            );
        }
        println!("Dry run: nothing committed (add --execute to commit these offsets).");
        return Ok(());
    }
    let req = OffsetCommitRequest::default()
        .with_group_id(gid(group))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(sb(""))
        .with_retention_time_ms(-1)
        .with_topics(
            plan.iter()
                .map(|(t, rows)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            rows.iter()
                                .map(|(p, _, new)| {
                                    OffsetCommitRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_committed_offset(*new)
                                        .with_committed_leader_epoch(-1)
                                        .with_committed_metadata(Some(sb("")))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let (resp, _) = client.coordinator(group)?.send(&req)?;
    let mut failed = Vec::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                failed.push(format!(
                    "{}[{}]: {}",
                    t.name.as_str(),
                    p.partition_index,
                    error_name(p.error_code)
                ));
            }
        }
    }
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
    println!("Committed new offsets for group {group}.");
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
        assert_eq!(
            new_offset(Target::Earliest, Some(10), e, l, None).unwrap(),
            5
        );
        assert_eq!(new_offset(Target::Latest, None, e, l, None).unwrap(), 20);
        assert_eq!(
            new_offset(Target::Offset(7), Some(10), e, l, None).unwrap(),
            7
        );
        assert_eq!(
            new_offset(Target::Offset(1), Some(10), e, l, None).unwrap(),
            5
        );
        assert_eq!(
            new_offset(Target::Offset(99), Some(10), e, l, None).unwrap(),
            20
        );
        assert_eq!(
            new_offset(Target::Shift(-3), Some(10), e, l, None).unwrap(),
            7
        );
        assert_eq!(
            new_offset(Target::Shift(-30), Some(10), e, l, None).unwrap(),
            5
        );
        assert_eq!(
            new_offset(Target::Shift(30), Some(10), e, l, None).unwrap(),
            20
        );
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
}
