//! Errors of the log, each of which the broker maps to one Kafka error code.

use crate::record::BatchError;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("offset {offset} is outside [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    #[error("corrupt batch: {0}")]
    Corrupt(#[from] BatchError),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("records must be in record batch format v2 here")]
    UnsupportedFormat,
    #[error("producer epoch is older than the current one")]
    InvalidProducerEpoch,
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
    /// A batch that does not fit the producer's transaction (Kafka's
    /// INVALID_TXN_STATE), e.g. a non-transactional one while its
    /// transaction is open.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// A transaction marker from an older coordinator than the producer's
    /// last one (Kafka's TRANSACTION_COORDINATOR_FENCED).
    #[error(
        "coordinator epoch {coordinator_epoch} of the marker for producer {producer_id} is \
         older than its current one {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
    #[error("invalid records: {0}")]
    InvalidRecord(String),
    /// Records refused one by one (KIP-467, Kafka's
    /// `RecordValidationException`): the whole batch is refused, and the
    /// answer names each bad record by its index in its batch.
    #[error("{}", record_errors_message(.errors, *.invalid_timestamp))]
    RecordErrors {
        /// (index of the record in its batch, why), in record order.
        errors: Vec<(i32, String)>,
        /// One of them is a timestamp out of range: INVALID_TIMESTAMP,
        /// else INVALID_RECORD.
        invalid_timestamp: bool,
    },
    #[error("storage error: {0}")]
    Storage(String),
    /// The device (or a quota) is full: ENOSPC or EDQUOT.
    #[error("no space left on the device: {0}")]
    NoSpace(String),
    /// The offset lies in a damaged range of a segment (Kafka's
    /// CORRUPT_MESSAGE): not retriable, the consumer must seek past it.
    #[error("damaged log: {0}")]
    Damaged(String),
    #[error("partition log is closed")]
    Closed,
}

/// The partition's error message, Kafka 4.4.0's text (LogValidator).
fn record_errors_message(errors: &[(i32, String)], invalid_timestamp: bool) -> String {
    if invalid_timestamp {
        return "One or more records have been rejected due to invalid timestamp".into();
    }
    let first: Vec<String> = errors
        .iter()
        .take(3)
        .map(|(index, message)| format!("RecordError(batchIndex={index}, message='{message}')"))
        .collect();
    format!(
        "One or more records have been rejected due to {} record errors in total, \
         and only showing the first three errors at most: [{}]",
        errors.len(),
        first.join(", ")
    )
}

fn out_of_space(code: Option<i32>) -> bool {
    matches!(code, Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl From<std::io::Error> for LogError {
    fn from(e: std::io::Error) -> Self {
        if out_of_space(e.raw_os_error()) {
            LogError::NoSpace(e.to_string())
        } else {
            LogError::Storage(e.to_string())
        }
    }
}

impl From<glommio::GlommioError<()>> for LogError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        if out_of_space(e.raw_os_error()) {
            LogError::NoSpace(e.to_string())
        } else {
            LogError::Storage(e.to_string())
        }
    }
}

impl LogError {
    /// A failure of the storage itself (the partition goes offline), as
    /// opposed to a refused request.
    pub fn is_storage(&self) -> bool {
        matches!(self, LogError::Storage(_) | LogError::NoSpace(_))
    }
}
