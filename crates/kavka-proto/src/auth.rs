//! The controller quorum's shared secret on the wire: the header every call to a
//! controller listener presents (Raft between voters, and broker sessions, metadata and
//! forwarded calls), and the client-side interceptor that adds it.
//!
//! Invariant: the secret travels only in this header, never in a message body or a log.

/// The gRPC metadata key carrying the quorum's shared secret.
pub const CONTROLLER_SECRET_HEADER: &str = "kavka-controller-secret";

/// Whether `presented` is the secret `ours`, compared in time independent of where the
/// first difference is.
pub fn secret_matches(ours: &str, presented: &str) -> bool {
    let (a, b) = (ours.as_bytes(), presented.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Adds the secret (when the node has one) to every call of a client.
#[derive(Clone, Default)]
pub struct PresentSecret(pub Option<std::sync::Arc<str>>);

impl std::fmt::Debug for PresentSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PresentSecret(..)"
        } else {
            "PresentSecret(none)"
        })
    }
}

impl tonic::service::Interceptor for PresentSecret {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(s) = &self.0 {
            let value = s.parse().map_err(|_| {
                tonic::Status::internal("the controller secret is not a valid header value")
            })?;
            req.metadata_mut().insert(CONTROLLER_SECRET_HEADER, value);
        }
        Ok(req)
    }
}
