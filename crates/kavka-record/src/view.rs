//! Records read in place: a batch's records section (decompressed once, borrowed when it
//! is not compressed) walked one record at a time, each record a view of slices into it.
//!
//! Invariants: memory is the decompressed records section and nothing per record (no
//! `Vec<Record>`, no copies of keys and values); a record is yielded only once all its
//! fields and headers decoded, so a view's headers iterate without errors.

use crate::error::RecordError;
use crate::header::{BATCH_OVERHEAD, BatchHeader, TimestampType};
use crate::varint::Reader;
use std::borrow::Cow;

/// One batch opened for reading: its header (CRC checked) and its records section.
#[derive(Debug)]
pub struct BatchRecords<'a> {
    pub header: BatchHeader,
    raw_header: &'a [u8],
    payload: Cow<'a, [u8]>,
}

impl<'a> BatchRecords<'a> {
    /// Opens the batch at the start of `buf`: checks the header and the CRC, decompresses
    /// the records section if it is compressed (capped), and returns the bytes it took.
    pub fn open(buf: &'a [u8]) -> Result<(Self, usize), RecordError> {
        Self::open_capped(buf, crate::DECOMPRESSED_BYTES_MAX)
    }

    /// As [`BatchRecords::open`], decompressing at most `limit` bytes (at most
    /// [`crate::DECOMPRESSED_BYTES_MAX`]).
    pub fn open_capped(buf: &'a [u8], limit: usize) -> Result<(Self, usize), RecordError> {
        let limit = limit.min(crate::DECOMPRESSED_BYTES_MAX);
        let header = BatchHeader::parse(buf)?;
        header.verify_crc(buf)?;
        let size = header.size();
        let section = &buf[BATCH_OVERHEAD..size];
        let payload = match header.compression()? {
            crate::Compression::None => Cow::Borrowed(section),
            codec => Cow::Owned(codec.decompress_capped(section, limit)?),
        };
        Ok((
            Self {
                header,
                raw_header: &buf[..BATCH_OVERHEAD],
                payload,
            },
            size,
        ))
    }

    /// The same batch with its records section in `codec` (the header's codec bits, length
    /// and CRC follow): recompression without decoding a single record, so memory is the
    /// section once decompressed plus once compressed.
    pub fn recompressed(&self, codec: crate::Compression) -> Result<Vec<u8>, RecordError> {
        use crate::header::{COMPRESSION_MASK, CRC_START};
        let section = codec.compress(&self.payload)?;
        let mut out = Vec::with_capacity(BATCH_OVERHEAD + section.len());
        out.extend_from_slice(self.raw_header);
        out.extend_from_slice(&section);
        let length =
            i32::try_from(out.len() - 12).map_err(|_| RecordError::InvalidLength(i32::MAX))?;
        out[8..12].copy_from_slice(&length.to_be_bytes());
        let attrs = (self.header.attributes & !COMPRESSION_MASK) | codec.id() as i16;
        out[21..23].copy_from_slice(&attrs.to_be_bytes());
        let crc = crc32c::crc32c(&out[CRC_START..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        Ok(out)
    }

    /// Bytes of the (decompressed) records section.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// The records, in order; stops after the first malformed one.
    pub fn iter(&self) -> RecordIter<'_> {
        RecordIter {
            reader: Reader::new(&self.payload),
            index: 0,
            failed: false,
        }
    }

    /// A record's absolute offset and timestamp, as a consumer sees them (with
    /// `LogAppendTime` every record carries the batch's max timestamp).
    pub fn offset_and_timestamp(&self, r: &RecordView<'_>) -> (i64, i64) {
        let h = &self.header;
        let ts = match h.timestamp_type() {
            TimestampType::CreateTime => h.base_timestamp.wrapping_add(r.timestamp_delta),
            TimestampType::LogAppendTime => h.max_timestamp,
        };
        (h.base_offset.wrapping_add(r.offset_delta as i64), ts)
    }
}

/// One record as slices of its batch's records section.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// Position in the batch, from 0.
    pub index: usize,
    pub offset_delta: i32,
    pub timestamp_delta: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    header_count: usize,
    headers: &'a [u8],
}

impl<'a> RecordView<'a> {
    pub fn header_count(&self) -> usize {
        self.header_count
    }

    /// The record's headers: a UTF-8 key and a nullable value each.
    pub fn headers(&self) -> impl Iterator<Item = (&'a str, Option<&'a [u8]>)> + use<'a> {
        let mut r = Reader::new(self.headers);
        (0..self.header_count).map_while(move |_| read_header(&mut r).ok())
    }
}

/// Walks a records section; see [`BatchRecords::iter`].
pub struct RecordIter<'a> {
    reader: Reader<'a>,
    index: usize,
    failed: bool,
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<RecordView<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.remaining() == 0 {
            return None;
        }
        let index = self.index;
        self.index += 1;
        let item = read_record(&mut self.reader, index)
            .map_err(|reason| RecordError::MalformedRecord { index, reason });
        self.failed = item.is_err();
        Some(item)
    }
}

fn read_record<'a>(r: &mut Reader<'a>, index: usize) -> Result<RecordView<'a>, String> {
    let len = r.varint()?;
    if len < 0 {
        return Err(format!("negative record length {len}"));
    }
    let body = r.bytes(len as usize)?;
    let mut b = Reader::new(body);
    let _attributes = b.i8()?;
    let timestamp_delta = b.varlong()?;
    let offset_delta = b.varint()?;
    let key = b.nullable_bytes()?;
    let value = b.nullable_bytes()?;
    let count = b.varint()?;
    if count < 0 {
        return Err(format!("negative header count {count}"));
    }
    let start = b.pos;
    for _ in 0..count {
        read_header(&mut b)?;
    }
    let headers = &body[start..b.pos];
    if b.remaining() != 0 {
        return Err(format!(
            "{} bytes left over after the headers",
            b.remaining()
        ));
    }
    Ok(RecordView {
        index,
        offset_delta,
        timestamp_delta,
        key,
        value,
        header_count: count as usize,
        headers,
    })
}

fn read_header<'a>(r: &mut Reader<'a>) -> Result<(&'a str, Option<&'a [u8]>), String> {
    let key = r
        .nullable_bytes()?
        .ok_or_else(|| "null header key".to_string())?;
    let key = std::str::from_utf8(key).map_err(|_| "header key is not UTF-8".to_string())?;
    let value = r.nullable_bytes()?;
    Ok((key, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, Header, Record, RecordBatch};
    use bytes::Bytes;

    fn batch(c: Compression) -> Vec<u8> {
        let records = (0..3)
            .map(|i| Record {
                offset_delta: i,
                timestamp_delta: i as i64 * 10,
                key: (i != 1).then(|| Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!("v{i}"))),
                headers: vec![Header {
                    key: "h".into(),
                    value: Some(Bytes::from_static(b"x")),
                }],
            })
            .collect();
        RecordBatch::new(1_000, c, records).encode().unwrap()
    }

    #[test]
    fn views_match_the_decoded_records_for_every_codec() {
        for c in Compression::ALL {
            let bytes = batch(c);
            let (decoded, _) = RecordBatch::decode(&bytes).unwrap();
            let (opened, used) = BatchRecords::open(&bytes).unwrap();
            assert_eq!(used, bytes.len());
            let views: Vec<RecordView<'_>> = opened.iter().map(Result::unwrap).collect();
            assert_eq!(views.len(), decoded.records.len(), "{}", c.name());
            for (v, r) in views.iter().zip(&decoded.records) {
                assert_eq!(v.key, r.key.as_deref());
                assert_eq!(v.value, r.value.as_deref());
                assert_eq!(v.offset_delta, r.offset_delta);
                let hs: Vec<_> = v.headers().collect();
                assert_eq!(hs, [("h", Some(&b"x"[..]))]);
                assert_eq!(opened.offset_and_timestamp(v).1, 1_000 + r.timestamp_delta);
            }
        }
    }

    #[test]
    fn recompressing_keeps_every_record_and_header_field() {
        for from in Compression::ALL {
            let bytes = batch(from);
            let (want, _) = RecordBatch::decode(&bytes).unwrap();
            for to in Compression::ALL {
                let (opened, _) = BatchRecords::open(&bytes).unwrap();
                let out = opened.recompressed(to).unwrap();
                let (got, used) = RecordBatch::decode(&out).unwrap();
                assert_eq!(used, out.len());
                assert_eq!(got.compression, to);
                assert_eq!(
                    RecordBatch {
                        compression: from,
                        ..got
                    },
                    want,
                    "{} -> {}",
                    from.name(),
                    to.name()
                );
            }
        }
    }

    #[test]
    fn an_uncompressed_batch_is_borrowed_not_copied() {
        let bytes = batch(Compression::None);
        let (opened, _) = BatchRecords::open(&bytes).unwrap();
        assert!(matches!(opened.payload, Cow::Borrowed(_)));
    }

    #[test]
    fn a_malformed_record_ends_the_walk_with_its_index() {
        // Two records' worth of bytes, the second with a length past the end.
        let mut payload = Vec::new();
        crate::varint::put_varint(&mut payload, 6);
        payload.extend_from_slice(&[0, 0, 0, 1, 1, 0]); // attrs, ts, offset, null key, null value, 0 headers
        crate::varint::put_varint(&mut payload, 90);
        let mut it = RecordIter {
            reader: Reader::new(&payload),
            index: 0,
            failed: false,
        };
        assert!(it.next().unwrap().is_ok());
        let err = it.next().unwrap().unwrap_err();
        assert!(
            matches!(err, RecordError::MalformedRecord { index: 1, .. }),
            "{err}"
        );
        assert!(it.next().is_none());
    }
}
