//! Election Safety (Raft, Figure 3): at most one leader can be elected in a
//! given term, over the whole run, crashes included.

use super::{Failure, Rule};
use skiff_core::{NodeId, Term};
use std::collections::BTreeMap;

/// Remembers the leader of every term seen so far.
#[derive(Debug, Default)]
pub struct ElectionSafety {
    leaders: BTreeMap<Term, NodeId>,
}

impl ElectionSafety {
    /// `node` is leader of `term`; fails if another node led that term.
    pub fn observe_leader(&mut self, node: NodeId, term: Term) -> Result<(), Failure> {
        let first = *self.leaders.entry(term).or_insert(node);
        if first == node {
            return Ok(());
        }
        Err(Failure::new(
            Rule::ElectionSafety,
            vec![first, node],
            format!("nodes {first} and {node} were both leader of term {term}"),
        ))
    }

    /// The number of distinct (term, leader) pairs seen: elections won.
    /// The leader seen in `term`, if any.
    pub fn leader_of(&self, term: Term) -> Option<NodeId> {
        self.leaders.get(&term).copied()
    }

    /// Terms in which a leader was seen.
    pub fn elections(&self) -> u64 {
        self.leaders.len() as u64
    }
}
