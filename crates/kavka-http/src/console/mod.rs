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
//! With an authorizer configured (`authorizer_class_name`) the API obeys the ACLs: a
//! request authenticates with HTTP Basic credentials (a SCRAM user's; the browser asks
//! for them on the 401), and shows only what that user may describe or read (`api`'s
//! `Viewer`). The page then stays on its node: the browser sends credentials to its
//! own origin only.
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
            get(
                move |s: State<Arc<HttpState>>, v: axum::Extension<api::Viewer>| {
                    event_stream(s, v, Arc::clone(&hub))
                },
            ),
        )
        .layer(axum::middleware::from_fn_with_state(
            state.broker.clone(),
            authenticate,
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

/// Finds who asks (see `api::Viewer`): anyone without an authorizer; else the user of
/// the request's Basic credentials, or 401 asking for them.
async fn authenticate(
    State(broker): State<Option<Arc<kavka_broker::node::BrokerNode>>>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(node) = broker.filter(|b| b.api.authorizer_enabled()) else {
        req.extensions_mut().insert(api::Viewer::anyone());
        return next.run(req).await;
    };
    let host = req
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
    let header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let refused = |why: String| {
        (
            axum::http::StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"kavka console\"")],
            axum::Json(serde_json::json!({ "error": why })),
        )
            .into_response()
    };
    let Some(value) = header else {
        return refused(
            "this cluster enforces ACLs: sign in as a SCRAM user (HTTP Basic credentials)".into(),
        );
    };
    let viewer = kavka_broker::service::auth::basic_credentials(value).and_then(|(user, pw)| {
        api::Viewer::authenticated(&node, &user, &pw, host).map_err(|e| e.message)
    });
    match viewer {
        Ok(v) => {
            req.extensions_mut().insert(v);
            next.run(req).await
        }
        Err(why) => {
            tracing::warn!(reason = %why, "console authentication failed");
            refused(why)
        }
    }
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
    viewer: axum::Extension<api::Viewer>,
    hub: Arc<Hub>,
) -> Result<Sse<ReceiverStream<Result<Event, Infallible>>>, api::ApiError> {
    let Some(node) = &state.broker else {
        return Err(api::ApiError::Unavailable(format!(
            "node {} has no broker role: open the console of a broker",
            state.node_id
        )));
    };
    // Every topic's elections: the cluster's view.
    viewer.check(
        node,
        kavka_model::acl::Operation::Describe,
        kavka_model::acl::Resource::cluster(),
    )?;
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
