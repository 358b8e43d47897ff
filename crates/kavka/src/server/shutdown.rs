//! Stopping a node: the signals that start it (SIGINT, SIGTERM) and how long each step
//! may take.
//!
//! Invariant: a stop is bounded — leaderships move away for at most
//! `CONTROLLED_SHUTDOWN_TIMEOUT`, open requests drain for at most `SHUTDOWN_DRAIN`.

use std::time::Duration;

/// Longest a stopping broker waits for its leaderships to move away.
pub const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a stopping node waits for open requests and connections to finish.
pub const SHUTDOWN_DRAIN: Duration = Duration::from_secs(3);

/// Resolves on SIGINT (ctrl-c) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}
