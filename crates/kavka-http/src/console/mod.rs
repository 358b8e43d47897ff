//! The web console: static pages embedded in the binary and the JSON API they read.
//!
//! Work in progress (issue 19): only the landing page exists so far.

use crate::HttpState;
use axum::Router;
use axum::response::Html;
use axum::routing::get;
use std::sync::Arc;

pub(crate) fn routes() -> Router<Arc<HttpState>> {
    Router::new().route("/", get(index))
}

async fn index() -> Html<&'static str> {
    Html("<!doctype html><title>Kavka</title><h1>Kavka</h1><p>The console is coming.</p>")
}
