//! Log Matching (Raft, Figure 3): if two logs contain an entry with the same
//! index and term, the logs are identical in all entries up through that index.
//!
//! Checked incrementally, in O(1) per stored entry: the first time any node
//! stores an entry at (index, term), its data and the term of the entry
//! before it are recorded; every later store at the same (index, term) must
//! agree on both. Agreement on the previous term at every index carries the
//! identity down to index 1 by induction, so whole prefixes never need
//! comparing.

use super::{Failure, Rule};
use crate::network::NODES_MAX;
use skiff_core::{Bytes, Entry, LogIndex, NodeId, Term};

/// What the first node to store an (index, term) stored there.
#[derive(Debug)]
struct Seen {
    term: Term,
    data: Bytes,
    prev_term: Term,
    first_node: NodeId,
}

/// Every (index, term) ever stored, with its data and previous term.
#[derive(Debug, Default)]
pub struct LogMatching {
    /// Position `i - 1` holds what was stored at index `i`, one per term (few).
    by_index: Vec<Vec<Seen>>,
}

impl LogMatching {
    /// `node` stores `entry` at `index`, after an entry of `prev_term`.
    pub fn observe_store(
        &mut self,
        node: NodeId,
        index: LogIndex,
        entry: &Entry,
        prev_term: Term,
    ) -> Result<(), Failure> {
        let Some(position) = index.0.checked_sub(1).map(|p| p as usize) else {
            return Ok(()); // index 0 is the durable-state rule's to report
        };
        if self.by_index.len() <= position {
            self.by_index.resize_with(position + 1, Vec::new);
        }
        let seen = &mut self.by_index[position];
        let Some(first) = seen.iter().find(|s| s.term == entry.term) else {
            seen.push(Seen {
                term: entry.term,
                data: entry.data.clone(),
                prev_term,
                first_node: node,
            });
            debug_assert!(seen.len() <= 64 * NODES_MAX, "terms at one index stay few");
            return Ok(());
        };
        if first.data == entry.data && first.prev_term == prev_term {
            return Ok(());
        }
        Err(Failure::new(
            Rule::LogMatching,
            vec![first.first_node, node],
            format!(
                "index {index} term {}: node {} stored data {} after an entry of term {}, \
                 node {node} stored data {} after an entry of term {prev_term}",
                entry.term,
                first.first_node,
                skiff_core::render::DataText(&first.data),
                first.prev_term,
                skiff_core::render::DataText(&entry.data),
            ),
        ))
    }
}
