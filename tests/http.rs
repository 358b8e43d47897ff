//! The HTTP listener of real `kavka server` processes: `/metrics` is valid Prometheus text
//! with the series the README and the Grafana dashboard promise (and the values follow
//! what was produced), the health endpoints, 404 for unknown paths, the per-partition
//! series cap, `--http-listen ''` and a bad `--http-listen`, and the runtime's worker
//! threads (`--num-io-threads`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

#[allow(dead_code)] // shared with other test files; this one sends ApiVersions only
mod raw_kafka;

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use kavka_client::{NewTopic, ProducerRecord};
use kavka_harness::http::{Sample, http_get, parse_prometheus, samples, value};
use kavka_harness::{Cluster, Node, NodeOptions, kavka_bin, wait_until};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(30);

/// GETs `/metrics` of `node`, checks every line against the text format, and returns the
/// samples.
async fn scrape(node: &Node) -> Vec<Sample> {
    let r = http_get(&node.http_addr(), "/metrics", DEADLINE)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{:?}",
        r.headers
    );
    parse_prometheus(&r.body).unwrap_or_else(|e| panic!("invalid exposition: {e}\n{}", r.body))
}

/// Runs `kavka server ARGS --data-dir <new dir>`, which must exit at once with an error,
/// and returns what it printed on stderr.
async fn refused(args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(kavka_bin())
            .arg("server")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output(),
    )
    .await
    .expect("a bad setting is refused at once")
    .unwrap();
    assert!(!out.status.success(), "{args:?} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn create(node: &Node, topic: &str, partitions: i32) {
    node.client()
        .await
        .unwrap()
        .create_topic(NewTopic {
            name: topic.into(),
            partitions,
            ..NewTopic::default()
        })
        .await
        .unwrap();
}

/// Produces `n` records to `partition` of `topic`.
async fn produce(node: &Node, topic: &str, partition: i32, n: usize) {
    let mut producer =
        kavka_client::Producer::new(node.client().await.unwrap(), Default::default());
    let records = (0..n)
        .map(|i| ProducerRecord {
            value: Some(Bytes::from(format!("record {i}"))),
            partition: Some(partition),
            ..ProducerRecord::default()
        })
        .collect();
    producer.send(topic, records).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_what_was_produced() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    create(&node, "orders", 3).await;
    produce(&node, "orders", 0, 7).await;
    // One Kafka request, for the listener's series.
    let mut conn = tokio::net::TcpStream::connect(node.kafka_addr())
        .await
        .unwrap();
    let _: ApiVersionsResponse = raw_kafka::call(
        &mut conn,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .await;
    // A group with a committed offset: 3 of the 7 records consumed.
    let out = node.cli(&[
        "group",
        "reset-offsets",
        "app",
        "--topic",
        "orders:0",
        "--to-offset",
        "3",
        "--execute",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let s = scrape(&node).await;
    let p0 = [("topic", "orders"), ("partition", "0")];
    assert_eq!(value(&s, "kavka_log_end_offset", &p0).unwrap(), 7.0);
    assert_eq!(
        value(&s, "kavka_partition_high_watermark", &p0).unwrap(),
        7.0
    );
    assert_eq!(value(&s, "kavka_log_segments", &p0).unwrap(), 1.0);
    assert!(value(&s, "kavka_log_size_bytes", &p0).unwrap() > 0.0);
    assert_eq!(
        value(
            &s,
            "kavka_log_end_offset",
            &[("topic", "orders"), ("partition", "2")]
        )
        .unwrap(),
        0.0
    );
    assert!(value(&s, "kavka_topic_bytes_in_total", &[("topic", "orders")]).unwrap() > 0.0);
    assert_eq!(
        value(&s, "kavka_topic_messages_in_total", &[("topic", "orders")]).unwrap(),
        7.0
    );
    assert_eq!(
        value(&s, "kavka_topic_partitions", &[("topic", "orders")]).unwrap(),
        3.0
    );
    assert_eq!(
        value(
            &s,
            "kavka_consumer_group_lag",
            &[("group", "app"), ("topic", "orders"), ("partition", "0")]
        )
        .unwrap(),
        4.0
    );
    assert_eq!(
        value(
            &s,
            "kavka_consumer_group_lag_sum",
            &[("group", "app"), ("topic", "orders")]
        )
        .unwrap(),
        4.0
    );
    // The broker leads everything here (3 + __consumer_offsets), is unfenced, caught up.
    assert!(value(&s, "kavka_broker_leader_partitions", &[]).unwrap() >= 3.0);
    assert_eq!(value(&s, "kavka_broker_fenced", &[]).unwrap(), 0.0);
    assert_eq!(
        value(&s, "kavka_broker_under_replicated_partitions", &[]).unwrap(),
        0.0
    );
    assert_eq!(
        value(&s, "kavka_partition_series_capped", &[]).unwrap(),
        0.0
    );
    // The controller of a node alone is active, in some term, and committed something.
    assert_eq!(value(&s, "kavka_controller_active", &[]).unwrap(), 1.0);
    assert!(value(&s, "kavka_raft_term", &[]).unwrap() >= 1.0);
    assert!(value(&s, "kavka_raft_commit_index", &[]).unwrap() >= 1.0);
    assert_eq!(
        value(&s, "kavka_controller_offline_partitions", &[]).unwrap(),
        0.0
    );
    assert_eq!(
        value(&s, "kavka_controller_active_brokers", &[]).unwrap(),
        1.0
    );
    // Requests per API, with latency histograms.
    assert!(value(&s, "kavka_kafka_requests_total", &[("api", "ApiVersions")]).unwrap() >= 1.0);
    assert_eq!(
        value(
            &s,
            "kavka_kafka_request_duration_seconds_bucket",
            &[("api", "ApiVersions"), ("le", "+Inf")]
        )
        .unwrap(),
        value(
            &s,
            "kavka_kafka_request_duration_seconds_count",
            &[("api", "ApiVersions")]
        )
        .unwrap()
    );
    assert_eq!(
        value(&s, "kavka_kafka_connections", &[("listener", "PLAINTEXT")]).unwrap(),
        1.0
    );
    let produce = [("method", "/kavka.v1.BrokerService/Produce"), ("code", "0")];
    assert!(value(&s, "kavka_grpc_requests_total", &produce).unwrap() >= 1.0);
    assert!(
        !samples(
            &s,
            "kavka_grpc_request_duration_seconds_count",
            &[("method", "/kavka.v1.BrokerService/Produce")]
        )
        .is_empty()
    );
    // The process itself.
    assert!(value(&s, "process_resident_memory_bytes", &[]).unwrap() > 0.0);
    assert!(value(&s, "process_open_fds", &[]).unwrap() > 0.0);
    assert!(value(&s, "process_cpu_seconds_total", &[]).unwrap() > 0.0);
    drop(conn);
    // The connection closed: the gauge follows at the next scrape.
    wait_until("the Kafka connection gauge to drop", DEADLINE, || async {
        value(
            &scrape(&node).await,
            "kavka_kafka_connections",
            &[("listener", "PLAINTEXT")],
        )
        .unwrap()
            == 0.0
    })
    .await
    .unwrap();
}

/// `--num-io-threads` sizes the node's runtime (reported in `/metrics` and the ready
/// line); without it a node runs one worker per core; 0 is refused, naming the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_threads_are_what_was_asked() {
    let cores = std::thread::available_parallelism().unwrap().get();
    let asked = if cores == 1 { 2 } else { 1 };
    let node = Node::start(NodeOptions {
        args: vec!["--num-io-threads".into(), asked.to_string()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let threads = |s: &[Sample]| value(s, "kavka_runtime_worker_threads", &[]).unwrap();
    assert_eq!(threads(&scrape(&node).await), asked as f64);
    // The ready line may follow the listeners' start by a moment.
    let line = format!("io_threads={asked}");
    wait_until("the ready line with io_threads", DEADLINE, || async {
        node.log().contains(&line)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
    let default = Node::start(NodeOptions::default()).await.unwrap();
    assert_eq!(threads(&scrape(&default).await), cores as f64);

    let err = refused(&["--num-io-threads", "0"]).await;
    assert!(
        err.contains("invalid num_io_threads 0: expected 1 to 1024"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_endpoints_and_unknown_paths() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    let get = |path: &'static str| {
        let addr = node.http_addr();
        async move { http_get(&addr, path, DEADLINE).await.unwrap() }
    };
    assert_eq!(get("/health/live").await.status, 200);
    assert_eq!(get("/health/ready").await.status, 200);
    let r = get("/no/such/thing").await;
    assert_eq!(r.status, 404);
    assert!(
        r.body.contains("no such path: /no/such/thing"),
        "{}",
        r.body
    );

    // A broker whose controller is nowhere: alive, never ready, and still scraped.
    let nowhere = kavka_harness::free_port().unwrap();
    let unready = Node::start_unready(NodeOptions {
        roles: Some("broker".into()),
        node_id: Some(2),
        voters: Some(format!("1@127.0.0.1:{nowhere}")),
        ..NodeOptions::default()
    })
    .unwrap();
    let addr = unready.http_addr();
    wait_until("the unready broker's HTTP listener", DEADLINE, || {
        let addr = addr.clone();
        async move {
            http_get(&addr, "/health/live", Duration::from_secs(2))
                .await
                .is_ok_and(|r| r.status == 200)
        }
    })
    .await
    .unwrap();
    let r = http_get(&addr, "/health/ready", DEADLINE).await.unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("not ready"), "{}", r.body);
    let s = scrape(&unready).await;
    assert_eq!(value(&s, "kavka_broker_fenced", &[]).unwrap(), 1.0);
    assert!(
        samples(&s, "kavka_controller_active", &[]).is_empty(),
        "a broker has no controller series"
    );

    // A controller-only node: ready once its quorum has a leader; controller series only.
    let controller = Node::start(NodeOptions {
        roles: Some("controller".into()),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let addr = controller.http_addr();
    wait_until("the controller to be ready", DEADLINE, || {
        let addr = addr.clone();
        async move {
            http_get(&addr, "/health/ready", Duration::from_secs(2))
                .await
                .is_ok_and(|r| r.status == 200)
        }
    })
    .await
    .unwrap();
    let s = scrape(&controller).await;
    assert_eq!(value(&s, "kavka_controller_active", &[]).unwrap(), 1.0);
    assert!(
        samples(&s, "kavka_broker_fenced", &[]).is_empty(),
        "a controller has no broker series"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_partition_series_are_capped() {
    let node = Node::start(NodeOptions {
        args: vec!["--metrics-partition-series-max".into(), "2".into()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    create(&node, "wide", 3).await;
    produce(&node, "wide", 1, 2).await;
    let s = scrape(&node).await;
    assert_eq!(
        value(&s, "kavka_partition_series_capped", &[]).unwrap(),
        1.0
    );
    for name in [
        "kavka_log_end_offset",
        "kavka_log_size_bytes",
        "kavka_partition_high_watermark",
    ] {
        assert!(
            samples(&s, name, &[("topic", "wide")]).is_empty(),
            "{name} is per partition"
        );
    }
    // The aggregates remain.
    assert!(value(&s, "kavka_topic_log_size_bytes", &[("topic", "wide")]).unwrap() > 0.0);
    assert_eq!(
        value(&s, "kavka_topic_partitions", &[("topic", "wide")]).unwrap(),
        3.0
    );
    assert!(value(&s, "kavka_broker_partitions", &[]).unwrap() >= 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_listen_off_and_bad() {
    let node = Node::start(NodeOptions {
        args: vec!["--http-listen".into(), String::new()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    wait_until("the ready line", DEADLINE, || async {
        node.log().contains("kavka is ready")
    })
    .await
    .unwrap();
    assert!(node.log().contains("http=None"), "{}", node.log());
    assert!(
        http_get(&node.http_addr(), "/health/live", Duration::from_secs(5))
            .await
            .is_err(),
        "nothing listens on the HTTP port"
    );

    let err = refused(&["--http-listen", "localhost:nine"]).await;
    assert!(
        err.contains("HTTP listen address") && err.contains("localhost:nine"),
        "{err}"
    );

    let err = refused(&["--log-format", "xml"]).await;
    assert!(
        err.contains("invalid log format 'xml': expected text or json"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    let node = Node::start(NodeOptions {
        env: vec![("KAVKA_LOG_FORMAT".into(), "json".into())],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    wait_until("the ready line", DEADLINE, || async {
        node.log().contains("kavka is ready")
    })
    .await
    .unwrap();
    let log = node.log();
    let mut ready = false;
    // Whole lines only: the node may be writing the next one.
    let whole = &log[..log.rfind('\n').map_or(0, |i| i + 1)];
    for line in whole.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v["level"].is_string() && v["timestamp"].is_string(),
            "{line}"
        );
        ready |= v["fields"]["message"] == "kavka is ready";
    }
    assert!(ready, "no 'kavka is ready' line: {log}");
}

/// Every metric name the Grafana dashboard's queries use exists in a live `/metrics` of a
/// three-node cluster after produce and consume traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_uses_only_exported_metrics() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/kavka.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has queries: {exprs:?}");
    let wanted: std::collections::BTreeSet<String> =
        exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(wanted.len() >= 10, "{wanted:?}");

    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    create(&cluster.nodes[0], "dash", 3).await;
    for p in 0..3 {
        produce(&cluster.nodes[0], "dash", p, 5).await;
    }
    let out = cluster.nodes[0].cli(&[
        "consume",
        "dash",
        "--group",
        "dashboards",
        "--from-beginning",
        "-n",
        "5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A produce that fails (no partition 99), for the errors by code.
    let mut raw = kavka_proto::v1::broker_service_client::BrokerServiceClient::connect(format!(
        "http://{}",
        cluster.nodes[0].addr()
    ))
    .await
    .unwrap();
    let _ = raw
        .produce(kavka_proto::v1::ProduceRequest {
            topic: "dash".into(),
            acks: 1,
            timeout_ms: 1000,
            batches: vec![kavka_proto::v1::PartitionBatches {
                partition: 99,
                records: vec![0u8; 16].into(),
            }],
            records: vec![],
            compression: String::new(),
        })
        .await;
    // Kafka traffic on every node.
    for n in &cluster.nodes {
        let mut conn = tokio::net::TcpStream::connect(n.kafka_addr())
            .await
            .unwrap();
        let _: ApiVersionsResponse = raw_kafka::call(
            &mut conn,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default(),
        )
        .await;
    }
    // Names exported by any node (a follower's fetcher lag, the active controller's...).
    // Followers fetched the records: the leaders counted the fetches and their bytes.
    let mut missing = wanted.clone();
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (mut fetches, mut replicated) = (0.0, 0.0);
        for n in &cluster.nodes {
            let samples = scrape(n).await;
            fetches += value(&samples, "kavka_replica_fetch_requests_total", &[]).unwrap_or(0.0);
            replicated += value(&samples, "kavka_replication_bytes_out_total", &[]).unwrap_or(0.0);
            let names: std::collections::BTreeSet<String> =
                samples.into_iter().map(|s| s.name).collect();
            missing.retain(|m| !names.contains(m));
        }
        if missing.is_empty() && fetches > 0.0 && replicated > 0.0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dashboard uses metrics no node exports: {missing:?}; replica fetches \
             answered {fetches}, bytes replicated {replicated}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Bad input: scrapes during a failover answer, and fast. Kill the active controller
    // (it leads partitions too) and scrape the survivors while they elect.
    let mut active = 0;
    for (i, n) in cluster.nodes.iter().enumerate() {
        if value(&scrape(n).await, "kavka_controller_active", &[]).unwrap() == 1.0 {
            active = i;
        }
    }
    cluster.nodes[active].kill();
    let survivors: Vec<&Node> = cluster
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != active)
        .map(|(_, n)| n)
        .collect();
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let mut scrapes = 0;
    while std::time::Instant::now() < until {
        for n in &survivors {
            // Generous against a loaded machine, far below a hang.
            let r = http_get(&n.http_addr(), "/metrics", Duration::from_secs(10))
                .await
                .unwrap();
            assert_eq!(r.status, 200, "{}", r.body);
            parse_prometheus(&r.body).unwrap();
            scrapes += 1;
        }
    }
    assert!(scrapes >= 2);
    // And a survivor takes over as the active controller, as its metrics say.
    wait_until("a new active controller", DEADLINE, || {
        let survivors = survivors.clone();
        async move {
            let mut active = 0.0;
            for n in survivors {
                active += value(&scrape(n).await, "kavka_controller_active", &[]).unwrap_or(0.0);
            }
            active == 1.0
        }
    })
    .await
    .unwrap();
}

fn collect_exprs(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("expr", serde_json::Value::String(e)) => out.push(e.clone()),
                    _ => collect_exprs(x, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_exprs(x, out)),
        _ => {}
    }
}

/// The metric names in a PromQL expression: identifiers that are not PromQL's functions
/// or keywords, outside label matchers (`{...}`), strings, ranges (`[5m]`), grouping
/// label lists (`by (...)`, `on (...)`) and Grafana's `$variables`.
fn metric_names(expr: &str) -> Vec<String> {
    const WORDS: &[&str] = &[
        "sum",
        "max",
        "min",
        "avg",
        "count",
        "rate",
        "irate",
        "increase",
        "histogram_quantile",
        "and",
        "or",
        "unless",
        "topk",
        "bottomk",
        "delta",
        "deriv",
        "clamp_min",
        "clamp_max",
        "abs",
        "time",
        "vector",
        "scalar",
        "offset",
        "bool",
        "changes",
        "resets",
        "max_over_time",
        "min_over_time",
        "avg_over_time",
        "inf",
        "nan",
    ];
    const GROUPING: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ];
    let b = expr.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b':';
    let skip_to = |mut i: usize, end: u8| {
        while i < b.len() && b[i] != end {
            i += 1;
        }
        i
    };
    let mut names = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'{' => i = skip_to(i, b'}'),
            b'"' => i = skip_to(i + 1, b'"'),
            b'[' => i = skip_to(i, b']'),
            b'$' => {
                while i + 1 < b.len() && ident(b[i + 1]) {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b':' => {
                let start = i;
                while i + 1 < b.len() && ident(b[i + 1]) {
                    i += 1;
                }
                let word = &expr[start..=i];
                let lower = word.to_ascii_lowercase();
                if GROUPING.contains(&lower.as_str()) {
                    let mut j = i + 1;
                    while j < b.len() && b[j] == b' ' {
                        j += 1;
                    }
                    if j < b.len() && b[j] == b'(' {
                        i = skip_to(j, b')');
                    }
                } else if !WORDS.contains(&lower.as_str()) {
                    names.push(word.to_string());
                }
            }
            _ => {}
        }
        i += 1;
    }
    names
}

#[test]
fn promql_metric_names_are_found() {
    assert_eq!(
        metric_names(
            "sum by (topic) (rate(kavka_topic_bytes_in_total{topic=~\"$topic\"}[$__rate_interval]))"
        ),
        vec!["kavka_topic_bytes_in_total"]
    );
    assert_eq!(
        metric_names(
            "histogram_quantile(0.99, sum by (le, api) (rate(kavka_kafka_request_duration_seconds_bucket[5m])))"
        ),
        vec!["kavka_kafka_request_duration_seconds_bucket"]
    );
    assert_eq!(
        metric_names(
            "max(kavka_raft_commit_index) - on(instance) group_left kavka_broker_metadata_offset"
        ),
        vec!["kavka_raft_commit_index", "kavka_broker_metadata_offset"]
    );
}
