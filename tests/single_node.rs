//! A real `kavka server` process on 127.0.0.1: the CLI walkthrough from the README,
//! durability across restarts, long-poll fetch, offsets, retention, and bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kavka_client::{Client, NewTopic, ProducerRecord};
use kavka_harness::{Node, NodeOptions, wait_until};
use kavka_model::{ErrorCode, partitioner};
use kavka_proto::v1::{self, broker_service_client::BrokerServiceClient};
use kavka_record::{Compression, Record, RecordBatch};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[track_caller]
fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "command failed:\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

#[track_caller]
fn fails_with(o: std::process::Output, needle: &str) {
    assert!(
        !o.status.success(),
        "command succeeded, expected failure with '{needle}': {}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(needle),
        "stderr lacks '{needle}': {}",
        stderr(&o)
    );
}

async fn node() -> Node {
    Node::start(NodeOptions::default())
        .await
        .expect("node starts")
}

async fn raw_broker(node: &Node) -> BrokerServiceClient<tonic::transport::Channel> {
    BrokerServiceClient::connect(format!("http://{}", node.addr()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_walkthrough_survives_restarts() {
    let mut node = node().await;
    ok(node.cli(&["topic", "create", "orders", "--partitions", "3"]));
    ok(node.cli_with_stdin(
        &[
            "produce",
            "orders",
            "--key-delimiter",
            ":",
            "-H",
            "source=cli",
            "--compression",
            "zstd",
        ],
        b"k1:hello\nk2:world\n",
    ));
    let fmt = [
        "consume",
        "orders",
        "--from-beginning",
        "--format",
        "%p/%o %k=%v %h",
    ];
    let out = ok(node.cli(&fmt));
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    // Keys land where Kafka's partitioner puts them, at offset 0 of each partition.
    let p1 = partitioner::partition_for_key(b"k1", 3);
    let p2 = partitioner::partition_for_key(b"k2", 3);
    let mut want = vec![
        format!("{p1}/0 k1=hello source=cli"),
        format!("{p2}/0 k2=world source=cli"),
    ];
    want.sort();
    assert_eq!(lines, want);

    let json = ok(node.cli(&[
        "consume",
        "orders",
        "--from-beginning",
        "--output",
        "json",
        "-q",
    ]));
    let records: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 2);
    for r in &records {
        assert_eq!(r["topic"], "orders");
        assert_eq!(r["headers"]["source"], "cli");
        assert!(r["timestamp"].as_i64().unwrap() > 1_600_000_000_000);
        assert!(r["value"] == "hello" || r["value"] == "world");
    }

    // A crash (SIGKILL) and a clean stop (SIGTERM) both keep everything.
    node.kill();
    node.restart().await.unwrap();
    assert_eq!(ok(node.cli(&fmt)).lines().count(), 2);
    assert!(
        node.terminate(),
        "SIGTERM should stop the node cleanly:\n{}",
        node.log()
    );
    node.restart().await.unwrap();
    let mut again: Vec<String> = ok(node.cli(&fmt)).lines().map(String::from).collect();
    again.sort();
    assert_eq!(again, want);

    let described = ok(node.cli(&["topic", "describe", "orders", "--output", "json"]));
    let d: serde_json::Value = serde_json::from_str(&described).unwrap();
    assert_eq!(d["partitions"].as_array().unwrap().len(), 3);
    let total_hw: i64 = d["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["high_watermark"].as_i64().unwrap())
        .sum();
    assert_eq!(total_hw, 2);
    assert_eq!(d["configs"]["compression.type"], "producer");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_options_and_topic_admin() {
    let node = node().await;
    ok(node.cli(&[
        "topic",
        "create",
        "events",
        "-p",
        "1",
        "--config",
        "retention.ms=3600000",
    ]));
    let input: String = (0..50).map(|i| format!("v{i}\n")).collect();
    ok(node.cli_with_stdin(
        &["produce", "events", "--acks", "all", "-z", "lz4"],
        input.as_bytes(),
    ));
    let out = ok(node.cli(&["consume", "events", "--offset", "45", "--format", "%o:%v"]));
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["45:v45", "46:v46", "47:v47", "48:v48", "49:v49"]
    );
    let out = ok(node.cli(&[
        "consume",
        "events",
        "--from-beginning",
        "-n",
        "3",
        "--format",
        "%v",
    ]));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["v0", "v1", "v2"]);
    // Everything was produced just now: a timestamp far back finds offset 0, one in the
    // future finds nothing.
    let out = ok(node.cli(&[
        "consume",
        "events",
        "--from-timestamp",
        "2020-01-01T00:00:00Z",
        "-n",
        "1",
        "--format",
        "%o",
    ]));
    assert_eq!(out.trim(), "0");
    let out = ok(node.cli(&[
        "consume",
        "events",
        "--from-timestamp",
        "4000000000000",
        "--format",
        "%o",
    ]));
    assert_eq!(out.trim(), "");

    let listed = ok(node.cli(&["topic", "list", "-o", "json"]));
    assert!(listed.contains("\"events\""));
    let altered = ok(node.cli(&[
        "topic",
        "alter-config",
        "events",
        "--set",
        "retention.ms=1000",
        "--delete",
        "segment.ms",
        "-o",
        "json",
    ]));
    let v: serde_json::Value = serde_json::from_str(&altered).unwrap();
    assert_eq!(v["retention.ms"], "1000");
    let table = ok(node.cli(&["topic", "describe", "events"]));
    assert!(
        table.contains("retention.ms") && table.contains("1000"),
        "{table}"
    );
    ok(node.cli(&["topic", "delete", "events"]));
    fails_with(
        node.cli(&["topic", "describe", "events"]),
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    assert!(!node.data_dir().join("events-0").exists());
    // Re-creating the name starts empty.
    ok(node.cli(&["topic", "create", "events", "-p", "1"]));
    assert_eq!(
        ok(node.cli(&["consume", "events", "--from-beginning", "-q"])),
        ""
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_long_polls_until_a_record_arrives() {
    let node = node().await;
    let mut client = node.client().await.unwrap();
    client
        .create_topic(NewTopic {
            name: "lp".into(),
            partitions: 1,
            ..NewTopic::default()
        })
        .await
        .unwrap();
    let mut raw = raw_broker(&node).await;
    let fetch = tokio::spawn(async move {
        raw.fetch(v1::FetchRequest {
            max_wait_ms: 20_000,
            min_bytes: 1,
            max_bytes: 0,
            topics: vec![v1::FetchTopic {
                topic: "lp".into(),
                partitions: vec![v1::FetchPartition {
                    partition: 0,
                    fetch_offset: 0,
                    partition_max_bytes: 0,
                }],
            }],
        })
        .await
    });
    // The fetch is parked: produce, and it must come back with the record.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !fetch.is_finished(),
        "fetch returned before any record existed"
    );
    let mut producer = kavka_client::Producer::new(client, Default::default());
    producer
        .send(
            "lp",
            vec![ProducerRecord {
                value: Some(Bytes::from_static(b"wake")),
                ..ProducerRecord::default()
            }],
        )
        .await
        .unwrap();
    let resp = tokio::time::timeout(DEADLINE, fetch)
        .await
        .unwrap()
        .unwrap()
        .unwrap()
        .into_inner();
    let p = &resp.topics[0].partitions[0];
    assert!(p.error.is_none());
    let (batch, _) = RecordBatch::decode(&p.records).unwrap();
    assert_eq!(batch.records[0].value.as_deref(), Some(&b"wake"[..]));
    assert_eq!(p.high_watermark, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_and_structured_produce() {
    let node = node().await;
    let mut client = node.client().await.unwrap();
    client
        .create_topic(NewTopic {
            name: "t".into(),
            partitions: 4,
            ..NewTopic::default()
        })
        .await
        .unwrap();
    let mut raw = raw_broker(&node).await;
    let records = (0..10)
        .map(|i| v1::Record {
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: vec![],
            timestamp_ms: Some(1_000_000 + i),
            partition: None,
        })
        .collect();
    let resp = raw
        .produce(v1::ProduceRequest {
            topic: "t".into(),
            acks: 1,
            timeout_ms: 1000,
            batches: vec![],
            records,
            compression: "snappy".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut per_partition = [0i64; 4];
    for i in 0..10 {
        per_partition[partitioner::partition_for_key(format!("key-{i}").as_bytes(), 4) as usize] +=
            1;
    }
    for r in &resp.results {
        assert!(r.error.is_none(), "{r:?}");
        assert_eq!(r.record_count as i64, per_partition[r.partition as usize]);
    }
    let p = partitioner::partition_for_key(b"key-7", 4) as i32;
    assert_eq!(client.list_offset("t", p, -2).await.unwrap().0, 0);
    assert_eq!(
        client.list_offset("t", p, -1).await.unwrap().0,
        per_partition[p as usize]
    );
    let (offset, ts) = client.list_offset("t", p, 1_000_007).await.unwrap();
    assert_eq!(ts, 1_000_007);
    assert!(offset >= 0 && offset < per_partition[p as usize]);
    assert_eq!(client.list_offset("t", p, 9_000_000).await.unwrap().0, -1);

    let md = client.metadata(vec![]).await.unwrap();
    assert_eq!(md.brokers.len(), 1);
    assert_eq!(
        format!("{}:{}", md.brokers[0].host, md.brokers[0].port),
        node.addr()
    );
    let t = md.topics.iter().find(|t| t.name == "t").unwrap();
    assert_eq!(t.partitions.len(), 4);
    assert!(
        t.partitions
            .iter()
            .all(|p| p.leader == md.brokers[0].id && p.isr == [p.leader])
    );
    let md = client.metadata(vec!["missing".into()]).await.unwrap();
    assert_eq!(
        md.topics[0].error.as_ref().unwrap().name,
        "UNKNOWN_TOPIC_OR_PARTITION"
    );
}

/// A node running retention and compaction every 200 ms.
async fn node_checking_logs_often() -> Node {
    Node::start(NodeOptions {
        args: vec!["--log-retention-check-interval-ms".into(), "200".into()],
        ..NodeOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_segments() {
    let node = node_checking_logs_often().await;
    ok(node.cli(&[
        "topic",
        "create",
        "r",
        "-p",
        "1",
        "--config",
        "internal.segment.bytes=1024",
        "--config",
        "retention.bytes=2048",
    ]));
    let input: String = (0..300)
        .map(|i| format!("record-number-{i:04}\n"))
        .collect();
    ok(node.cli_with_stdin(&["produce", "r", "--batch-size", "100"], input.as_bytes()));
    let mut client = node.client().await.unwrap();
    wait_until("retention to advance the log start", DEADLINE, || {
        let mut c = client.clone();
        async move { c.list_offset("r", 0, -2).await.is_ok_and(|(o, _)| o > 0) }
    })
    .await
    .unwrap();
    let start = client.list_offset("r", 0, -2).await.unwrap().0;
    let out = ok(node.cli(&["consume", "r", "--from-beginning", "--format", "%o %v"]));
    let first = out.lines().next().unwrap();
    assert_eq!(first, format!("{start} record-number-{start:04}"));
    assert_eq!(out.lines().last().unwrap(), "299 record-number-0299");
    // Kafka's default file.delete.delay.ms (a minute): the removed files wait, renamed.
    let deleted = |topic: &str| {
        std::fs::read_dir(node.data_dir().join(format!("{topic}-0")))
            .map(|d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".log.deleted"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert!(deleted("r") > 0, "retired segments wait out the delay");

    // A short delay: they are unlinked once it has passed.
    ok(node.cli(&[
        "topic",
        "create",
        "quick",
        "-p",
        "1",
        "--config",
        "internal.segment.bytes=1024",
        "--config",
        "retention.bytes=2048",
        "--config",
        "file.delete.delay.ms=100",
    ]));
    ok(node.cli_with_stdin(
        &["produce", "quick", "--batch-size", "100"],
        input.as_bytes(),
    ));
    wait_until("retention of the quick topic", DEADLINE, || {
        let mut c = client.clone();
        async move {
            c.list_offset("quick", 0, -2)
                .await
                .is_ok_and(|(o, _)| o > 0)
        }
    })
    .await
    .unwrap();
    wait_until("the delay to pass and the files to go", DEADLINE, || {
        let gone = deleted("quick") == 0;
        async move { gone }
    })
    .await
    .unwrap();
    assert!(deleted("r") > 0, "the other topic's still wait");
    fails_with(
        node.cli(&[
            "topic",
            "alter-config",
            "quick",
            "--set",
            "file.delete.delay.ms=-1",
        ]),
        "must be at least 0",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_the_latest_value_per_key() {
    let node = node_checking_logs_often().await;
    ok(node.cli(&[
        "topic",
        "create",
        "c",
        "-p",
        "1",
        "--config",
        "cleanup.policy=compact",
        "--config",
        "internal.segment.bytes=1024",
        "--config",
        "min.cleanable.dirty.ratio=0.01",
        "--config",
        "retention.ms=1",
    ]));
    // 300 updates of 5 keys; retention.ms would delete everything if it applied.
    let input: String = (0..300).map(|i| format!("k{}:v{i:04}\n", i % 5)).collect();
    ok(node.cli_with_stdin(
        &["produce", "c", "--key-delimiter", ":", "--batch-size", "10"],
        input.as_bytes(),
    ));
    let read = || {
        let out = ok(node.cli(&["consume", "c", "--from-beginning", "--format", "%o %k=%v"]));
        out.lines().map(str::to_string).collect::<Vec<_>>()
    };
    wait_until(
        "the cleaner to compact the closed segments",
        DEADLINE,
        || {
            let n = read().len();
            async move { n < 100 }
        },
    )
    .await
    .unwrap();
    let lines = read();
    // Offsets kept (increasing, with gaps), the newest value of every key still there.
    let offsets: Vec<i64> = lines
        .iter()
        .map(|l| l.split(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{lines:?}");
    for k in 0..5 {
        let last = 295 + k;
        assert!(
            lines.contains(&format!("{last} k{k}=v{last:04}")),
            "k{k} lost its latest value: {lines:?}"
        );
    }
    assert_eq!(lines.last().unwrap(), "299 k4=v0299");
    let mut client = node.client().await.unwrap();
    assert_eq!(client.list_offset("c", 0, -2).await.unwrap().0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    let node = node().await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", node.addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "kavka.v1.BrokerService".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );

    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream_once(req))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("{msg:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"kavka.v1.AdminService".to_string()),
        "{names:?}"
    );
    assert!(
        names.contains(&"kavka.v1.BrokerService".to_string()),
        "{names:?}"
    );
}

fn tokio_stream_once<T: Send + 'static>(item: T) -> impl tonic::IntoStreamingRequest<Message = T> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let _ = tx.try_send(item);
    // Keep the sender alive long enough for one answer.
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        drop(tx);
    });
    ReceiverStream(rx)
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> tokio_stream_shim::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

mod tokio_stream_shim {
    pub use tonic::codegen::tokio_stream::Stream;
}

// ---- Bad input: each gets a clear error naming what was wrong; the node keeps serving.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_topic_requests_get_kafka_errors() {
    let node = node().await;
    // Kafka 4's floor for segment.bytes (KIP-1030): tiny segments exhaust descriptors.
    fails_with(
        node.cli(&["topic", "create", "x", "--config", "segment.bytes=1024"]),
        "must be at least 1048576",
    );
    ok(node.cli(&["topic", "create", "y"]));
    fails_with(
        node.cli(&["topic", "alter-config", "y", "--set", "segment.bytes=4096"]),
        "INVALID_CONFIG",
    );
    fails_with(
        node.cli(&["topic", "create", "x", "--partitions", "0"]),
        "INVALID_PARTITIONS",
    );
    fails_with(
        node.cli(&["topic", "create", "x", "--partitions", "100001"]),
        "INVALID_PARTITIONS",
    );
    fails_with(
        node.cli(&["topic", "create", "x", "-r", "3"]),
        "INVALID_REPLICATION_FACTOR",
    );
    fails_with(
        node.cli(&["topic", "create", ".."]),
        "INVALID_TOPIC_EXCEPTION",
    );
    fails_with(
        node.cli(&["topic", "create", "x", "--config", "retention.mss=1"]),
        "unknown config 'retention.mss'",
    );
    fails_with(
        node.cli(&["topic", "create", "x", "--config", "retention.ms=soon"]),
        "invalid value 'soon' for config 'retention.ms'",
    );
    fails_with(
        node.cli(&["topic", "create", "x", "--config", "noequals"]),
        "expected key=value",
    );
    // Kafka: names that differ only by '.' and '_' collide in metric names.
    ok(node.cli(&["topic", "create", "foo.bar"]));
    fails_with(
        node.cli(&["topic", "create", "foo_bar"]),
        "INVALID_TOPIC_EXCEPTION",
    );
    fails_with(
        node.cli(&["topic", "create", "__cluster_metadata"]),
        "INVALID_REQUEST",
    );
    // Timestamp bounds are topic configs with Kafka's names and checks.
    fails_with(
        node.cli(&[
            "topic",
            "create",
            "x",
            "--config",
            "message.timestamp.after.max.ms=-1",
        ]),
        "invalid value '-1' for config 'message.timestamp.after.max.ms'",
    );
    ok(node.cli(&["topic", "create", "x"]));
    fails_with(node.cli(&["topic", "create", "x"]), "TOPIC_ALREADY_EXISTS");
    ok(node.cli(&["topic", "create", "x", "--if-not-exists"]));
    fails_with(
        node.cli(&["topic", "alter-config", "x", "--set", "cleanup.policy=keep"]),
        "INVALID_CONFIG",
    );
    fails_with(
        node.cli(&["topic", "alter-config", "nope", "--set", "retention.ms=1"]),
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    fails_with(
        node.cli(&["topic", "describe", "nope"]),
        "topic 'nope' does not exist",
    );
    fails_with(
        node.cli_with_stdin(&["produce", "nope"], b"a\n"),
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    fails_with(node.cli(&["consume", "nope"]), "UNKNOWN_TOPIC_OR_PARTITION");
    fails_with(
        node.cli(&["consume", "x", "--partition", "5"]),
        "partition 5 of topic 'x' does not exist",
    );
    fails_with(
        node.cli_with_stdin(&["produce", "x", "--compression", "brotli"], b"a\n"),
        "unknown compression 'brotli'",
    );
    fails_with(
        node.cli_with_stdin(&["produce", "x", "--acks", "2"], b"a\n"),
        "invalid acks '2'",
    );
    fails_with(
        node.cli(&["consume", "x", "--from-timestamp", "yesterday"]),
        "invalid timestamp 'yesterday'",
    );
    // Nothing above broke the node or the topic.
    ok(node.cli_with_stdin(&["produce", "x"], b"still-here\n"));
    assert_eq!(
        ok(node.cli(&["consume", "x", "--from-beginning", "--format", "%v"])).trim(),
        "still-here"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bootstrap_is_named() {
    let out = kavka_harness_cli(&["--bootstrap", "no-port", "topic", "list"]);
    fails_with(out, "invalid bootstrap address 'no-port'");
    let out = kavka_harness_cli(&["--bootstrap", "127.0.0.1:1", "topic", "list"]);
    fails_with(out, "cannot reach kavka at 127.0.0.1:1");
}

/// The CLI pointed at a port that is not gRPC (the node's Kafka listener, a peer that
/// resets the connection) says so and exits 1, never killed by a signal; output into a
/// pipe whose reader is gone ends quietly with success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_names_a_wrong_port_and_survives_closed_pipes() {
    let node = node().await;
    let kafka = node.kafka_addr().to_string();
    let out = kavka_harness_cli(&["--bootstrap", &kafka, "topic", "list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    fails_with(
        out,
        "took the connection but broke it instead of answering gRPC",
    );

    // A peer that resets every connection after reading a little of it.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let reset_addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming().take(4) {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 16];
            let _ = std::io::Read::read(&mut conn, &mut buf);
            // SO_LINGER 0: close with a reset, as a crashed peer's kernel does.
            let linger = libc::linger {
                l_onoff: 1,
                l_linger: 0,
            };
            // SAFETY: a valid socket fd and a properly sized linger struct.
            unsafe {
                libc::setsockopt(
                    std::os::fd::AsRawFd::as_raw_fd(&conn),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                );
            }
        }
    });
    let out = kavka_harness_cli(&["--bootstrap", &reset_addr, "topic", "list"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    fails_with(out, &format!("cannot reach kavka at {reset_addr}"));

    // stdout's reader gone before the command prints (`kavka topic list | head -0`).
    let mut child = std::process::Command::new(kavka_harness::kavka_bin())
        .args(["--bootstrap", &node.addr(), "topic", "list"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

fn kavka_harness_cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(kavka_harness::kavka_bin())
        .args(args)
        .output()
        .unwrap()
}

fn one_record_batch(value: &[u8]) -> Vec<u8> {
    RecordBatch::new(
        1_700_000_000_000,
        Compression::None,
        vec![Record {
            value: Some(Bytes::copy_from_slice(value)),
            ..Record::default()
        }],
    )
    .encode()
    .unwrap()
}

async fn produce_raw(
    raw: &mut BrokerServiceClient<tonic::transport::Channel>,
    topic: &str,
    acks: i32,
    records: Vec<u8>,
) -> Result<v1::ProduceResponse, tonic::Status> {
    raw.produce(v1::ProduceRequest {
        topic: topic.into(),
        acks,
        timeout_ms: 1000,
        batches: vec![v1::PartitionBatches {
            partition: 0,
            records: records.into(),
        }],
        records: vec![],
        compression: String::new(),
    })
    .await
    .map(|r| r.into_inner())
}

fn partition_error(resp: &v1::ProduceResponse) -> (ErrorCode, String) {
    let e = resp.results[0].error.as_ref().expect("an error");
    (ErrorCode::from_code(e.code as i16), e.message.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_batches_and_malformed_requests_are_refused() {
    let node = node().await;
    let mut client: Client = node.client().await.unwrap();
    client
        .create_topic(NewTopic {
            name: "b".into(),
            partitions: 1,
            configs: [("max.message.bytes".to_string(), "1000".to_string())].into(),
            ..NewTopic::default()
        })
        .await
        .unwrap();
    let mut raw = raw_broker(&node).await;

    let mut bad_crc = one_record_batch(b"x");
    let n = bad_crc.len();
    bad_crc[n - 1] ^= 0xff;
    let (code, msg) = partition_error(&produce_raw(&mut raw, "b", 1, bad_crc).await.unwrap());
    assert_eq!(code, ErrorCode::CorruptMessage);
    assert!(msg.contains("CRC mismatch"), "{msg}");

    let mut magic = one_record_batch(b"x");
    magic[16] = 1;
    let (code, msg) = partition_error(&produce_raw(&mut raw, "b", 1, magic).await.unwrap());
    assert_eq!(code, ErrorCode::UnsupportedForMessageFormat);
    assert!(msg.contains("magic 1"), "{msg}");

    let (code, msg) = partition_error(
        &produce_raw(&mut raw, "b", 1, one_record_batch(&[7u8; 2000]))
            .await
            .unwrap(),
    );
    assert_eq!(code, ErrorCode::MessageTooLarge);
    assert!(msg.contains("max.message.bytes"), "{msg}");

    // Garbage: refused by whichever header check meets it first.
    let (code, _) = partition_error(
        &produce_raw(
            &mut raw,
            "b",
            1,
            b"garbage bytes, not a batch at all, at all.......................".to_vec(),
        )
        .await
        .unwrap(),
    );
    assert!(
        matches!(
            code,
            ErrorCode::CorruptMessage | ErrorCode::UnsupportedForMessageFormat
        ),
        "{code:?}"
    );

    let (code, _) = partition_error(
        &produce_raw(&mut raw, "b", 1, one_record_batch(b"x")[..30].to_vec())
            .await
            .unwrap(),
    );
    assert_eq!(code, ErrorCode::CorruptMessage);

    let status = produce_raw(&mut raw, "b", 7, one_record_batch(b"x"))
        .await
        .unwrap_err();
    assert!(
        status.message().starts_with("INVALID_REQUIRED_ACKS"),
        "{status:?}"
    );

    let status = raw
        .produce(v1::ProduceRequest {
            topic: "b".into(),
            acks: 1,
            timeout_ms: 0,
            batches: vec![v1::PartitionBatches {
                partition: 0,
                records: one_record_batch(b"x").into(),
            }],
            records: vec![v1::Record::default()],
            compression: String::new(),
        })
        .await
        .unwrap_err();
    assert!(
        status.message().contains("either batches or records"),
        "{status:?}"
    );

    let status = raw
        .fetch(v1::FetchRequest {
            max_wait_ms: -5,
            min_bytes: 0,
            max_bytes: 0,
            topics: vec![],
        })
        .await
        .unwrap_err();
    assert!(
        status.message().contains("must not be negative"),
        "{status:?}"
    );

    let resp = raw
        .fetch(v1::FetchRequest {
            max_wait_ms: 0,
            min_bytes: 0,
            max_bytes: 0,
            topics: vec![v1::FetchTopic {
                topic: "b".into(),
                partitions: vec![v1::FetchPartition {
                    partition: 0,
                    fetch_offset: 99,
                    partition_max_bytes: 0,
                }],
            }],
        })
        .await
        .unwrap()
        .into_inner();
    let e = resp.topics[0].partitions[0].error.as_ref().unwrap();
    assert_eq!(e.name, "OFFSET_OUT_OF_RANGE");
    assert!(e.message.contains("99"), "{e:?}");

    // A raw gRPC frame that is not protobuf at all.
    let status = kavka_harness::raw_grpc::raw_unary(
        node.addr(),
        "/kavka.v1.BrokerService/Produce",
        vec![0xff, 0xff, 0xff, 0xff, 0x0f],
        &[],
    )
    .await
    .unwrap()
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal, "{status:?}");

    // The node still serves, and only the good append is in the log.
    produce_raw(&mut raw, "b", 1, one_record_batch(b"good"))
        .await
        .unwrap();
    let out = ok(node.cli(&["consume", "b", "--from-beginning", "--format", "%o %v"]));
    assert_eq!(out.trim(), "0 good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_segments_at_start_are_recovered_or_refused_naming_the_file() {
    let mut node = node().await;
    ok(node.cli(&["topic", "create", "torn", "-p", "1"]));
    ok(node.cli(&[
        "topic",
        "create",
        "rotten",
        "-p",
        "1",
        "--config",
        "internal.segment.bytes=1024",
    ]));
    ok(node.cli(&["topic", "create", "fine", "-p", "1"]));
    let lines: String = (0..100).map(|i| format!("line-{i:03}\n")).collect();
    for t in ["torn", "rotten", "fine"] {
        ok(node.cli_with_stdin(&["produce", t, "--batch-size", "64"], lines.as_bytes()));
    }
    node.kill();

    // torn: the active segment loses half of its last batch -> recovered, last record gone.
    let torn = node.data_dir().join("torn-0/00000000000000000000.log");
    let len = std::fs::metadata(&torn).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&torn)
        .unwrap()
        .set_len(len - 5)
        .unwrap();
    // rotten: an old (not active) segment with a flipped byte and no index -> refused.
    let rotten = node.data_dir().join("rotten-0/00000000000000000000.log");
    let mut bytes = std::fs::read(&rotten).unwrap();
    bytes[70] ^= 0xff;
    std::fs::write(&rotten, bytes).unwrap();
    std::fs::remove_file(node.data_dir().join("rotten-0/00000000000000000000.index")).unwrap();

    node.restart().await.unwrap();
    assert!(
        node.log()
            .contains("recovered the active segment by truncating its invalid tail"),
        "{}",
        node.log()
    );
    let out = ok(node.cli(&["consume", "torn", "--from-beginning", "--format", "%v"]));
    let got: Vec<&str> = out.lines().collect();
    assert!(!got.is_empty() && got.len() < 100, "{}", got.len());
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, l)| *l == format!("line-{i:03}"))
    );

    let o = node.cli(&["consume", "rotten", "--from-beginning"]);
    fails_with(o, "KAFKA_STORAGE_ERROR");
    let o = node.cli(&["consume", "rotten", "--from-beginning"]);
    assert!(
        stderr(&o).contains("rotten-0/00000000000000000000.log"),
        "{}",
        stderr(&o)
    );

    // The other partitions keep serving, reads and writes.
    assert_eq!(
        ok(node.cli(&["consume", "fine", "--from-beginning", "-q"]))
            .lines()
            .count(),
        100
    );
    ok(node.cli_with_stdin(&["produce", "torn"], b"after\n"));
}

/// A partition whose `partition.metadata` cannot be read (here: a directory stands in its
/// place, as unreadable as a failing disk or no file descriptors left) is offline with
/// KAFKA_STORAGE_ERROR naming the file; its data is kept, not wiped as a stray directory,
/// and it comes back by itself once the file can be read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_partition_metadata_keeps_the_data_and_heals() {
    let mut node = node().await;
    ok(node.cli(&["topic", "create", "kept", "-p", "1"]));
    let lines: String = (0..50).map(|i| format!("kept-{i:02}\n")).collect();
    ok(node.cli_with_stdin(&["produce", "kept"], lines.as_bytes()));
    node.kill();

    let meta = node.data_dir().join("kept-0/partition.metadata");
    let saved = std::fs::read(&meta).unwrap();
    std::fs::remove_file(&meta).unwrap();
    std::fs::create_dir(&meta).unwrap();
    node.restart().await.unwrap();

    let o = node.cli(&["consume", "kept", "--from-beginning"]);
    assert!(
        stderr(&o).contains("KAFKA_STORAGE_ERROR") && stderr(&o).contains("partition.metadata"),
        "{}",
        stderr(&o)
    );
    assert!(
        node.data_dir()
            .join("kept-0/00000000000000000000.log")
            .exists(),
        "the partition's data was wiped"
    );

    std::fs::remove_dir(&meta).unwrap();
    std::fs::write(&meta, saved).unwrap();
    let client = node.client().await.unwrap();
    wait_until(
        "the partition to come back online",
        Duration::from_secs(90),
        || {
            let mut c = client.clone();
            async move {
                c.list_offset("kept", 0, -1)
                    .await
                    .is_ok_and(|(o, _)| o == 50)
            }
        },
    )
    .await
    .unwrap();
    let out = ok(node.cli(&["consume", "kept", "--from-beginning", "--format", "%v"]));
    assert_eq!(out, lines);
    assert!(
        node.log()
            .contains("partition online: its log opened on a retry"),
        "{}",
        node.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_config_file_env_and_flags() {
    // The file sets a durability the flags do not override; a bad file stops the node with
    // a message naming the file.
    let dir = tempfile_dir();
    let good = dir.join("kavka.toml");
    std::fs::write(&good, "log_flush = \"fsync\"\nnum_partitions = 4\n").unwrap();
    let node = Node::start(NodeOptions {
        args: vec!["--config".into(), good.display().to_string()],
        env: vec![("KAVKA_NUM_PARTITIONS".into(), "2".into())],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    // The ready line follows the health status the harness waits for: wait for it too.
    wait_until("the ready line", DEADLINE, || {
        let log = node.log();
        async move { log.contains("kavka is ready") }
    })
    .await
    .unwrap();
    assert!(node.log().contains("flush=\"fsync\""), "{}", node.log());
    ok(node.cli(&["topic", "create", "dflt"]));
    let d: serde_json::Value =
        serde_json::from_str(&ok(node.cli(&["topic", "describe", "dflt", "-o", "json"]))).unwrap();
    assert_eq!(
        d["partitions"].as_array().unwrap().len(),
        2,
        "environment overrides the file"
    );
    ok(node.cli_with_stdin(&["produce", "dflt", "--acks", "all"], b"durable\n"));

    let bad = dir.join("bad.toml");
    std::fs::write(&bad, "log_flush = \"sometimes\"\n").unwrap();
    let out = std::process::Command::new(kavka_harness::kavka_bin())
        .args([
            "server",
            "--config",
            &bad.display().to_string(),
            "--listen",
            &format!("127.0.0.1:{}", kavka_harness::free_port().unwrap()),
            "--data-dir",
        ])
        .arg(dir.join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid log flush 'sometimes'"),
        "{}",
        stderr(&out)
    );
    let _ = std::fs::remove_dir_all(dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "kavka-it-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_data_dir_is_refused() {
    let node = node().await;
    let out = std::process::Command::new(kavka_harness::kavka_bin())
        .arg("server")
        .args([
            "--listen",
            &format!("127.0.0.1:{}", kavka_harness::free_port().unwrap()),
        ])
        .arg("--data-dir")
        .arg(node.data_dir())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("is in use by another kavka process"),
        "{}",
        stderr(&out)
    );
    ok(node.cli(&["topic", "list"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_from_a_file_to_a_partition_and_bench() {
    let node = node().await;
    ok(node.cli(&["topic", "create", "f", "-p", "3"]));
    let file = node.data_dir().join("../input.txt");
    std::fs::write(&file, "a\nb\nc\n").unwrap();
    ok(node.cli(&[
        "produce",
        "f",
        "--file",
        &file.display().to_string(),
        "--partition",
        "2",
    ]));
    let out = ok(node.cli(&["consume", "f", "--from-beginning", "--format", "%p %o %v"]));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["2 0 a", "2 1 b", "2 2 c"]);
    fails_with(
        node.cli(&["produce", "f", "--file", "/nonexistent/input"]),
        "cannot open /nonexistent/input",
    );

    let out = ok(node.cli(&[
        "bench",
        "produce",
        "--topic",
        "b",
        "--partitions",
        "2",
        "--record-size",
        "100",
        "--num-records",
        "3000",
        "--acks",
        "all",
        "--in-flight",
        "2",
    ]));
    assert!(
        out.starts_with("3000 records sent") && out.contains("p99"),
        "{out}"
    );
    let out = ok(node.cli(&["bench", "consume", "--topic", "b"]));
    assert!(out.starts_with("3000 records read"), "{out}");
}

/// A broker that cannot register (its controller quorum is unreachable) does not serve
/// clients: gRPC calls get UNAVAILABLE saying it is not ready, which clients retry, rather
/// than answers describing a cluster without it. Its gRPC port still answers health.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_serves_clients_only_once_it_is_ready() {
    let nowhere = kavka_harness::free_port().unwrap();
    let n = Node::start_unready(NodeOptions {
        node_id: Some(2),
        roles: Some("broker".into()),
        voters: Some(format!("9@127.0.0.1:{nowhere}")),
        ..NodeOptions::default()
    })
    .unwrap();
    let addr = n.addr();
    let last = std::sync::Mutex::new(None);
    wait_until("the gRPC port to answer", DEADLINE, || {
        let addr = addr.clone();
        let last = &last;
        async move {
            let r = kavka_harness::raw_grpc::raw_unary(
                &addr,
                "/kavka.v1.AdminService/ListTopics",
                Vec::new(),
                &[],
            )
            .await;
            let answered = r.is_ok();
            *last.lock().unwrap() = r.ok();
            answered
        }
    })
    .await
    .unwrap();
    let status = last.into_inner().unwrap().unwrap().unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(status.message().contains("not ready"), "{status:?}");
    assert!(!n.is_serving().await, "health says serving");
}

/// Issue 17 item 5: durability per topic. `--log-flush fsync` is the broker's default
/// (`flush.messages=1`, shown as STATIC_BROKER_CONFIG); a topic overrides it with Kafka's
/// `flush.messages` and `flush.ms`. `durable_offset` (what is fsynced) shows each in
/// effect right after an acks=1 answer (the proof of the fsync: nothing else syncs these
/// logs), and survives a restart. Configs Kafka defines for what Kavka has not built are
/// described at their defaults and refused when set otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durability_is_a_topic_config() {
    let mut node = Node::start(NodeOptions {
        args: vec!["--log-flush".into(), "fsync".into()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let never = i64::MAX.to_string();
    let lazy = format!("flush.messages={never}");
    ok(node.cli(&["topic", "create", "dflt"]));
    ok(node.cli(&["topic", "create", "lazy", "--config", &lazy]));
    ok(node.cli(&["topic", "create", "every3", "--config", "flush.messages=3"]));
    ok(node.cli(&[
        "topic",
        "create",
        "timed",
        "--config",
        &lazy,
        "--config",
        "flush.ms=200",
    ]));
    let describe = |node: &Node, t: &str| -> serde_json::Value {
        serde_json::from_str(&ok(node.cli(&["topic", "describe", t, "-o", "json"]))).unwrap()
    };
    // (durable offset, log end offset) of partition 0.
    let offsets = |node: &Node, t: &str| {
        let d = describe(node, t);
        let p = &d["partitions"][0];
        (
            p["durable_offset"].as_i64().unwrap(),
            p["log_end_offset"].as_i64().unwrap(),
        )
    };
    let produce = |node: &Node, t: &str, v: &str| {
        ok(node.cli_with_stdin(&["produce", t, "--acks", "1"], format!("{v}\n").as_bytes()));
    };

    let d = describe(&node, "dflt");
    assert_eq!(d["configs"]["flush.messages"], "1");
    assert_eq!(
        d["config_sources"]["flush.messages"],
        "STATIC_BROKER_CONFIG"
    );
    assert_eq!(d["configs"]["flush.ms"], never.as_str());
    assert_eq!(d["config_sources"]["flush.ms"], "DEFAULT_CONFIG");
    let d = describe(&node, "timed");
    assert_eq!(
        d["config_sources"]["flush.messages"],
        "DYNAMIC_TOPIC_CONFIG"
    );
    assert_eq!(d["config_sources"]["flush.ms"], "DYNAMIC_TOPIC_CONFIG");
    assert_eq!(d["configs"]["remote.storage.enable"], "false");
    assert_eq!(d["configs"]["segment.jitter.ms"], "0");
    let table = ok(node.cli(&["topic", "describe", "dflt"]));
    assert!(
        table.contains("Durability: flush.messages=1 (broker)"),
        "{table}"
    );

    for t in ["dflt", "lazy", "every3", "timed"] {
        produce(&node, t, "one");
    }
    assert_eq!(offsets(&node, "dflt"), (1, 1), "fsynced before the answer");
    assert_eq!(offsets(&node, "lazy"), (0, 1), "left to the page cache");
    assert_eq!(offsets(&node, "every3"), (0, 1));
    produce(&node, "every3", "two");
    assert_eq!(offsets(&node, "every3"), (0, 2));
    produce(&node, "every3", "three");
    assert_eq!(offsets(&node, "every3"), (3, 3), "the third message fsyncs");
    let last = std::sync::Mutex::new((0, 0));
    let timed = wait_until("flush.ms to fsync the timed topic", DEADLINE, || {
        let got = offsets(&node, "timed");
        *last.lock().unwrap() = got;
        async move { got == (1, 1) }
    })
    .await;
    assert!(timed.is_ok(), "last: {:?}", last.lock().unwrap());
    assert_eq!(offsets(&node, "lazy"), (0, 1), "no flush.ms: never fsynced");

    // Bad values and configs not built: refused, naming why; nothing changes.
    fails_with(
        node.cli(&["topic", "create", "bad", "--config", "flush.messages=0"]),
        "flush.messages",
    );
    fails_with(
        node.cli(&[
            "topic",
            "create",
            "bad",
            "--config",
            "remote.storage.enable=true",
        ]),
        "tiered storage is not built",
    );
    fails_with(
        node.cli(&[
            "topic",
            "alter-config",
            "dflt",
            "--set",
            "compression.zstd.level=9",
        ]),
        "per-codec compression levels is not built",
    );
    assert_eq!(
        describe(&node, "dflt")["configs"]["compression.zstd.level"],
        "3"
    );
    let altered = ok(node.cli(&[
        "topic",
        "alter-config",
        "dflt",
        "--set",
        "preallocate=false",
    ]));
    assert!(
        altered
            .lines()
            .any(|l| l.contains("flush.messages") && l.contains(" 1 ") && l.contains("broker")),
        "the answer shows the broker's default as this broker has it: {altered}"
    );
    ok(node.cli(&[
        "topic",
        "alter-config",
        "dflt",
        "--set",
        "segment.jitter.ms=5",
    ]));
    assert_eq!(describe(&node, "dflt")["configs"]["segment.jitter.ms"], "5");

    // SIGKILL right after an acknowledged write: it is there after the restart (the page
    // cache survives a SIGKILL either way: durable_offset above is what shows the fsync).
    produce(&node, "dflt", "acknowledged");
    node.kill();
    node.start_again().await.unwrap();
    let out = ok(node.cli(&[
        "consume",
        "dflt",
        "--from-beginning",
        "-q",
        "--format",
        "%v",
    ]));
    assert!(out.contains("acknowledged"), "{out}");
}
