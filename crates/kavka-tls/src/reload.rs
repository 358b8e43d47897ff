//! A listener's certificate that follows its keystore file: each TLS handshake checks
//! the file's modification time (one `stat`), and a changed file is read again, so a
//! renewed certificate is served from the next connection on, without a restart.
//! Connections already open keep the certificate they were made with.
//!
//! Invariants: a keystore that cannot be read or does not hold a matching key and
//! certificate chain is refused at start (the listener never starts without a
//! certificate); once serving, such a file is logged once per change and the previous
//! certificate stays in use. Only the keystore is followed: the truststore, and the
//! certificate a node presents as a client (inter-broker mutual TLS), are read at start.

use crate::server::{TlsError, certificates, private_key};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The keystore's certificate, read again when its file changes.
#[derive(Debug)]
pub struct ReloadingKeystore {
    path: PathBuf,
    provider: Arc<CryptoProvider>,
    /// The modification time last read (or tried), and the certificate in use.
    current: Mutex<(Option<SystemTime>, Arc<CertifiedKey>)>,
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The key and certificate chain of a PEM keystore, checked to match.
fn load(path: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let chain = certificates(path)?;
    let key = private_key(path)?;
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| TlsError::Rustls(format!("{}: {e}", path.display())))
}

impl ReloadingKeystore {
    /// Reads `path` now; an error names it.
    pub fn new(path: &Path, provider: Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let seen = modified(path);
        let key = load(path, &provider)?;
        Ok(Self {
            path: path.to_path_buf(),
            provider,
            current: Mutex::new((seen, Arc::new(key))),
        })
    }

    /// The certificate to serve now, after reading the file again if it changed.
    pub fn certified_key(&self) -> Arc<CertifiedKey> {
        let now = modified(&self.path);
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if now.is_some() && now != current.0 {
            current.0 = now;
            match load(&self.path, &self.provider) {
                Ok(key) => {
                    current.1 = Arc::new(key);
                    tracing::info!(keystore = %self.path.display(), "keystore changed: serving its certificate to new connections");
                }
                Err(e) => {
                    tracing::warn!(keystore = %self.path.display(), error = %e, "keystore changed but cannot be used; still serving the previous certificate");
                }
            }
        }
        Arc::clone(&current.1)
    }
}

impl ResolvesServerCert for ReloadingKeystore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified_key())
    }
}
