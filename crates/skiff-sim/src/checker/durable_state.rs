//! The disk mirrors the machine (its contract): each `LogStore` goes one past
//! the durable end with a term already persisted, each `LogTruncate` cuts
//! inside the log, the persisted term never goes back, and after every batch
//! the machine's term, vote, log end and snapshot are exactly what is on
//! disk. After a batch that compacted or installed, the whole log after the
//! snapshot is compared too (it is short then, and a compaction that drops
//! the wrong entries keeps the log's end).

use super::{Failure, NodeView, Rule};
use crate::durable::Durable;
use skiff_core::{Action, LogIndex, Machine, NodeId};
use std::panic::{catch_unwind, AssertUnwindSafe};

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
        return check_snapshot(node, after, disk);
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

/// The machine's log starts after the disk's current snapshot, which the
/// log on disk starts after too.
fn check_snapshot(node: NodeId, after: &NodeView, disk: &Durable) -> Result<(), Failure> {
    if after.snapshot == disk.snapshot() && disk.base() == disk.snapshot() {
        return Ok(());
    }
    Err(Failure::new(
        Rule::DurableState,
        vec![node],
        format!(
            "after its batch node {node}'s log starts after snapshot {}, but its disk holds snapshot {} \
             and a log after {}",
            after.snapshot,
            disk.snapshot(),
            disk.base()
        ),
    ))
}

/// Checks that the log of `machine`, the machine of `node`, is entry for
/// entry the log on `disk`, read index by index through `Machine::entry`.
/// A machine whose log is inconsistent inside may panic when read: that is
/// reported as a difference too, so that the rule, not the read, names it.
pub fn check_log(node: NodeId, machine: &Machine, disk: &Durable) -> Result<(), Failure> {
    let base = disk.base().index.0;
    let first_difference = || {
        disk.log().iter().enumerate().find_map(|(offset, written)| {
            let index = LogIndex(base + offset as u64 + 1);
            let held = machine.entry(index);
            (held != Some(written)).then(|| (index, held.map(ToString::to_string), written))
        })
    };
    let held = match catch_unwind(AssertUnwindSafe(first_difference)) {
        Ok(None) => return Ok(()),
        Ok(Some((index, held, written))) => format!(
            "holds {} at index {index}, its disk {written}",
            held.as_deref().unwrap_or("nothing")
        ),
        Err(_) => format!(
            "cannot be read back (reading it panicked); its disk holds {} entries after {}",
            disk.log().len(),
            disk.base()
        ),
    };
    Err(Failure::new(
        Rule::DurableState,
        vec![node],
        format!(
            "after its batch node {node}'s log (after snapshot {}) {held}",
            machine.snapshot()
        ),
    ))
}
