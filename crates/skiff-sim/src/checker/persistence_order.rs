//! Persistence first (the machine's contract, checked in every batch): every
//! `StateStore`, `LogStore` and `LogTruncate` of a batch comes before its
//! first `Send` and `Commit`, so nobody hears of state a crash could lose.

use super::{Failure, Rule};
use skiff_core::{Action, NodeId};

/// Whether the batch in progress has talked to the world yet.
#[derive(Debug, Default)]
pub struct PersistenceOrder {
    spoken: bool,
}

impl PersistenceOrder {
    /// A new batch starts silent.
    pub fn begin_batch(&mut self) {
        self.spoken = false;
    }

    /// `node` performs `action`, the next of its batch.
    pub fn observe(&mut self, node: NodeId, action: &Action) -> Result<(), Failure> {
        match action {
            Action::Send { .. } | Action::Commit { .. } => {
                self.spoken = true;
                Ok(())
            }
            _ if action.is_persistence() && self.spoken => Err(Failure::new(
                Rule::PersistenceOrder,
                vec![node],
                format!("node {node} performed {action} after a Send or Commit of the same batch"),
            )),
            _ => Ok(()),
        }
    }
}
