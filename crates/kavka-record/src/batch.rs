//! Decoded batches and records, and their exact encoding.

use crate::compression::Compression;
use crate::error::RecordError;
use crate::header::{self, BATCH_OVERHEAD, MAGIC, TimestampType};
use crate::varint::{put_varint, put_varlong, varlong_len};
use crate::view::BatchRecords;
use bytes::Bytes;

/// A record header: a UTF-8 key and a nullable value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// One record, with its offset and timestamp as deltas from the batch's base.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// A whole RecordBatch v2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordBatch {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    pub compression: Compression,
    pub timestamp_type: TimestampType,
    pub is_transactional: bool,
    pub is_control: bool,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records: Vec<Record>,
}

impl RecordBatch {
    /// A non-transactional, non-idempotent batch of `records` at base offset 0, with
    /// offset deltas 0..n and timestamps from each record's `timestamp_delta` from
    /// `base_timestamp` — what a plain producer builds.
    pub fn new(base_timestamp: i64, compression: Compression, records: Vec<Record>) -> Self {
        let max_delta = records.iter().map(|r| r.timestamp_delta).max().unwrap_or(0);
        Self {
            base_offset: 0,
            partition_leader_epoch: header::NO_PARTITION_LEADER_EPOCH,
            compression,
            timestamp_type: TimestampType::CreateTime,
            is_transactional: false,
            is_control: false,
            last_offset_delta: records.len().saturating_sub(1) as i32,
            base_timestamp,
            max_timestamp: base_timestamp + max_delta,
            producer_id: header::NO_PRODUCER_ID,
            producer_epoch: header::NO_PRODUCER_EPOCH,
            base_sequence: header::NO_SEQUENCE,
            records,
        }
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// The exact bytes Kafka writes for this batch.
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut records = Vec::new();
        for r in &self.records {
            encode_record(&mut records, r);
        }
        let records = self.compression.compress(&records)?;

        let mut buf = Vec::with_capacity(BATCH_OVERHEAD + records.len());
        buf.extend_from_slice(&self.base_offset.to_be_bytes());
        let length = (BATCH_OVERHEAD - 12 + records.len()) as i32;
        buf.extend_from_slice(&length.to_be_bytes());
        buf.extend_from_slice(&self.partition_leader_epoch.to_be_bytes());
        buf.push(MAGIC as u8);
        buf.extend_from_slice(&[0; 4]); // CRC, filled below
        let attrs = header::attributes(
            self.compression,
            self.timestamp_type,
            self.is_transactional,
            self.is_control,
        );
        buf.extend_from_slice(&attrs.to_be_bytes());
        buf.extend_from_slice(&self.last_offset_delta.to_be_bytes());
        buf.extend_from_slice(&self.base_timestamp.to_be_bytes());
        buf.extend_from_slice(&self.max_timestamp.to_be_bytes());
        buf.extend_from_slice(&self.producer_id.to_be_bytes());
        buf.extend_from_slice(&self.producer_epoch.to_be_bytes());
        buf.extend_from_slice(&self.base_sequence.to_be_bytes());
        buf.extend_from_slice(&(self.records.len() as i32).to_be_bytes());
        buf.extend_from_slice(&records);
        let crc = crc32c::crc32c(&buf[21..]);
        buf[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(buf)
    }

    /// Decodes the batch at the start of `buf`, checking magic, length, CRC, the record
    /// count and every record; returns the batch and the bytes it took.
    pub fn decode(buf: &[u8]) -> Result<(RecordBatch, usize), RecordError> {
        let (opened, size) = BatchRecords::open(buf)?;
        let h = opened.header;
        let compression = h.compression()?;
        if h.record_count < 0 {
            return Err(RecordError::RecordCountMismatch {
                declared: h.record_count,
                actual: 0,
            });
        }
        // Each record takes at least 7 bytes: a bound that stops a lying count early.
        let plausible = opened.payload_len() / 7 + 1;
        let mut records = Vec::with_capacity((h.record_count as usize).min(plausible));
        for view in opened.iter() {
            let v = view?;
            records.push(Record {
                offset_delta: v.offset_delta,
                timestamp_delta: v.timestamp_delta,
                key: v.key.map(Bytes::copy_from_slice),
                value: v.value.map(Bytes::copy_from_slice),
                headers: v
                    .headers()
                    .map(|(key, value)| Header {
                        key: key.to_string(),
                        value: value.map(Bytes::copy_from_slice),
                    })
                    .collect(),
            });
        }
        if records.len() != h.record_count as usize {
            return Err(RecordError::RecordCountMismatch {
                declared: h.record_count,
                actual: records.len(),
            });
        }
        // Compaction may remove a batch's last records but keeps its last offset delta, so
        // the last record may sit below it, never past it.
        if let Some(last) = records.last()
            && last.offset_delta > h.last_offset_delta
            && !h.is_control()
        {
            return Err(RecordError::OffsetDeltaMismatch {
                declared: h.last_offset_delta,
                actual: last.offset_delta,
            });
        }
        let batch = RecordBatch {
            base_offset: h.base_offset,
            partition_leader_epoch: h.partition_leader_epoch,
            compression,
            timestamp_type: h.timestamp_type(),
            is_transactional: h.is_transactional(),
            is_control: h.is_control(),
            last_offset_delta: h.last_offset_delta,
            base_timestamp: h.base_timestamp,
            max_timestamp: h.max_timestamp,
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            records,
        };
        Ok((batch, size))
    }

    /// Each record's absolute offset and timestamp, as a consumer sees them. With
    /// `LogAppendTime` every record carries the batch's max timestamp.
    pub fn offsets_and_timestamps(&self) -> impl Iterator<Item = (i64, i64, &Record)> {
        self.records.iter().map(move |r| {
            let ts = match self.timestamp_type {
                TimestampType::CreateTime => self.base_timestamp + r.timestamp_delta,
                TimestampType::LogAppendTime => self.max_timestamp,
            };
            (self.base_offset + r.offset_delta as i64, ts, r)
        })
    }
}

fn nullable_len(v: &Option<Bytes>) -> usize {
    match v {
        None => varlong_len(-1),
        Some(b) => varlong_len(b.len() as i64) + b.len(),
    }
}

fn put_nullable(buf: &mut Vec<u8>, v: &Option<Bytes>) {
    match v {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.extend_from_slice(b);
        }
    }
}

fn encode_record(buf: &mut Vec<u8>, r: &Record) {
    let mut body_len = 1 // attributes
        + varlong_len(r.timestamp_delta)
        + varlong_len(r.offset_delta as i64)
        + nullable_len(&r.key)
        + nullable_len(&r.value)
        + varlong_len(r.headers.len() as i64);
    for h in &r.headers {
        body_len += varlong_len(h.key.len() as i64) + h.key.len() + nullable_len(&h.value);
    }
    put_varint(buf, body_len as i32);
    buf.push(0); // record attributes: unused in v2
    put_varlong(buf, r.timestamp_delta);
    put_varint(buf, r.offset_delta);
    put_nullable(buf, &r.key);
    put_nullable(buf, &r.value);
    put_varint(buf, r.headers.len() as i32);
    for h in &r.headers {
        put_varint(buf, h.key.len() as i32);
        buf.extend_from_slice(h.key.as_bytes());
        put_nullable(buf, &h.value);
    }
}
