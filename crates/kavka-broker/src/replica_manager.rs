//! The replica manager: which partitions this broker hosts, and the produce, fetch,
//! offset and topic-admin semantics on top of them.
//!
//! Invariants: a partition is reachable only while its topic is in the catalog; the
//! catalog on disk is updated before a created topic is reported created and before a
//! deleted topic's files are removed; admin operations are serialised (`admin`).

use crate::catalog::{Catalog, TopicEntry};
use crate::config::{BrokerConfig, TOPIC_PARTITIONS_MAX};
use crate::error::BrokerError;
use crate::partition::{Partition, ReadResult};
use crate::records::{NewRecord, apply_topic_compression, build_batch};
use kavka_log::{FetchData, LogConfig};
use kavka_model::{
    BrokerId, ConfigEntry, ErrorCode, KafkaError, LeaderEpoch, Offset, PartitionId, TimestampType,
    TopicConfig, TopicName, TopicPartition, partitioner,
};
use kavka_record::Compression;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::{Mutex, watch};

/// One result per partition, in request order.
pub type PartitionResults<T> = Vec<(i32, Result<T, KafkaError>)>;

/// Special ListOffsets timestamps (Kafka's).
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;

/// Longest a fetch may long-poll, whatever it asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

#[derive(Debug)]
enum Slot {
    Online(Arc<Partition>),
    /// The log could not be opened (e.g. a corrupt old segment): answered with
    /// KAFKA_STORAGE_ERROR naming the file, while every other partition keeps serving.
    Offline(KafkaError),
}

#[derive(Debug, Default)]
struct State {
    catalog: Catalog,
    partitions: HashMap<TopicPartition, Slot>,
}

#[derive(Debug)]
pub struct ReplicaManager {
    config: BrokerConfig,
    state: RwLock<State>,
    /// Serialises topic creation, deletion and config changes.
    admin: Mutex<()>,
    /// Bumped after every append: long-polling fetches wait on it.
    appends: watch::Sender<u64>,
    /// Round-robin start for keyless records (sticky per request).
    sticky: AtomicU32,
}

/// A topic as listed and described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSummary {
    pub name: TopicName,
    pub id: String,
    pub partitions: i32,
    pub replication_factor: i32,
}

/// One partition's replica state and offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: PartitionId,
    pub leader: BrokerId,
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    pub log_end_offset: Offset,
    pub size_bytes: u64,
    pub error: Option<KafkaError>,
}

#[derive(Clone, Debug)]
pub struct TopicDescription {
    pub topic: TopicSummary,
    pub partitions: Vec<PartitionState>,
    pub configs: Vec<ConfigEntry>,
}

#[derive(Clone, Debug)]
pub struct ProduceResult {
    pub base_offset: Offset,
    pub record_count: i32,
    pub log_append_time: Option<i64>,
    pub log_start_offset: Offset,
}

#[derive(Clone, Debug)]
pub struct FetchPartitionParams {
    pub topic: String,
    pub partition: i32,
    pub offset: Offset,
    pub max_bytes: usize,
}

#[derive(Clone, Debug, Default)]
pub struct FetchedPartition {
    pub topic: String,
    pub partition: i32,
    pub error: Option<KafkaError>,
    pub high_watermark: Offset,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
    pub records: Vec<u8>,
}

fn unknown_topic(name: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

fn invalid_topic(e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(ErrorCode::InvalidTopicException, e.to_string())
}

fn invalid_config(e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(ErrorCode::InvalidConfig, e.to_string())
}

fn storage_error(e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(ErrorCode::KafkaStorageError, e.to_string())
}

impl ReplicaManager {
    /// Opens the data dir: loads the catalog and every partition log. Blocking.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            BrokerError::Fatal(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        let catalog = Catalog::load(dir).map_err(BrokerError::Fatal)?;
        remove_deleted_dirs(dir);
        let mut partitions = HashMap::new();
        for (name, entry) in &catalog.topics {
            let log_config = match TopicConfig::from_overrides(&entry.configs) {
                Ok(t) => LogConfig::from_topic(&t, config.flush),
                Err(e) => {
                    return Err(BrokerError::Fatal(format!(
                        "topic '{name}' in {} has a bad config: {e}",
                        Catalog::path(dir).display()
                    )));
                }
            };
            for p in 0..entry.partitions {
                let tp = TopicPartition::new(name.clone(), PartitionId(p));
                let slot = match Partition::open(
                    tp.clone(),
                    &partition_dir(dir, &tp),
                    log_config.clone(),
                ) {
                    Ok(partition) => Slot::Online(Arc::new(partition)),
                    Err(e) => {
                        tracing::error!(partition = %tp, error = %e, "partition offline: its log cannot be opened");
                        Slot::Offline(e)
                    }
                };
                partitions.insert(tp, slot);
            }
        }
        tracing::info!(topics = catalog.topics.len(), partitions = partitions.len(), dir = %dir.display(), "opened data dir");
        Ok(Arc::new(Self {
            config,
            state: RwLock::new(State {
                catalog,
                partitions,
            }),
            admin: Mutex::new(()),
            appends: watch::channel(0).0,
            sticky: AtomicU32::new(0),
        }))
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    fn partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, KafkaError> {
        let state = self.read_state();
        let name = TopicName::new(topic).map_err(|_| unknown_topic(topic))?;
        let entry = state
            .catalog
            .topics
            .get(&name)
            .ok_or_else(|| unknown_topic(topic))?;
        let tp = TopicPartition::new(name, PartitionId(partition));
        match state.partitions.get(&tp) {
            Some(Slot::Online(p)) => Ok(Arc::clone(p)),
            Some(Slot::Offline(e)) => Err(e.clone()),
            None => Err(KafkaError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!(
                    "partition {partition} of topic '{topic}' does not exist (it has {})",
                    entry.partitions
                ),
            )),
        }
    }

    fn topic_entry(&self, topic: &str) -> Result<(TopicName, TopicEntry), KafkaError> {
        let name = TopicName::new(topic).map_err(|_| unknown_topic(topic))?;
        let state = self.read_state();
        let entry = state
            .catalog
            .topics
            .get(&name)
            .ok_or_else(|| unknown_topic(topic))?;
        Ok((name, entry.clone()))
    }

    async fn save_catalog(&self) -> Result<(), KafkaError> {
        let json = {
            let state = self.read_state();
            Catalog {
                topics: state.catalog.topics.clone(),
            }
        };
        let dir = self.config.data_dir.clone();
        tokio::task::spawn_blocking(move || json.save(&dir))
            .await
            .map_err(storage_error)?
            .map_err(|e| storage_error(format!("cannot write the topic catalog: {e}")))
    }

    /// Creates a topic (Kafka's CreateTopics for one topic). Returns its id.
    #[tracing::instrument(skip(self, configs))]
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i32,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<String, KafkaError> {
        let topic = TopicName::new(name).map_err(invalid_topic)?;
        let partitions = if partitions == -1 {
            self.config.default_partitions
        } else {
            partitions
        };
        if partitions <= 0 || partitions > TOPIC_PARTITIONS_MAX {
            return Err(KafkaError::new(
                ErrorCode::InvalidPartitions,
                format!(
                    "number of partitions must be between 1 and {TOPIC_PARTITIONS_MAX}, got {partitions}"
                ),
            ));
        }
        let replication_factor = if replication_factor <= 0 {
            1
        } else {
            replication_factor
        };
        let live_brokers = 1;
        if replication_factor > live_brokers {
            return Err(KafkaError::new(
                ErrorCode::InvalidReplicationFactor,
                format!(
                    "replication factor {replication_factor} is larger than the {live_brokers} available broker(s)"
                ),
            ));
        }
        let topic_config = TopicConfig::from_overrides(&configs).map_err(invalid_config)?;
        let _admin = self.admin.lock().await;
        if self.read_state().catalog.topics.contains_key(&topic) {
            return Err(KafkaError::new(
                ErrorCode::TopicAlreadyExists,
                format!("topic '{topic}' already exists"),
            ));
        }
        let id = uuid::Uuid::new_v4().to_string();
        if validate_only {
            return Ok(id);
        }
        let log_config = LogConfig::from_topic(&topic_config, self.config.flush);
        let dir = self.config.data_dir.clone();
        let t = topic.clone();
        let opened = tokio::task::spawn_blocking(move || {
            (0..partitions)
                .map(|p| {
                    let tp = TopicPartition::new(t.clone(), PartitionId(p));
                    let path = partition_dir(&dir, &tp);
                    // A directory of a topic not in the catalog is left from an interrupted
                    // deletion: it must not leak into the new topic.
                    if path.exists() {
                        std::fs::remove_dir_all(&path).map_err(|e| {
                            storage_error(format!("cannot clear stale {}: {e}", path.display()))
                        })?;
                    }
                    Partition::open(tp.clone(), &path, log_config.clone()).map(|part| (tp, part))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(storage_error)??;
        {
            let mut state = self.write_state();
            state.catalog.topics.insert(
                topic.clone(),
                TopicEntry {
                    id: id.clone(),
                    partitions,
                    replication_factor,
                    configs,
                },
            );
            for (tp, part) in opened {
                state.partitions.insert(tp, Slot::Online(Arc::new(part)));
            }
        }
        if let Err(e) = self.save_catalog().await {
            let mut state = self.write_state();
            state.catalog.topics.remove(&topic);
            state.partitions.retain(|tp, _| tp.topic != topic);
            return Err(e);
        }
        tracing::info!(%topic, partitions, "created topic");
        Ok(id)
    }

    /// Deletes a topic and its data.
    #[tracing::instrument(skip(self))]
    pub async fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        let _admin = self.admin.lock().await;
        let (topic, _) = self.topic_entry(name)?;
        let removed: Vec<Slot> = {
            let mut state = self.write_state();
            state.catalog.topics.remove(&topic);
            let tps: Vec<TopicPartition> = state
                .partitions
                .keys()
                .filter(|tp| tp.topic == topic)
                .cloned()
                .collect();
            tps.into_iter()
                .filter_map(|tp| state.partitions.remove(&tp))
                .collect()
        };
        self.save_catalog().await?;
        for slot in removed {
            if let Slot::Online(p) = slot
                && let Err(e) = p.delete().await
            {
                tracing::warn!(%topic, error = %e, "could not delete partition files");
            }
        }
        // Offline partitions' directories, if any remain.
        let prefix = format!("{topic}-");
        if let Ok(entries) = std::fs::read_dir(&self.config.data_dir) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().to_string();
                if n.strip_prefix(&prefix)
                    .is_some_and(|rest| rest.parse::<i32>().is_ok())
                {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        }
        tracing::info!(%topic, "deleted topic");
        Ok(())
    }

    pub fn list_topics(&self) -> Vec<TopicSummary> {
        self.read_state()
            .catalog
            .topics
            .iter()
            .map(|(name, e)| summary(name, e))
            .collect()
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, KafkaError> {
        let (topic, entry) = self.topic_entry(name)?;
        let config = TopicConfig::from_overrides(&entry.configs).map_err(invalid_config)?;
        let mut partitions = Vec::new();
        for p in 0..entry.partitions {
            partitions.push(self.partition_state(&topic, p).await);
        }
        Ok(TopicDescription {
            topic: summary(&topic, &entry),
            partitions,
            configs: config.entries(&entry.configs),
        })
    }

    async fn partition_state(&self, topic: &TopicName, p: i32) -> PartitionState {
        let me = self.config.node_id;
        let mut state = PartitionState {
            partition: PartitionId(p),
            leader: me,
            leader_epoch: LeaderEpoch(0),
            replicas: vec![me],
            isr: vec![me],
            log_start_offset: Offset(-1),
            high_watermark: Offset(-1),
            log_end_offset: Offset(-1),
            size_bytes: 0,
            error: None,
        };
        match self.partition(topic.as_str(), p) {
            Ok(part) => {
                let (start, hw, end, size) = part.offsets().await;
                state.leader_epoch = part.leader_epoch();
                state.log_start_offset = start;
                state.high_watermark = hw;
                state.log_end_offset = end;
                state.size_bytes = size;
            }
            Err(e) => {
                state.leader = BrokerId(-1);
                state.isr.clear();
                state.error = Some(e);
            }
        }
        state
    }

    /// Sets and removes config overrides of a topic; returns the resulting configs.
    #[tracing::instrument(skip(self, set, delete))]
    pub async fn alter_configs(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
        validate_only: bool,
    ) -> Result<Vec<ConfigEntry>, KafkaError> {
        let _admin = self.admin.lock().await;
        let (topic, entry) = self.topic_entry(name)?;
        let mut overrides = entry.configs.clone();
        for key in &delete {
            TopicConfig::check_key(key).map_err(invalid_config)?;
            overrides.remove(key);
        }
        overrides.extend(set);
        let config = TopicConfig::from_overrides(&overrides).map_err(invalid_config)?;
        let entries = config.entries(&overrides);
        if validate_only {
            return Ok(entries);
        }
        let previous = {
            let mut state = self.write_state();
            let Some(e) = state.catalog.topics.get_mut(&topic) else {
                return Err(unknown_topic(name));
            };
            std::mem::replace(&mut e.configs, overrides)
        };
        if let Err(e) = self.save_catalog().await {
            if let Some(entry) = self.write_state().catalog.topics.get_mut(&topic) {
                entry.configs = previous;
            }
            return Err(e);
        }
        let log_config = LogConfig::from_topic(&config, self.config.flush);
        for p in 0..entry.partitions {
            if let Ok(part) = self.partition(topic.as_str(), p) {
                part.set_config(log_config.clone()).await;
            }
        }
        Ok(entries)
    }

    /// Appends producer batches (already RecordBatch v2 bytes) to partitions of `topic`.
    #[tracing::instrument(skip(self, batches), fields(batches = batches.len()))]
    pub async fn produce(
        &self,
        topic: &str,
        acks: i32,
        batches: Vec<(i32, Vec<u8>)>,
    ) -> Result<PartitionResults<ProduceResult>, KafkaError> {
        if !matches!(acks, -1..=1) {
            return Err(KafkaError::new(
                ErrorCode::InvalidRequiredAcks,
                format!("acks must be -1 (all), 0 or 1, got {acks}"),
            ));
        }
        let (_, entry) = self.topic_entry(topic)?;
        let config = TopicConfig::from_overrides(&entry.configs).map_err(invalid_config)?;
        let mut results = Vec::with_capacity(batches.len());
        let mut tasks = Vec::new();
        for (partition, records) in batches {
            let part = match self.partition(topic, partition) {
                Ok(p) => p,
                Err(e) => {
                    results.push((partition, Err(e)));
                    continue;
                }
            };
            let appends = self.appends.clone();
            let config = config.clone();
            tasks.push((
                partition,
                tokio::spawn(async move {
                    let records = apply_topic_compression(records, config.compression_type)?;
                    let log_append_time = (config.message_timestamp_type
                        == TimestampType::LogAppendTime)
                        .then(crate::now_ms);
                    let info = part.append(records, log_append_time).await?;
                    appends.send_modify(|n| *n += 1);
                    let (start, ..) = part.offsets().await;
                    Ok(ProduceResult {
                        base_offset: info.first_offset,
                        record_count: (info.last_offset.0 - info.first_offset.0 + 1) as i32,
                        log_append_time: info.log_append_time,
                        log_start_offset: start,
                    })
                }),
            ));
        }
        for (partition, task) in tasks {
            if acks == 0 {
                // Fire and forget, as Kafka's acks=0: the append goes on without us.
                results.push((
                    partition,
                    Ok(ProduceResult {
                        base_offset: Offset(-1),
                        record_count: 0,
                        log_append_time: None,
                        log_start_offset: Offset(-1),
                    }),
                ));
                continue;
            }
            let r = task.await.unwrap_or_else(|e| {
                Err(KafkaError::new(
                    ErrorCode::UnknownServerError,
                    format!("append failed: {e}"),
                ))
            });
            results.push((partition, r));
        }
        Ok(results)
    }

    /// Partitions structured records (explicit partition, murmur2 of the key, or one
    /// sticky partition per request for keyless records), batches and appends them.
    pub async fn produce_records(
        &self,
        topic: &str,
        acks: i32,
        records: Vec<(Option<i32>, NewRecord)>,
        compression: Compression,
    ) -> Result<PartitionResults<ProduceResult>, KafkaError> {
        let (_, entry) = self.topic_entry(topic)?;
        let n = entry.partitions as u32;
        let sticky = self.sticky.fetch_add(1, Ordering::Relaxed) % n;
        let mut by_partition: BTreeMap<i32, Vec<NewRecord>> = BTreeMap::new();
        for (partition, record) in records {
            let p = match (partition, &record.key) {
                (Some(p), _) => p,
                (None, Some(key)) => partitioner::partition_for_key(key, n) as i32,
                (None, None) => sticky as i32,
            };
            by_partition.entry(p).or_default().push(record);
        }
        let mut batches = Vec::new();
        for (p, records) in by_partition {
            batches.push((p, build_batch(records, compression)?));
        }
        self.produce(topic, acks, batches).await
    }

    /// Kafka's Fetch: reads every asked partition; if fewer than `min_bytes` are
    /// available, waits for appends up to `max_wait` and reads again.
    #[tracing::instrument(skip_all, fields(partitions = partitions.len(), max_wait_ms))]
    pub async fn fetch(
        &self,
        partitions: Vec<FetchPartitionParams>,
        max_wait_ms: u64,
        min_bytes: usize,
        max_bytes: usize,
    ) -> Vec<FetchedPartition> {
        let deadline =
            tokio::time::Instant::now() + Duration::from_millis(max_wait_ms.min(FETCH_WAIT_MS_MAX));
        let mut appends = self.appends.subscribe();
        loop {
            appends.mark_unchanged();
            let results = self.fetch_once(&partitions, max_bytes).await;
            let bytes: usize = results.iter().map(|r| r.records.len()).sum();
            let any_error = results.iter().any(|r| r.error.is_some());
            if bytes >= min_bytes || any_error || tokio::time::Instant::now() >= deadline {
                return results;
            }
            if tokio::time::timeout_at(deadline, appends.changed())
                .await
                .is_err()
            {
                return self.fetch_once(&partitions, max_bytes).await;
            }
        }
    }

    async fn fetch_once(
        &self,
        partitions: &[FetchPartitionParams],
        max_bytes: usize,
    ) -> Vec<FetchedPartition> {
        let mut out = Vec::with_capacity(partitions.len());
        let mut budget = max_bytes;
        for p in partitions {
            let mut r = FetchedPartition {
                topic: p.topic.clone(),
                partition: p.partition,
                high_watermark: Offset(-1),
                log_start_offset: Offset(-1),
                log_end_offset: Offset(-1),
                ..FetchedPartition::default()
            };
            match self.partition(&p.topic, p.partition) {
                Err(e) => r.error = Some(e),
                Ok(part) => {
                    // Kafka: at least one batch overall, so the first non-empty partition
                    // may exceed the budget; once it is spent, only offsets are reported.
                    let read = if budget == 0 {
                        let (start, hw, end, _) = part.offsets().await;
                        Ok(ReadResult {
                            data: FetchData {
                                records: Vec::new(),
                                log_start_offset: start,
                                log_end_offset: end,
                            },
                            high_watermark: hw,
                        })
                    } else {
                        part.read(p.offset, p.max_bytes.min(budget)).await
                    };
                    match read {
                        Ok(read) => {
                            r.high_watermark = read.high_watermark;
                            r.log_start_offset = read.data.log_start_offset;
                            r.log_end_offset = read.data.log_end_offset;
                            budget = budget.saturating_sub(read.data.records.len());
                            r.records = read.data.records;
                        }
                        Err(e) => {
                            let (start, hw, end, _) = part.offsets().await;
                            r.log_start_offset = start;
                            r.high_watermark = hw;
                            r.log_end_offset = end;
                            r.error = Some(e);
                        }
                    }
                }
            }
            out.push(r);
        }
        out
    }

    /// Kafka's ListOffsets: earliest (-2), latest (-1, the high watermark) or the first
    /// offset at or after a timestamp (-1 when there is none).
    pub async fn list_offsets(
        &self,
        topic: &str,
        partitions: Vec<(i32, i64)>,
    ) -> Vec<(i32, Result<(Offset, i64), KafkaError>)> {
        let mut out = Vec::new();
        for (partition, ts) in partitions {
            let r = match self.partition(topic, partition) {
                Err(e) => Err(e),
                Ok(part) => match ts {
                    EARLIEST_TIMESTAMP => Ok((part.offsets().await.0, -1)),
                    LATEST_TIMESTAMP => Ok((part.high_watermark(), -1)),
                    ts if ts < 0 => Err(KafkaError::new(
                        ErrorCode::InvalidRequest,
                        format!("unsupported timestamp {ts}: use -2, -1 or a time in ms"),
                    )),
                    ts => part
                        .offset_for_timestamp(ts)
                        .await
                        .map(|r| r.map_or((Offset(-1), -1), |(o, t)| (o, t))),
                },
            };
            out.push((partition, r));
        }
        out
    }

    /// Broker and topic metadata; `topics` empty means all.
    pub async fn metadata(
        &self,
        topics: &[String],
    ) -> (
        Vec<(String, Result<TopicSummary, KafkaError>)>,
        Vec<(TopicName, Vec<PartitionState>)>,
    ) {
        let names: Vec<String> = if topics.is_empty() {
            self.list_topics()
                .into_iter()
                .map(|t| t.name.to_string())
                .collect()
        } else {
            topics.to_vec()
        };
        let mut summaries = Vec::new();
        let mut states = Vec::new();
        for name in names {
            match self.topic_entry(&name) {
                Ok((topic, entry)) => {
                    let mut ps = Vec::new();
                    for p in 0..entry.partitions {
                        ps.push(self.partition_state(&topic, p).await);
                    }
                    summaries.push((name, Ok(summary(&topic, &entry))));
                    states.push((topic, ps));
                }
                Err(e) => summaries.push((name, Err(e))),
            }
        }
        (summaries, states)
    }

    /// Runs retention every `log.retention.check.interval.ms` until `shutdown` fires.
    pub async fn run_retention(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let period = Duration::from_millis(self.config.retention_check_interval_ms.max(100));
        let mut tick = tokio::time::interval(period);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let parts: Vec<Arc<Partition>> = self
                .read_state()
                .partitions
                .values()
                .filter_map(|s| match s {
                    Slot::Online(p) => Some(Arc::clone(p)),
                    Slot::Offline(_) => None,
                })
                .collect();
            for p in parts {
                match p.enforce_retention().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(partition = %p.tp, segments = n, "retention deleted segments")
                    }
                    Err(e) => tracing::warn!(partition = %p.tp, error = %e, "retention failed"),
                }
            }
        }
    }
}

fn summary(name: &TopicName, e: &TopicEntry) -> TopicSummary {
    TopicSummary {
        name: name.clone(),
        id: e.id.clone(),
        partitions: e.partitions,
        replication_factor: e.replication_factor,
    }
}

fn partition_dir(data: &std::path::Path, tp: &TopicPartition) -> PathBuf {
    data.join(tp.to_string())
}

/// Removes directories left by a deletion interrupted by a crash.
fn remove_deleted_dirs(data: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(data) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with("-delete") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    async fn manager(dir: &std::path::Path) -> Arc<ReplicaManager> {
        ReplicaManager::open(BrokerConfig::new(BrokerId(1), dir.to_path_buf())).unwrap()
    }

    fn record(v: &str) -> (Option<i32>, NewRecord) {
        (
            Some(0),
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
        let rm = manager(dir.path()).await;
        rm.create_topic("t", 2, 1, BTreeMap::new(), false)
            .await
            .unwrap();
        // Nothing there, min_bytes 0, a long max wait: answered without waiting.
        let started = std::time::Instant::now();
        let r = rm.fetch(params("t", 2, 1 << 20), 30_000, 0, 1 << 20).await;
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(r.iter().all(|p| p.records.is_empty() && p.error.is_none()));

        for p in 0..2 {
            let recs = (0..3)
                .map(|i| {
                    let mut r = record(&format!("{p}-{i}"));
                    r.0 = Some(p);
                    r
                })
                .collect();
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
    async fn topics_and_configs_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let rm = manager(dir.path()).await;
        let configs = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        rm.create_topic("keep", 2, 1, configs, false).await.unwrap();
        rm.produce_records("keep", -1, vec![record("v")], Compression::Gzip)
            .await
            .unwrap();
        rm.create_topic("gone", 1, 1, BTreeMap::new(), false)
            .await
            .unwrap();
        rm.delete_topic("gone").await.unwrap();
        drop(rm);
        let rm = manager(dir.path()).await;
        let names: Vec<String> = rm
            .list_topics()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        assert_eq!(names, ["keep"]);
        let d = rm.describe_topic("keep").await.unwrap();
        assert_eq!(d.partitions[0].log_end_offset, Offset(1));
        let ret = d.configs.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!((ret.value.as_str(), ret.is_default), ("1000", false));
    }

    #[tokio::test]
    async fn a_corrupt_catalog_refuses_to_start_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(crate::catalog::CATALOG_FILE), b"{not json").unwrap();
        let e = ReplicaManager::open(BrokerConfig::new(BrokerId(1), dir.path().to_path_buf()))
            .unwrap_err();
        assert!(e.to_string().contains("kavka-topics.json"), "{e}");
    }
}
