//! Kafka's `LogValidator`: what a leader checks in a produced batch, record by record,
//! before it assigns offsets and writes it.
//!
//! A batch is refused when its bytes are not a batch ([`Invalid::Corrupt`]: the broker
//! answers CORRUPT_MESSAGE for CRC and framing faults, INVALID_RECORD for records, codecs
//! or payloads that do not decode), when the batch as a whole breaks a rule
//! ([`Invalid::Batch`], INVALID_RECORD), or when records break one ([`Invalid::Records`],
//! INVALID_RECORD or INVALID_TIMESTAMP with Kafka's per-record list).
//!
//! Invariants: pure (the clock is an input); reads each record once, in place
//! ([`BatchRecords`]), so it allocates only the decompressed records section of a
//! compressed batch and never a record; never panics on any input.

use crate::error::RecordError;
use crate::header::{BatchHeader, NO_PRODUCER_ID, TimestampType};
use crate::view::BatchRecords;

/// Who wrote the batch. Kafka checks client batches more strictly than the broker's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Client,
    /// The broker itself (the group coordinator's writes).
    Broker,
}

/// `message.timestamp.before.max.ms` / `after.max.ms`: how far a CreateTime timestamp
/// may lie behind or ahead of the broker's clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimestampWindow {
    pub before_max_ms: i64,
    pub after_max_ms: i64,
}

/// The topic's rules for one append.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rules {
    pub origin: Origin,
    /// `cleanup.policy` includes `compact`: every record needs a key.
    pub compacted: bool,
    /// `Some` for `message.timestamp.type=CreateTime`; with LogAppendTime the broker's
    /// clock replaces the producer's timestamps and they are not checked.
    pub create_time: Option<TimestampWindow>,
    /// `max.message.bytes`: the largest batch, as sent (checked before decompressing).
    pub max_batch_bytes: usize,
    /// The most this batch may decompress to (what is left of the request's budget; at
    /// most [`crate::DECOMPRESSED_BYTES_MAX`]).
    pub decompressed_bytes_max: usize,
    pub now_ms: i64,
}

/// At most this many per-record problems are listed; the message counts the rest.
pub const PROBLEMS_LISTED_MAX: usize = 100;

/// One record's problem: its position in the batch and what is wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordProblem {
    pub index: usize,
    pub message: String,
}

/// Why a batch is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The bytes are not a well-formed batch.
    #[error("corrupt batch: {0}")]
    Corrupt(#[from] RecordError),
    /// Larger than `max.message.bytes`.
    #[error("batch of {size} bytes exceeds the maximum of {max} (max.message.bytes)")]
    TooLarge { size: usize, max: usize },
    /// The batch breaks a rule as a whole.
    #[error("invalid batch: {0}")]
    Batch(String),
    /// Records break a rule; `timestamps` when any of them is a timestamp out of range
    /// (Kafka then answers INVALID_TIMESTAMP for the batch).
    #[error("{message}")]
    Records {
        timestamps: bool,
        message: String,
        problems: Vec<RecordProblem>,
    },
}

/// What a valid batch holds. Only [`validate`] answers one (`non_exhaustive`: no other
/// crate can build it), which [`crate::CheckedBatches::validated`] relies on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Checked {
    pub header: BatchHeader,
    /// The largest record timestamp (CreateTime), which the header must carry.
    pub max_timestamp: i64,
    /// Bytes decompressed to read it (0 for an uncompressed batch, read in place).
    pub decompressed_bytes: usize,
}

/// Checks the one batch at the start of `buf` (exactly its bytes) under `rules`.
pub fn validate(buf: &[u8], rules: &Rules) -> Result<Checked, Invalid> {
    let size = BatchHeader::parse(buf)?.size();
    if size > rules.max_batch_bytes {
        return Err(Invalid::TooLarge {
            size,
            max: rules.max_batch_bytes,
        });
    }
    let (batch, _) = BatchRecords::open_capped(buf, rules.decompressed_bytes_max)?;
    let h = batch.header;
    let decompressed_bytes = match h.compression()? {
        crate::Compression::None => 0,
        _ => batch.payload_len(),
    };
    if rules.origin == Origin::Client {
        check_client_batch(&h)?;
    }
    let mut problems = Vec::new();
    let mut more = 0usize;
    let mut timestamps = false;
    let mut count = 0usize;
    let mut max_timestamp = h.max_timestamp;
    let mut first = true;
    for view in batch.iter() {
        let r = view?;
        count += 1;
        let (_, ts) = batch.offset_and_timestamp(&r);
        if first || ts > max_timestamp {
            max_timestamp = ts;
            first = false;
        }
        let problem = if r.offset_delta as i64 != r.index as i64 {
            Some(format!(
                "record {} has offset delta {}, expected {}",
                r.index, r.offset_delta, r.index
            ))
        } else if rules.compacted && r.key.is_none() {
            Some("a compacted topic cannot accept a record without a key".to_string())
        } else {
            let out = timestamp_problem(ts, &h, rules);
            timestamps |= out.is_some();
            out
        };
        if let Some(message) = problem {
            if problems.len() < PROBLEMS_LISTED_MAX {
                problems.push(RecordProblem {
                    index: r.index,
                    message,
                });
            } else {
                more += 1;
            }
        }
    }
    if count != h.record_count.max(0) as usize {
        return Err(Invalid::Batch(format!(
            "the batch declares {} records but holds {count}",
            h.record_count
        )));
    }
    // Whoever wrote it: the header's offset range is what readers and the log trust.
    if count > 0 && h.last_offset_delta as i64 != count as i64 - 1 {
        return Err(Invalid::Batch(format!(
            "the batch declares last offset delta {} but holds {count} records",
            h.last_offset_delta
        )));
    }
    if !problems.is_empty() {
        let what = if timestamps {
            "an invalid timestamp"
        } else {
            "invalid records"
        };
        let mut message = format!(
            "{} record(s) of the batch rejected for {what}; first: record {}: {}",
            problems.len() + more,
            problems[0].index,
            problems[0].message
        );
        if more > 0 {
            message.push_str(&format!(" ({more} more not listed)"));
        }
        return Err(Invalid::Records {
            timestamps,
            message,
            problems,
        });
    }
    Ok(Checked {
        header: h,
        max_timestamp,
        decompressed_bytes,
    })
}

/// Kafka's `validateBatch` for client batches: header fields that must agree.
fn check_client_batch(h: &BatchHeader) -> Result<(), Invalid> {
    if h.is_control() {
        return Err(Invalid::Batch(
            "clients are not allowed to write control records".into(),
        ));
    }
    if h.record_count <= 0 {
        return Err(Invalid::Batch(format!(
            "invalid record count {} (a batch holds at least one record)",
            h.record_count
        )));
    }
    if h.last_offset_delta < 0 || h.record_count as i64 != h.last_offset_delta as i64 + 1 {
        return Err(Invalid::Batch(format!(
            "inconsistent batch: offset range [0, {}] but {} records",
            h.last_offset_delta, h.record_count
        )));
    }
    let has_producer_id = h.producer_id > NO_PRODUCER_ID;
    if has_producer_id && h.base_sequence < 0 {
        return Err(Invalid::Batch(format!(
            "invalid sequence number {} in a batch with producer id {}",
            h.base_sequence, h.producer_id
        )));
    }
    if h.is_transactional() && !has_producer_id {
        return Err(Invalid::Batch(
            "a transactional batch needs a producer id".into(),
        ));
    }
    Ok(())
}

/// Kafka's `validateTimestamp`, a little stricter: a client may not flag its batch
/// LogAppendTime (the broker stamps that itself; Kafka lets a CreateTime topic's window
/// decide such a batch and then stores it re-flagged, which no client needs); in a
/// CreateTime topic every record's timestamp is checked against the window.
fn timestamp_problem(ts: i64, h: &BatchHeader, rules: &Rules) -> Option<String> {
    if rules.origin == Origin::Client && h.timestamp_type() == TimestampType::LogAppendTime {
        return Some(
            "invalid timestamp type LogAppendTime: producers must not set it \
             (the broker stamps LogAppendTime itself)"
                .to_string(),
        );
    }
    match rules.create_time {
        Some(w) if h.timestamp_type() == TimestampType::CreateTime => {
            out_of_window(ts, rules.now_ms, w)
        }
        _ => None,
    }
}

fn out_of_window(ts: i64, now: i64, w: TimestampWindow) -> Option<String> {
    const NO_TIMESTAMP: i64 = -1;
    if ts == NO_TIMESTAMP {
        return None;
    }
    let too_old = now.saturating_sub(ts) > w.before_max_ms;
    let too_new = ts.saturating_sub(now) > w.after_max_ms;
    (too_old || too_new).then(|| {
        format!(
            "timestamp {ts} is out of range: it must be within [{}, {}] \
             (message.timestamp.before.max.ms={}, message.timestamp.after.max.ms={})",
            now.saturating_sub(w.before_max_ms),
            now.saturating_add(w.after_max_ms),
            w.before_max_ms,
            w.after_max_ms
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::{CRC_START, set_max_timestamp};
    use crate::{Compression, Record, RecordBatch};
    use bytes::Bytes;

    const NOW: i64 = 1_000_000;
    const OPEN: TimestampWindow = TimestampWindow {
        before_max_ms: i64::MAX,
        after_max_ms: 3_600_000,
    };

    fn rules() -> Rules {
        Rules {
            origin: Origin::Client,
            compacted: false,
            create_time: Some(OPEN),
            max_batch_bytes: 1_000_000,
            decompressed_bytes_max: crate::DECOMPRESSED_BYTES_MAX,
            now_ms: NOW,
        }
    }

    fn rec(key: Option<&str>, ts_delta: i64) -> Record {
        Record {
            offset_delta: 0,
            timestamp_delta: ts_delta,
            key: key.map(|k| Bytes::from(k.to_string())),
            value: Some(Bytes::from_static(b"v")),
            headers: vec![],
        }
    }

    fn batch_of(records: Vec<Record>, c: Compression) -> RecordBatch {
        let mut records = records;
        for (i, r) in records.iter_mut().enumerate() {
            r.offset_delta = i as i32;
        }
        RecordBatch::new(NOW, c, records)
    }

    fn encode(b: &RecordBatch) -> Vec<u8> {
        b.encode().unwrap()
    }

    /// Rewrites a field inside the CRC range and fixes the CRC, as a hostile client would.
    fn patch(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
        bytes[at..at + value.len()].copy_from_slice(value);
        let crc = crc32c::crc32c(&bytes[CRC_START..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn kind(r: Result<Checked, Invalid>) -> String {
        match r {
            Ok(_) => "ok".into(),
            Err(Invalid::Corrupt(_)) => "corrupt".into(),
            Err(Invalid::TooLarge { .. }) => "too large".into(),
            Err(Invalid::Batch(_)) => "batch".into(),
            Err(Invalid::Records {
                timestamps,
                problems,
                ..
            }) => format!(
                "records{}:{:?}",
                if timestamps { "/ts" } else { "" },
                problems.iter().map(|p| p.index).collect::<Vec<_>>()
            ),
        }
    }

    #[test]
    fn table() {
        let plain = encode(&batch_of(
            vec![rec(Some("a"), 0), rec(None, 5)],
            Compression::None,
        ));
        let zstd = encode(&batch_of(
            vec![rec(Some("a"), 0), rec(None, 5)],
            Compression::Zstd,
        ));
        let mut control = batch_of(vec![rec(Some("a"), 0)], Compression::None);
        control.is_control = true;
        let mut txn_no_pid = batch_of(vec![rec(Some("a"), 0)], Compression::None);
        txn_no_pid.is_transactional = true;
        let mut pid_no_seq = batch_of(vec![rec(Some("a"), 0)], Compression::None);
        pid_no_seq.producer_id = 7;
        pid_no_seq.producer_epoch = 0;
        let mut deltas = batch_of(
            vec![rec(Some("a"), 0), rec(Some("b"), 0)],
            Compression::None,
        );
        deltas.records[1].offset_delta = 5;
        deltas.last_offset_delta = 1;
        let future = encode(&batch_of(
            vec![rec(Some("a"), 0), rec(Some("b"), 3_600_001)],
            Compression::Gzip,
        ));
        let mut log_append = batch_of(vec![rec(Some("a"), 9_999_999)], Compression::None);
        log_append.timestamp_type = TimestampType::LogAppendTime;
        let broker = Rules {
            origin: Origin::Broker,
            ..rules()
        };
        let compacted = Rules {
            compacted: true,
            ..rules()
        };
        let log_append_time = Rules {
            create_time: None,
            ..rules()
        };
        let not_too_old = Rules {
            create_time: Some(TimestampWindow {
                before_max_ms: 10,
                after_max_ms: 10,
            }),
            now_ms: NOW + 11,
            ..rules()
        };
        let cases: Vec<(&str, Vec<u8>, Rules, &str)> = vec![
            ("plain batch", plain.clone(), rules(), "ok"),
            ("zstd batch", zstd.clone(), rules(), "ok"),
            (
                "keyless record, compacted",
                plain.clone(),
                compacted,
                "records:[1]",
            ),
            (
                "keyless record, compacted, zstd",
                zstd.clone(),
                compacted,
                "records:[1]",
            ),
            ("client control batch", encode(&control), rules(), "batch"),
            ("coordinator control batch", encode(&control), broker, "ok"),
            (
                "transactional without producer id",
                encode(&txn_no_pid),
                rules(),
                "batch",
            ),
            (
                "producer id without sequence",
                encode(&pid_no_seq),
                rules(),
                "batch",
            ),
            (
                "offset deltas with a gap",
                encode(&deltas),
                rules(),
                "records:[1]",
            ),
            (
                "record 1 ms past after.max",
                future.clone(),
                rules(),
                "records/ts:[1]",
            ),
            (
                "LogAppendTime topic takes any timestamp",
                future,
                log_append_time,
                "ok",
            ),
            (
                "client LogAppendTime batch, CreateTime topic",
                encode(&log_append),
                rules(),
                "records/ts:[0]",
            ),
            (
                "client LogAppendTime batch, LogAppendTime topic",
                encode(&log_append),
                log_append_time,
                "records/ts:[0]",
            ),
            (
                "coordinator LogAppendTime batch, LogAppendTime topic",
                encode(&log_append),
                Rules {
                    origin: Origin::Broker,
                    ..log_append_time
                },
                "ok",
            ),
            (
                "record older than before.max",
                plain.clone(),
                not_too_old,
                "records/ts:[0]",
            ),
            (
                "count says 3, holds 2",
                patch(plain.clone(), 57, &3i32.to_be_bytes()),
                broker,
                "batch",
            ),
            (
                "coordinator batch whose last offset delta disagrees",
                patch(plain.clone(), 23, &5i32.to_be_bytes()),
                broker,
                "batch",
            ),
            (
                "count says 3, delta says 1",
                patch(plain.clone(), 57, &3i32.to_be_bytes()),
                rules(),
                "batch",
            ),
            (
                "count 0",
                patch(plain.clone(), 57, &0i32.to_be_bytes()),
                rules(),
                "batch",
            ),
            (
                "codec id 5",
                patch(plain.clone(), 22, &[5]),
                rules(),
                "corrupt",
            ),
            (
                "zstd flag on plain records",
                patch(plain.clone(), 22, &[4]),
                rules(),
                "corrupt",
            ),
            (
                "garbage records",
                patch(plain.clone(), 61, &[0xff; 8]),
                rules(),
                "corrupt",
            ),
            (
                "CRC wrong",
                {
                    let mut b = plain.clone();
                    b[70] ^= 1;
                    b
                },
                rules(),
                "corrupt",
            ),
        ];
        for (name, bytes, rules, want) in cases {
            assert_eq!(kind(validate(&bytes, &rules)), want, "{name}");
        }
    }

    #[test]
    fn finds_the_real_max_timestamp() {
        let b = batch_of(
            vec![rec(Some("a"), 30), rec(Some("b"), 10)],
            Compression::None,
        );
        let mut bytes = encode(&b);
        assert_eq!(validate(&bytes, &rules()).unwrap().max_timestamp, NOW + 30);
        set_max_timestamp(&mut bytes, 0);
        let c = validate(&bytes, &rules()).unwrap();
        assert_eq!((c.header.max_timestamp, c.max_timestamp), (0, NOW + 30));
    }

    #[test]
    fn lists_at_most_the_cap_and_counts_the_rest() {
        let records = (0..PROBLEMS_LISTED_MAX + 7).map(|_| rec(None, 0)).collect();
        let bytes = encode(&batch_of(records, Compression::Lz4));
        let compacted = Rules {
            compacted: true,
            ..rules()
        };
        match validate(&bytes, &compacted) {
            Err(Invalid::Records {
                problems, message, ..
            }) => {
                assert_eq!(problems.len(), PROBLEMS_LISTED_MAX);
                assert!(message.contains("107 record(s)"), "{message}");
                assert!(message.contains("7 more not listed"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn decompression_is_counted_and_capped_by_the_rules() {
        let records: Vec<Record> = (0..100).map(|_| rec(Some("k"), 0)).collect();
        let plain = encode(&batch_of(records.clone(), Compression::None));
        assert_eq!(validate(&plain, &rules()).unwrap().decompressed_bytes, 0);
        let zstd = encode(&batch_of(records, Compression::Zstd));
        let used = validate(&zstd, &rules()).unwrap().decompressed_bytes;
        assert!(used > 100, "{used}");
        let exact = Rules {
            decompressed_bytes_max: used,
            ..rules()
        };
        assert!(validate(&zstd, &exact).is_ok());
        let short = Rules {
            decompressed_bytes_max: used - 1,
            ..rules()
        };
        assert!(matches!(
            validate(&zstd, &short),
            Err(Invalid::Corrupt(RecordError::DecompressedTooLarge { limit })) if limit == used - 1
        ));
    }
}
