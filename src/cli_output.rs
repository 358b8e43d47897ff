//! Checks on a finished `kavka` CLI command, shared by the test files.
#![allow(clippy::panic)] // test support: a failed check fails the test

use std::process::Output;

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command's stdout; fails the test, with both outputs, if it failed.
#[track_caller]
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "command failed:\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Fails the test unless the command failed with `needle` in its stderr.
#[track_caller]
pub fn fails_with(o: Output, needle: &str) {
    assert!(
        !o.status.success(),
        "command succeeded, expected failure with '{needle}': {}",
        stdout(&o)
    );
    assert!(
        stderr(&o).contains(needle),
        "stderr lacks '{needle}': {}",
        stderr(&o)
    );
}
