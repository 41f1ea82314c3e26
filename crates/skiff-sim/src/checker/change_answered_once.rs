//! Change Answered Once: every membership change a node's machine is asked
//! for (`Event::ChangeMembership`) is answered exactly once in that life of
//! the node, by `MembershipChangeEnded`: never an answer nobody asked for,
//! and, since one change runs at a time (a second is refused at once), at
//! most one unanswered after any batch. A crash forgets the node's changes.

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

    /// After a batch performed in full: at most the one change the node
    /// runs is unanswered.
    pub fn check_held(&self, node: NodeId) -> Result<(), Failure> {
        let outstanding = self.outstanding.count(node);
        if outstanding <= 1 {
            return Ok(());
        }
        Err(Failure::new(
            Rule::ChangeAnsweredOnce,
            vec![node],
            format!(
                "node {node} owes answers to {outstanding} membership changes, though one runs \
                 at a time: a change was dropped without an answer"
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
        assert!(once.check_held(NodeId(1)).is_ok());
        once.asked(NodeId(1));
        assert!(once.check_held(NodeId(1)).is_err());
        assert!(once.answered(NodeId(1)).is_ok());
        assert!(once.answered(NodeId(1)).is_ok());
        assert!(once.answered(NodeId(1)).is_err());
        once.asked(NodeId(2));
        once.crashed(NodeId(2));
        assert!(once.answered(NodeId(2)).is_err());
    }
}
