//! `kavka cluster watch` against real nodes: it shows a failover as it happens, follows
//! to another node when the one it watches dies, and the external listener gives
//! clients outside the cluster's network addresses they can reach.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::{Cluster, Node, NodeOptions, free_port, kavka_bin, run_cli, wait_until};
use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(60);

/// A `kavka cluster watch --plain` child whose lines are collected as they come.
struct Watcher {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    fn start(bootstrap: &str) -> Watcher {
        let mut child = Command::new(kavka_bin())
            .args(["--bootstrap", bootstrap, "cluster", "watch", "--plain"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Watcher { child, lines }
    }

    fn has(&self, pred: impl Fn(&str) -> bool) -> bool {
        self.lines.lock().unwrap().iter().any(|l| pred(l))
    }

    async fn expect(&self, what: &str, pred: impl Fn(&str) -> bool) {
        let r = wait_until(what, DEADLINE, || async { self.has(&pred) }).await;
        if r.is_err() {
            panic!(
                "watch never printed {what}; it printed:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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

fn partitions(bootstrap: &str, topic: &str) -> Vec<serde_json::Value> {
    let out = run_cli(bootstrap, &["topic", "describe", topic, "-o", "json"], b"");
    let v: serde_json::Value = serde_json::from_str(&ok(out)).unwrap();
    v["partitions"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_shows_a_failover_live_and_follows_to_another_node() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let all = cluster.bootstrap();
    ok(run_cli(
        &all,
        &["topic", "create", "orders", "-p", "3", "-r", "3"],
        b"",
    ));
    // Each broker leads the partition it is preferred for.
    let mut led_by_1: Vec<(i64, Vec<i64>)> = Vec::new();
    wait_until(
        "every partition led by its preferred replica",
        DEADLINE,
        || {
            let all = all.clone();
            let found = &mut led_by_1;
            let ps = partitions(&all, "orders");
            *found = ps
                .iter()
                .filter(|p| p["leader"] == 1)
                .map(|p| {
                    let replicas = p["replicas"].as_array().unwrap();
                    let replicas = replicas.iter().map(|r| r.as_i64().unwrap()).collect();
                    (p["partition"].as_i64().unwrap(), replicas)
                })
                .collect();
            let settled = ps.iter().all(|p| p["leader"] == p["replicas"][0]);
            async move { settled }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        led_by_1.len(),
        1,
        "node 1 is preferred for one of three partitions"
    );

    // The watcher starts on node 1, the node about to die.
    let node1 = cluster.node(1).addr();
    let watcher = Watcher::start(&all);
    watcher
        .expect("that it watches node 1", |l| {
            l.ends_with(&format!("watching {node1}"))
        })
        .await;

    cluster.node(1).kill();
    let (p, replicas) = led_by_1[0].clone();
    let list = |ids: &[i64]| {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!("[{}]", ids.join(","))
    };
    let (full, without_1) = (list(&replicas), list(&replicas[1..]));
    watcher
        .expect("the leader change of the partition node 1 led", |l| {
            l.contains(&format!("orders-{p}: leader 1 → "))
                && l.contains(&format!("ISR {full} → {without_1}"))
        })
        .await;
    watcher
        .expect("that broker 1 was fenced", |l| {
            l.ends_with("broker 1 fenced")
        })
        .await;
    watcher
        .expect("that it lost node 1 and moved on", |l| {
            l.contains(&format!("lost {node1}"))
        })
        .await;
    assert!(
        watcher.has(|l| l.contains("watching 127.0.0.1:") && !l.ends_with(&node1)),
        "watch did not move to another node"
    );

    cluster.node(1).start_again().await.unwrap();
    watcher
        .expect("that broker 1 was unfenced", |l| {
            l.ends_with("broker 1 unfenced")
        })
        .await;
    watcher
        .expect("broker 1 rejoining the ISR", |l| {
            l.contains(&format!("orders-{p}: ")) && l.contains(&format!("ISR {without_1} → {full}"))
        })
        .await;
    // Event lines carry a timestamp.
    let lines = watcher.lines.lock().unwrap().clone();
    let fenced = lines
        .iter()
        .find(|l| l.ends_with("broker 1 fenced"))
        .unwrap();
    assert!(fenced.starts_with("20") && fenced.contains('T'), "{fenced}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_external_listener_hands_out_external_addresses() {
    let external = free_port().unwrap();
    let node = Node::start(NodeOptions {
        args: vec![
            "--external-listen".into(),
            format!("127.0.0.1:{external}"),
            "--external-advertised-address".into(),
            format!("localhost:{external}"),
        ],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let describe = |addr: &str| {
        let v: serde_json::Value = serde_json::from_str(&ok(run_cli(
            addr,
            &["cluster", "describe", "-o", "json"],
            b"",
        )))
        .unwrap();
        let b = &v["brokers"][0];
        format!("{}:{}", b["host"].as_str().unwrap_or_default(), b["port"])
    };
    assert_eq!(describe(&node.addr()), node.addr());
    let outside = format!("127.0.0.1:{external}");
    assert_eq!(describe(&outside), format!("localhost:{external}"));

    // A client that only knows the external address produces and consumes through it
    // (the leader it is routed to is the external endpoint).
    ok(run_cli(
        &outside,
        &["topic", "create", "ext", "-p", "1"],
        b"",
    ));
    ok(run_cli(&outside, &["produce", "ext"], b"one\ntwo\n"));
    let out = ok(run_cli(
        &outside,
        &[
            "consume",
            "ext",
            "--from-beginning",
            "--max-messages",
            "2",
            "--format",
            "%v\\n",
            "-q",
        ],
        b"",
    ));
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two"]);

    // A group's coordinator is named the same way: external to an external caller (a
    // host consumer of a compose cluster could not resolve the in-network name).
    let coordinator = |addr: String| async move {
        use kavka_proto::v1::group_service_client::GroupServiceClient;
        let mut c = GroupServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let r = c
            .find_coordinator(kavka_proto::v1::FindCoordinatorRequest {
                group_id: "readers".into(),
            })
            .await
            .unwrap()
            .into_inner();
        format!("{}:{}", r.host, r.port)
    };
    assert_eq!(
        coordinator(outside.clone()).await,
        format!("localhost:{external}")
    );
    assert_eq!(coordinator(node.addr()).await, node.addr());

    // A bad external address is refused by name.
    let out = Command::new(kavka_bin())
        .args(["server", "--external-listen", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid external listen address 'nope'"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
