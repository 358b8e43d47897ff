//! Partition reassignment on real `kavka` processes (Kafka's KIP-455): moves made with
//! the CLI while acks=all producers write, one that waits for a down broker and whose
//! leader is killed mid-move, and a broker whose data dir is deleted coming back empty,
//! checked by the history checker (nothing acknowledged lost, replicas identical, the old
//! replicas' files gone); replication throttles holding a move; and the bad moves Kafka
//! refuses, over raw AlterPartitionReassignments / ListPartitionReassignments and the CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use kafka_protocol::messages::*;
use kavka_client::Client;
use kavka_harness::checker::{self, Workload};
use kavka_harness::cli_output::{fails_with, ok};
use kavka_harness::{Cluster, run_cli, wait_until};
use raw_kafka::{call, topic};
use std::time::Duration;
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(90);

/// partition → (replicas, isr, leader), from the cluster's describe.
async fn shape(bootstrap: &str, t: &str) -> Option<Vec<(Vec<i32>, Vec<i32>, i32)>> {
    let mut c = Client::connect(bootstrap).await.ok()?;
    let d = c.describe_topic(t).await.ok()?;
    Some(
        d.partitions
            .into_iter()
            .map(|p| (p.replicas, p.isr, p.leader))
            .collect(),
    )
}

async fn wait_for_replicas(bootstrap: &str, t: &str, p: usize, want: &[i32]) {
    wait_until(
        &format!("{t}-{p} to have replicas {want:?} all in sync"),
        DEADLINE,
        || async {
            shape(bootstrap, t).await.is_some_and(|s| {
                s.get(p).is_some_and(|(replicas, isr, leader)| {
                    replicas == want && isr.len() == want.len() && want.contains(leader)
                })
            })
        },
    )
    .await
    .unwrap();
}

async fn leader_of(bootstrap: &str, t: &str, p: usize) -> i32 {
    let end = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < end {
        if let Some(leader) = shape(bootstrap, t)
            .await
            .and_then(|s| s.get(p).map(|p| p.2))
            .filter(|&l| l > 0)
        {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader for {t}-{p} within {DEADLINE:?}");
}

/// Waits until `node`'s data dir no longer holds `dir` (a removed replica deletes its log).
async fn wait_gone(cluster: &mut Cluster, node: i32, dir: &str) {
    let path = cluster.node(node).data_dir().join(dir);
    wait_until(
        &format!("{} to be deleted", path.display()),
        DEADLINE,
        || async { !path.exists() },
    )
    .await
    .unwrap();
}

/// A topic with `min.insync.replicas=2` and Kafka's `--replica-assignment` text.
fn create(bootstrap: &str, t: &str, assignment: &str) {
    ok(run_cli(
        bootstrap,
        &[
            "topic",
            "create",
            t,
            "--replica-assignment",
            assignment,
            "--config",
            "min.insync.replicas=2",
        ],
        b"",
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_move_while_acks_all_producers_write_and_nothing_is_lost() {
    let mut cluster = Cluster::start(
        &[
            "controller,broker",
            "controller,broker",
            "controller,broker",
            "broker",
        ],
        &[],
    )
    .await
    .unwrap();
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "moving", "1:2:3,2:3:1");
    let w = Workload::start(&bootstrap, "moving", 2);
    w.progress(50, DEADLINE).await.unwrap();

    // A move onto a broker that is down waits for it; its leader dies mid-move.
    w.fault(&bootstrap, "moving", "kill", 4).await;
    cluster.node(4).kill();
    ok(run_cli(
        &bootstrap,
        &["partition", "move", "moving-1", "--replicas", "2,3,4"],
        b"",
    ));
    let listed = ok(run_cli(
        &bootstrap,
        &["partition", "moves", "-o", "json"],
        b"",
    ));
    let moves: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let m = &moves[0];
    assert_eq!(m["topic"], "moving", "{listed}");
    assert_eq!(m["partition"], 1, "{listed}");
    assert_eq!(m["replicas"], serde_json::json!([2, 3, 4, 1]), "{listed}");
    assert_eq!(m["adding_replicas"], serde_json::json!([4]), "{listed}");
    assert_eq!(m["removing_replicas"], serde_json::json!([1]), "{listed}");
    let leader = leader_of(&bootstrap, "moving", 1).await;
    w.fault(&bootstrap, "moving", "kill", leader).await;
    cluster.node(leader).kill();
    w.progress(30, DEADLINE).await.unwrap();
    let table = ok(run_cli(&bootstrap, &["partition", "moves"], b""));
    assert!(table.contains("moving-1"), "{table}");
    assert!(table.contains("waiting for"), "{table}");
    cluster.node(4).start_again().await.unwrap();
    cluster.node(leader).start_again().await.unwrap();
    wait_for_replicas(&bootstrap, "moving", 1, &[2, 3, 4]).await;
    wait_gone(&mut cluster, 1, "moving-1").await;
    // Each broker answers from its own image: wait until the one asked has the change.
    wait_until("no move listed", DEADLINE, || async {
        ok(run_cli(&bootstrap, &["partition", "moves"], b"")).contains("0 partition(s) moving.")
    })
    .await
    .unwrap();
    w.progress(30, DEADLINE).await.unwrap();

    // A move off broker 1 (its leader) onto the new broker 4, waited for by the CLI.
    let out = ok(run_cli(
        &bootstrap,
        &[
            "partition",
            "move",
            "moving-0",
            "--replicas",
            "4,2,3",
            "--wait",
            "90",
        ],
        b"",
    ));
    assert!(out.contains("Moved moving-0 to 4,2,3."), "{out}");
    wait_for_replicas(&bootstrap, "moving", 0, &[4, 2, 3]).await;
    wait_gone(&mut cluster, 1, "moving-0").await;
    w.progress(30, DEADLINE).await.unwrap();

    // Broker 4 (both partitions) loses its disk for good and comes back empty with the
    // same id: it fetches its replicas again from the leaders and rejoins their ISR.
    w.fault(&bootstrap, "moving", "kill", 4).await;
    cluster.node(4).kill();
    std::fs::remove_dir_all(cluster.node(4).data_dir()).unwrap();
    cluster.node(4).start_again().await.unwrap();
    w.progress(30, DEADLINE).await.unwrap();

    let history = w.stop().await;
    let hws = checker::settled_high_watermarks(&bootstrap, "moving", 3, DEADLINE)
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, "moving", &hws);
    assert!(report.acked > 0);
}

fn move_request(
    t: &str,
    partition: i32,
    replicas: Option<&[i32]>,
) -> AlterPartitionReassignmentsRequest {
    AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(30_000)
        .with_topics(vec![
            alter_partition_reassignments_request::ReassignableTopic::default()
                .with_name(topic(t))
                .with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default()
                        .with_partition_index(partition)
                        .with_replicas(replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect())),
                ]),
        ])
}

/// The one partition result of a move: (error code, message).
async fn try_move(
    c: &mut TcpStream,
    version: i16,
    req: AlterPartitionReassignmentsRequest,
) -> (i16, String) {
    let r: AlterPartitionReassignmentsResponse =
        call(c, ApiKey::AlterPartitionReassignments, version, &req).await;
    assert_eq!(r.error_code, 0);
    let p = &r.responses[0].partitions[0];
    (
        p.error_code,
        p.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

async fn list(c: &mut TcpStream) -> ListPartitionReassignmentsResponse {
    let req = ListPartitionReassignmentsRequest::default().with_timeout_ms(30_000);
    call(c, ApiKey::ListPartitionReassignments, 0, &req).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_moves_are_refused_with_kafkas_errors_and_change_nothing() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "t", "1:2");
    wait_for_replicas(&bootstrap, "t", 0, &[1, 2]).await;
    let mut c = TcpStream::connect(cluster.node(1).kafka_addr())
        .await
        .unwrap();
    // (version, target, expected error, words of its message)
    let refused: &[(i16, Option<&[i32]>, i16, &str)] = &[
        (0, Some(&[1, 9]), 39, "broker 9 is not registered"),
        (0, Some(&[3]), 39, "min.insync.replicas=2"),
        (0, Some(&[1, 1]), 39, "twice"),
        (1, Some(&[]), 39, "empty"),
        (0, None, 85, "t-0 is not being moved"),
    ];
    for (version, target, code, says) in refused {
        let (got, message) = try_move(&mut c, *version, move_request("t", 0, *target)).await;
        assert_eq!(got, *code, "{target:?}: {message}");
        assert!(message.contains(says), "{target:?}: {message}");
    }
    let (got, message) = try_move(&mut c, 0, move_request("nope", 0, Some(&[1, 2]))).await;
    assert_eq!(got, 3, "UNKNOWN_TOPIC_OR_PARTITION: {message}");
    // v1 (KIP-860): a replica count change refused when the request does not allow it.
    let req = move_request("t", 0, Some(&[1, 2, 3])).with_allow_replication_factor_change(false);
    let r: AlterPartitionReassignmentsResponse =
        call(&mut c, ApiKey::AlterPartitionReassignments, 1, &req).await;
    assert!(!r.allow_replication_factor_change);
    let p = &r.responses[0].partitions[0];
    assert_eq!(p.error_code, 38, "INVALID_REPLICATION_FACTOR: {p:?}");
    assert!(list(&mut c).await.topics.is_empty());
    assert_eq!(
        shape(&bootstrap, "t").await.unwrap()[0].0,
        vec![1, 2],
        "nothing changed"
    );

    // A move onto a down broker stays ongoing: listed, and a second move is refused.
    cluster.node(3).kill();
    let (got, message) = try_move(&mut c, 1, move_request("t", 0, Some(&[1, 3]))).await;
    assert_eq!(got, 0, "{message}");
    let listed = list(&mut c).await;
    let ongoing = &listed.topics[0].partitions[0];
    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
    assert_eq!(listed.topics[0].name.0.as_str(), "t");
    assert_eq!(ids(&ongoing.replicas), vec![1, 3, 2]);
    assert_eq!(ids(&ongoing.adding_replicas), vec![3]);
    assert_eq!(ids(&ongoing.removing_replicas), vec![2]);
    let (got, message) = try_move(&mut c, 0, move_request("t", 0, Some(&[2, 3]))).await;
    assert_eq!(got, 60, "REASSIGNMENT_IN_PROGRESS: {message}");
    assert!(message.contains("already moving to [1,3]"), "{message}");
    fails_with(
        run_cli(
            &bootstrap,
            &["partition", "move", "t-0", "--replicas", "2,3"],
            b"",
        ),
        "REASSIGNMENT_IN_PROGRESS",
    );
    fails_with(
        run_cli(
            &bootstrap,
            &["partition", "move", "t", "--replicas", "2,3"],
            b"",
        ),
        "expected topic-partition",
    );

    // Cancel puts it back as it was.
    let out = ok(run_cli(&bootstrap, &["partition", "cancel", "t-0"], b""));
    assert!(out.contains("Cancelled the move of t-0."), "{out}");
    // The CLI may have asked another broker: node 1 answers once its image has the change.
    let end = std::time::Instant::now() + DEADLINE;
    while !list(&mut c).await.topics.is_empty() {
        assert!(
            std::time::Instant::now() < end,
            "the cancelled move still listed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for_replicas(&bootstrap, "t", 0, &[1, 2]).await;
    fails_with(
        run_cli(&bootstrap, &["partition", "cancel", "t-0"], b""),
        "NO_REASSIGNMENT_IN_PROGRESS",
    );
}

/// Sets (`Some`) or deletes the cluster-wide dynamic broker config `name` through the
/// broker at `c`, which answers once its own image has the change.
async fn cluster_config(c: &mut TcpStream, name: &str, value: Option<&str>) {
    let config = incremental_alter_configs_request::AlterableConfig::default()
        .with_name(kafka_protocol::protocol::StrBytes::from_string(name.into()))
        .with_config_operation(if value.is_some() { 0 } else { 1 })
        .with_value(value.map(|v| kafka_protocol::protocol::StrBytes::from_string(v.into())));
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        incremental_alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(kafka_protocol::protocol::StrBytes::from_static_str(""))
            .with_configs(vec![config]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        call(c, ApiKey::IncrementalAlterConfigs, 1, &req).await;
    assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0]);
}

/// Holds while `t-0`'s move is throttled: still listed after a few seconds, with
/// `waiting` not caught up (3 MB at 10 kB/s needs minutes; at most one fetch answer of
/// 1 MiB and a second's worth go through first).
async fn still_moving_after_a_while(bootstrap: &str, waiting: &str) {
    tokio::time::sleep(Duration::from_secs(3)).await;
    let table = ok(run_cli(bootstrap, &["partition", "moves"], b""));
    assert!(table.contains("big-0"), "{table}");
    assert!(table.contains(&format!("waiting for {waiting}")), "{table}");
    // Most of the 3 MB is still to copy; the rate is measured (a second apart).
    let listed = ok(run_cli(
        bootstrap,
        &["partition", "moves", "-o", "json"],
        b"",
    ));
    let moves: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let left = moves[0]["bytes_left"].as_u64();
    assert!(left.is_some_and(|b| b > 1_000_000), "{listed}");
    assert!(moves[0]["bytes_per_second"].is_u64(), "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_throttles_hold_a_move_until_lifted() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "big", "1:2");
    let line = format!("{}\n", "x".repeat(999));
    ok(run_cli(
        &bootstrap,
        &["produce", "big", "--acks", "all"],
        line.repeat(3_000).as_bytes(),
    ));
    wait_for_replicas(&bootstrap, "big", 0, &[1, 2]).await;

    // The leader (1) throttles what it sends to the replica moving in (3).
    let mut leader = TcpStream::connect(cluster.node(1).kafka_addr())
        .await
        .unwrap();
    cluster_config(
        &mut leader,
        "leader.replication.throttled.rate",
        Some("10000"),
    )
    .await;
    ok(run_cli(
        &bootstrap,
        &["partition", "move", "big-0", "--replicas", "3,2"],
        b"",
    ));
    still_moving_after_a_while(&bootstrap, "3").await;
    cluster_config(&mut leader, "leader.replication.throttled.rate", None).await;
    wait_for_replicas(&bootstrap, "big", 0, &[3, 2]).await;

    // The replica moving in (1) throttles its own fetching.
    cluster_config(
        &mut leader,
        "follower.replication.throttled.rate",
        Some("10000"),
    )
    .await;
    ok(run_cli(
        &bootstrap,
        &["partition", "move", "big-0", "--replicas", "1,2"],
        b"",
    ));
    still_moving_after_a_while(&bootstrap, "1").await;
    cluster_config(&mut leader, "follower.replication.throttled.rate", None).await;
    wait_for_replicas(&bootstrap, "big", 0, &[1, 2]).await;
    wait_gone(&mut cluster, 3, "big-0").await;
}
