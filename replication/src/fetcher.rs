//! The follower side: one fetcher per (leader broker, shard), a task on the
//! shard fetching every partition the shard follows from that leader in
//! one Fetch request (Kafka's `ReplicaFetcherThread`, one per source broker
//! and fetcher id; here the fetcher id is the shard).
//!
//! Each followed partition is in one of two states:
//! - **Truncating** (after every change of leader epoch, and after an
//!   OFFSET_OUT_OF_RANGE): OffsetForLeaderEpoch for the last epoch in the
//!   local log; the leader answers where that epoch ends in its log, and
//!   the follower cuts its log there (KIP-101, KIP-279). When the leader
//!   does not know the epoch it answers the largest one below it; the
//!   follower cuts at the smaller of the two ends for that epoch and asks
//!   again with what is now its last epoch, until the epochs agree.
//! - **Fetching**: Fetch from the log end with the leader epoch the
//!   follower knows (the leader refuses a stale one), append what comes
//!   with the leader's offsets and epochs, as durably as `log_flush`
//!   promises, before fetching again (so the offset the next fetch names
//!   is durable here: the leader counts it for the high watermark), then
//!   take the leader's high watermark as the log's replicated bound.
//!
//! An error for one partition delays that partition (`RETRY`), never the
//! others; a failed connection is made again after a growing backoff.
//!
//! After each round a fetcher publishes how far its partitions are behind
//! their leader (`crate::stats`, for the broker's metrics).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::EpochEndOffset;
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;
use shard::log::{AckLevel, PartitionLog};
use shard::signal::Signal;

use crate::conn::{Dialer, LeaderConn};
use crate::stats::{self, FetcherLag};

/// Fetch v12: topic names, the replica id, the follower's leader epoch and
/// log start; served by Shardline and by Kafka alike.
const FETCH_VERSION: i16 = 12;
/// OffsetForLeaderEpoch v3: the first with the replica id.
const EPOCH_VERSION: i16 = 3;
/// How long the leader may hold a fetch that finds no new data.
const MAX_WAIT: Duration = Duration::from_millis(500);
/// Per request on top of the wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes per partition and per response (Kafka's `replica.fetch.max.bytes`
/// and `replica.fetch.response.max.bytes`).
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: i32 = 10 << 20;
/// A partition answered with an error waits this long before its next try.
const RETRY: Duration = Duration::from_millis(200);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);

pub type TopicPartition = (String, i32);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Truncating,
    Fetching,
}

struct Followed {
    log: Rc<PartitionLog>,
    leader_epoch: i32,
    state: State,
    /// Not before this (after an error).
    retry_at: Option<Instant>,
    /// The leader's high watermark in its last answer minus our log end
    /// then (0 before the first answer).
    lag_messages: i64,
    /// Wall-clock ms when an answer last left this log at the leader's
    /// high watermark (or when following began).
    caught_up_ms: i64,
}

/// What one fetcher's task shares with whoever adds and removes partitions.
struct Shared {
    /// Unique over the process: the key of its figures in `crate::stats`.
    id: u64,
    leader: i32,
    me: i32,
    dialer: Rc<dyn Dialer>,
    addr: Cell<SocketAddr>,
    partitions: RefCell<BTreeMap<TopicPartition, Followed>>,
    changed: Signal,
    stopped: Cell<bool>,
}

/// The fetchers of one shard, by leader.
pub struct Fetchers {
    me: i32,
    dialer: Rc<dyn Dialer>,
    by_leader: RefCell<BTreeMap<i32, Rc<Shared>>>,
}

impl Fetchers {
    /// `me`: this broker's node id (the replica id in its fetches).
    /// `dialer`: how connections to leaders are made (the inter-broker
    /// listener's security).
    pub fn new(me: i32, dialer: Rc<dyn Dialer>) -> Self {
        Self {
            me,
            dialer,
            by_leader: RefCell::new(BTreeMap::new()),
        }
    }

    /// Follow `tp` from `leader` (at `addr`) in `leader_epoch`: starts with
    /// a truncation. Following it already in that epoch from that leader
    /// changes nothing. The log's replicated bound starts at its log start
    /// (nothing is known committed until the leader says so).
    pub fn follow(
        &self,
        tp: TopicPartition,
        log: Rc<PartitionLog>,
        leader: i32,
        addr: SocketAddr,
        leader_epoch: i32,
    ) {
        assert_ne!(leader, self.me, "{}-{} would follow itself", tp.0, tp.1);
        if self.followed_epoch(&tp, leader) == Some(leader_epoch) {
            return;
        }
        self.unfollow(&tp);
        log.reset_replicated_bound(log.offsets().log_start_offset);
        let shared = self.fetcher_for(leader, addr);
        shared.partitions.borrow_mut().insert(
            tp,
            Followed {
                log,
                leader_epoch,
                state: State::Truncating,
                retry_at: None,
                lag_messages: 0,
                caught_up_ms: stats::now_ms(),
            },
        );
        publish_lag(&shared);
        shared.changed.notify_all();
    }

    /// The leader and the leader epoch `tp` is followed from here, if it is
    /// (a consumer's fetch from this follower is checked against it).
    pub fn followed(&self, tp: &TopicPartition) -> Option<(i32, i32)> {
        let by_leader = self.by_leader.borrow();
        by_leader.iter().find_map(|(leader, shared)| {
            let partitions = shared.partitions.borrow();
            partitions.get(tp).map(|f| (*leader, f.leader_epoch))
        })
    }

    fn followed_epoch(&self, tp: &TopicPartition, leader: i32) -> Option<i32> {
        let by_leader = self.by_leader.borrow();
        let shared = by_leader.get(&leader)?;
        let partitions = shared.partitions.borrow();
        partitions.get(tp).map(|f| f.leader_epoch)
    }

    /// Stop following `tp` (it is led here now, moved, or deleted).
    pub fn unfollow(&self, tp: &TopicPartition) {
        let mut by_leader = self.by_leader.borrow_mut();
        let mut emptied = None;
        for (leader, shared) in by_leader.iter() {
            let (removed, now_empty) = {
                let mut partitions = shared.partitions.borrow_mut();
                let removed = partitions.remove(tp).is_some();
                (removed, removed && partitions.is_empty())
            };
            if now_empty {
                emptied = Some(*leader);
            } else if removed {
                publish_lag(shared);
            }
        }
        if let Some(leader) = emptied {
            let shared = by_leader.remove(&leader).expect("found above");
            shared.stopped.set(true);
            shared.changed.notify_all();
        }
    }

    /// Stop every fetcher (shutdown).
    pub fn stop_all(&self) {
        for (_, shared) in std::mem::take(&mut *self.by_leader.borrow_mut()) {
            shared.stopped.set(true);
            shared.changed.notify_all();
        }
    }

    fn fetcher_for(&self, leader: i32, addr: SocketAddr) -> Rc<Shared> {
        let mut by_leader = self.by_leader.borrow_mut();
        if let Some(shared) = by_leader.get(&leader) {
            shared.addr.set(addr);
            return shared.clone();
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let shared = Rc::new(Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            leader,
            me: self.me,
            dialer: self.dialer.clone(),
            addr: Cell::new(addr),
            partitions: RefCell::new(BTreeMap::new()),
            changed: Signal::new(),
            stopped: Cell::new(false),
        });
        by_leader.insert(leader, shared.clone());
        shard::rt::spawn_detached(run(shared.clone()));
        shared
    }
}

/// One fetcher's task: until stopped, truncate what must be, then fetch.
async fn run(shared: Rc<Shared>) {
    let mut conn: Option<LeaderConn> = None;
    let mut backoff = BACKOFF_MIN;
    while !shared.stopped.get() {
        let Some(wait) = next_work(&shared) else {
            // Nothing to do until a partition is added or one's retry is due.
            let changed = shared.changed.notified();
            match earliest_retry(&shared) {
                Some(at) => {
                    let left = at.saturating_duration_since(Instant::now());
                    let _ = shard::rt::timeout(left, changed).await;
                }
                None => changed.await,
            }
            continue;
        };
        let addr = shared.addr.get();
        if conn.as_ref().is_none_or(|c| c.addr() != addr) {
            match shared.dialer.dial(addr, CONNECT_TIMEOUT).await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!("replica fetcher for leader {}: {e:#}", shared.leader);
                    let changed = shared.changed.notified();
                    let _ = shard::rt::timeout(backoff, changed).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let outcome = match wait {
            Work::Truncate(parts) => truncate(&shared, c, parts).await,
            Work::Fetch(parts) => fetch(&shared, c, parts).await,
        };
        match outcome {
            Ok(()) => backoff = BACKOFF_MIN,
            Err(e) => {
                tracing::warn!("replica fetcher for leader {}: {e:#}", shared.leader);
                conn = None;
                let changed = shared.changed.notified();
                let _ = shard::rt::timeout(backoff, changed).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    stats::publish(shared.id, None);
}

/// Publish this fetcher's largest lag and oldest caught-up time.
fn publish_lag(shared: &Shared) {
    let partitions = shared.partitions.borrow();
    let lag = (!partitions.is_empty()).then(|| FetcherLag {
        max_lag_messages: partitions
            .values()
            .map(|f| f.lag_messages)
            .max()
            .unwrap_or(0),
        oldest_caught_up_ms: partitions
            .values()
            .map(|f| f.caught_up_ms)
            .min()
            .unwrap_or(i64::MAX),
    });
    stats::publish(shared.id, lag);
}

/// One round's partitions: `(tp, log, leader epoch)`.
type Parts = Vec<(TopicPartition, Rc<PartitionLog>, i32)>;

enum Work {
    Truncate(Parts),
    Fetch(Parts),
}

/// Truncations first (a partition fetches only once its log agrees with
/// the leader's), then fetches; partitions waiting out a retry sit out.
fn next_work(shared: &Shared) -> Option<Work> {
    let now = Instant::now();
    let partitions = shared.partitions.borrow();
    let ready = |f: &Followed| f.retry_at.is_none_or(|at| at <= now);
    let pick = |state: State| -> Parts {
        partitions
            .iter()
            .filter(|(_, f)| f.state == state && ready(f))
            .map(|(tp, f)| (tp.clone(), f.log.clone(), f.leader_epoch))
            .collect()
    };
    let truncating = pick(State::Truncating);
    if !truncating.is_empty() {
        return Some(Work::Truncate(truncating));
    }
    let fetching = pick(State::Fetching);
    (!fetching.is_empty()).then_some(Work::Fetch(fetching))
}

fn earliest_retry(shared: &Shared) -> Option<Instant> {
    shared
        .partitions
        .borrow()
        .values()
        .filter_map(|f| f.retry_at)
        .min()
}

/// Change the state of `tp` if it is still followed in `epoch` with `log`
/// (it may have been re-followed or dropped while a request was out).
fn update(
    shared: &Shared,
    tp: &TopicPartition,
    log: &Rc<PartitionLog>,
    epoch: i32,
    f: impl FnOnce(&mut Followed),
) {
    let mut partitions = shared.partitions.borrow_mut();
    if let Some(followed) = partitions.get_mut(tp) {
        if followed.leader_epoch == epoch && Rc::ptr_eq(&followed.log, log) {
            f(followed);
        }
    }
}

fn delay(shared: &Shared, tp: &TopicPartition, log: &Rc<PartitionLog>, epoch: i32) {
    update(shared, tp, log, epoch, |f| {
        f.retry_at = Some(Instant::now() + RETRY)
    });
}

async fn truncate(shared: &Shared, conn: &mut LeaderConn, parts: Parts) -> anyhow::Result<()> {
    // Partitions with no epoch in their log have nothing to cut.
    let mut asked = Vec::new();
    for (tp, log, epoch) in parts {
        match log.leader_epoch_entries().last() {
            Some(last) => asked.push((tp, log, epoch, last.epoch)),
            None => update(shared, &tp, &log, epoch, |f| f.state = State::Fetching),
        }
    }
    if asked.is_empty() {
        return Ok(());
    }
    let mut topics: BTreeMap<&str, Vec<OffsetForLeaderPartition>> = BTreeMap::new();
    for (tp, _, epoch, last) in &asked {
        topics.entry(&tp.0).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(tp.1)
                .with_current_leader_epoch(*epoch)
                .with_leader_epoch(*last),
        );
    }
    let req = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(shared.me))
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let resp: OffsetForLeaderEpochResponse =
        conn.call(&req, EPOCH_VERSION, REQUEST_TIMEOUT).await?;
    let mut answers = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            answers.insert((t.topic.0.to_string(), p.partition), p);
        }
    }
    apply_epoch_answers(shared, asked, answers).await;
    Ok(())
}

/// Whether `tp` is still followed here from this fetcher's leader in
/// `epoch`, with `log`. An answer to a request sent before a change of
/// role (this replica elected leader, or following another leader or
/// epoch) comes from a leader that may no longer be one (a broker paused
/// past its session wakes up and answers what it was asked): it must not
/// touch the log. Acting on it cut the log of the partition's new leader
/// here, losing records the in-sync replicas had acknowledged.
fn still_followed(
    shared: &Shared,
    tp: &TopicPartition,
    log: &Rc<PartitionLog>,
    epoch: i32,
) -> bool {
    shared
        .partitions
        .borrow()
        .get(tp)
        .is_some_and(|f| f.leader_epoch == epoch && Rc::ptr_eq(&f.log, log))
}

/// OffsetForLeaderEpoch answers, by partition: cut each log where the
/// leader says, if the partition is still followed as it was asked.
async fn apply_epoch_answers(
    shared: &Shared,
    asked: Vec<(TopicPartition, Rc<PartitionLog>, i32, i32)>,
    mut answers: BTreeMap<TopicPartition, EpochEndOffset>,
) {
    for (tp, log, epoch, last) in asked {
        if !still_followed(shared, &tp, &log, epoch) {
            continue;
        }
        let Some(a) = answers.remove(&tp) else {
            delay(shared, &tp, &log, epoch);
            continue;
        };
        if a.error_code != 0 {
            tracing::debug!(
                "{}-{}: OffsetForLeaderEpoch answered {:?}",
                tp.0,
                tp.1,
                ResponseError::try_from_code(a.error_code)
            );
            delay(shared, &tp, &log, epoch);
            continue;
        }
        let Some((cut, done)) = truncation_point(&log, last, a.leader_epoch, a.end_offset) else {
            tracing::info!(
                "{}-{}: leader {} knows no epoch at or below {last} yet; asking again",
                tp.0,
                tp.1,
                shared.leader
            );
            delay(shared, &tp, &log, epoch);
            continue;
        };
        match log.truncate_to(cut).await {
            Ok(cut_something) => {
                if cut_something {
                    tracing::info!(
                        "{}-{}: truncated to {cut} to match leader {} (epoch {} ends at {} there)",
                        tp.0,
                        tp.1,
                        shared.leader,
                        a.leader_epoch,
                        a.end_offset
                    );
                }
                if done {
                    update(shared, &tp, &log, epoch, |f| f.state = State::Fetching);
                }
            }
            Err(e) => {
                tracing::warn!("{}-{}: truncating to {cut}: {e}", tp.0, tp.1);
                delay(shared, &tp, &log, epoch);
            }
        }
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Where to cut a follower whose last epoch is `asked`, given that the
/// leader's log has `leader_epoch` ending at `leader_end` (the largest epoch
/// it knows at or below `asked`). Returns the offset and whether the logs
/// agree once cut (else ask again with the follower's new last epoch);
/// `None` when the leader knows no epoch at or below ours (UNDEFINED).
///
/// A leader has its own epoch, the newest, from the moment it leads, so
/// UNDEFINED means it does not lead in that epoch yet (or no longer):
/// asking again later is all there is to do. Kafka cuts at the follower's
/// high watermark then, which it keeps across restarts and roles; here
/// the bound starts at the log start when following begins, and cutting
/// there emptied the replica (every partition of a broker moving its
/// leaderships away in a controlled shutdown).
fn truncation_point(
    log: &PartitionLog,
    asked: i32,
    leader_epoch: i32,
    leader_end: i64,
) -> Option<(i64, bool)> {
    let log_end = log.log_end_offset();
    if leader_epoch < 0 || leader_end < 0 {
        return None;
    }
    if leader_epoch == asked {
        return Some((leader_end.min(log_end), true));
    }
    // The leader never had our last epoch: cut at the end of its epoch in
    // our log or in its, whichever is smaller, and ask again.
    let (_, ours) = log.end_offset_for_epoch(leader_epoch);
    Some((leader_end.min(ours).min(log_end), false))
}

async fn fetch(shared: &Shared, conn: &mut LeaderConn, parts: Parts) -> anyhow::Result<()> {
    let mut topics: BTreeMap<&str, Vec<FetchPartition>> = BTreeMap::new();
    let mut asked = BTreeMap::new();
    for (tp, log, epoch) in &parts {
        let offset = log.log_end_offset();
        let last_fetched = log.leader_epoch_entries().last().map_or(-1, |e| e.epoch);
        topics.entry(&tp.0).or_default().push(
            FetchPartition::default()
                .with_partition(tp.1)
                .with_current_leader_epoch(*epoch)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(last_fetched)
                .with_log_start_offset(log.offsets().log_start_offset)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
        asked.insert(tp.clone(), (log.clone(), *epoch, offset));
    }
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(shared.me))
        .with_max_wait_ms(MAX_WAIT.as_millis() as i32)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_topics(
            topics
                .into_iter()
                .map(|(name, partitions)| {
                    FetchTopic::default()
                        .with_topic(topic_name(name))
                        .with_partitions(partitions)
                })
                .collect(),
        );
    let resp: FetchResponse = conn
        .call(&req, FETCH_VERSION, MAX_WAIT + REQUEST_TIMEOUT)
        .await?;
    if resp.error_code != 0 {
        anyhow::bail!(
            "Fetch answered {:?}",
            ResponseError::try_from_code(resp.error_code)
        );
    }
    let answer_bytes = conn.last_response_bytes();
    let mut appends = Vec::new();
    for t in resp.responses {
        let name = t.topic.0.to_string();
        for p in t.partitions {
            let tp = (name.clone(), p.partition_index);
            let Some((log, epoch, offset)) = asked.remove(&tp) else {
                continue;
            };
            match ResponseError::try_from_code(p.error_code) {
                None => {
                    let records = own_records(p.records.unwrap_or_default(), answer_bytes);
                    let leader = LeaderOffsets {
                        high_watermark: p.high_watermark,
                        log_start: p.log_start_offset,
                    };
                    appends.push(append(shared, tp, log, epoch, offset, records, leader));
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    tracing::warn!(
                        "{}-{}: offset {offset} is out of range on leader {}; truncating again",
                        tp.0,
                        tp.1,
                        shared.leader
                    );
                    update(shared, &tp, &log, epoch, |f| {
                        f.state = State::Truncating;
                        f.retry_at = Some(Instant::now() + RETRY);
                    });
                }
                Some(e) => {
                    tracing::debug!("{}-{}: fetch answered {e:?}", tp.0, tp.1);
                    delay(shared, &tp, &log, epoch);
                }
            }
        }
    }
    futures::future::join_all(appends).await;
    publish_lag(shared);
    Ok(())
}

/// A partition's records as the log may keep them. They are a slice of the
/// whole Fetch answer, and the tail cache keeps its batches: a partition
/// with a small share of a large answer (a few markers among other
/// partitions' data) kept all of it alive; a follower's heap was 62 MB of
/// Fetch answers under a transactional load, ten times what its caches
/// counted. Such records are copied out. Records that are at least half of
/// their answer (the common case under load: one busy partition per leader
/// and shard) stay a slice, so memory held is at most twice what is
/// counted and the bulk of replicated data is never copied (copying every
/// answer cost 10-15 % of three-replica throughput on this machine).
fn own_records(records: Bytes, answer_bytes: usize) -> Bytes {
    if records.len().saturating_mul(2) >= answer_bytes {
        records
    } else {
        Bytes::copy_from_slice(&records)
    }
}

/// The leader's offsets in a fetch answer.
struct LeaderOffsets {
    high_watermark: i64,
    log_start: i64,
}

/// Append what the leader sent (its offsets and epochs), durably, then
/// take its high watermark as the bound and its log start as ours (records
/// deleted there, by retention or DeleteRecords, go here too, as on a Kafka
/// follower), as far as our own high watermark allows.
async fn append(
    shared: &Shared,
    tp: TopicPartition,
    log: Rc<PartitionLog>,
    epoch: i32,
    offset: i64,
    records: Bytes,
    leader: LeaderOffsets,
) {
    // An answer from a former leader (see `still_followed`) appends
    // nothing, nor moves the bound or the log start: this replica may
    // lead the partition now.
    if !still_followed(shared, &tp, &log, epoch) {
        return;
    }
    if !records.is_empty() {
        if log.log_end_offset() != offset {
            // Truncated or appended meanwhile (a new role): skip this answer.
            return;
        }
        if let Err(e) = log.append_as_follower(records, AckLevel::Durable).await {
            tracing::warn!(
                "{}-{}: appending from leader {}: {e}",
                tp.0,
                tp.1,
                shared.leader
            );
            // A gap or an overlap means the logs diverged: truncate again.
            update(shared, &tp, &log, epoch, |f| {
                f.state = State::Truncating;
                f.retry_at = Some(Instant::now() + RETRY);
            });
            return;
        }
        if !still_followed(shared, &tp, &log, epoch) {
            return;
        }
    }
    if leader.high_watermark >= 0 {
        let end = log.log_end_offset();
        log.advance_replicated_bound(leader.high_watermark.min(end));
        let lag = (leader.high_watermark - end).max(0);
        update(shared, &tp, &log, epoch, |f| {
            f.lag_messages = lag;
            if lag == 0 {
                f.caught_up_ms = stats::now_ms();
            }
        });
    }
    let start = leader.log_start.min(log.high_watermark());
    if start > log.offsets().log_start_offset {
        if let Err(e) = log.delete_records_before(start).await {
            tracing::warn!("{}-{}: moving the log start to {start}: {e}", tp.0, tp.1);
        }
    }
}

#[cfg(test)]
#[path = "fetcher_tests.rs"]
mod tests;
