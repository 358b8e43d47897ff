//! The replica manager: which partitions this broker hosts, reconciled against each
//! metadata image from the controllers, and the produce, fetch and offset semantics on
//! top of them (`produce`, `fetch`, `replication`, `epochs`), in model types only:
//! partitions are `TopicPartition`s, acks an `Acks`, ListOffsets asks an `OffsetSpec`.
//! The listeners (through `crate::api::BrokerApi`) check the names and wire values
//! clients send before they reach here.
//!
//! Invariants:
//! - a partition is hosted exactly when the applied image lists this broker among its
//!   replicas; its directory records the topic id (`partition.metadata`), so a topic
//!   re-created under the same name never inherits the old one's data;
//! - only the partition's leader (per the image) accepts produce and consumer fetches;
//! - reconciliation runs one image at a time (`reconciling`), off the async runtime;
//! - no protobuf or Kafka protocol type appears here.

mod budget;
mod epochs;
mod fetch;
mod logs;
mod produce;
mod reconcile;
mod replication;
mod wakeup;

pub use produce::{Appended, produce_timeout};

pub use reconcile::ReconcileStats;
pub use replication::Followed;

use crate::config::BrokerConfig;
use crate::error::BrokerError;
use crate::lease::LeaderLease;
use crate::partition::Partition;
use kavka_log::LogConfig;
use kavka_metadata::{ConfigResource, MetadataImage, PartitionRegistration, TopicId, TopicImage};
use kavka_model::{
    BrokerId, ConfigEntry, DynamicBrokerConfig, ErrorCode, KafkaError, LeaderEpoch, Offset,
    PartitionId, TopicConfig, TopicName, TopicPartition,
};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU32;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// One result per partition, in request order.
pub type PartitionResults<T> = Vec<(PartitionId, Result<T, KafkaError>)>;

/// Longest a fetch may long-poll, whatever it asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// Kafka's per-partition file naming the topic id.
const PARTITION_METADATA_FILE: &str = "partition.metadata";

#[derive(Debug)]
enum Slot {
    Online(Arc<Partition>),
    /// The log could not be opened (a corrupt old segment, no file descriptors left):
    /// answered with KAFKA_STORAGE_ERROR naming the cause, while every other partition
    /// keeps serving; opening is tried again at `retry_at`, backing off.
    Offline {
        topic_id: TopicId,
        error: KafkaError,
        retry_at: Instant,
        attempts: u32,
    },
}

/// Backoff between attempts to open an offline partition's log: 1 s doubling to a minute.
fn open_retry_delay(attempts: u32) -> Duration {
    Duration::from_secs(1u64 << attempts.min(6)).min(OPEN_RETRY_DELAY_MAX)
}

const OPEN_RETRY_DELAY_MAX: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct State {
    image: Arc<MetadataImage>,
    partitions: HashMap<TopicPartition, Slot>,
}

#[derive(Debug)]
pub struct ReplicaManager {
    config: BrokerConfig,
    state: RwLock<State>,
    /// Serialises reconciliation with new images.
    reconciling: Mutex<()>,
    /// The offset of the last applied image: admin calls wait on it for their change.
    applied: watch::Sender<i64>,
    /// Round-robin start for keyless records (sticky per request).
    sticky: AtomicU32,
    /// Partitions this broker follows, by leader: the replica fetchers watch it.
    followed: watch::Sender<Followed>,
    /// High watermarks read from the checkpoint at start, used when a partition opens.
    checkpointed_hw: Mutex<HashMap<TopicPartition, Offset>>,
    /// Checked before acting as leader (produce, fetches served as leader); renewed by
    /// the controller session.
    lease: Arc<LeaderLease>,
    /// Decode work (record validation, recompression) running at once on this node: one
    /// per core, so a burst of large compressed batches queues instead of taking every
    /// thread and its memory at once.
    pub(crate) decode_permits: Arc<tokio::sync::Semaphore>,
    /// Replication throttles for moving replicas.
    pub(crate) throttles: Arc<crate::throttle::Throttles>,
}

/// A topic as listed and described.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicSummary {
    pub name: TopicName,
    pub id: TopicId,
    pub partitions: i32,
    pub replication_factor: i32,
}

/// One partition's replica state and, where hosted here, its offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    pub partition: PartitionId,
    /// None: the partition has no leader.
    pub leader: Option<BrokerId>,
    pub leader_epoch: LeaderEpoch,
    pub replicas: Vec<BrokerId>,
    pub isr: Vec<BrokerId>,
    /// None: no open replica here.
    pub local: Option<LocalReplica>,
    pub error: Option<KafkaError>,
}

/// This broker's replica of a partition, where its log is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalReplica {
    pub log_start_offset: Offset,
    pub high_watermark: Offset,
    pub log_end_offset: Offset,
    pub size_bytes: u64,
    /// Every offset below this is fsynced here.
    pub durable_offset: Offset,
}

#[derive(Clone, Debug)]
pub struct TopicDescription {
    pub topic: TopicSummary,
    pub partitions: Vec<PartitionState>,
    pub configs: Vec<ConfigEntry>,
}

pub use kavka_model::data::{FetchOffsets, FetchPartitionParams, FetchedPartition, ProduceResult};

/// A topic name as a client sent it, checked: a name Kafka would not accept names no
/// topic here (UNKNOWN_TOPIC_OR_PARTITION, as for any topic that does not exist).
pub fn topic_name(name: &str) -> Result<TopicName, KafkaError> {
    TopicName::new(name).map_err(|_| unknown_topic(name))
}

pub(crate) fn unknown_topic(name: &str) -> KafkaError {
    KafkaError::new(
        ErrorCode::UnknownTopicOrPartition,
        format!("topic '{name}' does not exist"),
    )
}

fn storage_error(e: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(ErrorCode::KafkaStorageError, e.to_string())
}

/// A topic's configs in effect: its overrides over the broker's `defaults`.
fn topic_config(
    image: &MetadataImage,
    defaults: &BTreeMap<String, String>,
    name: &TopicName,
) -> TopicConfig {
    let overrides = image.configs(&ConfigResource::Topic(name.clone()));
    let (config, skipped) = TopicConfig::from_stored_over(defaults, &overrides);
    for e in skipped {
        tracing::warn!(topic = %name, error = %e, "invalid topic config in metadata; its default applies");
    }
    config
}

impl ReplicaManager {
    /// Prepares the data dir; partitions are opened as the metadata image names them.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>, BrokerError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            BrokerError::Fatal(format!("cannot create data dir {}: {e}", dir.display()))
        })?;
        remove_deleted_dirs(dir);
        let checkpointed_hw = replication::read_hw_checkpoint(dir);
        Ok(Arc::new(Self {
            state: RwLock::new(State {
                image: Arc::new(MetadataImage::empty()),
                partitions: HashMap::new(),
            }),
            reconciling: Mutex::new(()),
            applied: watch::channel(-1).0,
            sticky: AtomicU32::new(0),
            followed: watch::channel(Followed::default()).0,
            checkpointed_hw: Mutex::new(checkpointed_hw),
            lease: Arc::new(LeaderLease::new(
                config.node_id,
                Duration::from_millis(config.session_timeout_ms),
            )),
            decode_permits: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            throttles: Arc::default(),
            config,
        }))
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The leader lease the controller session renews.
    pub fn lease(&self) -> &Arc<LeaderLease> {
        &self.lease
    }

    /// Ok when this broker may act as leader now (its lease holds for its image).
    pub(crate) fn check_lease(&self) -> Result<(), KafkaError> {
        self.lease.check(self.read_state().image.offset)
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes whenever a new metadata image is applied.
    pub fn watch_applied(&self) -> watch::Receiver<i64> {
        self.applied.subscribe()
    }

    /// The image this broker last applied.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.read_state().image)
    }

    /// Waits (bounded) until the applied image satisfies `cond`.
    pub async fn wait_for_image(
        &self,
        timeout: Duration,
        cond: impl Fn(&MetadataImage) -> bool,
    ) -> bool {
        let mut rx = self.applied.subscribe();
        let wait = async {
            loop {
                if cond(&self.image()) {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        tokio::time::timeout(timeout, wait).await.is_ok() && cond(&self.image())
    }

    fn partition_dir(&self, tp: &TopicPartition) -> PathBuf {
        self.config.data_dir.join(tp.to_string())
    }

    /// Opens a partition's log, wiping a directory left by another topic of the same name.
    fn open_partition(
        &self,
        tp: &TopicPartition,
        topic_id: TopicId,
        config: LogConfig,
    ) -> Result<Partition, KafkaError> {
        let dir = self.partition_dir(tp);
        let meta = dir.join(PARTITION_METADATA_FILE);
        let want = format!("version: 0\ntopic_id: {topic_id}\n");
        match std::fs::read_to_string(&meta) {
            Ok(found) if found == want => {}
            Ok(_) => {
                tracing::warn!(partition = %tp, "directory belongs to an older topic of the same name: wiping it");
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| storage_error(format!("cannot clear {}: {e}", dir.display())))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir.exists() => {
                tracing::warn!(partition = %tp, "directory has no {PARTITION_METADATA_FILE}: wiping it");
                std::fs::remove_dir_all(&dir)
                    .map_err(|e| storage_error(format!("cannot clear {}: {e}", dir.display())))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            // Unreadable is not missing (out of file descriptors, a failing disk): the
            // directory is kept and the open is retried later.
            Err(e) => {
                return Err(storage_error(format!(
                    "cannot read {}: {e}",
                    meta.display()
                )));
            }
        }
        let hw = self
            .checkpointed_hw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(tp)
            .copied();
        let p = Partition::open(tp.clone(), topic_id, self.config.node_id, &dir, config, hw)?;
        if !meta.exists() {
            write_synced(&meta, want.as_bytes())
                .map_err(|e| storage_error(format!("cannot write {}: {e}", meta.display())))?;
        }
        // Used once: a later re-open (the topic re-created) must not start from it.
        self.checkpointed_hw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tp);
        Ok(p)
    }

    /// Checkpointed high watermarks of partitions this broker still hosts but has not
    /// opened (their logs could not be opened yet).
    pub(crate) fn unopened_checkpointed_hw(&self) -> Vec<(TopicPartition, Offset)> {
        let hw = self
            .checkpointed_hw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let state = self.read_state();
        hw.into_iter()
            .filter(|(tp, _)| matches!(state.partitions.get(tp), Some(Slot::Offline { .. })))
            .collect()
    }

    /// Replicas this broker hosts whose logs it cannot open now, by topic id: every
    /// heartbeat reports them, so the controller moves leadership and the ISR off them.
    pub fn offline_replicas(&self) -> Vec<(TopicId, PartitionId)> {
        let mut out: Vec<(TopicId, PartitionId)> = self
            .read_state()
            .partitions
            .iter()
            .filter_map(|(tp, s)| match s {
                Slot::Offline { topic_id, .. } => Some((*topic_id, tp.partition)),
                Slot::Online(_) => None,
            })
            .collect();
        out.sort();
        out
    }

    /// A topic's typed configs and partition count, from the applied image.
    pub(crate) fn topic_config(&self, name: &TopicName) -> Result<(TopicConfig, i32), KafkaError> {
        let image = self.image();
        let t = image
            .topic_by_name(name)
            .ok_or_else(|| unknown_topic(name.as_str()))?;
        Ok((
            topic_config(&image, &self.config.topic_defaults(), name),
            t.partitions.len() as i32,
        ))
    }

    /// The partition, if this broker leads it.
    pub(crate) fn partition(&self, tp: &TopicPartition) -> Result<Arc<Partition>, KafkaError> {
        let state = self.read_state();
        let (topic, partition) = (&tp.topic, tp.partition);
        let t = state
            .image
            .topic_by_name(topic)
            .ok_or_else(|| unknown_topic(topic.as_str()))?;
        let Some(reg) = t.partitions.get(&partition) else {
            return Err(KafkaError::new(
                ErrorCode::UnknownTopicOrPartition,
                format!(
                    "partition {partition} of topic '{topic}' does not exist (it has {})",
                    t.partitions.len()
                ),
            ));
        };
        if reg.leader != self.config.node_id {
            return Err(KafkaError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "broker {} does not lead {topic}-{partition}; its leader is broker {}",
                    self.config.node_id, reg.leader
                ),
            ));
        }
        match state.partitions.get(tp) {
            Some(Slot::Online(p)) => Ok(Arc::clone(p)),
            Some(Slot::Offline { error, .. }) => Err(error.clone()),
            None => Err(KafkaError::new(
                ErrorCode::LeaderNotAvailable,
                format!("{tp} is not open here yet"),
            )),
        }
    }

    pub fn list_topics(&self) -> Vec<TopicSummary> {
        self.image().topics().map(summary).collect()
    }

    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, KafkaError> {
        let image = self.image();
        let topic = TopicName::new(name).map_err(|_| unknown_topic(name))?;
        let t = image
            .topic_by_name(&topic)
            .ok_or_else(|| unknown_topic(name))?;
        let overrides = image.configs(&ConfigResource::Topic(topic.clone()));
        let mut partitions = Vec::new();
        for (&p, reg) in &t.partitions {
            partitions.push(self.partition_state(&topic, p, reg).await);
        }
        Ok(TopicDescription {
            topic: summary(t),
            partitions,
            configs: {
                let defaults = self.config.topic_defaults();
                topic_config(&image, &defaults, &topic).entries(&defaults, &overrides)
            },
        })
    }

    async fn partition_state(
        &self,
        topic: &TopicName,
        p: PartitionId,
        reg: &PartitionRegistration,
    ) -> PartitionState {
        let mut state = PartitionState {
            partition: p,
            leader: reg.has_leader().then_some(reg.leader),
            leader_epoch: reg.leader_epoch,
            replicas: reg.replicas.clone(),
            isr: reg.isr.clone(),
            local: None,
            error: (!reg.has_leader()).then(|| {
                KafkaError::new(
                    ErrorCode::LeaderNotAvailable,
                    format!("{topic}-{p} has no leader"),
                )
            }),
        };
        let slot = self
            .read_state()
            .partitions
            .get(&TopicPartition::new(topic.clone(), p))
            .map(|s| match s {
                Slot::Online(part) => Ok(Arc::clone(part)),
                Slot::Offline { error, .. } => Err(error.clone()),
            });
        match slot {
            Some(Ok(part)) => {
                let (start, hw, end, size) = part.offsets().await;
                state.local = Some(LocalReplica {
                    log_start_offset: start,
                    high_watermark: hw,
                    log_end_offset: end,
                    size_bytes: size,
                    durable_offset: part.durable_end(),
                });
            }
            Some(Err(e)) if reg.leader == self.config.node_id => state.error = Some(e),
            _ => {}
        }
        state
    }

    /// Topic metadata (`topics` empty: all), as (name, summary or error) and states.
    pub async fn metadata(
        &self,
        topics: &[String],
    ) -> (
        Vec<(String, Result<TopicSummary, KafkaError>)>,
        Vec<(TopicName, Vec<PartitionState>)>,
    ) {
        let image = self.image();
        let names: Vec<String> = if topics.is_empty() {
            image.topics().map(|t| t.name.to_string()).collect()
        } else {
            topics.to_vec()
        };
        let mut summaries = Vec::new();
        let mut states = Vec::new();
        for name in names {
            let valid = match TopicName::new(name.clone()) {
                Ok(n) => n,
                Err(e) => {
                    // Kafka: INVALID_TOPIC_EXCEPTION, so clients fail such a topic at once
                    // instead of waiting for it to appear.
                    let e = KafkaError::new(
                        ErrorCode::InvalidTopicException,
                        format!("'{name}' is not a valid topic name: {e}"),
                    );
                    summaries.push((name, Err(e)));
                    continue;
                }
            };
            match image.topic_by_name(&valid) {
                Some(t) => {
                    let mut ps = Vec::new();
                    for (&p, reg) in &t.partitions {
                        ps.push(self.partition_state(&t.name, p, reg).await);
                    }
                    summaries.push((name, Ok(summary(t))));
                    states.push((t.name.clone(), ps));
                }
                None => summaries.push((name.clone(), Err(unknown_topic(&name)))),
            }
        }
        (summaries, states)
    }

    /// Tries again, once a second, to open the logs of partitions that could not be opened
    /// and whose backoff has passed (the cause may be gone: file descriptors freed, a
    /// disk remounted), until `shutdown` fires.
    pub async fn run_offline_retries(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = Instant::now();
            let due = self
                .read_state()
                .partitions
                .values()
                .any(|s| matches!(s, Slot::Offline { retry_at, .. } if *retry_at <= now));
            if due {
                let this = Arc::clone(&self);
                if let Err(e) = tokio::task::spawn_blocking(move || this.reapply_image()).await {
                    tracing::warn!(error = %e, "retrying offline partitions failed");
                }
            }
        }
    }

    /// The logs' timers, checked every 100 ms until `shutdown` fires: `flush.ms` fsyncs
    /// the logs of topics that set it once their unsynced data has waited that long, and
    /// `file.delete.delay.ms` unlinks retired segment files once they have waited that
    /// long.
    pub async fn run_log_timers(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            for p in self.online() {
                if let Err(e) = p.flush_if_due(crate::now_ms()).await {
                    tracing::warn!(partition = %p.tp, error = %e, "flush.ms fsync failed");
                }
                match p.purge_retired_if_due().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::debug!(partition = %p.tp, files = n, "unlinked retired segment files")
                    }
                    Err(e) => {
                        tracing::warn!(partition = %p.tp, error = %e, "cannot unlink retired segment files")
                    }
                }
            }
        }
    }

    /// The dynamic broker configs in effect here (this broker's over the cluster-wide
    /// ones); `None` fields leave the static setting in effect.
    pub fn dynamic_config(&self) -> DynamicBrokerConfig {
        let image = self.image();
        let (config, skipped) = DynamicBrokerConfig::layered(
            &image.configs(&ConfigResource::Cluster),
            &image.configs(&ConfigResource::Broker(self.config.node_id)),
        );
        for e in skipped {
            tracing::warn!(error = %e, "invalid dynamic broker config in metadata; ignored");
        }
        config
    }

    /// `log.retention.check.interval.ms` in effect (dynamic, or static), at least 100 ms.
    fn retention_check_interval(&self) -> Duration {
        let ms = self
            .dynamic_config()
            .log_retention_check_interval_ms
            .unwrap_or(self.config.retention_check_interval_ms);
        Duration::from_millis(ms.max(100))
    }

    /// Runs retention, then compaction of compacted topics and producer-id expiry, every
    /// `log.retention.check.interval.ms` (read again after each run: it is dynamic) until
    /// `shutdown` fires.
    pub async fn run_retention(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut last_run = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => return,
            }
            if last_run.elapsed() < self.retention_check_interval() {
                continue;
            }
            last_run = Instant::now();
            for p in self.online() {
                match p.enforce_retention().await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(partition = %p.tp, segments = n, "retention deleted segments")
                    }
                    Err(e) => tracing::warn!(partition = %p.tp, error = %e, "retention failed"),
                }
                if let Err(e) = p.compact().await {
                    tracing::warn!(partition = %p.tp, error = %e, "compaction failed");
                }
                let expired = p
                    .expire_producers(self.config.producer_id_expiration_ms)
                    .await;
                if expired > 0 {
                    tracing::info!(partition = %p.tp, producers = expired, "expired idle producer ids");
                }
            }
        }
    }
}

fn summary(t: &TopicImage) -> TopicSummary {
    TopicSummary {
        name: t.name.clone(),
        id: t.id,
        partitions: t.partitions.len() as i32,
        replication_factor: t
            .partitions
            .values()
            .next()
            .map_or(0, |p| p.replicas.len() as i32),
    }
}

pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Removes directories left by a deletion interrupted by a crash.
fn remove_deleted_dirs(data: &Path) {
    if let Ok(entries) = std::fs::read_dir(data) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with("-delete") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests;
