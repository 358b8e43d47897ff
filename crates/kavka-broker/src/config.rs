//! The broker's own settings (not per-topic ones).

use kavka_log::FlushPolicy;
use kavka_model::BrokerId;
use kavka_model::acl::AuthorizerConfig;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Kafka's `fetch.max.bytes` default: 55 MiB.
pub const FETCH_MAX_BYTES_DEFAULT: usize = 55 * 1024 * 1024;

/// Kafka's `replica.high.watermark.checkpoint.interval.ms` default: 5 s.
pub const REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 5_000;

#[derive(Clone, Debug)]
pub struct BrokerConfig {
    pub node_id: BrokerId,
    pub data_dir: PathBuf,
    /// Host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: u16,
    /// A second listener's advertised host and port, for clients outside the cluster's
    /// network (Kafka's EXTERNAL listener in `advertised.listeners`).
    pub external_advertised: Option<(String, u16)>,
    /// More endpoints to register, by name (the Kafka protocol's listeners, named
    /// `kafka:<LISTENER>`), as (name, advertised host, advertised port).
    pub extra_listeners: Vec<(String, String, u16)>,
    /// `--log-flush`: this broker's `flush.messages` and `flush.ms` for topics that set
    /// neither (Kafka's `log.flush.interval.messages` and `log.flush.interval.ms`).
    pub flush: FlushPolicy,
    /// `num.partitions`: partitions for a topic created without a count.
    pub default_partitions: i32,
    /// `log.retention.check.interval.ms`.
    pub retention_check_interval_ms: u64,
    /// `broker.rack`.
    pub rack: Option<String>,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: the controller fences a broker silent this long, so
    /// the broker stops acting as leader once no heartbeat it sent within it was
    /// answered (the leader lease, `crate::lease`).
    pub session_timeout_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long leaves the ISR
    /// (default 10000, Kafka's is 30000: [`crate::isr::REPLICA_LAG_TIME_MAX_MS_DEFAULT`]).
    pub replica_lag_time_max_ms: u64,
    /// `replica.isr.join.fetch.max.ms` (Kavka's own): a caught-up follower joins the ISR
    /// only if its last fetch is at most this old (capped by `replica.lag.time.max.ms`).
    pub replica_isr_join_fetch_max_ms: u64,
    /// `alter.partition.timeout.ms` (Kavka's own; Kafka's AlterPartition requests wait
    /// `controller.socket.timeout.ms`): an ISR change proposed and not seen in metadata
    /// this long may be proposed again.
    pub alter_partition_timeout_ms: u64,
    /// `replica.fetch.wait.max.ms`: how long a replica fetch long-polls.
    pub replica_fetch_wait_max_ms: u64,
    /// `replica.fetch.max.bytes` per partition (at least one batch goes anyway).
    pub replica_fetch_max_bytes: usize,
    /// `fetch.max.bytes`: the most a consumer fetch answers, whatever it asks (Kafka's
    /// default: 55 MiB; at least one batch goes anyway).
    pub fetch_max_bytes: usize,
    /// `replica.fetch.response.max.bytes`: the most a replica fetch answers (10 MiB).
    pub replica_fetch_response_max_bytes: usize,
    /// `producer.id.expiration.ms`: a partition forgets an idempotent producer this long
    /// after its last batch (checked every `log.retention.check.interval.ms`).
    pub producer_id_expiration_ms: i64,
    /// `replica.high.watermark.checkpoint.interval.ms`: how often the high watermarks
    /// are written (and fsynced) to the data dir (5 s).
    pub hw_checkpoint_interval_ms: u64,
    /// How this node reaches brokers' client gRPC ports (replica fetches to leaders, the
    /// console's calls to its own): plaintext, or TLS with this node's certificate when
    /// those ports speak it.
    pub client_port_transport: kavka_tls::Transport,
    /// `authorizer.class.name` with `super.users` and `allow.everyone.if.no.acl.found`:
    /// `None` (Kafka's default) allows every request; `Some` checks each against the
    /// ACLs in the metadata log.
    pub authorizer: Option<AuthorizerConfig>,
}

impl BrokerConfig {
    pub fn new(node_id: BrokerId, data_dir: PathBuf) -> Self {
        Self {
            node_id,
            data_dir,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9093,
            external_advertised: None,
            extra_listeners: Vec::new(),
            flush: FlushPolicy::REPLICATED,
            default_partitions: 1,
            retention_check_interval_ms: 300_000,
            rack: None,
            heartbeat_interval_ms: 250,
            session_timeout_ms: 2500,
            replica_lag_time_max_ms: crate::isr::REPLICA_LAG_TIME_MAX_MS_DEFAULT,
            replica_isr_join_fetch_max_ms: crate::isr::REPLICA_ISR_JOIN_FETCH_MAX_MS_DEFAULT,
            alter_partition_timeout_ms: crate::isr::ALTER_PARTITION_TIMEOUT_MS_DEFAULT,
            replica_fetch_wait_max_ms: 500,
            replica_fetch_max_bytes: 1024 * 1024,
            fetch_max_bytes: FETCH_MAX_BYTES_DEFAULT,
            producer_id_expiration_ms: 24 * 60 * 60 * 1000,
            replica_fetch_response_max_bytes: 10 * 1024 * 1024,
            hw_checkpoint_interval_ms: REPLICA_HIGH_WATERMARK_CHECKPOINT_INTERVAL_MS_DEFAULT,
            client_port_transport: kavka_tls::Transport::plaintext(),
            authorizer: None,
        }
    }

    /// This broker's settings for every topic, as topic config overrides below each
    /// topic's own: only those that differ from Kafka's defaults.
    pub fn topic_defaults(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        if self.flush.messages != i64::MAX {
            out.insert("flush.messages".into(), self.flush.messages.to_string());
        }
        if self.flush.ms != i64::MAX {
            out.insert("flush.ms".into(), self.flush.ms.to_string());
        }
        out
    }
}
