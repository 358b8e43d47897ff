//! A node's configuration: the flat TOML file < `KAVKA_<KEY>` environment variables <
//! command-line flags, layered by `figment`, then checked and resolved into [`Settings`].
//!
//! Invariants: every key has one name in all three layers (`node_id`, `KAVKA_NODE_ID`,
//! `--node-id`), declared once as a field of a section struct (the file stays flat: the
//! sections group the code, not the file); a key no section knows is an error naming it
//! and where it came from, as is a value of the wrong type; a key unset everywhere takes
//! the default of the config it feeds (`BrokerConfig`, `KafkaConfig`, `GroupConfig`).
//! `kavka dev` uses flags only. Resolution is pure but for reading the controller secret
//! file; binding and serving belong to `serve`.

use anyhow::{Context, bail};
use clap::Args;
use figment::providers::Format;
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};
use kavka_broker::BrokerConfig;
use kavka_controller::VoterNode;
use kavka_controller::raft::peers::ControllerSecret;
use kavka_group::GroupConfig;
use kavka_kafka::{KafkaConfig, KafkaListener, parse_listeners};
use kavka_log::FlushPolicy;
use kavka_model::BrokerId;
use kavka_model::acl::AuthorizerConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// `kavka server`'s command line: the config file, and a flag per key.
#[derive(Args, Debug, Default)]
#[command(
    after_help = "Every flag is also a KAVKA_* environment variable (--node-id: KAVKA_NODE_ID) \
                  and a key of the config file (node_id); flags win over the environment, \
                  which wins over the file."
)]
pub struct ServerArgs {
    /// TOML config file (keys as in `kavka.example.toml`).
    #[arg(long, short = 'c', env = "KAVKA_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub flags: ServerConfig,
}

/// Every key, by section; each unset key is `None`.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize)]
pub struct ServerConfig {
    #[command(flatten)]
    #[serde(flatten)]
    pub node: NodeSection,
    #[command(flatten)]
    #[serde(flatten)]
    pub listeners: ListenerSection,
    #[command(flatten)]
    #[serde(flatten)]
    pub kafka: KafkaSection,
    #[command(flatten)]
    #[serde(flatten)]
    pub quorum: QuorumSection,
    #[command(flatten)]
    #[serde(flatten)]
    pub replication: ReplicationSection,
    #[command(flatten)]
    #[serde(flatten)]
    pub group: GroupSection,
}

/// What the node is and where its data lives.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeSection {
    /// This node's id (Kafka's node.id).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<i32>,
    /// Where partition logs live (Kafka's log.dirs).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// What this node runs: controller, broker, or controller,broker (Kafka's process.roles).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    /// This broker's rack (Kafka's broker.rack), for replica placement.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rack: Option<String>,
    /// Durability: `replicated` (page cache, Kafka's default) or `fsync`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_flush: Option<String>,
    /// Partitions of a topic created without a count (Kafka's num.partitions).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_partitions: Option<i32>,
    /// How often retention runs (Kafka's log.retention.check.interval.ms).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_retention_check_interval_ms: Option<u64>,
    /// Server log format: `text` (default) or `json` (one JSON object per line).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<String>,
    /// Worker threads of the node's async runtime, which serve every connection and
    /// request and do the page-cache I/O (Kafka's num.network.threads and num.io.threads
    /// in one; Redpanda's --smp). Default: the machine's cores. Nodes sharing a machine
    /// do best splitting its cores between them.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub num_io_threads: Option<usize>,
}

/// The gRPC listeners and what they advertise.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerSection {
    /// gRPC listen address.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Host clients are told to connect to (defaults to the listen host).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertised_host: Option<String>,
    /// A second gRPC listener for clients outside the cluster's network, e.g. the host
    /// of a docker compose cluster (Kafka's EXTERNAL listener).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_listen: Option<String>,
    /// host:port that clients of the external listener are told to connect to
    /// (default: the advertised host and the external listen port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_advertised_address: Option<String>,
    /// host:port other nodes' consoles and users are told to open this node's console
    /// at (default: the advertised host and the HTTP listen port); e.g. in docker
    /// compose, the host's published port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_advertised_address: Option<String>,
    /// HTTP listen address for metrics, health checks and the web console ('' for
    /// none; default 0.0.0.0:9644).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen: Option<String>,
    /// The HTTP listener's security protocol: PLAINTEXT (default) or SSL (HTTPS with the
    /// certificate of ssl_keystore_location, for the console's sign-in and /metrics).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_security_protocol: Option<String>,
    /// Most per-partition series /metrics exports (log size, offsets, lag per partition);
    /// beyond it only per-topic and per-broker aggregates remain (default 10000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_partition_series_max: Option<usize>,
    /// The client gRPC ports' (--listen, --external-listen) security protocol: PLAINTEXT
    /// (default) or SSL, with the certificate of ssl_keystore_location and, for client
    /// certificates, ssl_client_auth and ssl_truststore_location.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc_security_protocol: Option<String>,
    /// Node-to-node gRPC (Kafka's security.inter.broker.protocol): PLAINTEXT (default) or
    /// SSL, mutual TLS on the controller listener (Raft, broker sessions, forwarded
    /// calls) and for replica fetches: every node presents ssl_keystore_location's
    /// certificate and checks its peers' against ssl_truststore_location.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_inter_broker_protocol: Option<String>,
}

/// The Kafka wire-protocol listeners.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct KafkaSection {
    /// Kafka wire-protocol listeners, NAME://host:port,... (Kafka's `listeners`);
    /// default PLAINTEXT://0.0.0.0:9092, empty for none.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_listeners: Option<String>,
    /// What each Kafka listener tells clients to connect to, NAME://host:port,...
    /// (Kafka's `advertised.listeners`); default: the advertised host and the bound port.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_advertised_listeners: Option<String>,
    /// Close Kafka connections idle this long; a started request must arrive whole
    /// within it too (Kafka's connections.max.idle.ms).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_max_idle_ms: Option<u64>,
    /// A SASL session lasts this long; then the client re-authenticates on its
    /// connection (KIP-368) or is disconnected (Kafka's connections.max.reauth.ms;
    /// default 0: sessions do not expire).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections_max_reauth_ms: Option<u64>,
    /// Each Kafka listener's security protocol, NAME:PROTOCOL,... (Kafka's
    /// listener.security.protocol.map): PLAINTEXT or SASL_PLAINTEXT; a listener named
    /// after a protocol uses it, any other PLAINTEXT.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener_security_protocol_map: Option<String>,
    /// What SASL listeners offer, comma-separated (Kafka's sasl.enabled.mechanisms;
    /// default PLAIN,SCRAM-SHA-256,SCRAM-SHA-512).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_enabled_mechanisms: Option<String>,
    /// PEM file with the private key and certificate chain of TLS listeners (Kafka's SSL
    /// and SASL_SSL, gRPC with SSL; Kafka's ssl.keystore.location with
    /// ssl.keystore.type=PEM); with inter-broker SSL, this node's client certificate too.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_keystore_location: Option<PathBuf>,
    /// PEM file with the CAs that client certificates, and with inter-broker SSL other
    /// nodes' certificates, are checked against (Kafka's ssl.truststore.location).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_truststore_location: Option<PathBuf>,
    /// Client certificates on TLS listeners: none, requested or required (Kafka's
    /// ssl.client.auth; default none).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_client_auth: Option<String>,
    /// How a client certificate's subject becomes its principal (Kafka's
    /// ssl.principal.mapping.rules): RULE:pattern/replacement/[LU] entries and DEFAULT
    /// (the whole distinguished name, CN=alice,OU=eng), separated by commas.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_principal_mapping_rules: Option<String>,
    /// Largest Kafka request accepted (Kafka's socket.request.max.bytes).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket_request_max_bytes: Option<usize>,
    /// Create a topic that a client's Metadata request (or produce) names and that does
    /// not exist, with the defaults (Kafka's auto.create.topics.enable; default true).
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_create_topics_enable: Option<bool>,
    /// The authorizer (Kafka's authorizer.class.name): empty for none, every request
    /// allowed (the default); org.apache.kafka.metadata.authorizer.StandardAuthorizer
    /// (or StandardAuthorizer) checks every request against the ACLs.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorizer_class_name: Option<String>,
    /// Principals every check allows, separated by ';' (Kafka's super.users), e.g.
    /// User:admin;User:ops.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub super_users: Option<String>,
    /// Allow a request on a resource no ACL names (Kafka's
    /// allow.everyone.if.no.acl.found; default false).
    #[arg(long, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_everyone_if_no_acl_found: Option<bool>,
}

/// The controller quorum and broker sessions.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuorumSection {
    /// The controller quorum, id@host:port,... with each voter's controller listener
    /// (Kafka's controller.quorum.voters); default: this node alone.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_voters: Option<String>,
    /// Where a controller serves the quorum's Raft traffic and broker sessions, on a port
    /// of its own (Kafka's CONTROLLER listener); it may be bound to a private interface.
    /// Default: the listen address's host and the port of this node's voter entry (alone:
    /// the listen port + 1). The client port never serves Raft.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_listen: Option<String>,
    /// A file holding the controller quorum's shared secret: every Raft call between
    /// voters presents it, and calls without it are refused (set the same file on every
    /// voter; without one, only the voter set is checked).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub controller_secret_file: Option<PathBuf>,
    /// Broker heartbeat interval to the active controller.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_ms: Option<u64>,
    /// A broker without a heartbeat for this long is fenced.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_timeout_ms: Option<u64>,
    /// Replication factor of topics created without one (capped at the live brokers).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_replication_factor: Option<i32>,
    /// How often leadership moves back to preferred replicas; 0 turns it off (Kafka's
    /// leader.imbalance.check.interval and auto.leader.rebalance.enable).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub leader_imbalance_check_interval_ms: Option<u64>,
    /// Keep replicas and preferred leaders even over the brokers at all times (a broker
    /// that joins takes its share), and move the replicas of a broker that stays down
    /// longer than auto_balance_down_after_ms away (Redpanda's continuous partition
    /// balancing). `--auto-balance` alone means true; default false.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_balance: Option<bool>,
    /// With auto_balance: how long a broker may stay down before its replicas move
    /// elsewhere (Redpanda's partition_autobalancing_node_availability_timeout_sec;
    /// default 900000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_balance_down_after_ms: Option<u64>,
    /// The most partitions the balancer moves at once, for `kavka cluster balance`,
    /// decommissions and auto_balance (Redpanda's
    /// partition_autobalancing_concurrent_moves; default 10).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub balancer_concurrent_moves: Option<usize>,
}

/// Replication, fetch sizes and producer state.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicationSection {
    /// A follower not caught up with its leader for this long leaves the ISR.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_lag_time_max_ms: Option<u64>,
    /// A caught-up follower joins the ISR only if its last fetch is at most this old
    /// (Kavka's own; capped by replica.lag.time.max.ms; default 2000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_isr_join_fetch_max_ms: Option<u64>,
    /// An ISR change proposed to the controller and not seen in metadata this long may
    /// be proposed again (Kavka's own; the part Kafka's controller.socket.timeout.ms
    /// plays; default 5000).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alter_partition_timeout_ms: Option<u64>,
    /// How often the high watermarks are written to the data dir's
    /// replication-offset-checkpoint (Kafka's replica.high.watermark.checkpoint.interval.ms;
    /// default 5000). Each write is an fsync; after a crash the marks start from the last
    /// one and catch up from the leaders.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_high_watermark_checkpoint_interval_ms: Option<u64>,
    /// How long a follower's fetch waits at its leader for new records before it is
    /// answered empty (Kafka's replica.fetch.wait.max.ms; default 500; less than
    /// replica_lag_time_max_ms, or a quiet partition's followers would leave the ISR).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_fetch_wait_max_ms: Option<u64>,
    /// The most a follower's fetch takes of one partition (Kafka's
    /// replica.fetch.max.bytes; default 1 MiB; at least one batch goes anyway).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_fetch_max_bytes: Option<usize>,
    /// The most one consumer fetch answers, whatever it asks (Kafka's fetch.max.bytes;
    /// default 55 MiB; at least one batch goes anyway).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fetch_max_bytes: Option<usize>,
    /// The most one replica fetch answers (Kafka's replica.fetch.response.max.bytes;
    /// default 10 MiB).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replica_fetch_response_max_bytes: Option<usize>,
    /// Forget an idempotent producer this long after its last batch (Kafka's
    /// producer.id.expiration.ms; default a day).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub producer_id_expiration_ms: Option<u64>,
}

/// Consumer groups and `__consumer_offsets`.
#[derive(Args, Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupSection {
    /// Partitions of __consumer_offsets, fixed when it is first created.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets_topic_num_partitions: Option<i32>,
    /// Replication factor of __consumer_offsets (capped at the registered brokers).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offsets_topic_replication_factor: Option<i32>,
    /// How long the first rebalance of an empty group waits for more members.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_initial_rebalance_delay_ms: Option<u64>,
    /// Smallest session.timeout.ms a group member may ask for.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_min_session_timeout_ms: Option<i32>,
    /// KIP-848 groups: a member silent this long is removed.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_session_timeout_ms: Option<u64>,
    /// KIP-848 groups: how often members are asked to heartbeat.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_consumer_heartbeat_interval_ms: Option<i32>,
}

/// The names of a struct's fields, as serde sees them (what `deserialize_struct` is told).
fn field_names<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
    use serde::de::{Error, Visitor, value};
    struct Fields<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Fields<'_> {
        type Error = value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, value::Error> {
            Err(value::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, value::Error> {
            *self.0 = fields;
            Err(value::Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    // Always the error above: only the field list is wanted.
    let _ = T::deserialize(Fields(&mut fields));
    fields
}

impl ServerConfig {
    /// Every config key, in section order.
    pub fn keys() -> Vec<&'static str> {
        [
            field_names::<NodeSection>(),
            field_names::<ListenerSection>(),
            field_names::<KafkaSection>(),
            field_names::<QuorumSection>(),
            field_names::<ReplicationSection>(),
            field_names::<GroupSection>(),
        ]
        .concat()
    }

    /// The merged layers, section by section; an unknown key or a value of the wrong type
    /// is an error naming the key and its source.
    fn extract(figment: &Figment) -> anyhow::Result<Self> {
        let known = Self::keys();
        let merged: BTreeMap<String, Value> = figment.extract().map_err(explain)?;
        if let Some(key) = merged.keys().find(|k| !known.contains(&k.as_str())) {
            bail!(
                "unknown field `{key}` in {}: expected one of {}",
                figment
                    .find_metadata(key)
                    .map_or_else(|| "the config".to_string(), describe_source),
                known.join(", ")
            );
        }
        // Lossy: an environment variable's text becomes the number or bool its key wants.
        Ok(Self {
            node: figment.extract_lossy().map_err(explain)?,
            listeners: figment.extract_lossy().map_err(explain)?,
            kafka: figment.extract_lossy().map_err(explain)?,
            quorum: figment.extract_lossy().map_err(explain)?,
            replication: figment.extract_lossy().map_err(explain)?,
            group: figment.extract_lossy().map_err(explain)?,
        })
    }
}

/// Where a value came from, for an error message.
fn describe_source(md: &Metadata) -> String {
    match &md.source {
        Some(source) => format!("{} {source}", md.name),
        None => md.name.to_string(),
    }
}

/// A figment error as one message per failure: the key as its source spells it
/// (`node_id`, `KAVKA_NODE_ID`, `--node-id`), the source, and what is wrong.
fn explain(e: figment::Error) -> anyhow::Error {
    let lines: Vec<String> = e
        .into_iter()
        .map(|e| {
            let key = match (&e.metadata, &e.profile) {
                (Some(md), Some(profile)) => {
                    let name = md.interpolate(profile, &e.path);
                    let prefix = format!("{profile}.");
                    name.strip_prefix(&prefix)
                        .map_or(name.clone(), str::to_string)
                }
                _ => e.path.join("."),
            };
            let source = e
                .metadata
                .as_ref()
                .map_or_else(|| "the config".to_string(), describe_source);
            if key.is_empty() {
                format!("{source}: {}", e.kind)
            } else {
                format!("invalid value for `{key}` in {source}: {}", e.kind)
            }
        })
        .collect();
    anyhow::anyhow!(lines.join("; "))
}

/// One layer of keys with a name for messages: the environment or the flags.
struct Layer {
    metadata: Metadata,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The environment variable of a config key: `node_id` is `KAVKA_NODE_ID`.
pub fn env_var(key: &str) -> String {
    format!("KAVKA_{}", key.to_ascii_uppercase())
}

/// The flag of a config key: `node_id` is `--node-id`.
fn flag(key: &str) -> String {
    format!("--{}", key.replace('_', "-"))
}

impl Layer {
    /// `(variable, value)` pairs; only the variables of config keys count (KAVKA_BOOTSTRAP
    /// and KAVKA_CONFIG are not keys). Values stay text, typed on extraction; an empty
    /// value is a value (an empty `KAVKA_KAFKA_LISTENERS` means no Kafka listener).
    fn env(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let by_var: BTreeMap<String, &str> = ServerConfig::keys()
            .into_iter()
            .map(|k| (env_var(k), k))
            .collect();
        let dict = vars
            .into_iter()
            .filter_map(|(var, value)| {
                let key = by_var.get(&var)?;
                Some((key.to_string(), Value::from(value)))
            })
            .collect();
        Self {
            metadata: Metadata::named("the environment")
                .interpolater(|_, keys| env_var(&keys.join("_"))),
            dict,
        }
    }

    /// The process's `KAVKA_*` variables of config keys; one that is not UTF-8 is an error.
    fn process_env() -> anyhow::Result<Self> {
        let mut vars = Vec::new();
        for key in ServerConfig::keys() {
            let var = env_var(key);
            match std::env::var(&var) {
                Ok(v) => vars.push((var, v)),
                Err(std::env::VarError::NotPresent) => {}
                Err(std::env::VarError::NotUnicode(_)) => {
                    bail!("environment variable {var} is not valid UTF-8")
                }
            }
        }
        Ok(Self::env(vars))
    }

    fn flags(flags: &ServerConfig) -> anyhow::Result<Self> {
        let dict = Value::serialize(flags)
            .map_err(explain)?
            .into_dict()
            .context("the flags do not serialize to a table")?;
        Ok(Self {
            metadata: Metadata::named("the command line")
                .interpolater(|_, keys| flag(&keys.join("_"))),
            dict,
        })
    }
}

/// File < environment < flags: the merged keys, typed and checked for unknown keys.
fn layered(file: Option<&Path>, env: Layer, flags: &ServerConfig) -> anyhow::Result<ServerConfig> {
    let mut figment = Figment::new();
    if let Some(path) = file {
        // Read first: a missing file is an error, not an empty layer.
        std::fs::metadata(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        figment = figment.merge(figment::providers::Toml::file_exact(path));
    }
    let figment = figment.merge(env).merge(Layer::flags(flags)?);
    ServerConfig::extract(&figment).with_context(|| match file {
        Some(p) => format!("invalid config (file {})", p.display()),
        None => "invalid config".to_string(),
    })
}

/// How the server writes its log (`log_format`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// `None` is the default; anything but `text` and `json` is refused, naming the value.
    pub fn parse(value: Option<&str>) -> anyhow::Result<Self> {
        match value.map(str::trim) {
            None | Some("text") => Ok(LogFormat::Text),
            Some("json") => Ok(LogFormat::Json),
            Some(other) => bail!("invalid log format '{other}': expected text or json"),
        }
    }
}

/// The most worker threads `num_io_threads` may ask for.
const MAX_IO_THREADS: usize = 1024;

/// What the process needs before its async runtime starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// How the server writes its log.
    pub log_format: LogFormat,
    /// The runtime's worker threads (`None`: the machine's cores).
    pub io_threads: Option<NonZeroUsize>,
}

impl ProcessSettings {
    fn resolve(node: &NodeSection) -> anyhow::Result<Self> {
        let io_threads = match node.num_io_threads {
            None => None,
            Some(n @ 1..=MAX_IO_THREADS) => NonZeroUsize::new(n),
            Some(n) => bail!("invalid num_io_threads {n}: expected 1 to {MAX_IO_THREADS}"),
        };
        Ok(Self {
            log_format: LogFormat::parse(node.log_format.as_deref())?,
            io_threads,
        })
    }
}

impl ServerArgs {
    /// The log format and the runtime's threads, resolved as every key is (file,
    /// environment, flags), for setting up logging and the runtime before the rest is
    /// resolved and reported.
    pub fn process_settings(&self) -> anyhow::Result<ProcessSettings> {
        let c = layered(self.config.as_deref(), Layer::process_env()?, &self.flags)?;
        ProcessSettings::resolve(&c.node)
    }

    /// `kavka server`: the file named by `--config`/`KAVKA_CONFIG`, the process's
    /// environment and the flags.
    pub fn resolve(self) -> anyhow::Result<Settings> {
        self.resolve_with_env(Layer::process_env()?)
    }

    fn resolve_with_env(self, env: Layer) -> anyhow::Result<Settings> {
        Settings::resolve(layered(self.config.as_deref(), env, &self.flags)?)
    }

    /// Flags only, no file or environment (`kavka dev`).
    pub fn resolve_flags_only(self) -> anyhow::Result<Settings> {
        self.resolve_with_env(Layer::env([]))
    }
}

/// `host:port` with a non-empty host.
fn host_port(a: &str) -> Option<(String, u16)> {
    a.rsplit_once(':')
        .filter(|(h, _)| !h.is_empty() && !h.contains(','))
        .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
}

/// The resolved settings of a node.
#[derive(Debug)]
pub struct Settings {
    pub broker: BrokerConfig,
    pub listen: SocketAddr,
    pub external_listen: Option<SocketAddr>,
    /// What the HTTP listener advertises (`None`: the advertised host and the bound port).
    pub http_advertised: Option<(String, u16)>,
    /// The HTTP listener (metrics, health, console); `None` when turned off with ''.
    pub http_listen: Option<SocketAddr>,
    /// The cap on per-partition metric series (`metrics_partition_series_max`).
    pub metrics_partition_series_max: usize,
    pub log_format: LogFormat,
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
    /// TLS of the client gRPC ports (`grpc_security_protocol=SSL`).
    pub grpc_tls: Option<Arc<kavka_tls::rustls::ServerConfig>>,
    /// HTTPS on the HTTP listener (`http_security_protocol=SSL`).
    pub http_tls: Option<Arc<kavka_tls::rustls::ServerConfig>>,
    /// Mutual TLS of the controller listener (`security_inter_broker_protocol=SSL`).
    pub controller_tls: Option<Arc<kavka_tls::rustls::ServerConfig>>,
    /// How this node reaches other nodes' controller listeners.
    pub peer_transport: kavka_tls::Transport,
    pub session_timeout_ms: u64,
    pub default_replication_factor: i32,
    pub leader_imbalance_check_interval_ms: u64,
    /// `auto_balance`: how long a broker may be down before its replicas move; None: off.
    pub auto_balance_down_after_ms: Option<u64>,
    pub balancer_concurrent_moves: usize,
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
        if voters.insert(id, VoterNode::new(addr)).is_some() {
            bail!("controller voter {id} is listed twice in '{s}'");
        }
    }
    if voters.is_empty() {
        bail!("the controller voter list '{s}' is empty");
    }
    Ok(voters)
}

/// Parses an optional `ip:port`; `what` and `example` name it in the error.
fn parse_addr(
    value: Option<String>,
    what: &str,
    example: &str,
) -> anyhow::Result<Option<SocketAddr>> {
    value
        .map(|a| {
            a.parse::<SocketAddr>()
                .with_context(|| format!("invalid {what} '{a}': expected ip:port, e.g. {example}"))
        })
        .transpose()
}

impl Settings {
    /// Checks the merged keys and fills in the defaults.
    fn resolve(c: ServerConfig) -> anyhow::Result<Self> {
        let ServerConfig {
            node,
            listeners,
            kafka: kafka_keys,
            quorum,
            replication,
            group: group_keys,
        } = c;
        let authorizer_config = authorizer(&kafka_keys)?;
        // Checked here too: `kavka dev` resolves no process settings of its own.
        let process = ProcessSettings::resolve(&node)?;
        let node_id = node.node_id.unwrap_or(1);
        if node_id < 0 {
            bail!("node id must be >= 0, got {node_id}");
        }
        let data_dir = node
            .data_dir
            .unwrap_or_else(|| PathBuf::from("./kavka-data"));
        let listen_str = listeners.listen.unwrap_or_else(|| "0.0.0.0:9093".into());
        let listen: SocketAddr = listen_str.parse().with_context(|| {
            format!("invalid listen address '{listen_str}': expected ip:port, e.g. 0.0.0.0:9093")
        })?;
        let flush_str = node.log_flush.unwrap_or_else(|| "replicated".into());
        let flush = FlushPolicy::from_name(&flush_str).with_context(|| {
            format!("invalid log flush '{flush_str}': expected replicated or fsync")
        })?;
        let advertised_host = listeners.advertised_host.unwrap_or_else(|| {
            if listen.ip().is_unspecified() {
                "127.0.0.1".into()
            } else {
                listen.ip().to_string()
            }
        });
        let external_listen = parse_addr(
            listeners.external_listen,
            "external listen address",
            "0.0.0.0:19093",
        )?;
        let http_listen = parse_addr(
            Some(
                listeners
                    .http_listen
                    .unwrap_or_else(|| "0.0.0.0:9644".into()),
            )
            .filter(|a| !a.is_empty()),
            "HTTP listen address",
            "0.0.0.0:9644",
        )?;
        let metrics_partition_series_max = listeners
            .metrics_partition_series_max
            .unwrap_or(kavka_broker::metrics::PARTITION_SERIES_MAX_DEFAULT);
        let log_format = process.log_format;
        let external_advertised = match (listeners.external_advertised_address, external_listen) {
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
        let http_advertised = match (listeners.http_advertised_address, http_listen) {
            (None, _) => None,
            (Some(a), Some(_)) => Some(host_port(&a).with_context(|| {
                format!("invalid HTTP advertised address '{a}': expected host:port")
            })?),
            (Some(a), None) => {
                bail!("HTTP advertised address '{a}' given with the HTTP listener off")
            }
        };
        let kafka_listeners = parse_listeners(
            &kafka_keys
                .kafka_listeners
                .unwrap_or_else(|| "PLAINTEXT://0.0.0.0:9092".into()),
        )
        .context("invalid --kafka-listeners")?;
        // Unset: each listener advertises the advertised host and its bound port.
        let explicit = parse_listeners(
            kafka_keys
                .kafka_advertised_listeners
                .as_deref()
                .unwrap_or(""),
        )
        .context("invalid --kafka-advertised-listeners")?;
        let kafka_advertised =
            kavka_kafka::listeners::advertised(&kafka_listeners, &explicit, &advertised_host)
                .context("invalid --kafka-advertised-listeners")?;
        let mut kafka = KafkaConfig {
            log_levels: crate::log_levels::installed(),
            ..KafkaConfig::default()
        };
        if let Some(ms) = kafka_keys.connections_max_idle_ms {
            kafka.connections_max_idle = Duration::from_millis(ms.max(100));
        }
        kafka.connections_max_reauth = kafka_keys
            .connections_max_reauth_ms
            .filter(|ms| *ms > 0)
            .map(Duration::from_millis);
        if let Some(b) = kafka_keys.socket_request_max_bytes {
            kafka.socket_request_max_bytes = b.max(1024);
        }
        if let Some(on) = kafka_keys.auto_create_topics_enable {
            kafka.auto_create_topics_enable = on;
        }
        let protocols = kavka_kafka::listeners::security_protocols(
            &kafka_listeners,
            kafka_keys
                .listener_security_protocol_map
                .as_deref()
                .unwrap_or(""),
        )
        .context("invalid --listener-security-protocol-map")?;
        kafka.sasl_listeners = protocols
            .iter()
            .filter(|(_, p)| p.uses_sasl())
            .map(|(name, _)| name.clone())
            .collect();
        kafka.tls_listeners = protocols
            .iter()
            .filter(|(_, p)| p.uses_tls())
            .map(|(name, _)| name.clone())
            .collect();
        if let Some(rules) = &kafka_keys.ssl_principal_mapping_rules {
            kafka.ssl_principal_mapping = kavka_kafka::principal::MappingRules::parse(rules)?;
        }
        let client_auth = match kafka_keys.ssl_client_auth.as_deref() {
            None => kavka_kafka::tls::ClientAuth::None,
            Some(s) => kavka_kafka::tls::ClientAuth::from_name(s).with_context(|| {
                format!("invalid --ssl-client-auth '{s}': expected none, requested or required")
            })?,
        };
        let roles = node.roles.unwrap_or_else(|| "controller,broker".into());
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
        // The gRPC listeners' TLS first: its settings are checked before any file is read.
        let grpc = grpc_security(
            &(
                listeners.grpc_security_protocol.clone(),
                listeners.security_inter_broker_protocol.clone(),
            ),
            kafka_keys.ssl_keystore_location.as_deref(),
            kafka_keys.ssl_truststore_location.as_deref(),
            client_auth,
            broker_role,
        )?;
        let http_tls = http_security(
            listeners.http_security_protocol.as_deref(),
            kafka_keys.ssl_keystore_location.as_deref(),
        )?;
        match (
            &kafka_keys.ssl_keystore_location,
            kafka.tls_listeners.first(),
        ) {
            (Some(keystore), _) => {
                kafka.tls = Some(
                    kavka_kafka::tls::server_config(
                        keystore,
                        kafka_keys.ssl_truststore_location.as_deref(),
                        client_auth,
                    )
                    .context("invalid TLS setup for the Kafka listeners")?,
                );
            }
            (None, Some(listener)) => bail!(
                "Kafka listener {listener} uses TLS but no --ssl-keystore-location is set (a PEM file with its key and certificate chain; deploy/certs.sh makes one)"
            ),
            (None, None) => {}
        }
        if let Some(m) = kafka_keys.sasl_enabled_mechanisms {
            let mechanisms: Vec<String> = m
                .split(',')
                .map(|s| s.trim().to_ascii_uppercase())
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(bad) = mechanisms
                .iter()
                .find(|m| !kavka_kafka::sasl::DEFAULT_MECHANISMS.contains(&m.as_str()))
            {
                bail!(
                    "invalid --sasl-enabled-mechanisms: '{bad}' is not served (expected PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"
                );
            }
            if mechanisms.is_empty() && !kafka.sasl_listeners.is_empty() {
                bail!(
                    "--sasl-enabled-mechanisms is empty but listener {} uses SASL",
                    kafka.sasl_listeners[0]
                );
            }
            kafka.sasl_enabled_mechanisms = mechanisms;
        }
        let num_partitions = node.num_partitions.unwrap_or(1);
        if num_partitions <= 0 {
            bail!("num partitions must be > 0, got {num_partitions}");
        }
        let mut broker = BrokerConfig::new(BrokerId(node_id), data_dir);
        broker.advertised_host = advertised_host;
        broker.advertised_port = listen.port();
        broker.external_advertised = external_advertised;
        broker.flush = flush;
        broker.default_partitions = num_partitions;
        if let Some(ms) = node.log_retention_check_interval_ms {
            broker.retention_check_interval_ms = ms;
        }
        broker.rack = node.rack.filter(|r| !r.is_empty());
        if let Some(ms) = quorum.heartbeat_interval_ms {
            broker.heartbeat_interval_ms = ms.max(10);
        }
        if let Some(ms) = replication.replica_lag_time_max_ms {
            broker.replica_lag_time_max_ms = ms.max(100);
        }
        if let Some(ms) = replication.replica_isr_join_fetch_max_ms {
            broker.replica_isr_join_fetch_max_ms = ms.max(10);
        }
        if let Some(ms) = replication.alter_partition_timeout_ms {
            broker.alter_partition_timeout_ms = ms.max(100);
        }
        if let Some(ms) = replication.replica_high_watermark_checkpoint_interval_ms {
            broker.hw_checkpoint_interval_ms = ms.max(100);
        }
        if let Some(ms) = replication.replica_fetch_wait_max_ms {
            broker.replica_fetch_wait_max_ms = ms;
        }
        if broker.replica_fetch_wait_max_ms >= broker.replica_lag_time_max_ms {
            bail!(
                "replica_fetch_wait_max_ms ({}) must be less than replica_lag_time_max_ms ({}): \
                 a follower waiting that long at its leader would leave the ISR",
                broker.replica_fetch_wait_max_ms,
                broker.replica_lag_time_max_ms
            );
        }
        if let Some(b) = replication.replica_fetch_max_bytes {
            broker.replica_fetch_max_bytes = b.max(1024);
        }
        if let Some(b) = replication.fetch_max_bytes {
            broker.fetch_max_bytes = b.max(1024);
        }
        if let Some(b) = replication.replica_fetch_response_max_bytes {
            broker.replica_fetch_response_max_bytes = b.max(1024);
        }
        if let Some(ms) = replication.producer_id_expiration_ms {
            broker.producer_id_expiration_ms = i64::try_from(ms).unwrap_or(i64::MAX).max(1);
        }
        broker.authorizer = authorizer_config;
        let group = group_config(group_keys)?;
        let controller_secret = match quorum.controller_secret_file {
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
        let controller_listen_arg = parse_addr(
            quorum.controller_listen,
            "controller listen address",
            "0.0.0.0:9094",
        )?;
        let voters = match quorum.controller_voters {
            Some(v) => parse_voters(&v)?,
            None => {
                let port = match controller_listen_arg {
                    Some(a) => a.port(),
                    None => default_controller_port(listen.port())?,
                };
                BTreeMap::from([(
                    node_id as u64,
                    VoterNode::new(format!("{}:{port}", broker.advertised_host)),
                )])
            }
        };
        let controller_listen = if controller {
            match (voters.get(&(node_id as u64)), controller_listen_arg) {
                (Some(own), _) => Some(controller_listener(
                    node_id,
                    &own.addr,
                    controller_listen_arg,
                    listen,
                )?),
                // Not a static voter: an observer of the quorum until `kavka quorum
                // add-voter` adds it at its controller listener (KIP-853).
                (None, Some(a)) => Some(a),
                (None, None) => bail!(
                    "node {node_id} has the controller role but is not in the controller voters \
                     {:?}: to join the quorum at run time, start it with --controller-listen \
                     HOST:PORT (and --controller-voters naming the current voters, to find \
                     the quorum), then run `kavka quorum add-voter {node_id} --address HOST:PORT`",
                    voters.keys().collect::<Vec<_>>()
                ),
            }
        } else {
            if let Some(a) = controller_listen_arg {
                bail!(
                    "--controller-listen {a} is for nodes with the controller role (this one's roles: broker)"
                );
            }
            None
        };
        broker.client_port_transport = grpc.client_port_transport;
        // Under an authorizer, nodes prove to each other with the shared secret that a
        // replication fetch is the cluster's own, and an operator presents it to make the
        // first users and ACLs.
        if broker.authorizer.is_some() && controller_secret.is_none() {
            bail!(
                "authorizer_class_name needs controller_secret_file (the same file on every \
                 node): replication between brokers presents it, and `kavka \
                 --cluster-secret-file` presents it to create the first users and ACLs"
            );
        }
        let session_timeout_ms = quorum.session_timeout_ms.unwrap_or(2500);
        // The broker's leader lease lasts one session timeout from an answered heartbeat.
        broker.session_timeout_ms = session_timeout_ms;
        Ok(Settings {
            broker,
            listen,
            external_listen,
            http_advertised,
            http_listen,
            metrics_partition_series_max,
            log_format,
            kafka_listeners,
            kafka_advertised,
            kafka,
            controller,
            broker_role,
            voters,
            controller_listen,
            controller_secret,
            grpc_tls: grpc.client_port,
            http_tls,
            controller_tls: grpc.controller,
            peer_transport: grpc.peers,
            session_timeout_ms,
            default_replication_factor: quorum.default_replication_factor.unwrap_or(3),
            leader_imbalance_check_interval_ms: quorum
                .leader_imbalance_check_interval_ms
                .unwrap_or(10_000),
            auto_balance_down_after_ms: quorum
                .auto_balance
                .unwrap_or(false)
                .then(|| quorum.auto_balance_down_after_ms.unwrap_or(900_000)),
            balancer_concurrent_moves: match quorum.balancer_concurrent_moves {
                Some(0) => bail!("balancer_concurrent_moves must be at least 1"),
                n => n.unwrap_or(10),
            },
            group,
        })
    }
}

/// The gRPC listeners' and channels' TLS (`grpc_security_protocol`,
/// `security_inter_broker_protocol`).
struct GrpcSecurity {
    client_port: Option<Arc<kavka_tls::rustls::ServerConfig>>,
    controller: Option<Arc<kavka_tls::rustls::ServerConfig>>,
    peers: kavka_tls::Transport,
    client_port_transport: kavka_tls::Transport,
}

fn protocol(value: Option<&str>, key: &str) -> anyhow::Result<kavka_tls::Protocol> {
    match value {
        None => Ok(kavka_tls::Protocol::Plaintext),
        Some(v) => kavka_tls::Protocol::from_name(v)
            .with_context(|| format!("invalid --{key} '{v}': expected PLAINTEXT or SSL")),
    }
}

/// Checks the gRPC security keys against the TLS files and builds what serves and dials
/// with them; every file is read now.
fn grpc_security(
    (client_port, inter_broker): &(Option<String>, Option<String>),
    keystore: Option<&Path>,
    truststore: Option<&Path>,
    client_auth: kavka_tls::ClientAuth,
    broker_role: bool,
) -> anyhow::Result<GrpcSecurity> {
    use kavka_tls::{ClientAuth, ClientTlsFiles, Protocol, Transport};
    let client_port = protocol(client_port.as_deref(), "grpc-security-protocol")?;
    let inter_broker = protocol(inter_broker.as_deref(), "security-inter-broker-protocol")?;
    let mut out = GrpcSecurity {
        client_port: None,
        controller: None,
        peers: Transport::plaintext(),
        client_port_transport: Transport::plaintext(),
    };
    if client_port == Protocol::Plaintext && inter_broker == Protocol::Plaintext {
        return Ok(out);
    }
    let Some(keystore) = keystore else {
        let key = if client_port == Protocol::Ssl {
            "--grpc-security-protocol=SSL"
        } else {
            "--security-inter-broker-protocol=SSL"
        };
        bail!(
            "{key} needs --ssl-keystore-location (a PEM file with this node's key and certificate chain; deploy/certs.sh makes one)"
        );
    };
    if inter_broker == Protocol::Ssl {
        if broker_role && client_port == Protocol::Plaintext {
            bail!(
                "--security-inter-broker-protocol=SSL needs --grpc-security-protocol=SSL on a broker: replicas fetch from their leaders' client gRPC port"
            );
        }
        let Some(truststore) = truststore else {
            bail!(
                "--security-inter-broker-protocol=SSL is mutual TLS: it needs --ssl-truststore-location (the CAs that sign the nodes' certificates)"
            );
        };
        out.controller = Some(
            kavka_tls::grpc_server_config(keystore, Some(truststore), ClientAuth::Required)
                .context("invalid TLS setup for the controller listener")?,
        );
        out.peers = Transport::tls(&ClientTlsFiles {
            ca: Some(truststore.to_path_buf()),
            cert: Some(keystore.to_path_buf()),
            key: None,
            server_name: None,
        })
        .context("invalid TLS setup for calls to other nodes")?;
    }
    if client_port == Protocol::Ssl {
        out.client_port = Some(
            kavka_tls::grpc_server_config(keystore, truststore, client_auth)
                .context("invalid TLS setup for the gRPC listeners")?,
        );
        if broker_role {
            // Replica fetches present this node's certificate: ssl_client_auth may ask.
            out.client_port_transport = Transport::tls(&ClientTlsFiles {
                ca: truststore.map(Path::to_path_buf),
                cert: Some(keystore.to_path_buf()),
                key: None,
                server_name: None,
            })
            .context(
                "invalid TLS setup for replica fetches (leaders' certificates are checked against --ssl-truststore-location, else the system's CAs)",
            )?;
        }
    }
    Ok(out)
}

/// HTTPS for the HTTP listener (`http_security_protocol=SSL`): the node's certificate,
/// read now; no client certificates (the console signs users in with their passwords).
fn http_security(
    value: Option<&str>,
    keystore: Option<&Path>,
) -> anyhow::Result<Option<Arc<kavka_tls::rustls::ServerConfig>>> {
    if protocol(value, "http-security-protocol")? == kavka_tls::Protocol::Plaintext {
        return Ok(None);
    }
    let Some(keystore) = keystore else {
        bail!(
            "--http-security-protocol=SSL needs --ssl-keystore-location (a PEM file with this node's key and certificate chain; deploy/certs.sh makes one)"
        );
    };
    let config = kavka_tls::server_config(keystore, None, kavka_tls::ClientAuth::None)
        .context("invalid TLS setup for the HTTP listener")?;
    Ok(Some(config))
}

/// The authorizer's settings, if `authorizer_class_name` turns it on; `super_users` or
/// `allow_everyone_if_no_acl_found` without an authorizer is a mistake worth naming.
fn authorizer(keys: &KafkaSection) -> anyhow::Result<Option<AuthorizerConfig>> {
    let class = keys.authorizer_class_name.as_deref().unwrap_or("");
    let enabled = AuthorizerConfig::enabled_by(class).context("invalid authorizer_class_name")?;
    let super_users =
        AuthorizerConfig::parse_super_users(keys.super_users.as_deref().unwrap_or(""))
            .context("invalid super_users (Kafka's super.users: User:name;User:other)")?;
    if !enabled {
        if !super_users.is_empty() || keys.allow_everyone_if_no_acl_found.is_some() {
            bail!(
                "super_users and allow_everyone_if_no_acl_found need an authorizer: set \
                 authorizer_class_name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
            );
        }
        return Ok(None);
    }
    Ok(Some(AuthorizerConfig {
        super_users,
        allow_everyone_if_no_acl_found: keys.allow_everyone_if_no_acl_found.unwrap_or(false),
    }))
}

/// The group coordinator's settings: the defaults, with the keys given checked in.
fn group_config(keys: GroupSection) -> anyhow::Result<GroupConfig> {
    let mut group = GroupConfig::default();
    if let Some(n) = keys.offsets_topic_num_partitions {
        if n <= 0 {
            bail!("offsets topic num partitions must be > 0, got {n}");
        }
        group.offsets_topic_num_partitions = n;
    }
    if let Some(n) = keys.offsets_topic_replication_factor {
        if n <= 0 {
            bail!("offsets topic replication factor must be > 0, got {n}");
        }
        group.offsets_topic_replication_factor = n;
    }
    if let Some(ms) = keys.group_initial_rebalance_delay_ms {
        group.initial_rebalance_delay_ms = ms;
    }
    if let Some(ms) = keys.group_min_session_timeout_ms {
        if ms <= 0 || ms > group.max_session_timeout_ms {
            bail!(
                "group min session timeout must be in 1..={}, got {ms}",
                group.max_session_timeout_ms
            );
        }
        group.min_session_timeout_ms = ms;
    }
    if let Some(ms) = keys.group_consumer_session_timeout_ms {
        group.consumer_session_timeout_ms = ms.max(100);
    }
    if let Some(ms) = keys.group_consumer_heartbeat_interval_ms {
        if ms <= 0 {
            bail!("group consumer heartbeat interval must be > 0, got {ms}");
        }
        group.consumer_heartbeat_interval_ms = ms;
    }
    Ok(group)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use kavka_model::acl::Principal;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: ServerArgs,
    }

    /// The merged layers of a config `file` (text), environment `env` and `flags`
    /// (`--key=value`).
    fn layered_for_test(
        file: Option<&str>,
        env: &[(&str, &str)],
        flags: &[&str],
    ) -> anyhow::Result<ServerConfig> {
        // Each call its own directory: tests of this module run in parallel.
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("kavka.toml");
        let mut argv = vec!["kavka".to_string()];
        if let Some(text) = file {
            std::fs::write(&path, text)?;
            argv.push(format!("--config={}", path.display()));
        }
        argv.extend(flags.iter().map(|f| f.to_string()));
        let cmd = Cmd::try_parse_from(argv)?;
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        layered(cmd.args.config.as_deref(), Layer::env(env), &cmd.args.flags)
    }

    /// Resolves a config `file` (text), environment `env` and `flags` (`--key=value`).
    fn resolve(
        file: Option<&str>,
        env: &[(&str, &str)],
        flags: &[&str],
    ) -> anyhow::Result<Settings> {
        Settings::resolve(layered_for_test(file, env, flags)?)
    }

    fn flags(flags: &[&str]) -> anyhow::Result<Settings> {
        resolve(None, &[], flags)
    }

    #[test]
    fn log_format_and_the_metrics_cap() {
        let s = flags(&[]).unwrap();
        assert_eq!(s.log_format, LogFormat::Text);
        assert_eq!(s.metrics_partition_series_max, 10_000);
        let s = resolve(
            Some("log_format = \"json\"\nmetrics_partition_series_max = 5\n"),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(
            (s.log_format, s.metrics_partition_series_max),
            (LogFormat::Json, 5)
        );
        let s = resolve(
            None,
            &[
                ("KAVKA_LOG_FORMAT", "json"),
                ("KAVKA_METRICS_PARTITION_SERIES_MAX", "7"),
            ],
            &["--log-format=text"],
        )
        .unwrap();
        assert_eq!(
            (s.log_format, s.metrics_partition_series_max),
            (LogFormat::Text, 7)
        );
        let e = flags(&["--log-format=xml"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("invalid log format 'xml': expected text or json"),
            "{e:#}"
        );
        let e = resolve(None, &[("KAVKA_METRICS_PARTITION_SERIES_MAX", "many")], &[]).unwrap_err();
        assert!(
            format!("{e:#}").contains("KAVKA_METRICS_PARTITION_SERIES_MAX"),
            "{e:#}"
        );
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        let file = "node_id = 7\nlisten = \"127.0.0.1:1234\"\nlog_flush = \"fsync\"\n";
        // (file, env, flags) -> (node id, listen, flush, auto-create, Kafka listeners) or error
        type Case<'a> = (
            Option<&'a str>,
            &'a [(&'a str, &'a str)],
            &'a [&'a str],
            Result<(i32, &'a str, &'a str, bool, usize), &'a str>,
        );
        let cases: &[Case<'_>] = &[
            (
                None,
                &[],
                &[],
                Ok((1, "0.0.0.0:9093", "replicated", true, 1)),
            ),
            (
                Some(file),
                &[],
                &[],
                Ok((7, "127.0.0.1:1234", "fsync", true, 1)),
            ),
            (
                Some(file),
                &[("KAVKA_NODE_ID", "8"), ("KAVKA_LOG_FLUSH", "replicated")],
                &[],
                Ok((8, "127.0.0.1:1234", "replicated", true, 1)),
            ),
            (
                Some(file),
                &[("KAVKA_NODE_ID", "8")],
                &["--node-id=9", "--listen=127.0.0.1:4321"],
                Ok((9, "127.0.0.1:4321", "fsync", true, 1)),
            ),
            (
                None,
                &[("KAVKA_AUTO_CREATE_TOPICS_ENABLE", "false")],
                &[],
                Ok((1, "0.0.0.0:9093", "replicated", false, 1)),
            ),
            (
                None,
                &[("KAVKA_AUTO_CREATE_TOPICS_ENABLE", "false")],
                &["--auto-create-topics-enable=true"],
                Ok((1, "0.0.0.0:9093", "replicated", true, 1)),
            ),
            // An empty value is a value: no Kafka listener.
            (
                Some("kafka_listeners = \"PLAINTEXT://:9092,EXTERNAL://:19092\"\n"),
                &[],
                &[],
                Ok((1, "0.0.0.0:9093", "replicated", true, 2)),
            ),
            (
                None,
                &[("KAVKA_KAFKA_LISTENERS", "")],
                &[],
                Ok((1, "0.0.0.0:9093", "replicated", true, 0)),
            ),
            (
                None,
                &[("KAVKA_KAFKA_LISTENERS", "")],
                &["--kafka-listeners=PLAINTEXT://:9092"],
                Ok((1, "0.0.0.0:9093", "replicated", true, 1)),
            ),
            // Variables that are not config keys are not this layer's business.
            (
                None,
                &[
                    ("KAVKA_BOOTSTRAP", "x:1"),
                    ("KAVKA_CONFIG", "/nope"),
                    ("PATH", "/bin"),
                ],
                &[],
                Ok((1, "0.0.0.0:9093", "replicated", true, 1)),
            ),
            (
                Some("node_idd = 7\n"),
                &[],
                &[],
                Err("unknown field `node_idd` in TOML file"),
            ),
            (
                Some("[node]\nnode_id = 7\n"),
                &[],
                &[],
                Err("unknown field `node`"),
            ),
            (
                Some("node_id = \"seven\"\n"),
                &[],
                &[],
                Err("invalid value for `node_id` in TOML file"),
            ),
            (
                Some("listen = 9093\n"),
                &[],
                &[],
                Err("invalid value for `listen` in TOML file"),
            ),
            (
                Some(file),
                &[("KAVKA_NODE_ID", "seven")],
                &[],
                Err("invalid value for `KAVKA_NODE_ID` in the environment"),
            ),
            (
                None,
                &[("KAVKA_AUTO_CREATE_TOPICS_ENABLE", "sometimes")],
                &[],
                Err("`KAVKA_AUTO_CREATE_TOPICS_ENABLE` in the environment"),
            ),
            // A bad value a flag would override is still an error, as before.
            (
                None,
                &[("KAVKA_SESSION_TIMEOUT_MS", "-1")],
                &[],
                Err("`KAVKA_SESSION_TIMEOUT_MS` in the environment"),
            ),
            (
                Some("node_id = 7\nnode_id = 8\n"),
                &[],
                &[],
                Err("invalid config (file"),
            ),
            (
                None,
                &[],
                &["--node-id=-3"],
                Err("node id must be >= 0, got -3"),
            ),
        ];
        for (file, env, fl, want) in cases {
            let got = resolve(*file, env, fl);
            match (got, want) {
                (Ok(s), Ok((id, listen, flush, auto_create, kafka))) => {
                    let got = (
                        s.broker.node_id,
                        s.listen.to_string(),
                        s.broker.flush.name(),
                        s.kafka.auto_create_topics_enable,
                        s.kafka_listeners.len(),
                    );
                    let want = (
                        BrokerId(*id),
                        listen.to_string(),
                        *flush,
                        *auto_create,
                        *kafka,
                    );
                    assert_eq!(got, want, "{file:?} {env:?} {fl:?}");
                }
                (Err(e), Err(why)) => {
                    assert!(
                        format!("{e:#}").contains(why),
                        "{file:?} {env:?} {fl:?}: {e:#}"
                    )
                }
                (got, want) => panic!(
                    "{file:?} {env:?} {fl:?}: got {:?}, want {want:?}",
                    got.map(|s| s.broker.node_id)
                ),
            }
        }
    }

    #[test]
    fn a_missing_config_file_is_an_error() {
        let e = ServerArgs {
            config: Some(PathBuf::from("/nonexistent/kavka.toml")),
            ..ServerArgs::default()
        }
        .resolve_flags_only()
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("cannot read config file /nonexistent/kavka.toml"),
            "{e:#}"
        );
    }

    #[test]
    fn every_key_has_a_flag_and_a_variable() {
        let keys = ServerConfig::keys();
        assert_eq!(keys.len(), 59, "{keys:?}");
        let cmd = <Cmd as clap::CommandFactory>::command();
        for key in &keys {
            let long = key.replace('_', "-");
            assert!(
                cmd.get_arguments()
                    .any(|a| a.get_long() == Some(long.as_str())),
                "no --{long}"
            );
            // Each key set through the environment alone reaches the merged config.
            let value = if matches!(
                *key,
                "auto_create_topics_enable" | "allow_everyone_if_no_acl_found"
            ) {
                "false"
            } else if *key == "ssl_principal_mapping_rules" {
                "DEFAULT"
            } else {
                "1"
            };
            let env = Layer::env([(env_var(key), value.to_string())]);
            let merged = layered(None, env, &ServerConfig::default()).unwrap();
            assert_ne!(merged, ServerConfig::default(), "{key}");
        }
    }

    #[test]
    fn the_example_config_is_valid() {
        let text = include_str!("../../../../kavka.example.toml");
        let s = resolve(Some(text), &[], &[]).unwrap();
        assert!(s.controller && s.broker_role);
        assert_eq!(s.voters.len(), 1);
        assert_eq!(s.broker.node_id, BrokerId(1));
        assert_eq!(s.broker.replica_lag_time_max_ms, 10_000);
        assert_eq!(s.broker.replica_isr_join_fetch_max_ms, 2_000);
        assert_eq!(s.broker.alter_partition_timeout_ms, 5_000);
        assert_eq!(s.broker.hw_checkpoint_interval_ms, 5_000);
        assert_eq!(s.kafka_advertised[0].host, "127.0.0.1");
        assert_eq!(s.http_listen, Some("0.0.0.0:9644".parse().unwrap()));
        assert_eq!(s.metrics_partition_series_max, 10_000);
        assert_eq!(s.log_format, LogFormat::Text);
    }

    #[test]
    fn io_threads_come_from_every_layer_and_zero_or_too_many_are_refused() {
        let process = |file: Option<&str>, env: &[(&str, &str)], args: &[&str]| {
            let c = layered_for_test(file, env, args)?;
            ProcessSettings::resolve(&c.node)
        };
        assert_eq!(process(None, &[], &[]).unwrap(), ProcessSettings::default());
        for (file, env, args, want) in [
            (Some("num_io_threads = 3\n"), &[][..], &[][..], 3),
            (
                Some("num_io_threads = 3\n"),
                &[("KAVKA_NUM_IO_THREADS", "2")][..],
                &[][..],
                2,
            ),
            (
                None,
                &[("KAVKA_NUM_IO_THREADS", "2")][..],
                &["--num-io-threads=1"][..],
                1,
            ),
        ] {
            let p = process(file, env, args).unwrap();
            assert_eq!(
                p.io_threads.map(NonZeroUsize::get),
                Some(want),
                "{file:?} {env:?} {args:?}"
            );
        }
        for bad in ["0", "1025"] {
            let flag = format!("--num-io-threads={bad}");
            let e = process(None, &[], &[flag.as_str()]).unwrap_err();
            assert!(
                format!("{e:#}")
                    .contains(&format!("invalid num_io_threads {bad}: expected 1 to 1024")),
                "{e:#}"
            );
            // The rest of the settings refuse it too (kavka dev resolves only those).
            assert!(resolve(None, &[], &[flag.as_str()]).is_err());
        }
        let e = process(None, &[("KAVKA_NUM_IO_THREADS", "many")], &[]).unwrap_err();
        assert!(format!("{e:#}").contains("KAVKA_NUM_IO_THREADS"), "{e:#}");
    }

    #[test]
    fn isr_timing_reaches_the_broker_from_each_layer() {
        let s = resolve(
            Some("replica_isr_join_fetch_max_ms = 700\n"),
            &[("KAVKA_ALTER_PARTITION_TIMEOUT_MS", "900")],
            &["--replica-lag-time-max-ms=3000"],
        )
        .unwrap();
        assert_eq!(s.broker.replica_isr_join_fetch_max_ms, 700);
        assert_eq!(s.broker.alter_partition_timeout_ms, 900);
        assert_eq!(s.broker.replica_lag_time_max_ms, 3000);
        assert_eq!(s.broker.hw_checkpoint_interval_ms, 5_000, "Kafka's default");
        let s = resolve(
            None,
            &[(
                "KAVKA_REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS",
                "1500",
            )],
            &[],
        )
        .unwrap();
        assert_eq!(s.broker.hw_checkpoint_interval_ms, 1500);
        let s = resolve(
            Some("replica_high_watermark_checkpoint_interval_ms = 1500\n"),
            &[],
            &["--replica-high-watermark-checkpoint-interval-ms=7"],
        )
        .unwrap();
        assert_eq!(s.broker.hw_checkpoint_interval_ms, 100, "at least 100 ms");

        let s = resolve(
            Some("replica_fetch_wait_max_ms = 200\nreplica_fetch_max_bytes = 65536\n"),
            &[],
            &[],
        )
        .unwrap();
        assert_eq!(s.broker.replica_fetch_wait_max_ms, 200);
        assert_eq!(s.broker.replica_fetch_max_bytes, 65536);
        let defaults = resolve(None, &[], &[]).unwrap();
        assert_eq!(
            defaults.broker.replica_fetch_wait_max_ms, 500,
            "Kafka's default"
        );
        assert_eq!(
            defaults.broker.replica_fetch_max_bytes,
            1 << 20,
            "Kafka's default"
        );
        let e = resolve(
            None,
            &[("KAVKA_REPLICA_FETCH_WAIT_MAX_MS", "3000")],
            &["--replica-lag-time-max-ms=3000"],
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains(
                "replica_fetch_wait_max_ms (3000) must be less than replica_lag_time_max_ms (3000)"
            ),
            "{e:#}"
        );
    }

    #[test]
    fn the_http_advertised_address_resolves_or_says_what_is_wrong() {
        let s = flags(&[]).unwrap();
        assert_eq!(
            s.http_advertised, None,
            "default: the advertised host and bound port"
        );
        let s = flags(&["--http-advertised-address=localhost:9645"]).unwrap();
        assert_eq!(s.http_advertised, Some(("localhost".into(), 9645)));
        for (args, why) in [
            (
                &["--http-advertised-address=localhost"][..],
                "invalid HTTP advertised address 'localhost': expected host:port",
            ),
            (
                &["--http-advertised-address=:80"][..],
                "invalid HTTP advertised address ':80'",
            ),
            (
                &["--http-listen=", "--http-advertised-address=h:1"][..],
                "given with the HTTP listener off",
            ),
        ] {
            let e = flags(args).unwrap_err();
            assert!(format!("{e:#}").contains(why), "{args:?}: {e:#}");
        }
    }

    #[test]
    fn kafka_listeners_resolve() {
        let l = |name: &str, host: &str, port| KafkaListener {
            name: name.into(),
            host: host.into(),
            port,
        };
        let s = flags(&[
            "--advertised-host=node-1",
            "--kafka-listeners=PLAINTEXT://0.0.0.0:9092,EXTERNAL://0.0.0.0:19092",
            "--kafka-advertised-listeners=EXTERNAL://localhost:9092",
        ])
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
            let e = flags(&[
                &format!("--kafka-listeners={listeners}"),
                &format!("--kafka-advertised-listeners={advertised}"),
            ])
            .unwrap_err();
            assert!(format!("{e:#}").contains(why), "{listeners}: {e:#}");
        }
    }

    #[test]
    fn the_controller_listener_has_a_port_of_its_own() {
        let args = |listen: &str, voters: Option<&str>, cl: Option<&str>, roles: &str| {
            let mut f = vec![format!("--listen={listen}"), format!("--roles={roles}")];
            f.extend(voters.map(|v| format!("--controller-voters={v}")));
            f.extend(cl.map(|c| format!("--controller-listen={c}")));
            flags(&f.iter().map(String::as_str).collect::<Vec<_>>())
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
        let e = flags(&["--node-id=4", "--controller-voters=1@a:1"]).unwrap_err();
        assert!(
            format!("{e:#}").contains("not in the controller voters"),
            "{e:#}"
        );
        // A controller outside the static voters joins as an observer at its listener.
        let observer = flags(&[
            "--node-id=4",
            "--controller-voters=1@127.0.0.1:1",
            "--controller-listen=127.0.0.1:7004",
        ])
        .unwrap();
        assert_eq!(
            observer.controller_listen,
            Some("127.0.0.1:7004".parse().unwrap())
        );
        assert!(!observer.voters.contains_key(&4));
        let e = flags(&["--roles=leader"]).unwrap_err();
        assert!(format!("{e:#}").contains("invalid role 'leader'"), "{e:#}");
    }

    #[test]
    fn the_authorizer_is_off_unless_named() {
        assert_eq!(flags(&[]).unwrap().broker.authorizer, None);
        let dir = tempfile::tempdir().unwrap();
        let secret_file = dir.path().join("secret");
        std::fs::write(&secret_file, "s3cret\n").unwrap();
        let secret = format!("--controller-secret-file={}", secret_file.display());
        let on = flags(&[
            "--authorizer-class-name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "--super-users=User:admin;User:ops",
            &secret,
        ])
        .unwrap();
        assert_eq!(
            on.broker.authorizer,
            Some(AuthorizerConfig {
                super_users: vec![Principal::user("admin"), Principal::user("ops")],
                allow_everyone_if_no_acl_found: false,
            })
        );
        let lenient = flags(&[
            "--authorizer-class-name=StandardAuthorizer",
            "--allow-everyone-if-no-acl-found=true",
            &secret,
        ])
        .unwrap();
        assert!(
            lenient
                .broker
                .authorizer
                .unwrap()
                .allow_everyone_if_no_acl_found
        );
        // (flags) -> what the error names
        let bad: &[(&[&str], &str)] = &[
            (
                &["--authorizer-class-name=AclAuthorizer"],
                "unknown authorizer 'AclAuthorizer'",
            ),
            (
                &[
                    "--authorizer-class-name=StandardAuthorizer",
                    "--super-users=admin",
                ],
                "invalid principal 'admin'",
            ),
            (&["--super-users=User:admin"], "need an authorizer"),
            (
                &["--authorizer-class-name=StandardAuthorizer"],
                "needs controller_secret_file",
            ),
        ];
        for (args, named) in bad {
            let e = format!("{:#}", flags(args).unwrap_err());
            assert!(e.contains(named), "{args:?}: {e}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let e = flags(&["--listen=nope"]).unwrap_err();
        assert!(format!("{e:#}").contains("invalid listen address 'nope'"));
        let e = flags(&["--log-flush=sometimes"]).unwrap_err();
        assert!(format!("{e:#}").contains("invalid log flush 'sometimes'"));
    }

    #[test]
    fn grpc_security_keys_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not pem\n").unwrap();
        let junk = format!("{}", junk.display());
        let ks = format!("--ssl-keystore-location={junk}");
        let ts = format!("--ssl-truststore-location={junk}");
        // (flags) -> error words (None: resolves, plaintext)
        let table: [(&[&str], Option<&str>); 12] = [
            (&[], None),
            (&["--grpc-security-protocol=plaintext"], None),
            (&["--http-security-protocol=PLAINTEXT"], None),
            (
                &["--http-security-protocol=HTTPS"],
                Some("invalid --http-security-protocol 'HTTPS': expected PLAINTEXT or SSL"),
            ),
            (
                &["--http-security-protocol=SSL"],
                Some("--http-security-protocol=SSL needs --ssl-keystore-location"),
            ),
            (
                &["--grpc-security-protocol=TLS"],
                Some("invalid --grpc-security-protocol 'TLS': expected PLAINTEXT or SSL"),
            ),
            (
                &["--security-inter-broker-protocol=SASL_SSL"],
                Some("invalid --security-inter-broker-protocol 'SASL_SSL'"),
            ),
            (
                &["--grpc-security-protocol=SSL"],
                Some("--grpc-security-protocol=SSL needs --ssl-keystore-location"),
            ),
            (
                &["--security-inter-broker-protocol=ssl"],
                Some("--security-inter-broker-protocol=SSL needs --ssl-keystore-location"),
            ),
            (
                &["--security-inter-broker-protocol=SSL", &ks],
                Some("needs --grpc-security-protocol=SSL on a broker"),
            ),
            (
                &[
                    "--security-inter-broker-protocol=SSL",
                    "--grpc-security-protocol=SSL",
                    &ks,
                ],
                Some("it needs --ssl-truststore-location"),
            ),
            (
                &[
                    "--security-inter-broker-protocol=SSL",
                    "--grpc-security-protocol=SSL",
                    &ks,
                    &ts,
                ],
                Some("holds no certificate"),
            ),
        ];
        for (f, want) in table {
            match (flags(f), want) {
                (Ok(s), None) => {
                    assert!(s.grpc_tls.is_none() && s.controller_tls.is_none(), "{f:?}");
                    assert!(s.http_tls.is_none(), "{f:?}");
                    assert!(!s.peer_transport.is_tls(), "{f:?}");
                    assert!(!s.broker.client_port_transport.is_tls(), "{f:?}");
                }
                (Err(e), Some(words)) => {
                    let e = format!("{e:#}");
                    assert!(e.contains(words), "{f:?}: {e}");
                }
                (got, want) => panic!("{f:?}: got {:?}, want {want:?}", got.err()),
            }
        }
        // A controller-only node has no replica fetches: inter-broker SSL alone will do.
        let e = flags(&[
            "--roles=controller",
            "--security-inter-broker-protocol=SSL",
            &ks,
        ])
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("it needs --ssl-truststore-location"),
            "{e:#}"
        );
    }
}
