//! The fixed 61-byte RecordBatch v2 header, read from and rewritten in raw bytes.
//!
//! ```text
//! 0  baseOffset int64         | not covered by the CRC
//! 8  batchLength int32        |
//! 12 partitionLeaderEpoch i32 |
//! 16 magic int8               |
//! 17 crc uint32 (CRC32C of bytes 21..end)
//! 21 attributes int16   23 lastOffsetDelta int32   27 baseTimestamp int64
//! 35 maxTimestamp int64 43 producerId int64        51 producerEpoch int16
//! 53 baseSequence int32 57 recordCount int32       61 records...
//! ```

use crate::compression::Compression;
use crate::error::RecordError;

pub const MAGIC: i8 = 2;
/// Bytes before the records: the whole fixed header.
pub const BATCH_OVERHEAD: usize = 61;
/// `batchLength` counts from the leader epoch on: the whole batch is `LOG_OVERHEAD + length`.
const LOG_OVERHEAD: usize = 12;
pub(crate) const CRC_START: usize = 21;
pub const NO_PRODUCER_ID: i64 = -1;
pub const NO_PRODUCER_EPOCH: i16 = -1;
pub const NO_SEQUENCE: i32 = -1;
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;

pub(crate) const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// A batch's header fields, read without decoding the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

impl BatchHeader {
    /// Reads the header at the start of `buf` and checks the magic and the length; the
    /// records and CRC are not checked here (see [`BatchHeader::verify_crc`]).
    pub fn parse(buf: &[u8]) -> Result<Self, RecordError> {
        if buf.len() < LOG_OVERHEAD + 5 {
            return Err(RecordError::Truncated {
                needed: BATCH_OVERHEAD,
                available: buf.len(),
            });
        }
        let magic = buf[16] as i8;
        if magic != MAGIC {
            return Err(RecordError::UnsupportedMagic(magic));
        }
        if buf.len() < BATCH_OVERHEAD {
            return Err(RecordError::Truncated {
                needed: BATCH_OVERHEAD,
                available: buf.len(),
            });
        }
        let batch_length = i32::from_be_bytes(be(buf, 8));
        if (batch_length as i64) < (BATCH_OVERHEAD - LOG_OVERHEAD) as i64 {
            return Err(RecordError::InvalidLength(batch_length));
        }
        Ok(Self {
            base_offset: i64::from_be_bytes(be(buf, 0)),
            batch_length,
            partition_leader_epoch: i32::from_be_bytes(be(buf, 12)),
            magic,
            crc: u32::from_be_bytes(be(buf, 17)),
            attributes: i16::from_be_bytes(be(buf, 21)),
            last_offset_delta: i32::from_be_bytes(be(buf, 23)),
            base_timestamp: i64::from_be_bytes(be(buf, 27)),
            max_timestamp: i64::from_be_bytes(be(buf, 35)),
            producer_id: i64::from_be_bytes(be(buf, 43)),
            producer_epoch: i16::from_be_bytes(be(buf, 51)),
            base_sequence: i32::from_be_bytes(be(buf, 53)),
            record_count: i32::from_be_bytes(be(buf, 57)),
        })
    }

    /// The whole batch's size in bytes.
    pub fn size(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    pub fn compression(&self) -> Result<Compression, RecordError> {
        Compression::from_id((self.attributes & COMPRESSION_MASK) as u8)
    }

    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_BIT != 0
    }

    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_BIT != 0
    }

    /// Checks that `buf` holds the whole batch and that its CRC32C matches.
    pub fn verify_crc(&self, buf: &[u8]) -> Result<(), RecordError> {
        let size = self.size();
        if buf.len() < size {
            return Err(RecordError::Truncated {
                needed: size,
                available: buf.len(),
            });
        }
        let computed = crc32c::crc32c(&buf[CRC_START..size]);
        if computed != self.crc {
            return Err(RecordError::CrcMismatch {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }
}

pub(crate) fn attributes(
    compression: Compression,
    timestamp_type: TimestampType,
    transactional: bool,
    control: bool,
) -> i16 {
    let mut a = compression.id() as i16;
    if timestamp_type == TimestampType::LogAppendTime {
        a |= TIMESTAMP_TYPE_BIT;
    }
    if transactional {
        a |= TRANSACTIONAL_BIT;
    }
    if control {
        a |= CONTROL_BIT;
    }
    a
}

/// Splits a buffer of concatenated batches into `(header, batch bytes)`. Stops with an
/// error at the first batch whose header is bad or which is cut short; CRCs are not checked.
pub fn batches(buf: &[u8]) -> impl Iterator<Item = Result<(BatchHeader, &[u8]), RecordError>> {
    let mut rest = buf;
    let mut failed = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || failed {
            return None;
        }
        let item = BatchHeader::parse(rest).and_then(|h| {
            let size = h.size();
            if rest.len() < size {
                return Err(RecordError::Truncated {
                    needed: size,
                    available: rest.len(),
                });
            }
            let (batch, tail) = rest.split_at(size);
            rest = tail;
            Ok((h, batch))
        });
        failed = item.is_err();
        Some(item)
    })
}

/// Sets the base offset; outside the CRC, so nothing else changes.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Sets the partition leader epoch; outside the CRC, so nothing else changes.
pub fn set_partition_leader_epoch(batch: &mut [u8], epoch: i32) {
    batch[12..16].copy_from_slice(&epoch.to_be_bytes());
}

/// Marks the batch `LogAppendTime` with `timestamp` as its max timestamp, as a broker with
/// `message.timestamp.type=LogAppendTime` does, and recomputes the CRC.
pub fn set_log_append_time(batch: &mut [u8], timestamp: i64) {
    let attrs = i16::from_be_bytes(be(batch, 21)) | TIMESTAMP_TYPE_BIT;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// Sets the max timestamp (to the largest record timestamp, as Kafka's validator does when
/// a producer's header disagrees) and recomputes the CRC.
pub fn set_max_timestamp(batch: &mut [u8], timestamp: i64) {
    batch[35..43].copy_from_slice(&timestamp.to_be_bytes());
    let crc = crc32c::crc32c(&batch[CRC_START..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}
