//! File descriptors as a resource that runs out: a node raises its soft open-file limit
//! to the hard one at start; when partitions still cannot open their logs (no
//! descriptors left), they are offline with KAFKA_STORAGE_ERROR while the rest serve, and
//! they come online by themselves once descriptors are free again (retries with backoff).
//! (While none are left, appends that need a file, such as the first of a new leader
//! epoch, fail with KAFKA_STORAGE_ERROR naming it, everywhere on the node.)
//!
//! Closed segments hold no descriptors (reads of them share a bounded cache), so a topic
//! of many small segments runs on a low limit.
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

const SOFT: u64 = 48;
const HARD: u64 = 110;
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

/// A batch of one record holding `value`.
fn one_record(value: Vec<u8>) -> Bytes {
    let batch = RecordBatch::new(
        0,
        Compression::None,
        vec![Record {
            value: Some(Bytes::from(value)),
            ..Record::default()
        }],
    )
    .encode()
    .unwrap();
    Bytes::from(batch)
}

/// One produce (acks=1) of `batch` to each of `partitions` of `name`: each one's error code.
async fn produce(c: &mut TcpStream, name: &str, partitions: &[i32], batch: Bytes) -> Vec<i16> {
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
                        partitions
                            .iter()
                            .map(|&p| {
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

/// One produce to every partition of `name`; the error code of each.
async fn produce_all(c: &mut TcpStream, name: &str) -> Vec<i16> {
    let all: Vec<i32> = (0..PARTITIONS).collect();
    produce(c, name, &all, one_record(b"v".to_vec())).await
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

/// Descriptors the process `pid` holds.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// One produce of one record of `len` bytes to partition 0 of `name`: its error code.
async fn produce_one(c: &mut TcpStream, name: &str, i: usize, len: usize) -> i16 {
    let mut value = format!("{i:06}-").into_bytes();
    value.resize(len, b'x');
    produce(c, name, &[0], one_record(value)).await[0]
}

/// Issue 16 item 6: `segment.bytes=1024` once filled a node's descriptors (three per
/// segment). Now 400 segments are written and read back on a 110-descriptor limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_small_segments_run_on_a_low_open_file_limit() {
    set_limits(SOFT, HARD);
    let n = Node::start(NodeOptions::default()).await.unwrap();
    let pid = n.pid().unwrap();
    let out = n.cli(&[
        "topic",
        "create",
        "small",
        "--partitions",
        "1",
        "--config",
        "internal.segment.bytes=1024",
    ]);
    assert!(out.status.success(), "{out:?}");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    const RECORDS: usize = 400;
    let mut most = 0;
    for i in 0..RECORDS {
        // Each record fills a segment of its own.
        assert_eq!(
            produce_one(&mut c, "small", i, 1100).await,
            0,
            "record {i}\n{}",
            n.log()
        );
        most = most.max(open_files(pid));
    }
    let d = std::fs::read_dir(n.data_dir().join("small-0"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
        })
        .count();
    assert!(d >= RECORDS / 2, "{d} segments");
    assert!(most < HARD as usize, "{most} descriptors while writing");

    // Read from the beginning: every record, through the bounded cache of closed segments.
    let out = n.cli(&["consume", "small", "--from-beginning", "--format", "%v"]);
    assert!(out.status.success(), "{out:?}");
    let values = String::from_utf8(out.stdout).unwrap();
    let got: Vec<&str> = values.lines().map(|v| &v[..6]).collect();
    let want: Vec<String> = (0..RECORDS).map(|i| format!("{i:06}")).collect();
    assert_eq!(got, want);
    let after = open_files(pid);
    assert!(
        after <= most + HARD as usize / 4,
        "{after} descriptors after reading (writing took {most})"
    );
    assert!(!n.log().contains("Too many open files"), "{}", n.log());
}
