//! The data dir: the exclusive lock that keeps two nodes off one directory, and the
//! cluster id recorded in `meta.properties` once the node has seen it.
//!
//! Invariants: the lock is held for the life of the process; a data dir of another cluster
//! stops the node (fatal), it is never rewritten.

use crate::meta_properties;
use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The controller's Raft store, inside the data dir (Kafka: `__cluster_metadata-0`).
pub const CONTROLLER_DIR: &str = "__cluster_metadata";

/// A node's data dir, locked for as long as this lives.
pub struct DataDir {
    path: PathBuf,
    _lock: std::fs::File,
    /// `meta.properties` as found at start.
    found: Option<meta_properties::MetaProperties>,
    decision: meta_properties::Decision,
    /// The data dir's `directory.id`: the one found, or the one a new data dir gets
    /// (chosen at open, so the controller presents it before `identify` writes it).
    directory_id: uuid::Uuid,
    /// Data without `meta.properties` (written by an older kavka): adopted.
    older: bool,
}

impl DataDir {
    /// Locks `path` (creating it) and checks its identity against this node's.
    pub fn open(path: &Path, node_id: i32, controller: bool) -> anyhow::Result<Self> {
        let lock = lock_data_dir(path)?;
        let found = meta_properties::read(path)?;
        let older = found.is_none() && meta_properties::has_data(path)?;
        let decision = meta_properties::decide(
            meta_properties::Found {
                meta: found.as_ref(),
                has_raft_store: path.join(CONTROLLER_DIR).exists(),
            },
            node_id,
            controller,
        )
        .map_err(|why| anyhow::anyhow!(why))?;
        let directory_id = match (&decision, &found) {
            (meta_properties::Decision::Keep, Some(m)) => m.directory_id,
            _ => uuid::Uuid::new_v4(),
        };
        Ok(Self {
            path: path.to_path_buf(),
            _lock: lock,
            found,
            decision,
            directory_id,
            older,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The data dir's identity (KIP-853's directory id), as `identify` writes it.
    pub fn directory_id(&self) -> uuid::Uuid {
        self.directory_id
    }

    /// The data dir's identity, written now if it is new (call once the stores exist,
    /// before anything is served).
    pub fn identify(&self, node_id: i32) -> anyhow::Result<meta_properties::MetaProperties> {
        if let (meta_properties::Decision::Keep, Some(m)) = (&self.decision, &self.found) {
            return Ok(m.clone());
        }
        let m = meta_properties::MetaProperties {
            node_id,
            directory_id: self.directory_id,
            cluster_id: None,
        };
        meta_properties::write(&self.path, &m)?;
        tracing::info!(directory_id = %m.directory_id, adopted = self.older, "initialised the data dir ({})", meta_properties::FILE);
        Ok(m)
    }
}

/// Holds an exclusive lock on `<data>/.lock` for the life of the process, so two nodes
/// never write the same data dir.
fn lock_data_dir(dir: &Path) -> anyhow::Result<std::fs::File> {
    // SAFETY: getuid has no preconditions and cannot fail.
    let uid = unsafe { libc::getuid() };
    let hint = |e: &std::io::Error| {
        if e.kind() == std::io::ErrorKind::PermissionDenied {
            format!(" (not writable by uid {uid}: is the volume mounted and owned by it?)")
        } else {
            String::new()
        }
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        anyhow::anyhow!("cannot create data dir {}: {e}{}", dir.display(), hint(&e))
    })?;
    let path = dir.join(".lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| anyhow::anyhow!("cannot open {}: {e}{}", path.display(), hint(&e)))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "data dir {} is in use by another kavka process",
                dir.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Where a node reads its cluster's id, once known (from a metadata image).
pub type ClusterIdSource = Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// Records the cluster id in `meta.properties` once the node has seen it, and stops the
/// node (fatal) when the data dir belongs to another cluster.
pub async fn record_cluster_id(
    dir: PathBuf,
    mut identity: meta_properties::MetaProperties,
    quorum_image: Option<ClusterIdSource>,
    broker_image: Option<ClusterIdSource>,
    fatal: watch::Sender<Option<String>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let seen = [&quorum_image, &broker_image]
            .into_iter()
            .flatten()
            .find_map(|cluster_id| cluster_id());
        let Some(cluster_id) = seen else { continue };
        // Checked as long as the node runs: a broker's first image may be its own
        // checkpoint, the controllers' comes after.
        match meta_properties::check_cluster(&identity, &cluster_id) {
            Ok(false) => {}
            Ok(true) => {
                identity.cluster_id = Some(cluster_id.clone());
                match meta_properties::write(&dir, &identity) {
                    Ok(()) => {
                        tracing::info!(%cluster_id, "recorded the cluster id in {}", meta_properties::FILE)
                    }
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "cannot record the cluster id")
                    }
                }
            }
            Err(why) => {
                let _ = fatal.send(Some(format!("fatal: {why}")));
                return;
            }
        }
    }
}
