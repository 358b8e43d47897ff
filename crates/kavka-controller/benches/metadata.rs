//! Controller measurements (not a criterion loop: each is one timed run).
//!
//! - metadata write throughput: records/s through a one-voter quorum with sled flushed
//!   before every acknowledgement, for several batch sizes and concurrent proposers;
//! - creating 10,000 partitions in one request, then topics up to 100,000 partitions in
//!   total: time per request, process RSS, and snapshot size.
//!
//! Run: `cargo bench -p kavka-controller --bench metadata` (set KAVKA_BENCH_DIR for the disk).

use kavka_controller::control::topics::{CreateTopic, TopicDefaults, create_topics};
use kavka_controller::{Quorum, QuorumConfig, VoterNode};
use kavka_metadata::{ConfigResource, Endpoint, MetadataRecord, RegisterBrokerRecord, TopicId};
use kavka_model::BrokerId;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

async fn quorum(dir: &std::path::Path) -> Arc<Quorum> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let voters = BTreeMap::from([(
        1,
        VoterNode::new(l.local_addr().unwrap_or_else(|e| panic!("{e}")).to_string()),
    )]);
    let q = Arc::new(
        Quorum::start(QuorumConfig::new(1, dir.to_path_buf(), voters))
            .await
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let end = Instant::now() + Duration::from_secs(30);
    while !q.is_leader() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    q
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    rt.block_on(run());
}

async fn run() {
    let base = std::env::var_os("KAVKA_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let tmp = tempfile::Builder::new()
        .prefix("kavka-controller-bench-")
        .tempdir_in(base)
        .unwrap_or_else(|e| panic!("{e}"));

    println!("== metadata write throughput (one voter, sled flush before each ack)");
    let q = quorum(&tmp.path().join("throughput")).await;
    for (batch, proposers) in [(1usize, 1usize), (1, 8), (100, 1), (100, 8)] {
        let total = if batch == 1 { 2_000 } else { 100_000 };
        let per = total / proposers;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for p in 0..proposers {
            let q = Arc::clone(&q);
            tasks.push(tokio::spawn(async move {
                for i in 0..per / batch {
                    let records = (0..batch)
                        .map(|k| MetadataRecord::Config {
                            resource: ConfigResource::Broker(BrokerId(p as i32)),
                            name: format!("k{k}"),
                            value: Some(i.to_string()),
                        })
                        .collect();
                    q.propose(records).await.unwrap_or_else(|e| panic!("{e}"));
                }
            }));
        }
        for t in tasks {
            t.await.unwrap_or_else(|e| panic!("{e}"));
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "batch {batch:>3} records, {proposers} proposers: {total} records in {secs:.2} s = {:.0} records/s ({:.0} batches/s)",
            total as f64 / secs,
            (total / batch) as f64 / secs
        );
    }
    q.shutdown().await;

    println!(
        "== 10,000 partitions in one request, then up to 100,000 in total (RF 3 over 3 brokers)"
    );
    let q = quorum(&tmp.path().join("partitions")).await;
    let brokers = (1..=3)
        .map(|i| {
            MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                broker_id: BrokerId(i),
                incarnation_id: uuid::Uuid::new_v4(),
                endpoints: vec![Endpoint {
                    name: "grpc".into(),
                    host: "h".into(),
                    port: 1,
                }],
                rack: None,
                fenced: false,
            })
        })
        .collect();
    q.propose(brokers).await.unwrap_or_else(|e| panic!("{e}"));
    let defaults = TopicDefaults {
        partitions: 1,
        replication_factor: 3,
    };
    let rss_before = rss_mib();
    for (i, partitions) in [10_000, 10_000, 20_000, 30_000, 30_000]
        .into_iter()
        .enumerate()
    {
        let started = Instant::now();
        let d = create_topics(
            &q.image(),
            &[CreateTopic {
                name: format!("big-{i}"),
                partitions: Some(partitions),
                replication_factor: Some(3),
                configs: BTreeMap::new(),
                assignments: vec![],
            }],
            defaults,
            || TopicId(uuid::Uuid::new_v4()),
        );
        let decided = started.elapsed();
        q.propose(d.records).await.unwrap_or_else(|e| panic!("{e}"));
        let img = q.image();
        let snapshot_bytes =
            kavka_metadata::codec::encode_snapshot(img.offset, &img.snapshot_records()).len();
        println!(
            "+{partitions} partitions in one request: decided in {:.0} ms, committed in {:.0} ms; total {} partitions, RSS {:.0} MiB (+{:.0}), snapshot {:.1} MiB",
            decided.as_secs_f64() * 1000.0,
            started.elapsed().as_secs_f64() * 1000.0,
            img.partition_count(),
            rss_mib(),
            rss_mib() - rss_before,
            snapshot_bytes as f64 / 1048576.0
        );
    }
    q.shutdown().await;
}
