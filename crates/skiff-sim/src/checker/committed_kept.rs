//! Committed entries are never removed: a node of term `U` truncates only
//! entries that conflict with the log of the leader of `U`, and an entry
//! committed in a term up to `U` is in that leader's log (it committed it,
//! or Leader Completeness), so it never conflicts. A node still in an older
//! term than the commit may lose the entry to its stale leader and get it
//! back later; that is allowed. The commit term is known only as an upper
//! bound (see `agreed`), so an entry is judged only when that bound is at
//! most `U`: what this rule reports is always a real violation.
//!
//! Checking the first truncated index is enough: if the entry there is not
//! the committed one, Log Matching makes every entry after it differ too.

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use crate::durable::Durable;
use skiff_core::{LogIndex, NodeId};

/// Checks a `LogTruncate` from `from` by `node`, whose disk is `disk`.
pub fn check_truncate(
    node: NodeId,
    from: LogIndex,
    disk: &Durable,
    agreed: &AgreedLog,
) -> Result<(), Failure> {
    let (Some(held), Some((term, data))) = (disk.entry(from), agreed.get(from)) else {
        return Ok(());
    };
    if held.term != term || held.data != *data {
        return Ok(());
    }
    let node_term = disk.hard_state().term;
    let committed_by_now =
        matches!(agreed.commit_term_bound(from), Some(bound) if bound <= node_term);
    if !committed_by_now {
        return Ok(());
    }
    Err(Failure::new(
        Rule::CommittedKept,
        vec![node],
        format!(
            "node {node} truncated from index {from}, removing committed entry {held} \
             (agreed sequence has {} entries)",
            agreed.len()
        ),
    ))
}
