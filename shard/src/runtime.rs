//! Starting one pinned glommio executor per shard.
//!
//! glommio registers a pool of I/O memory with io_uring and that memory is
//! locked; hosts often cap locked memory low (`ulimit -l` is 8 MiB here), so
//! before starting we try to raise RLIMIT_MEMLOCK and, if we cannot, shrink
//! each shard's I/O pool to fit and say why.

use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use glommio::{LocalExecutorBuilder, Placement};

/// Smallest I/O pool glommio accepts; below this it allocates 64 KiB anyway.
const MIN_IO_MEMORY: usize = 64 << 10;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Number of shards, one executor thread each.
    pub shards: usize,
    /// Locked I/O memory wanted per shard.
    pub io_memory: usize,
    /// Pin shard `i` to CPU `i % cores` (off in tests that start many runtimes).
    pub pin: bool,
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

/// Run `shard_main(shard_id)` on `cfg.shards` executors and wait for all.
/// The first error (or panic) of any shard is returned.
pub fn run_shards<F, Fut>(cfg: &RuntimeConfig, shard_main: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<()>> + 'static,
{
    assert!(cfg.shards > 0, "at least one shard");
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
    let cores = available_cores();
    let mut handles = Vec::with_capacity(cfg.shards);
    for shard in 0..cfg.shards {
        let placement = if cfg.pin {
            Placement::Fixed(shard % cores)
        } else {
            Placement::Unbound
        };
        let main = shard_main.clone();
        let handle = LocalExecutorBuilder::new(placement)
            .name(&format!("shard-{shard}"))
            .io_memory(io_memory)
            .preempt_timer(Duration::from_millis(5))
            .spawn(move || async move { main(shard).await })
            .map_err(|e| anyhow!("cannot start shard {shard}: {e}"))
            .with_context(|| {
                "glommio needs io_uring and locked memory; check `ulimit -l` and \
                 kernel.io_uring_disabled"
            })?;
        handles.push(handle);
    }
    let mut first_err = None;
    for (shard, handle) in handles.into_iter().enumerate() {
        let outcome = match handle.join() {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.context(format!("shard {shard} failed")),
            Err(e) => anyhow!("shard {shard} panicked: {e:?}"),
        };
        first_err.get_or_insert(outcome);
    }
    first_err.map_or(Ok(()), Err)
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
        .spawn(move || async move { fut().await })
        .expect("start executor")
        .join()
        .expect("executor panicked")
}
