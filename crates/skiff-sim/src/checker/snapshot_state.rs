//! Snapshot State: no committed entry is lost or changed by a compaction or
//! an install. Every snapshot a node takes, sends, installs or restarts
//! from holds the application state that the agreed log folds into through
//! the snapshot's index (see `agreed`), so what a compaction discards or an
//! install replaces lives on in it unchanged; and a leader streams the
//! snapshot its message names, its current one.

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use crate::app::Snapshot;
use skiff_core::{NodeId, SnapshotMeta};

/// Checks `snapshot` of `node` against the agreed log; `what` says what the
/// node does with it, for the report.
pub fn check(
    node: NodeId,
    snapshot: &Snapshot,
    agreed: &AgreedLog,
    what: &str,
) -> Result<(), Failure> {
    let index = snapshot.meta.index;
    let state = &snapshot.state;
    let detail = match agreed.fold_through(index) {
        _ if state.applied != index => format!(
            "node {node} {what} snapshot {} whose state is through index {}",
            snapshot.meta, state.applied
        ),
        Some(fold) if fold == *state => return Ok(()),
        Some(fold) => format!(
            "node {node} {what} snapshot {} holding {state}, but the committed log folds into {fold} through it",
            snapshot.meta
        ),
        None => format!(
            "node {node} {what} snapshot {} past the committed log, which ends at {}",
            snapshot.meta,
            agreed.len()
        ),
    };
    Err(Failure::new(Rule::SnapshotState, vec![node], detail))
}

/// Checks that the snapshot `node` streams to a peer, `sent`, is the one
/// its message names, `named`.
pub fn check_sent(
    node: NodeId,
    named: SnapshotMeta,
    sent: Option<&Snapshot>,
) -> Result<(), Failure> {
    if sent.is_some_and(|sent| sent.meta == named) {
        return Ok(());
    }
    let current = sent.map_or("none with application state".to_string(), |s| {
        s.meta.to_string()
    });
    Err(Failure::new(
        Rule::SnapshotState,
        vec![node],
        format!("node {node} sent InstallSnapshotReq naming snapshot {named}, but its current snapshot is {current}"),
    ))
}
