//! The Kafka listener at the byte level, with a raw client on a real socket: what
//! ApiVersions advertises, the error answers for what is not served, and bytes that
//! cannot be trusted (a lying or huge size, a truncated frame, a garbage API key or
//! version, a malformed body, a slow-loris client), each of which closes only its own
//! connection, with one log line naming the peer and the reason, while memory stays
//! bounded and other clients are served.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kavka_harness::{Node, NodeOptions, wait_until};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEADLINE: Duration = Duration::from_secs(30);

fn frame<R: Encodable>(key: ApiKey, version: i16, correlation_id: i32, req: &R) -> BytesMut {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    req.encode(&mut buf, version).unwrap();
    let n = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&n.to_be_bytes());
    buf
}

/// Sends one request and reads its answer's body (after the header).
async fn call<R: Encodable, S: Decodable>(
    conn: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &R,
) -> S {
    conn.write_all(&frame(key, version, 7, req)).await.unwrap();
    let mut body = read_frame(conn)
        .await
        .expect("an answer, not a closed connection");
    // ApiVersions answers with header v0 whatever the request version.
    let header = ResponseHeader::decode(&mut body, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    S::decode(&mut body, version).unwrap()
}

async fn read_frame(conn: &mut TcpStream) -> Option<Bytes> {
    let n = tokio::time::timeout(DEADLINE, conn.read_i32())
        .await
        .ok()?
        .ok()?;
    let mut buf = vec![0; n as usize];
    tokio::time::timeout(DEADLINE, conn.read_exact(&mut buf))
        .await
        .ok()?
        .ok()?;
    Some(Bytes::from(buf))
}

/// Waits for the server to close `conn` (EOF or reset), bounded.
async fn closed(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(DEADLINE, conn.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn api_versions(conn: &mut TcpStream) -> ApiVersionsResponse {
    call(
        conn,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("raw"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    )
    .await
}

async fn node(args: &[&str]) -> Node {
    Node::start(NodeOptions {
        args: args.iter().map(|s| s.to_string()).collect(),
        ..NodeOptions::default()
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_requests_get_kafka_answers() {
    let n = node(&[]).await;
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();

    // ApiVersions lists what is served, and nothing that is not.
    let v = api_versions(&mut c).await;
    assert_eq!(v.error_code, 0);
    let range = |k: ApiKey| {
        v.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::Produce), Some((3, 12)));
    assert_eq!(range(ApiKey::Fetch), Some((4, 12)));
    assert_eq!(range(ApiKey::JoinGroup), None);
    assert_eq!(range(ApiKey::InitProducerId), None);

    // ApiVersions at a version this broker does not know: the v0 fallback (KIP-511).
    // Size 10: key 18, version 99, correlation id 7, null client id.
    c.write_all(&[0, 0, 0, 10, 0, 18, 0, 99, 0, 0, 0, 7, 0xff, 0xff])
        .await
        .unwrap();
    let mut body = read_frame(&mut c).await.unwrap();
    assert_eq!(body.get_i32(), 7);
    let fallback = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(fallback.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(!fallback.api_keys.is_empty());

    // A known API that is not served answers UNSUPPORTED_VERSION, and the connection lives.
    let join: JoinGroupResponse =
        call(&mut c, ApiKey::JoinGroup, 5, &JoinGroupRequest::default()).await;
    assert_eq!(join.error_code, 35);
    let fetch13: FetchResponse = call(&mut c, ApiKey::Fetch, 13, &FetchRequest::default()).await;
    assert_eq!(fetch13.error_code, 35);

    // Data APIs on a topic with records.
    let out = n.cli(&["topic", "create", "raw", "--partitions", "1"]);
    assert!(out.status.success(), "{out:?}");
    let out = n.cli_with_stdin(&["produce", "raw", "--acks", "all"], b"a\nb\nc\n");
    assert!(out.status.success(), "{out:?}");
    let topic = |name: &str| TopicName(StrBytes::from_string(name.into()));

    let offsets: ListOffsetsResponse = call(
        &mut c,
        ApiKey::ListOffsets,
        6,
        &ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic("raw"))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default().with_timestamp(-2),
                        list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1),
                    ]),
            ]),
    )
    .await;
    let got: Vec<i64> = offsets.topics[0]
        .partitions
        .iter()
        .map(|p| p.offset)
        .collect();
    assert_eq!(got, vec![0, 3], "earliest and latest");

    let epochs: OffsetForLeaderEpochResponse = call(
        &mut c,
        ApiKey::OffsetForLeaderEpoch,
        4,
        &OffsetForLeaderEpochRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                    .with_topic(topic("raw"))
                    .with_partitions(vec![
                        offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_leader_epoch(0),
                    ]),
            ]),
    )
    .await;
    let e = &epochs.topics[0].partitions[0];
    assert_eq!((e.error_code, e.leader_epoch, e.end_offset), (0, 0, 3));

    let fetch = |session_id: i32| {
        FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(100)
            .with_max_bytes(1 << 20)
            .with_session_id(session_id)
            .with_session_epoch(-1)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(topic("raw"))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ])
    };
    let f: FetchResponse = call(&mut c, ApiKey::Fetch, 12, &fetch(0)).await;
    let p = &f.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 3));
    assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    let f: FetchResponse = call(&mut c, ApiKey::Fetch, 12, &fetch(5)).await;
    assert_eq!(f.error_code, 70, "FETCH_SESSION_ID_NOT_FOUND");

    // Produce: acks=1 is answered with the offset; acks=0 is not answered at all, so the
    // next answer on the connection is the next request's.
    let batch = |value: &str| {
        let record = kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1,
            key: None,
            value: Some(Bytes::from(value.to_string())),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        kafka_protocol::records::RecordBatchEncoder::encode(
            &mut buf,
            [&record],
            &kafka_protocol::records::RecordEncodeOptions {
                version: 2,
                compression: kafka_protocol::records::Compression::None,
            },
        )
        .unwrap();
        buf.freeze()
    };
    let produce = |acks: i16, value: &str| {
        ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic("raw"))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(batch(value))),
                    ]),
            ])
    };
    let acked: ProduceResponse = call(&mut c, ApiKey::Produce, 9, &produce(1, "d")).await;
    let p = &acked.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, 3));
    c.write_all(&frame(ApiKey::Produce, 9, 8, &produce(0, "e")))
        .await
        .unwrap();
    assert_eq!(
        api_versions(&mut c).await.error_code,
        0,
        "no answer to acks=0"
    );
    let out = n.cli(&["consume", "raw", "--from-beginning", "--format", "%o:%v"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(text.contains("3:d") && text.contains("4:e"), "{text}");

    // Errors that name what was wrong, per topic or resource.
    let md: MetadataResponse = call(
        &mut c,
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(topic("nope"))),
        ])),
    )
    .await;
    assert_eq!(md.topics[0].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    let cfg: DescribeConfigsResponse = call(
        &mut c,
        ApiKey::DescribeConfigs,
        4,
        &DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(9)
                .with_resource_name(StrBytes::from_static_str("x")),
        ]),
    )
    .await;
    assert_eq!(cfg.results[0].error_code, 42, "INVALID_REQUEST");
    let dc: DescribeClusterResponse = call(
        &mut c,
        ApiKey::DescribeCluster,
        1,
        &DescribeClusterRequest::default().with_endpoint_type(2),
    )
    .await;
    assert_eq!(dc.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");
    // The connection is still good after all of that.
    assert_eq!(api_versions(&mut c).await.error_code, 0);
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bytes_close_only_their_own_connection() {
    let n = node(&[
        "--connections-max-idle-ms",
        "2000",
        "--socket-request-max-bytes",
        "1048576",
    ])
    .await;
    let addr = n.kafka_addr();
    let mut good = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(api_versions(&mut good).await.error_code, 0);

    let garbage_key = {
        let mut f = frame(ApiKey::ApiVersions, 3, 1, &ApiVersionsRequest::default());
        f[4..6].copy_from_slice(&999i16.to_be_bytes());
        f
    };
    let garbage_version = {
        let mut f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
        f[6..8].copy_from_slice(&77i16.to_be_bytes());
        f
    };
    let malformed_body = {
        // A Metadata v12 header followed by a topic count that promises more than follows.
        let mut f = frame(ApiKey::Metadata, 12, 1, &MetadataRequest::default());
        f.truncate(f.len() - 4);
        f.put_slice(&[0x7f, 0xff, 0xff, 0x00]);
        f
    };
    let billions_of_topics = {
        // Metadata v1: a topic array declaring i32::MAX entries in a 14-byte body. The
        // decoder reserves room for them up front; that must not take the broker down.
        let mut f = frame(ApiKey::Metadata, 1, 1, &MetadataRequest::default());
        f.truncate(f.len() - 4);
        f.put_i32(i32::MAX);
        let n = (f.len() - 4) as i32;
        f[..4].copy_from_slice(&n.to_be_bytes());
        f
    };
    let mut cases: Vec<(&str, Vec<u8>, bool, &str)> = vec![
        (
            "negative size",
            (-5i32).to_be_bytes().to_vec(),
            false,
            "negative or smaller",
        ),
        (
            "huge size",
            i32::MAX.to_be_bytes().to_vec(),
            false,
            "exceeds socket.request.max.bytes",
        ),
        (
            "lying size, then EOF",
            [&100i32.to_be_bytes()[..], &[1; 20]].concat(),
            true,
            "connection closed after 20 of 100 bytes",
        ),
        (
            "garbage API key",
            garbage_key.to_vec(),
            false,
            "unknown API key 999",
        ),
        (
            "garbage version",
            garbage_version.to_vec(),
            false,
            "Metadata version 77 is not supported",
        ),
        (
            "malformed body",
            malformed_body.to_vec(),
            false,
            "malformed Metadata v12 request",
        ),
    ];
    cases.push((
        "two billion topics declared",
        billions_of_topics.to_vec(),
        false,
        "malformed Metadata v1 request",
    ));
    for (what, bytes, then_close, reason) in cases {
        let mut bad = TcpStream::connect(&addr).await.unwrap();
        let peer = bad.local_addr().unwrap().to_string();
        bad.write_all(&bytes).await.unwrap();
        if then_close {
            bad.shutdown().await.unwrap();
        }
        assert!(closed(&mut bad).await, "{what}: the connection stayed open");
        let log_line = || {
            let found = n.log().lines().any(|l| {
                l.contains("closing Kafka connection") && l.contains(&peer) && l.contains(reason)
            });
            async move { found }
        };
        wait_until(
            &format!("{what}: a log line naming {peer} and '{reason}'"),
            DEADLINE,
            log_line,
        )
        .await
        .unwrap();
        assert_eq!(api_versions(&mut good).await.error_code, 0, "after {what}");
    }

    // Slow loris: a frame trickling a byte at a time is cut off after the idle limit
    // (2 s here) while the good client keeps being served.
    let mut loris = TcpStream::connect(&addr).await.unwrap();
    let peer = loris.local_addr().unwrap().to_string();
    loris.write_all(&64i32.to_be_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut cut = false;
    for _ in 0..40 {
        if loris.write_all(&[0]).await.is_err() {
            cut = true;
            break;
        }
        assert_eq!(api_versions(&mut good).await.error_code, 0);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        cut || closed(&mut loris).await,
        "the slow client was never cut off"
    );
    assert!(
        started.elapsed() < Duration::from_secs(9),
        "{:?}",
        started.elapsed()
    );
    let line = n
        .log()
        .lines()
        .any(|l| l.contains(&peer) && l.contains("did not arrive whole"));
    assert!(line, "no log line for the slow client {peer}");

    // Memory stays bounded: 64 connections each announcing a 1 MB request and sending
    // ten bytes hold what arrived, not what was announced.
    let pid = n.pid().unwrap();
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for _ in 0..64 {
        let mut s = TcpStream::connect(&addr).await.unwrap();
        s.write_all(&1_000_000i32.to_be_bytes()).await.unwrap();
        s.write_all(&[0; 10]).await.unwrap();
        held.push(s);
    }
    assert_eq!(api_versions(&mut good).await.error_code, 0);
    let grown = rss_kib(pid).saturating_sub(before);
    assert!(
        grown < 24 * 1024,
        "RSS grew by {grown} KiB for 64 announced 1 MB requests"
    );
    drop(held);
    assert_eq!(api_versions(&mut good).await.error_code, 0);
}
