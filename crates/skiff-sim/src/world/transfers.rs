//! Leadership transfers asked by the layer above (`Event::TransferLeadership`),
//! as an operator's rolling upgrade would: at random moments a random
//! running node (usually the leader, sometimes a node that only believes
//! it leads, or a follower, which refuses) is asked to hand over to a
//! random other node, which may be down or cut off (the transfer then
//! times out). Every request must be answered exactly once by
//! `TransferEnded`, and the checkers hold as ever: a transfer is an
//! ordinary election.

use super::batch::{kind, Input};
use super::{Phase, World, WorldEvent};
use crate::trace::hash_event;
use skiff_core::{Event, NodeId, Role, TransferError};

impl World {
    /// Schedules the next transfer, if the seed's rates ask for any.
    pub(super) fn schedule_transfer(&mut self) {
        self.schedule_after_gap(self.options.faults.transfer_rate, WorldEvent::TransferStart);
    }

    /// The injector's next transfer.
    pub(super) fn transfer_fault(&mut self) {
        if self.phase != Phase::Faulty {
            return;
        }
        self.schedule_transfer();
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].machine.is_some() && self.nodes[*i].stall.is_none())
            .collect();
        if running.is_empty() || self.nodes.len() < 2 {
            return;
        }
        // Mostly whoever leads (the highest term's leader), sometimes anyone.
        let leader = running
            .iter()
            .copied()
            .filter(|i| {
                self.nodes[*i]
                    .machine
                    .as_ref()
                    .is_some_and(|m| m.role() == Role::Leader)
            })
            .max_by_key(|i| self.nodes[*i].machine.as_ref().map(|m| m.term()));
        let asked = match leader {
            Some(leader) if self.rng.below(4) != 0 => leader,
            _ => running[self.rng.index(running.len())],
        };
        let others: Vec<NodeId> = (0..self.nodes.len())
            .filter(|i| *i != asked)
            .map(|i| self.nodes[i].id)
            .collect();
        let to = others[self.rng.index(others.len())];
        let id = self.nodes[asked].id;
        self.stats.transfers_asked += 1;
        hash_event(self.trace.hasher(), kind::TRANSFER, self.now, asked, to.0);
        self.trace_world(format_args!(
            "# node {id} is asked to hand leadership to {to}"
        ));
        self.checkers.transfer_asked(id);
        self.run_batch(asked, Input::Step(Event::TransferLeadership { to }), None);
    }

    /// A `TransferEnded` action: counted (the checkers see every action).
    pub(super) fn transfer_ended(&mut self, result: Result<(), TransferError>) {
        match result {
            Ok(()) => self.stats.transfers_handed_over += 1,
            Err(TransferError::TimedOut) => self.stats.transfers_timed_out += 1,
            Err(_) => self.stats.transfers_refused += 1,
        }
    }
}
