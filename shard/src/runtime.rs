//! Starting one pinned glommio executor per shard.
//!
//! Every partition holds open files, so the soft open-file limit is raised
//! to the hard one before the shards start (and logged).
//!
//! glommio registers a pool of I/O memory with io_uring and that memory is
//! locked; hosts often cap locked memory low (`ulimit -l` is 8 MiB here), so
//! before starting we try to raise RLIMIT_MEMLOCK and, if we cannot, shrink
//! each shard's I/O pool to fit and say why.

use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot;

use anyhow::{anyhow, Context, Result};
use glommio::{LocalExecutorBuilder, Placement};

/// Smallest I/O pool glommio accepts; below this it allocates 64 KiB anyway.
const MIN_IO_MEMORY: usize = 64 << 10;

#[derive(Clone)]
pub struct RuntimeConfig {
    /// Number of shards, one executor thread each.
    pub shards: usize,
    /// Locked I/O memory wanted per shard.
    pub io_memory: usize,
    /// Pin shard `i` to CPU `i % cores` (off in tests that start many runtimes).
    pub pin: bool,
    /// Run on a thread of its own at the first SIGTERM/SIGINT, while the
    /// shards still serve; they are stopped once it returns (a second
    /// signal exits at once). The broker's controlled shutdown.
    pub before_stop: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// Number of CPUs this process may run on.
pub fn available_cores() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

fn memlock_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// The open-file limit (RLIMIT_NOFILE) as (soft, hard).
pub fn nofile_limit() -> Option<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes into the struct we pass.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    (rc == 0).then_some((lim.rlim_cur, lim.rlim_max))
}

/// Below this many descriptors a broker with many partitions runs out
/// (the figure `shardline tune` asks for).
pub const NOFILE_WANTED: u64 = 65536;

/// Raise the soft open-file limit to the hard one: client connections and
/// the segment files in use (half the limit, see `log::open_files`) share
/// it, and the default soft limit (often 1024) is far below what the hard
/// limit allows. Returns what we have and, if it is below
/// [`NOFILE_WANTED`], a warning saying how to raise it.
pub fn raise_nofile_limit() -> (u64, Option<String>) {
    let Some((cur, max)) = nofile_limit() else {
        return (
            0,
            Some("cannot read the open-file limit (RLIMIT_NOFILE)".into()),
        );
    };
    // The kernel refuses a soft limit above fs.nr_open even when the hard
    // limit is "unlimited".
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    let target = if max == libc::RLIM_INFINITY {
        nr_open
    } else {
        max
    };
    let mut have = cur;
    if cur != libc::RLIM_INFINITY && cur < target {
        let lim = libc::rlimit {
            rlim_cur: target,
            rlim_max: max,
        };
        // SAFETY: setrlimit reads the struct we pass; failure is reported by rc.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } == 0 {
            have = target;
        }
    }
    let note = (have < NOFILE_WANTED).then(|| {
        format!(
            "open-file limit (RLIMIT_NOFILE) is {have} (hard limit {}): client connections and \
             the segment files being read or written share it, so many busy partitions or \
             clients are slowed (files reopened) or refused (EMFILE); raise the hard limit to \
             at least {NOFILE_WANTED} (`ulimit -Hn`, systemd LimitNOFILE=, \
             /etc/security/limits.conf)",
            if max == libc::RLIM_INFINITY {
                "unlimited".to_string()
            } else {
                max.to_string()
            }
        )
    });
    (have, note)
}

/// Make sure `shards * io_memory` (plus slack for the rings) can be locked.
/// Returns the per-shard I/O memory to use and an optional explanation.
pub fn fit_io_memory(shards: usize, wanted: usize) -> (usize, Option<String>) {
    let slack = 1u64 << 20;
    let needed = shards as u64 * wanted as u64 + slack;
    let Some((cur, max)) = memlock_limit() else {
        return (wanted, None);
    };
    if cur == libc::RLIM_INFINITY || cur >= needed {
        return (wanted, None);
    }
    let target = if max == libc::RLIM_INFINITY {
        needed
    } else {
        needed.min(max)
    };
    let lim = libc::rlimit {
        rlim_cur: target,
        rlim_max: max.max(target),
    };
    // SAFETY: setrlimit reads the struct we pass; failure is reported by rc.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &lim) } == 0;
    if raised && target >= needed {
        return (wanted, None);
    }
    let have = if raised { target } else { cur };
    let per_shard = ((have.saturating_sub(slack)) / shards as u64) as usize;
    let per_shard = per_shard.max(MIN_IO_MEMORY).min(wanted);
    let note = format!(
        "locked-memory limit (ulimit -l) is {} KiB, below the {} KiB wanted for {} shards; \
         using {} KiB of registered I/O memory per shard (raise it with `ulimit -l unlimited` \
         or LimitMEMLOCK=infinity for full speed)",
        have / 1024,
        needed / 1024,
        shards,
        per_shard / 1024
    );
    (per_shard, Some(note))
}

/// Asks one shard to stop: resolves when the supervisor wants the shard
/// to shut down (a signal, or another shard failed). It is woken across
/// threads by a channel, so a shard waits for it without polling.
pub struct Stop(oneshot::Receiver<()>);

impl Stop {
    /// Wait for the stop request (also ends if the supervisor is gone).
    pub async fn requested(self) {
        let _ = self.0.await;
    }
}

/// The start-up gate of one shard: it reports that it has recovered its
/// state, and waits until every shard has, so no shard accepts a client
/// (whose requests may go to any shard) while another is still recovering.
pub struct Gate {
    shard: usize,
    events: SyncSender<Event>,
    open: oneshot::Receiver<()>,
}

impl Gate {
    /// Report this shard ready; true once every shard is, false if the
    /// broker is stopping instead (a signal, or another shard failed).
    pub async fn all_ready(self) -> bool {
        if self.events.send(Event::Ready(self.shard)).is_err() {
            return false;
        }
        self.open.await.is_ok()
    }
}

/// What the supervisor hears from signal and shard threads.
enum Event {
    Signal(i32),
    /// `before_stop` returned.
    Drained,
    /// A shard finished its start-up (see [`Gate`]).
    Ready(usize),
    /// A shard's main future ended: `Ok`, its error, or its panic.
    Exited(usize, Result<()>),
}

/// Sends `Exited` for its shard when dropped, so a shard that panics (in
/// our code or inside glommio) is reported too, not only one that returns.
struct ExitReport {
    shard: usize,
    outcome: Option<Result<()>>,
    events: SyncSender<Event>,
}

impl Drop for ExitReport {
    fn drop(&mut self) {
        let outcome = self
            .outcome
            .take()
            .unwrap_or_else(|| Err(anyhow!("shard {} panicked", self.shard)));
        let _ = self.events.send(Event::Exited(self.shard, outcome));
    }
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

/// Run `shard_main(shard_id, gate, stop)` on `cfg.shards` executors, one
/// thread each, and supervise them from the calling thread:
/// - every shard passes its [`Gate`] once recovered; they all go on together;
/// - SIGTERM or SIGINT asks every shard to stop (a second one exits at once);
/// - a shard that fails or panics — at start-up or later — makes the others
///   stop too, so the broker never runs half alive;
/// - returns when every shard has ended: the first error, or `Ok`.
pub fn run_shards<F, Fut>(cfg: &RuntimeConfig, shard_main: F) -> Result<()>
where
    F: Fn(usize, Gate, Stop) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<()>> + 'static,
{
    assert!(cfg.shards > 0, "at least one shard");
    // Raised before the segment-file budget below is taken from it.
    let before = nofile_limit().map_or(0, |(soft, _)| soft);
    match raise_nofile_limit() {
        (have, Some(note)) if have > before => {
            tracing::warn!("raised the open-file limit from {before}; {note}")
        }
        (_, Some(note)) => tracing::warn!("{note}"),
        (have, None) if have > before => tracing::info!(
            "open-file limit (RLIMIT_NOFILE): raised from {before} to {have} (the hard limit)"
        ),
        (have, None) => tracing::info!("open-file limit (RLIMIT_NOFILE): {have}"),
    }
    // The shards share the descriptor budget for open segment files.
    crate::log::open_files::set_shard_count(cfg.shards);
    tracing::info!(
        "segment files: at most {} open per shard (half of the open-file limit, shared by {} shards)",
        crate::log::open_files::open_file_cap(),
        cfg.shards
    );
    let (io_memory, note) = fit_io_memory(cfg.shards, cfg.io_memory);
    if let Some(note) = note {
        tracing::warn!("{note}");
    }
    // Bounded: each shard reports once; signals beyond it are dropped.
    let (events, inbox) = sync_channel::<Event>(cfg.shards + 16);
    watch_signals(events.clone())?;
    let cores = available_cores();
    let mut stops = Vec::with_capacity(cfg.shards);
    let mut gates = Vec::with_capacity(cfg.shards);
    let mut threads = Vec::with_capacity(cfg.shards);
    for shard in 0..cfg.shards {
        let placement = if cfg.pin {
            Placement::Fixed(shard % cores)
        } else {
            Placement::Unbound
        };
        let builder = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{shard}"))
            .io_memory(io_memory)
            .preempt_timer(Duration::from_millis(5));
        let (stop_tx, stop_rx) = oneshot::channel();
        stops.push(Some(stop_tx));
        let (open_tx, open_rx) = oneshot::channel();
        gates.push(Some(open_tx));
        let gate = Gate {
            shard,
            events: events.clone(),
            open: open_rx,
        };
        let main = shard_main.clone();
        let events = events.clone();
        let thread = std::thread::Builder::new()
            .name(format!("shard-{shard}"))
            .spawn(move || {
                let mut report = ExitReport {
                    shard,
                    outcome: None,
                    events,
                };
                let outcome = match builder.make() {
                    Err(e) => Err(anyhow!("cannot start shard {shard}: {e}").context(
                        "glommio needs io_uring and locked memory; check `ulimit -l` and \
                         kernel.io_uring_disabled",
                    )),
                    Ok(executor) => {
                        crate::blocking::forbid_here();
                        let run = std::panic::AssertUnwindSafe(|| {
                            executor.run(async move {
                                start_reactor_tick();
                                main(shard, gate, Stop(stop_rx)).await
                            })
                        });
                        std::panic::catch_unwind(run).unwrap_or_else(|p| {
                            Err(anyhow!("shard {shard} panicked: {}", panic_message(&*p)))
                        })
                    }
                };
                report.outcome = Some(outcome);
            })
            .with_context(|| format!("starting the thread of shard {shard}"))?;
        threads.push(thread);
    }
    // Kept for the `before_stop` thread: the loop below still ends, as it
    // counts exited shards rather than waiting for every sender to go.
    let events_for_hook = events;
    let mut first_err = None;
    let mut running = cfg.shards;
    let mut ready = 0;
    let mut stopping = false;
    let mut draining = false;
    while running > 0 {
        let Ok(event) = inbox.recv() else { break };
        let stop_all = match event {
            Event::Signal(sig) if stopping || draining => {
                eprintln!("shardline: second signal {sig} while stopping; exiting now");
                std::process::exit(128 + sig);
            }
            Event::Signal(sig) => match &cfg.before_stop {
                Some(hook) => {
                    tracing::info!("signal {sig}: shutting down (controlled)");
                    draining = true;
                    let (hook, events) = (hook.clone(), events_for_hook.clone());
                    let spawned = std::thread::Builder::new()
                        .name("before-stop".into())
                        .spawn(move || {
                            hook();
                            let _ = events.send(Event::Drained);
                        });
                    // Without its thread, stop right away.
                    spawned.is_err()
                }
                None => {
                    tracing::info!("signal {sig}: stopping every shard");
                    true
                }
            },
            Event::Drained => {
                tracing::info!("stopping every shard");
                true
            }
            Event::Ready(shard) => {
                ready += 1;
                tracing::debug!("shard {shard} recovered ({ready} of {})", cfg.shards);
                if ready == cfg.shards && !stopping {
                    for open in gates.iter_mut().filter_map(Option::take) {
                        let _ = open.send(());
                    }
                }
                false
            }
            Event::Exited(shard, outcome) => {
                running -= 1;
                stops[shard] = None;
                match outcome {
                    Ok(()) => tracing::debug!("shard {shard} stopped"),
                    Err(e) => {
                        tracing::error!("shard {shard} failed: {e:#}; stopping the others");
                        first_err.get_or_insert(e);
                    }
                }
                // One shard ending on its own means the broker cannot serve.
                true
            }
        };
        if stop_all && !stopping {
            stopping = true;
            // Shards still at the gate see it closed (sender dropped).
            gates.clear();
            for stop in stops.iter_mut().filter_map(Option::take) {
                let _ = stop.send(());
            }
        }
    }
    for t in threads {
        let _ = t.join();
    }
    first_err.map_or(Ok(()), Err)
}

/// SIGTERM and SIGINT become events for the supervisor (a signal thread,
/// not a flag some task would have to poll).
fn watch_signals(events: SyncSender<Event>) -> Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
        .context("installing signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                match events.try_send(Event::Signal(sig)) {
                    Ok(()) | Err(TrySendError::Full(_)) => {}
                    Err(TrySendError::Disconnected(_)) => break, // supervisor gone
                }
            }
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// The longest an executor sleeps with runnable tasks (see
/// [`start_reactor_tick`]).
pub const REACTOR_TICK: Duration = Duration::from_millis(10);

/// Bound glommio's parks with runnable tasks by a ticking timer.
///
/// Why: glommio 0.9's executor loop (`LocalExecutor::run`) polls I/O, then
/// runs task queues, and parks if `run_task_queues` ran none. But that
/// function re-arms the eventfd read in the latency ring and checks
/// `need_preempt()` (is there a completion in the latency ring?) *before*
/// running the first queue; a completion that lands there (a timer
/// cancellation, the eventfd written by the blocking pool or another
/// shard) makes it report "nothing ran" with tasks still queued, and the
/// park then sleeps until the next I/O completion or timer. Measured: the
/// log simulation under CPU contention stalled for its whole 60 s timeout
/// (CI, seed 23) after a park 7 µs past the poll with one active task
/// queue; on a broker it would delay a runnable task (an ack, a fetch
/// answer) until the next packet or timer.
///
/// A timer every [`REACTOR_TICK`] bounds such a park. Measured on the
/// development VM: an idle broker's CPU went from 0 to 0.8–0.9 % of a core
/// with it (a 1 ms tick cost 4.6 % idle and ~20 % more broker CPU at 50 k
/// msgs/s), and produce latency at 50 k msgs/s did not change.
fn start_reactor_tick() {
    crate::rt::spawn_detached(async {
        loop {
            glommio::timer::sleep(REACTOR_TICK).await;
        }
    });
}

/// Run `fut` on an executor of its own (a new, unpinned thread with up to
/// `io_memory` bytes of I/O memory, shrunk to the locked-memory limit) and
/// wait for its output: for tools such as `shardline iotune` that use the
/// shard's I/O path without a running broker.
pub fn run_standalone<T, Fut>(
    name: &str,
    io_memory: usize,
    fut: impl FnOnce() -> Fut + Send + 'static,
) -> Result<T>
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let (io_memory, _) = fit_io_memory(1, io_memory);
    LocalExecutorBuilder::new(Placement::Unbound)
        .name(name)
        .io_memory(io_memory)
        .spawn(move || async move {
            start_reactor_tick();
            fut().await
        })
        .map_err(|e| anyhow!("cannot start a glommio executor (io_uring, ulimit -l?): {e}"))?
        .join()
        .map_err(|e| anyhow!("{name} executor failed: {e:?}"))
}

/// Run one future on a throwaway executor (tests, tools).
pub fn run_local<T, Fut>(fut: impl FnOnce() -> Fut + Send + 'static) -> T
where
    T: Send + 'static,
    Fut: std::future::Future<Output = T> + 'static,
{
    let (io_memory, _) = fit_io_memory(1, 1 << 20);
    LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(io_memory)
        .spawn(move || async move {
            start_reactor_tick();
            fut().await
        })
        .expect("start executor")
        .join()
        .expect("executor panicked")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_open_file_limit_goes_up_to_the_hard_one() {
        let (have, note) = raise_nofile_limit();
        let (soft, hard) = nofile_limit().expect("getrlimit");
        assert_eq!(have, soft);
        if hard != libc::RLIM_INFINITY {
            assert_eq!(soft, hard, "the soft limit is the hard one now");
        }
        assert_eq!(note.is_some(), have < NOFILE_WANTED, "{note:?}");
    }
}
