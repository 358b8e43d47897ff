//! `kavka broker list|decommission|recommission`: brokers with their load, and draining a
//! broker of every replica (Redpanda's `rpk redpanda admin brokers decommission`).

use super::{OutputFormat, connect, print_json, table};
use anyhow::{Context, bail};
use clap::Subcommand;
use kavka_client::Client;
use kavka_model::BrokerId;
use kavka_proto::v1;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum BrokerCommand {
    /// Brokers with their state (fenced, decommissioned), replicas and leaderships.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Move every replica off a broker (a bounded number of partitions at a time) and keep
    /// new ones off it; waits until it holds none, printing progress. Refused while it
    /// holds a partition's only in-sync replica or when too few brokers would be left.
    Decommission {
        broker: i32,
        /// Return once the decommission is accepted instead of waiting for it to finish.
        #[arg(long)]
        no_wait: bool,
        /// Give up waiting after this many seconds (the moves go on).
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
    },
    /// Take a decommissioned broker back into service (moves already started go on).
    Recommission { broker: i32 },
}

/// Replicas and preferred leaderships per broker, and the partitions still moving.
#[derive(Debug, Default, PartialEq, Eq)]
struct Load {
    replicas: usize,
    leaders: usize,
}

fn loads(md: &v1::MetadataResponse) -> BTreeMap<i32, Load> {
    let mut out: BTreeMap<i32, Load> = md.brokers.iter().map(|b| (b.id, Load::default())).collect();
    for p in md.topics.iter().flat_map(|t| &t.partitions) {
        for r in &p.replicas {
            out.entry(*r).or_default().replicas += 1;
        }
        if p.leader >= 0 {
            out.entry(p.leader).or_default().leaders += 1;
        }
    }
    out
}

pub async fn run(bootstrap: &str, cmd: BrokerCommand) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    match cmd {
        BrokerCommand::List { output } => {
            let md = client.metadata(vec![]).await?;
            let loads = loads(&md);
            let state = |b: &v1::BrokerInfo| match (b.fenced, b.decommissioned) {
                (_, true) => "decommissioned",
                (true, false) => "fenced",
                (false, false) => "active",
            };
            match output {
                OutputFormat::Json => print_json(&json!(
                    md.brokers
                        .iter()
                        .map(|b| {
                            let l = loads.get(&b.id);
                            json!({
                                "id": b.id,
                                "host": b.host,
                                "port": b.port,
                                "rack": (!b.rack.is_empty()).then_some(&b.rack),
                                "state": state(b),
                                "replicas": l.map_or(0, |l| l.replicas),
                                "leaders": l.map_or(0, |l| l.leaders),
                            })
                        })
                        .collect::<Vec<_>>()
                ))?,
                OutputFormat::Table => {
                    let mut t = table(&["ID", "ADDRESS", "RACK", "STATE", "REPLICAS", "LEADERS"]);
                    for b in &md.brokers {
                        let l = loads.get(&b.id);
                        t.add_row(vec![
                            b.id.to_string(),
                            format!("{}:{}", b.host, b.port),
                            b.rack.clone(),
                            state(b).to_string(),
                            l.map_or(0, |l| l.replicas).to_string(),
                            l.map_or(0, |l| l.leaders).to_string(),
                        ]);
                    }
                    outln!("{t}");
                }
            }
        }
        BrokerCommand::Decommission {
            broker,
            no_wait,
            timeout,
        } => {
            client
                .decommission_broker(BrokerId(broker), true)
                .await
                .with_context(|| format!("cannot decommission broker {broker}"))?;
            outln!("Decommissioning broker {broker}: its replicas move to other brokers.");
            if !no_wait {
                wait_empty(&mut client, broker, Duration::from_secs(timeout)).await?;
            }
        }
        BrokerCommand::Recommission { broker } => {
            client
                .decommission_broker(BrokerId(broker), false)
                .await
                .with_context(|| format!("cannot recommission broker {broker}"))?;
            outln!("Broker {broker} is back in service: new replicas may be placed on it.");
        }
    }
    Ok(())
}

/// Waits until `broker` holds no replica, printing each change of what is left.
async fn wait_empty(client: &mut Client, broker: i32, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let md = client.metadata(vec![]).await?;
        let left = loads(&md).remove(&broker).unwrap_or_default();
        let moving = client.list_partition_reassignments(&[]).await?;
        let moving_off = moving
            .iter()
            .filter(|m| m.removing.contains(&BrokerId(broker)))
            .count();
        if left.replicas == 0 {
            outln!("Broker {broker} holds no replicas: it can be stopped.");
            return Ok(());
        }
        let now = format!(
            "broker {broker}: {} replica(s) left ({} leader), {moving_off} moving off now",
            left.replicas, left.leaders
        );
        if now != last {
            outln!("{now}");
            last = now;
        }
        if Instant::now() >= deadline {
            bail!(
                "broker {broker} still holds replicas after {}s ({last}); the moves go on, `kavka broker list` shows them",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_count_replicas_and_leaders_per_broker() {
        let p = |leader: i32, replicas: &[i32]| v1::PartitionMetadata {
            leader,
            replicas: replicas.to_vec(),
            ..Default::default()
        };
        let b = |id: i32| v1::BrokerInfo {
            id,
            ..Default::default()
        };
        let md = v1::MetadataResponse {
            brokers: vec![b(1), b(2), b(3)],
            topics: vec![v1::TopicMetadata {
                partitions: vec![p(1, &[1, 2]), p(2, &[2, 1]), p(-1, &[2])],
                ..Default::default()
            }],
            ..Default::default()
        };
        let l = loads(&md);
        assert_eq!(
            l[&1],
            Load {
                replicas: 2,
                leaders: 1
            }
        );
        assert_eq!(
            l[&2],
            Load {
                replicas: 3,
                leaders: 1
            }
        );
        assert_eq!(l[&3], Load::default());
    }
}
