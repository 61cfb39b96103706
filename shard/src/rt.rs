//! The async runtime as the rest of Shardline sees it: the only door from
//! the broker and tuning crates to the executor (they do not depend on
//! glommio, so the compiler keeps it that way).
//!
//! Why a facade: the executor is one implementation choice, and tests that
//! want to run the broker's code on something else (a simulated clock, a
//! deterministic executor) need one place to swap it. Everything here is a
//! re-export or an `#[inline]` one-liner, so the request path pays nothing
//! for the indirection.
//!
//! [`crate::runtime`] starts and stops the shards; this module is what code
//! running *on* a shard uses: tasks, timers, sockets, channels, and the
//! blocking pool.
//!
//! Combining a pending socket or file future with a timer in one `select`
//! must go through [`timeout`] or [`PollOnWake`]: see [`crate::wake`] for
//! the waker leak that otherwise stops the executor.

use std::future::Future;

/// Blocking system calls, run on the executor's helper thread.
pub use crate::blocking;
/// Run one future on a throwaway executor of its own (tests, tools).
pub use crate::runtime::{run_local, run_standalone};
/// Bounding a future by time without re-polling it (see [`crate::wake`]).
pub use crate::wake::{timeout, Elapsed, PollOnWake};

/// Spawned tasks (ours, not glommio's handle: see [`crate::task`]).
pub use crate::task::{spawn_local, Task};

/// Let other tasks of the shard run if this one has used up its slice.
pub use glommio::yield_if_needed;

/// Sleep for a while (a timer of the shard's reactor).
pub use glommio::timer::sleep;

/// Non-blocking sockets of the shard's reactor. Their `accept`, `read` and
/// `write` futures must be awaited alone or through [`timeout`].
pub use glommio::net::{TcpListener, TcpStream};

/// A bounded single-shard channel (`local_channel::new_bounded`).
pub use glommio::channels::local_channel;

/// Spawn `future` as a task of the current shard that runs on its own
/// until it finishes (or the shard stops).
#[inline]
pub fn spawn_detached<F>(future: F)
where
    F: Future + 'static,
    F::Output: 'static,
{
    // Detached before it first runs, which is safe (see `crate::task`).
    #[allow(clippy::disallowed_methods)]
    glommio::spawn_local(future).detach();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::time::Duration;

    #[test]
    fn a_detached_task_runs_to_the_end_without_its_handle() {
        let done = run_local(|| async {
            let done = Rc::new(Cell::new(false));
            let flag = done.clone();
            spawn_detached(async move {
                sleep(Duration::from_millis(1)).await;
                flag.set(true);
            });
            for _ in 0..1000 {
                if done.get() {
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
            done.get()
        });
        assert!(done);
    }

    #[test]
    fn a_local_channel_is_bounded_and_carries_tasks_in_order() {
        let got = run_local(|| async {
            let (tx, rx) = local_channel::new_bounded::<Task<u32>>(2);
            for i in 0..2 {
                tx.send(spawn_local(async move { i })).await.unwrap();
            }
            assert!(tx.try_send(spawn_local(async { 9 })).is_err(), "full");
            drop(tx);
            let mut got = Vec::new();
            while let Some(task) = rx.recv().await {
                got.push(task.await);
            }
            got
        });
        assert_eq!(got, [0, 1]);
    }
}
