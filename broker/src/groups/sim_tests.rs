//! A seeded simulation of the classic group coordinator, in the spirit of
//! the log's (`shard/src/log/sim_tests.rs`): the real [`Coordinator`] with
//! its group log, driven by a workload of simulated consumers on a
//! [`ManualClock`], with coordinator crashes at random points.
//!
//! Per seed: a few groups (and one of simple `assign()` commits), clients
//! that JoinGroup (v4+ with MEMBER_ID_REQUIRED, or not; some static,
//! KIP-345), SyncGroup (the leader hands out assignments), heartbeat,
//! commit offsets, leave, send stale requests, fall silent (their session
//! expires) and come back; DeleteGroups; time moves to exactly a deadline,
//! just before one, or by random amounts, and the timers run whenever the
//! clock reaches their deadline (as `run_timers` does). A crash drops every
//! request in flight (their answers never reach a client), closes the group
//! log and rebuilds a new coordinator from it (`Coordinator::open`).
//!
//! Checked after every step: [`Group::check_invariants`] for every group
//! (the transitions are asserted in `Group::set_state`); a group's
//! generation never goes back while it exists; every acknowledged commit is
//! what OffsetFetch returns, until retention may have expired it; a settled
//! change (Stable, Empty) is never left unwritten; a heartbeat answered 0
//! comes from a member of the current generation; a follower's SyncGroup
//! answer is what the leader assigned it. After every timer run: a member
//! is removed only when its session or the group's phase deadline is due,
//! no member whose session is due is left, and no deadline is left in the
//! past. After every crash: committed offsets are exactly those before it;
//! a Stable group comes back with its generation, leader, members and
//! assignments; a group caught mid-rebalance comes back as it was last
//! settled.
//!
//! Disk: the group log is a real partition log in a temporary directory,
//! on the log's simulated disk (`shard::log::sim_disk`, the `sim` feature):
//! two thirds of the seeds inject write and sync errors and torn writes,
//! and half the crashes are power losses (writes whose sync failed may be
//! lost or torn). A crash comes when no append is in flight (every answer
//! arrived or the request never started). After a crash that followed a
//! failed write, the restore checks are those a failed write allows: every
//! acknowledged commit is there, every restored offset is one that was held
//! or sent, and every group is at a generation it was seen settled at.
//!
//! Found so far (all fixed): members answered out of a SyncGroup wait
//! (the leader's assignment, or REBALANCE_IN_PROGRESS) kept the session
//! clock of before the wait, so the timers ran again at once and expired
//! them (seeds 2, 104; Kafka restarts the session then); a group left
//! Empty with no offsets was dropped at restore without a tombstone, so a
//! later commit brought its old generation back from the log (seed 128);
//! a pending member id never lapsed, and a static member's rejoin could
//! panic (earlier seeds). The model was wrong about repeated generations
//! after a crash (seeds 39, 88, 151).
//!
//! Commands:
//! - CI (part of `cargo test -p shardline-broker`): [`CI_SEEDS`] seeds in
//!   `groups::sim_tests::sim_ci_*`.
//! - Many seeds, stopping at the first failure and printing its seed:
//!   `SIM_SEEDS=2000 cargo test --release -p shardline-broker groups::sim_tests::sim_many -- --ignored --nocapture`
//!   (`SIM_FIRST=N` starts elsewhere).
//! - Replay one, narrating every step: `SIM_SEED=S SIM_VERBOSE=1 cargo test --release
//!   -p shardline-broker groups::sim_tests::sim_many -- --ignored --nocapture`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use shard::log::sim_disk::{self, FaultRates, SimDisk, SimDiskRef};
use shard::log::LogConfig;
use shard::time::{Clock, LogClock, ManualClock};

use super::group::{CommittedOffset, GroupConfig, GroupState};
use super::Coordinator;

/// Seeds `cargo test` runs (two tests of half each).
const CI_SEEDS: u64 = 200;

/// splitmix64: replays from its seed on every platform.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed ^ 0x6A09_E667_F3BC_C909)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo) as u64) as i64
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// One seed's run, for the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Report {
    steps: u64,
    joins: u64,
    syncs: u64,
    commits: u64,
    heartbeats: u64,
    expired: u64,
    crashes: u64,
    power_losses: u64,
    /// Write and sync faults the disk injected.
    disk_faults: u64,
    /// Restores checked as after a failed write.
    faulted_restores: u64,
    max_generation: i32,
    /// Hash of every request and answer (member ids by client name).
    trace: u64,
}

mod clients;
use clients::Client;

/// What clients were told, to check the coordinator against.
#[derive(Default)]
struct Model {
    /// Acknowledged commits: (group, topic, partition) → offset, when.
    acked: BTreeMap<(String, String, i32), (i64, i64)>,
    /// The leader's assignments per (group, generation), this incarnation.
    assigned: HashMap<(String, i32), HashMap<String, Bytes>>,
    /// Generation of each group at the last step (gone: removed).
    generation: HashMap<String, i32>,
    /// Last settled (Stable or Empty) generation of each group.
    settled: HashMap<String, i32>,
    /// Every generation each group was seen settled at (a restore after a
    /// failed write may bring back any of them).
    settled_ever: HashMap<String, std::collections::BTreeSet<i32>>,
    /// Commits answered with an error since the last acknowledged one of
    /// the same partition: written or not, either may be in the log.
    maybe: HashMap<(String, String, i32), Vec<i64>>,
    /// Every offset a commit was ever sent with (acknowledged or not).
    sent: std::collections::HashSet<(String, String, i32, i64)>,
}

struct Sim {
    rng: Rng,
    clock: Rc<ManualClock>,
    coord: Rc<Coordinator>,
    cfg: GroupConfig,
    log_config: LogConfig,
    dir: std::path::PathBuf,
    clients: Vec<Client>,
    model: Model,
    report: Report,
    /// Member id → client name, so the trace does not hold random ids.
    names: HashMap<String, String>,
    verbose: bool,
    next_offset: i64,
    /// The group log's simulated disk (faults, power loss).
    disk: SimDiskRef,
    rates: FaultRates,
    /// Faults injected before the last restore: more since means a write
    /// may have failed in this incarnation.
    faults_at_restore: u64,
}

/// Write and sync faults the disk has injected so far.
fn faults(disk: &SimDiskRef) -> u64 {
    let d = disk.borrow();
    d.stats.write_faults + d.stats.torn_writes + d.stats.sync_faults
}

const GROUPS: [&str; 2] = ["g0", "g1"];
const SIMPLE: &str = "simple";

impl Sim {
    fn note(&mut self, line: String) {
        // FNV-1a over the narration: equal runs hash equal.
        for b in line.as_bytes() {
            self.report.trace ^= u64::from(*b);
            self.report.trace = self.report.trace.wrapping_mul(0x0100_0000_01b3);
        }
        if self.verbose {
            eprintln!("[{}] {line}", self.clock.now_ms() - START_MS);
        }
    }

    fn name(&self, member_id: &str) -> String {
        if member_id.is_empty() {
            return "-".into();
        }
        self.names
            .get(member_id)
            .cloned()
            .unwrap_or_else(|| "?".into())
    }

    /// Let every task run until no group log append is under way and the
    /// woken tasks have reached their next wait.
    async fn settle(&self) {
        loop {
            for _ in 0..16 {
                futures_lite::future::yield_now().await;
            }
            if self.coord.appends_in_flight.get() == 0 {
                return;
            }
            // Simulated time, not a timer (see `sim_disk::step`).
            sim_disk::step(&self.disk).await;
        }
    }

    fn check_groups(&mut self) -> Result<(), String> {
        let groups = self.coord.groups.borrow();
        let mut seen = HashMap::new();
        for (id, g) in groups.iter() {
            g.check_invariants(&self.cfg)?;
            if g.dirty {
                return Err(format!("group {id}: a settled change was never written"));
            }
            if let Some(before) = self.model.generation.get(id) {
                if g.generation < *before {
                    return Err(format!(
                        "group {id}: generation went back from {before} to {}",
                        g.generation
                    ));
                }
            }
            if matches!(g.state, GroupState::Stable | GroupState::Empty) {
                self.model.settled.insert(id.clone(), g.generation);
                self.model
                    .settled_ever
                    .entry(id.clone())
                    .or_default()
                    .insert(g.generation);
            }
            if g.state == GroupState::Stable {
                // The simulated leader gives every member a non-empty one.
                if let Some(m) = g.members.values().find(|m| m.assignment.is_empty()) {
                    return Err(format!(
                        "group {id}: Stable, member {} has no assignment",
                        m.id
                    ));
                }
            }
            self.report.max_generation = self.report.max_generation.max(g.generation);
            seen.insert(id.clone(), g.generation);
        }
        // A removed group (DeleteGroups, expiry) comes back as a new one.
        self.model.settled.retain(|id, _| seen.contains_key(id));
        self.model.generation = seen;
        // Each acknowledged commit is there, unless retention may have
        // taken it since.
        let now = self.clock.now_ms();
        let mut expired = Vec::new();
        for ((g, t, p), (offset, at)) in &self.model.acked {
            let got = groups
                .get(g)
                .and_then(|gr| gr.offsets.get(&(t.clone(), *p)))
                .map(|c| c.offset);
            let maybe = self.model.maybe.get(&(g.clone(), t.clone(), *p));
            match got {
                Some(o) if o == *offset => {}
                Some(o) if maybe.is_some_and(|m| m.contains(&o)) => {}
                None if now >= at + self.cfg.offsets_retention_ms => {
                    expired.push((g.clone(), t.clone(), *p))
                }
                other => {
                    return Err(format!(
                    "group {g} {t}-{p}: acknowledged commit {offset} at {}, fetch gives {other:?}",
                    at - START_MS
                ))
                }
            }
        }
        for k in expired {
            self.model.acked.remove(&k);
        }
        Ok(())
    }

    /// Run the timers at `now`, checking who they remove and why.
    async fn tick(&mut self) -> Result<(), String> {
        let now = self.clock.now_ms();
        // Per group: its phase deadline, and per member whether its
        // session is due now.
        type Due = (String, Option<i64>, Vec<(String, bool)>);
        let before: Vec<Due> = self
            .coord
            .groups
            .borrow()
            .values()
            .map(|g| {
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        let idle = m.join_waiter.is_none() && m.sync_waiter.is_none();
                        let due = m.last_heartbeat + i64::from(m.session_timeout_ms) <= now;
                        (m.id.clone(), idle && due)
                    })
                    .collect();
                (g.id.clone(), g.deadline, members)
            })
            .collect();
        self.coord.tick().await;
        self.settle().await;
        let groups = self.coord.groups.borrow();
        for (id, deadline, members) in before {
            let g = groups.get(&id);
            let phase_over = deadline.is_some_and(|d| d <= now);
            for (member, session_due) in members {
                let kept = g.is_some_and(|g| g.members.contains_key(&member));
                if !kept && !session_due && !phase_over {
                    return Err(format!(
                        "group {id}: timers removed {member} before any deadline"
                    ));
                }
                if kept && session_due {
                    return Err(format!(
                        "group {id}: {member}'s session is due but it stays"
                    ));
                }
                if !kept && session_due {
                    self.report.expired += 1;
                }
            }
        }
        drop(groups);
        // A deadline left in the past makes `run_timers` tick again at
        // once (seeds 2 and 104 found members answered out of a SyncGroup
        // wait with a session already due: Kafka restarts it then).
        if self.coord.next_deadline() <= now {
            let groups = self.coord.groups.borrow();
            let stale: Vec<String> = groups
                .values()
                .filter(|g| g.next_deadline().is_some_and(|d| d <= now))
                .map(|g| format!("{} ({:?}, deadline {:?})", g.id, g.state, g.deadline))
                .collect();
            return Err(format!("timers left a deadline in the past: {stale:?}"));
        }
        Ok(())
    }

    /// Move the clock on, running the timers at each deadline passed.
    async fn advance(&mut self) -> Result<(), String> {
        let now = self.clock.now_ms();
        let next = self.coord.next_deadline();
        let target = match self.rng.below(4) {
            0 => next,
            1 => next - 1,
            _ => now + self.rng.range(0, 3_000),
        }
        .max(now);
        self.note(format!("advance {}", target - now));
        loop {
            let next = self.coord.next_deadline();
            let at = self.clock.now_ms();
            if next > target {
                break;
            }
            if next > at {
                self.clock
                    .advance(Duration::from_millis((next - at) as u64));
            }
            self.tick().await?;
            self.check_groups()?;
        }
        let at = self.clock.now_ms();
        self.clock
            .advance(Duration::from_millis((target - at) as u64));
        Ok(())
    }

    /// The coordinator's process dies and a new one loads the group log.
    async fn crash(&mut self) -> Result<(), String> {
        self.report.crashes += 1;
        self.note("crash".into());
        let before = snapshot(&self.coord);
        for c in &mut self.clients {
            // Answers that had not arrived never will.
            c.join = None;
            c.sync = None;
        }
        self.settle().await;
        // A write failed in this incarnation: what the log holds may be
        // behind what the coordinator showed (see the checks below).
        let faulted = faults(&self.disk) != self.faults_at_restore;
        if self.rng.chance(500) {
            // Power loss: every append has been answered (settled), so
            // only writes whose sync failed are unsynced; the disk decides
            // which of them survive, whole or torn.
            self.note("power loss".into());
            self.report.power_losses += 1;
            self.disk.borrow_mut().crash();
            let log = self.coord.log();
            if let Some(log) = &log {
                log.abandon();
            }
            let mut waited = 0;
            while log.as_ref().is_some_and(|l| !l.flusher_stopped())
                || self.disk.borrow().in_flight() > 0
            {
                sim_disk::step(&self.disk).await;
                waited += 1;
                if waited > 100_000 {
                    return Err("the crashed group log's flusher never stopped".into());
                }
            }
            drop(log);
            let mut d = self.disk.borrow_mut();
            d.power_loss_image()
                .map_err(|e| format!("power loss image: {e}"))?;
            d.revive();
        } else {
            self.coord.close().await;
        }
        // The restore itself sees no faults (a failed load stops a broker
        // with a message; that is tested elsewhere).
        self.disk.borrow_mut().set_rates(FaultRates::default());
        let coord = Rc::new(Coordinator::new(
            self.cfg,
            LogClock::Manual(self.clock.clone()),
        ));
        coord
            .open(&self.dir, 0, self.log_config.clone())
            .await
            .map_err(|e| format!("restore: {e:#}"))?;
        self.disk.borrow_mut().set_rates(self.rates);
        self.faults_at_restore = faults(&self.disk);
        self.coord = coord;
        let after = snapshot(&self.coord);
        if faulted {
            self.report.faulted_restores += 1;
            return self.restored_after_faults(&before, &after);
        }
        for (id, b) in &before {
            let a = after.get(id);
            if a.map(|a| &a.offsets) != Some(&b.offsets) && !(b.offsets.is_empty() && a.is_none()) {
                return Err(format!(
                    "group {id}: offsets before the crash {:?}, after {:?}",
                    b.offsets,
                    a.map(|a| &a.offsets)
                ));
            }
            // A group never settled is restored as a new one (from its
            // offsets): generation 0.
            let settled = Some(self.model.settled.get(id).copied().unwrap_or(0));
            match (b.state, a) {
                (GroupState::Stable, Some(a))
                    if a.state == GroupState::Stable
                        && (a.generation, &a.leader, &a.members)
                            == (b.generation, &b.leader, &b.members) => {}
                (GroupState::Stable, _) => {
                    return Err(format!(
                        "group {id}: Stable before the crash as {b:?}, restored as {a:?}"
                    ))
                }
                (_, Some(a)) if Some(a.generation) != settled => {
                    return Err(format!(
                        "group {id}: restored at generation {} ({}), last settled at {settled:?}",
                        a.generation,
                        a.state.name()
                    ))
                }
                _ => {}
            }
        }
        if let Some(id) = after.keys().find(|id| !before.contains_key(*id)) {
            return Err(format!("group {id} appeared in the restore"));
        }
        self.new_incarnation(&after);
        Ok(())
    }

    /// The restore after a failed write: the log may lack the last group
    /// records and tombstones, and hold commits answered with an error.
    /// Still: every restored offset is one a commit was sent with (the
    /// acknowledged ones are checked by `check_groups`), and every restored
    /// group is at a generation it was seen settled at.
    fn restored_after_faults(
        &mut self,
        _before: &HashMap<String, Snap>,
        after: &HashMap<String, Snap>,
    ) -> Result<(), String> {
        for (id, a) in after {
            for ((t, p), c) in &a.offsets {
                // An expiry whose tombstones were not written brings back
                // an offset the coordinator had dropped: fine, as in Kafka.
                if !self
                    .model
                    .sent
                    .contains(&(id.clone(), t.clone(), *p, c.offset))
                {
                    return Err(format!(
                        "group {id} {t}-{p}: restored offset {} was never committed",
                        c.offset
                    ));
                }
            }
            let ever = self.model.settled_ever.get(id);
            if a.generation != 0 && !ever.is_some_and(|e| e.contains(&a.generation)) {
                return Err(format!(
                    "group {id}: restored at generation {} ({}), never seen settled there \
                     (settled at {ever:?})",
                    a.generation,
                    a.state.name()
                ));
            }
        }
        self.new_incarnation(after);
        Ok(())
    }

    /// A new incarnation: generations restart from what was restored.
    fn new_incarnation(&mut self, after: &HashMap<String, Snap>) {
        self.model.generation = after
            .iter()
            .map(|(id, g)| (id.clone(), g.generation))
            .collect();
        self.model.assigned.clear();
        for (id, g) in after {
            let map = g
                .members
                .iter()
                .map(|(m, a)| (m.clone(), a.clone()))
                .collect();
            self.model.assigned.insert((id.clone(), g.generation), map);
        }
    }
}

const START_MS: i64 = 1_700_000_000_000;

/// A group as a crash must keep it.
#[derive(Debug, PartialEq)]
struct Snap {
    state: GroupState,
    generation: i32,
    leader: Option<String>,
    /// member id → assignment
    members: BTreeMap<String, Bytes>,
    offsets: BTreeMap<(String, i32), CommittedOffset>,
}

fn snapshot(coord: &Coordinator) -> HashMap<String, Snap> {
    coord
        .groups
        .borrow()
        .iter()
        .map(|(id, g)| {
            let snap = Snap {
                state: g.state,
                generation: g.generation,
                leader: g.leader.clone(),
                members: g
                    .members
                    .values()
                    .map(|m| (m.id.clone(), m.assignment.clone()))
                    .collect(),
                offsets: g.offsets.clone(),
            };
            (id.clone(), snap)
        })
        .collect()
}

async fn run_seed(seed: u64, dir: &Path, verbose: bool) -> Result<Report, String> {
    let mut rng = Rng::new(seed);
    let cfg = GroupConfig {
        initial_rebalance_delay_ms: if rng.chance(500) {
            0
        } else {
            rng.range(1, 3_000)
        },
        offsets_retention_ms: rng.range(20_000, 300_000),
        max_size: if rng.chance(300) {
            rng.range(1, 5) as u32
        } else {
            1_000
        },
    };
    let log_config = LogConfig {
        cleanup_compact: true,
        cleanup_delete: false,
        preallocate: false,
        segment_bytes: 16 << 10,
        ..Default::default()
    };
    // A third of the seeds run on a faultless disk (so the strict restore
    // checks see many crashes); the rest see write and sync errors and
    // torn writes.
    let rates = if rng.chance(333) {
        FaultRates::default()
    } else {
        FaultRates {
            write_error: rng.below(30) as u32,
            torn_write: rng.below(15) as u32,
            sync_error: rng.below(30) as u32,
        }
    };
    let disk = SimDisk::new(seed, FaultRates::default());
    let _installed = sim_disk::install(disk.clone());
    let clock = Rc::new(ManualClock::new(START_MS));
    let coord = Rc::new(Coordinator::new(cfg, LogClock::Manual(clock.clone())));
    coord
        .open(dir, 0, log_config.clone())
        .await
        .map_err(|e| format!("open: {e:#}"))?;
    let clients = (0..rng.range(2, 9))
        .map(|i| Client {
            name: format!("c{i}"),
            group: GROUPS[rng.below(GROUPS.len() as u64) as usize].to_string(),
            instance: rng.chance(300).then(|| format!("i{i}")),
            member_id: String::new(),
            generation: -1,
            session_ms: rng.range(500, 10_000) as i32,
            rebalance_ms: rng.range(500, 20_000) as i32,
            join: None,
            sync: None,
            joined: None,
            silent: false,
        })
        .collect();
    let steps = rng.range(150, 400);
    let mut sim = Sim {
        rng,
        clock,
        coord,
        cfg,
        log_config,
        dir: dir.to_path_buf(),
        clients,
        model: Model::default(),
        report: Report::default(),
        names: HashMap::new(),
        verbose,
        next_offset: 0,
        disk: disk.clone(),
        rates,
        faults_at_restore: 0,
    };
    disk.borrow_mut().set_rates(rates);
    sim.note(format!("config {cfg:?}"));
    for _ in 0..steps {
        sim.report.steps += 1;
        match sim.rng.below(100) {
            0..=19 => sim.advance().await?,
            20..=21 => sim.crash().await?,
            22..=23 => sim.commit(SIMPLE, None, false).await?,
            24 => {
                let g = GROUPS[sim.rng.below(2) as usize];
                let code = sim.coord.delete(g).await;
                sim.note(format!("delete {g}: {code}"));
                // Deleted, or its tombstones may be in the log (a write
                // that failed): its commits are no longer promised.
                // GROUP_NOT_EMPTY and GROUP_ID_NOT_FOUND wrote nothing.
                if ![68, 69].contains(&code) {
                    sim.model.acked.retain(|(group, _, _), _| group != g);
                }
            }
            _ => {
                let c = sim.rng.below(sim.clients.len() as u64) as usize;
                sim.client_step(c).await?;
            }
        }
        sim.settle().await;
        sim.collect()?;
        sim.check_groups()?;
    }
    sim.crash().await?;
    sim.coord.close().await;
    sim.report.disk_faults = faults(&sim.disk);
    Ok(sim.report)
}

/// Run one seed on its own executor and directory.
fn sim_seed(seed: u64, verbose: bool) -> Result<Report, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().to_path_buf();
    shard::runtime::run_local(move || async move {
        match shard::rt::timeout(Duration::from_secs(60), run_seed(seed, &path, verbose)).await {
            Ok(outcome) => outcome,
            Err(_) => Err("hung for 60 s".into()),
        }
    })
    .map_err(|e| format!("seed {seed}: {e}"))
}

fn sim_range(seeds: std::ops::Range<u64>, verbose: bool) -> Report {
    sim_disk::run_seeds(
        seeds,
        "group coordinator simulation",
        "SIM_SEED={seed} SIM_VERBOSE=1 cargo test --release -p shardline-broker \
         groups::sim_tests::sim_many -- --ignored --nocapture",
        |seed| sim_seed(seed, verbose),
        |total: &mut Report, r| {
            total.steps += r.steps;
            total.joins += r.joins;
            total.syncs += r.syncs;
            total.commits += r.commits;
            total.heartbeats += r.heartbeats;
            total.expired += r.expired;
            total.crashes += r.crashes;
            total.power_losses += r.power_losses;
            total.disk_faults += r.disk_faults;
            total.faulted_restores += r.faulted_restores;
            total.max_generation = total.max_generation.max(r.max_generation);
        },
    )
}

#[test]
fn sim_ci_a() {
    sim_range(0..CI_SEEDS / 2, false);
}

#[test]
fn sim_ci_b() {
    let total = sim_range(CI_SEEDS / 2..CI_SEEDS, false);
    // The workload does what it claims: rebalances, commits, expiries, crashes.
    assert!(total.syncs > 100 && total.commits > 100, "{total:?}");
    assert!(total.expired > 10 && total.crashes > 50, "{total:?}");
    assert!(total.max_generation > 5, "{total:?}");
    assert!(
        total.power_losses > 20 && total.faulted_restores > 10,
        "{total:?}"
    );
}

#[test]
fn a_seed_replays_the_same_run() {
    let a = sim_seed(11, false).unwrap();
    let b = sim_seed(11, false).unwrap();
    assert_eq!(a, b);
    assert_ne!(a.trace, sim_seed(12, false).unwrap().trace);
}

/// Many seeds, or one (`SIM_SEED`): see the module comment.
#[test]
#[ignore]
fn sim_many() {
    let verbose = sim_disk::env_u64("SIM_VERBOSE").is_some_and(|v| v > 0);
    let started = std::time::Instant::now();
    let range = sim_disk::seeds_from_env();
    let n = range.end - range.start;
    let total = sim_range(range, verbose);
    println!("{n} seeds passed in {:?}: {total:?}", started.elapsed());
}
