//! Raft storage for the metadata quorum, on one sled database per controller.
//!
//! Everything in sled is in the versioned binary encoding of [`codec`] (one format byte,
//! then protobuf). A data dir written by the JSON format of earlier versions is converted
//! in place when it is opened (`migrate`), before openraft reads anything; a value that
//! decodes in neither format stops the node with a message naming it.

pub mod codec;
pub mod log_store;
mod migrate;
pub mod network;
pub mod peers;
pub mod state_machine;

use crate::types::TypeConfig;
use openraft::storage::IOFlushed;
use std::path::Path;
use tokio::sync::{mpsc, oneshot};

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
        // No background flush: everything that must be durable waits for the
        // [`Flusher`]'s own. sled's flusher otherwise fsyncs every 500 ms, written to
        // or not, and each fsync flushes the disk's cache: under the partition logs'
        // writeback that took 60-110 ms and held up the log appends queued behind it.
        .flush_every_ms(None)
        .open()
        .map_err(|e| {
            std::io::Error::other(format!(
                "cannot open the metadata store in {}: {e}",
                dir.display()
            ))
        })?;
    migrate::json_to_binary(&db, dir)?;
    let flusher = Flusher::start(db.clone());
    let log = log_store::SledLogStore::new(&db, flusher.clone())?;
    let sm = state_machine::MetadataStateMachine::open(&db, flusher)?;
    Ok((log, sm))
}

/// Who waits for a flush.
enum Waiter {
    Append(IOFlushed<TypeConfig>),
    Notify(oneshot::Sender<Result<(), String>>),
}

/// The one task that flushes sled. sled 0.34 can deadlock when several `flush_async` calls
/// run at once (seen here with concurrent proposals), so every flush goes through this
/// task, one at a time; waiters queued behind a flush share the next one (group commit).
#[derive(Clone, Debug)]
pub(crate) struct Flusher {
    tx: mpsc::UnboundedSender<Waiter>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Waiter::Append(_) => "Append",
            Waiter::Notify(_) => "Notify",
        })
    }
}

impl Flusher {
    fn start(db: sled::Db) -> Self {
        // Unbounded, but bounded in practice: one waiter per in-flight Raft write.
        let (tx, mut rx) = mpsc::unbounded_channel::<Waiter>();
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut waiters = vec![first];
                while let Ok(w) = rx.try_recv() {
                    waiters.push(w);
                }
                let db = db.clone();
                let result = match tokio::task::spawn_blocking(move || db.flush()).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(e.to_string()),
                    Err(e) => Err(format!("flush task failed: {e}")),
                };
                for w in waiters {
                    match w {
                        Waiter::Append(cb) => {
                            cb.io_completed(result.clone().map_err(std::io::Error::other))
                        }
                        Waiter::Notify(tx) => {
                            let _ = tx.send(result.clone());
                        }
                    }
                }
            }
        });
        Self { tx }
    }

    /// Calls `callback` once everything written so far is on disk.
    pub(crate) fn after_flush(&self, callback: IOFlushed<TypeConfig>) {
        if let Err(mpsc::error::SendError(Waiter::Append(cb))) =
            self.tx.send(Waiter::Append(callback))
        {
            cb.io_completed(Err(std::io::Error::other("the metadata store is closed")));
        }
    }

    /// Returns once everything written so far is on disk.
    pub(crate) async fn flush(&self) -> std::io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Waiter::Notify(tx))
            .map_err(|_| std::io::Error::other("the metadata store is closed"))?;
        rx.await
            .map_err(|_| std::io::Error::other("the metadata store is closed"))?
            .map_err(std::io::Error::other)
    }
}

pub(crate) fn sled_err(e: sled::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// `what` (e.g. "the metadata log entry at offset 7") did not decode: the store is
/// corrupt or from another version, and this node must not go on.
pub(crate) fn corrupt(
    what: impl std::fmt::Display,
    e: kavka_metadata::codec::DecodeError,
) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{what} does not decode: {e}"),
    )
}
