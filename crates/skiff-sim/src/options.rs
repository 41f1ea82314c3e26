//! What one simulated run is asked to do.

use crate::faults::{DiskFaults, FaultProfile, FaultRates};
use crate::network::NODES_MAX;

/// The share of client requests that are reads, by default.
pub const READ_SHARE_DEFAULT: f64 = 0.3;

/// How the cluster's membership behaves in a run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MembershipProfile {
    /// The first voters stay the cluster's voters (no change is asked).
    #[default]
    Fixed,
    /// Membership churn (`world/membership.rs`): spare nodes are added as
    /// learners and promoted, voters and learners (the leader among them)
    /// are removed, removed spares come back as fresh nodes.
    Churn,
}

impl MembershipProfile {
    /// Every profile, in the order `--help` lists them.
    pub const ALL: [MembershipProfile; 2] = [MembershipProfile::Fixed, MembershipProfile::Churn];

    /// The profile's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            MembershipProfile::Fixed => "fixed",
            MembershipProfile::Churn => "churn",
        }
    }
}

/// A membership profile name that is not one of [`MembershipProfile::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown membership profile {0:?}: expected fixed or churn")]
pub struct UnknownMembershipProfile(pub String);

impl std::str::FromStr for MembershipProfile {
    type Err = UnknownMembershipProfile;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MembershipProfile::ALL
            .into_iter()
            .find(|profile| profile.name() == s)
            .ok_or_else(|| UnknownMembershipProfile(s.to_string()))
    }
}

impl std::fmt::Display for MembershipProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How long the faulty part of a run lasts, before the quiet period in
/// which liveness is checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// This many milliseconds of simulated time.
    Time {
        /// Simulated milliseconds.
        ms: u64,
    },
    /// This many world steps (events handled).
    Steps(u64),
}

/// The options of one run. [`SimOptions::new`] gives the defaults of `skiff sim`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOptions {
    /// The seed of the world's generator; the same seed and options replay
    /// the same run.
    pub seed: u64,
    /// Cluster size, 1 to 9: the first voters.
    pub nodes: usize,
    /// Whether the membership changes during the run; with churn the world
    /// also holds spare nodes beyond the first `nodes` (`world/membership.rs`).
    pub membership: MembershipProfile,
    /// Length of the faulty part of the run.
    pub limit: Limit,
    /// The named profile the rates came from (for reports and replay commands).
    pub profile: FaultProfile,
    /// The fault rates in force (the profile's, possibly overridden).
    pub faults: FaultRates,
    /// Number of clients submitting appends and reads.
    pub clients: usize,
    /// The share of client requests that are linearizable reads (0 to 1);
    /// the rest are appends. Reads go through the core's ReadIndex (on the
    /// leader, or on a follower through the leader's read index).
    pub read_share: f64,
    /// Lease reads on every node (`Config::lease_read_margin_ms`): a
    /// leader answers a read from its lease, without a round of
    /// heartbeats, until an election timeout less this margin after its
    /// last confirmed round. Needs CheckQuorum; off (`None`) by default.
    pub lease_read_margin_ms: Option<u64>,
    /// How long, after faults stop, a new append may take to commit.
    pub liveness_bound_ms: u64,
    /// The machines' base election timeout.
    pub election_timeout_ms: u64,
    /// The machines' heartbeat interval.
    pub heartbeat_interval_ms: u64,
    /// Storage faults on top of the profile's.
    pub disk_faults: DiskFaults,
    /// Forged messages that no correct peer sends, which every node must
    /// reject (`world/forgery.rs`).
    pub forgeries: bool,
    /// Snapshot policy: each node takes a snapshot every this many applied
    /// entries (0: never); `None` draws a policy per seed, from never to
    /// every 5 entries (`world/snapshots.rs`).
    pub compact_every: Option<u64>,
    /// PreVote on every node (`Config::pre_vote`).
    pub pre_vote: bool,
    /// CheckQuorum and the leader's lease on every node (`Config::check_quorum`).
    pub check_quorum: bool,
    /// The driver's stall limit: a disk stall longer than this makes the
    /// driver step `Event::StorageStalled` into its machine when the stall
    /// ends (`world/stall.rs`).
    pub stall_limit_ms: u64,
}

impl SimOptions {
    /// Defaults: 5 nodes, 3 clients of which 30% of requests are reads,
    /// 5 minutes of simulated chaos, 10 s liveness bound.
    pub fn new(seed: u64) -> SimOptions {
        SimOptions {
            seed,
            nodes: 5,
            membership: MembershipProfile::Fixed,
            limit: Limit::Time { ms: 300_000 },
            profile: FaultProfile::Chaos,
            faults: FaultProfile::Chaos.rates(),
            clients: 3,
            read_share: READ_SHARE_DEFAULT,
            lease_read_margin_ms: None,
            liveness_bound_ms: 10_000,
            election_timeout_ms: 150,
            heartbeat_interval_ms: 50,
            disk_faults: DiskFaults::Off,
            forgeries: false,
            compact_every: None,
            pre_vote: true,
            check_quorum: true,
            stall_limit_ms: 1_000,
        }
    }

    /// The same options with another profile and its rates.
    pub fn with_profile(mut self, profile: FaultProfile) -> SimOptions {
        self.profile = profile;
        self.faults = profile.rates();
        self
    }

    /// Checks the options, naming the first problem.
    pub fn validate(&self) -> Result<(), OptionsError> {
        if !(1..=NODES_MAX).contains(&self.nodes) {
            return Err(OptionsError::Nodes(self.nodes));
        }
        let probabilities = [
            ("loss", self.faults.loss),
            ("duplicate", self.faults.duplicate),
            ("latency tail", self.faults.latency_tail),
            ("read", self.read_share),
        ];
        for (name, value) in probabilities {
            if !(0.0..=1.0).contains(&value) {
                return Err(OptionsError::Probability(name, value));
            }
        }
        let rates = [
            ("partition rate", self.faults.partition_rate),
            ("crash rate", self.faults.crash_rate),
            ("stall rate", self.faults.stall_rate),
            ("transfer rate", self.faults.transfer_rate),
        ];
        for (name, value) in rates {
            if !(0.0..=1000.0).contains(&value) {
                return Err(OptionsError::Rate(name, value));
            }
        }
        if self.election_timeout_ms == 0 || self.heartbeat_interval_ms >= self.election_timeout_ms {
            return Err(OptionsError::Timing);
        }
        if let Some(margin_ms) = self.lease_read_margin_ms {
            if !self.check_quorum {
                return Err(OptionsError::LeaseReadsWithoutCheckQuorum);
            }
            if margin_ms >= self.election_timeout_ms {
                return Err(OptionsError::LeaseMargin(
                    margin_ms,
                    self.election_timeout_ms,
                ));
            }
        }
        if self.liveness_bound_ms == 0 {
            return Err(OptionsError::LivenessBound);
        }
        if self.stall_limit_ms == 0 {
            return Err(OptionsError::StallLimit);
        }
        Ok(())
    }
}

/// Options a run refuses.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum OptionsError {
    /// The cluster size is outside 1..=9.
    #[error("--nodes must be between 1 and {NODES_MAX}, not {0}")]
    Nodes(usize),
    /// A probability outside [0, 1].
    #[error("the {0} probability must be between 0 and 1, not {1}")]
    Probability(&'static str, f64),
    /// A negative or absurd rate.
    #[error("the {0} must be between 0 and 1000 per second, not {1}")]
    Rate(&'static str, f64),
    /// The heartbeat is not below the election timeout.
    #[error("the heartbeat interval must be below the (positive) election timeout")]
    Timing,
    /// Lease reads asked for without CheckQuorum, which they stand on.
    #[error("lease reads need CheckQuorum (--check-quorum on)")]
    LeaseReadsWithoutCheckQuorum,
    /// A lease margin that leaves no lease.
    #[error("the lease read margin ({0} ms) must be below the election timeout ({1} ms)")]
    LeaseMargin(u64, u64),
    /// A zero liveness bound.
    #[error("the liveness bound must be positive")]
    LivenessBound,
    /// A zero stall limit.
    #[error("the stall limit must be positive")]
    StallLimit,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_problems_are_named() {
        assert_eq!(SimOptions::new(1).validate(), Ok(()));
        let mut options = SimOptions::new(1);
        options.nodes = 10;
        assert_eq!(options.validate(), Err(OptionsError::Nodes(10)));
        let mut options = SimOptions::new(1);
        options.faults.loss = 1.5;
        assert!(matches!(
            options.validate(),
            Err(OptionsError::Probability("loss", _))
        ));
        let mut options = SimOptions::new(1);
        options.faults.crash_rate = -1.0;
        assert!(matches!(options.validate(), Err(OptionsError::Rate(..))));
        let mut options = SimOptions::new(1);
        options.read_share = 1.1;
        assert!(matches!(
            options.validate(),
            Err(OptionsError::Probability("read", _))
        ));
        let mut options = SimOptions::new(1);
        options.lease_read_margin_ms = Some(20);
        assert_eq!(options.validate(), Ok(()));
        options.lease_read_margin_ms = Some(150);
        assert_eq!(options.validate(), Err(OptionsError::LeaseMargin(150, 150)));
        options.lease_read_margin_ms = Some(20);
        options.check_quorum = false;
        assert_eq!(
            options.validate(),
            Err(OptionsError::LeaseReadsWithoutCheckQuorum)
        );
    }
}
