//! Fail-stop on a metadata store I/O error, as Kafka: a controller whose metadata log
//! cannot be written (a full disk) stops its node with a fatal log line and a failure
//! exit code, instead of living on as a dead controller that still says "leader"; after
//! the space returns the node restarts with every committed topic.
//!
//! Needs a small tmpfs (mounting one takes CAP_SYS_ADMIN): skipped with a message where
//! none can be mounted.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::{Node, NodeOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A tmpfs mounted at a path, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Self, String> {
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Self(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_metadata_disk_stops_the_node_and_nothing_committed_is_lost() {
    let probe = tempfile::tempdir().unwrap();
    if let Err(why) = Tmpfs::mount(&probe.path().join("t"), "1m") {
        kavka_harness::say_skipped(
            "a_full_metadata_disk_stops_the_node",
            &format!("cannot mount a tmpfs ({why})"),
        );
        return;
    }
    // The node starts over on an empty 64 MiB tmpfs (a new cluster there).
    let mut n = Node::start(NodeOptions::default()).await.unwrap();
    n.kill();
    std::fs::remove_dir_all(n.data_dir()).unwrap();
    let _tmpfs = Tmpfs::mount(&n.data_dir(), "64m").unwrap();
    n.start_again().await.unwrap();
    assert!(n.cli(&["topic", "create", "before"]).status.success());

    // Fill the disk, then ask for topics until the metadata log cannot take one.
    let filler = n.data_dir().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 80 << 20]);
    let mut created = Vec::new();
    for i in 0..300 {
        let name = format!("t{i}");
        let out = n.cli(&["topic", "create", &name]);
        if out.status.success() {
            created.push(name);
        } else {
            break;
        }
    }
    // The node stops by itself, saying why, with a failure exit code.
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = n.exited() {
            break s;
        }
        assert!(Instant::now() < deadline, "still running:\n{}", n.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status.code(), Some(1), "{}", n.log());
    assert!(
        n.log()
            .contains("fatal: the controller's metadata store failed"),
        "{}",
        n.log()
    );

    // Space returns: the node comes back with every topic whose creation was answered.
    std::fs::remove_file(&filler).unwrap();
    n.start_again().await.unwrap();
    let out = n.cli(&["topic", "list"]);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    for t in std::iter::once("before".to_string()).chain(created) {
        assert!(list.contains(&t), "{t} lost: {list}");
    }
    assert!(n.cli(&["topic", "create", "after"]).status.success());
}
