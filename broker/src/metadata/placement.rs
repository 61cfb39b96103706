//! Where new partitions' replicas go: which brokers (rack-aware, leaders
//! spread), and on each broker which shard (its least loaded).
//!
//! The controller runs this before it builds a `CreateTopic` or
//! `CreatePartitions` command, so the command carries the placement and
//! every node applies the same one. It follows Kafka's replica assignment
//! (`StripedReplicaPlacer`): brokers in an order that alternates racks, the
//! first replica of consecutive partitions on consecutive brokers, the
//! others on brokers of racks the partition does not use yet. Kafka starts
//! at a random broker; here the start is the number of partitions in the
//! cluster, which spreads leaders as well and keeps placement a function
//! of the state (reproducible in tests).

use std::collections::BTreeMap;

use super::{ClusterState, PartitionMeta};

/// Why replicas could not be placed (the controller maps them to Kafka's
/// INVALID_REPLICATION_FACTOR and INVALID_REPLICA_ASSIGNMENT).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlaceError {
    ReplicationFactor(String),
    Assignment(String),
}

/// The brokers new replicas may use, and their shards' loads.
pub struct Placer {
    /// Live brokers in rack-alternating order: (id, rack).
    order: Vec<(i32, Option<String>)>,
    load: BTreeMap<i32, Vec<usize>>,
    start: usize,
}

impl Placer {
    /// Placement over the live brokers of `state`. `local` (this node and
    /// its shard count) stands in while no broker is registered yet: a
    /// single node creating its first topics during start-up.
    pub fn new(state: &ClusterState, local: (i32, u32)) -> Self {
        let mut brokers: Vec<(i32, Option<String>, u32)> = state
            .live_brokers()
            .map(|b| (b.id, b.rack.clone(), b.shards))
            .collect();
        if brokers.is_empty() && !state.brokers.contains_key(&local.0) {
            brokers.push((local.0, None, local.1));
        }
        let load = brokers
            .iter()
            .map(|(id, _, shards)| (*id, state.shard_load(*id, *shards as usize)))
            .collect();
        let start = state.topics.values().map(|t| t.partitions.len()).sum();
        Self {
            order: rack_alternating(brokers.iter().map(|(id, r, _)| (*id, r.clone())).collect()),
            load,
            start,
        }
    }

    /// How many brokers new replicas may use.
    pub fn live(&self) -> usize {
        self.order.len()
    }

    /// `count` new partitions with `rf` replicas each.
    pub fn place(&mut self, count: usize, rf: usize) -> Result<Vec<PartitionMeta>, PlaceError> {
        let n = self.order.len();
        if rf == 0 {
            return Err(PlaceError::ReplicationFactor(
                "replication factor must be larger than 0".into(),
            ));
        }
        if rf > n {
            // Kafka's words.
            return Err(PlaceError::ReplicationFactor(format!(
                "Unable to replicate the partition {rf} time(s): The target replication factor \
                 of {rf} cannot be reached because only {n} broker(s) are registered."
            )));
        }
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            let first = (self.start + i) % n;
            // Later rounds shift the followers, so the same pairs of
            // brokers do not always share partitions (Kafka's shift).
            let shift = (self.start + i) / n;
            // The other brokers, from the shifted one after the first.
            let others: Vec<usize> = (0..n.saturating_sub(1))
                .map(|k| (first + 1 + (shift + k) % (n - 1)) % n)
                .collect();
            let all_racks = {
                let mut r: Vec<_> = self.order.iter().map(|(_, r)| r).collect();
                r.sort();
                r.dedup();
                r.len()
            };
            let mut chosen = vec![first];
            let mut racks = vec![&self.order[first].1];
            while chosen.len() < rf {
                if racks.len() == all_racks {
                    racks.clear(); // every rack has a replica: start again
                }
                let free = |c: &&usize| !chosen.contains(*c);
                let k = *others
                    .iter()
                    .filter(free)
                    .find(|c| !racks.contains(&&self.order[**c].1))
                    .or_else(|| others.iter().find(free))
                    .expect("rf <= n leaves a broker");
                racks.push(&self.order[k].1);
                chosen.push(k);
            }
            let replicas: Vec<i32> = chosen.iter().map(|c| self.order[*c].0).collect();
            out.push(self.partition(replicas));
        }
        self.start += count;
        Ok(out)
    }

    /// Partitions with the replicas the client chose (CreateTopics'
    /// `assignments`, CreatePartitions' `assignments`).
    pub fn assigned(
        &mut self,
        state: &ClusterState,
        assignment: &[Vec<i32>],
    ) -> Result<Vec<PartitionMeta>, PlaceError> {
        let mut out = Vec::with_capacity(assignment.len());
        for (i, replicas) in assignment.iter().enumerate() {
            if replicas.is_empty() {
                return Err(PlaceError::Assignment(format!(
                    "The manual partition assignment of partition {i} is empty."
                )));
            }
            let mut distinct = replicas.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if distinct.len() != replicas.len() {
                return Err(PlaceError::Assignment(format!(
                    "The manual partition assignment {replicas:?} of partition {i} contains duplicate broker ids."
                )));
            }
            if let Some(b) = replicas
                .iter()
                .find(|b| !state.brokers.contains_key(b) && !self.load.contains_key(b))
            {
                return Err(PlaceError::Assignment(format!(
                    "The manual partition assignment includes broker {b}, but no such broker is registered."
                )));
            }
            let Some(leader) = replicas.iter().position(|b| self.load.contains_key(b)) else {
                return Err(PlaceError::Assignment(format!(
                    "All brokers specified in the partition assignment for partition {i} are fenced."
                )));
            };
            let mut p = self.partition(replicas.clone());
            p.leader = replicas[leader];
            p.isr.retain(|b| self.load.contains_key(b));
            out.push(p);
        }
        Ok(out)
    }

    /// A partition on `replicas`, the first leading, each on its broker's
    /// least loaded shard (a fenced broker's replica on its shard 0: it is
    /// not in `load`). The in-sync set is every live replica, as Kafka's:
    /// a new partition is empty everywhere, so every replica holds all of
    /// it; a fenced one joins once it has caught up.
    fn partition(&mut self, replicas: Vec<i32>) -> PartitionMeta {
        let shards = replicas
            .iter()
            .map(|b| match self.load.get_mut(b) {
                Some(load) => least_loaded(load) as u32,
                None => 0,
            })
            .collect();
        let isr = replicas
            .iter()
            .copied()
            .filter(|b| *b == replicas[0] || self.load.contains_key(b))
            .collect();
        PartitionMeta {
            leader_epoch: 0,
            partition_epoch: 0,
            leader: replicas[0],
            isr,
            replicas,
            shards,
            adding: Vec::new(),
            removing: Vec::new(),
        }
    }
}

/// The least loaded shard (the lowest of equals), counted as one more.
pub(crate) fn least_loaded(load: &mut [usize]) -> usize {
    let (shard, _) = load
        .iter()
        .enumerate()
        .min_by_key(|(i, l)| (**l, *i))
        .expect("a broker has at least one shard");
    load[shard] += 1;
    shard
}

/// Brokers ordered so that racks alternate (Kafka's
/// `getRackAlternatedBrokerList`): the first broker of each rack, then the
/// second of each, ... Without racks, the brokers by id.
fn rack_alternating(mut brokers: Vec<(i32, Option<String>)>) -> Vec<(i32, Option<String>)> {
    brokers.sort();
    let mut by_rack: BTreeMap<Option<String>, Vec<(i32, Option<String>)>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.1.clone()).or_default().push(b);
    }
    let mut out = Vec::new();
    let mut round = 0;
    loop {
        let before = out.len();
        for rack in by_rack.values() {
            if let Some(b) = rack.get(round) {
                out.push(b.clone());
            }
        }
        if out.len() == before {
            return out;
        }
        round += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metadata::BrokerMeta;

    fn cluster(racks: &[(i32, Option<&str>)]) -> ClusterState {
        let mut s = ClusterState::default();
        for (id, rack) in racks {
            s.brokers.insert(
                *id,
                BrokerMeta {
                    id: *id,
                    incarnation: uuid::Uuid::nil(),
                    epoch: 0,
                    endpoints: vec![],
                    rack: rack.map(str::to_string),
                    shards: 2,
                    fenced: false,
                },
            );
        }
        s.next_broker_epoch = 1;
        s
    }

    #[test]
    fn replicas_are_distinct_and_leaders_spread() {
        let s = cluster(&[(1, None), (2, None), (3, None)]);
        let parts = Placer::new(&s, (1, 2)).place(6, 3).unwrap();
        let mut leaders = BTreeMap::new();
        for p in &parts {
            let mut r = p.replicas.clone();
            r.sort_unstable();
            assert_eq!(r, vec![1, 2, 3]);
            assert_eq!(p.leader, p.replicas[0]);
            assert_eq!(
                p.isr, p.replicas,
                "every live replica is in sync at creation"
            );
            *leaders.entry(p.leader).or_insert(0) += 1;
        }
        assert_eq!(leaders.values().copied().collect::<Vec<_>>(), vec![2, 2, 2]);
        // Each broker's two shards take three replicas each.
        for b in [1, 2, 3] {
            let on: Vec<u32> = parts.iter().filter_map(|p| p.shard_on(b)).collect();
            assert_eq!(on.iter().filter(|s| **s == 0).count(), 3, "{on:?}");
        }
    }

    #[test]
    fn replicas_go_to_different_racks_first() {
        let s = cluster(&[
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
            (6, Some("c")),
        ]);
        let rack = |id: i32| s.brokers[&id].rack.clone();
        for p in Placer::new(&s, (1, 2)).place(12, 3).unwrap() {
            let mut racks: Vec<_> = p.replicas.iter().map(|b| rack(*b)).collect();
            racks.sort();
            racks.dedup();
            assert_eq!(racks.len(), 3, "{:?}", p.replicas);
        }
        for p in Placer::new(&s, (1, 2)).place(12, 2).unwrap() {
            assert_ne!(rack(p.replicas[0]), rack(p.replicas[1]), "{:?}", p.replicas);
        }
    }

    #[test]
    fn fenced_brokers_get_nothing_and_too_large_factors_are_refused() {
        let mut s = cluster(&[(1, None), (2, None), (3, None)]);
        s.brokers.get_mut(&2).unwrap().fenced = true;
        let parts = Placer::new(&s, (1, 2)).place(4, 2).unwrap();
        assert!(parts.iter().all(|p| !p.replicas.contains(&2)));
        assert!(matches!(
            Placer::new(&s, (1, 2)).place(1, 3),
            Err(PlaceError::ReplicationFactor(_))
        ));
        assert!(matches!(
            Placer::new(&s, (1, 2)).place(1, 0),
            Err(PlaceError::ReplicationFactor(_))
        ));
    }

    #[test]
    fn explicit_assignments_are_checked() {
        let mut s = cluster(&[(1, None), (2, None), (3, None)]);
        s.brokers.get_mut(&1).unwrap().fenced = true;
        let mut p = Placer::new(&s, (1, 2));
        let parts = p.assigned(&s, &[vec![1, 2], vec![3]]).unwrap();
        assert_eq!(parts[0].leader, 2, "the first live replica leads");
        assert_eq!(parts[0].replicas, vec![1, 2]);
        assert_eq!(parts[1].leader, 3);
        for bad in [vec![vec![]], vec![vec![2, 2]], vec![vec![9]], vec![vec![1]]] {
            assert!(
                matches!(p.assigned(&s, &bad), Err(PlaceError::Assignment(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_node_places_its_first_partitions_before_it_registers() {
        let s = ClusterState::default();
        let parts = Placer::new(&s, (0, 3)).place(4, 1).unwrap();
        assert!(parts.iter().all(|p| p.replicas == vec![0]));
        let shards: Vec<u32> = parts.iter().map(|p| p.shards[0]).collect();
        assert_eq!(shards, vec![0, 1, 2, 0]);
    }
}
