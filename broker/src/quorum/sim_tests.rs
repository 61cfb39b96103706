//! Several [`QuorumCore`]s in one thread over a seeded network that drops,
//! duplicates, reorders and partitions messages, with nodes restarted from
//! their directories. Deterministic for a seed: a failing seed replays.
//!
//! Invariants checked on every step: at most one leader per term; every
//! index any two nodes applied holds the same command; a proposal answered
//! Ok is applied on every node once the network heals.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

use raft::prelude::{Message, MessageType};
use shard::log::sim_disk::Rng;
use uuid::Uuid;

use super::core::{CoreConfig, ProposeError, QuorumCore};
use crate::metadata::{ClusterState, MetadataCommand, PartitionMeta};

struct Sim {
    dirs: BTreeMap<u64, PathBuf>,
    nodes: BTreeMap<u64, QuorumCore<u64>>,
    voters: Vec<u64>,
    net: VecDeque<Message>,
    /// Nodes cut off from everyone (their messages in and out are lost).
    isolated: BTreeSet<u64>,
    rng: Rng,
    drop_percent: u64,
    /// (node, term) of every leader seen.
    leaders: BTreeMap<u64, u64>,
    /// What each index held, by the first node that applied it.
    applied_at: BTreeMap<u64, String>,
    acked: Vec<String>,
    _tmp: tempfile::TempDir,
    snapshot_every: u64,
}

fn create(name: &str) -> MetadataCommand {
    MetadataCommand::CreateTopic {
        name: name.into(),
        id: Uuid::from_u128(name.bytes().fold(7u128, |h, b| h * 31 + b as u128)),
        partitions: vec![PartitionMeta::local(0, 1)],
        configs: BTreeMap::new(),
    }
}

impl Sim {
    fn new(n: u64, seed: u64, snapshot_every: u64) -> Sim {
        let tmp = tempfile::tempdir().unwrap();
        let voters: Vec<u64> = (1..=n).collect();
        let mut sim = Sim {
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            voters: voters.clone(),
            net: VecDeque::new(),
            isolated: BTreeSet::new(),
            rng: Rng::new(seed),
            drop_percent: 0,
            leaders: BTreeMap::new(),
            applied_at: BTreeMap::new(),
            acked: Vec::new(),
            snapshot_every,
            _tmp: tmp,
        };
        for id in voters {
            let dir = sim._tmp.path().join(format!("node-{id}"));
            sim.dirs.insert(id, dir);
            sim.start(id);
        }
        sim
    }

    fn start(&mut self, id: u64) {
        let cfg = config(id, self.voters.clone(), self.snapshot_every);
        let core = QuorumCore::open(&self.dirs[&id], cfg).unwrap();
        self.nodes.insert(id, core);
    }

    /// kill -9: the in-memory node is gone; its directory stays.
    fn restart(&mut self, id: u64) {
        self.nodes.remove(&id);
        self.net.retain(|m| m.to != id);
        self.start(id);
    }

    fn leader(&self) -> Option<u64> {
        self.nodes.values().find(|c| c.is_leader()).map(|c| c.id())
    }

    /// One round: every node processes, messages are delivered (or lost), a tick.
    fn step(&mut self, tick: bool) {
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in &ids {
            let out = self.nodes.get_mut(id).unwrap().process().unwrap();
            for (token, result) in out.done {
                if let Ok(_) | Err(ProposeError::Rejected(_)) = &result {
                    self.acked.push(format!("t{token}"));
                }
            }
            for m in out.messages {
                let lost = self.isolated.contains(&m.from)
                    || self.isolated.contains(&m.to)
                    || self.rng.chance(self.drop_percent as u32 * 10);
                if m.get_msg_type() == MessageType::MsgSnapshot {
                    // A transport knows whether it sent a snapshot; raft-rs
                    // waits for that before replicating to the follower.
                    let n = self.nodes.get_mut(id).unwrap();
                    n.report_snapshot(m.to, !lost);
                }
                if lost {
                    // A transport that cannot reach a node knows its
                    // forwarded proposals did not get there.
                    let cut_off = self.isolated.contains(&m.from) || self.isolated.contains(&m.to);
                    if cut_off && m.get_msg_type() == MessageType::MsgPropose {
                        let n = self.nodes.get_mut(id).unwrap();
                        n.undelivered(m.to, m.entries.to_vec());
                    }
                    continue;
                }
                if self.rng.chance(self.drop_percent as u32 * 5) {
                    self.net.push_back(m.clone()); // duplicated
                }
                self.net.push_back(m);
            }
            self.check(*id);
        }
        // Deliver what is in flight, in a shuffled order when lossy.
        let mut batch: Vec<Message> = self.net.drain(..).collect();
        if self.drop_percent > 0 && batch.len() > 1 {
            for i in (1..batch.len()).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                batch.swap(i, j);
            }
        }
        for m in batch {
            if let Some(n) = self.nodes.get_mut(&m.to) {
                n.step(m);
            }
        }
        if tick {
            for n in self.nodes.values_mut() {
                n.tick();
            }
        }
    }

    fn check(&mut self, id: u64) {
        let n = &self.nodes[&id];
        if n.is_leader() {
            if let Some(other) = self.leaders.get(&n.term()) {
                assert_eq!(*other, id, "two leaders in term {}", n.term());
            }
            self.leaders.insert(n.term(), id);
        }
        // Compare the state each node has at its applied index with the
        // first one seen there.
        let image = state_key(n.state());
        let at = n.applied();
        match self.applied_at.get(&at) {
            Some(seen) => assert_eq!(seen, &image, "node {id} differs at applied index {at}"),
            None => {
                self.applied_at.insert(at, image);
            }
        }
    }

    fn run(&mut self, rounds: usize) {
        for _ in 0..rounds {
            self.step(true);
        }
    }

    fn wait_leader(&mut self) -> u64 {
        for _ in 0..500 {
            self.step(true);
            if let Some(l) = self.leader() {
                return l;
            }
        }
        panic!("no leader elected");
    }

    fn propose(&mut self, name: &str, token: u64) -> bool {
        let l = self.wait_leader();
        self.nodes
            .get_mut(&l)
            .unwrap()
            .propose(&create(name), token)
            .is_ok()
    }

    fn topics(&self, id: u64) -> Vec<String> {
        self.nodes[&id].state().topics.keys().cloned().collect()
    }
}

fn config(node_id: u64, voters: Vec<u64>, snapshot_every: u64) -> CoreConfig {
    CoreConfig {
        node_id,
        voters,
        legacy: None,
        snapshot_every,
        first_proposal: node_id << 40,
    }
}

fn state_key(s: &ClusterState) -> String {
    s.topics.keys().cloned().collect::<Vec<_>>().join(",")
}

#[test]
fn one_node_commits_restarts_and_snapshots() {
    let mut sim = Sim::new(1, 1, 4);
    for i in 0..10 {
        assert!(sim.propose(&format!("t{i}"), i));
        sim.run(2);
    }
    assert_eq!(sim.acked.len(), 10);
    assert_eq!(sim.topics(1).len(), 10);
    let dir = sim.dirs[&1].clone();
    assert!(std::fs::metadata(dir.join("snapshot")).unwrap().len() > 100);
    sim.restart(1);
    sim.run(3);
    assert_eq!(sim.topics(1).len(), 10, "log and snapshot replayed");
    assert!(sim.nodes[&1].is_leader());
}

#[test]
fn three_nodes_agree_and_survive_the_leader_cut_off() {
    let mut sim = Sim::new(3, 42, 8);
    for i in 0..5 {
        assert!(sim.propose(&format!("a{i}"), i));
        sim.run(3);
    }
    let old = sim.wait_leader();
    sim.isolated.insert(old);
    // The other two elect a new leader (1-2 s of ticks) and go on.
    let mut new = old;
    for _ in 0..200 {
        sim.step(true);
        if let Some(l) = sim.nodes.values().find(|c| c.is_leader() && c.id() != old) {
            new = l.id();
            break;
        }
    }
    assert_ne!(new, old, "a new leader without the isolated one");
    assert!(sim
        .nodes
        .get_mut(&new)
        .unwrap()
        .propose(&create("b"), 100)
        .is_ok());
    sim.run(5);
    assert!(sim.topics(new).contains(&"b".to_string()));
    // The old leader's proposal, made alone, can never commit.
    let r = sim
        .nodes
        .get_mut(&old)
        .unwrap()
        .propose(&create("lost"), 200);
    sim.run(30);
    assert!(r.is_err() || !sim.topics(new).contains(&"lost".to_string()));
    sim.isolated.clear();
    sim.run(60);
    for id in 1..=3 {
        assert_eq!(sim.topics(id), sim.topics(new), "node {id} caught up");
        assert!(!sim.topics(id).contains(&"lost".to_string()));
    }
}

#[test]
fn a_lagging_voter_installs_a_snapshot() {
    let mut sim = Sim::new(3, 7, 4);
    let leader = sim.wait_leader();
    let lagging = (1..=3).find(|i| *i != leader).unwrap();
    sim.isolated.insert(lagging);
    for i in 0..20 {
        assert!(sim.propose(&format!("s{i}"), i));
        sim.run(2);
    }
    let first = sim.nodes[&leader].progress();
    assert!(!first.is_empty());
    // The leader has compacted past everything the lagging node has.
    let dir = &sim.dirs[&leader];
    assert!(std::fs::metadata(dir.join("snapshot")).unwrap().len() > 100);
    sim.isolated.clear();
    sim.run(60);
    assert_eq!(
        sim.topics(lagging).len(),
        20,
        "caught up through a snapshot"
    );
    sim.restart(lagging);
    sim.run(30);
    assert_eq!(
        sim.topics(lagging).len(),
        20,
        "the installed snapshot is durable"
    );
}

#[test]
fn seeded_chaos_keeps_one_history() {
    for seed in 1..=12u64 {
        let mut sim = Sim::new(3, seed, 5);
        sim.drop_percent = 10;
        let mut token = 0;
        for round in 0..400 {
            if round % 10 == 0 {
                token += 1;
                let l = sim.leader();
                if let Some(l) = l {
                    let _ = sim
                        .nodes
                        .get_mut(&l)
                        .unwrap()
                        .propose(&create(&format!("c{token}")), token);
                }
            }
            if round % 97 == 50 {
                let victim = 1 + sim.rng.below(3);
                sim.restart(victim);
            }
            if round % 131 == 60 {
                let victim = 1 + sim.rng.below(3);
                sim.isolated.insert(victim);
            }
            if round % 131 == 100 {
                sim.isolated.clear();
            }
            sim.step(true);
        }
        sim.isolated.clear();
        sim.drop_percent = 0;
        sim.run(100);
        let want = sim.topics(1);
        for id in 2..=3 {
            assert_eq!(sim.topics(id), want, "seed {seed}: node {id} agrees");
        }
        for t in &sim.acked {
            let name = format!("c{}", &t[1..]);
            assert!(
                want.contains(&name),
                "seed {seed}: acknowledged {name} is in the final state"
            );
        }
    }
}

#[test]
fn a_torn_tail_is_cut_and_a_corrupt_snapshot_refused() {
    let mut sim = Sim::new(1, 3, 1000);
    for i in 0..3 {
        assert!(sim.propose(&format!("x{i}"), i));
        sim.run(2);
    }
    let dir = sim.dirs[&1].clone();
    sim.nodes.clear();
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("log"))
        .unwrap();
    f.write_all(&[200, 0, 0, 0, 1, 2, 3]).unwrap(); // a record cut short
    drop(f);
    sim.start(1);
    sim.run(3);
    assert_eq!(sim.topics(1).len(), 3);
    sim.nodes.clear();
    let mut snap = std::fs::read(dir.join("snapshot")).unwrap();
    let at = snap.len() / 2;
    snap[at] ^= 0xff;
    std::fs::write(dir.join("snapshot"), snap).unwrap();
    let err = QuorumCore::<u64>::open(&dir, config(1, vec![1], 1000))
        .err()
        .expect("a corrupt snapshot is refused");
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[test]
fn a_proposal_forwarded_to_a_leader_that_just_died_is_applied_by_the_next() {
    let mut sim = Sim::new(3, 7, 100);
    assert!(sim.propose("a", 1));
    sim.run(3);
    let old = sim.wait_leader();
    let follower = (1..=3).find(|id| *id != old).unwrap();
    // The leader is cut off; the follower does not know yet and forwards.
    sim.isolated.insert(old);
    assert!(sim
        .nodes
        .get_mut(&follower)
        .unwrap()
        .propose(&create("b"), 2)
        .is_ok());
    // Within the proposal timeout (100 ticks) the other two elect a new
    // leader, the proposal goes to it and is applied.
    for _ in 0..90 {
        sim.step(true);
        if sim.acked.contains(&"t2".to_string()) {
            break;
        }
    }
    assert!(
        sim.acked.contains(&"t2".to_string()),
        "the proposal was applied"
    );
    let new = sim.leader().unwrap();
    assert_ne!(new, old);
    sim.run(3);
    assert_eq!(sim.topics(follower), vec!["a".to_string(), "b".to_string()]);
    // Once, everywhere.
    sim.isolated.clear();
    sim.run(60);
    for id in 1..=3 {
        assert_eq!(sim.topics(id), vec!["a".to_string(), "b".to_string()]);
    }
}

#[test]
fn a_paused_leader_stops_leading_as_soon_as_it_hears_the_new_term() {
    let mut sim = Sim::new(3, 5, 100);
    assert!(sim.propose("a", 1));
    sim.run(3);
    let old = sim.wait_leader();
    // Paused (SIGSTOP, a long stall): no ticks, nothing in or out, so it
    // does not step down on its own (check-quorum needs ticks).
    let paused = sim.nodes.remove(&old).unwrap();
    let new = sim.wait_leader();
    assert_ne!(new, old);
    let new_term = sim.nodes[&new].term();
    sim.nodes.insert(old, paused);
    assert!(
        sim.nodes[&old].is_leader(),
        "in its own view it still leads"
    );
    for _ in 0..50 {
        // Its ready cycle, then the new leader's messages are stepped: a
        // message of the new term makes it a follower, before any other
        // ready cycle (the active controller's timers run in between).
        sim.step(false);
        let o = &sim.nodes[&old];
        if o.term() >= new_term {
            assert!(
                !o.is_leader(),
                "node {old} heard term {} and still leads",
                o.term()
            );
            return;
        }
    }
    panic!("the paused leader never heard the new term {new_term}");
}
