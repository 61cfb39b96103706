//! A batch encoded once and sent many times, whose values can be re-stamped
//! in place: the load generator's hot path. Re-sending costs nothing;
//! re-stamping an uncompressed batch (e2e latency runs write the send time
//! into every value) patches the value prefixes and both timestamps and
//! recomputes the CRC, without allocating. Compressed batches are re-encoded.

use bytes::Bytes;

use crate::batch_header::{update_crc, BATCH_HEADER_LEN};
use crate::error::RecordError;
use crate::records::BatchBuilder;
use crate::Compression;

/// Offsets of the base and max timestamps in the batch header.
const BASE_TIMESTAMP_AT: usize = 27;
const MAX_TIMESTAMP_AT: usize = 35;

pub struct BatchTemplate {
    builder: BatchBuilder,
    level: Option<i32>,
    /// Start and length of each value in the builder's uncompressed body.
    values: Vec<(usize, usize)>,
    bytes: Vec<u8>,
}

impl BatchTemplate {
    /// One record per value (no key, no headers), all at `timestamp`, in a
    /// batch with `builder`'s header fields (the builder must be empty).
    /// Compressed at `level` (`None`: the codec's default).
    pub fn new(
        mut builder: BatchBuilder,
        level: Option<i32>,
        timestamp: i64,
        values: impl IntoIterator<Item = Bytes>,
    ) -> Result<Self, RecordError> {
        assert!(
            builder.is_empty(),
            "a template starts from an empty builder"
        );
        let mut ranges = Vec::new();
        for (i, value) in values.into_iter().enumerate() {
            let delta = i32::try_from(i).map_err(|_| RecordError::TooManyRecords(i))?;
            let len = value.len();
            let at = builder.push_record(delta, timestamp, None, Some(value), vec![])?;
            ranges.push((at.expect("a value was given"), len));
        }
        let mut t = BatchTemplate {
            builder,
            level,
            values: ranges,
            bytes: Vec::new(),
        };
        t.builder.build_into(t.level, &mut t.bytes)?;
        Ok(t)
    }

    /// The encoded batch, as sent on the wire.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    pub fn record_count(&self) -> usize {
        self.builder.len()
    }

    /// Write `prefix` over the start of every value (values shorter than it
    /// are left alone), move every record's timestamp by the same amount so
    /// the base timestamp is `timestamp`, and fix the CRC.
    pub fn restamp(&mut self, prefix: &[u8], timestamp: i64) -> Result<(), RecordError> {
        let b = &mut self.builder;
        // Record timestamps are deltas from the base, so moving the base
        // moves them all; the max keeps its distance from the base.
        let max = timestamp.wrapping_add(b.max_timestamp.wrapping_sub(b.base_timestamp));
        b.base_timestamp = timestamp;
        b.max_timestamp = max;
        let n = prefix.len();
        for &(at, len) in &self.values {
            if len >= n {
                b.body[at..at + n].copy_from_slice(prefix);
            }
        }
        if b.compression != Compression::None {
            return b.build_into(self.level, &mut self.bytes);
        }
        // Uncompressed: the layout does not change, only values, timestamps
        // and hence the CRC.
        debug_assert_eq!(self.bytes.len(), BATCH_HEADER_LEN + b.body.len());
        for &(at, len) in &self.values {
            if len >= n {
                let at = BATCH_HEADER_LEN + at;
                self.bytes[at..at + n].copy_from_slice(prefix);
            }
        }
        self.bytes[BASE_TIMESTAMP_AT..BASE_TIMESTAMP_AT + 8]
            .copy_from_slice(&timestamp.to_be_bytes());
        self.bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max.to_be_bytes());
        update_crc(&mut self.bytes);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_records, BatchView};

    fn values(n: usize, len: usize) -> Vec<Bytes> {
        (0..n)
            .map(|i| Bytes::from(vec![b'a' + (i % 26) as u8; len]))
            .collect()
    }

    /// What a fresh builder makes of the same records.
    fn built(codec: Compression, ts: i64, vals: &[Bytes]) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        for v in vals {
            b.append(ts, None, Some(v.clone()), vec![]).unwrap();
        }
        b.build().unwrap()
    }

    #[test]
    fn template_encodes_like_the_builder() {
        for codec in Compression::ALL {
            let t =
                BatchTemplate::new(BatchBuilder::new(codec), None, 1000, values(5, 40)).unwrap();
            assert_eq!(
                t.bytes(),
                &built(codec, 1000, &values(5, 40))[..],
                "{codec:?}"
            );
            assert_eq!(t.record_count(), 5);
        }
    }

    #[test]
    fn restamp_patches_values_timestamps_and_crc() {
        for codec in Compression::ALL {
            let mut t =
                BatchTemplate::new(BatchBuilder::new(codec), None, 1000, values(4, 20)).unwrap();
            let prefix = 0x0102_0304_0506_0708u64.to_le_bytes();
            t.restamp(&prefix, 5000).unwrap();
            let stamped: Vec<Bytes> = values(4, 20)
                .into_iter()
                .map(|v| {
                    let mut v = v.to_vec();
                    v[..8].copy_from_slice(&prefix);
                    Bytes::from(v)
                })
                .collect();
            // Byte for byte what a fresh encode of the stamped records gives,
            // so the CRC is right too.
            assert_eq!(t.bytes(), &built(codec, 5000, &stamped)[..], "{codec:?}");
            let view = BatchView::parse_verified(t.bytes()).unwrap();
            assert_eq!(view.base_timestamp(), 5000);
            assert_eq!(view.max_timestamp(), 5000);
            let recs = decode_records(&view).unwrap();
            assert_eq!(recs[3].value.as_deref(), Some(&stamped[3][..]));
        }
    }

    #[test]
    fn values_shorter_than_the_prefix_are_left_alone() {
        let mut t = BatchTemplate::new(BatchBuilder::new(Compression::None), None, 7, values(2, 4))
            .unwrap();
        t.restamp(&[9u8; 8], 8).unwrap();
        assert_eq!(t.bytes(), &built(Compression::None, 8, &values(2, 4))[..]);
    }
}
