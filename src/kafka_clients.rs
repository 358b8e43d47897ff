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
            crate::say_skipped(test, &format!("{why}; run deploy/kafka-clients.sh"));
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

/// One record acknowledged to the librdkafka producer.
#[derive(Clone, Debug)]
pub struct RdkafkaAck {
    pub partition: i32,
    /// `None`: delivered without an offset (librdkafka reports some retried batches of an
    /// idempotent producer as persisted with the offset unknown).
    pub offset: Option<i64>,
    pub value: String,
    /// When the acknowledgement arrived, in Unix seconds.
    pub unix_time: f64,
}

/// A librdkafka (confluent-kafka) idempotent acks=all producer writing unique values
/// (`v-<n>`, keyless) as fast as it is acknowledged, in a child process
/// (`tests/kafka/produce_through_kill.py`), until [`RdkafkaProducer::stop`].
pub struct RdkafkaProducer {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl RdkafkaProducer {
    /// Starts it against `kafka_bootstrap` (bounded to `seconds_max`, and by `timeout(1)`).
    pub fn start(
        python: &std::path::Path,
        kafka_bootstrap: &str,
        topic: &str,
        seconds_max: u32,
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let child = Command::new("timeout")
            .arg((seconds_max + 120).to_string())
            .arg(python)
            .args(["-W", "ignore"])
            .arg(root().join("tests/kafka/produce_through_kill.py"))
            .args([kafka_bootstrap, topic, &seconds_max.to_string()])
            .arg(dir.path().join("acks.jsonl"))
            .arg(dir.path().join("stop"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        Ok(Self { child, dir })
    }

    /// Stops it (it flushes what is in flight, bounded) and returns every
    /// acknowledgement it saw. Blocking.
    pub fn stop(mut self) -> anyhow::Result<Vec<RdkafkaAck>> {
        std::fs::write(self.dir.path().join("stop"), b"")?;
        let status = self.child.wait()?;
        anyhow::ensure!(status.success(), "the librdkafka producer failed: {status}");
        let text = std::fs::read_to_string(self.dir.path().join("acks.jsonl"))?;
        let mut acks = Vec::new();
        let mut done = false;
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            if v["done"].as_bool() == Some(true) {
                done = true;
                continue;
            }
            let field = |k: &str| anyhow::anyhow!("ack line without '{k}': {line}");
            acks.push(RdkafkaAck {
                partition: v["p"].as_i64().ok_or_else(|| field("p"))? as i32,
                offset: v["o"].as_i64(),
                value: v["v"].as_str().ok_or_else(|| field("v"))?.to_string(),
                unix_time: v["t"].as_f64().ok_or_else(|| field("t"))?,
            });
        }
        anyhow::ensure!(done, "no summary line from the librdkafka producer");
        Ok(acks)
    }
}

impl RdkafkaAck {
    /// As an acknowledgement the history checker holds to its rules (at its offset);
    /// `None` when the offset is unknown (its value is still checked for duplicates).
    pub fn into_ack(self) -> Option<crate::checker::Ack> {
        Some(crate::checker::Ack {
            partition: self.partition,
            offset: self.offset?,
            value: self.value,
            at: std::time::Instant::now(),
        })
    }
}
