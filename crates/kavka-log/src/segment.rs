//! One segment: a `.log` file of whole batches from `base_offset` on, with its sparse
//! offset and time indexes. Appends go to the end only; reads use positional reads.
//!
//! The active segment holds its files open; a sealed one holds none: its reads borrow a
//! handle from the node's bounded cache ([`crate::handles`]), and it opens its files
//! again only if it becomes active again (a truncation back into it).

use crate::durability::with_suffix;
use crate::error::{IoContext, LogError};
use crate::handles::{HANDLES, next_segment_id};
use crate::index::{IndexFile, OffsetEntry, TimeEntry};
use crate::recovery::{self, ScannedBatch};
use crate::retired::RetiredFiles;
use kavka_model::Offset;
use kavka_record::{BATCH_OVERHEAD, BatchHeader};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Kafka's file names: the base offset, zero-padded to 20 digits.
pub(crate) fn file_stem(base: Offset) -> String {
    format!("{:020}", base.0)
}

/// A segment's `.log` handle.
#[derive(Debug)]
enum LogFile {
    /// The active segment's own, opened for reads and writes.
    Own(Arc<File>),
    /// Sealed: reads borrow a read-only handle from [`HANDLES`].
    Sealed,
}

#[derive(Debug)]
pub(crate) struct LogSegment {
    pub base_offset: Offset,
    /// Unique in the process: the handle cache's key.
    id: u64,
    log_path: PathBuf,
    file: LogFile,
    /// Bytes of whole batches in the file.
    size: u64,
    /// One past the last offset in the segment (`base_offset` when empty).
    next_offset: Offset,
    /// Largest batch max timestamp in the segment, -1 when empty.
    max_timestamp: i64,
    /// Wall-clock time of the first append (or the first batch's timestamp after a
    /// restart): `segment.ms` counts from here.
    rolled_at_ms: Option<i64>,
    index: IndexFile<OffsetEntry>,
    time_index: IndexFile<TimeEntry>,
    bytes_since_index: u64,
    index_interval_bytes: u64,
    /// Disk blocks may be reserved past the data (`preallocate`, or appends reserving
    /// ahead), given back at `seal`.
    preallocated: bool,
    /// Bytes from the start known reserved, or asked for (appends reserve past it).
    reserved_to: u64,
}

/// How far past its end the active segment's disk blocks are reserved: as many bytes as
/// the segment holds, within these bounds (Redpanda's fallocation step is 32 MiB).
/// Blocks reserved before the data is written (unwritten extents) spare the file system
/// allocating them at writeback, while the disk is busiest: that cut the half-rate
/// produce tail in BENCHMARKS.md. A reservation can itself wait for the disk (ext4
/// reading a block group's bitmap), so appends do not make it: the owner asks
/// ([`LogSegment::reservation_due`]) and reserves off the appending thread, a step
/// before the appends reach the end of the last one. A small segment reserves little,
/// and `seal` gives the rest back.
const RESERVE_AHEAD_MIN: u64 = 1 << 20;
const RESERVE_AHEAD_MAX: u64 = 32 << 20;

/// Where the reservation should end once the segment holds `end` bytes, when less than
/// half a step of it is left past `end` (so the next one is made before the appends
/// reach the end of this one); never past `limit`, the size at which the segment rolls.
/// `None` while enough is reserved, or nothing is left to reserve before `limit`.
fn reserve_ahead_to(end: u64, reserved_to: u64, limit: u64) -> Option<u64> {
    let step = end.clamp(RESERVE_AHEAD_MIN, RESERVE_AHEAD_MAX);
    let to = end.saturating_add(step).min(limit);
    (end.saturating_add(step / 2) > reserved_to && to > reserved_to.max(end)).then_some(to)
}

pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub time_index: PathBuf,
}

pub(crate) fn paths(dir: &Path, base: Offset) -> SegmentPaths {
    let stem = file_stem(base);
    SegmentPaths {
        log: dir.join(format!("{stem}.log")),
        index: dir.join(format!("{stem}.index")),
        time_index: dir.join(format!("{stem}.timeindex")),
    }
}

/// `path` with `.tmp` appended.
fn tmp_path(path: &Path) -> PathBuf {
    with_suffix(path, ".tmp")
}

/// Removes a segment's indexes, final and temporary (best effort: a failure to remove
/// one is logged), so that the next open rebuilds them with every batch checked.
fn remove_indexes(p: &SegmentPaths) {
    for path in [
        p.index.clone(),
        p.time_index.clone(),
        tmp_path(&p.index),
        tmp_path(&p.time_index),
    ] {
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove a partial index");
        }
    }
}

/// What opening an existing segment found.
pub(crate) enum Opened {
    Clean(LogSegment),
    /// The active segment had a bad tail, now truncated: (segment, position, reason).
    TruncatedTail(LogSegment, u64, String),
}

impl LogSegment {
    pub(crate) fn create(
        dir: &Path,
        base: Offset,
        index_interval_bytes: u32,
    ) -> Result<Self, LogError> {
        let p = paths(dir, base);
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&p.log)
            .at(&p.log)?;
        Ok(Self {
            base_offset: base,
            id: next_segment_id(),
            file: LogFile::Own(Arc::new(file)),
            size: 0,
            next_offset: base,
            max_timestamp: -1,
            rolled_at_ms: None,
            index: IndexFile::create(&p.index)?,
            time_index: IndexFile::create(&p.time_index)?,
            bytes_since_index: 0,
            index_interval_bytes: index_interval_bytes as u64,
            preallocated: false,
            reserved_to: 0,
            log_path: p.log,
        })
    }

    /// Opens an existing segment. The active segment is always fully scanned with CRC
    /// checks and a bad tail truncated; an older one trusts valid indexes and only scans
    /// its tail, and is refused (with its file named) if it is corrupt.
    pub(crate) fn open(
        dir: &Path,
        base: Offset,
        index_interval_bytes: u32,
        active: bool,
    ) -> Result<Opened, LogError> {
        let p = paths(dir, base);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&p.log)
            .at(&p.log)?;
        if !active
            && let (Some(index), Some(time_index)) =
                (IndexFile::load(&p.index)?, IndexFile::load(&p.time_index)?)
        {
            // Trust the indexes; scan only the tail after the last entry.
            let start = index.last().map_or(0, |e: OffsetEntry| e.position as u64);
            let mut next_offset = base;
            let mut max_timestamp = time_index.last().map_or(-1, |e: TimeEntry| e.timestamp);
            let scan = recovery::scan(&file, &p.log, start, base.0, false, |b| {
                note_end(&mut next_offset, &mut max_timestamp, &b);
                Ok(())
            })?;
            if scan.invalid.is_none() {
                let mut seg = Self {
                    base_offset: base,
                    id: next_segment_id(),
                    file: LogFile::Own(Arc::new(file)),
                    size: scan.valid_end,
                    next_offset,
                    max_timestamp,
                    rolled_at_ms: None,
                    index,
                    time_index,
                    bytes_since_index: 0,
                    index_interval_bytes: index_interval_bytes as u64,
                    preallocated: false,
                    reserved_to: scan.valid_end,
                    log_path: p.log,
                };
                seg.rolled_at_ms = seg.first_timestamp();
                seg.release()?;
                return Ok(Opened::Clean(seg));
            }
        }

        // Scan everything with CRC checks, rebuilding both indexes under temporary names
        // (`*.tmp`, removed when a log opens): they take their own names only after a
        // scan that finished, so a failure or a crash midway never leaves an index that
        // covers part of the segment for the next open to trust.
        let scan_file = file.try_clone().at(&p.log)?;
        let (index_tmp, time_index_tmp) = (tmp_path(&p.index), tmp_path(&p.time_index));
        let mut seg = Self {
            base_offset: base,
            id: next_segment_id(),
            file: LogFile::Own(Arc::new(file)),
            size: 0,
            next_offset: base,
            max_timestamp: -1,
            rolled_at_ms: None,
            index: IndexFile::create(&index_tmp)?,
            time_index: IndexFile::create(&time_index_tmp)?,
            bytes_since_index: 0,
            index_interval_bytes: index_interval_bytes as u64,
            preallocated: false,
            reserved_to: 0,
            log_path: p.log.clone(),
        };
        let scanned = recovery::scan(&scan_file, &p.log, 0, base.0, true, |b| seg.index_batch(&b));
        let scan = match scanned {
            Ok(scan) => scan,
            Err(e) => {
                drop(seg);
                remove_indexes(&p);
                return Err(e);
            }
        };
        seg.size = scan.valid_end;
        seg.reserved_to = scan.valid_end;
        seg.rolled_at_ms = seg.first_timestamp();
        let truncated = match scan.invalid {
            None => None,
            Some((position, reason)) if active => {
                let file = seg.writer()?;
                file.set_len(position).at(&p.log)?;
                file.sync_all().at(&p.log)?;
                Some((position, reason))
            }
            Some((position, reason)) => {
                // Older indexes of this segment would be trusted by the next open, and it
                // would skip the checks that found the fault: none is left.
                drop(seg);
                remove_indexes(&p);
                return Err(LogError::Corrupt {
                    path: p.log,
                    position,
                    reason,
                });
            }
        };
        seg.index.rename_to(&p.index)?;
        seg.time_index.rename_to(&p.time_index)?;
        if !active {
            seg.release()?;
        }
        Ok(match truncated {
            None => Opened::Clean(seg),
            Some((position, reason)) => Opened::TruncatedTail(seg, position, reason),
        })
    }

    /// A handle to read the `.log` file with.
    fn handle(&self) -> Result<Arc<File>, LogError> {
        match &self.file {
            LogFile::Own(f) => Ok(Arc::clone(f)),
            LogFile::Sealed => HANDLES.get(self.id, &self.log_path),
        }
    }

    /// The `.log` file opened for writes (a sealed segment becoming active again).
    fn writer(&mut self) -> Result<Arc<File>, LogError> {
        if let LogFile::Own(f) = &self.file {
            return Ok(Arc::clone(f));
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.log_path)
            .at(&self.log_path)?;
        HANDLES.forget(self.id);
        let f = Arc::new(f);
        self.file = LogFile::Own(Arc::clone(&f));
        Ok(f)
    }

    /// Holds a handle of its own to the `.log` file now at its path, so that it keeps
    /// reading this file if another is renamed over it (compaction swapping in a
    /// cleaned copy), until it is dropped.
    pub(crate) fn pin(&mut self) -> Result<(), LogError> {
        self.writer().map(|_| ())
    }

    /// Closes every file of a segment that is no longer written, its indexes complete.
    fn release(&mut self) -> Result<(), LogError> {
        self.file = LogFile::Sealed;
        self.index.release()?;
        self.time_index.release()
    }

    fn first_timestamp(&self) -> Option<i64> {
        if self.size == 0 {
            return None;
        }
        self.header_at(0).ok().map(|h| h.max_timestamp)
    }

    /// Records a batch already in the file in the indexes and end state.
    ///
    /// Offset entry: (batch base offset, its position), every `index_interval_bytes`.
    /// Time entry at the same point: (max timestamp of every record *before* that
    /// offset, the offset), so a timestamp lookup may start a scan there.
    fn index_batch(&mut self, b: &ScannedBatch) -> Result<(), LogError> {
        let h = &b.header;
        if b.position > 0 && self.bytes_since_index >= self.index_interval_bytes {
            let relative_offset = (h.base_offset - self.base_offset.0) as u32;
            self.index.append(OffsetEntry {
                relative_offset,
                position: b.position as u32,
            })?;
            if self.max_timestamp >= 0 {
                self.time_index.append(TimeEntry {
                    timestamp: self.max_timestamp,
                    relative_offset,
                })?;
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += h.size() as u64;
        note_end(&mut self.next_offset, &mut self.max_timestamp, b);
        Ok(())
    }

    pub(crate) fn size(&self) -> u64 {
        self.size
    }

    pub(crate) fn next_offset(&self) -> Offset {
        self.next_offset
    }

    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Bytes the offset and time indexes would take on disk, Kafka's way (8 and 12 bytes
    /// an entry): the larger of the two.
    pub(crate) fn index_bytes(&self) -> u64 {
        (self.index.len() as u64 * 8).max(self.time_index.len() as u64 * 12)
    }

    pub(crate) fn rolled_at_ms(&self) -> Option<i64> {
        self.rolled_at_ms
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Appends one whole, validated batch whose offsets follow this segment's end.
    pub(crate) fn append(
        &mut self,
        batch: &[u8],
        header: &BatchHeader,
        now_ms: i64,
    ) -> Result<(), LogError> {
        debug_assert!(header.base_offset >= self.next_offset.0);
        let position = self.size;
        self.writer()?
            .write_all_at(batch, position)
            .at(&self.log_path)?;
        self.size += batch.len() as u64;
        if self.rolled_at_ms.is_none() {
            self.rolled_at_ms = Some(now_ms);
        }
        self.index_batch(&ScannedBatch {
            position,
            header: *header,
        })
    }

    /// Reads the segment with one handle (a sealed segment's comes from the cache once).
    pub(crate) fn reader(&self) -> Result<SegmentReader<'_>, LogError> {
        Ok(SegmentReader {
            seg: self,
            file: self.handle()?,
        })
    }

    pub(crate) fn header_at(&self, position: u64) -> Result<BatchHeader, LogError> {
        self.reader()?.header_at(position)
    }

    /// The first batch whose last offset is at or past `offset`: (position, header).
    pub(crate) fn find_batch(
        &self,
        offset: Offset,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        self.reader()?.find_batch(offset)
    }

    /// Where a scan for the first record with a timestamp >= `timestamp` can start.
    pub(crate) fn time_lookup_position(&self, timestamp: i64) -> u64 {
        match self.time_index.lookup(timestamp) {
            Some(e) => self
                .index
                .lookup(e.relative_offset)
                .map_or(0, |o| o.position as u64),
            None => 0,
        }
    }

    /// Removes every batch whose last offset is at or past `offset`; returns the bytes
    /// removed.
    pub(crate) fn truncate_to(&mut self, offset: Offset) -> Result<u64, LogError> {
        let Some((position, header)) = self.find_batch(offset)? else {
            return Ok(0);
        };
        let removed = self.size - position;
        self.writer()?.set_len(position).at(&self.log_path)?;
        self.size = position;
        // The truncation gave back every block past the data.
        self.reserved_to = position;
        self.next_offset = Offset(header.base_offset).max(self.base_offset);
        let rel = (header.base_offset - self.base_offset.0) as u32;
        self.index.truncate_while(|e| e.relative_offset < rel)?;
        self.time_index
            .truncate_while(|e| e.relative_offset < rel)?;
        // Recompute the max timestamp from the remaining headers.
        let mut max_timestamp = -1;
        let reader = self.reader()?;
        let mut pos = 0;
        while pos < self.size {
            let h = reader.header_at(pos)?;
            max_timestamp = max_timestamp.max(h.max_timestamp);
            pos += h.size() as u64;
        }
        drop(reader);
        self.max_timestamp = max_timestamp;
        if self.size == 0 {
            self.rolled_at_ms = None;
        }
        self.bytes_since_index = 0;
        Ok(removed)
    }

    /// Called when the segment stops being active: a last time-index entry for its max
    /// timestamp, and with `fsync` the data and indexes on disk.
    pub(crate) fn seal(&mut self, fsync: bool) -> Result<(), LogError> {
        if self.max_timestamp >= 0 && self.next_offset > self.base_offset {
            self.time_index.append(TimeEntry {
                timestamp: self.max_timestamp,
                relative_offset: (self.next_offset.0 - self.base_offset.0) as u32,
            })?;
        }
        if self.preallocated
            && let LogFile::Own(f) = &self.file
        {
            // Give back the reserved blocks past the data (the length is unchanged).
            f.set_len(self.size).at(&self.log_path)?;
            self.preallocated = false;
        }
        if fsync {
            if let LogFile::Own(f) = &self.file {
                f.sync_data().at(&self.log_path)?;
            }
            self.index.sync()?;
            self.time_index.sync()?;
        }
        self.release()
    }

    pub(crate) fn sync_file(&self) -> Result<File, LogError> {
        match &self.file {
            LogFile::Own(f) => f.try_clone().at(&self.log_path),
            LogFile::Sealed => File::open(&self.log_path).at(&self.log_path),
        }
    }

    /// Closes the segment and hands its files to `retired` (renamed to `*.deleted` and
    /// unlinked after `delay`, or at once when it is zero).
    pub(crate) fn retire(
        self,
        retired: &mut RetiredFiles,
        delay: Duration,
        now: Instant,
    ) -> Result<(), LogError> {
        let paths = [
            self.log_path.clone(),
            self.index.path().to_path_buf(),
            self.time_index.path().to_path_buf(),
        ];
        drop(self);
        for path in &paths {
            retired.retire(path, delay, now)?;
        }
        Ok(())
    }

    /// Reserves disk blocks for `bytes` of this active segment without changing its
    /// length (`preallocate`), so appends do not fail for space or fragment the file.
    /// Where the file system cannot reserve, this says so and the segment grows as
    /// usual.
    pub(crate) fn preallocate(&mut self, bytes: u64) -> Result<(), LogError> {
        let LogFile::Own(f) = &self.file else {
            return Ok(());
        };
        match reserve(f, 0, bytes) {
            Ok(()) => {
                self.preallocated = true;
                self.reserved_to = self.reserved_to.max(bytes);
                Ok(())
            }
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                tracing::warn!(file = %self.log_path.display(), "the file system cannot preallocate segments; preallocate has no effect here");
                Ok(())
            }
            Err(e) => Err(e).at(&self.log_path),
        }
    }

    /// Whether the blocks past the data should be reserved further ([`Self::reserve_ahead`]):
    /// only an active segment with data, less than half a step ahead of its end and short
    /// of `limit` (the size at which it rolls).
    pub(crate) fn reservation_due(&self, limit: u64) -> bool {
        self.reservation_to(limit).is_some()
    }

    /// Where the next reservation ends ([`reserve_ahead_to`]), for an active segment
    /// with data; `None` when none is due.
    fn reservation_to(&self, limit: u64) -> Option<u64> {
        let active = matches!(self.file, LogFile::Own(_)) && self.size > 0;
        active
            .then(|| reserve_ahead_to(self.size, self.reserved_to, limit))
            .flatten()
    }

    /// Reserves the blocks from the current reservation to a step past the data, when due.
    /// It may wait for the disk: called off the appending thread. Best effort: where the
    /// file system cannot (no space, no support) the writes allocate as usual and report
    /// their own errors; the next step tries again.
    pub(crate) fn reserve_ahead(&mut self, limit: u64) {
        let (Some(to), LogFile::Own(f)) = (self.reservation_to(limit), &self.file) else {
            return;
        };
        let from = self.reserved_to;
        match reserve(f, from, to - from) {
            Ok(()) => self.preallocated = true,
            Err(e) => {
                tracing::debug!(file = %self.log_path.display(), error = %e, "cannot reserve disk blocks ahead of appends")
            }
        }
        self.reserved_to = to;
    }
}

/// Reads of one segment through one handle.
pub(crate) struct SegmentReader<'a> {
    seg: &'a LogSegment,
    file: Arc<File>,
}

impl SegmentReader<'_> {
    pub(crate) fn header_at(&self, position: u64) -> Result<BatchHeader, LogError> {
        let mut buf = [0u8; BATCH_OVERHEAD];
        self.file
            .read_exact_at(&mut buf, position)
            .at(&self.seg.log_path)?;
        BatchHeader::parse(&buf).map_err(|e| LogError::Corrupt {
            path: self.seg.log_path.clone(),
            position,
            reason: e.to_string(),
        })
    }

    pub(crate) fn read_at(&self, position: u64, len: usize) -> Result<Vec<u8>, LogError> {
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, position)
            .at(&self.seg.log_path)?;
        Ok(buf)
    }

    /// The first batch whose last offset is at or past `offset`: (position, header).
    pub(crate) fn find_batch(
        &self,
        offset: Offset,
    ) -> Result<Option<(u64, BatchHeader)>, LogError> {
        let seg = self.seg;
        if offset >= seg.next_offset {
            return Ok(None);
        }
        let rel = (offset.0 - seg.base_offset.0).max(0) as u32;
        let mut pos = seg.index.lookup(rel).map_or(0, |e| e.position as u64);
        while pos < seg.size {
            let h = self.header_at(pos)?;
            if h.last_offset() >= offset.0 {
                return Ok(Some((pos, h)));
            }
            pos += h.size() as u64;
        }
        Ok(None)
    }
}

/// `fallocate` with `FALLOC_FL_KEEP_SIZE`: the blocks of `bytes` from `offset` reserved,
/// the length unchanged.
#[cfg(target_os = "linux")]
fn reserve(f: &File, offset: u64, bytes: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let off = libc::off_t::try_from(offset).unwrap_or(libc::off_t::MAX);
    let len = libc::off_t::try_from(bytes).unwrap_or(libc::off_t::MAX);
    // SAFETY: a valid open descriptor; fallocate reads no memory of ours.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, off, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn reserve(_: &File, _: u64, _: u64) -> std::io::Result<()> {
    Err(std::io::Error::from_raw_os_error(libc::EOPNOTSUPP))
}

impl Drop for LogSegment {
    fn drop(&mut self) {
        HANDLES.forget(self.id);
    }
}

fn note_end(next_offset: &mut Offset, max_timestamp: &mut i64, b: &ScannedBatch) {
    *next_offset = Offset(b.header.next_offset());
    *max_timestamp = (*max_timestamp).max(b.header.max_timestamp);
}

#[cfg(test)]
mod tests {
    use super::{RESERVE_AHEAD_MAX, RESERVE_AHEAD_MIN, reserve_ahead_to};

    #[test]
    fn the_reservation_runs_a_step_ahead_of_the_data_within_bounds() {
        const MIB: u64 = 1 << 20;
        const GIB: u64 = 1 << 30;
        for (end, reserved_to, limit, want) in [
            // Over half a step still reserved: nothing to do.
            (100, 2 * MIB, GIB, None),
            (3 * MIB, 5 * MIB, GIB, None),
            (500 * MIB, 520 * MIB, GIB, None),
            // A small segment reserves the least step, from its first bytes on.
            (0, 0, GIB, Some(RESERVE_AHEAD_MIN)),
            (100, 0, GIB, Some(100 + RESERVE_AHEAD_MIN)),
            // Less than half a step left: as much again as it holds.
            (3 * MIB, 4 * MIB, GIB, Some(6 * MIB)),
            (2 * MIB, 2 * MIB, GIB, Some(4 * MIB)),
            // A large one, the largest step, made with 16 MiB still reserved.
            (
                500 * MIB,
                515 * MIB,
                GIB,
                Some(500 * MIB + RESERVE_AHEAD_MAX),
            ),
            (500 * MIB, 516 * MIB + 1, GIB, None),
            // Not past the size at which the segment rolls...
            (1000 * MIB, 1010 * MIB, GIB, Some(GIB)),
            (100, 0, 256 * 1024, Some(256 * 1024)),
            // ... which `preallocate` reserved whole already.
            (200 * 1024, 256 * 1024, 256 * 1024, None),
            (GIB - 1, GIB, GIB, None),
            // Data at or past it (a batch larger than the segment size) asks for no more.
            (GIB, 0, GIB, None),
            (GIB + 5, GIB, GIB, None),
            // No overflow at the end of the range.
            (u64::MAX - 10, 0, u64::MAX, Some(u64::MAX)),
        ] {
            assert_eq!(
                reserve_ahead_to(end, reserved_to, limit),
                want,
                "{end} {reserved_to} {limit}"
            );
        }
    }
}
