//! `kavka cluster balance`: the balancer's plan (`--dry-run`), or the plan carried out
//! by the active controller (`--execute`), optionally under a replication throttle that
//! is lifted again when the balance is done.

use super::{OutputFormat, connect, print_json, table};
use anyhow::{Context, bail};
use clap::Args;
use kavka_client::Client;
use kavka_model::BrokerId;
use kavka_model::admin::BalancePlan;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The dynamic broker configs `--throttle` sets cluster-wide for the balance.
const THROTTLES: [&str; 2] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

#[derive(Args, Debug)]
pub struct BalanceArgs {
    /// Show the moves that would even out replicas and leaders, and change nothing (the
    /// default unless --execute).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,
    /// Carry the plan out: the active controller moves a bounded number of partitions at
    /// a time; waits until nothing is left to move, printing progress.
    #[arg(long)]
    execute: bool,
    /// With --execute: a replication throttle for the moves (as 50MB/s, 512KiB/s or a
    /// byte count per second), set cluster-wide and lifted when the balance is done.
    #[arg(long, requires = "execute", value_parser = parse_rate)]
    throttle: Option<u64>,
    /// With --execute: give up waiting after this many seconds (the moves go on).
    #[arg(long, default_value_t = 3600)]
    timeout: u64,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: OutputFormat,
}

/// `50MB/s`, `512KiB`, `1000`: bytes per second (decimal and binary units, as Kafka and
/// Redpanda tools print them).
pub(super) fn parse_rate(s: &str) -> Result<u64, String> {
    let bad = || format!("expected a rate such as 50MB/s, 512KiB/s or 1000000, got '{s}'");
    let t = s.trim();
    let t = t.strip_suffix("/s").unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (n, unit) = t.split_at(split);
    let n: u64 = n.parse().map_err(|_| bad())?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(scale).filter(|&r| r > 0).ok_or_else(bad)
}

fn ids(list: &[BrokerId]) -> String {
    list.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn print_plan(plan: &BalancePlan, output: OutputFormat) -> anyhow::Result<()> {
    match output {
        OutputFormat::Json => print_json(&json!({
            "moves": plan.moves.iter().map(|m| json!({
                "topic": m.topic,
                "partition": m.partition.0,
                "from": m.from.iter().map(|b| b.0).collect::<Vec<_>>(),
                "to": m.to.iter().map(|b| b.0).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "stuck": plan.stuck.iter().map(|s| json!({
                "topic": s.topic,
                "partition": s.partition.0,
                "reason": s.reason,
            })).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            let mut t = table(&["PARTITION", "FROM", "TO"]);
            for m in &plan.moves {
                t.add_row(vec![
                    format!("{}-{}", m.topic, m.partition),
                    ids(&m.from),
                    ids(&m.to),
                ]);
            }
            outln!("{t}");
            for s in &plan.stuck {
                outln!("{}-{} cannot move: {}", s.topic, s.partition, s.reason);
            }
            outln!("{} move(s) planned.", plan.moves.len());
            Ok(())
        }
    }
}

pub async fn run(bootstrap: &str, args: BalanceArgs) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    if !args.execute {
        let plan = client.balance_cluster(false).await?;
        return print_plan(&plan, args.output);
    }
    if let Some(rate) = args.throttle {
        set_throttle(&mut client, rate).await?;
    }
    let waited = execute(&mut client, Duration::from_secs(args.timeout)).await;
    if args.throttle.is_some() {
        let lifted = lift_throttle(&mut client).await;
        if waited.is_ok() {
            lifted?;
        }
    }
    waited
}

/// Sets the leader and follower replication throttles cluster-wide to `rate` bytes/s.
pub(super) async fn set_throttle(client: &mut Client, rate: u64) -> anyhow::Result<()> {
    let set: BTreeMap<String, String> = THROTTLES
        .iter()
        .map(|k| (k.to_string(), rate.to_string()))
        .collect();
    client
        .alter_cluster_configs(set, vec![])
        .await
        .context("cannot set the replication throttle")?;
    outln!("Replication throttled to {rate} bytes/s.");
    Ok(())
}

/// Removes the cluster-wide replication throttles.
pub(super) async fn lift_throttle(client: &mut Client) -> anyhow::Result<()> {
    client
        .alter_cluster_configs(
            BTreeMap::new(),
            THROTTLES.iter().map(|k| k.to_string()).collect(),
        )
        .await
        .context("cannot lift the replication throttle")?;
    outln!("Replication throttle lifted.");
    Ok(())
}

/// Starts the balance and waits until there is nothing left to move. The request is
/// repeated each round: it is idempotent, and a new active controller (after a
/// failover) learns of it that way.
async fn execute(client: &mut Client, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let first = client.balance_cluster(true).await?;
    outln!("Balancing: {} move(s) planned.", first.moves.len());
    for s in &first.stuck {
        outln!("{}-{} cannot move: {}", s.topic, s.partition, s.reason);
    }
    let mut last = String::new();
    loop {
        // Balanced only on the controller's word: nothing to move, nothing moving, and
        // leadership moved to the preferred replicas in that same request.
        let plan = client.balance_cluster(true).await?;
        if plan.balanced {
            outln!("The cluster is balanced.");
            return Ok(());
        }
        let moving = client.list_partition_reassignments(&[]).await?.len();
        let now = format!(
            "{moving} partition(s) moving, {} more planned",
            plan.moves.len()
        );
        if now != last {
            outln!("{now}");
            last = now;
        }
        if Instant::now() >= deadline {
            bail!(
                "still balancing after {}s ({last}); the moves go on, `kavka partition moves` shows them",
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
    fn rates_parse_as_people_write_them() {
        let table: &[(&str, Option<u64>)] = &[
            ("50MB/s", Some(50_000_000)),
            ("512KiB/s", Some(524_288)),
            ("1GiB", Some(1 << 30)),
            ("1000", Some(1000)),
            ("10 kb/s", Some(10_000)),
            ("0", None),
            ("MB/s", None),
            ("5XB/s", None),
            ("-5MB/s", None),
            ("99999999999999999999GB", None),
        ];
        for (s, want) in table {
            assert_eq!(parse_rate(s).ok(), *want, "{s}");
        }
    }
}
