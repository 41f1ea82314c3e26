//! What a node has persisted: exactly what its `StateStore`, `LogStore` and
//! `LogTruncate` actions wrote. A crash keeps this and loses everything else.

use skiff_core::{Action, Entry, HardState, LogIndex, Machine};

/// A node's durable state, kept the way a driver's disk would keep it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Durable {
    pub(crate) hard_state: HardState,
    /// Entry `i` at position `i - 1`.
    pub(crate) log: Vec<Entry>,
}

impl Durable {
    /// Durable state that already holds `hard_state` and `log`.
    pub(crate) fn new(hard_state: HardState, log: Vec<Entry>) -> Durable {
        Durable { hard_state, log }
    }

    /// Performs one action if it is a persistence action; other actions are
    /// ignored. Refuses writes the machine's contract rules out (a
    /// `LogStore` that is not one past the end, a `LogTruncate` of nothing),
    /// since a real disk would then disagree with the machine.
    pub(crate) fn apply(&mut self, action: &Action) -> Result<(), String> {
        match action {
            Action::StateStore { term, voted_for } => {
                self.hard_state = HardState {
                    term: *term,
                    voted_for: *voted_for,
                };
            }
            Action::LogStore { index, entries } => {
                let expected = self.next_index();
                if *index != expected {
                    return Err(format!(
                        "{action} writes index {index}, but the durable log ends at {} (a LogStore goes one past the end)",
                        expected.prev()
                    ));
                }
                self.log.extend(entries.iter().cloned());
            }
            Action::LogTruncate { from } => {
                if from.0 == 0 || *from >= self.next_index() {
                    return Err(format!(
                        "{action} removes nothing: the durable log ends at {}",
                        self.next_index().prev()
                    ));
                }
                self.log.truncate((from.0 - 1) as usize);
            }
            Action::Send { .. } | Action::Commit { .. } | Action::Alarm { .. } => {}
        }
        Ok(())
    }

    /// Where the next `LogStore` must go.
    fn next_index(&self) -> LogIndex {
        LogIndex(self.log.len() as u64 + 1)
    }

    /// Checks that the durable state equals the machine's own view of it, as
    /// the machine promises after every batch.
    pub(crate) fn agrees_with(&self, machine: &Machine) -> Result<(), String> {
        if self.hard_state != machine.hard_state() {
            return Err(format!(
                "the persisted term and vote (term={}, voted_for={}) differ from the machine's (term={}, voted_for={})",
                self.hard_state.term,
                super::report::optional_id(self.hard_state.voted_for),
                machine.term(),
                super::report::optional_id(machine.voted_for()),
            ));
        }
        if !self.log.iter().eq(machine.log()) {
            return Err(format!(
                "the persisted log [{}] differs from the machine's log [{}]",
                super::report::entries_text(&self.log),
                super::report::entries_text(machine.log()),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{NodeId, Term};

    fn store(index: u64, term: u64, data: &'static str) -> Action {
        Action::LogStore {
            index: LogIndex(index),
            entries: Entry::new(Term(term), data).into(),
        }
    }

    #[test]
    fn persistence_actions_build_the_durable_state() {
        let mut durable = Durable::default();
        let actions = [
            Action::StateStore {
                term: Term(2),
                voted_for: Some(NodeId(1)),
            },
            store(1, 1, "a"),
            store(2, 2, "b"),
            store(3, 2, "c"),
            Action::LogTruncate { from: LogIndex(2) },
            store(2, 2, "d"),
            Action::Alarm { ms: 10 },
        ];
        for action in &actions {
            durable.apply(action).unwrap();
        }
        assert_eq!(durable.hard_state.term, Term(2));
        assert_eq!(durable.hard_state.voted_for, Some(NodeId(1)));
        assert_eq!(
            durable.log,
            vec![Entry::new(Term(1), "a"), Entry::new(Term(2), "d")]
        );
    }

    #[test]
    fn writes_that_break_the_contract_are_refused() {
        let mut durable = Durable::default();
        assert!(durable
            .apply(&store(2, 1, "gap"))
            .unwrap_err()
            .contains("durable log ends at 0"));
        durable.apply(&store(1, 1, "a")).unwrap();
        assert!(durable.apply(&store(1, 1, "again")).is_err());
        assert!(durable
            .apply(&Action::LogTruncate { from: LogIndex(2) })
            .unwrap_err()
            .contains("removes nothing"));
        assert!(durable
            .apply(&Action::LogTruncate { from: LogIndex(0) })
            .is_err());
        assert_eq!(durable.log.len(), 1);
    }
}
