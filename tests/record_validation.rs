//! Kafka's record validation on append, against the real binary over raw Kafka frames:
//! each malformed batch a hostile or buggy client can send (right CRC, wrong insides) is
//! refused with Kafka's error and per-record list, nothing of it is stored, the
//! connection and the partition keep serving, and a librdkafka consumer (kcat) reads past
//! the place where it was refused.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kafka_protocol::messages::*;
use kavka_harness::kafka_clients::{bounded, clients_or_skip};
use kavka_harness::{Node, NodeOptions};
use kavka_record::{Compression, Record, RecordBatch};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::net::TcpStream;

mod raw_kafka;
use raw_kafka::{call, topic};

const PRODUCE_VERSION: i16 = 9;
const CORRUPT_MESSAGE: i16 = 2;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_RECORD: i16 = 87;
const MESSAGE_TOO_LARGE: i16 = 10;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn record(key: Option<&str>, value: &str, ts_delta: i64) -> Record {
    Record {
        offset_delta: 0,
        timestamp_delta: ts_delta,
        key: key.map(|k| Bytes::from(k.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: vec![],
    }
}

fn batch(records: Vec<Record>, codec: Compression) -> RecordBatch {
    let mut records = records;
    for (i, r) in records.iter_mut().enumerate() {
        r.offset_delta = i as i32;
    }
    RecordBatch::new(now_ms(), codec, records)
}

/// Overwrites bytes inside the CRC's range and recomputes the CRC, so only the
/// validator (not the CRC check) can tell.
fn patch(mut bytes: Vec<u8>, at: usize, value: &[u8]) -> Vec<u8> {
    bytes[at..at + value.len()].copy_from_slice(value);
    let crc = crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes
}

/// CRC-32C (Castagnoli), bitwise: the test computes it independently of the code under test.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn produce_req(name: &str, records: Vec<u8>) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic(name))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(Bytes::from(records))),
                ]),
        ])
}

async fn produce(
    c: &mut TcpStream,
    topic: &str,
    records: Vec<u8>,
) -> produce_response::PartitionProduceResponse {
    let r: ProduceResponse = call(
        c,
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_req(topic, records),
    )
    .await;
    r.responses[0].partition_responses[0].clone()
}

/// ListOffsets by timestamp on partition 0: (error code, offset).
async fn list_offset_at(c: &mut TcpStream, name: &str, timestamp: i64) -> (i16, i64) {
    let lo: ListOffsetsResponse = call(
        c,
        ApiKey::ListOffsets,
        6,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(timestamp),
                    ]),
            ]),
    )
    .await;
    let p = &lo.topics[0].partitions[0];
    (p.error_code, p.offset)
}

/// A producer id issued by the cluster (InitProducerId).
async fn init_producer_id(c: &mut TcpStream) -> i64 {
    let init: InitProducerIdResponse = call(
        c,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .await;
    assert_eq!(init.error_code, 0);
    init.producer_id.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_batches_are_refused_and_nothing_of_them_is_stored() {
    let n = Node::start(NodeOptions::default()).await.unwrap();
    for (topic, extra) in [("plain", None), ("keyed", Some("cleanup.policy=compact"))] {
        let mut args = vec!["topic", "create", topic, "--partitions", "1"];
        if let Some(c) = extra {
            args.extend(["--config", c]);
        }
        let out = n.cli(&args);
        assert!(out.status.success(), "{out:?}");
    }
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();

    let good = |v: &str| {
        batch(vec![record(Some("k"), v, 0)], Compression::None)
            .encode()
            .unwrap()
    };
    let first = produce(&mut c, "plain", good("first")).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));

    let two = batch(
        vec![record(Some("a"), "x", 0), record(Some("b"), "y", 0)],
        Compression::None,
    )
    .encode()
    .unwrap();
    let gzip = batch(vec![record(Some("a"), "x", 0)], Compression::Gzip)
        .encode()
        .unwrap();
    let mut control = batch(vec![record(Some("a"), "x", 0)], Compression::None);
    control.is_control = true;
    let mut txn = batch(vec![record(Some("a"), "x", 0)], Compression::None);
    txn.is_transactional = true;
    let mut log_append = batch(vec![record(Some("a"), "x", 0)], Compression::None);
    log_append.timestamp_type = kavka_record::TimestampType::LogAppendTime;
    // Each: the batch, the topic, the error code, and the words the message must hold.
    // CORRUPT_MESSAGE (retriable) only for bytes damaged on the way; a batch whose CRC
    // holds was sent as it is, and INVALID_RECORD tells the producer not to retry it.
    let cases: Vec<(&str, Vec<u8>, &str, i16, &str)> = vec![
        (
            "a flipped byte (CRC mismatch)",
            {
                let mut b = good("f");
                let last = b.len() - 1;
                b[last] ^= 0xff;
                b
            },
            "plain",
            CORRUPT_MESSAGE,
            "CRC mismatch",
        ),
        (
            "a batch flagged LogAppendTime by the producer",
            log_append.encode().unwrap(),
            "plain",
            INVALID_TIMESTAMP,
            "LogAppendTime",
        ),
        (
            "garbage records",
            patch(good("g"), 61, &[0xff; 9]),
            "plain",
            INVALID_RECORD,
            "malformed record 0",
        ),
        (
            "a record count the records do not match",
            patch(two.clone(), 57, &3i32.to_be_bytes()),
            "plain",
            INVALID_RECORD,
            "offset range [0, 1] but 3 records",
        ),
        (
            "a payload that is not gzip",
            patch(two.clone(), 22, &[1]),
            "plain",
            INVALID_RECORD,
            "gzip",
        ),
        (
            "a gzip payload cut short",
            {
                let mut b = gzip.clone();
                let len = b.len();
                b[len - 6..].fill(0);
                patch(b, 0, &[0])
            },
            "plain",
            INVALID_RECORD,
            "gzip",
        ),
        (
            "compression id 5",
            patch(good("c"), 22, &[5]),
            "plain",
            INVALID_RECORD,
            "unknown compression codec 5",
        ),
        (
            "a control batch from a client",
            control.encode().unwrap(),
            "plain",
            INVALID_RECORD,
            "control records",
        ),
        (
            "a transactional flag without a producer id",
            txn.encode().unwrap(),
            "plain",
            INVALID_RECORD,
            "needs a producer id",
        ),
        (
            "a keyless record in a compacted topic",
            batch(
                vec![record(Some("a"), "x", 0), record(None, "y", 0)],
                Compression::Zstd,
            )
            .encode()
            .unwrap(),
            "keyed",
            INVALID_RECORD,
            "without a key",
        ),
        (
            "a timestamp two hours ahead (message.timestamp.after.max.ms is an hour)",
            batch(
                vec![record(Some("a"), "x", 2 * 3_600_000)],
                Compression::None,
            )
            .encode()
            .unwrap(),
            "plain",
            INVALID_TIMESTAMP,
            "message.timestamp.after.max.ms=3600000",
        ),
    ];
    for (name, bytes, topic, code, words) in cases {
        let p = produce(&mut c, topic, bytes).await;
        let msg = p.error_message.as_deref().unwrap_or_default().to_string();
        assert_eq!(p.error_code, code, "{name}: {msg}");
        assert!(msg.contains(words), "{name}: {msg:?} lacks {words:?}");
        assert_eq!(p.base_offset, -1, "{name}");
    }

    // Per-record errors carry the record's index in the batch, as Kafka's record_errors.
    let keyless = batch(
        vec![
            record(Some("a"), "x", 0),
            record(None, "y", 0),
            record(None, "z", 0),
        ],
        Compression::None,
    )
    .encode()
    .unwrap();
    let p = produce(&mut c, "keyed", keyless).await;
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!((p.error_code, indexes), (INVALID_RECORD, vec![1, 2]));
    // A record that does not decode is named too.
    let p = produce(&mut c, "plain", patch(good("g"), 61, &[0xff; 9])).await;
    let indexes: Vec<i32> = p.record_errors.iter().map(|e| e.batch_index).collect();
    assert_eq!((p.error_code, indexes), (INVALID_RECORD, vec![0]));

    // The connection and the partition keep serving: the next good batch is offset 1 (none
    // of the refused ones took an offset), and a keyed record goes into the compacted topic.
    let next = produce(&mut c, "plain", good("second")).await;
    assert_eq!((next.error_code, next.base_offset), (0, 1));
    let keyed = produce(&mut c, "keyed", good("kept")).await;
    assert_eq!((keyed.error_code, keyed.base_offset), (0, 0));

    // ListOffsets by timestamp still answers for every later timestamp.
    assert_eq!(
        list_offset_at(&mut c, "plain", now_ms() - 600_000).await,
        (0, 0)
    );

    // A librdkafka consumer reads both good records and reaches the end (before, one
    // stored garbage batch stopped it at that offset for good).
    if clients_or_skip("malformed_batches_are_refused_and_nothing_of_them_is_stored").is_some() {
        let out = bounded(
            60,
            "kcat",
            &[
                "-b",
                &n.kafka_addr().to_string(),
                "-C",
                "-t",
                "plain",
                "-o",
                "beginning",
                "-e",
                "-f",
                "%o:%s\n",
            ],
            b"",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(text.lines().collect::<Vec<_>>(), ["0:first", "1:second"]);
    }
}

/// The node's peak resident memory (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// A valid zstd batch of two million empty records (about 1.5 MB that decode to 14 MB) is validated on produce and scanned by ListOffsets by
/// timestamp with memory bounded by the decompressed size: records are read in place,
/// never as a `Vec<Record>` (which took ~17 bytes per decompressed byte: 1.6 GiB for one
/// such request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compression_bomb_is_read_in_bounded_memory() {
    const RECORDS: usize = 2_000_000;
    let n = Node::start(NodeOptions::default()).await.unwrap();
    let out = n.cli(&[
        "topic",
        "create",
        "bomb",
        "--partitions",
        "1",
        "--config",
        "max.message.bytes=4000000",
    ]);
    assert!(out.status.success(), "{out:?}");
    let pid = n.pid().unwrap();
    let base = now_ms();
    let records = (0..RECORDS)
        .map(|i| Record {
            offset_delta: i as i32,
            // Only the last record is at base + 1: a scan for it reads every record.
            timestamp_delta: i64::from(i == RECORDS - 1),
            ..Record::default()
        })
        .collect();
    let bytes = RecordBatch::new(base, Compression::Zstd, records)
        .encode()
        .unwrap();
    assert!(bytes.len() < 4_000_000, "{} bytes", bytes.len());
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    let p = produce(&mut c, "bomb", bytes.clone()).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0));

    let before = peak_rss_kib(pid);
    assert_eq!(
        list_offset_at(&mut c, "bomb", base + 1).await,
        (0, RECORDS as i64 - 1)
    );
    let after = peak_rss_kib(pid);
    // Decompressed, the batch is ~14 MB; the bound allows that several times over.
    // Decoding it into records took ~220 MB more.
    let grown_mib = after.saturating_sub(before) / 1024;
    eprintln!("ListOffsets over the bomb: peak RSS {before} -> {after} KiB");
    assert!(
        grown_mib < 100,
        "peak RSS grew {grown_mib} MiB ({before} -> {after} KiB)"
    );

    // Into a topic that re-compresses (compression.type=lz4): the records section is
    // re-encoded whole, never decoded into records.
    let out = n.cli(&[
        "topic",
        "create",
        "bomb-lz4",
        "--partitions",
        "1",
        "--config",
        "max.message.bytes=30000000",
        "--config",
        "compression.type=lz4",
    ]);
    assert!(out.status.success(), "{out:?}");
    let before = peak_rss_kib(pid);
    let p = produce(&mut c, "bomb-lz4", bytes).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0));
    let after = peak_rss_kib(pid);
    eprintln!("Produce of the bomb into an lz4 topic: peak RSS {before} -> {after} KiB");
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 100,
        "peak RSS grew {grown_mib} MiB ({before} -> {after} KiB)"
    );
}

/// One produce request may decompress at most 1 GiB over all its batches: six bombs of
/// 250 MiB each (a few KB each on the wire), one per partition, get at least four
/// through and the rest refused with MESSAGE_TOO_LARGE naming the request's budget,
/// while the node keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_request_decompresses_at_most_its_budget() {
    const PARTITIONS: i32 = 6;
    let n = Node::start(NodeOptions::default()).await.unwrap();
    let out = n.cli(&[
        "topic",
        "create",
        "bombs",
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let bomb = RecordBatch::new(
        now_ms(),
        Compression::Zstd,
        vec![Record {
            value: Some(Bytes::from(vec![0u8; 250 << 20])),
            ..Record::default()
        }],
    )
    .encode()
    .unwrap();
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let bomb = Bytes::from(bomb);
    let req = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic("bombs"))
                .with_partition_data(
                    (0..PARTITIONS)
                        .map(|p| {
                            produce_request::PartitionProduceData::default()
                                .with_index(p)
                                .with_records(Some(bomb.clone()))
                        })
                        .collect(),
                ),
        ]);
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    let r: ProduceResponse = call(&mut c, ApiKey::Produce, PRODUCE_VERSION, &req).await;
    let parts = &r.responses[0].partition_responses;
    let accepted = parts.iter().filter(|p| p.error_code == 0).count();
    let refused: Vec<_> = parts.iter().filter(|p| p.error_code != 0).collect();
    assert!(accepted >= 4, "{parts:?}");
    assert!(
        !refused.is_empty(),
        "every bomb was decompressed: {parts:?}"
    );
    for p in refused {
        assert_eq!(p.error_code, MESSAGE_TOO_LARGE, "{p:?}");
        let message = p
            .error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default();
        assert!(message.contains("decompression budget"), "{message}");
    }
    // The next request has a budget of its own, and the node serves it.
    let small = RecordBatch::new(now_ms(), Compression::Zstd, vec![record(None, "after", 0)])
        .encode()
        .unwrap();
    let p = produce(&mut c, "bombs", small).await;
    assert_eq!(p.error_code, 0, "{p:?}");
}

/// Idempotent batches need a producer id the cluster issued: a made-up one is refused
/// with UNKNOWN_PRODUCER_ID and takes no producer state, an issued one is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_producer_ids_are_refused() {
    let n = Node::start(NodeOptions::default()).await.unwrap();
    let out = n.cli(&["topic", "create", "idem", "--partitions", "1"]);
    assert!(out.status.success(), "{out:?}");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    let idempotent = |pid: i64, value: &str| {
        let mut b = batch(vec![record(Some("k"), value, 0)], Compression::None);
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.base_sequence = 0;
        b.encode().unwrap()
    };
    let issued = init_producer_id(&mut c).await;

    const UNKNOWN_PRODUCER_ID: i16 = 59;
    for made_up in [issued + 1_000_000, 123_456_789, i64::MAX] {
        let p = produce(&mut c, "idem", idempotent(made_up, "forged")).await;
        let msg = p.error_message.as_deref().unwrap_or_default().to_string();
        assert_eq!(p.error_code, UNKNOWN_PRODUCER_ID, "{made_up}: {msg}");
        assert!(msg.contains("never issued"), "{msg}");
    }
    let p = produce(&mut c, "idem", idempotent(issued, "real")).await;
    assert_eq!((p.error_code, p.base_offset), (0, 0));
}

/// `producer.id.expiration.ms`: a partition forgets a producer that has been silent that
/// long, so made-up or abandoned ids do not hold state forever; until then a retry is
/// recognised, afterwards the same batch is a new write (as in Kafka).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_producers_expire() {
    let n = Node::start(NodeOptions {
        args: [
            // Long enough that the retry below, on a loaded machine, comes well within it.
            "--producer-id-expiration-ms",
            "10000",
            "--log-retention-check-interval-ms",
            "200",
        ]
        .map(String::from)
        .to_vec(),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let out = n.cli(&["topic", "create", "idle", "--partitions", "1"]);
    assert!(out.status.success(), "{out:?}");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    let mut b = batch(vec![record(Some("k"), "v", 0)], Compression::None);
    b.producer_id = init_producer_id(&mut c).await;
    b.producer_epoch = 0;
    b.base_sequence = 0;
    let bytes = b.encode().unwrap();

    let first = produce(&mut c, "idle", bytes.clone()).await;
    assert_eq!((first.error_code, first.base_offset), (0, 0));
    let retry = produce(&mut c, "idle", bytes.clone()).await;
    assert_eq!(
        (retry.error_code, retry.base_offset),
        (0, 0),
        "a retry, not a write"
    );

    kavka_harness::wait_until(
        "the producer expired",
        std::time::Duration::from_secs(60),
        || {
            let log = n.log();
            async move { log.contains("expired idle producer ids") }
        },
    )
    .await
    .unwrap();
    let again = produce(&mut c, "idle", bytes).await;
    assert_eq!(
        (again.error_code, again.base_offset),
        (0, 1),
        "a forgotten producer's batch is written anew"
    );
}
