//! A dead peer is logged once, then every 30 s with a count, not at every attempt: after
//! a SIGKILL of a voter, the other nodes' logs gain only a handful of WARN lines about
//! it over a window in which openraft alone used to write a hundred.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_client::NewTopic;
use kavka_harness::{Cluster, wait_until};
use std::time::Duration;

/// How long the survivors' logs are watched after the kill.
const WINDOW: Duration = Duration::from_secs(10);
/// WARN lines about the dead node a survivor may write in `WINDOW` (generous: the real
/// count is a few; before the fix it was over a hundred).
const WARN_LINES_MAX: usize = 15;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_voter_does_not_flood_the_others_logs() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    cluster.nodes[0]
        .client()
        .await
        .unwrap()
        .create_topic(NewTopic {
            name: "quiet".into(),
            partitions: 3,
            ..NewTopic::default()
        })
        .await
        .unwrap();
    let dead_addr = cluster.nodes[2].controller_addr().unwrap();
    let before: Vec<usize> = cluster.nodes[..2].iter().map(|n| n.log().len()).collect();
    cluster.node(3).kill();
    // The survivors notice (the controller fences it) before the window is counted.
    wait_until(
        "node 3 to be reported unreachable",
        Duration::from_secs(30),
        || async {
            cluster.nodes[..2]
                .iter()
                .any(|n| n.log().contains("controller peer unreachable"))
        },
    )
    .await
    .unwrap();
    tokio::time::sleep(WINDOW).await;
    for (n, from) in cluster.nodes[..2].iter().zip(before) {
        let log = n.log();
        let about_it: Vec<&str> = log[from..]
            .lines()
            .filter(|l| l.contains("WARN"))
            .filter(|l| {
                l.contains(&dead_addr)
                    || ["peer=3", "target=3", "leader=3", "BrokerId(3)"]
                        .iter()
                        .any(|k| l.contains(k))
            })
            .collect();
        assert!(
            about_it.len() <= WARN_LINES_MAX,
            "node {} wrote {} WARN lines about the dead node:\n{}",
            n.node_id(),
            about_it.len(),
            about_it.join("\n")
        );
        assert!(
            about_it.iter().all(|l| l.len() < 1000),
            "a WARN line carries a whole error chain: {about_it:?}"
        );
    }
}
