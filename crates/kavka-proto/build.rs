//! Generates the tonic/prost code for proto/kavka/v1 with protox (pure Rust, no system
//! protoc) and writes the descriptor set that gRPC reflection serves.

use protox::prost::Message;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "kavka/v1/common.proto",
        "kavka/v1/admin.proto",
        "kavka/v1/broker.proto",
        "kavka/v1/group.proto",
        "kavka/v1/raft.proto",
        "kavka/v1/controller.proto",
        "kavka/v1/metadata.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("kavka_descriptor.bin"), fds.encode_to_vec())?;
    // ReplicaFetchPartitionResult is written by hand (src/replica_wire.rs): its records
    // are encoded from the leader's stored pieces without joining them first.
    tonic_prost_build::configure()
        .bytes(".")
        .extern_path(
            ".kavka.v1.ReplicaFetchPartitionResult",
            "crate::replica_wire::ReplicaFetchPartitionResult",
        )
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
