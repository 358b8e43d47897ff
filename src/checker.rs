//! The history checker (DESIGN §6): concurrent producers write unique values with
//! acks=all and record every acknowledgement; a monitor records every (partition, leader
//! epoch, leader) it sees; after the faults, every replica's log is read from disk and
//! checked:
//!
//! 1. no acknowledged record is missing (same value at the acknowledged offset);
//! 2. offsets are dense and no value appears twice;
//! 3. replicas are identical up to the high watermark;
//! 4. at most one leader per (partition, leader epoch), and epochs never go back in a log.
//!
//! The producers are idempotent and retry inside a send (across leader failovers too), so
//! the broker must write each retried batch once. A value is acknowledged once; a send
//! that failed for good is "indeterminate" (it may or may not be in the log) and is never
//! sent again, so a duplicate is always the broker's fault.

use kavka_client::{Acks, Client, Producer, ProducerConfig, ProducerRecord};
use kavka_log::{LogConfig, PartitionLog};
use kavka_record::RecordBatch;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One acknowledged write.
#[derive(Clone, Debug)]
pub struct Ack {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    pub at: Instant,
}

/// What the workload saw.
#[derive(Debug, Default)]
pub struct History {
    pub acked: Vec<Ack>,
    /// Sends that failed: the value may or may not have been written.
    pub indeterminate: u64,
    /// (partition, leader epoch) → leaders seen with that epoch.
    pub leaders: BTreeMap<(i32, i32), BTreeSet<i32>>,
    /// Faults injected: when, what, and the partitions the victim led then.
    pub faults: Vec<Fault>,
}

#[derive(Clone, Debug)]
pub struct Fault {
    pub at: Instant,
    pub kind: &'static str,
    pub node: i32,
    pub led: Vec<i32>,
}

/// The verdict.
#[derive(Debug, Default)]
pub struct Report {
    pub faults: usize,
    pub acked: usize,
    pub indeterminate: u64,
    pub lost: Vec<String>,
    pub duplicated: Vec<String>,
    pub gaps_in_offsets: Vec<String>,
    pub divergent: Vec<String>,
    pub split_brain: Vec<String>,
    /// One per fault that hit a leader: (fault kind, gap).
    pub failover_gaps: Vec<(&'static str, Duration)>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.duplicated.is_empty()
            && self.gaps_in_offsets.is_empty()
            && self.divergent.is_empty()
            && self.split_brain.is_empty()
    }

    /// Median and max failover gap over the faults of `kind` (all when `None`).
    pub fn gap_stats(&self, kind: Option<&str>) -> (Duration, Duration) {
        let mut gaps: Vec<Duration> = self
            .failover_gaps
            .iter()
            .filter(|(k, _)| kind.is_none_or(|want| *k == want))
            .map(|(_, g)| *g)
            .collect();
        gaps.sort();
        (
            gaps.get(gaps.len() / 2).copied().unwrap_or_default(),
            gaps.last().copied().unwrap_or_default(),
        )
    }

    pub fn summary(&self) -> String {
        let (median, max) = self.gap_stats(None);
        let (median, max) = (median.as_millis(), max.as_millis());
        format!(
            "faults {} | acked {} | indeterminate {} | lost {} | duplicated {} | offset gaps {} | divergent {} | split-brain epochs {} | failover gap median {median} ms, max {max} ms | {}",
            self.faults,
            self.acked,
            self.indeterminate,
            self.lost.len(),
            self.duplicated.len(),
            self.gaps_in_offsets.len(),
            self.divergent.len(),
            self.split_brain.len(),
            if self.ok() { "OK" } else { "VIOLATED" }
        )
    }
}

/// A running workload: producers and a leadership monitor, until `stop`.
pub struct Workload {
    history: Arc<Mutex<History>>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    /// Starts `producers` acks=all producers writing unique values to `topic`.
    pub fn start(bootstrap: &str, topic: &str, producers: usize) -> Workload {
        let history = Arc::new(Mutex::new(History::default()));
        let (stop, _) = watch::channel(false);
        let mut tasks = Vec::new();
        for i in 0..producers {
            tasks.push(tokio::spawn(produce(
                bootstrap.to_string(),
                topic.to_string(),
                i,
                Arc::clone(&history),
                stop.subscribe(),
            )));
        }
        tasks.push(tokio::spawn(monitor(
            bootstrap.to_string(),
            topic.to_string(),
            Arc::clone(&history),
            stop.subscribe(),
        )));
        Workload {
            history,
            stop,
            tasks,
        }
    }

    pub fn acked(&self) -> usize {
        lock(&self.history).acked.len()
    }

    /// Waits (up to `deadline`) until `more` records beyond those acknowledged so far are
    /// acknowledged: the producers still make progress.
    pub async fn progress(&self, more: usize, deadline: Duration) -> anyhow::Result<()> {
        let want = self.acked() + more;
        crate::wait_until(
            &format!("{want} acknowledged records"),
            deadline,
            || async { self.acked() >= want },
        )
        .await
    }

    /// (partition, leader epoch) → leaders the monitor has seen so far.
    pub fn leaders_seen(&self) -> BTreeMap<(i32, i32), BTreeSet<i32>> {
        lock(&self.history).leaders.clone()
    }

    /// Records a fault about to be injected on `node`, with the partitions it leads.
    pub async fn fault(&self, bootstrap: &str, topic: &str, kind: &'static str, node: i32) {
        let led = tokio::time::timeout(Duration::from_secs(5), leaders(bootstrap, topic))
            .await
            .ok()
            .flatten()
            .map(|l| {
                l.into_iter()
                    .filter(|(_, (leader, _))| *leader == node)
                    .map(|(p, _)| p)
                    .collect()
            })
            .unwrap_or_default();
        lock(&self.history).faults.push(Fault {
            at: Instant::now(),
            kind,
            node,
            led,
        });
    }

    /// Stops the producers and the monitor; returns what they saw.
    pub async fn stop(self) -> History {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
        }
        std::mem::take(&mut *lock(&self.history))
    }
}

fn lock(h: &Mutex<History>) -> std::sync::MutexGuard<'_, History> {
    h.lock().unwrap_or_else(|p| p.into_inner())
}

/// partition → (leader, leader epoch), as the cluster reports it.
pub async fn leaders(bootstrap: &str, topic: &str) -> Option<BTreeMap<i32, (i32, i32)>> {
    let mut client = Client::connect(bootstrap).await.ok()?;
    let md = client.metadata(vec![topic.to_string()]).await.ok()?;
    let t = md.topics.into_iter().next()?;
    Some(
        t.partitions
            .iter()
            .map(|p| (p.partition, (p.leader, p.leader_epoch)))
            .collect(),
    )
}

async fn produce(
    bootstrap: String,
    topic: String,
    id: usize,
    history: Arc<Mutex<History>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut producer = None;
    let mut seq = 0u64;
    while !*stop.borrow() {
        if producer.is_none() {
            match Client::connect(&bootstrap).await {
                Ok(c) => {
                    producer = Some(Producer::new(
                        c,
                        // Retries within the delivery timeout: idempotence makes the
                        // leader write a retried batch once, which the checker verifies.
                        // A short, flat backoff, so the failover gap measures the
                        // cluster rather than the client's backoff policy.
                        ProducerConfig {
                            acks: Acks::All,
                            enable_idempotence: true,
                            retry_backoff: Duration::from_millis(20),
                            retry_backoff_max: Duration::from_millis(50),
                            delivery_timeout: Duration::from_secs(10),
                            request_timeout: Duration::from_secs(2),
                            ..ProducerConfig::default()
                        },
                    ))
                }
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        let Some(p) = producer.as_mut() else { continue };
        seq += 1;
        let value = format!("p{id}-{seq}");
        let record = ProducerRecord {
            key: Some(bytes::Bytes::from(value.clone())),
            value: Some(bytes::Bytes::from(value.clone())),
            ..ProducerRecord::default()
        };
        let sent = tokio::select! {
            r = p.send(&topic, vec![record]) => r,
            _ = stop.changed() => break,
        };
        match sent {
            Ok(meta) => {
                let m = meta[0];
                lock(&history).acked.push(Ack {
                    partition: m.partition,
                    offset: m.offset,
                    value,
                    at: Instant::now(),
                });
            }
            Err(_) => {
                lock(&history).indeterminate += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn monitor(
    bootstrap: String,
    topic: String,
    history: Arc<Mutex<History>>,
    mut stop: watch::Receiver<bool>,
) {
    // Every node's own view: a stale node reporting an old leader with a new epoch would
    // be a split brain.
    let nodes: Vec<String> = bootstrap.split(',').map(str::to_string).collect();
    loop {
        for node in &nodes {
            if let Ok(Ok(Some(seen))) = tokio::time::timeout(Duration::from_secs(2), async {
                Ok::<_, ()>(leaders(node, &topic).await)
            })
            .await
            {
                let mut h = lock(&history);
                for (p, (leader, epoch)) in seen {
                    if leader >= 0 {
                        h.leaders.entry((p, epoch)).or_default().insert(leader);
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// One replica's log of a partition, as (offset, value, batch leader epoch) plus the raw
/// batches.
struct ReplicaLog {
    node: i32,
    records: Vec<(i64, String, i32)>,
    batches: Vec<u8>,
    log_start: i64,
}

fn read_replica(node: i32, dir: &Path) -> anyhow::Result<ReplicaLog> {
    let log = PartitionLog::open(dir, LogConfig::default())?;
    let start = log.log_start_offset();
    let end = log.log_end_offset();
    let data = log.read(start, usize::MAX / 2, end)?;
    let batches = data.records.into_bytes();
    let mut records = Vec::new();
    let mut rest = &batches[..];
    while !rest.is_empty() {
        let (batch, used) = RecordBatch::decode(rest)?;
        rest = &rest[used..];
        for (offset, _, r) in batch.offsets_and_timestamps() {
            let value = r
                .value
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            records.push((offset, value, batch.partition_leader_epoch));
        }
    }
    Ok(ReplicaLog {
        node,
        records,
        batches: batches.into(),
        log_start: start.0,
    })
}

/// Checks the history against the logs on disk. `data_dirs`: (node id, data dir) of
/// every node, stopped; `high_watermarks`: partition → the final leader's high watermark.
pub fn verify(
    history: &History,
    topic: &str,
    data_dirs: &[(i32, PathBuf)],
    high_watermarks: &BTreeMap<i32, i64>,
) -> anyhow::Result<Report> {
    let mut report = Report {
        faults: history.faults.len(),
        acked: history.acked.len(),
        indeterminate: history.indeterminate,
        ..Report::default()
    };
    for (&(p, epoch), leaders) in &history.leaders {
        if leaders.len() > 1 {
            report
                .split_brain
                .push(format!("{topic}-{p} epoch {epoch}: leaders {leaders:?}"));
        }
    }
    for (&p, &hw) in high_watermarks {
        let mut replicas = Vec::new();
        for (node, dir) in data_dirs {
            let pdir = dir.join(format!("{topic}-{p}"));
            if pdir.exists() {
                replicas.push(read_replica(*node, &pdir)?);
            }
        }
        anyhow::ensure!(!replicas.is_empty(), "no replica of {topic}-{p} on disk");
        // Values by offset from the replica with the longest committed prefix.
        let reference = &replicas[0];
        let by_offset: HashMap<i64, &str> = reference
            .records
            .iter()
            .map(|(o, v, _)| (*o, v.as_str()))
            .collect();
        for r in &replicas {
            let mut expected = r.log_start;
            let mut last_epoch = i32::MIN;
            let mut seen = BTreeSet::new();
            for (o, v, e) in &r.records {
                if *o != expected {
                    report.gaps_in_offsets.push(format!(
                        "{topic}-{p} on node {}: offset {o} follows {}",
                        r.node,
                        expected - 1
                    ));
                }
                expected = o + 1;
                if *e < last_epoch {
                    report.split_brain.push(format!(
                        "{topic}-{p} on node {}: epoch {e} after {last_epoch} at offset {o}",
                        r.node
                    ));
                }
                last_epoch = last_epoch.max(*e);
                if !seen.insert(v.clone()) {
                    report.duplicated.push(format!(
                        "{topic}-{p} on node {}: value {v} again at offset {o}",
                        r.node
                    ));
                }
            }
            // Identical up to the high watermark: same records and same bytes.
            let upto = |log: &ReplicaLog| -> Vec<(i64, String, i32)> {
                log.records
                    .iter()
                    .filter(|(o, ..)| *o < hw)
                    .cloned()
                    .collect()
            };
            if upto(r) != upto(reference) {
                report.divergent.push(format!(
                    "{topic}-{p}: node {} and node {} differ below the high watermark {hw}",
                    r.node, reference.node
                ));
            } else if committed_bytes(r, hw) != committed_bytes(reference, hw) {
                report.divergent.push(format!(
                    "{topic}-{p}: node {} and node {} hold different bytes below {hw}",
                    r.node, reference.node
                ));
            }
        }
        for a in history.acked.iter().filter(|a| a.partition == p) {
            if a.offset >= hw || by_offset.get(&a.offset) != Some(&a.value.as_str()) {
                report.lost.push(format!(
                    "{topic}-{p}: acknowledged {} at offset {} is {}",
                    a.value,
                    a.offset,
                    by_offset
                        .get(&a.offset)
                        .map_or("missing".to_string(), |v| format!("'{v}'"))
                ));
            }
        }
    }
    // Failover gap, per fault: the longest stretch without an acknowledgement on a
    // partition the victim led, from the last ack before the fault until the next fault
    // (so the gap counts from when the fault really struck, however long injecting it
    // took, and a later leadership move back is not mistaken for it).
    let mut ack_times: BTreeMap<i32, Vec<Instant>> = BTreeMap::new();
    for a in &history.acked {
        ack_times.entry(a.partition).or_default().push(a.at);
    }
    for times in ack_times.values_mut() {
        times.sort();
    }
    for (i, f) in history.faults.iter().enumerate() {
        let until = history.faults.get(i + 1).map(|n| n.at);
        let mut worst: Option<Duration> = None;
        for p in &f.led {
            let Some(times) = ack_times.get(p) else {
                continue;
            };
            let first = times.partition_point(|t| *t <= f.at).saturating_sub(1);
            let window: Vec<Instant> = times[first..]
                .iter()
                .copied()
                .take_while(|t| until.is_none_or(|u| *t <= u))
                .collect();
            let gap = window.windows(2).map(|w| w[1].duration_since(w[0])).max();
            worst = worst.max(gap);
        }
        report.failover_gaps.extend(worst.map(|g| (f.kind, g)));
    }
    Ok(report)
}

/// The raw batches that end at or below `hw`.
fn committed_bytes(log: &ReplicaLog, hw: i64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = &log.batches[..];
    while let Ok((batch, used)) = RecordBatch::decode(rest) {
        if batch.last_offset() >= hw {
            break;
        }
        out.extend_from_slice(&rest[..used]);
        rest = &rest[used..];
    }
    out
}

/// The offsets every test needs from the final state: partition → high watermark, once
/// every replica is back in the ISR and has caught up (bounded by `deadline`).
pub async fn settled_high_watermarks(
    bootstrap: &str,
    topic: &str,
    replication_factor: usize,
    deadline: Duration,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let out = Arc::new(Mutex::new(BTreeMap::new()));
    crate::wait_until(
        "every replica back in the ISR and caught up",
        deadline,
        || {
            let out = Arc::clone(&out);
            async move {
                let Ok(mut c) = Client::connect(bootstrap).await else {
                    return false;
                };
                let Ok(d) = c.describe_topic(topic).await else {
                    return false;
                };
                let settled = !d.partitions.is_empty()
                    && d.partitions.iter().all(|p| {
                        p.isr.len() == replication_factor
                            && p.leader >= 0
                            && p.high_watermark == p.log_end_offset
                    });
                if settled {
                    *out.lock().unwrap_or_else(|p| p.into_inner()) = d
                        .partitions
                        .iter()
                        .map(|p| (p.partition, p.high_watermark))
                        .collect();
                }
                settled
            }
        },
    )
    .await?;
    let settled = std::mem::take(&mut *out.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(settled)
}

/// Kills every node of `cluster`, then checks `history` against the logs on disk
/// ([`verify`]); panics (fails the test) unless the report holds. The report is printed
/// and returned for further checks.
#[allow(clippy::unwrap_used, clippy::panic)] // test support: a failure is a panic
pub fn stop_and_verify(
    cluster: &mut crate::Cluster,
    history: &History,
    topic: &str,
    high_watermarks: &BTreeMap<i32, i64>,
) -> Report {
    for n in &mut cluster.nodes {
        n.kill();
    }
    let dirs: Vec<_> = cluster
        .nodes
        .iter()
        .map(|n| (n.node_id(), n.data_dir()))
        .collect();
    let report = verify(history, topic, &dirs, high_watermarks)
        .unwrap_or_else(|e| panic!("cannot check the history: {e:#}"));
    println!("history check: {}", report.summary());
    assert!(report.ok(), "{report:#?}");
    report
}
