//! The Raft log, vote, committed and last-purged log ids in sled.
//!
//! Keys in the `raft-log` tree are big-endian log indexes, so sled's order is log order.
//! Durability: `append` calls openraft's callback only after the flusher's next flush, and
//! `save_vote` returns only after its flush — nothing is acknowledged before it is on disk.
//! Writes are serialised by `&mut self` (openraft issues them one at a time).
//!
//! Values are in the versioned binary encoding of [`super::codec`]. An entry that does not
//! decode is an `InvalidData` error naming its offset (the log index): openraft stops on
//! it, and so does the node, before any of the entries read with it is applied.

use super::codec;
use super::{corrupt, sled_err};
use crate::types::TypeConfig;
use openraft::alias::{EntryOf, LogIdOf, VoteOf};
use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};

pub(crate) const LOG_TREE: &str = "raft-log";
pub(crate) const META_TREE: &str = "raft-meta";
pub(crate) const VOTE: &[u8] = b"vote";
pub(crate) const COMMITTED: &[u8] = b"committed";
pub(crate) const LAST_PURGED: &[u8] = b"last-purged";

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

/// The entry stored under key `k`; an error naming its offset if it does not decode.
fn decode_entry(k: &[u8], v: &[u8]) -> io::Result<EntryOf<TypeConfig>> {
    codec::decode_entry(v).map_err(|e| {
        let at = <[u8; 8]>::try_from(k).map_or_else(
            |_| format!("key {k:02x?}"),
            |k| format!("offset {}", u64::from_be_bytes(k)),
        );
        corrupt(format!("the metadata log entry at {at}"), e)
    })
}

fn meta_name(k: &[u8]) -> String {
    format!("the Raft {}", String::from_utf8_lossy(k))
}

impl SledLogStore {
    pub(crate) fn new(db: &sled::Db, flusher: super::Flusher) -> io::Result<Self> {
        Ok(Self {
            flusher,
            db: db.clone(),
            log: db.open_tree(LOG_TREE).map_err(sled_err)?,
            meta: db.open_tree(META_TREE).map_err(sled_err)?,
        })
    }

    /// The log id stored under `k` (absent, or stored as none: `None`).
    fn get_log_id(&self, k: &'static [u8]) -> io::Result<Option<LogIdOf<TypeConfig>>> {
        match self.meta.get(k).map_err(sled_err)? {
            Some(v) => codec::decode_log_id(&v).map_err(|e| corrupt(meta_name(k), e)),
            None => Ok(None),
        }
    }

    fn put_meta(&self, k: &[u8], bytes: Vec<u8>) -> io::Result<()> {
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
            let (k, v) = item.map_err(sled_err)?;
            out.push(decode_entry(&k, &v)?);
        }
        Ok(out)
    }

    async fn read_vote(&mut self) -> Result<Option<VoteOf<TypeConfig>>, io::Error> {
        match self.meta.get(VOTE).map_err(sled_err)? {
            Some(v) => Ok(Some(
                codec::decode_vote(&v).map_err(|e| corrupt(meta_name(VOTE), e))?,
            )),
            None => Ok(None),
        }
    }
}

impl RaftLogStorage<TypeConfig> for SledLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, io::Error> {
        let last_purged_log_id = self.get_log_id(LAST_PURGED)?;
        let last = match self.log.last().map_err(sled_err)? {
            Some((k, v)) => Some(decode_entry(&k, &v)?.log_id()),
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
        self.put_meta(VOTE, codec::encode_vote(vote))?;
        self.flusher.flush().await?;
        Ok(())
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogIdOf<TypeConfig>>,
    ) -> Result<(), io::Error> {
        // Not flushed on its own: a lost update only means re-applying from the last
        // flushed value, which is safe.
        self.put_meta(COMMITTED, codec::encode_log_id(committed.as_ref()))
    }

    async fn read_committed(&mut self) -> Result<Option<LogIdOf<TypeConfig>>, io::Error> {
        self.get_log_id(COMMITTED)
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
            batch.insert(&key(entry.index()), codec::encode_entry(&entry));
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
        self.put_meta(LAST_PURGED, codec::encode_log_id(Some(&log_id)))?;
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::types::MetadataRequest;
    use kavka_metadata::MetadataRecord;
    use openraft::alias::CommittedLeaderIdOf;
    use openraft::storage::RaftStateMachine;
    use openraft::{EntryPayload, LogId};

    fn entry(index: u64) -> EntryOf<TypeConfig> {
        EntryOf::<TypeConfig> {
            log_id: LogId::new(
                CommittedLeaderIdOf::<TypeConfig> {
                    term: 1,
                    node_id: 1,
                },
                index,
            ),
            payload: EntryPayload::Normal(MetadataRequest {
                records: vec![MetadataRecord::Cluster {
                    cluster_id: "c1".into(),
                }],
            }),
        }
    }

    #[tokio::test]
    async fn an_entry_that_does_not_decode_is_an_error_naming_its_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (mut log, mut sm) = crate::raft::open(dir.path()).unwrap();
        let mut bad = codec::encode_entry(&entry(2));
        bad.truncate(bad.len() - 2);
        log.log
            .insert(key(1), codec::encode_entry(&entry(1)))
            .unwrap();
        log.log.insert(key(2), bad).unwrap();
        let e = log.try_get_log_entries(1..=2).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        let msg = e.to_string();
        assert!(
            msg.contains("the metadata log entry at offset 2 does not decode"),
            "{msg}"
        );
        // The last entry is read by get_log_state: the same error.
        assert!(
            log.get_log_state()
                .await
                .unwrap_err()
                .to_string()
                .contains("offset 2")
        );
        // Nothing reached the state machine.
        assert_eq!(sm.applied_state().await.unwrap().0, None);
        assert_eq!(sm.image().offset, -1);
    }

    #[tokio::test]
    async fn a_snapshot_that_does_not_decode_is_refused_and_the_image_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (_log, mut sm) = crate::raft::open(dir.path()).unwrap();
        let before = sm.image().digest();
        let meta = openraft::alias::SnapshotMetaOf::<TypeConfig> {
            last_log_id: Some(entry(5).log_id),
            last_membership: Default::default(),
        };
        let mut data = kavka_metadata::codec::encode_snapshot(
            5,
            &[MetadataRecord::Cluster {
                cluster_id: "c2".into(),
            }],
        );
        data.truncate(data.len() - 1);
        let e = sm
            .install_snapshot(&meta, std::io::Cursor::new(data))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("the metadata snapshot does not decode"),
            "{e}"
        );
        assert_eq!(sm.image().digest(), before);
        assert_eq!(sm.applied_state().await.unwrap().0, None);
    }
}
