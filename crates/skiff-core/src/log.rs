//! The machine's in-memory copy of its log. The driver keeps the durable copy
//! in step through `LogStore`, `LogTruncate`, `LogCompact` and
//! `SnapshotInstall` actions.
//!
//! The log is kept in runs: the entry lists it received or sent, shared
//! with the messages and actions that carry them. A follower stores a whole
//! AppendEntriesReq by keeping its list, and a leader sends a batch as a
//! view of a run, so neither clones entry by entry (each clone is an atomic
//! reference count on the entry's data, the main cost of replication once
//! nothing is copied).
//!
//! The log starts after its snapshot (section 7): entries through the
//! snapshot's index are gone, and only the snapshot's term is kept, as the
//! term at that index, for the consistency check of the entry after it.

use crate::entries::Entries;
use crate::types::{Entry, LogIndex, SnapshotMeta, Term};
use std::mem;

/// Entries after the snapshot, with the term lookups replication needs.
#[derive(Clone, Debug, Default)]
pub(crate) struct Log {
    /// What the entries before the first one became; `0:0` when none did.
    snapshot: SnapshotMeta,
    /// Shared runs in index order, each non-empty, each starting where the
    /// one before ends.
    runs: Vec<Run>,
    /// Entries after the last run that nothing shares yet: a leader's own
    /// appends. They become a run when first sent.
    tail: Vec<Entry>,
    /// The number of entries after the snapshot, runs and tail together.
    len: u64,
}

#[derive(Clone, Debug)]
struct Run {
    /// The index of the run's first entry.
    first: LogIndex,
    entries: Entries,
}

impl Run {
    fn end(&self) -> u64 {
        self.first.0 + self.entries.len() as u64
    }
}

/// The most entries a fresh tail reserves room for.
const TAIL_CAPACITY_MAX: usize = 1024;

/// How many runs from the end a lookup tries one by one before it searches:
/// replication reads near the end of the log.
const RECENT_RUNS: usize = 4;

impl Log {
    /// A log that starts after `snapshot` and holds `entries` after it.
    pub(crate) fn from_entries(snapshot: SnapshotMeta, entries: Vec<Entry>) -> Log {
        let mut log = Log {
            snapshot,
            ..Log::default()
        };
        log.extend(&Entries::from(entries));
        log
    }

    /// The snapshot the log starts after.
    pub(crate) fn snapshot(&self) -> SnapshotMeta {
        self.snapshot
    }

    /// Every entry after the snapshot, in index order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        self.iter_from(self.snapshot.index.next())
    }

    /// The entries from `from` to the end, in index order: one lookup,
    /// then a walk, for reading a range of the log. An index the snapshot
    /// covers reads as the first entry after it.
    pub(crate) fn iter_from(&self, from: LogIndex) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        let from = from.max(self.snapshot.index.next());
        let remaining = (self.last_index().0.saturating_add(1)).saturating_sub(from.0) as usize;
        let tail_first = self.tail_first();
        if from >= tail_first {
            let offset = (from.0 - tail_first.0) as usize;
            return Iter {
                runs: [].iter(),
                current: [].iter(),
                tail: self.tail.get(offset..).unwrap_or_default().iter(),
                remaining,
            };
        }
        let position = self.run_position(from);
        let run = &self.runs[position];
        let offset = (from.0 - run.first.0) as usize;
        Iter {
            runs: self.runs[position + 1..].iter(),
            current: run.entries[offset..].iter(),
            tail: self.tail.iter(),
            remaining,
        }
    }

    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot.index.0 + self.len)
    }

    pub(crate) fn last_term(&self) -> Term {
        self.tail
            .last()
            .or_else(|| self.runs.last().and_then(|run| run.entries.last()))
            .map_or(self.snapshot.term, |e| e.term)
    }

    /// The index of the tail's first entry.
    fn tail_first(&self) -> LogIndex {
        LogIndex(self.last_index().0 - self.tail.len() as u64 + 1)
    }

    /// The term at `index`: 0 for index 0, the snapshot's term at its
    /// index, `None` for an index the snapshot covers or past the end.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot.index {
            return Some(self.snapshot.term);
        }
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.get(index).map(|e| e.term)
    }

    /// The entry at `index`; `None` for an index the snapshot covers or
    /// past the end.
    pub(crate) fn get(&self, index: LogIndex) -> Option<&Entry> {
        if index <= self.snapshot.index || index > self.last_index() {
            return None;
        }
        let tail_first = self.tail_first();
        if index >= tail_first {
            return self.tail.get((index.0 - tail_first.0) as usize);
        }
        let run = &self.runs[self.run_position(index)];
        run.entries.get((index.0 - run.first.0) as usize)
    }

    /// The position of the run holding `index`, which must be in a run.
    fn run_position(&self, index: LogIndex) -> usize {
        debug_assert!(index > self.snapshot.index && index < self.tail_first());
        let recent = self.runs.len().saturating_sub(RECENT_RUNS);
        if self.runs.get(recent).is_some_and(|run| run.first <= index) {
            if let Some(offset) = self.runs[recent..].iter().position(|r| index.0 < r.end()) {
                return recent + offset;
            }
        }
        self.runs.partition_point(|run| run.end() <= index.0)
    }

    /// Appends `entries`: shared with the caller when they are a list of
    /// several, cloned into the tail when one.
    pub(crate) fn extend(&mut self, entries: &Entries) -> LogIndex {
        debug_assert!(
            entries.first().is_none_or(|e| e.term >= self.last_term())
                && entries.windows(2).all(|w| w[0].term <= w[1].term),
            "log terms must not decrease"
        );
        if let [entry] = &entries[..] {
            self.tail.push(entry.clone());
        } else if !entries.is_empty() {
            self.seal();
            self.runs.push(Run {
                first: self.last_index().next(),
                entries: entries.clone(),
            });
        }
        self.len += entries.len() as u64;
        self.last_index()
    }

    /// Turns the tail into a run, so that it can be shared.
    fn seal(&mut self) {
        if self.tail.is_empty() {
            return;
        }
        let first = self.tail_first();
        let entries = match self.tail.pop() {
            // Inline, and the tail keeps its buffer for the next appends.
            Some(entry) if self.tail.is_empty() => Entries::from(entry),
            last => {
                self.tail.extend(last);
                // The next tail will likely grow about as large: one
                // allocation for it now rather than one per doubling.
                let next = Vec::with_capacity(self.tail.len().min(TAIL_CAPACITY_MAX));
                Entries::from(mem::replace(&mut self.tail, next))
            }
        };
        self.runs.push(Run { first, entries });
    }

    /// Removes the entries at `from` and after, returning them.
    ///
    /// A run cut short still shares its whole list, so the removed entries'
    /// data stays in memory as long as the run does: truncation is rare
    /// (a follower overwriting a deposed leader's entries) and touches few.
    pub(crate) fn truncate(&mut self, from: LogIndex) -> Vec<Entry> {
        debug_assert!(from > self.snapshot.index && from <= self.last_index());
        if from <= self.snapshot.index || from > self.last_index() {
            return Vec::new();
        }
        self.seal();
        let position = self.run_position(from);
        let kept = (from.0 - self.runs[position].first.0) as usize;
        let removed: Vec<Entry> = self.runs[position..]
            .iter()
            .flat_map(|run| run.entries.iter())
            .skip(kept)
            .cloned()
            .collect();
        self.runs.truncate(position + 1);
        let run = &mut self.runs[position];
        run.entries = run.entries.slice(0..kept);
        if run.entries.is_empty() {
            self.runs.pop();
        }
        self.len = from.0 - 1 - self.snapshot.index.0;
        removed
    }

    /// Drops the entries through `through`, which must be in the log, and
    /// starts the log after them: `snapshot` is `through` with its term.
    ///
    /// The run holding `through` is kept as a view of its rest, so its
    /// list stays in memory until the entries after `through` are dropped
    /// too: runs are bounded by the message limits, so that is little.
    pub(crate) fn compact(&mut self, through: LogIndex) {
        debug_assert!(through > self.snapshot.index && through <= self.last_index());
        let Some(term) = self
            .term_at(through)
            .filter(|_| through > self.snapshot.index)
        else {
            return;
        };
        self.seal();
        let dropped = self.runs.partition_point(|run| run.end() <= through.0 + 1);
        self.runs.drain(..dropped);
        if let Some(run) = self.runs.first_mut().filter(|run| run.first <= through) {
            let offset = (through.0 + 1 - run.first.0) as usize;
            run.entries = run.entries.slice(offset..run.entries.len());
            run.first = through.next();
        }
        self.len = self.last_index().0 - through.0;
        self.snapshot = SnapshotMeta {
            index: through,
            term,
        };
    }

    /// Replaces the whole log with `snapshot`: no entries, the next one at
    /// `snapshot.index + 1`.
    pub(crate) fn reset(&mut self, snapshot: SnapshotMeta) {
        *self = Log {
            snapshot,
            ..Log::default()
        };
    }

    /// Up to `count_max` entries from `from`, stopping before the entry that
    /// would take their data past `bytes_max` (the first is always taken).
    ///
    /// The batch is a view of the run holding `from` when a limit falls
    /// inside that run or the run ends the log: no entry is cloned. Only
    /// when the run ends first and more entries follow are entries gathered
    /// across runs, one by one, so that a log of small runs (one-entry
    /// requests, say) is still sent in full batches.
    pub(crate) fn batch(&mut self, from: LogIndex, count_max: usize, bytes_max: usize) -> Entries {
        if from <= self.snapshot.index || from > self.last_index() {
            return Entries::new();
        }
        self.seal();
        let position = self.run_position(from);
        let run = &self.runs[position];
        let offset = (from.0 - run.first.0) as usize;
        let in_run = &run.entries[offset..];
        let count = bounded(in_run.iter(), count_max, bytes_max);
        let run_ends_log = run.end() > self.last_index().0;
        if count < in_run.len() || count == count_max || run_ends_log {
            return run.entries.slice(offset..offset + count);
        }
        let entries = self.runs[position..]
            .iter()
            .flat_map(|run| run.entries.iter())
            .skip(offset);
        let count = bounded(entries.clone(), count_max, bytes_max);
        entries.take(count).cloned().collect()
    }

    /// The first index of the run of entries of `term` that contains `index`.
    /// A follower hints `result - 1` so the leader skips the whole term at once.
    /// The run may begin inside the snapshot; the first entry after the
    /// snapshot then stands for its start.
    pub(crate) fn first_index_of_term_run(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index).filter(|_| index > self.snapshot.index) else {
            return index;
        };
        // Terms never decrease along the log, so a binary search finds the
        // first entry of `term` without walking a long term entry by entry.
        let (mut low, mut high) = (self.snapshot.index.0 + 1, index.0);
        while low < high {
            let middle = low + (high - low) / 2;
            if self.term_at(LogIndex(middle)).is_some_and(|t| t < term) {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        LogIndex(low)
    }

    /// Whether a log ending at (`last_index`, `last_term`) is at least as
    /// up to date as this one (section 5.4.1).
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        (last_term, last_index) >= (self.last_term(), self.last_index())
    }
}

/// How many of `entries` fit in `count_max` entries and `bytes_max` bytes
/// of data, the first always.
fn bounded<'a>(
    entries: impl Iterator<Item = &'a Entry>,
    count_max: usize,
    bytes_max: usize,
) -> usize {
    let mut bytes = 0usize;
    let mut count = 0usize;
    for entry in entries.take(count_max) {
        bytes = bytes.saturating_add(entry.data.len());
        if count > 0 && bytes > bytes_max {
            break;
        }
        count += 1;
    }
    count
}

/// The entries of a [`Log`] in order: the runs', then the tail's.
struct Iter<'a> {
    runs: std::slice::Iter<'a, Run>,
    current: std::slice::Iter<'a, Entry>,
    tail: std::slice::Iter<'a, Entry>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        loop {
            if let Some(entry) = self.current.next() {
                self.remaining -= 1;
                return Some(entry);
            }
            match self.runs.next() {
                Some(run) => self.current = run.entries.iter(),
                None => {
                    let entry = self.tail.next()?;
                    self.remaining -= 1;
                    return Some(entry);
                }
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Iter<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(terms: &[u64]) -> Log {
        let entries = terms.iter().map(|t| Entry::new(Term(*t), "x")).collect();
        Log::from_entries(SnapshotMeta::default(), entries)
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
        let mut l = log(&[1, 1, 1, 1]);
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

    fn entry(term: u64, data: &str) -> Entry {
        Entry::new(Term(term), data.to_string())
    }

    fn list(terms_and_data: &[(u64, &str)]) -> Entries {
        terms_and_data.iter().map(|(t, d)| entry(*t, d)).collect()
    }

    #[test]
    fn a_stored_list_is_shared_not_copied() {
        let mut l = Log::default();
        let received = list(&[(1, "a"), (1, "b"), (1, "c")]);
        assert_eq!(l.extend(&received), LogIndex(3));
        assert!(std::ptr::eq(l.get(LogIndex(2)).unwrap(), &received[1]));
        // A batch sent from it is a view of the same list.
        let sent = l.batch(LogIndex(2), 10, 100);
        assert_eq!(sent, received[1..]);
        assert!(std::ptr::eq(&sent[0], &received[1]));
    }

    #[test]
    fn appends_one_at_a_time_are_sealed_into_one_run_when_sent() {
        let mut l = Log::default();
        for data in ["a", "b", "c", "d"] {
            l.extend(&Entries::from(entry(1, data)));
        }
        let first = l.batch(LogIndex(1), 2, 100);
        let second = l.batch(LogIndex(3), 2, 100);
        assert_eq!(first, [entry(1, "a"), entry(1, "b")]);
        assert_eq!(second, [entry(1, "c"), entry(1, "d")]);
        assert!(
            std::ptr::eq(&first[1], &l.batch(LogIndex(2), 1, 100)[0]),
            "both are views of the sealed tail"
        );
    }

    #[test]
    fn a_short_rest_of_a_run_is_gathered_with_the_runs_after_it() {
        let mut l = Log::default();
        // Single-entry runs, as a follower keeps one-entry requests.
        for data in ["a", "b", "c", "d", "e"] {
            l.extend(&Entries::from(entry(1, data)));
            l.seal();
        }
        assert_eq!(l.runs.len(), 5);
        let batch = l.batch(LogIndex(2), 8, 100);
        assert_eq!(batch.len(), 4, "one message, not four");
        assert_eq!(batch[3], entry(1, "e"));
    }

    #[test]
    fn truncation_inside_a_run_keeps_its_front() {
        let mut l = Log::default();
        l.extend(&list(&[(1, "a"), (1, "b")]));
        l.extend(&list(&[(2, "c"), (2, "d"), (2, "e")]));
        let removed = l.truncate(LogIndex(4));
        assert_eq!(removed, [entry(2, "d"), entry(2, "e")]);
        assert_eq!(l.last_index(), LogIndex(3));
        assert_eq!(l.last_term(), Term(2));
        l.extend(&Entries::from(entry(3, "f")));
        let all: Vec<Entry> = l.iter().cloned().collect();
        let expected = [(1, "a"), (1, "b"), (2, "c"), (3, "f")];
        assert_eq!(all, expected.map(|(t, d)| entry(t, d)));
        assert_eq!(l.truncate(LogIndex(1)).len(), 4);
        assert_eq!(l.iter().len(), 0);
        assert_eq!(l.last_term(), Term(0));
    }

    /// What the log is meant to be: a snapshot and a plain vector of the
    /// entries after it.
    #[derive(Debug, Clone)]
    enum Op {
        /// Append this many entries, as one list (a follower's request) or
        /// one at a time (a leader's appends).
        Append { count: usize, one_at_a_time: bool },
        /// Truncate from the entry at this fraction of the log.
        Truncate { at: u8 },
        /// Take a batch from this fraction of the log.
        Batch {
            at: u8,
            count_max: usize,
            bytes_max: usize,
        },
        /// Compact through the entry at this fraction of the log.
        Compact { at: u8 },
        /// Replace the log with a snapshot this far past its end.
        Reset { ahead: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (1..40usize, any::<bool>())
                .prop_map(|(count, one_at_a_time)| Op::Append { count, one_at_a_time }),
            1 => any::<u8>().prop_map(|at| Op::Truncate { at }),
            3 => (any::<u8>(), 1..300usize, 0..200usize).prop_map(|(at, count_max, bytes_max)| {
                Op::Batch { at, count_max, bytes_max }
            }),
            1 => any::<u8>().prop_map(|at| Op::Compact { at }),
            1 => (0..10u8).prop_map(|ahead| Op::Reset { ahead }),
        ]
    }

    /// An index of a log that holds `len` entries after `base` at
    /// fraction `at` of them.
    fn index_at(at: u8, base: LogIndex, len: usize) -> LogIndex {
        LogIndex(base.0 + (at as usize * len / 256) as u64 + 1)
    }

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn reads_as_the_vector_it_models(ops in prop::collection::vec(op(), 1..60)) {
            let mut l = Log::default();
            let mut snapshot = SnapshotMeta::default();
            let mut model: Vec<Entry> = Vec::new();
            let mut term = 1;
            for (step, op) in ops.into_iter().enumerate() {
                let base = snapshot.index;
                // The model's position of `index`, which must be after `base`.
                let position = |index: LogIndex| (index.0 - base.0 - 1) as usize;
                match op {
                    Op::Append { count, one_at_a_time } => {
                        term += step as u64 % 2;
                        let new: Vec<Entry> = (0..count)
                            .map(|i| entry(term, &"x".repeat(i % 7)))
                            .collect();
                        model.extend(new.iter().cloned());
                        if one_at_a_time {
                            for e in new {
                                l.extend(&Entries::from(e));
                            }
                        } else {
                            l.extend(&Entries::from(new));
                        }
                    }
                    Op::Truncate { at } if !model.is_empty() => {
                        let from = index_at(at, base, model.len());
                        let removed = l.truncate(from);
                        prop_assert_eq!(&removed[..], &model[position(from)..]);
                        model.truncate(position(from));
                    }
                    Op::Compact { at } if !model.is_empty() => {
                        let through = index_at(at, base, model.len());
                        l.compact(through);
                        snapshot = SnapshotMeta { index: through, term: model[position(through)].term };
                        model.drain(..=position(through));
                    }
                    Op::Truncate { .. } | Op::Compact { .. } => {}
                    Op::Reset { ahead } => {
                        term += 1;
                        snapshot = SnapshotMeta {
                            index: LogIndex(base.0 + model.len() as u64 + u64::from(ahead)),
                            term: Term(term),
                        };
                        l.reset(snapshot);
                        model.clear();
                    }
                    Op::Batch { at, count_max, bytes_max } => {
                        let from = index_at(at, base, model.len());
                        let batch = l.batch(from, count_max, bytes_max);
                        let rest = model.get(position(from)..).unwrap_or_default();
                        prop_assert_eq!(&batch[..], &rest[..batch.len()], "a prefix of the rest");
                        prop_assert_eq!(batch.is_empty(), rest.is_empty());
                        prop_assert!(batch.len() <= count_max);
                        let bytes: usize = batch.iter().map(|e| e.data.len()).sum();
                        prop_assert!(batch.len() <= 1 || bytes <= bytes_max);
                    }
                }
                let base = snapshot.index;
                prop_assert_eq!(l.snapshot(), snapshot);
                prop_assert_eq!(l.last_index(), LogIndex(base.0 + model.len() as u64));
                prop_assert_eq!(l.last_term(), model.last().map_or(snapshot.term, |e| e.term));
                prop_assert!(l.iter().eq(model.iter()));
                prop_assert_eq!(l.iter().len(), model.len());
                prop_assert_eq!(l.term_at(base), Some(snapshot.term));
                prop_assert!(base.0 == 0 || l.term_at(base.prev()).is_none() || base.prev().0 == 0);
                for index in base.0..=base.0 + model.len() as u64 + 1 {
                    let index = LogIndex(index);
                    let expected = index
                        .0
                        .checked_sub(base.0 + 1)
                        .and_then(|i| model.get(i as usize));
                    prop_assert_eq!(l.get(index), expected);
                    let from: Vec<&Entry> = l.iter_from(index).collect();
                    let rest: Vec<&Entry> =
                        model.iter().skip(index.0.saturating_sub(base.0 + 1) as usize).collect();
                    prop_assert_eq!(l.iter_from(index).len(), rest.len());
                    prop_assert_eq!(from, rest);
                }
                if let Some(last) = model.last() {
                    let index = l.last_index();
                    let first = model.iter().position(|e| e.term == last.term).unwrap_or(0);
                    prop_assert_eq!(
                        l.first_index_of_term_run(index),
                        LogIndex(base.0 + first as u64 + 1)
                    );
                }
            }
        }
    }
}
