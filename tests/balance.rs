//! A cluster that changes shape while it serves, on real `kavka` processes: brokers join
//! a running cluster and `kavka cluster balance` spreads replicas and leaders onto them
//! under a throttle while acks=all producers write; a broker is decommissioned (every
//! replica moves off it, new topics stay off it) and recommissioned; the history
//! checker's verdict covers it all. Then what is refused (too few brokers left, a
//! partition's only in-sync copy, an unknown broker, bad flags) changing nothing, and
//! `--auto-balance`: a joining broker takes its share, a broker down too long is drained.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_client::Client;
use kavka_harness::checker::{self, Workload};
use kavka_harness::cli_output::{fails_with, ok};
use kavka_harness::{Cluster, run_cli, wait_until};
use std::collections::BTreeMap;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);

/// partition → (replicas, isr).
async fn shape(bootstrap: &str, t: &str) -> Option<Vec<(Vec<i32>, Vec<i32>)>> {
    let mut c = Client::connect(bootstrap).await.ok()?;
    let d = c.describe_topic(t).await.ok()?;
    Some(
        d.partitions
            .into_iter()
            .map(|p| (p.replicas, p.isr))
            .collect(),
    )
}

/// Replicas and preferred leaders (first replicas) per broker of topic `t`.
fn counts(shape: &[(Vec<i32>, Vec<i32>)], brokers: &[i32]) -> (Vec<usize>, Vec<usize>) {
    let replicas = brokers
        .iter()
        .map(|b| shape.iter().filter(|(r, _)| r.contains(b)).count())
        .collect();
    let leaders = brokers
        .iter()
        .map(|b| shape.iter().filter(|(r, _)| r.first() == Some(b)).count())
        .collect();
    (replicas, leaders)
}

/// Partitions of topic `t` each broker leads now.
async fn leaders(bootstrap: &str, t: &str, brokers: &[i32]) -> Option<Vec<usize>> {
    let mut c = Client::connect(bootstrap).await.ok()?;
    let d = c.describe_topic(t).await.ok()?;
    Some(
        brokers
            .iter()
            .map(|b| d.partitions.iter().filter(|p| p.leader == *b).count())
            .collect(),
    )
}

fn spread(v: &[usize]) -> usize {
    v.iter().max().unwrap() - v.iter().min().unwrap()
}

/// `kavka broker list -o json`: id → (state, replicas).
fn brokers(bootstrap: &str) -> BTreeMap<i64, (String, i64)> {
    let out = ok(run_cli(bootstrap, &["broker", "list", "-o", "json"], b""));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_i64().unwrap(),
                (
                    b["state"].as_str().unwrap().to_string(),
                    b["replicas"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

fn create(bootstrap: &str, t: &str, partitions: &str, rf: &str, min_isr: &str) {
    ok(run_cli(
        bootstrap,
        &[
            "topic",
            "create",
            t,
            "--partitions",
            partitions,
            "--replication-factor",
            rf,
            "--config",
            &format!("min.insync.replicas={min_isr}"),
        ],
        b"",
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_join_and_balance_then_one_is_decommissioned_while_producers_write() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "grow", "6", "3", "2");
    let w = Workload::start(&bootstrap, "grow", 2);
    w.progress(50, DEADLINE).await.unwrap();

    // Two brokers join the running cluster: registered, holding nothing yet.
    cluster.add_node(4, "broker").await.unwrap();
    cluster.add_node(5, "broker").await.unwrap();
    let bootstrap = cluster.bootstrap();
    wait_until("five active brokers listed", DEADLINE, || async {
        let b = brokers(&bootstrap);
        b.len() == 5 && b.values().all(|(state, _)| state == "active")
    })
    .await
    .unwrap();
    let (replicas, _) = counts(&shape(&bootstrap, "grow").await.unwrap(), &[4, 5]);
    assert_eq!(replicas, vec![0, 0]);

    // The dry run plans moves onto them and changes nothing.
    let out = ok(run_cli(
        &bootstrap,
        &["cluster", "balance", "--dry-run", "-o", "json"],
        b"",
    ));
    let plan: serde_json::Value = serde_json::from_str(&out).unwrap();
    let moves = plan["moves"].as_array().unwrap();
    assert!(moves.iter().all(|m| m["to"] != m["from"]), "{out}");
    let onto_new =
        |m: &serde_json::Value| m["to"].as_array().unwrap().iter().any(|b| b == 4 || b == 5);
    assert!(moves.iter().any(onto_new), "{out}");
    w.progress(20, DEADLINE).await.unwrap();
    assert_eq!(
        counts(&shape(&bootstrap, "grow").await.unwrap(), &[4, 5]).0,
        vec![0, 0],
        "a dry run moves nothing"
    );

    // Executed under a throttle (lifted after) while the producers keep writing.
    let out = ok(run_cli(
        &bootstrap,
        &[
            "cluster",
            "balance",
            "--execute",
            "--throttle",
            "50MB/s",
            "--timeout",
            "150",
        ],
        b"",
    ));
    assert!(out.contains("The cluster is balanced."), "{out}");
    assert!(out.contains("Replication throttle lifted."), "{out}");
    let all = [1, 2, 3, 4, 5];
    wait_until(
        "grow's replicas and leaders even over 5 brokers",
        DEADLINE,
        || async {
            shape(&bootstrap, "grow").await.is_some_and(|s| {
                let (replicas, leaders) = counts(&s, &all);
                spread(&replicas) <= 1
                    && spread(&leaders) <= 1
                    && s.iter().all(|(r, isr)| r.len() == 3 && isr.len() == 3)
            })
        },
    )
    .await
    .unwrap();
    // Leadership follows the preferred replicas: the balance ends with an election.
    wait_until(
        "grow's leadership even over 5 brokers",
        DEADLINE,
        || async {
            leaders(&bootstrap, "grow", &all)
                .await
                .is_some_and(|l| spread(&l) <= 1)
        },
    )
    .await
    .unwrap();
    w.progress(30, DEADLINE).await.unwrap();
    let out = ok(run_cli(
        &bootstrap,
        &["cluster", "balance", "--dry-run"],
        b"",
    ));
    assert!(out.contains("0 move(s) planned."), "{out}");

    // Broker 2 is decommissioned: everything moves off it; a new topic stays off it.
    let out = ok(run_cli(
        &bootstrap,
        &["broker", "decommission", "2", "--timeout", "150"],
        b"",
    ));
    assert!(
        out.contains("Broker 2 holds no replicas: it can be stopped."),
        "{out}"
    );
    wait_until(
        "broker 2 listed decommissioned and empty",
        DEADLINE,
        || async { brokers(&bootstrap).get(&2) == Some(&("decommissioned".to_string(), 0)) },
    )
    .await
    .unwrap();
    create(&bootstrap, "after", "8", "3", "2");
    let s = shape(&bootstrap, "after").await.unwrap();
    assert!(s.iter().all(|(r, _)| !r.contains(&2)), "{s:?}");
    w.progress(30, DEADLINE).await.unwrap();

    // Back into service: listed active, and new topics may use it again.
    let out = ok(run_cli(&bootstrap, &["broker", "recommission", "2"], b""));
    assert!(out.contains("Broker 2 is back in service"), "{out}");
    wait_until("broker 2 listed active", DEADLINE, || async {
        brokers(&bootstrap)
            .get(&2)
            .is_some_and(|(s, _)| s == "active")
    })
    .await
    .unwrap();

    let history = w.stop().await;
    let hws = checker::settled_high_watermarks(&bootstrap, "grow", 3, DEADLINE)
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, "grow", &hws);
    assert!(report.acked > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommissions_that_would_lose_data_or_cannot_finish_are_refused() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "three", "2", "3", "2");
    fails_with(
        run_cli(&bootstrap, &["broker", "decommission", "2"], b""),
        "INVALID_REPLICATION_FACTOR",
    );
    let out = run_cli(&bootstrap, &["broker", "decommission", "2"], b"");
    fails_with(
        out,
        "cannot be emptied: three-0, three-1 would have no broker left",
    );
    fails_with(
        run_cli(&bootstrap, &["broker", "decommission", "9"], b""),
        "BROKER_ID_NOT_REGISTERED",
    );
    fails_with(
        run_cli(
            &bootstrap,
            &["cluster", "balance", "--throttle", "5MB/s"],
            b"",
        ),
        "--execute",
    );
    fails_with(
        run_cli(
            &bootstrap,
            &["cluster", "balance", "--execute", "--throttle", "5XB/s"],
            b"",
        ),
        "expected a rate such as 50MB/s",
    );

    // Broker 1 holds the only in-sync copy of "lone" once broker 2 is down.
    ok(run_cli(
        &bootstrap,
        &[
            "topic",
            "create",
            "lone",
            "--replica-assignment",
            "1:2",
            "--config",
            "min.insync.replicas=1",
        ],
        b"",
    ));
    cluster.node(2).kill();
    wait_until("lone-0's ISR to shrink to broker 1", DEADLINE, || async {
        shape(&bootstrap, "lone")
            .await
            .is_some_and(|s| s[0].1 == vec![1])
    })
    .await
    .unwrap();
    fails_with(
        run_cli(&bootstrap, &["broker", "decommission", "1"], b""),
        "NOT_ENOUGH_REPLICAS",
    );
    // Nothing half-done: no broker marked, no partition moving.
    let listed = brokers(&bootstrap);
    assert!(
        listed.values().all(|(state, _)| state != "decommissioned"),
        "{listed:?}"
    );
    let moves = ok(run_cli(&bootstrap, &["partition", "moves"], b""));
    assert!(moves.contains("0 partition(s) moving."), "{moves}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_balance_fills_a_joining_broker_and_drains_one_down_too_long() {
    let mut cluster = Cluster::start(
        &["controller,broker"; 3],
        &["--auto-balance", "--auto-balance-down-after-ms", "3000"],
    )
    .await
    .unwrap();
    let bootstrap = cluster.bootstrap();
    create(&bootstrap, "auto", "6", "2", "1");
    cluster.add_node(4, "broker").await.unwrap();
    let bootstrap = cluster.bootstrap();
    let all = [1, 2, 3, 4];
    wait_until(
        "broker 4 to take its share of auto's replicas",
        DEADLINE,
        || async {
            shape(&bootstrap, "auto").await.is_some_and(|s| {
                let (replicas, _) = counts(&s, &all);
                spread(&replicas) <= 1 && replicas[3] > 0
            })
        },
    )
    .await
    .unwrap();

    // Broker 3 stays down past the 3 s: its replicas move to the three left.
    cluster.node(3).kill();
    wait_until("auto's replicas to leave broker 3", DEADLINE, || async {
        shape(&bootstrap, "auto").await.is_some_and(|s| {
            s.iter()
                .all(|(r, isr)| !r.contains(&3) && r.len() == 2 && isr.len() == 2)
        })
    })
    .await
    .unwrap_or_else(|e| {
        for n in [1, 2, 4] {
            for l in cluster
                .node(n)
                .log()
                .lines()
                .filter(|l| l.contains("balanc") || l.contains("WARN") || l.contains("fenced"))
            {
                println!("node {n}: {l}");
            }
        }
        panic!("{e}")
    });
}
