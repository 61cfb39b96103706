//! Borrowing walks over batches and records: no copy of keys or values and,
//! for uncompressed batches, no allocation at all. [`decode_records`]
//! (owned records) is built on the same record parser, so the two cannot
//! disagree on what a valid record is.
//!
//! [`decode_records`]: crate::decode_records

use crate::batch_header::{peek_batch_size, BatchError, BatchView, Compression, BATCH_HEADER_LEN};
use crate::compression::decompress;
use crate::error::RecordError;
use crate::reader::Reader;

/// One record of a batch, borrowing from the batch (or its decompressed
/// payload).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The encoded headers, already checked by the parser.
    headers: &'a [u8],
    header_count: i32,
}

impl<'a> RecordRef<'a> {
    /// `(key, value)` of each header, in order.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)> + 'a {
        let mut r = Reader::new(self.headers);
        (0..self.header_count).map(move |_| {
            // Checked by `parse_record`, so these cannot fail.
            let key_len = r.varint().expect("checked header");
            let key = r.take(key_len as usize, "header key").expect("checked");
            let value = nullable(&mut r, "header value").expect("checked header");
            (key, value)
        })
    }

    pub fn header_count(&self) -> usize {
        self.header_count as usize
    }
}

/// Call `f` on each complete batch in `data` (a fetched partition's records);
/// a trailing partial batch (cut by the fetch size limit) is skipped, as
/// clients do. Structural damage in a complete batch is an error.
pub fn for_each_batch<'a, E: From<BatchError>>(
    mut data: &'a [u8],
    mut f: impl FnMut(BatchView<'a>) -> Result<(), E>,
) -> Result<(), E> {
    while let Some(size) = peek_batch_size(data) {
        let size = size?;
        if data.len() < size {
            break;
        }
        f(BatchView::parse(&data[..size])?)?;
        data = &data[size..];
    }
    Ok(())
}

/// Call `f` on every record of `batch`, decompressing its payload first if
/// needed. Checks what [`crate::decode_records`] checks.
pub fn for_each_record(batch: &BatchView, f: impl FnMut(RecordRef<'_>)) -> Result<(), RecordError> {
    let payload = &batch.bytes()[BATCH_HEADER_LEN..];
    match batch.compression() {
        Compression::None => walk_records(payload, batch.record_count(), f),
        codec => walk_records(&decompress(codec, payload)?, batch.record_count(), f),
    }
}

/// Parse `expected` records from the uncompressed payload `data`: the
/// count must match and nothing may follow the last record.
pub(crate) fn walk_records<'a>(
    data: &'a [u8],
    expected: i32,
    mut f: impl FnMut(RecordRef<'a>),
) -> Result<(), RecordError> {
    let mut reader = Reader::new(data);
    let mut seen = 0usize;
    while seen < expected.max(0) as usize {
        if reader.remaining() == 0 {
            return Err(RecordError::RecordCountMismatch {
                expected,
                actual: seen,
            });
        }
        f(parse_record(&mut reader)?);
        seen += 1;
    }
    if reader.remaining() != 0 {
        return Err(RecordError::TrailingBytes(reader.remaining()));
    }
    Ok(())
}

/// One record at the reader: its length prefix must match its fields.
#[inline]
fn parse_record<'a>(reader: &mut Reader<'a>) -> Result<RecordRef<'a>, RecordError> {
    let length = reader.varint()?;
    if length < 0 {
        return Err(RecordError::InvalidLength {
            what: "record",
            length: length as i64,
        });
    }
    let mut body = Reader::new(reader.take(length as usize, "record")?);
    let _attributes = body.i8("record attributes")?; // unused by Kafka so far
    let timestamp_delta = body.varlong()?;
    let offset_delta = body.varint()?;
    let key = nullable(&mut body, "record key")?;
    let value = nullable(&mut body, "record value")?;
    let header_count = body.varint()?;
    if header_count < 0 {
        return Err(RecordError::InvalidLength {
            what: "header count",
            length: header_count as i64,
        });
    }
    let headers_at = body.position();
    for _ in 0..header_count {
        let key_len = body.varint()?;
        if key_len < 0 {
            return Err(RecordError::InvalidLength {
                what: "header key",
                length: key_len as i64,
            });
        }
        body.take(key_len as usize, "header key")?;
        nullable(&mut body, "header value")?;
    }
    if body.remaining() != 0 {
        return Err(RecordError::RecordLengthMismatch {
            declared: length,
            actual: body.position(),
        });
    }
    Ok(RecordRef {
        offset_delta,
        timestamp_delta,
        key,
        value,
        headers: body.consumed_since(headers_at),
        header_count,
    })
}

/// A varint length (-1 = null) and that many bytes.
#[inline]
fn nullable<'a>(
    reader: &mut Reader<'a>,
    what: &'static str,
) -> Result<Option<&'a [u8]>, RecordError> {
    match reader.varint()? {
        -1 => Ok(None),
        len if len < 0 => Err(RecordError::InvalidLength {
            what,
            length: len as i64,
        }),
        len => Ok(Some(reader.take(len as usize, what)?)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{decode_records, BatchBuilder, RecordHeader};
    use bytes::Bytes;

    fn batch(codec: Compression) -> Vec<u8> {
        let mut b = BatchBuilder::new(codec);
        b.append(10, Some(Bytes::from_static(b"k")), None, vec![])
            .unwrap();
        b.append(
            12,
            None,
            Some(Bytes::from_static(b"value")),
            vec![RecordHeader {
                key: "h".into(),
                value: Some(Bytes::from_static(b"hv")),
            }],
        )
        .unwrap();
        b.build().unwrap()
    }

    #[test]
    fn borrowed_records_match_decoded_ones() {
        for codec in Compression::ALL {
            let bytes = batch(codec);
            let view = BatchView::parse_verified(&bytes).unwrap();
            let owned = decode_records(&view).unwrap();
            let mut seen = Vec::new();
            for_each_record(&view, |r| {
                seen.push((
                    r.offset_delta,
                    r.timestamp_delta,
                    r.key.map(<[u8]>::to_vec),
                    r.value.map(<[u8]>::to_vec),
                    r.headers()
                        .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                        .collect::<Vec<_>>(),
                ))
            })
            .unwrap();
            assert_eq!(seen.len(), owned.len());
            for (s, o) in seen.iter().zip(&owned) {
                assert_eq!(s.0, o.offset_delta);
                assert_eq!(s.1, o.timestamp_delta);
                assert_eq!(s.2.as_deref(), o.key.as_deref());
                assert_eq!(s.3.as_deref(), o.value.as_deref());
                assert_eq!(s.4.len(), o.headers.len());
                for (h, oh) in s.4.iter().zip(&o.headers) {
                    assert_eq!(h.0, oh.key.as_bytes());
                    assert_eq!(h.1.as_deref(), oh.value.as_deref());
                }
            }
        }
    }

    #[test]
    fn trailing_partial_batch_is_skipped_and_damage_is_an_error() {
        let one = batch(Compression::None);
        let mut data = one.clone();
        data.extend_from_slice(&one[..one.len() - 1]);
        let mut n = 0;
        for_each_batch(&data, |b| {
            assert_eq!(b.record_count(), 2);
            n += 1;
            Ok::<(), RecordError>(())
        })
        .unwrap();
        assert_eq!(n, 1);
        // A complete batch with a bad magic is not skipped silently.
        let mut bad = one.clone();
        bad[16] = 7;
        assert!(for_each_batch(&bad, |_| Ok::<(), RecordError>(())).is_err());
        // A record count the payload does not hold.
        let mut short = one.clone();
        short[57..61].copy_from_slice(&3i32.to_be_bytes());
        let view = BatchView::parse(&short).unwrap();
        assert!(matches!(
            for_each_record(&view, |_| {}),
            Err(RecordError::RecordCountMismatch {
                expected: 3,
                actual: 2
            })
        ));
    }
}
