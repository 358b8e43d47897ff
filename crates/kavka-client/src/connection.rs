//! Connecting to a node from a bootstrap list, and routing partition requests to their
//! leaders (learned from Metadata, refreshed after leader errors).

use crate::credentials::{Channel, Credentials, with_credentials};
use crate::error::ClientError;
use kavka_proto::v1::admin_service_client::AdminServiceClient;
use kavka_proto::v1::broker_service_client::BrokerServiceClient;
use kavka_tls::Transport;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Largest gRPC message either way (matches the broker's limit).
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// HTTP/2 pings find a peer that died without closing its connections (a container
/// whose network went away, a frozen process) within interval + timeout, failing the
/// calls in flight so they are retried on the new leader instead of waiting out their
/// request timeout.
const KEEPALIVE_INTERVAL: Duration = Duration::from_millis(500);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_millis(1000);
/// Admin and metadata calls give up after this (a frozen node must not hang a client).
const ADMIN_CALL_TIMEOUT: Duration = Duration::from_secs(15);
/// A metadata refresh tries another node after this.
const METADATA_TIMEOUT: Duration = Duration::from_secs(3);
/// A node that took the connection must answer a first call (a health check) within
/// this, or the next bootstrap address is tried: a frozen process still accepts
/// connections (the kernel does) but answers nothing.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// A leader's id, a client for it, and the partitions it leads among those asked.
pub(crate) type LeaderGroup = (i32, BrokerServiceClient<Channel>, Vec<i32>);

/// Runs a call to a broker, giving up after `bound` (a frozen broker answers nothing
/// and closes nothing).
pub(crate) async fn bounded<T>(
    bound: Duration,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(bound, call).await.unwrap_or_else(|_| {
        Err(tonic::Status::deadline_exceeded(format!(
            "no answer within {bound:?}"
        )))
    })
}

/// What a health check on a fresh connection found.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    /// Any gRPC answer.
    Answers,
    /// No answer within [`PROBE_TIMEOUT`] (a frozen node).
    Silent,
    /// The peer took the connection but broke it instead of answering: it does not speak
    /// gRPC (a Kafka listener, another service), or it is going down.
    Broken(String),
}

/// Health-checks the node behind `channel` within [`PROBE_TIMEOUT`].
async fn probe(channel: Channel) -> Probe {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let check = health.check(tonic_health::pb::HealthCheckRequest {
        service: String::new(),
    });
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(_)) => Probe::Answers,
        Ok(Err(status)) => match status.code() {
            tonic::Code::DeadlineExceeded => Probe::Silent,
            // Made on this side (no headers came): the connection broke. A plaintext
            // client on a TLS port sees any of these, Internal for an HTTP/2 protocol
            // error among them.
            tonic::Code::Unavailable
            | tonic::Code::Cancelled
            | tonic::Code::Unknown
            | tonic::Code::Internal
                if status.metadata().is_empty() =>
            {
                Probe::Broken(status.message().to_string())
            }
            _ => Probe::Answers,
        },
        Err(_) => Probe::Silent,
    }
}

/// Why a connection that a peer broke is no use, with the likely cause.
fn not_grpc(addr: &str, why: &str, transport: &Transport) -> String {
    let tls = if transport.presents_certificate() {
        ""
    } else if transport.is_tls() {
        " A node that requires client certificates (ssl_client_auth=required) breaks \
         connections without one too: give --tls-cert FILE --tls-key FILE."
    } else {
        " A node whose gRPC port speaks TLS (grpc_security_protocol=SSL) breaks plaintext \
         connections too: connect with --tls or --tls-ca FILE."
    };
    format!(
        "{addr} took the connection but broke it instead of answering gRPC ({why}): is it \
         kavka's gRPC port (a node's --listen, default 9093)? A Kafka protocol listener \
         (default 9092) or another service answers like this, and so does a node going \
         down.{tls}"
    )
}

/// What to try when a TLS connection failed for want of the right CA or name.
fn tls_hint(cause: &str) -> &'static str {
    if cause.contains("certificate") || cause.contains("UnknownIssuer") {
        " (the server's certificate is not trusted: give its CA with --tls-ca FILE, or its \
         name with --tls-server-name)"
    } else if cause.contains("InvalidContentType") || cause.contains("corrupt message") {
        " (the server does not speak TLS there: drop --tls)"
    } else {
        ""
    }
}

/// A connect that did not finish within `CONNECT_TIMEOUT`.
#[derive(Debug)]
struct TimedOut;

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "connection timed out after {CONNECT_TIMEOUT:?}")
    }
}

impl std::error::Error for TimedOut {}

/// A connection to one Kavka node (admin calls go there), plus routes to partition
/// leaders shared by its clones.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) admin: AdminServiceClient<Channel>,
    pub(crate) broker: BrokerServiceClient<Channel>,
    channel: Channel,
    addr: String,
    bootstrap: Vec<String>,
    /// Plaintext or TLS, for every node this client reaches.
    transport: Transport,
    /// Presented on every call, to every node.
    credentials: Credentials,
    routes: Arc<Mutex<Routes>>,
}

#[derive(Debug, Default)]
struct Routes {
    /// Broker id → a client for it.
    brokers: HashMap<i32, (String, Channel)>,
    /// (topic, partition) → leader broker id (-1: none).
    leaders: HashMap<(String, i32), i32>,
    /// Group id → its coordinator, as last found.
    coordinators: HashMap<String, (i32, Channel)>,
}

fn broker_client(channel: Channel) -> BrokerServiceClient<Channel> {
    BrokerServiceClient::new(channel)
        .max_decoding_message_size(MESSAGE_BYTES_MAX)
        .max_encoding_message_size(MESSAGE_BYTES_MAX)
}

/// Splits and checks `host:port[,host:port...]`.
pub fn parse_bootstrap(bootstrap: &str) -> Result<Vec<String>, ClientError> {
    let bad = || ClientError::InvalidBootstrap(bootstrap.to_string());
    let mut out = Vec::new();
    for part in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let part = part.strip_prefix("http://").unwrap_or(part);
        let (host, port) = part.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad());
        }
        out.push(part.to_string());
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

impl Client {
    /// Connects to the first node of `bootstrap` that answers (when none answers within
    /// [`PROBE_TIMEOUT`] but some took the connection, to the first of those), in
    /// plaintext.
    pub async fn connect(bootstrap: &str) -> Result<Self, ClientError> {
        Self::connect_using(bootstrap, &Transport::plaintext(), Credentials::default()).await
    }

    /// [`Self::connect`], presenting `credentials` on every call.
    pub async fn connect_as(
        bootstrap: &str,
        credentials: Credentials,
    ) -> Result<Self, ClientError> {
        Self::connect_using(bootstrap, &Transport::plaintext(), credentials).await
    }

    /// [`Client::connect`] over `transport` (plaintext or TLS), which every later
    /// connection of this client (to partition leaders, coordinators) uses too.
    pub async fn connect_with(bootstrap: &str, transport: &Transport) -> Result<Self, ClientError> {
        Self::connect_using(bootstrap, transport, Credentials::default()).await
    }

    /// [`Client::connect`] over `transport`, presenting `credentials` on every call.
    pub async fn connect_using(
        bootstrap: &str,
        transport: &Transport,
        credentials: Credentials,
    ) -> Result<Self, ClientError> {
        let addrs = parse_bootstrap(bootstrap)?;
        let mut last_error = String::new();
        let mut silent: Option<Self> = None;
        for addr in &addrs {
            let endpoint = transport
                .endpoint(addr)
                .map_err(|_| ClientError::InvalidBootstrap(addr.clone()))?
                .connect_timeout(CONNECT_TIMEOUT)
                .timeout(ADMIN_CALL_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true);
            let Ok(connected) = tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await
            else {
                last_error = format!("{addr}: {TimedOut}");
                continue;
            };
            match connected {
                Ok(channel) => {
                    let channel = with_credentials(channel, &credentials);
                    let client = Self {
                        admin: AdminServiceClient::new(channel.clone())
                            .max_decoding_message_size(MESSAGE_BYTES_MAX),
                        broker: broker_client(channel.clone()),
                        channel,
                        addr: addr.clone(),
                        bootstrap: addrs.clone(),
                        transport: transport.clone(),
                        credentials: credentials.clone(),
                        routes: Arc::default(),
                    };
                    match probe(client.channel()).await {
                        Probe::Answers => return Ok(client),
                        Probe::Silent => {
                            tracing::debug!(%addr, "connected, but no answer: trying the next address");
                            last_error = format!(
                                "{addr}: connected, but no answer within {PROBE_TIMEOUT:?}"
                            );
                            silent.get_or_insert(client);
                        }
                        Probe::Broken(why) => last_error = not_grpc(addr, &why, transport),
                    }
                }
                Err(e) => {
                    // The innermost cause says what happened ("Connection refused").
                    let mut cause: &dyn std::error::Error = &e;
                    while let Some(next) = cause.source() {
                        cause = next;
                    }
                    last_error = format!("{addr}: {cause}{}", tls_hint(&cause.to_string()));
                }
            }
        }
        if let Some(client) = silent {
            return Ok(client);
        }
        Err(ClientError::Connect {
            addrs: addrs.join(","),
            reason: last_error,
        })
    }

    /// Wraps a transport channel so that its calls carry this client's credentials.
    pub(crate) fn authenticated(&self, channel: tonic::transport::Channel) -> Channel {
        with_credentials(channel, &self.credentials)
    }

    /// The connection to the node this client talks to.
    pub(crate) fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// How this client connects (plaintext or TLS).
    pub fn transport(&self) -> &Transport {
        &self.transport
    }

    /// The node this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Connects to another node of the bootstrap list (or a broker learned from
    /// metadata) after the current one stopped answering.
    pub async fn reconnect(&mut self) -> Result<(), ClientError> {
        let mut candidates: Vec<String> = self.bootstrap.clone();
        candidates.extend(self.lock().brokers.values().map(|(a, _)| a.clone()));
        candidates.retain(|a| *a != self.addr);
        candidates.dedup();
        candidates.push(self.addr.clone());
        let next = Self::connect_using(
            &candidates.join(","),
            &self.transport,
            self.credentials.clone(),
        )
        .await?;
        self.admin = next.admin;
        self.broker = next.broker;
        self.channel = next.channel;
        self.addr = next.addr;
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Learns the leaders of `topic`'s partitions (and the brokers' addresses); tries
    /// another node if this one does not answer. Returns the partition count.
    pub async fn refresh_leaders(&mut self, topic: &str) -> Result<u32, ClientError> {
        let asked = tokio::time::timeout(METADATA_TIMEOUT, self.metadata(vec![topic.to_string()]));
        let md = match asked.await.unwrap_or_else(|_| {
            Err(kavka_model::KafkaError::new(
                kavka_model::ErrorCode::RequestTimedOut,
                format!("no metadata from {} within {METADATA_TIMEOUT:?}", self.addr),
            )
            .into())
        }) {
            Ok(md) => md,
            // The node is unreachable (or cut off): ask another.
            Err(ClientError::Kafka(e))
                if matches!(
                    e.code,
                    kavka_model::ErrorCode::LeaderNotAvailable
                        | kavka_model::ErrorCode::NetworkException
                        | kavka_model::ErrorCode::RequestTimedOut
                ) =>
            {
                self.reconnect().await?;
                self.metadata(vec![topic.to_string()]).await?
            }
            Err(e) => return Err(e),
        };
        let t = md
            .topics
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Invalid("empty Metadata response".into()))?;
        kavka_proto::conv::check(t.error.as_ref())?;
        let mut routes = self.lock();
        for b in &md.brokers {
            let addr = format!("{}:{}", b.host, b.port);
            if routes.brokers.get(&b.id).is_some_and(|(a, _)| *a == addr) {
                continue;
            }
            if let Ok(endpoint) = self.transport.endpoint(&addr) {
                let channel = endpoint
                    .connect_timeout(CONNECT_TIMEOUT)
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                    .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                    .keep_alive_while_idle(true)
                    .connect_lazy();
                let channel = with_credentials(channel, &self.credentials);
                routes.brokers.insert(b.id, (addr, channel));
            }
        }
        for p in &t.partitions {
            routes
                .leaders
                .insert((topic.to_string(), p.partition), p.leader);
        }
        Ok(t.partitions.len() as u32)
    }

    /// A producer id and epoch for an idempotent producer, from this node (or another
    /// when it does not answer).
    pub async fn init_producer_id(&mut self) -> Result<(i64, i16), ClientError> {
        let mut last = None;
        for _ in 0..3 {
            let mut broker = self.broker.clone();
            let call = broker.init_producer_id(kavka_proto::v1::InitProducerIdRequest {});
            match tokio::time::timeout(METADATA_TIMEOUT, call).await {
                Ok(Ok(resp)) => {
                    let r = resp.into_inner();
                    match kavka_proto::conv::check(r.error.as_ref()) {
                        Ok(()) => return Ok((r.producer_id, r.producer_epoch as i16)),
                        Err(e) if e.code.is_retriable() => last = Some(e.into()),
                        Err(e) => return Err(e.into()),
                    }
                }
                Ok(Err(status)) => last = Some(kavka_proto::conv::from_status(&status).into()),
                Err(_) => {
                    last = Some(
                        kavka_model::KafkaError::new(
                            kavka_model::ErrorCode::RequestTimedOut,
                            format!(
                                "no producer id from {} within {METADATA_TIMEOUT:?}",
                                self.addr
                            ),
                        )
                        .into(),
                    )
                }
            }
            self.reconnect().await?;
        }
        Err(last.unwrap_or_else(|| ClientError::Invalid("no producer id".into())))
    }

    /// The coordinator of `group` as last found.
    pub(crate) fn cached_coordinator(&self, group: &str) -> Option<(i32, Channel)> {
        self.lock().coordinators.get(group).cloned()
    }

    /// Remembers (or, with `None`, forgets) the coordinator of `group`.
    pub(crate) fn cache_coordinator(&self, group: &str, coordinator: Option<(i32, Channel)>) {
        let mut routes = self.lock();
        match coordinator {
            Some(c) => routes.coordinators.insert(group.to_string(), c),
            None => routes.coordinators.remove(group),
        };
    }

    /// The leader of a partition and a client for it, if known.
    pub(crate) fn leader(
        &self,
        topic: &str,
        partition: i32,
    ) -> Option<(i32, BrokerServiceClient<Channel>)> {
        let routes = self.lock();
        let leader = *routes.leaders.get(&(topic.to_string(), partition))?;
        routes
            .brokers
            .get(&leader)
            .map(|(_, c)| (leader, broker_client(c.clone())))
    }

    /// The leader of `topic`-`partition` as last learned (-1 when unknown).
    pub(crate) fn leader_id(&self, topic: &str, partition: i32) -> i32 {
        self.lock()
            .leaders
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(-1)
    }

    /// An admin client for a broker learned from metadata.
    pub(crate) fn admin_for(&self, broker: i32) -> Option<AdminServiceClient<Channel>> {
        self.lock().brokers.get(&broker).map(|(_, c)| {
            AdminServiceClient::new(c.clone()).max_decoding_message_size(MESSAGE_BYTES_MAX)
        })
    }

    /// Groups `partitions` by known leader, with a client per leader; the second list
    /// holds the partitions whose leader is not known (refresh metadata for them).
    pub(crate) fn by_leader(
        &self,
        topic: &str,
        partitions: impl IntoIterator<Item = i32>,
    ) -> (Vec<LeaderGroup>, Vec<i32>) {
        let mut groups: Vec<LeaderGroup> = Vec::new();
        let mut unknown = Vec::new();
        for p in partitions {
            match self.leader(topic, p) {
                Some((leader, conn)) if leader >= 0 => {
                    match groups.iter_mut().find(|(l, ..)| *l == leader) {
                        Some((.., ps)) => ps.push(p),
                        None => groups.push((leader, conn, vec![p])),
                    }
                }
                _ => unknown.push(p),
            }
        }
        (groups, unknown)
    }

    /// The leader's client, refreshing metadata once if it is not known.
    pub(crate) async fn leader_or_refresh(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<BrokerServiceClient<Channel>, ClientError> {
        if let Some((_, c)) = self.leader(topic, partition) {
            return Ok(c);
        }
        self.refresh_leaders(topic).await?;
        self.leader(topic, partition)
            .map(|(_, c)| c)
            .ok_or_else(|| {
                kavka_model::KafkaError::new(
                    kavka_model::ErrorCode::LeaderNotAvailable,
                    format!("{topic}-{partition} has no leader right now"),
                )
                .into()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broken_connections_hint_at_tls() {
        // (innermost cause) -> hint words ("" for none)
        let table = [
            ("invalid peer certificate: UnknownIssuer", "--tls-ca"),
            (
                "invalid peer certificate: NotValidForName",
                "--tls-server-name",
            ),
            (
                "received corrupt message of type InvalidContentType",
                "drop --tls",
            ),
            ("Connection refused (os error 111)", ""),
        ];
        for (cause, words) in table {
            let hint = tls_hint(cause);
            assert!(hint.contains(words), "{cause}: {hint}");
            assert_eq!(hint.is_empty(), words.is_empty(), "{cause}: {hint}");
        }
        let plain = not_grpc("a:1", "transport error", &Transport::plaintext());
        assert!(plain.contains("--tls or --tls-ca"), "{plain}");
    }

    #[test]
    fn bootstrap_lists() {
        assert_eq!(parse_bootstrap("a:1, b:2").unwrap(), ["a:1", "b:2"]);
        assert_eq!(
            parse_bootstrap("http://127.0.0.1:9093").unwrap(),
            ["127.0.0.1:9093"]
        );
        for bad in [
            "",
            "localhost",
            "host:",
            ":9093",
            "host:99999",
            "host:0",
            "h/x:1",
            ",",
        ] {
            let e = parse_bootstrap(bad).unwrap_err();
            assert!(
                e.to_string().contains("invalid bootstrap address"),
                "{bad}: {e}"
            );
        }
    }
}
