//! The broker's copy of the metadata image: follows the controllers' committed log as an
//! observer (FetchMetadata from its last offset, from any controller) and hands each new
//! image to the replica manager.
//!
//! A stream from a frozen or partitioned controller does not end by itself: when the
//! active controller (heard through heartbeats) is ahead and this stream brings nothing
//! for `STALL_LIMIT`, the broker switches to the next controller.

use crate::controllers::Controllers;
use crate::replica_manager::ReplicaManager;
use kavka_metadata::{MetadataImage, MetadataRecord};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the stream may bring nothing while the active controller is ahead.
const STALL_LIMIT: Duration = Duration::from_millis(1000);
use tokio::sync::watch;

/// Follows the metadata log until `shutdown`, reconnecting to the next controller when a
/// stream ends.
pub async fn follow(
    replicas: Arc<ReplicaManager>,
    controllers: Arc<Controllers>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut i = 0usize;
    loop {
        let addr = controllers.addrs()[i % controllers.addrs().len()].clone();
        i += 1;
        tokio::select! {
            r = follow_one(&replicas, &addr) => if let Err(e) = r {
                tracing::debug!(controller = %addr, error = %e, "metadata stream ended");
            },
            _ = shutdown.changed() => return,
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn follow_one(replicas: &Arc<ReplicaManager>, addr: &str) -> Result<(), String> {
    let mut client = Controllers::client_for(addr).map_err(|e| e.to_string())?;
    let from = replicas.image().offset;
    let mut stream = client
        .fetch_metadata(kavka_proto::v1::FetchMetadataRequest { from_offset: from })
        .await
        .map_err(|s| s.to_string())?
        .into_inner();
    let mut check = tokio::time::interval(Duration::from_millis(250));
    let mut progress_at = Instant::now();
    loop {
        let batch = tokio::select! {
            m = stream.message() => match m.map_err(|s| s.to_string())? {
                Some(b) => b,
                None => return Ok(()),
            },
            _ = check.tick() => {
                if replicas.controller_offset() <= replicas.image().offset {
                    progress_at = Instant::now();
                } else if progress_at.elapsed() > STALL_LIMIT {
                    return Err(format!(
                        "stream stalled at offset {} while the active controller is at {}",
                        replicas.image().offset,
                        replicas.controller_offset()
                    ));
                }
                continue;
            }
        };
        progress_at = Instant::now();
        let records: Vec<MetadataRecord> = serde_json::from_slice(&batch.records)
            .map_err(|e| format!("bad metadata batch: {e}"))?;
        let current = replicas.image();
        let next = if batch.snapshot {
            MetadataImage::from_snapshot(batch.offset, &records)
                .map_err(|e| format!("bad metadata snapshot: {e}"))?
        } else {
            if batch.offset <= current.offset {
                continue;
            }
            let (mut next, _, refused) = current.replay(batch.offset, &records);
            for (_, e) in refused {
                tracing::warn!(offset = batch.offset, error = %e, "metadata record refused on replay");
            }
            next.offset = batch.offset;
            next
        };
        let r = Arc::clone(replicas);
        tokio::task::spawn_blocking(move || r.apply_image(Arc::new(next)))
            .await
            .map_err(|e| e.to_string())?;
    }
}
