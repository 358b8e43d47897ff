//! The coordinator over an in-memory port: what it writes through `CoordinatorLog` is
//! what another coordinator loads, and leadership of `__consumer_offsets` decides what
//! it serves.

use super::*;
use crate::{LogRead, OffsetCommit};
use bytes::Bytes;
use kavka_model::Offset;
use kavka_record::{Compression, Record, RecordBatch};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::sync::watch;

const ME: BrokerId = BrokerId(1);
const OTHER: BrokerId = BrokerId(2);
const WAIT: Duration = Duration::from_secs(5);

/// A partition of `__consumer_offsets`: (key, value, timestamp) in offset order.
type MemPartition = Vec<(Bytes, Option<Bytes>, i64)>;

/// Topics: per partition, its leader and leader epoch.
type Topics = BTreeMap<String, Vec<(Option<BrokerId>, LeaderEpoch)>>;

/// `__consumer_offsets` as a list of records per partition, and metadata to follow.
struct MemLog {
    topics: Mutex<Arc<Topics>>,
    applied: watch::Sender<i64>,
    records: Mutex<HashMap<PartitionId, MemPartition>>,
}

impl MemLog {
    /// `__consumer_offsets` with one partition led by `ME`, and topic `orders` of two.
    fn new() -> Arc<Self> {
        let led = (Some(ME), LeaderEpoch(0));
        let topics: Topics = [
            (OFFSETS_TOPIC.to_string(), vec![led]),
            ("orders".to_string(), vec![led, led]),
        ]
        .into_iter()
        .collect();
        Arc::new(Self {
            topics: Mutex::new(Arc::new(topics)),
            applied: watch::channel(1).0,
            records: Mutex::new(HashMap::new()),
        })
    }

    /// Applies a new image: `change` edits the topics.
    fn apply(&self, change: impl FnOnce(&mut Topics)) {
        let mut topics = self.topics.lock().unwrap();
        let mut next = Topics::clone(&topics);
        change(&mut next);
        *topics = Arc::new(next);
        self.applied.send_modify(|o| *o += 1);
    }
}

/// One image of `MemLog`'s topics.
struct MemView(Arc<Topics>);

impl MetadataView for MemView {
    fn partition_count(&self, topic: &str) -> Option<i32> {
        self.0.get(topic).map(|ps| ps.len() as i32)
    }

    fn leader(
        &self,
        topic: &str,
        partition: PartitionId,
    ) -> Option<(Option<BrokerId>, LeaderEpoch)> {
        self.0.get(topic)?.get(partition.0 as usize).copied()
    }

    fn broker_count(&self) -> usize {
        2
    }

    fn for_each_topic_name(&self, f: &mut dyn FnMut(&str)) {
        self.0.keys().for_each(|t| f(t));
    }
}

impl CoordinatorLog for MemLog {
    fn node_id(&self) -> BrokerId {
        ME
    }

    fn metadata(&self) -> Box<dyn MetadataView> {
        Box::new(MemView(Arc::clone(&self.topics.lock().unwrap())))
    }

    fn watch_applied(&self) -> watch::Receiver<i64> {
        self.applied.subscribe()
    }

    fn create_topic(&self, _topic: NewTopic) -> crate::BoxFuture<'_, Result<(), KafkaError>> {
        Box::pin(async { Err(err(ErrorCode::TopicAlreadyExists, "exists")) })
    }

    fn append(
        &self,
        partition: PartitionId,
        records: Vec<(Bytes, Option<Bytes>)>,
        timestamp_ms: i64,
        _timeout: Duration,
    ) -> crate::BoxFuture<'_, Result<(), KafkaError>> {
        let mut log = self.records.lock().unwrap();
        let log = log.entry(partition).or_default();
        log.extend(records.into_iter().map(|(k, v)| (k, v, timestamp_ms)));
        Box::pin(async { Ok(()) })
    }

    fn log_end(&self, partition: PartitionId) -> crate::BoxFuture<'_, Result<Offset, KafkaError>> {
        let end = self
            .records
            .lock()
            .unwrap()
            .get(&partition)
            .map_or(0, Vec::len);
        Box::pin(async move { Ok(Offset(end as i64)) })
    }

    fn read(
        &self,
        partition: PartitionId,
        offset: Offset,
        _max_bytes: usize,
        _max_wait: Duration,
    ) -> crate::BoxFuture<'_, LogRead> {
        let log = self.records.lock().unwrap();
        let records = log
            .get(&partition)
            .into_iter()
            .flatten()
            .skip(offset.0 as usize)
            .enumerate()
            .map(|(i, (k, v, _))| Record {
                offset_delta: i as i32,
                timestamp_delta: 0,
                key: Some(k.clone()),
                value: v.clone(),
                headers: Vec::new(),
            })
            .collect();
        let mut batch = RecordBatch::new(0, Compression::None, records);
        batch.base_offset = offset.0;
        let encoded = batch
            .encode()
            .map_err(|e| err(ErrorCode::UnknownServerError, e.to_string()));
        Box::pin(async move {
            LogRead {
                log_start_offset: Offset::ZERO,
                records: encoded,
            }
        })
    }
}

/// A coordinator over `log`, following it until the returned sender is dropped.
fn start(log: &Arc<MemLog>) -> (Arc<GroupCoordinator>, watch::Sender<bool>) {
    let coordinator = GroupCoordinator::new(
        Arc::clone(log) as Arc<dyn CoordinatorLog>,
        GroupConfig::default(),
    );
    let (stop, shutdown) = watch::channel(false);
    tokio::spawn(Arc::clone(&coordinator).run(shutdown));
    (coordinator, stop)
}

/// Retries `f` while the coordinator has not taken up the offsets partition yet (not
/// following it, or loading it).
async fn served<T>(mut f: impl FnMut() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.code,
                    ErrorCode::NotCoordinator | ErrorCode::CoordinatorLoadInProgress
                ) && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            r => return r,
        }
    }
}

fn commit(offset: i64, topic: &str) -> OffsetCommit {
    OffsetCommit {
        topic: topic.to_string(),
        partition: 1,
        offset,
        leader_epoch: 3,
        metadata: Some("m".to_string()),
    }
}

#[tokio::test]
async fn committed_offsets_are_written_through_the_port_and_loaded_back() {
    let log = MemLog::new();
    let (first, _stop) = start(&log);
    log.apply(|_| {});
    served(|| first.fetch_offsets("g", None)).await.unwrap();
    assert_eq!(first.find_coordinator("g").await.unwrap(), ME);

    let results = first
        .commit_offsets(
            "g",
            "",
            None,
            -1,
            vec![commit(42, "orders"), commit(7, "gone")],
        )
        .await
        .unwrap();
    assert_eq!(results[0].2, Ok(()));
    assert_eq!(
        results[1].2.as_ref().unwrap_err().code,
        ErrorCode::UnknownTopicOrPartition
    );
    let got = first.fetch_offsets("g", None).unwrap();
    assert_eq!(got.len(), 1);
    let (topic, partition, Some(o)) = &got[0] else {
        panic!("no offset in {got:?}");
    };
    assert_eq!((topic.as_str(), *partition), ("orders", 1));
    assert_eq!(
        (o.offset, o.leader_epoch, o.metadata.as_str()),
        (42, 3, "m")
    );

    // Another coordinator over the same log rebuilds the group from what was appended.
    let (second, _stop2) = start(&log);
    log.apply(|_| {});
    let loaded = served(|| second.fetch_offsets("g", None)).await.unwrap();
    assert_eq!(loaded, got);
}

#[tokio::test]
async fn losing_leadership_of_the_offsets_partition_stops_serving_its_groups() {
    let log = MemLog::new();
    let (coordinator, _stop) = start(&log);
    log.apply(|_| {});
    served(|| coordinator.fetch_offsets("g", None))
        .await
        .unwrap();

    log.apply(|topics| {
        if let Some(p) = topics.get_mut(OFFSETS_TOPIC) {
            p[0] = (Some(OTHER), LeaderEpoch(1));
        }
    });
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match coordinator.fetch_offsets("g", None) {
            Err(e) => {
                assert_eq!(e.code, ErrorCode::NotCoordinator);
                break;
            }
            Ok(_) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "still serving the group"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
    assert_eq!(coordinator.find_coordinator("g").await.unwrap(), OTHER);
}
