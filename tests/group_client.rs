//! kavka-client's group consumer and dead-letter helper against real clusters: two
//! members share a topic's partitions, commit what they process, one leaves and the
//! other takes over, and a new member resumes from the committed offsets; records whose
//! handler keeps failing land in `<topic>.DLQ` with headers naming the error and source.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kavka_client::dead_letter::{self, DeadLetterQueue, Handled};
use kavka_client::{
    Client, ConsumedRecord, Consumer, GroupConsumer, GroupConsumerConfig, OffsetReset, OffsetSpec,
    Producer, ProducerConfig, ProducerRecord, RebalanceListener, TopicPartition,
};
use kavka_harness::{Cluster, Node, NodeOptions};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);

async fn produce(client: &Client, topic: &str, values: impl IntoIterator<Item = String>) {
    let mut p = Producer::new(client.clone(), ProducerConfig::default());
    let records = values
        .into_iter()
        .map(|v| ProducerRecord {
            key: Some(Bytes::from(format!("k-{v}"))),
            value: Some(Bytes::from(v)),
            ..ProducerRecord::default()
        })
        .collect();
    p.send(topic, records).await.unwrap();
}

fn value(r: &ConsumedRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

/// What a listener heard: ("assigned" or "revoked", partitions).
type Heard = Vec<(String, Vec<TopicPartition>)>;

#[derive(Clone, Default)]
struct Events(Arc<Mutex<Heard>>);

impl RebalanceListener for Events {
    fn on_assigned(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("assigned".into(), p.to_vec()));
    }
    fn on_revoked(&mut self, p: &[TopicPartition]) {
        self.0.lock().unwrap().push(("revoked".into(), p.to_vec()));
    }
}

fn config(group: &str, topic: &str) -> GroupConsumerConfig {
    let mut c = GroupConsumerConfig::new(group, vec![topic.to_string()]);
    c.auto_commit = false;
    c.auto_offset_reset = OffsetReset::Earliest;
    c
}

/// Polls `c`, committing what it read, into `seen`.
async fn poll_commit(c: &mut GroupConsumer, seen: &mut Vec<String>) {
    let records = c.poll().await.unwrap();
    seen.extend(records.iter().map(value));
    if !records.is_empty() {
        c.commit().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_consumers_share_partitions_commit_and_take_over() {
    let cluster = Cluster::start(
        &["controller,broker"; 3],
        &["--group-consumer-heartbeat-interval-ms", "200"],
    )
    .await
    .unwrap();
    let client = cluster.nodes[0].client().await.unwrap();
    let out = cluster.nodes[0].cli(&["topic", "create", "events", "-p", "6", "-r", "3"]);
    assert!(out.status.success(), "{out:?}");
    produce(&client, "events", (0..120).map(|i| format!("v{i}"))).await;

    let mut a = GroupConsumer::subscribe(client.clone(), config("app", "events")).unwrap();
    let a_events = Events::default();
    a.set_listener(Box::new(a_events.clone()));
    let mut b = GroupConsumer::subscribe(client.clone(), config("app", "events")).unwrap();
    let (mut seen_a, mut seen_b) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEADLINE;
    loop {
        poll_commit(&mut a, &mut seen_a).await;
        poll_commit(&mut b, &mut seen_b).await;
        let shared = a.assignment().len() == 3
            && b.assignment().len() == 3
            && a.assignment().is_disjoint(b.assignment());
        if shared && seen_a.len() + seen_b.len() >= 120 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "a {:?} b {:?}, {} + {} read",
            a.assignment(),
            b.assignment(),
            seen_a.len(),
            seen_b.len()
        );
    }
    let all: BTreeSet<&String> = seen_a.iter().chain(&seen_b).collect();
    assert_eq!(all.len(), 120, "every record");
    assert_eq!(seen_a.len() + seen_b.len(), 120, "each once");
    assert!(
        a_events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(e, _)| e == "assigned"),
        "the listener heard of the assignment"
    );

    // b leaves; a takes over everything and reads what comes next, once.
    b.close().await.unwrap();
    let deadline = Instant::now() + DEADLINE;
    while a.assignment().len() < 6 {
        poll_commit(&mut a, &mut seen_a).await;
        assert!(Instant::now() < deadline, "a holds {:?}", a.assignment());
    }
    assert!(
        a_events
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|(e, _)| e == "assigned")
    );
    produce(&client, "events", (120..180).map(|i| format!("v{i}"))).await;
    let before = seen_a.len();
    let deadline = Instant::now() + DEADLINE;
    while seen_a.len() - before < 60 {
        poll_commit(&mut a, &mut seen_a).await;
        assert!(
            Instant::now() < deadline,
            "{} of 60 read",
            seen_a.len() - before
        );
    }
    let later: BTreeSet<&String> = seen_a[before..].iter().collect();
    assert_eq!(later.len(), 60);
    assert!(
        later.iter().all(|v| v[1..].parse::<u32>().unwrap() >= 120),
        "nothing old again"
    );
    a.close().await.unwrap();

    // A new member starts from the committed offsets: only new records.
    let mut c = GroupConsumer::subscribe(client.clone(), config("app", "events")).unwrap();
    produce(&client, "events", (180..190).map(|i| format!("v{i}"))).await;
    let mut seen_c = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while seen_c.len() < 10 {
        poll_commit(&mut c, &mut seen_c).await;
        assert!(Instant::now() < deadline, "{seen_c:?}");
    }
    let want: BTreeSet<String> = (180..190).map(|i| format!("v{i}")).collect();
    assert_eq!(seen_c.iter().cloned().collect::<BTreeSet<_>>(), want);
    let described = cluster.nodes[1].cli(&["group", "describe", "app", "-o", "json"]);
    let d: serde_json::Value = serde_json::from_slice(&described.stdout).unwrap();
    assert_eq!(d["protocol_type"], "consumer", "{d}");
    assert_eq!(d["members"].as_array().unwrap().len(), 1, "{d}");
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_keep_failing_go_to_the_dead_letter_topic() {
    let n = Node::start(NodeOptions {
        args: vec![
            "--group-consumer-heartbeat-interval-ms".into(),
            "200".into(),
        ],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let client = n.client().await.unwrap();
    let out = n.cli(&["topic", "create", "payments", "-p", "2"]);
    assert!(out.status.success(), "{out:?}");
    let values: Vec<String> = (0..20)
        .map(|i| {
            if i % 7 == 3 {
                format!("poison-{i}")
            } else {
                format!("ok-{i}")
            }
        })
        .collect();
    produce(&client, "payments", values.clone()).await;

    let mut consumer =
        GroupConsumer::subscribe(client.clone(), config("payer", "payments")).unwrap();
    let mut dlq = DeadLetterQueue::new(client.clone(), 3, Duration::from_millis(10));
    let attempts: Arc<Mutex<BTreeMap<String, u32>>> = Arc::default();
    let mut outcomes: BTreeMap<String, (Handled, ConsumedRecord)> = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while outcomes.len() < 20 {
        for r in consumer.poll().await.unwrap() {
            let tries = Arc::clone(&attempts);
            let handled = dlq
                .process(&r, |rec| {
                    let v = value(rec);
                    *tries.lock().unwrap().entry(v.clone()).or_default() += 1;
                    async move {
                        if v.starts_with("poison") {
                            Err(format!("cannot charge {v}: card declined"))
                        } else {
                            Ok(())
                        }
                    }
                })
                .await
                .unwrap();
            outcomes.insert(value(&r), (handled, r));
        }
        consumer.commit().await.unwrap();
        assert!(
            Instant::now() < deadline,
            "{} of 20 handled",
            outcomes.len()
        );
    }
    consumer.close().await.unwrap();
    let poisoned: Vec<&String> = values.iter().filter(|v| v.starts_with("poison")).collect();
    assert_eq!(poisoned.len(), 3);
    for (v, (handled, _)) in &outcomes {
        let tries = attempts.lock().unwrap()[v];
        if v.starts_with("poison") {
            assert!(
                matches!(handled, Handled::DeadLettered { topic, .. } if topic == "payments.DLQ"),
                "{v}: {handled:?}"
            );
            assert_eq!(tries, 3, "{v} tried three times");
        } else {
            assert_eq!(handled, &Handled::Ok { attempts: 1 });
            assert_eq!(tries, 1);
        }
    }

    // The dead-letter topic holds exactly the poison records, with where they came from.
    let mut reader = Consumer::assign(
        client.clone(),
        &dead_letter::dead_letter_topic("payments"),
        None,
        OffsetSpec::Earliest,
    )
    .await
    .unwrap();
    let mut dead = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    while dead.len() < 3 {
        dead.extend(reader.poll().await.unwrap());
        assert!(Instant::now() < deadline);
    }
    assert_eq!(dead.len(), 3);
    for d in &dead {
        let v = value(d);
        let header = |k: &str| {
            d.headers
                .iter()
                .find(|h| h.key == k)
                .and_then(|h| h.value.clone())
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .unwrap_or_else(|| panic!("{v} lacks header {k}"))
        };
        let (_, source) = &outcomes[&v];
        assert_eq!(
            header(dead_letter::HEADER_ERROR),
            format!("cannot charge {v}: card declined")
        );
        assert_eq!(header(dead_letter::HEADER_TOPIC), "payments");
        assert_eq!(
            header(dead_letter::HEADER_PARTITION),
            source.partition.to_string()
        );
        assert_eq!(
            header(dead_letter::HEADER_OFFSET),
            source.offset.to_string()
        );
        assert_eq!(header(dead_letter::HEADER_ATTEMPTS), "3");
        assert_eq!(d.key, source.key, "the original key is kept");
    }
}
