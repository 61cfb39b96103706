//! Mapping internal errors to the Kafka error codes clients expect.

use kafka_protocol::ResponseError;
use shard::log::LogError;

pub fn log_error_code(e: &LogError) -> i16 {
    let err = match e {
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Corrupt(_) => ResponseError::CorruptMessage,
        LogError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::UnsupportedFormat => ResponseError::UnsupportedForMessageFormat,
        LogError::InvalidProducerEpoch => ResponseError::InvalidProducerEpoch,
        LogError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        LogError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        LogError::TransactionCoordinatorFenced { .. } => {
            ResponseError::TransactionCoordinatorFenced
        }
        LogError::InvalidRecord(_) => ResponseError::InvalidRecord,
        LogError::RecordErrors {
            invalid_timestamp: true,
            ..
        } => ResponseError::InvalidTimestamp,
        LogError::RecordErrors { .. } => ResponseError::InvalidRecord,
        LogError::Storage(_) | LogError::NoSpace(_) => ResponseError::KafkaStorageError,
        // What Kafka answers for a corrupt batch it finds in a fetched range.
        LogError::Damaged(_) => ResponseError::CorruptMessage,
        LogError::Closed => ResponseError::NotLeaderOrFollower,
    };
    err.code()
}
