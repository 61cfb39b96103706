//! The quorum thread: runs a [`QuorumCore`] on an OS thread of its own.
//!
//! Not a shard: the metadata log's writes and fsyncs block, and the
//! consensus traffic is small, so it gets a plain thread that sleeps on its
//! bounded inbox until an input or the next raft tick. Its inputs: shards'
//! proposals (`try_send`, never blocking a shard), raft messages from the
//! controller listener's connections, delivery reports from the peer
//! senders, and controller requests (registrations, heartbeats,
//! DescribeQuorum). Shards read the state it publishes: one
//! `Arc<ClusterState>` swapped in after each applied change and before the
//! proposal that made it is answered, so a caller woken by its answer
//! already sees the change.

use std::collections::HashMap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use raft::prelude::Message;

use super::active::{Rpc, RpcAnswer, Sessions};
use super::core::{CoreConfig, ProposeError, QuorumCore, Resend, TICK_MS};
use super::transport::{self, Peers};
use crate::metadata::{ClusterState, Effect, MetadataCommand};

/// Inputs waiting for the thread; admin operations arrive one at a time
/// and peers send a batch per raft cycle, so this only fills if the thread
/// is stuck.
const INBOX: usize = 1024;
/// Proposals made while no leader is known wait this long for an election
/// (Kafka's brokers queue forwarded requests until a controller is known),
/// at most `MAX_WAITING` of them.
const LEADERLESS_WAIT: Duration = Duration::from_secs(5);
const MAX_WAITING: usize = 1024;

pub type Reply = oneshot::Sender<Result<Effect, ProposeError>>;

pub enum Input {
    Propose {
        cmd: MetadataCommand,
        reply: Reply,
    },
    /// Messages from a peer.
    Raft(Vec<Message>),
    /// A batch to raft id `to` was not delivered.
    Unreachable {
        to: u64,
        snapshot: bool,
        /// Proposals it forwarded to `to`.
        proposals: Vec<raft::prelude::Entry>,
    },
    /// A snapshot to raft id `to` was written to its connection.
    SnapshotSent {
        to: u64,
        delivered: bool,
    },
    Rpc {
        rpc: Rpc,
        reply: SyncSender<RpcAnswer>,
    },
    /// Hand the leadership to another voter (shutting down).
    Resign,
    Stop,
}

/// How this node reaches the others.
pub struct NetworkConfig {
    /// The controller listener, bound (raft messages and controller APIs).
    pub listener: std::net::TcpListener,
    /// Where each voter's controller listener is, by node id.
    pub voters: HashMap<i32, String>,
    /// The controller listener's name: brokers register their controller
    /// endpoint under it (learners are reached there).
    pub listener_name: String,
}

/// What every node knows of the quorum, published with the state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuorumView {
    /// The leader's Kafka node id, if one is known.
    pub leader: Option<i32>,
    pub term: u64,
    pub is_leader: bool,
    pub applied: u64,
    pub commit: u64,
    /// On the leader: entries the furthest-behind peer lacks.
    pub max_follower_lag: u64,
    /// This node's proposals sent again to a new leader, and committed
    /// copies skipped as applied already, since it started.
    pub proposals_resent: u64,
    pub proposal_copies_skipped: u64,
}

/// The handle shards, the broker lifecycle and the controller listener use.
pub struct Quorum {
    inbox: SyncSender<Input>,
    published: Arc<RwLock<Arc<ClusterState>>>,
    view: Arc<RwLock<QuorumView>>,
    changes: Arc<Mutex<Vec<futures::channel::mpsc::Sender<()>>>>,
    watchers: Watchers,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Called with every published state, on the quorum's thread: for flags
/// derived from the state that hot paths read without taking its lock.
pub type Watcher = Box<dyn Fn(&ClusterState) + Send + Sync>;
type Watchers = Arc<Mutex<Vec<Watcher>>>;

/// What `start` needs besides the log's directory and the core's config.
pub struct StartOptions {
    pub network: Option<NetworkConfig>,
    /// Brokers silent this long are fenced.
    pub session_timeout: Duration,
    pub new_cluster_id: fn() -> String,
    /// Wait this long for committed metadata (a cluster id) before
    /// returning; `None`: return at once (a broker that is not a voter gets
    /// the log only once it has registered).
    pub ready_within: Option<Duration>,
}

impl Quorum {
    /// Open the log in `dir` and start the thread (and the network).
    pub fn start(
        dir: &std::path::Path,
        cfg: CoreConfig,
        opts: StartOptions,
    ) -> anyhow::Result<Quorum> {
        let core = QuorumCore::<Option<Reply>>::open(dir, cfg.clone())?;
        let published = Arc::new(RwLock::new(Arc::new(core.state().clone())));
        let view = Arc::new(RwLock::new(QuorumView::default()));
        let changes = Arc::new(Mutex::new(Vec::new()));
        let watchers: Watchers = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::sync_channel(INBOX);
        let (ready_tx, ready_rx) = mpsc::channel();
        let reopen = Reopen {
            dir: dir.to_path_buf(),
            // Reopening after a failed write starts from the log, not the
            // file it was migrated from.
            cfg: CoreConfig {
                legacy: None,
                ..cfg
            },
        };
        let mut addresses = HashMap::new();
        let mut controller_listener = String::new();
        if let Some(net) = opts.network {
            let state = published.clone();
            let handler = super::controller_api::handler(
                tx.clone(),
                Arc::new(move || state.read().expect("metadata lock").cluster_id.clone()),
                net.voters.clone(),
                net.listener_name.clone(),
            );
            addresses = net
                .voters
                .into_iter()
                .map(|(id, addr)| (super::raft_id(id), addr))
                .collect();
            controller_listener = net.listener_name;
            transport::serve(net.listener, tx.clone(), handler);
        }
        let mut thread = Thread {
            core,
            reopen,
            inbox: rx,
            published: published.clone(),
            view: view.clone(),
            changes: changes.clone(),
            watchers: watchers.clone(),
            peers: Peers::new(tx.clone()),
            addresses,
            controller_listener,
            sessions: Sessions::new(opts.session_timeout),
            new_cluster_id: opts.new_cluster_id,
            ready: Some(ready_tx),
            leaderless: Vec::new(),
        };
        let handle = std::thread::Builder::new()
            .name("quorum".into())
            .spawn(move || thread.run())?;
        if let Some(within) = opts.ready_within {
            if ready_rx.recv_timeout(within).is_err() {
                anyhow::bail!(
                    "metadata quorum: no committed metadata within {within:?} (no leader elected?)"
                );
            }
        }
        Ok(Quorum {
            inbox: tx,
            published,
            view,
            changes,
            watchers,
            thread: Some(handle),
        })
    }

    /// The state as of the last applied change.
    pub fn state(&self) -> Arc<ClusterState> {
        self.published.read().expect("metadata lock").clone()
    }

    pub fn view(&self) -> QuorumView {
        self.view.read().expect("quorum view lock").clone()
    }

    /// Call `watcher` with the current state now and with every state
    /// published from now on, in order.
    pub fn watch(&self, watcher: Watcher) {
        // Under the lock: a state published meanwhile reaches the watcher
        // after this one, never before.
        let mut watchers = self.watchers.lock().expect("watchers lock");
        watcher(&self.state());
        watchers.push(watcher);
    }

    /// A receiver woken after each published change (changes coalesce).
    pub fn subscribe(&self) -> futures::channel::mpsc::Receiver<()> {
        let (tx, rx) = futures::channel::mpsc::channel(1);
        self.changes.lock().expect("subscribers lock").push(tx);
        rx
    }

    /// Propose `cmd` and wait (asynchronously) until it is applied here.
    pub async fn propose(&self, cmd: MetadataCommand) -> Result<Effect, ProposeError> {
        let (reply, answer) = oneshot::channel();
        match self.inbox.try_send(Input::Propose { cmd, reply }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                return Err(ProposeError::Invalid(
                    "the metadata quorum is not keeping up (its inbox is full)".into(),
                ))
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(ProposeError::Invalid(
                    "the metadata quorum has stopped".into(),
                ))
            }
        }
        answer.await.unwrap_or_else(|_| {
            Err(ProposeError::Invalid(
                "the metadata quorum has stopped".into(),
            ))
        })
    }

    /// A controller request, from a plain thread (blocks up to `within`).
    pub fn rpc(&self, rpc: Rpc, within: Duration) -> Option<RpcAnswer> {
        rpc_via(&self.inbox, rpc, within)
    }

    /// If this node leads the quorum, hand the leadership to the most
    /// caught-up voter and wait (up to `within`) until another node leads:
    /// a controller that stops on purpose leaves no election timeout
    /// behind. Returns whether another node leads now.
    pub fn resign(&self, within: Duration) -> bool {
        if !self.view().is_leader {
            return true;
        }
        if self.inbox.send(Input::Resign).is_err() {
            return false;
        }
        let deadline = std::time::Instant::now() + within;
        while std::time::Instant::now() < deadline {
            let v = self.view();
            if !v.is_leader && v.leader.is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }
}

/// Send `rpc` through `inbox` and wait up to `within` for the answer.
pub fn rpc_via(inbox: &SyncSender<Input>, rpc: Rpc, within: Duration) -> Option<RpcAnswer> {
    let (reply, answer) = mpsc::sync_channel(1);
    inbox.send(Input::Rpc { rpc, reply }).ok()?;
    answer.recv_timeout(within).ok()
}

impl Drop for Quorum {
    fn drop(&mut self) {
        let _ = self.inbox.send(Input::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// How to open the core again from its directory.
struct Reopen {
    dir: std::path::PathBuf,
    cfg: CoreConfig,
}

struct Thread {
    core: QuorumCore<Option<Reply>>,
    reopen: Reopen,
    inbox: Receiver<Input>,
    published: Arc<RwLock<Arc<ClusterState>>>,
    view: Arc<RwLock<QuorumView>>,
    changes: Arc<Mutex<Vec<futures::channel::mpsc::Sender<()>>>>,
    watchers: Watchers,
    peers: Peers,
    /// Voters' controller listeners by raft id (learners' come from their
    /// registrations).
    addresses: HashMap<u64, String>,
    controller_listener: String,
    sessions: Sessions,
    new_cluster_id: fn() -> String,
    ready: Option<mpsc::Sender<()>>,
    /// Proposals waiting for a leader to be elected, with their deadline.
    leaderless: Vec<(MetadataCommand, Reply, Instant)>,
}

impl Thread {
    fn run(&mut self) {
        let tick = Duration::from_millis(TICK_MS);
        let mut next_tick = Instant::now() + tick;
        let mut init_proposed = false;
        let mut was_leader = false;
        let mut last_failure: Option<Instant> = None;
        let mut failure_pause = Duration::ZERO;
        loop {
            // The first leader of a new log names the cluster (Kafka formats
            // storage with a cluster id; here the log's first command does).
            if self.core.is_leader() && self.core.state().cluster_id.is_empty() && !init_proposed {
                let cmd = MetadataCommand::SetClusterId {
                    cluster_id: (self.new_cluster_id)(),
                };
                init_proposed = self.core.propose(&cmd, None, Resend::Never).is_ok();
            }
            let out = match self.core.process() {
                Ok(out) => out,
                Err(e) => {
                    // A write or sync of the log failed (a full disk, an I/O
                    // error). A half-handled ready cannot be continued, so the
                    // node starts again from what its files hold, as after a
                    // crash: everything committed was synced before it was
                    // applied, so nothing published is lost.
                    let why = format!("the metadata log could not be written: {e:#}");
                    tracing::error!("{why}; reopening it from its files");
                    for reply in self.core.take_pending().into_iter().flatten() {
                        let _ = reply.send(Err(ProposeError::Invalid(why.clone())));
                    }
                    // Those waiting for a leader would wait for one that
                    // cannot write either.
                    for (_, reply, _) in self.leaderless.drain(..) {
                        let _ = reply.send(Err(ProposeError::Invalid(why.clone())));
                    }
                    // A failure right after the last one (the disk is
                    // still full: a new leader's first entry fails too)
                    // waits before the next try, answering what arrives
                    // meanwhile, instead of spinning without reading them.
                    failure_pause = match last_failure {
                        Some(at) if at.elapsed() < Duration::from_secs(5) => {
                            (failure_pause * 2).clamp(Duration::from_millis(100), MAX_REOPEN_PAUSE)
                        }
                        _ => Duration::ZERO,
                    };
                    last_failure = Some(Instant::now());
                    // The reopened core goes on with this process's proposal
                    // ids: restarting them would make its next proposals
                    // look like copies of ones the log already applied,
                    // skipped and never answered.
                    self.reopen.cfg.first_proposal = self.core.next_proposal_id();
                    match reopen_core(&self.reopen, &self.inbox, &why, failure_pause) {
                        Some((c, woken_by)) => {
                            self.core = c;
                            // The proposal that cut the pause short goes to
                            // the new core (once it has a leader).
                            if let Some((cmd, reply)) = woken_by {
                                self.leaderless.push((
                                    cmd,
                                    reply,
                                    Instant::now() + LEADERLESS_WAIT,
                                ));
                            }
                        }
                        None => return,
                    }
                    init_proposed = false;
                    continue;
                }
            };
            if self.core.leader().is_some() && !self.leaderless.is_empty() {
                for (cmd, reply, _) in std::mem::take(&mut self.leaderless) {
                    self.propose(cmd, reply);
                }
                continue; // process what was just proposed
            }
            let leader = self.core.is_leader();
            let term = self.core.term();
            if leader && (!was_leader || !self.sessions.started_in(term)) {
                self.sessions
                    .on_elected(self.core.state(), Instant::now(), term);
            }
            was_leader = leader;
            if !leader {
                init_proposed = false;
            }
            self.publish();
            for (reply, result) in out.done {
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            self.send(out.messages);
            if !self.core.state().cluster_id.is_empty() {
                if let Some(r) = self.ready.take() {
                    let _ = r.send(());
                }
            }
            if leader && self.core.state().cluster_id.is_empty() && !init_proposed {
                continue; // just elected: name the cluster now, not a tick later
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            if !self.take_inputs(wait) {
                return;
            }
            if Instant::now() >= next_tick {
                for reply in self.core.tick().into_iter().flatten() {
                    let _ = reply.send(Err(ProposeError::TimedOut));
                }
                let now = Instant::now();
                let (expired, waiting) = std::mem::take(&mut self.leaderless)
                    .into_iter()
                    .partition(|(_, _, deadline)| *deadline <= now);
                self.leaderless = waiting;
                for (_, reply, _) in expired {
                    let _ = reply.send(Err(ProposeError::NotLeader { leader: None }));
                }
                if self.core.is_leader() {
                    self.sessions.fence_expired(&mut self.core, Instant::now());
                }
                next_tick += tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + tick; // the thread was held up
                }
            }
        }
    }

    /// Propose now, or wait for an election when no leader is known.
    fn propose(&mut self, cmd: MetadataCommand, reply: Reply) {
        if self.core.leader().is_none() && self.leaderless.len() < MAX_WAITING {
            self.leaderless
                .push((cmd, reply, Instant::now() + LEADERLESS_WAIT));
            return;
        }
        if let Err((Some(reply), e)) = self.core.propose(&cmd, Some(reply), Resend::ToNewLeader) {
            let _ = reply.send(Err(e));
        }
    }

    /// Swap in the new state and view, and wake the subscribers.
    fn publish(&mut self) {
        let view = QuorumView {
            leader: self.core.leader().map(|l| l as i32 - 1),
            term: self.core.term(),
            is_leader: self.core.is_leader(),
            applied: self.core.applied(),
            commit: self.core.commit_index(),
            max_follower_lag: if self.core.is_leader() {
                let last = self.core.last_index();
                self.core
                    .progress()
                    .iter()
                    .map(|(_, matched)| last.saturating_sub(*matched))
                    .max()
                    .unwrap_or(0)
            } else {
                0
            },
            proposals_resent: self.core.resend_counts().0,
            proposal_copies_skipped: self.core.resend_counts().1,
        };
        *self.view.write().expect("quorum view lock") = view;
        if self.core.take_changed() {
            let state = Arc::new(self.core.state().clone());
            *self.published.write().expect("metadata lock") = state.clone();
            for w in self.watchers.lock().expect("watchers lock").iter() {
                w(&state);
            }
            let mut subscribers = self.changes.lock().expect("subscribers lock");
            subscribers.retain_mut(|s| match s.try_send(()) {
                Ok(()) => true,
                Err(e) => e.is_full(), // a wake is pending already
            });
        }
    }

    /// Hand each peer its messages.
    fn send(&mut self, messages: Vec<Message>) {
        if messages.is_empty() {
            return;
        }
        let mut by_peer: HashMap<u64, Vec<Message>> = HashMap::new();
        for m in messages {
            by_peer.entry(m.to).or_default().push(m);
        }
        for (to, batch) in by_peer {
            match self.address_of(to) {
                Some(addr) => self.peers.send(to, &addr, &batch),
                None => {
                    tracing::debug!("no address for quorum peer {}; dropping", to as i64 - 1);
                    self.core.report_unreachable(to);
                }
            }
        }
    }

    /// A voter's address from the configuration, a learner's from its
    /// registration (its controller listener).
    fn address_of(&self, raft_id: u64) -> Option<String> {
        if let Some(a) = self.addresses.get(&raft_id) {
            return Some(a.clone());
        }
        let b = self.core.state().brokers.get(&(raft_id as i32 - 1))?;
        let e = b.endpoint(&self.controller_listener)?;
        Some(format!("{}:{}", e.host, e.port))
    }

    /// Wait up to `wait` for an input, then take what else is waiting (so
    /// one log write and one sync cover a burst). False when stopping.
    fn take_inputs(&mut self, wait: Duration) -> bool {
        let mut next = self.inbox.recv_timeout(wait);
        for _ in 0..64 {
            match next {
                Ok(Input::Propose { cmd, reply }) => self.propose(cmd, reply),
                Ok(Input::Raft(messages)) => {
                    let now = Instant::now();
                    for m in messages {
                        self.sessions.peer_heard.insert(m.from, now);
                        self.core.step(m);
                    }
                }
                Ok(Input::Unreachable {
                    to,
                    snapshot,
                    proposals,
                }) => {
                    self.core.report_unreachable(to);
                    if !proposals.is_empty() {
                        self.core.undelivered(to, proposals);
                    }
                    if snapshot {
                        self.core.report_snapshot(to, false);
                    }
                }
                Ok(Input::SnapshotSent { to, delivered }) => {
                    self.core.report_snapshot(to, delivered);
                }
                Ok(Input::Rpc { rpc, reply }) => {
                    let answer = self.sessions.handle(&mut self.core, rpc, Instant::now());
                    let _ = reply.try_send(answer);
                }
                Ok(Input::Resign) => match self.core.transfer_leadership() {
                    Some(to) => {
                        tracing::info!("handing the quorum's leadership to node {}", to as i64 - 1)
                    }
                    None => tracing::info!("no other voter to hand the quorum's leadership to"),
                },
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return false,
                Err(RecvTimeoutError::Timeout) => break,
            }
            next = self.inbox.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            });
        }
        true
    }
}

/// Open the core again, refusing proposals with `why` meanwhile and
/// retrying with a growing pause; `None` when the handle was dropped.
fn reopen_core(
    reopen: &Reopen,
    inbox: &Receiver<Input>,
    why: &str,
    first_pause: Duration,
) -> Option<(QuorumCore<Option<Reply>>, Option<Waiting>)> {
    // A proposal ends the first pause: it gets a real try (the disk may
    // have room again), and nothing spins while nobody asks.
    let woken_by = match refuse_for(inbox, why, first_pause, true) {
        Waited::Stop => return None,
        Waited::Elapsed => None,
        Waited::Proposal(cmd, reply) => Some((cmd, reply)),
    };
    let mut pause = Duration::from_millis(100);
    loop {
        match QuorumCore::open(&reopen.dir, reopen.cfg.clone()) {
            Ok(c) => {
                tracing::info!("metadata log reopened at index {}", c.applied());
                return Some((c, woken_by));
            }
            Err(e) => tracing::error!(
                "reopening the metadata log in {} failed, trying again in {pause:?}: {e:#}",
                reopen.dir.display()
            ),
        }
        if let Waited::Stop = refuse_for(inbox, why, pause, false) {
            return None;
        }
        pause = (pause * 2).min(MAX_REOPEN_PAUSE);
    }
}

/// Longest wait between tries to reopen the log after a failure.
const MAX_REOPEN_PAUSE: Duration = Duration::from_secs(5);

/// A proposal held back for the next core.
type Waiting = (MetadataCommand, Reply);

enum Waited {
    /// The handle was dropped.
    Stop,
    Elapsed,
    /// A proposal arrived (only when asked to stop for one).
    Proposal(MetadataCommand, Reply),
}

/// For `pause`, answer requests with `why`, and proposals too unless
/// `take_proposal`: then the first one ends the wait.
fn refuse_for(inbox: &Receiver<Input>, why: &str, pause: Duration, take_proposal: bool) -> Waited {
    let until = Instant::now() + pause;
    while let Some(wait) = until.checked_duration_since(Instant::now()) {
        match inbox.recv_timeout(wait) {
            Ok(Input::Propose { cmd, reply }) if take_proposal => {
                return Waited::Proposal(cmd, reply);
            }
            Ok(Input::Propose { reply, .. }) => {
                let _ = reply.send(Err(ProposeError::Invalid(why.to_string())));
            }
            Ok(Input::Rpc { reply, .. }) => {
                let _ = reply.try_send(RpcAnswer::Refused(why.to_string()));
            }
            Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return Waited::Stop,
            Ok(_) | Err(RecvTimeoutError::Timeout) => {}
        }
    }
    Waited::Elapsed
}
