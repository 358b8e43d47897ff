//! The Kafka wire protocol: a TCP listener (default 9092) that lets unmodified Kafka
//! clients produce, consume and administer Kavka.
//!
//! Requests are decoded and responses encoded with the `kafka-protocol` crate; each API
//! maps onto the broker API (`kavka_broker::api::BrokerApi`: admin, data, groups,
//! producers), the one handle the gRPC services take too, so both protocols share one
//! behaviour. Layers: `frame` (sizes and deadlines) → `conn` (one task per
//! connection: decode, authenticate on SASL listeners (`sasl`), dispatch, answer in
//! order) → `api` (one module per API family);
//! answers go out as a `response_frame`, Fetch's built by `gather` so its records are
//! written from the log's buffers, not copied.
//!
//! Invariants: only the versions in [`versions::SUPPORTED`] are served and advertised;
//! a connection whose bytes cannot be trusted (lying size, truncated frame, unknown API
//! key or version, undecodable body, stalled frame) is closed with one log line naming
//! the peer and the reason, and nothing else is affected; requests on one connection
//! are handled one at a time and answered in order, as Kafka does.

pub mod alloc;
mod api;
mod conn;
pub mod frame;
mod gather;
pub mod listeners;
pub mod metrics;
pub mod principal;
mod response_frame;
pub mod sasl;
mod throttle_time;
/// TLS for SSL and SASL_SSL listeners (shared with the gRPC listeners).
pub use kavka_tls as tls;
pub mod versions;

pub use listeners::{KafkaListener, ListenerError, parse_listeners};

use kavka_broker::api::{Admin, BrokerApi};
use kavka_group::GroupCoordinator;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Prefix of the broker-registration endpoint names of Kafka listeners
/// (`kafka:PLAINTEXT`), beside the gRPC ones.
pub const ENDPOINT_PREFIX: &str = "kafka:";

/// The registration endpoint name of Kafka listener `listener`.
pub fn endpoint_name(listener: &str) -> String {
    format!("{ENDPOINT_PREFIX}{listener}")
}

/// The connection's decoder on one frame body (what follows the size): the API and
/// version it names, or why the connection would be closed. For fuzzing and tests.
pub fn decode_frame(body: bytes::Bytes) -> Result<(i16, i16), String> {
    match conn::decode(body)? {
        conn::Incoming::Request { header, .. } => {
            Ok((header.request_api_key, header.request_api_version))
        }
        conn::Incoming::ApiVersionsFallback { .. } => Ok((18, -1)),
    }
}

/// This node's log levels by logger, Kafka's BROKER_LOGGER resource: read and changed at
/// run time (not stored: a restart goes back to `KAVKA_LOG`, as Kafka's loggers go back
/// to their file). Implemented by the binary over its tracing filter.
pub trait LogLevels: Send + Sync + std::fmt::Debug {
    /// Every logger with its level, Kafka's way (`root` for the default; `INFO`, ...).
    fn levels(&self) -> Vec<(String, String)>;
    /// Sets one logger's level, or (None) removes its own level; the error names what
    /// was wrong.
    fn set(&self, logger: &str, level: Option<&str>) -> Result<(), String>;
}

/// Whether `name` can name a logger: `root` or a tracing target (`kavka_group`):
/// letters, digits, `_` and `:`, so it can never change a filter's other directives.
pub fn valid_logger_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Limits of the Kafka listener (Kafka's names).
#[derive(Clone, Debug)]
pub struct KafkaConfig {
    /// `socket.request.max.bytes`: the largest request accepted.
    pub socket_request_max_bytes: usize,
    /// `connections.max.idle.ms`: an idle connection is closed after this long, and a
    /// started frame must arrive whole within it.
    pub connections_max_idle: Duration,
    /// `auto.create.topics.enable`: a Metadata request that allows it (or a produce)
    /// naming an unknown topic creates it with the broker defaults.
    pub auto_create_topics_enable: bool,
    /// The node's loggers, for DescribeConfigs and IncrementalAlterConfigs on
    /// BROKER_LOGGER; None: not served.
    pub log_levels: Option<std::sync::Arc<dyn LogLevels>>,
    /// The listeners (by name) whose clients must authenticate with SASL (security
    /// protocol SASL_PLAINTEXT in `listener.security.protocol.map`).
    pub sasl_listeners: Vec<String>,
    /// `sasl.enabled.mechanisms`: what SaslHandshake offers.
    pub sasl_enabled_mechanisms: Vec<String>,
    /// The listeners (by name) that speak TLS (SSL, SASL_SSL), and their configuration.
    pub tls_listeners: Vec<String>,
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    /// `ssl.principal.mapping.rules`: the principal of a client certificate's subject.
    pub ssl_principal_mapping: principal::MappingRules,
    /// `connections.max.reauth.ms` (KIP-368): a SASL session lasts this long, then the
    /// client must re-authenticate on its connection or is disconnected; `None` (0):
    /// sessions do not expire.
    pub connections_max_reauth: Option<Duration>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            socket_request_max_bytes: 100 * 1024 * 1024,
            connections_max_idle: Duration::from_secs(600),
            auto_create_topics_enable: true,
            log_levels: None,
            sasl_listeners: Vec::new(),
            sasl_enabled_mechanisms: sasl::DEFAULT_MECHANISMS
                .iter()
                .map(|m| m.to_string())
                .collect(),
            tls_listeners: Vec::new(),
            tls: None,
            ssl_principal_mapping: principal::MappingRules::default(),
            connections_max_reauth: None,
        }
    }
}

/// What every connection of a node shares.
pub struct Broker {
    /// The broker API every handler translates onto.
    api: BrokerApi,
    /// Shorthands for the API's members: its admin and its groups.
    admin: Arc<Admin>,
    groups: Arc<GroupCoordinator>,
    config: KafkaConfig,
}

impl Broker {
    pub fn new(api: BrokerApi, config: KafkaConfig) -> Self {
        Self {
            admin: Arc::clone(&api.admin),
            groups: Arc::clone(&api.groups),
            api,
            config,
        }
    }
}

/// How long a client has to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts Kafka clients on `listener` (named `name`, as in `listeners`) once `ready`
/// (the broker registered, unfenced and caught up with the metadata log, as Kafka enables
/// request processing only then), until `shutdown` fires. Until ready, connections wait
/// in the listen backlog: a client that connects early is answered once the broker can
/// describe a cluster that includes itself.
pub async fn serve(
    broker: Arc<Broker>,
    listener: TcpListener,
    name: String,
    mut ready: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    let name: Arc<str> = name.into();
    let tls = broker
        .config
        .tls_listeners
        .iter()
        .any(|l| **l == *name)
        .then(|| broker.config.tls.clone())
        .flatten()
        .map(tokio_rustls::TlsAcceptor::from);
    tokio::select! {
        r = ready.wait_for(|r| *r) => if r.is_err() { return },
        _ = shutdown.changed() => return,
    }
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
                let (broker, name, shutdown) =
                    (Arc::clone(&broker), Arc::clone(&name), shutdown.clone());
                match tls.clone() {
                    None => {
                        tokio::spawn(conn::run(broker, stream, peer, name, None, shutdown));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            // A plaintext client on a TLS port fails here: one line, closed.
                            let idle = broker
                                .config
                                .connections_max_idle
                                .min(TLS_HANDSHAKE_TIMEOUT);
                            match tokio::time::timeout(idle, acceptor.accept(stream)).await {
                                Ok(Ok(tls)) => {
                                    // A client certificate (mutual TLS) names the principal.
                                    let certificate =
                                        tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                                    let principal = match certificate.map(|c| {
                                        principal::of_certificate(
                                            c,
                                            &broker.config.ssl_principal_mapping,
                                        )
                                    }) {
                                        None => None,
                                        Some(Ok(p)) => Some(p),
                                        Some(Err(e)) => {
                                            tracing::warn!(%peer, listener = %name, reason = %e, "closing TLS connection: no principal for its certificate");
                                            return;
                                        }
                                    };
                                    conn::run(broker, tls, peer, name, principal, shutdown).await
                                }
                                Ok(Err(e)) => {
                                    tracing::warn!(%peer, listener = %name, error = %e, "TLS handshake failed; closing");
                                }
                                Err(_) => {
                                    tracing::warn!(%peer, listener = %name, "TLS handshake did not finish in time; closing");
                                }
                            }
                        });
                    }
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(listener = %name, error = %e, "cannot accept a Kafka connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
