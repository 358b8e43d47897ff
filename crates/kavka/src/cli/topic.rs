//! `kavka topic create|list|describe|delete|alter-config`.

use super::{OutputFormat, connect, parse_kv, print_json, table};
use anyhow::{Context, bail};
use clap::{Subcommand, ValueEnum};
use kavka_client::{ClientError, NewTopic};
use kavka_model::{BrokerId, ErrorCode};
use kavka_proto::v1;
use serde_json::json;

/// Kafka's election types, as kafka-leader-election spells them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ElectionKind {
    Preferred,
    Unclean,
}

#[derive(Subcommand, Debug)]
pub enum TopicCommand {
    /// Create a topic.
    Create {
        name: String,
        /// Number of partitions (default: the broker's num.partitions).
        #[arg(long, short = 'p', default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replicas per partition (default: the broker's default).
        #[arg(long, short = 'r', default_value_t = 0)]
        replication_factor: i32,
        /// The brokers of each partition instead of a count and factor, as Kafka's
        /// kafka-topics: partitions split by ',', a partition's brokers by ':', preferred
        /// leader first, e.g. 1:2:3,2:3:1.
        #[arg(long, value_parser = parse_replica_assignment,
              conflicts_with_all = ["partitions", "replication_factor"])]
        replica_assignment: Option<ReplicaAssignment>,
        /// A topic config, e.g. --config retention.ms=60000 (repeatable).
        #[arg(long = "config", value_parser = parse_kv)]
        configs: Vec<(String, String)>,
        /// Succeed if the topic already exists.
        #[arg(long)]
        if_not_exists: bool,
    },
    /// List topics.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a topic's partitions, offsets and configs.
    Describe {
        name: String,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Delete topics and their data.
    Delete {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Delete a partition's records before an offset (Kafka's kafka-delete-records): the
    /// log start moves up; consumers behind it start from there.
    DeleteRecords {
        /// The partition, as topic-partition (orders-3).
        #[arg(value_parser = super::partition::parse_partition)]
        partition: kavka_model::admin::PartitionRef,
        /// Delete the records below this offset (default: below the high watermark).
        #[arg(long)]
        before: Option<u64>,
    },
    /// Move leadership back to each partition's preferred (first) replica, where it is
    /// live and in the ISR; or, with `--election-type unclean`, give each leaderless
    /// partition any live replica, in the ISR or not (Kafka's kafka-leader-election).
    ElectLeaders {
        /// Only this topic (default: every topic).
        #[arg(long)]
        topic: Option<String>,
        /// Only these partitions of --topic (repeatable).
        #[arg(long, requires = "topic")]
        partition: Vec<i32>,
        /// preferred, or unclean: committed records the new leader lacks are lost.
        #[arg(long, value_enum, default_value_t = ElectionKind::Preferred)]
        election_type: ElectionKind,
    },
    /// Set or remove topic config overrides.
    AlterConfig {
        name: String,
        /// key=value to set (repeatable).
        #[arg(long = "set", value_parser = parse_kv)]
        set: Vec<(String, String)>,
        /// key to reset to its default (repeatable).
        #[arg(long = "delete")]
        delete: Vec<String>,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
}

/// The replicas of each partition, preferred leader first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplicaAssignment(Vec<Vec<BrokerId>>);

/// Kafka's `--replica-assignment` text: `1:2:3,2:3:1` is two partitions of three replicas.
fn parse_replica_assignment(s: &str) -> Result<ReplicaAssignment, String> {
    s.split(',')
        .enumerate()
        .map(|(p, replicas)| {
            replicas
                .split(':')
                .map(|b| {
                    b.trim().parse().map(BrokerId).map_err(|_| {
                        format!(
                            "partition {p}: '{b}' is not a broker id (expected e.g. 1:2:3,2:3:1)"
                        )
                    })
                })
                .collect()
        })
        .collect::<Result<_, _>>()
        .map(ReplicaAssignment)
}

pub async fn run(bootstrap: &str, cmd: TopicCommand) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    match cmd {
        TopicCommand::Create {
            name,
            partitions,
            replication_factor,
            replica_assignment,
            configs,
            if_not_exists,
        } => {
            let r = client
                .create_topic(NewTopic {
                    name: name.clone(),
                    partitions,
                    replication_factor,
                    configs: configs.into_iter().collect(),
                    assignment: replica_assignment.map(|a| a.0).unwrap_or_default(),
                })
                .await;
            match r {
                Ok(id) => outln!("Created topic {name} (id {id})."),
                Err(e)
                    if if_not_exists && e.kafka_code() == Some(ErrorCode::TopicAlreadyExists) =>
                {
                    outln!("Topic {name} already exists.")
                }
                Err(e) => return Err(e.into()),
            }
        }
        TopicCommand::List { output } => {
            let topics = client.list_topics().await?;
            match output {
                OutputFormat::Json => print_json(&json!(topics
                    .iter()
                    .map(|t| json!({"name": t.name, "topic_id": t.topic_id, "partitions": t.partitions, "replication_factor": t.replication_factor, "internal": t.internal}))
                    .collect::<Vec<_>>()))?,
                OutputFormat::Table => {
                    let mut t = table(&["TOPIC", "PARTITIONS", "REPLICAS", "ID"]);
                    for topic in &topics {
                        t.add_row(vec![topic.name.clone(), topic.partitions.to_string(), topic.replication_factor.to_string(), topic.topic_id.clone()]);
                    }
                    outln!("{t}");
                }
            }
        }
        TopicCommand::Describe { name, output } => {
            let d = client.describe_topic(&name).await?;
            match output {
                OutputFormat::Json => print_json(&json!({
                    "name": d.topic.as_ref().map(|t| t.name.clone()),
                    "topic_id": d.topic.as_ref().map(|t| t.topic_id.clone()),
                    "partitions": d.partitions.iter().map(|p| json!({
                        "partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch,
                        "replicas": p.replicas, "isr": p.isr, "log_start_offset": p.log_start_offset,
                        "high_watermark": p.high_watermark, "log_end_offset": p.log_end_offset, "size_bytes": p.size_bytes,
                        "durable_offset": p.durable_offset,
                    })).collect::<Vec<_>>(),
                    "configs": d.configs.iter().map(|c| (c.name.clone(), json!(c.value))).collect::<serde_json::Map<_, _>>(),
                    "config_sources": d.configs.iter().map(|c| (c.name.clone(), json!(c.source))).collect::<serde_json::Map<_, _>>(),
                }))?,
                OutputFormat::Table => {
                    if let Some(t) = &d.topic {
                        outln!(
                            "Topic: {}  id: {}  partitions: {}  replication factor: {}",
                            t.name,
                            t.topic_id,
                            t.partitions,
                            t.replication_factor
                        );
                    }
                    let mut t = table(&[
                        "PARTITION",
                        "LEADER",
                        "EPOCH",
                        "REPLICAS",
                        "ISR",
                        "LOG-START",
                        "HIGH-WATERMARK",
                        "LOG-END",
                        "SIZE",
                    ]);
                    for p in &d.partitions {
                        t.add_row(vec![
                            p.partition.to_string(),
                            p.leader.to_string(),
                            p.leader_epoch.to_string(),
                            format!("{:?}", p.replicas),
                            format!("{:?}", p.isr),
                            p.log_start_offset.to_string(),
                            p.high_watermark.to_string(),
                            p.log_end_offset.to_string(),
                            human_bytes(p.size_bytes as u64),
                        ]);
                    }
                    outln!("{t}\n");
                    let value = |name: &str| {
                        d.configs
                            .iter()
                            .find(|c| c.name == name)
                            .map(|c| format!("{name}={} ({})", c.value, source_name(&c.source)))
                            .unwrap_or_default()
                    };
                    outln!(
                        "Durability: {}  {}  (fsync before the answer when flush.messages=1)",
                        value("flush.messages"),
                        value("flush.ms")
                    );
                    let set: Vec<_> = d
                        .configs
                        .iter()
                        .filter(|c| c.source != "DEFAULT_CONFIG")
                        .collect();
                    if set.is_empty() {
                        outln!(
                            "Configs: all defaults (kavka topic describe {name} -o json shows every value)"
                        );
                    } else {
                        let mut t = table(&["CONFIG", "VALUE", "SOURCE"]);
                        for c in set {
                            t.add_row(vec![
                                c.name.clone(),
                                c.value.clone(),
                                source_name(&c.source).into(),
                            ]);
                        }
                        outln!("{t}");
                    }
                }
            }
        }
        TopicCommand::ElectLeaders {
            topic,
            partition,
            election_type,
        } => {
            let asked: Vec<(String, i32)> = match (&topic, partition.is_empty()) {
                (None, _) => vec![],
                (Some(t), false) => partition.iter().map(|&p| (t.clone(), p)).collect(),
                (Some(t), true) => {
                    let n = client.partition_count(t).await? as i32;
                    (0..n).map(|p| (t.clone(), p)).collect()
                }
            };
            let (kind, done, summary) = match election_type {
                ElectionKind::Preferred => (
                    v1::ElectionType::Preferred,
                    "leader moved to its preferred replica",
                    "Elected the preferred leader for",
                ),
                ElectionKind::Unclean => (
                    v1::ElectionType::Unclean,
                    "a leader elected uncleanly (records it lacked are lost)",
                    "Elected an unclean leader for",
                ),
            };
            let results = client.elect_leaders(asked, kind).await?;
            let mut moved = 0;
            for r in &results {
                match &r.error {
                    None => {
                        moved += 1;
                        outln!("{}-{}: {done}", r.topic, r.partition)
                    }
                    Some(e) => outln!("{}-{}: {} ({})", r.topic, r.partition, e.name, e.message),
                }
            }
            outln!("{summary} {moved} partition(s).");
        }
        TopicCommand::DeleteRecords { partition, before } => {
            let name = format!("{}-{}", partition.topic, partition.partition);
            let before = before
                .map(|o| i64::try_from(o).context("--before is too large"))
                .transpose()?;
            let start = delete_records_at_leader(bootstrap, &mut client, &partition, before)
                .await
                .with_context(|| format!("cannot delete records of {name}"))?;
            outln!("{name} now starts at offset {start}.");
        }
        TopicCommand::Delete { names } => {
            let mut failed = 0;
            for (name, r) in client.delete_topics(names).await? {
                match r {
                    Ok(()) => outln!("Deleted topic {name}."),
                    Err(e) => {
                        failed += 1;
                        eprintln!("error: cannot delete topic {name}: {e}");
                    }
                }
            }
            if failed > 0 {
                bail!("{failed} topic(s) not deleted");
            }
        }
        TopicCommand::AlterConfig {
            name,
            set,
            delete,
            output,
        } => {
            if set.is_empty() && delete.is_empty() {
                return Err(ClientError::Invalid(
                    "nothing to change: give --set key=value or --delete key".into(),
                )
                .into());
            }
            let entries = client
                .alter_configs(&name, set.into_iter().collect(), delete)
                .await?;
            match output {
                OutputFormat::Json => print_json(&json!(
                    entries
                        .iter()
                        .map(|c| (c.name.clone(), json!(c.value)))
                        .collect::<serde_json::Map<_, _>>()
                ))?,
                OutputFormat::Table => {
                    outln!("Updated configs of topic {name}:");
                    let mut t = table(&["CONFIG", "VALUE", "SOURCE"]);
                    for c in &entries {
                        t.add_row(vec![
                            c.name.clone(),
                            c.value.clone(),
                            source_name(&c.source).into(),
                        ]);
                    }
                    outln!("{t}");
                }
            }
        }
    }
    Ok(())
}

/// A short word for Kafka's config source name.
fn source_name(source: &str) -> &'static str {
    match source {
        "DYNAMIC_TOPIC_CONFIG" => "topic",
        "STATIC_BROKER_CONFIG" => "broker",
        _ => "default",
    }
}

pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// DeleteRecords at `partition`'s leader (only a leader deletes): found in the metadata.
async fn delete_records_at_leader(
    bootstrap: &str,
    client: &mut kavka_client::Client,
    partition: &kavka_model::admin::PartitionRef,
    before: Option<i64>,
) -> anyhow::Result<i64> {
    let md = client.metadata(vec![partition.topic.clone()]).await?;
    let leader = md
        .topics
        .iter()
        .flat_map(|t| &t.partitions)
        .find(|p| p.partition == partition.partition.0)
        .map(|p| p.leader)
        .filter(|&l| l >= 0);
    let addr = leader
        .and_then(|l| md.brokers.iter().find(|b| b.id == l))
        .map(|b| format!("{}:{}", b.host, b.port));
    match addr {
        Some(addr) => Ok(super::connect(&addr)
            .await?
            .delete_records(partition, before)
            .await?),
        // Unknown partition or no leader: the broker asked says which.
        None => Ok(super::connect(bootstrap)
            .await?
            .delete_records(partition, before)
            .await?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_assignments_parse_as_kafka_writes_them() {
        let ids = |v: &[&[i32]]| -> Vec<Vec<BrokerId>> {
            v.iter()
                .map(|p| p.iter().map(|b| BrokerId(*b)).collect())
                .collect()
        };
        type Parsed = Result<Vec<Vec<BrokerId>>, &'static str>;
        let table: Vec<(&str, Parsed)> = vec![
            ("1:2:3,2:3:1", Ok(ids(&[&[1, 2, 3], &[2, 3, 1]]))),
            ("3", Ok(ids(&[&[3]]))),
            ("1, 2", Ok(ids(&[&[1], &[2]]))),
            ("1:x", Err("partition 0: 'x' is not a broker id")),
            ("1,,2", Err("partition 1: '' is not a broker id")),
        ];
        for (text, want) in table {
            match (parse_replica_assignment(text), want) {
                (Ok(got), Ok(want)) => assert_eq!(got.0, want, "{text}"),
                (Err(got), Err(words)) => assert!(got.contains(words), "{text}: {got}"),
                (got, want) => panic!("{text}: wanted {want:?}, got {got:?}"),
            }
        }
    }
}
