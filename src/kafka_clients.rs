//! The real Kafka clients the compatibility tests drive: kcat and a virtualenv with
//! confluent-kafka and kafka-python, installed by `deploy/kafka-clients.sh`. Without
//! them a test is skipped with a message, except under CI=true, where that is a failure.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The virtualenv's python, if the clients are installed; else why not.
pub fn clients() -> Result<PathBuf, String> {
    let python = root().join("target/kafka-clients/bin/python");
    if !python.exists() {
        return Err(format!("{} is missing", python.display()));
    }
    match Command::new("kcat").arg("-V").output() {
        Ok(o) if o.status.success() => Ok(python),
        _ => Err("kcat is not installed".into()),
    }
}

/// The clients, or `None` after saying why the test is skipped.
///
/// # Panics
/// Under CI=true when the clients are missing: CI must run every compatibility test.
pub fn clients_or_skip(test: &str) -> Option<PathBuf> {
    match clients() {
        Ok(p) => Some(p),
        Err(why) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("{test}: Kafka clients missing under CI ({why}); run deploy/kafka-clients.sh")
        }
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}; run deploy/kafka-clients.sh");
            None
        }
    }
}

/// Runs a command bounded by `timeout(1)`, feeding it `stdin`.
///
/// # Panics
/// When the command cannot be started.
pub fn bounded(secs: u64, program: &str, args: &[&str], stdin: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new("timeout")
        .arg(secs.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin);
    }
    child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {program}: {e}"))
}
