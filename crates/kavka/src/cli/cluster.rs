//! `kavka quorum status|describe|add-voter|remove-voter`, `kavka cluster describe` and
//! `kavka health`.

use super::{OutputFormat, print_json, table};
use anyhow::Context;
use clap::Subcommand;
use kavka_proto::v1::{self, controller_service_client::ControllerServiceClient};
use serde_json::json;
use std::collections::BTreeMap;

#[derive(Subcommand, Debug)]
pub enum QuorumCommand {
    /// Voters, the active controller, the Raft term, each voter's log end and lag.
    Status {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// KIP-853's describe: voters (id, directory id, address, log end, lag, last caught
    /// up), observers (controllers being added), the active controller and the term.
    Describe {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Grow the controller quorum by one voter: the node (started with the controller
    /// role and --controller-listen ADDRESS) catches up as an observer, then joins the
    /// voters (one change at a time). Kafka's AddRaftVoter.
    AddVoter {
        /// The node id of the new voter.
        id: u64,
        /// Its controller listener, host:port, as the other controllers reach it.
        #[arg(long)]
        address: String,
        /// Its directory id (meta.properties' directory.id); asked from the node when
        /// not given.
        #[arg(long)]
        directory_id: Option<String>,
        /// How long to wait for it to catch up and the change to commit.
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u32,
    },
    /// Shrink the controller quorum by one voter. Kafka's RemoveRaftVoter.
    RemoveVoter {
        /// The node id of the voter.
        id: u64,
        /// Remove it only if it has this directory id (as `quorum describe` shows).
        #[arg(long)]
        directory_id: Option<String>,
        #[arg(long, default_value_t = 30_000)]
        timeout_ms: u32,
    },
    /// Write a new random controller secret to FILE (mode 0600) for
    /// `--controller-secret-file`; a FILE that exists is kept as it is. Run once, then
    /// give every voter and broker the same file.
    CreateSecret {
        /// Where to write the secret.
        file: std::path::PathBuf,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Brokers (address, rack, fenced, heartbeat age, metadata offset) and topics.
    Describe {
        #[arg(long, short = 'o', value_enum, default_value_t)]
        output: OutputFormat,
    },
    /// Even out replicas and preferred leaders over the brokers with as few partition
    /// moves as it can: the plan (--dry-run), or carried out (--execute).
    Balance(super::balance::BalanceArgs),
    /// Live view: active controller and term, brokers, every partition's leader, epoch
    /// and ISR, and a timestamped line for each change. Full-screen on a terminal.
    Watch {
        /// Print only the event lines (the default when stdout is not a terminal).
        #[arg(long)]
        plain: bool,
    },
}

/// Writes a new random secret to `file` (mode 0600, never over an existing file);
/// answers whether it wrote one. A file that exists is kept but must hold a valid secret.
pub fn create_secret(file: &std::path::Path) -> anyhow::Result<bool> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            kavka_controller::raft::peers::ControllerSecret::parse(&text)
                .map_err(|why| anyhow::anyhow!("{} exists but {why}", file.display()))?;
            return Ok(false);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot create {}", file.display())),
    };
    // Two v4 UUIDs: 244 random bits, printable (it travels in a gRPC header).
    let secret = format!(
        "{}{}\n",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    f.write_all(secret.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(true)
}

/// Each controller call's deadline: a frozen node (its port still accepts connections)
/// must cost the CLI this long at most, not hang it; the next address is tried then.
const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3);

/// A client for the node at `addr` whose connect and calls are bounded by
/// [`CALL_TIMEOUT`].
async fn controller_at(
    addr: &str,
) -> anyhow::Result<ControllerServiceClient<tonic::transport::Channel>> {
    let endpoint = super::endpoint(addr)?
        .connect_timeout(CALL_TIMEOUT)
        .timeout(CALL_TIMEOUT);
    let channel = tokio::time::timeout(CALL_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| anyhow::anyhow!("{addr}: no connection within {CALL_TIMEOUT:?}"))?
        .with_context(|| format!("{addr}: cannot connect"))?;
    Ok(ControllerServiceClient::new(channel))
}

/// Quorum status from the first bootstrap node that answers, then from the active
/// controller (which alone knows its followers' progress and the broker sessions).
async fn status(bootstrap: &str) -> anyhow::Result<v1::QuorumStatusResponse> {
    let mut failures = Vec::new();
    // A node that knows no active controller (one removed from the voters, or cut off)
    // is answered only when no other node knows better.
    let mut leaderless = None;
    for addr in kavka_client::parse_bootstrap(bootstrap)? {
        match status_from(&addr).await {
            Ok(s) if s.leader_id >= 0 => return Ok(s),
            Ok(s) => {
                leaderless.get_or_insert(s);
            }
            Err(e) => failures.push(format!("{e:#}")),
        }
    }
    if let Some(s) = leaderless {
        return Ok(s);
    }
    anyhow::bail!(
        "no bootstrap node answered quorum status: {}",
        failures.join("; ")
    )
}

async fn status_from(addr: &str) -> anyhow::Result<v1::QuorumStatusResponse> {
    let mut c = controller_at(addr).await?;
    let s = tokio::time::timeout(
        CALL_TIMEOUT,
        c.quorum_status(v1::QuorumStatusRequest { from_leader: false }),
    )
    .await
    .map_err(|_| anyhow::anyhow!("{addr}: no answer within {CALL_TIMEOUT:?}"))?
    .map_err(|e| anyhow::anyhow!("{addr}: {} (is it a controller?)", e.message()))?
    .into_inner();
    if s.leader_id >= 0
        && s.leader_id != s.node_id
        && let Some(v) = s.voters.iter().find(|v| v.id == s.leader_id)
    {
        let direct = async {
            let mut leader = controller_at(&v.addr).await.ok()?;
            let req = v1::QuorumStatusRequest { from_leader: false };
            leader.quorum_status(req).await.ok()
        };
        // The leader's address may be one only its network knows: then this node asks.
        let through = async {
            let req = v1::QuorumStatusRequest { from_leader: true };
            c.quorum_status(req).await.ok()
        };
        if let Ok(Some(r)) = tokio::time::timeout(CALL_TIMEOUT, direct).await {
            return Ok(r.into_inner());
        }
        if let Ok(Some(r)) = tokio::time::timeout(CALL_TIMEOUT, through).await {
            return Ok(r.into_inner());
        }
    }
    Ok(s)
}

/// A voter change, sent to the bootstrap nodes in turn until one answers (any
/// controller forwards it to the active one); a refusal is final.
async fn change_voters(
    bootstrap: &str,
    add: Option<v1::AddRaftVoterRequest>,
    remove: Option<v1::RemoveRaftVoterRequest>,
    timeout_ms: u32,
) -> anyhow::Result<v1::RaftVoterChangeResponse> {
    let deadline = std::time::Duration::from_millis(u64::from(timeout_ms)) + CALL_TIMEOUT;
    let addrs = kavka_client::parse_bootstrap(bootstrap)?;
    // While the quorum elects an active controller (NOT_CONTROLLER without a hint),
    // every node is asked again, for a bounded time.
    let retry_until = std::time::Instant::now() + NO_CONTROLLER_RETRY;
    let mut failures = Vec::new();
    loop {
        match change_voters_once(&addrs, &add, &remove, deadline, &mut failures).await? {
            Some(r) => return Ok(r),
            None if std::time::Instant::now() < retry_until => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            None => anyhow::bail!(
                "no controller among the bootstrap nodes answered: {}",
                failures.join("; ")
            ),
        }
    }
}

/// How long a voter change keeps looking for an active controller.
const NO_CONTROLLER_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// One pass over the bootstrap nodes: the answer, a final refusal (`Err`), or `None`
/// when none reached an active controller.
async fn change_voters_once(
    addrs: &[String],
    add: &Option<v1::AddRaftVoterRequest>,
    remove: &Option<v1::RemoveRaftVoterRequest>,
    deadline: std::time::Duration,
    failures: &mut Vec<String>,
) -> anyhow::Result<Option<v1::RaftVoterChangeResponse>> {
    failures.clear();
    for addr in addrs {
        let endpoint = super::endpoint(addr)?
            .connect_timeout(CALL_TIMEOUT)
            .timeout(deadline);
        let channel = match tokio::time::timeout(CALL_TIMEOUT, endpoint.connect()).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => {
                failures.push(format!("{addr}: cannot connect: {e}"));
                continue;
            }
            Err(_) => {
                failures.push(format!("{addr}: no connection within {CALL_TIMEOUT:?}"));
                continue;
            }
        };
        let mut c = ControllerServiceClient::with_interceptor(channel, super::credentials());
        let r = match (add, remove) {
            (Some(a), _) => c.add_raft_voter(a.clone()).await,
            (None, Some(r)) => c.remove_raft_voter(r.clone()).await,
            (None, None) => anyhow::bail!("no voter change asked"),
        };
        match r {
            Ok(r) => return Ok(Some(r.into_inner())),
            Err(s)
                if s.code() == tonic::Code::Unavailable
                    || s.code() == tonic::Code::Unimplemented =>
            {
                failures.push(format!("{addr}: {}", s.message()));
            }
            Err(s) => {
                let e = kavka_proto::conv::from_status(&s);
                if e.code == kavka_model::ErrorCode::NotController {
                    failures.push(format!("{addr}: {}", e.message));
                    continue;
                }
                anyhow::bail!("{}: {}", e.code.name(), e.message);
            }
        }
    }
    Ok(None)
}

pub async fn quorum(bootstrap: &str, cmd: QuorumCommand) -> anyhow::Result<()> {
    let (output, describe) = match cmd {
        QuorumCommand::Status { output } => (output, false),
        QuorumCommand::Describe { output } => (output, true),
        QuorumCommand::AddVoter {
            id,
            address,
            directory_id,
            timeout_ms,
        } => {
            let req = v1::AddRaftVoterRequest {
                voter_id: i64::try_from(id).context("voter id out of range")?,
                address,
                directory_id: directory_id.unwrap_or_default(),
                timeout_ms,
            };
            let r = change_voters(bootstrap, Some(req), None, timeout_ms).await?;
            outln!(
                "Added voter {id} (membership committed at metadata offset {})",
                r.membership_offset
            );
            return Ok(());
        }
        QuorumCommand::RemoveVoter {
            id,
            directory_id,
            timeout_ms,
        } => {
            let req = v1::RemoveRaftVoterRequest {
                voter_id: i64::try_from(id).context("voter id out of range")?,
                directory_id: directory_id.unwrap_or_default(),
                timeout_ms,
            };
            let r = change_voters(bootstrap, None, Some(req), timeout_ms).await?;
            outln!(
                "Removed voter {id} (membership committed at metadata offset {})",
                r.membership_offset
            );
            return Ok(());
        }
        QuorumCommand::CreateSecret { file } => {
            let created = create_secret(&file)?;
            outln!(
                "{} {}",
                if created {
                    "Created the controller secret"
                } else {
                    "Kept the existing controller secret"
                },
                file.display()
            );
            return Ok(());
        }
    };
    let s = status(bootstrap).await?;
    if describe {
        return print_describe(&s, output);
    }
    match output {
        OutputFormat::Json => print_json(&json!({
            "cluster_id": s.cluster_id,
            "leader_id": s.leader_id,
            "term": s.term,
            "log_end": s.log_end,
            "committed": s.committed,
            "applied": s.applied,
            "image_digest": s.image_digest,
            "voters": s.voters.iter().map(|v| json!({"id": v.id, "addr": v.addr, "log_end": v.log_end, "lag": v.lag, "leader": v.id == s.leader_id})).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            outln!(
                "Cluster {}  active controller: {}  term: {}  log end: {}",
                s.cluster_id,
                if s.leader_id < 0 {
                    "none".to_string()
                } else {
                    s.leader_id.to_string()
                },
                s.term,
                s.log_end
            );
            let mut t = table(&["VOTER", "ADDRESS", "ROLE", "LOG-END", "LAG"]);
            for v in &s.voters {
                let role = if v.id == s.leader_id {
                    "leader"
                } else {
                    "follower"
                };
                let known = |x: i64| {
                    if x < 0 {
                        "?".to_string()
                    } else {
                        x.to_string()
                    }
                };
                t.add_row(vec![
                    v.id.to_string(),
                    v.addr.clone(),
                    role.to_string(),
                    known(v.log_end),
                    known(v.lag),
                ]);
            }
            outln!("{t}");
        }
    }
    Ok(())
}

pub async fn cluster(bootstrap: &str, cmd: ClusterCommand) -> anyhow::Result<()> {
    let output = match cmd {
        ClusterCommand::Describe { output } => output,
        ClusterCommand::Watch { plain } => return super::watch::run(bootstrap, plain).await,
        ClusterCommand::Balance(args) => return super::balance::run(bootstrap, args).await,
    };
    let mut client = super::connect(bootstrap).await?;
    let md = client.metadata(vec![]).await?;
    // Sessions come from the active controller; a broker-only bootstrap has none to ask.
    let sessions: BTreeMap<i32, v1::BrokerSessionStatus> = match status(bootstrap).await {
        Ok(s) => s.sessions.into_iter().map(|b| (b.broker_id, b)).collect(),
        Err(_) => BTreeMap::new(),
    };
    match output {
        OutputFormat::Json => print_json(&json!({
            "cluster_id": md.cluster_id,
            "metadata_offset": md.metadata_offset,
            "brokers": md.brokers.iter().map(|b| {
                let s = sessions.get(&b.id);
                json!({"id": b.id, "host": b.host, "port": b.port, "rack": b.rack, "fenced": b.fenced,
                       "last_heartbeat_age_ms": s.map(|s| s.last_heartbeat_age_ms), "metadata_offset": s.map(|s| s.metadata_offset)})
            }).collect::<Vec<_>>(),
            "topics": md.topics.iter().map(|t| json!({"name": t.name, "topic_id": t.topic_id,
                "partitions": t.partitions.iter().map(|p| json!({"partition": p.partition, "leader": p.leader, "leader_epoch": p.leader_epoch, "replicas": p.replicas, "isr": p.isr})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
        }))?,
        OutputFormat::Table => {
            outln!(
                "Cluster {}  metadata offset {}",
                md.cluster_id,
                md.metadata_offset
            );
            let mut t = table(&[
                "BROKER",
                "ADDRESS",
                "RACK",
                "STATE",
                "HEARTBEAT",
                "METADATA-OFFSET",
            ]);
            for b in &md.brokers {
                let s = sessions.get(&b.id);
                t.add_row(vec![
                    b.id.to_string(),
                    format!("{}:{}", b.host, b.port),
                    if b.rack.is_empty() {
                        "-".into()
                    } else {
                        b.rack.clone()
                    },
                    if b.fenced {
                        "fenced".into()
                    } else {
                        "unfenced".to_string()
                    },
                    s.map_or("-".into(), |s| {
                        format!("{} ms ago", s.last_heartbeat_age_ms)
                    }),
                    s.map_or("-".into(), |s| s.metadata_offset.to_string()),
                ]);
            }
            outln!("{t}\n");
            let mut t = table(&["TOPIC", "PARTITION", "LEADER", "EPOCH", "REPLICAS", "ISR"]);
            for topic in &md.topics {
                for p in &topic.partitions {
                    t.add_row(vec![
                        topic.name.clone(),
                        p.partition.to_string(),
                        p.leader.to_string(),
                        p.leader_epoch.to_string(),
                        format!("{:?}", p.replicas),
                        format!("{:?}", p.isr),
                    ]);
                }
            }
            outln!("{t}");
        }
    }
    Ok(())
}

/// `kavka health`: exits 0 when the node serves (a broker once unfenced; a controller-only
/// node once its quorum runs). Container health checks call it.
pub async fn health(bootstrap: &str) -> anyhow::Result<()> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
    let addr = kavka_client::parse_bootstrap(bootstrap)?
        .into_iter()
        .next()
        .context("no address to check")?;
    let timeout = std::time::Duration::from_secs(3);
    let channel = super::endpoint(&addr)?
        .connect_timeout(timeout)
        .timeout(timeout)
        .connect()
        .await
        .with_context(|| format!("{addr} does not answer"))?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut last = String::new();
    for service in ["kavka.v1.AdminService", "kavka.v1.ControllerService"] {
        match client
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
        {
            Ok(r) if r.get_ref().status == ServingStatus::Serving as i32 => {
                outln!("{addr}: {service} serving");
                return Ok(());
            }
            Ok(_) => {
                anyhow::bail!(
                    "{addr}: {service} is not serving yet (a broker serves once the controller quorum has unfenced it)"
                )
            }
            Err(s) if s.code() == tonic::Code::NotFound => last = s.message().to_string(),
            Err(s) => anyhow::bail!("{addr}: health check failed: {}", s.message()),
        }
    }
    anyhow::bail!("{addr}: serves neither brokers nor controllers ({last})")
}

/// `kavka quorum describe`: KIP-853's DescribeQuorum, from the active controller.
fn print_describe(s: &v1::QuorumStatusResponse, output: OutputFormat) -> anyhow::Result<()> {
    let member = |v: &v1::VoterStatus| {
        json!({
            "id": v.id,
            "directory_id": (!v.directory_id.is_empty()).then_some(&v.directory_id),
            "address": v.addr,
            "log_end": v.log_end,
            "lag": v.lag,
            "last_caught_up_ms_ago": v.last_caught_up_ms_ago,
        })
    };
    match output {
        OutputFormat::Json => print_json(&json!({
            "cluster_id": s.cluster_id,
            "leader_id": s.leader_id,
            "epoch": s.term,
            "high_watermark": s.committed,
            "membership_offset": s.membership_offset,
            "voters": s.voters.iter().map(member).collect::<Vec<_>>(),
            "observers": s.observers.iter().map(member).collect::<Vec<_>>(),
        })),
        OutputFormat::Table => {
            outln!(
                "Cluster {}  leader: {}  epoch: {}  high watermark: {}  membership at offset {}",
                s.cluster_id,
                if s.leader_id < 0 {
                    "none".to_string()
                } else {
                    s.leader_id.to_string()
                },
                s.term,
                s.committed,
                s.membership_offset
            );
            let known = |x: i64| {
                if x < 0 {
                    "?".to_string()
                } else {
                    x.to_string()
                }
            };
            let mut t = table(&[
                "ID",
                "DIRECTORY-ID",
                "ADDRESS",
                "ROLE",
                "LOG-END",
                "LAG",
                "CAUGHT-UP-MS-AGO",
            ]);
            let rows = s
                .voters
                .iter()
                .map(|v| {
                    (
                        v,
                        if v.id == s.leader_id {
                            "leader"
                        } else {
                            "voter"
                        },
                    )
                })
                .chain(s.observers.iter().map(|v| (v, "observer")));
            for (v, role) in rows {
                t.add_row(vec![
                    v.id.to_string(),
                    if v.directory_id.is_empty() {
                        "-".to_string()
                    } else {
                        v.directory_id.clone()
                    },
                    v.addr.clone(),
                    role.to_string(),
                    known(v.log_end),
                    known(v.lag),
                    known(v.last_caught_up_ms_ago),
                ]);
            }
            outln!("{t}");
            Ok(())
        }
    }
}
