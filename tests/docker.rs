//! The user's first experience, in CI when a Docker engine is present (skipped, saying
//! so, where none is): build the `FROM scratch` image, `docker compose up` the three-node
//! cluster, create an RF=3 topic from the host CLI, write with acks=all, kill the node
//! leading a partition, see the new leader through the CLI, and check with the history
//! checker that no acknowledged record was lost; then `compose down -v`. Misconfigured
//! containers exit non-zero with a message naming the problem.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::checker::{self, Workload};
use kavka_harness::compose::{self, Compose};
use kavka_harness::{free_port, run_cli, wait_until};
use std::process::Command;
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(120);
/// A cold release build on a 2-core machine takes several minutes.
const BUILD_LIMIT: Duration = Duration::from_secs(25 * 60);

fn image() -> String {
    format!("kavka:test-{}", std::process::id())
}

fn remove_image(tag: &str) {
    let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
}

fn describe(bootstrap: &str, topic: &str) -> Option<serde_json::Value> {
    let out = run_cli(bootstrap, &["topic", "describe", topic, "-o", "json"], b"");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn leader_of(bootstrap: &str, topic: &str, partition: usize) -> Option<i64> {
    describe(bootstrap, topic)?["partitions"][partition]["leader"]
        .as_i64()
        .filter(|l| *l > 0)
}

async fn progress(w: &Workload, more: usize) {
    let want = w.acked() + more;
    wait_until(
        &format!("{want} acknowledged records"),
        DEADLINE,
        || async { w.acked() >= want },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_cluster_survives_a_leader_kill_without_losing_acknowledged_writes() {
    if let Some(why) = compose::unavailable() {
        kavka_harness::say_skipped("compose_cluster_survives_a_leader_kill", &why);
        return;
    }
    let tag = image();
    compose::build_image(&tag, BUILD_LIMIT).unwrap();
    struct Image(String);
    impl Drop for Image {
        fn drop(&mut self) {
            remove_image(&self.0);
        }
    }
    let _image = Image(tag.clone());

    // Misconfigured containers stop at once, non-zero, saying what is wrong.
    for (args, says) in [
        (
            vec![
                "server",
                "--node-id",
                "4",
                "--controller-voters",
                "1@kavka-1:9093",
            ],
            "not in the controller voters",
        ),
        (
            vec!["server", "--data-dir", "/proc/kavka"],
            "cannot create data dir /proc/kavka",
        ),
        (
            vec!["server", "--external-listen", "0.0.0.0:9093"],
            "cannot listen on 0.0.0.0:9093 (external listener)",
        ),
    ] {
        let out = Command::new("timeout")
            .args(["60", "docker", "run", "--rm", &tag])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} started");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }

    let ports = [
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    ];
    let kafka_ports = [
        free_port().unwrap(),
        free_port().unwrap(),
        free_port().unwrap(),
    ];
    let cluster = Compose::new(&format!("kavka-test-{}", std::process::id()), ports)
        .with_kafka_ports(kafka_ports)
        .with_image(&tag);
    cluster.up().unwrap();
    cluster.wait_healthy(DEADLINE).await.unwrap();
    let bootstrap = cluster.bootstrap();
    // Each node's HTTP port is published: metrics and health from the host.
    for n in 1..=3 {
        let addr = cluster.http_addr(n);
        let ready = kavka_harness::http::http_get(&addr, "/health/ready", DEADLINE)
            .await
            .unwrap();
        assert_eq!(ready.status, 200, "node {n}: {}", ready.body);
        let metrics = kavka_harness::http::http_get(&addr, "/metrics", DEADLINE)
            .await
            .unwrap();
        assert!(
            metrics.body.contains("kavka_broker_fenced 0"),
            "node {n}: {}",
            metrics.body
        );
    }

    // The host CLI, through the published ports.
    let out = run_cli(
        &bootstrap,
        &[
            "topic",
            "create",
            "orders",
            "-p",
            "3",
            "-r",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until("a leader for orders-0", DEADLINE, || async {
        leader_of(&bootstrap, "orders", 0).is_some()
    })
    .await
    .unwrap();

    // A Kafka client on the host sees every broker at its published EXTERNAL listener.
    if std::process::Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok()
    {
        let kafka = cluster.kafka_bootstrap();
        let md = std::process::Command::new("timeout")
            .args(["60", "kcat", "-b", &kafka, "-L", "-J", "-t", "orders"])
            .output()
            .unwrap();
        let md: serde_json::Value = serde_json::from_slice(&md.stdout).unwrap();
        let mut names: Vec<String> = md["brokers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["name"].as_str().unwrap().to_string())
            .collect();
        names.sort();
        let mut want: Vec<String> = kafka_ports
            .iter()
            .map(|p| format!("localhost:{p}"))
            .collect();
        want.sort();
        assert_eq!(names, want, "{md}");
        assert_eq!(md["topics"][0]["partitions"].as_array().unwrap().len(), 3);
    } else {
        eprintln!("kcat is not installed: the host Kafka listener check is skipped");
    }

    let workload = Workload::start(&bootstrap, "orders", 2);
    progress(&workload, 300).await;
    let victim = leader_of(&bootstrap, "orders", 0).unwrap() as i32;
    workload.fault(&bootstrap, "orders", "kill", victim).await;
    cluster.kill(victim).unwrap();
    wait_until(
        "a new leader for orders-0, seen by the CLI",
        DEADLINE,
        || async { leader_of(&bootstrap, "orders", 0).is_some_and(|l| l != i64::from(victim)) },
    )
    .await
    .unwrap();
    progress(&workload, 300).await;
    cluster.start(victim).unwrap();
    cluster.wait_healthy(DEADLINE).await.unwrap();
    progress(&workload, 100).await;
    let history = workload.stop().await;

    let hws = checker::settled_high_watermarks(&bootstrap, "orders", 3, DEADLINE)
        .await
        .unwrap();
    let copies = tempfile::Builder::new()
        .prefix("kavka-docker-test-")
        .tempdir()
        .unwrap();
    let dirs: Vec<_> = (1..=3)
        .map(|n| {
            let dest = copies.path().join(format!("node-{n}"));
            cluster.copy_data(n, &dest).unwrap();
            (n, dest)
        })
        .collect();
    let report = checker::verify(&history, "orders", &dirs, &hws).unwrap();
    eprintln!("{}", report.summary());
    assert!(report.ok(), "{report:#?}");
    assert!(report.acked >= 700);
    assert_eq!(report.failover_gaps.len(), 1, "the kill hit a leader");
}
