//! Transfer Answered Once: every leadership transfer a node's machine is
//! asked for (`Event::TransferLeadership`) is answered exactly once in that
//! life of the node, by `TransferEnded`: never an answer nobody asked for,
//! and at the end of every batch at most the one transfer the machine
//! still runs ([`Machine::transfer_target`](skiff_core::Machine::transfer_target))
//! is unanswered. A crash forgets the node's transfers.

use super::outstanding::Outstanding;
use super::{Failure, Rule};
use skiff_core::NodeId;

/// The transfers each node was asked for and has not answered.
#[derive(Debug, Default)]
pub struct TransferAnsweredOnce {
    outstanding: Outstanding,
}

impl TransferAnsweredOnce {
    /// `node` is asked for a transfer.
    pub fn asked(&mut self, node: NodeId) {
        self.outstanding.asked(node);
    }

    /// `node` answers a transfer.
    pub fn answered(&mut self, node: NodeId) -> Result<(), Failure> {
        self.outstanding
            .answered(node, Rule::TransferAnsweredOnce, "a transfer")
    }

    /// After a batch, `node`'s machine runs a transfer or not (`running`):
    /// every other transfer it was asked for must have been answered.
    pub fn check_running(&self, node: NodeId, running: bool) -> Result<(), Failure> {
        let outstanding = self.outstanding.count(node);
        if outstanding <= u64::from(running) {
            return Ok(());
        }
        Err(Failure::new(
            Rule::TransferAnsweredOnce,
            vec![node],
            format!(
                "node {node} has {outstanding} transfers it has not answered but runs {}: a \
                 transfer was dropped without an answer",
                u64::from(running)
            ),
        ))
    }

    /// `node` crashed: nobody waits for its transfers any more.
    pub fn crashed(&mut self, node: NodeId) {
        self.outstanding.crashed(node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_nobody_asked_for_and_a_dropped_transfer_are_caught() {
        let mut once = TransferAnsweredOnce::default();
        assert!(once.answered(NodeId(1)).is_err());
        once.asked(NodeId(1));
        assert!(once.check_running(NodeId(1), true).is_ok());
        assert!(once.check_running(NodeId(1), false).is_err());
        once.asked(NodeId(1));
        assert!(once.check_running(NodeId(1), true).is_err());
        assert!(once.answered(NodeId(1)).is_ok());
        assert!(once.answered(NodeId(1)).is_ok());
        assert!(once.answered(NodeId(1)).is_err());
        once.asked(NodeId(2));
        once.crashed(NodeId(2));
        assert!(once.check_running(NodeId(2), false).is_ok());
    }
}
