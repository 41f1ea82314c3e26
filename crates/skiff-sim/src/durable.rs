//! A node's simulated disk: exactly what its `StateStore`, `LogStore` and
//! `LogTruncate` actions wrote, and nothing else. A crash keeps it; a
//! restart reads it back.

use skiff_core::{Action, Entry, HardState, LogIndex, Term};

/// One node's durable state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Durable {
    /// The last `StateStore`.
    pub hard_state: HardState,
    /// The log as `LogStore` and `LogTruncate` left it, entry `i` at position `i - 1`.
    pub log: Vec<Entry>,
}

impl Durable {
    /// Performs a persistence action; other actions leave the disk alone.
    ///
    /// A `LogStore` past the end or a `LogTruncate` outside the log breaks
    /// the machine's contract; the checkers report it before this is called,
    /// and the disk then does the closest sane thing (append, clamp) so the
    /// run can still be replayed and inspected.
    pub fn apply(&mut self, action: &Action) {
        match action {
            Action::StateStore { term, voted_for } => {
                self.hard_state = HardState {
                    term: *term,
                    voted_for: *voted_for,
                };
            }
            Action::LogStore { index, entries } => {
                let position = (index.0.saturating_sub(1) as usize).min(self.log.len());
                self.log.truncate(position);
                self.log.extend(entries.iter().cloned());
            }
            Action::LogTruncate { from } => {
                let position = from.0.saturating_sub(1) as usize;
                self.log.truncate(position);
            }
            Action::Send { .. } | Action::Commit { .. } | Action::Alarm { .. } => {}
        }
    }

    /// Performs a persistence action it may keep (the entries moved, not
    /// cloned, when nothing else holds them).
    pub fn apply_owned(&mut self, action: Action) {
        match action {
            Action::LogStore { index, entries } => {
                let position = (index.0.saturating_sub(1) as usize).min(self.log.len());
                self.log.truncate(position);
                self.log.extend(entries);
            }
            other => self.apply(&other),
        }
    }

    /// The index of the last durable entry.
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.log.len() as u64)
    }

    /// The term of the last durable entry (0 when the log is empty).
    pub fn last_term(&self) -> Term {
        self.log.last().map_or(Term(0), |entry| entry.term)
    }

    /// The durable entry at `index`, if any.
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::NodeId;

    #[test]
    fn persistence_actions_build_the_disk() {
        let mut disk = Durable::default();
        let store = |index: u64, term: u64, data: &'static str| Action::LogStore {
            index: LogIndex(index),
            entries: Entry::new(Term(term), data).into(),
        };
        disk.apply(&Action::StateStore {
            term: Term(2),
            voted_for: Some(NodeId(1)),
        });
        disk.apply(&store(1, 1, "a"));
        disk.apply(&store(2, 2, "b"));
        disk.apply(&Action::LogTruncate { from: LogIndex(2) });
        disk.apply(&store(2, 2, "c"));
        disk.apply(&Action::Alarm { ms: 5 });
        assert_eq!(disk.hard_state.term, Term(2));
        assert_eq!(disk.last_index(), LogIndex(2));
        assert_eq!(
            disk.entry(LogIndex(2)).map(|e| e.data.as_ref()),
            Some(&b"c"[..])
        );
        assert_eq!(disk.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(disk.term_at(LogIndex(3)), None);
    }
}
