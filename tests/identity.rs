//! A data dir's identity (`meta.properties`, as Kafka's): written when the dir is
//! initialised with the node id and a directory id, the cluster id recorded once seen.
//! A controller whose Raft store was deleted refuses to start (it would have forgotten its
//! votes), as does a node started on another node's or another cluster's data dir; each
//! says why, and the data dir is left as it was.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::{Node, NodeOptions, wait_until};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

fn meta(node: &Node) -> String {
    std::fs::read_to_string(node.data_dir().join("meta.properties")).unwrap_or_default()
}

/// Waits for the node to exit by itself; its exit code.
async fn exit_code(n: &mut Node) -> Option<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(s) = n.exited() {
            return s.code();
        }
        assert!(Instant::now() < deadline, "still running:\n{}", n.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_keeps_its_identity_and_refuses_what_would_break_it() {
    let mut n = Node::start(NodeOptions::default()).await.unwrap();
    assert!(n.cli(&["topic", "create", "kept"]).status.success());
    wait_until("the cluster id in meta.properties", DEADLINE, || {
        let m = meta(&n);
        async move { m.contains("cluster.id=") }
    })
    .await
    .unwrap();
    let status = n.cli(&["quorum", "status", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let cluster = v["cluster_id"].as_str().unwrap().to_string();
    let m = meta(&n);
    assert!(m.contains("version=1\nnode.id=1\n"), "{m}");
    assert!(m.contains(&format!("cluster.id={cluster}\n")), "{m}");
    assert!(m.contains("directory.id="), "{m}");
    n.kill();

    // Another node id on this data dir.
    n.options_mut().node_id = Some(2);
    let e = format!("{:#}", n.start_again().await.unwrap_err());
    assert!(e.contains("belongs to node 1"), "{e}");
    n.options_mut().node_id = Some(1);

    // The controller's Raft store deleted: refused, the rest of the data dir untouched.
    let store = n.data_dir().join("__cluster_metadata");
    let aside = n.data_dir().join("../store-aside");
    std::fs::rename(&store, &aside).unwrap();
    let e = format!("{:#}", n.start_again().await.unwrap_err());
    assert!(e.contains("its Raft store is gone"), "{e}");
    assert!(n.data_dir().join("kept-0").exists());
    assert!(!store.exists(), "a refused start must not make a new store");

    // Restored, it starts and serves what it had.
    std::fs::rename(&aside, &store).unwrap();
    n.start_again().await.unwrap();
    let list = n.cli(&["topic", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("kept"));
    n.kill();

    // A data dir of another cluster: the node stops, fatal, once it sees its cluster's id.
    let other = meta(&n).replace(&cluster, "another-cluster");
    std::fs::write(n.data_dir().join("meta.properties"), other).unwrap();
    // It may stop before or after it first reports ready: either way, with exit code 1.
    match n.start_again().await {
        Ok(()) => assert_eq!(exit_code(&mut n).await, Some(1), "{}", n.log()),
        Err(e) => assert!(format!("{e}").contains("exit status: 1"), "{e}"),
    }
    assert!(
        n.log()
            .contains("belongs to cluster another-cluster (meta.properties), but the controller quorum is cluster"),
        "{}",
        n.log()
    );
}

/// A data dir made before `meta.properties` existed is adopted: the node starts on it and
/// writes the identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_data_dir_is_adopted() {
    let mut n = Node::start(NodeOptions::default()).await.unwrap();
    assert!(n.cli(&["topic", "create", "old"]).status.success());
    n.kill();
    std::fs::remove_file(n.data_dir().join("meta.properties")).unwrap();
    n.start_again().await.unwrap();
    assert!(n.log().contains("adopted=true"), "{}", n.log());
    assert!(meta(&n).contains("node.id=1"));
    let list = n.cli(&["topic", "list"]);
    assert!(String::from_utf8_lossy(&list.stdout).contains("old"));
}
