//! A read-only view over the fixed 61-byte header of a Kafka record batch
//! (magic 2), plus the two in-place patches the broker is allowed to make.
//!
//! The produce path never decodes records: it checks this header and the
//! CRC32C, then rewrites `base_offset` and `partition_leader_epoch`, both of
//! which lie *before* the CRC'd region, so the client's CRC stays valid.

/// Size of the fixed header of a magic-2 record batch.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the `batch_length` field counts from (base offset + length).
pub const LOG_OVERHEAD: usize = 12;
/// First byte covered by the batch CRC32C (the attributes field).
pub(crate) const CRC_START: usize = 21;

pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_SEQUENCE: i32 = -1;
pub const NO_TIMESTAMP: i64 = -1;

/// Compression codec in bits 0..=2 of the batch attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    /// Every codec, in id order.
    pub const ALL: [Compression; 5] = [Self::None, Self::Gzip, Self::Snappy, Self::Lz4, Self::Zstd];

    pub fn from_attributes(attributes: i16) -> Option<Self> {
        match attributes & 0x7 {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    /// Kafka's name of the codec (`compression.type` of a producer).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Gzip => "gzip",
            Self::Snappy => "snappy",
            Self::Lz4 => "lz4",
            Self::Zstd => "zstd",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn id(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }
}

/// Why a byte range is not an acceptable record batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    #[error("CRC32C mismatch: header says {expected:#010x}, computed {actual:#010x}")]
    CrcMismatch { expected: u32, actual: u32 },
    #[error("unknown compression codec in attributes {0:#x}")]
    UnknownCompression(i16),
    #[error("negative last offset delta {0}")]
    InvalidOffsetDelta(i32),
    #[error("invalid record count {0}")]
    InvalidRecordCount(i32),
}

/// Borrowed view over one complete magic-2 batch (header and records).
#[derive(Clone, Copy)]
pub struct BatchView<'a> {
    bytes: &'a [u8],
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Total size on the wire of the batch starting at `buf[0]`, read from its
/// length field, or `None` if fewer than 12 bytes are present.
pub fn peek_batch_size(buf: &[u8]) -> Option<Result<usize, BatchError>> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    let len = be_i32(buf, 8);
    // The smallest legal batch still holds the rest of the fixed header.
    if len < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
        return Some(Err(BatchError::InvalidLength(len)));
    }
    Some(Ok(LOG_OVERHEAD + len as usize))
}

/// The magic byte of the batch or message at `buf[0]` (offset 16 for every
/// format: v0/v1 messages put it after offset, size and CRC, v2 after the
/// leader epoch).
pub fn peek_magic(buf: &[u8]) -> Option<i8> {
    buf.get(16).map(|m| *m as i8)
}

impl<'a> BatchView<'a> {
    /// Parse the header of the batch at the start of `buf` and check its
    /// structure (not the CRC: see [`BatchView::verify_crc`]). `buf` may hold
    /// more bytes after the batch; the view covers exactly one batch.
    pub fn parse(buf: &'a [u8]) -> Result<Self, BatchError> {
        let size = match peek_batch_size(buf) {
            None => {
                return Err(BatchError::Truncated {
                    needed: LOG_OVERHEAD,
                    available: buf.len(),
                })
            }
            Some(size) => size?,
        };
        if buf.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Truncated {
                needed: BATCH_HEADER_LEN,
                available: buf.len(),
            });
        }
        let magic = buf[16] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < size {
            return Err(BatchError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let view = Self {
            bytes: &buf[..size],
        };
        if Compression::from_attributes(view.attributes()).is_none() {
            return Err(BatchError::UnknownCompression(view.attributes()));
        }
        if view.last_offset_delta() < 0 {
            return Err(BatchError::InvalidOffsetDelta(view.last_offset_delta()));
        }
        if view.record_count() < 0 {
            return Err(BatchError::InvalidRecordCount(view.record_count()));
        }
        Ok(view)
    }

    /// Parse and verify the CRC in one go: what the produce path and
    /// recovery both need.
    pub fn parse_verified(buf: &'a [u8]) -> Result<Self, BatchError> {
        let view = Self::parse(buf)?;
        view.verify_crc()?;
        Ok(view)
    }

    pub fn verify_crc(&self) -> Result<(), BatchError> {
        let expected = self.crc();
        let actual = crc32c::crc32c(&self.bytes[CRC_START..]);
        if expected != actual {
            return Err(BatchError::CrcMismatch { expected, actual });
        }
        Ok(())
    }

    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }
    pub fn size(&self) -> usize {
        self.bytes.len()
    }
    pub fn base_offset(&self) -> i64 {
        be_i64(self.bytes, 0)
    }
    pub fn partition_leader_epoch(&self) -> i32 {
        be_i32(self.bytes, 12)
    }
    pub fn crc(&self) -> u32 {
        be_i32(self.bytes, 17) as u32
    }
    pub fn attributes(&self) -> i16 {
        be_i16(self.bytes, 21)
    }
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes()).expect("checked in parse")
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes() & 0x08 != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes() & 0x10 != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes() & 0x20 != 0
    }
    pub fn last_offset_delta(&self) -> i32 {
        be_i32(self.bytes, 23)
    }
    pub fn base_timestamp(&self) -> i64 {
        be_i64(self.bytes, 27)
    }
    pub fn max_timestamp(&self) -> i64 {
        be_i64(self.bytes, 35)
    }
    pub fn producer_id(&self) -> i64 {
        be_i64(self.bytes, 43)
    }
    pub fn producer_epoch(&self) -> i16 {
        be_i16(self.bytes, 51)
    }
    pub fn base_sequence(&self) -> i32 {
        be_i32(self.bytes, 53)
    }
    pub fn record_count(&self) -> i32 {
        be_i32(self.bytes, 57)
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset() + self.last_offset_delta() as i64
    }
    /// Sequence number of the last record, wrapping like Kafka does.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence() == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        let last = self.base_sequence() as i64 + self.last_offset_delta() as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// Rewrite the base offset of the batch at `buf[0]`; outside the CRC.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrite the partition leader epoch of the batch at `buf[0]`; outside the CRC.
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Stamp a LogAppendTime batch with the broker's time. Both timestamps and the
/// attributes are inside the CRC, so the CRC is recomputed; this is the one
/// case (topic `message.timestamp.type=LogAppendTime`) where Kafka does too.
pub fn set_log_append_time(buf: &mut [u8], now_ms: i64) {
    let attributes = be_i16(buf, 21) | 0x08;
    buf[21..23].copy_from_slice(&attributes.to_be_bytes());
    buf[27..35].copy_from_slice(&now_ms.to_be_bytes());
    buf[35..43].copy_from_slice(&now_ms.to_be_bytes());
    update_crc(buf);
}

/// Recompute the CRC32C of the batch at `buf[0]` (attributes to the end)
/// after a change inside it.
pub fn update_crc(buf: &mut [u8]) {
    let crc = crc32c::crc32c(&buf[CRC_START..]);
    buf[17..21].copy_from_slice(&crc.to_be_bytes());
}
