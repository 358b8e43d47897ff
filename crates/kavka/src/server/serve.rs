//! Serving a node: binds its listeners, starts its roles (controller, broker) and serves
//! gRPC (health, reflection, the roles' services) until it is told to stop or a role fails.
//!
//! Invariants: every listener is bound before the broker registers (so port 0 works); the
//! broker's client listeners serve only once it is unfenced; a new data dir gets its
//! identity before anything is served; the controller listener never serves clients.

use super::config::Settings;
use super::data_dir::{CONTROLLER_DIR, ClusterIdSource, DataDir, record_cluster_id};
use super::open_files::raise_open_file_limit;
use super::shutdown::{CONTROLLED_SHUTDOWN_TIMEOUT, SHUTDOWN_DRAIN, shutdown_signal};
use anyhow::Context;
use kavka_broker::ControllerSession;
use kavka_broker::controllers::Controllers;
use kavka_broker::node::BrokerNode;
use kavka_broker::service::{AdminService, BrokerService};
use kavka_controller::Quorum;
use kavka_controller::control::topics::TopicDefaults;
use kavka_controller::controller::ControllerConfig;
use kavka_controller::node::{ControllerNode, ControllerNodeConfig, ControllerServices};
use kavka_controller::raft::peers::ControllerSecret;
use kavka_controller::service::ControllerService;
use kavka_model::BrokerId;
use kavka_proto::v1::admin_service_server::AdminServiceServer;
use kavka_proto::v1::broker_service_server::BrokerServiceServer;
use kavka_proto::v1::controller_service_server::ControllerServiceServer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How long a starting broker waits to be unfenced before it says so.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

pub async fn serve(mut settings: Settings, dev: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // What the runtime runs with, however it was chosen (num_io_threads or the cores).
    let io_threads = tokio::runtime::Handle::current().metrics().num_workers();
    // Locked, and its identity checked now; written (when new) once the stores exist.
    let data_dir = DataDir::open(
        &settings.broker.data_dir,
        settings.broker.node_id.0,
        settings.controller,
    )?;
    raise_open_file_limit();
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local = listener.local_addr()?;
    // The controller listener: the quorum's Raft traffic and broker sessions only.
    let controller_listener = bind_if(settings.controller_listen, "controller listener").await?;
    let external_listener = bind_if(settings.external_listen, "external listener").await?;
    let http_listener = bind_if(settings.http_listen, "HTTP listener").await?;
    let http_local = match &http_listener {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    // Other consoles and the CLI find this node's console through its registration.
    if let (Some(l), true) = (http_local, settings.broker_role) {
        let (host, port) = settings
            .http_advertised
            .clone()
            .unwrap_or_else(|| (settings.broker.advertised_host.clone(), l.port()));
        settings.broker.extra_listeners.push((
            kavka_http::console::api::HTTP_ENDPOINT.to_string(),
            host,
            port,
        ));
    }
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

    // Controller role: a voter in the metadata quorum.
    let mut controller_node = None;
    if settings.controller {
        let (node, started) = ControllerNode::start(
            ControllerNodeConfig {
                node_id: settings.broker.node_id.0 as u64,
                dir: data_dir.path().join(CONTROLLER_DIR),
                voters: settings.voters.clone(),
                directory_id: Some(kavka_controller::DirectoryId(data_dir.directory_id())),
                secret: settings.controller_secret.clone(),
                transport: settings.peer_transport.clone(),
                controller: ControllerConfig {
                    session_timeout: Duration::from_millis(settings.session_timeout_ms),
                    broker_heartbeat_interval: Duration::from_millis(
                        settings.broker.heartbeat_interval_ms,
                    ),
                    leader_imbalance_check_interval: (settings.leader_imbalance_check_interval_ms
                        > 0)
                    .then(|| Duration::from_millis(settings.leader_imbalance_check_interval_ms)),
                    auto_balance_down_after: settings
                        .auto_balance_down_after_ms
                        .map(Duration::from_millis),
                    balancer_concurrent_moves: settings.balancer_concurrent_moves,
                    topic_defaults: TopicDefaults {
                        partitions: settings.broker.default_partitions,
                        replication_factor: settings.default_replication_factor,
                    },
                    ..ControllerConfig::default()
                },
            },
            &shutdown_rx,
            fatal_tx.clone(),
        )
        .await
        .context("cannot start the controller")?;
        tasks.extend(started);
        health_reporter
            .set_serving::<ControllerServiceServer<ControllerService>>()
            .await;
        controller_node = Some(Arc::new(node));
    }

    // Broker role: hosts partitions, follows the metadata, holds a session.
    let mut broker_node = None;
    if settings.broker_role {
        let controllers = Arc::new(Controllers::new(
            settings.voters.values().map(|v| v.addr.clone()).collect(),
            ControllerSecret::presenter(settings.controller_secret.as_ref()),
            settings.peer_transport.clone(),
        ));
        let (node, started) = BrokerNode::start(
            settings.broker.clone(),
            controllers,
            settings.group.clone(),
            &shutdown_rx,
            fatal_tx.clone(),
        )
        .await?;
        tasks.extend(started);
        // Serving once the controller has unfenced this broker (see below).
        health_reporter
            .set_not_serving::<AdminServiceServer<AdminService>>()
            .await;
        health_reporter
            .set_not_serving::<BrokerServiceServer<BrokerService>>()
            .await;
        // A combined node knows the active controller and term first-hand.
        if let Some(c) = &controller_node {
            tasks.push(tokio::spawn(report_controller(
                Arc::clone(&c.quorum),
                Arc::clone(&node.session),
                shutdown_rx.clone(),
            )));
        }
        let kafka_broker = Arc::new(kavka_kafka::Broker::new(
            node.api.clone(),
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
        broker_node = Some(Arc::new(node));
    }

    // The stores exist now: a new data dir gets its identity before anything is served.
    let identity = data_dir.identify(settings.broker.node_id.0)?;
    let quorum_image = controller_node
        .clone()
        .map(|c| -> ClusterIdSource { Arc::new(move || c.cluster_id()) });
    let broker_image = broker_node
        .clone()
        .map(|b| -> ClusterIdSource { Arc::new(move || b.cluster_id()) });
    tasks.push(tokio::spawn(record_cluster_id(
        data_dir.path().to_path_buf(),
        identity,
        quorum_image,
        broker_image,
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
    // The HTTP listener: metrics, health, console. Ready as the client listeners are (a
    // controller-only node serves no clients: ready once its voter runs).
    if let Some(l) = http_listener {
        let metrics = match kavka_http::metrics::install() {
            Ok(h) => {
                tasks.push(tokio::spawn(kavka_http::metrics::run_upkeep(
                    h.clone(),
                    shutdown_rx.clone(),
                )));
                Some(h)
            }
            Err(e) => {
                tracing::warn!(error = %e, "metrics are off: cannot install the recorder");
                None
            }
        };
        metrics::describe_gauge!(
            "kavka_runtime_worker_threads",
            "Worker threads of this node's async runtime (num_io_threads)"
        );
        metrics::gauge!("kavka_runtime_worker_threads").set(io_threads as f64);
        // Scrape-time gauges, each from the part that owns the numbers.
        let mut collect: Vec<kavka_http::metrics::Collect> = Vec::new();
        if let Some(b) = broker_node.clone() {
            let cap = settings.metrics_partition_series_max;
            collect.push(Arc::new(move || kavka_broker::metrics::collect(&b, cap)));
            collect.push(Arc::new(kavka_kafka::metrics::collect));
        }
        if let Some(c) = controller_node.clone() {
            collect.push(Arc::new(move || {
                kavka_controller::metrics::collect(&c.quorum)
            }));
        }
        let ready = if settings.broker_role {
            broker_ready_rx.clone()
        } else if let Some(c) = &controller_node {
            // A controller-only node serves no clients: ready once its voter is part of a
            // quorum that has elected a leader (it can then vote and replicate).
            let (tx, rx) = watch::channel(false);
            let quorum = Arc::clone(&c.quorum);
            let mut stop = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                let mut changes = quorum.metrics_watch();
                while quorum.leader().is_none() {
                    tokio::select! {
                        alive = quorum.leader_changed(&mut changes) => if !alive { return },
                        _ = stop.changed() => return,
                    }
                }
                let _ = tx.send(true);
            }));
            rx
        } else {
            watch::channel(true).1
        };
        let router = kavka_http::router(kavka_http::HttpState {
            node_id: settings.broker.node_id,
            metrics,
            collect,
            ready,
            broker: broker_node.clone(),
            shutdown: shutdown_rx.clone(),
        });
        let stop = shutdown_rx.clone();
        let http_tls = settings.http_tls.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = kavka_http::serve(l, router, http_tls, stop).await {
                tracing::error!(error = %e, "the HTTP listener failed");
            }
        }));
    }
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    // Clients reach the controller's QuorumStatus on the client port (the CLI's quorum
    // status); Raft, broker sessions and the rest are served on the controller listener.
    let mut controller_svc = None;
    if let (Some(node), Some(l)) = (&controller_node, controller_listener) {
        let ControllerServices {
            raft,
            for_peers,
            for_clients,
        } = node.services();
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
            .set_serving::<ControllerServiceServer<ControllerService>>()
            .await;
        let mut stop = shutdown_rx.clone();
        let router = tonic::transport::Server::builder()
            .add_service(health_service)
            .add_service(raft)
            .add_service(for_peers);
        let stopped = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        // Mutual TLS with security_inter_broker_protocol=SSL.
        let peers: Serving = match settings.controller_tls.clone() {
            Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
                kavka_tls::incoming::tls_incoming(incoming, tls, "controller"),
                stopped,
            )),
            None => Box::pin(router.serve_with_incoming_shutdown(incoming, stopped)),
        };
        tasks.push(tokio::spawn(async move {
            if let Err(e) = peers.await {
                tracing::error!(error = %e, "the controller listener failed");
            }
        }));
    }
    let (admin_svc, broker_svc, group_svc) = match &broker_node {
        Some(node) => {
            let svc = node.services(&broker_ready_rx, external_local.map(|a| a.port()));
            (Some(svc.admin), Some(svc.broker), Some(svc.group))
        }
        None => (None, None, None),
    };
    let stopping_broker = broker_node.clone();
    let router = tonic::transport::Server::builder()
        .layer(super::grpc_metrics::GrpcMetricsLayer)
        .add_service(health_service)
        .add_service(reflection)
        .add_optional_service(controller_svc)
        .add_optional_service(admin_svc)
        .add_optional_service(broker_svc)
        .add_optional_service(group_svc);
    let stopped = async move {
        shutdown_signal().await;
        // Leadership moves away while this node still serves its followers.
        if let Some(node) = stopping_broker {
            node.controlled_shutdown(CONTROLLED_SHUTDOWN_TIMEOUT).await;
        }
        let _ = stopping_tx.send(true);
    };
    // TLS with grpc_security_protocol=SSL (both client ports: listen and external).
    let server: Serving = match settings.grpc_tls.clone() {
        Some(tls) => Box::pin(router.serve_with_incoming_shutdown(
            kavka_tls::incoming::tls_incoming(incoming, tls, "client"),
            stopped,
        )),
        None => Box::pin(router.serve_with_incoming_shutdown(incoming, stopped)),
    };
    // In-flight requests get a bounded drain; a client that keeps its connection open
    // must not keep the node from stopping.
    let mut server = tokio::spawn(server);

    // Ready: the broker is unfenced (it registered and caught up with the metadata). Its
    // client listeners serve from then on, however long that takes.
    if let Some(node) = broker_node.clone() {
        let health = health_reporter.clone();
        let stop = shutdown_rx.clone();
        tasks.push(tokio::spawn(async move {
            if !node.unfenced(&stop).await {
                return;
            }
            let _ = broker_ready_tx.send(true);
            health
                .set_serving::<AdminServiceServer<AdminService>>()
                .await;
            health
                .set_serving::<BrokerServiceServer<BrokerService>>()
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
    tracing::info!(node_id = %settings.broker.node_id, roles, listen = %local, grpc_tls = settings.grpc_tls.is_some(), inter_broker_tls = settings.controller_tls.is_some(), controller_listen = ?controller_local, external = ?external_local, http = ?http_local, kafka = ?kafka_addrs, data_dir = %data_dir.path().display(), flush = settings.broker.flush.name(), log_format = ?settings.log_format, io_threads, voters = ?settings.voters.keys().collect::<Vec<_>>(), "kavka is ready");
    if dev {
        println!(
            "kavka dev: node {} ready in {} ms\n  gRPC      {local}\n  Kafka     {}\n  HTTP      {}\n  Raft      {}\n  data dir  {}\n  try:      kavka topic create orders --partitions 3",
            settings.broker.node_id,
            started.elapsed().as_millis(),
            kafka_addrs.join(", "),
            http_local.map_or_else(
                || "-".to_string(),
                |a| {
                    let scheme = if settings.http_tls.is_some() {
                        "https"
                    } else {
                        "http"
                    };
                    format!("{scheme}://{a}/")
                }
            ),
            controller_local.map_or_else(|| "-".to_string(), |a| a.to_string()),
            data_dir.path().display()
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
    if let Some(c) = controller_node {
        c.quorum.shutdown().await;
    }
    tracing::info!("kavka stopped");
    result.context("gRPC server failed")
}

/// A gRPC server running, plaintext or TLS.
type Serving = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<(), tonic::transport::Error>> + Send>,
>;

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
