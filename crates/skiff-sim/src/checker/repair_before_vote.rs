//! Repair before vote: a node never grants a vote (a `VoteResp` with
//! `granted = true`) nor stands for election (becomes a candidate) while its
//! log lacks an entry that
//!
//! 1. it had acknowledged: it sent a successful `AppendEntriesResp` whose
//!    index reached the entry, and did not truncate the entry since;
//! 2. a disk fault then removed: recovery cut its log below the entry (the
//!    world reports every cut, whatever recovery called it); and
//! 3. is committed: the agreed sequence holds the same entry (index, term
//!    and data) at that index, by the time of the vote.
//!
//! Such a vote is how one bad disk loses a committed write (FAST'18): the
//! node's acknowledgment may have completed the entry's majority, and its
//! vote may now elect a leader without it. Judged from what the node sent
//! and what its disk lost, never from the machine's own repair flag.
//!
//! Lost entries are kept as runs of consecutive indices. Within a run, the
//! committed ones are a prefix (the agreed sequence is one log, the run a
//! piece of another, and Log Matching makes them agree up to a point), and
//! holding the last committed one means holding all before it (Log
//! Matching again), so each check looks at one entry per run. An entry the
//! node's snapshot now covers (it installed one since) is held again:
//! Snapshot State checks what the snapshot holds.

use super::agreed::AgreedLog;
use super::{Failure, Rule};
use crate::durable::Durable;
use crate::hash::StableBuildHasher;
use skiff_core::render::DataText;
use skiff_core::{Entry, LogIndex, NodeId};
use std::collections::HashMap;

/// One node's acknowledgments and what disk faults took of them.
#[derive(Debug, Default)]
struct Acks {
    /// Every entry up to here was acknowledged as the node holds it now.
    acked_through: LogIndex,
    /// Acknowledged entries a disk fault removed: (first index, entries).
    lost: Vec<(LogIndex, Vec<Entry>)>,
}

/// Every node's acknowledged and lost entries.
#[derive(Debug, Default)]
pub struct RepairBeforeVote {
    nodes: HashMap<NodeId, Acks, StableBuildHasher>,
}

impl RepairBeforeVote {
    /// `node` acknowledged holding the leader's entries up to `index`.
    pub fn observe_ack(&mut self, node: NodeId, index: LogIndex) {
        let acks = self.nodes.entry(node).or_default();
        acks.acked_through = acks.acked_through.max(index);
    }

    /// `node` truncated its log from `from`: what it acknowledged there is
    /// no longer what it holds.
    pub fn observe_truncate(&mut self, node: NodeId, from: LogIndex) {
        if let Some(acks) = self.nodes.get_mut(&node) {
            acks.acked_through = acks.acked_through.min(from.prev());
        }
    }

    /// Recovery is about to cut `disk`, the disk of `node`, after `keep`.
    pub fn observe_cut(&mut self, node: NodeId, disk: &Durable, keep: LogIndex) {
        let Some(acks) = self.nodes.get_mut(&node) else {
            return;
        };
        let through = acks.acked_through.min(disk.last_index());
        if through > keep && through > disk.base().index {
            let lost = disk.entries(keep.next(), through).to_vec();
            acks.lost.push((keep.next(), lost));
            acks.acked_through = keep;
        }
    }

    /// Checks that `node`, whose disk is `disk`, may vote or stand:
    /// `what` says which it does, for the report.
    pub fn check(
        &mut self,
        node: NodeId,
        disk: &Durable,
        agreed: &AgreedLog,
        what: &str,
    ) -> Result<(), Failure> {
        let Some(acks) = self.nodes.get_mut(&node) else {
            return Ok(());
        };
        // A run whose last entry the node holds again (or that its
        // snapshot covers) is whole again.
        let covered = disk.base().index;
        acks.lost.retain(|(first, entries)| {
            let last = LogIndex(first.0 + entries.len() as u64 - 1);
            last > covered && disk.entry(last) != entries.last()
        });
        for (first, entries) in &acks.lost {
            let agrees = |at: usize| {
                let (entry, index) = (&entries[at], LogIndex(first.0 + at as u64));
                agreed
                    .get(index)
                    .is_some_and(|(term, data)| term == entry.term && *data == entry.data)
            };
            let committed = partition_point(entries.len(), agrees);
            let Some(entry) = committed.checked_sub(1).map(|at| &entries[at]) else {
                continue;
            };
            let index = LogIndex(first.0 + committed as u64 - 1);
            if index <= covered || disk.entry(index) == Some(entry) {
                continue;
            }
            return Err(Failure::new(
                Rule::RepairBeforeVote,
                vec![node],
                format!(
                    "node {node} {what} while its log (last index {}) lacks committed entry \
                     {index} ({}:{}), which it had acknowledged before a disk fault removed it",
                    disk.last_index(),
                    entry.term,
                    DataText(&entry.data)
                ),
            ));
        }
        Ok(())
    }
}

/// The number of leading positions of `0..len` for which `holds` is true,
/// given that it is true on a prefix and false after.
fn partition_point(len: usize, holds: impl Fn(usize) -> bool) -> usize {
    let (mut low, mut high) = (0, len);
    while low < high {
        let mid = low + (high - low) / 2;
        if holds(mid) {
            low = mid + 1;
        } else {
            high = mid;
        }
    }
    low
}
