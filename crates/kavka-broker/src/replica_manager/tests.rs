use super::*;
use crate::records::NewRecord;
use bytes::Bytes;
use kavka_metadata::{MetadataRecord, PartitionRecord, TopicRecord};
use kavka_record::Compression;

const ME: BrokerId = BrokerId(1);

fn manager(dir: &Path) -> Arc<ReplicaManager> {
    ReplicaManager::open(BrokerConfig::new(ME, dir.to_path_buf())).unwrap()
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

fn apply(rm: &ReplicaManager, records: &[MetadataRecord]) {
    let img = rm.image();
    let (next, _, refused) = img.replay(img.offset + 1, records);
    assert!(refused.is_empty(), "{refused:?}");
    rm.apply_image(Arc::new(next));
}

fn record(p: i32, v: &str) -> (Option<i32>, NewRecord) {
    (
        Some(p),
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
            topic: topic.into(),
            partition,
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
        rm.produce_records("t", 1, recs, Compression::None)
            .await
            .unwrap();
    }
    // A budget of one byte: the first partition still gets one batch, the second none.
    let r = rm.fetch(params("t", 2, 1 << 20), 0, 1, 1).await;
    assert!(!r[0].records.is_empty());
    assert!(r[1].records.is_empty());
    assert_eq!(r[1].high_watermark, Offset(3));
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
        .produce_records("follower", 1, vec![record(0, "x")], Compression::None)
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
            .any(|c| c.name == "retention.ms" && c.value == "1000" && !c.is_default)
    );

    rm.produce_records("mine", -1, vec![record(0, "v")], Compression::Gzip)
        .await
        .unwrap();
    // Deleted, then re-created under the same name: the new topic starts empty.
    apply(&rm, &[MetadataRecord::RemoveTopic { topic_id: tid(1) }]);
    assert!(!dir.path().join("mine-0").exists());
    assert_eq!(
        rm.produce_records("mine", 1, vec![record(0, "v")], Compression::None)
            .await
            .unwrap_err()
            .code,
        ErrorCode::UnknownTopicOrPartition
    );
    apply(&rm, &topic(4, "mine", 1, &[1], &[]));
    assert_eq!(
        rm.describe_topic("mine").await.unwrap().partitions[0].log_end_offset,
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
        rm.produce_records("keep", -1, vec![record(0, "v")], Compression::None)
            .await
            .unwrap();
    }
    let rm = manager(dir.path());
    apply(&rm, &records);
    assert_eq!(
        rm.describe_topic("keep").await.unwrap().partitions[0].log_end_offset,
        Offset(1)
    );
    drop(rm);
    // The same name with another id (the topic was re-created while this broker was away).
    let rm = manager(dir.path());
    apply(&rm, &topic(9, "keep", 1, &[1], &[]));
    assert_eq!(
        rm.describe_topic("keep").await.unwrap().partitions[0].log_end_offset,
        Offset(0)
    );
}
