//! The broker's copy of the metadata image: follows the controllers' committed log as an
//! observer (FetchMetadata from its last offset, from any controller) and hands each new
//! image to the replica manager, with the delta its batch made (so only the partitions it
//! changed are reconciled); a snapshot or a checkpoint goes without one (all of them).
//!
//! The image is checkpointed to `<data>/metadata-image.checkpoint` (written whole, synced,
//! then renamed into place, at most once a second and at shutdown), so a restarted broker
//! asks only for what it missed. A checkpoint is only a starting point: it reaches the
//! replica manager with the first batch after it, or once the active controller is known
//! to be no further ahead, so a restarted broker never acts on leadership from before its
//! restart while newer metadata exists. A checkpoint ahead of the active controller (the
//! controllers were wiped, or the data dir belongs to another cluster) is discarded and the
//! whole log fetched again; an unreadable one is logged and ignored. The checkpoint is in
//! the binary snapshot encoding of `kavka_metadata::codec`; one in the JSON format of
//! earlier versions is still read (and rewritten in binary with the next checkpoint).
//!
//! A batch is decoded whole before any of it is applied. A batch that does not decode (a
//! corrupt or unknown-format record: the same bytes on every controller) stops the follower
//! with an error naming its offset, and the image stays as it was; it is never retried
//! against another controller or applied in part.
//!
//! The stream is opened with the controller the broker's session is with (the active
//! controller, which commits first), else the next in the list. A stream from a frozen or
//! partitioned controller does not end by itself: when the active controller (heard
//! through heartbeats) is ahead and this stream brings nothing for `STALL_LIMIT`, the
//! broker switches controller at once — a frozen controller must not delay an election
//! reaching the brokers by more than that.

use crate::controllers::Controllers;
use crate::replica_manager::ReplicaManager;
use crate::session::ControllerSession;
use kavka_metadata::codec::{self, DecodeError};
use kavka_metadata::{MetadataDelta, MetadataImage, MetadataRecord};
use kavka_proto::v1::MetadataBatch;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the stream may bring nothing while the active controller is ahead (a live
/// controller's stream delivers a committed batch within milliseconds).
const STALL_LIMIT: Duration = Duration::from_millis(400);
/// How long the active controller may stay behind a checkpoint before it is discarded...
const BEHIND_LIMIT: Duration = Duration::from_secs(3);
/// ...as told by at least this many heartbeat answers since it was first seen behind (a
/// broker frozen for longer than the limit must not take its own pause for evidence).
const BEHIND_REPLIES: u64 = 4;
const CHECKPOINT_FILE: &str = "metadata-image.checkpoint";
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
use std::path::{Path, PathBuf};
use tokio::sync::watch;

/// What a checkpoint file in the JSON format (before binary metadata) holds.
#[derive(serde::Deserialize)]
struct JsonCheckpoint {
    offset: i64,
    records: Vec<MetadataRecord>,
}

/// Why a checkpoint could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a metadata checkpoint: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

/// The image checkpointed in `data_dir`, if there is one.
pub fn load_checkpoint(data_dir: &Path) -> Result<Option<MetadataImage>, CheckpointError> {
    let path = data_dir.join(CHECKPOINT_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(CheckpointError::Io { path, source }),
    };
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.clone(),
        reason,
    };
    let (offset, records) = if codec::is_legacy_json(&bytes) {
        let c: JsonCheckpoint =
            serde_json::from_slice(&bytes).map_err(|e| corrupt(e.to_string()))?;
        (c.offset, c.records)
    } else {
        codec::decode_snapshot(&bytes).map_err(|e| corrupt(e.to_string()))?
    };
    MetadataImage::from_snapshot(offset, &records)
        .map(Some)
        .map_err(|e| corrupt(e.to_string()))
}

fn store_checkpoint(data_dir: &Path, image: &MetadataImage) -> std::io::Result<()> {
    let bytes = codec::encode_snapshot(image.offset, &image.snapshot_records());
    crate::replica_manager::write_synced(&data_dir.join(CHECKPOINT_FILE), &bytes)
}

/// The image a restarted broker resumes from: its checkpoint, or empty.
fn starting_image(data_dir: &Path) -> MetadataImage {
    match load_checkpoint(data_dir) {
        Ok(Some(image)) => {
            tracing::info!(
                offset = image.offset,
                "resuming metadata from the checkpoint"
            );
            image
        }
        Ok(None) => MetadataImage::empty(),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the metadata checkpoint: fetching the whole log");
            MetadataImage::empty()
        }
    }
}

/// Where the follower stands: the newest image it has (applied to the replica manager or
/// not yet), and when the checkpoint was last written.
struct Follower {
    current: Arc<MetadataImage>,
    stored: i64,
    stored_at: Instant,
    /// When the active controller was first seen behind `current`, and how many heartbeat
    /// answers had arrived by then.
    behind_since: Option<(Instant, u64)>,
    /// Images below this offset are not handed to the replica manager: after a discarded
    /// checkpoint the log is fetched again from the start, and its early images are older
    /// than what the replica manager acts on (they may lack whole topics, whose files it
    /// would delete).
    hold_until: i64,
}

impl Follower {
    /// Writes the checkpoint if it is due (or `force`), off the async runtime: a large
    /// image is megabytes and an fsync.
    async fn checkpoint(&mut self, data_dir: &Path, force: bool) {
        let due = force || self.stored_at.elapsed() >= CHECKPOINT_EVERY;
        if self.current.offset == self.stored || !due {
            return;
        }
        let (dir, image) = (data_dir.to_path_buf(), Arc::clone(&self.current));
        match tokio::task::spawn_blocking(move || store_checkpoint(&dir, &image)).await {
            Ok(Ok(())) => self.stored = self.current.offset,
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot write the metadata checkpoint"),
            Err(e) => tracing::warn!(error = %e, "metadata checkpoint task failed"),
        }
        self.stored_at = Instant::now();
    }
}

/// Follows the metadata log until `shutdown`, reconnecting to the next controller when a
/// stream ends. A batch that does not decode stops the follower and is reported once on
/// `fatal` (naming its offset), which stops the node: a broker must not serve from an
/// image it can no longer advance.
pub async fn follow(
    replicas: Arc<ReplicaManager>,
    session: Arc<ControllerSession>,
    controllers: Arc<Controllers>,
    fatal: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let data_dir = replicas.config().data_dir.clone();
    let start = Arc::new(starting_image(&data_dir));
    let mut f = Follower {
        stored: start.offset,
        current: start,
        stored_at: Instant::now(),
        behind_since: None,
        hold_until: -1,
    };
    let mut i = 0usize;
    let mut failed: Option<String> = None;
    loop {
        let addrs = controllers.addrs();
        let addr = session
            .session_controller()
            .filter(|a| failed.as_ref() != Some(a))
            .unwrap_or_else(|| {
                i += 1;
                addrs[i % addrs.len()].clone()
            });
        let stalled = tokio::select! {
            r = follow_one(&replicas, &session, &controllers, &addr, &mut f) => match r {
                Ok(()) => false,
                Err(End::Stalled(e)) => {
                    tracing::info!(controller = %addr, error = %e, "metadata stream stalled: switching controller");
                    true
                }
                Err(End::Failed(e)) => {
                    tracing::debug!(controller = %addr, error = %e, "metadata stream ended");
                    false
                }
                Err(End::Undecodable(e)) => {
                    tracing::error!(controller = %addr, error = %e, offset = f.current.offset, "stopping the metadata follower: the metadata log holds a batch this broker cannot decode (upgrade this broker, or repair the controllers' log); the image stays at the last batch that decoded");
                    let _ = fatal.send(Some(format!(
                        "the metadata log from controller {addr} holds a batch this broker cannot decode: {e} (upgrade this broker, or repair the controllers' log)"
                    )));
                    break;
                }
            },
            _ = shutdown.changed() => break,
        };
        failed = Some(addr);
        if !stalled {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
    f.checkpoint(&data_dir, true).await;
}

/// Why a metadata stream ended.
enum End {
    /// The controller sent nothing while the active one was ahead.
    Stalled(String),
    Failed(String),
    /// A batch did not decode: every controller would send the same bytes.
    Undecodable(BatchError),
}

/// Why a batch from the metadata stream does not make a new image.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("the metadata batch at offset {offset} does not decode: {source}")]
    Undecodable { offset: i64, source: DecodeError },
    #[error("the metadata snapshot at offset {offset} does not replay: {reason}")]
    Snapshot { offset: i64, reason: String },
}

/// The image after `batch`, with the delta from `current` (None for a snapshot, which has
/// no delta: the replica manager reconciles every partition); `None` for a batch at or
/// below `current` (already applied). The batch is decoded whole first, so an error
/// leaves `current` as the image.
fn next_image(
    current: &MetadataImage,
    batch: &MetadataBatch,
) -> Result<Option<(MetadataImage, Option<MetadataDelta>)>, BatchError> {
    let records =
        codec::decode_batch(&batch.records).map_err(|source| BatchError::Undecodable {
            offset: batch.offset,
            source,
        })?;
    if batch.snapshot {
        return MetadataImage::from_snapshot(batch.offset, &records)
            .map(|image| Some((image, None)))
            .map_err(|e| BatchError::Snapshot {
                offset: batch.offset,
                reason: e.to_string(),
            });
    }
    if batch.offset <= current.offset {
        return Ok(None);
    }
    let (mut next, delta, refused) = current.replay(batch.offset, &records);
    for (_, e) in refused {
        tracing::warn!(offset = batch.offset, error = %e, "metadata record refused on replay");
    }
    next.offset = batch.offset;
    Ok(Some((next, Some(delta))))
}

impl From<String> for End {
    fn from(e: String) -> Self {
        End::Failed(e)
    }
}

async fn follow_one(
    replicas: &Arc<ReplicaManager>,
    session: &ControllerSession,
    controllers: &Controllers,
    addr: &str,
    f: &mut Follower,
) -> Result<(), End> {
    let data_dir = replicas.config().data_dir.clone();
    let mut client = controllers.client_for(addr).map_err(|e| e.to_string())?;
    let opened = client.fetch_metadata(kavka_proto::v1::FetchMetadataRequest {
        from_offset: f.current.offset,
    });
    let mut stream = match tokio::time::timeout(STALL_LIMIT * 2, opened).await {
        Ok(r) => r.map_err(|s| s.to_string())?.into_inner(),
        Err(_) => {
            return Err(End::Stalled(format!(
                "no stream within {:?}",
                STALL_LIMIT * 2
            )));
        }
    };
    let mut check = tokio::time::interval(Duration::from_millis(250));
    let mut ahead = session.watch_controller_offset();
    // Set while the active controller is ahead of what this stream brought.
    let mut stall_at: Option<tokio::time::Instant> = None;
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    loop {
        let batch = tokio::select! {
            m = stream.message() => match m.map_err(|s| s.to_string())? {
                Some(b) => b,
                None => return Ok(()),
            },
            _ = ahead.changed() => {
                if ahead.borrow_and_update().is_some_and(|o| o > f.current.offset) && stall_at.is_none() {
                    stall_at = Some(tokio::time::Instant::now() + STALL_LIMIT);
                }
                continue;
            }
            _ = tokio::time::sleep_until(stall_at.unwrap_or_else(far)) => {
                return Err(End::Stalled(format!(
                    "stream stalled at offset {} while the active controller is at {}",
                    f.current.offset,
                    session
                        .controller_offset()
                        .map_or_else(|| "an unknown offset".to_string(), |o| o.to_string()),
                )));
            }
            _ = check.tick() => {
                let controller = session.controller_offset();
                let applied = replicas.image().offset;
                if let Some(controller) = controller
                    && controller < f.current.offset
                {
                    // The active controller has less than our checkpoint: another history.
                    let replies = session.heartbeat_replies();
                    let (since, replies_then) =
                        *f.behind_since.get_or_insert_with(|| (Instant::now(), replies));
                    if since.elapsed() > BEHIND_LIMIT && replies >= replies_then + BEHIND_REPLIES {
                        tracing::warn!(checkpoint = f.current.offset, controller, "the active controller is behind the metadata checkpoint: fetching the whole log again");
                        f.current = Arc::new(MetadataImage::empty());
                        f.behind_since = None;
                        f.hold_until = controller;
                        return Err(End::Failed("checkpoint discarded".into()));
                    }
                } else {
                    f.behind_since = None;
                    if controller.is_some_and(|c| c <= f.current.offset)
                        && applied < f.current.offset
                        && f.current.offset >= f.hold_until
                    {
                        // Caught up on the checkpoint alone: nothing newer exists.
                        apply(replicas, &f.current, None).await?;
                    }
                }
                f.checkpoint(&data_dir, false).await;
                if controller.is_some_and(|c| c > f.current.offset) && stall_at.is_none() {
                    stall_at = Some(tokio::time::Instant::now() + STALL_LIMIT);
                }
                continue;
            }
        };
        let (next, delta) = match next_image(&f.current, &batch) {
            Ok(Some(next)) => next,
            Ok(None) => continue,
            Err(e @ BatchError::Undecodable { .. }) => return Err(End::Undecodable(e)),
            Err(e @ BatchError::Snapshot { .. }) => return Err(End::Failed(e.to_string())),
        };
        let base = std::mem::replace(&mut f.current, Arc::new(next));
        if f.current.offset >= f.hold_until {
            apply(replicas, &f.current, delta.map(|d| (base, d))).await?;
        }
        f.checkpoint(&data_dir, false).await;
        // Progress: the stall clock restarts, and stops if this caught up.
        stall_at = (session
            .controller_offset()
            .is_some_and(|c| c > f.current.offset))
        .then(|| tokio::time::Instant::now() + STALL_LIMIT);
    }
}

/// Hands `image` to the replica manager, with the image it was replayed from and what
/// changed (`None`: a snapshot or checkpoint, so every partition is reconciled).
async fn apply(
    replicas: &Arc<ReplicaManager>,
    image: &Arc<MetadataImage>,
    delta: Option<(Arc<MetadataImage>, MetadataDelta)>,
) -> Result<(), String> {
    let (r, image) = (Arc::clone(replicas), Arc::clone(image));
    let stats = tokio::task::spawn_blocking(move || match delta {
        Some((base, delta)) => r.apply_delta(&base, image, &delta),
        None => r.apply_image(image),
    })
    .await
    .map_err(|e| e.to_string())?;
    tracing::debug!(
        full = stats.full,
        partitions = stats.partitions,
        "metadata applied"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kavka_metadata::{TopicId, TopicRecord};
    use kavka_model::TopicName;

    fn image_with_a_topic() -> MetadataImage {
        let records = vec![
            MetadataRecord::Cluster {
                cluster_id: "c1".into(),
            },
            MetadataRecord::Topic(TopicRecord {
                name: TopicName::new("orders").unwrap(),
                topic_id: TopicId(uuid::Uuid::from_u128(7)),
            }),
        ];
        MetadataImage::from_snapshot(41, &records).unwrap()
    }

    #[test]
    fn a_checkpoint_round_trips_and_a_missing_one_is_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_checkpoint(dir.path()).unwrap().is_none());
        let image = image_with_a_topic();
        store_checkpoint(dir.path(), &image).unwrap();
        let back = load_checkpoint(dir.path()).unwrap().unwrap();
        assert_eq!(back.offset, 41);
        assert_eq!(back.digest(), image.digest());
        assert_eq!(back.cluster_id.as_deref(), Some("c1"));
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error_naming_the_file_and_is_ignored_on_start() {
        let dir = tempfile::tempdir().unwrap();
        store_checkpoint(dir.path(), &image_with_a_topic()).unwrap();
        let path = dir.path().join(CHECKPOINT_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&path, &bytes).unwrap();
        let e = load_checkpoint(dir.path()).unwrap_err().to_string();
        assert!(e.contains(CHECKPOINT_FILE), "{e}");
        assert!(e.contains("not a metadata checkpoint"), "{e}");
        assert_eq!(starting_image(dir.path()).offset, -1);
    }

    #[test]
    fn a_checkpoint_in_the_json_format_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let image = image_with_a_topic();
        let json = serde_json::json!({
            "offset": 41,
            "records": image.snapshot_records(),
        });
        std::fs::write(
            dir.path().join(CHECKPOINT_FILE),
            serde_json::to_vec(&json).unwrap(),
        )
        .unwrap();
        let back = load_checkpoint(dir.path()).unwrap().unwrap();
        assert_eq!((back.offset, back.digest()), (41, image.digest()));
    }

    fn batch(offset: i64, records: &[MetadataRecord]) -> MetadataBatch {
        MetadataBatch {
            offset,
            snapshot: false,
            records: codec::encode_batch(records).into(),
        }
    }

    #[test]
    fn a_batch_that_does_not_decode_names_its_offset_and_changes_nothing() {
        let image = image_with_a_topic();
        let digest = image.digest();
        let good = batch(
            42,
            &[MetadataRecord::RemoveTopic {
                topic_id: TopicId(uuid::Uuid::from_u128(7)),
            }],
        );
        // The same batch with its last byte cut: the record (the whole batch) is bad.
        let mut cut = good.clone();
        cut.records.truncate(cut.records.len() - 1);
        let cases = [
            (cut, "offset 42"),
            (
                MetadataBatch {
                    records: b"[{\"Cluster\":{}}]".to_vec().into(),
                    ..good.clone()
                },
                "JSON format",
            ),
            (
                MetadataBatch {
                    records: vec![9, 1, 2].into(),
                    ..good.clone()
                },
                "unknown metadata format byte 9",
            ),
        ];
        for (bad, want) in cases {
            let e = next_image(&image, &bad).unwrap_err();
            assert!(
                matches!(e, BatchError::Undecodable { offset: 42, .. }),
                "{e}"
            );
            let msg = e.to_string();
            assert!(msg.contains("offset 42") && msg.contains(want), "{msg}");
            assert_eq!(image.digest(), digest);
        }
        // The intact batch applies: the topic is gone.
        let (next, delta) = next_image(&image, &good).unwrap().unwrap();
        assert!(delta.is_some(), "a batch carries its delta");
        assert_eq!(next.offset, 42);
        assert_ne!(next.digest(), digest);
        // An old batch is skipped.
        assert!(next_image(&next, &good).unwrap().is_none());
    }

    #[tokio::test]
    async fn the_follower_writes_at_most_once_a_second_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        let mut f = Follower {
            current: Arc::new(image_with_a_topic()),
            stored: -1,
            stored_at: Instant::now(),
            behind_since: None,
            hold_until: -1,
        };
        f.checkpoint(dir.path(), false).await;
        assert!(
            load_checkpoint(dir.path()).unwrap().is_none(),
            "not due yet"
        );
        f.checkpoint(dir.path(), true).await;
        assert_eq!(load_checkpoint(dir.path()).unwrap().unwrap().offset, 41);
        assert_eq!(f.stored, 41);
    }
}
