//! The open-file limit: raised to the hard limit at start, as Kafka's start scripts ask
//! operators to, and shared out to the log's cache of closed segments' files.
//!
//! Invariant: only warns (never fails) when the limit is low or cannot be raised.

/// Below this many open files a node warns: each partition's active segment keeps three
/// open (log, offset index, time index), so many partitions run out.
const OPEN_FILES_WARN_BELOW: u64 = 16_384;

/// Closed segments' files kept open for reads: a quarter of the open file limit (the
/// rest is for active segments, sockets and the stores), within these bounds.
fn closed_segment_handles(open_files: u64) -> usize {
    (open_files / 4).clamp(16, 65_536) as usize
}

/// Raises the soft limit on open files to the hard limit, as Kafka's start scripts ask
/// operators to, and says what the node has (a warning when it is low).
pub fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot read the open file limit");
        return;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads one valid rlimit struct; raising the soft limit up to the
        // hard one needs no privilege.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "cannot raise the open file limit");
            lim.rlim_cur = before;
        }
    }
    let open_files = lim.rlim_cur;
    let closed_segments = closed_segment_handles(open_files);
    kavka_log::set_closed_segment_handles(closed_segments);
    if open_files < OPEN_FILES_WARN_BELOW {
        tracing::warn!(
            open_files,
            closed_segments,
            "the open file limit is low: each partition's active segment keeps 3 files open, so partitions fail to open (KAFKA_STORAGE_ERROR) once it is reached; raise it (ulimit -n, LimitNOFILE=)"
        );
    } else {
        tracing::info!(
            open_files,
            raised_from = before,
            closed_segments,
            "open file limit"
        );
    }
}
