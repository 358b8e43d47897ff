//! A writer process appends under `fsync` durability and prints each acknowledged offset;
//! the test SIGKILLs it mid-stream, reopens the log, and checks that every acknowledged
//! batch is there intact and that nothing corrupt is ever returned. Repeated over several
//! kill/reopen rounds on the same directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kavka_log::{FlushPolicy, GroupCommit, LogConfig, PartitionLog};
use kavka_model::{LeaderEpoch, Offset};
use kavka_record::{Compression, Record, RecordBatch};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KAVKA_CRASH_WRITER_DIR";

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024,
        segment_ms: i64::MAX,
        retention_ms: -1,
        retention_bytes: -1,
        index_interval_bytes: 1024,
        max_message_bytes: 1 << 20,
        flush: FlushPolicy::FSYNC,
        ..LogConfig::default()
    }
}

/// The payload of the batch that starts at `offset`: checkable after the crash.
fn payload(offset: i64) -> Bytes {
    Bytes::from(format!("record-{offset}-").repeat(1 + (offset % 7) as usize))
}

/// Runs only as the child: appends forever, printing `ACK <offset>` after each fsync.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return; // not the child
    };
    let mut log = PartitionLog::open(Path::new(&dir), config()).unwrap();
    let commit = GroupCommit::default();
    let mut out = std::io::stdout().lock();
    loop {
        let offset = log.log_end_offset().0;
        let batch = RecordBatch::new(
            offset,
            Compression::None,
            vec![Record {
                value: Some(payload(offset)),
                ..Record::default()
            }],
        )
        .encode()
        .unwrap();
        let info = log
            .append_as_leader(&batch[..], LeaderEpoch(1), None, 0)
            .unwrap();
        commit
            .wait_durable(info.last_offset.next(), || log.sync_point())
            .unwrap();
        writeln!(out, "ACK {}", info.first_offset).unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn sigkill_never_loses_an_fsynced_batch_nor_returns_a_corrupt_one() {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<i64> = Vec::new();
    for round in 0..5 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        // Kill after a varying number of acknowledgements (bounded by a deadline).
        let target = 50 + round * 37;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < target && Instant::now() < deadline {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(o) = line.strip_prefix("ACK ") {
                        acked.push(o.parse().unwrap());
                        seen += 1;
                    }
                }
                _ => break,
            }
        }
        child.kill().unwrap(); // SIGKILL
        // Lines already written before the kill were acknowledged too.
        for line in lines.map_while(Result::ok) {
            if let Some(o) = line.strip_prefix("ACK ") {
                acked.push(o.parse().unwrap());
            }
        }
        child.wait().unwrap();
        assert!(
            seen >= target,
            "round {round}: writer acknowledged only {seen} batches"
        );

        let log = PartitionLog::open(dir.path(), config()).unwrap();
        let end = log.log_end_offset();
        let data = log.read(Offset(0), usize::MAX, end).unwrap();
        let mut rest = &data.records.clone().into_bytes()[..];
        let mut present = std::collections::BTreeMap::new();
        while !rest.is_empty() {
            let (b, used) = RecordBatch::decode(rest).expect("no corrupt batch after recovery");
            present.insert(b.base_offset, b.records[0].value.clone().unwrap());
            rest = &rest[used..];
        }
        for &o in &acked {
            assert_eq!(
                present.get(&o),
                Some(&payload(o)),
                "round {round}: acknowledged offset {o}"
            );
        }
        // Offsets stay dense across the crash.
        assert_eq!(
            present.keys().copied().collect::<Vec<_>>(),
            (0..end.0).collect::<Vec<_>>()
        );
    }
}
