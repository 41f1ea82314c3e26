//! Damage is noticed: a node whose disk lost synced records (a flipped bit,
//! a missing segment, the records of a lost fsync followed by a later sync)
//! restarts repairing. Synced records may have been acknowledged, so a
//! recovery that takes such damage for a torn tail and restarts the node
//! normally with a shorter log risks every rule that rests on a node
//! keeping what it acknowledged. Judged against the faults the world itself
//! injected, not against what recovery concluded.

use super::{Failure, Rule};
use skiff_core::NodeId;

/// Checks the restart of `node`: `damaged` says whether synced records of
/// its disk were damaged since it last started, `repairing` whether the
/// restarted machine repairs.
pub fn check_restart(node: NodeId, damaged: bool, repairing: bool) -> Result<(), Failure> {
    if !damaged || repairing {
        return Ok(());
    }
    Err(Failure::new(
        Rule::DamageNoticed,
        vec![node],
        format!(
            "node {node} restarted normally from a disk whose synced records were damaged \
             (recovery did not notice, or took the damage for a torn tail)"
        ),
    ))
}
