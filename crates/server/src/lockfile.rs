//! One process per data directory: a running member holds an exclusive `flock` on
//! `DATA_DIR/lock` for as long as it runs, and so do the offline tools that read or write a
//! member's files (`etcdutl backup`, `etcdctl migrate`), so that neither a second member nor a
//! tool can touch the log of a member that is running. The kernel drops the lock when the
//! process ends, however it ends: a killed member leaves nothing to clean up.

use std::fs::File;
use std::path::Path;

/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "lock";

/// A held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
}

/// Takes the lock of `data_dir` (which must exist), or says who holds it.
pub fn lock(data_dir: &Path) -> Result<DataDirLock, String> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(DataDirLock { _file: file }),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(format!(
            "data directory {} is in use by another process (a running member holds {})",
            data_dir.display(),
            path.display()
        )),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let held = lock(dir.path()).unwrap();
        let err = lock(dir.path()).unwrap_err();
        assert!(err.contains("in use by another process"), "{err}");
        drop(held);
        lock(dir.path()).unwrap();
    }
}
