//! The one error type of the record-format module.

use super::batch_header::{BatchError, Compression};

/// Why a batch, record or legacy message set could not be read or written.
///
/// It is `Clone + Eq` (I/O errors from codecs are kept as text) so callers can
/// store it and tests can compare it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("unexpected end of input reading {what}")]
    Truncated { what: &'static str },
    #[error("varint longer than {max_bytes} bytes or out of range")]
    VarintOverflow { max_bytes: usize },
    #[error("invalid length {length} for {what}")]
    InvalidLength { what: &'static str, length: i64 },
    #[error("batch header says {expected} records, found {actual}")]
    RecordCountMismatch { expected: i32, actual: usize },
    #[error("record length {declared} disagrees with its fields ({actual} bytes)")]
    RecordLengthMismatch { declared: i32, actual: usize },
    #[error("{0} bytes left over after the last record")]
    TrailingBytes(usize),
    #[error("{codec:?} compression failed: {reason}")]
    Compress { codec: Compression, reason: String },
    #[error("{codec:?} decompression failed: {reason}")]
    Decompress { codec: Compression, reason: String },
    #[error("decompressed data exceeds the {limit}-byte limit")]
    DecompressedTooLarge { limit: usize },
    #[error("compression codec {0:?} is not allowed here")]
    UnsupportedCompression(Compression),
    #[error("unknown compression codec id {0}")]
    UnknownCompression(i8),
    #[error("unsupported message magic {0}")]
    UnsupportedMagic(i8),
    #[error(
        "message CRC mismatch at offset {offset}: stored {expected:#010x}, computed {actual:#010x}"
    )]
    MessageCrcMismatch {
        offset: i64,
        expected: u32,
        actual: u32,
    },
    #[error("compressed wrapper message at offset {0} has no value")]
    NullWrapperValue(i64),
    #[error("compressed wrapper message at offset {0} holds no messages")]
    EmptyWrapper(i64),
    #[error("compressed message nested inside a compressed wrapper at offset {0}")]
    NestedCompression(i64),
    #[error("a batch needs at least one record")]
    EmptyBatch,
    #[error("too many records for one batch: {0}")]
    TooManyRecords(usize),
}
