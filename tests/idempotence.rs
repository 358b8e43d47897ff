//! Idempotent producers on three real `kavka` processes: producer ids from the controller
//! (unique across nodes and a full restart), a retried batch written once — on the leader
//! that took it and on a new leader after it died — and the sequence and epoch errors a
//! producer gets for a gap or a fenced epoch, with nothing written.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kavka_client::Client;
use kavka_client::v1::{self, broker_service_client::BrokerServiceClient};
use kavka_harness::{Cluster, wait_until};
use kavka_model::ErrorCode;
use kavka_record::{Compression, Record, RecordBatch};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(60);
const TOPIC: &str = "idem";

/// A batch of `values` from producer `pid` at `epoch`, starting at sequence `seq`.
fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> Bytes {
    let records = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset_delta: i as i32,
            timestamp_delta: 0,
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: vec![],
        })
        .collect();
    let mut b = RecordBatch::new(1_700_000_000_000, Compression::None, records);
    b.producer_id = pid;
    b.producer_epoch = epoch;
    b.base_sequence = seq;
    Bytes::from(b.encode().unwrap())
}

/// Produces raw batches to partition 0 on the node at `addr` with acks=all.
async fn produce(addr: &str, records: Bytes) -> v1::PartitionProduceResult {
    try_produce(addr, records).await.unwrap()
}

async fn try_produce(addr: &str, records: Bytes) -> Result<v1::PartitionProduceResult, String> {
    let mut c = BrokerServiceClient::connect(format!("http://{addr}"))
        .await
        .map_err(|e| e.to_string())?;
    let resp = c
        .produce(v1::ProduceRequest {
            topic: TOPIC.into(),
            acks: -1,
            timeout_ms: 10_000,
            batches: vec![v1::PartitionBatches {
                partition: 0,
                records,
            }],
            records: vec![],
            compression: String::new(),
        })
        .await
        .map_err(|e| e.to_string())?
        .into_inner();
    resp.results
        .into_iter()
        .next()
        .ok_or_else(|| "no result".into())
}

/// Sends `records` to whichever node leads partition 0 (of `nodes`: id, address) until
/// one writes or recognises it; returns that leader and its answer.
async fn produce_to_leader(nodes: &[(i32, String)], records: Bytes) -> (i32, i64) {
    let end = Instant::now() + DEADLINE;
    let mut last = String::new();
    while Instant::now() < end {
        let mut described = None;
        for (_, addr) in nodes {
            described = partition(addr).await;
            if described.is_some() {
                break;
            }
        }
        if let Some(p) = described
            && let Some((_, leader)) = nodes.iter().find(|(n, _)| *n == p.leader)
        {
            match try_produce(leader, records.clone()).await {
                Ok(r) if r.error.is_none() => return (p.leader, r.base_offset),
                other => last = format!("{other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader took the batch within {DEADLINE:?}; last answer: {last}");
}

/// The offset written (panics with the error otherwise).
fn written(r: &v1::PartitionProduceResult) -> i64 {
    assert!(r.error.is_none(), "{:?}", r.error);
    r.base_offset
}

fn refused(r: &v1::PartitionProduceResult, code: ErrorCode) -> String {
    let e = r.error.as_ref().expect("an error");
    assert_eq!(e.code, code.code() as i32, "{e:?}");
    e.message.clone()
}

async fn partition(addr: &str) -> Option<v1::PartitionInfo> {
    let mut c = Client::connect(addr).await.ok()?;
    c.describe_topic(TOPIC)
        .await
        .ok()?
        .partitions
        .into_iter()
        .next()
}

async fn leader(addr: &str, not: i32) -> i32 {
    let end = Instant::now() + DEADLINE;
    while Instant::now() < end {
        let found = partition(addr).await.map_or(-1, |p| p.leader);
        if found > 0 && found != not {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no leader other than {not} within {DEADLINE:?}");
}

async fn producer_id(addr: &str) -> i64 {
    let mut c = Client::connect(addr).await.unwrap();
    let (id, epoch) = c.init_producer_id().await.unwrap();
    assert_eq!(epoch, 0);
    assert!(id >= 0);
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batches_are_written_once_even_by_a_new_leader() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap();
    let out = kavka_harness::run_cli(
        &bootstrap,
        &[
            "topic",
            "create",
            TOPIC,
            "-p",
            "1",
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

    // Ids from every node are distinct: they come from one sequence in the metadata log.
    let mut ids = Vec::new();
    for n in 1..=3 {
        for _ in 0..2 {
            ids.push(producer_id(&cluster.node(n).addr()).await);
        }
    }
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        ids.len(),
        "producer ids handed out twice: {ids:?}"
    );
    let pid = ids[0];

    let first = leader(&bootstrap, -1).await;
    let at = cluster.node(first).addr();
    assert_eq!(
        written(&produce(&at, batch(pid, 0, 0, &["a", "b", "c"])).await),
        0
    );
    // The same batch again (a retry after a lost answer): its offset, not a second copy.
    assert_eq!(
        written(&produce(&at, batch(pid, 0, 0, &["a", "b", "c"])).await),
        0
    );
    assert_eq!(written(&produce(&at, batch(pid, 0, 3, &["d"])).await), 3);
    // A gap in the sequence is refused.
    let gap = refused(
        &produce(&at, batch(pid, 0, 9, &["x"])).await,
        ErrorCode::OutOfOrderSequenceNumber,
    );
    assert!(
        gap.contains(&format!("producer {pid}")) && gap.contains("expected 4"),
        "{gap}"
    );
    // A new epoch restarts the sequence at 0 and fences the old one.
    assert_eq!(written(&produce(&at, batch(pid, 1, 0, &["e"])).await), 4);
    let fenced = refused(
        &produce(&at, batch(pid, 0, 4, &["y"])).await,
        ErrorCode::InvalidProducerEpoch,
    );
    assert!(
        fenced.contains("epoch 0 is older than the current epoch 1"),
        "{fenced}"
    );
    // Transactions are not served.
    let mut txn = RecordBatch::decode(&batch(pid, 1, 1, &["t"])).unwrap().0;
    txn.is_transactional = true;
    refused(
        &produce(&at, Bytes::from(txn.encode().unwrap())).await,
        ErrorCode::InvalidRecord,
    );
    let p = partition(&bootstrap).await.unwrap();
    assert_eq!((p.log_end_offset, p.high_watermark), (5, 5));

    // The leader dies; the producer retries its last batch on the new leader, which
    // has the producer's state from replication and answers with the same offset.
    cluster.node(first).kill();
    let survivor = cluster
        .nodes
        .iter()
        .find(|n| n.node_id() != first)
        .unwrap()
        .addr();
    leader(&survivor, first).await;
    let live: Vec<(i32, String)> = cluster
        .nodes
        .iter()
        .filter(|n| n.node_id() != first)
        .map(|n| (n.node_id(), n.addr()))
        .collect();
    let (second, offset) = produce_to_leader(&live, batch(pid, 1, 0, &["e"])).await;
    assert_ne!(second, first);
    assert_eq!(offset, 4, "the retry was written again");
    let at = cluster.node(second).addr();
    assert_eq!(written(&produce(&at, batch(pid, 1, 1, &["f"])).await), 5);
    let p = partition(&at).await.unwrap();
    assert_eq!(p.log_end_offset, 6, "{p:?}");

    // After a full restart the controller still knows which ids it gave out, and each
    // replica still knows the producer.
    cluster.node(first).start_again().await.unwrap();
    wait_until("the full ISR", DEADLINE, || async {
        partition(&bootstrap)
            .await
            .is_some_and(|p| p.isr.len() == 3)
    })
    .await
    .unwrap();
    for n in &mut cluster.nodes {
        n.kill();
    }
    for n in &mut cluster.nodes {
        n.launch().unwrap();
    }
    for n in &mut cluster.nodes {
        n.wait_ready().await.unwrap();
    }
    let after = producer_id(&bootstrap).await;
    assert!(
        ids.iter().all(|&id| after > id),
        "id {after} after the restart, before: {ids:?}"
    );
    let all: Vec<(i32, String)> = cluster
        .nodes
        .iter()
        .map(|n| (n.node_id(), n.addr()))
        .collect();
    let (third, offset) = produce_to_leader(&all, batch(pid, 1, 1, &["f"])).await;
    assert_eq!(offset, 5, "the retry after the restart was written again");
    let at = cluster.node(third).addr();
    assert_eq!(written(&produce(&at, batch(pid, 1, 2, &["g"])).await), 6);
}
