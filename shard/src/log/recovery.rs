//! Recovery in place: a partition whose write or sync failed (a full disk,
//! an I/O error) rebuilds its state from its files — the same code as
//! opening it at start-up — and takes writes again, without a restart.
//!
//! Until then appends are refused with the storage error, and reads go on
//! up to the high watermark. Recovery is tried by the next append, at most
//! once per backoff (1 s, doubling to 30 s while attempts keep failing) and,
//! when a disk monitor runs, only once there is free space again, so a full
//! disk is not rescanned for every produce.
//!
//! What the files hold is everything below the old `written` offset (the
//! flusher writes in order), so the recovered log end is at or above the old
//! high watermark: nothing a consumer saw is lost. Batches above it that
//! did reach the device are kept (their producers were answered with an
//! error and their idempotent retries are recognised, since producer state
//! is replayed from the same files); the others are dropped, and their
//! offsets, never served, are given to the next appends.

use std::rc::Rc;
use std::time::Duration;

use super::error::LogError;
use super::health::HEALTH;
use super::partition::{load, PartitionLog};
use crate::time::Clock;

const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(30);

fn backoff(faults_in_a_row: u32) -> Duration {
    let doublings = faults_in_a_row.saturating_sub(1).min(5);
    (FIRST_RETRY * 2u32.pow(doublings)).min(MAX_RETRY)
}

impl PartitionLog {
    /// Record a storage fault: appends are refused with `message` until a
    /// recovery succeeds, and the next one is tried after the backoff.
    pub(super) fn note_fault(&self, message: String) {
        let mut inner = self.inner.borrow_mut();
        inner.faults_in_a_row = inner.faults_in_a_row.saturating_add(1);
        inner.retry_recovery_at = Some(self.clock.monotonic() + backoff(inner.faults_in_a_row));
        inner.storage_error = Some(message);
    }

    /// Whether writes are refused for a storage fault.
    pub fn is_offline(&self) -> bool {
        self.inner.borrow().storage_error.is_some()
    }

    /// Called by `append` with the append lock held while the log is
    /// faulted: recover if due, else answer the fault.
    pub(super) async fn try_recover(&self) -> Result<(), LogError> {
        let (fault, due) = {
            let inner = self.inner.borrow();
            let due = inner
                .retry_recovery_at
                .is_none_or(|at| self.clock.monotonic() >= at);
            (inner.storage_error.clone(), due)
        };
        let Some(fault) = fault else {
            return Ok(());
        };
        if !due || self.closed.get() || self.flusher_running.get() {
            return Err(LogError::Storage(fault));
        }
        if !HEALTH.has_room_for_recovery() {
            // Still full: no attempt, and no longer backoff for later.
            return Err(LogError::Storage(fault));
        }
        match self.recover_in_place().await {
            Ok(()) => Ok(()),
            Err(e) => {
                tracing::warn!("{}: recovery from the files failed: {e}", self.name);
                HEALTH.count_storage_error();
                self.note_fault(fault.clone());
                Err(LogError::Storage(fault))
            }
        }
    }

    /// Rebuild the state from the files and start a new flusher.
    async fn recover_in_place(&self) -> Result<(), LogError> {
        let me = self.me.upgrade().ok_or(LogError::Closed)?;
        let config = self.config();
        // No compaction swap or segment unlink may run under the reload.
        let _files = self.lock_files().await?;
        let fresh = load(&self.dir, &self.name, &config, &self.clock).await?;
        let (old_hwm, old_end, new_end) = {
            let mut inner = self.inner.borrow_mut();
            // What was durable before (the replicated bound may hold the
            // high watermark lower).
            let old_hwm = inner.offsets.durable();
            let bound = inner.offsets.replicated_bound();
            let old_end = inner.offsets.log_end();
            if fresh.offsets.log_end() < old_hwm {
                // Should not happen: the device lost written data.
                tracing::error!(
                    "{}: the files end at offset {} but offsets up to {old_hwm} were durable",
                    self.name,
                    fresh.offsets.log_end()
                );
            }
            let keep_start = inner.offsets.log_start();
            let leader_epoch = inner.leader_epoch;
            let generation = inner.generation + 1;
            let faults = inner.faults_in_a_row;
            *inner = fresh;
            // The log start may have moved since its file was written.
            let end = inner.offsets.log_end();
            inner.offsets.advance_log_start(keep_start.min(end));
            inner.offsets.reset_bound(bound);
            inner.leader_epoch = leader_epoch;
            inner.generation = generation;
            inner.durable_before = (generation - 1, old_hwm);
            // Reset by the next successful write, so a disk that fills
            // again at once backs off further.
            inner.faults_in_a_row = faults;
            inner.offsets.debug_check_segments(&inner.segments);
            (old_hwm, old_end, inner.offsets.log_end())
        };
        HEALTH.partition_online();
        self.flusher_running.set(true);
        crate::rt::spawn_detached(Rc::clone(&me).run_flusher());
        // Consumers waiting at the old high watermark may have data now.
        self.data_signal.notify_all();
        let dropped = if new_end < old_end {
            format!("; offsets {new_end}..{old_end} never reached the disk and are reassigned")
        } else {
            String::new()
        };
        tracing::info!(
            "{}: recovered in place from its files, writes accepted again: log end {new_end}, \
             {old_hwm} was visible{dropped}",
            self.name
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), Duration::from_secs(1));
        assert_eq!(backoff(2), Duration::from_secs(2));
        assert_eq!(backoff(4), Duration::from_secs(8));
        assert_eq!(backoff(50), MAX_RETRY);
    }
}
