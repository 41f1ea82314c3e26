//! What can go wrong, and how often: named fault profiles, their rates, and
//! the shapes a partition can take.

use crate::rng::SimRng;
use std::fmt;
use std::str::FromStr;

/// The rates of every fault the world injects. Probabilities are per
/// message; rates are per second of simulated time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultRates {
    /// Probability that a message is lost.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message takes the slow path (tens of ms to a second)
    /// instead of the usual 1 to 10 ms.
    pub latency_tail: f64,
    /// Partitions started per simulated second (one at a time; each heals).
    pub partition_rate: f64,
    /// Node crashes per simulated second; each crashed node restarts later.
    pub crash_rate: f64,
    /// Disk stalls per simulated second, in the seeds whose disks stall
    /// (half of them, drawn per seed: `world/stall.rs`); each stall ends.
    pub stall_rate: f64,
    /// Leadership transfers asked per simulated second (`world/transfers.rs`).
    pub transfer_rate: f64,
}

impl FaultRates {
    /// No faults at all: messages arrive after 1 to 10 ms, nodes stay up.
    pub const NONE: FaultRates = FaultRates {
        loss: 0.0,
        duplicate: 0.0,
        latency_tail: 0.0,
        partition_rate: 0.0,
        crash_rate: 0.0,
        stall_rate: 0.0,
        transfer_rate: 0.0,
    };
}

/// A named set of [`FaultRates`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FaultProfile {
    /// No faults.
    None,
    /// Lost, duplicated and slow messages.
    Lossy,
    /// Partitions of every shape, and slow messages.
    Partitions,
    /// Crashes (also in the middle of a batch) and restarts, and slow messages.
    Crashes,
    /// Everything at once, disk stalls (in half the seeds) and leadership
    /// transfers included.
    Chaos,
}

impl FaultProfile {
    /// Every profile, in the order `--help` lists them.
    pub const ALL: [FaultProfile; 5] = [
        FaultProfile::None,
        FaultProfile::Lossy,
        FaultProfile::Partitions,
        FaultProfile::Crashes,
        FaultProfile::Chaos,
    ];

    /// The profile's rates.
    pub fn rates(self) -> FaultRates {
        let none = FaultRates::NONE;
        match self {
            FaultProfile::None => none,
            FaultProfile::Lossy => FaultRates {
                loss: 0.05,
                duplicate: 0.03,
                latency_tail: 0.03,
                ..none
            },
            FaultProfile::Partitions => FaultRates {
                latency_tail: 0.01,
                partition_rate: 1.0,
                ..none
            },
            FaultProfile::Crashes => FaultRates {
                latency_tail: 0.01,
                crash_rate: 2.0,
                ..none
            },
            FaultProfile::Chaos => FaultRates {
                loss: 0.03,
                duplicate: 0.02,
                latency_tail: 0.02,
                partition_rate: 0.7,
                crash_rate: 1.5,
                stall_rate: 0.05,
                transfer_rate: 0.3,
            },
        }
    }

    /// The profile's name, as `--faults` takes it.
    pub fn name(self) -> &'static str {
        match self {
            FaultProfile::None => "none",
            FaultProfile::Lossy => "lossy",
            FaultProfile::Partitions => "partitions",
            FaultProfile::Crashes => "crashes",
            FaultProfile::Chaos => "chaos",
        }
    }
}

impl fmt::Display for FaultProfile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A profile name that is not one of [`FaultProfile::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown fault profile {0:?}: expected none, lossy, partitions, crashes or chaos")]
pub struct UnknownProfile(pub String);

impl FromStr for FaultProfile {
    type Err = UnknownProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FaultProfile::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| UnknownProfile(s.to_string()))
    }
}

/// Storage faults, added to any profile: what a crash does to unsynced
/// writes (all lost, a prefix kept, the last kept one torn) and damage to
/// synced records (bit flips, lost fsyncs, missing segments, one hard-state
/// copy). See `world/storage` for the mix and exactly what each checks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DiskFaults {
    /// Disks keep every synced write; a crash loses the unsynced ones.
    #[default]
    Off,
    /// At most one node faulty at a time (from its damage until it has
    /// repaired): nothing acknowledged may be lost, every rule is checked.
    One,
    /// Several nodes damaged at once: checks that damage is noticed and the
    /// safety rules, but not liveness (see `world/storage`).
    Many,
}

impl DiskFaults {
    /// The mode's name, as `--disk-faults` takes it.
    pub fn name(self) -> &'static str {
        match self {
            DiskFaults::Off => "off",
            DiskFaults::One => "one",
            DiskFaults::Many => "many",
        }
    }
}

impl fmt::Display for DiskFaults {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `--disk-faults` value that is not a mode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown disk-fault mode {0:?}: expected off, one or many")]
pub struct UnknownDiskFaults(pub String);

impl FromStr for DiskFaults {
    type Err = UnknownDiskFaults;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [DiskFaults::Off, DiskFaults::One, DiskFaults::Many]
            .into_iter()
            .find(|mode| mode.name() == s)
            .ok_or_else(|| UnknownDiskFaults(s.to_string()))
    }
}

/// A storage fault the world injects (with [`DiskFaults`] on).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageFault {
    /// A crash keeps some of the unsynced writes and loses the rest.
    PartialWrites,
    /// A crash tears the last unsynced write it keeps (a torn tail).
    TornWrite,
    /// A flipped bit in a synced log record.
    BitFlip,
    /// A sync that reported success lost its writes; a later sync survived.
    LostFsync,
    /// A segment vanished: the synced log is lost from some index on.
    MissingSegment,
    /// One of the two hard-state copies is damaged (the other is read).
    HardStateCopy,
}

impl StorageFault {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [StorageFault; 6] = [
        StorageFault::PartialWrites,
        StorageFault::TornWrite,
        StorageFault::BitFlip,
        StorageFault::LostFsync,
        StorageFault::MissingSegment,
        StorageFault::HardStateCopy,
    ];

    /// The kind's name in traces and summaries.
    pub fn name(self) -> &'static str {
        match self {
            StorageFault::PartialWrites => "partial-writes",
            StorageFault::TornWrite => "torn-write",
            StorageFault::BitFlip => "bit-flip",
            StorageFault::LostFsync => "lost-fsync",
            StorageFault::MissingSegment => "missing-segment",
            StorageFault::HardStateCopy => "hard-state-copy",
        }
    }

    /// Position in [`StorageFault::ALL`], for per-kind counters.
    pub fn ordinal(self) -> usize {
        self as usize
    }
}

impl fmt::Display for StorageFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The shape of a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartitionKind {
    /// The leader (or, with none, a random node) can neither send nor receive.
    IsolateLeader,
    /// A minority is cut off from the majority, both ways.
    MinoritySplit,
    /// Each link is cut, both ways, with probability one third.
    RandomCuts,
    /// Each directed link is cut with probability one third, so some nodes
    /// hear others that cannot hear them.
    OneWay,
    /// A partial partition: two groups that cannot see each other, and one
    /// or more bridge nodes that see both (A sees B, B sees C, C does not
    /// see A). Without PreVote and CheckQuorum the group that does not hold
    /// the leader keeps raising terms through the bridge: an election storm.
    Bridge,
}

impl PartitionKind {
    /// Every kind, in the order the summary lists them.
    pub const ALL: [PartitionKind; 5] = [
        PartitionKind::IsolateLeader,
        PartitionKind::MinoritySplit,
        PartitionKind::RandomCuts,
        PartitionKind::OneWay,
        PartitionKind::Bridge,
    ];

    /// Draws a kind uniformly.
    pub fn draw(rng: &mut SimRng) -> PartitionKind {
        PartitionKind::ALL[rng.index(PartitionKind::ALL.len())]
    }

    /// The kind's name in traces and summaries.
    pub fn name(self) -> &'static str {
        match self {
            PartitionKind::IsolateLeader => "isolate-leader",
            PartitionKind::MinoritySplit => "minority-split",
            PartitionKind::RandomCuts => "random-cuts",
            PartitionKind::OneWay => "one-way",
            PartitionKind::Bridge => "bridge",
        }
    }

    /// Whether connectivity under this kind is not transitive (some node
    /// hears one that hears a third it cannot hear): the partial partitions
    /// whose elections the summary counts per minute.
    pub fn is_partial(self) -> bool {
        matches!(self, PartitionKind::OneWay | PartitionKind::Bridge)
    }

    /// Position in [`PartitionKind::ALL`], for per-kind counters.
    pub fn ordinal(self) -> usize {
        self as usize
    }
}

impl fmt::Display for PartitionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for profile in FaultProfile::ALL {
            assert_eq!(profile.name().parse::<FaultProfile>(), Ok(profile));
        }
        assert!("storm".parse::<FaultProfile>().is_err());
        for mode in [DiskFaults::Off, DiskFaults::One, DiskFaults::Many] {
            assert_eq!(mode.name().parse::<DiskFaults>(), Ok(mode));
        }
        assert!("some".parse::<DiskFaults>().is_err());
    }

    #[test]
    fn only_none_is_fault_free() {
        for profile in FaultProfile::ALL {
            let free = profile.rates() == FaultRates::NONE;
            assert_eq!(free, profile == FaultProfile::None, "{profile}");
        }
    }
}
