//! The transactional producer worker: one Produce connection to the leader
//! of its partitions (requests pipelined up to the window, batches patched
//! with the producer id, epoch and sequences before each send) and one
//! blocking connection to its transaction coordinator. [`Txn`] decides each
//! step; this loop does the I/O and the bookkeeping.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ProduceResponse};

use super::batch::{PatchedFrame, ProducerIdentity, Sequences};
use super::coordinator::{produce_error_is_abortable, Coordinator};
use super::state::{Plan, ReqKind, Step, Txn};
use super::{TxnCfg, MAX_IN_FLIGHT};
use crate::conn::{self, decode_body, error_name, Pending};
use crate::payload;
use crate::produce::{build_frame, ProduceCfg};
use crate::rate::{latencies, now_ns, Schedule};
use crate::run::RunState;

/// The Produce frame of one request of the plan: a batch of `n` records
/// per (partition, n), located in the frame for patching.
fn frame_for(
    cfg: &ProduceCfg,
    version: i16,
    counts: &[(i32, u32)],
    seed: u64,
) -> Result<PatchedFrame> {
    let batches = counts
        .iter()
        .enumerate()
        .map(|(i, (p, n))| {
            let t = payload::template(
                *n as usize,
                cfg.message_size,
                cfg.codec,
                seed * 1000 + i as u64,
            )?;
            Ok((*p, Bytes::copy_from_slice(t.bytes())))
        })
        .collect::<Result<Vec<(i32, Bytes)>>>()?;
    let mut frame = BytesMut::new();
    build_frame(cfg, version, batches.clone(), &mut frame)?;
    let refs: Vec<(i32, u32, &[u8])> = counts
        .iter()
        .zip(&batches)
        .map(|((p, n), (_, b))| (*p, *n, &b[..]))
        .collect();
    PatchedFrame::locate(frame, &refs)
}

fn identity(c: &Coordinator) -> ProducerIdentity {
    ProducerIdentity {
        producer_id: c.producer_id,
        epoch: c.epoch,
        transactional: true,
    }
}

struct Frames {
    full: PatchedFrame,
    tail: Option<PatchedFrame>,
}

impl Frames {
    fn set_producer(&mut self, who: ProducerIdentity) {
        self.full.set_producer(who);
        if let Some(t) = &mut self.tail {
            t.set_producer(who);
        }
    }

    fn get(&mut self, kind: ReqKind) -> &mut PatchedFrame {
        match kind {
            ReqKind::Full => &mut self.full,
            ReqKind::Tail => self.tail.as_mut().expect("the plan has a tail"),
        }
    }
}

/// Run transactions on `parts` (all led by `addr`) until the run stops,
/// with the producer id and epoch `coord` was initialised with.
pub fn txn_producer(
    addr: String,
    parts: Vec<i32>,
    shared: Arc<ProduceCfg>,
    tcfg: Arc<TxnCfg>,
    mut coord: Coordinator,
    st: Arc<RunState>,
    seed: u64,
) -> Result<()> {
    let cfg = ProduceCfg {
        transactional_id: Some(coord.transactional_id.clone()),
        ..(*shared).clone()
    };
    let mut conn = conn::connect(&addr)?;
    let version = conn.version(ApiKey::Produce)?;
    let plan = Plan::new(
        &parts,
        cfg.batch_records as u32,
        tcfg.txn_records,
        tcfg.interval,
    );
    let partitions = plan.partitions();
    let mut frames = Frames {
        full: frame_for(&cfg, version, &plan.full, seed)?,
        tail: plan
            .tail
            .as_ref()
            .map(|t| frame_for(&cfg, version, t, seed + 500))
            .transpose()?,
    };
    frames.set_producer(identity(&coord));
    let mut seq = Sequences::default();
    let window = cfg.in_flight.clamp(1, MAX_IN_FLIGHT);
    // Open loop: indexed by record, so short (tail) requests take their share.
    let sched = cfg.rate_per_conn.map(|r| Schedule::new(now_ns(), r, 1));
    let full_records = frames.full.records();
    let mut next_record = 0u64;
    let mut txn = Txn::default();
    let mut finished = false;
    let mut retries_seen = 0;
    let result = (|| -> Result<()> {
        loop {
            let now = now_ns();
            let due = sched.map_or(now, |s| s.intended(next_record));
            let stop = st.stop_produce.load(Relaxed);
            match txn.next(&plan, now, conn.in_flight(), window) {
                Step::Begin => {
                    if finished {
                        return Ok(());
                    }
                    if stop || budget_spent(&st) {
                        finished = true;
                        record_unsent(sched, next_record, full_records, &st);
                        continue;
                    }
                    if due > now {
                        sleep_until(due, now);
                        continue;
                    }
                    let t0 = now_ns();
                    coord.add_partitions(&cfg.topic, &partitions)?;
                    if t0 >= st.warmup_end_ns {
                        st.txn.begin.record(now_ns() - t0);
                    }
                    txn.begin(t0);
                }
                Step::Send(kind) => {
                    // At the end of the run a closed-loop producer finishes
                    // the transaction it is in (every committed transaction
                    // has its planned size); an open-loop one stops on
                    // schedule and commits what was acknowledged.
                    let stop_now = stop && sched.is_some();
                    if stop_now || budget_spent(&st) {
                        txn.closing = true;
                        finished = true;
                        if stop_now {
                            record_unsent(sched, next_record, full_records, &st);
                        }
                        continue;
                    }
                    if due > now {
                        // Not due yet: read a response meanwhile, or sleep.
                        if conn.in_flight() > 0 {
                            if let Some((p, body)) =
                                conn.recv(Some(Duration::from_nanos(due - now)))?
                            {
                                on_response(&mut txn, &cfg, &st, version, p, body)?;
                            }
                        } else {
                            sleep_until(due, now);
                        }
                        continue;
                    }
                    let f = frames.get(kind);
                    let n = f.records();
                    if st.produce_budget.is_some() {
                        st.claimed.fetch_add(n, Relaxed);
                    }
                    f.set_sequences(&mut seq);
                    let p = Pending {
                        intended_ns: due,
                        sent_ns: now_ns(),
                        counts: f.counts(),
                    };
                    conn.send_frame(&mut f.frame, true, p)?;
                    next_record += n;
                    txn.on_sent(n);
                }
                Step::Wait => {
                    let (p, body) = conn
                        .recv(None)?
                        .ok_or_else(|| anyhow!("no response from {}", conn.addr))?;
                    on_response(&mut txn, &cfg, &st, version, p, body)?;
                }
                Step::Commit => {
                    let t0 = now_ns();
                    coord.end(true)?;
                    let t1 = now_ns();
                    let n = txn.acked_records;
                    st.produce.add(n, n * cfg.message_size as u64);
                    st.txn.committed.fetch_add(1, Relaxed);
                    if t0 >= st.warmup_end_ns {
                        st.txn.commit.record(t1 - t0);
                        st.txn.whole.record(t1 - txn.begun_ns);
                    }
                    txn.on_end();
                }
                Step::Abort => {
                    coord.end(false)?;
                    if txn.sent > 0 {
                        st.txn.aborted.fetch_add(1, Relaxed);
                        st.txn.aborted_records.fetch_add(txn.acked_records, Relaxed);
                    }
                    let failed = txn.failed;
                    txn.on_end();
                    if failed {
                        // Sequences of a failed batch are lost: a new epoch
                        // starts them again at 0 (Kafka's producer does the same).
                        coord.init_producer_id()?;
                        frames.set_producer(identity(&coord));
                        seq.reset();
                        st.txn.new_epochs.fetch_add(1, Relaxed);
                    }
                }
            }
            let r = coord.stats.retries;
            st.txn
                .coordinator_retries
                .fetch_add(r - retries_seen, Relaxed);
            retries_seen = r;
        }
    })();
    result.map_err(|e| e.context(format!("transactional producer {}", coord.transactional_id)))
}

/// A Produce response of the open transaction: count, time, check errors.
/// An error that aborting cannot survive (fenced, not authorized) ends the
/// producer; others mark the transaction failed.
fn on_response(
    txn: &mut Txn,
    cfg: &ProduceCfg,
    st: &RunState,
    version: i16,
    p: Pending,
    body: Bytes,
) -> Result<()> {
    let done = now_ns();
    let resp: ProduceResponse = decode_body(body, version)?;
    let (mut ok, mut failed) = (0u64, 0u64);
    let mut fatal = None;
    for t in &resp.responses {
        for pr in &t.partition_responses {
            let n = p
                .counts
                .iter()
                .find(|(q, _)| *q == pr.index)
                .map_or(0, |c| c.1 as u64);
            if pr.error_code == 0 {
                ok += n;
            } else {
                failed += n;
                st.add_error(&error_name(pr.error_code), 1);
                if !produce_error_is_abortable(pr.error_code) {
                    fatal = Some((pr.index, pr.error_code));
                }
            }
        }
    }
    st.produce_failed.fetch_add(failed, Relaxed);
    if let Some((part, code)) = fatal {
        return Err(anyhow!(
            "{}: Produce to {}[{part}] in a transaction",
            error_name(code),
            cfg.topic
        ));
    }
    txn.on_response(ok, failed);
    if p.intended_ns >= st.warmup_end_ns {
        let (corrected, uncorrected) = latencies(p.intended_ns, p.sent_ns, done);
        st.produce.hist.record(corrected);
        if cfg.rate_per_conn.is_some() {
            st.produce.hist_uncorrected.record(uncorrected);
        }
    }
    Ok(())
}

fn budget_spent(st: &RunState) -> bool {
    st.produce_budget
        .is_some_and(|max| st.claimed.load(Relaxed) >= max)
}

fn sleep_until(due: u64, now: u64) {
    std::thread::sleep(Duration::from_nanos(
        due.saturating_sub(now).min(50_000_000),
    ));
}

/// Under `--rate`, the records due by the end of the run but never sent
/// (in requests of `per_req`), charged with the latency they had reached,
/// as the non-transactional producer does.
fn record_unsent(sched: Option<Schedule>, first: u64, per_req: u64, st: &RunState) {
    let Some(s) = sched else { return };
    let end = now_ns();
    let mut k = first;
    while s.intended(k) <= end {
        let intended = s.intended(k);
        if intended >= st.warmup_end_ns {
            st.produce.hist.record(end - intended);
            st.produce_unsent.fetch_add(per_req, Relaxed);
        }
        k += per_req.max(1);
    }
}
