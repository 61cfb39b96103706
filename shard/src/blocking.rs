//! Blocking system calls, run off the shard thread.
//!
//! A shard thread serves every connection of its core, so one `fsync` or
//! `rename` on it stalls them all for the device's latency. The few calls
//! io_uring cannot make for us (whole-file writes with a directory fsync,
//! `rename`, `remove_dir_all`, small store files) go through [`run`], which
//! hands them to glommio's blocking pool (one helper thread per executor,
//! placed like the executor) and wakes the calling task when they finish.
//!
//! [`forbid_here`] marks a thread as a shard thread; [`assert_not_shard`]
//! lets code that blocks check it is not on one, so a regression fails the
//! tests instead of adding milliseconds to a tail.

use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static ON_SHARD: Cell<bool> = const { Cell::new(false) };
}

/// Mark the current thread as a shard thread (done by the runtime when it
/// starts a shard).
pub fn forbid_here() {
    ON_SHARD.with(|on| on.set(true));
}

/// Whether the current thread is a shard thread.
pub fn on_shard_thread() -> bool {
    ON_SHARD.with(|on| on.get())
}

/// Panics in debug builds when called on a shard thread: for functions that
/// block (fsync, rename) and must be reached through [`run`].
#[track_caller]
pub fn assert_not_shard(what: &str) {
    debug_assert!(
        !on_shard_thread(),
        "{what} blocks and must not run on a shard thread; use shard::blocking::run"
    );
}

/// Run `f` on the executor's blocking pool and await its result.
///
/// A panic in `f` is caught and resumed here, on the calling task, so it
/// behaves as if `f` had run inline (and cannot kill the pool thread).
/// Must be awaited on a glommio executor (every async path of ours is).
pub async fn run<F, R>(f: F) -> R
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    // Awaited on its own: glommio's blocking-pool future clones the waker on
    // every poll (see `crate::wake`), so it must not sit in a select beside
    // a repeating timer.
    let result = glommio::executor()
        .spawn_blocking(move || catch_unwind(AssertUnwindSafe(f)))
        .await;
    match result {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_off_the_shard_thread_and_returns_the_result() {
        let (shard_thread, pool_thread, value) = crate::runtime::run_local(|| async {
            forbid_here();
            let here = std::thread::current().id();
            let (there, on_shard) = run(|| (std::thread::current().id(), on_shard_thread())).await;
            assert!(!on_shard, "the pool thread is not a shard thread");
            (here, there, 7)
        });
        assert_ne!(shard_thread, pool_thread);
        assert_eq!(value, 7);
    }

    #[test]
    fn a_panic_in_the_closure_reaches_the_caller_and_the_pool_survives() {
        use futures::FutureExt;
        let (panicked, again) = crate::runtime::run_local(|| async {
            let outcome = AssertUnwindSafe(run(|| -> u32 { panic!("boom") }))
                .catch_unwind()
                .await;
            (outcome.is_err(), run(|| 1 + 1).await)
        });
        assert!(panicked);
        assert_eq!(again, 2, "the pool still serves after a panic");
    }
}
