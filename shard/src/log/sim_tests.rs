//! A seeded simulation of the partition log under faults and crashes.
//!
//! Per seed: a workload of appends (random sizes; plain and idempotent
//! producers; acks=all alone or in concurrent bursts, some acks=0), rolls
//! (segments of a few KiB), DeleteRecords, retention on a manual clock, and
//! crashes at random points (with appends in flight), each followed by a
//! reopen through the normal `load`/recovery. The segment files are real
//! and written by the broker's own code; the simulated disk (`sim_disk.rs`)
//! injects EIO, ENOSPC and torn writes, and at a crash turns the files into
//! what a power loss could leave (a random part of the unsynced writes
//! lost or torn) or, for a process crash, keeps them.
//!
//! After every reopen and at the end it checks: every acknowledged batch at
//! or above the log start is there byte for byte at its offset; offsets are
//! dense from the log start to the high watermark; the high watermark is
//! above every acknowledged offset; no offset under an acknowledged batch
//! is given again; the log start never goes back; `verify_partition` finds
//! no damage. The offset invariants (`offsets.rs`) are asserted throughout.
//!
//! Commands:
//! - CI (part of `cargo test -p shardline-shard`): [`CI_SEEDS`] seeds in
//!   four tests `log::sim_tests::seeds::sim_ci_*`.
//! - Many seeds, stopping at the first failure and printing its seed:
//!   `SIM_SEEDS=5000 cargo test --release -p shardline-shard sim_many -- --ignored --nocapture`
//!   (`SIM_FIRST=N` starts elsewhere).
//! - Replay one: `SIM_SEED=S cargo test --release -p shardline-shard sim_many -- --ignored --nocapture`
//!   (add `SIM_VERBOSE=1` for a narration of every step and device event).
//! - Check that seeds replay: `SIM_SEEDS=N ... sim_replay_many -- --ignored --nocapture`
//!   runs each seed twice and names those whose runs differ.
//! - Count the failing seeds instead of stopping: add `SIM_COUNT_FAILURES=1`.
//! - Follower appends, leader epoch bumps and `truncate_to` are in the
//!   workload (`sim_replica.rs`); `SIM_REPLICA=0` leaves them out.
//!
//! A seed fixes every decision of the workload and of the simulated disk,
//! and the order of everything: time is a [`ManualClock`] (the flusher's
//! interval timer is one of simulated time), the harness waits in steps of
//! simulated time (`sim_disk::step`), and every real operation (io_uring,
//! blocking pool) runs alone behind the simulated disk's gate, so the
//! kernel's timing decides nothing. `a_seed_replays_the_same_run` runs
//! seeds twice and compares the hash of every device event (`disk_trace`)
//! and of every acknowledgement (`trace`).

use std::collections::BTreeMap;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;

use super::sim_disk::{self, FaultRates, Rng, SimDisk, SimDiskRef};
use super::tests::{batch, batch_with_producer, test_dir};
use super::*;
use crate::record::BatchView;
use crate::runtime::run_local;
use crate::time::{Clock, LogClock, ManualClock};

/// Seeds `cargo test` runs (four tests of a quarter each).
const CI_SEEDS: u64 = 200;

/// One seed's run, for the report.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Report {
    acked: u64,
    crashes: u64,
    power_losses: u64,
    faults: u64,
    lost_writes: u64,
    /// New files a power loss took (their directory entry never synced).
    lost_files: u64,
    /// The acknowledgements and log starts the run saw, hashed.
    trace: u64,
    /// Every device event of the run, hashed (`SimDisk::trace`).
    disk_trace: u64,
}

struct Producer {
    id: i64,
    next_seq: i32,
    /// A batch whose append failed: sent again before any new one, as a
    /// Kafka idempotent producer retries.
    retry: Option<Bytes>,
}

#[derive(Default)]
struct Model {
    /// Acknowledged batches by base offset: last offset and the bytes sent.
    acked: BTreeMap<i64, (i64, Bytes)>,
    highest_acked: i64,
    /// The log start may never go below this (it was answered).
    start_floor: i64,
    /// The highest high watermark seen: consumers may have read below it,
    /// so no crash may take those offsets back (and give them again).
    hw_seen: i64,
    /// The epoch this node leads in (`replica::step`); set again at reopen.
    leader_epoch: i32,
    trace: u64,
}

use super::sim_disk::verbose;

/// `SIM_VERBOSE=1`: narrate the run (for a replayed seed), printed at its end.
macro_rules! say {
    ($($t:tt)*) => { sim_disk::note(|| format!($($t)*)) };
}

impl Model {
    fn note(&mut self, what: u64) {
        self.trace = self.trace.rotate_left(5) ^ what;
    }

    /// A produce was answered with `info` for `sent`.
    fn ack(&mut self, info: &AppendInfo, sent: &Bytes) -> Result<(), String> {
        let view = BatchView::parse(sent).expect("a batch");
        if info.last_offset - info.base_offset != view.last_offset_delta() as i64 {
            return Err(format!("ack {info:?} does not span the batch"));
        }
        if !info.duplicate && info.base_offset <= self.highest_acked {
            return Err(format!(
                "offset {} given again: {} was acknowledged",
                info.base_offset, self.highest_acked
            ));
        }
        if let Some((_, before)) = self.acked.get(&info.base_offset) {
            if !same_batch(before, sent) {
                return Err(format!("two batches acknowledged at {}", info.base_offset));
            }
        }
        say!(
            "  acked {}..={}{}",
            info.base_offset,
            info.last_offset,
            if info.duplicate { " (duplicate)" } else { "" }
        );
        self.acked
            .insert(info.base_offset, (info.last_offset, sent.clone()));
        self.highest_acked = self.highest_acked.max(info.last_offset);
        self.note(info.base_offset as u64);
        Ok(())
    }
}

/// The log rewrites the base offset and leader epoch (outside the CRC);
/// everything from the magic byte on is what the producer sent.
fn same_batch(stored: &[u8], sent: &[u8]) -> bool {
    stored.len() == sent.len() && stored[16..] == sent[16..] && stored[8..12] == sent[8..12]
}

fn sim_config(rng: &mut Rng) -> LogConfig {
    let batch_mode = rng.chance(800);
    LogConfig {
        segment_bytes: 2048 + rng.below(6) * 1024,
        index_interval_bytes: 256 + rng.below(1024),
        tail_cache_bytes: rng.below(16 << 10) as usize,
        retention_ms: if rng.chance(500) { 60_000 } else { -1 },
        retention_bytes: if rng.chance(300) {
            (8 << 10) + rng.below(16 << 10) as i64
        } else {
            -1
        },
        flush_mode: if batch_mode {
            FlushMode::Batch
        } else {
            FlushMode::Interval
        },
        flush_interval_ms: 100,
        flush_interval_bytes: 16 << 10,
        preallocate: rng.chance(500),
        write_chunk_bytes: 4096 * (1 + rng.below(3) as usize),
        write_queue_depth: 1 + rng.below(3) as usize,
        ..LogConfig::default()
    }
}

fn fault_rates(rng: &mut Rng) -> FaultRates {
    if rng.chance(300) {
        return FaultRates::default();
    }
    FaultRates {
        write_error: rng.below(40) as u32,
        torn_write: rng.below(40) as u32,
        sync_error: rng.below(40) as u32,
    }
}

async fn reopen(
    dir: &Path,
    config: &LogConfig,
    clock: &Rc<ManualClock>,
) -> Result<Rc<PartitionLog>, String> {
    let mut last = String::new();
    // Faults stay on while opening: recovery itself must survive them.
    for _ in 0..100 {
        match PartitionLog::open_with_clock(
            dir.to_path_buf(),
            "sim-0".into(),
            config.clone(),
            LogClock::Manual(clock.clone()),
        )
        .await
        {
            Ok(log) => return Ok(log),
            Err(e) if e.is_storage() => last = e.to_string(),
            Err(e) => return Err(format!("open failed: {e}")),
        }
    }
    Err(format!("open kept failing: {last}"))
}

/// Everything the log serves, from its start: (base, last, bytes).
///
/// Offsets must be dense. The simulation once found a gap (about 660 seeds
/// in 4,000): when a write failed after a roll, recovery dropped the rolled
/// segment's unwritten batches but kept the next segment, created at their
/// end, so their offsets were skipped. The loader now deletes the segments
/// after one it had to cut, as Kafka's does (`partition::load`).
async fn read_everything(log: &PartitionLog) -> Result<Vec<(i64, i64, Bytes)>, String> {
    let mut out: Vec<(i64, i64, Bytes)> = Vec::new();
    let mut at = log.offsets().log_start_offset;
    loop {
        let r = log
            .read(at, 64 << 10)
            .await
            .map_err(|e| format!("read at {at}: {e}"))?;
        if r.batches.is_empty() {
            return Ok(out);
        }
        for chunk in &r.batches {
            let mut rest = chunk.clone();
            while !rest.is_empty() {
                let b = BatchView::parse_verified(&rest).map_err(|e| format!("at {at}: {e}"))?;
                let (base, last, size) = (b.base_offset(), b.last_offset(), b.size());
                let expected = out.last().map_or(at, |&(_, prev, _)| prev + 1);
                // The first batch may begin below the log start (mid-batch).
                if base != expected && !(out.is_empty() && base < at) {
                    return Err(format!(
                        "offsets not dense: {expected} expected, {base} found"
                    ));
                }
                out.push((base, last, rest.split_to(size)));
                at = last + 1;
            }
        }
    }
}

async fn check(log: &PartitionLog, dir: &Path, model: &Model) -> Result<(), String> {
    let o = log.offsets();
    if o.log_start_offset < model.start_floor {
        return Err(format!(
            "log start went back: {} < {}",
            o.log_start_offset, model.start_floor
        ));
    }
    if o.high_watermark < model.hw_seen {
        return Err(format!(
            "high watermark went back from {} to {}: visible offsets lost",
            model.hw_seen, o.high_watermark
        ));
    }
    if model.highest_acked >= o.high_watermark {
        return Err(format!(
            "high watermark {} not above acknowledged offset {}",
            o.high_watermark, model.highest_acked
        ));
    }
    let served = read_everything(log).await?;
    let end = served.last().map_or(o.log_start_offset, |b| b.1 + 1);
    if end != o.high_watermark {
        return Err(format!(
            "served up to {end}, high watermark {}: offsets not dense",
            o.high_watermark
        ));
    }
    replica::check_epochs(log, &served)?;
    let by_base: BTreeMap<i64, (i64, &Bytes)> = served
        .iter()
        .map(|(b, l, bytes)| (*b, (*l, bytes)))
        .collect();
    for (&base, (last, sent)) in model.acked.range(..) {
        if *last < o.log_start_offset {
            continue;
        }
        match by_base.get(&base) {
            Some((l, stored)) if l == last && same_batch(stored, sent) => {}
            Some((l, _)) => {
                return Err(format!(
                    "acknowledged batch {base}..={last} differs in the log (ends at {l})"
                ))
            }
            None => {
                return Err(format!(
                    "acknowledged batch {base}..={last} is missing (log start {}, hw {})",
                    o.log_start_offset, o.high_watermark
                ))
            }
        }
    }
    let reports = verify::verify_partition(dir).map_err(|e| format!("verify: {e}"))?;
    if let Some(bad) = reports.iter().find(|r| r.is_damaged()) {
        return Err(format!("verify found damage: {bad:?}"));
    }
    Ok(())
}

/// Append `sent`; on an acknowledgement, record it.
async fn produce(
    log: &PartitionLog,
    model: &mut Model,
    sent: Bytes,
    ack: AckLevel,
) -> Result<bool, String> {
    match log.append(sent.clone(), ack).await {
        Ok(info) if ack == AckLevel::Durable => model.ack(&info, &sent).map(|_| true),
        Ok(_) => Ok(true),
        Err(e) if e.is_storage() || matches!(e, LogError::Closed) => {
            say!("  append failed: {e}");
            model.note(0xE);
            Ok(false)
        }
        Err(e) => Err(format!("append refused: {e}")),
    }
}

struct Run {
    rng: Rng,
    model: Model,
    producers: Vec<Producer>,
    clock: Rc<ManualClock>,
    tag: u64,
}

impl Run {
    fn next_batch(&mut self) -> Bytes {
        self.tag += 1;
        let records = 1 + self.rng.below(12) as usize;
        // The tag sets the value size (see `batch`); vary it widely.
        let tag = self.tag * 64 + self.rng.below(50);
        batch(records, self.clock.now_ms(), tag)
    }

    async fn step(&mut self, log: &Rc<PartitionLog>) -> Result<(), String> {
        self.model.hw_seen = self.model.hw_seen.max(log.high_watermark());
        self.clock
            .advance(Duration::from_millis(self.rng.below(2_000)));
        let op = self.rng.below(100);
        say!(" step {op}");
        match op {
            0..=29 => {
                let b = self.next_batch();
                produce(log, &mut self.model, b, AckLevel::Durable).await?;
            }
            30..=34 => {
                let b = self.next_batch();
                produce(log, &mut self.model, b, AckLevel::None).await?;
            }
            35..=59 => self.idempotent(log).await?,
            60..=71 => {
                let n = 2 + self.rng.below(6);
                let tasks: Vec<_> = (0..n)
                    .map(|_| {
                        let b = self.next_batch();
                        let log = log.clone();
                        crate::rt::spawn_local(async move {
                            (log.append(b.clone(), AckLevel::Durable).await, b)
                        })
                    })
                    .collect();
                for t in tasks {
                    let (outcome, sent) = t.await;
                    self.answer(outcome, &sent)?;
                }
            }
            72..=79 => {
                let o = log.offsets();
                let span = (o.high_watermark - o.log_start_offset).max(0) as u64;
                let target = o.log_start_offset + self.rng.below(span + 1) as i64;
                match log.delete_records_before(target).await {
                    Ok(start) => {
                        self.model.start_floor = self.model.start_floor.max(start);
                        self.model.note(start as u64);
                    }
                    Err(e) => return Err(format!("DeleteRecords {target}: {e}")),
                }
            }
            80..=89 => {
                self.clock
                    .advance(Duration::from_millis(self.rng.below(40_000)));
                match log.enforce_retention().await {
                    Ok(_) => {
                        let start = log.offsets().log_start_offset;
                        self.model.start_floor = self.model.start_floor.max(start);
                    }
                    Err(e) if e.is_storage() => {}
                    Err(e) => return Err(format!("retention: {e}")),
                }
            }
            90..=94 if replica::enabled() => replica::step(self, log).await?,
            _ => {
                // Past any recovery backoff.
                self.clock.advance(Duration::from_secs(31));
            }
        }
        Ok(())
    }

    fn answer(
        &mut self,
        outcome: Result<AppendInfo, LogError>,
        sent: &Bytes,
    ) -> Result<(), String> {
        match outcome {
            Ok(info) => self.model.ack(&info, sent),
            Err(e) if e.is_storage() || matches!(e, LogError::Closed) => Ok(()),
            Err(e) => Err(format!("append refused: {e}")),
        }
    }

    /// One idempotent producer sends its next batch (or retries its last).
    async fn idempotent(&mut self, log: &PartitionLog) -> Result<(), String> {
        let i = self.rng.below(self.producers.len() as u64) as usize;
        let sent = match self.producers[i].retry.clone() {
            Some(b) => b,
            None => {
                self.tag += 1;
                let records = 1 + self.rng.below(8) as usize;
                let p = &self.producers[i];
                let b = batch_with_producer(
                    records,
                    self.clock.now_ms(),
                    self.tag * 64 + self.rng.below(50),
                    Some((p.id, 0, p.next_seq)),
                );
                self.producers[i].next_seq += records as i32;
                b
            }
        };
        let ok = produce(log, &mut self.model, sent.clone(), AckLevel::Durable).await?;
        self.producers[i].retry = if ok { None } else { Some(sent) };
        Ok(())
    }

    /// Crash with appends in flight; returns whether it was a power loss.
    async fn crash(
        &mut self,
        log: Rc<PartitionLog>,
        disk: &SimDiskRef,
        batch_mode: bool,
    ) -> Result<bool, String> {
        let n = self.rng.below(5);
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let b = self.next_batch();
                let log = log.clone();
                crate::rt::spawn_local(async move {
                    (log.append(b.clone(), AckLevel::Durable).await, b)
                })
            })
            .collect();
        for _ in 0..self.rng.below(40) {
            sim_disk::step(disk).await;
        }
        self.model.hw_seen = self.model.hw_seen.max(log.high_watermark());
        disk.borrow_mut().crash();
        self.model.hw_seen = self.model.hw_seen.max(log.high_watermark());
        log.abandon();
        // An answer that arrives now was earned before the crash (the high
        // watermark cannot move once the disk refuses every call).
        for t in tasks {
            let (outcome, sent) = t.await;
            self.answer(outcome, &sent)?;
        }
        let mut waited = 0;
        while log.flusher_running.get() || disk.borrow().in_flight() > 0 {
            // Steps of simulated time, not a timer: see `sim_disk::step`.
            sim_disk::step(disk).await;
            waited += 1;
            if waited > 100_000 {
                return Err("the crashed log's flusher never stopped".into());
            }
        }
        drop(log);
        // Interval mode acknowledges what is written, not synced: it
        // promises nothing across a power loss, so it only sees process crashes.
        let power = batch_mode && self.rng.chance(700);
        let mut d = disk.borrow_mut();
        say!(
            "crash ({}): {:?}",
            if power { "power loss" } else { "process" },
            d.stats
        );
        if power {
            d.power_loss_image()
                .map_err(|e| format!("crash image: {e}"))?;
        } else {
            d.process_crash_image();
        }
        d.revive();
        // A producer whose batch was in flight at the crash retries it.
        Ok(power)
    }
}

async fn run_seed(seed: u64, dir: &Path) -> Result<Report, String> {
    let mut rng = Rng::new(seed);
    let config = sim_config(&mut rng);
    let rates = fault_rates(&mut rng);
    let disk = SimDisk::new(rng.next_u64(), rates);
    let _installed = sim_disk::install(disk.clone());
    let mut run = Run {
        producers: (1..=1 + rng.below(3) as i64)
            .map(|id| Producer {
                id,
                next_seq: 0,
                retry: None,
            })
            .collect(),
        rng,
        model: Model {
            highest_acked: -1,
            ..Model::default()
        },
        clock: Rc::new(ManualClock::new(1_700_000_000_000)),
        tag: 0,
    };
    let batch_mode = config.flush_mode == FlushMode::Batch;
    say!("seed {seed}: {config:?}\n{rates:?}");
    let mut report = Report::default();
    let lives = 2 + run.rng.below(3);
    for life in 0..lives {
        if verbose() {
            let mut names: Vec<_> = std::fs::read_dir(dir)
                .unwrap()
                .filter_map(|e| {
                    let e = e.ok()?;
                    Some((e.file_name().into_string().ok()?, e.metadata().ok()?.len()))
                })
                .collect();
            names.sort();
            say!("files: {names:?}");
        }
        let log = reopen(dir, &config, &run.clock).await?;
        log.set_leader_epoch(run.model.leader_epoch);
        // Written now, not by an append in a later crash window: a
        // blocking-pool wait there would make runs differ (replayable seeds).
        let _ = log.persist_epochs().await;
        say!(
            "life {life}: {:?}, log end {}, segments {:?}",
            log.offsets(),
            log.log_end_offset(),
            log.inner
                .borrow()
                .segments
                .iter()
                .map(|(b, s)| (*b, s.next_offset, s.sealed))
                .collect::<Vec<_>>()
        );
        check(&log, dir, &run.model)
            .await
            .map_err(|e| format!("after reopen {life}: {e}"))?;
        let last_life = life + 1 == lives;
        if !last_life && run.rng.chance(600) {
            // Crash in the middle of whatever the log does then.
            disk.borrow_mut().crash_after(run.rng.below(120));
        }
        for _ in 0..10 + run.rng.below(30) {
            run.step(&log).await?;
            if disk.borrow().is_crashed() {
                break;
            }
        }
        if !last_life {
            report.crashes += 1;
            report.power_losses += run.crash(log, &disk, batch_mode).await? as u64;
        } else {
            // A last clean close, then the final check on a fresh open
            // (with the disk healthy, so the close can finish).
            disk.borrow_mut().set_rates(FaultRates::default());
            let _ = log.close().await;
            drop(log);
            let log = reopen(dir, &config, &run.clock).await?;
            log.set_leader_epoch(run.model.leader_epoch);
            // Written now, not by an append in a later crash window: a
            // blocking-pool wait there would make runs differ (replayable seeds).
            let _ = log.persist_epochs().await;
            check(&log, dir, &run.model)
                .await
                .map_err(|e| format!("at the end: {e}"))?;
            log.close().await.map_err(|e| format!("close: {e}"))?;
        }
    }
    let stats = disk.borrow().stats;
    report.acked = run.model.acked.len() as u64;
    report.faults = stats.write_faults + stats.sync_faults + stats.torn_writes;
    report.lost_writes = stats.lost_writes;
    report.lost_files = stats.lost_files;
    report.trace = run.model.trace;
    report.disk_trace = disk.borrow().trace();
    Ok(report)
}

/// Found by the simulation (seed 590 at the time): in batch mode the
/// group-commit fdatasync went to whatever segment was active when it ran.
/// A roll between a write and its sync moved that to the new segment, so
/// the batches just written to the old one were acknowledged unsynced, and
/// a power loss took them.
#[test]
fn an_ack_after_a_roll_covers_the_write_to_the_rolled_segment() {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let disk = SimDisk::new(1, FaultRates::default());
        disk.borrow_mut().lose_all_unsynced = true;
        let _installed = sim_disk::install(disk.clone());
        let config = LogConfig {
            segment_bytes: 1024,
            ..super::tests::small_config()
        };
        let log = super::tests::open(&path, config.clone()).await;
        log.append(batch(1, 1000, 1), AckLevel::Durable)
            .await
            .unwrap();
        // The flusher takes A's write and is held before the device.
        log.inject.hold_writes.set(true);
        let a = {
            let log = log.clone();
            let disk = disk.clone();
            crate::rt::spawn_local(async move {
                let info = log.append(batch(2, 1000, 2), AckLevel::Durable).await;
                // The power fails the moment A is acknowledged.
                disk.borrow_mut().crash();
                info
            })
        };
        glommio::timer::sleep(Duration::from_millis(50)).await;
        // B rolls the log while A's write waits.
        let before = log.segment_count();
        log.append(batch(40, 1000, 49), AckLevel::None)
            .await
            .unwrap();
        assert_eq!(log.segment_count(), before + 1, "B rolled the log");
        log.inject.release_writes();
        let a = a.await.expect("A acknowledged");
        log.abandon();
        while log.flusher_running.get() || disk.borrow().in_flight() > 0 {
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        drop(log);
        disk.borrow_mut().power_loss_image().unwrap();
        disk.borrow_mut().revive();
        let log = super::tests::open(&path, config).await;
        let all = super::tests::read_all(&log, 0).await;
        assert!(
            all.contains(&(a.base_offset, a.last_offset)),
            "acknowledged batch {a:?} lost in a power loss; the log has {all:?}"
        );
        log.close().await.unwrap();
    });
}

/// Run one seed on its own executor and directory.
fn sim_seed(seed: u64) -> Result<Report, String> {
    let dir = test_dir();
    let path = dir.path().to_path_buf();
    run_local(move || async move {
        let outcome =
            match crate::wake::timeout(Duration::from_secs(60), run_seed(seed, &path)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!(
                    "hung for 60 s (gate busy and waiters, calls in flight: {:?})",
                    sim_disk::current().map(|d| {
                        let d = d.borrow();
                        (d.gate_state(), d.in_flight())
                    })
                )),
            };
        for line in sim_disk::take_narration() {
            eprintln!("{line}");
        }
        outcome
    })
    .map_err(|e| format!("seed {seed}: {e}"))
}

fn sim_range(seeds: std::ops::Range<u64>) -> Report {
    sim_disk::run_seeds(
        seeds,
        "log simulation",
        "SIM_SEED={seed} cargo test --release -p shardline-shard sim_many -- --ignored --nocapture",
        sim_seed,
        |total: &mut Report, r| {
            total.acked += r.acked;
            total.crashes += r.crashes;
            total.power_losses += r.power_losses;
            total.faults += r.faults;
            total.lost_writes += r.lost_writes;
            total.lost_files += r.lost_files;
        },
    )
}

/// The tests that run seeds: CI's, the replay checks and the long runs.
#[path = "sim_seeds.rs"]
mod seeds;

/// Follower appends, leader epoch changes and `truncate_to` in the workload.
#[path = "sim_replica.rs"]
mod replica;
