//! The replication operations of the log simulation (`sim_tests.rs`):
//! follower appends (batches numbered and stamped by a "leader"), leader
//! epoch bumps, and `truncate_to`. And the check run after every reopen:
//! the epoch cache is what the served batches say.

use bytes::{Bytes, BytesMut};

use super::super::tests::batch;
use super::*;
use crate::record;

/// On unless `SIM_REPLICA=0`. They were first off by default because a seed
/// did not always replay the same run; behind the simulated disk's gate
/// (one real operation at a time) 60 of 60 seeds replay exactly and seed 7,
/// the one that used to differ, replayed the same 6 times of 6.
pub(super) fn enabled() -> bool {
    std::env::var("SIM_REPLICA").map_or(true, |v| v != "0")
}

pub(super) async fn step(run: &mut Run, log: &Rc<PartitionLog>) -> Result<(), String> {
    match run.rng.below(3) {
        0 => follower_append(run, log).await,
        1 => {
            run.model.leader_epoch += 1;
            say!("  leader epoch {}", run.model.leader_epoch);
            log.set_leader_epoch(run.model.leader_epoch);
            let _ = log.persist_epochs().await; // as at reopen (sim_tests.rs)
            Ok(())
        }
        _ => truncate(run, log).await,
    }
}

/// One to three contiguous batches at the log end, in the current epoch
/// or (a new leader) the next one, which this node then leads in.
async fn follower_append(run: &mut Run, log: &Rc<PartitionLog>) -> Result<(), String> {
    let epoch = run.model.leader_epoch + run.rng.below(2) as i32;
    if epoch > run.model.leader_epoch {
        // Epochs only grow: whatever becomes of this append, the node
        // goes on in the new one.
        run.model.leader_epoch = epoch;
        log.set_leader_epoch(epoch);
        let _ = log.persist_epochs().await; // as at reopen (sim_tests.rs)
    }
    let start = log.log_end_offset();
    let mut base = start;
    let mut records = BytesMut::new();
    let mut sent = Vec::new();
    for _ in 0..1 + run.rng.below(3) {
        run.tag += 1;
        let n = 1 + run.rng.below(6) as usize;
        let mut b = BytesMut::from(&batch(n, run.clock.now_ms(), run.tag * 64)[..]);
        record::set_base_offset(&mut b, base);
        record::set_partition_leader_epoch(&mut b, epoch);
        base += n as i64;
        sent.push(b.clone().freeze());
        records.extend_from_slice(&b);
    }
    say!("  follower append up to {base} in epoch {epoch}");
    match log
        .append_as_follower(records.freeze(), AckLevel::Durable)
        .await
    {
        Ok(info) => {
            let mut at = info.base_offset;
            for b in sent {
                let last = BatchView::parse(&b).expect("a batch").last_offset();
                let one = AppendInfo {
                    base_offset: at,
                    last_offset: last,
                    ..info
                };
                run.model.ack(&one, &b)?;
                at = last + 1;
            }
            Ok(())
        }
        Err(e) if e.is_storage() || matches!(e, LogError::Closed) => Ok(()),
        // The log recovered in place first and its end moved (batches that
        // never reached the disk dropped): a real follower fetches again.
        Err(LogError::InvalidRecord(_)) if log.log_end_offset() != start => Ok(()),
        Err(e) => Err(format!("follower append refused: {e}")),
    }
}

/// Truncate to an offset that drops no idempotent producer's batch (their
/// producers would go on from sequences the log no longer has; a real
/// follower's producer state comes from the leader's log).
async fn truncate(run: &mut Run, log: &Rc<PartitionLog>) -> Result<(), String> {
    let o = log.offsets();
    let end = log.log_end_offset();
    let idempotent_end = run
        .model
        .acked
        .values()
        .filter(|(_, b)| BatchView::parse(b).is_ok_and(|v| v.producer_id() >= 0))
        .map(|(last, _)| last + 1)
        .max()
        .unwrap_or(0);
    let floor = idempotent_end.max(o.log_start_offset);
    if floor > end {
        return Ok(());
    }
    let target = floor + run.rng.below((end - floor) as u64 + 1) as i64;
    // Where the cut will be: the start of the batch holding the target
    // (below the high watermark it can be read; above it the cut is above
    // anything a consumer saw).
    let cut = if target < o.high_watermark {
        let r = match log.read(target, 1).await {
            Ok(r) => r,
            // The disk crashed (a planned crash at the previous device call)
            // or refused the segment's reopen: no truncation this time; the
            // workload's loop sees the crash next (seed 9983).
            Err(e) if e.is_storage() => return Ok(()),
            Err(e) => return Err(format!("read at {target}: {e}")),
        };
        r.batches
            .first()
            .map(|b| BatchView::parse(b).expect("a batch").base_offset())
            .unwrap_or(target)
    } else {
        // The batch holding the target may begin at the high watermark.
        o.high_watermark.min(target)
    };
    say!("  truncate to {target} (cut at {cut}, log end {end})");
    // A truncation that fails may have cut the files already (the recovery
    // then loads what is left): the model forgets the suffix either way.
    let m = &mut run.model;
    m.acked.retain(|&base, _| base < cut);
    m.highest_acked = m.acked.values().map(|(l, _)| *l).max().unwrap_or(-1);
    m.hw_seen = m.hw_seen.min(cut);
    // A cut below the log start (the batch holding the target straddles
    // it) moves the log start down to it, as Kafka's min(target, start).
    m.start_floor = m.start_floor.min(cut);
    m.note(cut as u64);
    match log.truncate_to(target).await {
        Ok(_) => {
            let new_end = log.log_end_offset();
            if new_end > target || (target < o.high_watermark && new_end != cut) {
                return Err(format!(
                    "truncated to {target}: log end {new_end}, cut {cut}"
                ));
            }
            if log.high_watermark() > new_end {
                return Err("high watermark above the truncated log end".into());
            }
            Ok(())
        }
        Err(e) if e.is_storage() || matches!(e, LogError::Closed) => Ok(()),
        Err(e) => Err(format!("truncate_to {target}: {e}")),
    }
}

/// The epoch cache agrees with the batches: an entry where each epoch
/// starts (as of the log start), plus at most one at the log end (an epoch
/// led but not written in yet).
pub(super) fn check_epochs(log: &PartitionLog, served: &[(i64, i64, Bytes)]) -> Result<(), String> {
    let start = log.offsets().log_start_offset;
    let end = log.log_end_offset();
    let mut expected = super::super::epoch_cache::LeaderEpochCache::default();
    for (_, _, bytes) in served {
        let b = BatchView::parse(bytes).expect("served");
        let e = b.partition_leader_epoch();
        if e > expected.latest_epoch().unwrap_or(-1) {
            expected.assign(e, b.base_offset());
        }
    }
    expected.truncate_from_start(start);
    let got = log.leader_epoch_entries();
    let below_end: Vec<_> = got
        .iter()
        .filter(|e| e.start_offset < end)
        .copied()
        .collect();
    // The first served batch may begin below the log start: its entry is
    // clamped to the start, as truncate_from_start does.
    if below_end != expected.entries() {
        return Err(format!(
            "epoch cache {got:?} does not match the batches {:?} (log {start}..{end})",
            expected.entries()
        ));
    }
    if got.len() > below_end.len() + 1 {
        return Err(format!(
            "epoch cache {got:?} has entries past the log end {end}"
        ));
    }
    Ok(())
}
