//! `PartitionLog`: one partition's segments, appends, reads, truncation and retention.

use crate::config::LogConfig;
use crate::durability::{FlushPolicy, SyncPoint};
use crate::epoch::LeaderEpochCache;
use crate::error::{IoContext, LogError};
use crate::producer_snapshot::SnapshotChain;
use crate::producer_state::{Duplicate, ProducerStates};
use crate::retired::RetiredFiles;
use crate::segment::{LogSegment, Opened};
use crate::tail::TailCache;
use bytes::Bytes;
use kavka_model::logs::ActiveProducer;
use kavka_model::{LeaderEpoch, Offset, StoredRecords};
use kavka_record::{
    BatchHeader, BatchRecords, CheckedBatches, batches, set_base_offset, set_log_append_time,
    set_partition_leader_epoch,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// What an append wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub first_offset: Offset,
    pub last_offset: Offset,
    /// Set when the broker stamped the batches with `LogAppendTime`.
    pub log_append_time: Option<i64>,
    pub batch_count: usize,
    /// An idempotent producer's retry: the batches were already at these offsets and
    /// nothing was written.
    pub duplicate: bool,
}

/// Whole batches read from the log, plus where the log starts and ends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FetchData {
    /// The batches, as the buffers they were read or appended in (see `StoredRecords`).
    pub records: StoredRecords,
    pub log_start_offset: Offset,
    pub log_end_offset: Offset,
}

#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// By base offset; the last one is the active segment. Never empty, except after
    /// [`PartitionLog::take_files`], when the log is only dropped.
    pub(crate) segments: BTreeMap<Offset, LogSegment>,
    epochs: LeaderEpochCache,
    /// Idempotent producers as of the log end; their changes count from the end of
    /// `snapshots`.
    producers: ProducerStates,
    /// The producer state persisted as of a segment base (the active one's, unless
    /// writing it failed), linked at each roll.
    snapshots: SnapshotChain,
    /// Segment files removed from the log, unlinked once `file.delete.delay.ms` passed.
    pub(crate) retired: RetiredFiles,
    /// fsyncs of sealed segments and the directory done by the log itself.
    fsyncs: u64,
    /// The log start when DeleteRecords moved it past the first segment's base (records
    /// below it are gone though their segment is not); persisted in [`LOG_START_FILE`].
    start: Offset,
    /// The batches last appended as leader, as written ([`crate::tail`]): reads of what
    /// was just appended are answered from memory.
    pub(crate) tail: TailCache,
}

/// The log start DeleteRecords moved inside the first segment: a version line, then the
/// offset. Without it the log starts at its first segment's base.
pub const LOG_START_FILE: &str = "log-start-offset";
const LOG_START_VERSION: &str = "0";

/// The log start persisted in `dir`, if any; a file that cannot be read or parsed is
/// logged, naming it, and ignored (the deleted records come back into view: nothing is
/// lost, and the next DeleteRecords writes it again).
fn read_log_start(dir: &Path) -> Option<Offset> {
    let path = dir.join(LOG_START_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the log start; the log starts at its first segment");
            return None;
        }
    };
    let mut lines = text.lines();
    match (lines.next(), lines.next().map(str::parse::<i64>)) {
        (Some(LOG_START_VERSION), Some(Ok(offset))) if offset >= 0 => Some(Offset(offset)),
        _ => {
            tracing::warn!(file = %path.display(), "the log start file is not version 0 and an offset; the log starts at its first segment");
            None
        }
    }
}

impl PartitionLog {
    /// Opens (creating if needed) the log in `dir`, recovering the active segment.
    #[tracing::instrument(skip_all, fields(dir = %dir.display()))]
    pub fn open(dir: &Path, config: LogConfig) -> Result<Self, LogError> {
        std::fs::create_dir_all(dir).at(dir)?;
        let mut bases = Vec::new();
        for entry in std::fs::read_dir(dir).at(dir)? {
            let path = entry.at(dir)?.path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if let Some(stem) = name.strip_suffix(".log") {
                let base: i64 = stem.parse().map_err(|_| LogError::Corrupt {
                    path: path.clone(),
                    position: 0,
                    reason: "segment file name is not a base offset".into(),
                })?;
                bases.push(Offset(base));
            } else if name.ends_with(".tmp") || name.ends_with(crate::retired::DELETED_SUFFIX) {
                let _ = std::fs::remove_file(&path);
            } else if name == crate::compaction::WORK_DIR {
                // A cleaning cut short: the segments it had not swapped in are untouched.
                let _ = std::fs::remove_dir_all(&path);
            }
        }
        bases.sort();
        let fsync = config.flush.every_append();
        let mut segments = BTreeMap::new();
        let mut prev_end: Option<(Offset, PathBuf)> = None;
        for (i, &base) in bases.iter().enumerate() {
            let active = i + 1 == bases.len();
            let seg = match LogSegment::open(dir, base, config.index_interval_bytes, active)? {
                Opened::Clean(seg) => seg,
                Opened::TruncatedTail(seg, position, reason) => {
                    tracing::warn!(
                        file = %seg.log_path().display(),
                        position,
                        %reason,
                        "recovered the active segment by truncating its invalid tail"
                    );
                    seg
                }
            };
            if let Some((end, prev_path)) = &prev_end
                && base < *end
            {
                return Err(LogError::Corrupt {
                    path: seg.log_path().to_path_buf(),
                    position: 0,
                    reason: format!(
                        "segment starts at offset {base} but {} ends at {end}",
                        prev_path.display()
                    ),
                });
            }
            prev_end = Some((seg.next_offset(), seg.log_path().to_path_buf()));
            segments.insert(base, seg);
        }
        if segments.is_empty() {
            segments.insert(Offset::ZERO, new_active(dir, Offset::ZERO, &config)?);
        }
        let mut log = Self {
            dir: dir.to_path_buf(),
            epochs: LeaderEpochCache::load(dir, fsync)?,
            config,
            segments,
            producers: ProducerStates::default(),
            snapshots: SnapshotChain::none(dir),
            retired: RetiredFiles::default(),
            fsyncs: 0,
            start: Offset::ZERO,
            tail: TailCache::default(),
        };
        if let Some(stored) = read_log_start(dir) {
            // Never past the end: a log cut back below where records were deleted
            // starts at its end.
            log.start = stored.min(log.log_end_offset());
            log.drop_segments_below_start()?;
        }
        let (start, end) = (log.log_start_offset(), log.log_end_offset());
        log.epochs.truncate_from_end(end)?;
        log.epochs.truncate_from_start(start)?;
        log.load_producers(false)?;
        Ok(log)
    }

    /// Reads the persisted producer state as far as it holds for this log (up to the
    /// active segment's base) and rebuilds the rest from the log. `fresh_chain`: start a
    /// new snapshot chain at the active segment's base whatever was read.
    fn load_producers(&mut self, fresh_chain: bool) -> Result<(), LogError> {
        let active_base = self.active().base_offset;
        let from = match SnapshotChain::load(&self.dir, active_base) {
            Ok(Some(loaded)) => {
                self.snapshots = loaded.chain;
                Some((loaded.at, loaded.states))
            }
            Ok(None) => {
                self.snapshots = SnapshotChain::none(&self.dir);
                None
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the producer state files; rebuilding the state from the log");
                self.snapshots = SnapshotChain::none(&self.dir);
                None
            }
        };
        if fresh_chain {
            self.snapshots.invalidate();
        }
        self.restore_producers(from)
    }

    /// Rebuilds the producer state from `from` (the state as persisted at an offset at or
    /// below the active segment's base; `None`: from the log start) by reading batch
    /// headers to the log end, linking the snapshot chain at the active segment's base on
    /// the way. If that link fails, the state is still rebuilt (its changes count from
    /// the chain's old end) and the error returned.
    fn restore_producers(
        &mut self,
        from: Option<(Offset, ProducerStates)>,
    ) -> Result<(), LogError> {
        let active_base = self.active().base_offset;
        // From the first segment, not a log start DeleteRecords moved inside it: the
        // producers of the batches below that start are still known.
        let (from, mut states) =
            from.unwrap_or_else(|| (self.first().base_offset, ProducerStates::default()));
        assert!(
            from <= active_base,
            "producer state restored from {from}, past the active segment's base {active_base}"
        );
        self.replay_producers(&mut states, from, active_base)?;
        let fsync = self.config.flush.every_append();
        let linked = self.snapshots.link(&mut states, active_base, fsync);
        self.replay_producers(&mut states, active_base, Offset(i64::MAX))?;
        self.producers = states;
        linked
    }

    /// Records in `states` every batch that starts at or past `from` and below `below`.
    fn replay_producers(
        &self,
        states: &mut ProducerStates,
        from: Offset,
        below: Offset,
    ) -> Result<(), LogError> {
        for (&base, seg) in self.segments.range(..below) {
            if seg.next_offset() <= from {
                continue;
            }
            let reader = seg.reader()?;
            let mut pos = if base < from {
                match reader.find_batch(from)? {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            } else {
                0
            };
            while pos < seg.size() {
                let h = reader.header_at(pos)?;
                if h.base_offset >= below.0 {
                    break;
                }
                if h.base_offset >= from.0 {
                    states.record(&h);
                }
                pos += h.size() as u64;
            }
        }
        Ok(())
    }

    /// After a truncation: the state as of the snapshot chain's end still holds if every
    /// batch below that end is still there (the truncation stayed in the active
    /// segment); otherwise the chain's links up to the active base are read back and a
    /// new chain starts there.
    fn restore_producers_after_truncation(&mut self) -> Result<(), LogError> {
        match self.snapshots.end() {
            Some(end) if end <= self.active().base_offset => {
                self.producers.revert_to_persisted();
                let states = std::mem::take(&mut self.producers);
                self.restore_producers(Some((end, states)))
            }
            _ => self.load_producers(true),
        }
    }

    /// How many idempotent producers the partition knows.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// The idempotent producers the partition knows, by id: each one's epoch, last
    /// sequence and last timestamp (Kafka's DescribeProducers).
    pub fn active_producers(&self) -> Vec<ActiveProducer> {
        self.producers
            .entries()
            .into_iter()
            .map(|(id, e)| ActiveProducer {
                producer_id: id,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: (e.last_timestamp >= 0).then_some(e.last_timestamp),
            })
            .collect()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Applies new topic configs. A log that starts fsyncing (its topic had no flush
    /// policy) first fsyncs its sealed segments, which `sync_point` does not cover.
    /// If that fsync fails, the old configs stay (nothing is claimed durable) and the
    /// error is returned, for the caller to try again.
    pub fn set_config(&mut self, config: LogConfig) -> Result<(), LogError> {
        let starts_syncing =
            self.config.flush == FlushPolicy::REPLICATED && config.flush != FlushPolicy::REPLICATED;
        if starts_syncing {
            let active = self.active().base_offset;
            for (base, seg) in &self.segments {
                if *base != active {
                    seg.sync_file()?.sync_data().at(seg.log_path())?;
                }
            }
            sync_dir(&self.dir)?;
            self.fsyncs += 1;
        }
        self.config = config;
        Ok(())
    }

    /// How many times the log fsynced its sealed segments and directory itself (at a roll,
    /// or when it started fsyncing); appends are made durable through `sync_point`.
    pub fn fsyncs(&self) -> u64 {
        self.fsyncs
    }

    pub fn log_start_offset(&self) -> Offset {
        self.start.max(self.first().base_offset)
    }

    /// Moves the log start forward to `to` (Kafka's DeleteRecords, and a follower taking
    /// its leader's log start): records below it can no longer be read, whole segments
    /// below it are deleted, and the new start is persisted before it is used. Returns
    /// whether it moved; `to` past the log end is OFFSET_OUT_OF_RANGE.
    #[tracing::instrument(skip(self), fields(dir = %self.dir.display()))]
    pub fn increment_log_start(&mut self, to: Offset) -> Result<bool, LogError> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if to > end {
            return Err(LogError::OffsetOutOfRange {
                offset: to,
                log_start: start,
                log_end: end,
            });
        }
        if to <= start {
            return Ok(false);
        }
        let text = format!("{LOG_START_VERSION}\n{}\n", to.0);
        crate::durability::write_atomically(&self.dir.join(LOG_START_FILE), text.as_bytes(), true)?;
        self.start = to;
        self.drop_segments_below_start()?;
        tracing::info!(from = %start, to = %to, "log start moved");
        Ok(true)
    }

    /// Retires every segment wholly below the log start (never the active one) and
    /// trims the epoch cache to it.
    fn drop_segments_below_start(&mut self) -> Result<(), LogError> {
        while self.segments.len() > 1 && self.first().next_offset() <= self.start {
            if let Some((_, seg)) = self.segments.pop_first() {
                self.retire(seg)?;
            }
        }
        let start = self.log_start_offset();
        self.epochs.truncate_from_start(start)
    }

    pub fn log_end_offset(&self) -> Offset {
        self.active().next_offset()
    }

    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    pub(crate) fn active(&self) -> &LogSegment {
        self.segments
            .values()
            .next_back()
            .unwrap_or_else(|| unreachable!("a log always has an active segment"))
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .unwrap_or_else(|| unreachable!("a log always has an active segment"))
    }

    fn first(&self) -> &LogSegment {
        self.segments
            .values()
            .next()
            .unwrap_or_else(|| unreachable!("a log always has an active segment"))
    }

    /// Checks every batch's header and size, and its CRC unless the caller has checked
    /// it ([`CheckedBatches`]); returns their headers.
    fn validate(&self, records: &[u8], verify_crc: bool) -> Result<Vec<BatchHeader>, LogError> {
        let mut headers = Vec::new();
        for item in batches(records) {
            let (h, bytes) = item?;
            if bytes.len() > self.config.max_message_bytes as usize {
                return Err(LogError::BatchTooLarge {
                    size: bytes.len(),
                    max: self.config.max_message_bytes as usize,
                });
            }
            if verify_crc {
                h.verify_crc(bytes)?;
            }
            headers.push(h);
        }
        if headers.is_empty() {
            return Err(LogError::EmptyAppend);
        }
        Ok(headers)
    }

    /// Appends producer batches as the leader: assigns offsets from the log end, stamps
    /// the leader epoch (and `LogAppendTime` if given), and writes them. Checks every
    /// batch's CRC first; [`PartitionLog::append_checked_as_leader`] takes batches whose
    /// CRCs the caller has checked.
    pub fn append_as_leader(
        &mut self,
        records: impl Into<Vec<u8>>,
        epoch: LeaderEpoch,
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        let checked = CheckedBatches::check(records.into())?;
        self.append_checked_as_leader(checked, epoch, log_append_time, now_ms)
    }

    /// [`PartitionLog::append_as_leader`] for batches already checked (the broker's
    /// validation checks each CRC once, record by record, before this).
    pub fn append_checked_as_leader(
        &mut self,
        records: CheckedBatches,
        epoch: LeaderEpoch,
        log_append_time: Option<i64>,
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        // Owned: the broker hands its request buffer over, and offsets are set in place.
        let mut buf = records.into_vec();
        let headers = self.validate(&buf, false)?;
        if let Some(Duplicate {
            first_offset,
            last_offset,
        }) = self.producers.check_append(&headers)?
        {
            return Ok(AppendInfo {
                first_offset,
                last_offset,
                log_append_time,
                batch_count: 0,
                duplicate: true,
            });
        }
        for h in &headers {
            if h.record_count <= 0 || h.record_count - 1 != h.last_offset_delta {
                return Err(LogError::InvalidBatch(
                    kavka_record::RecordError::RecordCountMismatch {
                        declared: h.last_offset_delta + 1,
                        actual: h.record_count.max(0) as usize,
                    },
                ));
            }
        }
        let first_offset = self.log_end_offset();
        let mut next = first_offset;
        let mut pos = 0;
        for h in &headers {
            let batch = &mut buf[pos..pos + h.size()];
            set_base_offset(batch, next.0);
            set_partition_leader_epoch(batch, epoch.0);
            if let Some(ts) = log_append_time {
                set_log_append_time(batch, ts);
            }
            next = next.plus(h.last_offset_delta as i64 + 1);
            pos += h.size();
        }
        self.epochs.assign(epoch, first_offset)?;
        if let Err(e) = self.write_batches(&buf, now_ms) {
            self.tail.clear();
            return Err(e);
        }
        self.tail.push(first_offset, next, Bytes::from(buf));
        Ok(AppendInfo {
            first_offset,
            last_offset: Offset(next.0 - 1),
            log_append_time,
            batch_count: headers.len(),
            duplicate: false,
        })
    }

    /// Appends batches replicated from the leader, exactly as received; their offsets
    /// must continue from the log end.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<AppendInfo, LogError> {
        // The tail holds a leader's appends only.
        self.tail.clear();
        let headers = self.validate(records, true)?;
        let mut expected = self.log_end_offset();
        for h in &headers {
            if h.base_offset < expected.0 {
                return Err(LogError::NonContiguous {
                    expected,
                    got: Offset(h.base_offset),
                });
            }
            expected = Offset(h.next_offset());
        }
        for h in &headers {
            self.epochs
                .assign(LeaderEpoch(h.partition_leader_epoch), Offset(h.base_offset))?;
        }
        self.write_batches(records, now_ms)?;
        Ok(AppendInfo {
            first_offset: Offset(headers[0].base_offset),
            last_offset: Offset(expected.0 - 1),
            log_append_time: None,
            batch_count: headers.len(),
            duplicate: false,
        })
    }

    /// Whether the active segment's disk blocks should be reserved further ahead of its
    /// data ([`PartitionLog::reserve_ahead`]). Appends only copy into the page cache and
    /// never reserve: the reservation may wait for the disk.
    pub fn reservation_due(&self) -> bool {
        self.active().reservation_due(self.config.segment_bytes)
    }

    /// Reserves the active segment's disk blocks a step past its data (`fallocate`
    /// keeping its length), when due. Blocking (the file system may read its allocation
    /// bitmaps): call it off the async runtime. Best effort: a file system that cannot
    /// reserve leaves the writes to allocate as usual.
    pub fn reserve_ahead(&mut self) {
        let limit = self.config.segment_bytes;
        self.active_mut().reserve_ahead(limit);
    }

    /// Writes validated batches with assigned offsets, rolling segments as needed.
    fn write_batches(&mut self, buf: &[u8], now_ms: i64) -> Result<(), LogError> {
        for item in batches(buf) {
            let (h, bytes) = item?;
            if self.should_roll(bytes.len() as u64, &h, now_ms) {
                self.roll_at(Offset(h.base_offset))?;
            }
            self.active_mut().append(bytes, &h, now_ms)?;
            self.producers.record(&h);
        }
        Ok(())
    }

    fn should_roll(&self, len: u64, h: &BatchHeader, now_ms: i64) -> bool {
        let seg = self.active();
        if seg.is_empty() {
            return false;
        }
        let full = seg.size() + len > self.config.segment_bytes;
        let old = seg
            .rolled_at_ms()
            .is_some_and(|t| now_ms.saturating_sub(t) >= self.roll_age_ms(seg.base_offset));
        let offsets_overflow = h.last_offset() - seg.base_offset.0 > u32::MAX as i64;
        // One more entry in each index must still fit (segment.index.bytes).
        let index_full = seg.index_bytes() + 12 > u64::from(self.config.segment_index_bytes);
        full || old || offsets_overflow || index_full
    }

    /// How old the segment at `base` may grow before it rolls: `segment.ms`, less this
    /// segment's share of `segment.jitter.ms`, and for a compacted log at most
    /// `max.compaction.lag.ms` (its records must become cleanable in time).
    fn roll_age_ms(&self, base: Offset) -> i64 {
        let c = &self.config;
        let age = c
            .segment_ms
            .saturating_sub(roll_jitter(&self.dir, base, c.segment_jitter_ms));
        if c.compact {
            age.min(c.max_compaction_lag_ms)
        } else {
            age
        }
    }

    /// Starts a new active segment at the log end.
    pub fn roll(&mut self) -> Result<(), LogError> {
        if self.active().is_empty() {
            return Ok(());
        }
        self.roll_at(self.log_end_offset())
    }

    fn roll_at(&mut self, base: Offset) -> Result<(), LogError> {
        // Any fsync policy at all: a sealed segment is on disk, with its directory entry
        // and the new one, so `sync_point` (the active segment alone) covers the log.
        let fsync = self.config.flush != FlushPolicy::REPLICATED;
        self.active_mut().seal(fsync)?;
        if fsync {
            self.fsyncs += 1;
        }
        let seg = new_active(&self.dir, base, &self.config)?;
        if fsync {
            sync_dir(&self.dir)?;
        }
        tracing::debug!(base = %base, dir = %self.dir.display(), "rolled segment");
        self.segments.insert(base, seg);
        let fsync = self.config.flush.every_append();
        self.snapshots.link(&mut self.producers, base, fsync)
    }

    /// Reads whole batches from the one containing `from`, up to `max_bytes` (at least one
    /// batch, as Kafka does, so a large batch cannot stall a reader), and only batches that
    /// end below `upper` (the high watermark for consumers).
    pub fn read(
        &self,
        from: Offset,
        max_bytes: usize,
        upper: Offset,
    ) -> Result<FetchData, LogError> {
        let (start, end) = (self.log_start_offset(), self.log_end_offset());
        if from < start || from > end {
            return Err(LogError::OffsetOutOfRange {
                offset: from,
                log_start: start,
                log_end: end,
            });
        }
        if let Some(records) = self.tail.read(from, upper, max_bytes) {
            return Ok(self.fetch_data(records));
        }
        let containing = self.segments.range(..=from).next_back();
        let later = self.segments.range(from.next()..);
        let mut out = Vec::new();
        for (i, (_, seg)) in containing.into_iter().chain(later).enumerate() {
            let reader = seg.reader()?;
            let begin = if i == 0 {
                match reader.find_batch(from)? {
                    Some((pos, _)) => pos,
                    None => continue,
                }
            } else {
                0
            };
            let mut end = begin;
            let mut full = false;
            while end < seg.size() {
                let h = reader.header_at(end)?;
                let taken = out.len() + (end - begin) as usize;
                if h.last_offset() >= upper.0 || (taken > 0 && taken + h.size() > max_bytes) {
                    full = true;
                    break;
                }
                end += h.size() as u64;
            }
            if end > begin {
                let read = reader.read_at(begin, (end - begin) as usize)?;
                // Most reads stay in one segment: keep its buffer rather than copy it.
                if out.is_empty() {
                    out = read;
                } else {
                    out.extend_from_slice(&read);
                }
            }
            if full || out.len() >= max_bytes {
                break;
            }
        }
        Ok(self.fetch_data(out.into()))
    }

    /// Forgets the appended batches wholly below `offset` in the in-memory tail (every
    /// replica has fetched them; later reads of them go to the segments).
    pub fn trim_tail(&mut self, offset: Offset) {
        self.tail.trim_below(offset);
    }

    fn fetch_data(&self, records: StoredRecords) -> FetchData {
        FetchData {
            records,
            log_start_offset: self.log_start_offset(),
            log_end_offset: self.log_end_offset(),
        }
    }

    /// Kafka's ListOffsets by timestamp: the first record whose timestamp is at or after
    /// `timestamp`, as (offset, its timestamp); `None` when there is none.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(Offset, i64)>, LogError> {
        for seg in self.segments.values() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            let reader = seg.reader()?;
            let mut pos = seg.time_lookup_position(timestamp);
            while pos < seg.size() {
                let h = reader.header_at(pos)?;
                if h.max_timestamp >= timestamp {
                    let bytes = reader.read_at(pos, h.size())?;
                    // Records read in place: memory is the decompressed batch, no more.
                    let (batch, _) = BatchRecords::open(&bytes)?;
                    for r in batch.iter() {
                        let (offset, ts) = batch.offset_and_timestamp(&r?);
                        // Records below a log start DeleteRecords moved are gone.
                        if ts >= timestamp && offset >= self.start.0 {
                            return Ok(Some((Offset(offset), ts)));
                        }
                    }
                }
                pos += h.size() as u64;
            }
        }
        Ok(None)
    }

    /// Kafka's ListOffsets for the largest timestamp (-3, KIP-734): the first record that
    /// carries the log's largest timestamp, as (offset, timestamp); `None` when empty.
    pub fn offset_of_max_timestamp(&self) -> Result<Option<(Offset, i64)>, LogError> {
        let max = self
            .segments
            .values()
            .map(LogSegment::max_timestamp)
            .max()
            .unwrap_or(-1);
        if max < 0 {
            return Ok(None);
        }
        // No record is later than `max`: the first at or after it carries it.
        self.offset_for_timestamp(max)
    }

    /// Forgets idempotent producers whose last batch is `expiration_ms` older than
    /// `now_ms` (Kafka's `producer.id.expiration.ms`); returns how many.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producers.remove_expired(now_ms, expiration_ms)
    }

    /// Removes every batch whose last offset is at or past `offset` (whole batches, as
    /// Kafka does); the new log end may be below `offset` if it fell inside a batch.
    #[tracing::instrument(skip(self), fields(dir = %self.dir.display()))]
    pub fn truncate_to(&mut self, offset: Offset) -> Result<(), LogError> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        self.tail.clear();
        if offset <= self.log_start_offset() {
            return self.truncate_fully_and_start_at(offset);
        }
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            if let Some((_, seg)) = self.segments.pop_last() {
                self.retire(seg)?;
            }
        }
        self.active_mut().truncate_to(offset)?;
        let end = self.log_end_offset();
        self.epochs.truncate_from_end(end)?;
        self.restore_producers_after_truncation()?;
        tracing::info!(requested = %offset, log_end = %end, "truncated log");
        Ok(())
    }

    /// Deletes everything and starts empty at `offset` (a follower far behind a leader
    /// whose log starts later, or truncation below the log start).
    pub fn truncate_fully_and_start_at(&mut self, offset: Offset) -> Result<(), LogError> {
        self.tail.clear();
        for (_, seg) in std::mem::take(&mut self.segments) {
            self.retire(seg)?;
        }
        // The new first segment's base is the start: a stored one is stale.
        let stored = self.dir.join(LOG_START_FILE);
        match std::fs::remove_file(&stored) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(LogError::Io {
                    path: stored,
                    source: e,
                });
            }
            _ => {}
        }
        self.start = offset;
        self.segments
            .insert(offset, new_active(&self.dir, offset, &self.config)?);
        self.epochs.truncate_from_end(Offset::ZERO)?;
        self.producers = ProducerStates::default();
        self.snapshots.invalidate();
        self.restore_producers(None)
    }

    /// Deletes whole old segments past `retention.bytes` or `retention.ms` (when
    /// `cleanup.policy` includes `delete`); never the active segment. Returns how many were deleted.
    pub fn enforce_retention(&mut self, now_ms: i64) -> Result<usize, LogError> {
        let mut deleted = 0;
        if !self.config.delete {
            // `cleanup.policy=compact`: only the cleaner removes records.
            return Ok(0);
        }
        while self.segments.len() > 1 {
            let first = self.first();
            let total = self.size_bytes() as i64;
            let by_size = self.config.retention_bytes >= 0
                && total - first.size() as i64 >= self.config.retention_bytes;
            let by_time = self.config.retention_ms >= 0
                && first.max_timestamp() >= 0
                && now_ms - first.max_timestamp() > self.config.retention_ms;
            if !(by_size || by_time) {
                break;
            }
            if let Some((_, seg)) = self.segments.pop_first() {
                tracing::info!(file = %seg.log_path().display(), by_size, by_time, "retention deleted segment");
                self.retire(seg)?;
                deleted += 1;
            }
        }
        if deleted > 0 {
            let start = self.log_start_offset();
            self.epochs.truncate_from_start(start)?;
        }
        Ok(deleted)
    }

    /// Hands a segment that left the log to the retired files.
    fn retire(&mut self, seg: LogSegment) -> Result<(), LogError> {
        let delay = self.file_delete_delay();
        seg.retire(&mut self.retired, delay, Instant::now())
    }

    pub(crate) fn file_delete_delay(&self) -> Duration {
        Duration::from_millis(self.config.file_delete_delay_ms.max(0) as u64)
    }

    /// Unlinks the retired segment files whose `file.delete.delay.ms` has passed by
    /// `now`; returns how many.
    pub fn purge_retired(&mut self, now: Instant) -> Result<usize, LogError> {
        self.retired.purge(now)
    }

    /// When the next retired segment file is due to be unlinked, if any waits.
    pub fn next_purge_due(&self) -> Option<Instant> {
        self.retired.next_due()
    }

    /// The file whose fsync makes every offset below the current log end durable.
    pub fn sync_point(&self) -> Result<SyncPoint, LogError> {
        let seg = self.active();
        Ok(SyncPoint {
            file: seg.sync_file()?,
            path: seg.log_path().to_path_buf(),
            up_to: self.log_end_offset(),
        })
    }

    /// Deletes the log and its directory.
    pub fn delete(self) -> Result<(), LogError> {
        std::fs::remove_dir_all(&self.dir).at(&self.dir)
    }

    /// Takes the segment files out of a log about to be dropped, so that its owner can
    /// close them where blocking is allowed: closing the last descriptor of a deleted
    /// file frees its page cache, a second or more for gigabytes. The log is left without
    /// segments and must not be used again, only dropped.
    pub fn take_files(&mut self) -> LogFiles {
        LogFiles(std::mem::take(&mut self.segments))
    }
}

/// A log's segment files, open until this is dropped (see [`PartitionLog::take_files`]).
#[must_use = "the files close when this is dropped"]
pub struct LogFiles(BTreeMap<Offset, LogSegment>);

impl LogFiles {
    /// How many segments' files this holds.
    pub fn segments(&self) -> usize {
        self.0.len()
    }
}

/// A segment's share of `segment.jitter.ms`: in `[0, jitter)`, fixed for the segment
/// (from its directory and base offset) so it does not change between appends, and
/// different across partitions so those created together roll at different times.
fn roll_jitter(dir: &Path, base: Offset, jitter_ms: i64) -> i64 {
    use std::hash::{Hash, Hasher};
    if jitter_ms <= 0 {
        return 0;
    }
    let mut h = std::hash::DefaultHasher::new();
    (dir, base.0).hash(&mut h);
    (h.finish() % jitter_ms as u64) as i64
}

/// A new active segment at `base`, with its disk reserved under `preallocate`.
fn new_active(dir: &Path, base: Offset, config: &LogConfig) -> Result<LogSegment, LogError> {
    let mut seg = LogSegment::create(dir, base, config.index_interval_bytes)?;
    if config.preallocate {
        seg.preallocate(config.segment_bytes)?;
    }
    Ok(seg)
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), LogError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roll_jitter_is_fixed_per_segment_bounded_and_spread() {
        assert_eq!(roll_jitter(Path::new("/d/t-0"), Offset(0), 0), 0);
        let jitters: Vec<i64> = (0..64)
            .map(|p| roll_jitter(Path::new(&format!("/d/t-{p}")), Offset(0), 1_000))
            .collect();
        assert!(
            jitters.iter().all(|j| (0..1_000).contains(j)),
            "{jitters:?}"
        );
        let distinct: std::collections::BTreeSet<_> = jitters.iter().collect();
        assert!(distinct.len() > 32, "partitions spread: {jitters:?}");
        for p in 0..8 {
            let dir = format!("/d/t-{p}");
            assert_eq!(
                roll_jitter(Path::new(&dir), Offset(40), 1_000),
                roll_jitter(Path::new(&dir), Offset(40), 1_000),
                "the same segment keeps its jitter"
            );
        }
    }
}
