//! Where a failover's time goes: three local nodes, one partition (RF 3,
//! min.insync.replicas 2), one acks=all producer sending one record at a time, and a
//! metadata poller on a surviving node; the partition's leader is SIGKILLed (or, with
//! `stop`, SIGSTOPped) and the timeline relative to the fault is printed: producer errors,
//! the leader change as the cluster reports it, and the first acknowledgement after.
//!
//! `ctl` SIGKILLs the active controller, measuring a partition it leads.
//!
//! `pref` (issue 22) freezes a partition's preferred replica while it follows in the
//! ISR, and 1.5 s later runs the preferred-leader election (as the periodic rebalance
//! would, mid-freeze); it prints the longest gap between acknowledgements of that
//! partition within 12 s of the freeze, for our producer and (where the Kafka clients
//! are installed, `deploy/kafka-clients.sh`) a librdkafka idempotent producer.
//!
//! The third argument is the durability policy (`--log-flush`): `replicated` (default)
//! or `fsync`.
//!
//!     cargo run -p kavka-harness --example failover_probe -- [kill|stop|ctl|pref] [rounds] [flush]

use kavka_client::{Acks, Client, NewTopic, Producer, ProducerConfig, ProducerRecord};
use kavka_harness::kafka_clients::RdkafkaProducer;
use kavka_harness::{Cluster, checker};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Log = Arc<Mutex<Vec<(Instant, String)>>>;

fn note(log: &Log, what: String) {
    if let Ok(mut l) = log.lock() {
        l.push((Instant::now(), what));
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "kill".into());
    let stop = mode == "stop";
    let rounds: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(3);
    let flush = args.next().unwrap_or_else(|| "replicated".into());
    println!("mode {mode}, {rounds} rounds, --log-flush {flush}");
    if mode == "pref" {
        return preferred_freezes(rounds, &flush).await;
    }
    let mut cluster = Cluster::start(&["controller,broker"; 3], &["--log-flush", &flush]).await?;
    let all = cluster.bootstrap();
    let mut admin = Client::connect(&all).await?;
    admin
        .create_topic(NewTopic {
            name: "probe".into(),
            partitions: 3,
            replication_factor: 3,
            configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            ..NewTopic::default()
        })
        .await?;
    let mut gaps = Vec::new();
    for round in 0..rounds {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let leaders = checker::leaders(&all, "probe").await.unwrap_or_default();
        let status = kavka_harness::run_cli(&all, &["quorum", "status", "-o", "json"], b"");
        let controller = serde_json::from_slice::<serde_json::Value>(&status.stdout)
            .ok()
            .and_then(|v| v["leader_id"].as_i64())
            .map_or(-1, |l| l as i32);
        let pick = if mode == "ctl" {
            leaders.iter().find(|(_, (l, _))| *l == controller)
        } else {
            leaders.iter().find(|(_, (l, _))| *l != controller)
        };
        let Some((&partition, &(victim, epoch))) = pick else {
            println!("round {round}: no partition fits; skipped");
            continue;
        };
        let survivor = cluster
            .nodes
            .iter()
            .find(|n| n.node_id() != victim)
            .map(|n| n.addr())
            .unwrap_or_default();
        let log: Log = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer = {
            let (all, log, done) = (all.clone(), Arc::clone(&log), Arc::clone(&done));
            tokio::spawn(async move {
                let Ok(c) = Client::connect(&all).await else {
                    return;
                };
                let mut p = Producer::new(
                    c,
                    ProducerConfig {
                        acks: Acks::All,
                        retries: 0,
                        request_timeout: Duration::from_secs(2),
                        ..ProducerConfig::default()
                    },
                );
                let mut i = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let r = ProducerRecord {
                        partition: Some(partition),
                        value: Some(bytes::Bytes::from(format!("v{i}"))),
                        ..ProducerRecord::default()
                    };
                    match p.send("probe", vec![r]).await {
                        Ok(_) => note(&log, "ack".into()),
                        Err(e) => {
                            note(&log, format!("error: {e}"));
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
            })
        };
        let poller = {
            let (log, done, survivor) = (Arc::clone(&log), Arc::clone(&done), survivor.clone());
            tokio::spawn(async move {
                let mut last = (victim, epoch);
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    if let Some(l) = checker::leaders(&survivor, "probe").await
                        && let Some(now) = l.get(&partition).copied()
                        && now != last
                    {
                        note(&log, format!("metadata: leader {} epoch {}", now.0, now.1));
                        last = now;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            })
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        if stop {
            cluster.node(victim).pause();
        } else {
            cluster.node(victim).kill();
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = producer.await;
        let _ = poller.await;
        println!(
            "round {round}: {} node {victim} (probe-{partition} epoch {epoch}; active controller {controller})",
            if stop { "SIGSTOP" } else { "SIGKILL" }
        );
        let log = log.lock().map(|l| l.clone()).unwrap_or_default();
        let mut acks_before = 0;
        let mut last_before = None;
        let mut first_after = None;
        let mut shown = 0;
        let mut last_kind = String::new();
        for (t, what) in &log {
            if *t <= t0 {
                if what == "ack" {
                    acks_before += 1;
                    last_before = Some(*t);
                }
                continue;
            }
            let ms = t.duration_since(t0).as_millis();
            if what == "ack" {
                if first_after.is_none() && shown > 0 {
                    first_after = Some(*t);
                    println!("  +{ms:>5} ms  first ack");
                }
                continue;
            }
            let kind: String = what.chars().take(60).collect();
            if shown == 0 || !last_kind.starts_with(&kind) {
                println!("  +{ms:>5} ms  {what}");
                last_kind = kind;
            }
            shown += 1;
        }
        if let (Some(b), Some(a)) = (last_before, first_after) {
            let gap = a.duration_since(b);
            println!("  gap {} ms ({acks_before} acks before)", gap.as_millis());
            gaps.push(gap);
        }
        if stop {
            cluster.node(victim).resume();
        } else {
            cluster.node(victim).start_again().await?;
        }
    }
    gaps.sort();
    if let (Some(min), Some(max)) = (gaps.first(), gaps.last()) {
        println!(
            "gaps: min {} ms, median {} ms, max {} ms",
            min.as_millis(),
            gaps[gaps.len() / 2].as_millis(),
            max.as_millis()
        );
    }
    Ok(())
}

/// `pref` mode: a frozen preferred follower and a preferred-leader election mid-freeze.
async fn preferred_freezes(rounds: usize, flush: &str) -> anyhow::Result<()> {
    let mut cluster = Cluster::start(
        &["controller,broker"; 3],
        &[
            "--log-flush",
            flush,
            "--leader-imbalance-check-interval-ms",
            "0",
        ],
    )
    .await?;
    let all = cluster.bootstrap();
    let mut admin = Client::connect(&all).await?;
    admin
        .create_topic(NewTopic {
            name: "probe".into(),
            partitions: 3,
            replication_factor: 3,
            configs: BTreeMap::from([("min.insync.replicas".into(), "2".into())]),
            ..NewTopic::default()
        })
        .await?;
    let mut gaps = Vec::new();
    let mut rd_gaps = Vec::new();
    for round in 0..rounds {
        let status = kavka_harness::run_cli(&all, &["quorum", "status", "-o", "json"], b"");
        let controller = serde_json::from_slice::<serde_json::Value>(&status.stdout)
            .ok()
            .and_then(|v| v["leader_id"].as_i64())
            .map_or(-1, |l| l as i32);
        let parts = admin.describe_topic("probe").await?.partitions;
        let Some(p) = parts.iter().find(|p| p.replicas[0] != controller) else {
            println!("round {round}: no partition fits; skipped");
            continue;
        };
        let (partition, victim) = (p.partition, p.replicas[0]);
        let others: String = cluster
            .nodes
            .iter()
            .filter(|n| n.node_id() != victim)
            .map(|n| n.addr())
            .collect::<Vec<_>>()
            .join(",");
        // The preferred replica must follow, in the ISR, settled: move leadership off
        // it by a controlled shutdown and bring it back.
        if p.leader == victim {
            cluster.node(victim).terminate();
            cluster.node(victim).start_again().await?;
        }
        kavka_harness::wait_until("a full ISR", Duration::from_secs(60), || async {
            let Ok(mut c) = Client::connect(&others).await else {
                return false;
            };
            c.describe_topic("probe").await.is_ok_and(|d| {
                d.partitions
                    .iter()
                    .any(|q| q.partition == partition && q.isr.len() == 3 && q.leader != victim)
            })
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;

        let acks: Arc<Mutex<Vec<Instant>>> = Arc::default();
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let producer = {
            let (all, acks, done) = (all.clone(), Arc::clone(&acks), Arc::clone(&done));
            tokio::spawn(async move {
                let Ok(c) = Client::connect(&all).await else {
                    return;
                };
                let mut p = Producer::new(
                    c,
                    ProducerConfig {
                        acks: Acks::All,
                        request_timeout: Duration::from_secs(2),
                        retry_backoff: Duration::from_millis(20),
                        retry_backoff_max: Duration::from_millis(50),
                        ..ProducerConfig::default()
                    },
                );
                let mut i = 0u64;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let r = ProducerRecord {
                        partition: Some(partition),
                        value: Some(bytes::Bytes::from(format!("v{i}"))),
                        ..ProducerRecord::default()
                    };
                    if p.send("probe", vec![r]).await.is_ok()
                        && let Ok(mut a) = acks.lock()
                    {
                        a.push(Instant::now());
                    }
                }
            })
        };
        let rdkafka = match kavka_harness::kafka_clients::clients() {
            Ok(python) => Some(RdkafkaProducer::start(
                &python,
                &cluster.kafka_bootstrap(),
                "probe",
                60,
            )?),
            Err(_) => None,
        };
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t0 = Instant::now();
        let t0_unix = unix_now();
        cluster.node(victim).pause();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let elected = Client::connect(&others)
            .await?
            .elect_leaders(
                vec![("probe".into(), partition)],
                kavka_proto::v1::ElectionType::Preferred,
            )
            .await?;
        let answer = elected
            .first()
            .map(|r| {
                r.error
                    .as_ref()
                    .map_or("moved".to_string(), |e| e.name.clone())
            })
            .unwrap_or_default();
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        let _ = producer.await;
        cluster.node(victim).resume();
        let rd_gap = match rdkafka {
            Some(rd) => {
                let times = rd
                    .stop()?
                    .into_iter()
                    .filter(|a| a.partition == partition)
                    .map(|a| a.unix_time);
                // Up to the end of the window: acks that never resumed count too.
                let end = t0_unix + 12.0;
                let mut window: Vec<f64> = times
                    .into_iter()
                    .filter(|t| *t + 1.0 >= t0_unix && *t <= end)
                    .collect();
                window.push(end);
                let gap = window.windows(2).map(|w| w[1] - w[0]).fold(0.0, f64::max);
                rd_gaps.push(Duration::from_secs_f64(gap));
                format!("; librdkafka longest ack gap {} ms", (gap * 1000.0) as u64)
            }
            None => String::new(),
        };
        let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
        let window: Vec<Instant> = acks
            .iter()
            .copied()
            .filter(|t| *t + Duration::from_secs(1) >= t0)
            .collect();
        let gap = window
            .windows(2)
            .map(|w| w[1].duration_since(w[0]))
            .max()
            .unwrap_or_default();
        println!(
            "round {round}: SIGSTOP preferred replica {victim} of probe-{partition}; election at +1.5 s: {answer}; longest ack gap {} ms ({} acks in the window){rd_gap}",
            gap.as_millis(),
            window.len()
        );
        gaps.push(gap);
    }
    print_gaps("gaps", gaps);
    print_gaps("librdkafka gaps", rd_gaps);
    Ok(())
}

fn print_gaps(what: &str, mut gaps: Vec<Duration>) {
    gaps.sort();
    if let (Some(min), Some(max)) = (gaps.first(), gaps.last()) {
        println!(
            "{what}: min {} ms, median {} ms, max {} ms",
            min.as_millis(),
            gaps[gaps.len() / 2].as_millis(),
            max.as_millis()
        );
    }
}

fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
