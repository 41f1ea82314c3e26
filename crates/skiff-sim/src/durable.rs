//! A node's simulated disk: exactly what its `StateStore`, `LogStore`,
//! `LogTruncate` and `SnapshotInstall` actions wrote, less what `LogCompact`
//! let it discard, plus its current snapshot, and nothing else. The one
//! model of a disk in this workspace: the simulator, the scenario runner
//! and skiff-core's property tests all build their expectations on it.
//!
//! # Snapshots
//!
//! The disk holds one current snapshot (its name, [`SnapshotMeta`], and the
//! application state at it, when the driver models one) and the log after
//! it. A snapshot the node takes ([`Durable::store_snapshot`]) is written to
//! its own file and synced at once, before the machine hears of it; the
//! `LogCompact` that follows discards the entries it covers (not a write:
//! timing free, and a crash does not bring them back, for a restart reads
//! only the log after the snapshot). A snapshot received from a peer
//! ([`Durable::receive_snapshot`]) is durable on arrival; the
//! `SnapshotInstall` that names it makes it current and replaces the whole
//! log, a write like the others: a crash before the next sync takes it
//! back to the snapshot and log of before. [`Durable::restore`] restarts a
//! machine from the current snapshot and the log after it.
//!
//! The API follows a driver's life:
//!
//! * [`Durable::apply`] (or [`Durable::apply_owned`]) performs one
//!   persistence action, refusing a write the machine's contract rules out;
//! * [`Durable::sync`] makes every write so far survive a crash;
//! * [`Durable::crash`] loses the writes since the last sync;
//! * the read side ([`Durable::hard_state`], [`Durable::log`],
//!   [`Durable::restore`], ...) is what a restarting node finds.
//!
//! The simulator syncs once per batch, after its persistence actions and
//! before its first `Send` or `Commit` (as the real node does once per
//! turn), so a crash in between loses the batch's writes, or, with storage
//! faults, keeps a prefix of them and perhaps tears the last one
//! ([`Durable::crash_keeping`]). Damage to synced records
//! ([`Durable::damage_synced`]) stays on the disk until recovery reads it
//! back: [`Durable::scan`] says where the first bad record is and whether a
//! sync record follows it, and [`recover`] applies the real node's rule
//! (crates/skiff-node/src/storage/wal.rs, "Recovery") to that.
//!
//! # What recovery can and cannot notice
//!
//! A record fails its check (bit flip, torn write, missing segment, lost
//! records). If a sync record lies after it, the record had been synced,
//! so the node may have acknowledged it: that is damage, and the node
//! restarts repairing. If no sync record lies after it, the record was
//! written after the last sync, never acknowledged, and is cut silently (a
//! torn tail). A lost fsync therefore shows only if a later sync record
//! survives: the writes of the last sync before a crash, lost with their
//! sync record, look exactly like a torn tail and cannot be noticed by the
//! node alone. The simulator injects lost fsyncs only in the noticeable
//! form (see `world/storage`).

use crate::app::{AppState, Snapshot};
use skiff_core::{
    Action, Config, Entries, Entry, HardState, LogIndex, Machine, Membership, SnapshotMeta,
    StartState, StateError, Term,
};

/// A write the machine's contract rules out: performing it anyway would
/// leave a disk that disagrees with the machine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DiskError {
    /// A `LogStore` that does not go one past the end of the log.
    #[error(
        "writes index {index}, but the durable log ends at {last} (a LogStore goes one past the end)"
    )]
    StoreNotAppending {
        /// Where the store would write its first entry.
        index: LogIndex,
        /// The last index on disk.
        last: LogIndex,
    },
    /// A `LogStore` with no entries.
    #[error("stores no entries (a LogStore stores something)")]
    StoreEmpty,
    /// A `LogTruncate` from index 0, from an index the log's base covers,
    /// or past the end of the log.
    #[error("truncates from index {from}, which removes nothing it holds: the durable log ends at {last}")]
    TruncateOutside {
        /// Where the truncation would start.
        from: LogIndex,
        /// The last index on disk.
        last: LogIndex,
    },
    /// A `LogCompact` past the end of the log.
    #[error("compacts through index {through}, past the durable log's end at {last}")]
    CompactOutside {
        /// The last index the compaction would discard.
        through: LogIndex,
        /// The last index on disk.
        last: LogIndex,
    },
    /// A snapshot that does not name an entry of the log after the current
    /// snapshot.
    #[error("stores snapshot {snapshot}, which names no entry on disk after the current snapshot {current}")]
    SnapshotNotOnDisk {
        /// The snapshot stored.
        snapshot: SnapshotMeta,
        /// The current snapshot.
        current: SnapshotMeta,
    },
}

/// One write since the last sync, kept so that a crash can keep a prefix of
/// the writes and tear the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Write {
    State(HardState),
    Store(Entries),
    Truncate(LogIndex),
    /// A snapshot install, with the configuration in force at it.
    Install(SnapshotMeta, Option<AppState>, Box<Membership>),
}

/// What a crash does to the writes made since the last sync.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnsyncedFate {
    /// The first `kept` writes reach the disk, the rest are lost (0: all lost).
    Kept {
        /// How many of the unsynced writes survive, in order.
        kept: usize,
    },
    /// The first `kept` writes reach the disk and the next one is torn: of
    /// a `LogStore`, its first `entries` entries are intact and the record
    /// after them fails its check; any other write is simply lost (the hard
    /// state's other copy survives a torn one).
    Torn {
        /// How many of the unsynced writes survive whole.
        kept: usize,
        /// How many entries of the torn `LogStore` survive.
        entries: usize,
    },
}

/// The first log record that fails its check, as recovery finds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRecord {
    /// The index of the entry the record held.
    pub index: LogIndex,
    /// Whether an intact sync record lies after it: the record had been synced.
    pub sync_after: bool,
}

/// What recovery reads back from a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scan {
    /// The first record that fails its check.
    pub first_bad: Option<BadRecord>,
    /// The disk's mark that an earlier recovery found damage and the node
    /// has not finished repairing since: a crash must not end a repair.
    pub unrepaired: bool,
    /// The last index on disk.
    pub last_index: LogIndex,
}

/// What recovery does with a disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// Every record is intact: restore normally.
    Clean,
    /// A torn tail, never acknowledged: keep the log up to `keep`, restore normally.
    TornTail {
        /// The last index kept.
        keep: LogIndex,
    },
    /// Damage in what may have been acknowledged: keep the intact prefix up
    /// to `keep` and restart repairing.
    Damaged {
        /// The last index kept.
        keep: LogIndex,
    },
}

/// The node's recovery rule, on what `scan` found: a bad record with a sync
/// record after it is damage, one without is a torn tail; a node that had
/// not finished repairing before it stopped repairs again.
pub fn recover(scan: Scan) -> Recovery {
    match scan.first_bad {
        Some(bad) if bad.sync_after => Recovery::Damaged {
            keep: bad.index.prev(),
        },
        Some(bad) if scan.unrepaired => Recovery::Damaged {
            keep: bad.index.prev(),
        },
        Some(bad) => Recovery::TornTail {
            keep: bad.index.prev(),
        },
        None if scan.unrepaired => Recovery::Damaged {
            keep: scan.last_index,
        },
        None => Recovery::Clean,
    }
}

/// One node's disk: what it wrote, and what of that a crash would keep.
///
/// Entries are kept after `base`, the point the log starts after (what
/// `LogCompact` or `SnapshotInstall` left): entry `i` at position
/// `i - base.index - 1`. Positions below (`synced_prefix`, `sync_runs`)
/// are in that numbering and shift when a compaction moves `base`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The last `StateStore` written.
    hard_state: HardState,
    /// The current snapshot: the newest one taken or installed (0:0: none).
    snapshot: SnapshotMeta,
    /// The application state it holds; `None` when the driver does not
    /// model the application (the scenario runner and the core's tests).
    snapshot_state: Option<AppState>,
    /// What the log starts after: the snapshot the last compaction or
    /// install reached (the current snapshot may be newer, until the
    /// compaction that follows it).
    base: SnapshotMeta,
    /// The configuration in force at `base`, as the last compaction or
    /// install handed it over; `None` (before any) means the bootstrap
    /// configuration. A restart needs it: configuration entries the base
    /// covers are gone from the log.
    base_membership: Option<Membership>,
    /// The log after `base`.
    log: Vec<Entry>,
    /// The hard state as of the last sync.
    synced_hard_state: HardState,
    /// How many entries at the front of `log` are synced and unchanged since.
    synced_prefix: usize,
    /// Synced entries that a later truncation removed from `log`; they
    /// followed position `synced_prefix`, and a crash puts them back.
    synced_truncated: Vec<Entry>,
    /// The disk as of the last sync, kept when an unsynced `SnapshotInstall`
    /// replaced the whole log: a crash before the next sync goes back to it.
    before_install: Option<Box<Image>>,
    /// A snapshot received from a peer, whole and durable, that the next
    /// `SnapshotInstall` of its name adopts.
    received: Option<Snapshot>,
    /// The writes since the last sync, in order.
    unsynced: Vec<Write>,
    /// Where the entries of each sync that wrote some begin (positions in
    /// `log`, increasing): each such run is followed by its sync record.
    sync_runs: Vec<usize>,
    /// The first record that fails its check, until recovery cuts it.
    bad: Option<BadRecord>,
    /// Set when recovery finds damage, cleared once the node has repaired.
    unrepaired: bool,
}

/// The synced disk from before an unsynced install.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Image {
    snapshot: SnapshotMeta,
    snapshot_state: Option<AppState>,
    base: SnapshotMeta,
    base_membership: Option<Membership>,
    log: Vec<Entry>,
    sync_runs: Vec<usize>,
    bad: Option<BadRecord>,
}

impl Durable {
    /// A disk that already holds, synced, `hard_state` and `log`.
    pub fn new(hard_state: HardState, log: Vec<Entry>) -> Durable {
        Durable::with_snapshot(hard_state, SnapshotMeta::default(), None, log)
    }

    /// A disk that already holds, synced, `hard_state`, the snapshot
    /// `snapshot` (with the application state `state`, if modelled) and
    /// `log`, the entries after it.
    pub fn with_snapshot(
        hard_state: HardState,
        snapshot: SnapshotMeta,
        state: Option<AppState>,
        log: Vec<Entry>,
    ) -> Durable {
        Durable {
            hard_state,
            snapshot,
            snapshot_state: state,
            base: snapshot,
            synced_hard_state: hard_state,
            synced_prefix: log.len(),
            sync_runs: if log.is_empty() { Vec::new() } else { vec![0] },
            log,
            ..Durable::default()
        }
    }

    /// Checks that `action` is a write the disk can perform: any action but
    /// a `LogStore` that does not append, a `LogTruncate` outside the log
    /// after its base, or a `LogCompact` past the log's end.
    pub fn check(&self, action: &Action) -> Result<(), DiskError> {
        match action {
            Action::LogStore { index, entries } => self.check_store(*index, entries.is_empty()),
            Action::LogTruncate { from }
                if *from <= self.base.index || *from > self.last_index() =>
            {
                Err(DiskError::TruncateOutside {
                    from: *from,
                    last: self.last_index(),
                })
            }
            Action::LogCompact { through, .. } if *through > self.last_index() => {
                Err(DiskError::CompactOutside {
                    through: *through,
                    last: self.last_index(),
                })
            }
            _ => Ok(()),
        }
    }

    fn check_store(&self, index: LogIndex, empty: bool) -> Result<(), DiskError> {
        if index != self.last_index().next() {
            return Err(DiskError::StoreNotAppending {
                index,
                last: self.last_index(),
            });
        }
        if empty {
            return Err(DiskError::StoreEmpty);
        }
        Ok(())
    }

    /// Writes one persistence action (unsynced), or discards the entries a
    /// `LogCompact` covers; other actions leave the disk alone. A write
    /// [`Durable::check`] refuses is not performed.
    ///
    /// A `SnapshotInstall` adopts the snapshot received under its name
    /// ([`Durable::receive_snapshot`]), or, when none was, takes the name
    /// with no application state (for drivers that do not model one).
    pub fn apply(&mut self, action: &Action) -> Result<(), DiskError> {
        self.check(action)?;
        match action {
            Action::StateStore { term, voted_for } => self.write(Write::State(HardState {
                term: *term,
                voted_for: *voted_for,
            })),
            Action::LogStore { entries, .. } => self.write(Write::Store(entries.clone())),
            Action::LogTruncate { from } => self.write(Write::Truncate(*from)),
            Action::LogCompact {
                through,
                membership,
            } => self.compact(*through, membership),
            Action::SnapshotInstall {
                snapshot,
                membership,
            } => {
                let state = self
                    .received
                    .filter(|received| received.meta == *snapshot)
                    .map(|received| received.state);
                let membership = Box::new(membership.clone());
                self.write(Write::Install(*snapshot, state, membership));
            }
            Action::Send { .. }
            | Action::Commit { .. }
            | Action::Alarm { .. }
            | Action::Rejected { .. }
            | Action::SteppedDown { .. }
            | Action::ReadReady { .. }
            | Action::ReadFailed { .. }
            | Action::TransferEnded { .. }
            | Action::MembershipChangeEnded { .. } => {}
        }
        Ok(())
    }

    /// [`Durable::apply`] for an action the caller gives up, so that stored
    /// entries are moved rather than cloned when nothing else holds them.
    pub fn apply_owned(&mut self, action: Action) -> Result<(), DiskError> {
        match action {
            Action::LogStore { index, entries } => {
                self.check_store(index, entries.is_empty())?;
                self.write(Write::Store(entries));
                Ok(())
            }
            other => self.apply(&other),
        }
    }

    /// Performs one checked write and remembers it until the next sync.
    fn write(&mut self, write: Write) {
        match &write {
            Write::State(hard_state) => self.hard_state = *hard_state,
            Write::Store(entries) => self.log.extend(entries.iter().cloned()),
            Write::Truncate(from) => self.truncate(*from),
            Write::Install(snapshot, state, membership) => {
                self.install(*snapshot, *state, membership)
            }
        }
        self.unsynced.push(write);
    }

    /// Replaces the whole log with `snapshot`, keeping the synced disk
    /// aside for a crash before the next sync.
    fn install(
        &mut self,
        snapshot: SnapshotMeta,
        state: Option<AppState>,
        membership: &Membership,
    ) {
        if self.before_install.is_none() {
            let mut log = self.log[..self.synced_prefix].to_vec();
            log.extend(self.synced_truncated.iter().cloned());
            self.before_install = Some(Box::new(Image {
                snapshot: self.snapshot,
                snapshot_state: self.snapshot_state,
                base: self.base,
                base_membership: self.base_membership.clone(),
                log,
                sync_runs: self.sync_runs.clone(),
                bad: self.bad,
            }));
        }
        self.snapshot = snapshot;
        self.snapshot_state = state;
        self.base = snapshot;
        self.base_membership = Some(membership.clone());
        self.log.clear();
        self.synced_prefix = 0;
        self.synced_truncated.clear();
        self.sync_runs.clear();
        self.bad = None;
    }

    /// Discards the entries through `through`, which a durable snapshot
    /// covers. The driver takes its snapshot before the machine compacts
    /// (`store_snapshot`); a compaction past the stored snapshot (a driver
    /// that does not model the application) makes a snapshot of that name
    /// without application state. Not a write: it needs no sync, and a
    /// crash does not bring the entries back (recovery would skip them).
    fn compact(&mut self, through: LogIndex, membership: &Membership) {
        if through <= self.base.index {
            return;
        }
        self.base_membership = Some(membership.clone());
        let term = self.term_at(through).unwrap_or_default();
        if through > self.snapshot.index {
            self.snapshot = SnapshotMeta {
                index: through,
                term,
            };
            self.snapshot_state = None;
        }
        let dropped = (through.0 - self.base.index.0) as usize;
        self.log.drain(..dropped);
        // The synced image loses the same front: its prefix, then what a
        // truncation set aside after it.
        let from_truncated = dropped.saturating_sub(self.synced_prefix);
        self.synced_prefix = self.synced_prefix.saturating_sub(dropped);
        let set_aside = from_truncated.min(self.synced_truncated.len());
        self.synced_truncated.drain(..set_aside);
        let mut runs: Vec<usize> = Vec::with_capacity(self.sync_runs.len());
        for start in self.sync_runs.drain(..) {
            let start = start.saturating_sub(dropped);
            if runs.last() != Some(&start) && start < self.log.len().max(self.synced_prefix) {
                runs.push(start);
            }
        }
        self.sync_runs = runs;
        self.base = SnapshotMeta {
            index: through,
            term,
        };
    }

    /// Makes `snapshot`, taken by the node's application from its applied
    /// state, the current snapshot. Written to its own file and synced at
    /// once, with every write before it: the machine hears of it
    /// (`SnapshotTaken`) only then. The snapshot must name an entry on the
    /// disk, after the current snapshot.
    pub fn store_snapshot(&mut self, snapshot: Snapshot) -> Result<(), DiskError> {
        let meta = snapshot.meta;
        if meta.index <= self.snapshot.index || self.term_at(meta.index) != Some(meta.term) {
            return Err(DiskError::SnapshotNotOnDisk {
                snapshot: meta,
                current: self.snapshot,
            });
        }
        self.sync();
        self.snapshot = meta;
        self.snapshot_state = Some(snapshot.state);
        Ok(())
    }

    /// A snapshot a peer sent arrived whole and is durable (in its own
    /// file, apart from the current snapshot): a `SnapshotInstall` of its
    /// name adopts it. Replaces one received earlier.
    pub fn receive_snapshot(&mut self, snapshot: Snapshot) {
        self.received = Some(snapshot);
    }

    /// The snapshot received whole and not yet deleted, if any.
    pub fn received(&self) -> Option<Snapshot> {
        self.received
    }

    /// Deletes the received snapshot, installed or not.
    pub fn discard_received(&mut self) {
        self.received = None;
    }

    /// Makes every write so far survive a crash; the sync record it appends
    /// follows every log record written since the previous sync.
    pub fn sync(&mut self) {
        let mut lowest_written = None::<usize>;
        for write in self.unsynced.drain(..) {
            let at = match write {
                Write::State(_) => continue,
                Write::Store(_) => self.synced_prefix,
                // An install in the same batch moved the base past it.
                Write::Truncate(from) => from.0.saturating_sub(self.base.index.0 + 1) as usize,
                Write::Install(..) => 0,
            };
            lowest_written = Some(lowest_written.map_or(at, |low| low.min(at)));
        }
        if let Some(low) = lowest_written {
            self.sync_runs.retain(|start| *start < low);
            if self.log.len() > low {
                self.sync_runs.push(low);
            }
        }
        self.synced_hard_state = self.hard_state;
        self.synced_prefix = self.log.len();
        self.synced_truncated.clear();
        self.before_install = None;
    }

    /// Loses every write since the last sync: the disk holds what it held
    /// then.
    pub fn crash(&mut self) {
        self.crash_keeping(UnsyncedFate::Kept { kept: 0 });
    }

    /// A crash that keeps part of the writes since the last sync, as `fate`
    /// says; what survives is on disk (with no sync record after it).
    pub fn crash_keeping(&mut self, fate: UnsyncedFate) {
        let mut writes = std::mem::take(&mut self.unsynced).into_iter();
        self.hard_state = self.synced_hard_state;
        if let Some(image) = self.before_install.take() {
            self.snapshot = image.snapshot;
            self.snapshot_state = image.snapshot_state;
            self.base = image.base;
            self.base_membership = image.base_membership;
            self.log = image.log;
            self.sync_runs = image.sync_runs;
            self.bad = image.bad;
            self.synced_truncated.clear();
        } else {
            self.log.truncate(self.synced_prefix);
            self.log.append(&mut self.synced_truncated);
        }
        self.synced_prefix = self.log.len();
        self.received = None;
        let (kept, torn_entries) = match fate {
            UnsyncedFate::Kept { kept } => (kept, None),
            UnsyncedFate::Torn { kept, entries } => (kept, Some(entries)),
        };
        for write in writes.by_ref().take(kept) {
            self.write(write);
        }
        let torn = torn_entries.zip(writes.next());
        if let Some((entries, Write::Store(stored))) = torn {
            let intact = stored.slice(0..entries.min(stored.len()));
            if !intact.is_empty() {
                self.write(Write::Store(intact));
            }
            let index = self.last_index().next();
            self.mark_bad(BadRecord {
                index,
                sync_after: false,
            });
        }
        // What reached the disk stays there; the next crash cannot take it.
        self.sync();
    }

    /// A storage fault in synced records (a flipped bit, a vanished
    /// segment, records of a lost fsync with a later sync record): the
    /// record holding `index` (after the log's base) and every one after it
    /// are unreadable, and a sync record follows them. Recovery finds it at
    /// the next restart.
    pub fn damage_synced(&mut self, index: LogIndex) {
        debug_assert!(index > self.base.index, "damage falls in the log");
        self.mark_bad(BadRecord {
            index,
            sync_after: true,
        });
    }

    fn mark_bad(&mut self, bad: BadRecord) {
        if self.bad.is_none_or(|first| bad.index <= first.index) {
            self.bad = Some(bad);
        }
    }

    /// Where the synced log ends: damage to synced records falls at or before it.
    pub fn synced_last_index(&self) -> LogIndex {
        LogIndex(self.base.index.0 + self.synced_prefix as u64)
    }

    /// The first index written by each sync that wrote entries, in order:
    /// losing the writes of one of them (a lost fsync) loses from there.
    pub fn sync_run_starts(&self) -> impl Iterator<Item = LogIndex> + '_ {
        let base = self.base.index.0;
        self.sync_runs
            .iter()
            .map(move |start| LogIndex(base + *start as u64 + 1))
    }

    /// What recovery reads back: the first bad record, if any.
    pub fn scan(&self) -> Scan {
        Scan {
            first_bad: self.bad,
            unrepaired: self.unrepaired,
            last_index: self.last_index(),
        }
    }

    /// How many writes a crash now would lose.
    pub fn unsynced_writes(&self) -> usize {
        self.unsynced.len()
    }

    /// Records whether the node still has to repair (recovery found damage)
    /// or has finished; the mark survives crashes.
    pub fn set_unrepaired(&mut self, unrepaired: bool) {
        self.unrepaired = unrepaired;
    }

    /// Whether recovery found damage the node has not yet finished repairing.
    pub fn unrepaired(&self) -> bool {
        self.unrepaired
    }

    /// Recovery cuts the log after `keep` (at or after the log's base): the
    /// disk loses every entry after it, synced or not, and with them any
    /// bad record. Returns whether it lost any entry.
    pub fn lose_log_after(&mut self, keep: LogIndex) -> bool {
        let kept = usize::try_from(keep.0.saturating_sub(self.base.index.0)).unwrap_or(usize::MAX);
        let lost = self.log.len() > kept;
        self.log.truncate(kept);
        self.synced_truncated.clear();
        self.synced_prefix = self.synced_prefix.min(kept);
        self.sync_runs.retain(|start| *start < kept);
        if self.bad.is_some_and(|bad| bad.index > keep) {
            self.bad = None;
        }
        lost
    }

    /// The last `StateStore` written.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The current snapshot's name (0:0: none).
    pub fn snapshot(&self) -> SnapshotMeta {
        self.snapshot
    }

    /// The current snapshot with its application state, if it has one.
    pub fn current_snapshot(&self) -> Option<Snapshot> {
        let state = self.snapshot_state?;
        Some(Snapshot {
            meta: self.snapshot,
            state,
        })
    }

    /// What the log starts after: the snapshot it was last compacted to or
    /// replaced by (0:0: none).
    pub fn base(&self) -> SnapshotMeta {
        self.base
    }

    /// The log as written after its base, entry `i` at position
    /// `i - base().index - 1`.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// The entries from `from` through `through` that the log holds.
    pub fn entries(&self, from: LogIndex, through: LogIndex) -> &[Entry] {
        let base = self.base.index.0;
        let start = (from.0.max(base + 1) - base - 1) as usize;
        let end = (through.0.saturating_sub(base) as usize).min(self.log.len());
        self.log.get(start..end).unwrap_or_default()
    }

    /// The configuration in force at `index` (not before the log's base):
    /// the latest configuration entry through it, else the base's; `None`
    /// means the bootstrap configuration (`Config::peers`).
    pub fn membership_at(&self, index: LogIndex) -> Option<Membership> {
        let through = index.max(self.base.index);
        self.entries(self.base.index.next(), through)
            .iter()
            .rev()
            .filter(|entry| entry.is_membership())
            .find_map(|entry| Membership::decode(&entry.data).ok())
            .or_else(|| self.base_membership.clone())
    }

    /// The log after the current snapshot: what a restart replays.
    fn log_after_snapshot(&self) -> Vec<Entry> {
        self.entries(self.snapshot.index.next(), self.last_index())
            .to_vec()
    }

    /// A machine restarted from this disk, as a driver restarts one: from
    /// its current snapshot and the log after it.
    /// The configuration in force at its snapshot travels along.
    pub fn restore(&self, config: Config) -> Result<Machine, StateError> {
        if self.snapshot == SnapshotMeta::default() {
            return Machine::restore(config, self.hard_state, self.log.clone());
        }
        Machine::with_state(
            config,
            StartState {
                hard_state: self.hard_state,
                snapshot: self.snapshot,
                log: self.log_after_snapshot(),
                membership: self.membership_at(self.snapshot.index),
                ..StartState::default()
            },
        )
    }

    /// A machine restarted from this disk after recovery found it damaged
    /// ([`Durable::lose_log_after`]): it starts repairing.
    pub fn restore_damaged(&self, config: Config) -> Result<Machine, StateError> {
        Machine::with_state(
            config,
            StartState {
                hard_state: self.hard_state,
                snapshot: self.snapshot,
                log: self.log_after_snapshot(),
                membership: self.membership_at(self.snapshot.index),
                damaged: true,
                ..StartState::default()
            },
        )
    }

    /// The index of the last entry on disk (the base's when none follows it).
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.base.index.0 + self.log.len() as u64)
    }

    /// The term of the last entry on disk (the base's when none follows it).
    pub fn last_term(&self) -> Term {
        self.log.last().map_or(self.base.term, |entry| entry.term)
    }

    /// The entry at `index`, if the log holds it (not one the base covers).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = index.0.checked_sub(self.base.index.0 + 1)?;
        self.log.get(usize::try_from(position).ok()?)
    }

    /// The term at `index`: 0 at index 0, the base's at its index, `None`
    /// before it or past the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.entry(index).map(|entry| entry.term)
    }

    /// Removes the entries from `from` on; synced ones are set aside so
    /// that a crash before the next sync can put them back.
    fn truncate(&mut self, from: LogIndex) {
        let kept = (from.0 - self.base.index.0 - 1) as usize;
        if kept < self.synced_prefix {
            let mut removed: Vec<Entry> = self.log.drain(kept..self.synced_prefix).collect();
            removed.append(&mut self.synced_truncated);
            self.synced_truncated = removed;
            self.synced_prefix = kept;
        }
        self.log.truncate(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::NodeId;

    fn test_membership() -> skiff_core::Membership {
        skiff_core::Membership::new([NodeId(1), NodeId(2), NodeId(3)], []).expect("voters")
    }

    fn store(index: u64, term: u64, data: &'static str) -> Action {
        Action::LogStore {
            index: LogIndex(index),
            entries: Entry::new(Term(term), data).into(),
        }
    }

    fn vote(term: u64) -> Action {
        Action::StateStore {
            term: Term(term),
            voted_for: Some(NodeId(1)),
        }
    }

    fn data(disk: &Durable) -> Vec<&[u8]> {
        disk.log().iter().map(|entry| entry.data.as_ref()).collect()
    }

    #[test]
    fn persistence_actions_build_the_disk() {
        let mut disk = Durable::default();
        for action in [
            vote(2),
            store(1, 1, "a"),
            store(2, 2, "b"),
            store(3, 2, "c"),
            Action::LogTruncate { from: LogIndex(2) },
            store(2, 2, "d"),
            Action::Alarm { ms: 5 },
        ] {
            disk.apply(&action).unwrap();
        }
        assert_eq!(disk.hard_state().term, Term(2));
        assert_eq!(disk.hard_state().voted_for, Some(NodeId(1)));
        assert_eq!(
            disk.log(),
            [Entry::new(Term(1), "a"), Entry::new(Term(2), "d")]
        );
        assert_eq!(disk.last_index(), LogIndex(2));
        assert_eq!(disk.last_term(), Term(2));
        assert_eq!(disk.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(disk.term_at(LogIndex(3)), None);
    }

    #[test]
    fn owned_and_borrowed_writes_agree() {
        let actions = [store(1, 1, "a"), store(2, 1, "b"), vote(3)];
        let mut borrowed = Durable::default();
        let mut owned = Durable::default();
        for action in actions {
            borrowed.apply(&action).unwrap();
            owned.apply_owned(action).unwrap();
        }
        assert_eq!(borrowed, owned);
        assert_eq!(
            owned.apply_owned(store(5, 1, "gap")),
            Err(DiskError::StoreNotAppending {
                index: LogIndex(5),
                last: LogIndex(2)
            })
        );
    }

    #[test]
    fn writes_that_break_the_contract_are_refused_and_not_performed() {
        let mut disk = Durable::default();
        let gap = disk.apply(&store(2, 1, "gap")).unwrap_err();
        assert!(gap.to_string().contains("durable log ends at 0"), "{gap}");
        disk.apply(&store(1, 1, "a")).unwrap();
        assert!(disk.apply(&store(1, 1, "again")).is_err());
        let empty = Action::LogStore {
            index: LogIndex(2),
            entries: Vec::new().into(),
        };
        assert_eq!(disk.apply(&empty), Err(DiskError::StoreEmpty));
        for from in [0, 2] {
            let refused = disk
                .apply(&Action::LogTruncate {
                    from: LogIndex(from),
                })
                .unwrap_err();
            assert!(refused.to_string().contains("removes nothing"), "{refused}");
        }
        assert_eq!(data(&disk), [&b"a"[..]]);
    }

    #[test]
    fn a_crash_keeps_what_was_synced_and_loses_the_rest() {
        let mut disk = Durable::new(HardState::default(), vec![Entry::new(Term(1), "a")]);
        disk.apply(&vote(2)).unwrap();
        disk.apply(&store(2, 2, "b")).unwrap();
        disk.sync();
        disk.apply(&vote(3)).unwrap();
        disk.apply(&store(3, 3, "c")).unwrap();
        disk.crash();
        assert_eq!(disk.hard_state().term, Term(2));
        assert_eq!(data(&disk), [&b"a"[..], b"b"]);
    }

    #[test]
    fn a_crash_puts_back_synced_entries_an_unsynced_truncation_removed() {
        let mut disk = Durable::default();
        for action in [store(1, 1, "a"), store(2, 1, "b"), store(3, 1, "c")] {
            disk.apply(&action).unwrap();
        }
        disk.sync();
        // Two truncations in a row, the second reaching below the first.
        disk.apply(&Action::LogTruncate { from: LogIndex(3) })
            .unwrap();
        disk.apply(&store(3, 2, "x")).unwrap();
        disk.apply(&Action::LogTruncate { from: LogIndex(2) })
            .unwrap();
        disk.apply(&store(2, 2, "y")).unwrap();
        assert_eq!(data(&disk), [&b"a"[..], b"y"]);
        disk.crash();
        assert_eq!(data(&disk), [&b"a"[..], b"b", b"c"]);
        // The disk goes on from there.
        disk.apply(&Action::LogTruncate { from: LogIndex(3) })
            .unwrap();
        disk.sync();
        disk.crash();
        assert_eq!(data(&disk), [&b"a"[..], b"b"]);
    }

    #[test]
    fn a_crash_keeps_a_prefix_of_the_unsynced_writes_and_may_tear_the_next() {
        let mut disk = Durable::default();
        disk.apply(&store(1, 1, "a")).unwrap();
        disk.sync();
        disk.apply(&vote(2)).unwrap();
        disk.apply(&store(2, 2, "b")).unwrap();
        disk.apply(&store(3, 2, "c")).unwrap();
        let mut kept = disk.clone();
        kept.crash_keeping(UnsyncedFate::Kept { kept: 2 });
        assert_eq!(data(&kept), [&b"a"[..], b"b"]);
        assert_eq!(kept.hard_state().term, Term(2));
        assert_eq!(recover(kept.scan()), Recovery::Clean);
        disk.crash_keeping(UnsyncedFate::Torn {
            kept: 2,
            entries: 0,
        });
        assert_eq!(data(&disk), [&b"a"[..], b"b"]);
        assert_eq!(
            recover(disk.scan()),
            Recovery::TornTail { keep: LogIndex(2) }
        );
        assert!(!disk.lose_log_after(LogIndex(2)));
        assert_eq!(recover(disk.scan()), Recovery::Clean);
    }

    #[test]
    fn damage_before_a_sync_record_is_damage_and_stays_until_repaired() {
        let mut disk = Durable::default();
        for (index, data) in [(1, "a"), (2, "b"), (3, "c")] {
            disk.apply(&store(index, 1, data)).unwrap();
            disk.sync();
        }
        let starts: Vec<LogIndex> = disk.sync_run_starts().collect();
        assert_eq!(starts, [LogIndex(1), LogIndex(2), LogIndex(3)]);
        disk.damage_synced(LogIndex(2));
        disk.crash();
        let recovery = recover(disk.scan());
        assert_eq!(recovery, Recovery::Damaged { keep: LogIndex(1) });
        assert!(disk.lose_log_after(LogIndex(1)));
        disk.set_unrepaired(true);
        // A crash before the repair ends does not end it.
        disk.crash();
        assert_eq!(
            recover(disk.scan()),
            Recovery::Damaged { keep: LogIndex(1) }
        );
        disk.set_unrepaired(false);
        assert_eq!(recover(disk.scan()), Recovery::Clean);
    }

    fn snapshot(index: u64, term: u64, data: &[&str]) -> Snapshot {
        let mut state = AppState::default();
        for datum in data {
            state.apply(datum.as_bytes());
        }
        assert_eq!(state.applied, LogIndex(index));
        Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(index),
                term: Term(term),
            },
            state,
        }
    }

    fn three_synced() -> Durable {
        let mut disk = Durable::default();
        disk.apply(&vote(1)).unwrap();
        for (index, data) in [(1, "a"), (2, "b"), (3, "c")] {
            disk.apply(&store(index, 1, data)).unwrap();
            disk.sync();
        }
        disk
    }

    #[test]
    fn a_compaction_keeps_the_indices_and_a_restart_starts_after_the_snapshot() {
        let mut disk = three_synced();
        let taken = snapshot(2, 1, &["a", "b"]);
        disk.store_snapshot(taken).unwrap();
        // Stored, not yet compacted: the log still starts at 1.
        assert_eq!(disk.base(), SnapshotMeta::default());
        assert_eq!(disk.current_snapshot(), Some(taken));
        disk.apply(&Action::LogCompact {
            through: LogIndex(2),
            membership: test_membership(),
        })
        .unwrap();
        assert_eq!(disk.base(), taken.meta);
        assert_eq!(data(&disk), [&b"c"[..]]);
        assert_eq!(
            (disk.last_index(), disk.last_term()),
            (LogIndex(3), Term(1))
        );
        assert_eq!(disk.entry(LogIndex(2)), None);
        assert_eq!(disk.term_at(LogIndex(2)), Some(Term(1)));
        assert_eq!(disk.term_at(LogIndex(1)), None);
        assert_eq!(disk.synced_last_index(), LogIndex(3));
        assert!(disk.sync_run_starts().all(|start| start == LogIndex(3)));
        // Stores continue at the end; truncation cannot reach the snapshot.
        disk.apply(&store(4, 1, "d")).unwrap();
        assert!(disk
            .apply(&Action::LogTruncate { from: LogIndex(2) })
            .is_err());
        disk.crash();
        assert_eq!(data(&disk), [&b"c"[..]]);
        let machine = disk.restore(Config::new(NodeId(1), [NodeId(1)])).unwrap();
        assert_eq!(machine.snapshot(), taken.meta);
        assert_eq!(machine.commit_index(), LogIndex(2));
        assert!(machine.log().eq(disk.log()));
        // A snapshot must name an entry after the current one.
        assert!(disk.store_snapshot(snapshot(2, 1, &["a", "b"])).is_err());
        let wrong_term = Snapshot {
            meta: SnapshotMeta {
                index: LogIndex(3),
                term: Term(2),
            },
            ..snapshot(3, 1, &["a", "b", "c"])
        };
        assert!(disk.store_snapshot(wrong_term).is_err());
    }

    #[test]
    fn an_install_replaces_the_log_and_a_crash_before_its_sync_takes_it_back() {
        let mut disk = three_synced();
        let received = snapshot(5, 2, &["a", "x", "y", "z", "w"]);
        let install = Action::SnapshotInstall {
            snapshot: received.meta,
            membership: test_membership(),
        };
        disk.receive_snapshot(received);
        disk.apply(&vote(2)).unwrap();
        disk.apply(&install).unwrap();
        assert_eq!(disk.current_snapshot(), Some(received));
        assert_eq!(
            (disk.base(), disk.last_index()),
            (received.meta, LogIndex(5))
        );
        assert!(disk.log().is_empty());
        disk.apply(&store(6, 2, "v")).unwrap();
        disk.crash();
        assert_eq!(disk.snapshot(), SnapshotMeta::default());
        assert_eq!(data(&disk), [&b"a"[..], b"b", b"c"]);
        assert_eq!(disk.hard_state().term, Term(1));
        // Kept up to the install by a partial write, then synced by the crash.
        disk.receive_snapshot(received);
        disk.apply(&install).unwrap();
        disk.apply(&store(6, 2, "v")).unwrap();
        disk.crash_keeping(UnsyncedFate::Kept { kept: 1 });
        assert_eq!(disk.current_snapshot(), Some(received));
        assert!(disk.log().is_empty());
        disk.apply(&store(6, 2, "v")).unwrap();
        disk.sync();
        disk.crash();
        assert_eq!(
            (disk.snapshot(), data(&disk)),
            (received.meta, vec![&b"v"[..]])
        );
        // Without a received snapshot the name is taken with no state.
        let bare = SnapshotMeta {
            index: LogIndex(9),
            term: Term(3),
        };
        disk.apply(&Action::SnapshotInstall {
            snapshot: bare,
            membership: test_membership(),
        })
        .unwrap();
        assert_eq!((disk.snapshot(), disk.current_snapshot()), (bare, None));
    }

    #[test]
    fn damage_and_recovery_work_after_a_compaction() {
        let mut disk = three_synced();
        disk.store_snapshot(snapshot(1, 1, &["a"])).unwrap();
        disk.apply(&Action::LogCompact {
            through: LogIndex(1),
            membership: test_membership(),
        })
        .unwrap();
        disk.apply(&store(4, 1, "d")).unwrap();
        disk.sync();
        let starts: Vec<LogIndex> = disk.sync_run_starts().collect();
        assert_eq!(starts, [LogIndex(2), LogIndex(3), LogIndex(4)]);
        disk.damage_synced(LogIndex(3));
        disk.crash();
        let recovery = recover(disk.scan());
        assert_eq!(recovery, Recovery::Damaged { keep: LogIndex(2) });
        assert!(disk.lose_log_after(LogIndex(2)));
        assert_eq!(data(&disk), [&b"b"[..]]);
        let machine = disk
            .restore_damaged(Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]))
            .unwrap();
        assert!(machine.repairing());
        assert_eq!(machine.snapshot().index, LogIndex(1));
        assert_eq!(disk.entries(LogIndex(1), LogIndex(9)), disk.log());
    }

    #[test]
    fn a_restored_machine_holds_what_the_disk_holds() {
        let mut disk = Durable::default();
        disk.apply(&vote(2)).unwrap();
        disk.apply(&store(1, 2, "a")).unwrap();
        let machine = disk.restore(Config::new(NodeId(1), [NodeId(1)])).unwrap();
        assert_eq!(machine.hard_state(), disk.hard_state());
        assert!(machine.log().eq(disk.log()));
    }

    #[test]
    fn a_restart_after_a_compaction_restores_the_configuration_it_covered() {
        let mut disk = three_synced();
        let grown = Membership::new([NodeId(1), NodeId(2), NodeId(3)], [NodeId(4)]).unwrap();
        disk.apply(&Action::LogStore {
            index: LogIndex(4),
            entries: Entry::membership(Term(1), &grown).into(),
        })
        .unwrap();
        disk.apply(&store(5, 1, "e")).unwrap();
        disk.sync();
        let bootstrap = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        // Before any compaction the configuration entry is in the log.
        assert_eq!(disk.membership_at(LogIndex(3)), None);
        assert_eq!(disk.membership_at(LogIndex(5)), Some(grown.clone()));
        // A snapshot taken past the entry, not yet compacted: the restart
        // starts after the entry and must still know the configuration.
        disk.store_snapshot(snapshot(5, 1, &["a", "b", "c", "", "e"]))
            .unwrap();
        let machine = disk.restore(bootstrap.clone()).unwrap();
        assert_eq!(machine.membership(), &grown);
        // Compacted: the entry is gone, the configuration kept with the base.
        disk.apply(&Action::LogCompact {
            through: LogIndex(5),
            membership: grown.clone(),
        })
        .unwrap();
        disk.crash();
        assert_eq!(disk.membership_at(LogIndex(5)), Some(grown.clone()));
        let machine = disk.restore(bootstrap.clone()).unwrap();
        assert_eq!(machine.membership(), &grown);
        // An install brings its own configuration, and a crash before its
        // sync takes it back.
        let shrunk = Membership::new([NodeId(1), NodeId(2)], []).unwrap();
        let received = snapshot(7, 2, &["a", "b", "c", "", "e", "f", "g"]);
        disk.receive_snapshot(received);
        disk.apply(&Action::SnapshotInstall {
            snapshot: received.meta,
            membership: shrunk.clone(),
        })
        .unwrap();
        assert_eq!(disk.membership_at(LogIndex(7)), Some(shrunk.clone()));
        disk.crash();
        assert_eq!(disk.membership_at(LogIndex(5)), Some(grown));
        disk.apply(&vote(2)).unwrap();
        disk.receive_snapshot(received);
        disk.apply(&Action::SnapshotInstall {
            snapshot: received.meta,
            membership: shrunk.clone(),
        })
        .unwrap();
        disk.sync();
        let machine = disk.restore(bootstrap).unwrap();
        assert_eq!(machine.membership(), &shrunk);
    }
}
