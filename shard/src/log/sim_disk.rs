//! The simulated disk of the log simulation (tests only): a layer over the
//! real segment files that knows which written bytes are not yet synced,
//! injects faults from a seeded generator, and at a simulated crash turns
//! the files into what a power loss could leave.
//!
//! Model:
//! - A write is recorded with the bytes it overwrites. It is "pending"
//!   until an `fdatasync` of the same file completes after it.
//! - Faults (chosen per call from the seed): a write or sync fails with EIO
//!   or ENOSPC; a write is torn (a 512-byte multiple of it lands, then EIO).
//!   A failed sync leaves the writes pending (they may be lost later).
//! - A crash freezes the disk: every call from then on fails without
//!   touching the files (the crashed log's tasks can do no more harm).
//!   `power_loss` then decides each pending write, newest first: kept,
//!   lost (its old bytes restored, except where a newer kept write lies),
//!   or torn (kept up to a random 512-byte boundary). A process crash
//!   (`process_crash`) keeps them all: the device has them.
//! - Truncates take effect at once (a lost one only leaves zeros past the
//!   end, which recovery cuts like any torn tail).
//! - Order: one real operation at a time, each after a seeded number of
//!   steps of simulated time ([`enter`], [`step`]), so a seed replays the
//!   same sequence of device events ([`SimDisk::trace`]).
//!
//! - A segment file created through the seam (`disk::open`) has no durable
//!   directory entry until a sync of its directory (`dir_synced`, which
//!   `index::write_durably` calls) after its creation: a power loss may
//!   take the whole file, synced data and all.
//!
//! Not modelled: lost renames and unlinks (the log renames only in
//! `write_durably`, which syncs the directory at once, and in compaction,
//! which the simulation does not run; a segment deleted by retention does
//! not come back), reordering within one write, reads returning errors.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// A small, fast, seedable generator (splitmix64): the simulation must
/// replay exactly from its seed, whatever the platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed ^ 0x5DEE_CE66_D1A4_F87D)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `per_mille`/1000.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille as u64
    }
}

/// How often each fault happens, per thousand calls.
#[derive(Debug, Clone, Copy, Default)]
pub struct FaultRates {
    pub write_error: u32,
    pub torn_write: u32,
    pub sync_error: u32,
}

/// What the simulated device does with one write.
pub(super) enum Fault {
    None,
    Fail(io::Error),
    /// Write this many bytes, then fail with the error.
    Torn(usize, io::Error),
}

struct PendingWrite {
    pos: u64,
    /// The bytes the write replaced (zeros past the old end of file).
    old: Vec<u8>,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct DiskStats {
    pub writes: u64,
    pub syncs: u64,
    pub write_faults: u64,
    pub torn_writes: u64,
    pub sync_faults: u64,
    pub crashes: u64,
    pub lost_writes: u64,
    pub torn_at_crash: u64,
    /// New files whose directory entry a power loss took.
    pub lost_files: u64,
}

pub struct SimDisk {
    rng: Rng,
    rates: FaultRates,
    pending: BTreeMap<PathBuf, Vec<PendingWrite>>,
    crashed: bool,
    /// Device calls left before a planned crash.
    crash_in: Option<u64>,
    /// A power loss loses every unsynced write (for targeted tests),
    /// rather than a random part of them.
    pub lose_all_unsynced: bool,
    in_flight: usize,
    /// A real operation (io_uring, blocking pool) is running: see [`Gate`].
    busy: bool,
    /// Tasks waiting for the gate, woken in the order they came.
    waiting: Vec<Waker>,
    /// A hash of every device event in order (see [`SimDisk::trace`]).
    trace: u64,
    /// Files created since their directory was last synced, with the
    /// [`DIR_SYNCS`] sequence number at their creation.
    created: BTreeMap<PathBuf, u64>,
    pub stats: DiskStats,
}

pub type SimDiskRef = Rc<RefCell<SimDisk>>;

impl SimDisk {
    /// Whether a real operation holds the gate, and how many wait for it
    /// (for the report of a hung seed).
    pub fn gate_state(&self) -> (bool, usize) {
        (self.busy, self.waiting.len())
    }
}

/// `SIM_VERBOSE`: keep a narration of the run, printed at its end.
pub fn verbose() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SIM_VERBOSE").is_some())
}

/// A numeric `SIM_*` environment variable, if set.
pub fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|v| v.parse().ok())
}

/// The seeds a `sim_many` run covers: `SIM_SEED` alone, or `SIM_SEEDS`
/// seeds (1000 by default) from `SIM_FIRST` (0). Shared by the log's and
/// the group coordinator's simulations, so both take the same commands.
pub fn seeds_from_env() -> std::ops::Range<u64> {
    match env_u64("SIM_SEED") {
        Some(s) => s..s + 1,
        None => {
            let first = env_u64("SIM_FIRST").unwrap_or(0);
            first..first + env_u64("SIM_SEEDS").unwrap_or(1000)
        }
    }
}

/// Run `run` for every seed and fold each report into the total with
/// `add`. The first failing seed, or one whose executor panicked (an
/// invariant assertion), panics with `what`, the error and the command that
/// replays it (`replay`, with `{seed}` replaced). Shared by the log's and
/// the group coordinator's simulations.
pub fn run_seeds<R, T: Default>(
    seeds: std::ops::Range<u64>,
    what: &str,
    replay: &str,
    run: impl Fn(u64) -> Result<R, String>,
    mut add: impl FnMut(&mut T, R),
) -> T {
    let mut total = T::default();
    for seed in seeds {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(seed)))
            .unwrap_or_else(|_| Err(format!("seed {seed}: panicked (see above)")));
        match outcome {
            Ok(r) => add(&mut total, r),
            Err(e) => panic!(
                "{what} failed: {e}\nreplay: {}",
                replay.replace("{seed}", &seed.to_string())
            ),
        }
    }
    total
}

/// Add a line to the narration (buffered: printing as it happens would
/// change the timing of the run it narrates).
pub fn note(line: impl FnOnce() -> String) {
    if verbose() {
        NARRATION.with(|n| n.borrow_mut().push(line()));
    }
}

/// The narration so far, emptied.
pub fn take_narration() -> Vec<String> {
    NARRATION.with(|n| std::mem::take(&mut *n.borrow_mut()))
}

thread_local! {
    static NARRATION: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
    static CURRENT: RefCell<Option<SimDiskRef>> = const { RefCell::new(None) };
}

/// The simulated disk installed on this thread, if any.
pub(super) fn current() -> Option<SimDiskRef> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Route this thread's segment I/O through `disk` until the guard drops.
pub fn install(disk: SimDiskRef) -> Installed {
    CURRENT.with(|c| *c.borrow_mut() = Some(disk));
    Installed
}

pub struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        CURRENT.with(|c| *c.borrow_mut() = None);
    }
}

fn crashed_error() -> io::Error {
    io::Error::other("simulated crash: the device is gone")
}

fn random_error(rng: &mut Rng) -> io::Error {
    let code = if rng.chance(500) {
        libc::ENOSPC
    } else {
        libc::EIO
    };
    io::Error::from_raw_os_error(code)
}

/// Read `len` bytes at `pos` of `path`; zeros past its end.
fn read_old(path: &Path, pos: u64, len: usize) -> Vec<u8> {
    let mut old = vec![0; len];
    if let Ok(f) = std::fs::File::open(path) {
        let mut at = 0;
        while at < len {
            match f.read_at(&mut old[at..], pos + at as u64) {
                Ok(0) | Err(_) => break,
                Ok(n) => at += n,
            }
        }
    }
    old
}

impl SimDisk {
    pub fn new(seed: u64, rates: FaultRates) -> SimDiskRef {
        Rc::new(RefCell::new(Self {
            rng: Rng::new(seed),
            rates,
            pending: BTreeMap::new(),
            crashed: false,
            crash_in: None,
            lose_all_unsynced: false,
            in_flight: 0,
            busy: false,
            waiting: Vec::new(),
            trace: 0,
            created: BTreeMap::new(),
            stats: DiskStats::default(),
        }))
    }

    /// The hash of the run's device events so far: every write (file name,
    /// position, length, fault), sync, truncate, crash and what a power
    /// loss did. Two runs of one seed must give the same value.
    pub fn trace(&self) -> u64 {
        self.trace
    }

    /// Fold one event into the trace (FNV-1a over its words).
    fn event(&mut self, kind: u64, path: &Path, a: u64, b: u64) {
        // The file name only: each run has its own temporary directory.
        let name = path.file_name().map_or(&[][..], |n| n.as_encoded_bytes());
        let mut h = self.trace ^ 0xCBF2_9CE4_8422_2325;
        for w in name.iter().map(|&c| c as u64).chain([kind, a, b, u64::MAX]) {
            h = (h ^ w).wrapping_mul(0x0100_0000_01B3);
        }
        self.trace = h;
        note(|| format!("  event {kind} {} {a} {b}", path.display()));
    }

    /// A random number of simulated-time steps for a call about to start,
    /// so concurrent calls reach the device in a seeded order.
    pub(super) fn delay(&mut self) -> u64 {
        self.rng.below(3)
    }

    pub fn set_rates(&mut self, rates: FaultRates) {
        self.rates = rates;
    }

    fn check_alive(&mut self) -> io::Result<()> {
        if let Some(n) = self.crash_in {
            // The crash planned at this call: anywhere, e.g. between a
            // write and the fdatasync that would have covered it.
            self.crash_in = n.checked_sub(1);
            if n == 0 {
                note(|| "  planned crash now".to_string());
                self.crash();
            }
        }
        if self.crashed {
            return Err(crashed_error());
        }
        self.in_flight += 1;
        Ok(())
    }

    pub(super) fn before_write(&mut self, path: &Path, pos: u64, len: usize) -> io::Result<Fault> {
        self.check_alive()?;
        self.stats.writes += 1;
        note(|| format!("  write {}: {pos}+{len}", path.display()));
        let rates = self.rates;
        if self.rng.chance(rates.write_error) {
            self.stats.write_faults += 1;
            return Ok(Fault::Fail(random_error(&mut self.rng)));
        }
        let mut fault = Fault::None;
        let mut recorded = len;
        if len >= 1024 && self.rng.chance(rates.torn_write) {
            // DMA writes are whole pages; a torn one stops at a sector.
            let keep = (self.rng.below((len / 512) as u64 - 1) as usize + 1) * 512;
            // O_DIRECT needs page-aligned lengths: round down to a page,
            // and to nothing if that leaves nothing.
            let keep = keep / 4096 * 4096;
            self.stats.torn_writes += 1;
            recorded = keep;
            fault = if keep == 0 {
                Fault::Fail(io::Error::from_raw_os_error(libc::EIO))
            } else {
                Fault::Torn(keep, io::Error::from_raw_os_error(libc::EIO))
            };
        }
        let code = match &fault {
            Fault::None => 0,
            Fault::Fail(e) => 1 + e.raw_os_error().unwrap_or(0) as u64,
            Fault::Torn(keep, _) => (*keep as u64) << 8,
        };
        self.event(1, path, pos, ((len as u64) << 32) | code);
        if recorded > 0 {
            let old = read_old(path, pos, recorded);
            self.pending
                .entry(path.to_path_buf())
                .or_default()
                .push(PendingWrite { pos, old });
        }
        Ok(fault)
    }

    /// An fdatasync starts: returns how many pending writes it covers.
    pub(super) fn before_sync(&mut self, path: &Path) -> io::Result<usize> {
        self.check_alive()?;
        self.stats.syncs += 1;
        note(|| format!("  sync {}", path.display()));
        let rates = self.rates;
        if self.rng.chance(rates.sync_error) {
            self.stats.sync_faults += 1;
            self.in_flight -= 1;
            let e = random_error(&mut self.rng);
            self.event(2, path, 1, e.raw_os_error().unwrap_or(0) as u64);
            return Err(e);
        }
        let covered = self.pending.get(path).map_or(0, Vec::len);
        self.event(2, path, 0, covered as u64);
        Ok(covered)
    }

    /// The fdatasync completed: the writes before it are durable.
    pub(super) fn synced(&mut self, path: &Path, covered: usize) {
        if let Some(list) = self.pending.get_mut(path) {
            list.drain(..covered.min(list.len()));
        }
    }

    pub(super) fn before_open(&mut self) -> io::Result<()> {
        self.check_alive()
    }

    /// `path` was created: its directory entry is not durable yet.
    pub(super) fn created(&mut self, path: &Path) {
        self.event(6, path, 0, 0);
        self.created.insert(path.to_path_buf(), next_dir_seq());
    }

    pub(super) fn before_truncate(&mut self, path: &Path, size: u64) -> io::Result<()> {
        self.check_alive()?;
        self.event(3, path, size, 0);
        Ok(())
    }

    /// A call counted by `check_alive` ended.
    pub(super) fn end_io(&mut self) {
        self.in_flight -= 1;
    }

    /// Stop the device: every call from now on fails.
    pub fn crash(&mut self) {
        if !self.crashed {
            self.crashed = true;
            self.crash_in = None;
            self.stats.crashes += 1;
            self.event(4, Path::new(""), self.stats.crashes, 0);
        }
    }

    /// Crash at the `n`th device call from now (0: the next one).
    pub fn crash_after(&mut self, n: u64) {
        self.crash_in = Some(n);
    }

    pub fn is_crashed(&self) -> bool {
        self.crashed
    }

    /// Calls still running on the device (the harness waits for none
    /// before it rewrites the files).
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// A process crash: the device keeps everything it was given.
    pub fn process_crash_image(&mut self) {
        assert!(self.crashed && self.in_flight == 0);
        self.pending.clear();
    }

    /// A power loss: a file created since its directory was last synced
    /// may be gone (with its data, synced or not); each pending write,
    /// newest first, is kept, lost or torn. Returns the number of bytes put
    /// back.
    pub fn power_loss_image(&mut self) -> io::Result<u64> {
        assert!(self.crashed && self.in_flight == 0);
        let created = std::mem::take(&mut self.created);
        for (path, seq) in created {
            let dir = path.parent().unwrap_or(Path::new("."));
            if dir_synced_after(dir, seq) || !path.exists() {
                continue;
            }
            if self.lose_all_unsynced || self.rng.chance(500) {
                note(|| format!("  lost directory entry of {}", path.display()));
                self.event(7, &path, 0, 0);
                self.stats.lost_files += 1;
                std::fs::remove_file(&path)?;
                self.pending.remove(&path);
            } else {
                self.event(7, &path, 1, 0);
            }
        }
        let mut restored = 0;
        let pending = std::mem::take(&mut self.pending);
        for (path, writes) in pending {
            let Ok(file) = std::fs::OpenOptions::new().write(true).open(&path) else {
                continue; // deleted since (retention)
            };
            // Byte ranges a newer write that was kept lies over.
            let mut kept: Vec<(u64, u64)> = Vec::new();
            for w in writes.iter().rev() {
                let end = w.pos + w.old.len() as u64;
                let fate = if self.lose_all_unsynced {
                    50
                } else {
                    self.rng.below(100)
                };
                let keep_to = match fate {
                    0..=49 => end,
                    50..=84 => w.pos,
                    _ => {
                        self.stats.torn_at_crash += 1;
                        let sectors = w.old.len() as u64 / 512;
                        w.pos + self.rng.below(sectors + 1) * 512
                    }
                };
                self.event(5, &path, w.pos, keep_to);
                if keep_to < end {
                    note(|| {
                        format!(
                            "  lost {}: {}..{} from {keep_to}",
                            path.display(),
                            w.pos,
                            end
                        )
                    });
                    self.stats.lost_writes += 1;
                    restored += restore(&file, w, keep_to, &kept)?;
                }
                if keep_to > w.pos {
                    kept.push((w.pos, keep_to));
                }
            }
            file.sync_all()?;
        }
        Ok(restored)
    }

    pub fn revive(&mut self) {
        assert_eq!(self.in_flight, 0);
        self.crashed = false;
    }
}

/// Put back the old bytes of `w` from `from` on, except under `kept`.
fn restore(
    file: &std::fs::File,
    w: &PendingWrite,
    from: u64,
    kept: &[(u64, u64)],
) -> io::Result<u64> {
    let end = w.pos + w.old.len() as u64;
    let mut written = 0;
    let mut at = from;
    while at < end {
        // Skip over kept ranges; write up to the next one.
        if let Some(&(_, k_end)) = kept.iter().find(|(s, e)| *s <= at && at < *e) {
            at = k_end;
            continue;
        }
        let next_kept = kept
            .iter()
            .filter(|(s, _)| *s > at)
            .map(|(s, _)| *s)
            .min()
            .unwrap_or(end)
            .min(end);
        let slice = &w.old[(at - w.pos) as usize..(next_kept - w.pos) as usize];
        file.write_all_at(slice, at)?;
        written += slice.len() as u64;
        at = next_kept;
    }
    Ok(written)
}

/// Directory syncs, process-wide (the blocking pool syncs directories off
/// the shard thread, where the simulated disk is not): the sequence number
/// of each directory's last sync. A file created under sequence `n`
/// survives a power loss for sure once its directory has a sync after `n`.
static DIR_SYNCS: std::sync::Mutex<BTreeMap<PathBuf, u64>> = std::sync::Mutex::new(BTreeMap::new());
static DIR_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_dir_seq() -> u64 {
    DIR_SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
}

/// `dir` was synced (its entries are durable): called by every directory
/// sync of the log, real or skipped under the simulation.
pub fn dir_synced(dir: &Path) {
    let seq = next_dir_seq();
    DIR_SYNCS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(dir.to_path_buf(), seq);
}

fn dir_synced_after(dir: &Path, seq: u64) -> bool {
    DIR_SYNCS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(dir)
        .is_some_and(|&s| s > seq)
}

/// One real operation at a time under the simulation.
///
/// The simulation must not depend on when the kernel (io_uring) or the
/// blocking pool completes an operation. So every real operation a
/// simulated log makes (each device call of `disk.rs`, opening a segment,
/// reading one, the index and snapshot writes of the blocking pool) holds
/// the gate while it runs, and every other task that wants the device, or
/// a step of simulated time ([`step`]), waits for it: while a real
/// operation is out, nothing else in the simulation moves, and the task
/// that made it continues first when it ends. Waiters are woken in the
/// order they came, so who goes next is decided by the run, not the kernel.
pub fn enter(sim: &SimDiskRef) -> impl Future<Output = GateGuard> + '_ {
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        let mut d = sim.borrow_mut();
        if d.busy {
            d.waiting.push(cx.waker().clone());
            Poll::Pending
        } else {
            d.busy = true;
            Poll::Ready(GateGuard(sim.clone()))
        }
    })
}

/// Holds the gate (see [`enter`]); releasing it wakes the waiters in order.
pub struct GateGuard(SimDiskRef);

impl Drop for GateGuard {
    fn drop(&mut self) {
        let waiting = {
            let mut d = self.0.borrow_mut();
            d.busy = false;
            std::mem::take(&mut d.waiting)
        };
        for w in waiting {
            w.wake();
        }
    }
}

/// One step of simulated time: let every other runnable task of the
/// simulation move once (after any real operation in progress ended).
/// The harness and the simulated device wait with this, never with a timer
/// or a bare `yield_now`, whose count would depend on the kernel.
pub async fn step(sim: &SimDiskRef) {
    drop(enter(sim).await);
    futures_lite::future::yield_now().await;
}

impl super::PartitionLog {
    /// The process dies (simulation): no more appends, the flusher stops at
    /// its next step (the crashed disk refuses everything), nothing is
    /// closed.
    pub fn abandon(&self) {
        self.closed.set(true);
        self.flush_signal.notify_all();
        self.progress_signal.notify_all();
        self.data_signal.notify_all();
    }

    /// The flusher task has ended (after `abandon`, once the crashed disk
    /// refused its next call).
    pub fn flusher_stopped(&self) -> bool {
        !self.flusher_running.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::tests::{batch, open, read_all, small_config, test_dir};
    use crate::log::AckLevel;
    use crate::runtime::run_local;

    /// The model: a file created with no directory sync after it is gone
    /// after a power loss (when the disk loses all it may); one whose
    /// directory was synced after its creation stays.
    #[test]
    fn a_power_loss_takes_a_new_file_whose_directory_was_not_synced() {
        let dir = test_dir();
        let (synced, unsynced) = (dir.path().join("a.log"), dir.path().join("b.log"));
        let disk = SimDisk::new(1, FaultRates::default());
        let mut d = disk.borrow_mut();
        d.lose_all_unsynced = true;
        std::fs::write(&synced, b"a").unwrap();
        d.created(&synced);
        dir_synced(dir.path());
        std::fs::write(&unsynced, b"b").unwrap();
        d.created(&unsynced);
        d.crash();
        d.power_loss_image().unwrap();
        assert!(synced.exists(), "its directory was synced after it");
        assert!(
            !unsynced.exists(),
            "its directory entry never reached the disk"
        );
        assert_eq!(d.stats.lost_files, 1);
    }

    /// Found by the simulation once it modelled directory entries (seed 11
    /// at the time: "high watermark went back from 12 to 0"): a new segment
    /// file was created without a directory sync, and a partition's first
    /// segment got none later, so a power loss could take it whole with the
    /// batches acknowledged in it.
    #[test]
    fn a_power_loss_keeps_the_first_segment_of_a_new_partition() {
        let dir = test_dir();
        let path = dir.path().join("p-0");
        run_local(move || async move {
            let disk = SimDisk::new(1, FaultRates::default());
            disk.borrow_mut().lose_all_unsynced = true;
            let _installed = install(disk.clone());
            let log = open(&path, small_config()).await;
            let acked = log
                .append(batch(3, 1000, 1), AckLevel::Durable)
                .await
                .unwrap();
            disk.borrow_mut().crash();
            log.close().await.ok();
            drop(log);
            while disk.borrow().in_flight() > 0 {
                step(&disk).await;
            }
            disk.borrow_mut().power_loss_image().unwrap();
            disk.borrow_mut().revive();
            let log = open(&path, small_config()).await;
            assert_eq!(
                read_all(&log, 0).await,
                vec![(acked.base_offset, acked.last_offset)],
                "the acknowledged batch survives the power loss"
            );
            log.close().await.unwrap();
        });
    }
}
