//! Log append and read throughput with 1 KiB records in 16 KiB batches, on real files.
//! The data directory is `KAVKA_BENCH_DIR` (default: the system temp dir), so the disk
//! measured is the one the figures name.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kavka_log::{FlushPolicy, GroupCommit, LogConfig, PartitionLog};
use kavka_model::{LeaderEpoch, Offset};
use kavka_record::{Compression, Record, RecordBatch};
use std::hint::black_box;

const RECORDS_PER_BATCH: usize = 16;

fn batch() -> Vec<u8> {
    let value = Bytes::from(vec![b'x'; 1024]);
    let records = (0..RECORDS_PER_BATCH as i32)
        .map(|i| Record {
            offset_delta: i,
            value: Some(value.clone()),
            ..Record::default()
        })
        .collect();
    RecordBatch::new(1_700_000_000_000, Compression::None, records)
        .encode()
        .unwrap_or_default()
}

fn config(flush: FlushPolicy) -> LogConfig {
    LogConfig {
        segment_bytes: 256 * 1024 * 1024,
        flush,
        ..LogConfig::default()
    }
}

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("KAVKA_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    tempfile::Builder::new()
        .prefix("kavka-log-bench-")
        .tempdir_in(base)
        .unwrap_or_else(|e| panic!("bench dir: {e}"))
}

fn append(c: &mut Criterion) {
    let bytes = batch();
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    for flush in [FlushPolicy::REPLICATED, FlushPolicy::FSYNC] {
        let dir = bench_dir();
        let mut log =
            PartitionLog::open(dir.path(), config(flush)).unwrap_or_else(|e| panic!("{e}"));
        let commit = GroupCommit::default();
        g.bench_function(format!("append_16KiB_batch/{}", flush.name()), |b| {
            b.iter(|| {
                let info = log
                    .append_as_leader(&bytes[..], LeaderEpoch(0), None, 0)
                    .unwrap_or_else(|e| panic!("{e}"));
                if flush == FlushPolicy::FSYNC {
                    commit
                        .wait_durable(info.last_offset.next(), || log.sync_point())
                        .unwrap_or_else(|e| panic!("{e}"));
                }
                black_box(info)
            })
        });
    }
    // 64 MiB in one active segment, then in 64 closed 1 MiB segments (their reads borrow
    // handles from the node's cache of closed segments' files).
    for (name, segment_bytes) in [
        ("read_1MiB", 256 * 1024 * 1024),
        ("read_1MiB_closed_segments", 1024 * 1024),
    ] {
        let dir = bench_dir();
        let config = LogConfig {
            segment_bytes,
            ..config(FlushPolicy::REPLICATED)
        };
        let mut log = PartitionLog::open(dir.path(), config).unwrap_or_else(|e| panic!("{e}"));
        for _ in 0..4096 {
            log.append_as_leader(&bytes[..], LeaderEpoch(0), None, 0)
                .unwrap_or_else(|e| panic!("{e}"));
        }
        let end = log.log_end_offset();
        let mut from = 0i64;
        g.throughput(Throughput::Bytes(1024 * 1024));
        g.bench_function(name, |b| {
            b.iter(|| {
                let data = log
                    .read(Offset(from), 1024 * 1024, end)
                    .unwrap_or_else(|e| panic!("{e}"));
                from = (from + 1024) % (end.0 - 2048);
                black_box(data)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, append);
criterion_main!(benches);
