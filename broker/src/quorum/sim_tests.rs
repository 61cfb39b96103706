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

use super::core::{CoreConfig, ProposeError, QuorumCore, Resend};
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
    /// Starts so far: each start of a node takes new proposal ids, as a
    /// broker process does (a random first id).
    starts: u64,
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
            starts: 0,
        };
        for id in voters {
            let dir = sim._tmp.path().join(format!("node-{id}"));
            sim.dirs.insert(id, dir);
            sim.start(id);
        }
        sim
    }

    fn start(&mut self, id: u64) {
        let mut cfg = config(id, self.voters.clone(), self.snapshot_every);
        self.starts += 1;
        cfg.first_proposal += self.starts << 24;
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
        self.propose_on(l, &create(name), token, Resend::Never)
    }

    fn propose_on(&mut self, node: u64, cmd: &MetadataCommand, token: u64, r: Resend) -> bool {
        let n = self.nodes.get_mut(&node).unwrap();
        n.propose(cmd, token, r).is_ok()
    }

    /// How many times `token` was answered Ok (or refused) so far.
    fn answers(&self, token: u64) -> usize {
        let t = format!("t{token}");
        self.acked.iter().filter(|a| **a == t).count()
    }

    /// No node applied a proposal twice (each applies the same log, and
    /// `check` compares their states index by index).
    fn check_applied_once(&self) {
        for (id, n) in &self.nodes {
            let ids = &n.applied_ids;
            let distinct: BTreeSet<_> = ids.iter().collect();
            assert_eq!(
                distinct.len(),
                ids.len(),
                "node {id} applied a proposal twice"
            );
        }
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
    let topics = s.topics.keys().cloned().collect::<Vec<_>>().join(",");
    format!("{topics}; ids to {}", s.producer_id_block_end)
}

/// Not idempotent: each application moves the producer id block on by
/// one, so a copy applied twice shows.
fn reserve() -> MetadataCommand {
    MetadataCommand::ReserveProducerIds { count: 1 }
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
    // A request it takes now, still leading in its own view, cannot commit
    // (it is alone); once it hears of the new leader it sends it there.
    let wanted = sim.propose_on(old, &create("wanted"), 201, Resend::ToNewLeader);
    assert!(wanted, "it still leads in its own view");
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
        .propose(&create("b"), 100, Resend::Never)
        .is_ok());
    sim.run(5);
    assert!(sim.topics(new).contains(&"b".to_string()));
    // The old leader's own decision, made alone, can never commit.
    let r = sim
        .nodes
        .get_mut(&old)
        .unwrap()
        .propose(&create("lost"), 200, Resend::Never);
    sim.run(30);
    assert!(r.is_err() || !sim.topics(new).contains(&"lost".to_string()));
    assert!(!sim.topics(new).contains(&"wanted".to_string()));
    sim.isolated.clear();
    sim.run(60);
    for id in 1..=3 {
        assert_eq!(sim.topics(id), sim.topics(new), "node {id} caught up");
        assert!(!sim.topics(id).contains(&"lost".to_string()));
        assert!(
            sim.topics(id).contains(&"wanted".to_string()),
            "node {id}: the request was sent again to the new leader"
        );
    }
    assert_eq!(sim.answers(201), 1);
    assert!(sim.nodes[&old].resend_counts().0 >= 1);
    sim.check_applied_once();
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
    let (mut resent, mut copies) = (0, 0);
    for seed in 1..=12u64 {
        let mut sim = Sim::new(3, seed, 5);
        sim.drop_percent = 10;
        let mut token = 0;
        for round in 0..400 {
            if round % 10 == 0 {
                token += 1;
                let l = sim.leader();
                if let Some(l) = l {
                    let cmd = create(&format!("c{token}"));
                    sim.propose_on(l, &cmd, token, Resend::Never);
                }
            }
            if round % 10 == 5 {
                // A broker's request, through any node, resent across
                // leader changes.
                token += 1;
                let at = 1 + sim.rng.below(3);
                sim.propose_on(at, &reserve(), token, Resend::ToNewLeader);
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
        let mut reserves = 0;
        for t in &sim.acked {
            let token: u64 = t[1..].parse().unwrap();
            assert_eq!(sim.answers(token), 1, "seed {seed}: {t} answered once");
            if token.is_multiple_of(2) {
                reserves += 1;
                continue;
            }
            let name = format!("c{token}");
            assert!(
                want.contains(&name),
                "seed {seed}: acknowledged {name} is in the final state"
            );
        }
        let block_end = sim.nodes[&1].state().producer_id_block_end;
        assert!(
            block_end >= reserves,
            "seed {seed}: every acknowledged reserve applied"
        );
        assert!(
            block_end <= token as i64 / 2,
            "seed {seed}: none applied twice"
        );
        sim.check_applied_once();
        for n in sim.nodes.values() {
            let (r, d) = n.resend_counts();
            resent += r;
            copies += d;
        }
    }
    // The seeds do change leaders under proposals (else this test would
    // not test resending).
    assert!(
        resent > 0 && copies > 0,
        "resent {resent}, copies skipped {copies}"
    );
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
        .propose(&create("b"), 2, Resend::ToNewLeader)
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

/// The old leader replicated a follower's request to both followers and
/// died before it heard they had it. The new leader commits that entry
/// (it is in its log), and the request's node also sent it again when it
/// heard of the new leader: the copy commits too, and is skipped.
#[test]
fn a_request_the_old_leader_replicated_and_also_resent_is_applied_once() {
    let mut skipped = 0;
    for seed in 1..=8u64 {
        let mut sim = Sim::new(3, seed, 100);
        assert!(sim.propose("a", 1));
        sim.run(3);
        let old = sim.wait_leader();
        let asker = (1..=3).find(|id| *id != old).unwrap();
        let before = sim.nodes[&asker].state().producer_id_block_end;
        assert!(sim.propose_on(asker, &reserve(), 2, Resend::ToNewLeader));
        // Round 1: the forward reaches the leader, which appends it.
        // Round 2: the leader's append reaches both followers.
        sim.step(false);
        sim.step(false);
        // Their acknowledgements (round 3) never reach it.
        sim.isolated.insert(old);
        for _ in 0..200 {
            sim.step(true);
            if sim.answers(2) > 0 {
                break;
            }
        }
        assert_eq!(sim.answers(2), 1, "seed {seed}: answered once");
        sim.run(10);
        sim.isolated.clear();
        sim.run(40);
        for id in 1..=3 {
            let end = sim.nodes[&id].state().producer_id_block_end;
            assert_eq!(end, before + 1, "seed {seed}: node {id} reserved once");
        }
        sim.check_applied_once();
        let (resent, _) = sim.nodes[&asker].resend_counts();
        assert!(resent >= 1, "seed {seed}: sent again to the new leader");
        skipped += sim.nodes[&asker].resend_counts().1;
    }
    assert!(skipped > 0, "the copies did commit (and were skipped)");
}

/// The window of applied proposals is in the snapshot: a node that
/// installs one skips the same copies as the nodes that applied the log.
#[test]
fn a_snapshot_carries_the_applied_proposals() {
    let mut sim = Sim::new(3, 11, 3);
    let leader = sim.wait_leader();
    sim.run(3); // the followers hear of it
    let asker = (1..=3).find(|id| *id != leader).unwrap();
    for token in 1..=6 {
        assert!(sim.propose_on(asker, &reserve(), token, Resend::ToNewLeader));
        sim.run(3);
    }
    sim.run(10);
    let window = sim.nodes[&leader].state().applied_proposals.clone();
    assert_eq!(sim.nodes[&asker].state().applied_proposals, window);
    assert!(!window.is_empty());
    // A node restarted from its snapshot and log has the same window.
    sim.restart(asker);
    sim.run(10);
    assert_eq!(sim.nodes[&asker].state().applied_proposals, window);
}

/// After a failed write the broker reopens its log in the same process
/// (`node.rs`). The reopened core must go on with the process's proposal
/// ids: the log it replays records the ids it applied, so starting them
/// again makes the next proposals look like copies, skipped and never
/// answered (the full-disk test's DeleteTopics timed out so).
#[test]
fn a_core_reopened_in_the_same_process_goes_on_with_its_proposal_ids() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("node-1");
    let cfg = config(1, vec![1], 1000);
    let run = |core: &mut QuorumCore<u64>| -> Vec<(u64, Result<(), ProposeError>)> {
        let mut done = Vec::new();
        for _ in 0..5 {
            let out = core.process().unwrap();
            done.extend(out.done.into_iter().map(|(w, r)| (w, r.map(|_| ()))));
            core.tick();
        }
        done
    };
    let mut core = QuorumCore::<u64>::open(&dir, cfg.clone()).unwrap();
    run(&mut core);
    assert!(core.is_leader());
    for (i, name) in ["a", "b"].iter().enumerate() {
        core.propose(&create(name), i as u64, Resend::ToNewLeader)
            .map_err(|(_, e)| e)
            .unwrap();
    }
    assert_eq!(run(&mut core).len(), 2);
    let next = core.next_proposal_id();
    assert_eq!(next, cfg.first_proposal + 2);
    drop(core);

    // Reopened with the ids the process started with: the first proposal
    // takes id `first_proposal`, which the log applied already.
    let mut stale = QuorumCore::<u64>::open(&dir, cfg.clone()).unwrap();
    run(&mut stale);
    stale
        .propose(&create("c"), 10, Resend::ToNewLeader)
        .map_err(|(_, e)| e)
        .unwrap();
    assert!(
        run(&mut stale).is_empty(),
        "a reused id is skipped, unanswered"
    );
    assert!(!stale.state().topics.contains_key("c"));
    drop(stale);

    // Reopened going on from `next`: applied and answered.
    let mut reopened = QuorumCore::<u64>::open(
        &dir,
        CoreConfig {
            first_proposal: next + 1, // past the stale core's one id too
            ..cfg
        },
    )
    .unwrap();
    run(&mut reopened);
    reopened
        .propose(&create("d"), 11, Resend::ToNewLeader)
        .map_err(|(_, e)| e)
        .unwrap();
    let done = run(&mut reopened);
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].0, 11);
    assert!(done[0].1.is_ok(), "{:?}", done[0].1);
    assert!(reopened.state().topics.contains_key("d"));
}
