//! The broker's copy of the metadata image: follows the controllers' committed log as an
//! observer (FetchMetadata from its last offset, from any controller) and hands each new
//! image to the replica manager.

use crate::controllers::Controllers;
use crate::replica_manager::ReplicaManager;
use kavka_metadata::{MetadataImage, MetadataRecord};
use std::sync::Arc;
use std::time::Duration;
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
    while let Some(batch) = stream.message().await.map_err(|s| s.to_string())? {
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
    Ok(())
}
