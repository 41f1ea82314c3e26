//! Removed Node Quiet (with PreVote on): once a configuration without node
//! X commits, X does not disrupt the cluster: no voter of the committed
//! configuration adopts a term that X began by standing for election after
//! its removal committed. A removed node that learned of its removal never
//! stands (it is not a voter of its latest configuration); one that did
//! not learn of it cannot win the pre-vote of a majority of its old
//! configuration, since a majority of the new one holds the entry it
//! lacks. Terms that others began and X merely passes on are not X's doing.
//! A node whose own log holds the configuration removing it, but not yet
//! its commit, may stand to finish the change (the core's
//! `machine/membership.rs`, rule 4: otherwise two voters could be left
//! where neither can win); the world does not report its candidacy here,
//! and it wins only the pre-votes of a majority that hears no leader.
//!
//! A node removed and then added back (a spare restarted fresh) counts as
//! removed until a configuration that holds it commits.

use super::{Failure, Rule};
use crate::hash::StableBuildHasher;
use skiff_core::{Membership, NodeId, Term};
use std::collections::{HashMap, HashSet};

/// The committed configuration, the nodes it removed, and the terms they
/// began.
#[derive(Debug)]
pub struct RemovedQuiet {
    /// The latest committed configuration.
    committed: Membership,
    /// Nodes some committed configuration held and the latest does not.
    removed: HashSet<NodeId, StableBuildHasher>,
    /// Terms a removed node stood for, with the node.
    begun: HashMap<Term, NodeId, StableBuildHasher>,
}

impl RemovedQuiet {
    /// The rule for a cluster that starts in `bootstrap`.
    pub fn new(bootstrap: Membership) -> RemovedQuiet {
        RemovedQuiet {
            committed: bootstrap,
            removed: HashSet::default(),
            begun: HashMap::default(),
        }
    }

    /// `membership` committed (the first time its entry did).
    pub fn committed(&mut self, membership: &Membership) {
        for node in self.committed.members() {
            if !membership.contains(node) {
                self.removed.insert(node);
            }
        }
        for node in membership.members() {
            self.removed.remove(&node);
        }
        self.committed = membership.clone();
    }

    /// `node` stood for election in `term`.
    pub fn stood(&mut self, node: NodeId, term: Term) {
        if self.removed.contains(&node) {
            self.begun.entry(term).or_insert(node);
        }
    }

    /// `node` adopted the higher term `after`.
    pub fn check_adoption(&self, node: NodeId, after: Term) -> Result<(), Failure> {
        let Some(disruptor) = self.begun.get(&after) else {
            return Ok(());
        };
        let committed = &self.committed;
        if !committed.is_voter(node) {
            return Ok(());
        }
        Err(Failure::new(
            Rule::RemovedNodeQuiet,
            vec![*disruptor, node],
            format!(
                "node {node}, a voter of the committed configuration {committed}, adopted term \
                 {after}, which node {disruptor} began by standing after its removal committed"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_term_a_removed_node_began_must_not_reach_the_voters() {
        let five = Membership::new([1, 2, 3, 4, 5].map(NodeId), []).unwrap();
        let four = Membership::new([1, 2, 3, 4].map(NodeId), []).unwrap();
        let mut quiet = RemovedQuiet::new(five);
        quiet.stood(NodeId(5), Term(3)); // still a member then
        quiet.committed(&four);
        assert!(quiet.check_adoption(NodeId(1), Term(3)).is_ok());
        quiet.stood(NodeId(5), Term(4));
        quiet.stood(NodeId(2), Term(5));
        assert!(quiet.check_adoption(NodeId(1), Term(5)).is_ok());
        let failure = quiet.check_adoption(NodeId(1), Term(4)).unwrap_err();
        assert_eq!(failure.rule, Rule::RemovedNodeQuiet);
        // Added back: its later terms are its right again.
        let back = Membership::new([1, 2, 3, 4].map(NodeId), [NodeId(5)]).unwrap();
        quiet.committed(&back);
        quiet.stood(NodeId(5), Term(6));
        assert!(quiet.check_adoption(NodeId(1), Term(6)).is_ok());
    }
}
