//! Multi-process clusters of the real `kavka` binary on 127.0.0.1: the controller quorum
//! forms, survives SIGKILLs of the active controller without forgetting any acknowledged
//! topic, restarts whole, fences dead brokers, and runs with dedicated roles.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::{Cluster, run_cli, wait_until};
use serde_json::Value;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

fn json(out: std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "command failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad json ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

fn cli(bootstrap: &str, args: &[&str]) -> std::process::Output {
    run_cli(bootstrap, args, b"")
}

fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "command failed:\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn leader(bootstrap: &str) -> Option<i64> {
    let out = cli(bootstrap, &["quorum", "status", "-o", "json"]);
    if !out.status.success() {
        return None;
    }
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["leader_id"].as_i64().filter(|l| *l > 0)
}

fn topics(addr: &str) -> Vec<String> {
    let v = json(cli(addr, &["topic", "list", "-o", "json"]));
    let mut names: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

fn broker_fenced(bootstrap: &str, id: i64) -> Option<bool> {
    let out = cli(bootstrap, &["cluster", "describe", "-o", "json"]);
    let v: Value = serde_json::from_slice(&out.stdout).ok()?;
    v["brokers"]
        .as_array()?
        .iter()
        .find(|b| b["id"] == id)
        .and_then(|b| b["fenced"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_form_a_quorum_and_spread_replicas() {
    let cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let all = cluster.bootstrap();
    let status = json(cli(&all, &["quorum", "status", "-o", "json"]));
    assert_eq!(status["voters"].as_array().unwrap().len(), 3);
    assert!(status["leader_id"].as_i64().unwrap() >= 1);
    assert!(!status["cluster_id"].as_str().unwrap().is_empty());

    // Created through node 2, visible (after its own propagation) everywhere.
    ok(cli(
        &cluster.nodes[1].addr(),
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "6",
            "-r",
            "3",
            "--config",
            "retention.ms=60000",
        ],
    ));
    for node in &cluster.nodes {
        let addr = node.addr();
        wait_until("the topic on every broker", DEADLINE, || {
            let addr = addr.clone();
            async move { topics(&addr) == ["orders"] }
        })
        .await
        .unwrap();
    }
    let d = json(cli(
        &cluster.nodes[2].addr(),
        &["topic", "describe", "orders", "-o", "json"],
    ));
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 6);
    let mut leads = [0; 4];
    for p in parts {
        assert_eq!(p["replicas"].as_array().unwrap().len(), 3);
        leads[p["leader"].as_i64().unwrap() as usize] += 1;
    }
    assert_eq!(&leads[1..], &[2, 2, 2], "leaders spread evenly");
    assert_eq!(d["configs"]["retention.ms"], "60000");
    // More replicas than brokers: refused.
    let out = cli(&all, &["topic", "create", "too-many", "-r", "4"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("INVALID_REPLICATION_FACTOR"));

    // Produce to a partition's leader and read it back through the cluster bootstrap.
    let leader_of_0 = parts.iter().find(|p| p["partition"] == 0).unwrap()["leader"]
        .as_i64()
        .unwrap();
    let leader_addr = cluster.nodes[(leader_of_0 - 1) as usize].addr();
    ok(run_cli(
        &leader_addr,
        &["produce", "orders", "--partition", "0", "--acks", "all"],
        b"hello\n",
    ));
    let out = ok(cli(
        &leader_addr,
        &[
            "consume",
            "orders",
            "--partition",
            "0",
            "--from-beginning",
            "--format",
            "%v",
        ],
    ));
    assert_eq!(out.trim(), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_the_active_controller_loses_no_acknowledged_topic() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let all = cluster.bootstrap();
    let mut acknowledged = Vec::new();
    for round in 0..3 {
        let active = {
            let all = all.clone();
            let mut found = None;
            wait_until("an active controller", DEADLINE, || {
                let l = leader(&all);
                found = l;
                async move { l.is_some() }
            })
            .await
            .unwrap();
            found.unwrap()
        };
        // Creations before and right after the kill, through the surviving nodes.
        let name = format!("before-{round}");
        ok(cli(&all, &["topic", "create", &name, "-p", "2", "-r", "2"]));
        acknowledged.push(name);
        cluster.node(active as i32).kill();
        let survivors: String = cluster
            .nodes
            .iter()
            .filter(|n| n.is_running())
            .map(|n| n.addr())
            .collect::<Vec<_>>()
            .join(",");
        let name = format!("after-kill-{round}");
        ok(cli(
            &survivors,
            &["topic", "create", &name, "-p", "1", "-r", "1"],
        ));
        acknowledged.push(name);
        cluster.node(active as i32).start_again().await.unwrap();
    }
    acknowledged.sort();
    // Every node, including the ones killed and restarted, knows every acknowledged topic,
    // and the voters agree on the log.
    for node in &cluster.nodes {
        let addr = node.addr();
        let want = acknowledged.clone();
        wait_until("every acknowledged topic on every node", DEADLINE, || {
            let (addr, want) = (addr.clone(), want.clone());
            async move { topics(&addr) == want }
        })
        .await
        .unwrap();
    }
    wait_until("the voters to agree on the log end", DEADLINE, || {
        let all = all.clone();
        async move {
            let s = json(cli(&all, &["quorum", "status", "-o", "json"]));
            let ends: Vec<i64> = s["voters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["log_end"].as_i64().unwrap_or(-1))
                .collect();
            ends.iter().all(|e| *e >= 0 && *e == ends[0])
        }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cluster_restart_keeps_topics_configs_and_records() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let all = cluster.bootstrap();
    ok(cli(
        &all,
        &[
            "topic",
            "create",
            "keep",
            "-p",
            "3",
            "-r",
            "3",
            "--config",
            "segment.bytes=1048576",
        ],
    ));
    let d = json(cli(&all, &["topic", "describe", "keep", "-o", "json"]));
    let leader = d["partitions"][0]["leader"].as_i64().unwrap();
    let leader_addr = cluster.nodes[(leader - 1) as usize].addr();
    ok(run_cli(
        &leader_addr,
        // acks=all: the records must be on every ISR member before the stop, or the
        // controlled shutdown may hand leadership to a follower that lacks them (Kafka
        // keeps only what was committed, and an acks=1 write is not yet).
        &["produce", "keep", "--partition", "0", "--acks", "all"],
        b"a\nb\n",
    ));
    for n in &mut cluster.nodes {
        assert!(n.terminate(), "clean stop:\n{}", n.log());
    }
    // Every voter's controller listener moves (as the upgrade that moved Raft off the
    // client port did): the quorum dials the configured addresses, not those its
    // membership recorded when it formed.
    let moved = (1..=3)
        .map(|i| format!("{i}@127.0.0.1:{}", kavka_harness::free_port().unwrap()))
        .collect::<Vec<_>>()
        .join(",");
    for n in cluster.nodes.iter_mut() {
        n.options_mut().voters = Some(moved.clone());
    }
    // Launch all again, then wait (a quorum needs two of three up before any is ready).
    for n in cluster.nodes.iter_mut() {
        n.launch().unwrap();
    }
    for n in cluster.nodes.iter_mut() {
        n.wait_ready().await.unwrap();
    }
    assert_eq!(topics(&all), ["keep"]);
    let q = json(cli(&all, &["quorum", "status", "-o", "json"]));
    let addrs: Vec<String> = q["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| format!("{}@{}", v["id"], v["addr"].as_str().unwrap()))
        .collect();
    assert_eq!(addrs.join(","), moved);
    assert!(q["leader_id"].as_i64().unwrap() > 0, "{q}");
    // Each broker resumed its metadata from its own checkpoint, not from the log's start.
    for n in &cluster.nodes {
        assert!(
            n.log().contains("resuming metadata from the checkpoint"),
            "node {}:\n{}",
            n.node_id(),
            n.log()
        );
    }
    let d = json(cli(&all, &["topic", "describe", "keep", "-o", "json"]));
    assert_eq!(d["configs"]["segment.bytes"], "1048576");
    let leader = d["partitions"][0]["leader"].as_i64().unwrap();
    let leader_addr = cluster.nodes[(leader - 1) as usize].addr();
    let out = ok(cli(
        &leader_addr,
        &[
            "consume",
            "keep",
            "--partition",
            "0",
            "--from-beginning",
            "--format",
            "%v",
        ],
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["a", "b"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_broker_is_fenced_and_unfenced_after_restart() {
    let mut cluster = Cluster::start(
        &["controller", "controller", "controller", "broker", "broker"],
        &["--session-timeout-ms", "1500"],
    )
    .await
    .unwrap();
    let controllers: String = cluster.nodes[..3]
        .iter()
        .map(|n| n.addr())
        .collect::<Vec<_>>()
        .join(",");
    let brokers: String = cluster.nodes[3..]
        .iter()
        .map(|n| n.addr())
        .collect::<Vec<_>>()
        .join(",");
    // Dedicated roles: admin through a broker, quorum status from a controller.
    ok(cli(
        &brokers,
        &["topic", "create", "d", "-p", "2", "-r", "2"],
    ));
    let s = json(cli(&controllers, &["quorum", "status", "-o", "json"]));
    assert_eq!(s["voters"].as_array().unwrap().len(), 3);
    assert_eq!(broker_fenced(&brokers, 4), Some(false));
    // The broker checkpoints its image at most once a second: wait for the first one
    // (killing it sooner would leave nothing to tear below).
    let checkpoint = cluster.node(4).data_dir().join("metadata-image.checkpoint");
    wait_until(
        "broker 4 to write its metadata checkpoint",
        DEADLINE,
        || {
            let exists = checkpoint.exists();
            async move { exists }
        },
    )
    .await
    .unwrap();

    cluster.node(4).kill();
    let b5 = cluster.nodes[4].addr();
    wait_until("broker 4 to be fenced", DEADLINE, || {
        let b5 = b5.clone();
        async move { broker_fenced(&b5, 4) == Some(true) }
    })
    .await
    .unwrap();
    // A torn metadata checkpoint costs a full refetch, nothing else.
    std::fs::write(&checkpoint, b"{\"offset\": 12, \"reco").unwrap();
    cluster.node(4).start_again().await.unwrap();
    assert!(
        cluster
            .node(4)
            .log()
            .contains("ignoring the metadata checkpoint"),
        "{}",
        cluster.node(4).log()
    );
    wait_until("broker 4 to be unfenced", DEADLINE, || {
        let b5 = b5.clone();
        async move { broker_fenced(&b5, 4) == Some(false) }
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn misconfigured_nodes_are_refused_with_clear_errors() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let all = cluster.bootstrap();
    ok(cli(
        &all,
        &["topic", "create", "safe", "-p", "1", "-r", "3"],
    ));

    // Node 3 restarted with a voter list that disagrees with the quorum's: it stops with
    // an error naming both lists, and the other two keep serving.
    let node3 = cluster.node(3);
    node3.kill();
    let good = node3.options_mut().voters.clone().unwrap();
    node3.options_mut().voters = Some(format!("{good},4@127.0.0.1:1"));
    // It stops before or just after it first reports ready (the check runs beside the
    // start): either way with exit code 1 and the reason.
    if node3.start_again().await.is_ok() {
        let deadline = std::time::Instant::now() + DEADLINE;
        while node3.exited().is_none() {
            assert!(
                std::time::Instant::now() < deadline,
                "still running:\n{}",
                node3.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let log = node3.log();
    assert!(log.contains("disagree with the quorum's"), "{log}");
    let survivors = format!("{},{}", cluster.nodes[0].addr(), cluster.nodes[1].addr());
    ok(cli(&survivors, &["topic", "create", "still-fine"]));
    cluster.node(3).options_mut().voters = Some(good);
    cluster.node(3).start_again().await.unwrap();

    // A second process claiming node 2's id while node 2 is alive: refused registration,
    // never ready; node 2 keeps serving.
    let mut imposter = kavka_harness::Node::start_unready(kavka_harness::NodeOptions {
        node_id: Some(2),
        roles: Some("broker".into()),
        voters: cluster.nodes[0].options_voters(),
        ..Default::default()
    })
    .unwrap();
    wait_until("the duplicate id to be refused", DEADLINE, || {
        let log = imposter.log();
        async move { log.contains("DUPLICATE_BROKER_REGISTRATION") }
    })
    .await
    .unwrap();
    assert!(!imposter.is_serving().await);
    imposter.kill();
    assert_eq!(broker_fenced(&all, 2), Some(false));
}

/// Issue 16 item 10, in part: with the first bootstrap node frozen (its port still takes
/// connections, nothing answers), `kavka quorum status` and the admin commands move on to
/// the next address instead of hanging or failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_moves_past_a_frozen_bootstrap_node() {
    let cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let all = cluster.bootstrap();
    assert!(all.starts_with(&cluster.nodes[0].addr()));
    cluster.nodes[0].pause();
    // Bounded from outside: a hang is a failure, not a stuck test.
    let bin = kavka_harness::kavka_bin();
    let out = kavka_harness::kafka_clients::bounded(
        60,
        bin.to_str().unwrap(),
        &["--bootstrap", &all, "quorum", "status", "-o", "json"],
        b"",
    );
    let status = json(out);
    assert_eq!(
        status["voters"].as_array().map(Vec::len),
        Some(3),
        "{status}"
    );
    let out = kavka_harness::kafka_clients::bounded(
        120,
        bin.to_str().unwrap(),
        &[
            "--bootstrap",
            &all,
            "topic",
            "create",
            "past-frozen",
            "-p",
            "1",
            "-r",
            "2",
        ],
        b"",
    );
    let created = ok(out);
    assert!(created.contains("Created topic past-frozen"), "{created}");
    cluster.nodes[0].resume();
}
