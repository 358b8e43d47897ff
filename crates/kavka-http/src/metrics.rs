//! `/metrics`: the process's metrics in Prometheus' text format.
//!
//! The recorder is process-wide (the `metrics` facade): [`install`] once, early, and every
//! crate's `metrics::counter!`/`gauge!`/`histogram!` lands in what `/metrics` renders.

use crate::HttpState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use std::sync::Arc;

/// Installs the process's Prometheus recorder; fails if one is installed already.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new().install_recorder()
}

pub(crate) fn routes() -> Router<Arc<HttpState>> {
    Router::new().route("/metrics", get(render))
}

async fn render(State(state): State<Arc<HttpState>>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are off: no recorder is installed in this process\n",
        )
            .into_response(),
    }
}
