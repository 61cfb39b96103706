//! Segment files are opened when used and closed when idle, so that a shard
//! with thousands of partitions does not hold a descriptor per segment.
//!
//! Each segment has a [`SegmentFile`] handle; `get()` gives the open
//! `DmaFile` ([`OpenFile`], a guard), opening it on demand. Every shard keeps
//! its open segment files in a least-recently-used list capped by
//! [`open_file_cap`]: opening one more closes the least recently used file
//! that no I/O is using, i.e. that no `OpenFile` guard holds (a read or write
//! in flight holds one, so a file is never closed under it). Closing is
//! asynchronous (glommio's `close().await`, in a task of its own), so nothing
//! blocks the shard. When every open file is in use (say a fetch of 5,000
//! partitions at once), further opens wait in line and each guard released
//! lets the next one in: event-driven, no polling, never over the cap.
//!
//! The cap: half of the process's open-file limit (RLIMIT_NOFILE, soft)
//! shared by the shards, at least [`MIN_CAP`]; the other half stays for
//! client sockets, io_uring rings and short-lived metadata files. No task
//! holds more than two guards at once (compaction: its output and one
//! input), so the line always moves.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::channel::oneshot;
use glommio::io::DmaFile;

use super::error::LogError;

/// Fewest segment files a shard keeps open, whatever the descriptor limit.
pub const MIN_CAP: usize = 16;

/// Shards in this process (set by `runtime::run_shards`); the descriptor
/// budget is shared between them.
static SHARDS: AtomicUsize = AtomicUsize::new(1);

pub fn set_shard_count(shards: usize) {
    SHARDS.store(shards.max(1), Ordering::Relaxed);
}

fn nofile_soft_limit() -> u64 {
    crate::runtime::nofile_limit().map_or(1024, |(soft, _)| soft)
}

/// Open segment files allowed per shard, from the descriptor limit.
pub fn open_file_cap() -> usize {
    let budget = (nofile_soft_limit() / 2).min(usize::MAX as u64) as usize;
    (budget / SHARDS.load(Ordering::Relaxed)).max(MIN_CAP)
}

struct Registry {
    cap: usize,
    /// Open files, and opens under way.
    open: usize,
    peak: usize,
    /// Opens waiting for a file to become idle, first come first served.
    waiters: VecDeque<oneshot::Sender<()>>,
    tick: u64,
    /// Open files by last use (oldest first).
    lru: BTreeMap<u64, Weak<Slot>>,
    opened_total: u64,
    closed_total: u64,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry {
        cap: open_file_cap(),
        open: 0,
        peak: 0,
        waiters: VecDeque::new(),
        tick: 0,
        lru: BTreeMap::new(),
        opened_total: 0,
        closed_total: 0,
    });
}

/// This shard's segment files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFileStats {
    pub open: usize,
    pub cap: usize,
    /// Most open at once.
    pub peak: usize,
    pub opened_total: u64,
    /// Files given up (their descriptors close asynchronously).
    pub closed_total: u64,
}

pub fn stats() -> OpenFileStats {
    REGISTRY.with(|r| {
        let r = r.borrow();
        OpenFileStats {
            open: r.open,
            cap: r.cap,
            peak: r.peak,
            opened_total: r.opened_total,
            closed_total: r.closed_total,
        }
    })
}

/// Override this shard's cap (tests; tools that know better).
pub fn set_cap(cap: usize) {
    REGISTRY.with(|r| r.borrow_mut().cap = cap.max(1));
}

struct Slot {
    path: RefCell<PathBuf>,
    file: RefCell<Option<Rc<DmaFile>>>,
    /// Inode of the file first opened: a reopen must find the same file.
    inode: Cell<Option<u64>>,
    /// Position in the LRU while open.
    tick: Cell<u64>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.file.get_mut().take().is_some() {
            // The segment is gone; glommio closes a dropped file in its next
            // I/O cycle. Registry gone means the shard is shutting down.
            let tick = self.tick.get();
            let _ = REGISTRY.try_with(|r| {
                if let Ok(mut r) = r.try_borrow_mut() {
                    r.open -= 1;
                    r.closed_total += 1;
                    r.lru.remove(&tick);
                    wake_one(&mut r);
                }
            });
        }
    }
}

/// The file of one segment, open or not. Clones share it.
#[derive(Clone)]
pub struct SegmentFile {
    slot: Rc<Slot>,
}

impl std::fmt::Debug for SegmentFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SegmentFile({})", self.slot.path.borrow().display())
    }
}

impl SegmentFile {
    /// Open (with `create`, create) the file at `path` now.
    pub async fn open(path: &Path, create: bool) -> Result<Self, LogError> {
        let handle = Self::lazy(path);
        handle.open_now(create).await?;
        Ok(handle)
    }

    /// A handle that opens the file only when first used.
    pub fn lazy(path: &Path) -> Self {
        Self {
            slot: Rc::new(Slot {
                path: RefCell::new(path.to_path_buf()),
                file: RefCell::new(None),
                inode: Cell::new(None),
                tick: Cell::new(0),
            }),
        }
    }

    pub fn path(&self) -> PathBuf {
        self.slot.path.borrow().clone()
    }

    /// The file was renamed (compaction moves a staged segment in place).
    pub fn set_path(&self, path: PathBuf) {
        *self.slot.path.borrow_mut() = path;
    }

    /// Both handles are the same segment file.
    pub fn same(&self, other: &SegmentFile) -> bool {
        Rc::ptr_eq(&self.slot, &other.slot)
    }

    /// Close the file now if no I/O is using it (a partition just recovered
    /// at start-up may stay idle for a long time).
    pub fn close_if_idle(&self) {
        let idle = {
            let mut file = self.slot.file.borrow_mut();
            match file.as_ref() {
                Some(f) if Rc::strong_count(f) == 1 => file.take(),
                _ => None,
            }
        };
        if let Some(file) = idle {
            REGISTRY.with(|r| {
                let mut r = r.borrow_mut();
                r.open -= 1;
                r.closed_total += 1;
                r.lru.remove(&self.slot.tick.get());
                wake_one(&mut r);
            });
            close_later(file);
        }
    }

    /// The open file, opening it if needed. While the guard lives the file
    /// stays open (it is never closed under I/O).
    pub async fn get(&self) -> Result<OpenFile, LogError> {
        if let Some(file) = self.slot.file.borrow().clone() {
            touch(&self.slot);
            return Ok(OpenFile { file });
        }
        self.open_now(false).await
    }

    async fn open_now(&self, create: bool) -> Result<OpenFile, LogError> {
        reserve_room().await;
        let path = self.path();
        let opened = super::disk::open(&path, create).await;
        let file = match opened {
            Ok(file) => Rc::new(file),
            Err(e) => {
                release_room();
                return Err(LogError::Storage(format!("open {}: {e}", path.display())));
            }
        };
        if let Some(open) = self.slot.file.borrow().clone() {
            // Opened by another task meanwhile: use that one.
            close_later(file);
            release_room();
            touch(&self.slot);
            return Ok(OpenFile { file: open });
        }
        let inode = file.inode();
        if self.slot.inode.get().is_some_and(|i| i != inode) {
            close_later(file);
            release_room();
            return Err(LogError::Storage(format!(
                "{} was replaced by another file",
                path.display()
            )));
        }
        self.slot.inode.set(Some(inode));
        *self.slot.file.borrow_mut() = Some(file.clone());
        REGISTRY.with(|r| {
            let mut r = r.borrow_mut();
            r.opened_total += 1;
            r.tick += 1;
            let tick = r.tick;
            r.lru.insert(tick, Rc::downgrade(&self.slot));
            self.slot.tick.set(tick);
        });
        Ok(OpenFile { file })
    }
}

/// An open segment file in use: it is not closed while this lives (nor
/// while a clone of it does).
#[derive(Clone)]
pub struct OpenFile {
    file: Rc<DmaFile>,
}

impl std::ops::Deref for OpenFile {
    type Target = DmaFile;
    fn deref(&self) -> &DmaFile {
        &self.file
    }
}

impl Drop for OpenFile {
    fn drop(&mut self) {
        // Held by its slot and this guard only: idle from now on, so an
        // open waiting for room may close it.
        if Rc::strong_count(&self.file) == 2 {
            let _ = REGISTRY.try_with(|r| {
                if let Ok(mut r) = r.try_borrow_mut() {
                    if !r.waiters.is_empty() {
                        wake_one(&mut r);
                    }
                }
            });
        }
    }
}

/// Mark a file as just used.
fn touch(slot: &Rc<Slot>) {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if r.lru.remove(&slot.tick.get()).is_some() {
            r.tick += 1;
            let tick = r.tick;
            r.lru.insert(tick, Rc::downgrade(slot));
            slot.tick.set(tick);
        }
    });
}

/// Wait until one more file fits under the cap (closing idle ones to make
/// room), and count it as open.
async fn reserve_room() {
    loop {
        let (victims, wait) = REGISTRY.with(|r| {
            let mut r = r.borrow_mut();
            let victims = evict_idle(&mut r);
            if r.open < r.cap {
                r.open += 1;
                r.peak = r.peak.max(r.open);
                return (victims, None);
            }
            let (tx, rx) = oneshot::channel();
            r.waiters.push_back(tx);
            (victims, Some(rx))
        });
        for file in victims {
            close_later(file);
        }
        match wait {
            None => return,
            // A guard was released (or a file closed): try again.
            Some(rx) => {
                let _ = rx.await;
            }
        }
    }
}

/// An open that was counted did not happen.
fn release_room() {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        r.open -= 1;
        wake_one(&mut r);
    });
}

/// Let the first waiting open (still waiting) try again.
fn wake_one(r: &mut Registry) {
    while let Some(tx) = r.waiters.pop_front() {
        if tx.send(()).is_ok() {
            return;
        }
    }
}

/// Give up least recently used idle files until one more fits the cap.
fn evict_idle(r: &mut Registry) -> Vec<Rc<DmaFile>> {
    let mut victims = Vec::new();
    if r.open < r.cap {
        return victims;
    }
    let mut excess = r.open + 1 - r.cap;
    let mut gone = Vec::new();
    for (&tick, weak) in r.lru.iter() {
        if excess == 0 {
            break;
        }
        let Some(slot) = weak.upgrade() else {
            gone.push(tick);
            continue;
        };
        let mut file = slot.file.borrow_mut();
        if file.as_ref().is_some_and(|f| Rc::strong_count(f) == 1) {
            victims.push(file.take().expect("idle file is open"));
            gone.push(tick);
            excess -= 1;
        }
    }
    for tick in gone {
        r.lru.remove(&tick);
    }
    r.open -= victims.len();
    r.closed_total += victims.len() as u64;
    victims
}

/// Close a file nobody else holds, asynchronously, off the caller's path.
fn close_later(file: Rc<DmaFile>) {
    assert_eq!(
        Rc::strong_count(&file),
        1,
        "closing a file with I/O in flight"
    );
    crate::rt::spawn_detached(async move {
        if let Err(e) = file.close_rc().await {
            tracing::debug!("closing a segment file: {e}");
        }
    });
}
