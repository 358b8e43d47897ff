//! Client quotas on a real node: set over Kafka (AlterClientQuotas v0 and v1) and over
//! the CLI, described back over both with Kafka's match types and `strict`; a producer
//! over its `producer_byte_rate` is told to wait (throttle_time_ms) and its connection
//! reads nothing more until then, a consumer over its `consumer_byte_rate` gets no
//! records; bad input is INVALID_REQUEST naming what was wrong; under the authorizer an
//! anonymous client is CLUSTER_AUTHORIZATION_FAILED. Assertions are on the answers and
//! on lower bounds of waits, never on throughput.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kavka_harness::cli_output::{fails_with, ok};
use kavka_harness::{Node, NodeOptions, free_port};
use raw_kafka::{call, call_as, topic};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

/// An AlterClientQuotas entry: entity (type, name; None the default) and (key, value,
/// remove) ops.
fn entry(
    entity: &[(&str, Option<&str>)],
    ops: &[(&str, f64, bool)],
) -> alter_client_quotas_request::EntryData {
    alter_client_quotas_request::EntryData::default()
        .with_entity(
            entity
                .iter()
                .map(|(t, n)| {
                    alter_client_quotas_request::EntityData::default()
                        .with_entity_type(s(t))
                        .with_entity_name(n.map(s))
                })
                .collect(),
        )
        .with_ops(
            ops.iter()
                .map(|(k, v, r)| {
                    alter_client_quotas_request::OpData::default()
                        .with_key(s(k))
                        .with_value(*v)
                        .with_remove(*r)
                })
                .collect(),
        )
}

/// Alters at `version`; each entry's (error code, message).
async fn alter(
    c: &mut TcpStream,
    version: i16,
    entries: Vec<alter_client_quotas_request::EntryData>,
    validate_only: bool,
) -> Vec<(i16, String)> {
    let r: AlterClientQuotasResponse = call(
        c,
        ApiKey::AlterClientQuotas,
        version,
        &AlterClientQuotasRequest::default()
            .with_entries(entries)
            .with_validate_only(validate_only),
    )
    .await;
    r.entries
        .iter()
        .map(|e| {
            (
                e.error_code,
                e.error_message.as_deref().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// A described entity as "type=name,..." (`<default>` for the default) with its values.
type Described = Vec<(String, Vec<(String, f64)>)>;

/// Describes at `version` with components (type, match type, match); Err: the
/// top-level (code, message).
async fn describe(
    c: &mut TcpStream,
    version: i16,
    components: &[(&str, i8, Option<&str>)],
    strict: bool,
) -> Result<Described, (i16, String)> {
    let r: DescribeClientQuotasResponse = call(
        c,
        ApiKey::DescribeClientQuotas,
        version,
        &DescribeClientQuotasRequest::default()
            .with_components(
                components
                    .iter()
                    .map(|(t, m, n)| {
                        describe_client_quotas_request::ComponentData::default()
                            .with_entity_type(s(t))
                            .with_match_type(*m)
                            .with_match(n.map(s))
                    })
                    .collect(),
            )
            .with_strict(strict),
    )
    .await;
    if r.error_code != 0 {
        return Err((
            r.error_code,
            r.error_message.as_deref().unwrap_or("").to_string(),
        ));
    }
    let mut out: Described = r
        .entries
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let entity = e
                .entity
                .iter()
                .map(|d| {
                    format!(
                        "{}={}",
                        d.entity_type.as_str(),
                        d.entity_name.as_deref().unwrap_or("<default>")
                    )
                })
                .collect::<Vec<_>>()
                .join(",");
            let mut values: Vec<(String, f64)> = e
                .values
                .iter()
                .map(|v| (v.key.to_string(), v.value))
                .collect();
            values.sort_by(|a, b| a.0.cmp(&b.0));
            (entity, values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// One batch of `n` bytes of value (one record, not idempotent).
fn batch(n: usize) -> Bytes {
    raw_kafka::record_batch(Bytes::from(vec![b'q'; n]), -1, -1, 1_000)
}

/// Produces `records` to quotas-0 as `client_id`: (error code, throttle_time_ms).
async fn produce(c: &mut TcpStream, client_id: &str, records: Bytes) -> (i16, i32) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic("quotas"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records)),
                ]),
        ]);
    let r: ProduceResponse = call_as(c, client_id, ApiKey::Produce, 9, &req).await;
    (
        r.responses[0].partition_responses[0].error_code,
        r.throttle_time_ms,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_quotas_are_stored_described_and_enforced() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    ok(node.cli(&["topic", "create", "quotas", "-p", "1", "-r", "1"]));
    let mut c = TcpStream::connect(node.kafka_addr()).await.unwrap();

    // Over Kafka, at both versions: the raw client's id gets a producer quota; every
    // user (the default) a consumer quota.
    let done = alter(
        &mut c,
        1,
        vec![entry(
            &[("client-id", Some("raw-test"))],
            &[("producer_byte_rate", 1024.0, false)],
        )],
        false,
    )
    .await;
    assert_eq!(done, vec![(0, String::new())]);
    let done = alter(
        &mut c,
        0,
        vec![entry(
            &[("user", None)],
            &[("consumer_byte_rate", 1024.0, false)],
        )],
        false,
    )
    .await;
    assert_eq!(done[0].0, 0, "{done:?}");
    // validate_only changes nothing.
    let checked = alter(
        &mut c,
        1,
        vec![entry(
            &[("user", Some("checked"))],
            &[("producer_byte_rate", 5.0, false)],
        )],
        true,
    )
    .await;
    assert_eq!(checked[0].0, 0, "{checked:?}");

    // Over the CLI: a (user, client-id) entity; a key set and one removed at once.
    let out = ok(node.cli(&[
        "quota",
        "alter",
        "--entity-user",
        "alice",
        "--client-id",
        "app",
        "--add",
        "producer_byte_rate=1048576,request_percentage=50",
        "--add",
        "consumer_byte_rate=2048",
    ]));
    assert!(
        out.contains("Altered the quotas of user=alice, client-id=app"),
        "{out}"
    );
    ok(node.cli(&[
        "quota",
        "alter",
        "--entity-user",
        "alice",
        "--client-id",
        "app",
        "--delete",
        "consumer_byte_rate",
    ]));

    // Described back over Kafka: (components, strict) -> entities.
    let alice_app = (
        "user=alice,client-id=app".to_string(),
        vec![
            ("producer_byte_rate".to_string(), 1_048_576.0),
            ("request_percentage".to_string(), 50.0),
        ],
    );
    let raw_test = (
        "client-id=raw-test".to_string(),
        vec![("producer_byte_rate".to_string(), 1024.0)],
    );
    let default_user = (
        "user=<default>".to_string(),
        vec![("consumer_byte_rate".to_string(), 1024.0)],
    );
    type Case<'a> = (&'a [(&'a str, i8, Option<&'a str>)], bool, Described);
    let cases: Vec<Case> = vec![
        (
            &[],
            false,
            vec![raw_test.clone(), alice_app.clone(), default_user.clone()],
        ),
        (
            &[("user", 0, Some("alice"))],
            false,
            vec![alice_app.clone()],
        ),
        (&[("user", 0, Some("alice"))], true, vec![]),
        (&[("user", 1, None)], false, vec![default_user.clone()]),
        (&[("user", 2, None)], false, vec![alice_app.clone()]),
        (
            &[("user", 2, None), ("client-id", 0, Some("app"))],
            true,
            vec![alice_app.clone()],
        ),
        (
            &[("client-id", 0, Some("raw-test"))],
            true,
            vec![raw_test.clone()],
        ),
        (&[("client-id", 1, None)], false, vec![]),
        (&[("user", 0, Some("checked"))], false, vec![]),
    ];
    for version in [0, 1] {
        for (components, strict, want) in &cases {
            let mut want = want.clone();
            want.sort_by(|a, b| a.0.cmp(&b.0));
            assert_eq!(
                describe(&mut c, version, components, *strict)
                    .await
                    .unwrap(),
                want,
                "v{version} {components:?} strict={strict}"
            );
        }
    }
    // And over the CLI.
    let v: serde_json::Value = serde_json::from_str(&ok(node.cli(&[
        "quota",
        "describe",
        "--entity-user",
        "alice",
        "-o",
        "json",
    ])))
    .unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["quotas"]["producer_byte_rate"], 1_048_576.0, "{v}");
    let table = ok(node.cli(&["quota", "describe", "--client-defaults"]));
    assert!(!table.contains("raw-test"), "{table}");
    let table = ok(node.cli(&["quota", "describe"]));
    for want in [
        "user=alice, client-id=app",
        "1048576",
        "client-id=raw-test",
        "user=<default>",
    ] {
        assert!(table.contains(want), "{want} missing from\n{table}");
    }

    // Bad input: INVALID_REQUEST (42) naming what was wrong, per entry; good entries of
    // the same request still apply.
    let bad = alter(
        &mut c,
        1,
        vec![
            entry(&[("user", Some("bob"))], &[("bogus_rate", 1.0, false)]),
            entry(
                &[("user", Some("bob"))],
                &[("producer_byte_rate", -5.0, false)],
            ),
            entry(
                &[("group", Some("g"))],
                &[("producer_byte_rate", 1.0, false)],
            ),
            entry(
                &[("user", Some("carol"))],
                &[("producer_byte_rate", 4096.0, false)],
            ),
        ],
        false,
    )
    .await;
    let want = [
        "Invalid configuration key bogus_rate",
        "Quota producer_byte_rate must be greater than 0",
        "Unhandled client quota entity type: group",
    ];
    for (got, words) in bad.iter().zip(want) {
        assert_eq!(got.0, 42, "{got:?}");
        assert!(got.1.contains(words), "{got:?} lacks {words}");
    }
    assert_eq!(bad[3].0, 0, "{bad:?}");
    let (code, msg) = describe(&mut c, 1, &[("group", 0, Some("g"))], false)
        .await
        .unwrap_err();
    assert_eq!(code, 42);
    assert!(
        msg.contains("Unhandled client quota entity type: group"),
        "{msg}"
    );
    let (code, _) = describe(&mut c, 1, &[("user", 9, None)], false)
        .await
        .unwrap_err();
    assert_eq!(code, 42);
    fails_with(
        node.cli(&["quota", "alter", "--entity-user", "bob", "--add", "bogus=1"]),
        "Invalid configuration key bogus",
    );
    fails_with(
        node.cli(&[
            "quota",
            "alter",
            "--entity-user",
            "bob",
            "--add",
            "producer_byte_rate=-1",
        ]),
        "must be greater than 0",
    );

    // Enforcement. A client id without a quota is never throttled.
    let mut free = TcpStream::connect(node.kafka_addr()).await.unwrap();
    let (code, throttle) = produce(&mut free, "unlimited", batch(64 * 1024)).await;
    assert_eq!((code, throttle), (0, 0));
    // raw-test may produce 1024 B/s, measured over at least 10 s: 12 KB at once is
    // over it. The records are in, the producer is told to wait, and its connection
    // reads nothing more until then.
    let mut p = TcpStream::connect(node.kafka_addr()).await.unwrap();
    let (code, throttle) = produce(&mut p, "raw-test", batch(12 * 1024)).await;
    assert_eq!(code, 0);
    assert!(throttle > 0, "12 KB against 1024 B/s is not throttled");
    assert!(
        throttle <= 11_000,
        "at most the whole quota window: {throttle}"
    );
    let answered = Instant::now();
    let (code, again) = produce(&mut p, "raw-test", batch(16)).await;
    assert_eq!(code, 0);
    assert!(again > 0, "still over the quota: {again}");
    let muted = answered.elapsed();
    assert!(
        muted >= Duration::from_millis(u64::try_from(throttle).unwrap() / 2),
        "the connection answered again after {muted:?}, the throttle was {throttle} ms"
    );

    // Every user may fetch 1024 B/s: a fetch of the 76 KB produced is over it, answered
    // with a throttle time and no records.
    let mut f = TcpStream::connect(node.kafka_addr()).await.unwrap();
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic("quotas"))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r: FetchResponse = call(&mut f, ApiKey::Fetch, 12, &fetch).await;
    assert!(r.throttle_time_ms > 0, "{r:?}");
    assert!(
        r.responses.is_empty(),
        "a throttled fetch carries no records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_apis_need_cluster_config_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("cluster-secret");
    std::fs::write(&secret, "quota-test-secret\n").unwrap();
    let kafka = format!("127.0.0.1:{}", free_port().unwrap());
    let node = Node::start(NodeOptions {
        args: [
            "--kafka-listeners",
            &format!("PLAINTEXT://{kafka}"),
            "--authorizer-class-name",
            "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--controller-secret-file",
            secret.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec(),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    // An anonymous client has no ACLs: refused, naming the operation.
    let mut c = TcpStream::connect(&kafka).await.unwrap();
    let (code, msg) = describe(&mut c, 1, &[], false).await.unwrap_err();
    assert_eq!(code, 31, "CLUSTER_AUTHORIZATION_FAILED: {msg}");
    assert!(msg.contains("DESCRIBE_CONFIGS"), "{msg}");
    let refused = alter(
        &mut c,
        1,
        vec![entry(
            &[("user", None)],
            &[("producer_byte_rate", 1.0, false)],
        )],
        false,
    )
    .await;
    assert_eq!(refused[0].0, 31, "{refused:?}");
    assert!(refused[0].1.contains("ALTER_CONFIGS"), "{refused:?}");
    // The cluster's own secret may.
    let secret_arg = secret.to_str().unwrap();
    ok(node.cli(&[
        "--cluster-secret-file",
        secret_arg,
        "quota",
        "alter",
        "--user-defaults",
        "--add",
        "producer_byte_rate=1048576",
    ]));
    let out = ok(node.cli(&["--cluster-secret-file", secret_arg, "quota", "describe"]));
    assert!(out.contains("user=<default>"), "{out}");
}

/// `kavka_quota_throttled_requests_total{quota="request_percentage"}` on `node`.
async fn request_throttles(node: &Node) -> f64 {
    let r = kavka_harness::http::http_get(&node.http_addr(), "/metrics", Duration::from_secs(10))
        .await
        .unwrap();
    let samples = kavka_harness::http::parse_prometheus(&r.body).unwrap();
    kavka_harness::http::samples(
        &samples,
        "kavka_quota_throttled_requests_total",
        &[("quota", "request_percentage")],
    )
    .iter()
    .map(|s| s.value)
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_percentage_throttles_a_client_that_keeps_the_broker_busy() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    // 0.01% of one handler: 1 ms of answering per 10 s window for client id "busy".
    ok(node.cli(&[
        "quota",
        "alter",
        "--client-id",
        "busy",
        "--add",
        "request_percentage=0.01",
    ]));
    let mut c = TcpStream::connect(node.kafka_addr()).await.unwrap();
    let metadata = MetadataRequest::default().with_topics(Some(vec![]));
    // Another client id has no quota: never throttled however busy.
    for _ in 0..50 {
        let r: MetadataResponse = call_as(&mut c, "idle", ApiKey::Metadata, 12, &metadata).await;
        assert_eq!(r.throttle_time_ms, 0);
    }
    assert_eq!(request_throttles(&node).await, 0.0);
    // "busy" runs past its millisecond within a few requests: throttled, and told so in
    // the response (throttle_time_ms). One request at a time, each answered: a throttled
    // connection is then muted for the throttle time.
    let end = Instant::now() + Duration::from_secs(60);
    let mut sent = 0;
    let throttle_ms = loop {
        assert!(
            Instant::now() < end,
            "never throttled after {sent} requests"
        );
        let r: MetadataResponse = call_as(&mut c, "busy", ApiKey::Metadata, 12, &metadata).await;
        assert_eq!(r.brokers.len(), 1);
        sent += 1;
        if r.throttle_time_ms > 0 {
            break r.throttle_time_ms;
        }
    };
    assert!(request_throttles(&node).await > 0.0);
    // The next request is read only once the throttle time has passed.
    let before = Instant::now();
    let _: MetadataResponse = call_as(&mut c, "busy", ApiKey::Metadata, 12, &metadata).await;
    let waited = before.elapsed();
    assert!(
        waited >= Duration::from_millis(u64::try_from(throttle_ms).unwrap()) / 2,
        "answered after {waited:?}, throttled for {throttle_ms} ms"
    );
}
