//! The broker API: what a client can ask of this broker, by operation (Kafka's request
//! handlers are the model), in model types only. The gRPC services and the Kafka
//! listener are thin translators onto it: they decode, call, encode, and hold no logic
//! of their own, so both protocols share one behaviour and one place for the checks
//! every request must pass.
//!
//! - `admin`: topic and config writes, which go through the active controller; each
//!   answers once this broker's own metadata image shows the result, so a client reads
//!   its own write on its next request.
//! - `epochs` (on the replica manager): where a leader epoch ends.
//!
//! Invariants: no protobuf or Kafka protocol type appears here (conversions live in
//! `kavka-proto`'s `conv` and in `kavka-kafka`'s handlers); every request item gets
//! exactly one outcome, in request order.

pub mod admin;

pub use admin::{Admin, AlteredConfigs};
