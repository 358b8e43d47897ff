//! Encode, decode and append-check throughput of a 100-record batch of 1 KiB values, per
//! codec: `crc` is the header and CRC check alone, `validate` Kafka's full record
//! validation on top of it (what a leader runs on every produced batch).

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use kavka_record::{BatchHeader, Compression, Origin, Record, RecordBatch, Rules, validate};
use std::hint::black_box;

fn batch(compression: Compression) -> RecordBatch {
    let value: Vec<u8> = (0..1024u32)
        .map(|i| b"order customer shipped 42 EUR "[(i % 30) as usize])
        .collect();
    let records = (0..100)
        .map(|i| Record {
            offset_delta: i,
            timestamp_delta: i as i64,
            key: Some(Bytes::from(format!("key-{i}"))),
            value: Some(Bytes::from(value.clone())),
            headers: vec![],
        })
        .collect();
    RecordBatch::new(1_700_000_000_000, compression, records)
}

fn codec(c: &mut Criterion) {
    let mut g = c.benchmark_group("batch");
    g.throughput(Throughput::Bytes(100 * 1024));
    for codec in Compression::ALL {
        let b = batch(codec);
        let bytes = b.encode().unwrap_or_default();
        g.bench_with_input(BenchmarkId::new("encode", codec.name()), &b, |bench, b| {
            bench.iter(|| black_box(b.encode()))
        });
        g.bench_with_input(
            BenchmarkId::new("decode", codec.name()),
            &bytes,
            |bench, bytes| bench.iter(|| black_box(RecordBatch::decode(bytes))),
        );
        g.bench_with_input(
            BenchmarkId::new("crc", codec.name()),
            &bytes,
            |bench, bytes| {
                bench
                    .iter(|| black_box(BatchHeader::parse(bytes).and_then(|h| h.verify_crc(bytes))))
            },
        );
        let rules = Rules {
            origin: Origin::Client,
            compacted: false,
            create_time: None,
            max_batch_bytes: usize::MAX,
            decompressed_bytes_max: kavka_record::DECOMPRESSED_BYTES_MAX,
            now_ms: 1_700_000_000_000,
        };
        g.bench_with_input(
            BenchmarkId::new("validate", codec.name()),
            &bytes,
            |bench, bytes| bench.iter(|| black_box(validate(bytes, &rules))),
        );
    }
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
