//! The cluster test harness: starts the real `kavka` binary as processes on 127.0.0.1,
//! each with its own port and data directory, and waits for conditions with deadlines.
//!
//! The binary is found beside the test executable's directory (`target/<profile>/kavka`)
//! and built once per test process with `cargo build -p kavka` when `KAVKA_BIN` is unset.

pub mod checker;
pub mod cli_output;
mod cluster;
pub mod compose;
pub mod http;
pub mod kafka_clients;
mod node;
pub mod raw_grpc;

pub use cluster::Cluster;
pub use node::{Node, NodeOptions, free_port, kavka_bin, run_cli, run_cli_with_env, wait_until};

/// Says that a test is skipped, and why, where the run's reader sees it: on the process's
/// own standard error, past the test runner's capture of passing tests' output.
pub fn say_skipped(test: &str, why: &str) {
    use std::io::Write;
    let line = format!("SKIPPED {test}: {why}\n");
    match std::fs::OpenOptions::new().append(true).open("/dev/stderr") {
        Ok(mut f) => {
            let _ = f.write_all(line.as_bytes());
        }
        Err(_) => eprint!("{line}"),
    }
}
