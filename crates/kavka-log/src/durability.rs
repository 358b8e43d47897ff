//! Durability as an explicit type, and group-commit fsync.

use crate::error::{IoContext, LogError};
use kavka_model::Offset;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

/// When appended data is fsynced: Kafka's `flush.messages` and `flush.ms`, per topic,
/// with this broker's `--log-flush` as the default for every topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushPolicy {
    /// fsync once this many messages are not on disk; 1: every append is on disk before
    /// it is acknowledged. `i64::MAX`: never for this reason.
    pub messages: i64,
    /// fsync what has waited this long; `i64::MAX`: never for this reason.
    pub ms: i64,
}

impl Default for FlushPolicy {
    fn default() -> Self {
        Self::REPLICATED
    }
}

impl FlushPolicy {
    /// Acknowledged once written to the OS page cache (and, with replication, to the
    /// ISR's page caches): Kafka's default. Survives a process crash; a power loss on
    /// every replica at once can lose the unflushed tail.
    pub const REPLICATED: Self = Self {
        messages: i64::MAX,
        ms: i64::MAX,
    };
    /// Acknowledged only after an fsync covering the append (group commit): survives
    /// a power loss of this machine.
    pub const FSYNC: Self = Self {
        messages: 1,
        ms: i64::MAX,
    };

    /// `--log-flush`'s names.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "replicated" => Some(Self::REPLICATED),
            "fsync" => Some(Self::FSYNC),
            _ => None,
        }
    }

    /// `--log-flush`'s name for this policy, or `interval` for any other.
    pub fn name(self) -> &'static str {
        if self == Self::REPLICATED {
            "replicated"
        } else if self.every_append() {
            "fsync"
        } else {
            "interval"
        }
    }

    /// Every append is on disk before it is acknowledged.
    pub fn every_append(self) -> bool {
        self.messages <= 1
    }

    /// An append leaving `unflushed` messages not yet on disk must be fsynced before it
    /// is acknowledged.
    pub fn due_by_count(self, unflushed: i64) -> bool {
        unflushed >= self.messages
    }

    /// What was appended `age_ms` ago and is not yet on disk must be fsynced now.
    pub fn due_by_age(self, age_ms: i64) -> bool {
        self.ms != i64::MAX && age_ms >= self.ms
    }
}

/// The file to fsync to make every offset below `up_to` durable.
#[derive(Debug)]
pub struct SyncPoint {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) up_to: Offset,
}

/// Group commit: concurrent waiters share fsyncs. A waiter whose append finished before
/// some fsync began is covered by it and returns without its own.
///
/// Invariant: `durable_end` never exceeds the log end. A truncation lowers it
/// (`truncated`), and an fsync that began before a truncation does not raise it after.
#[derive(Debug, Default)]
pub struct GroupCommit {
    /// Every offset below this is on disk.
    durable_end: AtomicI64,
    /// Serialises fsyncs; waiters queue here and usually find themselves covered.
    syncing: Mutex<()>,
    /// Counts truncations; held while `durable_end` moves. A leaf lock: nothing else is
    /// taken while it is held (truncation holds the log lock, an fsync `syncing`).
    truncations: Mutex<u64>,
}

impl GroupCommit {
    pub fn durable_end(&self) -> Offset {
        Offset(self.durable_end.load(Ordering::Acquire))
    }

    /// Blocks until every offset below `end` is durable. `sync_point` is called (under
    /// the caller's log lock) only when an fsync is actually needed.
    pub fn wait_durable(
        &self,
        end: Offset,
        sync_point: impl FnOnce() -> Result<SyncPoint, LogError>,
    ) -> Result<(), LogError> {
        if self.durable_end() >= end {
            return Ok(());
        }
        let _turn = self
            .syncing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.durable_end() >= end {
            return Ok(());
        }
        let before = *self.lock_truncations();
        let point = sync_point()?;
        point.file.sync_data().at(&point.path)?;
        let truncations = self.lock_truncations();
        // A truncation since `sync_point` may have cut below `up_to`: claim nothing.
        if *truncations == before {
            self.durable_end.fetch_max(point.up_to.0, Ordering::AcqRel);
        }
        Ok(())
    }

    /// After the log was truncated to `end` (called under the log lock): the durable
    /// end does not stay above it, nor does an fsync already under way raise it again.
    pub fn truncated(&self, end: Offset) {
        let mut truncations = self.lock_truncations();
        *truncations += 1;
        self.durable_end.fetch_min(end.0, Ordering::AcqRel);
    }

    fn lock_truncations(&self) -> std::sync::MutexGuard<'_, u64> {
        self.truncations
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Replaces `path` whole: writes a temp file beside it (synced when `fsync`), then renames
/// it over `path`, so a reader or a crash sees the old contents or the new, never a mix.
pub(crate) fn write_atomically(
    path: &std::path::Path,
    bytes: &[u8],
    fsync: bool,
) -> Result<(), crate::error::LogError> {
    use crate::error::IoContext;
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).at(&tmp)?;
    f.write_all(bytes).at(&tmp)?;
    if fsync {
        f.sync_all().at(&tmp)?;
    }
    std::fs::rename(&tmp, path).at(path)
}

/// `path` with `suffix` appended to its file name (`a.log` → `a.log.tmp`).
pub(crate) fn with_suffix(path: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_os_string();
    s.push(suffix);
    PathBuf::from(s)
}

/// Removes `path`; a file already gone is no error.
pub(crate) fn remove_if_present(path: &std::path::Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(dir: &std::path::Path, up_to: i64) -> Result<SyncPoint, LogError> {
        let path = dir.join("f");
        Ok(SyncPoint {
            file: File::create(&path).at(&path)?,
            path,
            up_to: Offset(up_to),
        })
    }

    #[test]
    fn a_truncation_lowers_the_durable_end_even_during_an_fsync() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let commit = GroupCommit::default();
        commit
            .wait_durable(Offset(100), || point(dir.path(), 100))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(commit.durable_end(), Offset(100));
        // A follower truncates to 90 and appends again: those appends need an fsync.
        commit.truncated(Offset(90));
        assert_eq!(commit.durable_end(), Offset(90));
        // A truncation after the fsync's sync point was taken: the fsync claims nothing.
        commit
            .wait_durable(Offset(95), || {
                let p = point(dir.path(), 100);
                commit.truncated(Offset(80));
                p
            })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(commit.durable_end(), Offset(80));
        // Nothing in between: the fsync counts again.
        commit
            .wait_durable(Offset(85), || point(dir.path(), 85))
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(commit.durable_end(), Offset(85));
    }

    #[test]
    fn any_fsync_policy_but_replicated_is_named_and_judged() {
        // (policy, name, every append, due after 3 unflushed, due after 250 ms)
        let table = [
            (FlushPolicy::REPLICATED, "replicated", false, false, false),
            (FlushPolicy::FSYNC, "fsync", true, true, false),
            (
                FlushPolicy {
                    messages: 3,
                    ms: i64::MAX,
                },
                "interval",
                false,
                true,
                false,
            ),
            (
                FlushPolicy {
                    messages: i64::MAX,
                    ms: 200,
                },
                "interval",
                false,
                false,
                true,
            ),
        ];
        for (p, name, every, by_count, by_age) in table {
            assert_eq!(
                (
                    p.name(),
                    p.every_append(),
                    p.due_by_count(3),
                    p.due_by_age(250)
                ),
                (name, every, by_count, by_age),
                "{p:?}"
            );
        }
        assert_eq!(FlushPolicy::from_name("fsync"), Some(FlushPolicy::FSYNC));
        assert_eq!(FlushPolicy::from_name("sometimes"), None);
    }
}
