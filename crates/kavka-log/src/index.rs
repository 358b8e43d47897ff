//! Sparse indexes of one segment, kept in memory and appended to their files.
//!
//! - offset index: 8-byte entries `(relative offset u32, position u32)`, big-endian;
//! - time index: 12-byte entries `(max timestamp so far i64, relative offset u32)`.
//!
//! Entries are strictly increasing in both fields. A file whose size is not a multiple
//! of the entry size, or whose entries are not increasing, is rebuilt from the log.
//!
//! Lookups use the entries in memory: the file is opened only to change it (appends and
//! truncation of the active segment) and closed when its segment is sealed, so closed
//! segments hold no descriptors for their indexes.
//!
//! Appends reach the file in groups ([`FLUSH_EVERY`] entries, and whatever is pending
//! when the segment is sealed or synced or its rebuilt index renamed), not one small
//! write per entry: on a busy partition every batch adds an entry to both indexes, and
//! two more syscalls per batch, each extending a file, cost about 2% of a loaded
//! broker's CPU (BENCHMARKS.md). Entries not yet in the file exist only for the active
//! segment, whose indexes are rebuilt from its log on every open, so a crash loses none
//! that an open relies on.

use crate::error::{IoContext, LogError};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// Pending entries are written to the file once this many have gathered.
pub(crate) const FLUSH_EVERY: usize = 256;

/// One index file: in-memory entries mirrored by an append-only file.
#[derive(Debug)]
pub(crate) struct IndexFile<E> {
    path: PathBuf,
    /// Open while the index changes (its segment is active); `None` otherwise.
    file: Option<File>,
    entries: Vec<E>,
    /// `entries[..written]` are in the file; the rest are pending.
    written: usize,
}

pub(crate) trait Entry: Copy {
    const SIZE: usize;
    fn write(&self, out: &mut Vec<u8>);
    fn read(b: &[u8]) -> Self;
    /// Whether `next` may follow `self`.
    fn precedes(&self, next: &Self) -> bool;
}

impl Entry for OffsetEntry {
    const SIZE: usize = 8;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
        out.extend_from_slice(&self.position.to_be_bytes());
    }
    fn read(b: &[u8]) -> Self {
        Self {
            relative_offset: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            position: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        }
    }
    fn precedes(&self, next: &Self) -> bool {
        self.relative_offset < next.relative_offset && self.position < next.position
    }
}

impl Entry for TimeEntry {
    const SIZE: usize = 12;
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn read(b: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&b[..8]);
        Self {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([b[8], b[9], b[10], b[11]]),
        }
    }
    fn precedes(&self, next: &Self) -> bool {
        self.timestamp < next.timestamp && self.relative_offset <= next.relative_offset
    }
}

impl<E: Entry> IndexFile<E> {
    /// Opens an index, loading its entries; `None` when the file is missing or invalid
    /// (the caller then rebuilds it with [`IndexFile::create`]).
    pub(crate) fn load(path: &Path) -> Result<Option<Self>, LogError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).at(path),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        let entries: Vec<E> = bytes.chunks_exact(E::SIZE).map(E::read).collect();
        if entries.windows(2).any(|w| !w[0].precedes(&w[1])) {
            return Ok(None);
        }
        Ok(Some(Self {
            path: path.to_path_buf(),
            file: None,
            written: entries.len(),
            entries,
        }))
    }

    /// Creates (or empties) the index file.
    pub(crate) fn create(path: &Path) -> Result<Self, LogError> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(path)
            .at(path)?;
        drop(file);
        Ok(Self {
            path: path.to_path_buf(),
            file: None,
            entries: Vec::new(),
            written: 0,
        })
    }

    /// Moves the file to `path` (a rebuilt index taking its final name), with every
    /// entry in it first: a file under its final name is trusted by the next open.
    pub(crate) fn rename_to(&mut self, path: &Path) -> Result<(), LogError> {
        self.flush()?;
        std::fs::rename(&self.path, path).at(path)?;
        self.path = path.to_path_buf();
        Ok(())
    }

    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }

    /// How many entries the index holds.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }

    /// Appends an entry if it keeps the index increasing; otherwise does nothing. The
    /// file gets it with the next [`FLUSH_EVERY`] or at the next flush.
    pub(crate) fn append(&mut self, e: E) -> Result<(), LogError> {
        if self.entries.last().is_some_and(|last| !last.precedes(&e)) {
            return Ok(());
        }
        self.entries.push(e);
        if self.entries.len() - self.written >= FLUSH_EVERY {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the pending entries to the file, in one write.
    pub(crate) fn flush(&mut self) -> Result<(), LogError> {
        if self.written == self.entries.len() {
            return Ok(());
        }
        let mut buf = Vec::with_capacity((self.entries.len() - self.written) * E::SIZE);
        for e in &self.entries[self.written..] {
            e.write(&mut buf);
        }
        let path = self.path.clone();
        self.file()?.write_all(&buf).at(&path)?;
        self.written = self.entries.len();
        Ok(())
    }

    /// Keeps only the entries for which `keep` holds (a prefix), shortening the file
    /// when it held more.
    pub(crate) fn truncate_while(&mut self, keep: impl Fn(&E) -> bool) -> Result<(), LogError> {
        let n = self.entries.iter().take_while(|e| keep(e)).count();
        if n == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(n);
        if n < self.written {
            let path = self.path.clone();
            self.file()?.set_len((n * E::SIZE) as u64).at(&path)?;
            self.written = n;
        }
        Ok(())
    }

    pub(crate) fn sync(&mut self) -> Result<(), LogError> {
        self.flush()?;
        let path = self.path.clone();
        self.file()?.sync_data().at(&path)
    }

    /// The file, opened for appends when it is not open.
    fn file(&mut self) -> Result<&mut File, LogError> {
        match &mut self.file {
            Some(f) => Ok(f),
            slot => {
                let f = OpenOptions::new()
                    .append(true)
                    .open(&self.path)
                    .at(&self.path)?;
                Ok(slot.insert(f))
            }
        }
    }

    /// Writes what is pending and closes the file (the segment was sealed); the next
    /// change opens it again.
    pub(crate) fn release(&mut self) -> Result<(), LogError> {
        self.flush()?;
        self.file = None;
        Ok(())
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl IndexFile<OffsetEntry> {
    /// The last entry at or below `relative_offset`: where a scan for it may start.
    pub(crate) fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let i = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        i.checked_sub(1).map(|i| self.entries[i])
    }
}

impl IndexFile<TimeEntry> {
    /// The last entry whose max timestamp is below `timestamp`: every record before its
    /// offset is older than `timestamp`, so a scan may start there.
    pub(crate) fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        let i = self.entries.partition_point(|e| e.timestamp < timestamp);
        i.checked_sub(1).map(|i| self.entries[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_load_lookup_truncate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = IndexFile::<OffsetEntry>::create(&path).unwrap();
        for i in 1..=5u32 {
            idx.append(OffsetEntry {
                relative_offset: i * 10,
                position: i * 100,
            })
            .unwrap();
        }
        // Not increasing: ignored.
        idx.append(OffsetEntry {
            relative_offset: 5,
            position: 1,
        })
        .unwrap();
        assert_eq!(idx.lookup(9), None);
        assert_eq!(idx.lookup(10).unwrap().position, 100);
        assert_eq!(idx.lookup(35).unwrap().position, 300);
        assert_eq!(idx.lookup(1000).unwrap().position, 500);

        idx.flush().unwrap();
        let loaded = IndexFile::<OffsetEntry>::load(&path).unwrap().unwrap();
        assert_eq!(loaded.entries(), idx.entries());

        idx.truncate_while(|e| e.relative_offset < 30).unwrap();
        let loaded = IndexFile::<OffsetEntry>::load(&path).unwrap().unwrap();
        assert_eq!(loaded.entries().len(), 2);
    }

    fn entry(i: u32) -> OffsetEntry {
        OffsetEntry {
            relative_offset: i,
            position: i * 100,
        }
    }

    fn on_disk(path: &Path) -> Vec<OffsetEntry> {
        IndexFile::<OffsetEntry>::load(path)
            .unwrap()
            .unwrap()
            .entries
    }

    #[test]
    fn entries_reach_the_file_in_groups_and_all_of_them_at_release() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut idx = IndexFile::<OffsetEntry>::create(&path).unwrap();
        for i in 0..FLUSH_EVERY as u32 - 1 {
            idx.append(entry(i)).unwrap();
        }
        assert_eq!(on_disk(&path), [], "pending until a group gathers");
        idx.append(entry(FLUSH_EVERY as u32)).unwrap();
        assert_eq!(on_disk(&path), idx.entries(), "a whole group in one write");
        for i in 1..=3 {
            idx.append(entry(FLUSH_EVERY as u32 + i)).unwrap();
        }
        assert_eq!(on_disk(&path).len(), FLUSH_EVERY);
        idx.release().unwrap();
        assert_eq!(on_disk(&path), idx.entries());
        assert_eq!(on_disk(&path).len(), FLUSH_EVERY + 3);
    }

    /// Table: entries written, entries pending, the prefix kept -> the file after the
    /// truncation, and after a flush.
    #[test]
    fn truncation_shortens_the_file_only_where_it_held_what_is_dropped() {
        for (written, pending, keep, file_after, flushed) in [
            (4, 3, 7, 4, 7), // nothing dropped
            (4, 3, 5, 4, 5), // only pending entries dropped: the file is untouched
            (4, 3, 4, 4, 4), // exactly the pending ones
            (4, 3, 2, 2, 2), // into the written ones: the file is cut
            (4, 0, 0, 0, 0),
            (0, 3, 1, 0, 1),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("0.index");
            let mut idx = IndexFile::<OffsetEntry>::create(&path).unwrap();
            for i in 0..written {
                idx.append(entry(i)).unwrap();
            }
            idx.flush().unwrap();
            for i in written..written + pending {
                idx.append(entry(i)).unwrap();
            }
            idx.truncate_while(|e| e.relative_offset < keep).unwrap();
            let case = (written, pending, keep);
            assert_eq!(on_disk(&path).len(), file_after as usize, "{case:?}");
            idx.flush().unwrap();
            assert_eq!(on_disk(&path).len(), flushed as usize, "{case:?}");
            assert_eq!(on_disk(&path), idx.entries(), "{case:?}");
            // Appends after a truncation continue the file where the index ends.
            idx.append(entry(100)).unwrap();
            idx.release().unwrap();
            assert_eq!(on_disk(&path), idx.entries(), "{case:?}");
        }
    }

    #[test]
    fn a_rebuilt_index_takes_its_final_name_with_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("0.index.tmp");
        let done = dir.path().join("0.index");
        let mut idx = IndexFile::<OffsetEntry>::create(&tmp).unwrap();
        for i in 0..5 {
            idx.append(entry(i)).unwrap();
        }
        idx.rename_to(&done).unwrap();
        assert_eq!(on_disk(&done).len(), 5);
    }

    #[test]
    fn invalid_files_load_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let torn = dir.path().join("torn.index");
        std::fs::write(&torn, [0u8; 7]).unwrap();
        assert!(IndexFile::<OffsetEntry>::load(&torn).unwrap().is_none());
        let unordered = dir.path().join("unordered.timeindex");
        let mut bytes = Vec::new();
        TimeEntry {
            timestamp: 9,
            relative_offset: 1,
        }
        .write(&mut bytes);
        TimeEntry {
            timestamp: 5,
            relative_offset: 2,
        }
        .write(&mut bytes);
        std::fs::write(&unordered, bytes).unwrap();
        assert!(IndexFile::<TimeEntry>::load(&unordered).unwrap().is_none());
        assert!(
            IndexFile::<TimeEntry>::load(&dir.path().join("missing"))
                .unwrap()
                .is_none()
        );
    }
}
