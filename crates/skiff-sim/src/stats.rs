//! Counters of what a run did, summed over seeds for the summary.

use crate::faults::{PartitionKind, StorageFault};
use skiff_core::StepDownReason;
use std::collections::BTreeMap;

/// What happened in one run (or, summed, in many).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Runs summed into these counters.
    pub runs: u64,
    /// World steps: events taken off the agenda.
    pub steps: u64,
    /// Simulated time, in microseconds.
    pub simulated_us: u64,
    /// Messages the machines sent.
    pub messages_sent: u64,
    /// Messages handed to a machine (duplicates included).
    pub messages_delivered: u64,
    /// Messages the network lost.
    pub messages_lost: u64,
    /// Messages the network delivered twice.
    pub messages_duplicated: u64,
    /// Messages dropped on a link cut by a partition.
    pub messages_blocked: u64,
    /// Messages that arrived at a crashed node.
    pub messages_to_down_nodes: u64,
    /// Leaders elected (distinct terms with a leader).
    pub elections: u64,
    /// Entries in the agreed (committed) sequence.
    pub commits: u64,
    /// Appends acknowledged to clients.
    pub client_acks: u64,
    /// Client requests that timed out.
    pub client_timeouts: u64,
    /// Client requests refused with `NotLeader`.
    pub client_redirects: u64,
    /// Client requests reported `Overwritten`.
    pub client_overwritten: u64,
    /// Reads answered to their clients (each checked: Linearizable Read).
    pub reads_answered: u64,
    /// Of them, answered by a node that was not leader (follower reads).
    pub reads_by_followers: u64,
    /// Reads failed to their clients (`ReadFailed`: not confirmed by a
    /// leader, or busy); counted apart from the appends' redirects.
    pub reads_failed: u64,
    /// The sum of answered reads' latencies, from sending to answer, in
    /// microseconds.
    pub read_latency_total_us: u64,
    /// Crashes between batches.
    pub crashes: u64,
    /// Crashes in the middle of a batch (the rest of the batch lost).
    pub crashes_mid_batch: u64,
    /// Restarts from durable state.
    pub restarts: u64,
    /// Partitions, per kind in [`PartitionKind::ALL`] order.
    pub partitions: [u64; 5],
    /// Disk stalls that began (`world/stall.rs`).
    pub stalls: u64,
    /// Stalls longer than the driver's stall limit (each followed by
    /// `Event::StorageStalled`).
    pub stalls_over_limit: u64,
    /// Inputs that reached a stalled node when its queue was full: lost.
    pub stall_inputs_lost: u64,
    /// Membership changes asked (`world/membership.rs`).
    pub membership_asked: u64,
    /// Of them, committed (`MembershipChangeEnded` with an index).
    pub membership_committed: u64,
    /// Of them, refused or failed, by [`skiff_core::MembershipError::name`].
    pub membership_refused: BTreeMap<&'static str, u64>,
    /// Spare nodes started fresh to join as learners.
    pub nodes_added: u64,
    /// Nodes stopped after a configuration without them committed.
    pub nodes_removed: u64,
    /// Leaders that stepped down because their removal committed.
    pub leader_removals: u64,
    /// Leadership transfers asked (`world/transfers.rs`).
    pub transfers_asked: u64,
    /// Of them, answered handed over.
    pub transfers_handed_over: u64,
    /// Answered timed out (the target did not take office in time).
    pub transfers_timed_out: u64,
    /// Refused at once, or lost with the leader's office.
    pub transfers_refused: u64,
    /// `SteppedDown` actions, per reason: QuorumLost, StorageStalled, other.
    pub stepped_down: [u64; 4],
    /// Intervals measured from a heal (a majority up, unstalled and
    /// connected) to a leader a majority follows, not cut short by a fault.
    pub leaderless_intervals: u64,
    /// Their total length, in microseconds.
    pub leaderless_total_us: u64,
    /// The longest of them, in microseconds.
    pub leaderless_max_us: u64,
    /// Simulated time under a partial partition ([`PartitionKind::is_partial`]).
    pub partial_partition_us: u64,
    /// Terms begun (the highest term of the cluster rising) under one.
    pub partial_partition_terms: u64,
    /// Storage faults injected, per kind in [`StorageFault::ALL`] order.
    pub storage_faults: [u64; 6],
    /// Damaged nodes that finished repairing.
    pub repairs: u64,
    /// Forged messages handed to nodes (each one rejected, or the run failed).
    pub forgeries: u64,
    /// Snapshots nodes took of their applied state (each followed by a compaction).
    pub snapshots_taken: u64,
    /// Snapshot transfers a leader started (resumed ones not counted again).
    pub transfers_started: u64,
    /// Snapshot transfers whose every chunk arrived.
    pub transfers_completed: u64,
    /// Snapshot chunks sent, resends included.
    pub chunks_sent: u64,
    /// Snapshot chunks lost: dropped, blocked, or arriving at a down node.
    pub chunks_lost: u64,
    /// Snapshots installed by followers (`SnapshotInstall` performed).
    pub snapshots_installed: u64,
}

impl SimStats {
    /// Adds `other`'s counters to these.
    pub fn add(&mut self, other: &SimStats) {
        self.runs += other.runs;
        self.steps += other.steps;
        self.simulated_us += other.simulated_us;
        self.messages_sent += other.messages_sent;
        self.messages_delivered += other.messages_delivered;
        self.messages_lost += other.messages_lost;
        self.messages_duplicated += other.messages_duplicated;
        self.messages_blocked += other.messages_blocked;
        self.messages_to_down_nodes += other.messages_to_down_nodes;
        self.elections += other.elections;
        self.commits += other.commits;
        self.client_acks += other.client_acks;
        self.client_timeouts += other.client_timeouts;
        self.client_redirects += other.client_redirects;
        self.client_overwritten += other.client_overwritten;
        self.reads_answered += other.reads_answered;
        self.reads_by_followers += other.reads_by_followers;
        self.reads_failed += other.reads_failed;
        self.read_latency_total_us += other.read_latency_total_us;
        self.crashes += other.crashes;
        self.membership_asked += other.membership_asked;
        self.membership_committed += other.membership_committed;
        for (name, count) in &other.membership_refused {
            *self.membership_refused.entry(name).or_default() += count;
        }
        self.nodes_added += other.nodes_added;
        self.nodes_removed += other.nodes_removed;
        self.leader_removals += other.leader_removals;
        self.crashes_mid_batch += other.crashes_mid_batch;
        self.restarts += other.restarts;
        for (sum, count) in self.partitions.iter_mut().zip(other.partitions) {
            *sum += count;
        }
        for (sum, count) in self.storage_faults.iter_mut().zip(other.storage_faults) {
            *sum += count;
        }
        self.stalls += other.stalls;
        self.stalls_over_limit += other.stalls_over_limit;
        self.transfers_asked += other.transfers_asked;
        self.transfers_handed_over += other.transfers_handed_over;
        self.transfers_timed_out += other.transfers_timed_out;
        self.transfers_refused += other.transfers_refused;
        self.stall_inputs_lost += other.stall_inputs_lost;
        for (sum, count) in self.stepped_down.iter_mut().zip(other.stepped_down) {
            *sum += count;
        }
        self.leaderless_intervals += other.leaderless_intervals;
        self.leaderless_total_us += other.leaderless_total_us;
        self.leaderless_max_us = self.leaderless_max_us.max(other.leaderless_max_us);
        self.partial_partition_us += other.partial_partition_us;
        self.partial_partition_terms += other.partial_partition_terms;
        self.repairs += other.repairs;
        self.forgeries += other.forgeries;
        self.snapshots_taken += other.snapshots_taken;
        self.transfers_started += other.transfers_started;
        self.transfers_completed += other.transfers_completed;
        self.chunks_sent += other.chunks_sent;
        self.chunks_lost += other.chunks_lost;
        self.snapshots_installed += other.snapshots_installed;
    }

    /// The snapshots taken, sent and installed, for the summary line.
    pub fn snapshots_line(&self) -> String {
        format!(
            "{} taken, {} installed; {} transfers started, {} completed; {} chunks sent, {} lost",
            self.snapshots_taken,
            self.snapshots_installed,
            self.transfers_started,
            self.transfers_completed,
            self.chunks_sent,
            self.chunks_lost
        )
    }

    /// The reads, for the summary line.
    pub fn reads_line(&self) -> String {
        let mean_us = self
            .read_latency_total_us
            .checked_div(self.reads_answered)
            .unwrap_or(0);
        format!(
            "{} answered ({} by followers), {} failed; mean latency {:.3} ms",
            self.reads_answered,
            self.reads_by_followers,
            self.reads_failed,
            mean_us as f64 / 1e3
        )
    }

    /// Storage faults injected, of every kind.
    pub fn storage_faults_total(&self) -> u64 {
        self.storage_faults.iter().sum()
    }

    /// The storage faults by kind and the repairs, for the summary line.
    pub fn storage_line(&self) -> String {
        let kinds: Vec<String> = StorageFault::ALL
            .iter()
            .map(|kind| format!("{} {kind}", self.storage_faults[kind.ordinal()]))
            .collect();
        format!(
            "{} storage faults ({}), {} repairs completed",
            self.storage_faults_total(),
            kinds.join(", "),
            self.repairs
        )
    }

    /// Counts a partition of `kind`.
    pub fn count_partition(&mut self, kind: PartitionKind) {
        self.partitions[kind.ordinal()] += 1;
    }

    /// Counts a `SteppedDown` action for `reason`.
    pub fn count_step_down(&mut self, reason: StepDownReason) {
        if reason == StepDownReason::Removed {
            self.leader_removals += 1;
        }
        let slot = match reason {
            StepDownReason::QuorumLost => 0,
            StepDownReason::StorageStalled => 1,
            StepDownReason::Removed => 2,
            _ => 3,
        };
        self.stepped_down[slot] += 1;
    }

    /// The step-downs by reason, for the summary line.
    pub fn step_downs_line(&self) -> String {
        let [quorum, stalled, removed, other] = self.stepped_down;
        let mut line = format!(
            "{} step-downs ({quorum} QuorumLost, {stalled} StorageStalled",
            quorum + stalled + removed + other
        );
        if removed > 0 {
            line.push_str(&format!(", {removed} Removed"));
        }
        if other > 0 {
            line.push_str(&format!(", {other} other"));
        }
        line.push(')');
        line
    }

    /// The disk stalls, for the summary line.
    pub fn stalls_line(&self) -> String {
        format!(
            "{} disk stalls, {} over the stall limit; {} inputs lost to a full queue",
            self.stalls, self.stalls_over_limit, self.stall_inputs_lost
        )
    }

    /// The membership changes, for the summary line.
    pub fn membership_line(&self) -> String {
        let refused: u64 = self.membership_refused.values().sum();
        let reasons: Vec<String> = self
            .membership_refused
            .iter()
            .map(|(name, count)| format!("{count} {name}"))
            .collect();
        let reasons = if reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", reasons.join(", "))
        };
        format!(
            "{} changes asked, {} committed, {refused} refused or failed{reasons}; \
             {} nodes added, {} removed and stopped; {} leaders removed",
            self.membership_asked,
            self.membership_committed,
            self.nodes_added,
            self.nodes_removed,
            self.leader_removals
        )
    }

    /// The leadership transfers, for the summary line.
    pub fn transfers_line(&self) -> String {
        format!(
            "{} asked, {} handed over, {} timed out, {} refused or lost with the office",
            self.transfers_asked,
            self.transfers_handed_over,
            self.transfers_timed_out,
            self.transfers_refused
        )
    }

    /// Mean time without a leader after a heal, in microseconds.
    pub fn leaderless_mean_us(&self) -> u64 {
        self.leaderless_total_us
            .checked_div(self.leaderless_intervals)
            .unwrap_or(0)
    }

    /// Elections (terms begun) per simulated minute under partial
    /// partitions, if there were any.
    pub fn partial_elections_per_minute(&self) -> Option<f64> {
        (self.partial_partition_us > 0)
            .then(|| self.partial_partition_terms as f64 * 60e6 / self.partial_partition_us as f64)
    }

    /// Every fault injected, by kind, for the summary line.
    pub fn faults_line(&self) -> String {
        let mut parts = vec![
            format!("{} lost", self.messages_lost),
            format!("{} duplicated", self.messages_duplicated),
            format!("{} blocked", self.messages_blocked),
            format!("{} crashes", self.crashes),
            format!("{} mid-batch crashes", self.crashes_mid_batch),
            format!("{} restarts", self.restarts),
        ];
        for kind in PartitionKind::ALL {
            parts.push(format!("{} {kind}", self.partitions[kind.ordinal()]));
        }
        parts.push(format!("{} disk stalls", self.stalls));
        parts.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_counter() {
        let mut one = SimStats {
            runs: 1,
            messages_delivered: 10,
            ..SimStats::default()
        };
        one.count_partition(PartitionKind::OneWay);
        let mut total = SimStats::default();
        total.add(&one);
        total.add(&one);
        assert_eq!(total.runs, 2);
        assert_eq!(total.messages_delivered, 20);
        assert_eq!(total.partitions[PartitionKind::OneWay.ordinal()], 2);
        assert!(total.faults_line().contains("2 one-way"));
        let mut leadership = SimStats {
            leaderless_intervals: 2,
            leaderless_total_us: 300,
            leaderless_max_us: 200,
            partial_partition_us: 30_000_000,
            partial_partition_terms: 1,
            ..SimStats::default()
        };
        leadership.count_step_down(StepDownReason::QuorumLost);
        leadership.count_step_down(StepDownReason::StorageStalled);
        let mut sum = SimStats::default();
        sum.add(&leadership);
        sum.add(&SimStats {
            leaderless_max_us: 100,
            ..leadership.clone()
        });
        assert_eq!(sum.leaderless_max_us, 200);
        assert_eq!(sum.leaderless_mean_us(), 150);
        assert_eq!(sum.partial_elections_per_minute(), Some(2.0));
        assert_eq!(
            sum.step_downs_line(),
            "4 step-downs (2 QuorumLost, 2 StorageStalled)"
        );
        assert_eq!(SimStats::default().partial_elections_per_minute(), None);
        let snapshots = SimStats {
            snapshots_taken: 3,
            snapshots_installed: 1,
            chunks_lost: 2,
            ..SimStats::default()
        };
        total.add(&snapshots);
        total.add(&snapshots);
        assert_eq!(
            total.snapshots_line(),
            "6 taken, 2 installed; 0 transfers started, 0 completed; 0 chunks sent, 4 lost"
        );
        let mut torn = SimStats::default();
        torn.storage_faults[StorageFault::TornWrite.ordinal()] = 3;
        torn.repairs = 1;
        total.add(&torn);
        total.add(&torn);
        assert!(
            total.storage_line().starts_with("6 storage faults (")
                && total.storage_line().contains("6 torn-write")
                && total.storage_line().ends_with("2 repairs completed"),
            "{}",
            total.storage_line()
        );
    }
}
