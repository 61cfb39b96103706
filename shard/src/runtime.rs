//! Starting one pinned glommio executor per shard.
//!
//! Every partition holds open files, so the soft open-file limit is raised
//! to the hard one before the shards start (and logged).
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

/// Raise the soft open-file limit to the hard one: every partition holds
/// descriptors for its segment files, and the default soft limit (often
/// 1024) is far below what the hard limit allows. Returns what we have
/// and, if it is below [`NOFILE_WANTED`], a warning saying how to raise it.
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
            "open-file limit (RLIMIT_NOFILE) is {have} (hard limit {}): each open partition \
             holds file descriptors, so partitions beyond what this allows cannot be created; \
             raise the hard limit to at least {NOFILE_WANTED} (`ulimit -Hn`, systemd \
             LimitNOFILE=, /etc/security/limits.conf)",
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

/// Run `shard_main(shard_id)` on `cfg.shards` executors and wait for all.
/// The first error (or panic) of any shard is returned.
pub fn run_shards<F, Fut>(cfg: &RuntimeConfig, shard_main: F) -> Result<()>
where
    F: Fn(usize) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<()>> + 'static,
{
    assert!(cfg.shards > 0, "at least one shard");
    let (io_memory, note) = fit_io_memory(cfg.shards, cfg.io_memory);
    if let Some(note) = note {
        tracing::warn!("{note}");
    }
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
