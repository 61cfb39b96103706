//! Control batches: the transaction markers (Kafka's `EndTransactionMarker`
//! and `ControlRecordType`) a transaction coordinator has each partition
//! leader write when a transaction commits or aborts.
//!
//! A marker is a magic-2 batch with the transactional (0x10) and control
//! (0x20) attributes, the producer's id and epoch, base sequence -1, and one
//! record: key `[version i16 = 0][type i16]` (0 = ABORT, 1 = COMMIT) and
//! value `[version i16 = 0][coordinator_epoch i32]`, no headers. Kafka
//! writes it uncompressed with create time, base and max timestamp the
//! marker's time; the bytes built here equal those of Kafka 4.4's
//! `MemoryRecords.withEndTransactionMarker` (tested below).

use bytes::Bytes;

use super::batch_header::{BatchView, Compression, NO_SEQUENCE};
use super::error::RecordError;
use super::records::{decode_records, BatchBuilder};

/// Version of the control record key Kafka writes (and of the marker value).
const CONTROL_KEY_VERSION: i16 = 0;
const END_TXN_MARKER_VALUE_VERSION: i16 = 0;
/// Kafka's sizes: a key or value shorter than these is invalid.
const CONTROL_KEY_SIZE: usize = 4;
const END_TXN_MARKER_VALUE_SIZE: usize = 6;

/// The type in a control record's key (Kafka's `ControlRecordType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRecordType {
    Abort,
    Commit,
    /// Any other type (KRaft's leader change, snapshot headers, ...):
    /// Kafka ignores control records it does not know.
    Other(i16),
}

impl ControlRecordType {
    pub fn id(self) -> i16 {
        match self {
            Self::Abort => 0,
            Self::Commit => 1,
            Self::Other(id) => id,
        }
    }

    pub fn from_id(id: i16) -> Self {
        match id {
            0 => Self::Abort,
            1 => Self::Commit,
            other => Self::Other(other),
        }
    }
}

/// Commit or abort: which end of a transaction a marker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnResult {
    Abort,
    Commit,
}

impl TxnResult {
    pub fn control_type(self) -> ControlRecordType {
        match self {
            Self::Abort => ControlRecordType::Abort,
            Self::Commit => ControlRecordType::Commit,
        }
    }
}

/// What a transaction marker says (Kafka's `EndTransactionMarker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTxnMarker {
    pub result: TxnResult,
    /// The epoch of the transaction coordinator that wrote it: a marker
    /// from an older coordinator than the last one seen is a zombie's.
    pub coordinator_epoch: i32,
}

/// The key of a control record of `kind`.
pub fn control_record_key(kind: ControlRecordType) -> [u8; 4] {
    let mut key = [0u8; CONTROL_KEY_SIZE];
    key[..2].copy_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
    key[2..].copy_from_slice(&kind.id().to_be_bytes());
    key
}

/// The control record type in `key` (Kafka's `ControlRecordType.parse`):
/// a newer key version is read as version 0, as Kafka does.
pub fn parse_control_record_key(key: &[u8]) -> Result<ControlRecordType, RecordError> {
    if key.len() < CONTROL_KEY_SIZE {
        return Err(RecordError::InvalidLength {
            what: "control record key",
            length: key.len() as i64,
        });
    }
    let version = i16::from_be_bytes([key[0], key[1]]);
    if version < 0 {
        return Err(RecordError::InvalidLength {
            what: "control record key version",
            length: version as i64,
        });
    }
    Ok(ControlRecordType::from_id(i16::from_be_bytes([
        key[2], key[3],
    ])))
}

/// Build the marker batch Kafka writes for `marker` of producer
/// `producer_id`/`producer_epoch` at `base_offset`, stamped `timestamp`, in
/// leader epoch `leader_epoch` (the leader patches offset and epoch again
/// when it appends, as for any batch).
pub fn build_txn_marker_batch(
    base_offset: i64,
    timestamp: i64,
    leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
) -> Vec<u8> {
    let mut value = [0u8; END_TXN_MARKER_VALUE_SIZE];
    value[..2].copy_from_slice(&END_TXN_MARKER_VALUE_VERSION.to_be_bytes());
    value[2..].copy_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut builder = BatchBuilder::new(Compression::None)
        .base_offset(base_offset)
        .partition_leader_epoch(leader_epoch)
        .transactional(true)
        .control(true)
        .producer(producer_id, producer_epoch, NO_SEQUENCE);
    builder
        .append(
            timestamp,
            Some(Bytes::copy_from_slice(&control_record_key(
                marker.result.control_type(),
            ))),
            Some(Bytes::copy_from_slice(&value)),
            Vec::new(),
        )
        .expect("a marker record is small");
    builder.build().expect("a marker batch has one record")
}

/// The transaction marker a control batch holds: `Ok(None)` for a batch
/// that is not a control batch, for an empty one (Kafka: the transaction
/// was cleaned away) and for a control record of another type (KRaft's).
pub fn parse_txn_marker(batch: &BatchView) -> Result<Option<EndTxnMarker>, RecordError> {
    if !batch.is_control() || batch.record_count() == 0 {
        return Ok(None);
    }
    let records = decode_records(batch)?;
    let Some(first) = records.first() else {
        return Ok(None);
    };
    let key = first.key.as_deref().unwrap_or_default();
    let result = match parse_control_record_key(key)? {
        ControlRecordType::Abort => TxnResult::Abort,
        ControlRecordType::Commit => TxnResult::Commit,
        ControlRecordType::Other(_) => return Ok(None),
    };
    let value = first.value.as_deref().unwrap_or_default();
    if value.len() < END_TXN_MARKER_VALUE_SIZE {
        return Err(RecordError::InvalidLength {
            what: "end transaction marker value",
            length: value.len() as i64,
        });
    }
    let version = i16::from_be_bytes([value[0], value[1]]);
    if version < 0 {
        return Err(RecordError::InvalidLength {
            what: "end transaction marker version",
            length: version as i64,
        });
    }
    // A newer value version is read as version 0 (Kafka does the same).
    let coordinator_epoch = i32::from_be_bytes(value[2..6].try_into().expect("4 bytes"));
    Ok(Some(EndTxnMarker {
        result,
        coordinator_epoch,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Bytes printed by Kafka 4.4.0's clients jar:
    /// `MemoryRecords.withEndTransactionMarker(42L, 1700000000123L, 3, 9001L,
    /// (short) 5, new EndTransactionMarker(ControlRecordType.ABORT, 17))`.
    const KAFKA_ABORT: &str = "000000000000002a0000004200000003025fdf94a4003000000000\
        0000018bcfe5687b0000018bcfe5687b00000000000023290005ffffffff00000001200000000800\
        0000000c00000000001100";
    /// `withEndTransactionMarker(0L, 1700000000123L, -1, 12L, (short) 0,
    /// new EndTransactionMarker(ControlRecordType.COMMIT, 0))`.
    const KAFKA_COMMIT: &str = "000000000000000000000042ffffffff02bdfa86fb003000000000\
        0000018bcfe5687b0000018bcfe5687b000000000000000c0000ffffffff00000001200000000800\
        0000010c00000000000000";

    #[test]
    fn marker_batches_are_byte_for_byte_kafkas() {
        let abort = build_txn_marker_batch(
            42,
            1_700_000_000_123,
            3,
            9001,
            5,
            EndTxnMarker {
                result: TxnResult::Abort,
                coordinator_epoch: 17,
            },
        );
        assert_eq!(abort, unhex(KAFKA_ABORT));
        let commit = build_txn_marker_batch(
            0,
            1_700_000_000_123,
            -1,
            12,
            0,
            EndTxnMarker {
                result: TxnResult::Commit,
                coordinator_epoch: 0,
            },
        );
        assert_eq!(commit, unhex(KAFKA_COMMIT));
    }

    #[test]
    fn kafkas_markers_parse() {
        let bytes = unhex(KAFKA_ABORT);
        let view = BatchView::parse_verified(&bytes).unwrap();
        assert!(view.is_control() && view.is_transactional());
        assert_eq!((view.producer_id(), view.producer_epoch()), (9001, 5));
        assert_eq!(view.base_sequence(), NO_SEQUENCE);
        assert_eq!(
            parse_txn_marker(&view).unwrap(),
            Some(EndTxnMarker {
                result: TxnResult::Abort,
                coordinator_epoch: 17
            })
        );
        let bytes = unhex(KAFKA_COMMIT);
        let view = BatchView::parse_verified(&bytes).unwrap();
        assert_eq!(
            parse_txn_marker(&view).unwrap().map(|m| m.result),
            Some(TxnResult::Commit)
        );
    }

    #[test]
    fn data_batches_and_other_control_types_are_no_markers() {
        let mut b = BatchBuilder::new(Compression::None);
        b.append(1, Some(Bytes::from_static(b"k")), None, Vec::new())
            .unwrap();
        let data = b.build().unwrap();
        assert_eq!(
            parse_txn_marker(&BatchView::parse(&data).unwrap()).unwrap(),
            None
        );
        // A KRaft leader-change record (type 2) is a control record too.
        let mut b = BatchBuilder::new(Compression::None).control(true);
        b.append(
            1,
            Some(Bytes::copy_from_slice(&control_record_key(
                ControlRecordType::Other(2),
            ))),
            Some(Bytes::from_static(b"\0\0")),
            Vec::new(),
        )
        .unwrap();
        let other = b.build().unwrap();
        assert_eq!(
            parse_txn_marker(&BatchView::parse(&other).unwrap()).unwrap(),
            None
        );
    }

    #[test]
    fn short_or_negative_versions_are_refused() {
        let mut b = BatchBuilder::new(Compression::None).control(true);
        b.append(
            1,
            Some(Bytes::from_static(&[0, 0, 0, 1])),
            Some(Bytes::from_static(&[0, 0, 0])),
            Vec::new(),
        )
        .unwrap();
        let short_value = b.build().unwrap();
        assert!(parse_txn_marker(&BatchView::parse(&short_value).unwrap()).is_err());
        let mut b = BatchBuilder::new(Compression::None).control(true);
        b.append(
            1,
            Some(Bytes::from_static(&[0xff, 0xff, 0, 1])),
            None,
            Vec::new(),
        )
        .unwrap();
        let bad_key = b.build().unwrap();
        assert!(parse_txn_marker(&BatchView::parse(&bad_key).unwrap()).is_err());
        // A newer value version is read as version 0, extra bytes ignored.
        let mut b = BatchBuilder::new(Compression::None).control(true);
        b.append(
            1,
            Some(Bytes::from_static(&[0, 0, 0, 1])),
            Some(Bytes::from_static(&[0, 1, 0, 0, 0, 9, 0xaa])),
            Vec::new(),
        )
        .unwrap();
        let newer = b.build().unwrap();
        assert_eq!(
            parse_txn_marker(&BatchView::parse(&newer).unwrap()).unwrap(),
            Some(EndTxnMarker {
                result: TxnResult::Commit,
                coordinator_epoch: 9
            })
        );
    }
}
