//! Which snapshot files a data directory keeps, in `<data_dir>/snapshots/`:
//! the newest, which the log starts after, and one older, which a transfer
//! to a follower may still be reading. Older ones are deleted.
//!
//! At recovery the newest file that verifies is the current snapshot. A
//! damaged one is reported with its path and renamed to `*.corrupt` (kept
//! for an operator, never used again), and the next older one is tried.
//!
//! Each snapshot has its configuration beside it (`snapshot_config`),
//! written before the snapshot is added, and deleted with it; a damaged
//! configuration makes its snapshot unusable like a damaged file.

use super::error::StorageError;
use super::header::{Fault, Identity};
use super::snapshot::{self, SnapshotFault, StoredSnapshot};
use super::snapshot_config;
use super::sync_dir;
use skiff_core::{Membership, SnapshotMeta};
use std::fs;
use std::path::{Path, PathBuf};

/// The snapshot directory's name in the data directory.
pub const DIR: &str = "snapshots";
/// How many snapshot files are kept: the current one and one older.
const KEPT: usize = 2;
/// What a damaged snapshot file's name gets at its end when moved aside.
const CORRUPT_SUFFIX: &str = "corrupt";

/// The snapshot directory of the data directory `data_dir`.
pub fn dir(data_dir: &Path) -> PathBuf {
    data_dir.join(DIR)
}

/// The snapshots of one data directory.
#[derive(Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
    /// Newest first, at most [`KEPT`].
    kept: Vec<StoredSnapshot>,
}

/// What [`SnapshotStore::open`] found.
#[derive(Debug, Default)]
pub struct Opened {
    /// The newest snapshot that verifies.
    pub current: Option<StoredSnapshot>,
    /// The configuration kept with `current`; `None` for a snapshot kept
    /// before membership changes existed (the bootstrap configuration).
    pub membership: Option<Membership>,
    /// Newer snapshot files that did not verify, moved aside (their new
    /// paths), newest first.
    pub corrupt: Vec<PathBuf>,
}

impl SnapshotStore {
    /// Opens the snapshot directory of `data_dir` (created if missing),
    /// removes what a crash left half-written, and finds the newest
    /// snapshot that verifies (see the module's comment).
    pub fn open(
        data_dir: &Path,
        identity: Identity,
    ) -> Result<(SnapshotStore, Opened), StorageError> {
        let dir = dir(data_dir);
        if !dir.exists() {
            fs::create_dir(&dir).map_err(StorageError::io(&dir))?;
            sync_dir(data_dir)?;
        }
        for item in fs::read_dir(&dir).map_err(StorageError::io(&dir))? {
            let name = item.map_err(StorageError::io(&dir))?.file_name();
            let config_temporary = |name: &str| name.ends_with(".config.tmp");
            if name
                .to_str()
                .is_some_and(|name| snapshot::is_temporary(name) || config_temporary(name))
            {
                snapshot::remove(&dir.join(&name))?;
            }
        }
        let mut opened = Opened::default();
        let mut found = snapshot::list(&dir)?.into_iter();
        for candidate in found.by_ref() {
            let checked = check(&candidate, identity.cluster_id).and_then(|()| {
                snapshot_config::load(&candidate.path, identity).map_err(|fault| match fault {
                    Fault::Damaged { offset, reason } => SnapshotFault::Damaged {
                        path: snapshot_config::path_of(&candidate.path),
                        offset,
                        reason,
                    },
                    Fault::Refused(error) => SnapshotFault::Damaged {
                        path: snapshot_config::path_of(&candidate.path),
                        offset: 0,
                        reason: error.to_string(),
                    },
                })
            });
            match checked {
                Ok(membership) => {
                    opened.current = Some(candidate);
                    opened.membership = membership;
                    break;
                }
                Err(SnapshotFault::Io { path, source }) => {
                    return Err(StorageError::Io { path, source })
                }
                Err(fault) => {
                    let aside = move_aside(&candidate.path)?;
                    tracing::warn!(
                        path = %candidate.path.display(),
                        moved_to = %aside.display(),
                        %fault,
                        "a snapshot file is damaged; using the previous snapshot"
                    );
                    opened.corrupt.push(aside);
                }
            }
        }
        let mut store = SnapshotStore {
            dir,
            kept: opened.current.iter().cloned().collect(),
        };
        // The next older one stays, unverified: only a transfer reads it.
        store.kept.extend(found.next());
        store.prune(found.map(|s| s.path))?;
        Ok((store, opened))
    }

    /// The directory the snapshot files are in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current snapshot, if any.
    pub fn current(&self) -> Option<&StoredSnapshot> {
        self.kept.first()
    }

    /// The snapshot kept before the current one, if any: what a restart
    /// falls back to when the current one does not verify.
    pub fn previous(&self) -> Option<&StoredSnapshot> {
        self.kept.get(1)
    }

    /// The file of a kept snapshot `meta`, for a transfer.
    pub fn path_of(&self, meta: SnapshotMeta) -> Option<&Path> {
        self.kept
            .iter()
            .find(|s| s.meta == meta)
            .map(|s| s.path.as_path())
    }

    /// Keeps `membership` as the configuration of the snapshot file
    /// `taken`, durably: call it before [`SnapshotStore::add`].
    pub fn keep_membership(
        &self,
        taken: &StoredSnapshot,
        membership: &Membership,
        identity: Identity,
    ) -> Result<(), StorageError> {
        snapshot_config::store(&taken.path, identity, membership)
    }

    /// Makes `taken`, a complete durable file in this directory, the current
    /// snapshot if it is newer than the current one, and deletes the files
    /// no longer kept. A snapshot not newer is deleted instead (a leader's
    /// snapshot was installed while it was written). Returns whether it
    /// became current.
    pub fn add(&mut self, taken: StoredSnapshot) -> Result<bool, StorageError> {
        if self
            .current()
            .is_some_and(|current| current.meta.index >= taken.meta.index)
        {
            snapshot::remove(&taken.path)?;
            snapshot_config::remove(&taken.path)?;
            return Ok(false);
        }
        self.kept.insert(0, taken);
        let dropped: Vec<PathBuf> = self
            .kept
            .drain(KEPT.min(self.kept.len())..)
            .map(|s| s.path)
            .collect();
        self.prune(dropped)?;
        Ok(true)
    }

    /// Moves the verified snapshot file `received` (from a leader) into
    /// this directory, durably, and makes it current.
    pub fn adopt(
        &mut self,
        meta: SnapshotMeta,
        received: &Path,
        membership: &Membership,
        identity: Identity,
    ) -> Result<StoredSnapshot, StorageError> {
        let path = self.dir.join(snapshot::file_name(meta));
        snapshot_config::store(&path, identity, membership)?;
        fs::rename(received, &path).map_err(StorageError::io(received))?;
        sync_dir(&self.dir)?;
        if let Some(from) = received.parent().filter(|p| *p != self.dir) {
            sync_dir(from)?;
        }
        let stored = StoredSnapshot { meta, path };
        // A current snapshot at or past it cannot be: the machine installs
        // only past its commit index, which covers every snapshot taken.
        self.kept.retain(|s| s.meta.index < meta.index);
        self.add(stored.clone())?;
        Ok(stored)
    }

    fn prune(&self, dropped: impl IntoIterator<Item = PathBuf>) -> Result<(), StorageError> {
        let mut removed = false;
        for path in dropped {
            snapshot::remove(&path)?;
            snapshot_config::remove(&path)?;
            removed = true;
        }
        if removed {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }
}

/// Verifies a snapshot file, and that it holds the snapshot its name says.
pub(super) fn check(candidate: &StoredSnapshot, cluster_id: u64) -> Result<(), SnapshotFault> {
    let meta = snapshot::verify(&candidate.path, cluster_id)?;
    if meta != candidate.meta {
        return Err(SnapshotFault::Damaged {
            path: candidate.path.clone(),
            offset: 0,
            reason: format!("holds snapshot {meta}, but is named for {}", candidate.meta),
        });
    }
    Ok(())
}

/// Renames a damaged snapshot file so that it is never read again.
fn move_aside(path: &Path) -> Result<PathBuf, StorageError> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".{CORRUPT_SUFFIX}"));
    let aside = PathBuf::from(aside);
    fs::rename(path, &aside).map_err(StorageError::io(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(aside)
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{LogIndex, Term};

    const ME: Identity = Identity {
        cluster_id: 5,
        node_id: 2,
    };

    fn meta(index: u64) -> SnapshotMeta {
        SnapshotMeta {
            index: LogIndex(index),
            term: Term(1),
        }
    }

    fn take(store: &mut SnapshotStore, index: u64) -> StoredSnapshot {
        let stored = snapshot::write(store.dir(), ME, meta(index), 64, |out| {
            out.write_all(format!("state {index}").as_bytes())
        })
        .unwrap();
        store.add(stored.clone()).unwrap();
        stored
    }

    #[test]
    fn the_newest_and_one_older_are_kept() {
        let data = tempfile::tempdir().unwrap();
        let (mut store, opened) = SnapshotStore::open(data.path(), ME).unwrap();
        assert_eq!(opened.current, None);
        for index in [10, 20, 30] {
            take(&mut store, index);
        }
        let names: Vec<SnapshotMeta> = snapshot::list(store.dir())
            .unwrap()
            .iter()
            .map(|s| s.meta)
            .collect();
        assert_eq!(names, [meta(30), meta(20)]);
        assert!(store.path_of(meta(20)).is_some());
        assert!(store.path_of(meta(10)).is_none());
        // An older one taken late is dropped.
        let late = snapshot::write(store.dir(), ME, meta(25), 64, |_| Ok(())).unwrap();
        assert!(!store.add(late.clone()).unwrap());
        assert!(!late.path.exists());
        drop(store);
        let (store, opened) = SnapshotStore::open(data.path(), ME).unwrap();
        assert_eq!(opened.current.map(|s| s.meta), Some(meta(30)));
        assert!(opened.corrupt.is_empty());
        assert!(store.path_of(meta(20)).is_some());
    }

    #[test]
    fn a_damaged_newest_is_moved_aside_and_the_previous_used() {
        let data = tempfile::tempdir().unwrap();
        let (mut store, _) = SnapshotStore::open(data.path(), ME).unwrap();
        take(&mut store, 10);
        let newest = take(&mut store, 20);
        let mut bytes = fs::read(&newest.path).unwrap();
        let last = bytes.len() - 12;
        bytes[last] ^= 0x40;
        fs::write(&newest.path, &bytes).unwrap();
        // And a file a crash left half-written.
        fs::write(
            store
                .dir()
                .join("00000000000000000030-00000000000000000001.snap.tmp"),
            b"x",
        )
        .unwrap();
        drop(store);
        let (store, opened) = SnapshotStore::open(data.path(), ME).unwrap();
        assert_eq!(opened.current.map(|s| s.meta), Some(meta(10)));
        assert_eq!(opened.corrupt.len(), 1);
        assert!(opened.corrupt[0]
            .to_string_lossy()
            .ends_with(".snap.corrupt"));
        assert!(opened.corrupt[0].exists() && !newest.path.exists());
        let left: Vec<_> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn a_received_file_is_adopted_as_current() {
        let data = tempfile::tempdir().unwrap();
        let (mut store, _) = SnapshotStore::open(data.path(), ME).unwrap();
        take(&mut store, 10);
        let incoming = store.dir().join("incoming");
        fs::create_dir(&incoming).unwrap();
        let leader = Identity { node_id: 1, ..ME };
        let received = snapshot::write(&incoming, leader, meta(50), 64, |out| {
            out.write_all(b"leader")
        })
        .unwrap();
        let membership = Membership::new(vec![skiff_core::NodeId(1)], vec![]).unwrap();
        let adopted = store
            .adopt(meta(50), &received.path, &membership, ME)
            .unwrap();
        assert_eq!(store.current(), Some(&adopted));
        assert!(!received.path.exists());
        assert_eq!(snapshot::verify(&adopted.path, 5).unwrap(), meta(50));
    }
}
