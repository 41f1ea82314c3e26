//! The one agreed sequence: what the cluster has committed, index by index,
//! as learned from every node's `Commit` actions. Several rules read it.

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

    /// Appends the entry committed at the next index. Returns the index at
    /// which the same non-empty datum committed before, if it did.
    pub fn push(&mut self, term: Term, data: Bytes) -> Option<LogIndex> {
        let index = LogIndex(self.len() + 1);
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
        self.entries.push((term, data));
        earlier
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
