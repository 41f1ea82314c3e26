//! Applied State: a node's application state always equals the fold of the
//! committed log through its applied index (see `agreed`), and never goes
//! back within one life of the node: an install moves it forward only (a
//! snapshot older than what the node has applied must be refused, or the
//! node would forget writes it already applied and maybe answered).

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use crate::app::AppState;
use skiff_core::{NodeId, SnapshotMeta};

/// Checks the application state of `node`, `state`, after it applied an
/// entry, installed a snapshot or restarted.
pub fn check(node: NodeId, state: &AppState, agreed: &AgreedLog) -> Result<(), Failure> {
    let detail = match agreed.fold_through(state.applied) {
        Some(fold) if fold == *state => return Ok(()),
        Some(fold) => format!(
            "node {node} holds {state}, but the committed log folds into {fold} through index {}",
            state.applied
        ),
        None => format!(
            "node {node} applied through index {}, past the committed log, which ends at {}",
            state.applied,
            agreed.len()
        ),
    };
    Err(Failure::new(Rule::AppliedState, vec![node], detail))
}

/// Checks that `node`, whose state is `before`, may install `snapshot`:
/// only one past what it applied.
pub fn check_install(
    node: NodeId,
    before: &AppState,
    snapshot: SnapshotMeta,
) -> Result<(), Failure> {
    if snapshot.index > before.applied {
        return Ok(());
    }
    Err(Failure::new(
        Rule::AppliedState,
        vec![node],
        format!(
            "node {node} installed snapshot {snapshot} after applying through index {}: its state went back",
            before.applied
        ),
    ))
}
