//! `/metrics`: the process's metrics in Prometheus' text format.
//!
//! The recorder is process-wide (the `metrics` facade): [`install`] once, early, and every
//! crate's `metrics::counter!`/`gauge!`/`histogram!` lands in what `/metrics` renders.
//!
//! Invariants: every gauge is set at scrape time, by the collect hook that runs just before
//! rendering (`HttpState::collect`), from the state of the crate that owns the number; a
//! gauge nobody set for [`GAUGE_IDLE_TIMEOUT`] (a partition that moved away, a group that
//! was deleted) is dropped from the output. Counters and histograms are updated where
//! things happen, once per request or event, never per record. Every histogram is a
//! latency in seconds with [`LATENCY_BUCKETS_SECONDS`]. A scrape never waits longer than
//! [`RENDER_TIMEOUT`]: collecting reads local state only (never the controller quorum) on
//! the blocking pool. Must not depend on the gRPC services or the Kafka listener.

use crate::HttpState;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{BuildError, PrometheusBuilder, PrometheusHandle};
use metrics_util::MetricKindMask;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// A gauge not set for this long is dropped (its partition, group or listener is gone).
/// Longer than any sane scrape interval: gauges are set at every scrape.
pub const GAUGE_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Bucket bounds of every histogram (request latencies), in seconds: 0.5 ms to 30 s.
pub const LATENCY_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// How often histogram samples are folded into their buckets (the exporter's upkeep).
pub const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Longest a scrape may take (collecting plus rendering); past it the answer is 503.
pub const RENDER_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets the scrape-time gauges of one part of the node (the broker, the controller, the
/// Kafka listener); runs on the blocking pool just before each render.
pub type Collect = Arc<dyn Fn() + Send + Sync>;

/// Installs the process's Prometheus recorder; fails if one is installed already. The
/// caller runs [`run_upkeep`] beside it.
pub fn install() -> Result<PrometheusHandle, BuildError> {
    PrometheusBuilder::new()
        .idle_timeout(MetricKindMask::GAUGE, Some(GAUGE_IDLE_TIMEOUT))
        .set_buckets(LATENCY_BUCKETS_SECONDS)?
        .install_recorder()
}

/// Folds histogram samples into buckets every [`UPKEEP_INTERVAL`] until `shutdown` flips
/// (`install_recorder` spawns no upkeep task of its own; without it the samples of a
/// histogram nobody scrapes pile up in memory).
pub async fn run_upkeep(handle: PrometheusHandle, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => handle.run_upkeep(),
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

pub(crate) fn routes() -> Router<Arc<HttpState>> {
    Router::new().route("/metrics", get(render))
}

#[tracing::instrument(skip_all)]
async fn render(State(state): State<Arc<HttpState>>) -> Response {
    let Some(handle) = state.metrics.clone() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are off: no recorder is installed in this process\n",
        )
            .into_response();
    };
    let collect = state.collect.clone();
    let job = tokio::task::spawn_blocking(move || {
        for c in &collect {
            c();
        }
        let mut text = handle.render();
        text.push_str(&crate::process::render_now());
        text
    });
    match tokio::time::timeout(RENDER_TIMEOUT, job).await {
        Ok(Ok(text)) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Ok(Err(e)) => {
            tracing::error!(error = %e, "rendering the metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("rendering the metrics failed: {e}\n"),
            )
                .into_response()
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "collecting the metrics took longer than {} s; try again\n",
                RENDER_TIMEOUT.as_secs()
            ),
        )
            .into_response(),
    }
}
