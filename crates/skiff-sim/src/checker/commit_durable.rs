//! Commit never beyond the durable log: a node reports an entry committed
//! only once that very entry is on its disk, so a crash cannot take back
//! what it already told its clients.

use super::{Failure, Rule};
use crate::durable::Durable;
use skiff_core::render::DataText;
use skiff_core::{LogIndex, NodeId};

/// Checks a `Commit` of `data` at `index` by `node` against its disk.
pub fn check_commit(
    node: NodeId,
    index: LogIndex,
    data: &[u8],
    disk: &Durable,
) -> Result<(), Failure> {
    match disk.entry(index) {
        Some(entry) if entry.data == data => Ok(()),
        Some(entry) => Err(Failure::new(
            Rule::CommitDurable,
            vec![node],
            format!(
                "node {node} committed {} at index {index}, but its disk holds {entry} there",
                DataText(data)
            ),
        )),
        None => Err(Failure::new(
            Rule::CommitDurable,
            vec![node],
            format!(
                "node {node} committed index {index}, beyond its durable log (last index {})",
                disk.last_index()
            ),
        )),
    }
}
