//! Kafka's RecordBatch v2 (magic 2): the format records travel and rest in, from producer
//! to disk to follower to consumer.
//!
//! - [`RecordBatch`] is the decoded form: header fields plus records; `encode` writes the
//!   exact bytes Kafka writes (CRC32C over attributes..end, varint records, compressed
//!   records section when a codec is set).
//! - [`BatchHeader`] reads the fixed 61-byte header of raw bytes without touching the
//!   records, and the `set_*` functions rewrite the fields a broker owns (base offset,
//!   partition leader epoch, log-append time) in place.
//!
//! - [`BatchRecords`] walks a batch's records in place, one [`RecordView`] at a time;
//!   [`validate`] is Kafka's `LogValidator` on top of it, and [`CheckedBatches`] carries
//!   its answer to the log, so that a leader checks each batch's CRC once.
//!
//! Invariants: decoding never panics on any input and never allocates more than
//! [`DECOMPRESSED_BYTES_MAX`] for one batch; every decoded batch passed its CRC check.

mod batch;
mod checked;
mod compression;
mod error;
mod header;
mod validate;
mod varint;
mod view;

pub use batch::{Header, Record, RecordBatch};
pub use checked::CheckedBatches;
pub use compression::{Compression, DECOMPRESSED_BYTES_MAX};
pub use error::RecordError;
pub use header::{
    BATCH_OVERHEAD, BatchHeader, MAGIC, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE, TimestampType, batches, set_base_offset, set_log_append_time,
    set_max_timestamp, set_partition_leader_epoch,
};
pub use validate::{
    Checked, Invalid, Origin, PROBLEMS_LISTED_MAX, RecordProblem, Rules, TimestampWindow, validate,
};
pub use view::{BatchRecords, RecordIter, RecordView};
