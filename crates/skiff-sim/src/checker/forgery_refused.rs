//! Forgery refused: a forged message (`--forge`, `world/forgery.rs`) is
//! crafted to break one check of the core's defence in depth. The batch
//! that handles it must reject it with that reason and leave the node's
//! term, vote and log as they were: a forgery the core lets through, or
//! one that moves its state on the way to being refused, is a failure.

use super::{Failure, NodeView, Rule};
use skiff_core::{Action, NodeId};

/// The forgery of the batch in progress, and whether it was rejected.
#[derive(Debug, Default)]
pub struct ForgeryRefused {
    expected: Option<&'static str>,
    rejected: bool,
}

impl ForgeryRefused {
    /// The next batch handles a forgery that must be rejected as `reason`.
    pub fn expect(&mut self, reason: &'static str) {
        self.expected = Some(reason);
        self.rejected = false;
    }

    /// Whether the batch in progress handles a forgery.
    pub fn pending(&self) -> bool {
        self.expected.is_some()
    }

    /// Whether `action` is the awaited rejection (then it is no false one).
    pub fn observe(&mut self, action: &Action) -> bool {
        match (action, self.expected) {
            (Action::Rejected { reason, .. }, Some(expected)) if reason.name() == expected => {
                self.rejected = true;
                true
            }
            _ => false,
        }
    }

    /// The batch ended: the forgery, if any, must have been rejected with
    /// `before`'s term, vote and log unchanged in `after`.
    pub fn end_batch(
        &mut self,
        node: NodeId,
        before: &NodeView,
        after: &NodeView,
    ) -> Result<(), Failure> {
        let Some(expected) = self.expected.take() else {
            return Ok(());
        };
        let fail = |what: String| Err(Failure::new(Rule::ForgeryRefused, vec![node], what));
        if !self.rejected {
            return fail(format!(
                "node {node} handled a forged message without rejecting it as {expected}"
            ));
        }
        let kept = before.hard_state == after.hard_state
            && before.last_index == after.last_index
            && before.last_term == after.last_term;
        if !kept {
            return fail(format!(
                "node {node} rejected a forgery ({expected}) but changed its state: \
                 {before:?} became {after:?}"
            ));
        }
        Ok(())
    }

    /// The batch was cut short by a crash: nothing to judge.
    pub fn abort_batch(&mut self) {
        self.expected = None;
    }
}
