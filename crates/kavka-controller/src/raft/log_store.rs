//! The Raft log, vote, committed and last-purged log ids in sled.
//!
//! Keys in the `raft-log` tree are big-endian log indexes, so sled's order is log order.
//! Durability: `append` calls openraft's callback only after the flusher's next flush, and
//! `save_vote` returns only after its flush — nothing is acknowledged before it is on disk.
//! Writes are serialised by `&mut self` (openraft issues them one at a time).

use super::{json_err, sled_err};
use crate::types::TypeConfig;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const LAST_PURGED: &[u8] = b"last-purged";

#[derive(Clone, Debug)]
pub struct SledLogStore {
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    flusher: super::Flusher,
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl SledLogStore {
    pub(crate) fn new(db: &sled::Db, flusher: super::Flusher) -> io::Result<Self> {
        Ok(Self {
            flusher,
            db: db.clone(),
            log: db.open_tree("raft-log").map_err(sled_err)?,
            meta: db.open_tree("raft-meta").map_err(sled_err)?,
        })
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, k: &[u8]) -> io::Result<Option<T>> {
        match self.meta.get(k).map_err(sled_err)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v).map_err(json_err)?)),
            None => Ok(None),
        }
    }

    fn put_meta<T: serde::Serialize>(&self, k: &[u8], v: &T) -> io::Result<()> {
        let bytes = serde_json::to_vec(v).map_err(json_err)?;
        self.meta.insert(k, bytes).map_err(sled_err)?;
        Ok(())
    }

    /// Bytes sled uses on disk (for the space-growth check).
    pub fn size_on_disk(&self) -> io::Result<u64> {
        self.db.size_on_disk().map_err(sled_err)
    }

    /// Entries currently in the log (after purges).
    pub fn len(&self) -> usize {
        self.log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.log.is_empty()
    }
}

impl RaftLogReader<TypeConfig> for SledLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<EntryOf<TypeConfig>>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(&x) => Bound::Included(key(x)),
            Bound::Excluded(&x) => Bound::Excluded(key(x)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(&x) => Bound::Included(key(x)),
            Bound::Excluded(&x) => Bound::Excluded(key(x)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for item in self.log.range::<[u8; 8], _>((start, end)) {
            let (_, v) = item.map_err(sled_err)?;
            out.push(serde_json::from_slice(&v).map_err(json_err)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        self.get_meta(VOTE)
    }
}

impl RaftLogStorage<TypeConfig> for SledLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id: Option<LogIdOf<TypeConfig>> = self.get_meta(LAST_PURGED)?;
        let last = match self.log.last().map_err(sled_err)? {
            Some((_, v)) => {
                let e: EntryOf<TypeConfig> = serde_json::from_slice(&v).map_err(json_err)?;
                Some(e.log_id())
            }
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &VoteOf<TypeConfig>) -> Result<(), io::Error> {
        self.put_meta(VOTE, vote)?;
        self.flusher.flush().await?;
        Ok(())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        // Not flushed on its own: a lost update only means re-applying from the last
        // flushed value, which is safe.
        self.put_meta(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        Ok(self
            .get_meta::<Option<LogIdOf<TypeConfig>>>(COMMITTED)?
            .flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = EntryOf<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = sled::Batch::default();
        for entry in entries {
            let bytes = serde_json::to_vec(&entry).map_err(json_err)?;
            batch.insert(&key(entry.index()), bytes);
        }
        self.log.apply_batch(batch).map_err(sled_err)?;
        // Readable now; acknowledged once on disk.
        self.flusher.after_flush(callback);
        Ok(())
    }

    async fn truncate_after(
        &mut self,
        last_log_id: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        let from = last_log_id.map_or(0, |id| id.index() + 1);
        let mut batch = sled::Batch::default();
        for item in self.log.range(key(from)..) {
            let (k, _) = item.map_err(sled_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(sled_err)?;
        // Must be durable before a later append reuses these indexes.
        self.flusher.flush().await?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogIdOf<TypeConfig>) -> Result<(), io::Error> {
        // Record the purge point first: entries at or below it are ignored from then on,
        // so a crash between the two steps leaves no hole.
        self.put_meta(LAST_PURGED, &log_id)?;
        self.flusher.flush().await?;
        let mut batch = sled::Batch::default();
        for item in self.log.range(..=key(log_id.index())) {
            let (k, _) = item.map_err(sled_err)?;
            batch.remove(k);
        }
        self.log.apply_batch(batch).map_err(sled_err)?;
        Ok(())
    }
}
