//! The entries an AppendEntriesReq carries, as a list that is cheap to
//! clone and to hand to several followers.

use crate::types::Entry;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable list of log entries, read as a slice (`&[Entry]`).
///
/// A leader usually sends the same entries to every follower. Cloning an
/// `Entries` shares the list instead of copying it, so a batch costs one
/// allocation however many followers receive it. A single entry, the common
/// case when appends arrive one at a time, is kept inline and costs none.
#[derive(Clone, Default)]
pub struct Entries(Repr);

/// Two variants, not three (empty, one, shared): Rust then fits the tag
/// into a niche of `Entry`, so an `Entries` is no larger than an `Entry`,
/// and every message and action that holds one stays small.
#[derive(Clone)]
enum Repr {
    One(Entry),
    /// No entries (`None`), or two or more, shared by every clone.
    Shared(Option<Arc<Vec<Entry>>>),
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
}

impl Deref for Entries {
    type Target = [Entry];

    fn deref(&self) -> &[Entry] {
        match &self.0 {
            Repr::One(entry) => std::slice::from_ref(entry),
            Repr::Shared(None) => &[],
            Repr::Shared(Some(entries)) => entries,
        }
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
            _ => Repr::Shared(Some(Arc::new(entries))),
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
            Repr::Shared(Some(entries)) => match Arc::try_unwrap(entries) {
                Ok(entries) => Inner::Owned(entries.into_iter()),
                Err(entries) => Inner::Shared { entries, next: 0 },
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
        entries: Arc<Vec<Entry>>,
        next: usize,
    },
}

impl Iterator for IntoIter {
    type Item = Entry;

    fn next(&mut self) -> Option<Entry> {
        match &mut self.0 {
            Inner::One(entry) => entry.take(),
            Inner::Owned(entries) => entries.next(),
            Inner::Shared { entries, next } => {
                let entry = entries.get(*next).cloned();
                *next += 1;
                entry
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = match &self.0 {
            Inner::One(entry) => usize::from(entry.is_some()),
            Inner::Owned(entries) => entries.len(),
            Inner::Shared { entries, next } => entries.len().saturating_sub(*next),
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
}
