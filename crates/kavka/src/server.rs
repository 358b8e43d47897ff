//! `kavka server` and `kavka dev`: configuration (TOML file < KAVKA_* env < flags), the
//! data-dir lock, and the gRPC server with health and reflection.

use crate::meta_properties;
use anyhow::{Context, bail};
use clap::Args;
use kavka_broker::controllers::Controllers;
use kavka_broker::group::{GroupConfig, GroupCoordinator};
use kavka_broker::producer_ids::ProducerIdManager;
use kavka_broker::service::{AdminService, BrokerService, GroupService};
use kavka_broker::{BrokerConfig, ControllerSession, ReplicaManager};
use kavka_controller::control::topics::TopicDefaults;
use kavka_controller::controller::{Controller, ControllerConfig};
use kavka_controller::raft::peers::ControllerSecret;
use kavka_controller::service::ControllerService;
use kavka_controller::{Quorum, QuorumConfig, VoterNode};
use kavka_kafka::{KafkaConfig, KafkaListener, parse_listeners};
use kavka_log::FlushPolicy;
use kavka_model::BrokerId;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;

/// The controller's Raft store, inside the data dir (Kafka: `__cluster_metadata-0`).
const CONTROLLER_DIR: &str = "__cluster_metadata";

/// Longest a stopping broker waits for its leaderships to move away.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a starting broker waits to be unfenced before it says so.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a stopping node waits for open requests and connections to finish.
const SHUTDOWN_DRAIN: std::time::Duration = std::time::Duration::from_secs(3);

#[derive(Args, Debug, Default)]
pub struct ServerArgs {
    /// TOML config file (keys as in `kavka.example.toml`).
    #[arg(long, short = 'c', env = "KAVKA_CONFIG")]
    config: Option<PathBuf>,
    /// This node's id (Kafka's node.id).
    #[arg(long, env = "KAVKA_NODE_ID")]
    node_id: Option<i32>,
    /// Where partition logs live (Kafka's log.dirs).
    #[arg(long, env = "KAVKA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// gRPC listen address.
    #[arg(long, env = "KAVKA_LISTEN")]
    listen: Option<String>,
    /// Host clients are told to connect to (defaults to the listen host).
    #[arg(long, env = "KAVKA_ADVERTISED_HOST")]
    advertised_host: Option<String>,
    /// A second gRPC listener for clients outside the cluster's network, e.g. the host
    /// of a docker compose cluster (Kafka's EXTERNAL listener).
    #[arg(long, env = "KAVKA_EXTERNAL_LISTEN")]
    external_listen: Option<String>,
    /// host:port that clients of the external listener are told to connect to
    /// (default: the advertised host and the external listen port).
    #[arg(long, env = "KAVKA_EXTERNAL_ADVERTISED_ADDRESS")]
    external_advertised_address: Option<String>,
    /// Kafka wire-protocol listeners, NAME://host:port,... (Kafka's `listeners`);
    /// default PLAINTEXT://0.0.0.0:9092, empty for none.
    #[arg(long, env = "KAVKA_KAFKA_LISTENERS")]
    kafka_listeners: Option<String>,
    /// What each Kafka listener tells clients to connect to, NAME://host:port,...
    /// (Kafka's `advertised.listeners`); default: the advertised host and the bound port.
    #[arg(long, env = "KAVKA_KAFKA_ADVERTISED_LISTENERS")]
    kafka_advertised_listeners: Option<String>,
    /// Close Kafka connections idle this long; a started request must arrive whole
    /// within it too (Kafka's connections.max.idle.ms).
    #[arg(long, env = "KAVKA_CONNECTIONS_MAX_IDLE_MS")]
    connections_max_idle_ms: Option<u64>,
    /// Largest Kafka request accepted (Kafka's socket.request.max.bytes).
    #[arg(long, env = "KAVKA_SOCKET_REQUEST_MAX_BYTES")]
    socket_request_max_bytes: Option<usize>,
    /// Durability: `replicated` (page cache, Kafka's default) or `fsync`.
    #[arg(long, env = "KAVKA_LOG_FLUSH")]
    log_flush: Option<String>,
    /// Partitions of a topic created without a count (Kafka's num.partitions).
    #[arg(long, env = "KAVKA_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// Create a topic that a client's Metadata request (or produce) names and that does
    /// not exist, with the defaults (Kafka's auto.create.topics.enable; default true).
    #[arg(long, env = "KAVKA_AUTO_CREATE_TOPICS_ENABLE", value_name = "BOOL")]
    auto_create_topics_enable: Option<bool>,
    /// How often retention runs (Kafka's log.retention.check.interval.ms).
    #[arg(long, env = "KAVKA_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<u64>,
    /// What this node runs: controller, broker, or controller,broker (Kafka's process.roles).
    #[arg(long, env = "KAVKA_ROLES")]
    roles: Option<String>,
    /// The controller quorum, id@host:port,... with each voter's controller listener
    /// (Kafka's controller.quorum.voters); default: this node alone.
    #[arg(long, env = "KAVKA_CONTROLLER_VOTERS")]
    controller_voters: Option<String>,
    /// Where a controller serves the quorum's Raft traffic and broker sessions, on a port
    /// of its own (Kafka's CONTROLLER listener); it may be bound to a private interface.
    /// Default: the listen address's host and the port of this node's voter entry (alone:
    /// the listen port + 1). The client port never serves Raft.
    #[arg(long, env = "KAVKA_CONTROLLER_LISTEN")]
    controller_listen: Option<String>,
    /// This broker's rack (Kafka's broker.rack), for replica placement.
    #[arg(long, env = "KAVKA_RACK")]
    rack: Option<String>,
    /// Broker heartbeat interval to the active controller.
    #[arg(long, env = "KAVKA_HEARTBEAT_INTERVAL_MS")]
    heartbeat_interval_ms: Option<u64>,
    /// A broker without a heartbeat for this long is fenced.
    #[arg(long, env = "KAVKA_SESSION_TIMEOUT_MS")]
    session_timeout_ms: Option<u64>,
    /// Replication factor of topics created without one (capped at the live brokers).
    #[arg(long, env = "KAVKA_DEFAULT_REPLICATION_FACTOR")]
    default_replication_factor: Option<i32>,
    /// A follower not caught up with its leader for this long leaves the ISR.
    #[arg(long, env = "KAVKA_REPLICA_LAG_TIME_MAX_MS")]
    replica_lag_time_max_ms: Option<u64>,
    /// The most one consumer fetch answers, whatever it asks (Kafka's fetch.max.bytes;
    /// default 55 MiB; at least one batch goes anyway).
    #[arg(long, env = "KAVKA_FETCH_MAX_BYTES")]
    fetch_max_bytes: Option<usize>,
    /// The most one replica fetch answers (Kafka's replica.fetch.response.max.bytes;
    /// default 10 MiB).
    #[arg(long, env = "KAVKA_REPLICA_FETCH_RESPONSE_MAX_BYTES")]
    replica_fetch_response_max_bytes: Option<usize>,
    /// A file holding the controller quorum's shared secret: every Raft call between
    /// voters presents it, and calls without it are refused (set the same file on every
    /// voter; without one, only the voter set is checked).
    #[arg(long, env = "KAVKA_CONTROLLER_SECRET_FILE")]
    controller_secret_file: Option<PathBuf>,
    /// Forget an idempotent producer this long after its last batch (Kafka's
    /// producer.id.expiration.ms; default a day).
    #[arg(long, env = "KAVKA_PRODUCER_ID_EXPIRATION_MS")]
    producer_id_expiration_ms: Option<u64>,
    /// How often leadership moves back to preferred replicas; 0 turns it off (Kafka's
    /// leader.imbalance.check.interval and auto.leader.rebalance.enable).
    #[arg(long, env = "KAVKA_LEADER_IMBALANCE_CHECK_INTERVAL_MS")]
    leader_imbalance_check_interval_ms: Option<u64>,
    /// Partitions of __consumer_offsets, fixed when it is first created.
    #[arg(long, env = "KAVKA_OFFSETS_TOPIC_NUM_PARTITIONS")]
    offsets_topic_num_partitions: Option<i32>,
    /// Replication factor of __consumer_offsets (capped at the registered brokers).
    #[arg(long, env = "KAVKA_OFFSETS_TOPIC_REPLICATION_FACTOR")]
    offsets_topic_replication_factor: Option<i32>,
    /// How long the first rebalance of an empty group waits for more members.
    #[arg(long, env = "KAVKA_GROUP_INITIAL_REBALANCE_DELAY_MS")]
    group_initial_rebalance_delay_ms: Option<u64>,
    /// Smallest session.timeout.ms a group member may ask for.
    #[arg(long, env = "KAVKA_GROUP_MIN_SESSION_TIMEOUT_MS")]
    group_min_session_timeout_ms: Option<i32>,
    /// KIP-848 groups: a member silent this long is removed.
    #[arg(long, env = "KAVKA_GROUP_CONSUMER_SESSION_TIMEOUT_MS")]
    group_consumer_session_timeout_ms: Option<u64>,
    /// KIP-848 groups: how often members are asked to heartbeat.
    #[arg(long, env = "KAVKA_GROUP_CONSUMER_HEARTBEAT_INTERVAL_MS")]
    group_consumer_heartbeat_interval_ms: Option<i32>,
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Data directory.
    #[arg(long, default_value = "./kavka-data")]
    data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:9093")]
    listen: String,
    /// Kafka wire-protocol listen address (node N of --nodes listens 100 * (N - 1)
    /// ports higher).
    #[arg(long, default_value = "127.0.0.1:9092")]
    kafka_listen: String,
    /// Durability: replicated or fsync.
    #[arg(long, default_value = "replicated")]
    log_flush: String,
    /// Run this many nodes (each controller and broker) as local processes, on
    /// consecutive ports from --listen's, with data in <data-dir>/node-<id>.
    #[arg(long, default_value_t = 1)]
    nodes: u16,
}

/// The config file: every key optional; flags and environment override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<i32>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    advertised_host: Option<String>,
    external_listen: Option<String>,
    external_advertised_address: Option<String>,
    kafka_listeners: Option<String>,
    kafka_advertised_listeners: Option<String>,
    connections_max_idle_ms: Option<u64>,
    socket_request_max_bytes: Option<usize>,
    log_flush: Option<String>,
    num_partitions: Option<i32>,
    auto_create_topics_enable: Option<bool>,
    log_retention_check_interval_ms: Option<u64>,
    roles: Option<String>,
    controller_voters: Option<String>,
    controller_listen: Option<String>,
    rack: Option<String>,
    heartbeat_interval_ms: Option<u64>,
    session_timeout_ms: Option<u64>,
    default_replication_factor: Option<i32>,
    replica_lag_time_max_ms: Option<u64>,
    fetch_max_bytes: Option<usize>,
    replica_fetch_response_max_bytes: Option<usize>,
    producer_id_expiration_ms: Option<u64>,
    controller_secret_file: Option<PathBuf>,
    leader_imbalance_check_interval_ms: Option<u64>,
    offsets_topic_num_partitions: Option<i32>,
    offsets_topic_replication_factor: Option<i32>,
    group_initial_rebalance_delay_ms: Option<u64>,
    group_min_session_timeout_ms: Option<i32>,
    group_consumer_session_timeout_ms: Option<u64>,
    group_consumer_heartbeat_interval_ms: Option<i32>,
}

/// The resolved settings of a node.
#[derive(Debug)]
pub struct Settings {
    pub broker: BrokerConfig,
    pub listen: SocketAddr,
    pub external_listen: Option<SocketAddr>,
    /// Kafka listeners to bind, and what each advertises (port 0: the bound port).
    pub kafka_listeners: Vec<KafkaListener>,
    pub kafka_advertised: Vec<KafkaListener>,
    pub kafka: KafkaConfig,
    pub controller: bool,
    pub broker_role: bool,
    pub voters: BTreeMap<u64, VoterNode>,
    /// The controller listener (controllers only): Raft and broker sessions.
    pub controller_listen: Option<SocketAddr>,
    /// The quorum's shared secret (`--controller-secret-file`).
    pub controller_secret: Option<ControllerSecret>,
    pub session_timeout_ms: u64,
    pub default_replication_factor: i32,
    pub leader_imbalance_check_interval_ms: u64,
    pub group: GroupConfig,
}

/// The controller listener's port when nothing names one: the client port + 1.
fn default_controller_port(listen_port: u16) -> anyhow::Result<u16> {
    match listen_port {
        0 | u16::MAX => bail!(
            "listening on port {listen_port}, this node needs --controller-listen (or \
             --controller-voters) to name its controller listener's port"
        ),
        p => Ok(p + 1),
    }
}

/// Where a controller binds its controller listener: `--controller-listen` if given, else
/// the client listen host with the port of its own voter entry (what its peers dial). The
/// two must agree on the port, and it must not be the client port.
fn controller_listener(
    node_id: i32,
    own_voter_addr: &str,
    explicit: Option<SocketAddr>,
    listen: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    let voter_port: u16 = own_voter_addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .with_context(|| format!("controller voter {node_id}@{own_voter_addr} has no port"))?;
    let addr = match explicit {
        Some(a) if a.port() != voter_port => bail!(
            "--controller-listen {a} and this node's voter entry {node_id}@{own_voter_addr} \
             name different ports: the voters dial the controller listener"
        ),
        Some(a) => a,
        None => SocketAddr::new(listen.ip(), voter_port),
    };
    if addr.port() == listen.port() {
        bail!(
            "the controller listener ({node_id}@{own_voter_addr}) must have a port of its own, \
             not the client port {}: Raft is never served to clients. Give this node's voter \
             entry in --controller-voters another port (and --controller-listen to bind it \
             elsewhere)",
            listen.port()
        );
    }
    Ok(addr)
}

/// Parses Kafka's `controller.quorum.voters` form: `1@host:9093,2@host:9093`.
pub fn parse_voters(s: &str) -> anyhow::Result<BTreeMap<u64, VoterNode>> {
    let mut voters = BTreeMap::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, addr) = part
            .split_once('@')
            .with_context(|| format!("invalid controller voter '{part}': expected id@host:port"))?;
        let id: u64 = id.parse().with_context(|| {
            format!("invalid controller voter '{part}': '{id}' is not a node id")
        })?;
        kavka_client::parse_bootstrap(addr)
            .with_context(|| format!("invalid controller voter '{part}'"))?;
        if voters
            .insert(
                id,
                VoterNode {
                    addr: addr.to_string(),
                },
            )
            .is_some()
        {
            bail!("controller voter {id} is listed twice in '{s}'");
        }
    }
    if voters.is_empty() {
        bail!("the controller voter list '{s}' is empty");
    }
    Ok(voters)
}

fn load_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

impl ServerArgs {
    fn resolve(self) -> anyhow::Result<Settings> {
        let file = match &self.config {
            Some(p) => load_file(p)?,
            None => FileConfig::default(),
        };
        let node_id = self.node_id.or(file.node_id).unwrap_or(1);
        if node_id < 0 {
            bail!("node id must be >= 0, got {node_id}");
        }
        let data_dir = self
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from("./kavka-data"));
        let listen_str = self
            .listen
            .or(file.listen)
            .unwrap_or_else(|| "0.0.0.0:9093".into());
        let listen: SocketAddr = listen_str.parse().with_context(|| {
            format!("invalid listen address '{listen_str}': expected ip:port, e.g. 0.0.0.0:9093")
        })?;
        let flush_str = self
            .log_flush
            .or(file.log_flush)
            .unwrap_or_else(|| "replicated".into());
        let flush = FlushPolicy::from_name(&flush_str).with_context(|| {
            format!("invalid log flush '{flush_str}': expected replicated or fsync")
        })?;
        let advertised_host = self
            .advertised_host
            .or(file.advertised_host)
            .unwrap_or_else(|| {
                if listen.ip().is_unspecified() {
                    "127.0.0.1".into()
                } else {
                    listen.ip().to_string()
                }
            });
        let external_listen = match self.external_listen.or(file.external_listen) {
            None => None,
            Some(a) => Some(a.parse::<SocketAddr>().with_context(|| {
                format!(
                    "invalid external listen address '{a}': expected ip:port, e.g. 0.0.0.0:19093"
                )
            })?),
        };
        let external_advertised = match (
            self.external_advertised_address
                .or(file.external_advertised_address),
            external_listen,
        ) {
            (None, None) => None,
            (Some(a), Some(_)) => {
                let parsed = a
                    .rsplit_once(':')
                    .filter(|(h, _)| !h.is_empty() && !h.contains(','))
                    .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)));
                Some(parsed.with_context(|| {
                    format!("invalid external advertised address '{a}': expected host:port")
                })?)
            }
            (None, Some(l)) => Some((advertised_host.clone(), l.port())),
            (Some(a), None) => {
                bail!("external advertised address '{a}' given without --external-listen")
            }
        };
        let kafka_listeners = parse_listeners(
            &self
                .kafka_listeners
                .or(file.kafka_listeners)
                .unwrap_or_else(|| "PLAINTEXT://0.0.0.0:9092".into()),
        )
        .context("invalid --kafka-listeners")?;
        let explicit = parse_listeners(
            &self
                .kafka_advertised_listeners
                .or(file.kafka_advertised_listeners)
                .unwrap_or_default(),
        )
        .context("invalid --kafka-advertised-listeners")?;
        let kafka_advertised =
            kavka_kafka::listeners::advertised(&kafka_listeners, &explicit, &advertised_host)
                .context("invalid --kafka-advertised-listeners")?;
        let mut kafka = KafkaConfig {
            log_levels: crate::log_levels::installed(),
            ..KafkaConfig::default()
        };
        if let Some(ms) = self
            .connections_max_idle_ms
            .or(file.connections_max_idle_ms)
        {
            kafka.connections_max_idle = Duration::from_millis(ms.max(100));
        }
        if let Some(b) = self
            .socket_request_max_bytes
            .or(file.socket_request_max_bytes)
        {
            kafka.socket_request_max_bytes = b.max(1024);
        }
        if let Some(on) = self
            .auto_create_topics_enable
            .or(file.auto_create_topics_enable)
        {
            kafka.auto_create_topics_enable = on;
        }
        let num_partitions = self.num_partitions.or(file.num_partitions).unwrap_or(1);
        if num_partitions <= 0 {
            bail!("num partitions must be > 0, got {num_partitions}");
        }
        let mut broker = BrokerConfig::new(BrokerId(node_id), data_dir);
        broker.advertised_host = advertised_host;
        broker.advertised_port = listen.port();
        broker.external_advertised = external_advertised;
        broker.flush = flush;
        broker.default_partitions = num_partitions;
        if let Some(ms) = self
            .log_retention_check_interval_ms
            .or(file.log_retention_check_interval_ms)
        {
            broker.retention_check_interval_ms = ms;
        }
        broker.rack = self.rack.or(file.rack).filter(|r| !r.is_empty());
        if let Some(ms) = self.heartbeat_interval_ms.or(file.heartbeat_interval_ms) {
            broker.heartbeat_interval_ms = ms.max(10);
        }
        if let Some(ms) = self
            .replica_lag_time_max_ms
            .or(file.replica_lag_time_max_ms)
        {
            broker.replica_lag_time_max_ms = ms.max(100);
        }
        if let Some(b) = self.fetch_max_bytes.or(file.fetch_max_bytes) {
            broker.fetch_max_bytes = b.max(1024);
        }
        if let Some(b) = self
            .replica_fetch_response_max_bytes
            .or(file.replica_fetch_response_max_bytes)
        {
            broker.replica_fetch_response_max_bytes = b.max(1024);
        }
        if let Some(ms) = self
            .producer_id_expiration_ms
            .or(file.producer_id_expiration_ms)
        {
            broker.producer_id_expiration_ms = i64::try_from(ms).unwrap_or(i64::MAX).max(1);
        }
        let mut group = GroupConfig::default();
        if let Some(n) = self
            .offsets_topic_num_partitions
            .or(file.offsets_topic_num_partitions)
        {
            if n <= 0 {
                bail!("offsets topic num partitions must be > 0, got {n}");
            }
            group.offsets_topic_num_partitions = n;
        }
        if let Some(n) = self
            .offsets_topic_replication_factor
            .or(file.offsets_topic_replication_factor)
        {
            if n <= 0 {
                bail!("offsets topic replication factor must be > 0, got {n}");
            }
            group.offsets_topic_replication_factor = n;
        }
        if let Some(ms) = self
            .group_initial_rebalance_delay_ms
            .or(file.group_initial_rebalance_delay_ms)
        {
            group.initial_rebalance_delay_ms = ms;
        }
        if let Some(ms) = self
            .group_min_session_timeout_ms
            .or(file.group_min_session_timeout_ms)
        {
            if ms <= 0 || ms > group.max_session_timeout_ms {
                bail!(
                    "group min session timeout must be in 1..={}, got {ms}",
                    group.max_session_timeout_ms
                );
            }
            group.min_session_timeout_ms = ms;
        }
        if let Some(ms) = self
            .group_consumer_session_timeout_ms
            .or(file.group_consumer_session_timeout_ms)
        {
            group.consumer_session_timeout_ms = ms.max(100);
        }
        if let Some(ms) = self
            .group_consumer_heartbeat_interval_ms
            .or(file.group_consumer_heartbeat_interval_ms)
        {
            if ms <= 0 {
                bail!("group consumer heartbeat interval must be > 0, got {ms}");
            }
            group.consumer_heartbeat_interval_ms = ms;
        }
        let roles = self
            .roles
            .or(file.roles)
            .unwrap_or_else(|| "controller,broker".into());
        let (mut controller, mut broker_role) = (false, false);
        for r in roles.split(',').map(str::trim) {
            match r {
                "controller" => controller = true,
                "broker" => broker_role = true,
                other => bail!(
                    "invalid role '{other}' in '{roles}': use controller, broker or controller,broker"
                ),
            }
        }
        let controller_secret = match self.controller_secret_file.or(file.controller_secret_file) {
            Some(path) => {
                let text = std::fs::read_to_string(&path).with_context(|| {
                    format!("cannot read the controller secret file {}", path.display())
                })?;
                Some(ControllerSecret::parse(&text).map_err(|why| {
                    anyhow::anyhow!("controller secret file {}: {why}", path.display())
                })?)
            }
            None => None,
        };
        let controller_listen_arg = match self.controller_listen.or(file.controller_listen) {
            Some(a) => Some(a.parse::<SocketAddr>().with_context(|| {
                format!(
                    "invalid controller listen address '{a}': expected ip:port, e.g. 0.0.0.0:9094"
                )
            })?),
            None => None,
        };
        let voters = match self.controller_voters.or(file.controller_voters) {
            Some(v) => parse_voters(&v)?,
            None => {
                let port = match controller_listen_arg {
                    Some(a) => a.port(),
                    None => default_controller_port(listen.port())?,
                };
                BTreeMap::from([(
                    node_id as u64,
                    VoterNode {
                        addr: format!("{}:{port}", broker.advertised_host),
                    },
                )])
            }
        };
        let controller_listen = if controller {
            let Some(own) = voters.get(&(node_id as u64)) else {
                bail!(
                    "node {node_id} has the controller role but is not in the controller voters {:?}",
                    voters.keys().collect::<Vec<_>>()
                );
            };
            Some(controller_listener(
                node_id,
                &own.addr,
                controller_listen_arg,
                listen,
            )?)
        } else {
            if let Some(a) = controller_listen_arg {
                bail!(
                    "--controller-listen {a} is for nodes with the controller role (this one's roles: broker)"
                );
            }
            None
        };
        let session_timeout_ms = self
            .session_timeout_ms
            .or(file.session_timeout_ms)
            .unwrap_or(2500);
        // The broker's leader lease lasts one session timeout from an answered heartbeat.
        broker.session_timeout_ms = session_timeout_ms;
        Ok(Settings {
            broker,
            listen,
            external_listen,
            kafka_listeners,
            kafka_advertised,
            kafka,
            controller,
            broker_role,
            voters,
            controller_listen,
            controller_secret,
            session_timeout_ms,
            default_replication_factor: self
                .default_replication_factor
                .or(file.default_replication_factor)
                .unwrap_or(3),
            leader_imbalance_check_interval_ms: self
                .leader_imbalance_check_interval_ms
                .or(file.leader_imbalance_check_interval_ms)
                .unwrap_or(10_000),
            group,
        })
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    serve(args.resolve()?, false).await
}

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    if args.nodes > 1 {
        return dev_cluster(args).await;
    }
    let settings = ServerArgs {
        node_id: Some(1),
        data_dir: Some(args.data_dir),
        listen: Some(args.listen),
        kafka_listeners: Some(format!("PLAINTEXT://{}", args.kafka_listen)),
        log_flush: Some(args.log_flush),
        num_partitions: Some(1),
        ..ServerArgs::default()
    }
    .resolve()?;
    serve(settings, true).await
}

/// `kavka dev --nodes N`: N combined nodes as child processes of this binary.
async fn dev_cluster(args: DevArgs) -> anyhow::Result<()> {
    let base: SocketAddr = args
        .listen
        .parse()
        .with_context(|| format!("invalid listen address '{}': expected ip:port", args.listen))?;
    let n = args.nodes;
    if n > 9 {
        bail!("kavka dev runs at most 9 nodes, got {n}");
    }
    if base.port() > u16::MAX - 20 {
        bail!(
            "--listen port {} leaves no room for the nodes' ports above it",
            base.port()
        );
    }
    let addr = |i: u16| SocketAddr::new(base.ip(), base.port() + i - 1);
    let kafka_base: SocketAddr = args.kafka_listen.parse().with_context(|| {
        format!(
            "invalid Kafka listen address '{}': expected ip:port",
            args.kafka_listen
        )
    })?;
    let kafka_addr = |i: u16| SocketAddr::new(kafka_base.ip(), kafka_base.port() + 100 * (i - 1));
    // Each node's controller listener, ten ports above the gRPC ones.
    let controller_addr = |i: u16| SocketAddr::new(base.ip(), base.port() + 10 + i - 1);
    let voters = (1..=n)
        .map(|i| format!("{i}@{}", controller_addr(i)))
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe().context("cannot find the kavka binary")?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    // The voters speak Raft only with each other: one secret for the local quorum, made
    // once and kept with its data.
    let secret = args.data_dir.join("controller-secret");
    crate::cli::cluster::create_secret(&secret)?;
    let mut children = Vec::new();
    for i in 1..=n {
        let dir = args.data_dir.join(format!("node-{i}"));
        let log_path = args.data_dir.join(format!("node-{i}.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let child = tokio::process::Command::new(&exe)
            .arg("server")
            .args([
                "--node-id",
                &i.to_string(),
                "--listen",
                &addr(i).to_string(),
                "--controller-voters",
                &voters,
                "--log-flush",
                &args.log_flush,
                "--kafka-listeners",
                &format!("PLAINTEXT://{}", kafka_addr(i)),
            ])
            .arg("--data-dir")
            .arg(&dir)
            .arg("--controller-secret-file")
            .arg(&secret)
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))?;
        children.push((i, child));
    }
    // Ready once every broker answers with itself unfenced.
    let bootstrap = (1..=n)
        .map(|i| addr(i).to_string())
        .collect::<Vec<_>>()
        .join(",");
    let deadline = std::time::Instant::now() + READY_TIMEOUT;
    loop {
        let ready = match kavka_client::Client::connect(&bootstrap).await {
            Ok(mut c) => c
                .metadata(vec![])
                .await
                .is_ok_and(|md| md.brokers.iter().filter(|b| !b.fenced).count() == n as usize),
            Err(_) => false,
        };
        if ready {
            break;
        }
        if std::time::Instant::now() > deadline {
            bail!(
                "the {n} nodes did not come up within {READY_TIMEOUT:?}; see {}/node-*.log",
                args.data_dir.display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!("kavka dev: {n} nodes ready (controller and broker each)");
    for i in 1..=n {
        println!(
            "  node {i}  gRPC {}  Kafka {}  data {}/node-{i}  log {}/node-{i}.log",
            addr(i),
            kafka_addr(i),
            args.data_dir.display(),
            args.data_dir.display()
        );
    }
    println!(
        "  try:     export KAVKA_BOOTSTRAP={bootstrap}\n           kavka quorum status; kavka topic create orders --partitions 6 --replication-factor 3"
    );
    // Nodes may be killed on purpose (to watch an election): report it, keep the rest.
    let report_exits = async {
        let mut reported = std::collections::BTreeSet::new();
        loop {
            for (i, c) in children.iter_mut() {
                if !reported.contains(i)
                    && let Ok(Some(status)) = c.try_wait()
                {
                    reported.insert(*i);
                    eprintln!(
                        "node {i} exited ({status}); restart it with:\n  kavka server --node-id {i} --listen {} --kafka-listeners PLAINTEXT://{} --controller-voters {voters} --data-dir {}/node-{i} --controller-secret-file {}",
                        addr(*i),
                        kafka_addr(*i),
                        args.data_dir.display(),
                        secret.display()
                    );
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = report_exits => {}
    }
    for (_, c) in children.iter_mut() {
        if let Some(pid) = c.id() {
            // SIGTERM lets each node stop cleanly; kill_on_drop covers the rest.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
    }
    for (_, mut c) in children {
        let _ = tokio::time::timeout(Duration::from_secs(10), c.wait()).await;
    }
    Ok(())
}

/// Below this many open files a node warns: each partition's active segment keeps three
/// open (log, offset index, time index), so many partitions run out.
const OPEN_FILES_WARN_BELOW: u64 = 16_384;

/// Closed segments' files kept open for reads: a quarter of the open file limit (the
/// rest is for active segments, sockets and the stores), within these bounds.
fn closed_segment_handles(open_files: u64) -> usize {
    (open_files / 4).clamp(16, 65_536) as usize
}

/// Raises the soft limit on open files to the hard limit, as Kafka's start scripts ask
/// operators to, and says what the node has (a warning when it is low).
fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open file limit");
        return;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one valid rlimit struct; raising the soft limit up to the
        // hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the open file limit");
            lim.rlim_cur = before;
        }
    }
    let open_files = lim.rlim_cur;
    let closed_segments = closed_segment_handles(open_files);
    kavka_log::set_closed_segment_handles(closed_segments);
    if open_files < OPEN_FILES_WARN_BELOW {
        tracing::warn!(
            open_files,
            closed_segments,
            "the open file limit is low: each partition's active segment keeps 3 files open, so partitions fail to open (KAFKA_STORAGE_ERROR) once it is reached; raise it (ulimit -n, LimitNOFILE=)"
        );
    } else {
        tracing::info!(
            open_files,
            raised_from = before,
            closed_segments,
            "open file limit"
        );
    }
}

/// Holds an exclusive lock on `<data>/.lock` for the life of the process, so two nodes
/// never write the same data dir.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let hint = |e: &std::io::Error| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(" (not writable by uid {uid}: is the volume mounted and owned by it?)")
        } else {
            String::new()
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}{}", dir.display(), hint(&e))
    })?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}{}", path.display(), hint(&e)))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "data dir {} is in use by another kavka process",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

async fn serve(mut settings: Settings, dev: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let data_dir = settings.broker.data_dir.clone();
    let _lock = lock_data_dir(&data_dir)?;
    // The data dir's identity: checked now, written (when new) once the stores exist.
    let identity = meta_properties::read(&data_dir)?;
    let older_data_dir = identity.is_none() && meta_properties::has_data(&data_dir)?;
    let decision = meta_properties::decide(
        meta_properties::Found {
            meta: identity.as_ref(),
            has_raft_store: data_dir.join(CONTROLLER_DIR).exists(),
        },
        settings.broker.node_id.0,
        settings.controller,
    )
    .map_err(|why| anyhow::anyhow!(why))?;
    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local = listener.local_addr()?;
    // The controller listener: the quorum's Raft traffic and broker sessions only.
    let controller_listener = bind_if(settings.controller_listen, "controller listener").await?;
    let external_listener = bind_if(settings.external_listen, "external listener").await?;
    let controller_local = match &controller_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let external_local = match &external_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    // Kafka listeners (brokers only), bound before registering so port 0 works.
    // Flips once the broker is unfenced: its Kafka and gRPC client listeners serve then.
    let (broker_ready_tx, broker_ready_rx) = watch::channel(false);
    let mut kafka_bound = Vec::new();
    if settings.broker_role {
        for (l, adv) in settings
            .kafka_listeners
            .iter()
            .zip(settings.kafka_advertised.iter_mut())
        {
            let host = if l.host.is_empty() {
                "0.0.0.0"
            } else {
                &l.host
            };
            let bound = tokio::net::TcpListener::bind((host, l.port))
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {host}:{} (Kafka listener {})",
                        l.port, l.name
                    )
                })?;
            let port = bound.local_addr()?.port();
            if adv.port == 0 {
                adv.port = port;
            }
            settings.broker.extra_listeners.push((
                kavka_kafka::endpoint_name(&adv.name),
                adv.host.clone(),
                adv.port,
            ));
            kafka_bound.push((l.name.clone(), bound));
        }
    }
    let kafka_addrs: Vec<String> = kafka_bound
        .iter()
        .filter_map(|(n, l)| Some(format!("{n}://{}", l.local_addr().ok()?)))
        .collect();
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    // A reason to stop at once, with a non-zero exit.
    let (fatal_tx, mut fatal_rx) = watch::channel::<Option<String>>(None);
    let mut tasks = Vec::new();
    let (health_reporter, health_service) = tonic_health::server::health_reporter();

    let mut quorum_image: Option<ClusterIdSource> = None;
    let mut broker_image: Option<ClusterIdSource> = None;
    // Controller role: a voter in the metadata quorum.
    let mut quorum = None;
    let mut controller_services = None;
    if settings.controller {
        let mut cfg = QuorumConfig::new(
            settings.broker.node_id.0 as u64,
            data_dir.join(CONTROLLER_DIR),
            settings.voters.clone(),
        );
        cfg.heartbeat_interval_ms = 100;
        cfg.secret = settings.controller_secret.clone();
        let q = Arc::new(
            Quorum::start(cfg)
                .await
                .context("cannot start the controller")?,
        );
        let controller = Controller::new(
            Arc::clone(&q),
            ControllerConfig {
                session_timeout: Duration::from_millis(settings.session_timeout_ms),
                broker_heartbeat_interval: Duration::from_millis(
                    settings.broker.heartbeat_interval_ms,
                ),
                leader_imbalance_check_interval: (settings.leader_imbalance_check_interval_ms > 0)
                    .then(|| Duration::from_millis(settings.leader_imbalance_check_interval_ms)),
                topic_defaults: TopicDefaults {
                    partitions: settings.broker.default_partitions,
                    replication_factor: settings.default_replication_factor,
                },
                ..ControllerConfig::default()
            },
        );
        tasks.push(tokio::spawn(
            Arc::clone(&controller).run(shutdown_rx.clone()),
        ));
        let c = Arc::clone(&controller);
        quorum_image = Some(Arc::new(move || c.image().cluster_id.clone()));
        // A voter list that disagrees with the quorum's is a configuration error, and a
        // Raft core stopped by a metadata store failure (a full disk) never recovers: both
        // stop the node, with the reason, instead of leaving a live-looking dead controller
        // (a supervisor restarts it; the other voters elect another controller).
        let watched = Arc::clone(&q);
        let fatal = fatal_tx.clone();
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.changed() => return,
                }
                if let Some(reason) = watched.membership_mismatch() {
                    let _ = fatal.send(Some(reason));
                    return;
                }
                if let Some(cause) = watched.failure() {
                    let _ = fatal.send(Some(format!(
                        "fatal: the controller's metadata store failed ({cause}); stopping this node so a supervisor restarts it and the quorum elects another controller"
                    )));
                    return;
                }
            }
        }));
        health_reporter
            .set_serving::<kavka_proto::v1::controller_service_server::ControllerServiceServer<ControllerService>>()
            .await;
        controller_services = Some((
            q.raft_server().into_service(),
            tonic::service::interceptor::InterceptedService::new(
                ControllerService::new(Arc::clone(&controller)).into_server(),
                q.secret_check(),
            ),
            ControllerService::new(controller).into_server(),
        ));
        quorum = Some(q);
    }

    // Broker role: hosts partitions, follows the metadata, holds a session.
    let mut broker_services = None;
    let mut lifecycle_handle: Option<Arc<ControllerSession>> = None;
    let mut controlled_shutdown = None;
    if settings.broker_role {
        let broker_config = settings.broker.clone();
        let replicas = tokio::task::spawn_blocking(move || ReplicaManager::open(broker_config))
            .await
            .context("opening the data dir panicked")??;
        let controllers = Arc::new(Controllers::new(
            settings.voters.values().map(|v| v.addr.clone()).collect(),
            ControllerSecret::presenter(settings.controller_secret.as_ref()),
        ));
        let r = Arc::clone(&replicas);
        broker_image = Some(Arc::new(move || r.image().cluster_id.clone()));
        let lifecycle = Arc::new(ControllerSession::new(Arc::clone(replicas.lease())));
        tasks.push(tokio::spawn(Arc::clone(&lifecycle).run(
            Arc::clone(&replicas),
            Arc::clone(&controllers),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(kavka_broker::metadata::follow(
            Arc::clone(&replicas),
            Arc::clone(&lifecycle),
            Arc::clone(&controllers),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(
            Arc::clone(&replicas).run_retention(shutdown_rx.clone()),
        ));
        tasks.push(tokio::spawn(
            Arc::clone(&replicas).run_log_timers(shutdown_rx.clone()),
        ));
        tasks.push(tokio::spawn(
            Arc::clone(&replicas).run_offline_retries(shutdown_rx.clone()),
        ));
        tasks.push(tokio::spawn(kavka_broker::fetcher::run(
            Arc::clone(&replicas),
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(Arc::clone(&replicas).run_isr_maintenance(
            Arc::clone(&controllers),
            lifecycle.incarnation_id,
            shutdown_rx.clone(),
        )));
        tasks.push(tokio::spawn(
            Arc::clone(&replicas).run_hw_checkpoints(shutdown_rx.clone()),
        ));
        controlled_shutdown = Some((
            Arc::clone(&lifecycle),
            Arc::clone(&replicas),
            Arc::clone(&controllers),
        ));
        // Serving once the controller has unfenced this broker (see below).
        health_reporter
            .set_not_serving::<kavka_proto::v1::admin_service_server::AdminServiceServer<AdminService>>()
            .await;
        health_reporter
            .set_not_serving::<kavka_proto::v1::broker_service_server::BrokerServiceServer<BrokerService>>()
            .await;
        lifecycle_handle = Some(Arc::clone(&lifecycle));
        // A combined node knows the active controller and term first-hand.
        if let Some(q) = &quorum {
            tasks.push(tokio::spawn(report_controller(
                Arc::clone(q),
                Arc::clone(&lifecycle),
                shutdown_rx.clone(),
            )));
        }
        let groups = GroupCoordinator::new(
            Arc::clone(&replicas),
            Arc::clone(&controllers),
            settings.group.clone(),
        );
        tasks.push(tokio::spawn(Arc::clone(&groups).run(shutdown_rx.clone())));
        let producer_ids = Arc::new(ProducerIdManager::new(
            Arc::clone(&controllers),
            settings.broker.node_id,
            lifecycle.incarnation_id,
        ));
        let admin_api = Arc::new(kavka_broker::api::Admin::new(
            Arc::clone(&replicas),
            Arc::clone(&lifecycle),
            controllers,
        ));
        let kafka_broker = Arc::new(kavka_kafka::Broker::new(
            Arc::clone(&replicas),
            Arc::clone(&admin_api),
            Arc::clone(&groups),
            Arc::clone(&producer_ids),
            settings.kafka.clone(),
        ));
        for (name, listener) in kafka_bound.drain(..) {
            tasks.push(tokio::spawn(kavka_kafka::serve(
                Arc::clone(&kafka_broker),
                listener,
                name,
                broker_ready_rx.clone(),
                shutdown_rx.clone(),
            )));
        }
        let gate = || kavka_broker::service::ReadyGate(broker_ready_rx.clone());
        broker_services = Some((
            InterceptedService::new(
                AdminService::new(admin_api)
                    .with_external_port(external_local.map(|a| a.port()))
                    .into_server(),
                gate(),
            ),
            InterceptedService::new(
                BrokerService::new(Arc::clone(&replicas), producer_ids).into_server(),
                gate(),
            ),
            InterceptedService::new(GroupService::new(groups).into_server(), gate()),
        ));
    }

    // The stores exist now: a new data dir gets its identity before anything is served.
    let identity = match (decision, identity) {
        (meta_properties::Decision::Keep, Some(m)) => m,
        _ => {
            let m = meta_properties::MetaProperties {
                node_id: settings.broker.node_id.0,
                directory_id: uuid::Uuid::new_v4(),
                cluster_id: None,
            };
            meta_properties::write(&data_dir, &m)?;
            tracing::info!(directory_id = %m.directory_id, adopted = older_data_dir, "initialised the data dir ({})", meta_properties::FILE);
            m
        }
    };
    tasks.push(tokio::spawn(record_cluster_id(
        data_dir.clone(),
        identity,
        quorum_image.clone(),
        broker_image.clone(),
        fatal_tx.clone(),
        shutdown_rx.clone(),
    )));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kavka_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the reflection service")?;

    // Small responses must not wait for Nagle's algorithm and the peer's delayed ACK.
    type Accepted = std::pin::Pin<
        Box<dyn tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> + Send>,
    >;
    let external: Accepted = match external_listener {
        Some(l) => Box::pin(tokio_stream::wrappers::TcpListenerStream::new(l)),
        None => Box::pin(tokio_stream::pending()),
    };
    let accepted = tokio_stream::StreamExt::merge(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        external,
    );
    let incoming = tokio_stream::StreamExt::map(accepted, |conn| {
        conn.inspect(|stream| {
            if let Err(e) = stream.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY");
            }
        })
    });
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    // Clients reach the controller's QuorumStatus on the client port (the CLI's quorum
    // status); Raft, broker sessions and the rest are served on the controller listener.
    let mut controller_svc = None;
    if let (Some((raft, for_peers, for_clients)), Some(l)) =
        (controller_services, controller_listener)
    {
        controller_svc = Some(kavka_controller::client_port::ClientPort(for_clients));
        let incoming = tokio_stream::StreamExt::map(
            tokio_stream::wrappers::TcpListenerStream::new(l),
            |conn| {
                conn.inspect(|stream| {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                })
            },
        );
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<kavka_proto::v1::controller_service_server::ControllerServiceServer<ControllerService>>()
            .await;
        let mut stop = shutdown_rx.clone();
        let peers = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(raft)
            .add_service(for_peers)
            .serve_with_incoming_shutdown(incoming, async move {
                let _ = stop.wait_for(|s| *s).await;
            });
        tasks.push(tokio::spawn(async move {
            if let Err(e) = peers.await {
                tracing::error!(error = %e, "the controller listener failed");
            }
        }));
    }
    let (admin_svc, broker_svc, group_svc) = match broker_services {
        Some((a, b, g)) => (Some(a), Some(b), Some(g)),
        None => (None, None, None),
    };
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_optional_service(controller_svc)
        .add_optional_service(admin_svc)
        .add_optional_service(broker_svc)
        .add_optional_service(group_svc)
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown_signal().await;
            // Leadership moves away while this node still serves its followers.
            if let Some((lifecycle, replicas, controllers)) = controlled_shutdown {
                lifecycle
                    .controlled_shutdown(&replicas, &controllers, CONTROLLED_SHUTDOWN_TIMEOUT)
                    .await;
            }
            let _ = stopping_tx.send(true);
        });
    // In-flight requests get a bounded drain; a client that keeps its connection open
    // must not keep the node from stopping.
    let mut server = tokio::spawn(server);

    // Ready: the broker is unfenced (it registered and caught up with the metadata). Its
    // client listeners serve from then on, however long that takes.
    if let Some(lifecycle) = lifecycle_handle.clone() {
        let health = health_reporter.clone();
        let mut stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            while lifecycle.is_fenced() {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                    _ = stop.changed() => return,
                }
            }
            let _ = broker_ready_tx.send(true);
            health
                .set_serving::<kavka_proto::v1::admin_service_server::AdminServiceServer<AdminService>>()
                .await;
            health
                .set_serving::<kavka_proto::v1::broker_service_server::BrokerServiceServer<BrokerService>>()
                .await;
        }));
        // Waits for readiness, but not past a server that already stopped (SIGTERM).
        let deadline = std::time::Instant::now() + READY_TIMEOUT;
        while !*broker_ready_rx.borrow()
            && std::time::Instant::now() < deadline
            && !server.is_finished()
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if !*broker_ready_rx.borrow() {
            tracing::warn!(timeout = ?READY_TIMEOUT, "broker still fenced: is the controller quorum reachable? Its client listeners serve once it is unfenced");
        }
    }
    let roles = match (settings.controller, settings.broker_role) {
        (true, true) => "controller,broker",
        (true, false) => "controller",
        _ => "broker",
    };
    tracing::info!(node_id = %settings.broker.node_id, roles, listen = %local, controller_listen = ?controller_local, external = ?external_local, kafka = ?kafka_addrs, data_dir = %data_dir.display(), flush = settings.broker.flush.name(), voters = ?settings.voters.keys().collect::<Vec<_>>(), "kavka is ready");
    if dev {
        println!(
            "kavka dev: node {} ready in {} ms\n  gRPC      {local}\n  Kafka     {}\n  Raft      {}\n  data dir  {}\n  try:      kavka topic create orders --partitions 3",
            settings.broker.node_id,
            started.elapsed().as_millis(),
            kafka_addrs.join(", "),
            controller_local.map_or_else(|| "-".to_string(), |a| a.to_string()),
            data_dir.display()
        );
    }

    let drain_deadline = async {
        let _ = stopping_rx.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_DRAIN).await;
    };
    let result = tokio::select! {
        r = &mut server => match r {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("gRPC server task failed: {e}")),
        },
        _ = drain_deadline => {
            tracing::warn!(drain = ?SHUTDOWN_DRAIN, "connections still open after the drain period; stopping anyway");
            Ok(())
        }
        reason = fatal_rx.wait_for(Option::is_some) => {
            let reason = reason.map(|r| r.clone().unwrap_or_default()).unwrap_or_default();
            tracing::error!(%reason, "stopping");
            Err(anyhow::anyhow!(reason))
        }
    };
    let _ = shutdown_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(SHUTDOWN_DRAIN, t).await;
    }
    if let Some(q) = quorum {
        q.shutdown().await;
    }
    tracing::info!("kavka stopped");
    result.context("gRPC server failed")
}

/// Where a node reads its cluster's id, once known (from a metadata image).
type ClusterIdSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Records the cluster id in `meta.properties` once the node has seen it, and stops the
/// node (fatal) when the data dir belongs to another cluster.
async fn record_cluster_id(
    dir: PathBuf,
    mut identity: meta_properties::MetaProperties,
    quorum_image: Option<ClusterIdSource>,
    broker_image: Option<ClusterIdSource>,
    fatal: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let seen = [&quorum_image, &broker_image]
            .into_iter()
            .flatten()
            .find_map(|cluster_id| cluster_id());
        let Some(cluster_id) = seen else { continue };
        // Checked as long as the node runs: a broker's first image may be its own
        // checkpoint, the controllers' comes after.
        match meta_properties::check_cluster(&identity, &cluster_id) {
            Ok(false) => {}
            Ok(true) => {
                identity.cluster_id = Some(cluster_id.clone());
                match meta_properties::write(&dir, &identity) {
                    Ok(()) => {
                        tracing::info!(%cluster_id, "recorded the cluster id in {}", meta_properties::FILE)
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot record the cluster id")
                    }
                }
            }
            Err(why) => {
                let _ = fatal.send(Some(format!("fatal: {why}")));
                return;
            }
        }
    }
}

/// Binds a listener when an address is given; the error names it (`what`).
async fn bind_if(
    addr: Option<SocketAddr>,
    what: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match addr {
        Some(a) => {
            Ok(Some(tokio::net::TcpListener::bind(a).await.with_context(
                || format!("cannot listen on {a} ({what})"),
            )?))
        }
        None => Ok(None),
    }
}

/// Keeps the broker's view of the active controller and term current from this node's
/// own voter (brokers elsewhere learn it from heartbeat answers).
async fn report_controller(
    quorum: Arc<Quorum>,
    session: Arc<ControllerSession>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut metrics = quorum.metrics_watch();
    loop {
        let (leader, term) = quorum.leader_and_term();
        let leader = leader.and_then(|l| i32::try_from(l).ok()).map(BrokerId);
        session.note_controller(leader, term);
        tokio::select! {
            alive = quorum.leader_changed(&mut metrics) => if !alive { return },
            _ = shutdown.changed() => return,
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file() {
        // Each test its own directory: tests of this module run in parallel.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kavka.toml");
        std::fs::write(
            &path,
            "node_id = 7\nlisten = \"127.0.0.1:1234\"\nlog_flush = \"fsync\"\n",
        )
        .unwrap();
        let s = ServerArgs {
            config: Some(path.clone()),
            node_id: Some(9),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(s.broker.node_id, BrokerId(9));
        assert_eq!(s.listen.port(), 1234);
        assert_eq!(s.broker.flush, FlushPolicy::FSYNC);

        std::fs::write(&path, "node_idd = 7\n").unwrap();
        let e = ServerArgs {
            config: Some(path),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("unknown field `node_idd`"),
            "{e:#}"
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../kavka.example.toml");
        let file: FileConfig = toml::from_str(text).unwrap();
        assert_eq!(file.roles.as_deref(), Some("controller,broker"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("example.toml");
        std::fs::write(&path, text).unwrap();
        let s = ServerArgs {
            config: Some(path),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap();
        assert!(s.controller && s.broker_role);
        assert_eq!(s.voters.len(), 1);
    }

    #[test]
    fn kafka_listeners_resolve() {
        let l = |name: &str, host: &str, port| KafkaListener {
            name: name.into(),
            host: host.into(),
            port,
        };
        let s = ServerArgs {
            advertised_host: Some("node-1".into()),
            kafka_listeners: Some("PLAINTEXT://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092".into()),
            kafka_advertised_listeners: Some("EXTERNAL://localhost:9092".into()),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(
            s.kafka_advertised,
            vec![
                l("PLAINTEXT", "node-1", 9092),
                l("EXTERNAL", "localhost", 9092)
            ]
        );
        for (listeners, advertised, why) in [
            ("0.0.0.0:9092", "", "expected NAME://host:port"),
            (
                "PLAINTEXT://:9092",
                "OTHER://h:1",
                "not one of the listeners",
            ),
        ] {
            let e = ServerArgs {
                kafka_listeners: Some(listeners.into()),
                kafka_advertised_listeners: Some(advertised.into()),
                ..ServerArgs::default()
            }
            .resolve()
            .unwrap_err();
            assert!(format!("{e:#}").contains(why), "{listeners}: {e:#}");
        }
    }

    #[test]
    fn the_controller_listener_has_a_port_of_its_own() {
        let args = |listen: &str, voters: Option<&str>, cl: Option<&str>, roles: &str| {
            ServerArgs {
                listen: Some(listen.into()),
                controller_voters: voters.map(String::from),
                controller_listen: cl.map(String::from),
                roles: Some(roles.into()),
                ..ServerArgs::default()
            }
            .resolve()
        };
        let cb = "controller,broker";
        // (listen, voters, --controller-listen, roles) -> bound controller listener or error
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Result<&'a str, &'a str>,
        );
        let cases: &[Case<'_>] = &[
            ("0.0.0.0:9093", None, None, cb, Ok("0.0.0.0:9094")),
            (
                "10.0.0.1:7000",
                None,
                Some("10.0.0.2:7100"),
                cb,
                Ok("10.0.0.2:7100"),
            ),
            (
                "0.0.0.0:9093",
                Some("1@n1:9200,2@n2:9200"),
                None,
                cb,
                Ok("0.0.0.0:9200"),
            ),
            (
                "0.0.0.0:9093",
                Some("1@n1:9200"),
                Some("192.168.0.1:9200"),
                cb,
                Ok("192.168.0.1:9200"),
            ),
            (
                "0.0.0.0:9093",
                Some("1@n1:9093"),
                None,
                cb,
                Err("a port of its own"),
            ),
            (
                "0.0.0.0:9093",
                Some("1@n1:9200"),
                Some("0.0.0.0:9300"),
                cb,
                Err("different ports"),
            ),
            (
                "0.0.0.0:9093",
                None,
                Some("0.0.0.0:9093"),
                cb,
                Err("a port of its own"),
            ),
            (
                "127.0.0.1:0",
                None,
                None,
                cb,
                Err("needs --controller-listen"),
            ),
            (
                "0.0.0.0:9093",
                Some("1@n1:9200"),
                Some("0.0.0.0:9200"),
                "broker",
                Err("controller role"),
            ),
            (
                "0.0.0.0:9093",
                None,
                Some("nope"),
                cb,
                Err("invalid controller listen address 'nope'"),
            ),
        ];
        for (listen, voters, cl, roles, want) in cases {
            let got = args(listen, *voters, *cl, roles);
            match (got, want) {
                (Ok(s), Ok(addr)) => {
                    assert_eq!(
                        s.controller_listen.unwrap().to_string(),
                        *addr,
                        "{listen} {voters:?} {cl:?}"
                    );
                    let own = &s.voters[&1].addr;
                    assert!(
                        own.ends_with(&addr[addr.rfind(':').unwrap()..]),
                        "voter entry {own}"
                    );
                }
                (Err(e), Err(why)) => assert!(format!("{e:#}").contains(why), "{e:#}"),
                (got, want) => panic!(
                    "{listen} {voters:?} {cl:?} {roles}: got {:?}, want {want:?}",
                    got.map(|s| s.controller_listen)
                ),
            }
        }
    }

    #[test]
    fn voter_lists_and_roles_are_checked() {
        assert_eq!(parse_voters("1@a:1,2@b:2").unwrap().len(), 2);
        for (bad, why) in [
            ("1@a:1,1@b:2", "listed twice"),
            ("x@a:1", "'x' is not a node id"),
            ("1a:1", "expected id@host:port"),
            ("1@nohost", "invalid controller voter"),
            ("", "is empty"),
        ] {
            let e = format!("{:#}", parse_voters(bad).unwrap_err());
            assert!(e.contains(why), "{bad}: {e}");
        }
        let e = ServerArgs {
            node_id: Some(4),
            controller_voters: Some("1@a:1".into()),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("not in the controller voters"),
            "{e:#}"
        );
        let e = ServerArgs {
            roles: Some("leader".into()),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{e:#}").contains("invalid role 'leader'"), "{e:#}");
    }

    #[test]
    fn bad_values_are_named() {
        let e = ServerArgs {
            listen: Some("nope".into()),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{e:#}").contains("invalid listen address 'nope'"));
        let e = ServerArgs {
            log_flush: Some("sometimes".into()),
            ..ServerArgs::default()
        }
        .resolve()
        .unwrap_err();
        assert!(format!("{e:#}").contains("invalid log flush 'sometimes'"));
    }
}
