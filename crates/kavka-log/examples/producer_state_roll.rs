//! What a segment roll costs a partition that knows many idempotent producers (issue 16
//! item 8): fills one log with `PRODUCERS` producers (one batch each, through the public
//! append path), rolls once, then `ROLLS` times appends one batch from one producer and
//! rolls again, measuring each roll's wall time and the bytes it passed to `write(2)`
//! (`wchar` in `/proc/self/io`: the producer state files, plus a sealed segment's index
//! trim, which is next to nothing). Ends with the time to reopen the log.
//!
//! `cargo run --release -p kavka-log --example producer_state_roll -- [PRODUCERS] [ROLLS]
//! [replicated|fsync]`; the data directory is under `KAVKA_BENCH_DIR` (default: the
//! system temp dir).

use bytes::Bytes;
use kavka_log::{FlushPolicy, LogConfig, PartitionLog};
use kavka_model::LeaderEpoch;
use kavka_record::{Compression, Record, RecordBatch};
use std::time::{Duration, Instant};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let producers: i64 = args.first().map_or(Ok(200_000), |a| a.parse())?;
    let rolls: usize = args.get(1).map_or(Ok(200), |a| a.parse())?;
    let flush = args
        .get(2)
        .map_or(Some(FlushPolicy::REPLICATED), |a| FlushPolicy::from_name(a))
        .ok_or("flush: replicated or fsync")?;
    let base = std::env::var_os("KAVKA_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let dir = tempfile::Builder::new()
        .prefix("kavka-pstate-")
        .tempdir_in(base)?;
    let config = LogConfig {
        segment_bytes: 1 << 30,
        segment_ms: i64::MAX,
        flush,
        ..LogConfig::default()
    };
    let mut log = PartitionLog::open(dir.path(), config.clone())?;
    let mut template = RecordBatch::new(
        1_700_000_000_000,
        Compression::None,
        vec![Record {
            value: Some(Bytes::from_static(b"v")),
            ..Record::default()
        }],
    );
    template.producer_epoch = 0;
    let mut batch = |pid: i64, seq: i32| {
        template.producer_id = pid;
        template.base_sequence = seq;
        template.encode()
    };
    let started = Instant::now();
    for pid in 0..producers {
        log.append_as_leader(batch(pid, 0)?, LeaderEpoch(0), None, 0)?;
    }
    println!(
        "{producers} producers appended in {:.1?}; state: {}",
        started.elapsed(),
        log.producer_count()
    );
    let (first_ms, first_bytes) = measure(|| log.roll())?;
    println!(
        "first roll (whole state): {:.2} ms, {first_bytes} bytes written",
        first_ms.as_secs_f64() * 1e3
    );
    let mut times = Vec::with_capacity(rolls);
    let mut bytes = Vec::with_capacity(rolls);
    for i in 0..rolls {
        let pid = i as i64 % producers.max(1);
        log.append_as_leader(
            batch(pid, 1 + (i as i64 / producers) as i32)?,
            LeaderEpoch(0),
            None,
            0,
        )?;
        let (t, b) = measure(|| log.roll())?;
        times.push(t);
        bytes.push(b);
    }
    report(&times, &bytes);
    let files = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("producer-state")
        })
        .count();
    println!("producer state files in the directory: {files}");
    drop(log);
    let started = Instant::now();
    let log = PartitionLog::open(dir.path(), config)?;
    println!(
        "reopen: {:.1?}, {} producers",
        started.elapsed(),
        log.producer_count()
    );
    Ok(())
}

/// Wall time and bytes passed to `write(2)` by `f`.
fn measure<E>(f: impl FnOnce() -> Result<(), E>) -> Result<(Duration, u64), E> {
    let before = written_bytes();
    let started = Instant::now();
    f()?;
    let took = started.elapsed();
    Ok((took, written_bytes().saturating_sub(before)))
}

/// `wchar` of this process: every byte handed to `write(2)` and friends.
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("wchar: ")
                    .and_then(|v| v.trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn report(times: &[Duration], bytes: &[u64]) {
    if times.is_empty() {
        return;
    }
    let mut ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let n = ms.len();
    let mean = ms.iter().sum::<f64>() / n as f64;
    let total: u64 = bytes.iter().sum();
    let mut sorted = bytes.to_vec();
    sorted.sort_unstable();
    println!(
        "{n} rolls, one producer changed before each: time per roll mean {mean:.3} ms, \
         median {:.3} ms, max {:.3} ms; bytes written per roll mean {}, median {}, max {}",
        ms[n / 2],
        ms[n - 1],
        total / n as u64,
        sorted[n / 2],
        sorted[n - 1],
    );
}
