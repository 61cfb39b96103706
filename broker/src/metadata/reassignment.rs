//! Leader elections and replica reassignments in the metadata (Kafka's
//! ElectLeaders, AlterPartitionReassignments and the PartitionChangeRecords
//! its controller writes for them), applied by the pure `apply`.
//!
//! A reassignment from replicas R to target T (Kafka's KRaft model, KIP-455):
//! - starting it sets `replicas` = T followed by R \ T, `adding` = T \ R,
//!   `removing` = R \ T; the new replicas open as followers and catch up;
//! - it completes in the same command that brings the last target replica
//!   into the ISR (the leader's AlterPartition, or the start itself when T
//!   adds nothing): `replicas` = T, the ISR keeps only target replicas, and
//!   a leader being removed hands over to the first live in-sync target
//!   replica in a new leader epoch;
//! - cancelling it goes back to R: the added replicas leave `replicas` and
//!   the ISR.
//!
//! Leaders are elected in the order of `replicas` (the first is Kafka's
//! preferred leader) among live in-sync replicas; an unclean election (only
//! when asked: the controller asks for partitions whose topic enables
//! `unclean.leader.election.enable`) takes any live replica and makes it the
//! whole ISR, as Kafka does.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{ClusterState, PartitionMeta};

/// Kafka's election types (ElectLeaders' `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Election {
    /// The first replica, if it is live and in sync.
    Preferred,
    /// A partition with no live in-sync replica takes any live replica.
    Unclean,
}

/// One partition's election or reassignment outcome: a Kafka error code
/// (0: done) and why.
pub type Outcome = (i16, Option<String>);

/// Kafka's codes for the outcomes (`kafka_protocol::ResponseError` lives in
/// the handlers; the state speaks in codes so `Effect` stays plain data).
pub mod codes {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
    pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
}

/// A partition named by a command: its topic by name and id (a command for
/// a deleted topic cannot hit a new one of the same name).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionRef {
    pub topic: String,
    pub id: Uuid,
    pub partition: i32,
}

/// A reassignment's target, or its cancellation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Move {
    /// Move to these replicas; `shards[i]` is where `replicas[i]` lives on
    /// its broker (the controller chooses it for a new replica; a replica
    /// already held keeps its shard whatever is named here).
    To {
        replicas: Vec<i32>,
        shards: Vec<u32>,
    },
    /// Go back to the replicas before the reassignment in progress.
    Cancel,
}

impl ClusterState {
    /// Mutable access to one partition of a topic (copy on write).
    fn partition_mut(&mut self, r: &PartitionRef) -> Result<&mut PartitionMeta, Outcome> {
        let unknown = || {
            (
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                Some(format!("{}-{} does not exist", r.topic, r.partition)),
            )
        };
        let t = self.topics.get_mut(&r.topic).ok_or_else(unknown)?;
        if t.id != r.id || r.partition < 0 || r.partition as usize >= t.partitions.len() {
            return Err(unknown());
        }
        Ok(&mut Arc::make_mut(t).partitions[r.partition as usize])
    }

    /// ElectLeaders for each partition; the outcomes in the same order.
    pub(super) fn elect_leaders(
        &mut self,
        election: Election,
        partitions: &[PartitionRef],
    ) -> Vec<Outcome> {
        let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
        partitions
            .iter()
            .map(|r| {
                let p = match self.partition_mut(r) {
                    Ok(p) => p,
                    Err(e) => return e,
                };
                let out = match election {
                    Election::Preferred => elect_preferred(p, &live),
                    Election::Unclean => elect_unclean(p, &live),
                };
                out.map_or_else(
                    |(code, why)| (code, Some(format!("{}-{}: {why}", r.topic, r.partition))),
                    |()| (codes::NONE, None),
                )
            })
            .collect()
    }

    /// Start, replace or cancel the reassignment of one partition.
    pub(super) fn reassign(&mut self, r: &PartitionRef, m: &Move, shards: usize) -> Outcome {
        let live: Vec<i32> = self.live_brokers().map(|b| b.id).collect();
        let broker_shards: BTreeMap<i32, u32> =
            self.brokers.iter().map(|(id, b)| (*id, b.shards)).collect();
        let p = match self.partition_mut(r) {
            Ok(p) => p,
            Err(e) => return e,
        };
        let mut next = p.clone();
        let outcome = match m {
            Move::Cancel => cancel(&mut next, &live),
            Move::To {
                replicas,
                shards: placed,
            } => start(&mut next, replicas, placed, &broker_shards, shards, &live),
        };
        match outcome {
            Ok(()) => {
                *p = next;
                (codes::NONE, None)
            }
            Err((code, why)) => (code, Some(format!("{}-{}: {why}", r.topic, r.partition))),
        }
    }
}

type Refusal = (i16, String);

/// The first live in-sync replica in the order of `candidates`.
fn first_eligible(p: &PartitionMeta, candidates: &[i32], live: &[i32]) -> Option<i32> {
    candidates
        .iter()
        .copied()
        .find(|r| p.isr.contains(r) && live.contains(r))
}

fn set_leader(p: &mut PartitionMeta, leader: i32) {
    if p.leader != leader {
        p.leader = leader;
        p.leader_epoch += 1;
    }
    p.partition_epoch += 1;
}

fn elect_preferred(p: &mut PartitionMeta, live: &[i32]) -> Result<(), Refusal> {
    let preferred = p.replicas[0];
    if p.leader == preferred {
        return Err((
            codes::ELECTION_NOT_NEEDED,
            format!("the preferred replica {preferred} leads already"),
        ));
    }
    if !p.isr.contains(&preferred) || !live.contains(&preferred) {
        return Err((
            codes::PREFERRED_LEADER_NOT_AVAILABLE,
            format!("the preferred replica {preferred} is not a live in-sync replica"),
        ));
    }
    set_leader(p, preferred);
    Ok(())
}

fn elect_unclean(p: &mut PartitionMeta, live: &[i32]) -> Result<(), Refusal> {
    if p.leader >= 0 {
        return Err((
            codes::ELECTION_NOT_NEEDED,
            format!("broker {} leads it", p.leader),
        ));
    }
    // A live in-sync replica first: then the election is clean after all.
    if let Some(l) = first_eligible(p, &p.replicas.clone(), live) {
        set_leader(p, l);
        return Ok(());
    }
    let Some(l) = p.replicas.iter().copied().find(|r| live.contains(r)) else {
        return Err((
            codes::ELIGIBLE_LEADERS_NOT_AVAILABLE,
            "no replica is on a live broker".into(),
        ));
    };
    // Kafka's unclean election: the new leader is the whole ISR (what it
    // holds is, by definition, what is committed now).
    p.isr = vec![l];
    set_leader(p, l);
    Ok(())
}

fn start(
    p: &mut PartitionMeta,
    target: &[i32],
    placed: &[u32],
    broker_shards: &BTreeMap<i32, u32>,
    shards: usize,
    live: &[i32],
) -> Result<(), Refusal> {
    let bad = |why: String| (codes::INVALID_REPLICA_ASSIGNMENT, why);
    if target.is_empty() {
        return Err(bad("the target replica list is empty".into()));
    }
    if placed.len() != target.len() {
        return Err(bad(format!(
            "{} shard(s) for {} target replica(s)",
            placed.len(),
            target.len()
        )));
    }
    let mut distinct = target.to_vec();
    distinct.sort_unstable();
    distinct.dedup();
    if distinct.len() != target.len() {
        return Err(bad(format!(
            "the target replicas {target:?} repeat a broker"
        )));
    }
    // From the replicas before any reassignment in progress (a new target
    // replaces the old one, as in Kafka).
    let original = p.original_replicas();
    let mut replicas = target.to_vec();
    let mut replica_shards = Vec::with_capacity(target.len() + original.len());
    for (r, s) in target.iter().zip(placed) {
        let shard = match p.shard_on(*r) {
            Some(s) if original.contains(r) => s,
            _ => {
                let Some(n) = broker_shards.get(r) else {
                    return Err(bad(format!("broker {r} is not registered")));
                };
                if *s >= *n || *s as usize >= shards {
                    return Err(bad(format!(
                        "replica on broker {r} placed on shard {s} of its {n}"
                    )));
                }
                *s
            }
        };
        replica_shards.push(shard);
    }
    let removing: Vec<i32> = original
        .iter()
        .copied()
        .filter(|r| !target.contains(r))
        .collect();
    for r in &removing {
        replicas.push(*r);
        replica_shards.push(p.shard_on(*r).expect("an original replica has a shard"));
    }
    p.adding = target
        .iter()
        .copied()
        .filter(|r| !original.contains(r))
        .collect();
    p.removing = removing;
    p.replicas = replicas;
    p.shards = replica_shards;
    // Replicas of an abandoned target leave the ISR with it.
    p.isr.retain(|r| p.replicas.contains(r));
    if p.isr.is_empty() {
        return Err(bad(
            "no in-sync replica would be left among the replicas".into()
        ));
    }
    if p.leader >= 0 && !p.replicas.contains(&p.leader) {
        let l = first_eligible(p, &p.replicas.clone(), live).unwrap_or(-1);
        set_leader(p, l);
    } else {
        p.partition_epoch += 1;
    }
    complete_if_in_sync(p, live);
    Ok(())
}

fn cancel(p: &mut PartitionMeta, live: &[i32]) -> Result<(), Refusal> {
    if !p.reassigning() {
        return Err((
            codes::NO_REASSIGNMENT_IN_PROGRESS,
            "no reassignment is in progress".into(),
        ));
    }
    let original = p.original_replicas();
    let shards = original
        .iter()
        .map(|r| p.shard_on(*r).expect("a replica has a shard"))
        .collect();
    let isr: Vec<i32> = p
        .isr
        .iter()
        .copied()
        .filter(|r| original.contains(r))
        .collect();
    if isr.is_empty() {
        return Err((
            codes::INVALID_REPLICA_ASSIGNMENT,
            "none of the original replicas is in sync: cancelling would leave no ISR".into(),
        ));
    }
    p.replicas = original;
    p.shards = shards;
    p.isr = isr;
    p.adding.clear();
    p.removing.clear();
    if p.leader >= 0 && !p.replicas.contains(&p.leader) {
        let l = first_eligible(p, &p.replicas.clone(), live).unwrap_or(-1);
        set_leader(p, l);
    } else {
        p.partition_epoch += 1;
    }
    Ok(())
}

/// Finish the reassignment in progress if every target replica is in the
/// ISR (called after each ISR change). Returns true if it finished. The
/// caller has bumped the partition epoch for its own change already; a
/// completion is part of that same change.
pub(super) fn complete_if_in_sync(p: &mut PartitionMeta, live: &[i32]) -> bool {
    if !p.reassigning() {
        return false;
    }
    let target = p.target_replicas();
    if !target.iter().all(|r| p.isr.contains(r)) {
        return false;
    }
    p.shards = target
        .iter()
        .map(|r| p.shard_on(*r).expect("a replica has a shard"))
        .collect();
    p.isr.retain(|r| target.contains(r));
    p.replicas = target;
    p.adding.clear();
    p.removing.clear();
    if p.leader >= 0 && !p.replicas.contains(&p.leader) {
        p.leader = first_eligible(p, &p.replicas.clone(), live).unwrap_or(-1);
        p.leader_epoch += 1;
    }
    true
}

#[cfg(test)]
#[path = "reassignment_tests.rs"]
mod tests;
