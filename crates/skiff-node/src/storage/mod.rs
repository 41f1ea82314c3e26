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
//! * `check`: the read-only verification behind `skiff check` ([`check()`]);
//! * `snapshot`: the snapshot file, written and verified as a stream;
//! * `snapshot_config`: the cluster configuration kept with each snapshot;
//! * `snapshot_store`: which snapshot files are kept, and which one
//!   recovery starts from.
//!
//! # Snapshots and the log
//!
//! The log starts after the current snapshot: `LogCompact` deletes the
//! segments a snapshot covers wholly, and `SnapshotInstall` adopts a
//! leader's snapshot and discards the whole log. Recovery loads the newest
//! snapshot that verifies and replays the log after it. The log must reach
//! back to one past the snapshot's index: a log that starts later lost
//! entries (damage, repaired from the peers), and one that no longer
//! reaches back to the older snapshot used when the newest is damaged is
//! refused ([`StorageError::SnapshotGap`]).
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
mod snapshot;
mod snapshot_config;
mod snapshot_store;
mod sync_slot;
mod wal;

pub use check::{check, CheckReport};
pub use damage::LogDamage;
pub use error::StorageError;
pub use header::Identity;
pub use snapshot::{SnapshotFault, SnapshotReader, StoredSnapshot};

/// Verifies the snapshot file at `path` (written by any node of cluster
/// `cluster_id`), reading it through once, and opens its application bytes
/// for reading.
pub fn open_snapshot(
    path: &Path,
    cluster_id: u64,
) -> Result<(SnapshotMeta, SnapshotReader), SnapshotFault> {
    snapshot::open(path, cluster_id)
}

/// Verifies the snapshot file at `path` (written by any node of cluster
/// `cluster_id`), reading it through once: the snapshot it holds.
pub fn verify_snapshot(path: &Path, cluster_id: u64) -> Result<SnapshotMeta, SnapshotFault> {
    snapshot::verify(path, cluster_id)
}

/// Writes a snapshot file for `meta` into `dir` (see [`Storage::snapshot_dir`]),
/// durably: `fill` writes the application's bytes, framed in chunks of
/// `chunk_bytes`. For a blocking thread; the storage adopts the file with
/// [`Storage::add_snapshot`].
pub fn write_snapshot(
    dir: &Path,
    identity: Identity,
    meta: SnapshotMeta,
    chunk_bytes: usize,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<StoredSnapshot, StorageError> {
    snapshot::write(dir, identity, meta, chunk_bytes, fill)
}

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
use skiff_core::{Action, Entry, HardState, LogIndex, Membership, SnapshotMeta};
use snapshot_store::SnapshotStore;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use wal::Wal;

/// What a node persisted before it stopped.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The last stored term and vote.
    pub hard_state: HardState,
    /// The snapshot the log starts after, if there is one.
    pub snapshot: Option<StoredSnapshot>,
    /// The configuration in force at `snapshot`'s index, as kept with it;
    /// `None` without a snapshot, or for one kept before membership
    /// changes existed (the bootstrap configuration).
    pub membership: Option<Membership>,
    /// The log after the snapshot, entry `snapshot.index + i` at position
    /// `i - 1`: the whole log, or with `damage` the prefix that is
    /// provably intact.
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
    snapshots: SnapshotStore,
    syncs: u64,
    /// For tests: while a file exists here, syncs wait ([`Storage::stall_syncs_while`]).
    stall_file: Option<PathBuf>,
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
        let (snapshots, opened) = SnapshotStore::open(dir, identity)?;
        let mut replay = wal::replay(dir, identity)?;
        let is_new =
            replay.manifest.is_none() && replay.damage.is_none() && opened.current.is_none();
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
        let snapshot = opened
            .current
            .as_ref()
            .map_or(SnapshotMeta::default(), |s| s.meta);
        let reaches = replay
            .start
            .is_some_and(|start| start.0 <= snapshot.index.0 + 1);
        if let (Some(corrupt), false) = (opened.corrupt.last(), reaches) {
            return Err(StorageError::SnapshotGap {
                corrupt: corrupt.clone(),
                used: opened.current.map(|s| s.path),
                log_start: replay.start,
            });
        }
        if replay.damage.is_none() {
            replay.damage = log_gap(dir, &replay, snapshot);
        }
        let discard = replay.damage.is_none() && log_conflicts(&replay, snapshot);
        let wal = match replay.damage.clone() {
            None => {
                let mut wal = Wal::open(dir, identity, segment_bytes_max, &replay, snapshot.index)?;
                if discard {
                    tracing::warn!(
                        %snapshot, log_last = %replay.last_index(),
                        "the log does not continue the snapshot (an install cut short by a crash): \
                         discarding it"
                    );
                    wal.reset(snapshot.index)?;
                    replay.entries.clear();
                }
                Ok(wal)
            }
            Some(damage) => {
                tracing::error!(%damage, "the log is damaged");
                Err(damage)
            }
        };
        let recovered = Recovered {
            hard_state: stored.state,
            membership: opened.membership,
            snapshot: opened.current,
            log: log_after(&mut replay, snapshot.index),
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
            snapshots,
            syncs: 0,
            stall_file: None,
        };
        Ok((storage, recovered))
    }

    /// The current snapshot (`0:0` before the first).
    pub fn snapshot(&self) -> SnapshotMeta {
        self.snapshots
            .current()
            .map_or(SnapshotMeta::default(), |s| s.meta)
    }

    /// The current snapshot and its file, if there is one.
    pub fn current_snapshot(&self) -> Option<&StoredSnapshot> {
        self.snapshots.current()
    }

    /// The file of the kept snapshot `meta` (the current one or the one
    /// before), for a transfer to a follower.
    pub fn snapshot_path(&self, meta: SnapshotMeta) -> Option<PathBuf> {
        self.snapshots.path_of(meta).map(Path::to_path_buf)
    }

    /// Where new snapshot files are written ([`write_snapshot`]).
    pub fn snapshot_dir(&self) -> &Path {
        self.snapshots.dir()
    }

    /// Whose files these are.
    pub fn identity(&self) -> Identity {
        self.identity
    }

    /// Makes `taken`, a snapshot file [`write_snapshot`] wrote into
    /// [`Storage::snapshot_dir`], the current snapshot if it is newer than
    /// the current one (else it is deleted), keeping one older. Call it
    /// before the machine hears of the snapshot (`Event::SnapshotTaken`).
    /// `membership`, the configuration in force at the snapshot's index,
    /// is kept with it, durably, before it becomes current. Returns
    /// whether it became current.
    pub fn add_snapshot(
        &mut self,
        taken: StoredSnapshot,
        membership: &Membership,
    ) -> Result<bool, StorageError> {
        self.snapshots
            .keep_membership(&taken, membership, self.identity)?;
        self.snapshots.add(taken)
    }

    /// Makes the verified snapshot file `received` (a leader's) the current
    /// snapshot and discards the whole log, durably, so that the log
    /// continues at `meta.index + 1`: `SnapshotInstall`. The turn's pending
    /// term and vote are stored first (the snapshot's term may be past the
    /// stored one) and its pending log records are dropped with the log.
    pub fn install_snapshot(
        &mut self,
        meta: SnapshotMeta,
        received: &Path,
        membership: &Membership,
    ) -> Result<StoredSnapshot, StorageError> {
        if let Some(state) = self.pending_hard_state.take() {
            self.store_hard_state(StoredState {
                state,
                repairing: self.stored.repairing,
            })?;
        }
        // Checked before anything changes: a damaged log is not reset.
        self.writable_wal()?;
        let installed = self
            .snapshots
            .adopt(meta, received, membership, self.identity)?;
        self.writable_wal()?.reset(meta.index)?;
        tracing::info!(snapshot = %meta, "installed a leader's snapshot; the log starts after it");
        Ok(installed)
    }

    /// Deletes the log segments whose entries a snapshot through `through`
    /// covers (`LogCompact`), as far as the snapshot kept before the current
    /// one covers them too: the log must still reach back to that one, so
    /// that a restart whose current snapshot turns out damaged falls back to
    /// it and replays the log after it. The log on disk thus spans up to two
    /// snapshot intervals. Returns how many segments went.
    pub fn compact(&mut self, through: LogIndex) -> Result<usize, StorageError> {
        let previous = (self.snapshots.previous()).map_or(LogIndex::ZERO, |s| s.meta.index);
        let through = through.min(self.snapshot().index).min(previous);
        match &mut self.wal {
            Ok(wal) => wal.compact(through),
            Err(_) => Ok(0),
        }
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
            // Performed with their files: `compact`, `install_snapshot`.
            Action::LogCompact { .. } | Action::SnapshotInstall { .. } => Ok(()),
            Action::Send { .. }
            | Action::Commit { .. }
            | Action::Alarm { .. }
            | Action::Rejected { .. }
            | Action::SteppedDown { .. }
            | Action::ReadReady { .. }
            | Action::ReadFailed { .. }
            | Action::MembershipChangeEnded { .. }
            | Action::TransferEnded { .. } => Ok(()),
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
        if self.stall_file.is_some() && self.has_pending() {
            self.wait_while_stalled();
        }
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

    /// FOR TESTS ONLY (`[faults] sync_stall_file`): from now on, while a
    /// file exists at `path`, every sync that has something to write waits,
    /// as on a disk that hangs. `None` (the default) costs nothing.
    pub fn stall_syncs_while(&mut self, path: Option<PathBuf>) {
        self.stall_file = path;
    }

    /// Whether a sync has something to make durable.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending_hard_state.is_some() || self.wal.as_ref().is_ok_and(Wal::has_pending)
    }

    /// Waits while the stall file exists, looking every few milliseconds.
    fn wait_while_stalled(&self) {
        const LOOK_INTERVAL: std::time::Duration = std::time::Duration::from_millis(2);
        let Some(path) = &self.stall_file else {
            return;
        };
        if path.exists() {
            tracing::warn!(path = %path.display(), "injected fault: syncs wait while this file exists");
            while path.exists() {
                std::thread::sleep(LOOK_INTERVAL);
            }
        }
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

/// Damage when the log starts past one after the snapshot's index: the
/// entries in between are lost (a compaction never deletes past the
/// snapshot).
fn log_gap(dir: &Path, replay: &wal::Replay, snapshot: SnapshotMeta) -> Option<LogDamage> {
    let start = replay.start?;
    if start.0 <= snapshot.index.0 + 1 {
        return None;
    }
    let first = replay.manifest.map_or(1, |m| m.first);
    Some(LogDamage {
        path: wal::segment_path(dir, first),
        offset: wal::RECORDS_START as u64,
        reason: format!(
            "the log starts at index {start}, but the snapshot ends at index {}: \
             entries {} to {} are missing",
            snapshot.index,
            snapshot.index.next(),
            start.prev()
        ),
        intact_through: snapshot.index,
        synced_through: None,
    })
}

/// Whether the log does not continue `snapshot`: it holds another term at
/// the snapshot's index, or ends before it. Only a crash during an install
/// (the snapshot adopted, the log not yet discarded) leaves that.
fn log_conflicts(replay: &wal::Replay, snapshot: SnapshotMeta) -> bool {
    let Some(start) = replay.start else {
        return false;
    };
    if snapshot.index.0 == 0 {
        return false;
    }
    if replay.last_index() < snapshot.index {
        return true;
    }
    match snapshot.index.0.checked_sub(start.0) {
        Some(position) => replay.entries[position as usize].term != snapshot.term,
        // The log starts right after the snapshot.
        None => false,
    }
}

/// Takes the entries after index `after` out of `replay`.
fn log_after(replay: &mut wal::Replay, after: LogIndex) -> Vec<Entry> {
    let mut entries = std::mem::take(&mut replay.entries);
    if let Some(start) = replay.start {
        let covered = after.0.saturating_add(1).saturating_sub(start.0);
        entries.drain(..(covered as usize).min(entries.len()));
    }
    entries
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
