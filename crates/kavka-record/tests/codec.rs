//! Property tests for the batch codec, and byte-exact cross-checks against the
//! `kafka-protocol` crate's independent encoder and decoder.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::{Bytes, BytesMut};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records as kp;
use kavka_record::{
    BatchHeader, Compression, Header, Origin, Record, RecordBatch, RecordError, Rules,
    TimestampType, batches, set_base_offset, set_log_append_time, set_partition_leader_epoch,
    validate,
};
use proptest::prelude::*;

fn codec() -> impl Strategy<Value = Compression> {
    prop::sample::select(Compression::ALL.to_vec())
}

fn bytes_opt() -> impl Strategy<Value = Option<Bytes>> {
    prop::option::of(prop::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from))
}

/// Records with unique header keys (Kafka clients allow duplicates; the kafka-protocol
/// crate keeps headers in a map, so cross-checks use unique keys).
fn records() -> impl Strategy<Value = Vec<Record>> {
    prop::collection::vec(
        (
            0i64..100_000,
            bytes_opt(),
            bytes_opt(),
            prop::collection::btree_map("[a-z]{1,8}", bytes_opt(), 0..4),
        ),
        1..20,
    )
    .prop_map(|rs| {
        rs.into_iter()
            .enumerate()
            .map(|(i, (ts, key, value, headers))| Record {
                offset_delta: i as i32,
                timestamp_delta: ts,
                key,
                value,
                headers: headers
                    .into_iter()
                    .map(|(key, value)| Header { key, value })
                    .collect(),
            })
            .collect()
    })
}

fn batch() -> impl Strategy<Value = RecordBatch> {
    (
        records(),
        codec(),
        0i64..1 << 40,
        -1i32..100,
        any::<bool>(),
        1_600_000_000_000i64..1_900_000_000_000,
    )
        .prop_map(|(records, compression, base, epoch, log_append, ts)| {
            let mut b = RecordBatch::new(ts, compression, records);
            b.base_offset = base;
            b.partition_leader_epoch = epoch;
            if log_append {
                b.timestamp_type = TimestampType::LogAppendTime;
            }
            b
        })
}

fn to_kp(batch: &RecordBatch) -> Vec<kp::Record> {
    batch
        .offsets_and_timestamps()
        .map(|(offset, timestamp, r)| {
            let mut headers = IndexMap::new();
            for h in &r.headers {
                headers.insert(StrBytes::from_string(h.key.clone()), h.value.clone());
            }
            kp::Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: batch.partition_leader_epoch,
                producer_id: batch.producer_id,
                producer_epoch: batch.producer_epoch,
                timestamp_type: kp::TimestampType::Creation,
                offset,
                sequence: batch.base_sequence + r.offset_delta,
                timestamp,
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
            }
        })
        .collect()
}

fn kp_codec(c: Compression) -> kp::Compression {
    match c {
        Compression::None => kp::Compression::None,
        Compression::Gzip => kp::Compression::Gzip,
        Compression::Snappy => kp::Compression::Snappy,
        Compression::Lz4 => kp::Compression::Lz4,
        Compression::Zstd => kp::Compression::Zstd,
    }
}

fn kp_encode(batch: &RecordBatch) -> Vec<u8> {
    let mut buf = BytesMut::new();
    let opts = kp::RecordEncodeOptions {
        version: 2,
        compression: kp_codec(batch.compression),
    };
    kp::RecordBatchEncoder::encode(&mut buf, to_kp(batch).iter(), &opts).unwrap();
    buf.to_vec()
}

/// kafka-protocol sets base timestamp = min timestamp, as our producers do, and keeps
/// records in one batch only while their sequences advance with their offsets (an
/// idempotent producer's batch).
fn normalise_base_timestamp(mut b: RecordBatch) -> RecordBatch {
    b.producer_id = 4242;
    b.producer_epoch = 3;
    b.base_sequence = (b.base_offset % 1000) as i32;
    let min = b
        .records
        .iter()
        .map(|r| r.timestamp_delta)
        .min()
        .unwrap_or(0);
    b.base_timestamp += min;
    for r in &mut b.records {
        r.timestamp_delta -= min;
    }
    b.timestamp_type = TimestampType::CreateTime;
    b
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn decode_inverts_encode(b in batch()) {
        let bytes = b.encode().unwrap();
        let (back, used) = RecordBatch::decode(&bytes).unwrap();
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(back, b);
    }

    #[test]
    fn uncompressed_bytes_match_kafka_protocol_exactly(b in batch()) {
        let mut b = normalise_base_timestamp(b);
        b.compression = Compression::None;
        prop_assert_eq!(b.encode().unwrap(), kp_encode(&b));
    }

    #[test]
    fn kafka_protocol_reads_ours_and_we_read_theirs(b in batch()) {
        let b = normalise_base_timestamp(b);
        // Theirs -> ours, every codec.
        let theirs = kp_encode(&b);
        let (decoded, _) = RecordBatch::decode(&theirs).unwrap();
        prop_assert_eq!(&decoded.records, &b.records);
        prop_assert_eq!(decoded.compression, b.compression);
        // Ours -> theirs, every codec.
        let mut ours = Bytes::from(b.encode().unwrap());
        let set = kp::RecordBatchDecoder::decode(&mut ours).unwrap();
        let want = to_kp(&b);
        prop_assert_eq!(set.records.len(), want.len());
        for (got, want) in set.records.iter().zip(&want) {
            prop_assert_eq!((got.offset, got.timestamp), (want.offset, want.timestamp));
            prop_assert_eq!(&got.key, &want.key);
            prop_assert_eq!(&got.value, &want.value);
            prop_assert_eq!(&got.headers, &want.headers);
        }
    }

    #[test]
    fn decoding_any_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = RecordBatch::decode(&data);
        let _ = batches(&data).count();
    }

    /// Hostile bytes behind a correct CRC (what a client can send): the validator never
    /// panics, and never accepts a batch the full decoder refuses.
    #[test]
    fn validation_of_crc_fixed_mutations_never_panics_nor_accepts_undecodable_batches(
        b in batch(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = b.encode().unwrap();
        for (pos, value) in edits {
            let at = 21 + pos.index(bytes.len() - 21);
            bytes[at] = value;
        }
        let crc = crc32c::crc32c(&bytes[21..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        for origin in [Origin::Client, Origin::Broker] {
            let rules = Rules {
                origin,
                compacted: false,
                create_time: None,
                max_batch_bytes: usize::MAX,
                decompressed_bytes_max: kavka_record::DECOMPRESSED_BYTES_MAX,
                now_ms: 0,
            };
            if validate(&bytes, &rules).is_ok() {
                let (ours, _) = RecordBatch::decode(&bytes).map_err(|e| {
                    TestCaseError::fail(format!("validated, but our decoder refuses: {e}"))
                })?;
                // An independent decoder (the kafka-protocol crate's) reads the same records.
                // Not for snappy: like snappy-java, we take xerial framing by its 8-byte
                // magic whatever its version fields; kafka-protocol wants all 16 bytes.
                if ours.compression == Compression::Snappy {
                    continue;
                }
                let mut theirs = Bytes::from(bytes.clone());
                let set = kp::RecordBatchDecoder::decode(&mut theirs).map_err(|e| {
                    TestCaseError::fail(format!("validated, but kafka-protocol refuses: {e}"))
                })?;
                prop_assert_eq!(set.records.len(), ours.records.len());
                for (got, want) in set.records.iter().zip(&ours.records) {
                    prop_assert_eq!(&got.key, &want.key);
                    prop_assert_eq!(&got.value, &want.value);
                }
            }
        }
    }

    #[test]
    fn any_flipped_bit_after_the_crc_field_is_caught(b in batch(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut bytes = b.encode().unwrap();
        let at = 21 + pos.index(bytes.len() - 21);
        bytes[at] ^= 1 << bit;
        let is_crc_mismatch = matches!(RecordBatch::decode(&bytes), Err(RecordError::CrcMismatch { .. }));
        prop_assert!(is_crc_mismatch);
    }
}

#[test]
fn header_rewrites_keep_the_batch_valid() {
    let b = RecordBatch::new(
        1_700_000_000_000,
        Compression::Zstd,
        vec![Record {
            offset_delta: 0,
            value: Some(Bytes::from_static(b"v")),
            ..Record::default()
        }],
    );
    let mut bytes = b.encode().unwrap();
    set_base_offset(&mut bytes, 42);
    set_partition_leader_epoch(&mut bytes, 7);
    let h = BatchHeader::parse(&bytes).unwrap();
    assert_eq!((h.base_offset, h.partition_leader_epoch), (42, 7));
    h.verify_crc(&bytes).unwrap();

    set_log_append_time(&mut bytes, 1_800_000_000_000);
    let (back, _) = RecordBatch::decode(&bytes).unwrap();
    assert_eq!(back.timestamp_type, TimestampType::LogAppendTime);
    let (_, ts, _) = back.offsets_and_timestamps().next().unwrap();
    assert_eq!(ts, 1_800_000_000_000);
}

#[test]
fn clear_errors_for_bad_batches() {
    let b = RecordBatch::new(0, Compression::None, vec![Record::default()]);
    let good = b.encode().unwrap();

    let mut magic1 = good.clone();
    magic1[16] = 1;
    assert_eq!(
        RecordBatch::decode(&magic1).unwrap_err().to_string(),
        "unsupported magic 1: only RecordBatch v2 (magic 2) is supported"
    );

    let cut = &good[..good.len() - 1];
    assert!(matches!(
        RecordBatch::decode(cut),
        Err(RecordError::Truncated { .. })
    ));

    let mut bad_codec = good.clone();
    bad_codec[22] |= 0x07;
    let crc = crc32c::crc32c(&bad_codec[21..]);
    bad_codec[17..21].copy_from_slice(&crc.to_be_bytes());
    assert_eq!(
        RecordBatch::decode(&bad_codec).unwrap_err(),
        RecordError::UnknownCompression(7)
    );

    let mut lying_count = good.clone();
    lying_count[57..61].copy_from_slice(&1_000_000i32.to_be_bytes());
    let crc = crc32c::crc32c(&lying_count[21..]);
    lying_count[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(matches!(
        RecordBatch::decode(&lying_count),
        Err(RecordError::RecordCountMismatch {
            declared: 1_000_000,
            actual: 1
        })
    ));
}

#[test]
fn batches_splits_concatenated_batches_and_stops_at_a_torn_tail() {
    let mut buf = Vec::new();
    for i in 0..3 {
        let mut b = RecordBatch::new(0, Compression::Lz4, vec![Record::default()]);
        b.base_offset = i;
        buf.extend(b.encode().unwrap());
    }
    let whole = buf.len();
    buf.extend_from_slice(&[0, 0, 0]);
    let parsed: Vec<_> = batches(&buf).collect();
    assert_eq!(parsed.len(), 4);
    let offsets: Vec<i64> = parsed[..3]
        .iter()
        .map(|r| r.as_ref().unwrap().0.base_offset)
        .collect();
    assert_eq!(offsets, [0, 1, 2]);
    assert!(parsed[3].is_err());
    assert_eq!(batches(&buf[..whole]).count(), 3);
}
