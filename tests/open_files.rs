//! File descriptors as a resource that runs out: a node raises its soft open-file limit
//! to the hard one at start; when partitions still cannot open their logs (no
//! descriptors left), they are offline with KAFKA_STORAGE_ERROR while the rest serve, and
//! they come online by themselves once descriptors are free again (retries with backoff).
//! (While none are left, appends that need a file, such as the first of a new leader
//! epoch, fail with KAFKA_STORAGE_ERROR naming it, everywhere on the node.)
//!
//! Its own test binary: it lowers this process's limits, which the node inherits.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kafka_protocol::messages::*;
use kavka_harness::{Node, NodeOptions, wait_until};
use kavka_record::{Compression, Record, RecordBatch};
use std::time::Duration;
use tokio::net::TcpStream;

mod raw_kafka;
use raw_kafka::{call, topic};

const SOFT: u64 = 128;
const HARD: u64 = 320;
const PARTITIONS: i32 = 60;
const KAFKA_STORAGE_ERROR: i16 = 56;

fn set_limits(soft: u64, hard: u64) {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads one valid rlimit struct.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
}

/// The node's soft "Max open files" from /proc.
fn open_files_limit(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    line.split_whitespace().nth(3).unwrap().parse().unwrap()
}

/// One produce to every partition of `name`; the error code of each.
async fn produce_all(c: &mut TcpStream, name: &str) -> Vec<i16> {
    let batch = RecordBatch::new(
        0,
        Compression::None,
        vec![Record {
            value: Some(Bytes::from_static(b"v")),
            ..Record::default()
        }],
    )
    .encode()
    .unwrap();
    let batch = Bytes::from(batch);
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
                    .with_partition_data(
                        (0..PARTITIONS)
                            .map(|p| {
                                produce_request::PartitionProduceData::default()
                                    .with_index(p)
                                    .with_records(Some(batch.clone()))
                            })
                            .collect(),
                    ),
            ]),
    )
    .await;
    r.responses[0]
        .partition_responses
        .iter()
        .map(|p| p.error_code)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_without_file_descriptors_come_online_once_there_are_some() {
    set_limits(SOFT, HARD);
    let n = Node::start(NodeOptions::default()).await.unwrap();
    assert_eq!(
        open_files_limit(n.pid().unwrap()),
        HARD,
        "soft limit raised"
    );
    assert!(
        n.log().contains("the open file limit is low"),
        "{}",
        n.log()
    );

    let create = |name: &str| {
        let out = n.cli(&[
            "topic",
            "create",
            name,
            "--partitions",
            &PARTITIONS.to_string(),
        ]);
        assert!(out.status.success(), "{out:?}");
    };
    create("first");
    create("second");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    // The second topic's partitions run out of descriptors: some are offline, and say so.
    let mut codes = Vec::new();
    wait_until(
        "the second topic's partitions to be hosted",
        Duration::from_secs(60),
        || {
            let n = &n;
            async move { n.log().matches("partition offline").count() > 0 }
        },
    )
    .await
    .unwrap();
    for _ in 0..3 {
        codes = produce_all(&mut c, "second").await;
    }
    let offline = codes.iter().filter(|&&e| e == KAFKA_STORAGE_ERROR).count();
    assert!(offline > 0, "{codes:?}");
    assert!(
        codes.iter().all(|&e| e == 0 || e == KAFKA_STORAGE_ERROR),
        "{codes:?}"
    );
    assert!(
        n.log().contains("Too many open files"),
        "the cause is named"
    );

    // Free the descriptors: every partition of the second topic comes online by itself.
    let out = n.cli(&["topic", "delete", "first"]);
    assert!(out.status.success(), "{out:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let codes = produce_all(&mut c, "second").await;
        if codes.iter().all(|&e| e == 0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still offline after 120 s: {codes:?}\n{}",
            n.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(n.log().contains("its log opened on a retry"));
}
