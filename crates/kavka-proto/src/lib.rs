//! The gRPC contract (proto/kavka/v1), generated at build time, and the one place where
//! protobuf messages and `kavka-model` types convert into each other (`conv`). One
//! message is written by hand, byte for byte what prost would generate:
//! `ReplicaFetchPartitionResult` (`replica_wire`), whose records go out as the leader's
//! stored pieces without being joined first.

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod v1 {
    tonic::include_proto!("kavka.v1");
    pub use crate::replica_wire::ReplicaFetchPartitionResult;
}

/// The encoded descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kavka_descriptor");

pub mod auth;
pub mod conv;
mod replica_wire;
