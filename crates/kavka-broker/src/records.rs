//! Turning structured records into batches, checking produced batches against the topic's
//! rules (Kafka's `LogValidator`, in `kavka_record::validate`), and applying a topic's
//! `compression.type`.

use bytes::Bytes;
use kavka_model::{
    CleanupPolicy, CompressionType, ErrorCode, KafkaError, RecordIndexError, TimestampType,
    TopicConfig, TopicPartition,
};
use kavka_record::{
    BATCH_OVERHEAD, BatchRecords, CheckedBatches, Compression, DECOMPRESSED_BYTES_MAX, Header,
    Invalid, Origin, Record, RecordBatch, RecordError, Rules, TimestampWindow, batches, validate,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// What one produce request may decompress in all, over every batch of every partition:
/// the work one request can ask for is bounded (a compression bomb in each of many
/// partitions would otherwise cost up to [`DECOMPRESSED_BYTES_MAX`] each). Real requests
/// (at most `socket.request.max.bytes`, 100 MiB, compressed ten to one) stay inside it.
pub(crate) const REQUEST_DECOMPRESSED_BYTES_MAX: usize = 1 << 30;

/// A produce request's decompression budget, shared by its partitions' validations
/// (which run at once: one may overshoot by what another is decompressing meanwhile).
#[derive(Clone, Debug)]
pub struct DecodeBudget {
    total: usize,
    left: Arc<AtomicUsize>,
}

impl DecodeBudget {
    /// One request's budget: [`REQUEST_DECOMPRESSED_BYTES_MAX`].
    pub fn for_request() -> Self {
        Self::new(REQUEST_DECOMPRESSED_BYTES_MAX)
    }

    pub(crate) fn new(total: usize) -> Self {
        Self {
            total,
            left: Arc::new(AtomicUsize::new(total)),
        }
    }

    fn left(&self) -> usize {
        self.left.load(Ordering::Relaxed)
    }

    fn spend(&self, bytes: usize) {
        let _ = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                Some(left.saturating_sub(bytes))
            });
    }
}

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

/// The topic's rules for an append at `now_ms`.
pub(crate) fn rules_for(config: &TopicConfig, origin: Origin, now_ms: i64) -> Rules {
    Rules {
        origin,
        compacted: config.cleanup_policy != CleanupPolicy::Delete,
        create_time: (config.message_timestamp_type == TimestampType::CreateTime).then_some(
            TimestampWindow {
                before_max_ms: config.message_timestamp_before_max_ms,
                after_max_ms: config.message_timestamp_after_max_ms,
            },
        ),
        max_batch_bytes: config.max_message_bytes as usize,
        decompressed_bytes_max: DECOMPRESSED_BYTES_MAX,
        now_ms,
    }
}

/// Checks every batch of a produce for `tp` (once, on the leader, before anything is
/// written; this is also the only check of their CRCs there) and sets a CreateTime
/// batch's max timestamp to its records' largest where a producer's header disagrees,
/// as Kafka does. Uncompressed batches are read in place.
pub(crate) fn validate_batches(
    tp: &TopicPartition,
    records: Vec<u8>,
    rules: &Rules,
    budget: &DecodeBudget,
) -> Result<CheckedBatches, KafkaError> {
    CheckedBatches::validated(records, |batch| {
        let left = budget.left();
        let rules = Rules {
            decompressed_bytes_max: left.min(rules.decompressed_bytes_max),
            ..*rules
        };
        let checked = validate(batch, &rules).map_err(|e| match e {
            Invalid::Corrupt(RecordError::DecompressedTooLarge { .. })
                if left < DECOMPRESSED_BYTES_MAX =>
            {
                KafkaError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "{tp}: the produce request decompresses to more than {} bytes in all (its decompression budget): send fewer compressed batches per request",
                        budget.total
                    ),
                )
            }
            e => refused(tp, e),
        })?;
        budget.spend(checked.decompressed_bytes);
        Ok(checked)
    })
}

/// Kafka's answer to a refused batch: CORRUPT_MESSAGE for bytes damaged in transit (CRC,
/// framing), INVALID_RECORD (INVALID_TIMESTAMP for timestamps) with the records' list for
/// well-transmitted batches that break a rule or do not decode.
fn refused(tp: &TopicPartition, e: Invalid) -> KafkaError {
    match e {
        Invalid::Corrupt(e @ RecordError::UnsupportedMagic(_)) => {
            KafkaError::new(ErrorCode::UnsupportedForMessageFormat, format!("{tp}: {e}"))
        }
        e @ Invalid::TooLarge { .. } => {
            KafkaError::new(ErrorCode::MessageTooLarge, format!("{tp}: {e}"))
        }
        Invalid::Corrupt(e @ RecordError::DecompressedTooLarge { .. }) => {
            KafkaError::new(ErrorCode::MessageTooLarge, format!("{tp}: {e}"))
        }
        // Bytes damaged on the way (a retry may get through): CORRUPT_MESSAGE, retriable.
        e @ Invalid::Corrupt(
            RecordError::CrcMismatch { .. }
            | RecordError::Truncated { .. }
            | RecordError::InvalidLength(_),
        ) => KafkaError::new(ErrorCode::CorruptMessage, format!("{tp}: {e}")),
        // The CRC holds, so the producer sent them so: sending them again cannot help.
        Invalid::Corrupt(RecordError::MalformedRecord { index, reason }) => {
            let message = format!("malformed record {index}: {reason}");
            KafkaError::new(ErrorCode::InvalidRecord, format!("{tp}: {message}"))
                .with_record_errors(vec![RecordIndexError {
                    batch_index: index as i32,
                    message,
                }])
        }
        e @ Invalid::Corrupt(_) => KafkaError::new(ErrorCode::InvalidRecord, format!("{tp}: {e}")),
        e @ Invalid::Batch(_) => KafkaError::new(ErrorCode::InvalidRecord, format!("{tp}: {e}")),
        Invalid::Records {
            timestamps,
            message,
            problems,
        } => {
            let code = if timestamps {
                ErrorCode::InvalidTimestamp
            } else {
                ErrorCode::InvalidRecord
            };
            let errors = problems
                .into_iter()
                .map(|p| RecordIndexError {
                    batch_index: p.index as i32,
                    message: p.message,
                })
                .collect();
            KafkaError::new(code, format!("{tp}: {message}")).with_record_errors(errors)
        }
    }
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

/// Whether validating `records` (and applying the topic's `compression.type`) is light
/// work: at most `max_bytes`, every batch uncompressed and none to be compressed. Such
/// records are prepared on the async worker; anything else (a decompression, a
/// recompression, a large or malformed request) on the blocking pool.
pub(crate) fn is_light(records: &[u8], topic: CompressionType, max_bytes: usize) -> bool {
    records.len() <= max_bytes
        && matches!(codec_of(topic), None | Some(Compression::None))
        && batches(records)
            .all(|b| b.is_ok_and(|(h, _)| h.compression().is_ok_and(|c| c == Compression::None)))
}

/// Re-encodes batches whose codec differs from the topic's `compression.type` (Kafka's
/// broker-side recompression); with `producer` the bytes are kept as they came.
pub(crate) fn apply_topic_compression(
    tp: &TopicPartition,
    records: CheckedBatches,
    topic: CompressionType,
    max_batch_bytes: usize,
) -> Result<CheckedBatches, KafkaError> {
    let Some(want) = codec_of(topic) else {
        return Ok(records);
    };
    let corrupt = |e: RecordError| KafkaError::new(ErrorCode::CorruptMessage, e.to_string());
    let mut needs = false;
    for item in batches(records.as_slice()) {
        let (h, _) = item.map_err(corrupt)?;
        needs |= h.compression().map_err(corrupt)? != want;
    }
    if !needs {
        return Ok(records);
    }
    // The records section is re-encoded as a whole: no record is decoded.
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while !rest.is_empty() {
        let (batch, used) = BatchRecords::open(rest).map_err(corrupt)?;
        if batch.header.compression().map_err(corrupt)? == want {
            out.extend_from_slice(&rest[..used]);
        } else {
            // As Kafka: the batch as stored must fit max.message.bytes. Decompressed
            // (compression.type=uncompressed) that is known before building it.
            let too_large = |size: usize| {
                KafkaError::new(
                    ErrorCode::MessageTooLarge,
                    format!(
                        "{tp}: the batch is {size} bytes once in the topic's compression.type \
                         {want:?}, over the maximum of {max_batch_bytes} (max.message.bytes)"
                    ),
                )
            };
            let uncompressed = BATCH_OVERHEAD + batch.payload_len();
            if want == Compression::None && uncompressed > max_batch_bytes {
                return Err(too_large(uncompressed));
            }
            // The batch was validated: a failure here is the broker's own.
            let converted = batch.recompressed(want).map_err(|e| {
                KafkaError::new(
                    ErrorCode::UnknownServerError,
                    format!("{tp}: recompressing to {want:?} failed: {e}"),
                )
            })?;
            if converted.len() > max_batch_bytes {
                return Err(too_large(converted.len()));
            }
            out.extend(converted);
        }
        rest = &rest[used..];
    }
    // Rare (a producer's codec other than the topic's): the new batches are checked
    // whole again rather than trusted.
    CheckedBatches::check(out).map_err(|e| {
        KafkaError::new(
            ErrorCode::UnknownServerError,
            format!("{tp}: a recompressed batch does not check: {e}"),
        )
    })
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

    fn tp() -> TopicPartition {
        TopicPartition::new(
            kavka_model::TopicName::new("t").unwrap(),
            kavka_model::PartitionId(0),
        )
    }

    #[test]
    fn light_work_is_small_uncompressed_and_stays_so() {
        let plain = build_batch(vec![rec("a", 1), rec("b", 2)], Compression::None).unwrap();
        let zipped = build_batch(vec![rec("a", 1)], Compression::Gzip).unwrap();
        let mut both = plain.clone();
        both.extend_from_slice(&zipped);
        let torn = plain[..plain.len() - 1].to_vec();
        let table = [
            (&plain, CompressionType::Producer, 1 << 20, true),
            (&plain, CompressionType::Uncompressed, 1 << 20, true),
            (&plain, CompressionType::Producer, plain.len(), true),
            (&plain, CompressionType::Producer, plain.len() - 1, false),
            (&plain, CompressionType::Lz4, 1 << 20, false),
            (&zipped, CompressionType::Producer, 1 << 20, false),
            (&both, CompressionType::Producer, 1 << 20, false),
            (&torn, CompressionType::Producer, 1 << 20, false),
        ];
        for (i, (records, topic, max, light)) in table.into_iter().enumerate() {
            assert_eq!(is_light(records, topic, max), light, "row {i}");
        }
    }

    #[test]
    fn recompresses_to_the_topic_codec_only_when_it_differs() {
        let gz = build_batch(vec![rec("a", 1)], Compression::Gzip).unwrap();
        let max = 1 << 20;
        let checked = CheckedBatches::check(gz.clone()).unwrap();
        let convert = |t| {
            apply_topic_compression(&tp(), checked.clone(), t, max)
                .unwrap()
                .into_vec()
        };
        assert_eq!(convert(CompressionType::Producer), gz);
        assert_eq!(convert(CompressionType::Gzip), gz);
        let z = convert(CompressionType::Zstd);
        let (b, _) = RecordBatch::decode(&z).unwrap();
        assert_eq!(b.compression, Compression::Zstd);
        assert_eq!(b.records[0].value.as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn a_batch_too_large_once_recompressed_is_refused() {
        let big = "x".repeat(10_000);
        let gz = build_batch(vec![rec(&big, 1)], Compression::Gzip).unwrap();
        assert!(gz.len() < 1_000);
        for (target, max, ok) in [
            (CompressionType::Uncompressed, 1_000, false),
            (CompressionType::Uncompressed, 20_000, true),
            (CompressionType::Zstd, 1_000, true),
            (CompressionType::Zstd, 50, false),
        ] {
            let checked = CheckedBatches::check(gz.clone()).unwrap();
            let got = apply_topic_compression(&tp(), checked, target, max);
            match got {
                Ok(_) => assert!(ok, "{target:?} within {max} was accepted"),
                Err(e) => {
                    assert!(!ok, "{target:?} within {max}: {e}");
                    assert_eq!(e.code, ErrorCode::MessageTooLarge, "{e}");
                    assert!(e.message.contains("max.message.bytes"), "{e}");
                }
            }
        }
    }

    #[test]
    fn a_request_decompresses_at_most_its_budget() {
        let big = "x".repeat(100_000);
        let zstd = build_batch(vec![rec(&big, 1)], Compression::Zstd).unwrap();
        let plain = build_batch(vec![rec(&big, 1)], Compression::None).unwrap();
        let rules = rules_for(&TopicConfig::default(), Origin::Client, 1);
        let budget = DecodeBudget::new(250_000);
        // Two batches fit (each ~100 KB decompressed); uncompressed ones cost nothing.
        for batch in [&zstd, &plain, &zstd, &plain] {
            validate_batches(&tp(), batch.clone(), &rules, &budget).unwrap();
        }
        let e = validate_batches(&tp(), zstd.clone(), &rules, &budget).unwrap_err();
        assert_eq!(e.code, ErrorCode::MessageTooLarge, "{e}");
        assert!(e.message.contains("decompression budget"), "{e}");
        // Another request has its own.
        validate_batches(&tp(), zstd.clone(), &rules, &DecodeBudget::new(250_000)).unwrap();
    }
}
