//! `/health/live` (the process answers) and `/health/ready` (the node serves clients).

use crate::HttpState;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<HttpState>> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> &'static str {
    "live\n"
}

async fn ready(State(state): State<Arc<HttpState>>) -> (StatusCode, &'static str) {
    if *state.ready.borrow() {
        (StatusCode::OK, "ready\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: not yet registered, unfenced and caught up with the metadata\n",
        )
    }
}
