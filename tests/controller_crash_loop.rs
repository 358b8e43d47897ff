//! 100 SIGKILLs of controllers while topics are being created through a broker, each kill
//! followed by a restart: the quorum stays intact, every acknowledged creation survives,
//! and all voters end with the same image (same applied offset, same image digest).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::{Cluster, run_cli, wait_until};
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const KILLS: usize = 100;

fn status(addr: &str) -> Option<Value> {
    let out = run_cli(addr, &["quorum", "status", "-o", "json"], b"");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_controller_kills_lose_nothing_and_voters_agree() {
    let mut cluster = Cluster::start(&["controller", "controller", "controller", "broker"], &[])
        .await
        .unwrap();
    let broker = cluster.nodes[3].addr();

    // The writer: creates topics through the broker, remembering the acknowledged ones.
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (acknowledged, stop, broker) =
            (Arc::clone(&acknowledged), Arc::clone(&stop), broker.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("t-{n}");
                n += 1;
                let out = run_cli(
                    &broker,
                    &["topic", "create", &name, "-p", "1", "-r", "1"],
                    b"",
                );
                if out.status.success() {
                    acknowledged.lock().unwrap().push(name);
                }
            }
        })
    };

    for k in 0..KILLS {
        let id = (k % 3) as i32 + 1;
        let node = cluster.node(id);
        node.kill();
        node.start_again().await.unwrap();
        // Every tenth kill, the quorum must come back and acknowledge a new creation.
        if k % 10 == 9 {
            let seen = acknowledged.lock().unwrap().len();
            let acked = Arc::clone(&acknowledged);
            wait_until(
                "a topic creation acknowledged after the kills",
                Duration::from_secs(60),
                || {
                    let n = acked.lock().unwrap().len();
                    async move { n > seen }
                },
            )
            .await
            .unwrap();
        }
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();

    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!(
        "{} topic creations acknowledged during {KILLS} controller kills",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() >= 10,
        "the writer made too little progress: {}",
        acknowledged.len()
    );
    // Every acknowledged topic is in the metadata the broker follows.
    let out = run_cli(&broker, &["topic", "list", "-o", "json"], b"");
    let listed: Vec<String> = serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    for name in &acknowledged {
        assert!(listed.contains(name), "acknowledged topic {name} was lost");
    }
    // The three voters converge on one image.
    let voters: Vec<String> = cluster.nodes[..3].iter().map(|n| n.addr()).collect();
    wait_until(
        "identical images on all voters",
        Duration::from_secs(60),
        || {
            let voters = voters.clone();
            async move {
                let s: Vec<Option<Value>> = voters.iter().map(|v| status(v)).collect();
                s.iter().all(Option::is_some) && {
                    let keys: Vec<(i64, String)> = s
                        .iter()
                        .flatten()
                        .map(|v| {
                            (
                                v["applied"].as_i64().unwrap(),
                                v["image_digest"].as_str().unwrap().to_string(),
                            )
                        })
                        .collect();
                    keys.iter().all(|k| *k == keys[0])
                }
            }
        },
    )
    .await
    .unwrap();
}
