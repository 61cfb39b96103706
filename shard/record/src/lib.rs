//! Kafka record formats: the magic-2 record batch (header view, records,
//! builder), its compression codecs, and conversion to and from the legacy
//! magic-0/1 message sets that Produce v0–v2 and Fetch v0–v3 carry.

pub mod batch_header;
pub use batch_header::*;

pub mod compression;
pub mod control;
mod error;
pub mod legacy;
mod reader;
pub mod records;
mod template;
pub mod varint;
mod visit;

pub use compression::{
    compress, compress_with_level, decompress, decompress_with_limit, MAX_DECOMPRESSED_SIZE,
};
pub use control::{
    build_txn_marker_batch, parse_txn_marker, ControlRecordType, EndTxnMarker, TxnResult,
};
pub use error::RecordError;
pub use legacy::{
    batches_to_message_set, build_legacy_message_set, message_set_to_batches, parse_message_set,
    LegacyMessage,
};
pub use records::{
    decode_records, recompress_batch, BatchBuilder, Record, RecordHeader, TimestampType,
};
pub use template::BatchTemplate;
pub use visit::{for_each_batch, for_each_record, RecordRef};

/// Now as a Kafka timestamp: milliseconds since the Unix epoch (0 if the
/// system clock is set before it). The wall clock of every record, group
/// and retention decision made without an injected `shard::time::Clock`.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
