//! A node's simulated disk: exactly what its `StateStore`, `LogStore` and
//! `LogTruncate` actions wrote, and nothing else. The one model of a disk in
//! this workspace: the simulator, the scenario runner and skiff-core's
//! property tests all build their expectations on it.
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

use skiff_core::{Action, Config, Entries, Entry, HardState, LogIndex, Machine, StateError, Term};

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
    /// A `LogTruncate` from index 0 or past the end of the log.
    #[error("truncates from index {from}, which removes nothing: the durable log ends at {last}")]
    TruncateOutside {
        /// Where the truncation would start.
        from: LogIndex,
        /// The last index on disk.
        last: LogIndex,
    },
}

/// One write since the last sync, kept so that a crash can keep a prefix of
/// the writes and tear the next one.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Write {
    State(HardState),
    Store(Entries),
    Truncate(LogIndex),
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
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The last `StateStore` written.
    hard_state: HardState,
    /// The log as written, entry `i` at position `i - 1`.
    log: Vec<Entry>,
    /// The hard state as of the last sync.
    synced_hard_state: HardState,
    /// How many entries at the front of `log` are synced and unchanged since.
    synced_prefix: usize,
    /// Synced entries that a later truncation removed from `log`; they
    /// followed position `synced_prefix`, and a crash puts them back.
    synced_truncated: Vec<Entry>,
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

impl Durable {
    /// A disk that already holds, synced, `hard_state` and `log`.
    pub fn new(hard_state: HardState, log: Vec<Entry>) -> Durable {
        Durable {
            hard_state,
            synced_hard_state: hard_state,
            synced_prefix: log.len(),
            sync_runs: if log.is_empty() { Vec::new() } else { vec![0] },
            log,
            synced_truncated: Vec::new(),
            unsynced: Vec::new(),
            bad: None,
            unrepaired: false,
        }
    }

    /// Checks that `action` is a write the disk can perform: any action but
    /// a `LogStore` that does not append or a `LogTruncate` outside the log.
    pub fn check(&self, action: &Action) -> Result<(), DiskError> {
        match action {
            Action::LogStore { index, entries } => self.check_store(*index, entries.is_empty()),
            Action::LogTruncate { from } if from.0 == 0 || *from > self.last_index() => {
                Err(DiskError::TruncateOutside {
                    from: *from,
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

    /// Writes one persistence action (unsynced); other actions leave the
    /// disk alone. A write [`Durable::check`] refuses is not performed.
    pub fn apply(&mut self, action: &Action) -> Result<(), DiskError> {
        self.check(action)?;
        match action {
            Action::StateStore { term, voted_for } => self.write(Write::State(HardState {
                term: *term,
                voted_for: *voted_for,
            })),
            Action::LogStore { entries, .. } => self.write(Write::Store(entries.clone())),
            Action::LogTruncate { from } => self.write(Write::Truncate(*from)),
            // Snapshot actions: modelled by the snapshot work (issue 13, in progress).
            Action::LogCompact { .. } | Action::SnapshotInstall { .. } => {}
            Action::Send { .. }
            | Action::Commit { .. }
            | Action::Alarm { .. }
            | Action::Rejected { .. } => {}
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
        }
        self.unsynced.push(write);
    }

    /// Makes every write so far survive a crash; the sync record it appends
    /// follows every log record written since the previous sync.
    pub fn sync(&mut self) {
        let mut lowest_written = None::<usize>;
        for write in self.unsynced.drain(..) {
            let at = match write {
                Write::State(_) => continue,
                Write::Store(_) => self.synced_prefix,
                Write::Truncate(from) => (from.0 - 1) as usize,
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
        self.log.truncate(self.synced_prefix);
        self.log.append(&mut self.synced_truncated);
        self.synced_prefix = self.log.len();
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
    /// record holding `index` and every one after it are unreadable, and a
    /// sync record follows them. Recovery finds it at the next restart.
    pub fn damage_synced(&mut self, index: LogIndex) {
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
        LogIndex(self.synced_prefix as u64)
    }

    /// The first index written by each sync that wrote entries, in order:
    /// losing the writes of one of them (a lost fsync) loses from there.
    pub fn sync_run_starts(&self) -> impl Iterator<Item = LogIndex> + '_ {
        self.sync_runs
            .iter()
            .map(|start| LogIndex(*start as u64 + 1))
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

    /// Recovery cuts the log after `keep`: the disk loses every entry after
    /// it, synced or not, and with them any bad record. Returns whether it
    /// lost any entry.
    pub fn lose_log_after(&mut self, keep: LogIndex) -> bool {
        let kept = usize::try_from(keep.0).unwrap_or(usize::MAX);
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

    /// The log as written, entry `i` at position `i - 1`.
    pub fn log(&self) -> &[Entry] {
        &self.log
    }

    /// A machine restarted from this disk, as a driver restarts one.
    pub fn restore(&self, config: Config) -> Result<Machine, StateError> {
        Machine::restore(config, self.hard_state, self.log.clone())
    }

    /// A machine restarted from this disk after recovery found it damaged
    /// ([`Durable::lose_log_after`]): it starts repairing.
    pub fn restore_damaged(&self, config: Config) -> Result<Machine, StateError> {
        Machine::restore_damaged(config, self.hard_state, self.log.clone())
    }

    /// The index of the last entry on disk.
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.log.len() as u64)
    }

    /// The term of the last entry on disk (0 when the log is empty).
    pub fn last_term(&self) -> Term {
        self.log.last().map_or(Term(0), |entry| entry.term)
    }

    /// The entry at `index`, if any.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        let position = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.log.get(position)
    }

    /// The term at `index`: 0 at index 0, `None` past the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.entry(index).map(|entry| entry.term)
    }

    /// Removes the entries from `from` on; synced ones are set aside so
    /// that a crash before the next sync can put them back.
    fn truncate(&mut self, from: LogIndex) {
        let kept = (from.0 - 1) as usize;
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

    #[test]
    fn a_restored_machine_holds_what_the_disk_holds() {
        let mut disk = Durable::default();
        disk.apply(&vote(2)).unwrap();
        disk.apply(&store(1, 2, "a")).unwrap();
        let machine = disk.restore(Config::new(NodeId(1), [NodeId(1)])).unwrap();
        assert_eq!(machine.hard_state(), disk.hard_state());
        assert!(machine.log().eq(disk.log()));
    }
}
