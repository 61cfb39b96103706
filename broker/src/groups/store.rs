//! The group log: this shard's `__consumer_offsets`. Every committed offset
//! and every settled group (Stable with assignments, or Empty) is a record
//! in a compacted partition log, keyed so compaction keeps the newest per
//! group / group+topic+partition; deletions and expiries write tombstones.
//!
//! Keys and values are JSON: self-describing and versioned (`v`), so a
//! later format can read old records. Group state changes rarely and
//! offsets are small, so its size does not matter here.

use std::collections::HashMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shard::log::PartitionLog;
use shard::record::{decode_records, BatchBuilder, BatchView, Compression};

use super::consumer_protocol::{persist, ConsumerGroup};
use super::group::{CommittedOffset, Group, GroupState, JoinParams, Member};

/// What the group log rebuilds: classic groups (which also hold every
/// group's committed offsets) and consumer-protocol groups.
#[derive(Default)]
pub struct Restored {
    pub groups: HashMap<String, Group>,
    pub consumer_groups: HashMap<String, ConsumerGroup>,
}

pub(crate) const FORMAT: u8 = 1;

#[derive(Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "k")]
pub enum Key {
    #[serde(rename = "group")]
    Group { v: u8, g: String },
    #[serde(rename = "offset")]
    Offset { v: u8, g: String, t: String, p: i32 },
    /// A group of the consumer protocol (KIP-848).
    #[serde(rename = "consumer_group")]
    ConsumerGroup { v: u8, g: String },
    /// An offset a transaction committed, pending until its marker
    /// (`txn_offsets.rs`): producer id `pid`.
    #[serde(rename = "txn_offset")]
    TxnOffset {
        v: u8,
        g: String,
        t: String,
        p: i32,
        pid: i64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct OffsetValue {
    v: u8,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    commit_timestamp: i64,
}

impl OffsetValue {
    fn committed(self, log_offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata,
            commit_timestamp: self.commit_timestamp,
            log_offset,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct MemberValue {
    id: String,
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout_ms: i32,
    rebalance_timeout_ms: i32,
    protocol_type: String,
    protocols: Vec<(String, Vec<u8>)>,
    assignment: Vec<u8>,
}

#[derive(Debug, Serialize, Deserialize)]
struct GroupValue {
    v: u8,
    protocol_type: Option<String>,
    protocol: Option<String>,
    generation: i32,
    leader: Option<String>,
    state_timestamp: i64,
    members: Vec<MemberValue>,
}

/// One record for the group log: key, and value (`None` = tombstone).
pub type Entry = (Vec<u8>, Option<Vec<u8>>);

fn key_bytes(k: &Key) -> Vec<u8> {
    serde_json::to_vec(k).expect("keys serialize")
}

pub fn offset_key(group: &str, topic: &str, partition: i32) -> Vec<u8> {
    key_bytes(&Key::Offset {
        v: FORMAT,
        g: group.to_string(),
        t: topic.to_string(),
        p: partition,
    })
}

pub fn group_key(group: &str) -> Vec<u8> {
    key_bytes(&Key::Group {
        v: FORMAT,
        g: group.to_string(),
    })
}

pub fn consumer_group_key(group: &str) -> Vec<u8> {
    key_bytes(&Key::ConsumerGroup {
        v: FORMAT,
        g: group.to_string(),
    })
}

pub fn offset_entry(group: &str, topic: &str, partition: i32, c: &CommittedOffset) -> Entry {
    let v = OffsetValue {
        v: FORMAT,
        offset: c.offset,
        leader_epoch: c.leader_epoch,
        metadata: c.metadata.clone(),
        commit_timestamp: c.commit_timestamp,
    };
    (
        offset_key(group, topic, partition),
        Some(serde_json::to_vec(&v).expect("values serialize")),
    )
}

/// A pending transactional offset, or (`None`) its tombstone.
pub fn txn_offset_entry(
    group: &str,
    topic: &str,
    partition: i32,
    producer_id: i64,
    c: Option<&CommittedOffset>,
) -> Entry {
    let key = key_bytes(&Key::TxnOffset {
        v: FORMAT,
        g: group.to_string(),
        t: topic.to_string(),
        p: partition,
        pid: producer_id,
    });
    let value = c.map(|c| {
        serde_json::to_vec(&OffsetValue {
            v: FORMAT,
            offset: c.offset,
            leader_epoch: c.leader_epoch,
            metadata: c.metadata.clone(),
            commit_timestamp: c.commit_timestamp,
        })
        .expect("values serialize")
    });
    (key, value)
}

/// The group's membership as it stands (only Stable and Empty are written).
pub fn group_entry(g: &Group) -> Entry {
    let members = if g.state == GroupState::Stable {
        g.members
            .values()
            .map(|m| MemberValue {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocol_type: m.protocol_type.clone(),
                protocols: m
                    .protocols
                    .iter()
                    .map(|(n, b)| (n.clone(), b.to_vec()))
                    .collect(),
                assignment: m.assignment.to_vec(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let v = GroupValue {
        v: FORMAT,
        protocol_type: g.protocol_type.clone(),
        protocol: g.protocol.clone(),
        generation: g.generation,
        leader: g.leader.clone(),
        state_timestamp: g.state_timestamp,
        members,
    };
    (
        group_key(&g.id),
        Some(serde_json::to_vec(&v).expect("values serialize")),
    )
}

/// Encode entries as one record batch for `PartitionLog::append`.
pub fn batch(entries: &[Entry], now: i64) -> Bytes {
    let mut b = BatchBuilder::new(Compression::None);
    for (k, v) in entries {
        b.append(
            now,
            Some(Bytes::copy_from_slice(k)),
            v.as_deref().map(Bytes::copy_from_slice),
            Vec::new(),
        )
        .expect("group records are small");
    }
    Bytes::from(b.build().expect("a non-empty batch"))
}

/// Rebuild every group of this shard from its log (start-up). An error
/// names the log offset and what is wrong there; the caller adds the file.
pub async fn replay(log: &PartitionLog, into: &mut Restored, now: i64) -> anyhow::Result<u64> {
    let mut applied = 0;
    for_each_record(log, |r| {
        apply(into, &r.key, r.value, r.offset, r.timestamp, now)
            .map_err(|e| anyhow::anyhow!("record at offset {}: {e}", r.offset))?;
        applied += 1;
        Ok(())
    })
    .await?;
    // A group the log left with neither members nor offsets stays, Empty,
    // with its generation, as Kafka loads it: the offset expiry check
    // removes it and writes its tombstone. Dropping it here without one
    // would let a later commit to the same id bring back the old
    // generation from the record still in the log (group simulation,
    // seed 128).
    Ok(applied)
}

/// One record of a log, as the group store reads it.
pub struct LogRecord {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Call `f` on every record of `log` from its start, in offset order.
pub async fn for_each_record(
    log: &PartitionLog,
    mut f: impl FnMut(LogRecord) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut at = log.offsets().log_start_offset;
    let end = log.log_end_offset();
    while at < end {
        let out = log
            .read(at, 1 << 20)
            .await
            .map_err(|e| anyhow::anyhow!("reading at offset {at}: {e}"))?;
        if out.batches.is_empty() {
            break;
        }
        for chunk in &out.batches {
            let mut pos = 0;
            while pos < chunk.len() {
                let view = BatchView::parse(&chunk[pos..])
                    .map_err(|e| anyhow::anyhow!("batch at offset {at}: {e}"))?;
                pos += view.size();
                let base = view.base_offset();
                if view.last_offset() < at {
                    continue;
                }
                let records = decode_records(&view)
                    .map_err(|e| anyhow::anyhow!("batch at offset {base}: {e}"))?;
                for r in records {
                    let offset = base + i64::from(r.offset_delta);
                    if offset >= at {
                        f(LogRecord {
                            offset,
                            timestamp: view.base_timestamp() + r.timestamp_delta,
                            key: r.key.unwrap_or_default(),
                            value: r.value,
                        })?;
                    }
                }
                at = view.last_offset() + 1;
            }
        }
    }
    Ok(())
}

/// Apply one record of the group log (keys and values as written above).
pub fn apply(
    into: &mut Restored,
    key: &[u8],
    value: Option<Bytes>,
    log_offset: i64,
    ts: i64,
    now: i64,
) -> anyhow::Result<()> {
    let key = serde_json::from_slice::<Key>(key).map_err(|e| {
        anyhow::anyhow!(
            "not a group record: its key {:?} is not a group, offset or consumer_group key ({e})",
            String::from_utf8_lossy(&key[..key.len().min(80)])
        )
    })?;
    let bad_value = |e: serde_json::Error| anyhow::anyhow!("not a group record: bad value ({e})");
    let groups = &mut into.groups;
    match key {
        Key::Offset { g, t, p, .. } => match value {
            Some(v) => {
                let v: OffsetValue = serde_json::from_slice(&v).map_err(bad_value)?;
                let group = groups.entry(g.clone()).or_insert_with(|| Group::new(g, ts));
                group.apply_offset(t, p, v.committed(log_offset));
            }
            None => {
                if let Some(group) = groups.get_mut(&g) {
                    group.offsets.remove(&(t, p));
                }
            }
        },
        Key::Group { g, .. } => match value {
            Some(v) => {
                let v: GroupValue = serde_json::from_slice(&v).map_err(bad_value)?;
                let group = groups.entry(g.clone()).or_insert_with(|| Group::new(g, ts));
                restore_group(group, v, now);
            }
            None => {
                groups.remove(&g);
            }
        },
        Key::TxnOffset { g, t, p, pid, .. } => match value {
            Some(v) => {
                let v: OffsetValue = serde_json::from_slice(&v).map_err(bad_value)?;
                let group = groups.entry(g.clone()).or_insert_with(|| Group::new(g, ts));
                group
                    .pending_txn
                    .entry(pid)
                    .or_default()
                    .insert((t, p), v.committed(log_offset));
            }
            None => {
                if let Some(group) = groups.get_mut(&g) {
                    if let Some(pending) = group.pending_txn.get_mut(&pid) {
                        pending.remove(&(t, p));
                        if pending.is_empty() {
                            group.pending_txn.remove(&pid);
                        }
                    }
                }
            }
        },
        Key::ConsumerGroup { g, .. } => match value {
            Some(v) => {
                let v: persist::GroupValue = serde_json::from_slice(&v).map_err(bad_value)?;
                into.consumer_groups
                    .insert(g.clone(), persist::restore(g, v, now));
            }
            None => {
                into.consumer_groups.remove(&g);
            }
        },
    }
    Ok(())
}

/// A restored group with members is Stable with their last assignments;
/// their session clocks restart now, so members that are gone time out.
fn restore_group(group: &mut Group, v: GroupValue, now: i64) {
    group.protocol_type = v.protocol_type;
    group.protocol = v.protocol;
    group.generation = v.generation;
    group.leader = v.leader;
    group.state_timestamp = v.state_timestamp;
    group.members.clear();
    group.static_members.clear();
    for m in v.members {
        if let Some(inst) = &m.instance_id {
            group.static_members.insert(inst.clone(), m.id.clone());
        }
        // Restored from the group log: no waiters, heartbeat clock restarted.
        let params = JoinParams {
            instance_id: m.instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocol_type: m.protocol_type,
            protocols: m
                .protocols
                .into_iter()
                .map(|(n, b)| (n, Bytes::from(b)))
                .collect(),
            ..JoinParams::default()
        };
        let mut member = Member::new(m.id.clone(), &params, now);
        member.assignment = Bytes::from(m.assignment);
        group.members.insert(m.id, member);
    }
    group.state = if group.members.is_empty() {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
}
