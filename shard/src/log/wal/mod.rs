//! The shard's write-ahead ring: one device flush per commit round, however
//! many partitions the round touches (`log_flush = batch`).
//!
//! Why: a partition's segment is a file of its own, and making N files
//! durable costs N device flushes plus their metadata (`shardline iotune`
//! measured 11 ms for 64 files on this VM, 0.14 ms for one; concurrent
//! fdatasyncs are not merged). So each partition's flusher hands its new
//! bytes to this ring: every round's bytes of every partition go into one
//! frame, written sequentially into one file with one fdatasync. An append
//! is acknowledged once its frame is durable; the segment write-back with
//! O_DIRECT follows later, off the ack path (`writeback.rs`).
//!
//! The segment writes become durable later, together, by a **checkpoint**:
//! one `syncfs` of the data directory, after which the ring's space before
//! the checkpoint may be reused. Startup redoes the frames after the last
//! checkpoint (`replay.rs`) before any partition is opened, so what a frame
//! acknowledged is in its segment again when the log is loaded.
//!
//! Invariants (asserted where they are made):
//! - frames are written one at a time, in sequence order, each with its
//!   fdatasync before the next; so a torn frame can only be the last one;
//! - space between the durable checkpoint and the head is never reused, and
//!   one page is always kept free so that a marker frame that persists a new
//!   checkpoint can be written when the ring is full;
//! - a checkpoint covers a frame only after every segment write of that frame
//!   has finished (the `outstanding` counts: tickets the partitions hold
//!   until their write-back), and `syncfs` runs after that; a checkpoint asks
//!   the partitions holding older groups to write back;
//! - a change to the set or size of a partition's files (truncation,
//!   retention, compaction, recovery, deletion) first waits for a durable
//!   checkpoint that covers the partition's frames ([`ShardWal::barrier`]):
//!   redoing an old write into a file changed since would bring back bytes
//!   that were cut away.

pub mod frame;
pub(super) mod glue;
pub mod replay;
#[cfg(test)]
mod tests;
mod writeback;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use glommio::io::{DmaFile, OpenOptions};

use self::frame::{frame_len, PAGE};
use super::disk;
use super::error::LogError;
use crate::signal::Signal;

/// A group that has reached this many body bytes is closed to appends and
/// written as its own frame; later appends start the next one.
const GROUP_BODY_BYTES: usize = 4 << 20;
/// A checkpoint starts once this share of the ring is in use (1/N).
///
/// Why a half: a checkpoint asks every partition holding an older group to
/// write its bytes back, so with many partitions the ring's share before a
/// checkpoint, split among them, is the size of each write-back. At 1,000
/// partitions and a 128 MiB ring a quarter made 32 KiB writes, each through
/// an io_uring worker (extending writes), and the device spent its time on
/// those: 264 MB/s of 1 KiB records; a half, 333 MB/s. The other half
/// leaves room for frames while the checkpoint runs.
const CHECKPOINT_AT_SHARE: u64 = 2;
/// Pause before retrying a failed `syncfs`.
const CHECKPOINT_RETRY: Duration = Duration::from_millis(100);
/// Failed groups remembered for their waiters (errors are rare; bounded).
const MAX_FAILED_REMEMBERED: usize = 1024;

thread_local! {
    static SHARD_WAL: RefCell<Option<Rc<ShardWal>>> = const { RefCell::new(None) };
}

/// The ring of this shard, when one is installed (broker shards with
/// `log_flush = batch`); partitions opened afterwards use it.
pub fn current() -> Option<Rc<ShardWal>> {
    SHARD_WAL.with(|w| w.borrow().clone())
}

/// Open this shard's ring (prepared by [`replay::prepare`]) and make it the
/// one partitions opened from now on use.
pub async fn install(
    data_dir: &Path,
    shard: usize,
    next_lsn: u64,
) -> Result<Rc<ShardWal>, LogError> {
    let wal = ShardWal::open(data_dir, shard, next_lsn).await?;
    SHARD_WAL.with(|w| *w.borrow_mut() = Some(wal.clone()));
    Ok(wal)
}

/// Shutdown, after every partition is closed: write what is queued, take a
/// last checkpoint (so the next start has nothing to redo), uninstall.
pub async fn shutdown() -> Result<(), LogError> {
    let Some(wal) = SHARD_WAL.with(|w| w.borrow_mut().take()) else {
        return Ok(());
    };
    wal.close().await
}

/// Force a checkpoint covering every frame so far (a directory is about to
/// be deleted whose partition is not open here).
pub async fn checkpoint_all() {
    if let Some(wal) = current() {
        let last = wal.state.borrow().last_appended;
        if let Some(seq) = last {
            // Bounded: on a full disk another partition's acknowledged
            // batches may wait for room for as long as the disk stays full,
            // and the checkpoint with them; a deletion (which is how room is
            // made) must not wait for that.
            match crate::rt::timeout(CHECKPOINT_ALL_WAIT, wal.barrier(seq)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!("{e}; a restart may redo old writes into re-created partitions")
                }
                Err(elapsed) => tracing::warn!(
                    "the write-ahead ring's checkpoint did not finish ({elapsed}; another \
                     partition's writes are waiting, perhaps for disk space); a restart may redo \
                     old writes into re-created partitions"
                ),
            }
        }
    }
}

/// Longest wait of [`checkpoint_all`].
const CHECKPOINT_ALL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The bytes one segment write put at `pos` of a segment file.
pub struct WalEntry {
    /// Relative to the data directory: `<partition dir>/<base>.log`.
    pub path: String,
    pub pos: u64,
    pub pieces: Vec<Bytes>,
    pub len: usize,
}

impl WalEntry {
    pub fn body_len(&self) -> usize {
        frame::entry_len(self.path.len(), self.len)
    }
}

/// Entries that go into one frame. `seq` numbers groups in append order.
struct Group {
    seq: u64,
    entries: Vec<WalEntry>,
    body: usize,
}

impl Group {
    fn new(seq: u64) -> Self {
        Self {
            seq,
            entries: Vec::new(),
            body: 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Checkpoint {
    /// Groups with a smaller sequence number are covered.
    seq: u64,
    /// Where replay starts: the frame of `seq`, or the head if unwritten.
    lsn: u64,
}

impl Checkpoint {
    /// Whether taking this checkpoint after `current` moves anything: more
    /// groups, or the same groups with replay starting later (a group's
    /// segment writes may finish before its frame is written, so a
    /// checkpoint can cover a group whose frame lands after its `lsn`).
    fn passes(&self, current: &Checkpoint) -> bool {
        self.seq > current.seq || (self.seq == current.seq && self.lsn > current.lsn)
    }
}

struct State {
    /// Takes appends; closed (moved to `queue`) when the writer takes it or
    /// when it is full.
    open: Group,
    queue: VecDeque<Group>,
    /// LSN of the next frame.
    head: u64,
    /// Groups below this have been written (or failed).
    done_seq: u64,
    failed: BTreeSet<u64>,
    last_error: Option<String>,
    /// Segment writes not yet finished, per group.
    outstanding: BTreeMap<u64, u32>,
    /// LSN of each group written since the durable checkpoint.
    frame_lsn: BTreeMap<u64, u64>,
    /// The last checkpoint `syncfs` made true, and the last one a durable
    /// frame carries (only that one lets space be reused).
    checkpoint: Checkpoint,
    durable_checkpoint: Checkpoint,
    checkpointing: bool,
    closing: bool,
    writer_done: bool,
    /// The group of the latest append.
    last_appended: Option<u64>,
    /// The last frame write or `syncfs` failed: barriers give up instead of
    /// waiting for a checkpoint that may never come.
    failing: bool,
    /// Partitions holding a group below this should write their bytes
    /// back: a checkpoint is waiting for them (`writeback.rs`).
    write_back_below: u64,
}

pub struct ShardWal {
    me: std::rc::Weak<ShardWal>,
    root: PathBuf,
    file: DmaFile,
    ring: u64,
    state: RefCell<State>,
    /// Appends queued or a checkpoint to persist: wakes the writer.
    work: Signal,
    /// The appends waiting for each group's frame, by group: a frame
    /// written (or failed) wakes only its own group's and older ones.
    ///
    /// Why not one signal: with 10,000 partitions every flusher waits for a
    /// frame at once, and a 4 MiB frame covers a few hundred of them; one
    /// shard-wide signal woke all 10,000 per frame (some 500,000 polls a
    /// second that found their frame not yet written).
    durable: RefCell<BTreeMap<u64, Signal>>,
    /// A segment write finished or a frame was written: wakes a checkpoint
    /// waiting for something new to cover.
    released: Signal,
    /// Checkpoints taken or persisted: wakes barriers and a writer short of
    /// space.
    progress: Signal,
    /// `write_back_below` moved: wakes idle partitions holding groups.
    write_back: Signal,
}

/// Held by a partition's flusher while its segment write of a group runs;
/// dropping it (done or failed) lets checkpoints pass the group.
pub struct WalTicket {
    wal: Rc<ShardWal>,
    seq: u64,
}

impl WalTicket {
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl Drop for WalTicket {
    fn drop(&mut self) {
        let mut st = self.wal.state.borrow_mut();
        let left = st.outstanding.get_mut(&self.seq).expect("ticket counted");
        *left -= 1;
        if *left == 0 {
            st.outstanding.remove(&self.seq);
        }
        drop(st);
        self.wal.released.notify_all();
    }
}

impl ShardWal {
    async fn open(data_dir: &Path, shard: usize, next_lsn: u64) -> Result<Rc<Self>, LogError> {
        let path = replay::ring_path(data_dir, shard);
        super::direct_io::prepare_dir(&replay::wal_dir(data_dir)).await?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .dma_open(&path)
            .await
            .map_err(|e| LogError::Storage(format!("opening {}: {e}", path.display())))?;
        let ring = file.file_size().await.map_err(std::io::Error::from)?;
        assert!(
            ring >= replay::MIN_RING_BYTES && ring.is_multiple_of(PAGE as u64),
            "{}: ring of {ring} bytes",
            path.display()
        );
        let start = Checkpoint {
            seq: 0,
            lsn: next_lsn,
        };
        let wal = Rc::new_cyclic(|me| Self {
            me: me.clone(),
            root: data_dir.to_path_buf(),
            file,
            ring,
            state: RefCell::new(State {
                open: Group::new(0),
                queue: VecDeque::new(),
                head: next_lsn,
                done_seq: 0,
                failed: BTreeSet::new(),
                last_error: None,
                outstanding: BTreeMap::new(),
                frame_lsn: BTreeMap::new(),
                checkpoint: start,
                durable_checkpoint: start,
                checkpointing: false,
                closing: false,
                writer_done: false,
                last_appended: None,
                failing: false,
                write_back_below: 0,
            }),
            work: Signal::new(),
            durable: RefCell::new(BTreeMap::new()),
            released: Signal::new(),
            progress: Signal::new(),
            write_back: Signal::new(),
        });
        // Startup redid the frames up to `next_lsn` and synced them: a
        // marker saying so must be durable before any partition is loaded,
        // as loading may cut segment files that the old frames wrote.
        wal.write_marker().await?;
        crate::rt::spawn_detached(wal.clone().run_writer());
        Ok(wal)
    }

    /// The data directory entries' paths are relative to.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Queue `entries` for the next frame; the ticket is held until the
    /// same bytes are written to their segments.
    pub fn append(&self, entries: Vec<WalEntry>) -> WalTicket {
        let mut st = self.state.borrow_mut();
        assert!(!st.closing, "append to a closing write-ahead ring");
        // An empty group would never be written, and a barrier on it
        // would wait forever.
        assert!(!entries.is_empty(), "an append without entries");
        let incoming: usize = entries.iter().map(WalEntry::body_len).sum();
        let max_body = self.max_round_body();
        assert!(
            incoming <= max_body,
            "a round of {incoming} bytes is over the ring's limit {max_body}"
        );
        // A group closes at GROUP_BODY_BYTES, or earlier when these entries
        // would take its frame over half the ring.
        if st.open.body >= GROUP_BODY_BYTES
            || (!st.open.entries.is_empty() && st.open.body + incoming > max_body)
        {
            let next = Group::new(st.open.seq + 1);
            let full = std::mem::replace(&mut st.open, next);
            st.queue.push_back(full);
        }
        for e in entries {
            st.open.body += e.body_len();
            st.open.entries.push(e);
        }
        let seq = st.open.seq;
        st.last_appended = Some(seq);
        *st.outstanding.entry(seq).or_insert(0) += 1;
        drop(st);
        self.work.notify_all();
        WalTicket {
            wal: self.me.upgrade().expect("the ring is alive"),
            seq,
        }
    }

    /// The most entry bytes one flusher round may hand to `append`: its
    /// frame, with a page spare, must fit in half the ring. A bigger round
    /// syncs its segment files itself instead.
    pub fn max_round_body(&self) -> usize {
        let half = (self.ring / 2) as usize;
        let max_frame = half.saturating_sub(PAGE) / PAGE * PAGE;
        max_frame.saturating_sub(frame::HEADER)
    }

    /// Whether a partition whose oldest held group is `seq` should write
    /// its bytes back now (a checkpoint waits for that group).
    pub fn write_back_wanted(&self, seq: u64) -> bool {
        seq < self.state.borrow().write_back_below
    }

    pub fn write_back_notified(&self) -> crate::signal::Notified {
        self.write_back.notified()
    }

    /// Ask every partition holding a group whose frame is written to write
    /// its bytes back, so the checkpoint can cover it.
    fn ask_write_back(&self) {
        let mut st = self.state.borrow_mut();
        if st.done_seq > st.write_back_below {
            st.write_back_below = st.done_seq;
            drop(st);
            self.write_back.notify_all();
        }
    }

    /// Wait until group `seq`'s frame is durable.
    pub async fn wait_durable(&self, seq: u64) -> Result<(), LogError> {
        loop {
            {
                let st = self.state.borrow();
                if st.done_seq > seq {
                    if st.failed.contains(&seq) {
                        let why = st.last_error.clone().unwrap_or_default();
                        return Err(LogError::Storage(format!(
                            "writing the write-ahead ring failed: {why}"
                        )));
                    }
                    return Ok(());
                }
                if st.writer_done {
                    return Err(LogError::Closed);
                }
            }
            // Registered only when the frame is still to come (a waiter
            // that returned above leaves no entry behind), with no await
            // between the check and the registration, so no wake is missed.
            let notified = self.durable.borrow_mut().entry(seq).or_default().notified();
            notified.await;
        }
    }

    /// Wait for a durable checkpoint covering group `seq` (and so every
    /// frame before it), starting one if needed. Fails, rather than wait
    /// without end, while the ring's writes or checkpoints are failing.
    pub async fn barrier(&self, seq: u64) -> Result<(), LogError> {
        loop {
            let notified = self.progress.notified();
            {
                let st = self.state.borrow();
                if st.durable_checkpoint.seq > seq || st.writer_done {
                    return Ok(());
                }
                if st.failing {
                    return Err(LogError::Storage(format!(
                        "the write-ahead ring cannot take a checkpoint: {}",
                        st.last_error.as_deref().unwrap_or("unknown error")
                    )));
                }
            }
            self.request_checkpoint();
            notified.await;
        }
    }

    fn request_checkpoint(&self) {
        let mut st = self.state.borrow_mut();
        if st.checkpointing || st.writer_done {
            return;
        }
        st.checkpointing = true;
        drop(st);
        let me = self.me.upgrade().expect("the ring is alive");
        crate::rt::spawn_detached(me.checkpoint());
    }

    /// Where a checkpoint taken now can start replay: the oldest group
    /// with a segment write still running, else the next group.
    fn checkpoint_target(&self) -> Checkpoint {
        let st = self.state.borrow();
        let first_unwritten = st.queue.front().map_or(st.open.seq, |g| g.seq);
        let seq = st
            .outstanding
            .keys()
            .next()
            .copied()
            .unwrap_or(first_unwritten)
            .min(first_unwritten);
        // The first written frame at or after `seq`; none: the next frame
        // (or the wrap marker before it) goes at the head.
        let lsn = st
            .frame_lsn
            .range(seq..)
            .next()
            .map_or(st.head, |(_, &lsn)| lsn);
        Checkpoint { seq, lsn }
    }

    /// Make every finished segment write durable with one `syncfs`, then
    /// move the checkpoint (the writer persists it in its next frame).
    async fn checkpoint(self: Rc<Self>) {
        loop {
            self.ask_write_back();
            let target = self.checkpoint_target();
            let current = self.state.borrow().checkpoint;
            if !target.passes(&current) {
                // Nothing new is covered yet: wait for a write to finish.
                let notified = self.released.notified();
                if !self.checkpoint_target().passes(&current) {
                    if self.state.borrow().writer_done {
                        break;
                    }
                    notified.await;
                }
                continue;
            }
            match syncfs(self.root.clone()).await {
                Ok(()) => {
                    let mut st = self.state.borrow_mut();
                    st.failing = false;
                    assert!(target.lsn >= st.checkpoint.lsn, "checkpoint moved back");
                    st.checkpoint = target;
                    st.frame_lsn = st.frame_lsn.split_off(&target.seq);
                    break;
                }
                Err(e) => {
                    tracing::error!(
                        "{}: syncfs for a write-ahead checkpoint failed: {e}; retrying",
                        self.root.display()
                    );
                    {
                        let mut st = self.state.borrow_mut();
                        st.failing = true;
                        st.last_error = Some(format!("syncfs: {e}"));
                    }
                    self.progress.notify_all();
                    crate::rt::sleep(CHECKPOINT_RETRY).await;
                }
            }
        }
        self.state.borrow_mut().checkpointing = false;
        self.work.notify_all();
        self.progress.notify_all();
    }

    async fn run_writer(self: Rc<Self>) {
        loop {
            let notified = self.work.notified();
            let group = {
                let mut st = self.state.borrow_mut();
                if st.queue.is_empty() && !st.open.entries.is_empty() {
                    let next = Group::new(st.open.seq + 1);
                    let open = std::mem::replace(&mut st.open, next);
                    st.queue.push_back(open);
                }
                st.queue.pop_front()
            };
            match group {
                Some(group) => self.write_group(group).await,
                None => {
                    let (persist, closing) = {
                        let st = self.state.borrow();
                        (st.checkpoint != st.durable_checkpoint, st.closing)
                    };
                    if persist {
                        if let Err(e) = self.write_marker().await {
                            tracing::error!("write-ahead ring: persisting a checkpoint: {e}");
                            {
                                let mut st = self.state.borrow_mut();
                                st.failing = true;
                                st.last_error = Some(e.to_string());
                            }
                            self.progress.notify_all();
                            crate::rt::sleep(CHECKPOINT_RETRY).await;
                        }
                    } else if closing {
                        break;
                    } else {
                        notified.await;
                    }
                }
            }
        }
        self.state.borrow_mut().writer_done = true;
        self.wake_durable(u64::MAX);
        self.released.notify_all();
        self.progress.notify_all();
    }

    /// Wake the appends waiting for groups before `below`.
    fn wake_durable(&self, below: u64) {
        let woken = {
            let mut waiting = self.durable.borrow_mut();
            let later = waiting.split_off(&below);
            std::mem::replace(&mut *waiting, later)
        };
        // Outside the borrow: a waker may run anything.
        for signal in woken.into_values() {
            signal.notify_all();
        }
    }

    /// Write one group's frame and its fdatasync; wake its waiters.
    async fn write_group(&self, group: Group) {
        let seq = group.seq;
        let outcome = self.write_frame(&group).await;
        let mut st = self.state.borrow_mut();
        assert_eq!(st.done_seq, seq, "frames are written in group order");
        st.done_seq = seq + 1;
        match outcome {
            Ok(lsn) => {
                st.frame_lsn.insert(seq, lsn);
                st.failing = false;
            }
            Err(e) => {
                tracing::error!("write-ahead ring: writing group {seq} failed: {e}");
                st.failing = true;
                st.failed.insert(seq);
                if st.failed.len() > MAX_FAILED_REMEMBERED {
                    st.failed.pop_first();
                }
                st.last_error = Some(e.to_string());
            }
        }
        let used = st.head - st.durable_checkpoint.lsn;
        drop(st);
        self.wake_durable(seq + 1);
        self.released.notify_all();
        self.progress.notify_all();
        if used > self.ring / CHECKPOINT_AT_SHARE {
            self.request_checkpoint();
        }
    }

    async fn write_frame(&self, group: &Group) -> Result<u64, LogError> {
        let len = frame_len(group.body) as u64;
        if len + PAGE as u64 > self.ring / 2 {
            return Err(LogError::Storage(format!(
                "a commit round of {len} bytes is over half the write-ahead ring \
                 ({} bytes; raise log_wal_bytes)",
                self.ring
            )));
        }
        if self.make_room(len).await? {
            // The frame does not fit before the ring's end: a marker says
            // the next one is at the start of the next lap.
            let head = self.state.borrow().head;
            let next_lap = (head / self.ring + 1) * self.ring;
            self.write_raw(frame::FLAG_WRAP).await?;
            self.state.borrow_mut().head = next_lap;
        }
        let (lsn, checkpoint) = {
            let st = self.state.borrow();
            (st.head, st.checkpoint)
        };
        let mut buf = glommio::allocate_dma_buffer(len as usize);
        let out = buf.as_bytes_mut();
        let mut at = frame::HEADER;
        for e in &group.entries {
            at = frame::put_entry_header(out, at, e.path.as_bytes(), e.pos, e.len);
            for piece in &e.pieces {
                out[at..at + piece.len()].copy_from_slice(piece);
                at += piece.len();
            }
        }
        assert_eq!(at, frame::HEADER + group.body, "entry lengths");
        out[at..].fill(0);
        let count = u32::try_from(group.entries.len()).expect("entries fit u32");
        frame::seal(out, 0, lsn, checkpoint.lsn, count, group.body);
        self.write_and_sync(buf, lsn).await?;
        let mut st = self.state.borrow_mut();
        st.head = lsn + len;
        st.durable_checkpoint = checkpoint;
        Ok(lsn)
    }

    /// Wait until a frame of `len` bytes can go at the head without
    /// reusing space after the durable checkpoint, keeping one page free
    /// for a marker; takes and persists checkpoints as needed. Returns
    /// whether the frame must go at the next lap's start (it does not fit
    /// before the ring's end), in which case that space counts too.
    async fn make_room(&self, len: u64) -> Result<bool, LogError> {
        loop {
            let notified = self.progress.notified();
            let (head, used, persist) = {
                let st = self.state.borrow();
                let used = st.head - st.durable_checkpoint.lsn;
                assert!(used <= self.ring, "ring overrun: {used} of {}", self.ring);
                (st.head, used, st.checkpoint != st.durable_checkpoint)
            };
            let off = head % self.ring;
            let wrap = off + len > self.ring;
            let needed = if wrap { self.ring - off + len } else { len };
            if used + needed + PAGE as u64 <= self.ring {
                return Ok(wrap);
            }
            if persist {
                // Only this task writes frames: persist here, in the page
                // kept free for it (the head moves: decide again).
                self.write_marker().await?;
                continue;
            }
            self.request_checkpoint();
            notified.await;
        }
    }

    /// A frame with no entries carrying the current checkpoint.
    async fn write_marker(&self) -> Result<(), LogError> {
        let checkpoint = self.state.borrow().checkpoint;
        self.write_raw(0).await?;
        let mut st = self.state.borrow_mut();
        st.durable_checkpoint = checkpoint;
        st.failing = false;
        drop(st);
        self.progress.notify_all();
        Ok(())
    }

    /// Write a one-page frame with no entries at the head, synced.
    async fn write_raw(&self, flags: u32) -> Result<(), LogError> {
        let (lsn, checkpoint) = {
            let st = self.state.borrow();
            (st.head, st.checkpoint.lsn)
        };
        let mut buf = glommio::allocate_dma_buffer(PAGE);
        buf.as_bytes_mut().fill(0);
        frame::seal(buf.as_bytes_mut(), flags, lsn, checkpoint, 0, 0);
        self.write_and_sync(buf, lsn).await?;
        self.state.borrow_mut().head = lsn + PAGE as u64;
        Ok(())
    }

    async fn write_and_sync(&self, buf: glommio::io::DmaBuffer, lsn: u64) -> Result<(), LogError> {
        let len = buf.len();
        let pos = lsn % self.ring;
        assert!(pos + len as u64 <= self.ring, "frame past the ring's end");
        let n = disk::write_at(&self.file, buf, pos).await?;
        if n != len {
            return Err(LogError::Storage(format!(
                "short write to the write-ahead ring at {pos}: {n} of {len} bytes"
            )));
        }
        disk::fdatasync(&self.file).await
    }

    /// Write what is queued, then a last checkpoint; the writer stops.
    async fn close(&self) -> Result<(), LogError> {
        self.state.borrow_mut().closing = true;
        self.work.notify_all();
        loop {
            let notified = self.progress.notified();
            if self.state.borrow().writer_done {
                break;
            }
            notified.await;
        }
        let clean = {
            let st = self.state.borrow();
            st.outstanding.is_empty() && st.durable_checkpoint.lsn != st.head
        };
        if clean {
            // Every partition is closed (their segments synced): the whole
            // ring is covered; say so, and the next start redoes nothing.
            syncfs(self.root.clone()).await?;
            {
                let mut st = self.state.borrow_mut();
                st.checkpoint = Checkpoint {
                    seq: st.open.seq,
                    lsn: st.head,
                };
            }
            self.write_marker().await?;
        }
        Ok(())
    }
}

/// `syncfs` of the file system holding `dir`, on the blocking pool.
async fn syncfs(dir: PathBuf) -> std::io::Result<()> {
    super::index::off_shard(move || {
        crate::blocking::assert_not_shard("syncfs");
        let d = std::fs::File::open(&dir)?;
        use std::os::fd::AsRawFd;
        // SAFETY: syncfs takes a valid descriptor, which `d` keeps open.
        if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    })
    .await
}
