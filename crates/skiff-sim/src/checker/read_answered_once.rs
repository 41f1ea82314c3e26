//! Read Answered Once: every read a node's machine is asked for
//! (`Event::Read`) is answered exactly once in that life of the node, by
//! `ReadReady` or `ReadFailed`: no answer for a read it was not asked for
//! or answered already, and no read silently dropped. A read not answered
//! yet must be among the reads the machine holds
//! ([`Machine::pending_reads`](skiff_core::Machine::pending_reads)), so at
//! the end of every batch a node has no more reads outstanding than it
//! holds. A crash forgets the node's reads (its clients time out).

use super::{Failure, Rule};
use crate::hash::StableBuildHasher;
use skiff_core::{NodeId, ReadId};
use std::collections::{HashMap, HashSet};

/// The reads each node was asked for and has not answered.
#[derive(Debug, Default)]
pub struct ReadAnsweredOnce {
    outstanding: HashMap<NodeId, HashSet<ReadId, StableBuildHasher>, StableBuildHasher>,
}

impl ReadAnsweredOnce {
    /// `node` is asked for read `id`.
    pub fn asked(&mut self, node: NodeId, id: ReadId) {
        self.outstanding.entry(node).or_default().insert(id);
    }

    /// `node` answers read `id`, as `what` says.
    pub fn answered(&mut self, node: NodeId, id: ReadId, what: &str) -> Result<(), Failure> {
        let known = self
            .outstanding
            .get_mut(&node)
            .is_some_and(|reads| reads.remove(&id));
        if known {
            return Ok(());
        }
        Err(Failure::new(
            Rule::ReadAnsweredOnce,
            vec![node],
            format!(
                "node {node} answered read {} ({what}), which this life of it was not asked \
                 for or had answered already",
                id.0
            ),
        ))
    }

    /// After a batch, `node`'s machine holds `held` reads: every read it
    /// has not answered must be among them.
    pub fn check_held(&self, node: NodeId, held: usize) -> Result<(), Failure> {
        let outstanding = self.outstanding.get(&node).map_or(0, HashSet::len);
        if outstanding <= held {
            return Ok(());
        }
        Err(Failure::new(
            Rule::ReadAnsweredOnce,
            vec![node],
            format!(
                "node {node} has {outstanding} reads it has not answered but holds only \
                 {held}: a read was dropped without an answer"
            ),
        ))
    }

    /// `node` crashed: its reads are gone with it.
    pub fn crashed(&mut self, node: NodeId) {
        self.outstanding.remove(&node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_read_is_answered_once_per_life() {
        let mut once = ReadAnsweredOnce::default();
        let (node, id) = (NodeId(1), ReadId(5));
        assert_eq!(
            once.answered(node, id, "ReadReady").unwrap_err().rule,
            Rule::ReadAnsweredOnce
        );
        once.asked(node, id);
        assert!(
            once.check_held(node, 0).is_err(),
            "asked, unanswered, not held"
        );
        assert_eq!(once.check_held(node, 1), Ok(()));
        assert_eq!(once.answered(node, id, "ReadReady"), Ok(()));
        assert!(once.answered(node, id, "ReadFailed").is_err(), "twice");
        once.asked(node, id);
        once.crashed(node);
        assert!(
            once.answered(node, id, "ReadReady").is_err(),
            "a past life's read"
        );
        assert_eq!(once.check_held(node, 0), Ok(()));
    }
}
