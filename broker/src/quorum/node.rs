//! The quorum thread: runs a [`QuorumCore`] on an OS thread of its own.
//!
//! Not a shard: the metadata log's writes and fsyncs block, and the
//! consensus traffic is small, so it gets a plain thread that sleeps on its
//! bounded inbox until an input or the next raft tick. Shards reach it only
//! through that inbox (`try_send`, never blocking a shard) and read the
//! state it publishes: one `Arc<ClusterState>` swapped in after each
//! applied change and before the proposal that made it is answered, so a
//! caller woken by its answer already sees the change.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use futures::channel::oneshot;

use super::core::{CoreConfig, ProposeError, QuorumCore, TICK_MS};
use crate::metadata::{ClusterState, Effect, MetadataCommand};

/// Inputs waiting for the thread; admin operations arrive one at a time,
/// so this only fills if the thread is stuck.
const INBOX: usize = 1024;

type Reply = oneshot::Sender<Result<Effect, ProposeError>>;

pub enum Input {
    Propose { cmd: MetadataCommand, reply: Reply },
    Stop,
}

/// The handle shards and the controller use.
pub struct Quorum {
    inbox: SyncSender<Input>,
    published: Arc<RwLock<Arc<ClusterState>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Quorum {
    /// Open the log in `dir` and start the thread; returns once the state
    /// is initialized (a cluster id committed), or an error.
    pub fn start(
        dir: &std::path::Path,
        cfg: CoreConfig,
        new_cluster_id: fn() -> String,
        ready_within: Duration,
    ) -> anyhow::Result<Quorum> {
        let core = QuorumCore::<Option<Reply>>::open(dir, cfg.clone())?;
        let published = Arc::new(RwLock::new(Arc::new(core.state().clone())));
        let (tx, rx) = mpsc::sync_channel(INBOX);
        let (ready_tx, ready_rx) = mpsc::channel();
        let shared = published.clone();
        // Reopening after a failed write starts from the log, not the file
        // it was migrated from.
        let reopen = Reopen {
            dir: dir.to_path_buf(),
            cfg: CoreConfig {
                legacy: None,
                ..cfg
            },
        };
        let thread = std::thread::Builder::new()
            .name("quorum".into())
            .spawn(move || run(core, reopen, rx, shared, new_cluster_id, ready_tx))?;
        if ready_rx.recv_timeout(ready_within).is_err() {
            anyhow::bail!(
                "metadata quorum: no committed metadata within {ready_within:?} (no leader elected?)"
            );
        }
        Ok(Quorum {
            inbox: tx,
            published,
            thread: Some(thread),
        })
    }

    /// The state as of the last applied change.
    pub fn state(&self) -> Arc<ClusterState> {
        self.published.read().expect("metadata lock").clone()
    }

    /// Propose `cmd` and wait (asynchronously) until it is applied.
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

fn run(
    mut core: QuorumCore<Option<Reply>>,
    reopen: Reopen,
    inbox: Receiver<Input>,
    published: Arc<RwLock<Arc<ClusterState>>>,
    new_cluster_id: fn() -> String,
    ready: mpsc::Sender<()>,
) {
    let tick = Duration::from_millis(TICK_MS);
    let mut next_tick = Instant::now() + tick;
    let mut ready = Some(ready);
    let mut init_proposed = false;
    loop {
        // The first leader of a new log names the cluster (Kafka formats
        // storage with a cluster id; here the log's first command does).
        if core.is_leader() && core.state().cluster_id.is_empty() && !init_proposed {
            let cmd = MetadataCommand::SetClusterId {
                cluster_id: new_cluster_id(),
            };
            init_proposed = core.propose(&cmd, None).is_ok();
        }
        let out = match core.process() {
            Ok(out) => out,
            Err(e) => {
                // A write or sync of the log failed (a full disk, an I/O
                // error). A half-handled ready cannot be continued, so the
                // node starts again from what its files hold, as after a
                // crash: everything committed was synced before it was
                // applied, so nothing published is lost.
                let why = format!("the metadata log could not be written: {e:#}");
                tracing::error!("{why}; reopening it from its files");
                for reply in core.take_pending().into_iter().flatten() {
                    let _ = reply.send(Err(ProposeError::Invalid(why.clone())));
                }
                match reopen_core(&reopen, &inbox, &why) {
                    Some(c) => core = c,
                    None => return,
                }
                init_proposed = false;
                continue;
            }
        };
        if !core.is_leader() {
            init_proposed = false;
        }
        if core.take_changed() {
            *published.write().expect("metadata lock") = Arc::new(core.state().clone());
        }
        for (reply, result) in out.done {
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        // A one-voter quorum (all `start` accepts so far) has no peer to
        // send to; raft produces no messages for it.
        debug_assert!(out.messages.is_empty(), "a one-voter quorum sends nothing");
        if !core.state().cluster_id.is_empty() {
            if let Some(r) = ready.take() {
                let _ = r.send(());
            }
        }
        if core.is_leader() && core.state().cluster_id.is_empty() && !init_proposed {
            continue; // just elected: name the cluster now, not a tick later
        }
        let wait = next_tick.saturating_duration_since(Instant::now());
        let mut next = inbox.recv_timeout(wait);
        // Take what else is waiting too, so one log write and one sync
        // cover a burst of proposals.
        for _ in 0..64 {
            match next {
                Ok(Input::Propose { cmd, reply }) => {
                    if let Err((Some(reply), e)) = core.propose(&cmd, Some(reply)) {
                        let _ = reply.send(Err(e));
                    }
                }
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Err(RecvTimeoutError::Timeout) => break,
            }
            next = inbox.try_recv().map_err(|e| match e {
                mpsc::TryRecvError::Empty => RecvTimeoutError::Timeout,
                mpsc::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
            });
        }
        if Instant::now() >= next_tick {
            core.tick();
            next_tick += tick;
        }
    }
}

/// Open the core again, refusing proposals with `why` meanwhile and
/// retrying with a growing pause; `None` when the handle was dropped.
fn reopen_core(
    reopen: &Reopen,
    inbox: &Receiver<Input>,
    why: &str,
) -> Option<QuorumCore<Option<Reply>>> {
    let mut pause = Duration::from_millis(100);
    loop {
        match QuorumCore::open(&reopen.dir, reopen.cfg.clone()) {
            Ok(c) => {
                tracing::info!("metadata log reopened at index {}", c.applied());
                return Some(c);
            }
            Err(e) => tracing::error!(
                "reopening the metadata log in {} failed, trying again in {pause:?}: {e:#}",
                reopen.dir.display()
            ),
        }
        let until = Instant::now() + pause;
        while let Some(wait) = until.checked_duration_since(Instant::now()) {
            match inbox.recv_timeout(wait) {
                Ok(Input::Propose { reply, .. }) => {
                    let _ = reply.send(Err(ProposeError::Invalid(why.to_string())));
                }
                Ok(Input::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => break,
            }
        }
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
