//! The disk mirrors the machine (its contract): each `LogStore` goes one past
//! the durable end with a term already persisted, each `LogTruncate` cuts
//! inside the log, the persisted term never goes back, and after every batch
//! the machine's term, vote and log end are exactly what is on disk.

use super::{Failure, NodeView, Rule};
use crate::durable::Durable;
use skiff_core::{Action, NodeId};

/// Checks a persistence action of `node` before it reaches `disk`.
pub fn check_action(node: NodeId, action: &Action, disk: &Durable) -> Result<(), Failure> {
    let fail = |detail| Err(Failure::new(Rule::DurableState, vec![node], detail));
    if let Err(refused) = disk.check(action) {
        return fail(format!("node {node} {refused}"));
    }
    let durable_term = disk.hard_state().term;
    match action {
        Action::LogStore { .. } => {
            let Some((index, entry)) = action
                .stored_entries()
                .find(|(_, entry)| entry.term > durable_term)
            else {
                return Ok(());
            };
            fail(format!(
                "node {node} stored an entry of term {} at index {index} before persisting \
                 that term (durable term {durable_term})",
                entry.term
            ))
        }
        Action::StateStore { term, .. } if *term < durable_term => fail(format!(
            "node {node} persisted term {term} after term {durable_term}"
        )),
        _ => Ok(()),
    }
}

/// Checks, after a batch of `node`, that its machine state is all on disk.
pub fn check_batch_end(node: NodeId, after: &NodeView, disk: &Durable) -> Result<(), Failure> {
    let durable = (disk.hard_state(), disk.last_index(), disk.last_term());
    let machine = (after.hard_state, after.last_index, after.last_term);
    if durable == machine {
        return Ok(());
    }
    let render = |(hard, index, term): (skiff_core::HardState, _, _)| {
        let vote = hard.voted_for.map_or("none".to_string(), |v| v.to_string());
        format!(
            "term={} voted_for={vote} last_index={index} last_term={term}",
            hard.term
        )
    };
    Err(Failure::new(
        Rule::DurableState,
        vec![node],
        format!(
            "after its batch node {node} holds {} but its disk holds {}",
            render(machine),
            render(durable)
        ),
    ))
}
