//! The offsets that bound a partition, owned by one type whose fields only
//! its own methods can change, each checking the invariants below.
//!
//! ```text
//! log_start ≤ last_stable ≤ high_watermark ≤ durable ≤ max(written, synced)
//! high_watermark ≤ max(replicated bound, log_start)
//! written ≤ log_end, synced ≤ log_end
//! ```
//! - `log_end` (Kafka's log end offset, `next_offset`): the next offset to
//!   assign; batches up to it are in memory, maybe not yet on the device.
//! - `written`: below it, batches are written to their segment files (they
//!   survive a process crash); `synced`: below it, durable (they survive a
//!   power loss): covered by an `fdatasync` of the segment, or by a durable
//!   frame of the shard's write-ahead ring, which a restart redoes into the
//!   segment. Only the ring puts `synced` above `written`: its batches are
//!   acknowledged before their segment write (`wal/writeback.rs`), and
//!   until then are read from the tail cache, which keeps all of them.
//! - `durable`: below it, batches are as durable on this node as the flush
//!   mode promises (`batch`: synced, `interval`: written). acks=1 is
//!   answered when it passes the batch, and followers copy only below it.
//! - `replicated bound`: set by the replication pipeline. On a leader, the
//!   smallest log end of its in-sync followers; on a follower, its leader's
//!   high watermark. Unbounded (`i64::MAX`) for a partition with no other
//!   in-sync replica.
//! - `high_watermark`: min(durable, replicated bound). Consumers see only
//!   what lies below it, so they never see a record that a failed write, a
//!   crash or a leader change can take back, and whose offset could then be
//!   given to a different record; acks=all is answered when it passes the
//!   batch. It only grows, except when a new role resets the bound
//!   ([`Offsets::reset_bound`]) and when a truncation hides a suffix.
//! - `last_stable`: Kafka's last stable offset: min(high watermark, first
//!   unstable offset), never below the log start. The first unstable
//!   offset is the lowest first offset of the open transactions and of the
//!   completed ones whose marker is not yet below the high watermark
//!   (`txn_state.rs`, given here by `set_first_unstable`); read_committed
//!   consumers read only below the last stable offset.
//! - `log_start`: the first offset kept (retention and DeleteRecords move it).
//!
//! Every offset only grows while the log lives, but for the exceptions
//! above. A recovery in place (after a failed write) builds a fresh state
//! from the files; its log end is never below the old durable end (what
//! lay below it was on the device), and it keeps the replicated bound.
//!
//! The order checks are a few comparisons and always run; the check that
//! the segment map agrees with them walks it, so it runs in debug builds.

use std::collections::BTreeMap;

use super::config::FlushMode;
use super::partition::PartitionLog;
use super::segment::Segment;

/// The replicated bound of a partition no other replica has to confirm.
pub const UNBOUNDED: i64 = i64::MAX;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Offsets {
    log_start: i64,
    last_stable: i64,
    /// See `last_stable`; `UNBOUNDED` when no transaction is unstable.
    first_unstable: i64,
    high_watermark: i64,
    durable: i64,
    bound: i64,
    written: i64,
    synced: i64,
    log_end: i64,
}

impl Offsets {
    /// A log loaded from its files: everything found is on the device and
    /// synced (the loader syncs it), so all of it is visible.
    pub(super) fn loaded(log_start: i64, log_end: i64) -> Self {
        let o = Self {
            log_start,
            last_stable: log_end,
            first_unstable: UNBOUNDED,
            high_watermark: log_end,
            durable: log_end,
            bound: UNBOUNDED,
            written: log_end,
            synced: log_end,
            log_end,
        };
        o.check();
        o
    }

    pub(super) fn log_start(&self) -> i64 {
        self.log_start
    }

    pub(super) fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    pub(super) fn durable(&self) -> i64 {
        self.durable
    }

    pub(super) fn replicated_bound(&self) -> i64 {
        self.bound
    }

    pub(super) fn last_stable(&self) -> i64 {
        self.last_stable
    }

    /// The transactions' first unstable offset changed (`None`: nothing is
    /// unstable). Returns true if the last stable offset moved.
    pub(super) fn set_first_unstable(&mut self, offset: Option<i64>) -> bool {
        self.first_unstable = offset.unwrap_or(UNBOUNDED);
        let before = self.last_stable;
        self.settle_last_stable();
        self.check();
        self.last_stable != before
    }

    /// min(high watermark, first unstable offset), never below the log
    /// start (retention and DeleteRecords may pass an open transaction's
    /// first offset; nothing below the log start is read anyway).
    fn settle_last_stable(&mut self) {
        self.last_stable = self
            .high_watermark
            .min(self.first_unstable)
            .max(self.log_start);
    }

    pub(super) fn written(&self) -> i64 {
        self.written
    }

    pub(super) fn synced(&self) -> i64 {
        self.synced
    }

    pub(super) fn log_end(&self) -> i64 {
        self.log_end
    }

    /// A batch ending at `last_offset` was appended at the log end.
    #[inline]
    pub(super) fn append(&mut self, last_offset: i64) {
        assert!(
            last_offset >= self.log_end,
            "batch ending at {last_offset} appended below the log end {}",
            self.log_end
        );
        self.log_end = last_offset + 1;
    }

    /// Everything below `end` is written to the device.
    pub(super) fn mark_written(&mut self, end: i64) {
        self.written = self.written.max(end);
        self.check();
    }

    /// Everything below `end` is covered by an fdatasync.
    pub(super) fn mark_synced(&mut self, end: i64) {
        self.synced = self.synced.max(end);
        self.check();
    }

    /// Raise the durable end to what the flush mode makes durable, and the
    /// high watermark (and the last stable offset with it) as far as the
    /// replicated bound lets it. Returns true if the high watermark moved.
    pub(super) fn advance_high_watermark(&mut self, mode: FlushMode) -> bool {
        let durable = match mode {
            FlushMode::Batch => self.synced,
            FlushMode::Interval => self.written,
        };
        self.durable = self.durable.max(durable);
        self.raise_visible()
    }

    /// Raise the replicated bound (a follower caught up, a leader's high
    /// watermark came in). A smaller value than the current one is ignored:
    /// the bound only grows within a role. Returns true if the high
    /// watermark moved.
    pub(super) fn advance_bound(&mut self, bound: i64) -> bool {
        self.bound = self.bound.max(bound);
        self.raise_visible()
    }

    /// Set the replicated bound for a new role (leader of a new epoch,
    /// follower of a new leader, or no replication at all: `UNBOUNDED`).
    /// The high watermark may go down to it, never below the log start
    /// (nothing below that is readable anyway): a follower's log loaded
    /// from its files shows only what its leader said was committed.
    pub(super) fn reset_bound(&mut self, bound: i64) {
        self.bound = bound;
        let visible = self.durable.min(bound).max(self.log_start);
        if visible < self.high_watermark {
            self.high_watermark = visible;
            self.settle_last_stable();
        }
        self.raise_visible();
    }

    fn raise_visible(&mut self) -> bool {
        let visible = self.durable.min(self.bound);
        let moved = visible > self.high_watermark;
        if moved {
            self.high_watermark = visible;
            self.settle_last_stable();
        }
        self.check();
        moved
    }

    /// Move the log start up to `offset` (retention, DeleteRecords, a
    /// checkpoint kept across a recovery). It never passes the high
    /// watermark: data a consumer has not been allowed to see is not
    /// deleted under it. Returns true if it moved.
    pub(super) fn advance_log_start(&mut self, offset: i64) -> bool {
        assert!(
            offset <= self.high_watermark,
            "log start {offset} beyond the high watermark {}",
            self.high_watermark
        );
        let moved = offset > self.log_start;
        if moved {
            self.log_start = offset;
            self.settle_last_stable();
        }
        self.check();
        moved
    }

    /// A truncation cut the files at `end` but the state could not be
    /// rebuilt from them (a storage fault; recovery in place follows):
    /// nothing from `end` on may be served meanwhile. The other offsets
    /// stay until the recovery replaces them all.
    pub(super) fn hide_from(&mut self, end: i64) {
        self.durable = self.durable.min(end);
        self.high_watermark = self.high_watermark.min(end);
        self.log_start = self.log_start.min(self.high_watermark);
        self.settle_last_stable();
        self.check();
    }

    /// The invariants in the module comment. Cheap: always on.
    fn check(&self) {
        assert!(
            self.log_start <= self.last_stable,
            "log start {} above last stable offset {}",
            self.log_start,
            self.last_stable
        );
        assert!(
            self.last_stable <= self.high_watermark,
            "last stable offset {} above high watermark {}",
            self.last_stable,
            self.high_watermark
        );
        assert!(
            self.high_watermark <= self.durable,
            "high watermark {} above the durable end {}",
            self.high_watermark,
            self.durable
        );
        assert!(
            self.high_watermark <= self.bound.max(self.log_start),
            "high watermark {} above the replicated bound {}",
            self.high_watermark,
            self.bound
        );
        assert!(
            self.durable <= self.written.max(self.synced),
            "durable end {} above written {} and synced {}",
            self.durable,
            self.written,
            self.synced
        );
        assert!(
            self.written <= self.log_end,
            "written {} above log end {}",
            self.written,
            self.log_end
        );
        assert!(
            self.synced <= self.log_end,
            "synced {} above log end {}",
            self.synced,
            self.log_end
        );
    }

    /// The segment map agrees with the offsets: the first segment starts at
    /// or below the log start, and the active (last) one ends at the log
    /// end. Walks nothing but the ends, yet is only run in debug builds as
    /// it is called on every append.
    pub(super) fn debug_check_segments(&self, segments: &BTreeMap<i64, Segment>) {
        if cfg!(debug_assertions) {
            let (&first, _) = segments.iter().next().expect("a log has a segment");
            let (&last, active) = segments.iter().next_back().expect("a log has a segment");
            assert!(
                first <= self.log_start,
                "first segment {first} above log start {}",
                self.log_start
            );
            assert!(
                last <= self.log_end && active.next_offset == self.log_end,
                "active segment {last} ends at {}, log end is {}",
                active.next_offset,
                self.log_end
            );
        }
    }
}

impl PartitionLog {
    /// After the flusher moved `written`/`synced`: raise the high watermark
    /// and wake the fetches waiting for it (appends alone never wake them).
    pub(super) fn publish_durable(&self) {
        let mode = self.config.borrow().flush_mode;
        let moved = {
            let mut inner = self.inner.borrow_mut();
            let moved = inner.offsets.advance_high_watermark(mode);
            if moved {
                // Transactions whose marker it passed are stable now.
                inner.refresh_last_stable();
            }
            moved
        };
        if moved {
            self.data_signal.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_move_in_order_and_the_watermark_follows_the_flush_mode() {
        let mut o = Offsets::loaded(5, 10);
        o.append(14);
        assert_eq!(o.log_end(), 15);
        o.mark_written(12);
        assert!(!o.advance_high_watermark(FlushMode::Batch));
        assert!(o.advance_high_watermark(FlushMode::Interval));
        assert_eq!((o.high_watermark(), o.last_stable()), (12, 12));
        o.mark_synced(12);
        o.mark_written(11); // a late, smaller report never lowers it
        assert_eq!(o.written(), 12);
        assert!(o.advance_log_start(12));
        assert!(!o.advance_log_start(7));
        assert_eq!(o.log_start(), 12);
    }

    #[test]
    fn the_replicated_bound_holds_the_high_watermark_and_only_a_new_role_lowers_it() {
        let mut o = Offsets::loaded(0, 10);
        // A follower of a leader that committed 4: its loaded log shows 4.
        o.reset_bound(4);
        assert_eq!(
            (o.high_watermark(), o.last_stable(), o.durable()),
            (4, 4, 10)
        );
        assert!(
            !o.advance_bound(3),
            "a smaller bound within the role is ignored"
        );
        assert_eq!(o.replicated_bound(), 4);
        assert!(o.advance_bound(8));
        assert_eq!(o.high_watermark(), 8);
        // Appended but not durable: the bound alone does not show it.
        o.append(14);
        assert!(o.advance_bound(15));
        assert_eq!(o.high_watermark(), 10);
        o.mark_synced(15);
        assert!(o.advance_high_watermark(FlushMode::Batch));
        assert_eq!(o.high_watermark(), 15);
        // Leading alone: unbounded.
        o.reset_bound(UNBOUNDED);
        assert_eq!(o.high_watermark(), 15);
        // A bound below the log start shows nothing new, and breaks nothing.
        assert!(o.advance_log_start(12));
        o.reset_bound(2);
        assert_eq!(o.high_watermark(), 12);
        assert_eq!(o.log_start(), 12);
    }

    #[test]
    fn the_last_stable_offset_is_the_high_watermark_bounded_by_transactions() {
        let mut o = Offsets::loaded(0, 10);
        assert!(o.set_first_unstable(Some(4)));
        assert_eq!((o.last_stable(), o.high_watermark()), (4, 10));
        o.append(19);
        o.mark_synced(20);
        assert!(o.advance_high_watermark(FlushMode::Batch));
        assert_eq!(
            o.last_stable(),
            4,
            "the high watermark alone does not move it"
        );
        assert!(o.set_first_unstable(None));
        assert_eq!(o.last_stable(), 20);
        // Never below the log start (retention passed an open transaction).
        assert!(o.set_first_unstable(Some(12)));
        assert!(o.advance_log_start(15));
        assert_eq!(o.last_stable(), 15);
        // A follower's lowered bound lowers it too.
        o.set_first_unstable(None);
        o.reset_bound(17);
        assert_eq!((o.high_watermark(), o.last_stable()), (17, 17));
        o.hide_from(16);
        assert_eq!((o.high_watermark(), o.last_stable()), (16, 16));
    }

    #[test]
    #[should_panic(expected = "above log end")]
    fn written_past_the_log_end_is_refused() {
        let mut o = Offsets::loaded(0, 10);
        o.mark_written(11);
    }

    #[test]
    #[should_panic(expected = "beyond the high watermark")]
    fn log_start_past_the_high_watermark_is_refused() {
        let mut o = Offsets::loaded(0, 10);
        o.append(19);
        o.advance_log_start(11);
    }

    #[test]
    #[should_panic(expected = "below the log end")]
    fn appends_below_the_log_end_are_refused() {
        let mut o = Offsets::loaded(0, 10);
        o.append(5);
    }

    /// The offsets are private to this file; this keeps it that way (no
    /// field of that name is assigned anywhere else in the log).
    #[test]
    fn only_this_file_assigns_the_offsets() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/log");
        let fields = [
            "next_offset =",
            "log_start_offset =",
            "written_offset =",
            "synced_offset =",
            "high_watermark =",
            ".log_start =",
            ".log_end =",
            ".written =",
            ".synced =",
        ];
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // Modules of the log in directories of their own (wal/).
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            } else {
                files.push(path);
            }
        }
        for path in files {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            if name == "offsets.rs" || name.ends_with("tests.rs") || name == "segment.rs" {
                continue; // segment.rs: a segment's own next_offset
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines() {
                let code = line.split("//").next().unwrap();
                for f in fields {
                    assert!(
                        !code.contains(&format!("inner.{f}"))
                            && !code.contains(&format!("offsets{f}")),
                        "{name}: `{}` assigns a log offset outside offsets.rs",
                        line.trim()
                    );
                }
            }
        }
    }
}
