//! Walking the record batches of a segment file: one set of rules for what
//! counts as the next valid batch, shared by recovery, by reads from disk and
//! by `shardline log verify`, which reads with plain std I/O off the shards.
//!
//! A batch is valid when its length fits the segment, its header parses, its
//! CRC32C matches and its offsets go forward. Anything else is damage; after
//! damage the walk can [`resync`] on the next valid batch, so that one
//! garbage length field does not make the rest of a segment unreadable.

use std::future::Future;
use std::ops::Range;

use glommio::io::{DmaFile, ReadResult};

use crate::record::{peek_batch_size, BatchView, BATCH_HEADER_LEN, LOG_OVERHEAD};

/// A length field above this is treated as corruption, not a batch.
pub const MAX_BATCH_BYTES: usize = 256 << 20;

/// Somewhere segment bytes can be read from by position.
pub trait ReadAt {
    type Buf: std::ops::Deref<Target = [u8]> + Clone;
    /// Up to `len` bytes at `pos`; fewer only at the end of the file.
    fn read_bytes(&self, pos: u64, len: usize) -> impl Future<Output = std::io::Result<Self::Buf>>;
}

impl ReadAt for DmaFile {
    type Buf = ReadResult;
    async fn read_bytes(&self, pos: u64, len: usize) -> std::io::Result<ReadResult> {
        Ok(super::disk::device(DmaFile::read_at(self, pos, len)).await?)
    }
}

/// Plain positional reads (`pread`): for tools that run off the shards.
impl ReadAt for std::fs::File {
    type Buf = std::rc::Rc<[u8]>;
    async fn read_bytes(&self, pos: u64, len: usize) -> std::io::Result<Self::Buf> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        let mut got = 0;
        while got < len {
            match self.read_at(&mut buf[got..], pos + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        buf.truncate(got);
        Ok(buf.into())
    }
}

/// What the bytes at a position of a segment are.
pub enum Check<'a> {
    Batch(BatchView<'a>),
    /// Valid so far, but `need` bytes from here are needed to tell.
    Incomplete {
        need: usize,
    },
    Damaged(String),
}

/// Offsets a batch must lie within: at or after `next`, before `limit` (the
/// next segment's base offset, or `i64::MAX` for the active segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    pub next: i64,
    pub limit: i64,
}

/// Judge the bytes `buf` found at byte `pos` of a segment whose data ends at
/// byte `end`.
pub fn check_batch(buf: &[u8], pos: u64, end: u64, expect: Expect) -> Check<'_> {
    assert!(pos < end);
    let size = match peek_batch_size(buf) {
        None if pos + (buf.len() as u64) < end => return Check::Incomplete { need: LOG_OVERHEAD },
        None => return Check::Damaged(format!("{} stray bytes at the end", end - pos)),
        Some(Err(e)) => return Check::Damaged(e.to_string()),
        Some(Ok(size)) => size,
    };
    if size > MAX_BATCH_BYTES || pos + size as u64 > end {
        return Check::Damaged(format!(
            "batch length {} runs past the end of the segment ({end} bytes)",
            size - LOG_OVERHEAD
        ));
    }
    if size > buf.len() {
        return Check::Incomplete { need: size };
    }
    let batch = match BatchView::parse_verified(&buf[..size]) {
        Ok(b) => b,
        Err(e) => return Check::Damaged(e.to_string()),
    };
    if batch.base_offset() < expect.next {
        return Check::Damaged(format!(
            "batch offsets {}..={} go back (expected {} or later)",
            batch.base_offset(),
            batch.last_offset(),
            expect.next
        ));
    }
    if batch.last_offset() >= expect.limit {
        return Check::Damaged(format!(
            "batch offsets {}..={} reach into the next segment (base {})",
            batch.base_offset(),
            batch.last_offset(),
            expect.limit
        ));
    }
    Check::Batch(batch)
}

/// Whether the visitor wants more batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    Continue,
    Stop,
}

/// Where a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEnd {
    /// End of the last batch visited (the damage, if there is one, starts here).
    pub pos: u64,
    /// One past the last offset visited (or the `expect.next` given).
    pub next_offset: i64,
    /// Why the walk stopped before `end`; `None` when it reached `end` or the
    /// visitor stopped it.
    pub damage: Option<String>,
}

/// Visit the valid batches of `src[start..end]` in order, reading about
/// `chunk` bytes at a time (a larger batch is read whole). The visitor gets
/// the buffer holding the batch, its range in that buffer and its position.
pub async fn walk<R: ReadAt>(
    src: &R,
    start: u64,
    end: u64,
    expect: Expect,
    chunk: usize,
    mut visit: impl FnMut(&R::Buf, Range<usize>, u64, &BatchView) -> Visit,
) -> std::io::Result<WalkEnd> {
    let mut pos = start;
    let mut next = expect.next;
    let mut at_least = 0;
    while pos < end {
        let want = chunk.max(at_least).min((end - pos) as usize);
        at_least = 0;
        let buf = src.read_bytes(pos, want).await?;
        match visit_buffer(&buf, pos, end, expect.limit, &mut next, &mut visit) {
            Scan::Ended(walked) => return Ok(walked),
            Scan::Consumed(at) => pos += at as u64,
            Scan::Incomplete { at, need } => {
                if at == 0 {
                    if buf.len() < want {
                        let why = format!("the file ends at byte {}", pos + buf.len() as u64);
                        return Ok(WalkEnd {
                            pos,
                            next_offset: next,
                            damage: Some(why),
                        });
                    }
                    at_least = need;
                }
                pos += at as u64;
            }
        }
    }
    Ok(WalkEnd {
        pos,
        next_offset: next,
        damage: None,
    })
}

/// As [`walk`], but first reads `pieces` — contiguous `(position, length)`
/// spans from `pieces[0].0`, each starting on a batch boundary (from the
/// offset index) — up to `depth` at a time ahead of the visitor, so the
/// device works on the next pieces while the visitor checks this one. Where
/// a piece ends inside a batch (the last one may; an index that points off a
/// boundary would), or when the pieces are used up, the walk goes on chunk
/// by chunk as [`walk`] does.
pub async fn walk_ahead<R: ReadAt>(
    src: &R,
    pieces: &[(u64, usize)],
    end: u64,
    expect: Expect,
    chunk: usize,
    depth: usize,
    mut visit: impl FnMut(&R::Buf, Range<usize>, u64, &BatchView) -> Visit,
) -> std::io::Result<WalkEnd> {
    use futures::StreamExt;
    assert!(depth > 0);
    let Some(&(start, _)) = pieces.first() else {
        return Ok(WalkEnd {
            pos: end,
            next_offset: expect.next,
            damage: None,
        });
    };
    debug_assert!(pieces.windows(2).all(|w| w[0].0 + w[0].1 as u64 == w[1].0));
    let mut pos = start;
    let mut next = expect.next;
    {
        let mut reads = futures::stream::iter(pieces.iter().copied())
            .map(|(at, len)| async move { (at, src.read_bytes(at, len).await) })
            .buffered(depth);
        while let Some((at, buf)) = reads.next().await {
            let buf = buf?;
            if pos >= end || at != pos {
                // The last piece ended inside a batch (or the file ended):
                // the rest goes chunk by chunk.
                break;
            }
            match visit_buffer(&buf, pos, end, expect.limit, &mut next, &mut visit) {
                Scan::Ended(walked) => return Ok(walked),
                Scan::Consumed(at) => pos += at as u64,
                Scan::Incomplete { at, .. } => pos += at as u64,
            }
        }
    }
    if pos >= end {
        return Ok(WalkEnd {
            pos,
            next_offset: next,
            damage: None,
        });
    }
    let rest = Expect {
        next,
        limit: expect.limit,
    };
    walk(src, pos, end, rest, chunk, visit).await
}

/// How a scan of one buffer ended.
enum Scan {
    /// The visitor stopped, or damage was found: the walk is over.
    Ended(WalkEnd),
    /// Every byte of the buffer was whole batches (it held `.0` bytes).
    Consumed(usize),
    /// The batch at `at` needs `need` bytes, more than the buffer holds.
    Incomplete { at: usize, need: usize },
}

/// Visit the batches of `buf`, read at byte `pos` of a segment whose data
/// ends at `end`; `next` is the least offset the next batch may have.
fn visit_buffer<B: std::ops::Deref<Target = [u8]>>(
    buf: &B,
    pos: u64,
    end: u64,
    limit: i64,
    next: &mut i64,
    visit: &mut impl FnMut(&B, Range<usize>, u64, &BatchView) -> Visit,
) -> Scan {
    let bytes: &[u8] = buf;
    let mut at = 0usize;
    while pos + (at as u64) < end {
        let here = pos + at as u64;
        let expect = Expect { next: *next, limit };
        match check_batch(&bytes[at..], here, end, expect) {
            Check::Batch(batch) => {
                let size = batch.size();
                *next = batch.last_offset() + 1;
                if visit(buf, at..at + size, here, &batch) == Visit::Stop {
                    return Scan::Ended(WalkEnd {
                        pos: here + size as u64,
                        next_offset: *next,
                        damage: None,
                    });
                }
                at += size;
            }
            Check::Incomplete { need } => return Scan::Incomplete { at, need },
            Check::Damaged(why) => {
                return Scan::Ended(WalkEnd {
                    pos: here,
                    next_offset: *next,
                    damage: Some(why),
                })
            }
        }
    }
    Scan::Consumed(at)
}

/// After damage at byte `from`, find the next position in `src[from+1..end]`
/// where a valid batch within `expect` starts. Brute force, but each
/// candidate must pass cheap checks (magic 2, plausible length, offsets in
/// range) before its CRC32C is computed, so garbage is passed over quickly
/// and a false match needs a 1 in 2^32 CRC accident.
pub async fn resync<R: ReadAt>(
    src: &R,
    from: u64,
    end: u64,
    expect: Expect,
    chunk: usize,
) -> std::io::Result<Option<(u64, i64)>> {
    let mut pos = from + 1;
    let chunk = chunk.max(BATCH_HEADER_LEN * 2);
    while pos + (BATCH_HEADER_LEN as u64) <= end {
        let want = chunk.min((end - pos) as usize);
        let buf = src.read_bytes(pos, want).await?;
        let bytes: &[u8] = &buf;
        if bytes.len() < BATCH_HEADER_LEN {
            return Ok(None);
        }
        let last_start = bytes.len() - BATCH_HEADER_LEN;
        for at in 0..=last_start {
            let here = pos + at as u64;
            let Some(size) = plausible_batch(&bytes[at..], here, end, expect) else {
                continue;
            };
            let found = if at + size <= bytes.len() {
                matches!(
                    check_batch(&bytes[at..], here, end, expect),
                    Check::Batch(_)
                )
            } else {
                let whole = src.read_bytes(here, size).await?;
                matches!(check_batch(&whole, here, end, expect), Check::Batch(_))
            };
            if found {
                let base = i64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
                return Ok(Some((here, base)));
            }
        }
        // Candidates starting in the last header's worth are tried again
        // with the next read.
        pos += (last_start + 1) as u64;
    }
    Ok(None)
}

/// The size of the batch that seems to start at `buf[0]`, if its header is
/// plausible (the cheap part of [`check_batch`]).
fn plausible_batch(buf: &[u8], pos: u64, end: u64, expect: Expect) -> Option<usize> {
    if buf.len() < BATCH_HEADER_LEN || buf[16] != 2 {
        return None;
    }
    let base = i64::from_be_bytes(buf[0..8].try_into().expect("8 bytes"));
    if base < expect.next || base >= expect.limit {
        return None;
    }
    match peek_batch_size(buf)? {
        Ok(size) if size <= MAX_BATCH_BYTES && pos + size as u64 <= end => Some(size),
        _ => None,
    }
}

/// Run a walk over std I/O to completion (no executor needed: std reads
/// never suspend).
pub fn block_on<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}
