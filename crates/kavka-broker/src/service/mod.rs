//! Thin tonic services: decode the request, call the broker API (`crate::api`: `Admin`,
//! `BrokerApi`), encode the reply. Protobuf <-> model conversions live in
//! `kavka_proto::conv`; request-level Kafka errors become gRPC statuses via
//! `kavka_proto::conv::status`.

mod admin;
mod broker;
mod group;
pub mod watch;

pub use admin::AdminService;
pub use broker::{BrokerService, MESSAGE_BYTES_MAX};
pub use group::GroupService;

/// Holds client calls off until the broker is ready (registered, unfenced and caught up
/// with the metadata log), as Kafka enables request processing only then: before that
/// an answer would describe a cluster without this broker. UNAVAILABLE, which clients
/// retry.
#[derive(Clone, Debug)]
pub struct ReadyGate(pub tokio::sync::watch::Receiver<bool>);

impl tonic::service::Interceptor for ReadyGate {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if *self.0.borrow() {
            Ok(req)
        } else {
            Err(tonic::Status::unavailable(
                "this broker is not ready yet: it is registering with the controller quorum and catching up with the metadata log",
            ))
        }
    }
}
