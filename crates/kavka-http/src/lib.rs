//! The node's HTTP listener (default `0.0.0.0:9644`, `--http-listen`): Prometheus metrics
//! at `/metrics`, liveness and readiness at `/health/live` and `/health/ready`, and the
//! web console with its JSON API.
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

/// Serves `router` on `listener` until `shutdown` flips.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    // The peer's address reaches handlers (ConnectInfo): ACLs name hosts.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(async move {
            let _ = shutdown.wait_for(|s| *s).await;
        })
        .await
}
