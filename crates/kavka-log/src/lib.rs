//! The segmented partition log on disk (DESIGN §7).
//!
//! A partition's directory holds segments named by their base offset: `.log` (RecordBatch
//! v2 bytes exactly as stored), `.index` (sparse relative offset → file position),
//! `.timeindex` (max timestamp → relative offset), plus a `leader-epoch-checkpoint` and the
//! idempotent producers' sequences: a full `producer-state-checkpoint` and a
//! `producer-state-<offset>.delta` per roll since (see `producer_snapshot`).
//!
//! Invariants:
//! - offsets are dense and monotonic: each appended batch starts at the log end offset;
//! - segment n+1's base offset is segment n's next offset (or past it, once compaction
//!   removed the last records of segment n); only the last (active) segment is appended
//!   to; older ones change only as retention deletes them whole or the cleaner replaces
//!   them with a compacted copy that keeps every surviving record at its offset;
//! - every byte range a read returns is a sequence of whole batches that passed their CRC
//!   when appended (checked here, or by the broker's validation for
//!   `append_checked_as_leader`: a `kavka_record::CheckedBatches`) or recovered;
//! - on open, a torn or CRC-failing tail of the active segment is truncated; corruption
//!   anywhere else refuses to open, naming the file, rather than dropping data silently;
//! - index entries reach their files in groups: a sealed segment's index files are
//!   complete, the active segment's may lag its log and are rebuilt on every open;
//! - the batches last appended as leader are also kept in memory, as written (`tail`,
//!   bounded per log and per process): a read that starts at one of them is answered
//!   from memory; truncation, compaction and a follower's append forget them first.
//!
//! `PartitionLog` does blocking file I/O and is not thread-safe by itself: callers hold it
//! behind a lock and call it off the async runtime (`spawn_blocking`), unless the call
//! only copies to or from the page cache (a small append with no fsync; reserving disk
//! blocks ahead of the appends, which may wait for the disk, is a call of its own,
//! `reserve_ahead`, made when `reservation_due` says so). [`GroupCommit`]
//! makes `fsync` durability cheap under concurrency by letting one fsync cover every
//! append that finished before it began.

mod compaction;
mod config;
mod durability;
mod epoch;
mod error;
mod handles;
mod index;
mod log;
mod producer_snapshot;
mod producer_state;
mod recovery;
mod retired;
mod segment;
mod tail;
mod volume;

pub use compaction::CompactionStats;
pub use config::LogConfig;
pub use durability::{FlushPolicy, GroupCommit};
pub use epoch::{EpochEntry, LeaderEpochCache};
pub use error::LogError;
pub use handles::{DEFAULT_CLOSED_SEGMENT_HANDLES, set_closed_segment_handles};
pub use log::{AppendInfo, FetchData, LOG_START_FILE, LogFiles, PartitionLog};
pub use producer_snapshot::DELTAS_MAX as PRODUCER_STATE_DELTAS_MAX;
pub use producer_state::{BATCHES_TO_RETAIN, Duplicate};
pub use volume::{VolumeSpace, volume_space};
