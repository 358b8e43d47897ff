//! Thin tonic services: decode the request, call the broker API (`crate::api`: `Admin`,
//! `BrokerApi`), encode the reply. Protobuf <-> model conversions live in
//! `kavka_proto::conv`; request-level Kafka errors become gRPC statuses via
//! `kavka_proto::conv::status`.

mod admin;
pub mod auth;
mod broker;
mod group;
pub mod watch;

pub use admin::AdminService;
pub use auth::Gate;
pub use broker::{BrokerService, MESSAGE_BYTES_MAX};
pub use group::GroupService;
