//! The broker's client of the controller quorum: tries the controllers in turn (starting
//! with the last that answered), with bounded retries, for calls any controller serves
//! (they forward writes to the active one). The admin writes, typed, are in `admin`.

mod admin;
mod quorum;

use kavka_model::{ErrorCode, KafkaError};
use kavka_proto::auth::PresentSecret;
use kavka_proto::v1::controller_service_client::ControllerServiceClient;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A client of a controller listener, presenting the quorum's secret (if any).
pub type ControllerClient = ControllerServiceClient<InterceptedService<Channel, PresentSecret>>;

/// How long a call keeps trying while the quorum elects a new active controller.
const RETRY_FOR: Duration = Duration::from_secs(10);
const BACKOFF: Duration = Duration::from_millis(100);
/// One call to one controller; a frozen controller must not stall the broker for long.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Controllers {
    addrs: Vec<String>,
    clients: Mutex<Vec<Option<ControllerClient>>>,
    preferred: AtomicUsize,
    secret: PresentSecret,
    transport: kavka_tls::Transport,
}

impl Controllers {
    /// The controllers at `addrs` (their controller listeners), called with `secret`
    /// over `transport` (plaintext or mutual TLS).
    pub fn new(addrs: Vec<String>, secret: PresentSecret, transport: kavka_tls::Transport) -> Self {
        let n = addrs.len();
        Self {
            addrs,
            clients: Mutex::new(vec![None; n]),
            preferred: AtomicUsize::new(0),
            secret,
            transport,
        }
    }

    /// The cluster's shared secret, if it has one.
    pub fn secret(&self) -> Option<Arc<str>> {
        self.secret.0.clone()
    }

    /// The interceptor that presents the cluster's secret (if any) on a client's calls.
    pub fn presenter(&self) -> PresentSecret {
        self.secret.clone()
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// A client for the controller at `addr` (connected lazily).
    pub fn client_for(&self, addr: &str) -> Result<ControllerClient, KafkaError> {
        self.client_with_timeout(addr, CALL_TIMEOUT)
    }

    /// [`Self::client_for`] whose calls may each take up to `timeout`.
    pub fn client_with_timeout(
        &self,
        addr: &str,
        timeout: Duration,
    ) -> Result<ControllerClient, KafkaError> {
        let endpoint = self
            .transport
            .endpoint(addr)
            .map_err(|e| {
                KafkaError::new(
                    ErrorCode::InvalidRequest,
                    format!("bad controller address '{addr}': {e}"),
                )
            })?
            .connect_timeout(Duration::from_secs(2))
            .timeout(timeout)
            .tcp_nodelay(true);
        Ok(
            ControllerServiceClient::with_interceptor(endpoint.connect_lazy(), self.secret.clone())
                .max_decoding_message_size(256 * 1024 * 1024),
        )
    }

    /// Starts the next calls with the controller at `addr` (the active one, as the
    /// session found it), so a frozen voter earlier in the list costs no call timeout.
    pub fn prefer(&self, addr: &str) {
        if let Some(i) = self.addrs.iter().position(|a| a == addr) {
            self.preferred.store(i, Ordering::Relaxed);
        }
    }

    fn client(&self, i: usize) -> Result<ControllerClient, KafkaError> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = &clients[i] {
            return Ok(c.clone());
        }
        let c = self.client_for(&self.addrs[i])?;
        clients[i] = Some(c.clone());
        Ok(c)
    }

    /// Calls `f` on one controller after another until one answers with something other
    /// than "unavailable" or NOT_CONTROLLER.
    pub async fn call<T, F, Fut>(&self, mut f: F) -> Result<T, KafkaError>
    where
        F: FnMut(ControllerClient) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let n = self.addrs.len();
        let mut last = KafkaError::new(ErrorCode::NotController, "no controller configured");
        let deadline = std::time::Instant::now() + RETRY_FOR;
        while std::time::Instant::now() < deadline {
            let start = self.preferred.load(Ordering::Relaxed);
            for k in 0..n {
                let i = (start + k) % n;
                match f(self.client(i)?).await {
                    Ok(v) => {
                        self.preferred.store(i, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Err(s) => {
                        let e = kavka_proto::conv::from_status(&s);
                        // Unreachable, timed out or cancelled: try the next controller.
                        let transport = matches!(
                            s.code(),
                            tonic::Code::Unavailable
                                | tonic::Code::Cancelled
                                | tonic::Code::DeadlineExceeded
                        );
                        if !transport
                            && !matches!(
                                e.code,
                                ErrorCode::NotController
                                    | ErrorCode::LeaderNotAvailable
                                    | ErrorCode::RequestTimedOut
                            )
                        {
                            return Err(e);
                        }
                        tracing::debug!(controller = %self.addrs[i], error = %e, "controller unavailable");
                        last = KafkaError::new(
                            e.code,
                            format!("controller {}: {}", self.addrs[i], e.message),
                        );
                    }
                }
            }
            tokio::time::sleep(BACKOFF).await;
        }
        Err(last)
    }
}
