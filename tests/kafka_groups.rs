//! Real Kafka group consumers (librdkafka through confluent-kafka, and kafka-python)
//! against a three-node cluster: partitions shared on join, moved on a graceful leave
//! and after a crashed member's session timeout, every record read exactly once when
//! each is committed after processing; a static member restarting without a rebalance;
//! committed offsets surviving the loss of their coordinator; a KIP-848 regex
//! subscription following topics created after the member joined; and the `kavka group`
//! CLI's view of it all.
//!
//! Consumers run as processes (tests/kafka/groups.py) that print every event as a JSON
//! line; the test reads them as they come and waits for conditions with deadlines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use kavka_harness::kafka_clients::{bounded, clients_or_skip, root};
use kavka_harness::{Cluster, Node, NodeOptions, wait_until};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const DEADLINE: Duration = Duration::from_secs(90);
const PARTITIONS: i64 = 6;

/// A consumer process and the events it printed so far.
struct Consumer {
    name: String,
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
    stopfile: PathBuf,
}

struct Ctx {
    python: PathBuf,
    dir: tempfile::TempDir,
    bootstrap: String,
}

impl Ctx {
    fn script() -> String {
        root().join("tests/kafka/groups.py").display().to_string()
    }

    fn produce(&self, topic: &str, first: usize, count: usize) {
        let out = bounded(
            120,
            self.python.to_str().unwrap(),
            &[
                "-W",
                "ignore",
                &Self::script(),
                "produce",
                &self.bootstrap,
                topic,
                &first.to_string(),
                &count.to_string(),
            ],
            b"",
        );
        assert!(
            out.status.success(),
            "produce failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts a consumer; `extra` is [protocol, instance id or "-", session ms].
    fn consumer(
        &self,
        name: &str,
        client: &str,
        topic: &str,
        group: &str,
        extra: &[&str],
    ) -> Consumer {
        let stopfile = self.dir.path().join(format!("stop-{name}"));
        // Not under timeout(1): a kill must reach the consumer itself (the script
        // bounds its own run, and Drop kills it).
        let mut child = Command::new(&self.python)
            .args([
                "-W",
                "ignore",
                &Self::script(),
                "consume",
                client,
                &self.bootstrap,
                topic,
                group,
            ])
            .arg(&stopfile)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&events);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        let stderr = child.stderr.take().unwrap();
        let tag = name.to_string();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                eprintln!("[{tag}] {line}");
            }
        });
        Consumer {
            name: name.to_string(),
            child,
            events,
            stopfile,
        }
    }
}

impl Consumer {
    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// The partitions of the latest assignment, once it had one.
    fn assignment(&self) -> Option<BTreeSet<i64>> {
        self.events()
            .iter()
            .rev()
            .find(|e| e["e"] == "assign")
            .map(|e| {
                e["parts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_i64().unwrap())
                    .collect()
            })
    }

    fn assignments(&self) -> usize {
        self.events().iter().filter(|e| e["e"] == "assign").count()
    }

    /// Closes gracefully (the consumer leaves its group) and waits for it to exit.
    async fn stop(&mut self) {
        std::fs::write(&self.stopfile, b"").unwrap();
        let events = Arc::clone(&self.events);
        wait_until(&format!("{} to close", self.name), DEADLINE, || {
            let events = Arc::clone(&events);
            async move { events.lock().unwrap().iter().any(|e| e["e"] == "closed") }
        })
        .await
        .unwrap();
        let _ = self.child.wait();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the consumers hold disjoint assignments covering every partition, of the
/// given sizes (in order).
async fn wait_shared(consumers: &[&Consumer], sizes: &[usize]) {
    let what = format!(
        "{} to hold {sizes:?} partitions",
        consumers
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let snapshot = || {
        consumers
            .iter()
            .map(|c| c.assignment().unwrap_or_default())
            .collect::<Vec<_>>()
    };
    let done = |a: &[BTreeSet<i64>]| {
        let all: BTreeSet<i64> = a.iter().flatten().copied().collect();
        let total: usize = a.iter().map(BTreeSet::len).sum();
        all.len() == PARTITIONS as usize
            && total == PARTITIONS as usize
            && a.iter().map(BTreeSet::len).collect::<Vec<_>>() == sizes
    };
    let deadline = std::time::Instant::now() + DEADLINE;
    while !done(&snapshot()) {
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: still {:?}",
            snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Values read so far, across `consumers`.
fn values_read(consumers: &[&Consumer]) -> BTreeSet<String> {
    consumers
        .iter()
        .flat_map(|c| c.events())
        .filter(|e| e["e"] == "rec")
        .map(|e| e["v"].as_str().unwrap().to_string())
        .collect()
}

/// Every value read exactly once, except that a record whose commit did not succeed
/// (its consumer crashed first, or the commit failed) may be read again by the
/// partition's next owner.
fn assert_exactly_once(consumers: &[&Consumer], expected: usize) {
    let mut reads: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for c in consumers {
        let events = c.events();
        let committed: BTreeSet<(i64, i64)> = events
            .iter()
            .filter(|e| e["e"] == "commit")
            .map(|e| (e["p"].as_i64().unwrap(), e["o"].as_i64().unwrap()))
            .collect();
        for e in events.iter().filter(|e| e["e"] == "rec") {
            let key = (e["p"].as_i64().unwrap(), e["o"].as_i64().unwrap());
            reads
                .entry(e["v"].as_str().unwrap().to_string())
                .or_default()
                .push(committed.contains(&key));
        }
    }
    assert_eq!(reads.len(), expected, "every value read");
    for (v, r) in &reads {
        let committed_reads = r.iter().filter(|c| **c).count();
        assert!(
            committed_reads <= 1,
            "{v} read {} times, {committed_reads} of them committed: a committed record came back",
            r.len()
        );
    }
}

fn cli_json(cluster: &Cluster, args: &[&str]) -> Value {
    let out = cluster.nodes[0].cli(args);
    assert!(
        out.status.success(),
        "kavka {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn cluster() -> Cluster {
    Cluster::start(
        &["controller,broker"; 3],
        &[
            "--group-initial-rebalance-delay-ms",
            "300",
            "--offsets-topic-num-partitions",
            "4",
            "--group-consumer-session-timeout-ms",
            "6000",
            "--group-consumer-heartbeat-interval-ms",
            "500",
        ],
    )
    .await
    .unwrap()
}

/// A three-node cluster and a context for its clients, or `None` when the clients are
/// missing (the test is then skipped, or fails under CI).
async fn setup(test: &str) -> Option<(Cluster, Ctx)> {
    let python = clients_or_skip(test)?;
    let cluster = cluster().await;
    let ctx = Ctx {
        python,
        dir: tempfile::tempdir().unwrap(),
        bootstrap: cluster.kafka_bootstrap(),
    };
    Some((cluster, ctx))
}

fn create_topic(cluster: &Cluster, topic: &str) {
    create_topic_on(&cluster.nodes[0], topic, "6", "3");
}

fn create_topic_on(node: &Node, topic: &str, partitions: &str, replicas: &str) {
    let out = node.cli(&["topic", "create", topic, "-p", partitions, "-r", replicas]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Join, graceful leave and crash with `client`'s group consumer speaking `protocol`
/// (`classic`, or `consumer` for KIP-848).
async fn rebalance_scenario(client: &str, protocol: &str, test: &str) {
    let Some((cluster, ctx)) = setup(test).await else {
        return;
    };
    let topic = format!("orders-{client}-{protocol}");
    let group = format!("billing-{client}-{protocol}");
    create_topic(&cluster, &topic);
    ctx.produce(&topic, 0, 300);
    let args = [protocol, "-", "6000"];
    let mut a = ctx.consumer("a", client, &topic, &group, &args);
    let mut b = ctx.consumer("b", client, &topic, &group, &args);
    wait_shared(&[&a, &b], &[3, 3]).await;
    let mut c = ctx.consumer("c", client, &topic, &group, &args);
    wait_shared(&[&a, &b, &c], &[2, 2, 2]).await;

    let described = cli_json(&cluster, &["group", "describe", &group, "-o", "json"]);
    assert_eq!(described["state"], "Stable", "{described}");
    assert_eq!(
        described["members"].as_array().unwrap().len(),
        3,
        "{described}"
    );

    ctx.produce(&topic, 300, 300);
    b.stop().await;
    wait_shared(&[&a, &c], &[3, 3]).await;
    // A crash: no LeaveGroup; the coordinator notices when the session times out.
    c.kill();
    wait_shared(&[&a], &[6]).await;
    ctx.produce(&topic, 600, 300);
    let all = [&a, &b, &c];
    wait_until("every record read", DEADLINE, || {
        let n = values_read(&all).len();
        async move { n == 900 }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {} of 900 read", values_read(&all).len()));
    a.stop().await;
    assert_exactly_once(&[&a, &b, &c], 900);

    // The group is empty now, and its committed offsets are at every log end.
    let described = cli_json(&cluster, &["group", "describe", &group, "-o", "json"]);
    assert_eq!(described["state"], "Empty", "{described}");
    let parts = described["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), PARTITIONS as usize, "{described}");
    assert!(parts.iter().all(|p| p["lag"] == 0), "{described}");
    let committed: i64 = parts
        .iter()
        .map(|p| p["committed_offset"].as_i64().unwrap())
        .sum();
    assert_eq!(committed, 900);
    let listed = cli_json(&cluster, &["group", "list", "-o", "json"]);
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["group_id"] == group.as_str() && g["state"] == "Empty"),
        "{listed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_group_consumers_rebalance_on_join_leave_and_crash() {
    rebalance_scenario(
        "confluent",
        "classic",
        "librdkafka_group_consumers_rebalance_on_join_leave_and_crash",
    )
    .await;
}

/// Classic protocol with librdkafka's cooperative-sticky assignor (incremental
/// rebalances decided by the group leader; the coordinator only passes them through).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_cooperative_sticky_consumers_rebalance_on_join_leave_and_crash() {
    rebalance_scenario(
        "confluent",
        "cooperative",
        "librdkafka_cooperative_sticky_consumers_rebalance_on_join_leave_and_crash",
    )
    .await;
}

/// The same with KIP-848 (`group.protocol=consumer`): server-side assignment, moved
/// incrementally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_kip848_consumers_rebalance_on_join_leave_and_crash() {
    rebalance_scenario(
        "confluent",
        "consumer",
        "librdkafka_kip848_consumers_rebalance_on_join_leave_and_crash",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_group_consumers_rebalance_on_join_leave_and_crash() {
    rebalance_scenario(
        "kafka-python",
        "classic",
        "kafka_python_group_consumers_rebalance_on_join_leave_and_crash",
    )
    .await;
}

/// A static member (group.instance.id) that restarts within its session keeps its
/// partitions, and nobody else sees a rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarts_without_a_rebalance() {
    let Some((cluster, ctx)) = setup("a_static_member_restarts_without_a_rebalance").await else {
        return;
    };
    create_topic(&cluster, "static");
    ctx.produce("static", 0, 60);
    let mut a = ctx.consumer(
        "a",
        "confluent",
        "static",
        "static-g",
        &["classic", "host-a", "30000"],
    );
    let b = ctx.consumer(
        "b",
        "confluent",
        "static",
        "static-g",
        &["classic", "host-b", "30000"],
    );
    wait_shared(&[&a, &b], &[3, 3]).await;
    let held = a.assignment().unwrap();
    let before = cli_json(&cluster, &["group", "describe", "static-g", "-o", "json"]);
    let generation = before["generation_id"].as_i64().unwrap();
    a.kill();
    let a2 = ctx.consumer(
        "a2",
        "confluent",
        "static",
        "static-g",
        &["classic", "host-a", "30000"],
    );
    wait_until(
        "the restarted member to get its partitions",
        DEADLINE,
        || {
            let got = a2.assignment();
            async move { got.is_some() }
        },
    )
    .await
    .unwrap();
    assert_eq!(
        a2.assignment().unwrap(),
        held,
        "the same partitions as before the restart"
    );
    assert_eq!(
        b.assignments(),
        1,
        "the other member saw no rebalance: {:?}",
        b.events()
    );
    let after = cli_json(&cluster, &["group", "describe", "static-g", "-o", "json"]);
    assert_eq!(
        after["generation_id"].as_i64().unwrap(),
        generation,
        "{after}"
    );
    assert_eq!(after["state"], "Stable");
    let instances: BTreeSet<&str> = after["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["group_instance_id"].as_str().unwrap())
        .collect();
    assert_eq!(instances, BTreeSet::from(["host-a", "host-b"]));
}

/// Offsets committed to a coordinator that is then killed are there on the new one:
/// a consumer that starts after the failover reads only what was not committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_a_coordinator_failover() {
    let Some((mut cluster, ctx)) = setup("committed_offsets_survive_a_coordinator_failover").await
    else {
        return;
    };
    create_topic(&cluster, "failover");
    ctx.produce("failover", 0, 200);
    let mut first = ctx.consumer(
        "first",
        "confluent",
        "failover",
        "fo",
        &["classic", "-", "6000"],
    );
    wait_until("100 records committed", DEADLINE, || {
        let n = first.events().iter().filter(|e| e["e"] == "commit").count();
        async move { n >= 100 }
    })
    .await
    .unwrap();
    first.stop().await;
    let before = cli_json(&cluster, &["group", "describe", "fo", "-o", "json"]);
    let coordinator = before["coordinator"].as_i64().unwrap() as i32;
    let offsets = |d: &Value| -> BTreeMap<i64, i64> {
        d["partitions"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| !p["committed_offset"].is_null())
            .map(|p| {
                (
                    p["partition"].as_i64().unwrap(),
                    p["committed_offset"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let committed = offsets(&before);
    assert!(!committed.is_empty());

    cluster.node(coordinator).kill();
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.node_id() != coordinator)
        .unwrap();
    let after = {
        let out = survivor.cli(&["group", "describe", "fo", "-o", "json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    assert_ne!(
        after["coordinator"].as_i64().unwrap() as i32,
        coordinator,
        "{after}"
    );
    assert_eq!(
        offsets(&after),
        committed,
        "the new coordinator has every commit"
    );

    let bootstrap: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.node_id() != coordinator)
        .map(|n| n.kafka_addr())
        .collect();
    let ctx = Ctx {
        bootstrap: bootstrap.join(","),
        ..ctx
    };
    let mut second = ctx.consumer(
        "second",
        "confluent",
        "failover",
        "fo",
        &["classic", "-", "6000"],
    );
    let done_by_first: BTreeSet<String> = first
        .events()
        .iter()
        .filter(|e| e["e"] == "commit")
        .map(|e| (e["p"].as_i64().unwrap(), e["o"].as_i64().unwrap()))
        .filter_map(|k| {
            first
                .events()
                .iter()
                .find(|e| {
                    e["e"] == "rec" && (e["p"].as_i64().unwrap(), e["o"].as_i64().unwrap()) == k
                })
                .map(|e| e["v"].as_str().unwrap().to_string())
        })
        .collect();
    let want = 200 - done_by_first.len();
    wait_until("the rest read after the failover", DEADLINE, || {
        let n = values_read(&[&second]).len();
        async move { n >= want }
    })
    .await
    .unwrap();
    second.stop().await;
    let again = values_read(&[&second]);
    assert!(
        again.is_disjoint(&done_by_first),
        "committed records were read again: {:?}",
        again
            .intersection(&done_by_first)
            .take(5)
            .collect::<Vec<_>>()
    );
    assert_eq!(again.len() + done_by_first.len(), 200);
}

/// KIP-848 groups are stored too: when their coordinator is killed, the members carry on
/// with the new one, keeping their partitions, without a rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_members_keep_their_partitions_through_a_coordinator_failover() {
    let test = "kip848_members_keep_their_partitions_through_a_coordinator_failover";
    let Some((mut cluster, ctx)) = setup(test).await else {
        return;
    };
    create_topic(&cluster, "k848");
    let a = ctx.consumer(
        "a",
        "confluent",
        "k848",
        "k848-g",
        &["consumer", "-", "6000"],
    );
    let b = ctx.consumer(
        "b",
        "confluent",
        "k848",
        "k848-g",
        &["consumer", "-", "6000"],
    );
    wait_shared(&[&a, &b], &[3, 3]).await;
    let (held_a, held_b) = (a.assignment().unwrap(), b.assignment().unwrap());
    let before = cli_json(&cluster, &["group", "describe", "k848-g", "-o", "json"]);
    let coordinator = before["coordinator"].as_i64().unwrap() as i32;
    let members = |d: &Value| -> BTreeSet<String> {
        d["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["member_id"].as_str().unwrap().to_string())
            .collect()
    };
    let (revokes_a, revokes_b) = (
        a.events().iter().filter(|e| e["e"] == "revoke").count(),
        b.events().iter().filter(|e| e["e"] == "revoke").count(),
    );

    cluster.node(coordinator).kill();
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.node_id() != coordinator)
        .unwrap();
    // The members heartbeat the new coordinator (every 500 ms) and are known to it.
    let mut after = Value::Null;
    let deadline = std::time::Instant::now() + DEADLINE;
    while std::time::Instant::now() < deadline {
        let out = survivor.cli(&["group", "describe", "k848-g", "-o", "json"]);
        if out.status.success() {
            after = serde_json::from_slice(&out.stdout).unwrap();
            if after["coordinator"].as_i64() != Some(i64::from(coordinator))
                && after["state"] == "Stable"
            {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(
        after["coordinator"].as_i64().unwrap() as i32,
        coordinator,
        "{after}"
    );
    assert_eq!(
        members(&after),
        members(&before),
        "the same members: {after}"
    );
    assert_eq!(
        after["generation_id"], before["generation_id"],
        "no new group epoch: {after}"
    );
    // A few more heartbeats, then: nothing was revoked or lost.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a.assignment().unwrap(), held_a);
    assert_eq!(b.assignment().unwrap(), held_b);
    assert_eq!(
        a.events().iter().filter(|e| e["e"] == "revoke").count(),
        revokes_a,
        "{:?}",
        a.events()
    );
    assert_eq!(
        b.events().iter().filter(|e| e["e"] == "revoke").count(),
        revokes_b,
        "{:?}",
        b.events()
    );
}

/// Values read so far from `topic`.
fn values_from(c: &Consumer, topic: &str) -> BTreeSet<String> {
    c.events()
        .iter()
        .filter(|e| e["e"] == "rec" && e["t"] == topic)
        .map(|e| e["v"].as_str().unwrap().to_string())
        .collect()
}

fn values(range: std::ops::Range<usize>) -> BTreeSet<String> {
    range.map(|i| format!("v{i}")).collect()
}

/// KIP-848 regex subscription: librdkafka subscribed to `^events-.*` (a topic name
/// starting with `^` is a regex) with `group.protocol=consumer` reads the matching topic
/// it joined with and, without subscribing again, one created later; never a topic the
/// regex does not match. A regex that does not compile gets INVALID_REGULAR_EXPRESSION:
/// librdkafka itself refuses at subscribe() what POSIX regcomp cannot compile (such as
/// `^events-(`), so the regex sent is one with a backreference, which POSIX accepts and
/// RE2 (Kafka's syntax, and the `regex` crate's) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_kip848_regex_subscription_follows_new_topics() {
    const TEST: &str = "librdkafka_kip848_regex_subscription_follows_new_topics";
    let Some(python) = clients_or_skip(TEST) else {
        return;
    };
    let node = Node::start(NodeOptions {
        args: [
            "--offsets-topic-num-partitions",
            "1",
            "--group-consumer-heartbeat-interval-ms",
            "500",
        ]
        .map(String::from)
        .to_vec(),
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let ctx = Ctx {
        python,
        dir: tempfile::tempdir().unwrap(),
        bootstrap: node.kafka_addr(),
    };
    let create = |topic: &str| create_topic_on(&node, topic, "2", "1");
    create("events-a");
    create("other-events-a");
    ctx.produce("events-a", 0, 10);
    ctx.produce("other-events-a", 100, 10);
    let mut c = ctx.consumer(
        "re",
        "confluent",
        "^events-.*",
        "regex-g",
        &["consumer", "-", "6000"],
    );
    wait_until("the records of events-a", DEADLINE, || {
        let got = values_from(&c, "events-a");
        async move { got == values(0..10) }
    })
    .await
    .unwrap();

    create("events-b");
    ctx.produce("events-b", 10, 10);
    wait_until("the records of events-b, created later", DEADLINE, || {
        let got = values_from(&c, "events-b");
        async move { got == values(10..20) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", c.events()));
    let topics: BTreeSet<String> = c
        .events()
        .iter()
        .filter(|e| e["e"] == "rec")
        .map(|e| e["t"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        topics,
        ["events-a", "events-b"].map(String::from).into(),
        "only the topics the regex matches"
    );

    let bad = ctx.consumer(
        "bad",
        "confluent",
        r"^events-(a)\1",
        "regex-bad-g",
        &["consumer", "-", "6000"],
    );
    // librdkafka's text for INVALID_REGULAR_EXPRESSION (128), raised as a fatal error.
    const REFUSED: &str = "The regular expression is not valid";
    wait_until(
        "INVALID_REGULAR_EXPRESSION for a backreference",
        DEADLINE,
        || {
            let refused = bad
                .events()
                .iter()
                .any(|e| e["e"] == "error" && e["err"].as_str().unwrap_or("").contains(REFUSED));
            async move { refused }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", bad.events()));
    assert!(
        !bad.events().iter().any(|e| e["e"] == "rec"),
        "{:?}",
        bad.events()
    );
    c.stop().await;
}
