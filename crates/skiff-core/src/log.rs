//! The machine's in-memory copy of its log. The driver keeps the durable copy
//! in step through `LogStore` and `LogTruncate` actions.

use crate::types::{Entry, LogIndex, Term};

/// Entries from index 1, with the term lookups replication needs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    entries: Vec<Entry>,
}

impl Log {
    pub(crate) fn from_entries(entries: Vec<Entry>) -> Log {
        Log { entries }
    }

    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(Term(0), |e| e.term)
    }

    /// The term at `index`: 0 for index 0, `None` past the end.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.get(index).map(|e| e.term)
    }

    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        let position = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.entries.get(position)
    }

    pub(crate) fn push(&mut self, entry: Entry) -> LogIndex {
        debug_assert!(
            entry.term >= self.last_term(),
            "log terms must not decrease"
        );
        self.entries.push(entry);
        self.last_index()
    }

    /// Removes the entries at `from` and after, returning them.
    pub(crate) fn truncate(&mut self, from: LogIndex) -> Vec<Entry> {
        debug_assert!(from.0 >= 1 && from <= self.last_index());
        self.entries.split_off((from.0 - 1) as usize)
    }

    /// Up to `count_max` entries from `from`, stopping before the entry that
    /// would take their data past `bytes_max` (the first is always taken).
    pub(crate) fn batch(&self, from: LogIndex, count_max: usize, bytes_max: usize) -> &[Entry] {
        let Some(start) = from.0.checked_sub(1).map(|s| s as usize) else {
            return &[];
        };
        let available = self.entries.get(start..).unwrap_or_default();
        let mut bytes = 0usize;
        let mut count = 0usize;
        for entry in available.iter().take(count_max) {
            bytes = bytes.saturating_add(entry.data.len());
            if count > 0 && bytes > bytes_max {
                break;
            }
            count += 1;
        }
        &available[..count]
    }

    /// The first index of the run of entries of `term` that contains `index`.
    /// A follower hints `result - 1` so the leader skips the whole term at once.
    pub(crate) fn first_index_of_term_run(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index).filter(|_| index.0 > 0) else {
            return index;
        };
        // Terms never decrease along the log, so a binary search finds the
        // run's start without walking a long term entry by entry.
        let end = index.0 as usize;
        let first = self.entries[..end].partition_point(|entry| entry.term < term);
        LogIndex(first as u64 + 1)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as
    /// up to date as this one (section 5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(terms: &[u64]) -> Log {
        Log::from_entries(terms.iter().map(|t| Entry::new(Term(*t), "x")).collect())
    }

    #[test]
    fn term_lookup_at_the_edges() {
        let l = log(&[1, 1, 2]);
        assert_eq!(l.term_at(LogIndex(0)), Some(Term(0)));
        assert_eq!(l.term_at(LogIndex(3)), Some(Term(2)));
        assert_eq!(l.term_at(LogIndex(4)), None);
        assert_eq!(l.term_at(LogIndex(u64::MAX)), None);
    }

    #[test]
    fn term_run_start() {
        let l = log(&[1, 2, 2, 2, 3]);
        assert_eq!(l.first_index_of_term_run(LogIndex(4)), LogIndex(2));
        assert_eq!(l.first_index_of_term_run(LogIndex(1)), LogIndex(1));
        assert_eq!(l.first_index_of_term_run(LogIndex(5)), LogIndex(5));
    }

    #[test]
    fn batches_respect_both_limits() {
        let l = log(&[1, 1, 1, 1]);
        assert_eq!(l.batch(LogIndex(2), 10, 100).len(), 3);
        assert_eq!(l.batch(LogIndex(1), 2, 100).len(), 2);
        assert_eq!(l.batch(LogIndex(1), 10, 2).len(), 2);
        assert_eq!(
            l.batch(LogIndex(1), 10, 0).len(),
            1,
            "one oversized entry still goes"
        );
        assert!(l.batch(LogIndex(5), 10, 100).is_empty());
        assert!(l.batch(LogIndex(0), 10, 100).is_empty());
    }

    #[test]
    fn up_to_date_compares_term_then_index() {
        let l = log(&[1, 2]);
        assert!(l.is_up_to_date(LogIndex(2), Term(2)));
        assert!(l.is_up_to_date(LogIndex(1), Term(3)));
        assert!(!l.is_up_to_date(LogIndex(5), Term(1)));
        assert!(!l.is_up_to_date(LogIndex(1), Term(2)));
    }
}
