//! Durable state of one node, in one data directory:
//!
//! * `lock`: an exclusive lock, so that one process at a time uses the directory;
//! * `hard_state`: term and vote, replaced atomically;
//! * `wal`: the log, in append-only segments of framed records (`record`);
//! * `header`: the header that ties every file to its node and cluster.
//!
//! [`Storage`] performs the persistence actions of a machine. Writes are
//! buffered until [`Storage::sync`], which makes all of them durable with
//! one sync of the log (group commit): the event loop calls it once per
//! turn, before it performs any `Send` or `Commit` of that turn.

mod error;
mod hard_state;
mod header;
mod lock;
pub mod record;
mod wal;

pub use error::StorageError;
pub use header::Identity;

use hard_state::HardStateFile;
use lock::DirLock;
use skiff_core::{Action, Entry, HardState, LogIndex};
use std::fs::{self, File};
use std::path::Path;
use wal::Wal;

/// What a node persisted before it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last stored term and vote.
    pub hard_state: HardState,
    /// The log, entry `i` at position `i - 1`.
    pub log: Vec<Entry>,
}

/// The open, locked storage of one node.
#[derive(Debug)]
pub struct Storage {
    _lock: DirLock,
    hard_state_file: HardStateFile,
    /// The last `StateStore` of the turn, not yet written.
    pending_hard_state: Option<HardState>,
    wal: Wal,
    syncs: u64,
}

impl Storage {
    /// Locks and opens the data directory `dir` (created if missing, its
    /// parent must exist), recovering what it holds.
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
        let hard_state = hard_state_file.load()?;
        let (wal, log) = Wal::open(dir, identity, segment_bytes_max)?;
        let storage = Storage {
            _lock: lock,
            hard_state_file,
            pending_hard_state: None,
            wal,
            syncs: 0,
        };
        Ok((storage, Recovered { hard_state, log }))
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
                for (index, entry) in action.stored_entries() {
                    self.wal.append(index, entry)?;
                }
                Ok(())
            }
            Action::LogTruncate { from } => self.wal.truncate(*from),
            Action::Send { .. } | Action::Commit { .. } | Action::Alarm { .. } => Ok(()),
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
            self.hard_state_file.store(state)?;
            synced = true;
        }
        if self.wal.has_pending() {
            self.wal.flush()?;
            synced = true;
        }
        self.syncs += u64::from(synced);
        Ok(())
    }

    /// The index of the last entry written, synced or not. Between syncs,
    /// which make everything written durable, it is the durable log's end.
    pub fn last_index(&self) -> LogIndex {
        self.wal.last_index()
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

#[cfg(test)]
mod tests;
