//! A segment's bytes not yet written, and the snapshot a write takes of
//! them: aligned, chunked DMA buffers that cover them, and what they
//! covered, so the pending bytes are dropped only once the write succeeds.

use bytes::Bytes;
use glommio::io::DmaBuffer;

use super::open_files::SegmentFile;
use super::partition::PAGE;
use super::wal::glue::WalLink;
use super::wal::WalEntry;

/// Unwritten bytes of one segment, starting at `file_pos` (page aligned):
/// `tail`, the bytes of the last partial page already on disk (rewritten
/// with whatever follows them), then the appended batches themselves.
/// The batches are the same `Bytes` the tail cache holds, so appending
/// copies nothing; the one copy is into the DMA buffers at write time.
///
/// A write takes a snapshot and the bytes stay here until it succeeds
/// (`written_through`): with the write-ahead ring, batches may be
/// acknowledged before their segment write, and a failed write must be
/// retried from these bytes.
pub(super) struct PendingWrite {
    pub(super) segment_base: i64,
    pub(super) file: SegmentFile,
    pub(super) file_pos: u64,
    tail: Vec<u8>,
    batches: Vec<Bytes>,
    batches_len: usize,
    /// `batches[..logged_batches]` (`logged_bytes` long) are in the
    /// write-ahead ring: the next entry starts after them.
    logged_batches: usize,
    logged_bytes: usize,
    pub(super) dirty: bool,
    pub(super) last_offset: i64,
}

/// What a write's snapshot of a `PendingWrite` covered: its first `len`
/// bytes, the tail and `batches` batches.
#[derive(Clone, Copy, Debug)]
pub(super) struct TakenBytes {
    pub(super) segment_base: i64,
    len: usize,
    batches: usize,
}

impl PendingWrite {
    pub(super) fn new(segment_base: i64, file: SegmentFile, file_pos: u64, tail: Vec<u8>) -> Self {
        debug_assert_eq!(file_pos % PAGE as u64, 0);
        debug_assert!(tail.len() < PAGE);
        Self {
            segment_base,
            file,
            file_pos,
            tail,
            batches: Vec::new(),
            batches_len: 0,
            logged_batches: 0,
            logged_bytes: 0,
            dirty: false,
            last_offset: -1,
        }
    }

    /// Bytes from `file_pos` to the end of what was appended.
    pub(super) fn len(&self) -> usize {
        self.tail.len() + self.batches_len
    }

    /// Appended bytes not yet on disk.
    pub(super) fn unwritten(&self) -> usize {
        self.batches_len
    }

    pub(super) fn push(&mut self, batch: Bytes) {
        self.batches_len += batch.len();
        self.batches.push(batch);
        self.dirty = true;
    }

    /// The batches appended since the last entry, as an entry of the
    /// write-ahead ring (shared `Bytes`, no copy); they count as logged.
    ///
    /// The first entry after a write starts with the partial page that
    /// write left (copied, under a page): the next write rewrites that
    /// page, and a write torn by a power loss could damage bytes an older
    /// checkpoint already covers; this frame, which no checkpoint passes
    /// before that write is done, puts them back.
    pub(super) fn take_wal_entry(&mut self, link: &WalLink) -> Option<WalEntry> {
        if self.logged_batches == self.batches.len() {
            return None;
        }
        let mut pieces = Vec::with_capacity(self.batches.len() - self.logged_batches + 1);
        let mut pos = self.file_pos + (self.tail.len() + self.logged_bytes) as u64;
        let mut len = self.batches_len - self.logged_bytes;
        if self.logged_batches == 0 && !self.tail.is_empty() {
            pieces.push(Bytes::copy_from_slice(&self.tail));
            pos = self.file_pos;
            len += self.tail.len();
        }
        pieces.extend(self.batches[self.logged_batches..].iter().cloned());
        let entry = WalEntry {
            path: link.entry(self.segment_base),
            pos,
            pieces,
            len,
        };
        self.logged_batches = self.batches.len();
        self.logged_bytes = self.batches_len;
        Some(entry)
    }

    /// The pending bytes in order: the tail, then each batch.
    fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        std::iter::once(&self.tail[..]).chain(self.batches.iter().map(|b| &b[..]))
    }

    /// A write of `taken` succeeded: drop the batches it covered, keeping
    /// only the partial page after its last whole page (at most one page
    /// is copied) and whatever was appended since.
    pub(super) fn written_through(&mut self, taken: TakenBytes) {
        assert_eq!(
            taken.segment_base, self.segment_base,
            "written through another segment"
        );
        assert!(
            taken.batches <= self.batches.len(),
            "{taken:?}: batches gone"
        );
        let full = taken.len / PAGE * PAGE;
        let mut tail = Vec::with_capacity(PAGE);
        let mut at = 0;
        let covered = std::iter::once(&self.tail[..])
            .chain(self.batches[..taken.batches].iter().map(|b| &b[..]));
        for piece in covered {
            let end = at + piece.len();
            if end > full {
                tail.extend_from_slice(&piece[full.saturating_sub(at)..]);
            }
            at = end;
        }
        assert_eq!(at, taken.len, "the snapshot and the pending bytes differ");
        let dropped: usize = self.batches.drain(..taken.batches).map(|b| b.len()).sum();
        self.batches_len -= dropped;
        if self.logged_batches >= taken.batches {
            self.logged_batches -= taken.batches;
            self.logged_bytes -= dropped;
        } else {
            // Written without being logged (not in ring mode): on disk, so
            // the next entry need not carry them.
            self.logged_batches = 0;
            self.logged_bytes = 0;
        }
        self.tail = tail;
        self.file_pos += full as u64;
        self.dirty = !self.batches.is_empty();
    }
}

/// One write of a segment: its chunks and the offsets it makes written.
pub(super) struct WriteJob {
    pub(super) segment_base: i64,
    pub(super) file: SegmentFile,
    /// Page-aligned pieces of at most `write_chunk_bytes`, with their file
    /// positions; together they cover the job contiguously.
    pub(super) chunks: Vec<(u64, DmaBuffer)>,
    pub(super) queue_depth: usize,
    pub(super) logical_end: u64,
    pub(super) last_offset: i64,
}

/// How a job is cut into writes: piece size (whole pages) and pieces in flight.
#[derive(Clone, Copy)]
pub(super) struct ChunkShape {
    pub(super) chunk_bytes: usize,
    pub(super) queue_depth: usize,
}

impl ChunkShape {
    pub(super) fn new(chunk_bytes: usize, queue_depth: usize) -> Self {
        Self {
            chunk_bytes: (chunk_bytes / PAGE).max(1) * PAGE,
            queue_depth: queue_depth.max(1),
        }
    }
}

/// Copy the unwritten bytes of `pending` into aligned buffers of at most
/// `shape.chunk_bytes`, and say what they cover. Copying straight into the
/// pieces costs the same single copy as one big buffer did.
pub(super) fn snapshot_pending(
    pending: &PendingWrite,
    shape: ChunkShape,
) -> (WriteJob, TakenBytes) {
    let len = if pending.dirty { pending.len() } else { 0 };
    let padded = len.div_ceil(PAGE) * PAGE;
    let mut chunks = Vec::with_capacity(padded.div_ceil(shape.chunk_bytes));
    let mut source = pending.pieces().flat_map(|p| p.chunks(shape.chunk_bytes));
    let mut carry: &[u8] = &[];
    let mut start = 0;
    while start < padded {
        let piece = shape.chunk_bytes.min(padded - start);
        let mut data = glommio::allocate_dma_buffer(piece);
        let dst = data.as_bytes_mut();
        // Fill the chunk from the pending pieces, which need not line up
        // with chunk boundaries.
        let mut filled = 0;
        while filled < piece {
            if carry.is_empty() {
                match source.next() {
                    Some(next) => carry = next,
                    None => break,
                }
                continue;
            }
            let n = carry.len().min(piece - filled);
            dst[filled..filled + n].copy_from_slice(&carry[..n]);
            carry = &carry[n..];
            filled += n;
        }
        debug_assert_eq!(filled, len.saturating_sub(start).min(piece));
        dst[filled..].fill(0);
        chunks.push((pending.file_pos + start as u64, data));
        start += piece;
    }
    drop(source);
    let job = WriteJob {
        segment_base: pending.segment_base,
        file: pending.file.clone(),
        chunks,
        queue_depth: shape.queue_depth,
        logical_end: pending.file_pos + len as u64,
        last_offset: pending.last_offset,
    };
    let taken = TakenBytes {
        segment_base: pending.segment_base,
        len,
        batches: if pending.dirty {
            pending.batches.len()
        } else {
            0
        },
    };
    (job, taken)
}
