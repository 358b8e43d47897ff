use super::*;
use crate::records::NewRecord;
use bytes::Bytes;
use kavka_metadata::{MetadataRecord, PartitionRecord, TopicRecord};
use kavka_record::Compression;

const ME: BrokerId = BrokerId(1);
const T: Duration = Duration::from_secs(5);

fn manager(dir: &Path) -> Arc<ReplicaManager> {
    let rm = ReplicaManager::open(BrokerConfig::new(ME, dir.to_path_buf())).unwrap();
    // No controller here: act as a broker whose heartbeats are answered.
    rm.lease().confirm_for_tests();
    rm
}

fn tid(n: u128) -> TopicId {
    TopicId(uuid::Uuid::from_u128(n))
}

/// Records creating topic `name` (id `n`) with `partitions` partitions on `replicas`.
fn topic(
    n: u128,
    name: &str,
    partitions: i32,
    replicas: &[i32],
    configs: &[(&str, &str)],
) -> Vec<MetadataRecord> {
    let mut out = vec![MetadataRecord::Topic(TopicRecord {
        name: TopicName::new(name).unwrap(),
        topic_id: tid(n),
    })];
    for p in 0..partitions {
        let r: Vec<BrokerId> = replicas.iter().map(|&b| BrokerId(b)).collect();
        out.push(MetadataRecord::Partition(PartitionRecord {
            topic_id: tid(n),
            partition: PartitionId(p),
            leader: r[0],
            isr: r.clone(),
            replicas: r,
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
        }));
    }
    for (k, v) in configs {
        out.push(MetadataRecord::Config {
            resource: ConfigResource::Topic(TopicName::new(name).unwrap()),
            name: k.to_string(),
            value: Some(v.to_string()),
        });
    }
    out
}

fn name(topic: &str) -> TopicName {
    TopicName::new(topic).unwrap()
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(name(topic), PartitionId(partition))
}

fn acks(wire: i32) -> kavka_model::data::Acks {
    kavka_model::data::Acks::from_wire(wire).unwrap()
}

/// A replica fetch as it comes and goes over the wire.
async fn wire_fetch(
    rm: &ReplicaManager,
    req: kavka_proto::v1::ReplicaFetchRequest,
) -> kavka_proto::v1::ReplicaFetchResponse {
    let req = kavka_model::data::ReplicaFetch::try_from(req).unwrap();
    rm.replica_fetch(req).await.into()
}

fn apply(rm: &ReplicaManager, records: &[MetadataRecord]) {
    let img = rm.image();
    let (next, _, refused) = img.replay(img.offset + 1, records);
    assert!(refused.is_empty(), "{refused:?}");
    rm.apply_image(Arc::new(next));
}

fn record(p: i32, v: &str) -> (Option<PartitionId>, NewRecord) {
    (
        Some(PartitionId(p)),
        NewRecord {
            key: None,
            value: Some(Bytes::from(v.to_string())),
            headers: vec![],
            timestamp_ms: 1,
        },
    )
}

fn params(topic: &str, partitions: i32, max_bytes: usize) -> Vec<FetchPartitionParams> {
    (0..partitions)
        .map(|partition| FetchPartitionParams {
            tp: tp(topic, partition),
            offset: Offset(0),
            max_bytes,
        })
        .collect()
}

#[tokio::test]
async fn fetch_with_min_bytes_zero_returns_at_once_and_budget_caps_the_response() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    apply(&rm, &topic(1, "t", 2, &[1], &[]));
    let started = std::time::Instant::now();
    let r = rm.fetch(params("t", 2, 1 << 20), 30_000, 0, 1 << 20).await;
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(r.iter().all(|p| p.records.is_empty() && p.error.is_none()));
    for p in 0..2 {
        let recs = (0..3).map(|i| record(p, &format!("{p}-{i}"))).collect();
        rm.produce_records(&name("t"), acks(1), T, recs, Compression::None)
            .await
            .unwrap();
    }
    // A budget of one byte: the first partition still gets one batch, the second none.
    let r = rm.fetch(params("t", 2, 1 << 20), 0, 1, 1).await;
    assert!(!r[0].records.is_empty());
    assert!(r[1].records.is_empty());
    assert_eq!(r[1].offsets.unwrap().high_watermark, Offset(3));
}

#[tokio::test]
async fn hosts_exactly_the_partitions_the_image_assigns_here() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    let mut records = topic(1, "mine", 1, &[1], &[("retention.ms", "1000")]);
    records.extend(topic(2, "theirs", 1, &[2], &[]));
    records.extend(topic(3, "follower", 1, &[2, 1], &[]));
    apply(&rm, &records);
    assert!(dir.path().join("mine-0").exists());
    assert!(!dir.path().join("theirs-0").exists());
    assert!(
        dir.path().join("follower-0").exists(),
        "a follower replica is hosted too"
    );
    // Only the leader takes writes.
    let e = rm
        .produce_records(
            &name("follower"),
            acks(1),
            T,
            vec![record(0, "x")],
            Compression::None,
        )
        .await
        .unwrap()[0]
        .1
        .clone()
        .unwrap_err();
    assert_eq!(e.code, ErrorCode::NotLeaderOrFollower);
    assert!(e.message.contains("leader is broker 2"), "{e}");
    let d = rm.describe_topic("mine").await.unwrap();
    assert!(
        d.configs
            .iter()
            .any(|c| c.name == "retention.ms" && c.value == "1000" && !c.is_default())
    );

    rm.produce_records(
        &name("mine"),
        acks(-1),
        T,
        vec![record(0, "v")],
        Compression::Gzip,
    )
    .await
    .unwrap();
    // Deleted, then re-created under the same name: the new topic starts empty.
    apply(&rm, &[MetadataRecord::RemoveTopic { topic_id: tid(1) }]);
    assert!(!dir.path().join("mine-0").exists());
    assert_eq!(
        rm.produce_records(
            &name("mine"),
            acks(1),
            T,
            vec![record(0, "v")],
            Compression::None
        )
        .await
        .unwrap_err()
        .code,
        ErrorCode::UnknownTopicOrPartition
    );
    apply(&rm, &topic(4, "mine", 1, &[1], &[]));
    assert_eq!(
        rm.describe_topic("mine").await.unwrap().partitions[0]
            .local
            .unwrap()
            .log_end_offset,
        Offset(0)
    );
}

#[tokio::test]
async fn a_restarted_broker_reopens_its_logs_and_wipes_a_stale_directory() {
    let dir = tempfile::tempdir().unwrap();
    let records = topic(1, "keep", 1, &[1], &[]);
    {
        let rm = manager(dir.path());
        apply(&rm, &records);
        rm.produce_records(
            &name("keep"),
            acks(-1),
            T,
            vec![record(0, "v")],
            Compression::None,
        )
        .await
        .unwrap();
    }
    let rm = manager(dir.path());
    apply(&rm, &records);
    assert_eq!(
        rm.describe_topic("keep").await.unwrap().partitions[0]
            .local
            .unwrap()
            .log_end_offset,
        Offset(1)
    );
    drop(rm);
    // The same name with another id (the topic was re-created while this broker was away).
    let rm = manager(dir.path());
    apply(&rm, &topic(9, "keep", 1, &[1], &[]));
    assert_eq!(
        rm.describe_topic("keep").await.unwrap().partitions[0]
            .local
            .unwrap()
            .log_end_offset,
        Offset(0)
    );
}

fn fetch_req(replica: i32, offset: i64, epoch: i32) -> kavka_proto::v1::ReplicaFetchRequest {
    kavka_proto::v1::ReplicaFetchRequest {
        replica_id: replica,
        max_wait_ms: 0,
        max_bytes: 1 << 20,
        partitions: vec![kavka_proto::v1::ReplicaFetchPartition {
            topic: "r".into(),
            partition: 0,
            fetch_offset: offset,
            last_fetched_epoch: -1,
            current_leader_epoch: epoch,
            max_bytes: 1 << 20,
        }],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_waits_for_the_isr_and_followers_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    let mut records = vec![];
    for b in [2, 3] {
        records.push(MetadataRecord::RegisterBroker(
            kavka_metadata::RegisterBrokerRecord {
                broker_id: BrokerId(b),
                incarnation_id: uuid::Uuid::from_u128(b as u128),
                endpoints: vec![],
                rack: None,
                fenced: false,
            },
        ));
    }
    records.extend(topic(9, "r", 1, &[1, 2], &[]));
    apply(&rm, &records);

    // The follower has not fetched: acks=1 lands, acks=all times out, HW stays at 0.
    let r = rm
        .produce_records(
            &name("r"),
            acks(1),
            T,
            vec![record(0, "a")],
            Compression::None,
        )
        .await
        .unwrap();
    assert!(r[0].1.is_ok());
    let short = Duration::from_millis(200);
    let r = rm
        .produce_records(
            &name("r"),
            acks(-1),
            short,
            vec![record(0, "b")],
            Compression::None,
        )
        .await
        .unwrap();
    assert_eq!(
        r[0].1.as_ref().unwrap_err().code,
        ErrorCode::RequestTimedOut
    );

    // Bad replica fetches get Kafka's errors and change nothing.
    for (req, code) in [
        (fetch_req(3, 0, 0), ErrorCode::NotLeaderOrFollower),
        (fetch_req(2, 0, -1), ErrorCode::FencedLeaderEpoch),
        (fetch_req(2, 99, 0), ErrorCode::OffsetOutOfRange),
    ] {
        let resp = wire_fetch(&rm, req).await;
        let e = resp.partitions[0].error.as_ref().expect("an error");
        assert_eq!(e.code, code.code() as i32, "{}", e.message);
    }

    // The follower fetches everything, then reports its log end: HW = 2.
    let resp = wire_fetch(&rm, fetch_req(2, 0, 0)).await;
    assert!(resp.partitions[0].error.is_none());
    assert!(!resp.partitions[0].records.is_empty());
    let resp = wire_fetch(&rm, fetch_req(2, 2, 0)).await;
    assert_eq!(resp.partitions[0].high_watermark, 2);

    // An acks=all write completes once the follower fetched past it.
    let rm2 = Arc::clone(&rm);
    let waiting = tokio::spawn(async move {
        rm2.produce_records(
            &name("r"),
            acks(-1),
            T,
            vec![record(0, "c")],
            Compression::None,
        )
        .await
    });
    wait_for(|| {
        rm.partition(&tp("r", 0))
            .is_ok_and(|p| p.fetch_position().0 == Offset(3))
    })
    .await;
    let resp = wire_fetch(&rm, fetch_req(2, 3, 0)).await;
    assert_eq!(resp.partitions[0].high_watermark, 3);
    let r = waiting.await.unwrap().unwrap();
    assert_eq!(
        r[0].1.as_ref().unwrap().as_ref().unwrap().base_offset,
        Offset(2)
    );

    // A follower with a newer epoch means this leadership is over.
    let resp = wire_fetch(&rm, fetch_req(2, 3, 5)).await;
    assert_eq!(
        resp.partitions[0].error.as_ref().unwrap().code,
        ErrorCode::UnknownLeaderEpoch.code() as i32
    );
    let r = rm
        .produce_records(
            &name("r"),
            acks(1),
            T,
            vec![record(0, "d")],
            Compression::None,
        )
        .await
        .unwrap();
    assert_eq!(
        r[0].1.as_ref().unwrap_err().code,
        ErrorCode::NotLeaderOrFollower
    );
}

async fn wait_for(cond: impl Fn() -> bool) {
    for _ in 0..500 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in 5 s");
}

#[tokio::test]
async fn a_leader_without_a_held_lease_refuses_produce_and_fetch() {
    let dir = tempfile::tempdir().unwrap();
    // No heartbeat ever answered: the image says this broker leads, the lease says no.
    let rm = ReplicaManager::open(BrokerConfig::new(ME, dir.path().to_path_buf())).unwrap();
    apply(&rm, &topic(1, "r", 1, &[1, 2], &[]));
    let r = rm
        .produce_records(
            &name("r"),
            acks(1),
            T,
            vec![record(0, "a")],
            Compression::None,
        )
        .await
        .unwrap();
    let e = r[0].1.as_ref().unwrap_err();
    assert_eq!(e.code, ErrorCode::NotLeaderOrFollower, "{e}");
    assert!(e.message.contains("no session"), "{e}");
    let f = rm.fetch(params("r", 1, 1 << 20), 0, 0, 1 << 20).await;
    assert_eq!(
        f[0].error.as_ref().map(|e| e.code),
        Some(ErrorCode::NotLeaderOrFollower)
    );
    let rf = wire_fetch(&rm, fetch_req(2, 0, 0)).await;
    let err = rf.partitions[0].error.as_ref().expect("refused");
    assert_eq!(
        err.code,
        ErrorCode::NotLeaderOrFollower.code() as i32,
        "{err:?}"
    );
    assert!(err.message.contains("no session"), "{err:?}");

    // Answered: it leads.
    rm.lease().confirm_for_tests();
    let r = rm
        .produce_records(
            &name("r"),
            acks(1),
            T,
            vec![record(0, "a")],
            Compression::None,
        )
        .await
        .unwrap();
    assert!(r[0].1.is_ok(), "{:?}", r[0].1);
    let f = rm.fetch(params("r", 1, 1 << 20), 0, 0, 1 << 20).await;
    assert!(f[0].error.is_none(), "{:?}", f[0].error);
}

/// Reads served so far by a partition this broker hosts.
fn reads(rm: &ReplicaManager, topic: &str, partition: i32) -> u64 {
    rm.hosted(&tp(topic, partition))
        .unwrap()
        .reads
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn register(brokers: &[i32]) -> Vec<MetadataRecord> {
    brokers
        .iter()
        .map(|&b| {
            MetadataRecord::RegisterBroker(kavka_metadata::RegisterBrokerRecord {
                broker_id: BrokerId(b),
                incarnation_id: uuid::Uuid::from_u128(b as u128),
                endpoints: vec![],
                rack: None,
                fenced: false,
            })
        })
        .collect()
}

/// Long enough that a long-poll answering within `WOKEN` was woken, not timed out.
const LONG_POLL_MS: u64 = 30_000;
const WOKEN: Duration = Duration::from_secs(10);

/// Gives a long-poll that was woken by mistake the time to read again (a wrongly woken
/// one would show; a correct one is not hurried by it).
async fn let_others_run() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_long_poll_wakes_only_for_its_partitions_and_rereads_only_those() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    apply(&rm, &topic(1, "t", 3, &[1], &[]));
    let rm2 = Arc::clone(&rm);
    // Partitions 0 and 1; partition 2 is not asked for.
    let poll = tokio::spawn(async move {
        rm2.fetch(params("t", 2, 1 << 20), LONG_POLL_MS, 1, 1 << 20)
            .await
    });
    wait_for(|| reads(&rm, "t", 0) == 1 && reads(&rm, "t", 1) == 1).await;
    for i in 0..10 {
        rm.produce_records(
            &name("t"),
            acks(1),
            T,
            vec![record(2, &format!("x{i}"))],
            Compression::None,
        )
        .await
        .unwrap();
    }
    let_others_run().await;
    assert_eq!(
        (reads(&rm, "t", 0), reads(&rm, "t", 1)),
        (1, 1),
        "woken by another partition"
    );
    assert!(!poll.is_finished());
    // An append (with acks=1 and one replica, a high watermark move) on partition 1
    // wakes it at once, and only partition 1 is read again.
    rm.produce_records(
        &name("t"),
        acks(1),
        T,
        vec![record(1, "y")],
        Compression::None,
    )
    .await
    .unwrap();
    let r = tokio::time::timeout(WOKEN, poll)
        .await
        .expect("woken")
        .unwrap();
    assert!(r[0].records.is_empty());
    assert!(!r[1].records.is_empty());
    assert_eq!(r[1].offsets.unwrap().high_watermark, Offset(1));
    assert_eq!((reads(&rm, "t", 0), reads(&rm, "t", 1)), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_long_poll_wakes_when_the_high_watermark_moves() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    let mut records = register(&[2]);
    records.extend(topic(9, "r", 1, &[1, 2], &[]));
    apply(&rm, &records);
    let rm2 = Arc::clone(&rm);
    let poll = tokio::spawn(async move {
        rm2.fetch(params("r", 1, 1 << 20), LONG_POLL_MS, 1, 1 << 20)
            .await
    });
    wait_for(|| reads(&rm, "r", 0) == 1).await;
    // Appended, but not replicated: nothing a consumer may read yet.
    rm.produce_records(
        &name("r"),
        acks(1),
        T,
        vec![record(0, "a")],
        Compression::None,
    )
    .await
    .unwrap();
    let_others_run().await;
    assert!(!poll.is_finished());
    // The follower reports it has the record: the high watermark moves, the poll answers.
    let resp = wire_fetch(&rm, fetch_req(2, 1, 0)).await;
    assert_eq!(resp.partitions[0].high_watermark, 1);
    let r = tokio::time::timeout(WOKEN, poll)
        .await
        .expect("woken")
        .unwrap();
    assert!(!r[0].records.is_empty());
    assert_eq!(r[0].offsets.unwrap().high_watermark, Offset(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_long_poll_wakes_only_for_appends_on_its_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    let mut records = register(&[2]);
    records.extend(topic(9, "r", 2, &[1, 2], &[]));
    records.extend(topic(8, "s", 1, &[1, 2], &[]));
    apply(&rm, &records);
    let mut req = fetch_req(2, 0, 0);
    req.max_wait_ms = LONG_POLL_MS as i32;
    let mut p1 = req.partitions[0].clone();
    p1.partition = 1;
    req.partitions.push(p1);
    let rm2 = Arc::clone(&rm);
    let poll = tokio::spawn(async move { wire_fetch(&rm2, req).await });
    wait_for(|| reads(&rm, "r", 0) == 1 && reads(&rm, "r", 1) == 1).await;
    for i in 0..10 {
        rm.produce_records(
            &name("s"),
            acks(1),
            T,
            vec![record(0, &format!("x{i}"))],
            Compression::None,
        )
        .await
        .unwrap();
    }
    let_others_run().await;
    assert_eq!(
        (reads(&rm, "r", 0), reads(&rm, "r", 1)),
        (1, 1),
        "woken by another topic"
    );
    assert!(!poll.is_finished());
    rm.produce_records(
        &name("r"),
        acks(1),
        T,
        vec![record(1, "y")],
        Compression::None,
    )
    .await
    .unwrap();
    let resp = tokio::time::timeout(WOKEN, poll)
        .await
        .expect("woken")
        .unwrap();
    assert!(resp.partitions[0].records.is_empty());
    assert!(!resp.partitions[1].records.is_empty());
    assert_eq!((reads(&rm, "r", 0), reads(&rm, "r", 1)), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_wake_up_is_lost_when_appends_race_the_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    apply(&rm, &topic(1, "t", 1, &[1], &[]));
    // Each append lands at some point of the poll's first read, before, during or after
    // it: every poll must answer with the record, never wait out its 30 s.
    for i in 0..50 {
        let rm2 = Arc::clone(&rm);
        let mut asked = params("t", 1, 1 << 20);
        asked[0].offset = Offset(i);
        let poll = tokio::spawn(async move { rm2.fetch(asked, LONG_POLL_MS, 1, 1 << 20).await });
        if i % 2 == 0 {
            tokio::task::yield_now().await;
        }
        rm.produce_records(
            &name("t"),
            acks(1),
            T,
            vec![record(0, "r")],
            Compression::None,
        )
        .await
        .unwrap();
        let r = tokio::time::timeout(WOKEN, poll)
            .await
            .unwrap_or_else(|_| panic!("poll {i} missed its wake-up"))
            .unwrap();
        assert!(!r[0].records.is_empty(), "poll {i}");
    }
}

/// The partitions followed, by leader, as (leader, sorted partitions).
fn followed_now(rm: &ReplicaManager) -> Vec<(BrokerId, Vec<TopicPartition>)> {
    rm.followed()
        .borrow()
        .by_leader
        .iter()
        .map(|(l, ps)| {
            let mut tps: Vec<TopicPartition> = ps.iter().map(|p| p.tp.clone()).collect();
            tps.sort();
            (*l, tps)
        })
        .collect()
}

fn elect(n: u128, p: i32, leader: i32) -> MetadataRecord {
    MetadataRecord::PartitionChange(kavka_metadata::PartitionChangeRecord {
        leader: Some(BrokerId(leader)),
        ..kavka_metadata::PartitionChangeRecord::new(tid(n), PartitionId(p))
    })
}

#[test]
fn a_delta_touches_only_the_partitions_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    apply(&rm, &topic(1, "t", 2, &[1, 2], &[]));
    assert!(followed_now(&rm).is_empty(), "this broker leads both");
    let base = rm.image();
    // The image moves both partitions to broker 2; the delta names only partition 0.
    let (next, mut delta, refused) =
        base.replay(base.offset + 1, &[elect(1, 0, 2), elect(1, 1, 2)]);
    assert!(refused.is_empty(), "{refused:?}");
    delta.partitions.remove(&(tid(1), PartitionId(1)));
    let stats = rm.apply_delta(&base, Arc::new(next), &delta);
    assert_eq!(
        stats,
        crate::ReconcileStats {
            full: false,
            partitions: 1
        }
    );
    let p0 = TopicPartition::new(TopicName::new("t").unwrap(), PartitionId(0));
    assert_eq!(
        followed_now(&rm),
        vec![(BrokerId(2), vec![p0])],
        "partition 1 was not touched: still led here"
    );
}

#[test]
fn a_delta_gives_what_a_full_pass_gives_and_a_foreign_base_gets_a_full_pass() {
    let dir = tempfile::tempdir().unwrap();
    let rm = manager(dir.path());
    let mut records = topic(1, "t", 3, &[1, 2], &[]);
    records.extend(topic(2, "gone", 1, &[2, 1], &[]));
    apply(&rm, &records);
    let base = rm.image();
    let batch = [
        elect(1, 0, 2),
        MetadataRecord::RemoveTopic { topic_id: tid(2) },
        MetadataRecord::Config {
            resource: ConfigResource::Topic(TopicName::new("t").unwrap()),
            name: "retention.ms".into(),
            value: Some("1000".into()),
        },
    ];
    let (next, delta, refused) = base.replay(base.offset + 1, &batch);
    assert!(refused.is_empty(), "{refused:?}");
    let next = Arc::new(next);
    let stats = rm.apply_delta(&base, Arc::clone(&next), &delta);
    // t's three partitions (its configs changed) and gone-0, removed.
    assert_eq!((stats.full, stats.partitions), (false, 4));
    let scoped = followed_now(&rm);
    assert!(
        !dir.path().join("gone-0").exists(),
        "a removed topic's files go"
    );

    let full_dir = tempfile::tempdir().unwrap();
    let full = manager(full_dir.path());
    full.apply_image(Arc::clone(&base));
    assert!(full.apply_image(Arc::clone(&next)).full);
    assert_eq!(scoped, followed_now(&full));

    // A delta on top of an image this manager does not hold: everything.
    let (again, delta, _) = next.replay(next.offset + 1, &[elect(1, 1, 2)]);
    let stats = rm.apply_delta(&base, Arc::new(again), &delta);
    assert!(stats.full, "{stats:?}");
}
