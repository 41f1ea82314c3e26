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
//! Today's drivers sync after every write, so a crash loses nothing they
//! performed; keeping written and synced apart is where storage faults
//! (lost fsyncs, torn writes) plug in.

use skiff_core::{Action, Config, Entry, HardState, LogIndex, Machine, StateError, Term};

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
}

impl Durable {
    /// A disk that already holds, synced, `hard_state` and `log`.
    pub fn new(hard_state: HardState, log: Vec<Entry>) -> Durable {
        Durable {
            hard_state,
            synced_hard_state: hard_state,
            synced_prefix: log.len(),
            log,
            synced_truncated: Vec::new(),
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
            Action::StateStore { term, voted_for } => {
                self.hard_state = HardState {
                    term: *term,
                    voted_for: *voted_for,
                };
            }
            Action::LogStore { entries, .. } => self.log.extend(entries.iter().cloned()),
            Action::LogTruncate { from } => self.truncate(*from),
            Action::Send { .. } | Action::Commit { .. } | Action::Alarm { .. } => {}
        }
        Ok(())
    }

    /// [`Durable::apply`] for an action the caller gives up, so that stored
    /// entries are moved rather than cloned when nothing else holds them.
    pub fn apply_owned(&mut self, action: Action) -> Result<(), DiskError> {
        match action {
            Action::LogStore { index, entries } => {
                self.check_store(index, entries.is_empty())?;
                self.log.extend(entries);
                Ok(())
            }
            other => self.apply(&other),
        }
    }

    /// Makes every write so far survive a crash.
    pub fn sync(&mut self) {
        self.synced_hard_state = self.hard_state;
        self.synced_prefix = self.log.len();
        self.synced_truncated.clear();
    }

    /// Loses every write since the last sync: the disk holds what it held
    /// then.
    pub fn crash(&mut self) {
        self.hard_state = self.synced_hard_state;
        self.log.truncate(self.synced_prefix);
        self.log.append(&mut self.synced_truncated);
        self.synced_prefix = self.log.len();
    }

    /// A storage fault that recovery notices: the disk loses every entry
    /// after `keep`, synced or not (a damaged or vanished tail). Returns
    /// whether it lost anything.
    pub fn lose_log_after(&mut self, keep: LogIndex) -> bool {
        let kept = usize::try_from(keep.0).unwrap_or(usize::MAX);
        let lost = self.log.len() > kept;
        self.log.truncate(kept);
        self.synced_truncated.clear();
        self.synced_prefix = self.synced_prefix.min(kept);
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
    fn a_restored_machine_holds_what_the_disk_holds() {
        let mut disk = Durable::default();
        disk.apply(&vote(2)).unwrap();
        disk.apply(&store(1, 2, "a")).unwrap();
        let machine = disk.restore(Config::new(NodeId(1), [NodeId(1)])).unwrap();
        assert_eq!(machine.hard_state(), disk.hard_state());
        assert!(machine.log().eq(disk.log()));
    }
}
