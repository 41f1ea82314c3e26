//! The entries an AppendEntriesReq or a `LogStore` carries, as a list that
//! is cheap to clone, to hand to several followers and to keep in the log.

use crate::types::Entry;
use std::fmt;
use std::ops::{Deref, Range};
use std::sync::Arc;

/// An immutable list of log entries, read as a slice (`&[Entry]`).
///
/// A leader usually sends the same entries to every follower, and a
/// follower keeps the entries it receives. Cloning an `Entries` or taking a
/// [`slice`](Entries::slice) of it shares the list instead of copying it,
/// so a batch costs one allocation however many followers receive it and
/// however many logs keep it. A single entry, the common case when appends
/// arrive one at a time, is kept inline and costs none.
#[derive(Clone, Default)]
pub struct Entries(Repr);

/// Two variants, not three (empty, one, shared): Rust then fits the tag
/// into a niche of `Entry`, so an `Entries` is no larger than an `Entry`,
/// and every message and action that holds one stays small.
#[derive(Clone)]
enum Repr {
    One(Entry),
    /// No entries (`None`), or the entries at `range` of a list shared by
    /// every clone. The range is never empty.
    Shared(Option<(Arc<Vec<Entry>>, Range<usize>)>),
}

impl Default for Repr {
    fn default() -> Repr {
        Repr::Shared(None)
    }
}

impl Entries {
    /// No entries: the list of a heartbeat.
    pub fn new() -> Entries {
        Entries::default()
    }

    /// The entries at `range` (positions in this list), sharing the list.
    /// Positions past the end are left out.
    pub fn slice(&self, range: Range<usize>) -> Entries {
        let end = range.end.min(self.len());
        let start = range.start.min(end);
        if start == end {
            return Entries::new();
        }
        if (start, end) == (0, self.len()) {
            return self.clone();
        }
        match &self.0 {
            // A one-entry list has no proper non-empty part.
            Repr::One(_) | Repr::Shared(None) => Entries::new(),
            Repr::Shared(Some((list, whole))) => Entries(Repr::Shared(Some((
                Arc::clone(list),
                whole.start + start..whole.start + end,
            )))),
        }
    }
}

impl Deref for Entries {
    type Target = [Entry];

    fn deref(&self) -> &[Entry] {
        match &self.0 {
            Repr::One(entry) => std::slice::from_ref(entry),
            Repr::Shared(None) => &[],
            Repr::Shared(Some((list, range))) => &list[range.clone()],
        }
    }
}

impl From<Entry> for Entries {
    /// One entry, kept inline: no allocation.
    fn from(entry: Entry) -> Entries {
        Entries(Repr::One(entry))
    }
}

impl From<Vec<Entry>> for Entries {
    fn from(mut entries: Vec<Entry>) -> Entries {
        Entries(match entries.len() {
            0 => Repr::Shared(None),
            1 => match entries.pop() {
                Some(entry) => Repr::One(entry),
                None => Repr::Shared(None),
            },
            count => Repr::Shared(Some((Arc::new(entries), 0..count))),
        })
    }
}

impl From<&[Entry]> for Entries {
    /// Clones the entries (each a reference count increment, not a copy of
    /// the data), allocating only for two or more.
    fn from(entries: &[Entry]) -> Entries {
        match entries {
            [] => Entries::new(),
            [entry] => Entries(Repr::One(entry.clone())),
            _ => Entries::from(entries.to_vec()),
        }
    }
}

impl FromIterator<Entry> for Entries {
    fn from_iter<I: IntoIterator<Item = Entry>>(entries: I) -> Entries {
        Entries::from(entries.into_iter().collect::<Vec<Entry>>())
    }
}

impl<const N: usize> From<[Entry; N]> for Entries {
    fn from(entries: [Entry; N]) -> Entries {
        Entries::from(Vec::from(entries))
    }
}

impl IntoIterator for Entries {
    type Item = Entry;
    type IntoIter = IntoIter;

    /// Yields the entries by value: moved out when this is the last holder
    /// of the list, cloned when other holders still share it.
    fn into_iter(self) -> IntoIter {
        IntoIter(match self.0 {
            Repr::One(entry) => Inner::One(Some(entry)),
            Repr::Shared(None) => Inner::Owned(Vec::new().into_iter()),
            Repr::Shared(Some((list, range))) => match Arc::try_unwrap(list) {
                Ok(mut entries) => {
                    entries.truncate(range.end);
                    entries.drain(..range.start);
                    Inner::Owned(entries.into_iter())
                }
                Err(list) => Inner::Shared { list, range },
            },
        })
    }
}

impl<'a> IntoIterator for &'a Entries {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// The owning iterator of [`Entries`].
pub struct IntoIter(Inner);

enum Inner {
    One(Option<Entry>),
    Owned(std::vec::IntoIter<Entry>),
    Shared {
        list: Arc<Vec<Entry>>,
        /// What is left to yield.
        range: Range<usize>,
    },
}

impl Iterator for IntoIter {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        match &mut self.0 {
            Inner::One(entry) => entry.take(),
            Inner::Owned(entries) => entries.next(),
            Inner::Shared { list, range } => range.next().and_then(|i| list.get(i).cloned()),
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = match &self.0 {
            Inner::One(entry) => usize::from(entry.is_some()),
            Inner::Owned(entries) => entries.len(),
            Inner::Shared { range, .. } => range.len(),
        };
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for IntoIter {}

impl PartialEq for Entries {
    fn eq(&self, other: &Entries) -> bool {
        **self == **other
    }
}

impl Eq for Entries {}

impl PartialEq<[Entry]> for Entries {
    fn eq(&self, other: &[Entry]) -> bool {
        **self == *other
    }
}

impl<const N: usize> PartialEq<[Entry; N]> for Entries {
    fn eq(&self, other: &[Entry; N]) -> bool {
        **self == other[..]
    }
}

impl PartialEq<Vec<Entry>> for Entries {
    fn eq(&self, other: &Vec<Entry>) -> bool {
        **self == other[..]
    }
}

impl fmt::Debug for Entries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Term;

    fn entries(count: usize) -> Vec<Entry> {
        (0..count)
            .map(|i| Entry::new(Term(1), i.to_string()))
            .collect()
    }

    #[test]
    fn reads_as_the_slice_it_was_made_from() {
        for count in 0..4 {
            let list = Entries::from(entries(count));
            assert_eq!(list, entries(count));
            assert_eq!(Entries::from(&entries(count)[..]), entries(count));
            assert_eq!(list.clone().into_iter().collect::<Vec<_>>(), entries(count));
            assert_eq!(list.into_iter().len(), count);
        }
        assert!(Entries::new().is_empty());
    }

    #[test]
    fn clones_share_the_list() {
        let list = Entries::from(entries(3));
        let clone = list.clone();
        assert!(std::ptr::eq(list.as_ptr(), clone.as_ptr()));
        // A holder that is not the last one gets clones; the last one the
        // entries themselves, still equal.
        assert_eq!(clone.into_iter().collect::<Vec<_>>(), entries(3));
        assert_eq!(list.into_iter().collect::<Vec<_>>(), entries(3));
    }

    #[test]
    fn slices_share_the_list_and_read_as_subslices() {
        let list = Entries::from(entries(5));
        let middle = list.slice(1..4);
        assert_eq!(middle, entries(5)[1..4]);
        assert!(std::ptr::eq(&list[1], &middle[0]), "shared, not copied");
        assert_eq!(middle.slice(1..2), entries(5)[2..3]);
        assert_eq!(middle.slice(2..10), entries(5)[3..4], "clamped at the end");
        assert!(middle.slice(3..3).is_empty());
        assert!(middle.slice(7..9).is_empty());
        assert_eq!(Entries::from(entries(1)).slice(0..1), entries(1));
        assert!(Entries::from(entries(1)).slice(1..2).is_empty());
        // By value: cloned while shared, moved (and cut) when last.
        assert_eq!(
            middle.clone().into_iter().collect::<Vec<_>>(),
            entries(5)[1..4]
        );
        drop(list);
        assert_eq!(middle.into_iter().collect::<Vec<_>>(), entries(5)[1..4]);
    }

    #[test]
    fn no_larger_than_an_entry() {
        assert_eq!(std::mem::size_of::<Entries>(), std::mem::size_of::<Entry>());
    }
}
