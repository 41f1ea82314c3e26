//! No false rejection: every node of a simulated cluster is correct, so a
//! machine that rejects a peer's message as one no correct peer sends
//! (`Action::Rejected`) has a check that is wrong, or a peer that broke
//! the protocol. Either way the run is a failure: this is what keeps the
//! core's defence-in-depth checks from turning away honest messages
//! (stale, duplicated or reordered ones included).

use super::{Failure, Rule};
use skiff_core::{Action, NodeId};

/// Fails on any `Rejected` action.
pub fn check(node: NodeId, action: &Action) -> Result<(), Failure> {
    match action {
        Action::Rejected { from, reason } => Err(Failure::new(
            Rule::NoFalseRejection,
            vec![node, *from],
            format!("node {node} rejected a message from correct node {from}: {reason}"),
        )),
        _ => Ok(()),
    }
}
