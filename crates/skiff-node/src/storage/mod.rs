//! Durable state of one node, in one data directory:
//!
//! * `lock`: an exclusive lock, so that one process at a time uses the directory;
//! * `hard_state`: term, vote and the repair flag, in two copies each
//!   replaced atomically;
//! * `wal`: the log, in append-only segments of framed records (`record`),
//!   ending each synced batch with a sync record;
//! * `manifest`: which segments must exist;
//! * `header`: the header that ties every file to its node and cluster;
//! * `damage`: what recovery reports when the log lost what it may have
//!   acknowledged ([`LogDamage`]), after which the node repairs;
//! * `repair`: how a damaged directory is made usable again without
//!   destroying the evidence ([`Storage::repair`]);
//! * `check`: the read-only verification behind `skiff check` ([`check()`]).
//!
//! [`Storage`] performs the persistence actions of a machine. Writes are
//! buffered until [`Storage::sync`], which makes all of them durable with
//! one sync of the log (group commit): the event loop calls it once per
//! turn, before it performs any `Send` or `Commit` of that turn.

mod check;
mod damage;
mod error;
mod hard_state;
mod header;
mod lock;
mod manifest;
mod record;
mod repair;
mod sync_slot;
mod wal;

pub use check::{check, CheckReport};
pub use damage::LogDamage;
pub use error::StorageError;
pub use header::Identity;

/// The WAL segment files of the data directory `dir`, oldest first: for
/// tools and tests that inspect or damage a stopped node's log. Files that
/// only look like segments are listed too; recovery judges them.
pub fn segment_files(dir: &Path) -> Result<Vec<std::path::PathBuf>, StorageError> {
    Ok(wal::list_segments(dir)?
        .into_iter()
        .map(|sequence| wal::segment_path(dir, sequence))
        .collect())
}

use hard_state::{HardStateFile, StoredState};
use lock::DirLock;
use skiff_core::{Action, Entry, HardState, LogIndex};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use wal::Wal;

/// What a node persisted before it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last stored term and vote.
    pub hard_state: HardState,
    /// The log, entry `i` at position `i - 1`: the whole log, or with
    /// `damage` the prefix that is provably intact.
    pub log: Vec<Entry>,
    /// Damage that may have cost entries the node acknowledged. The storage
    /// then refuses to write the log until [`Storage::repair`].
    pub damage: Option<LogDamage>,
    /// Whether a repair begun before is not finished: the node must start
    /// repairing again, even if the log now reads as whole.
    pub repairing: bool,
}

/// The open, locked storage of one node.
#[derive(Debug)]
pub struct Storage {
    _lock: DirLock,
    dir: PathBuf,
    identity: Identity,
    segment_bytes_max: u64,
    hard_state_file: HardStateFile,
    /// What the hard-state files hold: the last state stored and the
    /// repair flag.
    stored: StoredState,
    /// The last `StateStore` of the turn, not yet written.
    pending_hard_state: Option<HardState>,
    /// The log, or the damage that keeps it from being written.
    wal: Result<Wal, LogDamage>,
    syncs: u64,
}

impl Storage {
    /// Locks and opens the data directory `dir` (created if missing, its
    /// parent must exist), recovering what it holds.
    ///
    /// A torn tail is cut off with a warning. Damage that may have cost
    /// acknowledged entries is returned in [`Recovered::damage`], with the
    /// intact prefix of the log, and nothing on disk is changed: the log
    /// cannot be written until [`Storage::repair`]. Files of
    /// another node or cluster or format, and a hard state lost in both
    /// copies, are refused with an error.
    pub fn open(
        dir: &Path,
        identity: Identity,
        segment_bytes_max: u64,
    ) -> Result<(Storage, Recovered), StorageError> {
        if !dir.exists() {
            fs::create_dir(dir).map_err(StorageError::io(dir))?;
        }
        let lock = DirLock::acquire(dir)?;
        let hard_state_file = HardStateFile::new(dir, identity);
        let mut replay = wal::replay(dir, identity)?;
        let is_new = replay.manifest.is_none() && replay.damage.is_none();
        let stored = match hard_state_file.load()? {
            Some(stored) => stored,
            // Stored before the manifest is created, so that a directory
            // with a manifest and no hard state is known to have lost it.
            None if is_new => {
                hard_state_file.store(StoredState::default())?;
                StoredState::default()
            }
            None => return Err(hard_state_file.both_missing()),
        };
        let wal = match replay.damage.clone() {
            None => Ok(Wal::open(dir, identity, segment_bytes_max, &replay)?),
            Some(damage) => {
                tracing::error!(%damage, "the log is damaged");
                Err(damage)
            }
        };
        let recovered = Recovered {
            hard_state: stored.state,
            log: std::mem::take(&mut replay.entries),
            damage: replay.damage,
            repairing: stored.repairing,
        };
        let storage = Storage {
            _lock: lock,
            dir: dir.to_path_buf(),
            identity,
            segment_bytes_max,
            hard_state_file,
            stored,
            pending_hard_state: None,
            wal,
            syncs: 0,
        };
        Ok((storage, recovered))
    }

    /// Buffers one persistence action; other actions are not for storage
    /// and are ignored.
    pub fn persist(&mut self, action: &Action) -> Result<(), StorageError> {
        match action {
            Action::StateStore { term, voted_for } => {
                self.pending_hard_state = Some(HardState {
                    term: *term,
                    voted_for: *voted_for,
                });
                Ok(())
            }
            Action::LogStore { .. } => {
                let wal = self.writable_wal()?;
                for (index, entry) in action.stored_entries() {
                    wal.append(index, entry)?;
                }
                Ok(())
            }
            Action::LogTruncate { from } => self.writable_wal()?.truncate(*from),
            // Snapshot actions: performed by the snapshot work (issue 13, in progress).
            Action::LogCompact { .. } | Action::SnapshotInstall { .. } => Ok(()),
            Action::Send { .. }
            | Action::Commit { .. }
            | Action::Alarm { .. }
            | Action::Rejected { .. } => Ok(()),
        }
    }

    /// Makes everything buffered durable.
    ///
    /// The hard state goes first. Only the turn's last `StateStore` is
    /// written: terms only grow within a turn and a vote is only ever added,
    /// so the last state covers the earlier ones, and writing it before the
    /// turn's log records keeps "the log holds no term after the stored
    /// term" true at every instant on disk.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        let mut synced = false;
        if let Some(state) = self.pending_hard_state.take() {
            self.store_hard_state(StoredState {
                state,
                repairing: self.stored.repairing,
            })?;
            synced = true;
        }
        if let Ok(wal) = &mut self.wal {
            if wal.has_pending() {
                wal.flush()?;
                synced = true;
            }
        }
        self.syncs += u64::from(synced);
        Ok(())
    }

    /// The index of the last entry written, synced or not. Between syncs,
    /// which make everything written durable, it is the durable log's end.
    pub fn last_index(&self) -> LogIndex {
        match &self.wal {
            Ok(wal) => wal.last_index(),
            Err(damage) => damage.intact_through,
        }
    }

    /// Replaces both hard-state copies, durably, and remembers what they hold.
    fn store_hard_state(&mut self, stored: StoredState) -> Result<(), StorageError> {
        self.hard_state_file.store(stored)?;
        self.stored = stored;
        Ok(())
    }

    fn writable_wal(&mut self) -> Result<&mut Wal, StorageError> {
        self.wal
            .as_mut()
            .map_err(|damage| StorageError::NeedsRepair(damage.clone()))
    }

    /// How many times [`Storage::sync`] had something to sync.
    pub fn sync_count(&self) -> u64 {
        self.syncs
    }
}

/// Syncs a directory, so that a file created or renamed in it survives a crash.
fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io(dir))
}

/// Replaces the file `name` in `dir` with `bytes` atomically and durably:
/// a crash leaves the old file or the new one, never a mix.
fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&temporary).map_err(StorageError::io(&temporary))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(StorageError::io(&temporary))?;
    let path = dir.join(name);
    fs::rename(&temporary, &path).map_err(StorageError::io(&path))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests;
