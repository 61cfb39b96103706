//! A leader's view of its followers, for one partition in one leader epoch
//! (Kafka's `Partition` and `Replica` state on the leader).
//!
//! Each follower's log end is the offset it last fetched from: a follower
//! asks for offset N only once everything below N is in its log, as
//! durably as `log_flush` promises (`DESIGN.md`). From those:
//! - the **high watermark**: the smallest log end over the leader and the
//!   followers of the *maximal* ISR (the committed ISR together with a
//!   member being added), never going back;
//! - **shrinks**: an in-sync follower that has not been caught up for
//!   `replica_lag_time_max_ms` (caught up: it fetched at or past the
//!   leader's end, or past where the leader's end was at its previous
//!   fetch; Kafka's `lastCaughtUpTimeMs`);
//! - **expands**: a live follower outside the ISR whose log end reached the
//!   high watermark and the offset this epoch started at.
//!
//! One ISR change is in flight at a time. It is proposed to the metadata
//! log with the leader and partition epochs it was computed from, and the
//! metadata log refuses it if either moved. While a shrink is pending the
//! old, larger ISR still counts for the high watermark; while an expand is
//! pending the new member counts already. Either way the high watermark
//! never passes what an ISR that may be committed does not hold.
//!
//! Pure: the caller passes the time and the leader's durable end, so every
//! rule is tested without a clock or a network.

use std::collections::BTreeMap;

/// What a follower's progress was last seen as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Follower {
    /// The offset it last fetched from (its log end); -1 before its first
    /// fetch of this epoch.
    log_end: i64,
    /// When it was last caught up (ms).
    last_caught_up_ms: i64,
    /// The leader's end and the time at its previous fetch.
    last_fetch_leader_end: i64,
    last_fetch_ms: i64,
}

/// An ISR change to propose to the metadata log (Kafka's AlterPartition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrChange {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The whole new ISR, sorted, the leader included.
    pub isr: Vec<i32>,
}

/// What a follower's fetch changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FetchOutcome {
    /// The new high watermark, if it moved.
    pub high_watermark: Option<i64>,
    /// An expand to propose: this follower caught up.
    pub expand: Option<IsrChange>,
}

#[derive(Debug, Clone)]
pub struct LeaderProgress {
    me: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    /// The ISR the metadata log committed, sorted (the leader is in it).
    isr: Vec<i32>,
    /// A proposed ISR not yet committed.
    pending: Option<Vec<i32>>,
    followers: BTreeMap<i32, Follower>,
    /// The leader's log end when this epoch began (Kafka's
    /// `leaderEpochStartOffset`): a follower joins the ISR only once it
    /// holds everything before the epoch.
    epoch_start: i64,
    high_watermark: i64,
}

impl LeaderProgress {
    /// Leadership in `leader_epoch` begins. `high_watermark` is what this
    /// node knew as committed (as a follower, or before a restart); the
    /// followers in the ISR count as caught up now, so none is dropped
    /// before it had `replica_lag_time_max_ms` to fetch.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        me: i32,
        replicas: &[i32],
        isr: &[i32],
        leader_epoch: i32,
        partition_epoch: i32,
        log_end: i64,
        high_watermark: i64,
        now_ms: i64,
    ) -> Self {
        assert!(
            replicas.contains(&me),
            "leader {me} not among replicas {replicas:?}"
        );
        assert!(isr.contains(&me), "leader {me} not in its ISR {isr:?}");
        assert!(
            high_watermark <= log_end,
            "high watermark {high_watermark} past log end {log_end}"
        );
        let followers = replicas
            .iter()
            .filter(|&&r| r != me)
            .map(|&r| {
                let caught_up = if isr.contains(&r) { now_ms } else { 0 };
                let f = Follower {
                    log_end: -1,
                    last_caught_up_ms: caught_up,
                    last_fetch_leader_end: -1,
                    last_fetch_ms: 0,
                };
                (r, f)
            })
            .collect();
        let mut isr = isr.to_vec();
        isr.sort_unstable();
        Self {
            me,
            leader_epoch,
            partition_epoch,
            isr,
            pending: None,
            followers,
            epoch_start: log_end,
            high_watermark,
        }
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch
    }

    pub fn partition_epoch(&self) -> i32 {
        self.partition_epoch
    }

    /// The committed ISR (acks=all counts it against `min.insync.replicas`).
    pub fn isr(&self) -> &[i32] {
        &self.isr
    }

    pub fn high_watermark(&self) -> i64 {
        self.high_watermark
    }

    /// Replicas, the leader included.
    pub fn replica_count(&self) -> usize {
        self.followers.len() + 1
    }

    /// Whether an ISR change waits for the metadata log.
    pub fn change_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// A follower's log end as last fetched (-1 before its first fetch).
    pub fn follower_log_end(&self, follower: i32) -> Option<i64> {
        self.followers.get(&follower).map(|f| f.log_end)
    }

    /// Each follower's id, log end as last fetched (-1 before its first
    /// fetch) and when it was last caught up (ms): what KIP-392's replica
    /// selection weighs.
    pub fn followers(&self) -> impl Iterator<Item = (i32, i64, i64)> + '_ {
        self.followers
            .iter()
            .map(|(&id, f)| (id, f.log_end, f.last_caught_up_ms))
    }

    /// The committed ISR together with a member being added.
    fn maximal_isr(&self) -> Vec<i32> {
        let mut out = self.isr.clone();
        if let Some(p) = &self.pending {
            out.extend(p.iter().copied());
            out.sort_unstable();
            out.dedup();
        }
        out
    }

    /// Recompute the high watermark with the leader's durable end `end`;
    /// returns it if it moved.
    pub fn update_high_watermark(&mut self, end: i64) -> Option<i64> {
        let mut hw = end;
        for r in self.maximal_isr() {
            if r == self.me {
                continue;
            }
            let f = self.followers.get(&r).expect("an ISR member is a replica");
            hw = hw.min(f.log_end);
        }
        if hw > self.high_watermark {
            self.high_watermark = hw;
            Some(hw)
        } else {
            None
        }
    }

    /// `follower` fetched from `offset` at `now_ms`, when the leader's
    /// durable end was `end`. `live`: the follower is registered and not
    /// fenced (only live followers join the ISR).
    pub fn on_fetch(
        &mut self,
        follower: i32,
        offset: i64,
        end: i64,
        now_ms: i64,
        live: bool,
    ) -> FetchOutcome {
        let Some(f) = self.followers.get_mut(&follower) else {
            return FetchOutcome::default(); // not a replica (any more)
        };
        assert!(offset >= 0, "follower {follower} fetched from {offset}");
        if offset >= end {
            f.last_caught_up_ms = f.last_caught_up_ms.max(now_ms);
        } else if offset >= f.last_fetch_leader_end && f.last_fetch_leader_end >= 0 {
            f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
        }
        f.log_end = offset;
        f.last_fetch_leader_end = end;
        f.last_fetch_ms = now_ms;
        let high_watermark = self.update_high_watermark(end);
        let expand = if live {
            self.expand_with(follower)
        } else {
            None
        };
        FetchOutcome {
            high_watermark,
            expand,
        }
    }

    /// The expand to propose if `follower` may join the ISR now.
    fn expand_with(&mut self, follower: i32) -> Option<IsrChange> {
        if self.pending.is_some() || self.isr.contains(&follower) {
            return None;
        }
        let f = self.followers[&follower];
        if f.log_end < self.high_watermark || f.log_end < self.epoch_start {
            return None;
        }
        let mut isr = self.isr.clone();
        isr.push(follower);
        isr.sort_unstable();
        Some(self.propose(isr))
    }

    /// The shrink to propose, if some in-sync followers have not been caught
    /// up for `max_lag_ms` (or are no longer live). `end`: the leader's
    /// durable end; a follower at it is in sync however long it was idle.
    pub fn check_lagging(
        &mut self,
        now_ms: i64,
        max_lag_ms: i64,
        end: i64,
        live: impl Fn(i32) -> bool,
    ) -> Option<IsrChange> {
        if self.pending.is_some() {
            return None;
        }
        let out_of_sync: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|&r| r != self.me)
            .filter(|r| {
                let f = &self.followers[r];
                !live(*r) || (f.log_end != end && now_ms - f.last_caught_up_ms > max_lag_ms)
            })
            .collect();
        if out_of_sync.is_empty() {
            return None;
        }
        let isr: Vec<i32> = self
            .isr
            .iter()
            .copied()
            .filter(|r| !out_of_sync.contains(r))
            .collect();
        Some(self.propose(isr))
    }

    fn propose(&mut self, isr: Vec<i32>) -> IsrChange {
        assert!(isr.contains(&self.me), "an ISR without its leader: {isr:?}");
        self.pending = Some(isr.clone());
        IsrChange {
            leader_epoch: self.leader_epoch,
            partition_epoch: self.partition_epoch,
            isr,
        }
    }

    /// The proposal was refused or lost: the next check may propose again.
    pub fn change_failed(&mut self) {
        self.pending = None;
    }

    /// The metadata log committed a new state of the partition in this
    /// leader epoch: an ISR change (ours or the controller's), or replicas
    /// a reassignment added or removed. An added replica starts as never
    /// caught up (it joins the ISR by catching up); a removed one is
    /// forgotten.
    pub fn on_committed(&mut self, replicas: &[i32], isr: &[i32], partition_epoch: i32) {
        assert!(
            partition_epoch >= self.partition_epoch,
            "partition epoch went back from {} to {partition_epoch}",
            self.partition_epoch
        );
        assert!(
            isr.contains(&self.me),
            "committed ISR {isr:?} without its leader {}",
            self.me
        );
        assert!(
            isr.iter().all(|r| replicas.contains(r)),
            "committed ISR {isr:?} not among the replicas {replicas:?}"
        );
        self.followers.retain(|r, _| replicas.contains(r));
        for &r in replicas {
            if r != self.me {
                self.followers.entry(r).or_insert(Follower {
                    log_end: -1,
                    last_caught_up_ms: 0,
                    last_fetch_leader_end: -1,
                    last_fetch_ms: 0,
                });
            }
        }
        let mut isr = isr.to_vec();
        isr.sort_unstable();
        self.partition_epoch = partition_epoch;
        self.isr = isr;
        self.pending = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAG: i64 = 30_000;

    fn leader() -> LeaderProgress {
        // Node 1 leads {1,2,3}, all in sync, log end 100, committed 90.
        LeaderProgress::new(1, &[1, 2, 3], &[1, 2, 3], 5, 7, 100, 90, 1_000)
    }

    #[test]
    fn the_high_watermark_is_the_smallest_log_end_of_the_isr_and_never_goes_back() {
        let mut p = leader();
        assert_eq!(p.on_fetch(2, 100, 100, 1_010, true).high_watermark, None);
        assert_eq!(p.high_watermark(), 90, "follower 3 has not fetched yet");
        assert_eq!(p.on_fetch(3, 95, 100, 1_020, true).high_watermark, Some(95));
        // A follower fetching again from a lower offset (it truncated) does
        // not take back what was committed.
        assert_eq!(p.on_fetch(3, 93, 100, 1_030, true).high_watermark, None);
        assert_eq!(p.high_watermark(), 95);
        assert_eq!(
            p.on_fetch(3, 100, 100, 1_040, true).high_watermark,
            Some(100)
        );
        // The leader's own durable end bounds it too.
        assert_eq!(p.on_fetch(2, 120, 110, 1_050, true).high_watermark, None);
        assert_eq!(p.update_high_watermark(110), None, "3 is still at 100");
    }

    #[test]
    fn a_follower_not_caught_up_for_the_lag_time_leaves_the_isr() {
        let mut p = leader();
        let live = |_| true;
        p.on_fetch(2, 100, 100, 1_000, true);
        p.on_fetch(3, 100, 100, 1_000, true);
        // The leader's end moves on; 2 keeps up, 3 stops fetching.
        let (mut now, mut end) = (1_000, 100);
        let change = loop {
            now += 1_000;
            end += 10;
            p.on_fetch(2, end, end, now, true);
            match p.check_lagging(now, LAG, end, live) {
                None => assert!(now - 1_000 <= LAG, "3 not dropped at {now}"),
                Some(change) => break change,
            }
        };
        assert_eq!(
            now - 1_000,
            LAG + 1_000,
            "dropped after the lag time, not before"
        );
        assert_eq!(change.isr, vec![1, 2]);
        assert_eq!((change.leader_epoch, change.partition_epoch), (5, 7));
        assert!(p.change_pending());
        assert_eq!(
            p.check_lagging(now + 1, LAG, end, live),
            None,
            "one change at a time"
        );
        // While pending, 3 still counts: no high watermark past it.
        assert_eq!(p.high_watermark(), 100);
        p.on_committed(&[1, 2, 3], &[1, 2], 8);
        assert_eq!(p.update_high_watermark(end), Some(end));
        assert_eq!(p.isr(), &[1, 2]);
    }

    #[test]
    fn a_slow_follower_that_keeps_reaching_where_the_leader_was_stays_in_sync() {
        let mut p = leader();
        // Always one fetch behind the leader's end, fetching every second
        // for a minute: caught up to the previous end every time.
        let mut now = 1_000;
        let mut end = 100;
        p.on_fetch(3, 100, end, now, true);
        for _ in 0..60 {
            let prev = end;
            end += 10;
            now += 1_000;
            p.on_fetch(2, prev, end, now, true);
            p.on_fetch(3, prev, end, now, true);
            assert_eq!(p.check_lagging(now, LAG, end, |_| true), None);
        }
        // An idle partition: a follower at the end is in sync forever.
        assert_eq!(
            p.check_lagging(now + 10 * LAG, LAG, end - 10, |_| true),
            None
        );
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_at_once() {
        let mut p = leader();
        let change = p.check_lagging(1_001, LAG, 100, |r| r != 2).unwrap();
        assert_eq!(change.isr, vec![1, 3]);
    }

    #[test]
    fn a_follower_rejoins_once_it_reaches_the_high_watermark_and_the_epoch_start() {
        // 3 is out of the ISR; this epoch began at 100.
        let mut p = LeaderProgress::new(1, &[1, 2, 3], &[1, 2], 5, 7, 100, 80, 1_000);
        p.on_fetch(2, 100, 100, 1_001, true);
        assert_eq!(p.high_watermark(), 100);
        assert_eq!(
            p.on_fetch(3, 90, 100, 1_002, true).expand,
            None,
            "below the hwm"
        );
        assert_eq!(p.on_fetch(3, 100, 100, 1_003, false).expand, None, "fenced");
        let grow = p.on_fetch(3, 100, 100, 1_004, true).expand.unwrap();
        assert_eq!(grow.isr, vec![1, 2, 3]);
        // While the expand is pending 3 counts for the high watermark.
        assert_eq!(p.on_fetch(2, 120, 120, 1_005, true).high_watermark, None);
        assert_eq!(
            p.on_fetch(3, 110, 120, 1_006, true).high_watermark,
            Some(110)
        );
        // Refused (a stale partition epoch): proposed again at the next fetch.
        p.change_failed();
        assert!(p.on_fetch(3, 120, 120, 1_007, true).expand.is_some());
        p.on_committed(&[1, 2, 3], &[3, 1, 2], 8);
        assert_eq!(p.isr(), &[1, 2, 3]);
        assert_eq!(p.partition_epoch(), 8);
    }

    #[test]
    fn a_follower_behind_the_epoch_start_does_not_rejoin() {
        // Committed 50 but this epoch began at 100: a follower at 60 holds
        // the committed data but not the new leader's older tail.
        let mut p = LeaderProgress::new(1, &[1, 2], &[1], 5, 7, 100, 50, 1_000);
        assert_eq!(p.on_fetch(2, 60, 100, 1_001, true).expand, None);
        assert!(p.on_fetch(2, 100, 100, 1_002, true).expand.is_some());
    }

    #[test]
    #[should_panic(expected = "without its leader")]
    fn an_isr_without_the_leader_is_refused() {
        leader().on_committed(&[1, 2, 3], &[2, 3], 8);
    }

    #[test]
    fn replicas_added_by_a_reassignment_catch_up_and_removed_ones_are_forgotten() {
        let mut p = leader();
        assert_eq!(p.replica_count(), 3);
        // Broker 4 is added in the same leader epoch.
        p.on_committed(&[2, 3, 4, 1], &[1, 2, 3], 8);
        assert_eq!(p.replica_count(), 4);
        assert_eq!(p.follower_log_end(4), Some(-1));
        // Behind the high watermark it does not join; caught up it does.
        assert_eq!(p.on_fetch(4, 10, 100, 1_001, true).expand, None);
        let grow = p.on_fetch(4, 100, 100, 1_002, true).expand.unwrap();
        assert_eq!(grow.isr, vec![1, 2, 3, 4]);
        // The reassignment completes: 3 is gone (1 would lose leadership in
        // a new epoch, which starts a new progress instead).
        p.on_committed(&[1, 2, 4], &[1, 2, 4], 9);
        assert_eq!(p.replica_count(), 3);
        assert_eq!(p.follower_log_end(3), None);
        assert_eq!(
            p.on_fetch(3, 100, 100, 1_003, true),
            FetchOutcome::default()
        );
    }

    #[test]
    fn fetches_from_a_node_that_is_not_a_replica_change_nothing() {
        let mut p = leader();
        assert_eq!(
            p.on_fetch(9, 100, 100, 1_001, true),
            FetchOutcome::default()
        );
    }
}
