//! Thin tonic services: decode the request, call the replica manager, encode the reply.
//! Request-level Kafka errors become gRPC statuses via `kavka_proto::conv::status`.

mod admin;
mod broker;
mod group;
pub mod watch;

pub use admin::AdminService;
pub use broker::{BrokerService, MESSAGE_BYTES_MAX};
pub use group::GroupService;
