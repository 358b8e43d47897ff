//! One hosted partition: its log behind a lock, its group commit, its role (leader or
//! follower, from the metadata image) and, as leader, its followers' progress and the
//! high watermark.
//!
//! Invariants (DESIGN §5.1):
//! - the leader's high watermark is the minimum log end offset over the ISR, advances only
//!   while the ISR has at least `min.insync.replicas` members (KIP-966), and never moves
//!   back; a follower's is min(leader's, own log end);
//! - role changes and replicated appends take the log lock first, then the role lock, so
//!   a follower append can never land after this replica became leader (or followed a
//!   newer epoch);
//! - a follower fetches only after it truncated to the leader's history for the current
//!   leader epoch (`synced_epoch`).
//!
//! The high-watermark and ISR decisions themselves are the pure functions of `crate::isr`;
//! this module reads the clock at its callers' edge and applies what they decide. Long-polls
//! watch one partition at a time: `watch_changes` (high watermark, ISR, role) for consumers,
//! `watch_appends` for followers.
//!
//! The log's file I/O runs under a `std::sync::Mutex`, held for one append or read at a
//! time; fsyncs happen outside it through `GroupCommit`. It runs on the blocking pool,
//! except page-cache work taken on the async worker while the lock is free: a small
//! append that cannot fsync (`append_is_light`), a replica read of records appended since
//! the follower's previous fetch. Nothing on the worker waits for the log lock, except
//! in the narrow window between a `log_is_free` check and the work it allows. Nor does it
//! wait for the disk: the reservation of disk blocks ahead of the appends runs on the
//! blocking pool, under the log lock (`reserve_when_due`). A dropped
//! partition closes its files on the blocking pool too: the last reference to a deleted
//! one may go on a worker, and closing a deleted file frees its page cache.

use crate::error::kafka_error;
use crate::isr::{self, FollowerState, IsrDecision, IsrTiming, LeaderView};
use kavka_log::{AppendInfo, FetchData, FlushPolicy, GroupCommit, LogConfig, PartitionLog};
use kavka_metadata::{PartitionRegistration, TopicId};
use kavka_model::logs::ActiveProducer;
use kavka_model::{BrokerId, ErrorCode, KafkaError, LeaderEpoch, Offset, TopicPartition};
use kavka_record::CheckedBatches;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What a replica fetch told a follower of its leader's log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct LeaderPosition {
    pub high_watermark: Offset,
    pub log_start: Offset,
}

/// How often a scrape tries the log lock before it leaves the log's fields out.
const LOG_LOCK_TRIES_FOR_STATS: usize = 1000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// Not yet assigned by an image, or the partition has no leader.
    None,
    Leader,
    Follower(BrokerId),
}

#[derive(Debug)]
struct ReplicaState {
    role: Role,
    leader_epoch: LeaderEpoch,
    partition_epoch: i32,
    replicas: Vec<BrokerId>,
    /// Replicas a reassignment is adding: their replication is throttled.
    adding: Vec<BrokerId>,
    isr: Vec<BrokerId>,
    min_isr: usize,
    followers: HashMap<BrokerId, FollowerState>,
    /// An ISR change sent to the controller and not yet seen in metadata.
    pending_isr: Option<(Vec<BrokerId>, Instant)>,
    /// A newer leader epoch learned from a follower: leadership is lost, even if the
    /// metadata has not said so yet.
    stale: bool,
}

/// What a read saw, with the partition's offsets at that moment.
pub(crate) struct ReadResult {
    pub data: FetchData,
    pub high_watermark: Offset,
}

/// A follower's view of where an epoch ends in the leader's log.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EpochEnd {
    pub epoch: LeaderEpoch,
    pub end_offset: Offset,
}

#[derive(Debug)]
pub(crate) struct Partition {
    pub tp: TopicPartition,
    pub topic_id: TopicId,
    me: BrokerId,
    log: Mutex<PartitionLog>,
    commit: GroupCommit,
    /// The topic's `flush.ms` (`i64::MAX`: none), read without the log lock by the flusher.
    flush_ms: AtomicI64,
    /// The topic's `flush.messages` (`i64::MAX`: none), read without the log lock to
    /// decide whether an append may run inline.
    flush_messages: AtomicI64,
    /// When the log was last fsynced (or found to have nothing to fsync), ms since epoch.
    flushed_at_ms: AtomicI64,
    state: Mutex<ReplicaState>,
    high_watermark: AtomicI64,
    /// As follower: the leader's high watermark in its last fetch answer (-1: none yet),
    /// for the replica fetcher lag metric.
    leader_high_watermark: AtomicI64,
    /// The leader epoch this follower last truncated for (-1: never).
    synced_epoch: AtomicI32,
    /// Bumped on every high watermark, ISR or role change: acks=all waiters and consumer
    /// long-polls on this partition watch it.
    changes: watch::Sender<u64>,
    /// Bumped after every append as leader: replica long-polls on this partition watch it.
    appended: watch::Sender<u64>,
    /// Reads served (consumer and replica), for tests of who a long-poll re-reads.
    #[cfg(test)]
    pub(crate) reads: std::sync::atomic::AtomicU64,
    /// A storage error on append was logged and no append has succeeded since: the next
    /// ones are answered but not logged again.
    storage_error_logged: AtomicBool,
    /// A reservation of the log's disk blocks ahead of its appends is queued or running
    /// on the blocking pool (`reserve_when_due`: one at a time).
    reserving: AtomicBool,
}

impl Partition {
    pub(crate) fn open(
        tp: TopicPartition,
        topic_id: TopicId,
        me: BrokerId,
        dir: &std::path::Path,
        config: LogConfig,
        checkpointed_hw: Option<Offset>,
    ) -> Result<Self, KafkaError> {
        let (flush_ms, flush_messages) = (config.flush.ms, config.flush.messages);
        let log = PartitionLog::open(dir, config).map_err(kafka_error)?;
        let end = log.log_end_offset();
        let hw = checkpointed_hw.unwrap_or(log.log_start_offset()).min(end);
        Ok(Self {
            tp,
            topic_id,
            me,
            commit: GroupCommit::default(),
            flush_ms: AtomicI64::new(flush_ms),
            flush_messages: AtomicI64::new(flush_messages),
            flushed_at_ms: AtomicI64::new(crate::now_ms()),
            state: Mutex::new(ReplicaState {
                role: Role::None,
                leader_epoch: LeaderEpoch(-1),
                partition_epoch: -1,
                replicas: vec![],
                adding: vec![],
                isr: vec![],
                min_isr: 1,
                followers: HashMap::new(),
                pending_isr: None,
                stale: false,
            }),
            high_watermark: AtomicI64::new(hw.0.max(0)),
            leader_high_watermark: AtomicI64::new(-1),
            synced_epoch: AtomicI32::new(-1),
            changes: watch::channel(0).0,
            appended: watch::channel(0).0,
            #[cfg(test)]
            reads: std::sync::atomic::AtomicU64::new(0),
            storage_error_logged: AtomicBool::new(false),
            reserving: AtomicBool::new(false),
            log: Mutex::new(log),
        })
    }

    fn lock(&self) -> MutexGuard<'_, PartitionLog> {
        // A panic while holding the lock leaves the log as consistent as a crash would.
        self.log.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The log lock if nobody holds it (a compaction, a cold read or an fsync may hold it
    /// for long): what inline work on the async worker takes, else it hands off.
    fn try_lock(&self) -> Option<MutexGuard<'_, PartitionLog>> {
        match self.log.try_lock() {
            Ok(log) => Some(log),
            Err(std::sync::TryLockError::Poisoned(p)) => Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) => None,
        }
    }

    /// Whether the log lock is free right now: a hint for work that takes it later on
    /// the async worker (it may be taken meanwhile; the holders keep it briefly).
    pub(crate) fn log_is_free(&self) -> bool {
        self.try_lock().is_some()
    }

    fn state(&self) -> MutexGuard<'_, ReplicaState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Changes of the high watermark, ISR or role (what a consumer long-poll waits for).
    /// Subscribe before reading, so a change between the read and the wait is not lost.
    pub(crate) fn watch_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Appends as leader (what a replica long-poll waits for); subscribe before reading.
    pub(crate) fn watch_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Applies the partition's registration from a new image (blocking: takes the log
    /// lock). Returns the role it now has.
    pub(crate) fn apply_registration(
        &self,
        reg: &PartitionRegistration,
        config: LogConfig,
        min_isr: usize,
    ) -> Role {
        let now = Instant::now();
        let mut log = self.lock();
        if *log.config() != config {
            let (flush_ms, flush_messages) = (config.flush.ms, config.flush.messages);
            if let Err(e) = log.set_config(config) {
                // The old configs stay (so nothing unsynced is claimed durable); the next
                // image applied tries again.
                tracing::error!(partition = %self.tp, error = %e, "fsync of sealed segments for the new flush policy failed; the topic's configs wait");
            } else {
                self.flush_ms.store(flush_ms, Ordering::Relaxed);
                self.flush_messages.store(flush_messages, Ordering::Relaxed);
            }
        }
        let mut st = self.state();
        let role = if reg.leader == self.me {
            Role::Leader
        } else if reg.has_leader() {
            Role::Follower(reg.leader)
        } else {
            Role::None
        };
        let new_epoch = role != st.role || reg.leader_epoch != st.leader_epoch;
        if new_epoch {
            tracing::info!(partition = %self.tp, ?role, epoch = %reg.leader_epoch, "replica role");
            st.followers.clear();
            st.stale = false;
            if role == Role::Leader {
                // Kafka: every replica gets a full lag window to show up.
                for &b in reg.replicas.iter().filter(|&&b| b != self.me) {
                    st.followers.insert(b, FollowerState::new(now));
                }
            }
        }
        // A replica a reassignment removed is no longer followed (nor proposed for the ISR).
        st.followers.retain(|b, _| reg.replicas.contains(b));
        st.role = role.clone();
        st.leader_epoch = reg.leader_epoch;
        if st.partition_epoch != reg.partition_epoch {
            st.pending_isr = None;
        }
        st.partition_epoch = reg.partition_epoch;
        st.replicas = reg.replicas.clone();
        st.adding = reg.adding_replicas.clone();
        st.isr = reg.isr.clone();
        st.min_isr = min_isr;
        if role == Role::Leader {
            self.advance_hw(&log, &st);
        }
        drop(st);
        drop(log);
        self.changed();
        role
    }

    /// What the metrics show of this replica, read under the log lock then the role lock
    /// (the module's lock order); for scrape time, off the async runtime. A log held by a
    /// long operation (compaction, a large read) is not waited for: its fields are left
    /// out (`log_known` false) and the role's are still read.
    pub(crate) fn stats(&self) -> crate::metrics::PartitionStats {
        // Appends hold the log for microseconds: a few tries see it free.
        let mut log = None;
        for _ in 0..LOG_LOCK_TRIES_FOR_STATS {
            match self.log.try_lock() {
                Ok(l) => {
                    log = Some(l);
                    break;
                }
                Err(std::sync::TryLockError::Poisoned(p)) => {
                    log = Some(p.into_inner());
                    break;
                }
                Err(std::sync::TryLockError::WouldBlock) => std::thread::yield_now(),
            }
        }
        let st = self.state();
        let mut stats = crate::metrics::PartitionStats {
            leader: st.role == Role::Leader && !st.stale,
            follower: matches!(st.role, Role::Follower(_)),
            replicas: st.replicas.len(),
            isr: st.isr.len(),
            min_isr: st.min_isr,
            high_watermark: self.high_watermark().0,
            leader_high_watermark: self.leader_high_watermark.load(Ordering::Relaxed),
            ..Default::default()
        };
        if let Some(log) = log {
            stats.log_known = true;
            stats.log_start_offset = log.log_start_offset().0;
            stats.log_end_offset = log.log_end_offset().0;
            stats.size_bytes = log.size_bytes();
            stats.segments = log.segment_count();
            stats.producers = log.producer_count();
        }
        stats
    }

    pub(crate) fn log_config(&self) -> LogConfig {
        self.lock().config().clone()
    }

    pub(crate) fn high_watermark(&self) -> Offset {
        Offset(self.high_watermark.load(Ordering::Acquire))
    }

    pub(crate) fn role(&self) -> (Role, LeaderEpoch) {
        let st = self.state();
        (st.role.clone(), st.leader_epoch)
    }

    /// What the leader knows, for the decisions of `crate::isr`.
    fn leader_view<'a>(&self, st: &'a ReplicaState) -> LeaderView<'a> {
        LeaderView {
            me: self.me,
            isr: &st.isr,
            min_isr: st.min_isr,
            high_watermark: self.high_watermark(),
            followers: &st.followers,
        }
    }

    /// As leader: moves the high watermark to what `isr::high_watermark` decides.
    fn advance_hw(&self, log: &PartitionLog, st: &ReplicaState) {
        if st.role != Role::Leader {
            return;
        }
        if let Some(hw) = isr::high_watermark(&self.leader_view(st), log.log_end_offset()) {
            // Under the log lock, so no other writer of the mark runs meanwhile; the max
            // keeps it monotonic whatever.
            let prev = self.high_watermark.fetch_max(hw.0, Ordering::AcqRel);
            if hw.0 > prev {
                self.changed();
            }
        }
    }

    /// Checks this replica may take a produce: it leads, its leadership is not known to
    /// be stale, and with acks=all the ISR is at least `min.insync.replicas`.
    fn check_leader(&self, st: &ReplicaState, acks_all: bool) -> Result<(), KafkaError> {
        if st.role != Role::Leader || st.stale {
            return Err(KafkaError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "broker {} no longer leads {} (epoch {})",
                    self.me, self.tp, st.leader_epoch
                ),
            ));
        }
        if acks_all && st.isr.len() < st.min_isr {
            return Err(KafkaError::new(
                ErrorCode::NotEnoughReplicas,
                format!(
                    "{}: ISR {:?} is smaller than min.insync.replicas={}",
                    self.tp, st.isr, st.min_isr
                ),
            ));
        }
        Ok(())
    }

    /// Appends producer batches as leader; with `fsync` durability, returns only once an
    /// fsync covers them.
    pub(crate) async fn append(
        self: &Arc<Self>,
        records: CheckedBatches,
        log_append_time: Option<i64>,
        acks_all: bool,
    ) -> Result<(AppendInfo, LeaderEpoch, Offset), KafkaError> {
        let result = self.append_to_log(records, log_append_time, acks_all).await;
        if let Ok((info, ..)) = &result
            && info.duplicate
        {
            metrics::counter!("kavka_producer_duplicate_batches_total").increment(1);
        }
        match &result {
            Err(e) if e.code == ErrorCode::KafkaStorageError => {
                if !self.storage_error_logged.swap(true, Ordering::Relaxed) {
                    tracing::error!(partition = %self.tp, error = %e, "append failed on storage (logged once until an append succeeds)");
                }
            }
            Ok(_) => self.storage_error_logged.store(false, Ordering::Relaxed),
            Err(_) => {}
        }
        result
    }

    /// Appends as leader; answers the append, the leader epoch it was made in and the
    /// log start offset after it. Small appends that cannot fsync run right here on the
    /// async worker when the log lock is free: they only copy into the page cache, and a
    /// hand-off to the blocking pool and back would cost more than the copy (two thread
    /// wake-ups per append). The rest, and any append that would wait for the lock, go to
    /// the blocking pool.
    async fn append_to_log(
        self: &Arc<Self>,
        records: CheckedBatches,
        log_append_time: Option<i64>,
        acks_all: bool,
    ) -> Result<(AppendInfo, LeaderEpoch, Offset), KafkaError> {
        if self.append_is_light(records.len())
            && let Some(log) = self.try_lock()
        {
            return self.append_locked(log, records, log_append_time, acks_all);
        }
        let this = Arc::clone(self);
        blocking(move || {
            let log = this.lock();
            this.append_locked(log, records, log_append_time, acks_all)
        })
        .await
    }

    fn append_locked(
        self: &Arc<Self>,
        mut log: MutexGuard<'_, PartitionLog>,
        records: CheckedBatches,
        log_append_time: Option<i64>,
        acks_all: bool,
    ) -> Result<(AppendInfo, LeaderEpoch, Offset), KafkaError> {
        let (info, epoch, flush, log_start) = {
            let st = self.state();
            self.check_leader(&st, acks_all)?;
            let info = log
                .append_checked_as_leader(
                    records,
                    st.leader_epoch,
                    log_append_time,
                    crate::now_ms(),
                )
                .map_err(kafka_error)?;
            self.advance_hw(&log, &st);
            // The log keeps what the in-sync followers have yet to fetch (none: nothing).
            log.trim_tail(self.high_watermark());
            (
                info,
                st.leader_epoch,
                log.config().flush,
                log.log_start_offset(),
            )
        };
        self.reserve_when_due(&mut log);
        drop(log);
        self.appended.send_modify(|n| *n = n.wrapping_add(1));
        // flush.messages: 1 syncs every append before its answer (group commit);
        // N syncs the append that leaves N messages unsynced.
        let end = info.last_offset.next();
        if flush.due_by_count(end.0 - self.commit.durable_end().0) {
            self.sync_to(end)?;
        }
        Ok((info, epoch, log_start))
    }

    /// Reserves the log's disk blocks ahead of its appends when it asks
    /// (`PartitionLog::reservation_due`), on the blocking pool: the reservation may wait
    /// for the disk (ext4 reading an allocation bitmap behind the writeback), which would
    /// stop every task of an async worker. It holds the log lock meanwhile, so this
    /// partition's appends find the lock taken and go to the blocking pool as well,
    /// instead of waiting on the worker for the file's inode lock, which the reservation
    /// holds too. Outside a runtime it reserves here.
    fn reserve_when_due(self: &Arc<Self>, log: &mut PartitionLog) {
        if !log.reservation_due() || self.reserving.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            log.reserve_ahead();
            self.reserving.store(false, Ordering::Release);
            return;
        };
        let this = Arc::clone(self);
        rt.spawn_blocking(move || {
            this.lock().reserve_ahead();
            this.reserving.store(false, Ordering::Release);
        });
    }

    /// Whether appending `bytes` is light enough to run on the async worker: small, and
    /// the topic sets neither `flush.messages` (an fsync before the answer) nor
    /// `flush.ms` (an fsync when a segment rolls).
    pub(crate) fn append_is_light(&self, bytes: usize) -> bool {
        bytes <= INLINE_IO_MAX_BYTES
            && self.flush_messages.load(Ordering::Relaxed) == i64::MAX
            && self.flush_ms.load(Ordering::Relaxed) == i64::MAX
    }

    /// Whether `replica`'s fetch at `fetch_offset` reads only what was appended since its
    /// previous fetch (so from the page cache): such reads run on the async worker.
    pub(crate) fn replica_reads_fresh(&self, replica: BrokerId, fetch_offset: Offset) -> bool {
        self.state()
            .followers
            .get(&replica)
            .is_some_and(|f| f.reads_fresh(fetch_offset))
    }

    /// acks=all: waits until the high watermark passes `last`, the leadership of `epoch`
    /// ends, or the ISR shrinks below the minimum; `timeout` (the request's) ends at
    /// `deadline`, fixed when the records were appended.
    pub(crate) async fn wait_replicated(
        &self,
        last: Offset,
        epoch: LeaderEpoch,
        timeout: Duration,
        deadline: tokio::time::Instant,
    ) -> Result<(), KafkaError> {
        let mut rx = self.changes.subscribe();
        let wait = async {
            loop {
                rx.mark_unchanged();
                {
                    let st = self.state();
                    if st.role != Role::Leader || st.stale || st.leader_epoch != epoch {
                        return Err(KafkaError::new(
                            ErrorCode::NotLeaderOrFollower,
                            format!(
                                "broker {} lost the leadership of {} before the records were replicated",
                                self.me, self.tp
                            ),
                        ));
                    }
                    if self.high_watermark() > last {
                        return Ok(());
                    }
                    if st.isr.len() < st.min_isr {
                        return Err(KafkaError::new(
                            ErrorCode::NotEnoughReplicasAfterAppend,
                            format!(
                                "{}: the ISR {:?} shrank below min.insync.replicas={} after the append",
                                self.tp, st.isr, st.min_isr
                            ),
                        ));
                    }
                }
                if rx.changed().await.is_err() {
                    return Err(KafkaError::new(
                        ErrorCode::NotLeaderOrFollower,
                        format!("{} is no longer hosted here", self.tp),
                    ));
                }
            }
        };
        tokio::time::timeout_at(deadline, wait)
            .await
            .unwrap_or_else(|_| {
                Err(KafkaError::new(
                    ErrorCode::RequestTimedOut,
                    format!(
                        "{}: records not replicated to the ISR within {} ms",
                        self.tp,
                        timeout.as_millis()
                    ),
                ))
            })
    }

    /// Reads whole batches below the high watermark.
    pub(crate) async fn read(
        self: &Arc<Self>,
        from: Offset,
        max_bytes: usize,
    ) -> Result<ReadResult, KafkaError> {
        let this = Arc::clone(self);
        blocking(move || {
            #[cfg(test)]
            this.reads.fetch_add(1, Ordering::Relaxed);
            let hw = this.high_watermark();
            let data = this.lock().read(from, max_bytes, hw).map_err(kafka_error)?;
            Ok(ReadResult {
                data,
                high_watermark: hw,
            })
        })
        .await
    }

    /// Leader side of a replica fetch: checks the follower and its epoch, records its
    /// progress (which may advance the high watermark), and reads up to the log end.
    pub(crate) fn replica_read(
        &self,
        replica: BrokerId,
        fetch_offset: Offset,
        current_epoch: LeaderEpoch,
        max_bytes: usize,
        now: Instant,
    ) -> Result<ReadResult, KafkaError> {
        #[cfg(test)]
        self.reads.fetch_add(1, Ordering::Relaxed);
        let mut log = self.lock();
        let mut st = self.state();
        if st.role != Role::Leader {
            return Err(KafkaError::new(
                ErrorCode::NotLeaderOrFollower,
                format!("broker {} does not lead {}", self.me, self.tp),
            ));
        }
        if current_epoch < st.leader_epoch {
            return Err(KafkaError::new(
                ErrorCode::FencedLeaderEpoch,
                format!(
                    "{}: follower epoch {current_epoch} is older than the leader's {}",
                    self.tp, st.leader_epoch
                ),
            ));
        }
        if current_epoch > st.leader_epoch {
            // The follower saw a newer epoch: this leadership is over.
            st.stale = true;
            drop(st);
            self.changed();
            return Err(KafkaError::new(
                ErrorCode::UnknownLeaderEpoch,
                format!(
                    "{}: follower epoch {current_epoch} is newer than this leader's",
                    self.tp
                ),
            ));
        }
        if !st.replicas.contains(&replica) || replica == self.me {
            return Err(KafkaError::new(
                ErrorCode::NotLeaderOrFollower,
                format!(
                    "broker {replica} is not a follower of {} (replicas {:?})",
                    self.tp, st.replicas
                ),
            ));
        }
        let leo = log.log_end_offset();
        if fetch_offset > leo || fetch_offset < log.log_start_offset() {
            return Err(KafkaError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "{}: fetch offset {fetch_offset} is outside the leader's log [{}, {leo}]",
                    self.tp,
                    log.log_start_offset()
                ),
            ));
        }
        st.followers
            .entry(replica)
            .or_insert_with(|| FollowerState::new(now))
            .record_fetch(fetch_offset, leo, now);
        self.advance_hw(&log, &st);
        drop(st);
        log.trim_tail(self.high_watermark());
        let data = if fetch_offset == leo {
            FetchData {
                records: Default::default(),
                log_start_offset: log.log_start_offset(),
                log_end_offset: leo,
            }
        } else {
            log.read(fetch_offset, max_bytes, leo)
                .map_err(kafka_error)?
        };
        Ok(ReadResult {
            data,
            high_watermark: self.high_watermark(),
        })
    }

    /// As leader: the ISR change to propose now, if any (`isr::isr_decision`), noted as
    /// pending; with the leader and partition epochs it is proposed in.
    pub(crate) fn isr_proposal(
        &self,
        timing: &IsrTiming,
        eligible: &dyn Fn(BrokerId) -> bool,
        now: Instant,
    ) -> Option<(IsrDecision, LeaderEpoch, i32)> {
        let mut st = self.state();
        if st.role != Role::Leader || st.stale {
            return None;
        }
        let view = self.leader_view(&st);
        let decision = isr::isr_decision(
            &view,
            st.pending_isr.as_ref().map(|(_, at)| *at),
            now,
            timing,
            eligible,
        );
        let isr = match &decision {
            IsrDecision::None => return None,
            IsrDecision::Shrink(isr) | IsrDecision::Expand(isr) => isr.clone(),
        };
        st.pending_isr = Some((isr, now));
        Some((decision, st.leader_epoch, st.partition_epoch))
    }

    /// The controller refused or failed an ISR change: allow a new proposal.
    pub(crate) fn clear_pending_isr(&self) {
        self.state().pending_isr = None;
    }

    /// Whether this follower must truncate before fetching in its current epoch.
    pub(crate) fn needs_truncation(&self) -> bool {
        let st = self.state();
        matches!(st.role, Role::Follower(_))
            && self.synced_epoch.load(Ordering::Acquire) != st.leader_epoch.0
    }

    /// The follower's latest epoch and its end in the follower's own log.
    pub(crate) fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.lock().epochs().latest_epoch()
    }

    /// KIP-279 on this replica's own history.
    pub(crate) fn epoch_end(&self, requested: LeaderEpoch) -> Option<EpochEnd> {
        let log = self.lock();
        log.epochs()
            .end_offset_for(requested, log.log_end_offset())
            .map(|(epoch, end_offset)| EpochEnd { epoch, end_offset })
    }

    /// As follower in `epoch`: truncates the log to `offset` (the divergent suffix).
    pub(crate) fn truncate_as_follower(
        &self,
        offset: Offset,
        epoch: LeaderEpoch,
    ) -> Result<(), KafkaError> {
        let mut log = self.lock_as_follower(epoch)?;
        if offset < log.log_end_offset() {
            tracing::warn!(partition = %self.tp, from = %log.log_end_offset(), to = %offset, "truncating divergent suffix");
            log.truncate_to(offset).map_err(kafka_error)?;
            let end = log.log_end_offset();
            self.commit.truncated(end);
            self.high_watermark.fetch_min(end.0, Ordering::AcqRel);
        }
        Ok(())
    }

    /// The log, if this replica still follows in `epoch` (checked under the log lock).
    fn lock_as_follower(
        &self,
        epoch: LeaderEpoch,
    ) -> Result<MutexGuard<'_, PartitionLog>, KafkaError> {
        let log = self.lock();
        let st = self.state();
        if !matches!(st.role, Role::Follower(_)) || st.leader_epoch != epoch {
            return Err(stale_follower(&self.tp));
        }
        Ok(log)
    }

    /// Whether a reassignment is adding `replica` to this partition (its replication is
    /// throttled: [`crate::throttle`]).
    pub(crate) fn is_moving_in(&self, replica: BrokerId) -> bool {
        self.state().adding.contains(&replica)
    }

    /// This replica's log start and end offsets.
    pub(crate) fn log_bounds(&self) -> (Offset, Offset) {
        let log = self.lock();
        (log.log_start_offset(), log.log_end_offset())
    }

    /// As follower in `epoch`, behind a leader whose log now starts at `start` (retention
    /// deleted what we would fetch next): drops the whole log and starts empty there, as
    /// Kafka's follower does. Nothing is lost: everything below `start` is gone on the
    /// leader too, and a follower that far behind is not in the ISR.
    pub(crate) fn restart_at_as_follower(
        &self,
        start: Offset,
        epoch: LeaderEpoch,
    ) -> Result<(), KafkaError> {
        let mut log = self.lock_as_follower(epoch)?;
        if log.log_end_offset() >= start {
            return Ok(());
        }
        tracing::warn!(partition = %self.tp, log_end = %log.log_end_offset(), leader_log_start = %start, "behind the leader's log start: starting the log again there");
        log.truncate_fully_and_start_at(start)
            .map_err(kafka_error)?;
        // Nothing below `start` is left to be durable; what comes is fsynced as appended.
        self.commit.truncated(start);
        self.high_watermark.store(start.0, Ordering::Release);
        Ok(())
    }

    /// As follower in `epoch`: truncation for it is done.
    pub(crate) fn mark_synced(&self, epoch: LeaderEpoch) {
        self.synced_epoch.store(epoch.0, Ordering::Release);
    }

    /// As follower in `epoch`: the offsets to fetch from (log end, last batch's epoch).
    pub(crate) fn fetch_position(&self) -> (Offset, i32) {
        let log = self.lock();
        (
            log.log_end_offset(),
            log.epochs().latest_epoch().map_or(-1, |e| e.0),
        )
    }

    /// As follower in `epoch`: appends batches replicated from the leader, as received,
    /// and takes min(leader's high watermark, own log end) as the high watermark.
    pub(crate) fn append_replicated(
        self: &Arc<Self>,
        records: &[u8],
        leader: LeaderPosition,
        epoch: LeaderEpoch,
    ) -> Result<(), KafkaError> {
        let (end, flush) = {
            let mut log = self.lock_as_follower(epoch)?;
            if !records.is_empty() {
                log.append_as_follower(records, crate::now_ms())
                    .map_err(kafka_error)?;
            }
            let end = log.log_end_offset();
            self.leader_high_watermark
                .store(leader.high_watermark.0, Ordering::Relaxed);
            let hw = leader.high_watermark.min(end);
            if hw.0 > self.high_watermark.fetch_max(hw.0, Ordering::AcqRel) {
                self.changed();
            }
            // The leader's log start (DeleteRecords, retention) is ours too, as far as
            // our high watermark: records below it are gone on the leader.
            let leader_start = leader.log_start.min(hw);
            if leader_start > log.log_start_offset() {
                log.increment_log_start(leader_start).map_err(kafka_error)?;
            }
            self.reserve_when_due(&mut log);
            (end, log.config().flush)
        };
        // flush.messages holds on followers too, before their next fetch tells the
        // leader they have these offsets (so an acks=all write is on every ISR's disk).
        if flush.due_by_count(end.0 - self.commit.durable_end().0) {
            self.sync_to(end)?;
        }
        Ok(())
    }

    /// As leader: deletes the records below `before` (`None`: below the high
    /// watermark), Kafka's DeleteRecords. Only committed records can be deleted: past the
    /// high watermark is OFFSET_OUT_OF_RANGE. Returns the log's new start; followers take
    /// it from their next fetch.
    pub(crate) async fn delete_records(
        self: &Arc<Self>,
        before: Option<Offset>,
    ) -> Result<Offset, KafkaError> {
        self.check_leader(&self.state(), false)?;
        let hw = self.high_watermark();
        let to = before.unwrap_or(hw);
        if to > hw {
            return Err(KafkaError::new(
                ErrorCode::OffsetOutOfRange,
                format!(
                    "cannot delete the records of {} below offset {to}: past the high watermark {hw}",
                    self.tp
                ),
            ));
        }
        let this = Arc::clone(self);
        let start = blocking(move || {
            let mut log = this.lock();
            log.increment_log_start(to).map_err(kafka_error)?;
            Ok(log.log_start_offset())
        })
        .await?;
        self.changed();
        Ok(start)
    }

    /// As leader: the idempotent producers this partition's log knows.
    pub(crate) async fn active_producers(
        self: &Arc<Self>,
    ) -> Result<Vec<ActiveProducer>, KafkaError> {
        self.check_leader(&self.state(), false)?;
        let this = Arc::clone(self);
        blocking(move || Ok(this.lock().active_producers())).await
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

    /// The first record at or after `ts`, or with `None` the first with the largest
    /// timestamp (KIP-734); only records below the high watermark count, as Kafka's.
    pub(crate) async fn offset_for_timestamp(
        self: &Arc<Self>,
        ts: Option<i64>,
    ) -> Result<Option<(Offset, i64)>, KafkaError> {
        let this = Arc::clone(self);
        blocking(move || {
            let hw = this.high_watermark();
            let log = this.lock();
            let found = match ts {
                Some(ts) => log.offset_for_timestamp(ts),
                None => log.offset_of_max_timestamp(),
            };
            Ok(found.map_err(kafka_error)?.filter(|(o, _)| *o < hw))
        })
        .await
    }

    /// Compacts the log below the high watermark if the topic is compacted and dirty
    /// enough. Holds the log for the whole cleaning (reads and appends wait).
    pub(crate) async fn compact(
        self: &Arc<Self>,
    ) -> Result<Option<kavka_log::CompactionStats>, KafkaError> {
        let this = Arc::clone(self);
        blocking(move || {
            let hw = this.high_watermark();
            this.lock()
                .compact(crate::now_ms(), hw)
                .map_err(kafka_error)
        })
        .await
    }

    /// Forgets producers silent for `expiration_ms`; returns how many.
    pub(crate) async fn expire_producers(self: &Arc<Self>, expiration_ms: i64) -> usize {
        let this = Arc::clone(self);
        blocking(move || {
            Ok(this
                .lock()
                .remove_expired_producers(crate::now_ms(), expiration_ms))
        })
        .await
        .unwrap_or(0)
    }

    /// Every offset below this is fsynced.
    pub(crate) fn durable_end(&self) -> Offset {
        self.commit.durable_end()
    }

    /// fsyncs every offset below `end` (shared with concurrent callers) and notes when.
    fn sync_to(&self, end: Offset) -> Result<(), KafkaError> {
        self.commit
            .wait_durable(end, || self.lock().sync_point())
            .map_err(kafka_error)?;
        self.flushed_at_ms.store(crate::now_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// `flush.ms`: fsyncs the log if data has waited unsynced that long since the last
    /// fsync; answers whether it did. Cheap when the topic sets no `flush.ms`.
    pub(crate) async fn flush_if_due(self: &Arc<Self>, now_ms: i64) -> Result<bool, KafkaError> {
        let flush = FlushPolicy {
            messages: i64::MAX,
            ms: self.flush_ms.load(Ordering::Relaxed),
        };
        if !flush.due_by_age(now_ms - self.flushed_at_ms.load(Ordering::Relaxed)) {
            return Ok(false);
        }
        let this = Arc::clone(self);
        blocking(move || {
            let end = this.lock().log_end_offset();
            if this.commit.durable_end() >= end {
                this.flushed_at_ms.store(now_ms, Ordering::Relaxed);
                return Ok(false);
            }
            this.sync_to(end)?;
            Ok(true)
        })
        .await
    }

    /// Unlinks the log's retired segment files whose `file.delete.delay.ms` has passed;
    /// answers how many. Cheap when none is due; skipped while the log is busy.
    pub(crate) async fn purge_retired_if_due(self: &Arc<Self>) -> Result<usize, KafkaError> {
        let due = match self.log.try_lock() {
            Ok(log) => log.next_purge_due(),
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner().next_purge_due(),
            Err(std::sync::TryLockError::WouldBlock) => None,
        };
        if due.is_none_or(|due| due > std::time::Instant::now()) {
            return Ok(0);
        }
        let this = Arc::clone(self);
        blocking(move || {
            this.lock()
                .purge_retired(std::time::Instant::now())
                .map_err(kafka_error)
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

fn stale_follower(tp: &TopicPartition) -> KafkaError {
    KafkaError::new(
        ErrorCode::FencedLeaderEpoch,
        format!("{tp}: the follower's leader epoch changed meanwhile"),
    )
}

/// A partition's files close on the blocking pool when it is dropped inside the runtime.
/// The last reference to a deleted partition may go on an async worker (a replica
/// fetcher's round that still held it), and closing a deleted file frees its page cache:
/// a second or more of kernel time for gigabytes, which would stall every task on that
/// worker. Outside a runtime (or once it shuts down) they close here.
impl Drop for Partition {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let log = self.log.get_mut().unwrap_or_else(|p| p.into_inner());
        let files = log.take_files();
        rt.spawn_blocking(move || drop(files));
    }
}

/// Appends up to this size run inline on the async worker (page-cache copies); larger
/// ones, and any that may fsync, go to the blocking pool.
pub(crate) const INLINE_IO_MAX_BYTES: usize = 1 << 20;

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, KafkaError> + Send + 'static,
) -> Result<T, KafkaError> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        KafkaError::new(
            ErrorCode::UnknownServerError,
            format!("log task failed: {e}"),
        )
    })?
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_model::{PartitionId, TopicName};
    use std::path::Path;

    fn open_files_under(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    fn partition(dir: &Path) -> Partition {
        let tp = TopicPartition::new(TopicName::new("t").unwrap(), PartitionId(0));
        let id = TopicId(uuid::Uuid::from_u128(1));
        Partition::open(tp, id, BrokerId(1), dir, LogConfig::default(), None).unwrap()
    }

    /// A one-partition leader of its own (replicas and ISR: this broker alone).
    fn leader(dir: &Path) -> Arc<Partition> {
        let p = Arc::new(partition(dir));
        let reg = PartitionRegistration {
            replicas: vec![BrokerId(1)],
            isr: vec![BrokerId(1)],
            eligible_leader_replicas: vec![],
            leader: BrokerId(1),
            leader_epoch: LeaderEpoch(0),
            partition_epoch: 0,
            adding_replicas: vec![],
            removing_replicas: vec![],
        };
        assert_eq!(
            p.apply_registration(&reg, LogConfig::default(), 1),
            Role::Leader
        );
        p
    }

    fn one_batch() -> CheckedBatches {
        let record = crate::records::NewRecord {
            key: None,
            value: Some(bytes::Bytes::from_static(&[7; 1000])),
            headers: vec![],
            timestamp_ms: 0,
        };
        let bytes =
            crate::records::build_batch(vec![record], kavka_record::Compression::None).unwrap();
        CheckedBatches::check(bytes).unwrap()
    }

    /// A current-thread runtime whose blocking pool has one thread, which a test can keep
    /// busy to see what waits for it.
    fn one_blocking_thread_runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .max_blocking_threads(1)
            .enable_time()
            .build()
            .unwrap()
    }

    /// Bytes of disk `path` holds, reserved blocks included.
    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    #[test]
    fn an_append_on_the_worker_leaves_the_disk_reservation_to_the_blocking_pool() {
        let rt = one_blocking_thread_runtime();
        let dir = tempfile::tempdir().unwrap();
        let segment = dir.path().join("00000000000000000000.log");
        let (release, held) = std::sync::mpsc::channel::<()>();
        rt.block_on(async {
            let p = leader(dir.path());
            // The pool's one thread is kept busy: whatever the append hands it waits.
            let busy = tokio::task::spawn_blocking(move || held.recv());
            let info = p.append(one_batch(), None, false).await.unwrap();
            assert_eq!(info.0.first_offset, Offset(0));
            let written = std::fs::metadata(&segment).unwrap().len();
            assert!(
                written > 1000,
                "the append ran on the worker: {written} bytes"
            );
            assert!(
                allocated(&segment) < 64 * 1024,
                "the worker reserved nothing ahead: {} bytes allocated",
                allocated(&segment)
            );
            release.send(()).unwrap();
            busy.await.unwrap().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while allocated(&segment) < 1 << 20 {
                assert!(
                    Instant::now() < deadline,
                    "no reservation after 30 s: {} bytes allocated",
                    allocated(&segment)
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // Its length is still the data's: reserved blocks are not records.
            assert_eq!(std::fs::metadata(&segment).unwrap().len(), written);
        });
    }

    #[test]
    fn dropped_outside_a_runtime_its_files_close_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let p = partition(&dir);
        assert!(open_files_under(&dir) > 0);
        drop(p);
        assert_eq!(open_files_under(&dir), 0);
    }

    #[test]
    fn dropped_in_the_runtime_its_files_close_on_the_blocking_pool() {
        let rt = one_blocking_thread_runtime();
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().canonicalize().unwrap();
        let (release, held) = std::sync::mpsc::channel::<()>();
        rt.block_on(async {
            let p = partition(&dir);
            // The pool's one thread is kept busy, so the close waits in its queue.
            let busy = tokio::task::spawn_blocking(move || held.recv());
            drop(p);
            assert!(
                open_files_under(&dir) > 0,
                "the files close on the blocking pool, not on this worker"
            );
            release.send(()).unwrap();
            busy.await.unwrap().unwrap();
            let deadline = Instant::now() + Duration::from_secs(30);
            while open_files_under(&dir) > 0 {
                assert!(Instant::now() < deadline, "files still open after 30 s");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
    }
}
