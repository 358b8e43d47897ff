//! The node's HTTP listener (default `0.0.0.0:9644`, `--http-listen`): Prometheus metrics
//! at `/metrics`, liveness and readiness at `/health/live` and `/health/ready`, and the
//! web console with its JSON API; HTTPS with `http_security_protocol=SSL` (the console's
//! sign-in then never crosses the network in the clear).
//!
//! Invariants: every handler answers or fails fast, during a failover and while the node
//! shuts down (nothing here waits on the controller quorum); read-only: no handler
//! changes the cluster; an unknown path is 404. Metrics are recorded through the
//! `metrics` facade by the crates that own the numbers; this crate only installs the
//! recorder and renders it. Must not depend on the gRPC services or the Kafka listener.

pub mod console;
mod health;
pub mod metrics;
mod process;

use axum::Router;
use kavka_broker::node::BrokerNode;
use kavka_model::BrokerId;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What the handlers read.
#[derive(Clone)]
pub struct HttpState {
    pub node_id: BrokerId,
    /// Renders the process's metrics; `None` when no recorder could be installed.
    pub metrics: Option<PrometheusHandle>,
    /// Scrape-time gauges: each hook sets the gauges of the part that owns them, just
    /// before `/metrics` renders (see `metrics`).
    pub collect: Vec<metrics::Collect>,
    /// Flips once the node serves clients: registered, unfenced and caught up with the
    /// metadata (the condition the client listeners wait for).
    pub ready: watch::Receiver<bool>,
    /// The broker role, when this node has one.
    pub broker: Option<Arc<BrokerNode>>,
    /// Flips when the node stops: long-lived answers (the console's event stream) end
    /// then, so the listener's graceful shutdown does not wait on them.
    pub shutdown: watch::Receiver<bool>,
}

/// Every route of the listener.
pub fn router(state: HttpState) -> Router {
    Router::new()
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(console::routes(&state))
        .fallback(not_found)
        .with_state(Arc::new(state))
}

async fn not_found(uri: axum::http::Uri) -> (axum::http::StatusCode, String) {
    (
        axum::http::StatusCode::NOT_FOUND,
        format!("no such path: {}\n", uri.path()),
    )
}

/// Serves `router` on `listener` until `shutdown` flips: plain HTTP, or HTTPS with `tls`
/// (each handshake in a task of its own, bounded in time; a client that fails it, a
/// plaintext one for instance, is closed with one log line per peer and period, as on
/// the gRPC listeners).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    tls: Option<Arc<kavka_tls::rustls::ServerConfig>>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let stopped = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let Some(tls) = tls else {
        // The peer's address reaches handlers (ConnectInfo): ACLs name hosts.
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        return axum::serve(listener, service)
            .with_graceful_shutdown(stopped)
            .await;
    };
    let local = listener.local_addr()?;
    let conns = kavka_tls::incoming::tls_incoming(
        tokio_stream::wrappers::TcpListenerStream::new(listener),
        tls,
        "HTTP",
    );
    // A tapped listener's address is its connect info (axum's `TapIo`), as a TCP one's.
    let listener = axum::serve::ListenerExt::tap_io(TlsListener { conns, local }, |_| {});
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(stopped)
        .await
}

/// Finished TLS handshakes, as axum accepts connections.
struct TlsListener {
    conns: tokio_stream::wrappers::ReceiverStream<std::io::Result<kavka_tls::incoming::TlsConn>>,
    local: std::net::SocketAddr,
}

impl axum::serve::Listener for TlsListener {
    type Io = kavka_tls::incoming::TlsConn;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        use tokio_stream::StreamExt;
        loop {
            match self.conns.next().await {
                Some(Ok(conn)) => match conn.get_ref().0.peer_addr() {
                    Ok(peer) => return (conn, peer),
                    Err(e) => tracing::debug!(error = %e, "an HTTPS client left at once"),
                },
                Some(Err(e)) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(error = %e, "the HTTPS listener cannot accept");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                // The accepting task ended: nothing more will come.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
