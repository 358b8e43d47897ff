//! Partition replication and failover on three real `kavka` processes, checked by the
//! history checker (`kavka_harness::checker`): leader kills, freezes, a full restart, a
//! follower far behind, a divergent suffix, min.insync.replicas and unclean elections.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

#[allow(dead_code)] // this file frames its own produce requests
mod raw_kafka;

use kavka_client::{Acks, Client, Producer, ProducerConfig, ProducerRecord};
use kavka_harness::checker::{self, Workload};
use kavka_harness::kafka_clients::{RdkafkaProducer, clients_or_skip};
use kavka_harness::{Cluster, wait_until};
use kavka_model::ErrorCode;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// Three dedicated controllers plus brokers 3 (also a controller), 4 and 5: any two
/// brokers can die and the quorum still decides.
async fn cluster_with_spare_quorum() -> Cluster {
    Cluster::start(
        &[
            "controller",
            "controller",
            "controller,broker",
            "broker",
            "broker",
        ],
        &["--leader-imbalance-check-interval-ms", "2000"],
    )
    .await
    .unwrap()
}

async fn cluster() -> Cluster {
    Cluster::start(
        &["controller,broker"; 3],
        &["--leader-imbalance-check-interval-ms", "2000"],
    )
    .await
    .unwrap()
}

/// The brokers' addresses (controller-only nodes serve no topic API).
fn brokers(cluster: &Cluster) -> String {
    cluster
        .nodes
        .iter()
        .filter(|n| n.node_id() >= 3 || cluster.nodes.len() == 3)
        .map(|n| n.addr())
        .collect::<Vec<_>>()
        .join(",")
}

fn create(cluster: &Cluster, topic: &str, partitions: u32, rf: u32, configs: &[&str]) {
    let p = partitions.to_string();
    let r = rf.to_string();
    let mut args = vec!["topic", "create", topic, "-p", &p, "-r", &r];
    for c in configs {
        args.extend(["--config", c]);
    }
    let out = kavka_harness::run_cli(&brokers(cluster), &args, b"");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn describe(bootstrap: &str, topic: &str) -> Option<Vec<kavka_client::v1::PartitionInfo>> {
    let mut c = Client::connect(bootstrap).await.ok()?;
    Some(c.describe_topic(topic).await.ok()?.partitions)
}

async fn leader_of(bootstrap: &str, topic: &str, partition: i32) -> i32 {
    let end = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < end {
        let leader = checker::leaders(bootstrap, topic)
            .await
            .and_then(|l| l.get(&partition).map(|(l, _)| *l))
            .unwrap_or(-1);
        if leader > 0 {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no leader for {topic}-{partition} within {DEADLINE:?}");
}

/// Stops the workload, lets every replica catch up, stops the nodes and checks the logs.
async fn finish(mut cluster: Cluster, w: Workload, topic: &str, rf: usize) -> checker::Report {
    let history = w.stop().await;
    let bootstrap = cluster.bootstrap();
    let hws = checker::settled_high_watermarks(&bootstrap, topic, rf, Duration::from_secs(90))
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, topic, &hws);
    assert!(report.acked > 0);
    report
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_kill_loop_loses_no_acknowledged_record() {
    let mut cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    create(&cluster, "orders", 3, 3, &["min.insync.replicas=2"]);
    let w = Workload::start(&bootstrap, "orders", 3);
    w.progress(50, DEADLINE).await.unwrap();
    for round in 0..4 {
        let victim = leader_of(&bootstrap, "orders", round % 3).await;
        w.fault(&bootstrap, "orders", "kill", victim).await;
        cluster.node(victim).kill();
        w.progress(30, DEADLINE).await.unwrap();
        cluster.node(victim).start_again().await.unwrap();
        w.progress(30, DEADLINE).await.unwrap();
    }
    let report = finish(cluster, w, "orders", 3).await;
    assert_eq!(report.faults, 4);
}

/// KIP-279's case: the leader dies, and the replica that takes over dies too before the
/// others have caught up with it. The last replica leads; when both come back they each
/// truncate what the surviving history does not have, and nothing acknowledged is lost.
/// (Brokers 3–5 with a separate quorum: two combined nodes down would take the quorum.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_double_failover_loses_no_acknowledged_record() {
    let mut cluster = cluster_with_spare_quorum().await;
    let bootstrap = brokers(&cluster);
    create(&cluster, "double", 1, 3, &[]);
    let w = Workload::start(&bootstrap, "double", 3);
    w.progress(100, DEADLINE).await.unwrap();
    for _ in 0..2 {
        let first = leader_of(&bootstrap, "double", 0).await;
        w.fault(&bootstrap, "double", "kill", first).await;
        cluster.node(first).kill();
        let rest: Vec<String> = cluster
            .nodes
            .iter()
            .filter(|n| n.node_id() >= 3 && n.node_id() != first)
            .map(|n| n.addr())
            .collect();
        let rest = rest.join(",");
        // The moment another replica leads, it dies as well.
        let second = std::sync::atomic::AtomicI32::new(-1);
        wait_until("a second leader", DEADLINE, || {
            let (rest, found) = (rest.clone(), &second);
            async move {
                let l = checker::leaders(&rest, "double").await;
                let l = l.and_then(|l| l.get(&0).map(|(l, _)| *l)).unwrap_or(-1);
                found.store(l, std::sync::atomic::Ordering::Relaxed);
                l > 0 && l != first
            }
        })
        .await
        .unwrap();
        let second = second.load(std::sync::atomic::Ordering::Relaxed);
        w.fault(&bootstrap, "double", "kill", second).await;
        cluster.node(second).kill();
        // The last replica leads alone (min.insync.replicas=1) and takes writes.
        w.progress(50, DEADLINE).await.unwrap();
        cluster.node(first).start_again().await.unwrap();
        cluster.node(second).start_again().await.unwrap();
        w.progress(50, DEADLINE).await.unwrap();
        // Both back in the ISR before the next round: killing the only ISR member would
        // rightly take the partition offline (no clean leader is left).
        wait_isr(&bootstrap, "double", 3).await;
    }
    let history = w.stop().await;
    let hws = checker::settled_high_watermarks(&bootstrap, "double", 3, Duration::from_secs(90))
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, "double", &hws);
    assert_eq!(report.faults, 4);
    assert!(report.acked >= 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freeze_thaw_loop_loses_no_acknowledged_record() {
    let mut cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    create(&cluster, "frozen", 2, 3, &["min.insync.replicas=2"]);
    let w = Workload::start(&bootstrap, "frozen", 2);
    w.progress(50, DEADLINE).await.unwrap();
    for round in 0..2 {
        let victim = leader_of(&bootstrap, "frozen", round % 2).await;
        w.fault(&bootstrap, "frozen", "pause", victim).await;
        cluster.node(victim).pause();
        // Past the session timeout the frozen leader is fenced and replaced.
        w.progress(30, DEADLINE).await.unwrap();
        cluster.node(victim).resume();
        w.progress(30, DEADLINE).await.unwrap();
    }
    // A thawed broker's clock jumped by the pause: it must not take that for the
    // controller being behind it, throw its metadata away and, replaying the log from the
    // start, delete partitions that early images lack.
    for n in &cluster.nodes {
        let log = n.log();
        for bad in ["fetching the whole log again", "deleted partition"] {
            assert!(!log.contains(bad), "node {}: {bad}:\n{log}", n.node_id());
        }
    }
    finish(cluster, w, "frozen", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cluster_restart_keeps_acknowledged_records() {
    let mut cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    create(&cluster, "restart", 3, 3, &[]);
    let w = Workload::start(&bootstrap, "restart", 2);
    w.progress(100, DEADLINE).await.unwrap();
    let history = w.stop().await;
    // SIGTERM: controlled shutdowns, one node after another.
    for n in &mut cluster.nodes {
        n.terminate();
    }
    for n in &mut cluster.nodes {
        n.launch().unwrap();
    }
    for n in &mut cluster.nodes {
        n.wait_ready().await.unwrap();
    }
    let hws = checker::settled_high_watermarks(&bootstrap, "restart", 3, Duration::from_secs(90))
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, "restart", &hws);
    assert!(report.acked >= 100);
}

async fn producer(bootstrap: &str, acks: Acks) -> Producer {
    Producer::new(
        Client::connect(bootstrap).await.unwrap(),
        ProducerConfig {
            acks,
            retries: 0,
            request_timeout: Duration::from_secs(5),
            delivery_timeout: Duration::from_secs(10),
            ..ProducerConfig::default()
        },
    )
}

fn record(v: &str) -> ProducerRecord {
    ProducerRecord {
        value: Some(bytes::Bytes::from(v.to_string())),
        partition: Some(0),
        ..ProducerRecord::default()
    }
}

async fn wait_isr(bootstrap: &str, topic: &str, want: usize) {
    wait_until(&format!("ISR of {want}"), DEADLINE, || async {
        describe(bootstrap, topic)
            .await
            .is_some_and(|ps| ps[0].isr.len() == want && ps[0].leader > 0)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn min_insync_replicas_refuses_acks_all_writes() {
    let mut cluster = cluster_with_spare_quorum().await;
    let bootstrap = brokers(&cluster);
    create(&cluster, "strict", 1, 3, &["min.insync.replicas=2"]);
    let leader = leader_of(&bootstrap, "strict", 0).await;
    let mut all = producer(&bootstrap, Acks::All).await;
    all.send("strict", vec![record("a")]).await.unwrap();

    let followers: Vec<i32> = (3..=5).filter(|&n| n != leader).collect();
    for &f in &followers {
        cluster.node(f).kill();
    }
    let alive = cluster.node(leader).addr();
    wait_isr(&alive, "strict", 1).await;
    let e = all.send("strict", vec![record("b")]).await.unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::NotEnoughReplicas), "{e}");
    // acks=1 still lands (but is not visible to consumers until the ISR recovers).
    let mut one = producer(&alive, Acks::Leader).await;
    one.send("strict", vec![record("c")]).await.unwrap();

    cluster.node(followers[0]).launch().unwrap();
    wait_isr(&alive, "strict", 2).await;
    let mut all = producer(&alive, Acks::All).await;
    let m = all.send("strict", vec![record("d")]).await.unwrap();
    assert_eq!(m[0].offset, 2, "a, c, then d");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_election_off_keeps_the_partition_offline_on_elects() {
    // Also ElectLeaders UNCLEAN on request (issue 21 item 5), through the CLI.
    let mut cluster = cluster_with_spare_quorum().await;
    let bootstrap = brokers(&cluster);
    create(&cluster, "risky", 1, 2, &[]);
    let ps = describe(&bootstrap, "risky").await.unwrap();
    let (first, second) = (
        ps[0].leader,
        *ps[0].replicas.iter().find(|&&r| r != ps[0].leader).unwrap(),
    );
    // "asked" lives on the same two brokers, for an unclean election on request.
    let assignment = format!("{first}:{second}");
    let out = kavka_harness::run_cli(
        &bootstrap,
        &[
            "topic",
            "create",
            "asked",
            "--replica-assignment",
            &assignment,
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let elect_unclean = |addr: &str| {
        let out = kavka_harness::run_cli(
            addr,
            &[
                "topic",
                "elect-leaders",
                "--topic",
                "asked",
                "--election-type",
                "unclean",
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    wait_isr(&bootstrap, "asked", 2).await;
    let said = elect_unclean(&bootstrap);
    assert!(said.contains("ELECTION_NOT_NEEDED"), "{said}");
    let mut one = producer(&bootstrap, Acks::All).await;
    one.send("risky", vec![record("x")]).await.unwrap();

    cluster.node(second).kill();
    let third = (3..=5).find(|n| *n != first && *n != second).unwrap();
    let third_addr = cluster.node(third).addr();
    wait_isr(&third_addr, "risky", 1).await;
    wait_isr(&third_addr, "asked", 1).await;
    cluster.node(first).kill();
    wait_until("the partitions to go offline", DEADLINE, || async {
        let offline = |t: &'static str| {
            let addr = third_addr.clone();
            async move {
                describe(&addr, t)
                    .await
                    .is_some_and(|ps| ps[0].leader == -1)
            }
        };
        offline("risky").await && offline("asked").await
    })
    .await
    .unwrap();
    // No replica is live: even an unclean election has no one to pick.
    let said = elect_unclean(&third_addr);
    assert!(said.contains("ELIGIBLE_LEADERS_NOT_AVAILABLE"), "{said}");
    // The out-of-sync replica returns: without unclean election it must not lead.
    cluster.node(second).start_again().await.unwrap();
    for _ in 0..20 {
        for t in ["risky", "asked"] {
            let ps = describe(&third_addr, t).await.unwrap();
            assert_eq!(
                ps[0].leader, -1,
                "an out-of-sync replica was elected for {t}: {ps:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // An operator asks for an unclean election of "asked" (Kafka's ElectLeaders
    // UNCLEAN): its out-of-sync replica leads; "risky" is not touched.
    wait_until("the unclean election on request", DEADLINE, || async {
        elect_unclean(&third_addr).contains("Elected an unclean leader for 1 partition(s)")
    })
    .await
    .unwrap();
    let ps = describe(&third_addr, "asked").await.unwrap();
    assert_eq!((ps[0].leader, ps[0].isr.clone()), (second, vec![second]));
    assert_eq!(describe(&third_addr, "risky").await.unwrap()[0].leader, -1);
    let out = kavka_harness::run_cli(
        &third_addr,
        &[
            "topic",
            "alter-config",
            "risky",
            "--set",
            "unclean.leader.election.enable=true",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("the unclean election", DEADLINE, || async {
        describe(&third_addr, "risky")
            .await
            .is_some_and(|ps| ps[0].leader == second)
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_far_behind_catches_up_and_matches() {
    let mut cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    create(&cluster, "behind", 1, 3, &[]);
    let leader = leader_of(&bootstrap, "behind", 0).await;
    let lagger = (1..=3).find(|&n| n != leader).unwrap();
    cluster.node(lagger).kill();
    let alive = cluster.node(leader).addr();
    let mut p = producer(&alive, Acks::All).await;
    for chunk in 0..40 {
        let batch: Vec<_> = (0..500).map(|i| record(&format!("v{chunk}-{i}"))).collect();
        p.send("behind", batch).await.unwrap();
    }
    cluster.node(lagger).start_again().await.unwrap();
    let hws = checker::settled_high_watermarks(&bootstrap, "behind", 3, Duration::from_secs(90))
        .await
        .unwrap();
    assert_eq!(hws[&0], 20_000);
    checker::stop_and_verify(&mut cluster, &checker::History::default(), "behind", &hws);
}

/// Kafka's follower behind the leader's log start: while it was down, retention on the
/// leader deleted what it would fetch next. It starts its log again at the leader's log
/// start and rejoins the ISR (before, it re-truncated and asked for the same offset forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follower_behind_the_leaders_log_start_starts_again_there() {
    let mut cluster = Cluster::start(
        &["controller,broker"; 3],
        &["--log-retention-check-interval-ms", "200"],
    )
    .await
    .unwrap();
    let bootstrap = cluster.bootstrap();
    create(
        &cluster,
        "pruned",
        1,
        3,
        &["internal.segment.bytes=4096", "retention.bytes=8192"],
    );
    let leader = leader_of(&bootstrap, "pruned", 0).await;
    let lagger = (1..=3).find(|&n| n != leader).unwrap();
    let mut p = producer(&bootstrap, Acks::All).await;
    p.send("pruned", vec![record("before")]).await.unwrap();
    cluster.node(lagger).kill();
    wait_isr(&bootstrap, "pruned", 2).await;
    for chunk in 0..20 {
        let batch: Vec<_> = (0..50).map(|i| record(&format!("v{chunk}-{i}"))).collect();
        p.send("pruned", batch).await.unwrap();
    }
    let leader_addr = cluster.node(leader).addr();
    wait_until(
        "retention on the leader to pass offset 1",
        DEADLINE,
        || async {
            describe(&leader_addr, "pruned")
                .await
                .is_some_and(|ps| ps[0].log_start_offset > 1)
        },
    )
    .await
    .unwrap();
    cluster.node(lagger).start_again().await.unwrap();
    wait_isr(&bootstrap, "pruned", 3).await;
    let lagger_addr = cluster.node(lagger).addr();
    wait_until(
        "the follower's log to start past 1 and end at 1001",
        DEADLINE,
        || async {
            describe(&lagger_addr, "pruned")
                .await
                .is_some_and(|ps| ps[0].log_start_offset > 1 && ps[0].log_end_offset == 1001)
        },
    )
    .await
    .unwrap();
    assert!(
        cluster
            .node(lagger)
            .log()
            .contains("starting the log again there"),
        "{}",
        cluster.node(lagger).log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn divergent_suffix_is_truncated_after_failover() {
    let mut cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    create(&cluster, "diverge", 1, 3, &[]);
    let old = leader_of(&bootstrap, "diverge", 0).await;
    let mut all = producer(&bootstrap, Acks::All).await;
    all.send("diverge", vec![record("committed")])
        .await
        .unwrap();
    // Followers frozen: the leader takes acks=1 writes nobody else gets, then dies.
    let followers: Vec<i32> = (1..=3).filter(|&n| n != old).collect();
    let mut one = producer(&cluster.node(old).addr(), Acks::Leader).await;
    for &f in &followers {
        cluster.node(f).pause();
    }
    for i in 0..5 {
        one.send("diverge", vec![record(&format!("uncommitted-{i}"))])
            .await
            .unwrap();
    }
    cluster.node(old).kill();
    for &f in &followers {
        cluster.node(f).resume();
    }
    let survivor = cluster.node(followers[0]).addr();
    wait_until("a new leader", DEADLINE, || async {
        describe(&survivor, "diverge")
            .await
            .is_some_and(|ps| ps[0].leader > 0 && ps[0].leader != old)
    })
    .await
    .unwrap();
    let mut all = producer(&survivor, Acks::All).await;
    for i in 0..10 {
        all.send("diverge", vec![record(&format!("new-{i}"))])
            .await
            .unwrap();
    }
    cluster.node(old).start_again().await.unwrap();
    let hws = checker::settled_high_watermarks(&bootstrap, "diverge", 3, Duration::from_secs(90))
        .await
        .unwrap();
    let log = cluster.node(old).log();
    assert!(
        log.contains("truncating divergent suffix"),
        "no truncation in:\n{log}"
    );
    checker::stop_and_verify(&mut cluster, &checker::History::default(), "diverge", &hws);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controlled_shutdown_and_preferred_leader_election() {
    let mut cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    create(&cluster, "prefer", 1, 3, &[]);
    let preferred = describe(&bootstrap, "prefer").await.unwrap()[0].replicas[0];
    assert_eq!(leader_of(&bootstrap, "prefer", 0).await, preferred);

    // SIGTERM: leadership moves away before the process exits.
    assert!(cluster.node(preferred).terminate(), "clean exit");
    let log = cluster.node(preferred).log();
    assert!(
        log.contains("controlled shutdown finished") && log.contains("still_leading=0"),
        "leadership did not move before exit:\n{log}"
    );
    let other = cluster
        .nodes
        .iter()
        .find(|n| n.node_id() != preferred)
        .unwrap()
        .addr();
    let moved = describe(&other, "prefer").await.unwrap()[0].leader;
    assert!(moved > 0 && moved != preferred);

    // Back, and in the ISR: the periodic check (2 s here) moves leadership back to it.
    cluster.node(preferred).start_again().await.unwrap();
    wait_until("the preferred replica to lead again", DEADLINE, || async {
        describe(&other, "prefer")
            .await
            .is_some_and(|ps| ps[0].leader == preferred)
    })
    .await
    .unwrap();
    // Already preferred: the CLI says no election was needed.
    let out = kavka_harness::run_cli(
        &other,
        &["topic", "elect-leaders", "--topic", "prefer"],
        b"",
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("ELECTION_NOT_NEEDED"), "{text}");
}

/// `kavka topic elect-leaders --topic T --partition P` through `via`: its output.
fn elect(via: &str, topic: &str, partition: i32) -> String {
    let p = partition.to_string();
    let out = kavka_harness::run_cli(
        via,
        &[
            "topic",
            "elect-leaders",
            "--topic",
            topic,
            "--partition",
            &p,
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 22's sequence, made deterministic: the preferred replica of a partition, a
/// follower in its ISR, is frozen; a preferred-leader election is forced while it is
/// silent (before the fix it was elected, an outage until it was fenced, and on thawing
/// it acted as leader on its stale image); it is fenced; it thaws and rejoins; only then,
/// once it heartbeats and has settled, it leads again. Our idempotent workload and a
/// librdkafka idempotent producer run throughout, and the history must show nothing
/// lost and nothing written twice, for either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_preferred_replica_is_never_elected_and_nothing_is_duplicated() {
    // The periodic rebalance is off: the test forces each election itself. A long
    // session timeout keeps the frozen broker unfenced (the dangerous window) for as long
    // as the forced election may take on a loaded machine.
    let mut cluster = Cluster::start(
        &["controller,broker"; 3],
        &[
            "--leader-imbalance-check-interval-ms",
            "0",
            "--session-timeout-ms",
            "8000",
        ],
    )
    .await
    .unwrap();
    let bootstrap = cluster.bootstrap();
    create(&cluster, "pref", 3, 3, &["min.insync.replicas=2"]);
    // A partition whose preferred replica is not the active controller, so freezing it
    // leaves the controller deciding (and the silent-but-unfenced window real).
    let status = kavka_harness::run_cli(&bootstrap, &["quorum", "status", "-o", "json"], b"");
    let controller =
        serde_json::from_slice::<serde_json::Value>(&status.stdout).unwrap()["leader_id"]
            .as_i64()
            .unwrap() as i32;
    let (part, preferred) = describe(&bootstrap, "pref")
        .await
        .unwrap()
        .iter()
        .map(|p| (p.partition, p.replicas[0]))
        .find(|(_, r)| *r != controller)
        .unwrap();
    let others: String = cluster
        .nodes
        .iter()
        .filter(|n| n.node_id() != preferred)
        .map(|n| n.addr())
        .collect::<Vec<_>>()
        .join(",");
    let state = |others: String| async move {
        describe(&others, "pref")
            .await
            .and_then(|ps| ps.into_iter().find(|p| p.partition == part))
    };
    let w = Workload::start(&bootstrap, "pref", 2);
    // Beside our own idempotent producers, librdkafka's (the client of the incident).
    let rdkafka = clients_or_skip("the librdkafka producer of this test").map(|python| {
        RdkafkaProducer::start(&python, &cluster.kafka_bootstrap(), "pref", 240).unwrap()
    });
    w.progress(50, DEADLINE).await.unwrap();

    // Make the preferred replica a follower: freeze it (it leads the partition) until
    // another replica leads, then thaw it and let it rejoin the ISR.
    assert_eq!(leader_of(&bootstrap, "pref", part).await, preferred);
    w.fault(&bootstrap, "pref", "pause", preferred).await;
    cluster.node(preferred).pause();
    wait_until("another leader", DEADLINE, || async {
        state(others.clone())
            .await
            .is_some_and(|p| p.leader > 0 && p.leader != preferred)
    })
    .await
    .unwrap();
    cluster.node(preferred).resume();
    w.progress(30, DEADLINE).await.unwrap();
    wait_until("the thawed replica back in the ISR", DEADLINE, || async {
        state(others.clone())
            .await
            .is_some_and(|p| p.isr.len() == 3)
    })
    .await
    .unwrap();
    let epoch_before = checker::leaders(&others, "pref").await.unwrap()[&part].1;
    // Long enough unfenced to be settled (4 heartbeat intervals): only silence can
    // make it ineligible below.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Frozen while a follower in the ISR; silent past 4 heartbeat intervals but far from
    // fenced (as at the incident: 1.7 s), a forced preferred election must refuse it.
    w.fault(&bootstrap, "pref", "pause", preferred).await;
    cluster.node(preferred).pause();
    let frozen_at = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let answer = elect(&others, "pref", part);
    println!(
        "forced election {:?} after the freeze: {answer}",
        frozen_at.elapsed()
    );
    assert!(
        answer.contains("PREFERRED_LEADER_NOT_AVAILABLE") && answer.contains("no heartbeat"),
        "a silent broker was elected: {answer}"
    );
    // Fenced (it leaves the ISR), still never the leader; the workload goes on.
    wait_until("the frozen replica to leave the ISR", DEADLINE, || async {
        state(others.clone())
            .await
            .is_some_and(|p| !p.isr.contains(&preferred))
    })
    .await
    .unwrap();
    let answer = elect(&others, "pref", part);
    assert!(
        answer.contains("PREFERRED_LEADER_NOT_AVAILABLE"),
        "{answer}"
    );
    w.progress(30, DEADLINE).await.unwrap();
    let (leader, epoch) = checker::leaders(&others, "pref").await.unwrap()[&part];
    assert_ne!(leader, preferred, "the frozen replica leads epoch {epoch}");
    // And no leader epoch since the freeze was ever held by it (the monitor's view).
    let seen = w.leaders_seen();
    assert!(
        !seen
            .iter()
            .any(|((p, e), ls)| *p == part && *e > epoch_before && ls.contains(&preferred)),
        "the frozen replica was elected: {seen:?}"
    );

    // Thawed: it rejoins, and once it heartbeats and has settled it is elected.
    cluster.node(preferred).resume();
    wait_until("the preferred replica to be elected", DEADLINE, || async {
        if state(others.clone())
            .await
            .is_some_and(|p| p.isr.len() == 3)
        {
            elect(&others, "pref", part);
        }
        state(others.clone())
            .await
            .is_some_and(|p| p.leader == preferred)
    })
    .await
    .unwrap();
    w.progress(30, DEADLINE).await.unwrap();
    let mut history = w.stop().await;
    if let Some(rd) = rdkafka {
        let acks = tokio::task::spawn_blocking(move || rd.stop())
            .await
            .unwrap()
            .unwrap();
        assert!(
            acks.len() >= 100,
            "librdkafka acknowledged only {} records",
            acks.len()
        );
        history
            .acked
            .extend(acks.into_iter().filter_map(|a| a.into_ack()));
    }
    let hws = checker::settled_high_watermarks(&bootstrap, "pref", 3, Duration::from_secs(90))
        .await
        .unwrap();
    let report = checker::stop_and_verify(&mut cluster, &history, "pref", &hws);
    assert_eq!(report.faults, 2);
}

/// The leader lease: with every controller frozen, a broker that leads a partition has
/// no heartbeat answered; past its session timeout it must stop acting as leader
/// (NOT_LEADER_OR_FOLLOWER, naming why), though its metadata still says it leads, and
/// lead again once the controllers answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_without_answered_heartbeats_stops_leading() {
    let mut cluster = Cluster::start(
        &["controller", "controller", "controller", "broker"],
        &["--leader-imbalance-check-interval-ms", "0"],
    )
    .await
    .unwrap();
    let broker = cluster.node(4).addr();
    let out = kavka_harness::run_cli(
        &broker,
        &["topic", "create", "lease", "-p", "1", "-r", "1"],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(leader_of(&broker, "lease", 0).await, 4);
    let once = || async {
        let mut p = Producer::new(
            Client::connect(&broker).await.unwrap(),
            ProducerConfig {
                acks: Acks::Leader,
                enable_idempotence: false,
                retries: 0,
                request_timeout: Duration::from_secs(2),
                delivery_timeout: Duration::from_secs(3),
                ..ProducerConfig::default()
            },
        );
        p.send("lease", vec![record("x")]).await
    };
    once().await.unwrap();

    for id in 1..=3 {
        cluster.node(id).pause();
    }
    let refusal = std::sync::Mutex::new(String::new());
    wait_until("the broker to stop acting as leader", DEADLINE, || async {
        match once().await {
            Ok(_) => false,
            Err(e) => {
                *refusal.lock().unwrap() = e.to_string();
                true
            }
        }
    })
    .await
    .unwrap();
    let refusal = refusal.into_inner().unwrap();
    assert!(
        refusal.contains("NOT_LEADER_OR_FOLLOWER") && refusal.contains("heartbeat"),
        "{refusal}"
    );
    // Its own metadata still names it the leader: the refusal is the lease's.
    assert_eq!(leader_of(&broker, "lease", 0).await, 4);

    for id in 1..=3 {
        cluster.node(id).resume();
    }
    wait_until("the broker to lead again", DEADLINE, || async {
        once().await.is_ok()
    })
    .await
    .unwrap();
}

/// Issue 16 item 5: a broker that cannot open a replica's log (here a file sits where
/// the partition's directory must go; in the field, no file descriptors left) reports it
/// in its heartbeats. The controller moves leadership off it and takes it out of the ISR,
/// so producers reach a working leader instead of retrying into KAFKA_STORAGE_ERROR; the
/// broker's other work goes on. Once the log opens, the replica catches up, rejoins the
/// ISR, and the preferred-leader check gives it its leadership back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_cannot_open_its_log_gives_up_leadership_and_the_isr() {
    let mut cluster = cluster().await;
    let bootstrap = cluster.bootstrap();
    let broken = 2;
    let dir = cluster.node(broken).data_dir();
    let blockers: Vec<_> = (0..3)
        .map(|p| dir.join(format!("unopenable-{p}")))
        .collect();
    for b in &blockers {
        std::fs::write(b, b"not a directory").unwrap();
    }
    create(&cluster, "unopenable", 3, 3, &[]);
    let ps = describe(&bootstrap, "unopenable").await.unwrap();
    let preferred: Vec<i32> = ps.iter().map(|p| p.replicas[0]).collect();
    assert!(
        preferred.contains(&broken),
        "broker {broken} should be a preferred leader: {preferred:?}"
    );

    wait_until(
        &format!("broker {broken} to lead nothing of the topic and leave every ISR"),
        DEADLINE,
        || async {
            describe(&bootstrap, "unopenable").await.is_some_and(|ps| {
                ps.iter().all(|p| {
                    p.leader > 0
                        && p.leader != broken
                        && !p.isr.contains(&broken)
                        && p.isr.len() == 2
                })
            })
        },
    )
    .await
    .unwrap();
    // Every partition takes acks=all writes from its new leader.
    let mut all = producer(&bootstrap, Acks::All).await;
    for p in 0..3 {
        let r = ProducerRecord {
            partition: Some(p),
            ..record(&format!("v{p}"))
        };
        all.send("unopenable", vec![r]).await.unwrap();
    }
    let node_log = cluster.node(broken).log();
    assert!(node_log.contains("partition offline"), "{node_log}");

    // The cause goes away: the replicas open on a retry, catch up and rejoin; the
    // preferred-leader check (every 2 s here) hands back the leadership.
    for b in &blockers {
        std::fs::remove_file(b).unwrap();
    }
    wait_until(
        "every ISR whole again and the preferred replicas leading",
        Duration::from_secs(120),
        || async {
            describe(&bootstrap, "unopenable").await.is_some_and(|ps| {
                ps.iter()
                    .all(|p| p.isr.len() == 3 && p.leader == p.replicas[0])
            })
        },
    )
    .await
    .unwrap();
    // The partition it leads again serves what was written while it was offline.
    let p = preferred.iter().position(|&b| b == broken).unwrap() as i32;
    let mut c = Client::connect(&cluster.node(broken).addr()).await.unwrap();
    let (end, _) = c.list_offset("unopenable", p, -1).await.unwrap();
    assert_eq!(
        end, 1,
        "the record written to partition {p} while broker {broken} was offline"
    );
}

/// With `flush.messages=1` an acks=all write is fsynced on every ISR member before it is
/// acknowledged: followers fsync an append before their next fetch reports it, as
/// Kafka's followers flush by the same config. `durable_offset` (what is fsynced on the
/// answering broker's replica) shows it on each node; a topic without a flush policy
/// shows nothing fsynced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_messages_fsyncs_on_every_isr_member_before_the_ack() {
    let cluster = cluster().await;
    let bootstrap = brokers(&cluster);
    create(&cluster, "synced", 1, 3, &["flush.messages=1"]);
    create(&cluster, "cached", 1, 3, &[]);
    for t in ["synced", "cached"] {
        wait_isr(&bootstrap, t, 3).await;
        let mut all = producer(&bootstrap, Acks::All).await;
        all.send(t, vec![record("a"), record("b")]).await.unwrap();
    }
    for n in &cluster.nodes {
        let addr = n.addr();
        for (t, durable) in [("synced", 2), ("cached", 0)] {
            let p = describe(&addr, t).await.unwrap();
            assert!(
                p[0].isr.len() == 3 && p[0].log_end_offset == 2,
                "{t} on {addr}: {p:?}"
            );
            assert_eq!(p[0].durable_offset, durable, "{t} on node {}", n.node_id());
        }
    }
}

/// A Kafka connection reads and appends its next request while an acks=all produce waits
/// for a follower (as Redpanda pipelines a connection's produce requests), and still
/// answers in request order: an acks=1 produce behind a waiting acks=all one is appended
/// at once, and its answer goes out only after the acks=all answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_appends_its_next_produce_while_acks_all_waits_and_answers_in_order() {
    use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, produce_request};
    // Long session and lag limits: the frozen follower stays in the ISR (and the acks=all
    // produce waits) until it is thawed, however slow this machine is.
    let mut cluster = Cluster::start(
        &[
            "controller",
            "controller",
            "controller,broker",
            "broker",
            "broker",
        ],
        &[
            "--session-timeout-ms",
            "120000",
            "--replica-lag-time-max-ms",
            "120000",
        ],
    )
    .await
    .unwrap();
    let bootstrap = brokers(&cluster);
    create(&cluster, "piped", 1, 2, &[]);
    wait_isr(&bootstrap, "piped", 2).await;
    let leader = leader_of(&bootstrap, "piped", 0).await;
    let follower = describe(&bootstrap, "piped").await.unwrap()[0]
        .replicas
        .iter()
        .copied()
        .find(|&r| r != leader)
        .unwrap();
    let leader_addr = cluster.node(leader).addr();
    let mut conn = tokio::net::TcpStream::connect(cluster.node(leader).kafka_addr())
        .await
        .unwrap();
    let produce = |acks: i16, value: &'static str| {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(60_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(raw_kafka::topic("piped"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(raw_kafka::record_batch(
                                bytes::Bytes::from_static(value.as_bytes()),
                                -1,
                                -1,
                                0,
                            ))),
                    ]),
            ])
    };
    const V: i16 = 9;
    cluster.node(follower).pause();
    let mut both = raw_kafka::request_frame("piped", ApiKey::Produce, V, 1, &produce(-1, "all"));
    both.extend_from_slice(&raw_kafka::request_frame(
        "piped",
        ApiKey::Produce,
        V,
        2,
        &produce(1, "one"),
    ));
    tokio::io::AsyncWriteExt::write_all(&mut conn, &both)
        .await
        .unwrap();
    // The acks=1 produce is appended behind the waiting one: the leader's log ends at 2.
    wait_until("both produce requests appended", DEADLINE, || async {
        describe(&leader_addr, "piped")
            .await
            .is_some_and(|p| p[0].log_end_offset == 2)
    })
    .await
    .unwrap();
    let p = describe(&leader_addr, "piped").await.unwrap();
    assert_eq!(p[0].high_watermark, 0, "the follower is frozen: {p:?}");
    assert_eq!(
        p[0].isr.len(),
        2,
        "the frozen follower is still in the ISR: {p:?}"
    );
    cluster.node(follower).resume();
    for (want_correlation, want_offset) in [(1, 0), (2, 1)] {
        let (correlation, answer): (i32, ProduceResponse) =
            raw_kafka::read_answer(&mut conn, ApiKey::Produce, V).await;
        assert_eq!(correlation, want_correlation, "answers in request order");
        let part = &answer.responses[0].partition_responses[0];
        assert_eq!(part.error_code, 0, "{answer:?}");
        assert_eq!(part.base_offset, want_offset, "{answer:?}");
    }
}
