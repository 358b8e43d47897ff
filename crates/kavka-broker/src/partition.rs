//! One hosted partition: its log behind a lock, its group commit, and its high watermark.
//!
//! Concurrency: the log's file I/O runs on the blocking pool (`spawn_blocking`) under a
//! `std::sync::Mutex`, held for one append or one read at a time. fsyncs happen outside
//! that lock through `GroupCommit`, so appends keep flowing while a flush is in progress.
//! With one replica, the high watermark is the log end after each append.

use crate::error::kafka_error;
use kavka_log::{AppendInfo, FetchData, FlushPolicy, GroupCommit, LogConfig, PartitionLog};
use kavka_metadata::TopicId;
use kavka_model::{ErrorCode, KafkaError, LeaderEpoch, Offset, TopicPartition};
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug)]
pub(crate) struct Partition {
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    log: Mutex<PartitionLog>,
    commit: GroupCommit,
    flush: FlushPolicy,
    /// Leader epoch from the latest metadata image, stamped on appended batches.
    /// (Who leads is read from the image itself.)
    leader_epoch: AtomicI32,
    high_watermark: AtomicI64,
}

/// What a read saw, with the partition's offsets at that moment.
pub(crate) struct ReadResult {
    pub data: FetchData,
    pub high_watermark: Offset,
}

impl Partition {
    pub(crate) fn open(
        tp: TopicPartition,
        topic_id: TopicId,
        dir: &std::path::Path,
        config: LogConfig,
    ) -> Result<Self, KafkaError> {
        let flush = config.flush;
        let log = PartitionLog::open(dir, config).map_err(kafka_error)?;
        let end = log.log_end_offset();
        Ok(Self {
            tp,
            topic_id,
            commit: GroupCommit::default(),
            flush,
            leader_epoch: AtomicI32::new(0),
            high_watermark: AtomicI64::new(end.0),
            log: Mutex::new(log),
        })
    }

    /// Applies the partition's registration from a new image. Blocking (takes the log lock).
    pub(crate) fn update(&self, epoch: LeaderEpoch, config: LogConfig) {
        self.leader_epoch.store(epoch.0, Ordering::Release);
        let mut log = self.lock();
        if *log.config() != config {
            log.set_config(config);
        }
    }

    pub(crate) fn log_config(&self) -> LogConfig {
        self.lock().config().clone()
    }

    fn lock(&self) -> MutexGuard<'_, PartitionLog> {
        // A panic while holding the lock leaves the log as consistent as a crash would.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn high_watermark(&self) -> Offset {
        Offset(self.high_watermark.load(Ordering::Acquire))
    }

    pub(crate) fn leader_epoch(&self) -> LeaderEpoch {
        LeaderEpoch(self.leader_epoch.load(Ordering::Acquire))
    }

    /// Appends producer batches as leader; with `fsync` durability, returns only once an
    /// fsync covers them.
    pub(crate) async fn append(
        self: &Arc<Self>,
        records: Vec<u8>,
        log_append_time: Option<i64>,
    ) -> Result<AppendInfo, KafkaError> {
        let this = Arc::clone(self);
        blocking(move || {
            let info = {
                let mut log = this.lock();
                let info = log
                    .append_as_leader(
                        &records,
                        this.leader_epoch(),
                        log_append_time,
                        crate::now_ms(),
                    )
                    .map_err(kafka_error)?;
                this.high_watermark
                    .fetch_max(log.log_end_offset().0, Ordering::AcqRel);
                info
            };
            if this.flush == FlushPolicy::Fsync {
                this.commit
                    .wait_durable(info.last_offset.next(), || this.lock().sync_point())
                    .map_err(kafka_error)?;
            }
            Ok(info)
        })
        .await
    }

    /// Reads whole batches below the high watermark.
    pub(crate) async fn read(
        self: &Arc<Self>,
        from: Offset,
        max_bytes: usize,
    ) -> Result<ReadResult, KafkaError> {
        let this = Arc::clone(self);
        blocking(move || {
            let hw = this.high_watermark();
            let data = this.lock().read(from, max_bytes, hw).map_err(kafka_error)?;
            Ok(ReadResult {
                data,
                high_watermark: hw,
            })
        })
        .await
    }

    pub(crate) async fn offsets(self: &Arc<Self>) -> (Offset, Offset, Offset, u64) {
        let this = Arc::clone(self);
        blocking(move || {
            let log = this.lock();
            Ok((
                log.log_start_offset(),
                this.high_watermark(),
                log.log_end_offset(),
                log.size_bytes(),
            ))
        })
        .await
        .unwrap_or((Offset(-1), Offset(-1), Offset(-1), 0))
    }

    pub(crate) async fn offset_for_timestamp(
        self: &Arc<Self>,
        ts: i64,
    ) -> Result<Option<(Offset, i64)>, KafkaError> {
        let this = Arc::clone(self);
        blocking(move || {
            let hw = this.high_watermark();
            Ok(this
                .lock()
                .offset_for_timestamp(ts)
                .map_err(kafka_error)?
                .filter(|(o, _)| *o < hw))
        })
        .await
    }

    pub(crate) async fn enforce_retention(self: &Arc<Self>) -> Result<usize, KafkaError> {
        let this = Arc::clone(self);
        blocking(move || {
            this.lock()
                .enforce_retention(crate::now_ms())
                .map_err(kafka_error)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        KafkaError::new(
            ErrorCode::UnknownServerError,
            format!("log task failed: {e}"),
        )
    })?
}
