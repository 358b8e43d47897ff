//! `kavka server` and `kavka dev`: configuration (TOML file < KAVKA_* env < flags), the
//! data-dir lock, and the gRPC server with health and reflection.

use anyhow::{Context, bail};
use clap::Args;
use kavka_broker::service::{AdminService, BrokerService};
use kavka_broker::{BrokerConfig, ReplicaManager};
use kavka_log::FlushPolicy;
use kavka_model::BrokerId;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::sync::watch;

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
    /// Durability: `replicated` (page cache, Kafka's default) or `fsync`.
    #[arg(long, env = "KAVKA_LOG_FLUSH")]
    log_flush: Option<String>,
    /// Partitions of a topic created without a count (Kafka's num.partitions).
    #[arg(long, env = "KAVKA_NUM_PARTITIONS")]
    num_partitions: Option<i32>,
    /// How often retention runs (Kafka's log.retention.check.interval.ms).
    #[arg(long, env = "KAVKA_LOG_RETENTION_CHECK_INTERVAL_MS")]
    log_retention_check_interval_ms: Option<u64>,
}

#[derive(Args, Debug)]
pub struct DevArgs {
    /// Data directory.
    #[arg(long, default_value = "./kavka-data")]
    data_dir: PathBuf,
    /// gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:9093")]
    listen: String,
    /// Durability: replicated or fsync.
    #[arg(long, default_value = "replicated")]
    log_flush: String,
}

/// The config file: every key optional; flags and environment override it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_id: Option<i32>,
    data_dir: Option<PathBuf>,
    listen: Option<String>,
    advertised_host: Option<String>,
    log_flush: Option<String>,
    num_partitions: Option<i32>,
    log_retention_check_interval_ms: Option<u64>,
}

/// The resolved settings of a node.
#[derive(Debug)]
pub struct Settings {
    pub broker: BrokerConfig,
    pub listen: SocketAddr,
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
        let num_partitions = self.num_partitions.or(file.num_partitions).unwrap_or(1);
        if num_partitions <= 0 {
            bail!("num partitions must be > 0, got {num_partitions}");
        }
        let mut broker = BrokerConfig::new(BrokerId(node_id), data_dir);
        broker.advertised_host = advertised_host;
        broker.advertised_port = listen.port();
        broker.flush = flush;
        broker.default_partitions = num_partitions;
        if let Some(ms) = self
            .log_retention_check_interval_ms
            .or(file.log_retention_check_interval_ms)
        {
            broker.retention_check_interval_ms = ms;
        }
        Ok(Settings { broker, listen })
    }
}

pub async fn run(args: ServerArgs) -> anyhow::Result<()> {
    serve(args.resolve()?, false).await
}

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    let settings = ServerArgs {
        node_id: Some(1),
        data_dir: Some(args.data_dir),
        listen: Some(args.listen),
        log_flush: Some(args.log_flush),
        num_partitions: Some(1),
        ..ServerArgs::default()
    }
    .resolve()?;
    serve(settings, true).await
}

/// Holds an exclusive lock on `<data>/.lock` for the life of the process, so two nodes
/// never write the same data dir.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create data dir {}", dir.display()))?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
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

async fn serve(settings: Settings, dev: bool) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let _lock = lock_data_dir(&settings.broker.data_dir)?;
    let broker_config = settings.broker.clone();
    let replicas = tokio::task::spawn_blocking(move || ReplicaManager::open(broker_config))
        .await
        .context("opening the data dir panicked")??;
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let local = listener.local_addr()?;

    let (health_reporter, health_service) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<kavka_proto::v1::admin_service_server::AdminServiceServer<AdminService>>()
        .await;
    health_reporter
        .set_serving::<kavka_proto::v1::broker_service_server::BrokerServiceServer<BrokerService>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(kavka_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("cannot build the reflection service")?;

    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let retention = tokio::spawn(Arc::clone(&replicas).run_retention(shutdown_rx.clone()));

    tracing::info!(node_id = %settings.broker.node_id, listen = %local, data_dir = %settings.broker.data_dir.display(), flush = settings.broker.flush.name(), "kavka is ready");
    if dev {
        println!(
            "kavka dev: node 1 ready in {} ms\n  gRPC      {local}\n  data dir  {}\n  try:      kavka topic create orders --partitions 3",
            started.elapsed().as_millis(),
            settings.broker.data_dir.display()
        );
    }

    // Small responses must not wait for Nagle's algorithm and the peer's delayed ACK.
    let incoming = tokio_stream::StreamExt::map(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        |conn| {
            conn.inspect(|stream| {
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                }
            })
        },
    );
    let (stopping_tx, mut stopping_rx) = watch::channel(false);
    let server = tonic::transport::Server::builder()
        .add_service(health_service)
        .add_service(reflection)
        .add_service(AdminService::new(Arc::clone(&replicas)).into_server())
        .add_service(BrokerService::new(Arc::clone(&replicas)).into_server())
        .serve_with_incoming_shutdown(incoming, async move {
            shutdown_signal().await;
            let _ = stopping_tx.send(true);
        });
    // In-flight requests get a bounded drain; a client that keeps its connection open
    // must not keep the node from stopping.
    let drain_deadline = async {
        let _ = stopping_rx.wait_for(|s| *s).await;
        tokio::time::sleep(SHUTDOWN_DRAIN).await;
    };
    let result = tokio::select! {
        r = server => r,
        _ = drain_deadline => {
            tracing::warn!(drain = ?SHUTDOWN_DRAIN, "connections still open after the drain period; stopping anyway");
            Ok(())
        }
    };
    let _ = shutdown_tx.send(true);
    let _ = retention.await;
    tracing::info!("kavka stopped");
    result.context("gRPC server failed")
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
        let dir = tempfile_dir();
        let path = dir.join("kavka.toml");
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
        assert_eq!(s.broker.flush, FlushPolicy::Fsync);

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
        let _ = std::fs::remove_dir_all(dir);
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

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("kavka-server-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
