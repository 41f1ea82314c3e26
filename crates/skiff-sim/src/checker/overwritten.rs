//! `Overwritten` tells a client its append is gone and may be retried, so it
//! must never be said of an entry that commits: the retry would then be
//! executed twice. Checked both ways round: when the report comes after the
//! commit, and when the commit comes after the report.

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use crate::hash::StableBuildHasher;
use skiff_core::render::DataText;
use skiff_core::{Bytes, LogIndex, NodeId};
use std::collections::HashMap;

/// Every datum reported overwritten, with where and by whom.
#[derive(Debug, Default)]
pub struct OverwrittenNeverCommits {
    reported: HashMap<Bytes, (LogIndex, NodeId), StableBuildHasher>,
}

impl OverwrittenNeverCommits {
    /// `node` reported `data`, appended at `index`, as overwritten.
    pub fn observe_report(
        &mut self,
        node: NodeId,
        data: &Bytes,
        index: LogIndex,
        agreed: &AgreedLog,
    ) -> Result<(), Failure> {
        if !data.is_empty() {
            if let Some(committed_at) = agreed.position_of(data) {
                return Err(failure(node, data, index, committed_at));
            }
            self.reported.insert(data.clone(), (index, node));
        }
        Ok(())
    }

    /// `data` just joined the agreed sequence at `index`.
    pub fn observe_commit(&self, data: &[u8], index: LogIndex) -> Result<(), Failure> {
        match self.reported.get(data) {
            Some((reported_index, node)) => Err(failure(*node, data, *reported_index, index)),
            None => Ok(()),
        }
    }
}

fn failure(node: NodeId, data: &[u8], reported_at: LogIndex, committed_at: LogIndex) -> Failure {
    Failure::new(
        Rule::OverwrittenNeverCommits,
        vec![node],
        format!(
            "node {node} reported {} at index {reported_at} overwritten, \
             but it committed at index {committed_at}",
            DataText(data)
        ),
    )
}
