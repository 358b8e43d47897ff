//! The broker's caps on what one fetch answers (Kafka's `fetch.max.bytes`), against the
//! real binary over raw Kafka frames: a consumer asking for 2 GiB gets at most the cap,
//! and still at least one batch, so it always makes progress; across partitions, only
//! the first partition with records may bring a batch past what is left of the cap.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kafka_protocol::messages::*;
use kavka_harness::{Node, NodeOptions};
use kavka_record::{Compression, Record, RecordBatch, batches};
use tokio::net::TcpStream;

mod raw_kafka;
use raw_kafka::{call, topic};

const CAP: usize = 1024 * 1024;
const BATCH_VALUE: usize = 400 * 1024;

/// Produces one batch of one `BATCH_VALUE`-byte record to `name`-`partition`.
async fn produce_one(c: &mut TcpStream, name: &str, partition: i32, fill: u8) {
    let record = Record {
        value: Some(Bytes::from(vec![fill; BATCH_VALUE])),
        ..Record::default()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let batch = RecordBatch::new(now, Compression::None, vec![record])
        .encode()
        .unwrap();
    let r: ProduceResponse = call(
        c,
        ApiKey::Produce,
        9,
        &ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic(name))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(Bytes::from(batch))),
                    ]),
            ]),
    )
    .await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

/// One fetch of `name`'s partitions at their offsets, in the order given: the records
/// bytes per partition.
async fn fetch_many(c: &mut TcpStream, name: &str, at: &[(i32, i64)]) -> Vec<(i32, Vec<u8>)> {
    let r: FetchResponse = call(
        c,
        ApiKey::Fetch,
        12,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(i32::MAX)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(topic(name))
                    .with_partitions(
                        at.iter()
                            .map(|&(p, offset)| {
                                fetch_request::FetchPartition::default()
                                    .with_partition(p)
                                    .with_fetch_offset(offset)
                                    .with_partition_max_bytes(i32::MAX)
                            })
                            .collect(),
                    ),
            ]),
    )
    .await;
    r.responses[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, 0);
            (
                p.partition_index,
                p.records.clone().unwrap_or_default().to_vec(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_across_partitions_stays_within_fetch_max_bytes() {
    const PARTITIONS: i32 = 4;
    const PER_PARTITION: i64 = 3;
    let n = Node::start(NodeOptions {
        args: vec!["--fetch-max-bytes".into(), CAP.to_string()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let out = n.cli(&[
        "topic",
        "create",
        "wide",
        "--partitions",
        &PARTITIONS.to_string(),
    ]);
    assert!(out.status.success(), "{out:?}");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            produce_one(&mut c, "wide", p, (p * 10) as u8 + i as u8).await;
        }
    }

    // 4.8 MiB asked for with a 1 MiB cap: two batches of the first partition, and none
    // of the next (one more 400 KiB batch would pass the cap).
    let at: Vec<(i32, i64)> = (0..PARTITIONS).map(|p| (p, 0)).collect();
    let got = fetch_many(&mut c, "wide", &at).await;
    let total: usize = got.iter().map(|(_, r)| r.len()).sum();
    assert!(total <= CAP, "{total} bytes over the {CAP} cap");
    assert_eq!(batches(&got[0].1).count(), 2, "{total} bytes");

    // A consumer that rotates its partitions (as Kafka's clients do) reads everything,
    // each answer within the cap.
    let mut offsets = vec![0i64; PARTITIONS as usize];
    for round in 0..(PARTITIONS as usize * PER_PARTITION as usize) {
        if offsets.iter().all(|&o| o == PER_PARTITION) {
            break;
        }
        let at: Vec<(i32, i64)> = (0..PARTITIONS)
            .map(|i| (i + round as i32) % PARTITIONS)
            .map(|p| (p, offsets[p as usize]))
            .collect();
        let got = fetch_many(&mut c, "wide", &at).await;
        let total: usize = got.iter().map(|(_, r)| r.len()).sum();
        assert!(
            total <= CAP,
            "round {round}: {total} bytes over the {CAP} cap"
        );
        for (p, records) in got {
            for b in batches(&records) {
                let (h, bytes) = b.unwrap();
                assert_eq!(h.base_offset, offsets[p as usize], "partition {p}");
                assert!(bytes.len() > BATCH_VALUE, "a whole batch");
                offsets[p as usize] = h.next_offset();
            }
        }
    }
    assert!(
        offsets.iter().all(|&o| o == PER_PARTITION),
        "the consumer got stuck at {offsets:?}"
    );
}

async fn fetch(c: &mut TcpStream, offset: i64, max_bytes: i32) -> Vec<u8> {
    let r: FetchResponse = call(
        c,
        ApiKey::Fetch,
        11,
        &FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(max_bytes)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(topic("big"))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(offset)
                            .with_partition_max_bytes(i32::MAX),
                    ]),
            ]),
    )
    .await;
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 0);
    p.records.clone().unwrap_or_default().to_vec()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_answers_at_most_fetch_max_bytes_and_at_least_one_batch() {
    let n = Node::start(NodeOptions {
        args: vec!["--fetch-max-bytes".into(), CAP.to_string()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let out = n.cli(&["topic", "create", "big", "--partitions", "1"]);
    assert!(out.status.success(), "{out:?}");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();

    // Eight batches of 400 KiB each: 3.2 MiB in the partition.
    for i in 0..8u8 {
        let record = Record {
            value: Some(Bytes::from(vec![i; BATCH_VALUE])),
            ..Record::default()
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        let batch = RecordBatch::new(now, Compression::None, vec![record])
            .encode()
            .unwrap();
        let r: ProduceResponse = call(
            &mut c,
            ApiKey::Produce,
            9,
            &ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![
                    produce_request::TopicProduceData::default()
                        .with_name(topic("big"))
                        .with_partition_data(vec![
                            produce_request::PartitionProduceData::default()
                                .with_index(0)
                                .with_records(Some(Bytes::from(batch))),
                        ]),
                ]),
        )
        .await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }

    // Asking for everything (2 GiB) gets whole batches up to the cap: two of them.
    let got = fetch(&mut c, 0, i32::MAX).await;
    let count = batches(&got).map(Result::unwrap).count();
    assert!(got.len() <= CAP, "{} bytes over the {CAP} cap", got.len());
    assert_eq!(count, 2, "{} bytes", got.len());

    // A request below one batch still gets one batch, so a consumer always moves on.
    let one = fetch(&mut c, 2, 1).await;
    let headers: Vec<_> = batches(&one).map(|b| b.unwrap().0).collect();
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].base_offset, 2);

    // Paging through with the cap reaches every record.
    let mut offset = 0;
    let mut rounds = 0;
    while offset < 8 {
        let got = fetch(&mut c, offset, i32::MAX).await;
        assert!(got.len() <= CAP);
        let last = batches(&got).map(|b| b.unwrap().0).last().unwrap();
        offset = last.next_offset();
        rounds += 1;
    }
    assert_eq!(rounds, 4);
}
