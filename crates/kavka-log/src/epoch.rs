//! The leader-epoch cache: for each leader epoch, the first offset written in it
//! (Kafka's `leader-epoch-checkpoint`). Followers use it to find where their log diverges
//! from the leader's (KIP-101 / KIP-279).
//!
//! Invariants: epochs and start offsets strictly increase down the list; every start
//! offset is below the log end. The file is rewritten whole (temp file + rename) on change.

use crate::error::{IoContext, LogError};
use kavka_model::{LeaderEpoch, Offset};
use std::path::{Path, PathBuf};

pub(crate) const CHECKPOINT_FILE: &str = "leader-epoch-checkpoint";
const VERSION: &str = "0";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: LeaderEpoch,
    pub start_offset: Offset,
}

#[derive(Debug)]
pub struct LeaderEpochCache {
    path: PathBuf,
    entries: Vec<EpochEntry>,
    fsync: bool,
}

impl LeaderEpochCache {
    /// Loads the checkpoint in `dir`; a missing file is an empty cache, a malformed one is
    /// an error naming the file.
    pub(crate) fn load(dir: &Path, fsync: bool) -> Result<Self, LogError> {
        let path = dir.join(CHECKPOINT_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).at(&path),
        };
        let corrupt = |reason: String| LogError::Corrupt {
            path: path.clone(),
            position: 0,
            reason,
        };
        let mut entries = Vec::new();
        let mut lines = text.lines();
        if let Some(version) = lines.next() {
            if version.trim() != VERSION {
                return Err(corrupt(format!("unknown checkpoint version '{version}'")));
            }
            let count: usize = lines
                .next()
                .and_then(|l| l.trim().parse().ok())
                .ok_or_else(|| corrupt("missing entry count".into()))?;
            for line in lines.by_ref().take(count) {
                let mut parts = line.split_whitespace();
                let (Some(e), Some(o), None) = (parts.next(), parts.next(), parts.next()) else {
                    return Err(corrupt(format!("malformed line '{line}'")));
                };
                let epoch = e.parse().map_err(|_| corrupt(format!("bad epoch '{e}'")))?;
                let start = o
                    .parse()
                    .map_err(|_| corrupt(format!("bad offset '{o}'")))?;
                entries.push(EpochEntry {
                    epoch: LeaderEpoch(epoch),
                    start_offset: Offset(start),
                });
            }
            if entries.len() != count {
                return Err(corrupt(format!(
                    "expected {count} entries, found {}",
                    entries.len()
                )));
            }
            if entries
                .windows(2)
                .any(|w| w[0].epoch >= w[1].epoch || w[0].start_offset > w[1].start_offset)
            {
                return Err(corrupt("entries are not increasing".into()));
            }
        }
        Ok(Self {
            path,
            entries,
            fsync,
        })
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<LeaderEpoch> {
        self.entries.last().map(|e| e.epoch)
    }

    /// Records that `epoch` starts at `start_offset`, if it is newer than the latest.
    pub(crate) fn assign(
        &mut self,
        epoch: LeaderEpoch,
        start_offset: Offset,
    ) -> Result<(), LogError> {
        if epoch.0 < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return Ok(());
        }
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        self.write()
    }

    /// KIP-279: the largest epoch `<= requested` we know, and its end offset (the start of
    /// the next epoch, or `log_end` for the latest). `None` if every epoch we know is newer.
    pub fn end_offset_for(
        &self,
        requested: LeaderEpoch,
        log_end: Offset,
    ) -> Option<(LeaderEpoch, Offset)> {
        let i = self.entries.partition_point(|e| e.epoch <= requested);
        let found = self.entries.get(i.checked_sub(1)?)?;
        let end = self
            .entries
            .get(i)
            .map_or(log_end, |next| next.start_offset);
        Some((found.epoch, end))
    }

    /// Drops epochs that start at or after `end` (after a truncation).
    pub(crate) fn truncate_from_end(&mut self, end: Offset) -> Result<(), LogError> {
        let n = self.entries.partition_point(|e| e.start_offset < end);
        if n != self.entries.len() {
            self.entries.truncate(n);
            self.write()?;
        }
        Ok(())
    }

    /// Clips epochs that end before `start` (after retention); the epoch covering `start`
    /// now starts there.
    pub(crate) fn truncate_from_start(&mut self, start: Offset) -> Result<(), LogError> {
        let covering = self.entries.partition_point(|e| e.start_offset <= start);
        if covering == 0 {
            return Ok(());
        }
        let first_kept = covering - 1;
        if first_kept == 0 && self.entries[0].start_offset == start {
            return Ok(());
        }
        self.entries.drain(..first_kept);
        self.entries[0].start_offset = start;
        self.write()
    }

    fn write(&self) -> Result<(), LogError> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for e in &self.entries {
            text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
        }
        crate::durability::write_atomically(&self.path, text.as_bytes(), self.fsync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> (tempfile::TempDir, LeaderEpochCache) {
        let dir = tempfile::tempdir().unwrap();
        let mut c = LeaderEpochCache::load(dir.path(), false).unwrap();
        for &(e, o) in entries {
            c.assign(LeaderEpoch(e), Offset(o)).unwrap();
        }
        (dir, c)
    }

    #[test]
    fn end_offset_for_follows_kip_279() {
        let (_d, c) = cache(&[(1, 0), (3, 10), (4, 25)]);
        let leo = Offset(40);
        // Table: requested epoch -> (epoch found, end offset).
        let table = [
            (0, None),
            (1, Some((1, 10))),
            (2, Some((1, 10))), // epoch 2 unknown: the largest below it, ending where 3 starts
            (3, Some((3, 25))),
            (4, Some((4, 40))),
            (9, Some((4, 40))),
        ];
        for (req, want) in table {
            let got = c
                .end_offset_for(LeaderEpoch(req), leo)
                .map(|(e, o)| (e.0, o.0));
            assert_eq!(got, want, "requested epoch {req}");
        }
    }

    #[test]
    fn persists_and_truncates() {
        let (dir, mut c) = cache(&[(1, 0), (2, 5), (2, 7), (1, 9), (5, 10)]);
        assert_eq!(c.entries().len(), 3, "stale or repeated epochs are ignored");
        c.truncate_from_end(Offset(10)).unwrap();
        assert_eq!(c.latest_epoch(), Some(LeaderEpoch(2)));
        c.truncate_from_start(Offset(6)).unwrap();
        let back = LeaderEpochCache::load(dir.path(), false).unwrap();
        assert_eq!(
            back.entries(),
            &[EpochEntry {
                epoch: LeaderEpoch(2),
                start_offset: Offset(6)
            }]
        );
    }

    #[test]
    fn malformed_checkpoint_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT_FILE), "0\n2\n1 0\nxx\n").unwrap();
        let err = LeaderEpochCache::load(dir.path(), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(CHECKPOINT_FILE) && err.contains("malformed line 'xx'"),
            "{err}"
        );
    }
}
