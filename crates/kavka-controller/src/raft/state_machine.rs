//! The metadata state machine: replays committed batches into the `MetadataImage` and
//! publishes each new image on a watch channel.
//!
//! Persistence: only snapshots are written (their meta and data in one sled batch,
//! flushed). After a restart the state machine is the last snapshot; openraft re-applies
//! the durable log after it up to the saved committed id. A snapshot's data is the image
//! as records (`MetadataImage::snapshot_records`), so a snapshot is replayed like a log.
//! Meta and data are in the binary encoding of [`super::codec`] and
//! `kavka_metadata::codec`; a snapshot that does not decode is refused whole (the image is
//! left as it was) with an error naming it.

use super::{codec, corrupt, sled_err};
use crate::types::{MetadataReply, TypeConfig};
use futures_util::{Stream, TryStreamExt};
use kavka_metadata::MetadataImage;
use openraft::alias::{LogIdOf, SnapshotMetaOf, SnapshotOf, StoredMembershipOf};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use std::io::{self, Cursor};
use std::sync::Arc;
use tokio::sync::{Mutex, watch};

pub(crate) const SNAPSHOT_TREE: &str = "metadata-snapshot";
pub(crate) const SNAPSHOT_META: &[u8] = b"meta";
pub(crate) const SNAPSHOT_DATA: &[u8] = b"data";

#[derive(Debug)]
struct Inner {
    image: Arc<MetadataImage>,
    last_applied: Option<LogIdOf<TypeConfig>>,
    membership: StoredMembershipOf<TypeConfig>,
    snapshot: Option<(SnapshotMetaOf<TypeConfig>, Vec<u8>)>,
}

#[derive(Clone, Debug)]
pub struct MetadataStateMachine {
    inner: Arc<Mutex<Inner>>,
    tree: sled::Tree,
    flusher: super::Flusher,
    images: watch::Sender<Arc<MetadataImage>>,
}

fn image_from_snapshot(bytes: &[u8]) -> io::Result<MetadataImage> {
    let (offset, records) = kavka_metadata::codec::decode_snapshot(bytes)
        .map_err(|e| corrupt("the metadata snapshot", e))?;
    MetadataImage::from_snapshot(offset, &records).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("snapshot does not replay: {e}"),
        )
    })
}

impl MetadataStateMachine {
    pub(crate) fn open(db: &sled::Db, flusher: super::Flusher) -> io::Result<Self> {
        let tree = db.open_tree(SNAPSHOT_TREE).map_err(sled_err)?;
        let mut inner = Inner {
            image: Arc::new(MetadataImage::empty()),
            last_applied: None,
            membership: StoredMembershipOf::<TypeConfig>::default(),
            snapshot: None,
        };
        if let (Some(meta), Some(data)) = (
            tree.get(SNAPSHOT_META).map_err(sled_err)?,
            tree.get(SNAPSHOT_DATA).map_err(sled_err)?,
        ) {
            let meta = codec::decode_snapshot_meta(&meta)
                .map_err(|e| corrupt("the metadata snapshot's meta", e))?;
            inner.image = Arc::new(image_from_snapshot(&data)?);
            inner.last_applied = meta.last_log_id;
            inner.membership = meta.last_membership.clone();
            inner.snapshot = Some((meta, data.to_vec()));
        }
        let images = watch::channel(Arc::clone(&inner.image)).0;
        Ok(Self {
            inner: Arc::new(Mutex::new(inner)),
            tree,
            flusher,
            images,
        })
    }

    /// The current image, and every later one.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.subscribe()
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    /// Persists a snapshot's meta and data together, then flushes.
    async fn persist(&self, meta: &SnapshotMetaOf<TypeConfig>, data: &[u8]) -> io::Result<()> {
        let mut batch = sled::Batch::default();
        batch.insert(SNAPSHOT_META, codec::encode_snapshot_meta(meta));
        batch.insert(SNAPSHOT_DATA, data);
        self.tree.apply_batch(batch).map_err(sled_err)?;
        self.flusher.flush().await?;
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for MetadataStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;

    async fn build_snapshot(
        &mut self,
    ) -> Result<SnapshotOf<TypeConfig, Cursor<Vec<u8>>>, io::Error> {
        let (meta, data) = {
            let inner = self.inner.lock().await;
            let data = kavka_metadata::codec::encode_snapshot(
                inner.image.offset,
                &inner.image.snapshot_records(),
            );
            let meta = SnapshotMetaOf::<TypeConfig> {
                last_log_id: inner.last_applied,
                last_membership: inner.membership.clone(),
            };
            (meta, data)
        };
        self.persist(&meta, &data).await?;
        self.inner.lock().await.snapshot = Some((meta.clone(), data.clone()));
        Ok(SnapshotOf::<TypeConfig, Cursor<Vec<u8>>> {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

impl RaftStateMachine<TypeConfig> for MetadataStateMachine {
    type SnapshotData = Cursor<Vec<u8>>;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogIdOf<TypeConfig>>, StoredMembershipOf<TypeConfig>), io::Error> {
        let inner = self.inner.lock().await;
        Ok((inner.last_applied, inner.membership.clone()))
    }

    async fn apply<S>(&mut self, mut entries: S) -> Result<(), io::Error>
    where
        S: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut inner = self.inner.lock().await;
        let mut image = (*inner.image).clone();
        // Replies wait until the new image is published: a proposer that reads the image
        // after its proposal returns must see its own records.
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            let index = entry.log_id.index();
            match &entry.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(req) => {
                    let (next, _delta, refused) = image.replay(index as i64, &req.records);
                    for (_, e) in refused {
                        tracing::warn!(offset = index, error = %e, "metadata record refused on replay");
                    }
                    image = next;
                }
                EntryPayload::Membership(m) => {
                    inner.membership =
                        StoredMembershipOf::<TypeConfig>::new(Some(entry.log_id), m.clone());
                }
            }
            // The metadata offset is the Raft log index of the batch.
            image.offset = index as i64;
            inner.last_applied = Some(entry.log_id);
            if let Some(responder) = responder {
                replies.push((responder, MetadataReply { offset: index }));
            }
        }
        inner.image = Arc::new(image);
        self.images.send_replace(Arc::clone(&inner.image));
        drop(inner);
        for (responder, reply) in replies {
            responder.send(reply);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMetaOf<TypeConfig>,
        snapshot: Self::SnapshotData,
    ) -> Result<(), io::Error> {
        let data = snapshot.into_inner();
        let image = image_from_snapshot(&data)?;
        self.persist(meta, &data).await?;
        let mut inner = self.inner.lock().await;
        inner.image = Arc::new(image);
        inner.last_applied = meta.last_log_id;
        inner.membership = meta.last_membership.clone();
        inner.snapshot = Some((meta.clone(), data));
        self.images.send_replace(Arc::clone(&inner.image));
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<SnapshotOf<TypeConfig, Self::SnapshotData>>, io::Error> {
        let inner = self.inner.lock().await;
        Ok(inner.snapshot.as_ref().map(
            |(meta, data)| SnapshotOf::<TypeConfig, Self::SnapshotData> {
                meta: meta.clone(),
                snapshot: Cursor::new(data.clone()),
            },
        ))
    }
}
