//! What the controller offers on a node's client port: `QuorumStatus` (the CLI's
//! `quorum status|describe` and `cluster describe`) and the voter changes (`quorum
//! add-voter|remove-voter`, which demand the quorum's secret when it has one). Broker sessions, registrations, ISR changes,
//! producer-id blocks and forwarded admin calls are served on the controller listener
//! only, so a client that reaches the client port cannot register or fence a broker.
//!
//! Invariant: a call to any other method is answered PERMISSION_DENIED without reaching
//! the controller. Depends on nothing but tonic's service types.

use std::convert::Infallible;
use std::task::{Context, Poll};
use tonic::body::Body;
use tonic::codegen::http::{Request, Response};
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

/// The controller methods clients may call on the client port. The voter changes check
/// the quorum's secret themselves when the quorum has one (`kavka --cluster-secret-file`).
pub const CLIENT_METHODS: &[&str] = &[
    "/kavka.v1.ControllerService/QuorumStatus",
    "/kavka.v1.ControllerService/AddRaftVoter",
    "/kavka.v1.ControllerService/RemoveRaftVoter",
];

/// A controller service that answers only [`CLIENT_METHODS`].
#[derive(Clone, Debug)]
pub struct ClientPort<S>(pub S);

impl<S> Service<Request<Body>> for ClientPort<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let path = req.uri().path();
        if CLIENT_METHODS.contains(&path) {
            let fut = self.0.call(req);
            return Box::pin(async move { Ok(fut.await.unwrap_or_else(|e| match e {})) });
        }
        let status = tonic::Status::permission_denied(format!(
            "{path} is served on the controller listener only (--controller-listen), not \
             on the client port"
        ));
        Box::pin(async move { Ok(status.into_http()) })
    }
}

impl<S: NamedService> NamedService for ClientPort<S> {
    const NAME: &'static str = S::NAME;
}
