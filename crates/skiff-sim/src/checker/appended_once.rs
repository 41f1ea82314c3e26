//! Acknowledged appends (client level): every append a client saw
//! acknowledged at index `i` is in the agreed sequence exactly once, at `i`.
//! Clients never submit the same data twice, so any datum committed at two
//! indices is an append executed twice.

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use skiff_core::render::DataText;
use skiff_core::{LogIndex, NodeId};

/// Checks an acknowledgement of `data` at `index`, given by `node`.
pub fn check_ack(
    node: NodeId,
    data: &[u8],
    index: LogIndex,
    agreed: &AgreedLog,
) -> Result<(), Failure> {
    let fail = |detail: String| Err(Failure::new(Rule::AppendedOnce, vec![node], detail));
    match agreed.get(index) {
        Some((_, committed)) if committed == data => {}
        Some((term, committed)) => {
            return fail(format!(
                "node {node} acknowledged {} at index {index}, where {term}:{} committed",
                DataText(data),
                DataText(committed)
            ))
        }
        None => {
            return fail(format!(
                "node {node} acknowledged {} at index {index}, which has not committed \
                 (agreed sequence has {} entries)",
                DataText(data),
                agreed.len()
            ))
        }
    }
    match agreed.position_of(data) {
        Some(first) if first != index => fail(format!(
            "{} committed at index {first} and again at {index}",
            DataText(data)
        )),
        _ => Ok(()),
    }
}

/// Checks that the datum just committed at `index` had not committed before
/// at `earlier`; `node` is the one whose commit extended the sequence.
pub fn check_extension(
    node: NodeId,
    data: &[u8],
    index: LogIndex,
    earlier: Option<LogIndex>,
) -> Result<(), Failure> {
    match earlier {
        None => Ok(()),
        Some(first) => Err(Failure::new(
            Rule::AppendedOnce,
            vec![node],
            format!(
                "{} committed at index {first} and again at {index}",
                DataText(data)
            ),
        )),
    }
}
