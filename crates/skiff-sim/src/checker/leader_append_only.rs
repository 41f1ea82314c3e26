//! Leader Append-Only (Raft, Figure 3): a leader never overwrites or deletes
//! entries in its log; it only appends new ones. Checked per batch: a node
//! that is leader of the same term before and after a batch must not have
//! truncated, nor stored at an index it already held.

use super::{Failure, NodeView, Rule};
use skiff_core::{LogIndex, NodeId, Role};

/// The log changes of the batch in progress.
#[derive(Debug, Default)]
pub struct LeaderAppendOnly {
    lowest_store: Option<LogIndex>,
    lowest_truncate: Option<LogIndex>,
}

impl LeaderAppendOnly {
    /// Forgets the previous batch.
    pub fn begin_batch(&mut self) {
        self.lowest_store = None;
        self.lowest_truncate = None;
    }

    /// The batch stored an entry at `index`.
    pub fn observe_store(&mut self, index: LogIndex) {
        self.lowest_store = Some(self.lowest_store.map_or(index, |low| low.min(index)));
    }

    /// The batch truncated from `from`.
    pub fn observe_truncate(&mut self, from: LogIndex) {
        self.lowest_truncate = Some(self.lowest_truncate.map_or(from, |low| low.min(from)));
    }

    /// Checks the finished batch of `node`, given its state before and after.
    pub fn end_batch(
        &self,
        node: NodeId,
        before: &NodeView,
        after: &NodeView,
    ) -> Result<(), Failure> {
        let led_throughout =
            before.role == Role::Leader && after.role == Role::Leader && before.term == after.term;
        if !led_throughout {
            return Ok(());
        }
        let rewritten = self
            .lowest_store
            .filter(|index| *index <= before.last_index);
        let detail = match (self.lowest_truncate, rewritten) {
            (Some(from), _) => format!(
                "leader {node} of term {} truncated its log from index {from}",
                after.term
            ),
            (None, Some(index)) => format!(
                "leader {node} of term {} overwrote index {index} (its log ended at {})",
                after.term, before.last_index
            ),
            (None, None) => return Ok(()),
        };
        Err(Failure::new(Rule::LeaderAppendOnly, vec![node], detail))
    }
}
