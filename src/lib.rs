//! The cluster test harness: starts the real `kavka` binary as processes on 127.0.0.1,
//! each with its own port and data directory, and waits for conditions with deadlines.
//!
//! The binary is found beside the test executable's directory (`target/<profile>/kavka`)
//! and built once per test process with `cargo build -p kavka` when `KAVKA_BIN` is unset.

pub mod checker;
mod cluster;
pub mod compose;
pub mod kafka_clients;
mod node;

pub use cluster::Cluster;
pub use node::{Node, NodeOptions, free_port, kavka_bin, run_cli, wait_until};
