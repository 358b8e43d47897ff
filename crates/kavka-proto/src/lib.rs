//! The gRPC contract (proto/kavka/v1), generated at build time, and the one place where
//! protobuf messages and `kavka-model` types convert into each other (`conv`).

#[allow(clippy::all, clippy::unwrap_used, clippy::expect_used)]
pub mod v1 {
    tonic::include_proto!("kavka.v1");
}

/// The encoded descriptor set, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("kavka_descriptor");

pub mod auth;
pub mod conv;
