//! Reads: from the tail cache when the offset is recent, else by aligned
//! DMA reads whose buffers travel to the socket uncopied; and lookups by
//! timestamp.

use bytes::Bytes;
use glommio::io::DmaFile;

use super::error::LogError;
use super::partition::PartitionLog;
use crate::record::{self, BatchView};

#[derive(Debug, Clone, Default)]
pub struct ReadOutcome {
    pub batches: Vec<Bytes>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl ReadOutcome {
    pub fn bytes(&self) -> usize {
        self.batches.iter().map(Bytes::len).sum()
    }
}

impl PartitionLog {
    /// Batches from `offset` on, at most about `max_bytes` (the first batch
    /// whole), never at or beyond the high watermark: what is not yet as
    /// durable as the flush mode promises is not served. An offset between
    /// the high watermark and the log end gives an empty result, as in
    /// Kafka; one beyond the log end is out of range.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, LogError> {
        let mut at = offset;
        loop {
            let plan = {
                let inner = self.inner.borrow();
                if offset < inner.log_start_offset || offset > inner.next_offset {
                    return Err(LogError::OffsetOutOfRange {
                        offset,
                        log_start: inner.log_start_offset,
                        log_end: inner.next_offset,
                    });
                }
                let hwm = inner.high_watermark;
                let mut out = ReadOutcome {
                    batches: Vec::new(),
                    high_watermark: hwm,
                    log_start_offset: inner.log_start_offset,
                };
                if at >= hwm {
                    return Ok(out);
                }
                if inner.cache.first_offset().is_some_and(|first| at >= first) {
                    out.batches = inner.cache.read(at, max_bytes, hwm);
                    return Ok(out);
                }
                let Some((&base, seg)) = inner
                    .segments
                    .range(..=at)
                    .next_back()
                    .or_else(|| inner.segments.iter().next())
                else {
                    return Ok(out);
                };
                let start = seg.index.lookup(at.saturating_sub(base).max(0) as u32) as u64;
                let next_base = inner.segments.range(base + 1..).next().map(|(b, _)| *b);
                (out, seg.file.clone(), start, seg.written, next_base)
            };
            let (mut out, file, start, end, next_base) = plan;
            let hwm = out.high_watermark;
            let batches = read_batches(&file, start, end, at, max_bytes, hwm).await?;
            if !batches.is_empty() {
                out.batches = batches;
                return Ok(out);
            }
            match next_base {
                Some(next) if next > at && next < hwm => at = next,
                _ => return Ok(out),
            }
        }
    }

    /// First offset whose record timestamp is >= `timestamp`, with that
    /// timestamp (ListOffsets by time); `None` if every record is older.
    pub async fn offset_for_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let candidates: Vec<_> = {
            let inner = self.inner.borrow();
            inner
                .segments
                .values()
                .filter(|s| s.max_timestamp >= timestamp && s.size > 0)
                .map(|s| {
                    let rel = s.time_index.lookup(timestamp);
                    (s.file.clone(), s.index.lookup(rel) as u64, s.written)
                })
                .collect()
        };
        let (log_start, hwm) = {
            let inner = self.inner.borrow();
            (inner.log_start_offset, inner.high_watermark)
        };
        // As Kafka: a record at or beyond the high watermark is not found.
        let visible = |found: Option<(i64, i64)>| found.filter(|(offset, _)| *offset < hwm);
        for (file, start, end) in candidates {
            let mut pos = start;
            while pos < end {
                let chunk = read_batches(&file, pos, end, log_start, 1 << 20, hwm).await?;
                if chunk.is_empty() {
                    break;
                }
                for span in &chunk {
                    pos += span.len() as u64;
                    for b in split_batches(span) {
                        if let Some(found) = first_record_at_or_after(b, timestamp, log_start)? {
                            return Ok(visible(Some(found)));
                        }
                    }
                }
            }
        }
        // Batches not yet on disk are only in the cache.
        let cached: Vec<Bytes> = {
            let inner = self.inner.borrow();
            inner
                .cache
                .iter_from(inner.written_offset)
                .take_while(|b| b.base_offset < hwm)
                .filter(|b| b.max_timestamp >= timestamp)
                .map(|b| b.bytes.clone())
                .collect()
        };
        for b in cached {
            if let Some(found) = first_record_at_or_after(&b, timestamp, log_start)? {
                return Ok(visible(Some(found)));
            }
        }
        Ok(None)
    }

    /// Offset and timestamp of the record with the largest timestamp;
    /// `None` if that record is not below the high watermark yet (Kafka
    /// answers -1 then too).
    pub fn max_timestamp_offset(&self) -> Option<(i64, i64)> {
        let inner = self.inner.borrow();
        inner
            .segments
            .values()
            .filter(|s| s.offset_of_max_timestamp >= inner.log_start_offset)
            .max_by_key(|s| s.max_timestamp)
            .map(|s| (s.offset_of_max_timestamp, s.max_timestamp))
            .filter(|(offset, _)| *offset < inner.high_watermark)
    }
}

/// Read whole batches from `file[start..end]`, skipping those that end
/// before `offset` and stopping at the first that starts at or beyond
/// `limit` (the high watermark), up to `max_bytes` (the first wanted batch
/// whole).
async fn read_batches(
    file: &DmaFile,
    start: u64,
    end: u64,
    offset: i64,
    max_bytes: usize,
    limit: i64,
) -> Result<Vec<Bytes>, LogError> {
    let mut pos = start;
    let mut out: Vec<Bytes> = Vec::new();
    let mut total = 0usize;
    while pos < end {
        let want = ((end - pos) as usize).min(max_bytes.max(64 << 10) + 8192);
        let chunk = file.read_at(pos, want).await?;
        let mut at = 0usize;
        let mut span: Option<(usize, usize)> = None;
        let mut done = false;
        while at < chunk.len() {
            let Some(Ok(size)) = record::peek_batch_size(&chunk[at..]) else {
                break;
            };
            if at + size > chunk.len() {
                break;
            }
            let b = BatchView::parse(&chunk[at..at + size])?;
            if b.base_offset() >= limit {
                done = true;
                break;
            }
            if b.last_offset() >= offset {
                if total > 0 && total + size > max_bytes {
                    done = true;
                    break;
                }
                total += size;
                span = Some((span.map_or(at, |s| s.0), at + size));
                if total >= max_bytes {
                    at += size;
                    done = true;
                    break;
                }
            }
            at += size;
        }
        if let Some((a, b)) = span {
            // No copy: the DMA buffer itself travels to the socket.
            out.push(crate::foreign::dma_bytes(&chunk, a, b - a));
        }
        if done {
            break;
        }
        if at == 0 {
            // The batch at `pos` is larger than the chunk: read exactly it.
            let size = match record::peek_batch_size(&chunk) {
                Some(Ok(size)) if pos + size as u64 <= end => size,
                _ => {
                    return Err(LogError::Storage(format!(
                        "unreadable batch header at byte {pos} of a segment"
                    )))
                }
            };
            let whole = file.read_at(pos, size).await?;
            let b = BatchView::parse(&whole)?;
            if b.base_offset() >= limit {
                break;
            }
            if b.last_offset() >= offset {
                if total > 0 && total + size > max_bytes {
                    break;
                }
                total += size;
                out.push(crate::foreign::dma_bytes(&whole, 0, size));
            }
            pos += size as u64;
            continue;
        }
        pos += at as u64;
    }
    Ok(out)
}

/// The batches of a span read from the log (already validated on append).
fn split_batches(span: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = span;
    std::iter::from_fn(move || {
        let size = record::peek_batch_size(rest)?.ok()?;
        let (batch, tail) = rest.split_at(size.min(rest.len()));
        rest = tail;
        Some(batch)
    })
}

fn first_record_at_or_after(
    batch_bytes: &[u8],
    timestamp: i64,
    log_start: i64,
) -> Result<Option<(i64, i64)>, LogError> {
    let batch = BatchView::parse(batch_bytes)?;
    if batch.max_timestamp() < timestamp || batch.is_control() || batch.last_offset() < log_start {
        return Ok(None);
    }
    if batch.is_log_append_time() {
        return Ok(Some((
            batch.base_offset().max(log_start),
            batch.max_timestamp(),
        )));
    }
    let records =
        record::decode_records(&batch).map_err(|e| LogError::InvalidRecord(e.to_string()))?;
    for r in records {
        let offset = batch.base_offset() + r.offset_delta as i64;
        let ts = batch.base_timestamp() + r.timestamp_delta;
        if offset >= log_start && ts >= timestamp {
            return Ok(Some((offset, ts)));
        }
    }
    Ok(None)
}
