//! A gRPC or HTTP listener's accepted connections with TLS (for tonic's
//! `serve_with_incoming`, or axum's listener):
//! each handshake runs in a task of its own (a slow or silent client holds up no other),
//! and a connection that fails its handshake (a plaintext client, an untrusted
//! certificate, none where one is required) is closed with a warning naming the peer and
//! the listener — once per peer address every [`QUIET_FOR`], so a peer that keeps
//! retrying does not flood the log.
//!
//! Invariants: only finished handshakes reach the server; the accepting task ends when
//! the server drops the stream.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};

/// How long a client has to finish its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A peer's failed handshakes are logged once per this period.
pub const QUIET_FOR: Duration = Duration::from_secs(30);

/// A TLS connection as tonic serves it (its connect info carries the peer's address and
/// certificates).
pub type TlsConn = tokio_rustls::server::TlsStream<TcpStream>;

/// When each peer's failed handshake was last logged.
#[derive(Default)]
struct Reported(Mutex<HashMap<IpAddr, Instant>>);

impl Reported {
    /// Whether a failure from `peer` at `now` is to be logged at warning level.
    fn loud(&self, peer: Option<IpAddr>, now: Instant) -> bool {
        let Some(ip) = peer else { return true };
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.retain(|_, at| now.duration_since(*at) < QUIET_FOR);
        match seen.get(&ip) {
            Some(_) => false,
            None => {
                seen.insert(ip, now);
                true
            }
        }
    }
}

/// The likely reason behind a failed handshake's error, for the log line.
fn likely(error: &str) -> &'static str {
    if error.contains("InvalidContentType") || error.contains("corrupt message") {
        "not TLS: a plaintext client"
    } else if error.contains("no certificates") || error.contains("NoCertificatesPresented") {
        "the peer showed no certificate, and this listener requires one"
    } else if error.contains("invalid peer certificate") {
        "the peer's certificate is not signed by a CA this listener trusts"
    } else if error.contains("received fatal alert") {
        "the peer refused this listener's certificate (it trusts another CA, or expects another name)"
    } else if error.contains("no handshake within") {
        "the peer sent no TLS handshake in time"
    } else {
        "a TLS setup mismatch"
    }
}

/// The connections of `accepted` after their TLS handshakes with `config`; `listener`
/// names the listener in log lines.
pub fn tls_incoming<S>(
    accepted: S,
    config: Arc<rustls::ServerConfig>,
    listener: &'static str,
) -> ReceiverStream<std::io::Result<TlsConn>>
where
    S: Stream<Item = std::io::Result<TcpStream>> + Send + Unpin + 'static,
{
    let (tx, rx) = mpsc::channel(64);
    let acceptor = TlsAcceptor::from(config);
    let reported = Arc::new(Reported::default());
    tokio::spawn(async move {
        let mut accepted = accepted;
        loop {
            let next = tokio::select! {
                n = accepted.next() => n,
                _ = tx.closed() => return,
            };
            let tcp = match next {
                None => return,
                Some(Err(e)) => {
                    if tx.send(Err(e)).await.is_err() {
                        return;
                    }
                    continue;
                }
                Some(Ok(tcp)) => tcp,
            };
            let (tx, acceptor, reported) = (tx.clone(), acceptor.clone(), Arc::clone(&reported));
            tokio::spawn(async move {
                let peer = tcp.peer_addr().ok();
                let why = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                        return;
                    }
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => format!("no handshake within {HANDSHAKE_TIMEOUT:?}"),
                };
                let peer_s = peer.map_or_else(|| "?".to_string(), |p| p.to_string());
                let likely = likely(&why);
                if reported.loud(peer.map(|p| p.ip()), Instant::now()) {
                    tracing::warn!(peer = %peer_s, listener, error = %why, likely, "TLS handshake failed; closing (logged once per peer address every 30 s)");
                } else {
                    tracing::debug!(peer = %peer_s, listener, error = %why, likely, "TLS handshake failed; closing");
                }
            });
        }
    });
    ReceiverStream::new(rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_handshakes_are_explained() {
        // (rustls' error) -> words of the likely reason
        let table = [
            (
                "received corrupt message of type InvalidContentType",
                "plaintext client",
            ),
            ("peer sent no certificates", "no certificate"),
            (
                "invalid peer certificate: UnknownIssuer",
                "not signed by a CA",
            ),
            (
                "received fatal alert: DecryptError",
                "refused this listener's certificate",
            ),
            (
                "received fatal alert: BadCertificate",
                "refused this listener's certificate",
            ),
            ("no handshake within 10s", "no TLS handshake in time"),
            ("something new", "mismatch"),
        ];
        for (error, words) in table {
            assert!(likely(error).contains(words), "{error}: {}", likely(error));
        }
    }

    #[test]
    fn failures_are_loud_once_per_peer_and_period() {
        let r = Reported::default();
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        // (peer, seconds after t0) -> loud
        let table = [
            (Some(a), 0, true),
            (Some(a), 1, false),
            (Some(b), 1, true),
            (None, 1, true),
            (Some(a), 29, false),
            (Some(a), 31, true),
        ];
        for (peer, secs, want) in table {
            assert_eq!(
                r.loud(peer, t0 + Duration::from_secs(secs)),
                want,
                "{peer:?} at {secs}s"
            );
        }
    }
}
