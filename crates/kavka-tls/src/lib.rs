//! TLS with rustls and ring (never OpenSSL or aws-lc) for every listener and channel of a
//! node and for its clients:
//!
//! - [`server`]: a listener's rustls configuration from PEM files (Kafka's
//!   `ssl_keystore_location`, `ssl_truststore_location`, `ssl_client_auth`), shared by the
//!   Kafka listeners and the gRPC listeners;
//! - [`reload`]: a listener's certificate, read again when its keystore file changes;
//! - [`incoming`]: a gRPC listener's accepted connections, TLS-wrapped, for tonic's
//!   `serve_with_incoming`;
//! - [`client`]: [`Transport`], the one way to turn an address into a tonic `Endpoint`,
//!   plaintext or TLS (with a CA, an optional client certificate for mutual TLS, and an
//!   optional server name).
//!
//! Invariants: every file is read and checked when the configuration is built (at a
//! node's start, at a CLI's start), and a bad one is an error naming it; nothing here
//! depends on the broker, the controller or the CLI.

pub mod client;
pub mod incoming;
pub mod reload;
pub mod server;

pub use client::{ClientTlsFiles, Transport};
pub use rustls;
pub use server::{ClientAuth, TlsError, grpc_server_config, server_config};

/// A gRPC listener's security protocol, in Kafka's names (`security.inter.broker.protocol`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    Plaintext,
    Ssl,
}

impl Protocol {
    /// `PLAINTEXT` or `SSL`, in any case.
    pub fn from_name(s: &str) -> Option<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Protocol::Plaintext),
            "SSL" => Some(Protocol::Ssl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Protocol::Plaintext => "PLAINTEXT",
            Protocol::Ssl => "SSL",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_names() {
        // name -> protocol
        let table = [
            ("PLAINTEXT", Some(Protocol::Plaintext)),
            ("ssl", Some(Protocol::Ssl)),
            (" SSL ", Some(Protocol::Ssl)),
            ("SASL_SSL", None),
            ("", None),
        ];
        for (name, want) in table {
            assert_eq!(Protocol::from_name(name), want, "{name:?}");
        }
        assert_eq!(Protocol::Ssl.name(), "SSL");
    }
}
