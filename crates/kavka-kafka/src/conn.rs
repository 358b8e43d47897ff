//! One Kafka client connection: read a frame, decode it, dispatch, answer. Requests are
//! handled one at a time, in order, and answered in that order (clients rely on it for
//! their retries and sequence numbers). One stage may overlap: an acks=all produce whose
//! records are appended waits for its followers in the writer's queue (at most
//! `ANSWERS_QUEUED_MAX` answers), while the next requests are read, handled and
//! appended behind it, as Redpanda pipelines produce requests; a connection that a quota
//! throttles does not overlap.
//!
//! Invariant: anything that cannot be decoded closes this connection only, with one
//! warning naming the peer and the reason. A known API at a version the codec knows but
//! this broker does not serve gets that API's UNSUPPORTED_VERSION answer where its
//! response has room for one; ApiVersions at any version gets Kafka's v0 fallback. A
//! request that leaves its client over a quota (a throttle time) mutes the connection:
//! nothing more is read from it until the throttle time has passed (Kafka's muted
//! channel, KIP-219). The time spent answering counts against the caller's
//! `request_percentage` quota, except for requests that wait by design; a throttle it
//! sets is reported in the response's `throttle_time_ms` where the response has one.

use crate::response_frame::ResponseFrame;
use crate::sasl::{self, SaslSession};
use crate::{Broker, api, frame, gather, versions};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};
use kavka_model::ErrorCode;
use kavka_model::acl::{Caller, Principal};
use kavka_model::quota::QuotaKey;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

/// A decoded frame, or why the connection must close.
pub(crate) enum Incoming {
    Request {
        header: RequestHeader,
        key: ApiKey,
        request: Box<RequestKind>,
    },
    /// ApiVersions at a version the codec does not know: answered in v0 (KIP-511).
    ApiVersionsFallback { correlation_id: i32 },
}

/// Decodes a frame's header and body. `Err`: the reason to close the connection.
pub(crate) fn decode(mut buf: Bytes) -> Result<Incoming, String> {
    if buf.len() < 8 {
        return Err(format!(
            "a {}-byte frame is too short for a request header",
            buf.len()
        ));
    }
    let raw_key = i16::from_be_bytes([buf[0], buf[1]]);
    let version = i16::from_be_bytes([buf[2], buf[3]]);
    let correlation_id = i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
    let key = ApiKey::try_from(raw_key).map_err(|()| format!("unknown API key {raw_key}"))?;
    let known = key.valid_versions();
    if version < known.min || version > known.max {
        if key == ApiKey::ApiVersions {
            return Ok(Incoming::ApiVersionsFallback { correlation_id });
        }
        return Err(format!(
            "{key:?} version {version} is not supported (this broker serves {} of it)",
            versions::served_text(key)
        ));
    }
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version))
        .map_err(|e| format!("malformed {key:?} v{version} request header: {e}"))?;
    let request = RequestKind::decode(key, &mut buf, version)
        .map_err(|e| format!("malformed {key:?} v{version} request: {e}"))?;
    Ok(Incoming::Request {
        header,
        key,
        request: Box::new(request),
    })
}

/// Encodes a response frame: Fetch through `gather` (its records written from the log's
/// buffers), every other API through [`encode`]; the bytes are the same either way.
fn encode_frame(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<ResponseFrame, String> {
    match body {
        ResponseKind::Fetch(fetch) => gather::encode_fetch(correlation_id, version, fetch),
        _ => encode(correlation_id, key, version, body).map(ResponseFrame::from),
    }
}

/// Encodes a response frame into one buffer: size, header, body.
pub(crate) fn encode(
    correlation_id: i32,
    key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(256);
    buf.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut buf, key.response_header_version(version))
        .map_err(|e| format!("cannot encode a {key:?} v{version} response header: {e}"))?;
    body.encode(&mut buf, version)
        .map_err(|e| format!("cannot encode a {key:?} v{version} response: {e}"))?;
    let size = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf)
}

/// SaslHandshake or SaslAuthenticate on this connection: the answer, and whether the
/// connection closes after it (a failed authentication, an unknown mechanism).
async fn sasl_step(
    broker: &Broker,
    session: &mut Option<SaslSession>,
    request: RequestKind,
    version: i16,
    peer: SocketAddr,
    listener: &str,
    expires: &mut Option<std::time::Instant>,
) -> (ResponseKind, bool) {
    use kafka_protocol::messages::{SaslAuthenticateResponse, SaslHandshakeResponse};
    let illegal = |message: &str| sasl::Refusal {
        code: ErrorCode::IllegalSaslState,
        message: message.to_string(),
    };
    match request {
        RequestKind::SaslHandshake(r) => {
            let (result, offered) = match session.as_mut() {
                Some(s) => (s.handshake(&r.mechanism), s.enabled().to_vec()),
                None => (Err(illegal("this listener does not use SASL")), Vec::new()),
            };
            let body = SaslHandshakeResponse::default()
                .with_mechanisms(offered.into_iter().map(api::str_bytes).collect());
            match result {
                Ok(()) => (ResponseKind::SaslHandshake(body), false),
                Err(refusal) => {
                    tracing::warn!(%peer, mechanism = %r.mechanism, reason = %refusal.message, "SASL handshake refused");
                    let close = session.is_some();
                    (
                        ResponseKind::SaslHandshake(body.with_error_code(refusal.code.code())),
                        close,
                    )
                }
            }
        }
        RequestKind::SaslAuthenticate(r) => {
            let before = session.as_ref().map_or(0, SaslSession::completed);
            let result = match session.as_mut() {
                Some(s) => s.authenticate(&r.auth_bytes, &broker.api.image()),
                None => Err(illegal("this listener does not use SASL")),
            };
            match result {
                Ok(bytes) => {
                    let mut answer =
                        SaslAuthenticateResponse::default().with_auth_bytes(bytes.into());
                    let done = session
                        .as_ref()
                        .filter(|s| s.completed() > before)
                        .and_then(SaslSession::principal);
                    if let Some(p) = done {
                        tracing::debug!(%peer, principal = %p, reauthentication = before > 0, "authenticated");
                        crate::metrics::authentication(listener, true);
                        // KIP-368: the session lasts connections.max.reauth.ms from now.
                        if let Some(lifetime) = broker.config.connections_max_reauth {
                            *expires = Some(std::time::Instant::now() + lifetime);
                            if version >= 1 {
                                answer = answer.with_session_lifetime_ms(
                                    i64::try_from(lifetime.as_millis()).unwrap_or(i64::MAX),
                                );
                            }
                        }
                    }
                    (ResponseKind::SaslAuthenticate(answer), false)
                }
                Err(refusal) => {
                    tracing::warn!(%peer, reason = %refusal.message, "SASL authentication failed");
                    crate::metrics::authentication(listener, false);
                    // Kafka's connection.failed.authentication.delay.ms: slow guessing.
                    tokio::time::sleep(sasl::FAILED_AUTHENTICATION_DELAY).await;
                    (
                        ResponseKind::SaslAuthenticate(
                            SaslAuthenticateResponse::default()
                                .with_error_code(refusal.code.code())
                                .with_error_message(Some(api::str_bytes(refusal.message))),
                        ),
                        session.is_some(),
                    )
                }
            }
        }
        other => (
            api::unsupported(other).unwrap_or(ResponseKind::ApiVersions(api::api_versions(
                ErrorCode::IllegalSaslState,
            ))),
            true,
        ),
    }
}

/// Waits out the throttle time the last request set (then clears it): the connection is
/// muted, as Kafka mutes a throttled channel. False when the node shuts down meanwhile.
async fn mute(throttle_ms: &AtomicU64, shutdown: &mut watch::Receiver<bool>) -> bool {
    let ms = throttle_ms.swap(0, Ordering::Relaxed);
    if ms == 0 {
        return true;
    }
    tokio::select! {
        () = tokio::time::sleep(std::time::Duration::from_millis(ms)) => true,
        _ = shutdown.changed() => false,
    }
}

/// Whether the time answering `key` counts against the caller's `request_percentage`
/// quota: every API but those that park a request by design (a long-poll fetch, a produce
/// waiting for acks=all, a join or sync waiting for the group), whose waiting is not
/// handler work (Kafka keeps such requests in purgatory, off its request threads).
fn request_time_counted(key: ApiKey) -> bool {
    !matches!(
        key,
        ApiKey::Produce | ApiKey::Fetch | ApiKey::JoinGroup | ApiKey::SyncGroup
    )
}

/// Whether clients of `key` at `version` wait out a throttle themselves (KIP-219: Produce
/// v6+, Fetch v8+, and every version of the APIs newer than it); older ones are answered
/// only once the throttle time has passed.
fn throttled_by_client(key: Option<ApiKey>, version: i16) -> bool {
    match key {
        Some(ApiKey::Produce) => version >= 6,
        Some(ApiKey::Fetch) => version >= 8,
        _ => true,
    }
}

/// Serves one connection until the peer leaves, it must be closed, or `shutdown`.
pub(crate) async fn run<S>(
    broker: Arc<Broker>,
    stream: S,
    peer: SocketAddr,
    listener: Arc<str>,
    certificate_principal: Option<Principal>,
    mut shutdown: watch::Receiver<bool>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let span = tracing::info_span!("kafka_conn", %peer, listener = %listener);
    let client_host = format!("/{}", peer.ip());
    async move {
        let _open = crate::metrics::OpenConnection::new(&listener);
        let (mut rd, wr) = tokio::io::split(stream);
        // Answers go to the writer in request order; an acks=all produce's answer may
        // still be waiting for the followers while later requests are read and handled.
        let (answers, queued) = mpsc::channel::<Answer>(ANSWERS_QUEUED_MAX);
        let writer = write_answers(wr, queued, peer, shutdown.clone());
        let reader = async move {
            let cfg = &broker.config;
            // On a SASL listener: the connection's authentication, before anything else.
            let mut sasl = cfg
                .sasl_listeners
                .iter()
                .any(|l| **l == *listener)
                .then(|| SaslSession::new(&cfg.sasl_enabled_mechanisms));
            let mut close_after = false;
            // The throttle time the last request set (a client quota), in ms.
            let throttle_ms = AtomicU64::new(0);
            // When the SASL session ends (connections.max.reauth.ms after authenticating).
            let mut session_expires: Option<std::time::Instant> = None;
            // The client certificate's principal (mutual TLS), else anonymous, until SASL
            // authenticates the connection.
            let mut caller = match certificate_principal {
                Some(p) => Caller::new(p, peer.ip().to_string()),
                None => Caller::anonymous(peer.ip().to_string()),
            };
            loop {
                let read = tokio::select! {
                    r = frame::read_frame(&mut rd, cfg.socket_request_max_bytes, cfg.connections_max_idle) => r,
                    _ = shutdown.changed() => return,
                    // The writer stopped (the peer is gone, or an answer could not be encoded).
                    () = answers.closed() => return,
                };
                let frame = match read {
                    Ok(Some(f)) => f.freeze(),
                    Ok(None) => {
                        tracing::debug!(%peer, "Kafka client left or idled out");
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(%peer, reason = %e, "closing Kafka connection");
                        return;
                    }
                };
                let (mut answered_key, mut answered_version) = (None, 0);
                let answer = match decode(frame) {
                    Err(reason) => {
                        tracing::warn!(%peer, %reason, "closing Kafka connection");
                        return;
                    }
                    Ok(Incoming::ApiVersionsFallback { correlation_id }) => {
                        let body = ResponseKind::ApiVersions(
                            api::api_versions(ErrorCode::UnsupportedVersion),
                        );
                        encode_frame(correlation_id, ApiKey::ApiVersions, 0, &body)
                    }
                    Ok(Incoming::Request {
                        header,
                        key,
                        request,
                    }) => {
                        let version = header.request_api_version;
                        (answered_key, answered_version) = (Some(key), version);
                        let unauthenticated = sasl.as_ref().is_some_and(|s| s.principal().is_none());
                        if let Some(p) = sasl.as_ref().and_then(SaslSession::principal)
                            && caller.principal != *p
                        {
                            caller.principal = p.clone();
                        }
                        let body = if matches!(key, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
                            && versions::supported(key, version)
                        {
                            let (body, close) = sasl_step(&broker, &mut sasl, *request, version, peer, &listener, &mut session_expires).await;
                            close_after = close;
                            body
                        } else if session_expires.is_some_and(|e| std::time::Instant::now() >= e) && key != ApiKey::ApiVersions {
                            tracing::warn!(%peer, api = ?key, "closing Kafka connection: its SASL session expired (connections.max.reauth.ms) and the client did not re-authenticate");
                            return;
                        } else if unauthenticated && key != ApiKey::ApiVersions {
                            tracing::warn!(%peer, api = ?key, "closing Kafka connection: a request before SASL authentication on a SASL listener (is the client configured for SASL?)");
                            return;
                        } else if versions::supported(key, version) {
                            throttle_ms.store(0, Ordering::Relaxed);
                            let span = tracing::debug_span!("kafka_request", api = ?key, version, correlation_id = header.correlation_id);
                            let client_id = header.client_id.as_deref().unwrap_or("");
                            let ctx = api::Ctx {
                                listener: &listener,
                                version,
                                client_id,
                                client_host: &client_host,
                                caller: &caller,
                                throttle_ms: &throttle_ms,
                            };
                            let started = std::time::Instant::now();
                            let staged = match *request {
                                RequestKind::Produce(r) => {
                                    match api::data::produce_staged(&broker, &ctx, r).instrument(span.clone()).await {
                                        api::Staged::Now(answered) => api::Staged::Now(answered.map(ResponseKind::Produce)),
                                        api::Staged::Later(replicated) => api::Staged::Later(replicated),
                                    }
                                }
                                other => api::Staged::Now(api::handle(&broker, &ctx, other).instrument(span.clone()).await),
                            };
                            let answered = match staged {
                                api::Staged::Now(answered) => answered,
                                // Appended and not throttled: the answer is queued while it
                                // waits for the followers, and the next request is read.
                                api::Staged::Later(replicated) if throttle_ms.load(Ordering::Relaxed) == 0 => {
                                    let correlation_id = header.correlation_id;
                                    let answer = async move {
                                        let body = ResponseKind::Produce(replicated.instrument(span).await);
                                        crate::metrics::request_done(crate::metrics::api_label(key), started);
                                        encode_frame(correlation_id, key, version, &body)
                                    };
                                    if answers.send(Box::pin(answer)).await.is_err() {
                                        return;
                                    }
                                    continue;
                                }
                                api::Staged::Later(replicated) => Some(ResponseKind::Produce(replicated.instrument(span).await)),
                            };
                            crate::metrics::request_done(crate::metrics::api_label(key), started);
                            let request_throttle_ms = if request_time_counted(key) {
                                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                                ctx.throttle(&broker, QuotaKey::RequestPercentage, micros, false)
                            } else {
                                0
                            };
                            match answered {
                                Some(mut body) => {
                                    // The client learns of the request quota's throttle in the
                                    // response, as of a byte rate's.
                                    crate::throttle_time::raise_throttle_time(&mut body, request_throttle_ms);
                                    body
                                }
                                None => {
                                    // acks=0: Kafka sends no response, but still mutes a
                                    // throttled connection.
                                    if !mute(&throttle_ms, &mut shutdown).await {
                                        return;
                                    }
                                    continue;
                                }
                            }
                        } else {
                            match api::unsupported(*request) {
                                Some(body) => body,
                                None => {
                                    tracing::warn!(%peer, reason = %format!("{key:?} v{version} is not served by this broker (it serves {} of it)", versions::served_text(key)), "closing Kafka connection");
                                    return;
                                }
                            }
                        };
                        encode_frame(header.correlation_id, key, version, &body)
                    }
                };
                let frame = match answer {
                    Ok(f) => f,
                    Err(reason) => {
                        tracing::warn!(%peer, %reason, "closing Kafka connection");
                        return;
                    }
                };
                // A throttled client of an old version (no client-side throttling) gets its
                // answer late; a new one at once, and backs off itself (KIP-219). Either way
                // the connection reads nothing more until the throttle time has passed.
                if !throttled_by_client(answered_key, answered_version) && !mute(&throttle_ms, &mut shutdown).await {
                    return;
                }
                if answers.send(Box::pin(std::future::ready(Ok(frame)))).await.is_err() {
                    return;
                }
                if close_after {
                    return;
                }
                if !mute(&throttle_ms, &mut shutdown).await {
                    return;
                }
            }
        };
        // The reader ends first (the sender drops with it); the writer then writes what
        // is queued and ends.
        tokio::join!(reader, writer);
    }
    .instrument(span)
    .await
}

/// How many answers a connection holds at most, written or waiting to be: a client
/// with more requests in flight is read only as answers go out.
const ANSWERS_QUEUED_MAX: usize = 16;

/// One answer, in request order: ready, or waiting for an acks=all produce's followers.
type Answer = std::pin::Pin<Box<dyn Future<Output = Result<ResponseFrame, String>> + Send>>;

/// Writes the connection's answers in the order they were queued, each once it is
/// ready, until the reader is done and everything queued is written, the peer is gone,
/// an answer cannot be encoded, or the node shuts down.
async fn write_answers<W: tokio::io::AsyncWrite + Unpin>(
    mut wr: W,
    mut queued: mpsc::Receiver<Answer>,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        // Biased: an answer already queued (its request handled) is written before a
        // shutdown is seen, as before the writer had a queue.
        let answer = tokio::select! {
            biased;
            a = queued.recv() => match a {
                Some(a) => a,
                None => return,
            },
            _ = shutdown.changed() => return,
        };
        let answer = tokio::select! {
            biased;
            a = answer => a,
            _ = shutdown.changed() => return,
        };
        let mut frame = match answer {
            Ok(f) => f,
            Err(reason) => {
                tracing::warn!(%peer, %reason, "closing Kafka connection");
                return;
            }
        };
        // One writev per up to 64 chunks; the body (and its record buffers) is gone
        // already, so each chunk is freed once it is written.
        if let Err(e) = wr.write_all_buf(&mut frame).await {
            tracing::debug!(%peer, error = %e, "cannot answer a Kafka client");
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_time_counts_except_where_a_request_waits_by_design() {
        let table = [
            (ApiKey::Metadata, true),
            (ApiKey::ApiVersions, true),
            (ApiKey::CreateTopics, true),
            (ApiKey::OffsetCommit, true),
            (ApiKey::Produce, false),
            (ApiKey::Fetch, false),
            (ApiKey::JoinGroup, false),
            (ApiKey::SyncGroup, false),
        ];
        for (key, counted) in table {
            assert_eq!(request_time_counted(key), counted, "{key:?}");
        }
    }
}
