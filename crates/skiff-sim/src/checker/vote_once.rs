//! One vote per term, across crashes (Raft, section 5.2): a node grants at
//! most one candidate its vote in a term. Checked on the votes it sends, so a
//! vote forgotten in a crash and granted again to someone else is caught.

use super::{Failure, Rule};
use crate::hash::StableBuildHasher;
use skiff_core::{NodeId, Term};
use std::collections::HashMap;

/// The candidate each node granted its vote to, per term.
#[derive(Debug, Default)]
pub struct VoteOnce {
    granted: HashMap<(NodeId, Term), NodeId, StableBuildHasher>,
}

impl VoteOnce {
    /// `voter` sent a granted vote of `term` to `candidate`.
    pub fn observe_grant(
        &mut self,
        voter: NodeId,
        term: Term,
        candidate: NodeId,
    ) -> Result<(), Failure> {
        let first = *self.granted.entry((voter, term)).or_insert(candidate);
        if first == candidate {
            return Ok(());
        }
        Err(Failure::new(
            Rule::VoteOnce,
            vec![voter, first, candidate],
            format!(
                "node {voter} granted its vote of term {term} to {first} and then to {candidate}"
            ),
        ))
    }
}
