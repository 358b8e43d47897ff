//! Raft storage for the metadata quorum, on one sled database per controller.

pub mod log_store;
pub mod network;
pub mod state_machine;

use std::path::Path;

/// Bound on sled's page cache: the metadata log is small and mostly append-only.
const SLED_CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Opens the controller's sled database under `dir` and returns its log store and state
/// machine, which share it.
pub fn open(
    dir: &Path,
) -> std::io::Result<(log_store::SledLogStore, state_machine::MetadataStateMachine)> {
    let db = sled::Config::new()
        .path(dir)
        .cache_capacity(SLED_CACHE_BYTES)
        .open()
        .map_err(|e| {
            std::io::Error::other(format!(
                "cannot open the metadata store in {}: {e}",
                dir.display()
            ))
        })?;
    let log = log_store::SledLogStore::new(&db)?;
    let sm = state_machine::MetadataStateMachine::open(&db)?;
    Ok((log, sm))
}

pub(crate) fn sled_err(e: sled::Error) -> std::io::Error {
    std::io::Error::other(e)
}

pub(crate) fn json_err(e: serde_json::Error) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}
