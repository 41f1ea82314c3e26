//! What each node was asked and has not answered yet: the bookkeeping the
//! "answered exactly once" rules share (`transfer_answered_once`,
//! `change_answered_once`).

use super::{Failure, Rule};
use crate::hash::StableBuildHasher;
use skiff_core::NodeId;
use std::collections::HashMap;

/// Requests asked of each node and not yet answered, in this life of it.
#[derive(Debug, Default)]
pub struct Outstanding {
    counts: HashMap<NodeId, u64, StableBuildHasher>,
}

impl Outstanding {
    /// `node` is asked once more.
    pub fn asked(&mut self, node: NodeId) {
        *self.counts.entry(node).or_default() += 1;
    }

    /// `node` answers one request, `what` ("a transfer"); an answer
    /// nobody asked for breaks `rule`.
    pub fn answered(&mut self, node: NodeId, rule: Rule, what: &str) -> Result<(), Failure> {
        match self.counts.get_mut(&node) {
            Some(count) if *count > 0 => {
                *count -= 1;
                Ok(())
            }
            _ => Err(Failure::new(
                rule,
                vec![node],
                format!("node {node} answered {what} this life of it was not asked for"),
            )),
        }
    }

    /// How many requests `node` has not answered.
    pub fn count(&self, node: NodeId) -> u64 {
        self.counts.get(&node).copied().unwrap_or(0)
    }

    /// `node` crashed: nobody waits for its answers any more.
    pub fn crashed(&mut self, node: NodeId) {
        self.counts.remove(&node);
    }
}
