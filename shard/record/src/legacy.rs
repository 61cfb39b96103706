//! The pre-0.11 message formats (magic 0 and 1) and conversion between them
//! and magic-2 batches.
//!
//! A message set is a concatenation of
//! `offset i64, size i32, crc u32, magic i8, attributes i8, [timestamp i64 if
//! magic 1], key (i32 length, -1 = null), value (i32 length, -1 = null)`,
//! where the CRC32 (IEEE) covers everything from `magic` to the end. A
//! message whose attributes name a codec is a "wrapper": its value is a
//! compressed inner message set. Inner offsets are relative (0, 1, …) under a
//! magic-1 wrapper, whose own offset is that of the last inner message; under
//! magic 0 they are absolute.
//!
//! The broker stores only magic 2, so Produce v0–v2 payloads are converted up
//! on the way in and Fetch v0–v3 responses are converted down on the way out.

use bytes::{BufMut, Bytes};

use super::batch_header::{BatchView, Compression, LOG_OVERHEAD, NO_TIMESTAMP};
use super::compression::{compress, decompress};
use super::error::RecordError;
use super::reader::Reader;
use super::records::{decode_records, BatchBuilder, TimestampType};

/// crc, magic, attributes, key length and value length.
const MIN_MESSAGE_SIZE_V0: i32 = 4 + 1 + 1 + 4 + 4;
const ATTR_CODEC_MASK: i8 = 0x07;
const ATTR_LOG_APPEND_TIME: i8 = 0x08;

/// One logical legacy message, with its absolute offset. `timestamp` is
/// `NO_TIMESTAMP` for magic 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyMessage {
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
}

/// One message as it sits in a message set, CRC already checked.
struct RawMessage<'a> {
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&'a [u8]>,
    value: Option<&'a [u8]>,
}

impl RawMessage<'_> {
    fn codec(&self) -> Result<Compression, RecordError> {
        match self.attributes & ATTR_CODEC_MASK {
            0 => Ok(Compression::None),
            1 => Ok(Compression::Gzip),
            2 => Ok(Compression::Snappy),
            3 => Ok(Compression::Lz4),
            // zstd arrived with magic 2; Kafka rejects it in older formats.
            4 => Err(RecordError::UnsupportedCompression(Compression::Zstd)),
            id => Err(RecordError::UnknownCompression(id)),
        }
    }

    fn timestamp_type(&self) -> TimestampType {
        if self.magic >= 1 && self.attributes & ATTR_LOG_APPEND_TIME != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    fn to_message(&self, offset: i64) -> LegacyMessage {
        LegacyMessage {
            offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type(),
            key: self.key.map(Bytes::copy_from_slice),
            value: self.value.map(Bytes::copy_from_slice),
        }
    }
}

/// What a top-level message turns into: itself, or a wrapper's inner messages
/// (offsets made absolute, timestamps resolved) and its codec.
enum Entry {
    Plain(LegacyMessage),
    Wrapper {
        codec: Compression,
        timestamp_type: TimestampType,
        messages: Vec<LegacyMessage>,
    },
}

fn read_nullable<'a>(
    reader: &mut Reader<'a>,
    what: &'static str,
) -> Result<Option<&'a [u8]>, RecordError> {
    match reader.i32(what)? {
        -1 => Ok(None),
        len if len < 0 => Err(RecordError::InvalidLength {
            what,
            length: len as i64,
        }),
        len => Ok(Some(reader.take(len as usize, what)?)),
    }
}

/// Read the next complete message; a partial one is an error.
fn read_message<'a>(reader: &mut Reader<'a>) -> Result<RawMessage<'a>, RecordError> {
    let offset = reader.i64("message offset")?;
    let size = reader.i32("message size")?;
    if size < MIN_MESSAGE_SIZE_V0 {
        return Err(RecordError::InvalidLength {
            what: "message",
            length: size as i64,
        });
    }
    let bytes = reader.take(size as usize, "message")?;
    let mut body = Reader::new(bytes);
    let expected = body.u32("message crc")?;
    let actual = crc32fast::hash(&bytes[4..]);
    if expected != actual {
        return Err(RecordError::MessageCrcMismatch {
            offset,
            expected,
            actual,
        });
    }
    let magic = body.i8("message magic")?;
    if !(0..=1).contains(&magic) {
        return Err(RecordError::UnsupportedMagic(magic));
    }
    let attributes = body.i8("message attributes")?;
    let timestamp = if magic == 1 {
        body.i64("message timestamp")?
    } else {
        NO_TIMESTAMP
    };
    let key = read_nullable(&mut body, "message key")?;
    let value = read_nullable(&mut body, "message value")?;
    if body.remaining() != 0 {
        return Err(RecordError::RecordLengthMismatch {
            declared: size,
            actual: body.position(),
        });
    }
    Ok(RawMessage {
        offset,
        magic,
        attributes,
        timestamp,
        key,
        value,
    })
}

/// Expand a top-level message into an [`Entry`].
fn expand(message: &RawMessage<'_>) -> Result<Entry, RecordError> {
    let codec = message.codec()?;
    if codec == Compression::None {
        return Ok(Entry::Plain(message.to_message(message.offset)));
    }
    let wrapper_offset = message.offset;
    let compressed = message
        .value
        .ok_or(RecordError::NullWrapperValue(wrapper_offset))?;
    let inner_bytes = decompress(codec, compressed)?;
    let mut reader = Reader::new(&inner_bytes);
    let mut inner = Vec::new();
    while reader.remaining() != 0 {
        let raw = read_message(&mut reader)?;
        if raw.codec()? != Compression::None {
            return Err(RecordError::NestedCompression(wrapper_offset));
        }
        inner.push(raw);
    }
    let last_inner_offset = inner
        .last()
        .ok_or(RecordError::EmptyWrapper(wrapper_offset))?
        .offset;
    let timestamp_type = message.timestamp_type();
    let messages = inner
        .iter()
        .map(|raw| {
            // Wrapping: offsets are untrusted and must not overflow-panic.
            let offset = if message.magic >= 1 {
                wrapper_offset
                    .wrapping_sub(last_inner_offset)
                    .wrapping_add(raw.offset)
            } else {
                raw.offset
            };
            let mut out = raw.to_message(offset);
            // A LogAppendTime wrapper's timestamp stands for all its messages.
            if timestamp_type == TimestampType::LogAppendTime {
                out.timestamp = message.timestamp;
                out.timestamp_type = timestamp_type;
            }
            out
        })
        .collect();
    Ok(Entry::Wrapper {
        codec,
        timestamp_type,
        messages,
    })
}

/// Visit every top-level entry of a complete message set, one at a time so
/// that at most one wrapper is decompressed in memory at once.
fn for_each_entry(
    input: &[u8],
    mut visit: impl FnMut(Entry) -> Result<(), RecordError>,
) -> Result<(), RecordError> {
    let mut reader = Reader::new(input);
    while reader.remaining() != 0 {
        let message = read_message(&mut reader)?;
        visit(expand(&message)?)?;
    }
    Ok(())
}

/// Decode a complete magic-0/1 message set, unwrapping compressed wrappers,
/// into messages with absolute offsets. Every CRC is checked and a trailing
/// partial message is an error.
pub fn parse_message_set(input: &[u8]) -> Result<Vec<LegacyMessage>, RecordError> {
    let mut out = Vec::new();
    for_each_entry(input, |entry| {
        match entry {
            Entry::Plain(message) => out.push(message),
            Entry::Wrapper { messages, .. } => out.extend(messages),
        }
        Ok(())
    })?;
    Ok(out)
}

fn append_all(builder: &mut BatchBuilder, messages: Vec<LegacyMessage>) -> Result<(), RecordError> {
    for message in messages {
        builder.append(message.timestamp, message.key, message.value, Vec::new())?;
    }
    Ok(())
}

/// Convert a Produce v0–v2 message set into magic-2 batches for the log, in
/// order: each run of uncompressed messages becomes one uncompressed batch
/// and each compressed wrapper one batch of the same codec. Batches have base
/// offset 0, no producer id/epoch/sequence and no leader epoch, for the broker
/// to fill in as for any produced batch. An empty input gives no batches.
pub fn message_set_to_batches(input: &[u8]) -> Result<Vec<Vec<u8>>, RecordError> {
    let mut batches = Vec::new();
    // Uncompressed messages are create-time whatever their attribute bit says:
    // producers never set it, and a LogAppendTime topic restamps them anyway.
    let mut plain: Option<BatchBuilder> = None;
    for_each_entry(input, |entry| {
        match entry {
            Entry::Plain(message) => {
                let builder = plain.get_or_insert_with(|| BatchBuilder::new(Compression::None));
                append_all(builder, vec![message])?;
            }
            Entry::Wrapper {
                codec,
                timestamp_type,
                messages,
            } => {
                if let Some(run) = plain.take() {
                    batches.push(run.build()?);
                }
                let mut builder = BatchBuilder::new(codec).timestamp_type(timestamp_type);
                append_all(&mut builder, messages)?;
                batches.push(builder.build()?);
            }
        }
        Ok(())
    })?;
    if let Some(run) = plain {
        batches.push(run.build()?);
    }
    Ok(batches)
}

/// Append one message in `magic` format.
fn write_message(
    out: &mut Vec<u8>,
    offset: i64,
    magic: i8,
    attributes: i8,
    timestamp: i64,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
) -> Result<(), RecordError> {
    let start = out.len();
    out.put_i64(offset);
    out.put_i32(0); // size, filled in below
    out.put_u32(0); // crc, filled in below
    out.put_i8(magic);
    out.put_i8(attributes);
    if magic >= 1 {
        out.put_i64(timestamp);
    }
    for (field, what) in [(key, "message key"), (value, "message value")] {
        match field {
            None => out.put_i32(-1),
            Some(bytes) => {
                let len = i32::try_from(bytes.len()).map_err(|_| RecordError::InvalidLength {
                    what,
                    length: bytes.len() as i64,
                })?;
                out.put_i32(len);
                out.extend_from_slice(bytes);
            }
        }
    }
    let size = out.len() - start - LOG_OVERHEAD;
    let size = i32::try_from(size).map_err(|_| RecordError::InvalidLength {
        what: "message",
        length: size as i64,
    })?;
    out[start + 8..start + 12].copy_from_slice(&size.to_be_bytes());
    let crc = crc32fast::hash(&out[start + 16..]);
    out[start + 12..start + 16].copy_from_slice(&crc.to_be_bytes());
    Ok(())
}

fn check_legacy_magic(magic: i8) -> Result<(), RecordError> {
    if (0..=1).contains(&magic) {
        Ok(())
    } else {
        Err(RecordError::UnsupportedMagic(magic))
    }
}

fn log_append_bit(magic: i8, timestamp_type: TimestampType) -> i8 {
    if magic >= 1 && timestamp_type == TimestampType::LogAppendTime {
        ATTR_LOG_APPEND_TIME
    } else {
        0
    }
}

/// Write `messages` as a magic-0/1 message set at their given offsets, as an
/// old client or broker would: uncompressed, or as one compressed wrapper
/// (zstd is not allowed). A wrapper takes the timestamp type of the first
/// message and the largest timestamp; magic 0 drops timestamps.
pub fn build_legacy_message_set(
    magic: i8,
    compression: Compression,
    messages: &[LegacyMessage],
) -> Result<Vec<u8>, RecordError> {
    check_legacy_magic(magic)?;
    let mut out = Vec::new();
    if compression == Compression::None {
        for m in messages {
            let attributes = log_append_bit(magic, m.timestamp_type);
            write_message(
                &mut out,
                m.offset,
                magic,
                attributes,
                m.timestamp,
                m.key.as_deref(),
                m.value.as_deref(),
            )?;
        }
        return Ok(out);
    }
    if compression == Compression::Zstd {
        return Err(RecordError::UnsupportedCompression(compression));
    }
    let (first, last) = match (messages.first(), messages.last()) {
        (Some(first), Some(last)) => (first, last),
        _ => return Err(RecordError::EmptyBatch),
    };
    let mut inner = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let offset = if magic >= 1 { i as i64 } else { m.offset };
        write_message(
            &mut inner,
            offset,
            magic,
            0,
            m.timestamp,
            m.key.as_deref(),
            m.value.as_deref(),
        )?;
    }
    let attributes = compression.id() as i8 | log_append_bit(magic, first.timestamp_type);
    let timestamp = messages
        .iter()
        .map(|m| m.timestamp)
        .max()
        .unwrap_or(NO_TIMESTAMP);
    let value = compress(compression, &inner)?;
    write_message(
        &mut out,
        last.offset,
        magic,
        attributes,
        timestamp,
        None,
        Some(&value),
    )?;
    Ok(out)
}

/// Down-convert log data (concatenated batches) to a magic-`magic` message set
/// for Fetch v0–v3: one uncompressed message per record at its absolute
/// offset, control batches and record headers dropped. Legacy messages already
/// in the log pass through unchanged. A trailing batch cut short by the fetch
/// size limit is silently left out, as Kafka does.
pub fn batches_to_message_set(input: &[u8], magic: i8) -> Result<Vec<u8>, RecordError> {
    check_legacy_magic(magic)?;
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while rest.len() >= LOG_OVERHEAD {
        let length = i32::from_be_bytes([rest[8], rest[9], rest[10], rest[11]]);
        if length < MIN_MESSAGE_SIZE_V0 {
            return Err(RecordError::InvalidLength {
                what: "batch",
                length: length as i64,
            });
        }
        let size = LOG_OVERHEAD + length as usize;
        if size > rest.len() {
            break;
        }
        let (entry, tail) = rest.split_at(size);
        rest = tail;
        match entry[16] as i8 {
            0 | 1 => out.extend_from_slice(entry),
            2 => down_convert_batch(&BatchView::parse(entry)?, magic, &mut out)?,
            other => return Err(RecordError::UnsupportedMagic(other)),
        }
    }
    Ok(out)
}

fn down_convert_batch(
    batch: &BatchView<'_>,
    magic: i8,
    out: &mut Vec<u8>,
) -> Result<(), RecordError> {
    if batch.is_control() {
        return Ok(());
    }
    let timestamp_type = if batch.is_log_append_time() {
        TimestampType::LogAppendTime
    } else {
        TimestampType::CreateTime
    };
    for record in decode_records(batch)? {
        // Under LogAppendTime, the batch max timestamp is every record's.
        let timestamp = match timestamp_type {
            TimestampType::LogAppendTime => batch.max_timestamp(),
            TimestampType::CreateTime => {
                batch.base_timestamp().wrapping_add(record.timestamp_delta)
            }
        };
        let offset = batch.base_offset().wrapping_add(record.offset_delta as i64);
        let attributes = log_append_bit(magic, timestamp_type);
        write_message(
            out,
            offset,
            magic,
            attributes,
            timestamp,
            record.key.as_deref(),
            record.value.as_deref(),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
