//! The client side: [`Transport`] turns an address into a tonic `Endpoint`, plaintext
//! (`http://`) or TLS (`https://`, rustls with ring) with the CAs that servers'
//! certificates are checked against, an optional client certificate for mutual TLS, and
//! an optional name to check the server's certificate against instead of the address's
//! host. Every gRPC channel of a node and of the CLI is made here.
//!
//! Invariants: [`Transport::tls`] reads and checks every file at once (a bad one is an
//! error naming it), so [`Transport::endpoint`] fails only on a bad address; a plaintext
//! transport never offers TLS and a TLS transport never falls back to plaintext.

use crate::server::{TlsError, certificates, private_key, roots};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

/// Where the system's CA bundle usually is, after `$SSL_CERT_FILE`.
const SYSTEM_CA_BUNDLES: [&str; 4] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// A client's TLS material, as files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// PEM CAs that servers' certificates are checked against (`None`: the system's CA
    /// bundle).
    pub ca: Option<PathBuf>,
    /// PEM certificate chain presented for mutual TLS; may hold its key too (a node's
    /// keystore does).
    pub cert: Option<PathBuf>,
    /// PEM private key of `cert` (`None`: the key is in `cert`'s file).
    pub key: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the address's host).
    pub server_name: Option<String>,
}

/// Plaintext or TLS gRPC channels; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct Transport {
    tls: Option<Arc<ClientTls>>,
}

#[derive(Debug)]
struct ClientTls {
    config: ClientTlsConfig,
    /// Whether a client certificate is presented (mutual TLS).
    identity: bool,
}

/// An address that makes no endpoint.
#[derive(Debug, thiserror::Error)]
#[error("bad address '{addr}': {reason}")]
pub struct EndpointError {
    pub addr: String,
    pub reason: String,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.into(),
        reason: e.to_string(),
    })
}

/// The system's CA bundle: `$SSL_CERT_FILE`, else the first of [`SYSTEM_CA_BUNDLES`].
fn system_roots() -> Result<Vec<u8>, TlsError> {
    let env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
    for path in env
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from))
    {
        if let Ok(pem) = std::fs::read(&path) {
            return Ok(pem);
        }
    }
    Err(TlsError::NoRoots(SYSTEM_CA_BUNDLES.join(", ")))
}

/// The innermost cause of an error, which says what happened.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out = format!("{out}: {c}");
        cause = c.source();
    }
    out
}

impl Transport {
    /// Plaintext channels (`http://`).
    pub fn plaintext() -> Self {
        Self::default()
    }

    /// TLS channels with `files`, each read and checked now.
    pub fn tls(files: &ClientTlsFiles) -> Result<Self, TlsError> {
        let mut config = ClientTlsConfig::new();
        config = match &files.ca {
            Some(ca) => {
                roots(ca)?;
                config.ca_certificate(Certificate::from_pem(read(ca)?))
            }
            None => config.ca_certificate(Certificate::from_pem(system_roots()?)),
        };
        match (&files.cert, &files.key) {
            (None, None) => {}
            (None, Some(_)) => return Err(TlsError::HalfIdentity("key")),
            (Some(cert), key) => {
                let key = key.as_deref().unwrap_or(cert);
                certificates(cert)?;
                private_key(key)?;
                config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
        }
        if let Some(name) = &files.server_name {
            rustls::pki_types::ServerName::try_from(name.as_str())
                .map_err(|_| TlsError::ServerName(name.clone()))?;
            config = config.domain_name(name.clone());
        }
        // Whatever rustls itself refuses (a key that is no key it knows) shows now.
        Endpoint::from_static("https://localhost:1")
            .tls_config(config.clone())
            .map_err(|e| TlsError::Rustls(chain(&e)))?;
        Ok(Self {
            tls: Some(Arc::new(ClientTls {
                config,
                identity: files.cert.is_some(),
            })),
        })
    }

    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether TLS connections present a client certificate.
    pub fn presents_certificate(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.identity)
    }

    /// An endpoint for `addr` (`host:port`, with or without an `http://` or `https://`
    /// prefix), speaking this transport whatever the prefix says.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, EndpointError> {
        let bare = addr
            .strip_prefix("http://")
            .or_else(|| addr.strip_prefix("https://"))
            .unwrap_or(addr);
        let bad = |e: &dyn std::error::Error| EndpointError {
            addr: addr.to_string(),
            reason: chain(e),
        };
        match &self.tls {
            None => Endpoint::from_shared(format!("http://{bare}")).map_err(|e| bad(&e)),
            Some(tls) => Endpoint::from_shared(format!("https://{bare}"))
                .map_err(|e| bad(&e))?
                .tls_config(tls.config.clone())
                .map_err(|e| bad(&e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_take_the_transports_scheme() {
        let plain = Transport::plaintext();
        assert!(!plain.is_tls());
        // (address) -> the URI a plaintext endpoint gets
        let table = [
            ("127.0.0.1:9093", "http://127.0.0.1:9093/"),
            ("http://node1:9093", "http://node1:9093/"),
            ("https://node1:9093", "http://node1:9093/"),
        ];
        for (addr, want) in table {
            assert_eq!(plain.endpoint(addr).unwrap().uri().to_string(), want);
        }
        let e = plain.endpoint("no spaces:1").unwrap_err().to_string();
        assert!(e.contains("bad address 'no spaces:1'"), "{e}");
    }

    #[test]
    fn bad_client_material_is_named() {
        let dir = std::env::temp_dir().join(format!("kavka-tls-client-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem\n").unwrap();
        let missing = dir.join("missing.pem");
        let files = |ca: Option<&Path>, cert: Option<&Path>, key: Option<&Path>| ClientTlsFiles {
            ca: ca.map(Path::to_path_buf),
            cert: cert.map(Path::to_path_buf),
            key: key.map(Path::to_path_buf),
            server_name: None,
        };
        // (files) -> error words
        let table = [
            (files(Some(&missing), None, None), "cannot read"),
            (files(Some(&junk), None, None), "holds no certificate"),
            (files(None, None, Some(&junk)), "only the key"),
        ];
        for (f, words) in table {
            let e = Transport::tls(&f).unwrap_err().to_string();
            assert!(e.contains(words), "{f:?}: {e}");
        }
        let e = Transport::tls(&ClientTlsFiles {
            server_name: Some("bad name!".into()),
            ..files(None, None, None)
        });
        // Without a system CA bundle the roots fail first; either way it is refused.
        assert!(e.is_err());
        let _ = std::fs::remove_dir_all(dir);
    }
}
