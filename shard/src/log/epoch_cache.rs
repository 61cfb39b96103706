//! The leader-epoch cache of a partition: for each leader epoch, the first
//! offset written in it (Kafka's `LeaderEpochFileCache`). It answers
//! OffsetForLeaderEpoch (`end_offset_for`), which a follower or a consumer
//! uses to find where its copy of the log diverges from the leader's.
//!
//! Entries have strictly increasing epochs and start offsets. They are kept
//! in the partition directory as `leader-epoch-checkpoint`, in Kafka's text
//! format (`LeaderEpochCheckpointFile`):
//! ```text
//! 0              <- version
//! 2              <- number of entries
//! 0 0            <- epoch start_offset
//! 3 1200
//! ```
//! The file is written off the shard thread, before any batch of a new
//! epoch is written (`PartitionLog::persist_epochs`). At open it is read,
//! then brought up to date from the batches recovery scanned (a crash may
//! have come before a write of it), and trimmed to the log's offsets. A
//! missing or unreadable file is rebuilt from every batch's
//! `partition_leader_epoch`.

use std::collections::BTreeMap;
use std::path::Path;

use super::error::LogError;
use super::partition::PartitionLog;
use super::segment::Segment;
use super::walk::{self, Expect};

pub const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";

/// Kafka's UNDEFINED_EPOCH and UNDEFINED_EPOCH_OFFSET.
pub const UNDEFINED_EPOCH: i32 = -1;
pub const UNDEFINED_OFFSET: i64 = -1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<EpochEntry>,
    /// Bumped by every change; the persisted version trails it.
    version: u64,
}

impl LeaderEpochCache {
    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub(super) fn version(&self) -> u64 {
        self.version
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Kafka's `assign`: record that `epoch` starts at `start_offset`.
    /// Nothing changes if it is already the latest epoch at or before that
    /// offset. Entries it contradicts (an epoch at or above it, or a start
    /// at or past it) are removed first, so the entries stay monotonic.
    /// Returns whether the cache changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        assert!(
            epoch >= 0 && start_offset >= 0,
            "invalid leader epoch entry {epoch} {start_offset}"
        );
        let needed = self
            .entries
            .last()
            .is_none_or(|l| l.epoch != epoch || start_offset < l.start_offset);
        if !needed {
            return false;
        }
        while self
            .entries
            .last()
            .is_some_and(|l| l.epoch >= epoch || l.start_offset >= start_offset)
        {
            self.entries.pop();
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.changed();
        true
    }

    /// Kafka's `truncateFromEnd`: drop the entries starting at or past
    /// `end_offset` (the log was truncated there).
    pub fn truncate_from_end(&mut self, end_offset: i64) -> bool {
        let before = self.entries.len();
        while self
            .entries
            .last()
            .is_some_and(|l| l.start_offset >= end_offset)
        {
            self.entries.pop();
        }
        let moved = self.entries.len() != before;
        if moved {
            self.changed();
        }
        moved
    }

    /// Kafka's `truncateFromStart`: the log now starts at `start_offset`.
    /// Entries starting at or below it are dropped, except the last of them,
    /// which is kept starting at `start_offset` (its epoch still covers it).
    pub fn truncate_from_start(&mut self, start_offset: i64) -> bool {
        let covered = self
            .entries
            .iter()
            .take_while(|e| e.start_offset <= start_offset)
            .count();
        if covered == 0 {
            return false;
        }
        let kept = EpochEntry {
            epoch: self.entries[covered - 1].epoch,
            start_offset,
        };
        if covered == 1 && self.entries[0] == kept {
            return false;
        }
        self.entries.drain(..covered);
        self.entries.insert(0, kept);
        self.changed();
        true
    }

    /// Kafka's `endOffsetFor`: the largest epoch at or below `requested`
    /// and the offset where it ended (the start of the next epoch, or
    /// `log_end` for the latest epoch). `(UNDEFINED_EPOCH, UNDEFINED_OFFSET)`
    /// for an undefined request, or one above every epoch known. A request
    /// below the first epoch gets itself and the first epoch's start (the
    /// data before is gone; the follower replicates from there).
    pub fn end_offset_for(&self, requested: i32, log_end: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (UNDEFINED_EPOCH, UNDEFINED_OFFSET);
        if requested == UNDEFINED_EPOCH {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end);
        }
        // First entry with an epoch above the request.
        let higher = self.entries.partition_point(|e| e.epoch <= requested);
        let Some(next) = self.entries.get(higher) else {
            return UNDEFINED;
        };
        match higher.checked_sub(1).map(|i| self.entries[i]) {
            None => (requested, next.start_offset),
            Some(floor) => (floor.epoch, next.start_offset),
        }
    }

    fn changed(&mut self) {
        self.version += 1;
        debug_assert!(
            self.entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset),
            "leader epoch entries not monotonic: {:?}",
            self.entries
        );
    }

    /// The checkpoint file's text.
    pub fn encode(&self) -> String {
        let mut out = format!("0\n{}\n", self.entries.len());
        for e in &self.entries {
            out.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        out
    }

    /// Parse a checkpoint file's text; an error says what is wrong with it.
    pub fn decode(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        match lines.next().map(str::trim) {
            Some("0") => {}
            Some(v) => return Err(format!("unknown version {v:?}")),
            None => return Err("empty file".into()),
        }
        let count: usize = lines
            .next()
            .and_then(|l| l.trim().parse().ok())
            .ok_or("no entry count")?;
        let mut cache = Self::default();
        for i in 0..count {
            let line = lines
                .next()
                .ok_or(format!("expected {count} entries, found {i}"))?;
            let mut parts = line.split_whitespace();
            let entry = match (parts.next(), parts.next(), parts.next()) {
                (Some(e), Some(o), None) => match (e.parse::<i32>(), o.parse::<i64>()) {
                    (Ok(epoch), Ok(start_offset)) if epoch >= 0 && start_offset >= 0 => {
                        EpochEntry {
                            epoch,
                            start_offset,
                        }
                    }
                    _ => return Err(format!("bad entry {line:?}")),
                },
                _ => return Err(format!("bad entry {line:?}")),
            };
            if cache
                .entries
                .last()
                .is_some_and(|l| l.epoch >= entry.epoch || l.start_offset >= entry.start_offset)
            {
                return Err(format!("entry {line:?} is not after the one before it"));
            }
            cache.entries.push(entry);
        }
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(format!("more than the {count} entries announced"));
        }
        Ok(cache)
    }
}

/// Read the checkpoint of the partition in `dir`: `Ok(None)` when there is
/// none, `Err` (what is wrong) when it cannot be used.
pub(super) fn read_checkpoint(dir: &Path) -> Result<Option<LeaderEpochCache>, String> {
    match std::fs::read(dir.join(CHECKPOINT_FILE)) {
        Ok(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| "not text".to_string())?;
            LeaderEpochCache::decode(&text).map(Some)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// The cache of a log being loaded: the checkpoint (or, when it is missing
/// or unreadable, one rebuilt from every batch), brought up to date with
/// the epochs recovery `scanned`, and trimmed to `[log_start, log_end)`.
/// Written back when it changed.
pub(super) async fn load_epochs(
    dir: &Path,
    name: &str,
    checkpoint: Result<Option<LeaderEpochCache>, String>,
    scanned: LeaderEpochCache,
    segments: &BTreeMap<i64, Segment>,
    log_start: i64,
    log_end: i64,
) -> Result<LeaderEpochCache, LogError> {
    let (mut cache, mut write) = match checkpoint {
        Ok(Some(cache)) => (cache, false),
        Ok(None) => (rebuild(segments).await?, true),
        Err(why) => {
            tracing::warn!(
                "{name}: {CHECKPOINT_FILE} is unreadable ({why}); rebuilding it from the \
                 leader epochs of the batches"
            );
            (rebuild(segments).await?, true)
        }
    };
    // Entries past the log end: a truncation the file did not see yet, or
    // batches that never reached the disk.
    write |= cache.truncate_from_end(log_end);
    for e in scanned.entries() {
        if e.start_offset < log_end && e.epoch > cache.latest_epoch().unwrap_or(-1) {
            write |= cache.assign(e.epoch, e.start_offset);
        }
    }
    write |= cache.truncate_from_start(log_start);
    if write {
        let path = dir.join(CHECKPOINT_FILE);
        let text = cache.encode();
        super::index::off_shard(move || {
            super::reserve::write_durably_or_release(&path, text.as_bytes())
        })
        .await?;
    }
    Ok(cache)
}

/// The epochs of every batch of every segment (the checkpoint is lost).
async fn rebuild(segments: &BTreeMap<i64, Segment>) -> Result<LeaderEpochCache, LogError> {
    let mut cache = LeaderEpochCache::default();
    let bases: Vec<i64> = segments.keys().copied().collect();
    for (i, seg) in segments.values().enumerate() {
        if seg.size == 0 {
            continue;
        }
        let file = seg.file.get().await?;
        let expect = Expect {
            next: seg.base_offset,
            limit: bases.get(i + 1).copied().unwrap_or(i64::MAX),
        };
        walk::walk(&*file, 0, seg.size, expect, 1 << 20, |_, _, _, batch| {
            super::partition::note_epoch(&mut cache, batch);
            walk::Visit::Continue
        })
        .await?;
        drop(file);
        seg.file.close_if_idle();
    }
    Ok(cache)
}

impl PartitionLog {
    /// The leader epoch cache's entries (epoch, start offset).
    pub fn leader_epoch_entries(&self) -> Vec<EpochEntry> {
        self.inner.borrow().epochs.entries().to_vec()
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `requested` and
    /// its end offset, as Kafka's `LeaderEpochFileCache.endOffsetFor`.
    pub fn end_offset_for_epoch(&self, requested: i32) -> (i32, i64) {
        let inner = self.inner.borrow();
        inner
            .epochs
            .end_offset_for(requested, inner.offsets.log_end())
    }

    /// Write the cache to its checkpoint file, durably, off the shard
    /// thread, unless that version is already written. Writers take turns
    /// and each writes the cache as it is at its turn, so a later state is
    /// never overwritten by an earlier one.
    pub(super) async fn persist_epochs(&self) -> Result<(), LogError> {
        let _turn = self.epoch_lock.lock().await;
        let (text, version) = {
            let inner = self.inner.borrow();
            if inner.epochs_persisted == inner.epochs.version() {
                return Ok(());
            }
            (inner.epochs.encode(), inner.epochs.version())
        };
        let path = self.dir.join(CHECKPOINT_FILE);
        // Not through the disk reserve: on a full disk the batch this entry
        // announces cannot be written either, so the append fails with the
        // disk-full error, and the reserve stays for what must get through
        // a full disk (the log-start checkpoint of DeleteRecords, metadata).
        // Releasing it here let group commits fill the room it made.
        super::index::off_shard(move || super::index::write_durably(&path, text.as_bytes()))
            .await?;
        let mut inner = self.inner.borrow_mut();
        inner.epochs_persisted = inner.epochs_persisted.max(version);
        Ok(())
    }

    /// Before a batch of a new epoch is written: the entry is durable first,
    /// so a crash never leaves batches of an epoch the file does not know
    /// in a segment that recovery does not scan.
    pub(super) async fn persist_epochs_if_changed(&self) -> Result<(), LogError> {
        loop {
            {
                let inner = self.inner.borrow();
                if inner.epochs_persisted == inner.epochs.version() {
                    return Ok(());
                }
            }
            self.persist_epochs().await?;
        }
    }
}

#[cfg(test)]
#[path = "epoch_cache_tests.rs"]
mod tests;
