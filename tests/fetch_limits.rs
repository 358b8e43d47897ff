//! The broker's caps on what one fetch answers (Kafka's `fetch.max.bytes`), against the
//! real binary over raw Kafka frames: a consumer asking for 2 GiB gets at most the cap,
//! and still at least one batch, so it always makes progress.

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
