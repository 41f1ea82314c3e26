//! Leadership health, measured on the world: the time from a heal to a
//! leader that a majority follows (`checker/leader_after_heal.rs`), and the
//! terms begun under partial partitions (elections per simulated minute).
//!
//! A heal is any event that may leave a majority of nodes up, running (no
//! stalled disk, no damaged disk being repaired) and connected both ways: a partition healing, a restart, a
//! stall ending, the quiet period. Faults (a crash, a partition, a stall
//! beginning) drop the interval in progress.
//!
//! With membership churn and `--disk-faults=many` the intervals are
//! measured but never fail the run: the voters counted here are those of
//! the committed configuration, while the nodes count those of their latest,
//! and with several nodes repairing the healthy majority of one may be
//! none of the other (seed 404, 5 nodes: voters 4, 5, 7 and 9 in the latest,
//! 7 and 9 repairing, while the committed one also counted node 6). Many
//! does not check liveness anyway (`storage.rs`).

use super::World;
use crate::faults::PartitionKind;
use skiff_core::Role;

impl World {
    /// After a heal: starts the interval when a majority is up, running and
    /// connected, but no leader is followed by a majority.
    pub(super) fn maybe_healed(&mut self) {
        if !self.heal.waiting() && self.majority_connected() && !self.cluster_led() {
            self.heal.healed(self.now);
        }
    }

    /// After each step: ends the running interval once a majority follows a
    /// leader, or fails once it has passed its bound.
    pub(super) fn watch_leaderless(&mut self) {
        if !self.heal.waiting() {
            return;
        }
        if self.cluster_led() {
            self.heal.led(self.now);
        } else if let Err(failure) = self.heal.check(self.now) {
            let many = self.options.disk_faults == crate::faults::DiskFaults::Many;
            if !(many && self.churn.is_some()) {
                self.fail(failure);
            }
        }
    }

    /// Whether some running leader of term `t` is followed, in `t`, by a
    /// majority (itself included) of the voters the world counts on
    /// (every node, without membership churn).
    fn cluster_led(&self) -> bool {
        let voters = self.voter_indices();
        let quorum = voters.len() / 2 + 1;
        let running = || {
            voters
                .iter()
                .map(|i| &self.nodes[*i])
                .filter(|node| node.stall.is_none())
                .filter_map(|node| node.machine.as_ref())
        };
        running()
            .filter(|leader| leader.role() == Role::Leader)
            .any(|leader| {
                let followers = running()
                    .filter(|m| m.role() == Role::Follower && m.term() == leader.term())
                    .filter(|m| m.leader() == Some(leader.id()))
                    .count();
                followers + 1 >= quorum
            })
    }

    /// Whether some majority of nodes is up, running, not repairing a
    /// damaged disk (such a node neither votes nor stands) and connected
    /// both ways, pair by pair. Clusters hold at most nine nodes: every subset
    /// is tried.
    fn majority_connected(&self) -> bool {
        let voters = self.voter_indices();
        let quorum = voters.len() / 2 + 1;
        let running: Vec<usize> = voters
            .into_iter()
            .filter(|i| {
                let node = &self.nodes[*i];
                node.machine.is_some() && node.stall.is_none() && !node.faulty()
            })
            .collect();
        if running.len() < quorum {
            return false;
        }
        let linked = |a: usize, b: usize| !self.network.is_cut(a, b) && !self.network.is_cut(b, a);
        (0u32..1 << running.len())
            .filter(|subset| subset.count_ones() as usize >= quorum)
            .any(|subset| {
                let members: Vec<usize> = (0..running.len())
                    .filter(|bit| subset & (1 << bit) != 0)
                    .map(|bit| running[bit])
                    .collect();
                members
                    .iter()
                    .all(|a| members.iter().all(|b| a == b || linked(*a, *b)))
            })
    }

    /// After a batch of node index `index`: a term higher than any before
    /// is one more election begun, counted under a partial partition.
    pub(super) fn note_terms(&mut self, index: usize) {
        let Some(term) = self.nodes[index].machine.as_ref().map(|m| m.term()) else {
            return;
        };
        if term > self.highest_term {
            if self.partial_since.is_some() {
                self.stats.partial_partition_terms += term.0 - self.highest_term.0;
            }
            self.highest_term = term;
        }
    }

    /// A partition of `kind` began: partial ones start their clock.
    pub(super) fn partition_began(&mut self, kind: PartitionKind) {
        self.heal.disturbed();
        if kind.is_partial() {
            self.partial_since = Some(self.now);
        }
    }

    /// The partition healed (or the run ends): its time is counted.
    pub(super) fn partition_ended(&mut self) {
        if let Some(since) = self.partial_since.take() {
            self.stats.partial_partition_us += self.now - since;
        }
    }
}
