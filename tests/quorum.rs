//! A dynamic controller quorum (KIP-853), with real processes: a controller started
//! outside the static voters follows as an observer and `kavka quorum add-voter` makes it
//! a voter while acks=all producers write (the history checker finds nothing
//! acknowledged lost); the active controller's voter is removed and the new active
//! controller killed, and the quorum elects again and serves; a voter restarted with an
//! emptied data dir is refused, says how to replace it, is removed and added again; a
//! static controller+broker node gets its directory id recorded, is refused once its
//! disk is lost and is replaced while producers write (the checker's verdict);
//! bad voter changes are refused with Kafka's codes and change nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kavka_harness::checker::{self, Workload};
use kavka_harness::{Cluster, Node, NodeOptions, free_port, run_cli, wait_until};
use serde_json::Value;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn cli(bootstrap: &str, args: &[&str]) -> (bool, String) {
    let out = run_cli(bootstrap, args, b"");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn describe(bootstrap: &str) -> Option<Value> {
    let out = run_cli(bootstrap, &["quorum", "describe", "-o", "json"], b"");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn voter_ids(d: &Value) -> Vec<i64> {
    d["voters"]
        .as_array()
        .map(|v| v.iter().filter_map(|v| v["id"].as_i64()).collect())
        .unwrap_or_default()
}

fn directory_id(node: &Node) -> String {
    let text = std::fs::read_to_string(node.data_dir().join("meta.properties")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("directory.id="))
        .unwrap()
        .to_string()
}

/// Starts node `id` with the controller role outside the static voters (an observer),
/// its controller listener on a port of its own.
async fn observer(cluster: &Cluster, id: i32, roles: &str) -> (Node, String) {
    let listen = format!("127.0.0.1:{}", free_port().unwrap());
    let node = Node::start(NodeOptions {
        node_id: Some(id),
        roles: Some(roles.into()),
        voters: cluster.nodes[0].options_voters(),
        args: vec!["--controller-listen".into(), listen.clone()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    (node, listen)
}

/// Waits until a quorum describe through `bootstrap` satisfies `cond`; returns it.
async fn wait_describe(bootstrap: &str, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let mut last = None;
    wait_until(what, DEADLINE, || {
        let d = describe(bootstrap);
        let ok = d.as_ref().is_some_and(&cond);
        last = d;
        async move { ok }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: last {last:?}"));
    last.unwrap()
}

/// Kills `node`, deletes its data dir and starts it again with the same flags: as an
/// emptied voter it must stop, naming the command that replaces it. Returns the old
/// directory id.
async fn lose_disk_and_expect_refusal(node: &mut Node) -> String {
    let old = directory_id(node);
    node.kill();
    std::fs::remove_dir_all(node.data_dir()).unwrap();
    node.launch().unwrap();
    wait_until("the emptied voter to stop", DEADLINE, || {
        let exited = node.exited().is_some();
        async move { exited }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}:\n{}", node.log()));
    let log = node.log();
    let hint = format!(
        "kavka quorum remove-voter {} --directory-id {old}",
        node.node_id()
    );
    assert!(log.contains(&hint), "{log}");
    old
}

/// Creates `name` with 3 partitions, 3 replicas each and min.insync.replicas=2, for
/// acks=all producers that must survive one node down.
fn create_replicated_topic(bootstrap: &str, name: &str) {
    let (ok, out) = cli(
        bootstrap,
        &[
            "topic",
            "create",
            name,
            "-p",
            "3",
            "-r",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    assert!(ok, "{out}");
}

/// Keeps every node's whole log under the temp dir when a step fails (the harness prints
/// only their tails).
fn keep_logs(nodes: &[&Node], test: &str) {
    let dir = std::env::temp_dir().join(format!("kavka-quorum-{test}"));
    let _ = std::fs::create_dir_all(&dir);
    for n in nodes {
        let _ = std::fs::write(dir.join(format!("node-{}.log", n.node_id())), n.log());
    }
    println!("node logs kept in {}", dir.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fourth_voter_joins_the_active_controller_leaves_and_the_quorum_survives_a_kill() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    create_replicated_topic(&bootstrap, "votes");
    let w = Workload::start(&bootstrap, "votes", 2);
    w.progress(50, DEADLINE).await.unwrap();

    let (four, four_addr) = observer(&cluster, 4, "controller").await;
    let four_dir = directory_id(&four);
    cluster.nodes.push(four);

    // Bad input first: refused with Kafka's codes, nothing changes.
    let (ok, out) = cli(
        &bootstrap,
        &["quorum", "add-voter", "1", "--address", &four_addr],
    );
    assert!(!ok && out.contains("DUPLICATE_VOTER"), "{out}");
    let (ok, out) = cli(&bootstrap, &["quorum", "remove-voter", "9"]);
    assert!(!ok && out.contains("VOTER_NOT_FOUND"), "{out}");
    let (ok, out) = cli(
        &bootstrap,
        &["quorum", "add-voter", "5", "--address", &four_addr],
    );
    assert!(
        !ok && out.contains("INVALID_REQUEST") && out.contains("is node 4"),
        "{out}"
    );
    let nowhere = format!("127.0.0.1:{}", free_port().unwrap());
    let (ok, out) = cli(
        &bootstrap,
        &[
            "quorum",
            "add-voter",
            "5",
            "--address",
            &nowhere,
            "--timeout-ms",
            "2000",
        ],
    );
    assert!(!ok && out.contains("REQUEST_TIMED_OUT"), "{out}");
    let d = describe(&bootstrap).unwrap();
    assert_eq!(voter_ids(&d), vec![1, 2, 3], "{d}");
    assert_eq!(d["observers"].as_array().map(Vec::len), Some(0), "{d}");

    // Grow: 3 → 4 voters while the producers write.
    let started = std::time::Instant::now();
    let (ok, out) = cli(
        &bootstrap,
        &["quorum", "add-voter", "4", "--address", &four_addr],
    );
    println!("add-voter took {:?}: {out}", started.elapsed());
    assert!(ok, "{out}");
    let d = describe(&bootstrap).unwrap();
    assert_eq!(voter_ids(&d), vec![1, 2, 3, 4], "{d}");
    let v4 = d["voters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == 4)
        .unwrap();
    assert_eq!(v4["directory_id"].as_str(), Some(four_dir.as_str()), "{d}");
    assert_eq!(v4["address"].as_str(), Some(four_addr.as_str()), "{d}");
    w.progress(30, DEADLINE).await.unwrap();

    // A removal naming another directory id removes nothing.
    let wrong = "00000000-0000-0000-0000-000000000001";
    let (ok, out) = cli(
        &bootstrap,
        &["quorum", "remove-voter", "4", "--directory-id", wrong],
    );
    assert!(!ok && out.contains("VOTER_NOT_FOUND"), "{out}");

    // Shrink: remove the active controller's voter; another takes over.
    let first = d["leader_id"].as_i64().unwrap();
    let (ok, out) = cli(&bootstrap, &["quorum", "remove-voter", &first.to_string()]);
    assert!(ok, "{out}");
    let d = wait_describe(&bootstrap, "a new active controller among the rest", |d| {
        let leader = d["leader_id"].as_i64().unwrap_or(-1);
        !voter_ids(d).contains(&first) && leader > 0 && leader != first
    })
    .await;
    let second = d["leader_id"].as_i64().unwrap();
    w.progress(30, DEADLINE).await.unwrap();

    // Kill the new active controller: the two voters left elect and serve.
    w.fault(&bootstrap, "votes", "kill", second as i32).await;
    cluster.node(second as i32).kill();
    let alive: String = cluster
        .nodes
        .iter()
        .filter(|n| n.is_running() && n.is_broker())
        .map(Node::addr)
        .collect::<Vec<_>>()
        .join(",");
    let d = wait_describe(&alive, "the quorum to elect again", |d| {
        let leader = d["leader_id"].as_i64().unwrap_or(-1);
        leader > 0 && leader != second && leader != first
    })
    .await;
    println!("after the kill: {d}");
    let (ok, out) = cli(&alive, &["topic", "create", "after", "-p", "1", "-r", "1"]);
    if !ok {
        keep_logs(&cluster.nodes.iter().collect::<Vec<_>>(), "survives");
    }
    assert!(ok, "the quorum serves again: {out}");
    w.progress(30, DEADLINE).await.unwrap();

    // Back to full strength, then the checker's verdict.
    cluster.node(second as i32).start_again().await.unwrap();
    let history = w.stop().await;
    let hws = checker::settled_high_watermarks(&bootstrap, "votes", 3, Duration::from_secs(90))
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, "votes", &hws);
    assert!(report.acked > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_voter_is_refused_and_then_replaced() {
    let mut cluster = Cluster::start(&["controller"; 3], &[]).await.unwrap();
    let bootstrap = cluster.bootstrap();
    let (mut four, four_addr) = observer(&cluster, 4, "controller").await;
    let old = directory_id(&four);
    let (ok, out) = cli(
        &bootstrap,
        &["quorum", "add-voter", "4", "--address", &four_addr],
    );
    assert!(ok, "{out}");

    // Its disk is lost: it comes back with a new directory id and must not vote as 4.
    lose_disk_and_expect_refusal(&mut four).await;
    // The others still have a quorum (3 of 4) and the same voters.
    let d = wait_describe(&bootstrap, "an active controller", |d| {
        d["leader_id"].as_i64().unwrap_or(-1) > 0
    })
    .await;
    assert_eq!(voter_ids(&d), vec![1, 2, 3, 4], "{d}");

    // Replace it as the message says.
    let (ok, out) = cli(
        &bootstrap,
        &["quorum", "remove-voter", "4", "--directory-id", &old],
    );
    if !ok {
        let mut all: Vec<&Node> = cluster.nodes.iter().collect();
        all.push(&four);
        keep_logs(&all, "emptied");
    }
    assert!(ok, "{out}");
    let d = wait_describe(&bootstrap, "voter 4 removed", |d| {
        voter_ids(d) == vec![1, 2, 3]
    })
    .await;
    assert_eq!(voter_ids(&d), vec![1, 2, 3], "{d}");

    // Back with an empty data dir (a new directory id), as an observer; then a voter
    // again. While it catches up it meets the old membership entries that name its old
    // directory id; the leader's calls name the new one, and those decide.
    std::fs::remove_dir_all(four.data_dir()).unwrap();
    four.start_again().await.unwrap();
    let new = directory_id(&four);
    assert_ne!(new, old);
    let (ok, out) = cli(
        &bootstrap,
        &["quorum", "add-voter", "4", "--address", &four_addr],
    );
    if !ok {
        let mut all: Vec<&Node> = cluster.nodes.iter().collect();
        all.push(&four);
        keep_logs(&all, "replaced");
    }
    assert!(ok, "{out}");
    let d = wait_describe(&bootstrap, "voter 4 with its new directory id", |d| {
        voter_ids(d) == vec![1, 2, 3, 4]
    })
    .await;
    let v4 = d["voters"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["id"] == 4))
        .cloned()
        .unwrap_or_default();
    assert_eq!(v4["directory_id"].as_str(), Some(new.as_str()), "{d}");
    assert!(four.exited().is_none(), "{}", four.log());
    cluster.nodes.push(four);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_static_node_is_refused_then_replaced_while_producers_write() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    let dirs: Vec<(i64, String)> = cluster
        .nodes
        .iter()
        .map(|n| (i64::from(n.node_id()), directory_id(n)))
        .collect();
    // The active controller records each static voter's directory id from its answers.
    let d = wait_describe(&bootstrap, "every static voter's directory id", |d| {
        let voters = d["voters"].as_array().cloned().unwrap_or_default();
        dirs.iter().all(|(id, dir)| {
            voters
                .iter()
                .any(|v| v["id"] == *id && v["directory_id"].as_str() == Some(dir.as_str()))
        })
    })
    .await;
    println!("recorded: {d}");
    create_replicated_topic(&bootstrap, "lost");
    let alive = format!("{},{}", cluster.nodes[0].addr(), cluster.nodes[1].addr());
    let w = Workload::start(&alive, "lost", 2);
    w.progress(30, DEADLINE).await.unwrap();

    // Node 3's disk is lost; it comes back, same flags, with a new directory id, and is
    // refused: it stops, naming how to replace it.
    let old = lose_disk_and_expect_refusal(cluster.node(3)).await;
    // The other two still have a quorum and the same voters, node 3's old id included.
    let d = wait_describe(&alive, "an active controller", |d| {
        d["leader_id"].as_i64().is_some_and(|l| l == 1 || l == 2)
    })
    .await;
    assert_eq!(voter_ids(&d), vec![1, 2, 3], "{d}");
    let v3 = d["voters"]
        .as_array()
        .and_then(|v| v.iter().find(|v| v["id"] == 3))
        .cloned()
        .unwrap_or_default();
    assert_eq!(v3["directory_id"].as_str(), Some(old.as_str()), "{d}");
    w.progress(30, DEADLINE).await.unwrap();

    // Replaced as the message says: removed by its old directory id, started with an
    // empty data dir outside the voter list (an observer; its broker re-replicates),
    // then added again.
    let (ok, out) = cli(
        &alive,
        &["quorum", "remove-voter", "3", "--directory-id", &old],
    );
    assert!(ok, "{out}");
    let three = cluster.node(3);
    let listen = three.controller_addr().unwrap();
    let others: Vec<String> = three
        .options_voters()
        .unwrap()
        .split(',')
        .filter(|v| !v.starts_with("3@"))
        .map(String::from)
        .collect();
    std::fs::remove_dir_all(three.data_dir()).unwrap();
    three.options_mut().voters = Some(others.join(","));
    three
        .options_mut()
        .args
        .extend(["--controller-listen".to_string(), listen.clone()]);
    three.start_again().await.unwrap();
    let (ok, out) = cli(&alive, &["quorum", "add-voter", "3", "--address", &listen]);
    if !ok {
        keep_logs(&cluster.nodes.iter().collect::<Vec<_>>(), "lost-static");
    }
    assert!(ok, "{out}");
    let new = directory_id(cluster.node(3));
    let d = wait_describe(&alive, "voter 3 with its new directory id", |d| {
        d["voters"]
            .as_array()
            .is_some_and(|v| v.iter().any(|v| v["id"] == 3 && v["directory_id"] == new))
    })
    .await;
    assert_eq!(voter_ids(&d), vec![1, 2, 3], "{d}");
    w.progress(30, DEADLINE).await.unwrap();

    // Nothing acknowledged lost; node 3's new replicas hold the same records.
    let history = w.stop().await;
    let hws = checker::settled_high_watermarks(&bootstrap, "lost", 3, Duration::from_secs(90))
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, "lost", &hws);
    assert!(report.acked > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_voter_stays_and_an_unreachable_one_is_not_added() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    let bootstrap = node.addr();
    let (ok, out) = cli(&bootstrap, &["quorum", "remove-voter", "1"]);
    assert!(
        !ok && out.contains("INVALID_REQUEST") && out.contains("last voter"),
        "{out}"
    );
    let nowhere = format!("127.0.0.1:{}", free_port().unwrap());
    let (ok, out) = cli(
        &bootstrap,
        &[
            "quorum",
            "add-voter",
            "2",
            "--address",
            &nowhere,
            "--timeout-ms",
            "1000",
        ],
    );
    assert!(!ok && out.contains("REQUEST_TIMED_OUT"), "{out}");
    let (ok, out) = cli(
        &bootstrap,
        &[
            "quorum",
            "add-voter",
            "2",
            "--address",
            &nowhere,
            "--directory-id",
            "nope",
        ],
    );
    assert!(!ok && out.contains("INVALID_REQUEST"), "{out}");
    let d = describe(&bootstrap).unwrap();
    assert_eq!(voter_ids(&d), vec![1], "{d}");
    assert_eq!(d["observers"].as_array().map(Vec::len), Some(0), "{d}");
}

/// The same over Kafka's wire protocol: AddRaftVoter, RemoveRaftVoter and DescribeQuorum
/// are advertised (UpdateRaftVoter is not) and answer with KIP-853's codes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_voter_apis_answer_with_kip_853_codes() {
    let node = Node::start(NodeOptions::default()).await.unwrap();
    let mut conn = tokio::net::TcpStream::connect(node.kafka_addr())
        .await
        .unwrap();
    let versions: ApiVersionsResponse = raw_kafka::call(
        &mut conn,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("raw"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    )
    .await;
    let range = |key: ApiKey| {
        versions
            .api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    assert_eq!(range(ApiKey::DescribeQuorum), Some((0, 2)));
    assert_eq!(range(ApiKey::AddRaftVoter), Some((0, 0)));
    assert_eq!(range(ApiKey::RemoveRaftVoter), Some((0, 0)));
    assert_eq!(range(ApiKey::UpdateRaftVoter), None);

    for version in 0..=2 {
        let req = DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(raw_kafka::topic("__cluster_metadata"))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default().with_partition_index(0),
                ]),
        ]);
        let r: DescribeQuorumResponse =
            raw_kafka::call(&mut conn, ApiKey::DescribeQuorum, version, &req).await;
        assert_eq!(r.error_code, 0, "v{version}: {r:?}");
        let p = &r.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{version}: {r:?}");
        assert_eq!(p.leader_id.0, 1, "v{version}: {r:?}");
        let voters: Vec<i32> = p.current_voters.iter().map(|v| v.replica_id.0).collect();
        assert_eq!(voters, vec![1], "v{version}");
        if version >= 2 {
            assert_eq!(r.nodes.len(), 1, "{r:?}");
        }
    }

    let remove = |id: i32| {
        RemoveRaftVoterRequest::default()
            .with_voter_id(id)
            .with_voter_directory_id(Default::default())
    };
    let r: RemoveRaftVoterResponse =
        raw_kafka::call(&mut conn, ApiKey::RemoveRaftVoter, 0, &remove(1)).await;
    assert_eq!(r.error_code, 42, "the last voter: {r:?}");
    let r: RemoveRaftVoterResponse =
        raw_kafka::call(&mut conn, ApiKey::RemoveRaftVoter, 0, &remove(9)).await;
    assert_eq!(r.error_code, 127, "VOTER_NOT_FOUND: {r:?}");
    // Another cluster's id, once this node knows its own (the first active controller
    // writes it just after start).
    let end = std::time::Instant::now() + DEADLINE;
    loop {
        let r: RemoveRaftVoterResponse = raw_kafka::call(
            &mut conn,
            ApiKey::RemoveRaftVoter,
            0,
            &remove(1).with_cluster_id(Some(StrBytes::from_static_str("another"))),
        )
        .await;
        if r.error_code == 104 {
            break;
        }
        assert_eq!(r.error_code, 42, "{r:?}");
        assert!(
            std::time::Instant::now() < end,
            "never INCONSISTENT_CLUSTER_ID: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let controller = node.controller_addr().unwrap();
    let (host, port) = controller.rsplit_once(':').unwrap();
    let add = |id: i32, listeners: bool| {
        AddRaftVoterRequest::default()
            .with_voter_id(id)
            .with_timeout_ms(2000)
            .with_listeners(if listeners {
                vec![
                    add_raft_voter_request::Listener::default()
                        .with_name(StrBytes::from_static_str("CONTROLLER"))
                        .with_host(StrBytes::from_string(host.to_string()))
                        .with_port(port.parse().unwrap()),
                ]
            } else {
                vec![]
            })
    };
    let r: AddRaftVoterResponse =
        raw_kafka::call(&mut conn, ApiKey::AddRaftVoter, 0, &add(1, true)).await;
    assert_eq!(r.error_code, 126, "DUPLICATE_VOTER: {r:?}");
    let r: AddRaftVoterResponse =
        raw_kafka::call(&mut conn, ApiKey::AddRaftVoter, 0, &add(2, false)).await;
    assert_eq!(r.error_code, 42, "no listener: {r:?}");
    // Node 2 at node 1's controller listener: the node there says it is node 1.
    let r: AddRaftVoterResponse =
        raw_kafka::call(&mut conn, ApiKey::AddRaftVoter, 0, &add(2, true)).await;
    assert_eq!(r.error_code, 42, "{r:?}");
    assert!(
        r.error_message
            .as_ref()
            .is_some_and(|m| m.contains("is node 1")),
        "{r:?}"
    );
}
