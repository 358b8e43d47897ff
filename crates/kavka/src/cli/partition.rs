//! `kavka partition move|moves|cancel`: Kafka's partition reassignment
//! (kafka-reassign-partitions), one partition at a time by its `topic-partition` name.

use super::{OutputFormat, connect, print_json, table};
use anyhow::{Context, bail};
use clap::Subcommand;
use kavka_client::Client;
use kavka_model::admin::{OngoingMove, PartitionMove, PartitionRef};
use kavka_model::{BrokerId, PartitionId};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum PartitionCommand {
    /// Move a partition to other brokers: new replicas catch up, join the ISR, then the
    /// replica set (and leadership, if its leader leaves) moves and the old ones delete
    /// their copies.
    Move {
        /// The partition, as topic-partition (orders-3).
        #[arg(value_parser = parse_partition)]
        partition: PartitionRef,
        /// The target brokers, preferred leader first (4,2,3).
        #[arg(long, required = true, value_delimiter = ',', value_parser = parse_broker)]
        replicas: Vec<BrokerId>,
        /// Wait (up to this many seconds) until the move is complete, printing progress.
        #[arg(long)]
        wait: Option<u64>,
        /// With --wait: a replication throttle for the move (as 50MB/s), set cluster-wide
        /// and lifted when it is done (kafka-reassign-partitions --throttle).
        #[arg(long, requires = "wait", value_parser = super::balance::parse_rate)]
        throttle: Option<u64>,
    },
    /// The ongoing moves.
    Moves {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Cancel a partition's ongoing move: it goes back to the replicas it had.
    Cancel {
        #[arg(value_parser = parse_partition)]
        partition: PartitionRef,
    },
}

/// `orders-3` (the partition after the last '-').
pub(super) fn parse_partition(s: &str) -> Result<PartitionRef, String> {
    let bad = || format!("expected topic-partition (orders-3), got '{s}'");
    let (topic, p) = s.rsplit_once('-').ok_or_else(bad)?;
    let partition: i32 = p.parse().map_err(|_| bad())?;
    if topic.is_empty() || partition < 0 {
        return Err(bad());
    }
    Ok(PartitionRef {
        topic: topic.to_string(),
        partition: PartitionId(partition),
    })
}

/// One broker id of `--replicas 4,2,3`.
fn parse_broker(s: &str) -> Result<BrokerId, String> {
    s.trim()
        .parse::<i32>()
        .ok()
        .filter(|&b| b >= 0)
        .map(BrokerId)
        .ok_or_else(|| format!("expected a broker id (as in 4,2,3), got '{s}'"))
}

fn ids(list: &[BrokerId]) -> String {
    list.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn name(p: &PartitionRef) -> String {
    format!("{}-{}", p.topic, p.partition)
}

/// What a move still waits for: the target replicas not yet in sync.
fn progress(m: &OngoingMove) -> String {
    let waiting: Vec<BrokerId> = m
        .adding
        .iter()
        .chain(m.replicas.iter())
        .filter(|b| !m.removing.contains(b) && !m.isr.contains(b))
        .copied()
        .fold(Vec::new(), |mut v, b| {
            if !v.contains(&b) {
                v.push(b);
            }
            v
        });
    if waiting.is_empty() {
        "target in sync; completing".to_string()
    } else {
        format!("waiting for {} to catch up", ids(&waiting))
    }
}

pub async fn run(bootstrap: &str, cmd: PartitionCommand) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    match cmd {
        PartitionCommand::Move {
            partition,
            replicas,
            wait,
            throttle,
        } => {
            if let Some(rate) = throttle {
                super::balance::set_throttle(&mut client, rate).await?;
            }
            let m = PartitionMove {
                partition: partition.clone(),
                target: Some(replicas.clone()),
            };
            for o in client.alter_partition_reassignments(&[m]).await? {
                o.result
                    .with_context(|| format!("cannot move {}", name(&partition)))?;
            }
            outln!("Moving {} to {}.", name(&partition), ids(&replicas));
            if let Some(secs) = wait {
                let deadline = Instant::now() + Duration::from_secs(secs);
                let mut last = String::new();
                loop {
                    let ongoing = client
                        .list_partition_reassignments(std::slice::from_ref(&partition))
                        .await?;
                    let Some(m) = ongoing.first() else {
                        outln!("Moved {} to {}.", name(&partition), ids(&replicas));
                        break;
                    };
                    let now = progress(m);
                    if now != last {
                        outln!("{}: {now}", name(&partition));
                        last = now;
                    }
                    if Instant::now() >= deadline {
                        bail!(
                            "{} is still moving after {secs}s ({last}); `kavka partition moves` shows it",
                            name(&partition)
                        );
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                if throttle.is_some() {
                    super::balance::lift_throttle(&mut client).await?;
                }
            }
        }
        PartitionCommand::Moves { output } => {
            let moves = client.list_partition_reassignments(&[]).await?;
            let copying = Copying::measure(&mut client, &moves).await;
            match output {
                OutputFormat::Json => print_json(&json!(
                    moves
                        .iter()
                        .map(|m| json!({
                            "topic": m.topic,
                            "partition": m.partition.0,
                            "replicas": m.replicas.iter().map(|b| b.0).collect::<Vec<_>>(),
                            "adding_replicas": m.adding.iter().map(|b| b.0).collect::<Vec<_>>(),
                            "removing_replicas": m.removing.iter().map(|b| b.0).collect::<Vec<_>>(),
                            "isr": m.isr.iter().map(|b| b.0).collect::<Vec<_>>(),
                            "leader": m.leader.map(|b| b.0),
                            "bytes_left": copying.left(m),
                            "bytes_per_second": copying.rate(m),
                        }))
                        .collect::<Vec<_>>()
                ))?,
                OutputFormat::Table => {
                    let mut t = table(&[
                        "PARTITION",
                        "REPLICAS",
                        "ADDING",
                        "REMOVING",
                        "ISR",
                        "LEADER",
                        "BYTES LEFT",
                        "RATE",
                        "PROGRESS",
                    ]);
                    for m in &moves {
                        t.add_row(vec![
                            format!("{}-{}", m.topic, m.partition),
                            ids(&m.replicas),
                            ids(&m.adding),
                            ids(&m.removing),
                            ids(&m.isr),
                            m.leader.map_or("none".into(), |b| b.to_string()),
                            copying.left(m).map_or("?".into(), human_bytes),
                            copying
                                .rate(m)
                                .map_or("?".into(), |r| format!("{}/s", human_bytes(r))),
                            progress(m),
                        ]);
                    }
                    outln!("{t}");
                    outln!("{} partition(s) moving.", moves.len());
                }
            }
        }
        PartitionCommand::Cancel { partition } => {
            let m = PartitionMove {
                partition: partition.clone(),
                target: None,
            };
            for o in client.alter_partition_reassignments(&[m]).await? {
                o.result
                    .with_context(|| format!("cannot cancel the move of {}", name(&partition)))?;
            }
            outln!("Cancelled the move of {}.", name(&partition));
        }
    }
    Ok(())
}

/// How far each move's new replicas are from their leader's copy: the leader's log size
/// minus theirs (each broker asked for its own log dir), measured twice a second apart
/// for the rate. A broker that does not answer leaves its moves' figures unknown.
struct Copying {
    /// (topic, partition) → bytes left, at the second measurement.
    left: BTreeMap<(String, i32), u64>,
    /// (topic, partition) → bytes per second copied between the measurements.
    rate: BTreeMap<(String, i32), u64>,
}

/// How long apart the two measurements of `kavka partition moves` are.
const RATE_INTERVAL: Duration = Duration::from_secs(1);

impl Copying {
    async fn measure(client: &mut Client, moves: &[OngoingMove]) -> Self {
        if moves.is_empty() {
            return Copying {
                left: BTreeMap::new(),
                rate: BTreeMap::new(),
            };
        }
        let addrs: BTreeMap<i32, String> = match client.metadata(vec![]).await {
            Ok(md) => md
                .brokers
                .iter()
                .map(|b| (b.id, format!("{}:{}", b.host, b.port)))
                .collect(),
            Err(_) => BTreeMap::new(),
        };
        let first = Instant::now();
        let before = bytes_left(&addrs, moves).await;
        tokio::time::sleep(RATE_INTERVAL).await;
        let left = bytes_left(&addrs, moves).await;
        let secs = first.elapsed().as_secs_f64().max(0.001);
        let rate = left
            .iter()
            .filter_map(|(k, now)| {
                let was = before.get(k)?;
                Some((k.clone(), (was.saturating_sub(*now) as f64 / secs) as u64))
            })
            .collect();
        Copying { left, rate }
    }

    fn left(&self, m: &OngoingMove) -> Option<u64> {
        self.left.get(&(m.topic.clone(), m.partition.0)).copied()
    }

    fn rate(&self, m: &OngoingMove) -> Option<u64> {
        self.rate.get(&(m.topic.clone(), m.partition.0)).copied()
    }
}

/// Each move's bytes left: the sum over its new replicas of the leader's size minus theirs.
async fn bytes_left(
    addrs: &BTreeMap<i32, String>,
    moves: &[OngoingMove],
) -> BTreeMap<(String, i32), u64> {
    let mut sizes: BTreeMap<(i32, String, i32), u64> = BTreeMap::new();
    let brokers: BTreeSet<i32> = moves
        .iter()
        .flat_map(|m| m.leader.iter().chain(&m.adding).map(|b| b.0))
        .collect();
    let only: Vec<PartitionRef> = moves
        .iter()
        .map(|m| PartitionRef {
            topic: m.topic.clone(),
            partition: m.partition,
        })
        .collect();
    for b in brokers {
        let Some(addr) = addrs.get(&b) else { continue };
        let Ok(mut c) = connect(addr).await else {
            continue;
        };
        let Ok(dir) = c.describe_log_dirs(&only).await else {
            continue;
        };
        for r in dir.replicas {
            sizes.insert((b, r.topic, r.partition), r.size_bytes.max(0) as u64);
        }
    }
    moves
        .iter()
        .filter_map(|m| {
            let key = |b: BrokerId| (b.0, m.topic.clone(), m.partition.0);
            let leader = *sizes.get(&key(m.leader?))?;
            let mut left = 0u64;
            for a in &m.adding {
                // A new replica with no log yet has everything left.
                let have = sizes.get(&key(*a)).copied().unwrap_or(0);
                left += leader.saturating_sub(have);
            }
            Some(((m.topic.clone(), m.partition.0), left))
        })
        .collect()
}

/// "1.5 MiB".
fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_replicas_parse_as_kafka_tools_write_them() {
        let p = parse_partition("my-orders-3").unwrap();
        assert_eq!(
            (p.topic.as_str(), p.partition),
            ("my-orders", PartitionId(3))
        );
        for bad in ["orders", "orders-", "-3", "orders-x"] {
            let e = parse_partition(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
        assert_eq!(parse_broker(" 4"), Ok(BrokerId(4)));
        for bad in ["", "a", "-1"] {
            assert!(
                parse_broker(bad).unwrap_err().contains("broker id"),
                "{bad}"
            );
        }
    }

    #[test]
    fn byte_counts_read_as_people_write_them() {
        let table = [
            (0, "0 B"),
            (1023, "1023 B"),
            (1024, "1.0 KiB"),
            (1536, "1.5 KiB"),
            (3 << 20, "3.0 MiB"),
            (5 << 40, "5.0 TiB"),
        ];
        for (n, want) in table {
            assert_eq!(human_bytes(n), want, "{n}");
        }
    }

    #[test]
    fn progress_names_the_replicas_not_yet_in_sync() {
        let m = OngoingMove {
            topic: "t".into(),
            partition: PartitionId(0),
            replicas: vec![BrokerId(4), BrokerId(5), BrokerId(1)],
            adding: vec![BrokerId(4), BrokerId(5)],
            removing: vec![BrokerId(1)],
            isr: vec![BrokerId(1), BrokerId(4)],
            leader: Some(BrokerId(1)),
        };
        assert_eq!(progress(&m), "waiting for 5 to catch up");
        let done = OngoingMove {
            isr: vec![BrokerId(1), BrokerId(4), BrokerId(5)],
            ..m
        };
        assert_eq!(progress(&done), "target in sync; completing");
    }
}
