//! Segment files the log no longer uses, waiting out `file.delete.delay.ms` before they
//! are unlinked (Kafka's asynchronous segment deletion).
//!
//! Invariants: a retired file has already left the log's segment map and been renamed to
//! `<name>.deleted` (or hard-linked there, when compaction renames a cleaned copy over
//! it), so nothing the log serves ever depends on it; unlinking it is only reclaiming
//! space, off the append path. A crash forgets the queue, and opening the log removes
//! every `*.deleted` file it finds (as Kafka does at start-up). With a delay of 0 files
//! are unlinked at once, as before this existed.
//!
//! This module knows paths and clocks only: nothing of segments, indexes or offsets.

use crate::durability::{remove_if_present as remove, with_suffix};
use crate::error::{IoContext, LogError};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The suffix a retired file carries until it is unlinked.
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// `path` with [`DELETED_SUFFIX`] appended.
pub(crate) fn deleted_path(path: &Path) -> PathBuf {
    with_suffix(path, DELETED_SUFFIX)
}

/// Retired files in the order they were retired (so due times are non-decreasing for one
/// delay; a shortened delay only makes later entries due earlier, checked one by one).
#[derive(Debug, Default)]
pub(crate) struct RetiredFiles {
    queue: VecDeque<(Instant, PathBuf)>,
}

impl RetiredFiles {
    /// Takes `path` out of the log's name space: renamed to `<path>.deleted`, to be
    /// unlinked once `delay` has passed; unlinked now when `delay` is zero. A file that
    /// is already gone is no error.
    pub(crate) fn retire(
        &mut self,
        path: &Path,
        delay: Duration,
        now: Instant,
    ) -> Result<(), LogError> {
        if delay.is_zero() {
            return remove(path);
        }
        let to = deleted_path(path);
        match std::fs::rename(path, &to) {
            Ok(()) => {
                self.queue.push_back((now + delay, to));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(path),
        }
    }

    /// Keeps the file now at `path` as `<path>.deleted` (a second name for the same
    /// data) before the caller renames a replacement over `path`.
    pub(crate) fn retire_copy(
        &mut self,
        path: &Path,
        delay: Duration,
        now: Instant,
    ) -> Result<(), LogError> {
        if delay.is_zero() {
            return Ok(());
        }
        let to = deleted_path(path);
        remove(&to)?;
        std::fs::hard_link(path, &to).at(&to)?;
        self.queue.push_back((now + delay, to));
        Ok(())
    }

    /// When the next retired file is due, if any is waiting.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.queue.iter().map(|(due, _)| *due).min()
    }

    /// Unlinks every retired file due by `now`; returns how many. A file that cannot be
    /// removed stays queued and its error is returned after the others were tried.
    pub(crate) fn purge(&mut self, now: Instant) -> Result<usize, LogError> {
        let mut removed = 0;
        let mut first_error = None;
        let mut waiting = VecDeque::with_capacity(self.queue.len());
        for (due, path) in self.queue.drain(..) {
            if due > now {
                waiting.push_back((due, path));
                continue;
            }
            match remove(&path) {
                Ok(()) => removed += 1,
                Err(e) => {
                    waiting.push_back((due, path));
                    first_error.get_or_insert(e);
                }
            }
        }
        self.queue = waiting;
        match first_error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// Retired files not yet unlinked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, b"segment").unwrap();
        p
    }

    #[test]
    fn retired_files_wait_out_their_delay() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut r = RetiredFiles::default();
        let a = file(dir.path(), "a.log");
        let b = file(dir.path(), "b.log");
        r.retire(&a, Duration::from_secs(10), t0).unwrap();
        r.retire(&b, Duration::from_secs(20), t0).unwrap();
        assert!(!a.exists() && deleted_path(&a).exists(), "renamed, kept");
        assert_eq!(r.next_due(), Some(t0 + Duration::from_secs(10)));
        // (time, files removed, files left)
        let table = [(5, 0, 2), (10, 1, 1), (19, 0, 1), (20, 1, 0), (30, 0, 0)];
        for (secs, removed, left) in table {
            assert_eq!(
                r.purge(t0 + Duration::from_secs(secs)).unwrap(),
                removed,
                "at {secs} s"
            );
            assert_eq!(r.len(), left, "at {secs} s");
        }
        assert!(!deleted_path(&a).exists() && !deleted_path(&b).exists());
        assert_eq!(r.next_due(), None);
    }

    #[test]
    fn no_delay_unlinks_at_once_and_missing_files_are_no_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = RetiredFiles::default();
        let a = file(dir.path(), "a.log");
        r.retire(&a, Duration::ZERO, Instant::now()).unwrap();
        assert!(!a.exists() && !deleted_path(&a).exists());
        assert_eq!(r.len(), 0);
        r.retire(
            &dir.path().join("gone.log"),
            Duration::from_secs(1),
            Instant::now(),
        )
        .unwrap();
        assert_eq!(r.len(), 0, "nothing to wait for");
    }

    #[test]
    fn a_copy_keeps_the_old_data_under_the_deleted_name() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = Instant::now();
        let mut r = RetiredFiles::default();
        let a = file(dir.path(), "a.log");
        r.retire_copy(&a, Duration::from_secs(1), t0).unwrap();
        std::fs::write(dir.path().join("new"), b"cleaned").unwrap();
        std::fs::rename(dir.path().join("new"), &a).unwrap();
        assert_eq!(std::fs::read(deleted_path(&a)).unwrap(), b"segment");
        assert_eq!(std::fs::read(&a).unwrap(), b"cleaned");
        assert_eq!(r.purge(t0 + Duration::from_secs(1)).unwrap(), 1);
        assert!(!deleted_path(&a).exists() && a.exists());
    }
}
