//! TLS for Kafka listeners (security protocols SSL and SASL_SSL) with rustls: the
//! server's key and certificate chain from one PEM file (Kafka's
//! `ssl.keystore.location` with `ssl.keystore.type=PEM`), and for client certificates
//! (`ssl.client.auth=requested|required`) the CAs to trust from another
//! (`ssl.truststore.location`).
//!
//! Invariants: a file that does not hold what it must is an error naming the file and
//! what is missing, at start, never at the first client; only TLS 1.2 and 1.3 with
//! rustls' safe defaults. Must not depend on the broker.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Kafka's `ssl.client.auth`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    Requested,
    Required,
}

impl ClientAuth {
    pub fn from_name(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "none" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0} holds no certificate (expected PEM 'BEGIN CERTIFICATE' blocks)")]
    NoCertificate(PathBuf),
    #[error("{0} holds no private key (expected a PEM PRIVATE KEY block before the certificates)")]
    NoKey(PathBuf),
    #[error(
        "ssl_client_auth={0:?} needs ssl_truststore_location: the CAs client certificates are checked against"
    )]
    NoTruststore(ClientAuth),
    #[error("invalid TLS setup: {0}")]
    Rustls(String),
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.into()));
    }
    Ok(certs)
}

/// The listener's TLS configuration.
pub fn server_config(
    keystore: &Path,
    truststore: Option<&Path>,
    client_auth: ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certificates(keystore)?;
    let key =
        PrivateKeyDer::from_pem_file(keystore).map_err(|_| TlsError::NoKey(keystore.into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (client_auth, truststore) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, None) => return Err(TlsError::NoTruststore(auth)),
        (auth, Some(trust)) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates(trust)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError::Rustls(format!("{}: {e}", trust.display())))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Rustls(e.to_string()))?,
            )
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", keystore.display())))?;
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keystores_are_refused_naming_the_file() {
        let dir = std::env::temp_dir().join(format!("kavka-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not pem\n").unwrap();
        // (keystore, truststore, client auth) -> error words
        let missing = dir.join("missing.pem");
        let table: [(&Path, Option<&Path>, ClientAuth, &str); 3] = [
            (&missing, None, ClientAuth::None, "cannot read"),
            (&empty, None, ClientAuth::None, "holds no certificate"),
            (&empty, None, ClientAuth::Required, "holds no certificate"),
        ];
        for (keystore, trust, auth, words) in table {
            let e = server_config(keystore, trust, auth)
                .unwrap_err()
                .to_string();
            assert!(e.contains(words), "{e}");
        }
        assert_eq!(
            ClientAuth::from_name("REQUIRED"),
            Some(ClientAuth::Required)
        );
        assert_eq!(ClientAuth::from_name("maybe"), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
