//! Idempotent-producer state on disk (`producer_state` keeps it in memory): a chain of
//! snapshots, so that a segment roll writes the producers that changed since the last
//! roll, not every producer the partition knows (issue 16 item 8).
//!
//! ```text
//! producer-state-checkpoint                   full snapshot as of offset B0, chain id c
//! producer-state-<B1, 20 digits>.delta        chain c, B0 -> B1: producers changed since B0
//! producer-state-<B2, 20 digits>.delta        chain c, B1 -> B2: ...
//! ```
//!
//! Invariants:
//! - each link is as of a segment's base offset B, at most the active segment's base, and
//!   holds the state of the batches below B less the producers expired before it was
//!   written (a delta names them: tombstones);
//! - loading applies the full snapshot, then the deltas in offset order while each carries
//!   the full snapshot's chain id, starts where the state so far ends and ends at or
//!   below the active segment's base. It stops at the first corrupt file, missing link or
//!   link past that base, warning with the file's name; the rest is rebuilt from the log's
//!   batch headers, never read from a broken chain;
//! - a roll writes a delta while the deltas after the full snapshot stay smaller than it
//!   and fewer than [`DELTAS_MAX`]; otherwise a new full snapshot with a new chain id
//!   replaces the chain and its deltas are deleted (any left behind belong to another
//!   chain and are never applied). So a roll writes in proportion to what changed,
//!   amortised, and a partition holds at most `DELTAS_MAX + 1` of these files;
//! - every file is written whole (a temp file, fsynced under an fsync flush policy, then
//!   renamed) and ends with a CRC-32C of its contents;
//! - a chain that is not *sound* (a load found a file it could not apply, or a truncation
//!   removed batches below its end) is never extended: its next link is a new full
//!   snapshot, and if writing that fails, the old full snapshot is removed, so no stale
//!   chain can be applied after a crash.
//!
//! Retention and compaction leave the chain alone: neither touches the active segment,
//! and a link describes the batches as they were written, whatever later removed them.

mod format;

use crate::durability::write_atomically;
use crate::error::{IoContext, LogError};
use crate::producer_state::ProducerStates;
use format::DeltaHeader;
use kavka_model::Offset;
use std::path::{Path, PathBuf};

/// The full snapshot (the name version 0 and 1 checkpoints had).
pub(crate) const FULL_FILE: &str = "producer-state-checkpoint";
const DELTA_PREFIX: &str = "producer-state-";
const DELTA_SUFFIX: &str = ".delta";
/// Deltas after one full snapshot, at most: bounds the files per partition and what
/// opening reads.
pub const DELTAS_MAX: usize = 128;

/// The delta that brings the state to offset `to`.
pub(crate) fn delta_file_name(to: Offset) -> String {
    format!("{DELTA_PREFIX}{:020}{DELTA_SUFFIX}", to.0)
}

fn parse_delta_name(name: &str) -> Option<Offset> {
    let digits = name
        .strip_prefix(DELTA_PREFIX)?
        .strip_suffix(DELTA_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().map(Offset)
}

/// What brings a chain ending at `end` (`None`: no sound chain) to offset `at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkKind {
    /// It is there already.
    Nothing,
    /// The changes since `end`, if they do not outgrow the full snapshot.
    Delta,
    Full,
}

fn link_kind(end: Option<Offset>, at: Offset) -> LinkKind {
    match end {
        Some(end) if end == at => LinkKind::Nothing,
        Some(end) if end < at => LinkKind::Delta,
        // No chain, or one that reaches past `at` (the caller truncated below it).
        _ => LinkKind::Full,
    }
}

/// One more delta of `delta_bytes` after a full snapshot of `full_bytes` followed by
/// `deltas` deltas of `deltas_bytes` in all would outweigh the full snapshot, or exceed
/// [`DELTAS_MAX`]: write a new full snapshot instead.
fn delta_outgrows(full_bytes: u64, deltas: usize, deltas_bytes: u64, delta_bytes: u64) -> bool {
    deltas >= DELTAS_MAX || deltas_bytes.saturating_add(delta_bytes) > full_bytes
}

/// What loading does with one delta file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Apply,
    /// Not part of the chain (left from an earlier one); later files may still be.
    Skip(&'static str),
    /// The chain cannot go on past here.
    Stop(&'static str),
}

/// By its name alone, for the delta ending at `to` while the state read so far ends at
/// `end` and the log's active segment starts at `limit`; `None`: read it.
fn judge_name(end: Offset, limit: Offset, to: Offset) -> Option<Verdict> {
    if to <= end {
        Some(Verdict::Skip("it ends where the chain is already"))
    } else if to > limit {
        Some(Verdict::Stop(
            "it ends past the active segment's base (left from before a truncation)",
        ))
    } else {
        None
    }
}

/// By its header, for the delta named `to` after a full snapshot of chain `chain`.
fn judge_header(chain: u64, end: Offset, to: Offset, header: DeltaHeader) -> Verdict {
    if header.chain != chain {
        Verdict::Skip("it belongs to another chain")
    } else if header.to != to {
        Verdict::Stop("its name and its contents disagree")
    } else if header.from != end {
        Verdict::Stop("it does not start where the chain ends: a link is missing")
    } else {
        Verdict::Apply
    }
}

/// A chain id: random, so a delta left from one chain never matches another.
fn new_chain_id(dir: &Path) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one((dir, std::time::SystemTime::now()))
}

/// The producer state files of one partition directory, as written or read.
#[derive(Debug)]
pub(crate) struct SnapshotChain {
    dir: PathBuf,
    /// Written in each file: a delta is applied only after its own chain's full snapshot.
    id: u64,
    full_at: Offset,
    /// The full snapshot's size, which the deltas after it may not outgrow.
    full_bytes: u64,
    /// The deltas after the full snapshot: the offset each brings the state to, its size.
    deltas: Vec<(Offset, u64)>,
    /// The files on disk are this chain, nothing of it is missing or stale, and the state
    /// in memory counts its changes from its end. False until the first full snapshot and
    /// after a load that found anything else: the next link starts a new chain.
    sound: bool,
}

/// A chain read from disk, and the state as of its end.
#[derive(Debug)]
pub(crate) struct Loaded {
    /// Where the chain read ends: the offset `states` is as of.
    pub(crate) at: Offset,
    pub(crate) chain: SnapshotChain,
    pub(crate) states: ProducerStates,
}

impl SnapshotChain {
    /// No usable chain in `dir`: the first link will be a full snapshot.
    pub(crate) fn none(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            id: 0,
            full_at: Offset::ZERO,
            full_bytes: 0,
            deltas: Vec::new(),
            sound: false,
        }
    }

    /// The offset the state on disk is as of; `None` when the chain is not sound.
    pub(crate) fn end(&self) -> Option<Offset> {
        self.sound.then(|| self.last())
    }

    fn last(&self) -> Offset {
        self.deltas.last().map_or(self.full_at, |(to, _)| *to)
    }

    /// The batches below the chain's end changed (a truncation): it must not be extended.
    pub(crate) fn invalidate(&mut self) {
        self.sound = false;
    }

    /// Persists `states`, the state as of offset `at`, the active segment's base (at or
    /// past the chain's end): a delta of what changed since the chain's end, or a new
    /// full snapshot. On success the state's changes count from `at`; on failure nothing
    /// in memory changed.
    pub(crate) fn link(
        &mut self,
        states: &mut ProducerStates,
        at: Offset,
        fsync: bool,
    ) -> Result<(), LogError> {
        match (link_kind(self.end(), at), self.end()) {
            (LinkKind::Nothing, _) => Ok(()),
            (LinkKind::Delta, Some(from)) => self.write_delta(states, from, at, fsync),
            _ => self.write_full(states, at, fsync),
        }
    }

    fn write_delta(
        &mut self,
        states: &mut ProducerStates,
        from: Offset,
        to: Offset,
        fsync: bool,
    ) -> Result<(), LogError> {
        let header = DeltaHeader {
            chain: self.id,
            from,
            to,
        };
        let text = format::encode_delta(header, &states.changes());
        let bytes = text.len() as u64;
        let deltas_bytes = self.deltas.iter().map(|(_, b)| b).sum();
        if delta_outgrows(self.full_bytes, self.deltas.len(), deltas_bytes, bytes) {
            return self.write_full(states, to, fsync);
        }
        write_atomically(&self.dir.join(delta_file_name(to)), text.as_bytes(), fsync)?;
        self.deltas.push((to, bytes));
        states.mark_persisted();
        Ok(())
    }

    fn write_full(
        &mut self,
        states: &mut ProducerStates,
        at: Offset,
        fsync: bool,
    ) -> Result<(), LogError> {
        let id = new_chain_id(&self.dir);
        let text = format::encode_full(id, at, states);
        let path = self.dir.join(FULL_FILE);
        if let Err(e) = write_atomically(&path, text.as_bytes(), fsync) {
            if !self.sound {
                // Without its full snapshot no file of a stale chain is ever applied.
                remove_file_warning(&path);
            }
            return Err(e);
        }
        *self = Self {
            dir: std::mem::take(&mut self.dir),
            id,
            full_at: at,
            full_bytes: text.len() as u64,
            deltas: Vec::new(),
            sound: true,
        };
        states.mark_persisted();
        // Every delta in the directory now belongs to an earlier chain.
        match delta_files(&self.dir) {
            Ok(files) => files.iter().for_each(|(_, p)| remove_file_warning(p)),
            Err(e) => tracing::warn!(error = %e, "could not list old producer state deltas"),
        }
        Ok(())
    }

    /// Reads the chain in `dir` as far as it is sound and ends at or below `limit` (the
    /// active segment's base). `None`: no usable full snapshot (missing, corrupt or past
    /// `limit`). A file that cannot be applied is named in a warning, and the chain comes
    /// back unsound, so its next link is a new full snapshot, which removes the rest.
    pub(crate) fn load(dir: &Path, limit: Offset) -> Result<Option<Loaded>, LogError> {
        let files = delta_files(dir)?;
        let Some((full, full_bytes)) = read_full(dir, limit) else {
            return Ok(None);
        };
        let mut chain = Self {
            dir: dir.to_path_buf(),
            id: full.chain.unwrap_or(0),
            full_at: full.at,
            full_bytes,
            deltas: Vec::new(),
            sound: true,
        };
        let mut states = full.states;
        if full.chain.is_none() {
            // Versions 0 and 1 have no chain id for a delta to name: none applies.
            chain.sound = false;
            return Ok(Some(Loaded {
                at: chain.last(),
                chain,
                states,
            }));
        }
        for (to, path) in files {
            match chain.follow(&mut states, limit, to, &path) {
                Ok(Verdict::Apply) => {}
                Ok(Verdict::Skip(why)) => {
                    tracing::info!(file = %path.display(), why, "not applying a producer state delta");
                    chain.sound = false;
                }
                Ok(Verdict::Stop(why)) => {
                    tracing::warn!(file = %path.display(), why, "the producer state chain ends before this delta; rebuilding the rest from the log");
                    chain.sound = false;
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "the producer state chain ends at a corrupt delta; rebuilding the rest from the log");
                    chain.sound = false;
                    break;
                }
            }
        }
        Ok(Some(Loaded {
            at: chain.last(),
            chain,
            states,
        }))
    }

    /// Judges the delta file at `to` (named so) and applies it to `states`, the state as
    /// of the chain's end, when it continues the chain.
    fn follow(
        &mut self,
        states: &mut ProducerStates,
        limit: Offset,
        to: Offset,
        path: &Path,
    ) -> Result<Verdict, LogError> {
        if let Some(v) = judge_name(self.last(), limit, to) {
            return Ok(v);
        }
        let (delta, bytes) = read_delta(path)?;
        let verdict = judge_header(self.id, self.last(), to, delta.header);
        if verdict == Verdict::Apply {
            for (id, entry) in delta.changes {
                states.apply_persisted(id, entry);
            }
            self.deltas.push((to, bytes));
        }
        Ok(verdict)
    }
}

/// The full snapshot in `dir` and its size, if there is a usable one (a warning names
/// the file when it is not).
fn read_full(dir: &Path, limit: Offset) -> Option<(format::Full, u64)> {
    let path = dir.join(FULL_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "cannot read the producer state snapshot; rebuilding it from the log");
            return None;
        }
    };
    match format::decode_full(&text) {
        Ok(full) if full.at > limit => {
            tracing::warn!(file = %path.display(), at = %full.at, %limit, "the producer state snapshot is past the active segment's base; rebuilding it from the log");
            None
        }
        Ok(full) => Some((full, text.len() as u64)),
        Err(reason) => {
            tracing::warn!(file = %path.display(), %reason, "ignoring a corrupt producer state snapshot; rebuilding it from the log");
            None
        }
    }
}

fn read_delta(path: &Path) -> Result<(format::Delta, u64), LogError> {
    let text = std::fs::read_to_string(path).at(path)?;
    let delta = format::decode_delta(&text).map_err(|reason| LogError::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason,
    })?;
    Ok((delta, text.len() as u64))
}

/// Every delta file in `dir`, by the offset in its name.
fn delta_files(dir: &Path) -> Result<Vec<(Offset, PathBuf)>, LogError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let to = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(parse_delta_name);
        if let Some(to) = to {
            files.push((to, path));
        }
    }
    files.sort();
    Ok(files)
}

fn remove_file_warning(path: &Path) {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(file = %path.display(), error = %e, "could not remove a stale producer state file");
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
