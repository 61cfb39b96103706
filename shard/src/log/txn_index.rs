//! The aborted-transaction index of one segment (Kafka's `.txnindex`,
//! `TransactionIndex`): one entry per transaction whose ABORT marker lies
//! in the segment, so that a read_committed fetch can name the aborted
//! transactions overlapping what it returns and the consumer can drop
//! their records.
//!
//! Entries are appended in marker order (leader and follower appends, and
//! the replay of the active segment at load). The active segment's index
//! lives in memory only: it is rebuilt from the segment's batches by the
//! replay at load, so it is exactly as durable as the data it indexes. A
//! sealed segment's index is written, durably, with its other indexes and
//! before the offset index that marks a clean seal; a sealed segment whose
//! `.txnindex` is missing or unreadable is rebuilt by scanning (`load.rs`),
//! never trusted and never fatal.
//!
//! The file is Kafka's layout: per entry `version i16 (0), producer_id i64,
//! first_offset i64, last_offset i64, last_stable_offset i64`, 34 bytes.

use std::path::Path;

/// Bytes of one entry in the file.
const ENTRY_SIZE: usize = 34;
const ENTRY_VERSION: i16 = 0;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// The offset of the transaction's first data batch.
    pub first_offset: i64,
    /// The offset of its ABORT marker.
    pub last_offset: i64,
    /// The last stable offset when it was aborted: the first offset of
    /// another producer's open transaction then, else `last_offset + 1`.
    /// A search can stop at an entry where this reaches its upper bound
    /// (no transaction aborted later can start below it).
    pub last_stable_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnIndex {
    entries: Vec<AbortedTxn>,
}

impl TxnIndex {
    pub fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Add the entry of an abort marker appended after every one before.
    pub fn push(&mut self, txn: AbortedTxn) {
        assert!(
            txn.first_offset <= txn.last_offset,
            "aborted transaction of producer {} starts at {} after its marker at {}",
            txn.producer_id,
            txn.first_offset,
            txn.last_offset
        );
        if let Some(last) = self.entries.last() {
            assert!(
                txn.last_offset > last.last_offset,
                "abort marker at {} indexed after one at {}",
                txn.last_offset,
                last.last_offset
            );
        }
        self.entries.push(txn);
    }

    /// Forget the entries whose marker is at or past `offset` (truncation).
    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|t| t.last_offset < offset);
    }

    /// Add to `out` the entries that overlap `fetch_offset..upper_bound`
    /// (marker at or after the fetch offset, first offset below the bound:
    /// Kafka's `collectAbortedTxns`). Returns true when no later segment
    /// can hold more (an entry's last stable offset reached the bound).
    pub fn collect(&self, fetch_offset: i64, upper_bound: i64, out: &mut Vec<AbortedTxn>) -> bool {
        // Markers are in order: those before the fetch offset are skipped
        // without a look at each.
        let from = self
            .entries
            .partition_point(|t| t.last_offset < fetch_offset);
        for txn in &self.entries[from..] {
            if txn.first_offset < upper_bound {
                out.push(*txn);
            }
            if txn.last_stable_offset >= upper_bound {
                return true;
            }
        }
        false
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut buf = Vec::with_capacity(self.entries.len() * ENTRY_SIZE);
        for t in &self.entries {
            buf.extend_from_slice(&ENTRY_VERSION.to_be_bytes());
            buf.extend_from_slice(&t.producer_id.to_be_bytes());
            buf.extend_from_slice(&t.first_offset.to_be_bytes());
            buf.extend_from_slice(&t.last_offset.to_be_bytes());
            buf.extend_from_slice(&t.last_stable_offset.to_be_bytes());
        }
        buf
    }

    /// Decode the index of the segment `base..next_base`. Anything that
    /// cannot be a valid index of it is an error (the caller rebuilds):
    /// a partial entry, an unknown version, a marker outside the segment,
    /// markers out of order, a first offset after its marker.
    pub fn decode(buf: &[u8], base: i64, next_base: i64) -> Result<Self, String> {
        if !buf.len().is_multiple_of(ENTRY_SIZE) {
            return Err(format!(
                "transaction index length {} is not a multiple of {ENTRY_SIZE}",
                buf.len()
            ));
        }
        let mut index = Self::default();
        let i64_at = |e: &[u8], at: usize| i64::from_be_bytes(e[at..at + 8].try_into().unwrap());
        for e in buf.chunks_exact(ENTRY_SIZE) {
            let version = i16::from_be_bytes([e[0], e[1]]);
            let txn = AbortedTxn {
                producer_id: i64_at(e, 2),
                first_offset: i64_at(e, 10),
                last_offset: i64_at(e, 18),
                last_stable_offset: i64_at(e, 26),
            };
            if version != ENTRY_VERSION {
                return Err(format!("transaction index entry version {version}"));
            }
            let in_order = index
                .entries
                .last()
                .is_none_or(|l| l.last_offset < txn.last_offset);
            if txn.last_offset < base
                || txn.last_offset >= next_base
                || txn.first_offset > txn.last_offset
                || txn.first_offset < 0
                || !in_order
            {
                return Err(format!(
                    "transaction index entry {txn:?} does not fit the segment {base}..{next_base}"
                ));
            }
            index.entries.push(txn);
        }
        Ok(index)
    }

    /// Read a sealed segment's index (blocks). `Ok(None)`: no file.
    pub fn read_from(path: &Path, base: i64, next_base: i64) -> Result<Option<Self>, String> {
        crate::blocking::assert_not_shard("reading a transaction index");
        match std::fs::read(path) {
            Ok(buf) => Self::decode(&buf, base, next_base)
                .map(Some)
                .map_err(|e| format!("{}: {e}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn encodes_as_kafka_and_decodes_back() {
        let mut index = TxnIndex::default();
        index.push(txn(7, 100, 105, 106));
        index.push(txn(8, 101, 110, 111));
        let bytes = index.encode();
        assert_eq!(bytes.len(), 2 * 34);
        // Kafka's AbortedTxn: version 0, then the four longs.
        assert_eq!(&bytes[..2], &[0, 0]);
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        assert_eq!(&bytes[18..26], &105i64.to_be_bytes());
        assert_eq!(TxnIndex::decode(&bytes, 100, 200).unwrap(), index);
    }

    #[test]
    fn damage_is_refused_not_trusted() {
        let mut index = TxnIndex::default();
        index.push(txn(7, 100, 105, 106));
        index.push(txn(8, 101, 110, 111));
        let bytes = index.encode();
        assert!(TxnIndex::decode(&bytes[..40], 100, 200).is_err(), "torn");
        let mut bad = bytes.clone();
        bad[1] = 9;
        assert!(TxnIndex::decode(&bad, 100, 200).is_err(), "version");
        // A marker outside the segment.
        assert!(TxnIndex::decode(&bytes, 106, 200).is_err());
        assert!(TxnIndex::decode(&bytes, 0, 110).is_err());
        // Out of order.
        let mut swapped = bytes[34..].to_vec();
        swapped.extend_from_slice(&bytes[..34]);
        assert!(TxnIndex::decode(&swapped, 100, 200).is_err());
        // First offset after the marker.
        let mut after = bytes.clone();
        after[10..18].copy_from_slice(&107i64.to_be_bytes());
        assert!(TxnIndex::decode(&after, 100, 200).is_err());
        assert!(TxnIndex::decode(&[], 100, 200).unwrap().is_empty());
    }

    #[test]
    fn collect_takes_what_overlaps_and_stops_when_complete() {
        let mut index = TxnIndex::default();
        index.push(txn(1, 10, 20, 15)); // another transaction open from 15
        index.push(txn(2, 15, 30, 31));
        index.push(txn(3, 40, 50, 51));
        let mut out = Vec::new();
        // Fetch 21..35: the first ended before it, the third starts after.
        assert!(index.collect(21, 35, &mut out));
        assert_eq!(out, vec![txn(2, 15, 30, 31)]);
        // Fetch 0..12: only the first overlaps, but its last stable offset
        // (15) is past the bound, so the search is complete there.
        out.clear();
        assert!(index.collect(0, 12, &mut out));
        assert_eq!(out, vec![txn(1, 10, 20, 15)]);
        // Fetch 45..100: overlaps the third; not complete (51 < 100).
        out.clear();
        assert!(!index.collect(45, 100, &mut out));
        assert_eq!(out, vec![txn(3, 40, 50, 51)]);
        out.clear();
        index.truncate_from(30);
        assert!(!index.collect(0, 100, &mut out));
        assert_eq!(out, vec![txn(1, 10, 20, 15)]);
    }

    #[test]
    #[should_panic(expected = "indexed after")]
    fn markers_must_come_in_order() {
        let mut index = TxnIndex::default();
        index.push(txn(1, 10, 20, 21));
        index.push(txn(2, 5, 19, 20));
    }
}
