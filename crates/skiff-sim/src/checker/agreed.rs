//! The one agreed sequence: what the cluster has committed, index by index,
//! as learned from every node's `Commit` actions. Several rules read it.
//!
//! It also keeps, per index, a bound on the term in which the entry was
//! committed. Rules about "later" leaders and followers need it: an entry
//! committed in term 10 need not be in the log of a leader of term 9 that
//! wins its election late, with votes that were slow to arrive. The first
//! node to report a commit at an index is in a term no lower than the term
//! of the leader that committed it (that leader, or a follower it told), so
//! its term bounds the commit term from above. Commits are prefix-closed
//! (committing an index commits all before it), so the tightest such bound
//! never decreases along the log; it is kept as runs of equal bounds.
//!
//! And, per index, the application state the committed log folds into
//! through it ([`AppState`]): what every snapshot and every node's applied
//! state at that index must equal.

use crate::app::AppState;
use crate::hash::StableBuildHasher;
use skiff_core::{Bytes, LogIndex, Term};
use std::collections::HashMap;

/// Committed entries from index 1, with where each non-empty datum sits.
#[derive(Debug, Default)]
pub struct AgreedLog {
    /// Entry `i` at position `i - 1`: its term and data.
    entries: Vec<(Term, Bytes)>,
    /// Where each non-empty datum first committed.
    positions: HashMap<Bytes, LogIndex, StableBuildHasher>,
    /// The commit-term bound as runs `(bound, last index of the run)`, both
    /// strictly increasing from run to run.
    commit_term_runs: Vec<(Term, u64)>,
    /// Position `i - 1`: the fold of entries 1 through `i`.
    folds: Vec<AppState>,
}

impl AgreedLog {
    /// The number of committed entries known.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// Whether nothing has committed yet.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The committed entry at `index`, if known.
    pub fn get(&self, index: LogIndex) -> Option<(Term, &Bytes)> {
        let position = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.entries.get(position).map(|(term, data)| (*term, data))
    }

    /// Appends the entry of `term` committed at the next index, first
    /// reported by a node in `reporter_term`. Returns the index at which the
    /// same non-empty datum committed before, if it did.
    pub fn push(&mut self, term: Term, data: Bytes, reporter_term: Term) -> Option<LogIndex> {
        let index = LogIndex(self.len() + 1);
        self.bound_commit_term(index, reporter_term);
        let earlier = if data.is_empty() {
            None
        } else {
            match self.positions.get(&data) {
                Some(earlier) => Some(*earlier),
                None => {
                    self.positions.insert(data.clone(), index);
                    None
                }
            }
        };
        let mut fold = self.fold_through(index.prev()).unwrap_or_default();
        fold.apply(&data);
        self.folds.push(fold);
        self.entries.push((term, data));
        earlier
    }

    /// Every index up to `index` was committed in a term at most `bound`.
    fn bound_commit_term(&mut self, index: LogIndex, bound: Term) {
        while self
            .commit_term_runs
            .last()
            .is_some_and(|(t, _)| *t >= bound)
        {
            self.commit_term_runs.pop();
        }
        self.commit_term_runs.push((bound, index.0));
    }

    /// The last index known to have committed in a term before `term`: every
    /// leader of `term` must hold the entries up to it (0 when none).
    pub fn committed_before(&self, term: Term) -> LogIndex {
        let runs = self.commit_term_runs.partition_point(|(t, _)| *t < term);
        LogIndex(
            runs.checked_sub(1)
                .map_or(0, |run| self.commit_term_runs[run].1),
        )
    }

    /// The least known upper bound on the term in which `index` committed.
    pub fn commit_term_bound(&self, index: LogIndex) -> Option<Term> {
        let run = self
            .commit_term_runs
            .partition_point(|(_, last)| *last < index.0);
        self.commit_term_runs.get(run).map(|(t, _)| *t)
    }

    /// The application state the committed log folds into through `index`
    /// (the empty state at 0), if entries up to it are known.
    pub fn fold_through(&self, index: LogIndex) -> Option<AppState> {
        match index.0.checked_sub(1) {
            None => Some(AppState::default()),
            Some(position) => self.folds.get(usize::try_from(position).ok()?).copied(),
        }
    }

    /// Where the non-empty `data` first committed, if it did.
    pub fn position_of(&self, data: &[u8]) -> Option<LogIndex> {
        self.positions.get(data).copied()
    }

    /// Every committed entry, in index order.
    pub fn iter(&self) -> impl Iterator<Item = (LogIndex, Term, &Bytes)> {
        self.entries
            .iter()
            .enumerate()
            .map(|(position, (term, data))| (LogIndex(position as u64 + 1), *term, data))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agreed(reporter_terms: &[u64]) -> AgreedLog {
        let mut log = AgreedLog::default();
        for (position, term) in reporter_terms.iter().enumerate() {
            let data = Bytes::from(format!("d{position}"));
            assert_eq!(log.push(Term(1), data, Term(*term)), None);
        }
        log
    }

    /// The naive bound: the least reporter term at this index or after.
    fn naive_bound(reporter_terms: &[u64], index: usize) -> u64 {
        reporter_terms[index - 1..]
            .iter()
            .copied()
            .min()
            .unwrap_or(0)
    }

    #[test]
    fn commit_term_bounds_match_the_naive_definition() {
        let reporters = [3, 5, 4, 4, 9, 7, 8, 8, 12];
        let log = agreed(&reporters);
        for index in 1..=reporters.len() {
            let bound = log.commit_term_bound(LogIndex(index as u64));
            assert_eq!(bound, Some(Term(naive_bound(&reporters, index))), "{index}");
        }
        for term in 0..14u64 {
            let naive = (1..=reporters.len())
                .filter(|i| naive_bound(&reporters, *i) < term)
                .max()
                .unwrap_or(0);
            assert_eq!(
                log.committed_before(Term(term)),
                LogIndex(naive as u64),
                "{term}"
            );
        }
    }

    #[test]
    fn the_same_data_twice_is_reported() {
        let mut log = AgreedLog::default();
        assert_eq!(log.push(Term(1), Bytes::from("a"), Term(1)), None);
        assert_eq!(log.push(Term(1), Bytes::from(""), Term(1)), None);
        assert_eq!(log.push(Term(1), Bytes::from(""), Term(1)), None);
        assert_eq!(
            log.push(Term(1), Bytes::from("a"), Term(1)),
            Some(LogIndex(1))
        );
        assert_eq!(log.position_of(b"a"), Some(LogIndex(1)));
        let mut expected = AppState::default();
        assert_eq!(log.fold_through(LogIndex(0)), Some(expected));
        for data in ["a", "", "", "a"] {
            expected.apply(data.as_bytes());
        }
        assert_eq!(log.fold_through(LogIndex(4)), Some(expected));
        assert_eq!(log.fold_through(LogIndex(5)), None);
    }
}
