//! The gather encoder against kafka-protocol's own: every Fetch version the codec knows
//! (the advertised ones among them), every shape of response, the same bytes or the
//! same refusal; and record buffers kept by reference, not copied.

use super::*;
use crate::conn;
use crate::versions;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    PartitionData, SnapshotId,
};
use kafka_protocol::messages::{BrokerId, ProducerId, ResponseKind, TopicName};
use kafka_protocol::protocol::{Message, StrBytes};

/// `len` bytes that differ from one buffer to the next (so a misplaced chunk shows).
fn records(len: usize, seed: u8) -> Bytes {
    Bytes::from(
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect::<Vec<u8>>(),
    )
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn partition(index: i32, records: Option<Bytes>) -> PartitionData {
    PartitionData::default()
        .with_partition_index(index)
        .with_high_watermark(100 + i64::from(index))
        .with_last_stable_offset(90 + i64::from(index))
        .with_log_start_offset(7)
        .with_aborted_transactions(Some(Vec::new()))
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(records)
}

fn topic(n: &str, partitions: Vec<PartitionData>) -> FetchableTopicResponse {
    FetchableTopicResponse::default()
        .with_topic(name(n))
        .with_partitions(partitions)
}

/// Every shape of response worth telling apart, named.
fn shapes() -> Vec<(&'static str, FetchResponse)> {
    let big = records(64 * 1024, 1);
    vec![
        ("no topics", FetchResponse::default()),
        (
            "a whole-request error",
            FetchResponse::default()
                .with_throttle_time_ms(25)
                .with_error_code(70),
        ),
        (
            "a session id (refused below v7)",
            FetchResponse::default().with_session_id(12345),
        ),
        (
            "one partition, large records",
            FetchResponse::default()
                .with_responses(vec![topic("big", vec![partition(0, Some(big.clone()))])]),
        ),
        (
            "several topics and partitions, large and small records",
            FetchResponse::default().with_responses(vec![
                topic(
                    "a",
                    vec![
                        partition(0, Some(records(GATHER_MIN_BYTES, 2))),
                        partition(1, Some(records(GATHER_MIN_BYTES - 1, 3))),
                        partition(2, Some(records(200_000, 4))),
                    ],
                ),
                topic("b", vec![partition(5, Some(records(10, 5)))]),
                topic(
                    "c-with-a-longer-name",
                    vec![
                        partition(0, Some(records(70_000, 6))),
                        partition(3, Some(records(5_000, 7))),
                    ],
                ),
            ]),
        ),
        (
            "empty and null records",
            FetchResponse::default().with_responses(vec![topic(
                "t",
                vec![
                    partition(0, Some(Bytes::new())),
                    partition(1, None),
                    partition(2, Some(records(GATHER_MIN_BYTES * 2, 8))),
                    partition(3, None),
                ],
            )]),
        ),
        (
            "partition errors beside data",
            FetchResponse::default().with_responses(vec![
                topic(
                    "t",
                    vec![
                        partition(0, Some(Bytes::new()))
                            .with_error_code(6)
                            .with_high_watermark(-1)
                            .with_last_stable_offset(-1)
                            .with_log_start_offset(-1),
                        partition(1, Some(records(9_000, 9))),
                        partition(2, None).with_error_code(1),
                    ],
                ),
                topic("missing", vec![partition(0, None).with_error_code(3)]),
            ]),
        ),
        (
            "aborted transactions, null and listed",
            FetchResponse::default().with_responses(vec![topic(
                "tx",
                vec![
                    partition(0, Some(records(8_192, 10))).with_aborted_transactions(None),
                    partition(1, Some(records(8_192, 11))).with_aborted_transactions(Some(vec![
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(42))
                            .with_first_offset(3),
                        AbortedTransaction::default()
                            .with_producer_id(ProducerId(43))
                            .with_first_offset(9),
                    ])),
                ],
            )]),
        ),
        (
            "a preferred read replica (refused below v11)",
            FetchResponse::default().with_responses(vec![topic(
                "t",
                vec![partition(0, Some(big.clone())).with_preferred_read_replica(BrokerId(2))],
            )]),
        ),
        (
            "tagged fields everywhere (flexible versions only)",
            FetchResponse::default()
                .with_responses(vec![
                    topic(
                        "t",
                        vec![
                            partition(0, Some(records(50_000, 12)))
                                .with_diverging_epoch(
                                    EpochEndOffset::default().with_epoch(4).with_end_offset(77),
                                )
                                .with_current_leader(
                                    LeaderIdAndEpoch::default()
                                        .with_leader_id(BrokerId(3))
                                        .with_leader_epoch(5),
                                )
                                .with_snapshot_id(
                                    SnapshotId::default().with_end_offset(10).with_epoch(2),
                                )
                                .with_unknown_tagged_field(7, Bytes::from_static(b"unknown"))
                                .with_unknown_tagged_field(40, Bytes::new()),
                        ],
                    )
                    .with_unknown_tagged_field(3, Bytes::from_static(b"topic-tag")),
                ])
                .with_node_endpoints(vec![
                    NodeEndpoint::default()
                        .with_node_id(BrokerId(3))
                        .with_host(StrBytes::from_static_str("broker-3"))
                        .with_port(9092)
                        .with_rack(Some(StrBytes::from_static_str("r1"))),
                ])
                .with_unknown_tagged_field(9, Bytes::from_static(b"response-tag")),
        ),
        (
            "topic ids (v13 and later) beside names",
            FetchResponse::default().with_responses(vec![
                topic("named", vec![partition(0, Some(records(6_000, 13)))]).with_topic_id(
                    uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1122_3344_5566_7788),
                ),
                topic("", vec![partition(1, Some(records(6_000, 14)))])
                    .with_topic_id(uuid::Uuid::from_u128(1)),
            ]),
        ),
        (
            "one buffer in two partitions, and a slice of a larger one",
            FetchResponse::default().with_responses(vec![topic(
                "t",
                vec![
                    partition(0, Some(big.clone())),
                    partition(1, Some(big.clone())),
                    partition(2, Some(big.slice(1000..30_000))),
                    partition(3, Some(big.slice(30_000..))),
                ],
            )]),
        ),
    ]
}

fn concat(frame: &ResponseFrame) -> Vec<u8> {
    frame.chunks().concat()
}

#[test]
fn chunks_concatenate_to_what_kafka_protocol_encodes() {
    let versions = FetchResponse::VERSIONS;
    let advertised = versions::served(ApiKey::Fetch).unwrap_or((0, -1));
    assert!(
        versions.min <= advertised.0 && advertised.1 <= versions.max,
        "every advertised Fetch version is covered"
    );
    let mut compared = 0;
    for version in versions.min..=versions.max {
        for (shape, body) in shapes() {
            for correlation_id in [0, 7, -1, i32::MAX] {
                let want = conn::encode(
                    correlation_id,
                    ApiKey::Fetch,
                    version,
                    &ResponseKind::Fetch(body.clone()),
                );
                let got = encode_fetch(correlation_id, version, &body);
                match (want, got) {
                    (Ok(want), Ok(got)) => {
                        assert_eq!(
                            concat(&got),
                            &want[..],
                            "v{version} {shape} (correlation id {correlation_id})"
                        );
                        compared += 1;
                    }
                    (Err(_), Err(_)) => {}
                    (want, got) => panic!(
                        "v{version} {shape}: kafka-protocol says {:?}, gather says {:?}",
                        want.map(|b| b.len()),
                        got.map(|f| f.chunks().len())
                    ),
                }
            }
        }
    }
    // Most pairs encode; the refusals are the few fields a version lacks.
    assert!(compared > 500, "only {compared} frames compared");
}

#[test]
fn record_buffers_go_out_by_reference() {
    for version in 4..=FetchResponse::VERSIONS.max {
        for (shape, body) in shapes() {
            let Ok(frame) = encode_fetch(1, version, &body) else {
                continue;
            };
            let chunks = frame.chunks();
            for r in body
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.records.as_ref())
            {
                let kept = chunks
                    .iter()
                    .any(|c| c.as_ptr() == r.as_ptr() && c.len() == r.len());
                assert_eq!(
                    kept,
                    r.len() >= GATHER_MIN_BYTES,
                    "v{version} {shape}: a {}-byte record buffer",
                    r.len()
                );
            }
            // Everything else is protocol bytes: no more than a few hundred per partition.
            let copied: usize = chunks
                .iter()
                .filter(|c| c.len() < GATHER_MIN_BYTES || !body_holds(&body, c))
                .map(Bytes::len)
                .sum();
            let small: usize = body
                .responses
                .iter()
                .flat_map(|t| &t.partitions)
                .filter_map(|p| p.records.as_ref())
                .filter(|r| r.len() < GATHER_MIN_BYTES)
                .map(Bytes::len)
                .sum();
            assert!(
                copied <= small + 1024,
                "v{version} {shape}: {copied} bytes copied"
            );
        }
    }
}

fn body_holds(body: &FetchResponse, chunk: &Bytes) -> bool {
    body.responses
        .iter()
        .flat_map(|t| &t.partitions)
        .filter_map(|p| p.records.as_ref())
        .any(|r| r.as_ptr() == chunk.as_ptr() && r.len() == chunk.len())
}

#[test]
fn a_frame_without_large_records_is_one_chunk() {
    let body = FetchResponse::default().with_responses(vec![topic(
        "t",
        vec![partition(0, Some(records(100, 1))), partition(1, None)],
    )]);
    for version in 4..=12 {
        let frame = encode_fetch(3, version, &body).unwrap_or_default();
        assert_eq!(frame.chunks().len(), 1, "v{version}");
    }
}
