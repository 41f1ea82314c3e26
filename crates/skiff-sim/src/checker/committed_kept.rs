//! Committed entries are never removed: a node truncates only entries that
//! conflict with the leader's log, and a committed entry is in every later
//! leader's log (Leader Completeness), so it never conflicts. A truncation
//! that starts at an entry of the agreed sequence would lose it.
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
