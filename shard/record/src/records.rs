//! The records inside a magic-2 batch: decoding them (for down-conversion and
//! anything else that must look inside a batch) and building whole batches.
//!
//! Record layout (all lengths are zigzag varints, -1 meaning null):
//! `length, attributes i8, timestampDelta varlong, offsetDelta varint,
//!  key, value, headerCount, [headerKey, headerValue]*`.

use bytes::{BufMut, Bytes};

use super::batch_header::{
    update_crc, BatchError, BatchView, Compression, BATCH_HEADER_LEN, LOG_OVERHEAD, NO_PRODUCER_ID,
    NO_SEQUENCE,
};
use super::compression::{compress_with_level, decompress};
use super::error::RecordError;
use super::varint::{put_varint, put_varlong};
use super::visit::{walk_records, RecordRef};

/// Smallest possible encoded record: a one-byte length, then attributes,
/// timestamp delta, offset delta, null key, null value and zero headers.
const MIN_RECORD_LEN: usize = 7;

const ATTR_LOG_APPEND_TIME: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One record of a magic-2 batch, with offset and timestamp relative to the
/// batch's base offset and base timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<RecordHeader>,
}

/// Whether batch timestamps are the producer's or the broker's (attribute bit 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Decode every record of `batch`, decompressing its payload if needed.
///
/// The header's record count must match the records actually present, each
/// record's length prefix must match its fields, and nothing may follow the
/// last record. Keys, values and header values share one buffer.
pub fn decode_records(batch: &BatchView) -> Result<Vec<Record>, RecordError> {
    let payload = &batch.bytes()[BATCH_HEADER_LEN..];
    let data = match batch.compression() {
        Compression::None => Bytes::copy_from_slice(payload),
        codec => Bytes::from(decompress(codec, payload)?),
    };
    let expected = batch.record_count();
    // Cap the pre-allocation by what the bytes could hold: the count is
    // untrusted and could claim two billion records.
    let mut records = Vec::with_capacity((expected as usize).min(data.len() / MIN_RECORD_LEN));
    walk_records(&data, expected, |r| records.push(to_owned(&r, &data)))?;
    Ok(records)
}

/// An owned [`Record`] whose keys and values share the buffer `data`.
fn to_owned(r: &RecordRef<'_>, data: &Bytes) -> Record {
    Record {
        offset_delta: r.offset_delta,
        timestamp_delta: r.timestamp_delta,
        key: r.key.map(|k| data.slice_ref(k)),
        value: r.value.map(|v| data.slice_ref(v)),
        // Java decodes header keys leniently (malformed UTF-8 becomes U+FFFD);
        // do the same rather than fail a whole fetch over one header.
        headers: r
            .headers()
            .map(|(k, v)| RecordHeader {
                key: String::from_utf8_lossy(k).into_owned(),
                value: v.map(|v| data.slice_ref(v)),
            })
            .collect(),
    }
}

fn put_nullable_bytes(
    value: Option<&[u8]>,
    out: &mut Vec<u8>,
    what: &'static str,
) -> Result<(), RecordError> {
    match value {
        None => put_varint(-1, out),
        Some(bytes) => {
            put_varint(length_i32(bytes.len(), what)?, out);
            out.extend_from_slice(bytes);
        }
    }
    Ok(())
}

fn length_i32(len: usize, what: &'static str) -> Result<i32, RecordError> {
    i32::try_from(len).map_err(|_| RecordError::InvalidLength {
        what,
        length: len as i64,
    })
}

/// Builds one complete, CRC-correct magic-2 batch.
///
/// Records get consecutive offset deltas in append order. As in Kafka's
/// `MemoryRecordsBuilder`, the base timestamp is the first record's and the
/// max timestamp the largest of all. Configure with the by-value setters,
/// then [`append`](Self::append) records and [`build`](Self::build).
#[derive(Debug, Clone)]
pub struct BatchBuilder {
    base_offset: i64,
    partition_leader_epoch: i32,
    pub(crate) compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    pub(crate) base_timestamp: i64,
    pub(crate) max_timestamp: i64,
    record_count: usize,
    /// Offset delta of the last record appended (-1 before any).
    last_offset_delta: i32,
    /// The encoded records, uncompressed.
    pub(crate) body: Vec<u8>,
}

impl BatchBuilder {
    /// A builder for a non-transactional, non-idempotent create-time batch at
    /// offset 0 with no leader epoch, which is what a producer without
    /// idempotence sends.
    pub fn new(compression: Compression) -> Self {
        Self {
            base_offset: 0,
            partition_leader_epoch: -1,
            compression,
            timestamp_type: TimestampType::CreateTime,
            transactional: false,
            control: false,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: -1,
            base_sequence: NO_SEQUENCE,
            base_timestamp: 0,
            max_timestamp: i64::MIN,
            record_count: 0,
            last_offset_delta: -1,
            body: Vec::new(),
        }
    }

    pub fn base_offset(mut self, base_offset: i64) -> Self {
        self.base_offset = base_offset;
        self
    }

    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    pub fn timestamp_type(mut self, timestamp_type: TimestampType) -> Self {
        self.timestamp_type = timestamp_type;
        self
    }

    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Idempotence / transaction identity: producer id, epoch and the
    /// sequence number of the first record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    pub fn len(&self) -> usize {
        self.record_count
    }

    pub fn is_empty(&self) -> bool {
        self.record_count == 0
    }

    /// Append a record with an absolute `timestamp` (`NO_TIMESTAMP` allowed).
    pub fn append(
        &mut self,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<RecordHeader>,
    ) -> Result<(), RecordError> {
        let offset_delta = i32::try_from(self.record_count)
            .map_err(|_| RecordError::TooManyRecords(self.record_count))?;
        self.push_record(offset_delta, timestamp, key, value, headers)
            .map(|_| ())
    }

    /// Append a record at an explicit `offset_delta` from the base offset,
    /// leaving gaps (as log compaction does: surviving records keep their
    /// offsets). Deltas must grow strictly; the batch's last offset delta is
    /// the last one appended. Do not mix with [`append`](Self::append)
    /// after a gap.
    pub fn append_with_offset_delta(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<RecordHeader>,
    ) -> Result<(), RecordError> {
        if offset_delta <= self.last_offset_delta {
            return Err(BatchError::InvalidOffsetDelta(offset_delta).into());
        }
        self.push_record(offset_delta, timestamp, key, value, headers)
            .map(|_| ())
    }

    /// Encode one record; returns where its value starts in `body` (the
    /// uncompressed records), for [`crate::BatchTemplate`]'s in-place restamp.
    pub(crate) fn push_record(
        &mut self,
        offset_delta: i32,
        timestamp: i64,
        key: Option<Bytes>,
        value: Option<Bytes>,
        headers: Vec<RecordHeader>,
    ) -> Result<Option<usize>, RecordError> {
        if self.record_count == 0 {
            self.base_timestamp = timestamp;
        }
        let mut record = Vec::new();
        record.put_i8(0); // record attributes: none defined
                          // Wrapping, like Java's long arithmetic: decoding adds it back.
        put_varlong(timestamp.wrapping_sub(self.base_timestamp), &mut record);
        put_varint(offset_delta, &mut record);
        put_nullable_bytes(key.as_deref(), &mut record, "record key")?;
        put_nullable_bytes(value.as_deref(), &mut record, "record value")?;
        let value_end = record.len();
        put_varint(length_i32(headers.len(), "header count")?, &mut record);
        for header in &headers {
            put_nullable_bytes(Some(header.key.as_bytes()), &mut record, "header key")?;
            put_nullable_bytes(header.value.as_deref(), &mut record, "header value")?;
        }
        put_varint(length_i32(record.len(), "record")?, &mut self.body);
        let record_at = self.body.len();
        self.body.extend_from_slice(&record);
        self.max_timestamp = self.max_timestamp.max(timestamp);
        self.record_count += 1;
        self.last_offset_delta = offset_delta;
        Ok(value.map(|v| record_at + value_end - v.len()))
    }

    fn attributes(&self) -> i16 {
        let mut attributes = self.compression.id();
        if self.timestamp_type == TimestampType::LogAppendTime {
            attributes |= ATTR_LOG_APPEND_TIME;
        }
        if self.transactional {
            attributes |= ATTR_TRANSACTIONAL;
        }
        if self.control {
            attributes |= ATTR_CONTROL;
        }
        attributes
    }

    /// Encode the batch: header, (compressed) records, CRC32C.
    pub fn build(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::new();
        self.build_into(None, &mut out)?;
        Ok(out)
    }

    /// [`build`](Self::build) into `out` (cleared first, its capacity
    /// reused), compressing at `level` (`None`: the codec's default).
    pub fn build_into(&self, level: Option<i32>, out: &mut Vec<u8>) -> Result<(), RecordError> {
        if self.record_count == 0 {
            return Err(RecordError::EmptyBatch);
        }
        let compressed;
        let payload: &[u8] = match self.compression {
            Compression::None => &self.body,
            codec => {
                compressed = compress_with_level(codec, &self.body, level)?;
                &compressed
            }
        };
        let total = BATCH_HEADER_LEN + payload.len();
        let batch_length = length_i32(total - LOG_OVERHEAD, "batch")?;
        out.clear();
        out.reserve(total);
        out.put_i64(self.base_offset);
        out.put_i32(batch_length);
        out.put_i32(self.partition_leader_epoch);
        out.put_i8(2); // magic
        out.put_u32(0); // CRC, filled in below
        out.put_i16(self.attributes());
        out.put_i32(self.last_offset_delta);
        out.put_i64(self.base_timestamp);
        out.put_i64(self.max_timestamp);
        out.put_i64(self.producer_id);
        out.put_i16(self.producer_epoch);
        out.put_i32(self.base_sequence);
        out.put_i32(self.record_count as i32);
        debug_assert_eq!(out.len(), BATCH_HEADER_LEN);
        out.extend_from_slice(payload);
        update_crc(out);
        Ok(())
    }
}

/// The same batch with its records compressed with `codec` (Kafka's
/// recompression on the broker, for a topic `compression.type` other than
/// the producer's codec). The records' bytes and every header field (base
/// offset, leader epoch, producer id, epoch and sequence, timestamps,
/// transactional and control bits) stay as they were; only the codec bits,
/// the batch length and the CRC change.
pub fn recompress_batch(
    batch: &BatchView,
    codec: Compression,
    level: Option<i32>,
) -> Result<Vec<u8>, RecordError> {
    let payload = &batch.bytes()[BATCH_HEADER_LEN..];
    let plain = match batch.compression() {
        Compression::None => std::borrow::Cow::Borrowed(payload),
        from => std::borrow::Cow::Owned(decompress(from, payload)?),
    };
    let payload = super::compression::compress_with_level(codec, &plain, level)?;
    let total = BATCH_HEADER_LEN + payload.len();
    let batch_length = length_i32(total - LOG_OVERHEAD, "batch")?;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(&batch.bytes()[..BATCH_HEADER_LEN]);
    out.extend_from_slice(&payload);
    out[8..12].copy_from_slice(&batch_length.to_be_bytes());
    let attributes = (batch.attributes() & !0x07) | codec.id();
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    update_crc(&mut out);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch_header::{BatchError, NO_TIMESTAMP};
    use proptest::prelude::*;

    const CODECS: [Compression; 5] = Compression::ALL;

    fn header(key: &str, value: Option<&'static [u8]>) -> RecordHeader {
        RecordHeader {
            key: key.to_string(),
            value: value.map(Bytes::from_static),
        }
    }

    /// A record to append: (timestamp, key, value, headers).
    type Input = (i64, Option<Bytes>, Option<Bytes>, Vec<RecordHeader>);

    fn sample() -> Vec<Input> {
        vec![
            (
                1_000,
                Some(Bytes::from_static(b"k1")),
                Some(Bytes::from_static(b"v1")),
                vec![],
            ),
            (
                990,
                None,
                Some(Bytes::from(vec![7u8; 300])),
                vec![header("h", Some(b"x")), header("", None)],
            ),
            (
                1_500,
                Some(Bytes::new()),
                None,
                vec![header("\u{e9}t\u{e9}", Some(b""))],
            ),
        ]
    }

    fn build(codec: Compression, builder: BatchBuilder) -> Vec<u8> {
        let mut builder = BatchBuilder {
            compression: codec,
            ..builder
        };
        for (ts, key, value, headers) in sample() {
            builder.append(ts, key, value, headers).unwrap();
        }
        builder.build().unwrap()
    }

    #[test]
    fn built_batches_parse_and_decode_to_the_same_records() {
        for codec in CODECS {
            let bytes = build(codec, BatchBuilder::new(codec));
            let view = BatchView::parse_verified(&bytes).unwrap();
            assert_eq!(view.size(), bytes.len());
            assert_eq!(view.compression(), codec);
            assert_eq!(view.record_count(), 3);
            assert_eq!(view.last_offset_delta(), 2);
            assert_eq!(view.base_timestamp(), 1_000);
            assert_eq!(view.max_timestamp(), 1_500);
            let records = decode_records(&view).unwrap();
            let expected = sample();
            assert_eq!(records.len(), expected.len());
            for (i, (record, (ts, key, value, headers))) in records.iter().zip(expected).enumerate()
            {
                assert_eq!(record.offset_delta, i as i32);
                assert_eq!(view.base_timestamp() + record.timestamp_delta, ts);
                assert_eq!(record.key, key);
                assert_eq!(record.value, value);
                assert_eq!(record.headers, headers);
            }
        }
    }

    #[test]
    fn recompressed_batches_keep_header_fields_and_records() {
        for from in CODECS {
            let builder = BatchBuilder::new(from)
                .base_offset(77)
                .partition_leader_epoch(5)
                .transactional(true)
                .producer(99, 3, 41);
            let bytes = build(from, builder);
            let original = BatchView::parse_verified(&bytes).unwrap();
            for to in CODECS {
                for level in [None, Some(1)] {
                    let out = recompress_batch(&original, to, level).unwrap();
                    let view = BatchView::parse_verified(&out).unwrap();
                    assert_eq!(view.size(), out.len());
                    assert_eq!(view.compression(), to);
                    assert_eq!(
                        view.attributes() & !0x07,
                        original.attributes() & !0x07,
                        "only the codec bits change"
                    );
                    // Everything between the length and the attributes, and
                    // after them up to the records, is unchanged.
                    assert_eq!(out[..8], bytes[..8]);
                    assert_eq!(out[12..17], bytes[12..17]);
                    assert_eq!(out[23..BATCH_HEADER_LEN], bytes[23..BATCH_HEADER_LEN]);
                    assert_eq!(
                        decode_records(&view).unwrap(),
                        decode_records(&original).unwrap()
                    );
                }
            }
        }
    }

    #[test]
    fn header_fields_and_flags_are_written() {
        let builder = BatchBuilder::new(Compression::None)
            .base_offset(1234)
            .partition_leader_epoch(7)
            .timestamp_type(TimestampType::LogAppendTime)
            .transactional(true)
            .control(true)
            .producer(99, 3, 41);
        let bytes = build(Compression::Gzip, builder);
        let view = BatchView::parse_verified(&bytes).unwrap();
        assert_eq!(view.base_offset(), 1234);
        assert_eq!(view.last_offset(), 1236);
        assert_eq!(view.partition_leader_epoch(), 7);
        assert!(view.is_log_append_time() && view.is_transactional() && view.is_control());
        assert_eq!(view.compression(), Compression::Gzip);
        assert_eq!(
            (
                view.producer_id(),
                view.producer_epoch(),
                view.base_sequence()
            ),
            (99, 3, 41)
        );
        assert_eq!(view.last_sequence(), 43);

        let plain = build(Compression::None, BatchBuilder::new(Compression::None));
        let view = BatchView::parse_verified(&plain).unwrap();
        assert!(!view.is_log_append_time() && !view.is_transactional() && !view.is_control());
        assert_eq!(
            (
                view.producer_id(),
                view.producer_epoch(),
                view.base_sequence()
            ),
            (-1, -1, -1)
        );
        assert_eq!(view.partition_leader_epoch(), -1);
    }

    #[test]
    fn no_timestamp_records_keep_no_timestamp() {
        let mut builder = BatchBuilder::new(Compression::None);
        builder.append(NO_TIMESTAMP, None, None, vec![]).unwrap();
        builder.append(NO_TIMESTAMP, None, None, vec![]).unwrap();
        let bytes = builder.build().unwrap();
        let view = BatchView::parse_verified(&bytes).unwrap();
        assert_eq!(
            (view.base_timestamp(), view.max_timestamp()),
            (NO_TIMESTAMP, NO_TIMESTAMP)
        );
        assert!(decode_records(&view)
            .unwrap()
            .iter()
            .all(|r| r.timestamp_delta == 0));
    }

    #[test]
    fn explicit_offset_deltas_leave_gaps() {
        for codec in CODECS {
            let mut builder = BatchBuilder::new(codec).base_offset(100).producer(5, 1, 40);
            for (delta, ts) in [(1, 2_000), (4, 1_500), (9, 2_500)] {
                let key = Some(Bytes::from(format!("k{delta}")));
                builder
                    .append_with_offset_delta(delta, ts, key, None, vec![])
                    .unwrap();
            }
            assert!(builder
                .append_with_offset_delta(9, 0, None, None, vec![])
                .is_err());
            let bytes = builder.build().unwrap();
            let view = BatchView::parse_verified(&bytes).unwrap();
            assert_eq!(view.compression(), codec);
            assert_eq!((view.record_count(), view.last_offset_delta()), (3, 9));
            assert_eq!((view.base_offset(), view.last_offset()), (100, 109));
            assert_eq!(
                (view.base_timestamp(), view.max_timestamp()),
                (2_000, 2_500)
            );
            assert_eq!(view.last_sequence(), 49);
            let records = decode_records(&view).unwrap();
            let deltas: Vec<i32> = records.iter().map(|r| r.offset_delta).collect();
            assert_eq!(deltas, [1, 4, 9]);
            assert_eq!(view.base_timestamp() + records[1].timestamp_delta, 1_500);
            assert!(records.iter().all(|r| r.value.is_none()));
        }
        let mut builder = BatchBuilder::new(Compression::None);
        assert!(builder
            .append_with_offset_delta(-1, 0, None, None, vec![])
            .is_err());
    }

    #[test]
    fn empty_builder_is_an_error() {
        assert_eq!(
            BatchBuilder::new(Compression::None).build(),
            Err(RecordError::EmptyBatch)
        );
    }

    #[test]
    fn corrupted_crc_is_detected() {
        let mut bytes = build(Compression::None, BatchBuilder::new(Compression::None));
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        assert!(matches!(
            BatchView::parse_verified(&bytes),
            Err(BatchError::CrcMismatch { .. })
        ));
    }

    /// Rewrite the record count, and the CRC so only the count is wrong.
    fn with_count(mut bytes: Vec<u8>, count: i32) -> Vec<u8> {
        bytes[57..61].copy_from_slice(&count.to_be_bytes());
        update_crc(&mut bytes);
        bytes
    }

    #[test]
    fn record_count_must_match() {
        let bytes = build(Compression::Lz4, BatchBuilder::new(Compression::None));
        let more = with_count(bytes.clone(), 4);
        assert_eq!(
            decode_records(&BatchView::parse_verified(&more).unwrap()),
            Err(RecordError::RecordCountMismatch {
                expected: 4,
                actual: 3
            })
        );
        let huge = with_count(bytes.clone(), i32::MAX);
        assert!(decode_records(&BatchView::parse_verified(&huge).unwrap()).is_err());
        let fewer = with_count(bytes, 2);
        assert!(matches!(
            decode_records(&BatchView::parse_verified(&fewer).unwrap()),
            Err(RecordError::TrailingBytes(_))
        ));
    }

    fn arb_bytes() -> impl Strategy<Value = Option<Bytes>> {
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from))
    }

    fn arb_record() -> impl Strategy<Value = Input> {
        let header = (".{0,8}", arb_bytes()).prop_map(|(key, value)| RecordHeader { key, value });
        (
            any::<i64>(),
            arb_bytes(),
            arb_bytes(),
            proptest::collection::vec(header, 0..4),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn random_records_round_trip(
            records in proptest::collection::vec(arb_record(), 1..12),
            which in 0usize..5,
            base_offset in 0i64..1 << 40,
        ) {
            let mut builder = BatchBuilder::new(CODECS[which]).base_offset(base_offset);
            for (ts, key, value, headers) in records.clone() {
                builder.append(ts, key, value, headers).unwrap();
            }
            let bytes = builder.build().unwrap();
            let view = BatchView::parse_verified(&bytes).unwrap();
            prop_assert_eq!(view.max_timestamp(), records.iter().map(|r| r.0).max().unwrap());
            let decoded = decode_records(&view).unwrap();
            prop_assert_eq!(decoded.len(), records.len());
            for (i, (record, (ts, key, value, headers))) in decoded.into_iter().zip(records).enumerate() {
                prop_assert_eq!(record.offset_delta, i as i32);
                prop_assert_eq!(view.base_timestamp().wrapping_add(record.timestamp_delta), ts);
                prop_assert_eq!(record.key, key);
                prop_assert_eq!(record.value, value);
                prop_assert_eq!(record.headers, headers);
            }
        }

        /// Garbage behind a valid header and CRC reaches the record decoder.
        #[test]
        fn random_payload_never_panics(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            count in -2i32..20,
            which in 0usize..5,
        ) {
            let mut bytes = build(Compression::None, BatchBuilder::new(Compression::None));
            bytes.truncate(BATCH_HEADER_LEN);
            bytes.extend_from_slice(&payload);
            let length = (bytes.len() - LOG_OVERHEAD) as i32;
            bytes[8..12].copy_from_slice(&length.to_be_bytes());
            bytes[21..23].copy_from_slice(&CODECS[which].id().to_be_bytes());
            let bytes = with_count(bytes, count);
            if let Ok(view) = BatchView::parse_verified(&bytes) {
                let _ = decode_records(&view);
            }
        }

        /// Flipping any byte of a valid uncompressed payload never panics.
        #[test]
        fn mutated_records_never_panic(at in 0usize..1000, xor in 1u8..=255) {
            let mut bytes = build(Compression::None, BatchBuilder::new(Compression::None));
            let at = BATCH_HEADER_LEN + at % (bytes.len() - BATCH_HEADER_LEN);
            bytes[at] ^= xor;
            let view = BatchView::parse(&bytes).unwrap();
            let _ = decode_records(&view);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(view) = BatchView::parse(&bytes) {
                let _ = decode_records(&view);
            }
        }
    }
}
