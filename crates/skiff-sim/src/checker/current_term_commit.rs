//! Leaders commit by counting replicas only in their own term (Raft,
//! section 5.4.2 and Figure 2, rules for leaders: commit index N needs
//! `log[N].term == currentTerm`). Entries of earlier terms commit only
//! indirectly, with a later entry of the leader's term; counting replicas
//! of an old entry is how Figure 8 of the paper loses a committed entry.
//!
//! Checked per batch: when a leader's batch commits, the highest index it
//! commits holds an entry of the leader's current term. This catches the
//! mistake when it is made, not only in the rare runs where a later leader
//! happens to overwrite the entry.

use super::{Failure, NodeView, Rule};
use skiff_core::{LogIndex, NodeId, Role, Term};

/// The highest commit of the batch in progress.
#[derive(Debug, Default)]
pub struct CurrentTermCommit {
    highest: Option<(LogIndex, Term)>,
}

impl CurrentTermCommit {
    /// Forgets the previous batch.
    pub fn begin_batch(&mut self) {
        self.highest = None;
    }

    /// The batch committed the entry of `term` at `index`.
    pub fn observe_commit(&mut self, index: LogIndex, term: Term) {
        if !matches!(self.highest, Some((highest, _)) if highest >= index) {
            self.highest = Some((index, term));
        }
    }

    /// Checks the finished batch of `node`, which is now in state `after`.
    pub fn end_batch(&self, node: NodeId, after: &NodeView) -> Result<(), Failure> {
        let Some((index, term)) = self.highest else {
            return Ok(());
        };
        if after.role != Role::Leader || term == after.term {
            return Ok(());
        }
        Err(Failure::new(
            Rule::CurrentTermCommit,
            vec![node],
            format!(
                "leader {node} of term {} committed up to index {index}, an entry of term {term}",
                after.term
            ),
        ))
    }
}
