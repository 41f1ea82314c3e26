//! Term adoption (Raft, Figure 2, rules for all servers): a node that sees a
//! message of a higher term sets its term to it and becomes a follower, so a
//! leader that learns of a newer term steps down at once.
//!
//! Two kinds of message carry a term their sender does not hold, which
//! nobody adopts: a PreVote request (the term its sender would stand in) and
//! a PreVote grant (answered at that term). And a node that hears a live
//! leader refuses a vote request of a newer term without adopting it
//! (the leader's lease, `docs/state-machine.md`).

use super::{Failure, NodeView, Rule};
use skiff_core::{Message, NodeId, Role, Term};

/// The term a receiver must adopt, if newer than its own, on `message`;
/// `hears_leader` tells whether the receiver hears a live leader.
pub fn owed_term(message: &Message, hears_leader: bool) -> Option<Term> {
    match message {
        Message::PreVoteReq(_) => None,
        Message::PreVoteResp(resp) if resp.granted => None,
        Message::VoteReq(_) if hears_leader => None,
        _ => Some(message.term()),
    }
}

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
