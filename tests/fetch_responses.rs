//! Fetch answers written from the log's own buffers (issue 16 item 9), against the real
//! binary: every advertised Fetch version returns exactly the batches produced, small
//! ones (copied into the frame) and large ones (sent by reference) alike, across
//! partitions; a real client (kcat, librdkafka) consumes them.
//!
//! `peak_rss_of_one_large_fetch` (ignored) is the measurement in BENCHMARKS.md.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::Bytes;
use kafka_protocol::messages::*;
use kavka_harness::kafka_clients::{bounded, clients_or_skip};
use kavka_harness::{Node, NodeOptions};
use kavka_record::{Compression, Record, RecordBatch, batches};
use tokio::net::TcpStream;

mod raw_kafka;
use raw_kafka::{call, topic};

const TOPIC: &str = "gathered";
/// Values per batch, per partition: below and above the gather threshold (4 KiB), and
/// batches of several records.
const BATCHES: &[&[usize]] = &[
    &[10],
    &[5_000],
    &[200_000],
    &[100, 100, 100],
    &[64 * 1024; 3],
];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A value a reader can check: `len` bytes of one letter picked by (partition, batch, record).
fn value(partition: i32, batch: usize, record: usize, len: usize) -> Vec<u8> {
    let letter = b'a' + ((partition as usize * 7 + batch * 3 + record) % 26) as u8;
    vec![letter; len]
}

/// Produces one batch of `values` and returns the bytes sent.
async fn produce(c: &mut TcpStream, name: &str, partition: i32, values: Vec<Vec<u8>>) -> Vec<u8> {
    let records = values
        .into_iter()
        .enumerate()
        .map(|(i, v)| Record {
            offset_delta: i as i32,
            value: Some(Bytes::from(v)),
            ..Record::default()
        })
        .collect();
    let batch = RecordBatch::new(now_ms(), Compression::None, records)
        .encode()
        .unwrap();
    let r: ProduceResponse = call(
        c,
        ApiKey::Produce,
        9,
        &ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic(name))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(Bytes::from(batch.clone()))),
                    ]),
            ]),
    )
    .await;
    let p = &r.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 0, "produce to {name}-{partition}");
    batch
}

fn fetch_request(
    name: &str,
    partitions: &[(i32, i64)],
    max_bytes: i32,
    partition_max_bytes: i32,
) -> FetchRequest {
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(max_bytes)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic(name))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|&(p, offset)| {
                            fetch_request::FetchPartition::default()
                                .with_partition(p)
                                .with_fetch_offset(offset)
                                .with_partition_max_bytes(partition_max_bytes)
                        })
                        .collect(),
                ),
        ])
}

/// The stored form of what was sent: the broker sets the base offset and the partition
/// leader epoch (bytes 0..8 and 12..16) and keeps every other byte.
fn assert_same_batches(got: &[u8], sent: &[Vec<u8>], first_offset: i64, what: &str) {
    let mut offset = first_offset;
    let mut rest = got;
    for (i, want) in sent.iter().enumerate() {
        assert!(rest.len() >= want.len(), "{what}: batch {i} missing");
        let (one, tail) = rest.split_at(want.len());
        assert_eq!(
            i64::from_be_bytes(one[..8].try_into().unwrap()),
            offset,
            "{what}: batch {i} base offset"
        );
        assert!(
            one[8..12] == want[8..12] && one[16..] == want[16..],
            "{what}: batch {i} differs from what was produced"
        );
        offset += batches(one).next().unwrap().unwrap().0.last_offset_delta as i64 + 1;
        rest = tail;
    }
    assert!(
        rest.is_empty(),
        "{what}: {} bytes more than produced",
        rest.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fetch_version_returns_exactly_the_batches_produced() {
    let n = Node::start(NodeOptions::default()).await.unwrap();
    let out = n.cli(&["topic", "create", TOPIC, "--partitions", "2"]);
    assert!(out.status.success(), "{out:?}");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();

    let mut sent: Vec<Vec<Vec<u8>>> = vec![Vec::new(), Vec::new()];
    for partition in 0..2 {
        for (b, sizes) in BATCHES.iter().enumerate() {
            let values = sizes
                .iter()
                .enumerate()
                .map(|(r, &len)| value(partition, b, r, len))
                .collect();
            let batch = produce(&mut c, TOPIC, partition, values).await;
            sent[partition as usize].push(batch);
        }
    }
    let total_records: i64 = BATCHES.iter().map(|b| b.len() as i64).sum();

    // Every version the node advertises.
    let versions: ApiVersionsResponse = call(
        &mut c,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(kafka_protocol::protocol::StrBytes::from_static_str("t"))
            .with_client_software_version(kafka_protocol::protocol::StrBytes::from_static_str("1")),
    )
    .await;
    let fetch = versions
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::Fetch as i16)
        .unwrap();
    assert!(
        fetch.max_version >= 12,
        "Fetch up to v{}",
        fetch.max_version
    );
    for version in fetch.min_version..=fetch.max_version {
        // Both partitions from the start, in one response.
        let r: FetchResponse = call(
            &mut c,
            ApiKey::Fetch,
            version,
            &fetch_request(TOPIC, &[(0, 0), (1, 0)], i32::MAX, i32::MAX),
        )
        .await;
        assert_eq!(r.error_code, 0, "v{version}");
        assert_eq!(r.responses.len(), 1, "v{version}");
        let parts = &r.responses[0].partitions;
        assert_eq!(parts.len(), 2, "v{version}");
        for (p, data) in parts.iter().enumerate() {
            assert_eq!(data.partition_index, p as i32);
            assert_eq!(data.error_code, 0, "v{version} partition {p}");
            assert_eq!(
                data.high_watermark, total_records,
                "v{version} partition {p}"
            );
            let records = data.records.clone().unwrap_or_default();
            assert_same_batches(
                &records,
                &sent[p],
                0,
                &format!("v{version} partition {p} from 0"),
            );
        }

        // From the third batch on (offset 2), partition 1 only.
        let r: FetchResponse = call(
            &mut c,
            ApiKey::Fetch,
            version,
            &fetch_request(TOPIC, &[(1, 2)], i32::MAX, i32::MAX),
        )
        .await;
        let records = r.responses[0].partitions[0]
            .records
            .clone()
            .unwrap_or_default();
        assert_same_batches(
            &records,
            &sent[1][2..],
            2,
            &format!("v{version} partition 1 from 2"),
        );

        // At the end: no records, the same offsets.
        let r: FetchResponse = call(
            &mut c,
            ApiKey::Fetch,
            version,
            &fetch_request(TOPIC, &[(0, total_records)], i32::MAX, i32::MAX),
        )
        .await;
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert!(p.records.as_ref().is_none_or(Bytes::is_empty), "v{version}");
        assert_eq!(p.high_watermark, total_records);
    }

    // A real client (librdkafka) reads every record back.
    if clients_or_skip("every_fetch_version_returns_exactly_the_batches_produced").is_none() {
        return;
    }
    let consumed = bounded(
        120,
        "kcat",
        &[
            "-b",
            &n.kafka_addr(),
            "-C",
            "-t",
            TOPIC,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %o %S %s\n",
        ],
        b"",
    );
    assert!(consumed.status.success(), "kcat: {consumed:?}");
    let mut got: Vec<(i32, i64, usize, u8)> = String::from_utf8_lossy(&consumed.stdout)
        .lines()
        .map(|l| {
            let mut f = l.split(' ');
            let p = f.next().unwrap().parse().unwrap();
            let o = f.next().unwrap().parse().unwrap();
            let len = f.next().unwrap().parse().unwrap();
            let v = f.next().unwrap_or_default();
            assert!(v.bytes().all(|b| b == v.as_bytes()[0]), "a mixed value");
            (p, o, len, v.as_bytes().first().copied().unwrap_or(0))
        })
        .collect();
    got.sort();
    let mut want = Vec::new();
    for partition in 0..2 {
        let mut offset = 0;
        for (b, sizes) in BATCHES.iter().enumerate() {
            for (r, &len) in sizes.iter().enumerate() {
                want.push((partition, offset, len, value(partition, b, r, 1)[0]));
                offset += 1;
            }
        }
    }
    assert_eq!(got, want, "kcat read back something else");
}

fn vm_hwm_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Measurement, not a test (BENCHMARKS.md): produces `KAVKA_FETCH_BENCH_MIB` MiB (200)
/// in 1,000,000-byte batches to one partition, then answers one Fetch asking for all of
/// it, and prints the node's peak RSS (VmHWM) before and after. `KAVKA_BIN` picks the
/// binary to measure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run by hand, see BENCHMARKS.md"]
async fn peak_rss_of_one_large_fetch() {
    let mib: usize = std::env::var("KAVKA_FETCH_BENCH_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let n = Node::start(NodeOptions {
        args: vec!["--fetch-max-bytes".into(), (1usize << 30).to_string()],
        ..NodeOptions::default()
    })
    .await
    .unwrap();
    let out = n.cli(&["topic", "create", "bench", "--partitions", "1"]);
    assert!(out.status.success(), "{out:?}");
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    let batches_count = mib * (1 << 20) / 1_000_000;
    for i in 0..batches_count {
        produce(&mut c, "bench", 0, vec![vec![(i % 251) as u8; 999_900]]).await;
    }
    let pid = n.pid().unwrap();
    let before = vm_hwm_kib(pid);
    let r: FetchResponse = call(
        &mut c,
        ApiKey::Fetch,
        12,
        &fetch_request("bench", &[(0, 0)], i32::MAX, i32::MAX),
    )
    .await;
    let after = vm_hwm_kib(pid);
    let bytes = r.responses[0].partitions[0]
        .records
        .as_ref()
        .map_or(0, Bytes::len);
    println!(
        "fetched {bytes} bytes ({:.1} MiB) in one response; node VmHWM {before} KiB before, \
         {after} KiB after: +{:.1} MiB",
        bytes as f64 / 1048576.0,
        (after - before) as f64 / 1024.0
    );
}
