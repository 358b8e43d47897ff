//! The log admin APIs on a real node over raw Kafka requests, at every advertised
//! version: DeleteRecords (the log start moves, survives a kill, and reads below it are
//! OFFSET_OUT_OF_RANGE), DescribeLogDirs (the data dir, its volume, each replica's
//! size), DescribeProducers (the idempotent producers a leader knows),
//! AlterReplicaLogDirs (one log dir: nothing can move) and ElectLeaders; and the bad
//! input each refuses with Kafka's error. `kavka topic delete-records` does the same at
//! the partition's leader.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure

mod raw_kafka;

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kavka_harness::{Cluster, Node, NodeOptions, wait_until};
use raw_kafka::{call, topic};
use std::time::Duration;
use tokio::net::TcpStream;

/// One batch of one record, from `producer_id` (-1: not idempotent) at `sequence`.
fn batch(value: &str, producer_id: i64, sequence: i32) -> Bytes {
    raw_kafka::record_batch(
        Bytes::from(value.to_string()),
        producer_id,
        sequence,
        1_000 + i64::from(sequence.max(0)),
    )
}

const DEADLINE: Duration = Duration::from_secs(60);

async fn produce(c: &mut TcpStream, partition: i32, records: Bytes) {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(topic("logs"))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let r: ProduceResponse = call(c, ApiKey::Produce, 9, &req).await;
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
}

/// ListOffsets earliest of logs-`partition`, or its error code.
async fn try_earliest(c: &mut TcpStream, partition: i32) -> Result<i64, i16> {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic("logs"))
                .with_partitions(vec![
                    list_offsets_request::ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(-2),
                ]),
        ]);
    let r: ListOffsetsResponse = call(c, ApiKey::ListOffsets, 7, &req).await;
    let p = &r.topics[0].partitions[0];
    if p.error_code == 0 {
        Ok(p.offset)
    } else {
        Err(p.error_code)
    }
}

async fn earliest(c: &mut TcpStream, partition: i32) -> i64 {
    try_earliest(c, partition).await.unwrap()
}

async fn fetch_code(c: &mut TcpStream, partition: i32, offset: i64) -> i16 {
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic("logs"))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(partition)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r: FetchResponse = call(c, ApiKey::Fetch, 12, &req).await;
    r.responses[0].partitions[0].error_code
}

fn delete_req(name: &str, at: &[(i32, i64)]) -> DeleteRecordsRequest {
    DeleteRecordsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(topic(name))
                .with_partitions(
                    at.iter()
                        .map(|&(p, o)| {
                            delete_records_request::DeleteRecordsPartition::default()
                                .with_partition_index(p)
                                .with_offset(o)
                        })
                        .collect(),
                ),
        ])
}

/// (low watermark, error code) of each partition of the one topic answered.
fn deleted(r: &DeleteRecordsResponse) -> Vec<(i64, i16)> {
    r.topics[0]
        .partitions
        .iter()
        .map(|p| (p.low_watermark, p.error_code))
        .collect()
}

fn producers_req(topics: &[(&str, &[i32])]) -> DescribeProducersRequest {
    DescribeProducersRequest::default().with_topics(
        topics
            .iter()
            .map(|(name, ps)| {
                describe_producers_request::TopicRequest::default()
                    .with_name(topic(name))
                    .with_partition_indexes(ps.to_vec())
            })
            .collect(),
    )
}

fn elect_req(election_type: i8, partitions: Option<&[i32]>) -> ElectLeadersRequest {
    ElectLeadersRequest::default()
        .with_election_type(election_type)
        .with_timeout_ms(10_000)
        .with_topic_partitions(partitions.map(|ps| {
            vec![
                elect_leaders_request::TopicPartitions::default()
                    .with_topic(topic("logs"))
                    .with_partitions(ps.to_vec()),
            ]
        }))
}

fn elected(r: &ElectLeadersResponse) -> Vec<(i32, i16)> {
    r.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (p.partition_id, p.error_code))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_admin_apis_answer_every_version_and_refuse_bad_input() {
    let mut n = Node::start(NodeOptions::default()).await.unwrap();
    let out = n.cli(&["topic", "create", "logs", "-p", "2", "-r", "1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();

    // ApiVersions advertises exactly the versions served.
    let v: ApiVersionsResponse = call(
        &mut c,
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default(),
    )
    .await;
    let range = |k: ApiKey| {
        v.api_keys
            .iter()
            .find(|a| a.api_key == k as i16)
            .map(|a| (a.min_version, a.max_version))
    };
    assert_eq!(range(ApiKey::DeleteRecords), Some((0, 2)));
    assert_eq!(range(ApiKey::DescribeLogDirs), Some((1, 4)));
    assert_eq!(range(ApiKey::AlterReplicaLogDirs), Some((1, 2)));
    assert_eq!(range(ApiKey::DescribeProducers), Some((0, 0)));
    assert_eq!(range(ApiKey::ElectLeaders), Some((0, 2)));

    // An idempotent producer writes three batches to logs-0; ten plain records go to
    // logs-1.
    let init: InitProducerIdResponse = call(
        &mut c,
        ApiKey::InitProducerId,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .await;
    assert_eq!(init.error_code, 0);
    let pid = init.producer_id.0;
    for seq in 0..3 {
        produce(&mut c, 0, batch("idem", pid, seq)).await;
    }
    for i in 0..10 {
        produce(&mut c, 1, batch(&format!("plain-{i}"), -1, -1)).await;
    }

    // DescribeProducers: the one producer with its last sequence and timestamp; none on
    // a partition written without ids; an unknown partition or topic by name.
    let r: DescribeProducersResponse = call(
        &mut c,
        ApiKey::DescribeProducers,
        0,
        &producers_req(&[("logs", &[0, 1, 9]), ("nope", &[0])]),
    )
    .await;
    let parts = &r.topics[0].partitions;
    assert_eq!(parts[0].error_code, 0);
    let p = &parts[0].active_producers;
    assert_eq!(p.len(), 1, "{p:?}");
    assert_eq!(
        (
            p[0].producer_id.0,
            p[0].producer_epoch,
            p[0].last_sequence,
            p[0].last_timestamp
        ),
        (pid, 0, 2, 1_002)
    );
    assert_eq!(
        (parts[1].error_code, parts[1].active_producers.len()),
        (0, 0)
    );
    assert_eq!(parts[2].error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
    assert!(
        parts[2]
            .error_message
            .as_ref()
            .is_some_and(|m| m.contains("partition 9")),
        "{:?}",
        parts[2].error_message
    );
    assert_eq!(r.topics[1].partitions[0].error_code, 3);

    // DescribeLogDirs at every version: the data dir, both replicas with their sizes,
    // and from v4 the volume's size.
    let data_dir = n.data_dir().display().to_string();
    for version in 1..=4 {
        let r: DescribeLogDirsResponse = call(
            &mut c,
            ApiKey::DescribeLogDirs,
            version,
            &DescribeLogDirsRequest::default().with_topics(None),
        )
        .await;
        assert_eq!((r.error_code, r.results.len()), (0, 1), "v{version}");
        let dir = &r.results[0];
        assert_eq!(
            (dir.error_code, dir.log_dir.as_str()),
            (0, data_dir.as_str())
        );
        let logs = dir
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "logs")
            .unwrap();
        let sizes: Vec<(i32, bool)> = logs
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size > 0 && p.offset_lag == 0))
            .collect();
        assert_eq!(sizes, vec![(0, true), (1, true)], "v{version}");
        if version >= 4 {
            assert!(dir.total_bytes > 0 && (1..=dir.total_bytes).contains(&dir.usable_bytes));
        }
    }
    let one: DescribeLogDirsResponse = call(
        &mut c,
        ApiKey::DescribeLogDirs,
        4,
        &DescribeLogDirsRequest::default().with_topics(Some(vec![
            describe_log_dirs_request::DescribableLogDirTopic::default()
                .with_topic(topic("logs"))
                .with_partitions(vec![1]),
        ])),
    )
    .await;
    let listed: Vec<(String, i32)> = one.results[0]
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    assert_eq!(listed, vec![("logs".to_string(), 1)]);

    // DeleteRecords at every version moves logs-1's start: 2, then 5, then (-1) the high
    // watermark; backwards is a no-op answered with the current start.
    let mut want_start = 0;
    for (version, offset, start) in [(0, 2, 2), (1, 5, 5), (2, 3, 5), (2, -1, 10)] {
        let r: DeleteRecordsResponse = call(
            &mut c,
            ApiKey::DeleteRecords,
            version,
            &delete_req("logs", &[(1, offset)]),
        )
        .await;
        assert_eq!(deleted(&r), vec![(start, 0)], "v{version} offset {offset}");
        want_start = start;
    }
    assert_eq!(earliest(&mut c, 1).await, want_start);
    assert_eq!(
        fetch_code(&mut c, 1, 4).await,
        1,
        "OFFSET_OUT_OF_RANGE below the start"
    );
    // Past the high watermark, a negative offset other than -1, an unknown partition
    // or topic: refused, each partition on its own.
    let r: DeleteRecordsResponse = call(
        &mut c,
        ApiKey::DeleteRecords,
        2,
        &delete_req("logs", &[(0, 1_000), (0, -7), (5, 0), (0, 1)]),
    )
    .await;
    assert_eq!(deleted(&r), vec![(-1, 1), (-1, 1), (-1, 3), (1, 0)]);
    let r: DeleteRecordsResponse = call(
        &mut c,
        ApiKey::DeleteRecords,
        2,
        &delete_req("nope", &[(0, 0)]),
    )
    .await;
    assert_eq!(deleted(&r), vec![(-1, 3)]);

    // AlterReplicaLogDirs: one log dir, so staying is fine and moving is LOG_DIR_NOT_FOUND.
    for version in 1..=2 {
        let req = AlterReplicaLogDirsRequest::default().with_dirs(
            [data_dir.as_str(), "/somewhere/else"]
                .iter()
                .map(|path| {
                    alter_replica_log_dirs_request::AlterReplicaLogDir::default()
                        .with_path(StrBytes::from_string(path.to_string()))
                        .with_topics(vec![
                            alter_replica_log_dirs_request::AlterReplicaLogDirTopic::default()
                                .with_name(topic("logs"))
                                .with_partitions(vec![0]),
                        ])
                })
                .collect(),
        );
        let r: AlterReplicaLogDirsResponse =
            call(&mut c, ApiKey::AlterReplicaLogDirs, version, &req).await;
        let codes: Vec<i16> = r
            .results
            .iter()
            .map(|t| t.partitions[0].error_code)
            .collect();
        assert_eq!(codes, vec![0, 57], "v{version}: NONE, LOG_DIR_NOT_FOUND");
    }

    // ElectLeaders at every version: a partition led by its preferred replica needs no
    // election of either kind; an unknown election type or partition is refused; asking
    // for every partition answers only those that moved (none).
    for version in 0..=2 {
        let r: ElectLeadersResponse = call(
            &mut c,
            ApiKey::ElectLeaders,
            version,
            &elect_req(0, Some(&[0, 1])),
        )
        .await;
        assert_eq!(r.error_code, 0);
        assert_eq!(elected(&r), vec![(0, 84), (1, 84)], "v{version}");
    }
    let r: ElectLeadersResponse = call(
        &mut c,
        ApiKey::ElectLeaders,
        2,
        &elect_req(1, Some(&[0, 7])),
    )
    .await;
    assert_eq!(elected(&r), vec![(0, 84), (7, 3)], "unclean: led, unknown");
    let r: ElectLeadersResponse =
        call(&mut c, ApiKey::ElectLeaders, 2, &elect_req(5, Some(&[0]))).await;
    assert_eq!(elected(&r), vec![(0, 42)], "INVALID_REQUEST");
    let r: ElectLeadersResponse = call(&mut c, ApiKey::ElectLeaders, 2, &elect_req(0, None)).await;
    assert_eq!((r.error_code, elected(&r)), (0, vec![]));

    // The log start survives a kill: the deleted records stay deleted.
    n.restart().await.unwrap();
    let mut c = TcpStream::connect(n.kafka_addr()).await.unwrap();
    assert_eq!(earliest(&mut c, 1).await, 10);
    assert_eq!(earliest(&mut c, 0).await, 1);
    let r: DescribeProducersResponse = call(
        &mut c,
        ApiKey::DescribeProducers,
        0,
        &producers_req(&[("logs", &[0])]),
    )
    .await;
    assert_eq!(
        r.topics[0].partitions[0].active_producers.len(),
        1,
        "records deleted below the producer's batches leave it known"
    );
}

/// logs-0 as the cluster at `bootstrap` describes it (the leader's view).
async fn logs_0(bootstrap: &str) -> Option<kavka_client::v1::PartitionInfo> {
    let mut c = kavka_client::Client::connect(bootstrap).await.ok()?;
    c.describe_topic("logs")
        .await
        .ok()?
        .partitions
        .first()
        .cloned()
}

/// The log start of logs-0 on the broker at `addr`: its own replica's, asked of that
/// broker alone (the client library would overlay the leader's view).
async fn local_log_start(addr: &str) -> Option<i64> {
    use kavka_proto::v1::admin_service_client::AdminServiceClient;
    let mut c = AdminServiceClient::connect(format!("http://{addr}"))
        .await
        .ok()?;
    let info = c
        .describe_topic(kavka_proto::v1::DescribeTopicRequest {
            name: "logs".into(),
        })
        .await
        .ok()?
        .into_inner();
    info.partitions
        .first()
        .map(|p| p.log_start_offset)
        .filter(|&s| s >= 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_records_reach_the_followers_and_stay_deleted_after_a_failover() {
    let mut cluster = Cluster::start(&["controller,broker"; 3], &[])
        .await
        .unwrap();
    let out = cluster.nodes[0].cli(&[
        "topic",
        "create",
        "logs",
        "-p",
        "1",
        "-r",
        "3",
        "--config",
        "min.insync.replicas=2",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bootstrap = cluster.bootstrap();
    let leader = || async {
        let p = logs_0(&bootstrap).await?;
        (p.leader > 0 && p.isr.len() == 3).then_some(p.leader)
    };
    wait_until("a leader with all three in the ISR", DEADLINE, || async {
        leader().await.is_some()
    })
    .await
    .unwrap();
    let first = leader().await.unwrap();
    let mut c = TcpStream::connect(cluster.node(first).kafka_addr())
        .await
        .unwrap();
    for i in 0..20 {
        produce(&mut c, 0, batch(&format!("r{i}"), -1, -1)).await;
    }
    let r: DeleteRecordsResponse = call(
        &mut c,
        ApiKey::DeleteRecords,
        2,
        &delete_req("logs", &[(0, 12)]),
    )
    .await;
    assert_eq!(deleted(&r), vec![(12, 0)]);
    // Every replica's log now starts at 12: the followers took it from their fetches.
    for n in 1..=3 {
        let addr = cluster.node(n).addr();
        wait_until(
            &format!("broker {n}'s log start at 12"),
            DEADLINE,
            || async { local_log_start(&addr).await == Some(12) },
        )
        .await
        .unwrap();
    }
    // The leader dies: its successor serves from 12, and nothing below it.
    cluster.node(first).kill();
    let survivors: Vec<i32> = (1..=3).filter(|&n| n != first).collect();
    let alive = cluster.node(survivors[0]).addr();
    let next = || async {
        let p = logs_0(&alive).await?;
        (p.leader > 0 && p.leader != first).then_some(p.leader)
    };
    wait_until("a new leader", DEADLINE, || async {
        next().await.is_some()
    })
    .await
    .unwrap();
    let second = next().await.unwrap();
    let mut c = TcpStream::connect(cluster.node(second).kafka_addr())
        .await
        .unwrap();
    // Until the new leader has taken over its replica (polled, within the deadline).
    let end = std::time::Instant::now() + DEADLINE;
    let start = loop {
        match try_earliest(&mut c, 0).await {
            Ok(start) => break start,
            Err(code) if std::time::Instant::now() < end => {
                eprintln!("ListOffsets from the new leader: error {code}, asking again");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(code) => panic!("the new leader answers ListOffsets with error {code}"),
        }
    };
    assert_eq!(start, 12);
    assert_eq!(
        fetch_code(&mut c, 0, 3).await,
        1,
        "OFFSET_OUT_OF_RANGE below the start"
    );

    // The CLI deletes at whichever broker leads now (found in the metadata).
    let cli = |args: &[&str]| kavka_harness::run_cli(&bootstrap, args, b"");
    let out = kavka_harness::cli_output::ok(cli(&[
        "topic",
        "delete-records",
        "logs-0",
        "--before",
        "15",
    ]));
    assert!(out.contains("logs-0 now starts at offset 15."), "{out}");
    assert_eq!(try_earliest(&mut c, 0).await, Ok(15));
    kavka_harness::cli_output::fails_with(
        cli(&["topic", "delete-records", "logs-0", "--before", "999"]),
        "OFFSET_OUT_OF_RANGE",
    );
    kavka_harness::cli_output::fails_with(
        cli(&["topic", "delete-records", "nope-0"]),
        "UNKNOWN_TOPIC_OR_PARTITION",
    );
    kavka_harness::cli_output::fails_with(
        cli(&["topic", "delete-records", "logs"]),
        "expected topic-partition",
    );
    // Without --before: everything below the high watermark (20).
    let out = kavka_harness::cli_output::ok(cli(&["topic", "delete-records", "logs-0"]));
    assert!(out.contains("logs-0 now starts at offset 20."), "{out}");
}
