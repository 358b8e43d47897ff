//! Golden files: bytes an encoding must keep producing, checked in beside a crate.
//! Test support only (feature `golden`, or this crate's tests): it reads and writes files.
//!
//! `KAVKA_UPDATE_GOLDEN=1 cargo test` rewrites the files from the current encoder; review
//! the diff, since a changed golden file means data written before no longer reads back
//! the same.

use std::path::Path;

/// The env var that rewrites golden files instead of comparing with them.
pub const UPDATE_ENV: &str = "KAVKA_UPDATE_GOLDEN";

/// Compares `bytes` with `<dir>/<name>` (or writes it when [`UPDATE_ENV`] is set) and
/// returns the file's bytes, for the caller to decode back. Panics on a mismatch: for
/// tests only.
#[allow(clippy::expect_used, clippy::panic)]
pub fn check(dir: &Path, name: &str, bytes: &[u8]) -> Vec<u8> {
    let path = dir.join(name);
    if std::env::var_os(UPDATE_ENV).is_some() {
        std::fs::create_dir_all(dir).expect("create the golden dir");
        std::fs::write(&path, bytes).expect("write a golden file");
    }
    let golden = std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with {UPDATE_ENV}=1 to create it)",
            path.display()
        )
    });
    assert!(
        golden == bytes,
        "{} changed: the encoding no longer writes the pinned bytes\n  golden:  {golden:02x?}\n  encoded: {bytes:02x?}\n(if the change is intended and old data still reads, rerun with {UPDATE_ENV}=1)",
        path.display()
    );
    golden
}
