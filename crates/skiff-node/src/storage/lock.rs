//! An exclusive lock on a data directory, so two processes never write the
//! same log. The lock is an `flock` on a file inside the directory; the
//! kernel drops it when the process dies, even by SIGKILL.

use super::error::StorageError;
use std::fs::{File, OpenOptions};
use std::path::Path;

const LOCK_FILE: &str = "lock";

/// Holds the lock until dropped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir`, or fails at once with [`StorageError::Locked`] when
    /// another process holds it.
    pub fn acquire(dir: &Path) -> Result<DirLock, StorageError> {
        let path = dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(StorageError::io(&path))?;
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => Ok(DirLock { _file: file }),
            Err(fs4::TryLockError::WouldBlock) => Err(StorageError::Locked {
                dir: dir.to_path_buf(),
                lock: path,
            }),
            Err(fs4::TryLockError::Error(source)) => Err(StorageError::Io { path, source }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path()).unwrap();
        let second = DirLock::acquire(dir.path());
        assert!(
            matches!(second, Err(StorageError::Locked { .. })),
            "{second:?}"
        );
        drop(first);
        DirLock::acquire(dir.path()).unwrap();
    }
}
