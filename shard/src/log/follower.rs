//! Appending as a follower: batches copied from the leader, with their
//! offsets and leader epochs already set. Nothing is reassigned; the log
//! checks what it is given (as Kafka's `UnifiedLog.append` with
//! `validateAndAssignOffsets = false`) and writes it through the same path
//! as the leader's appends (`append_validated`: segments, index, tail cache,
//! flusher, durability).
//!
//! Checks, all before anything is appended:
//! - every batch is magic 2 with a valid CRC;
//! - the first batch starts at the log end (Kafka's
//!   UnexpectedAppendOffsetException for one below it) and each next batch
//!   at the previous one's last offset + 1 (OffsetsOutOfOrderException for
//!   an overlap). Unlike Kafka, a gap is refused too: this log keeps its
//!   offsets dense (a compacted leader's gaps are not replicated yet);
//! - leader epochs never go back, within the request or against the epoch
//!   cache. A new epoch gets its cache entry at its first batch, durably,
//!   before the batch is written.

use bytes::Bytes;

use super::error::LogError;
use super::partition::{AckLevel, AppendInfo, PartitionLog};
use crate::record::{self, BatchView};

impl PartitionLog {
    /// Append batches a leader already numbered (see the module comment).
    pub async fn append_as_follower(
        &self,
        records: Bytes,
        ack: AckLevel,
    ) -> Result<AppendInfo, LogError> {
        if self.closed.get() {
            return Err(LogError::Closed);
        }
        let batches = parse_follower_batches(&records)?;
        let _permit = self.append_lock.lock().await;
        if self.inner.borrow().storage_error.is_some() {
            self.try_recover().await?;
        }
        self.wait_for_write_room().await?;
        let total: usize = batches.iter().map(|r| r.len()).sum();
        if self.needs_roll(total) {
            self.roll().await?;
        }
        // With the append lock held the log end cannot move from here on.
        self.check_follower_batches(&records, &batches)?;
        if let Err(e) = self.persist_epochs_if_changed().await {
            // Nothing was appended: the new entries go again.
            let mut inner = self.inner.borrow_mut();
            let end = inner.offsets.log_end();
            inner.epochs.truncate_from_end(end);
            return Err(e);
        }
        let info = self.append_validated(&records, &batches, false);
        self.finish_append(info, _permit, ack).await
    }

    /// Offsets contiguous with the log end, epochs not going back; assigns
    /// the epoch cache entries of new epochs (in memory: the caller makes
    /// them durable before writing).
    fn check_follower_batches(
        &self,
        records: &Bytes,
        batches: &[std::ops::Range<usize>],
    ) -> Result<(), LogError> {
        let mut inner = self.inner.borrow_mut();
        let mut expected = inner.offsets.log_end();
        let mut epoch = inner.epochs.latest_epoch().unwrap_or(-1);
        let mut new_epochs = Vec::new();
        for (i, range) in batches.iter().enumerate() {
            let b = BatchView::parse(&records[range.clone()]).expect("parsed");
            if b.base_offset() != expected {
                let what = match (i, b.base_offset() < expected) {
                    (0, true) => "UnexpectedAppendOffset: the first batch starts below the log end",
                    (0, false) => "the first batch leaves a gap after the log end",
                    (_, true) => "OffsetsOutOfOrder: a batch overlaps the one before it",
                    (_, false) => "a batch leaves a gap after the one before it",
                };
                return Err(LogError::InvalidRecord(format!(
                    "{}: {what}: base offset {}, expected {expected}",
                    self.name,
                    b.base_offset()
                )));
            }
            let batch_epoch = b.partition_leader_epoch();
            if batch_epoch < epoch {
                return Err(LogError::InvalidRecord(format!(
                    "{}: leader epoch goes back from {epoch} to {batch_epoch} at offset {}",
                    self.name,
                    b.base_offset()
                )));
            }
            if batch_epoch > epoch {
                new_epochs.push((batch_epoch, b.base_offset()));
                epoch = batch_epoch;
            }
            expected = b.last_offset() + 1;
        }
        for (e, start) in new_epochs {
            inner.epochs.assign(e, start);
        }
        Ok(())
    }
}

/// Each batch's range in `records`, every one magic 2 with a valid CRC and
/// a consistent header.
fn parse_follower_batches(records: &Bytes) -> Result<Vec<std::ops::Range<usize>>, LogError> {
    let mut ranges = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let rest = &records[at..];
        if record::peek_magic(rest).is_some_and(|m| m != 2) {
            return Err(LogError::UnsupportedFormat);
        }
        let batch = BatchView::parse_verified(rest)?;
        if batch.base_offset() < 0 || batch.last_offset() < batch.base_offset() {
            return Err(LogError::InvalidRecord(format!(
                "batch offsets {}..={} out of order",
                batch.base_offset(),
                batch.last_offset()
            )));
        }
        ranges.push(at..at + batch.size());
        at += batch.size();
    }
    if ranges.is_empty() {
        return Err(LogError::InvalidRecord("no record batch".into()));
    }
    Ok(ranges)
}
