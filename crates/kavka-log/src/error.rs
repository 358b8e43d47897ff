//! Errors from the partition log. `Io` and `Corrupt` name the file involved.

use kavka_model::Offset;
use kavka_record::RecordError;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("corrupt segment {path} at byte {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] RecordError),
    #[error("batch of {size} bytes exceeds the maximum of {max} (max.message.bytes)")]
    BatchTooLarge { size: usize, max: usize },
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        offset: Offset,
        log_start: Offset,
        log_end: Offset,
    },
    #[error("follower batch starts at offset {got}, expected {expected} (the log end)")]
    NonContiguous { expected: Offset, got: Offset },
    #[error("no batches in the append")]
    EmptyAppend,
    #[error("producer {producer_id}: out of order sequence number {got}, expected {expected}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    #[error("producer {producer_id}: epoch {got} is older than the current epoch {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    #[error("producer {producer_id}: transactional batches are not supported")]
    TransactionalBatch { producer_id: i64 },
}

pub(crate) trait IoContext<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T, LogError> {
        self.map_err(|source| LogError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}
