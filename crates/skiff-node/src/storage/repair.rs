//! Making a damaged data directory usable again without destroying the
//! evidence, in steps a crash may interrupt anywhere:
//!
//! 1. **flag**: the repair flag is stored in both hard-state copies, term
//!    and vote unchanged. From then on every recovery starts the node
//!    repairing, whatever the log looks like;
//! 2. **move aside**: the log's files (manifest, then segments) are moved
//!    into a new subdirectory `damaged-N/` (N one past the highest there),
//!    never deleted, for an operator to look at;
//! 3. **rewrite**: a fresh log holding the intact prefix is written and
//!    synced (a new segment and its manifest, then the entries).
//!
//! A crash before step 1 is durable leaves the damage to be found again.
//! After it, the flag holds whatever the log then reads as: damaged again
//! (a missing manifest or segment, step 2 cut short), empty (step 2 done,
//! or step 3 cut short before its entries), or the intact prefix (step 3
//! done). The node restarts repairing from that log, never as healthy with a
//! shorter one: the core only needs the log to be a prefix of what the node
//! held, and each of these is.
//!
//! The flag is cleared ([`Storage::finish_repair`]) once the machine says
//! its repair is over, after the log that ended it is durable.

use super::hard_state::StoredState;
use super::wal::{self, Replay, Wal};
use super::{manifest, sync_dir, Storage, StorageError};
use skiff_core::{Entry, LogIndex};
use std::fs;
use std::path::{Path, PathBuf};

/// The prefix of the subdirectories that keep the files of a damaged log.
pub const DAMAGED_DIR_PREFIX: &str = "damaged-";

impl Storage {
    /// Repairs a directory whose log [`Storage::open`] found damaged, so
    /// that the node can run (as the machine's repair mode) from
    /// `intact_log`, the prefix [`Recovered::log`](super::Recovered::log)
    /// returned: flags the repair, moves the damaged log's files aside, and
    /// writes a fresh log holding `intact_log` (see the module's comment).
    /// Returns the subdirectory the damaged files went to.
    pub fn repair(&mut self, intact_log: &[Entry]) -> Result<PathBuf, StorageError> {
        self.flag_repairing()?;
        let moved_to = self.move_log_aside()?;
        self.write_fresh_log(intact_log)?;
        Ok(moved_to)
    }

    /// Whether the hard state says the node is repairing.
    pub fn repairing(&self) -> bool {
        self.stored.repairing
    }

    /// Makes everything buffered durable, then clears the repair flag,
    /// durably. Call it once the machine is no longer repairing: the log
    /// that ended the repair is durable before the flag goes.
    pub fn finish_repair(&mut self) -> Result<(), StorageError> {
        self.sync()?;
        self.store_hard_state(StoredState {
            repairing: false,
            ..self.stored
        })?;
        tracing::info!(dir = %self.dir.display(), "repair finished; the log holds everything the node acknowledged");
        Ok(())
    }

    /// Step 1: stores the repair flag with the stored term and vote.
    pub(super) fn flag_repairing(&mut self) -> Result<(), StorageError> {
        self.store_hard_state(StoredState {
            repairing: true,
            ..self.stored
        })
    }

    /// Step 2: moves the manifest and every segment into a new `damaged-N`
    /// subdirectory, durably (both directories synced). The manifest goes
    /// first, so that a move cut short leaves segments without a manifest,
    /// which recovery reports as damage.
    pub(super) fn move_log_aside(&self) -> Result<PathBuf, StorageError> {
        let target = new_damaged_dir(&self.dir)?;
        let mut names = vec![
            manifest::FILE.to_string(),
            format!("{}.tmp", manifest::FILE),
        ];
        for sequence in wal::list_segments(&self.dir)? {
            let path = wal::segment_path(&self.dir, sequence);
            if let Some(name) = path.file_name() {
                names.push(name.to_string_lossy().into_owned());
            }
        }
        for name in names {
            let from = self.dir.join(&name);
            if !from.exists() {
                continue;
            }
            let to = target.join(&name);
            fs::rename(&from, &to).map_err(StorageError::io(&from))?;
        }
        sync_dir(&target)?;
        sync_dir(&self.dir)?;
        tracing::warn!(
            to = %target.display(),
            "moved the damaged log's files aside; they are kept for inspection"
        );
        Ok(target)
    }

    /// Step 3: starts a new log in the emptied directory and writes
    /// `intact_log` (the entries after the snapshot) to it, synced.
    pub(super) fn write_fresh_log(&mut self, intact_log: &[Entry]) -> Result<(), StorageError> {
        let after = self.snapshot().index;
        let mut log = Wal::open(
            &self.dir,
            self.identity,
            self.segment_bytes_max,
            &Replay::default(),
            after,
        )?;
        for (position, entry) in intact_log.iter().enumerate() {
            log.append(LogIndex(after.0 + position as u64 + 1), entry)?;
        }
        log.flush()?;
        self.wal = Ok(log);
        Ok(())
    }
}

/// Creates `damaged-N` in `dir`, N one past the highest present, durably.
fn new_damaged_dir(dir: &Path) -> Result<PathBuf, StorageError> {
    let mut highest = 0;
    for item in fs::read_dir(dir).map_err(StorageError::io(dir))? {
        let name = item.map_err(StorageError::io(dir))?.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_prefix(DAMAGED_DIR_PREFIX))
            .and_then(|n| n.parse::<u64>().ok());
        highest = highest.max(number.unwrap_or(0));
    }
    let target = dir.join(format!("{DAMAGED_DIR_PREFIX}{}", highest + 1));
    fs::create_dir(&target).map_err(StorageError::io(&target))?;
    sync_dir(dir)?;
    Ok(target)
}
