//! Disks that stall: a node's storage stops completing for a while (a few
//! hundred milliseconds up to ten seconds), then answers again.
//!
//! The driver is modelled on `skiff-node`, whose event loop blocks on the
//! sync: a stall armed by the injector hangs the node's next batch that has
//! writes to sync. Its writes are on the disk but unsynced, and the rest of
//! the batch (its sends, commits and alarm) waits. Until the disk answers
//! the node steps nothing: inbound messages, client requests and snapshot
//! chunks wait in a bounded queue ([`QUEUE_MAX`]; what overflows is lost,
//! and counted), and its alarm waits. A crash meanwhile loses what the disk
//! had not made durable (`storage.rs`) and everything waiting.
//!
//! When the disk answers, the sync completes and the rest of the batch is
//! performed; if the stall lasted longer than the driver's stall limit
//! (`--stall-limit`), the driver steps `Event::StorageStalled` (a leader
//! steps down) and then `Event::StorageRecovered`; then the queued inputs
//! and the alarm, in order. The quiet period ends every stall at once.
//!
//! Half the seeds of a profile with a stall rate have stalling disks (the
//! trace's header says `stalls=on`), so that the other half keeps the
//! profile's runs without them.

use super::batch::{kind, Input};
use super::{Phase, World, WorldEvent};
use crate::checker::NodeView;
use crate::queue::Micros;
use crate::trace::hash_event;
use skiff_core::{Action, Event};
use std::collections::VecDeque;

/// How long a stall lasts: uniform in `[200 ms, 10 s)`.
const STALL_US: (Micros, Micros) = (200_000, 10_000_000);
/// The most inputs a stalled node's queue holds.
pub const QUEUE_MAX: usize = 256;

/// A stall in progress.
#[derive(Debug)]
pub(super) struct Stall {
    began: Micros,
    /// The rest of the batch whose sync hangs.
    held: Vec<Action>,
    /// Inputs that arrived meanwhile, in order.
    queue: VecDeque<WorldEvent>,
}

impl World {
    /// Whether this seed's disks stall, drawn once per seed.
    pub(super) fn draw_stalls(&mut self) {
        self.stalls_on = self.options.faults.stall_rate > 0.0 && self.rng.below(2) == 0;
    }

    /// The injector's next stall: a random running node's disk will hang at
    /// its next batch that writes, if one more node may be unavailable.
    pub(super) fn stall_fault(&mut self) {
        if self.phase != Phase::Faulty {
            return;
        }
        self.schedule_stall();
        if !self.crash_allowed() {
            return;
        }
        let candidates: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].machine.is_some() && !self.nodes[*i].unavailable())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let target = candidates[self.rng.index(candidates.len())];
        let duration = self.rng.between(STALL_US.0, STALL_US.1);
        self.nodes[target].stall_armed = Some(duration);
        let id = self.nodes[target].id;
        self.trace_world(format_args!(
            "# disk stall of {id} ({} ms) armed for its next batch that writes",
            duration / 1000
        ));
    }

    pub(super) fn schedule_stall(&mut self) {
        if self.stalls_on {
            self.schedule_after_gap(self.options.faults.stall_rate, WorldEvent::StallStart);
        }
    }

    /// The sync of node index `index`'s batch hangs: `held` waits for it.
    pub(super) fn begin_stall(&mut self, index: usize, held: Vec<Action>) {
        let node = &mut self.nodes[index];
        let duration = node.stall_armed.take().unwrap_or(STALL_US.0);
        node.stall = Some(Stall {
            began: self.now,
            held,
            queue: VecDeque::new(),
        });
        let (id, incarnation) = (node.id, node.incarnation);
        self.stats.stalls += 1;
        self.heal.disturbed();
        hash_event(self.trace.hasher(), kind::STALL, self.now, index, duration);
        if self.trace.wants_text() {
            let waiting = self.nodes[index].stall.as_ref().map_or(0, |s| s.held.len());
            self.trace.line(format_args!(
                "  # the disk of {id} stalls for {} ms: its sync hangs, {waiting} actions wait",
                duration / 1000
            ));
        }
        let end = WorldEvent::StallEnd {
            node: index,
            incarnation,
        };
        self.queue.push(self.now + duration, end);
    }

    /// `event`, unless it is an input of a stalled node, which queues it
    /// (or loses it, when its queue is full).
    pub(super) fn unless_stalled(&mut self, event: WorldEvent) -> Option<WorldEvent> {
        let target = match &event {
            WorldEvent::Deliver { to, .. } | WorldEvent::Chunk { to, .. } => *to,
            WorldEvent::ClientArrive { client, .. } => self.clients[*client].pending.as_ref()?.node,
            WorldEvent::Alarm { node, .. } => {
                if self.nodes[*node].stall.is_some() {
                    // The alarm waits for the node (`end_stall` re-arms it).
                    self.nodes[*node].alarm_event_at = None;
                    return None;
                }
                return Some(event);
            }
            _ => return Some(event),
        };
        let node = &mut self.nodes[target];
        let Some(stall) = node.stall.as_mut() else {
            return Some(event);
        };
        if stall.queue.len() < QUEUE_MAX {
            stall.queue.push_back(event);
            return None;
        }
        let id = node.id;
        self.stats.stall_inputs_lost += 1;
        hash_event(self.trace.hasher(), kind::STALL_DROP, self.now, target, 0);
        self.trace_world(format_args!(
            "# an input of {id} is lost: its queue is full while its disk stalls"
        ));
        None
    }

    /// The stall of node index `index` (of life `incarnation`) ends: the
    /// disk answers. A stall a crash ended already does nothing.
    pub(super) fn end_stall(&mut self, index: usize, incarnation: u64) {
        let node = &mut self.nodes[index];
        if node.incarnation != incarnation || node.machine.is_none() {
            return;
        }
        let Some(stall) = node.stall.take() else {
            return;
        };
        let id = node.id;
        let lasted = self.now - stall.began;
        let over_limit = lasted > self.options.stall_limit_ms.saturating_mul(1000);
        hash_event(
            self.trace.hasher(),
            kind::STALL_END,
            self.now,
            index,
            u64::from(over_limit),
        );
        self.trace_world(format_args!(
            "stall of {id} ends after {} ms: the sync completes{}",
            lasted / 1000,
            if over_limit {
                ", past the stall limit"
            } else {
                ""
            }
        ));
        self.checkers.resumed(id);
        self.nodes[index].disk.sync();
        if !stall.held.is_empty() && !self.resume_batch(index, stall.held) {
            return;
        }
        if over_limit {
            self.stats.stalls_over_limit += 1;
            self.run_batch(index, Input::Step(Event::StorageStalled), None);
            self.run_batch(index, Input::Step(Event::StorageRecovered), None);
        }
        if self.violation.is_some() || self.nodes[index].machine.is_none() {
            return;
        }
        for event in stall.queue {
            self.queue.push(self.now, event);
        }
        self.rearm_waiting_alarm(index);
        self.maybe_healed();
    }

    /// Performs the rest of the batch whose sync hung, as a batch of its
    /// own (the machine has not moved meanwhile). `false`: a violation.
    fn resume_batch(&mut self, index: usize, held: Vec<Action>) -> bool {
        let node = &self.nodes[index];
        let Some(machine) = node.machine.as_ref() else {
            return false;
        };
        self.checkers
            .begin_batch(node.id, NodeView::of(machine), None);
        for action in held {
            if let Err(failure) = self.perform(index, action) {
                self.fail(failure);
                return false;
            }
        }
        self.finish_batch(index);
        self.violation.is_none()
    }

    /// An alarm that came due while the node was blocked fires now, after
    /// the inputs queued before it.
    fn rearm_waiting_alarm(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        let Some(at) = node.alarm_at else {
            return;
        };
        if node.alarm_event_at.is_some() {
            return;
        }
        self.push_alarm_event(index, at.max(self.now));
    }

    /// Every stall ends (the quiet period begins).
    pub(super) fn end_every_stall(&mut self) {
        for index in 0..self.nodes.len() {
            self.nodes[index].stall_armed = None;
            if self.nodes[index].stall.is_some() {
                let incarnation = self.nodes[index].incarnation;
                self.end_stall(index, incarnation);
            }
        }
    }
}
