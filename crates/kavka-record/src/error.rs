//! The codec's one error type: each variant names what in the bytes was wrong.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("batch truncated: need {needed} bytes, have {available}")]
    Truncated { needed: usize, available: usize },
    #[error("unsupported magic {0}: only RecordBatch v2 (magic 2) is supported")]
    UnsupportedMagic(i8),
    #[error("batch CRC mismatch: header says {stored:#010x}, data has {computed:#010x}")]
    CrcMismatch { stored: u32, computed: u32 },
    #[error("invalid batch length {0}")]
    InvalidLength(i32),
    #[error("unknown compression codec {0}")]
    UnknownCompression(u8),
    #[error("{codec} decompression failed: {reason}")]
    Decompress { codec: &'static str, reason: String },
    #[error("{codec} compression failed: {reason}")]
    Compress { codec: &'static str, reason: String },
    #[error("decompressed records exceed {limit} bytes")]
    DecompressedTooLarge { limit: usize },
    #[error("malformed record {index}: {reason}")]
    MalformedRecord { index: usize, reason: String },
    #[error("batch declares {declared} records but holds {actual}")]
    RecordCountMismatch { declared: i32, actual: usize },
    #[error("batch declares last offset delta {declared} but its records end at {actual}")]
    OffsetDeltaMismatch { declared: i32, actual: i32 },
}
