//! Broker errors: "this request failed" is a `KafkaError` with Kafka's code; "this node
//! cannot go on" (the data dir is unusable) is `Fatal`.

use kavka_log::LogError;
use kavka_model::{ErrorCode, KafkaError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("broker cannot start: {0}")]
    Fatal(String),
}

/// The Kafka error a client sees for a log error.
pub(crate) fn kafka_error(e: LogError) -> KafkaError {
    let code = match &e {
        LogError::InvalidBatch(kavka_record::RecordError::UnsupportedMagic(_)) => {
            ErrorCode::UnsupportedForMessageFormat
        }
        LogError::InvalidBatch(kavka_record::RecordError::RecordCountMismatch { .. }) => {
            ErrorCode::InvalidRecord
        }
        LogError::InvalidBatch(_) | LogError::EmptyAppend => ErrorCode::CorruptMessage,
        LogError::BatchTooLarge { .. } => ErrorCode::MessageTooLarge,
        LogError::OffsetOutOfRange { .. } => ErrorCode::OffsetOutOfRange,
        LogError::NonContiguous { .. } => ErrorCode::InvalidRecord,
        LogError::OutOfOrderSequence { .. } => ErrorCode::OutOfOrderSequenceNumber,
        LogError::InvalidProducerEpoch { .. } => ErrorCode::InvalidProducerEpoch,
        LogError::TransactionalBatch { .. } => ErrorCode::InvalidRecord,
        LogError::Io { .. } | LogError::Corrupt { .. } => ErrorCode::KafkaStorageError,
    };
    KafkaError::new(code, e.to_string())
}
