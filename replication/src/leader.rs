//! The leader side on one shard: the partitions this shard leads, each with
//! its log and its followers' progress ([`LeaderProgress`]), and the log's
//! replicated bound kept equal to the progress' high watermark.
//!
//! The broker calls in from the owner shard only: when the metadata log
//! makes this node leader (or changes the ISR), when a follower's fetch is
//! served, and on a timer for the lag check. ISR changes come back as
//! [`IsrChange`]s for the broker to propose to the metadata log; a refused
//! or lost proposal is reported with [`Leaders::change_failed`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use shard::log::{PartitionLog, UNBOUNDED};
use shard::signal::Signal;

use crate::fetcher::TopicPartition;
use crate::progress::{IsrChange, LeaderProgress};
use crate::throttle::{Rates, ReplicationThrottle};

struct Led {
    log: Rc<PartitionLog>,
    progress: LeaderProgress,
    /// Only this node is in the maximal ISR: the log is unbounded.
    alone: bool,
}

/// What the metadata log says of a partition this node leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leadership {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

pub struct Leaders {
    me: i32,
    led: RefCell<HashMap<TopicPartition, Led>>,
    /// Notified at every committed ISR change and every loss of
    /// leadership: acks=all waiters look again.
    changed: Signal,
    /// This shard's replication quotas.
    throttle: RefCell<ReplicationThrottle>,
}

impl Leaders {
    pub fn new(me: i32) -> Self {
        Self {
            me,
            led: RefCell::new(HashMap::new()),
            changed: Signal::new(),
            throttle: RefCell::new(ReplicationThrottle::default()),
        }
    }

    /// The metadata log says this node leads `tp` as `l`. A new leader
    /// epoch (or a first call) starts a fresh progress; the same epoch
    /// with a newer partition epoch is an ISR change committed.
    pub fn lead(&self, tp: TopicPartition, log: Rc<PartitionLog>, l: &Leadership, now_ms: i64) {
        let mut led = self.led.borrow_mut();
        match led.get_mut(&tp) {
            Some(x) if x.progress.leader_epoch() == l.leader_epoch && Rc::ptr_eq(&x.log, &log) => {
                if l.partition_epoch > x.progress.partition_epoch() {
                    x.progress
                        .on_committed(&l.replicas, &l.isr, l.partition_epoch);
                    Self::rebound(self.me, x);
                    self.changed.notify_all();
                }
            }
            _ => {
                let progress = LeaderProgress::new(
                    self.me,
                    &l.replicas,
                    &l.isr,
                    l.leader_epoch,
                    l.partition_epoch,
                    log.log_end_offset(),
                    log.high_watermark(),
                    now_ms,
                );
                let mut x = Led {
                    log,
                    progress,
                    alone: false,
                };
                // Start from what the log shows as committed.
                x.log.reset_replicated_bound(x.log.high_watermark());
                Self::rebound(self.me, &mut x);
                led.insert(tp, x);
                self.changed.notify_all();
            }
        }
    }

    /// This node no longer leads `tp`.
    pub fn resign(&self, tp: &TopicPartition) {
        if self.led.borrow_mut().remove(tp).is_some() {
            self.changed.notify_all();
        }
    }

    /// Keep the log's bound at the progress' high watermark: unbounded
    /// while no other replica is in the (maximal) ISR.
    fn rebound(me: i32, x: &mut Led) {
        let alone = x.progress.isr() == [me] && !x.progress.change_pending();
        if alone {
            x.log.reset_replicated_bound(UNBOUNDED);
        } else if x.alone {
            // Followers count again: from what is visible now.
            x.log.reset_replicated_bound(x.log.high_watermark());
        }
        x.alone = alone;
        if !alone {
            if let Some(hw) = x.progress.update_high_watermark(x.log.durable_end()) {
                x.log.advance_replicated_bound(hw);
            }
        }
    }

    /// A follower fetched `tp` from `offset`; `live`: it is an unfenced
    /// broker. Returns an expand to propose. Refused (None) if `tp` is not
    /// led here.
    pub fn on_fetch(
        &self,
        tp: &TopicPartition,
        follower: i32,
        offset: i64,
        now_ms: i64,
        live: bool,
    ) -> Option<IsrChange> {
        let mut led = self.led.borrow_mut();
        let x = led.get_mut(tp)?;
        let end = x.log.durable_end();
        let out = x.progress.on_fetch(follower, offset, end, now_ms, live);
        if out.expand.is_some() {
            // The new member counts from now (maximal ISR).
            Self::rebound(self.me, x);
        } else if let Some(hw) = out.high_watermark {
            if !x.alone {
                x.log.advance_replicated_bound(hw);
            }
        }
        out.expand
    }

    /// The shrinks to propose: in-sync followers not caught up for
    /// `max_lag_ms`, or not `live`.
    pub fn check_lagging(
        &self,
        now_ms: i64,
        max_lag_ms: i64,
        live: impl Fn(i32) -> bool,
    ) -> Vec<(TopicPartition, IsrChange)> {
        let mut led = self.led.borrow_mut();
        let mut out = Vec::new();
        for (tp, x) in led.iter_mut() {
            let end = x.log.durable_end();
            if let Some(change) = x.progress.check_lagging(now_ms, max_lag_ms, end, &live) {
                out.push((tp.clone(), change));
            }
        }
        out
    }

    /// A proposed change was refused or lost.
    pub fn change_failed(&self, tp: &TopicPartition, change: &IsrChange) {
        let mut led = self.led.borrow_mut();
        if let Some(x) = led.get_mut(tp) {
            if x.progress.leader_epoch() == change.leader_epoch
                && x.progress.partition_epoch() == change.partition_epoch
            {
                x.progress.change_failed();
                Self::rebound(self.me, x);
            }
        }
    }

    /// The leader epoch `tp` is led in here, if it is.
    pub fn leader_epoch(&self, tp: &TopicPartition) -> Option<i32> {
        self.led.borrow().get(tp).map(|x| x.progress.leader_epoch())
    }

    /// For acks=all: the committed ISR's size and the replica count of
    /// `tp`, if led here.
    pub fn isr_and_replicas(&self, tp: &TopicPartition) -> Option<(usize, usize)> {
        let led = self.led.borrow();
        led.get(tp)
            .map(|x| (x.progress.isr().len(), x.progress.replica_count()))
    }

    /// Whether `replica` is in the committed ISR of `tp`, led here.
    pub fn in_isr(&self, tp: &TopicPartition, replica: i32) -> bool {
        let led = self.led.borrow();
        led.get(tp)
            .is_some_and(|x| x.progress.isr().contains(&replica))
    }

    /// How many bytes a throttled, out-of-sync replica on `follower` may
    /// get now ([`ReplicationThrottle::admit`]).
    pub fn admit_throttled(&self, follower: i32, rates: Rates, now_ms: i64) -> Option<usize> {
        self.throttle.borrow_mut().admit(follower, rates, now_ms)
    }

    /// `bytes` of a throttled replica went to `follower`.
    pub fn record_throttled(&self, follower: i32, rates: Rates, bytes: usize) {
        self.throttle.borrow_mut().record(follower, rates, bytes);
    }

    /// `f` of `tp`'s progress, if led here (read-only: KIP-392's replica
    /// selection reads the ISR and the followers' log ends).
    pub fn with_progress<R>(
        &self,
        tp: &TopicPartition,
        f: impl FnOnce(&LeaderProgress) -> R,
    ) -> Option<R> {
        self.led.borrow().get(tp).map(|x| f(&x.progress))
    }

    /// Notified when an ISR change commits or leadership ends.
    pub fn changed(&self) -> shard::signal::Notified {
        self.changed.notified()
    }
}
