//! Term adoption (Raft, Figure 2, rules for all servers): a node that sees a
//! message of a higher term sets its term to it and becomes a follower, so a
//! leader that learns of a newer term steps down at once.

use super::{Failure, NodeView, Rule};
use skiff_core::{NodeId, Role, Term};

/// Checks `node` after it handled a message of `received` term.
pub fn check(
    node: NodeId,
    received: Term,
    before: &NodeView,
    after: &NodeView,
) -> Result<(), Failure> {
    if received <= before.term {
        return Ok(());
    }
    let adopted = after.term > received || (after.term == received && after.role == Role::Follower);
    if adopted {
        return Ok(());
    }
    Err(Failure::new(
        Rule::TermAdoption,
        vec![node],
        format!(
            "node {node} ({} of term {}) received a message of term {received} \
             and ended as {} of term {}",
            before.role, before.term, after.role, after.term
        ),
    ))
}
