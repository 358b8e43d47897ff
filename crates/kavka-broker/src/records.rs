//! Turning structured records into batches, and applying a topic's `compression.type`.

use bytes::Bytes;
use kavka_model::{CompressionType, ErrorCode, KafkaError};
use kavka_record::{Compression, Header, Record, RecordBatch, batches};

/// A structured record from a produce request.
#[derive(Clone, Debug)]
pub struct NewRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub timestamp_ms: i64,
}

/// One batch holding `records` in order, as a producer would build it.
pub(crate) fn build_batch(
    records: Vec<NewRecord>,
    compression: Compression,
) -> Result<Vec<u8>, KafkaError> {
    let base = records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    let records = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            offset_delta: i as i32,
            timestamp_delta: r.timestamp_ms - base,
            key: r.key,
            value: r.value,
            headers: r.headers,
        })
        .collect();
    RecordBatch::new(base, compression, records)
        .encode()
        .map_err(|e| KafkaError::new(ErrorCode::UnknownServerError, e.to_string()))
}

fn codec_of(t: CompressionType) -> Option<Compression> {
    match t {
        CompressionType::Producer => None,
        CompressionType::Uncompressed => Some(Compression::None),
        CompressionType::Gzip => Some(Compression::Gzip),
        CompressionType::Snappy => Some(Compression::Snappy),
        CompressionType::Lz4 => Some(Compression::Lz4),
        CompressionType::Zstd => Some(Compression::Zstd),
    }
}

/// Re-encodes batches whose codec differs from the topic's `compression.type` (Kafka's
/// broker-side recompression); with `producer` the bytes are kept as they came.
pub(crate) fn apply_topic_compression(
    records: Vec<u8>,
    topic: CompressionType,
) -> Result<Vec<u8>, KafkaError> {
    let Some(want) = codec_of(topic) else {
        return Ok(records);
    };
    let corrupt =
        |e: kavka_record::RecordError| KafkaError::new(ErrorCode::CorruptMessage, e.to_string());
    let mut needs = false;
    for item in batches(&records) {
        let (h, _) = item.map_err(corrupt)?;
        needs |= h.compression().map_err(corrupt)? != want;
    }
    if !needs {
        return Ok(records);
    }
    let mut out = Vec::with_capacity(records.len());
    let mut rest = &records[..];
    while !rest.is_empty() {
        let (mut batch, used) = RecordBatch::decode(rest).map_err(corrupt)?;
        batch.compression = want;
        out.extend(batch.encode().map_err(corrupt)?);
        rest = &rest[used..];
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(v: &str, ts: i64) -> NewRecord {
        NewRecord {
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: vec![],
            timestamp_ms: ts,
        }
    }

    #[test]
    fn builds_batches_with_min_base_timestamp() {
        let bytes = build_batch(vec![rec("a", 20), rec("b", 10)], Compression::Gzip).unwrap();
        let (b, _) = RecordBatch::decode(&bytes).unwrap();
        assert_eq!(b.base_timestamp, 10);
        let ts: Vec<i64> = b.offsets_and_timestamps().map(|(_, t, _)| t).collect();
        assert_eq!(ts, [20, 10]);
    }

    #[test]
    fn recompresses_to_the_topic_codec_only_when_it_differs() {
        let gz = build_batch(vec![rec("a", 1)], Compression::Gzip).unwrap();
        assert_eq!(
            apply_topic_compression(gz.clone(), CompressionType::Producer).unwrap(),
            gz
        );
        assert_eq!(
            apply_topic_compression(gz.clone(), CompressionType::Gzip).unwrap(),
            gz
        );
        let z = apply_topic_compression(gz, CompressionType::Zstd).unwrap();
        let (b, _) = RecordBatch::decode(&z).unwrap();
        assert_eq!(b.compression, Compression::Zstd);
        assert_eq!(b.records[0].value.as_deref(), Some(&b"a"[..]));
    }
}
