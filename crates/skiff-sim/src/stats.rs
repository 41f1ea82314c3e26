//! Counters of what a run did, summed over seeds for the summary.

use crate::faults::{PartitionKind, StorageFault};

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
    /// Crashes between batches.
    pub crashes: u64,
    /// Crashes in the middle of a batch (the rest of the batch lost).
    pub crashes_mid_batch: u64,
    /// Restarts from durable state.
    pub restarts: u64,
    /// Partitions, per kind in [`PartitionKind::ALL`] order.
    pub partitions: [u64; 4],
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
        self.crashes += other.crashes;
        self.crashes_mid_batch += other.crashes_mid_batch;
        self.restarts += other.restarts;
        for (sum, count) in self.partitions.iter_mut().zip(other.partitions) {
            *sum += count;
        }
        for (sum, count) in self.storage_faults.iter_mut().zip(other.storage_faults) {
            *sum += count;
        }
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
