//! The fault injector: crashes (between batches or in the middle of one),
//! restarts after a random down time, partitions of every shape that heal,
//! and the quiet period that ends them all.

use super::batch::kind;
use super::{Phase, World, WorldEvent};
use crate::faults::PartitionKind;
use crate::queue::Micros;
use crate::rng::SimRng;
use crate::trace::hash_event;

/// How long a partition lasts: uniform in `[100 ms, 3 s)`.
const PARTITION_US: (Micros, Micros) = (100_000, 3_000_000);
/// A short down time (a quick reboot, often within one election): `[1, 50) ms`.
const DOWN_SHORT_US: (Micros, Micros) = (1_000, 50_000);
/// A long down time: `[50 ms, 2 s)`.
const DOWN_LONG_US: (Micros, Micros) = (50_000, 2_000_000);

impl World {
    pub(super) fn schedule_first_faults(&mut self) {
        self.schedule_after_gap(self.options.faults.crash_rate, WorldEvent::Crash);
        self.schedule_after_gap(
            self.options.faults.partition_rate,
            WorldEvent::PartitionStart,
        );
        self.schedule_stall();
        self.schedule_transfer();
        self.schedule_change();
    }

    /// Schedules `event` after a gap whose mean is one over `rate_per_s`.
    pub(super) fn schedule_after_gap(&mut self, rate_per_s: f64, event: WorldEvent) {
        if let Some(gap) = draw_gap(&mut self.rng, rate_per_s) {
            self.queue.push(self.now + gap, event);
        }
    }

    /// The injector's next crash: a random up node (the leader, a third of
    /// the time) crashes now, or in the middle of its next batch that
    /// persists. At most a minority is down or about to go down at once
    /// (one node, in clusters of one or two).
    pub(super) fn crash_fault(&mut self) {
        if self.phase != Phase::Faulty {
            return;
        }
        self.schedule_after_gap(self.options.faults.crash_rate, WorldEvent::Crash);
        if !self.crash_allowed() {
            return;
        }
        let nodes = self.nodes.len();
        let candidates: Vec<usize> = (0..nodes)
            .filter(|i| self.nodes[*i].machine.is_some() && !self.nodes[*i].crash_armed)
            .collect();
        let leader = self.current_leader().filter(|l| candidates.contains(l));
        let target = match leader {
            Some(leader) if self.rng.below(3) == 0 => leader,
            _ => candidates[self.rng.index(candidates.len())],
        };
        if self.rng.below(2) == 0 {
            self.crash(target, false);
        } else {
            self.nodes[target].crash_armed = true;
            let id = self.nodes[target].id;
            self.trace_world(format_args!(
                "# crash of {id} armed for its next batch that persists"
            ));
        }
    }

    /// Whether one more node may crash: at most a minority is down or about
    /// to go down at once (one node, in clusters of one or two).
    pub(super) fn crash_allowed(&self) -> bool {
        // Counted among the voters the world counts on (all nodes, without
        // membership churn).
        let voters = self.voter_indices();
        let nodes = voters.len();
        let unavailable = voters
            .iter()
            .filter(|i| self.nodes[**i].unavailable())
            .count();
        unavailable < (nodes - (nodes / 2 + 1)).max(1)
    }

    /// Node index `index` crashes: its machine and everything not on its
    /// disk are gone. It restarts after a random down time.
    pub(super) fn crash(&mut self, index: usize, mid_batch: bool) {
        // Judged while the crashing node's own latest configuration is still
        // in view: it may be the only node that appended it (seed 38 of 3
        // nodes with churn and disk faults).
        let few_voters = self.few_voters_in_play();
        self.lose_machine(index);
        let id = self.nodes[index].id;
        if mid_batch {
            self.stats.crashes_mid_batch += 1;
        } else {
            self.stats.crashes += 1;
        }
        hash_event(
            self.trace.hasher(),
            kind::CRASH,
            self.now,
            index,
            u64::from(mid_batch),
        );
        self.trace_world(format_args!("crash {id}"));
        if let Some(timeline) = self.timeline.as_deref_mut() {
            let what = if mid_batch {
                "crash mid-batch"
            } else {
                "crash"
            };
            timeline.step(self.now, index, what, "", None);
        }
        self.crash_disk(index, few_voters);
        let (low, high) = if self.rng.below(2) == 0 {
            DOWN_SHORT_US
        } else {
            DOWN_LONG_US
        };
        let down = self.rng.between(low, high);
        self.queue
            .push(self.now + down, WorldEvent::Restart { node: index });
    }

    /// Node index `index`'s machine is gone (a crash, or a stop), with
    /// everything not on its disk.
    pub(super) fn lose_machine(&mut self, index: usize) {
        let node = &mut self.nodes[index];
        node.machine = None;
        // Reads waiting for the application are lost: their clients time out.
        node.reads.clear();
        node.incarnation += 1;
        node.alarm_generation += 1;
        node.alarm_at = None;
        node.alarm_event_at = None;
        node.crash_armed = false;
        node.stall_armed = None;
        // What waited for a stalled disk is lost with the node.
        node.stall = None;
        let id = node.id;
        self.checkers.crashed(id);
        self.heal.disturbed();
        self.snapshots.crashed(index);
    }

    /// A crashed node comes back (a node already up, restarted by the quiet
    /// period, ignores its old restart).
    pub(super) fn restart(&mut self, index: usize) {
        if self.nodes[index].machine.is_none() && self.nodes[index].present {
            self.start_machine(index, true);
            self.maybe_healed();
        }
    }

    /// Boots node index `index` for the first time.
    pub(super) fn boot(&mut self, index: usize) {
        self.start_machine(index, false);
    }

    pub(super) fn partition_start(&mut self) {
        if self.phase != Phase::Faulty {
            return;
        }
        let kind = PartitionKind::draw(&mut self.rng);
        let leader = self.current_leader();
        let nodes = self.nodes.len();
        self.network.partition(kind, nodes, leader, &mut self.rng);
        self.stats.count_partition(kind);
        self.partition_began(kind);
        let h = self.trace.hasher();
        hash_event(h, kind::PARTITION, self.now, 0, kind.ordinal() as u64);
        for from in 0..nodes {
            for to in 0..nodes {
                h.word(u64::from(self.network.is_cut(from, to)));
            }
        }
        if self.trace.wants_text() || self.timeline.is_some() {
            let cuts = self.network.describe_cuts(nodes);
            self.trace_world(format_args!("partition {kind}: {cuts}"));
            if let Some(timeline) = self.timeline.as_deref_mut() {
                timeline.partition_start(self.now, &format!("partition {kind}: {cuts}"));
            }
        }
        let duration = self.rng.between(PARTITION_US.0, PARTITION_US.1);
        self.queue
            .push(self.now + duration, WorldEvent::PartitionHeal);
    }

    pub(super) fn partition_heal(&mut self) {
        if self.phase != Phase::Faulty {
            return; // the quiet period healed everything already
        }
        self.network.heal();
        self.partition_ended();
        hash_event(self.trace.hasher(), kind::HEAL, self.now, 0, 0);
        self.trace_world(format_args!("heal"));
        if let Some(timeline) = self.timeline.as_deref_mut() {
            timeline.partition_end(self.now);
        }
        self.maybe_healed();
        let rate = self.options.faults.partition_rate;
        self.schedule_after_gap(rate, WorldEvent::PartitionStart);
    }

    /// Faults stop: no more loss, duplication, partitions or crashes, and
    /// every node is up. From now on an append must commit within the bound.
    pub(super) fn start_quiet(&mut self) {
        if self.phase == Phase::Quiet {
            return;
        }
        self.phase = Phase::Quiet;
        self.network.stop_faults();
        self.partition_ended();
        hash_event(self.trace.hasher(), kind::QUIET, self.now, 0, 0);
        let bound_ms = self.options.liveness_bound_ms;
        if let Some(timeline) = self.timeline.as_deref_mut() {
            timeline.partition_end(self.now);
        }
        self.trace_world(format_args!(
            "quiet: faults stop, links heal, every node is up; an append must commit within {bound_ms} ms"
        ));
        for index in 0..self.nodes.len() {
            self.nodes[index].crash_armed = false;
            if self.nodes[index].machine.is_none() && self.nodes[index].present {
                self.start_machine(index, true);
            }
        }
        self.end_every_stall();
        self.heal.disturbed();
        self.maybe_healed();
        let bound = bound_ms.saturating_mul(1000);
        self.checkers.liveness().start_quiet(self.now, bound);
        self.queue
            .push(self.now + bound, WorldEvent::LivenessDeadline);
    }
}

/// A gap drawn uniformly from `[0, 2 / rate)` seconds (mean `1 / rate`), or
/// `None` when the rate is zero. Uniform rather than exponential: a
/// logarithm could round differently on another platform.
fn draw_gap(rng: &mut SimRng, rate_per_s: f64) -> Option<Micros> {
    if rate_per_s.is_nan() || rate_per_s <= 0.0 {
        return None;
    }
    let span = (2_000_000.0 / rate_per_s).max(1.0) as Micros;
    Some(rng.below(span))
}
