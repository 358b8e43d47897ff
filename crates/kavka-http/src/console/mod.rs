//! The web console: one small page (HTML, CSS, JS embedded in the binary, no build
//! toolchain) and the read-only JSON API it reads (`api`), with the live event stream
//! (`events`) as Server-Sent Events.
//!
//! The page follows the cluster: it learns every broker's console URL from
//! `/api/cluster` and, when its node stops answering, reads the API and the event stream
//! of another broker directly (cross-origin). So every `/api/` answer allows GET from any
//! origin: the API is read-only and carries no credentials, as Kafka's metadata is open
//! to any client of the cluster.
//!
//! With an authorizer configured (`authorizer_class_name`) the API answers 403: it has
//! no way yet to know who asks, and must not show what the ACLs hide.
//!
//! Invariants: read-only; assets are compiled in (`include_str!`), so the console is the
//! binary's version; no handler waits on the controller quorum. Must not depend on the
//! gRPC services or the Kafka listener.

pub mod api;
pub mod events;

use crate::HttpState;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use events::Hub;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// The console's routes. With a broker role, starts following the cluster now, so
/// events from before a page opens are in the ring.
pub(crate) fn routes(state: &HttpState) -> Router<Arc<HttpState>> {
    let hub = Hub::new(state.node_id.0);
    if let Some(b) = &state.broker {
        hub.start(b);
    }
    let api = Router::new()
        .route("/api/cluster", get(api::cluster))
        .route("/api/topics", get(api::topics))
        .route("/api/topics/{topic}", get(api::topic))
        .route(
            "/api/topics/{topic}/partitions/{partition}/messages",
            get(api::messages),
        )
        .route("/api/groups", get(api::groups))
        .route("/api/groups/{group}", get(api::group))
        .route(
            "/api/events",
            get(move |s: State<Arc<HttpState>>| event_stream(s, Arc::clone(&hub))),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.broker.clone(),
            refused_under_an_authorizer,
        ))
        .layer(axum::middleware::map_response(allow_any_origin));
    Router::new()
        .route("/", get(|| asset(INDEX_HTML, "text/html; charset=utf-8")))
        .route(
            "/app.js",
            get(|| asset(APP_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/style.css",
            get(|| asset(STYLE_CSS, "text/css; charset=utf-8")),
        )
        .merge(api)
}

/// 403 for every API request when ACLs are enforced: the console does not authenticate
/// its users yet, so it cannot check what they may see.
async fn refused_under_an_authorizer(
    State(broker): State<Option<Arc<kavka_broker::node::BrokerNode>>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if broker.as_ref().is_some_and(|b| b.api.authorizer_enabled()) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            axum::Json(serde_json::json!({
                "error": "this cluster enforces ACLs (authorizer_class_name) and the console does not authenticate users yet: its API is off; /metrics and /health still serve"
            })),
        )
            .into_response();
    }
    next.run(req).await
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn allow_any_origin(mut r: Response) -> Response {
    r.headers_mut().insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    r
}

fn sse_event(name: &str, data: &impl serde::Serialize) -> Option<Event> {
    Event::default().event(name).json_data(data).ok()
}

/// `GET /api/events`: `hello` (the node), the ring of recent `change`s, then each new
/// `change` as it happens, and a `tick` every second.
#[tracing::instrument(skip_all, fields(node = hub.node_id()))]
async fn event_stream(
    State(state): State<Arc<HttpState>>,
    hub: Arc<Hub>,
) -> Result<Sse<ReceiverStream<Result<Event, Infallible>>>, api::ApiError> {
    if state.broker.is_none() {
        return Err(api::ApiError::Unavailable(format!(
            "node {} has no broker role: open the console of a broker",
            state.node_id
        )));
    }
    let (ring, mut live) = hub.subscribe();
    let (tx, rx) = mpsc::channel(64);
    let node_id = hub.node_id();
    let mut stopping = state.shutdown.clone();
    tokio::spawn(async move {
        let hello = serde_json::json!({ "node_id": node_id, "recent": ring.len() });
        let mut first = sse_event("hello", &hello).into_iter().collect::<Vec<_>>();
        first.extend(ring.iter().filter_map(|e| sse_event("change", e)));
        for e in first {
            if tx.send(Ok(e)).await.is_err() {
                return;
            }
        }
        let mut tick = tokio::time::interval(events::TICK);
        loop {
            let next = tokio::select! {
                r = live.recv() => match r {
                    Ok(e) => sse_event("change", &e),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        sse_event("lagged", &serde_json::json!({ "missed": n }))
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => sse_event("tick", &serde_json::json!({ "node_id": node_id })),
                _ = tx.closed() => return,
                _ = stopping.wait_for(|s| *s) => return,
            };
            if let Some(e) = next
                && tx.send(Ok(e)).await.is_err()
            {
                return;
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx)))
}
