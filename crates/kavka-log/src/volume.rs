//! How big the volume holding a directory is and how much of it is free: what Kafka's
//! DescribeLogDirs reports as a log dir's total and usable bytes.
//!
//! Must not depend on anything above the file system.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A volume's size and the bytes an unprivileged writer may still use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VolumeSpace {
    pub total_bytes: u64,
    pub usable_bytes: u64,
}

/// `statvfs(2)` of the volume holding `dir`.
pub fn volume_space(dir: &Path) -> std::io::Result<VolumeSpace> {
    let path = CString::new(dir.as_os_str().as_bytes())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `path` is a valid NUL-terminated string and `st` points at writable memory
    // of the right type, which statvfs fills on success (and only then is it read).
    let rc = unsafe { libc::statvfs(path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the struct.
    let st = unsafe { st.assume_init() };
    let block = st.f_frsize;
    Ok(VolumeSpace {
        total_bytes: st.f_blocks.saturating_mul(block),
        usable_bytes: st.f_bavail.saturating_mul(block),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_real_directory_has_a_size_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let space = volume_space(dir.path()).unwrap();
        assert!(space.total_bytes > 0);
        assert!(space.usable_bytes <= space.total_bytes);
        let gone = dir.path().join("nope");
        let e = volume_space(&gone).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
