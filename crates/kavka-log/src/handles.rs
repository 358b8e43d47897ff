//! File handles of closed (sealed) segments: opened when read, kept in one process-wide
//! cache with a bound, least recently used closed first.
//!
//! The active segment of each partition keeps its own handles (it is written all the
//! time); a closed segment keeps none. Without this a node held three descriptors per
//! segment (log, offset index, time index: Kafka's model, which asks operators for a very
//! high `ulimit -n`), so many partitions or small segments ran out of descriptors and
//! every partition on the node refused writes.
//!
//! Invariants:
//! - at most `capacity` handles are held by the cache; a handle being read when it is
//!   evicted stays open until that read ends (it is shared), never longer;
//! - entries are keyed by a segment's unique id, never its path: a segment replaced at
//!   the same path (compaction, truncation and re-append) never reads the old file;
//! - a segment forgets its entry when it is dropped, so a deleted segment's file is
//!   closed (and its disk space freed) at once.
//!
//! Must not depend on anything above the file system.

use crate::error::{IoContext, LogError};
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

/// Closed segments' handles a node keeps open unless told otherwise.
pub const DEFAULT_CLOSED_SEGMENT_HANDLES: usize = 1024;

/// A bounded, least-recently-used set of read-only handles, by segment id.
#[derive(Debug)]
pub(crate) struct HandleCache {
    capacity: AtomicUsize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Bumped on every use: an entry's stamp says how recently it was used.
    clock: u64,
    open: HashMap<u64, (Arc<File>, u64)>,
    /// The same entries by stamp, least recently used first.
    by_use: BTreeMap<u64, u64>,
}

impl State {
    /// Stamps entry `id` as used now.
    fn touch(&mut self, id: u64) -> Option<Arc<File>> {
        self.clock += 1;
        let now = self.clock;
        let (file, used) = self.open.get_mut(&id)?;
        self.by_use.remove(used);
        *used = now;
        self.by_use.insert(now, id);
        Some(Arc::clone(file))
    }

    fn insert(&mut self, id: u64, file: Arc<File>) {
        self.remove(id);
        self.clock += 1;
        let now = self.clock;
        self.open.insert(id, (file, now));
        self.by_use.insert(now, id);
    }

    fn remove(&mut self, id: u64) {
        if let Some((_, used)) = self.open.remove(&id) {
            self.by_use.remove(&used);
        }
    }
}

impl HandleCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: AtomicUsize::new(capacity.max(1)),
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_capacity(&self, capacity: usize) {
        self.capacity.store(capacity.max(1), Ordering::Relaxed);
        let mut s = self.state();
        self.evict_to(&mut s, capacity.max(1));
    }

    /// The handle of segment `id`, opening `path` read-only when it is not held.
    pub(crate) fn get(&self, id: u64, path: &Path) -> Result<Arc<File>, LogError> {
        if let Some(file) = self.state().touch(id) {
            return Ok(file);
        }
        // Opened outside the lock: a slow disk delays only this read.
        let file = Arc::new(File::open(path).at(path)?);
        let mut s = self.state();
        let capacity = self.capacity.load(Ordering::Relaxed);
        self.evict_to(&mut s, capacity.saturating_sub(1));
        s.insert(id, Arc::clone(&file));
        Ok(file)
    }

    /// Closes segment `id`'s handle, if held.
    pub(crate) fn forget(&self, id: u64) {
        self.state().remove(id);
    }

    /// Closes least recently used handles until at most `keep` are held.
    fn evict_to(&self, s: &mut State, keep: usize) {
        while s.open.len() > keep {
            let Some((_, oldest)) = s.by_use.pop_first() else {
                return;
            };
            s.open.remove(&oldest);
        }
    }

    #[cfg(test)]
    fn held(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.state().open.keys().copied().collect();
        ids.sort();
        ids
    }
}

/// The node's cache.
pub(crate) static HANDLES: LazyLock<HandleCache> =
    LazyLock::new(|| HandleCache::new(DEFAULT_CLOSED_SEGMENT_HANDLES));

/// A fresh id for a segment.
pub(crate) fn next_segment_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Sets how many closed segments' files the node keeps open for reads (from its open
/// file limit: the rest of the limit is for active segments, sockets and the stores).
pub fn set_closed_segment_handles(capacity: usize) {
    HANDLES.set_capacity(capacity);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_recently_used_handles_close_first_and_forgotten_ones_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<_> = (0..4)
            .map(|i| {
                let p = dir.path().join(format!("{i}.log"));
                std::fs::write(&p, [i as u8]).unwrap();
                p
            })
            .collect();
        let cache = HandleCache::new(2);
        cache.get(1, &paths[1]).unwrap();
        cache.get(2, &paths[2]).unwrap();
        cache.get(1, &paths[1]).unwrap(); // 2 is now the least recently used
        cache.get(3, &paths[3]).unwrap();
        assert_eq!(cache.held(), vec![1, 3]);

        // A handle in use when evicted still reads its own file.
        let in_use = cache.get(1, &paths[1]).unwrap();
        cache.get(0, &paths[0]).unwrap();
        cache.get(2, &paths[2]).unwrap();
        assert_eq!(cache.held(), vec![0, 2]);
        let mut b = [0u8; 1];
        std::os::unix::fs::FileExt::read_exact_at(&*in_use, &mut b, 0).unwrap();
        assert_eq!(b, [1]);

        cache.forget(0);
        assert_eq!(cache.held(), vec![2]);
        cache.set_capacity(0);
        assert!(cache.held().len() <= 1);

        // A missing file is an error naming it, and nothing is held for it.
        let e = cache.get(9, &dir.path().join("gone.log")).unwrap_err();
        assert!(e.to_string().contains("gone.log"), "{e}");
        assert!(!cache.held().contains(&9));
    }
}
