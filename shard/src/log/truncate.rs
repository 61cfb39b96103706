//! Suffix truncation (Kafka's `UnifiedLog.truncateTo`): drop every batch at
//! or past an offset. A follower does it when its log diverged from the
//! leader's (found with OffsetForLeaderEpoch).
//!
//! How: appends are held (the append lock), the flusher finishes what is
//! pending and stops, then the files are cut: the segment holding the
//! offset is truncated at the start of the batch holding it (mid-batch
//! offsets cut the whole batch, as Kafka's `LogSegment.truncateTo`) and
//! synced, the segments after it and their producer snapshots deleted, and
//! the directory synced, so that neither a process crash nor a power loss
//! brings the suffix back. The state is then rebuilt from the files by the
//! same `load` as at open (indexes, producer state and the epoch cache
//! follow the files), the epoch cache is trimmed from the end and written,
//! and a new flusher starts.
//!
//! Appends waiting for durability across a truncation fail with a storage
//! error (as across a recovery in place): their batch may be gone.

use std::rc::Rc;

use super::error::LogError;
use super::partition::{delete_segments_from, load, PartitionLog};
use super::retention::write_log_start;
use super::segment::{segment_file_name, Segment};
use super::walk::{self, Expect};

/// Where the files are cut: the segment holding the offset, the byte
/// where its cut batch starts and that batch's base offset (the new log
/// end). `whole`: the offset is below the first segment, so every segment
/// goes and the log starts again, empty, at the offset (Kafka's
/// `truncateFullyAndStartAt`).
struct Cut {
    segment: i64,
    position: u64,
    new_end: i64,
    whole: bool,
}

impl PartitionLog {
    /// Drop every batch at or past `offset`. Returns whether anything was
    /// dropped (Kafka's `truncateTo`). The new log end is `offset`, or the
    /// base of the batch holding it. The epoch cache is trimmed even when
    /// nothing is dropped (an entry for an epoch that wrote nothing).
    pub async fn truncate_to(&self, offset: i64) -> Result<bool, LogError> {
        if offset < 0 {
            return Err(LogError::InvalidRecord(format!(
                "cannot truncate to a negative offset {offset}"
            )));
        }
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let _permit = self.append_lock.lock().await;
        if self.inner.borrow().storage_error.is_some() {
            self.try_recover().await?;
        }
        let end = self.inner.borrow().offsets.log_end();
        if offset >= end {
            let trimmed = self.inner.borrow_mut().epochs.truncate_from_end(end);
            if trimmed {
                self.persist_epochs().await?;
            }
            return Ok(false);
        }
        if std::mem::replace(&mut self.cleaner.borrow_mut().running, true) {
            return Err(LogError::Storage(format!(
                "{}: compaction is running; truncate again once it is done",
                self.name
            )));
        }
        let outcome = self.truncate_files(offset).await;
        self.cleaner.borrow_mut().running = false;
        outcome.map(|()| true)
    }

    async fn truncate_files(&self, offset: i64) -> Result<(), LogError> {
        self.stop_flusher().await?;
        // No compaction swap or retention unlink may change the segment
        // files under the cut (taken after the flusher stopped: a flusher
        // recovering in place holds this lock until it is done).
        let _files = match self.lock_files().await {
            Ok(guard) => guard,
            Err(e) => {
                // The flusher is stopped: offline until a recovery in place
                // (which restarts it), as after a failed write.
                super::health::HEALTH.partition_offline();
                self.note_fault(format!("{}: truncation failed: {e}", self.name));
                return Err(e);
            }
        };
        let (end, outcome) = match self.find_cut(offset).await {
            Ok(cut) => {
                let end = cut.new_end;
                let cut = self.cut_files(cut).await;
                // Whatever happened to the files, the state is rebuilt from them.
                let outcome = match cut {
                    Ok(_) => self.reload_after_cut().await,
                    Err(e) => Err(e),
                };
                (Some(end), outcome)
            }
            Err(e) => (None, Err(e)),
        };
        if let Err(e) = outcome {
            if let Some(end) = end {
                // The files may be cut already: serve nothing past the cut.
                self.inner.borrow_mut().offsets.hide_from(end);
            }
            // Offline for writes until a recovery in place (which counts it
            // online again), as after a failed write.
            super::health::HEALTH.partition_offline();
            self.note_fault(format!("{}: truncation failed: {e}", self.name));
            return Err(e);
        }
        let new_end = end.expect("a cut");
        tracing::info!("{}: truncated to offset {new_end}", self.name);
        Ok(())
    }

    /// Let the flusher write what is pending, then stop it.
    async fn stop_flusher(&self) -> Result<(), LogError> {
        self.quiesce.set(true);
        self.flush_signal.notify_all();
        while self.flusher_running.get() {
            let notified = self.progress_signal.notified();
            if !self.flusher_running.get() {
                break;
            }
            notified.await;
        }
        self.quiesce.set(false);
        if let Some(err) = &self.inner.borrow().storage_error {
            // The flusher failed: the recovery in place restarts it.
            return Err(LogError::Storage(err.clone()));
        }
        Ok(())
    }

    /// The segment holding `offset` and the start of the batch holding it,
    /// found from the offset index and a walk of the batch headers.
    async fn find_cut(&self, offset: i64) -> Result<Cut, LogError> {
        let (base, limit, rel_entry, start_pos, size, file) = {
            let inner = self.inner.borrow();
            let Some((&base, seg)) = inner.segments.range(..=offset).next_back() else {
                // Below the first segment: the whole log goes.
                let first = *inner.segments.keys().next().expect("a segment");
                return Ok(Cut {
                    segment: first,
                    position: 0,
                    new_end: offset,
                    whole: true,
                });
            };
            let limit = inner
                .segments
                .range(base + 1..)
                .next()
                .map_or(i64::MAX, |(&b, _)| b);
            let (rel, pos) = seg.index.lookup_entry((offset - base) as u32);
            (base, limit, rel, pos, seg.size, seg.file.clone())
        };
        let expect = Expect {
            next: base + rel_entry as i64,
            limit,
        };
        let mut cut = None;
        let handle = file.get().await?;
        let walked = walk::walk(
            &*handle,
            start_pos as u64,
            size,
            expect,
            64 << 10,
            |_, _, pos, batch| {
                if batch.last_offset() >= offset {
                    cut = Some((pos, batch.base_offset()));
                    return walk::Visit::Stop;
                }
                walk::Visit::Continue
            },
        )
        .await?;
        let (position, new_end) = cut.unwrap_or((walked.pos, walked.next_offset));
        debug_assert!(new_end <= offset, "cut at {new_end} above {offset}");
        Ok(Cut {
            segment: base,
            position,
            new_end,
            whole: false,
        })
    }

    /// Cut the segment, delete those after it, sync. Returns the new end.
    async fn cut_files(&self, cut: Cut) -> Result<i64, LogError> {
        let (file, doomed, log_start) = {
            let inner = self.inner.borrow();
            let seg = &inner.segments[&cut.segment];
            let from = if cut.whole {
                cut.segment
            } else {
                cut.segment + 1
            };
            let doomed: Vec<i64> = inner.segments.range(from..).map(|(&b, _)| b).collect();
            (seg.file.clone(), doomed, inner.offsets.log_start())
        };
        // Order matters for a failure or crash part-way: the segments past
        // the cut go first (newest first, then a directory sync), and only
        // then is the cut segment shortened. Cutting first and failing
        // before the unlinks left a short segment followed by a later one
        // whose producer snapshot says "sealed", which the next load keeps:
        // an offset gap (log simulation, SIM_REPLICA=1 seed 1382). This way
        // what survives is always a dense prefix, at worst still holding
        // batches past the cut, which the next truncation cuts again.
        let dir = self.dir.clone();
        let segment = cut.segment;
        super::index::off_shard(move || -> std::io::Result<()> {
            let newest_first: Vec<i64> = doomed.iter().rev().copied().collect();
            delete_segments_from(&dir, &newest_first);
            // The cut segment's indexes are rebuilt from its file by the
            // reload (it is the last segment now); stale ones must go.
            for ext in ["index", "timeindex", "txnindex"] {
                match std::fs::remove_file(dir.join(segment_file_name(segment, ext))) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
            // The unlinks must survive a power loss: a segment coming back
            // after new batches reused its offsets would serve old data.
            std::fs::File::open(&dir)?.sync_all()
        })
        .await?;
        if !cut.whole {
            let handle = file.get().await?;
            super::disk::truncate(&handle, cut.position).await?;
            super::disk::fdatasync(&handle).await?;
        }
        if let Some(start) = (cut.new_end < log_start || cut.whole).then_some(cut.new_end) {
            let dir = self.dir.clone();
            // Kafka: the log start becomes min(log start, target).
            super::index::off_shard(move || write_log_start(&dir, start)).await?;
        }
        if cut.whole {
            Segment::create(&self.dir, cut.new_end).await?;
        }
        Ok(cut.new_end)
    }

    /// Rebuild the state from the files (as at open) and start a flusher.
    async fn reload_after_cut(&self) -> Result<(), LogError> {
        let me = self.me.upgrade().ok_or(LogError::Closed)?;
        let config = self.config();
        let mut fresh = load(&self.dir, &self.name, &config, &self.clock).await?;
        {
            let mut inner = self.inner.borrow_mut();
            let keep_start = inner.offsets.log_start();
            fresh.leader_epoch = inner.leader_epoch;
            fresh.generation = inner.generation + 1;
            let end = fresh.offsets.log_end();
            fresh.offsets.advance_log_start(keep_start.min(end));
            // The role goes on: a follower still shows only what its leader
            // said was committed.
            fresh.offsets.reset_bound(inner.offsets.replicated_bound());
            fresh.epochs.truncate_from_start(fresh.offsets.log_start());
            fresh.offsets.debug_check_segments(&fresh.segments);
            *inner = fresh;
        }
        // `load` wrote the trimmed epoch cache when it changed.
        self.persist_epochs().await?;
        self.flusher_running.set(true);
        crate::rt::spawn_detached(Rc::clone(&me).run_flusher());
        self.progress_signal.notify_all();
        // acks=all waiters look again (their batch may be gone).
        self.data_signal.notify_all();
        Ok(())
    }
}
