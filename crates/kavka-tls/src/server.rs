//! The server side: a listener's key and certificate chain from one PEM file (Kafka's
//! `ssl.keystore.location` with `ssl.keystore.type=PEM`), and for client certificates
//! (`ssl.client.auth=requested|required`) the CAs to trust from another
//! (`ssl.truststore.location`). Kafka listeners (SSL, SASL_SSL) and gRPC listeners
//! (which add ALPN `h2`, see [`grpc_server_config`]) share it.
//!
//! Invariants: a file that does not hold what it must is an error naming the file and
//! what is missing, at start, never at the first client; only TLS 1.2 and 1.3 with
//! rustls' safe defaults.

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
    #[error(
        "a client certificate needs both a certificate file and its key file (got only the {0})"
    )]
    HalfIdentity(&'static str),
    #[error(
        "no CA file given to check servers against, and no system CA bundle found (looked at $SSL_CERT_FILE, {0})"
    )]
    NoRoots(String),
    #[error("invalid server name '{0}' for TLS: expected a DNS name or an IP address")]
    ServerName(String),
}

/// Every certificate in a PEM file; none is an error naming the file.
pub(crate) fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
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

/// The first private key of a PEM file.
pub(crate) fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    std::fs::metadata(path).map_err(|e| TlsError::Read {
        path: path.into(),
        reason: e.to_string(),
    })?;
    PrivateKeyDer::from_pem_file(path).map_err(|_| TlsError::NoKey(path.into()))
}

/// The CAs of a PEM file, as rustls trusts them.
pub(crate) fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in certificates(path)? {
        roots
            .add(c)
            .map_err(|e| TlsError::Rustls(format!("{}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// A gRPC listener's TLS configuration: [`server_config`] offering HTTP/2 by ALPN (gRPC
/// clients, tonic's among them, insist on it).
pub fn grpc_server_config(
    keystore: &Path,
    truststore: Option<&Path>,
    client_auth: ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = Arc::unwrap_or_clone(server_config(keystore, truststore, client_auth)?);
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(config))
}

/// The listener's TLS configuration.
pub fn server_config(
    keystore: &Path,
    truststore: Option<&Path>,
    client_auth: ClientAuth,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // Read now (a bad keystore stops the start), and again whenever the file changes.
    let keystore = crate::reload::ReloadingKeystore::new(keystore, Arc::clone(&provider))?;
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?;
    let builder = match (client_auth, truststore) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (auth, None) => return Err(TlsError::NoTruststore(auth)),
        (auth, Some(trust)) => {
            let roots = roots(trust)?;
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
    Ok(Arc::new(builder.with_cert_resolver(Arc::new(keystore))))
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
