//! Read-ahead for consumers reading a backlog from disk.
//!
//! A consumer behind the tail cache fetches the log in order: when a read
//! from disk stopped because the fetch was full, the next fetch will almost
//! surely ask for the very next batch. So the bytes after it are read at
//! once, while this fetch's answer travels to the consumer and the consumer
//! works through it, and the next fetch finds them ready (or in flight).
//! Without it the device idles while the network works and the other way
//! round, and a single consumer gets about half of either.
//!
//! What a read-ahead holds is charged to a per-shard budget; when it is
//! spent, the oldest read-aheads are dropped, and one unused for
//! [`MAX_AGE`] is dropped by the next that needs room. A read-ahead is used
//! only by a read of exactly the offset it was made for, from the same
//! segment file, in the same generation of the log (truncation and recovery
//! in place bump it), so it never serves bytes the log no longer has.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use futures::future::{FutureExt, LocalBoxFuture, Shared};
use futures::StreamExt;
use glommio::io::ReadResult;

use super::open_files::{OpenFile, SegmentFile};
use super::walk::ReadAt;

/// Bytes a shard may hold in read-aheads.
pub const SHARD_BUDGET: usize = 256 << 20;
/// Most bytes one read-ahead reads.
pub const MAX_ONE: usize = 64 << 20;
/// A read-ahead not used for this long gives way to any other.
pub const MAX_AGE: Duration = Duration::from_secs(5);

type Pieces = Rc<Vec<((u64, usize), Option<ReadResult>)>>;

/// Bytes read (or being read) for the next fetch of one partition.
pub(super) struct ReadAhead {
    pub base: i64,
    pub file: SegmentFile,
    pub generation: u64,
    /// The offset the next fetch must ask for, and where its batch starts.
    pub next_offset: i64,
    pub pos: u64,
    pub pieces: Vec<(u64, usize)>,
    done: Shared<LocalBoxFuture<'static, Pieces>>,
    id: u64,
    _charge: Charge,
}

impl ReadAhead {
    /// Start reading `pieces` (contiguous, from `pos`) of `file`, `depth`
    /// at a time; `None` when the shard's budget has no room.
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        slot: &Rc<RefCell<Option<ReadAhead>>>,
        base: i64,
        file: SegmentFile,
        open: OpenFile,
        generation: u64,
        next_offset: i64,
        pieces: Vec<(u64, usize)>,
        depth: usize,
    ) -> bool {
        let Some(&(pos, _)) = pieces.first() else {
            return false;
        };
        let bytes: usize = pieces.iter().map(|p| p.1).sum();
        let Some(charge) = Charge::take(bytes) else {
            return false;
        };
        let open = Rc::new(open);
        let wanted = pieces.clone();
        let done = async move {
            let got: Vec<_> = futures::stream::iter(wanted)
                .map(|(at, len)| {
                    let open = Rc::clone(&open);
                    async move { ((at, len), open.read_bytes(at, len).await.ok()) }
                })
                .buffered(depth)
                .collect()
                .await;
            Rc::new(got)
        }
        .boxed_local()
        .shared();
        let driver = done.clone();
        crate::rt::spawn_detached(async move {
            driver.await;
        });
        let id = SHARD.with(|s| {
            let mut s = s.borrow_mut();
            s.next_id += 1;
            s.stats.started += 1;
            s.next_id
        });
        let old = slot.borrow_mut().replace(ReadAhead {
            base,
            file,
            generation,
            next_offset,
            pos,
            pieces,
            done,
            id,
            _charge: charge,
        });
        drop(old);
        SHARD.with(|s| {
            let entry = (Rc::downgrade(slot), id, Instant::now());
            s.borrow_mut().started.push_back(entry)
        });
        true
    }

    /// The bytes read, as a source for [`walk`](super::walk) that falls
    /// back to `file` for anything else.
    pub async fn into_source(self, file: OpenFile) -> Prefetched {
        SHARD.with(|s| s.borrow_mut().stats.used += 1);
        let ready = self.done.clone().await;
        Prefetched {
            file,
            ready: RefCell::new(
                ready
                    .iter()
                    .filter_map(|(key, buf)| Some((*key, buf.clone()?)))
                    .collect(),
            ),
        }
    }
}

/// A segment file with some of its pieces already read.
pub(super) struct Prefetched {
    file: OpenFile,
    ready: RefCell<Vec<((u64, usize), ReadResult)>>,
}

impl ReadAt for Prefetched {
    type Buf = ReadResult;
    async fn read_bytes(&self, pos: u64, len: usize) -> std::io::Result<ReadResult> {
        let hit = {
            let mut ready = self.ready.borrow_mut();
            let found = ready.iter().position(|(key, _)| *key == (pos, len));
            found.map(|i| ready.swap_remove(i).1)
        };
        match hit {
            Some(buf) => Ok(buf),
            None => self.file.read_bytes(pos, len).await,
        }
    }
}

/// This shard's read-aheads, oldest first, and the bytes they hold.
#[derive(Default)]
struct ShardReadAheads {
    held: usize,
    next_id: u64,
    stats: ReadAheadStats,
    /// Every read-ahead started, oldest first (entries of ones already used
    /// or replaced are passed over).
    started: VecDeque<(Slot, u64, Instant)>,
}

type Slot = Weak<RefCell<Option<ReadAhead>>>;

thread_local! {
    static SHARD: RefCell<ShardReadAheads> = RefCell::new(ShardReadAheads::default());
}

/// Bytes of the shard's budget held by one read-ahead.
struct Charge(usize);

impl Charge {
    /// Room for `bytes`, made by dropping old read-aheads if need be.
    fn take(bytes: usize) -> Option<Charge> {
        if bytes > MAX_ONE {
            return None;
        }
        let now = Instant::now();
        loop {
            let front = SHARD.with(|s| {
                let mut s = s.borrow_mut();
                let full = s.held + bytes > SHARD_BUDGET;
                let (slot, id, since) = s.started.front()?.clone();
                let live = slot
                    .upgrade()
                    .filter(|slot| slot.borrow().as_ref().is_some_and(|r| r.id == id));
                if live.is_some() && !full && now.duration_since(since) <= MAX_AGE {
                    return None;
                }
                s.started.pop_front();
                if live.is_some() {
                    s.stats.evicted += 1;
                }
                Some(live)
            });
            match front {
                // Taken outside the borrow: dropping it gives its charge back.
                Some(Some(slot)) => drop(slot.borrow_mut().take()),
                Some(None) => {}
                None => break,
            }
        }
        SHARD.with(|s| {
            let mut s = s.borrow_mut();
            if s.held + bytes > SHARD_BUDGET {
                return None;
            }
            s.held += bytes;
            Some(Charge(bytes))
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        SHARD.with(|s| {
            let mut s = s.borrow_mut();
            assert!(s.held >= self.0, "read-ahead budget underflow");
            s.held -= self.0;
        });
    }
}

/// What this shard's read-aheads did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReadAheadStats {
    /// Bytes held now (read or being read).
    pub held_bytes: usize,
    pub started: u64,
    /// Used by the fetch they were made for.
    pub used: u64,
    /// Dropped to make room or for age.
    pub evicted: u64,
}

pub fn stats() -> ReadAheadStats {
    SHARD.with(|s| {
        let s = s.borrow();
        ReadAheadStats {
            held_bytes: s.held,
            ..s.stats
        }
    })
}
