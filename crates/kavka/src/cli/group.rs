//! `kavka group list|describe|reset-offsets|delete`, as Kafka's kafka-consumer-groups.

use super::{OutputFormat, connect, print_json, table};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use kavka_client::{Client, v1};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List consumer groups with their state.
    List {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Show a group's members, their assignment, and per partition the committed
    /// offset, the log end offset and the lag.
    Describe {
        group: String,
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Move a group's committed offsets (the group must have no active members). A dry
    /// run that prints the new offsets unless --execute is given.
    ResetOffsets(ResetArgs),
    /// Delete groups with no active members, and their committed offsets.
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset", "to_datetime", "shift_by"])))]
pub struct ResetArgs {
    group: String,
    /// A topic, or `topic:0,2` for some of its partitions (repeatable).
    #[arg(long, required_unless_present = "all_topics")]
    topic: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topic")]
    all_topics: bool,
    /// To each partition's log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To each partition's log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To this offset (kept within the partition's offsets).
    #[arg(long)]
    to_offset: Option<i64>,
    /// To the first offset at or after this time (RFC 3339, e.g. 2026-12-01T10:00:00Z).
    #[arg(long)]
    to_datetime: Option<String>,
    /// By N from the committed offset (or the log start where none is committed).
    #[arg(long, allow_negative_numbers = true)]
    shift_by: Option<i64>,
    /// Commit the new offsets (without it, only show them).
    #[arg(long)]
    execute: bool,
    #[arg(long, short = 'o', value_enum, default_value_t)]
    output: OutputFormat,
}

pub async fn run(bootstrap: &str, cmd: GroupCommand) -> anyhow::Result<()> {
    let mut client = connect(bootstrap).await?;
    match cmd {
        GroupCommand::List { output } => {
            let groups = client.list_groups().await?;
            if output == OutputFormat::Json {
                return print_json(&json!(
                    groups
                        .iter()
                        .map(|g| json!({"group_id": g.group_id, "state": g.state, "protocol_type": g.protocol_type}))
                        .collect::<Vec<_>>()
                ));
            }
            let mut t = table(&["GROUP", "STATE", "PROTOCOL-TYPE"]);
            for g in &groups {
                t.add_row(vec![
                    g.group_id.clone(),
                    g.state.clone(),
                    g.protocol_type.clone(),
                ]);
            }
            outln!("{t}");
            Ok(())
        }
        GroupCommand::Describe { group, output } => describe(&mut client, &group, output).await,
        GroupCommand::ResetOffsets(args) => reset(&mut client, args).await,
        GroupCommand::Delete { groups } => {
            let mut failed = false;
            for g in groups {
                match client.delete_group(&g).await {
                    Ok(()) => outln!("Deleted group {g}."),
                    Err(e) => {
                        eprintln!("error: cannot delete group '{g}': {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                bail!("some groups were not deleted");
            }
            Ok(())
        }
    }
}

async fn describe(client: &mut Client, group: &str, output: OutputFormat) -> anyhow::Result<()> {
    let g = client.group_lag(group).await?;
    if g.is_unknown() {
        bail!("group '{group}' does not exist");
    }
    let d = &g.description;
    let rows = &g.rows;
    if output == OutputFormat::Json {
        return print_json(&json!({
            "group_id": d.group_id,
            "state": d.state,
            "protocol_type": d.protocol_type,
            "protocol": d.protocol,
            "generation_id": d.generation_id,
            "coordinator": d.coordinator,
            "members": d.members.iter().map(|m| json!({
                "member_id": m.member_id,
                "group_instance_id": (!m.group_instance_id.is_empty()).then_some(&m.group_instance_id),
                "client_id": m.client_id,
                "client_host": m.client_host,
                "assignment": m.assignment.iter().map(|a| json!({"topic": a.topic, "partitions": a.partitions})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "partitions": rows.iter().map(|r| json!({
                "topic": r.topic,
                "partition": r.partition,
                "committed_offset": r.committed,
                "log_end_offset": r.log_end,
                "lag": r.lag(),
                "member_id": r.member.map(|i| &d.members[i].member_id),
            })).collect::<Vec<_>>(),
        }));
    }
    outln!(
        "Group {} is {} (protocol {} {}, generation {}, coordinator {}), {} member(s).\n",
        d.group_id,
        d.state,
        if d.protocol_type.is_empty() {
            "-"
        } else {
            &d.protocol_type
        },
        if d.protocol.is_empty() {
            "-"
        } else {
            &d.protocol
        },
        d.generation_id,
        d.coordinator,
        d.members.len()
    );
    let dash = || "-".to_string();
    let mut t = table(&[
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST",
        "CLIENT-ID",
    ]);
    for r in rows {
        let m = r.member.map(|i| &d.members[i]);
        t.add_row(vec![
            r.topic.clone(),
            r.partition.to_string(),
            r.committed.map_or_else(dash, |c| c.to_string()),
            r.log_end.map_or_else(dash, |e| e.to_string()),
            r.lag().map_or_else(dash, |l| l.to_string()),
            m.map_or_else(dash, |m| m.member_id.clone()),
            m.map_or_else(dash, |m| m.client_host.clone()),
            m.map_or_else(dash, |m| m.client_id.clone()),
        ]);
    }
    outln!("{t}");
    Ok(())
}

/// `topic` or `topic:0,2`.
fn parse_topic(spec: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    match spec.split_once(':') {
        None => Ok((spec.to_string(), None)),
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| p.trim().parse::<i32>())
                .collect::<Result<Vec<_>, _>>()
                .with_context(|| {
                    format!("invalid --topic '{spec}': expected topic or topic:0,1,2")
                })?;
            Ok((t.to_string(), Some(parts)))
        }
    }
}

async fn reset(client: &mut Client, a: ResetArgs) -> anyhow::Result<()> {
    let d = client.describe_group(&a.group).await?;
    if !d.members.is_empty() {
        bail!(
            "group '{}' has {} active member(s) ({}): offsets can only be reset while the group is inactive; stop its consumers first",
            a.group,
            d.members.len(),
            d.state
        );
    }
    let committed: BTreeMap<(String, i32), i64> = d
        .offsets
        .iter()
        .map(|o| ((o.topic.clone(), o.partition), o.offset))
        .collect();
    let mut targets: Vec<(String, i32)> = Vec::new();
    if a.all_topics {
        targets.extend(committed.keys().cloned());
    }
    for spec in &a.topic {
        let (topic, parts) = parse_topic(spec)?;
        let parts = match parts {
            Some(p) => p,
            None => {
                let n = client
                    .partition_count(&topic)
                    .await
                    .with_context(|| format!("cannot read topic '{topic}'"))?;
                (0..n as i32).collect()
            }
        };
        targets.extend(parts.into_iter().map(|p| (topic.clone(), p)));
    }
    let at_ms = match &a.to_datetime {
        None => None,
        Some(s) => Some(
            humantime::parse_rfc3339_weak(s)
                .with_context(|| {
                    format!(
                        "invalid --to-datetime '{s}': expected RFC 3339, e.g. 2026-12-01T10:00:00Z"
                    )
                })?
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
        ),
    };
    let mut plan = Vec::with_capacity(targets.len());
    for (topic, p) in targets {
        let (start, _) = client
            .list_offset(&topic, p, -2)
            .await
            .with_context(|| format!("cannot read the offsets of {topic}-{p}"))?;
        let (end, _) = client.list_offset(&topic, p, -1).await?;
        let new = if a.to_earliest {
            start
        } else if a.to_latest {
            end
        } else if let Some(o) = a.to_offset {
            o
        } else if let Some(ts) = at_ms {
            match client.list_offset(&topic, p, ts).await?.0 {
                -1 => end,
                o => o,
            }
        } else {
            let base = committed
                .get(&(topic.clone(), p))
                .copied()
                .filter(|o| *o >= 0)
                .unwrap_or(start);
            base.saturating_add(a.shift_by.unwrap_or(0))
        };
        plan.push((topic, p, new.clamp(start, end)));
    }
    if a.execute {
        let results = client
            .commit_group_offsets(
                &a.group,
                plan.iter()
                    .map(|(t, p, o)| v1::OffsetToCommit {
                        topic: t.clone(),
                        partition: *p,
                        offset: *o,
                        leader_epoch: -1,
                        metadata: String::new(),
                    })
                    .collect(),
            )
            .await?;
        if let Some(bad) = results.iter().find(|r| r.error.is_some()) {
            let e = bad
                .error
                .as_ref()
                .map(|e| format!("{}: {}", e.name, e.message))
                .unwrap_or_default();
            bail!("cannot commit {}-{}: {e}", bad.topic, bad.partition);
        }
    }
    if a.output == OutputFormat::Json {
        return print_json(&json!({
            "group_id": a.group,
            "executed": a.execute,
            "offsets": plan.iter().map(|(t, p, o)| json!({"topic": t, "partition": p, "new_offset": o})).collect::<Vec<_>>(),
        }));
    }
    let mut t = table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    for (topic, p, o) in &plan {
        t.add_row(vec![
            a.group.clone(),
            topic.clone(),
            p.to_string(),
            o.to_string(),
        ]);
    }
    outln!("{t}");
    if !a.execute {
        outln!("\nDry run: nothing was committed. Add --execute to commit these offsets.");
    }
    Ok(())
}
