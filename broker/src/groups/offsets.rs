//! Committed offsets: commit (durable in the group log before the answer),
//! fetch, delete, and expiry of offsets of groups that stayed Empty.

use kafka_protocol::ResponseError;

use super::group::{CommittedOffset, Group, GroupConfig, GroupState};
use super::{store, Coordinator};

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitEntry {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl CommitEntry {
    /// The offset as committed at `now` (its log position set on append).
    pub fn committed(&self, now: i64) -> CommittedOffset {
        CommittedOffset {
            offset: self.offset,
            leader_epoch: self.leader_epoch,
            metadata: self.metadata.clone(),
            commit_timestamp: now,
            log_offset: 0,
        }
    }
}

/// Committed offsets of some partitions: (topic, [(partition, offset)]).
pub type FetchedOffsets = Vec<(String, Vec<(i32, Option<CommittedOffset>)>)>;

impl Group {
    /// May this commit go ahead? Kafka's checks, in Kafka's order.
    /// `transactional`: a TxnOffsetCommit, which Kafka checks differently
    /// (ClassicGroup.validateOffsetCommit): one with no member, generation
    /// and instance id (v0-v2, what sendOffsetsToTransaction(offsets,
    /// groupId) sends, 0.11 to 3.x) is accepted whatever the group's
    /// state, and the group's rebalance does not hold it up.
    pub fn check_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        transactional: bool,
    ) -> i16 {
        if generation < 0 && self.state == GroupState::Empty {
            // "Simple" commits: assign() consumers with no group membership.
            return 0;
        }
        if transactional {
            if generation < 0 && member_id.is_empty() && instance_id.is_none() {
                return 0;
            }
            if self.fenced(member_id, instance_id) {
                return ResponseError::FencedInstanceId.code();
            }
            if !self.members.contains_key(member_id) {
                return ResponseError::UnknownMemberId.code();
            }
            if generation != self.generation {
                return ResponseError::IllegalGeneration.code();
            }
            return 0;
        }
        if self.state == GroupState::CompletingRebalance {
            return ResponseError::RebalanceInProgress.code();
        }
        if self.fenced(member_id, instance_id) {
            return ResponseError::FencedInstanceId.code();
        }
        if !self.members.contains_key(member_id) {
            return ResponseError::UnknownMemberId.code();
        }
        if generation != self.generation {
            return ResponseError::IllegalGeneration.code();
        }
        0
    }

    /// Record a commit unless a later one (by log position) is already there.
    pub fn apply_offset(&mut self, topic: String, partition: i32, c: CommittedOffset) {
        let key = (topic, partition);
        if self
            .offsets
            .get(&key)
            .is_some_and(|old| old.log_offset > c.log_offset)
        {
            return;
        }
        self.offsets.insert(key, c);
    }

    /// Offsets due to expire: only in Empty groups, `retention` after the
    /// group emptied (consumer groups) or after the commit (simple ones).
    /// Offsets past retention. In an Empty group every offset ages (from
    /// the later of commit and emptying); in a group with members only
    /// those of topics no member subscribes to (`subscribed`; KIP-496),
    /// and only when the subscriptions are known.
    pub fn expired_offsets(
        &self,
        now: i64,
        cfg: &GroupConfig,
        subscribed: Option<&[String]>,
    ) -> Vec<(String, i32)> {
        if subscribed.is_none() && self.state != GroupState::Empty {
            return Vec::new();
        }
        self.offsets
            .iter()
            .filter(|((t, _), c)| {
                if let Some(subs) = subscribed {
                    return !subs.contains(t)
                        && c.commit_timestamp + cfg.offsets_retention_ms <= now;
                }
                let base = if self.protocol_type.is_some() {
                    self.state_timestamp.max(c.commit_timestamp)
                } else {
                    c.commit_timestamp
                };
                base + cfg.offsets_retention_ms <= now
            })
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Topics the members subscribe to (consumer protocol), for OffsetDelete.
    pub fn subscribed_topics(&self) -> Option<Vec<String>> {
        if self.protocol_type.as_deref() != Some("consumer") || self.members.is_empty() {
            return None;
        }
        let protocol = self.protocol.clone()?;
        let mut out = Vec::new();
        for m in self.members.values() {
            out.extend(parse_subscription(&m.metadata_for(&protocol))?);
        }
        Some(out)
    }
}

/// The topic list of a ConsumerProtocolSubscription (every version starts
/// with version:int16, topics:[string]).
fn parse_subscription(mut b: &[u8]) -> Option<Vec<String>> {
    use bytes::Buf;
    if b.remaining() < 6 {
        return None;
    }
    let _version = b.get_i16();
    let n = b.get_i32();
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        if b.remaining() < 2 {
            return None;
        }
        let len = b.get_i16().max(0) as usize;
        if b.remaining() < len {
            return None;
        }
        out.push(String::from_utf8_lossy(&b[..len]).into_owned());
        b.advance(len);
    }
    Some(out)
}

impl Coordinator {
    /// The checks of an OffsetCommit or TxnOffsetCommit, in Kafka's order:
    /// a consumer-protocol group's member, a classic group's member and
    /// generation, or (generation -1, no such group) a new "simple" group,
    /// which is created here. `transactional`: a TxnOffsetCommit, sent by
    /// the producer (see `Group::check_commit`); any other commit comes
    /// from the member and so proves it alive, as a heartbeat would.
    /// `Err` is the error for the whole request.
    pub(super) fn admit_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        transactional: bool,
    ) -> Result<(), i16> {
        let now = self.now();
        let consumer_check = self.consumer_commit_check(group_id, member_id, generation);
        let creates = consumer_check.is_none()
            && generation < 0
            && !self.groups.borrow().contains_key(group_id);
        if creates && self.groups_full().is_some() {
            // OffsetCommit has no code for "no room"; clients raise this
            // one as an error with its text (librdkafka: test_limits.py).
            return Err(ResponseError::GroupMaxSizeReached.code());
        }
        {
            let mut groups = self.groups.borrow_mut();
            let error = match groups.get_mut(group_id) {
                // A consumer-protocol group: its members were checked above.
                _ if consumer_check.is_some() => consumer_check.unwrap_or(0),
                Some(g) => {
                    let e = g.check_commit(member_id, instance_id, generation, transactional);
                    if e == 0 && !transactional {
                        // A commit proves the member alive, as a heartbeat.
                        if let Some(m) = g.members.get_mut(member_id) {
                            m.last_heartbeat = now;
                        }
                    }
                    e
                }
                None if generation < 0 => {
                    groups.insert(group_id.to_string(), Group::new(group_id.to_string(), now));
                    0
                }
                None => ResponseError::IllegalGeneration.code(),
            };
            if error != 0 {
                return Err(error);
            }
        }
        if creates {
            self.publish_group_count();
        }
        Ok(())
    }

    /// Commit offsets for a group; one error for the whole request (the
    /// checks are per group). The records are durable before this returns.
    pub async fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        entries: Vec<CommitEntry>,
    ) -> i16 {
        let now = self.now();
        if let Err(e) = self.admit_commit(group_id, member_id, instance_id, generation, false) {
            return e;
        }
        let committed: Vec<CommittedOffset> = entries.iter().map(|e| e.committed(now)).collect();
        let records: Vec<store::Entry> = entries
            .iter()
            .zip(&committed)
            .map(|(e, c)| store::offset_entry(group_id, &e.topic, e.partition, c))
            .collect();
        let base = match self.append(&records).await {
            Ok(base) => base,
            Err(e) => {
                tracing::warn!("group {group_id}: writing offsets: {e}");
                return e.code.code();
            }
        };
        let mut groups = self.groups.borrow_mut();
        // The group may have been deleted while we wrote; the commit stands.
        let g = groups
            .entry(group_id.to_string())
            .or_insert_with(|| Group::new(group_id.to_string(), now));
        for (i, (e, mut c)) in entries.into_iter().zip(committed).enumerate() {
            c.log_offset = base + i as i64;
            g.apply_offset(e.topic, e.partition, c);
        }
        0
    }

    /// Committed offsets of `topics` (`None`: every committed partition).
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> FetchedOffsets {
        let groups = self.groups.borrow();
        let g = groups.get(group_id);
        match topics {
            Some(topics) => topics
                .into_iter()
                .map(|(t, parts)| {
                    let found = parts
                        .into_iter()
                        .map(|p| {
                            let c = g.and_then(|g| g.offsets.get(&(t.clone(), p)).cloned());
                            (p, c)
                        })
                        .collect();
                    (t, found)
                })
                .collect(),
            None => {
                let mut out: FetchedOffsets = Vec::new();
                for ((t, p), c) in g.iter().flat_map(|g| g.offsets.iter()) {
                    match out.last_mut() {
                        Some((last, parts)) if last == t => parts.push((*p, Some(c.clone()))),
                        _ => out.push((t.clone(), vec![(*p, Some(c.clone()))])),
                    }
                }
                out
            }
        }
    }

    /// OffsetDelete: refuse partitions of topics the group still consumes.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        parts: Vec<(String, i32)>,
    ) -> Result<Vec<i16>, i16> {
        let (errors, tombstones) = {
            let groups = self.groups.borrow();
            let Some(g) = groups.get(group_id) else {
                return Err(ResponseError::GroupIdNotFound.code());
            };
            if g.state != GroupState::Empty && g.protocol_type.as_deref() != Some("consumer") {
                return Err(ResponseError::NonEmptyGroup.code());
            }
            let mut subscribed = g.subscribed_topics().unwrap_or_default();
            subscribed.extend(self.consumer.subscribed_topics(group_id));
            let mut tombstones = Vec::new();
            let errors: Vec<i16> = parts
                .iter()
                .map(|(t, p)| {
                    if subscribed.contains(t) {
                        ResponseError::GroupSubscribedToTopic.code()
                    } else {
                        if g.offsets.contains_key(&(t.clone(), *p)) {
                            tombstones.push((store::offset_key(group_id, t, *p), None));
                        }
                        0
                    }
                })
                .collect();
            (errors, tombstones)
        };
        if let Err(e) = self.append(&tombstones).await {
            tracing::warn!("group {group_id}: deleting offsets: {e}");
            return Err(e.code.code());
        }
        if let Some(g) = self.groups.borrow_mut().get_mut(group_id) {
            for ((t, p), e) in parts.into_iter().zip(&errors) {
                if *e == 0 {
                    g.offsets.remove(&(t, p));
                }
            }
        }
        Ok(errors)
    }

    /// Drop expired offsets of Empty groups, and groups left with nothing.
    pub async fn expire_offsets(&self, now: i64) {
        let mut entries = Vec::new();
        {
            let mut groups = self.groups.borrow_mut();
            let mut dead = Vec::new();
            for g in groups.values_mut() {
                let subscribed = if self.consumer.active(&g.id) {
                    Some(self.consumer.subscribed_topics(&g.id))
                } else if g.state == GroupState::Empty {
                    None
                } else {
                    // Classic members: only "consumer" groups say what
                    // they read; other protocols keep their offsets.
                    Some(match g.subscribed_topics() {
                        Some(t) => t,
                        None => continue,
                    })
                };
                for (t, p) in g.expired_offsets(now, &self.cfg, subscribed.as_deref()) {
                    entries.push((store::offset_key(&g.id, &t, p), None));
                    g.offsets.remove(&(t, p));
                }
                if g.is_empty_and_unused() && !self.consumer.active(&g.id) {
                    entries.push((store::group_key(&g.id), None));
                    if self.consumer.groups.borrow_mut().remove(&g.id).is_some() {
                        entries.push((store::consumer_group_key(&g.id), None));
                    }
                    dead.push(g.id.clone());
                }
            }
            for id in dead {
                tracing::info!("group {id}: no members and no offsets left; removed");
                groups.remove(&id);
            }
        }
        if let Err(e) = self.append(&entries).await {
            tracing::warn!("writing offset expiry tombstones: {e}");
        }
    }
}
