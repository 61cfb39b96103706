//! Recent batches of one partition kept in memory, so that consumers at the
//! tail (the common case) are served without touching the disk. Bounded by a
//! byte budget, except that batches not yet written to disk are always kept:
//! they are the only copy a reader can see.

use std::cell::Cell;
use std::collections::VecDeque;

use bytes::Bytes;

thread_local! {
    /// Most bytes the caches of this shard's partitions hold together.
    static SHARD_BUDGET: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Open partition logs on this shard (each holds a [`CacheShare`]).
    static PARTITIONS: Cell<usize> = const { Cell::new(0) };
}

/// A partition keeps at least this much when the shard's budget is spread
/// thin (and always what is not yet on disk).
const MIN_SHARE: usize = 64 << 10;

/// Set this shard's budget for all its partitions' caches.
///
/// Why a shard budget: a per-partition cap alone grows with the partition
/// count (1,000 partitions × 4 MiB took 2.5 GiB, and the kernel spent 42 %
/// of the shard's CPU zeroing the fresh pages; issue 13). Each partition
/// gets an equal share, at most its own cap: tail readers read the newest
/// batches, which every share keeps.
pub fn set_shard_budget(bytes: usize) {
    SHARD_BUDGET.with(|b| b.set(bytes));
}

/// Counts an open partition log toward the shard's division of its budget.
pub struct CacheShare(());

impl CacheShare {
    pub fn register() -> Self {
        PARTITIONS.with(|p| p.set(p.get() + 1));
        Self(())
    }

    /// What this partition may keep: its own cap or its share of the
    /// shard's budget, whichever is smaller.
    pub fn cap(&self, partition_cap: usize) -> usize {
        let n = PARTITIONS.with(Cell::get).max(1);
        let share = SHARD_BUDGET.with(Cell::get) / n;
        partition_cap.min(share.max(MIN_SHARE))
    }
}

impl Drop for CacheShare {
    fn drop(&mut self) {
        PARTITIONS.with(|p| p.set(p.get() - 1));
    }
}

/// What a cached batch costs beyond its bytes: its `VecDeque` slot, the
/// `Bytes` handle and the allocator's header for its buffer. Charged so
/// that the byte budget bounds real memory when batches are tiny (a
/// transaction marker is 78 bytes; counting bytes alone let a cache of
/// markers hold three times its budget).
pub const BATCH_OVERHEAD: usize = 128;

/// What `batch` counts against the cache's budget.
fn charge(batch: &CachedBatch) -> usize {
    batch.bytes.len() + BATCH_OVERHEAD
}

#[derive(Debug, Clone)]
pub struct CachedBatch {
    pub base_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub bytes: Bytes,
}

#[derive(Debug, Default)]
pub struct TailCache {
    batches: VecDeque<CachedBatch>,
    bytes: usize,
}

impl TailCache {
    pub fn push(&mut self, batch: CachedBatch) {
        debug_assert!(self
            .batches
            .back()
            .is_none_or(|b| b.last_offset < batch.base_offset));
        self.bytes += charge(&batch);
        self.batches.push_back(batch);
    }

    /// Evict the oldest batches over `budget`, never one at or beyond
    /// `unwritten_from` (not yet on disk).
    pub fn trim(&mut self, budget: usize, unwritten_from: i64) {
        while self.bytes > budget {
            match self.batches.front() {
                Some(b) if b.last_offset < unwritten_from => {
                    self.bytes -= charge(b);
                    self.batches.pop_front();
                }
                _ => break,
            }
        }
    }

    /// First offset the cache can serve: reads at or above it need no disk.
    pub fn first_offset(&self) -> Option<i64> {
        self.batches.front().map(|b| b.base_offset)
    }

    /// Batches holding `offset` and after, up to `max_bytes` (the first batch
    /// is returned whole even if larger, as Kafka does since KIP-74), and
    /// none that starts at or beyond `limit` (the high watermark).
    pub fn read(&self, offset: i64, max_bytes: usize, limit: i64) -> Vec<Bytes> {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        let mut out = Vec::new();
        let mut total = 0usize;
        for b in self.batches.iter().skip(start) {
            if b.base_offset >= limit {
                break;
            }
            if !out.is_empty() && total + b.bytes.len() > max_bytes {
                break;
            }
            total += b.bytes.len();
            out.push(b.bytes.clone());
        }
        out
    }

    /// Batches from `offset` on (for timestamp searches of recent data).
    pub fn iter_from(&self, offset: i64) -> impl Iterator<Item = &CachedBatch> {
        let start = self.batches.partition_point(|b| b.last_offset < offset);
        self.batches.iter().skip(start)
    }

    /// Forget everything at or after `offset` (truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        while let Some(b) = self.batches.back() {
            if b.last_offset < offset {
                break;
            }
            self.bytes -= charge(b);
            self.batches.pop_back();
        }
    }

    /// Forget everything before `offset` (retention / delete-records).
    pub fn drop_before(&mut self, offset: i64) {
        while let Some(b) = self.batches.front() {
            if b.last_offset >= offset {
                break;
            }
            self.bytes -= charge(b);
            self.batches.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.batches.clear();
        self.bytes = 0;
    }

    /// What the cache counts against its budget: its batches' bytes plus
    /// [`BATCH_OVERHEAD`] for each.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(base: i64, last: i64, len: usize) -> CachedBatch {
        CachedBatch {
            base_offset: base,
            last_offset: last,
            max_timestamp: 0,
            bytes: Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn reads_from_the_batch_holding_the_offset() {
        let mut c = TailCache::default();
        c.push(batch(0, 4, 100));
        c.push(batch(5, 9, 100));
        c.push(batch(10, 10, 100));
        assert_eq!(c.read(7, 1000, i64::MAX).len(), 2);
        assert_eq!(c.read(7, 150, i64::MAX).len(), 1);
        assert_eq!(
            c.read(0, 10, i64::MAX).len(),
            1,
            "first batch is whole even over the limit"
        );
        assert!(c.read(11, 1000, i64::MAX).is_empty());
        assert_eq!(
            c.read(0, 1000, 10).len(),
            2,
            "nothing at the limit or beyond"
        );
        assert!(c.read(10, 1000, 10).is_empty());
    }

    #[test]
    fn trim_keeps_unwritten_batches() {
        let mut c = TailCache::default();
        for i in 0..10 {
            c.push(batch(i, i, 100));
        }
        let each = 100 + BATCH_OVERHEAD;
        c.trim(2 * each + 50, 5);
        assert_eq!(c.first_offset(), Some(5), "offsets 5.. are not on disk yet");
        c.trim(2 * each + 50, 100);
        assert_eq!(c.bytes(), 2 * each);
        c.truncate_from(9);
        assert_eq!(c.bytes(), each);
        c.drop_before(100);
        assert_eq!(c.first_offset(), None);
        assert_eq!(c.bytes(), 0);
    }

    #[test]
    fn tiny_batches_are_charged_their_overhead() {
        // 10,000 markers of 78 bytes: by their bytes alone they would fit a
        // 1 MiB budget; with what each costs they must not.
        let mut c = TailCache::default();
        for i in 0..10_000 {
            c.push(batch(i, i, 78));
            c.trim(1 << 20, i64::MAX);
        }
        assert!(c.bytes() <= 1 << 20, "{}", c.bytes());
        let kept = c.batches.len();
        assert_eq!(kept, (1 << 20) / (78 + BATCH_OVERHEAD), "{kept}");
    }
}
