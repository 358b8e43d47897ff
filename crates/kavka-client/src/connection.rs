//! Connecting to a node from a bootstrap list.

use crate::error::ClientError;
use kavka_proto::v1::admin_service_client::AdminServiceClient;
use kavka_proto::v1::broker_service_client::BrokerServiceClient;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

/// Largest gRPC message either way (matches the broker's limit).
const MESSAGE_BYTES_MAX: usize = 64 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one Kavka node.
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) admin: AdminServiceClient<Channel>,
    pub(crate) broker: BrokerServiceClient<Channel>,
    addr: String,
}

/// Splits and checks `host:port[,host:port...]`.
pub fn parse_bootstrap(bootstrap: &str) -> Result<Vec<String>, ClientError> {
    let bad = || ClientError::InvalidBootstrap(bootstrap.to_string());
    let mut out = Vec::new();
    for part in bootstrap
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let part = part.strip_prefix("http://").unwrap_or(part);
        let (host, port) = part.rsplit_once(':').ok_or_else(bad)?;
        if host.is_empty() || host.contains('/') || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(bad());
        }
        out.push(part.to_string());
    }
    if out.is_empty() {
        return Err(bad());
    }
    Ok(out)
}

impl Client {
    /// Connects to the first reachable node of `bootstrap`.
    pub async fn connect(bootstrap: &str) -> Result<Self, ClientError> {
        let addrs = parse_bootstrap(bootstrap)?;
        let mut last_error = String::new();
        for addr in &addrs {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))
                .map_err(|_| ClientError::InvalidBootstrap(addr.clone()))?
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true);
            match endpoint.connect().await {
                Ok(channel) => {
                    return Ok(Self {
                        admin: AdminServiceClient::new(channel.clone())
                            .max_decoding_message_size(MESSAGE_BYTES_MAX),
                        broker: BrokerServiceClient::new(channel)
                            .max_decoding_message_size(MESSAGE_BYTES_MAX)
                            .max_encoding_message_size(MESSAGE_BYTES_MAX),
                        addr: addr.clone(),
                    });
                }
                Err(e) => {
                    // The innermost cause says what happened ("Connection refused").
                    let mut cause: &dyn std::error::Error = &e;
                    while let Some(next) = cause.source() {
                        cause = next;
                    }
                    last_error = format!("{addr}: {cause}");
                }
            }
        }
        Err(ClientError::Connect {
            addrs: addrs.join(","),
            reason: last_error,
        })
    }

    /// The node this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_lists() {
        assert_eq!(parse_bootstrap("a:1, b:2").unwrap(), ["a:1", "b:2"]);
        assert_eq!(
            parse_bootstrap("http://127.0.0.1:9093").unwrap(),
            ["127.0.0.1:9093"]
        );
        for bad in [
            "",
            "localhost",
            "host:",
            ":9093",
            "host:99999",
            "host:0",
            "h/x:1",
            ",",
        ] {
            let e = parse_bootstrap(bad).unwrap_err();
            assert!(
                e.to_string().contains("invalid bootstrap address"),
                "{bad}: {e}"
            );
        }
    }
}
