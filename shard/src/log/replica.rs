//! The log's side of replication (`replication/DESIGN.md`): the replicated
//! bound on the high watermark (`offsets.rs`), and the waits of the
//! replication pipeline and of acks=all.
//!
//! The pipeline (the `shardline-replication` crate) decides the bound: on
//! a leader, the smallest log end of its in-sync followers; on a follower,
//! its leader's high watermark. The log only applies it and wakes whoever
//! waits for the high watermark.

use std::time::Duration;

use super::error::LogError;
use super::partition::PartitionLog;

/// How a wait for the high watermark ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HighWatermarkWait {
    /// The high watermark passed the offset.
    Reached,
    /// The time ran out first.
    TimedOut,
    /// Something else the caller asked to watch happened first.
    Interrupted,
}

impl PartitionLog {
    /// Below this, batches are as durable on this node as the flush mode
    /// promises (acks=1 answers here; followers copy only below it).
    pub fn durable_end(&self) -> i64 {
        self.inner.borrow().offsets.durable()
    }

    /// The bound the replication pipeline last set (`UNBOUNDED` when none).
    pub fn replicated_bound(&self) -> i64 {
        self.inner.borrow().offsets.replicated_bound()
    }

    /// Raise the replicated bound (it never goes down within a role).
    /// Returns true if the high watermark moved; consumers and acks=all
    /// waiters are woken then.
    pub fn advance_replicated_bound(&self, bound: i64) -> bool {
        let moved = {
            let mut inner = self.inner.borrow_mut();
            let moved = inner.offsets.advance_bound(bound);
            if moved {
                inner.refresh_last_stable();
            }
            moved
        };
        if moved {
            self.data_signal.notify_all();
        }
        moved
    }

    /// Set the bound for a new role: a follower's bound starts at what it
    /// knows its leader committed (its high watermark may go down to it:
    /// a log loaded from its files shows everything until told otherwise),
    /// a leader's at its own high watermark, and a replica with no other
    /// in-sync member's is `UNBOUNDED`.
    pub fn reset_replicated_bound(&self, bound: i64) {
        let moved = {
            let mut inner = self.inner.borrow_mut();
            let before = (inner.offsets.high_watermark(), inner.offsets.last_stable());
            inner.offsets.reset_bound(bound);
            inner.refresh_last_stable();
            (inner.offsets.high_watermark(), inner.offsets.last_stable()) != before
        };
        if moved {
            self.data_signal.notify_all();
        }
    }

    /// Wait until the high watermark passes `last_offset` (acks=all), the
    /// `timeout` passes, or `interrupt` completes (the caller's reason to
    /// look again: the ISR changed, leadership moved). Errors when the log
    /// closes, fails, or is truncated below the batch.
    pub async fn wait_high_watermark<I>(
        &self,
        last_offset: i64,
        timeout: Duration,
        interrupt: I,
    ) -> Result<HighWatermarkWait, LogError>
    where
        I: std::future::Future<Output = ()>,
    {
        let deadline = std::time::Instant::now() + timeout;
        let generation = self.inner.borrow().generation;
        // Polled only when it woke (`crate::wake`): the caller's future may
        // be I/O, and this loop polls it again at every wake of its own.
        let mut interrupt = crate::wake::PollOnWake::new(interrupt);
        loop {
            let notified = self.data_signal.notified();
            {
                let inner = self.inner.borrow();
                if inner.offsets.high_watermark() > last_offset {
                    return Ok(HighWatermarkWait::Reached);
                }
                if let Some(err) = &inner.storage_error {
                    return Err(LogError::Storage(err.clone()));
                }
                if inner.generation != generation && inner.offsets.log_end() <= last_offset {
                    return Err(LogError::Storage(format!(
                        "{}: the log was truncated below offset {last_offset} while it waited \
                         for the in-sync replicas",
                        self.name
                    )));
                }
            }
            if self.closed.get() {
                return Err(LogError::Closed);
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(HighWatermarkWait::TimedOut);
            }
            let woke = futures_lite::future::or(
                async {
                    notified.await;
                    Some(false)
                },
                futures_lite::future::or(
                    async {
                        (&mut interrupt).await;
                        Some(true)
                    },
                    async {
                        glommio::timer::sleep(left).await;
                        None
                    },
                ),
            )
            .await;
            if woke == Some(true) {
                return Ok(HighWatermarkWait::Interrupted);
            }
            // Woken, or the deadline passed: the checks above answer.
        }
    }

    /// Follower long-poll on the leader: wait until the durable end passes
    /// `offset` or `timeout` passes.
    pub async fn wait_for_durable_data(&self, offset: i64, timeout: Duration) {
        if self.durable_end() > offset || self.closed.get() {
            return;
        }
        let notified = self.progress_signal.notified();
        let _ = glommio::timer::timeout(timeout, async {
            notified.await;
            Ok(())
        })
        .await;
    }

    /// Register interest in the next progress of the flusher (the durable
    /// end may have moved): for waits over many partitions.
    pub fn durable_notified(&self) -> crate::signal::Notified {
        self.progress_signal.notified()
    }
}
