//! Change Answered Once: every membership change a node's machine is asked
//! for (`Event::ChangeMembership`) is answered exactly once in that life of
//! the node, by `MembershipChangeEnded`: never an answer nobody asked for,
//! and after any batch every change not answered is one the machine still
//! holds (`Machine::pending_membership_changes`), to answer once its commit
//! index passes the change's entry. Not "at most one": a leader that lost
//! its office holds its change until the commit index passes the entry (a
//! truncated entry may still commit elsewhere, so only then is it known to
//! be overwritten), and may meanwhile lead again and take another change
//! (seed 1389 of `--membership churn --disk-faults`, 5 nodes). A crash
//! forgets the node's changes.

use super::outstanding::Outstanding;
use super::{Failure, Rule};
use skiff_core::NodeId;

/// The changes each node was asked for and has not answered.
#[derive(Debug, Default)]
pub struct ChangeAnsweredOnce {
    outstanding: Outstanding,
}

impl ChangeAnsweredOnce {
    /// `node` is asked for a change.
    pub fn asked(&mut self, node: NodeId) {
        self.outstanding.asked(node);
    }

    /// `node` answers a change.
    pub fn answered(&mut self, node: NodeId) -> Result<(), Failure> {
        self.outstanding
            .answered(node, Rule::ChangeAnsweredOnce, "a membership change")
    }

    /// After a batch performed in full: every change `node` has not
    /// answered is one of the `held` its machine will answer.
    pub fn check_held(&self, node: NodeId, held: usize) -> Result<(), Failure> {
        let outstanding = self.outstanding.count(node);
        if outstanding <= held as u64 {
            return Ok(());
        }
        Err(Failure::new(
            Rule::ChangeAnsweredOnce,
            vec![node],
            format!(
                "node {node} owes answers to {outstanding} membership changes but holds only \
                 {held}: a change was dropped without an answer"
            ),
        ))
    }

    /// `node` crashed: nobody waits for its changes any more.
    pub fn crashed(&mut self, node: NodeId) {
        self.outstanding.crashed(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_nobody_asked_for_and_a_dropped_change_are_caught() {
        let mut once = ChangeAnsweredOnce::default();
        assert!(once.answered(NodeId(1)).is_err());
        once.asked(NodeId(1));
        assert!(once.check_held(NodeId(1), 1).is_ok());
        assert!(once.check_held(NodeId(1), 0).is_err(), "dropped");
        once.asked(NodeId(1));
        assert!(
            once.check_held(NodeId(1), 2).is_ok(),
            "two held, from two terms"
        );
        assert!(once.check_held(NodeId(1), 1).is_err());
        assert!(once.answered(NodeId(1)).is_ok());
        assert!(once.answered(NodeId(1)).is_ok());
        assert!(once.answered(NodeId(1)).is_err());
        once.asked(NodeId(2));
        once.crashed(NodeId(2));
        assert!(once.answered(NodeId(2)).is_err());
    }
}
