//! How one machine is set up, and the checks that keep a bad set-up out.

use crate::types::NodeId;
use std::fmt;

/// The configuration of one Raft machine.
///
/// Build one with [`Config::new`] and adjust fields as needed; the machine
/// checks it with [`Config::validate`] before it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// This node's id; must be one of `peers` unless `join` is set.
    pub id: NodeId,
    /// The cluster's first voting membership, this node included: the
    /// configuration in force until a membership entry in the log or a
    /// snapshot replaces it (`machine/membership.rs`).
    pub peers: Vec<NodeId>,
    /// This node starts outside the cluster, to be added by a membership
    /// change: `peers` are the cluster's first voters, without this node
    /// even if they name it (a machine that lost its disk rejoins under
    /// its old id, and must not vote with an empty log). Until a
    /// configuration it receives makes it a voter, it stands for no
    /// election and counts for nothing.
    pub join: bool,
    /// Base election timeout: each election alarm is drawn uniformly from
    /// `[election_timeout_ms, 2 * election_timeout_ms)`.
    pub election_timeout_ms: u64,
    /// How often a leader sends heartbeats; must be below the election timeout.
    pub heartbeat_interval_ms: u64,
    /// Seed of the generator that draws election timeouts; the only randomness.
    /// Nodes of one cluster need different seeds, or they draw the same
    /// timeouts and split every vote: [`Config::new`] derives it from `id`.
    pub seed: u64,
    /// The most AppendEntriesReq messages with entries in flight to one follower.
    pub inflight_max: usize,
    /// The most entries in one AppendEntriesReq.
    pub entries_per_message_max: usize,
    /// The most entry data bytes in one AppendEntriesReq (one larger entry is
    /// still sent, alone).
    pub bytes_per_message_max: usize,
    /// A message whose term is more than this far above the node's own is
    /// refused and reported ([`Rejection::TermTooFarAhead`](crate::Rejection))
    /// instead of adopted: one message from a buggy or hostile peer must not
    /// move every node's term to the end of the term space for good. `None`
    /// adopts any newer term, as the paper does.
    pub term_lead_max: Option<u64>,
    /// PreVote (Ongaro's thesis, 9.6): before it raises its term, a node
    /// whose election alarm fired asks the others whether they would vote
    /// for it ([`Message::PreVoteReq`](crate::Message::PreVoteReq)), and
    /// stands only if a majority would. A node cut off from the majority
    /// then cannot inflate its term and depose a healthy leader on its
    /// return.
    pub pre_vote: bool,
    /// CheckQuorum: a leader that has not heard from a majority within an
    /// election timeout steps down, so that clients stop waiting on a
    /// leader that can commit nothing. With it on, a follower that heard
    /// from a live leader within the election timeout also refuses a
    /// (pre-)vote of a newer term without adopting that term (the thesis'
    /// 4.2.3): a node that cannot reach the leader cannot depose it.
    pub check_quorum: bool,
    /// Lease reads (the thesis, 6.4.1), off (`None`) by default. With
    /// `Some(margin)`, a leader whose heartbeat round a majority confirmed
    /// less than `election_timeout_ms - margin` ms before a read (by the
    /// read's [`Event::Read`](crate::Event::Read) clock) answers it at once,
    /// without a round of its own. This assumes that no node's clock runs
    /// faster than the leader's by more than `margin` over an election
    /// timeout; a clock that jumps or a faster-running follower can let a
    /// deposed leader answer a stale read. (A node restored from disk with
    /// this on grants no vote until its first alarm, so restarts keep the
    /// lease.) Needs
    /// [`check_quorum`](Config::check_quorum), whose followers refuse votes
    /// for an election timeout after they hear the leader: that refusal is
    /// what the lease stands on.
    pub lease_read_margin_ms: Option<u64>,
}

/// The default of [`Config::term_lead_max`]: far more elections than a
/// node partitioned for hours could start, far fewer than the term space.
pub const TERM_LEAD_MAX_DEFAULT: u64 = 100_000;

impl Config {
    /// Defaults for node `id` in a cluster of `peers`: election timeout 150 ms,
    /// heartbeat 50 ms, window of 8 messages of up to 256 entries or 1 MiB,
    /// terms at most [`TERM_LEAD_MAX_DEFAULT`] ahead, PreVote and
    /// CheckQuorum on, and a seed derived from `id`, so that every node of a
    /// cluster draws its own election timeouts. A driver that wants runs to differ from
    /// one start to the next sets `seed` from a random source itself.
    pub fn new(id: NodeId, peers: impl IntoIterator<Item = NodeId>) -> Config {
        Config {
            id,
            peers: peers.into_iter().collect(),
            join: false,
            election_timeout_ms: 150,
            heartbeat_interval_ms: 50,
            seed: default_seed(id),
            inflight_max: 8,
            entries_per_message_max: 256,
            bytes_per_message_max: 1 << 20,
            term_lead_max: Some(TERM_LEAD_MAX_DEFAULT),
            pre_vote: true,
            check_quorum: true,
            lease_read_margin_ms: None,
        }
    }

    /// Checks the configuration, naming the first problem found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.peers.is_empty() {
            return Err(ConfigError::NoPeers);
        }
        let mut sorted = self.peers.clone();
        sorted.sort();
        if let Some(pair) = sorted.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(ConfigError::DuplicatePeer(pair[0]));
        }
        if self.join && self.peers.iter().all(|peer| *peer == self.id) {
            return Err(ConfigError::NothingToJoin(self.id));
        }
        if !self.join && !self.peers.contains(&self.id) {
            return Err(ConfigError::IdNotAmongPeers {
                id: self.id,
                peers: self.peers.clone(),
            });
        }
        if self.election_timeout_ms == 0 {
            return Err(ConfigError::Zero("election_timeout_ms"));
        }
        if self.heartbeat_interval_ms == 0 {
            return Err(ConfigError::Zero("heartbeat_interval_ms"));
        }
        if self.heartbeat_interval_ms >= self.election_timeout_ms {
            return Err(ConfigError::HeartbeatNotBelowElection {
                heartbeat_ms: self.heartbeat_interval_ms,
                election_ms: self.election_timeout_ms,
            });
        }
        if self.election_timeout_ms > u64::MAX / 2 {
            return Err(ConfigError::ElectionTimeoutTooLarge(
                self.election_timeout_ms,
            ));
        }
        if self.inflight_max == 0 {
            return Err(ConfigError::Zero("inflight_max"));
        }
        if self.entries_per_message_max == 0 {
            return Err(ConfigError::Zero("entries_per_message_max"));
        }
        if self.bytes_per_message_max == 0 {
            return Err(ConfigError::Zero("bytes_per_message_max"));
        }
        if self.term_lead_max == Some(0) {
            return Err(ConfigError::Zero("term_lead_max"));
        }
        if let Some(margin_ms) = self.lease_read_margin_ms {
            if !self.check_quorum {
                return Err(ConfigError::LeaseReadWithoutCheckQuorum);
            }
            if margin_ms >= self.election_timeout_ms {
                return Err(ConfigError::LeaseMarginNotBelowElection {
                    margin_ms,
                    election_ms: self.election_timeout_ms,
                });
            }
        }
        Ok(())
    }

    /// The number of votes or replicas that make a majority.
    pub fn quorum(&self) -> usize {
        self.peers.len() / 2 + 1
    }
}

/// The default seed of node `id`: distinct ids give distinct seeds, and the
/// generator's own mixing spreads even neighbouring ones apart.
fn default_seed(id: NodeId) -> u64 {
    id.0
}

/// A configuration the machine refuses to start with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// `peers` is empty; a cluster has at least one member.
    NoPeers,
    /// A node id appears twice in `peers`.
    DuplicatePeer(NodeId),
    /// `id` is not one of `peers`.
    IdNotAmongPeers {
        /// The configured id.
        id: NodeId,
        /// The configured membership.
        peers: Vec<NodeId>,
    },
    /// `join` is set, but `peers` names no node other than this one.
    NothingToJoin(NodeId),
    /// A field that must be positive is zero.
    Zero(&'static str),
    /// The heartbeat interval is not below the election timeout, so followers
    /// would start elections under a healthy leader.
    HeartbeatNotBelowElection {
        /// The configured heartbeat interval.
        heartbeat_ms: u64,
        /// The configured election timeout.
        election_ms: u64,
    },
    /// The election timeout is so large that twice it overflows.
    ElectionTimeoutTooLarge(u64),
    /// Lease reads are on but CheckQuorum is off: followers would not
    /// refuse votes while the leader's lease runs.
    LeaseReadWithoutCheckQuorum,
    /// The lease reads' clock-drift margin leaves no lease.
    LeaseMarginNotBelowElection {
        /// The configured margin.
        margin_ms: u64,
        /// The configured election timeout.
        election_ms: u64,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::NoPeers => write!(f, "peers is empty: list every member, this node included"),
            ConfigError::DuplicatePeer(id) => write!(f, "node {id} appears twice in peers"),
            ConfigError::IdNotAmongPeers { id, peers } => {
                let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
                write!(f, "node id {id} is not among the peers [{}]", list.join(","))
            }
            ConfigError::NothingToJoin(id) => write!(
                f,
                "node {id} joins a cluster, but its peers name no other node"
            ),
            ConfigError::Zero(field) => write!(f, "{field} must be greater than zero"),
            ConfigError::HeartbeatNotBelowElection {
                heartbeat_ms,
                election_ms,
            } => write!(
                f,
                "heartbeat interval ({heartbeat_ms} ms) must be below the election timeout ({election_ms} ms)"
            ),
            ConfigError::ElectionTimeoutTooLarge(ms) => {
                write!(f, "election timeout of {ms} ms is too large")
            }
            ConfigError::LeaseReadWithoutCheckQuorum => write!(
                f,
                "lease reads need check_quorum on: the lease stands on followers refusing votes while they hear the leader"
            ),
            ConfigError::LeaseMarginNotBelowElection {
                margin_ms,
                election_ms,
            } => write!(
                f,
                "the lease reads' clock-drift margin ({margin_ms} ms) must be below the election timeout ({election_ms} ms)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn three() -> Config {
        Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)])
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(three().validate(), Ok(()));
        assert_eq!(three().quorum(), 2);
        assert_eq!(Config::new(NodeId(1), [NodeId(1)]).quorum(), 1);
    }

    #[test]
    fn nodes_of_one_cluster_draw_different_timeouts() {
        let peers = [NodeId(1), NodeId(2), NodeId(3)];
        let first_alarms: Vec<u64> = peers
            .iter()
            .map(|id| {
                let mut machine = crate::Machine::new(Config::new(*id, peers)).unwrap();
                let mut actions = Vec::new();
                machine.start(&mut actions);
                match actions.as_slice() {
                    [crate::Action::Alarm { ms }] => *ms,
                    other => panic!("start emitted {other:?}"),
                }
            })
            .collect();
        assert_ne!(first_alarms[0], first_alarms[1], "{first_alarms:?}");
        assert_ne!(first_alarms[1], first_alarms[2], "{first_alarms:?}");
        assert_ne!(first_alarms[0], first_alarms[2], "{first_alarms:?}");
    }

    #[test]
    fn each_problem_is_named() {
        let mut c = three();
        c.id = NodeId(4);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::IdNotAmongPeers { .. })
        ));
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("not among the peers [1,2,3]"));

        let mut c = three();
        c.peers.push(NodeId(2));
        assert_eq!(c.validate(), Err(ConfigError::DuplicatePeer(NodeId(2))));

        let mut c = three();
        c.peers.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoPeers));

        let mut c = three();
        c.election_timeout_ms = 0;
        assert_eq!(c.validate(), Err(ConfigError::Zero("election_timeout_ms")));

        let mut c = three();
        c.heartbeat_interval_ms = 200;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::HeartbeatNotBelowElection { .. })
        ));

        let mut c = three();
        c.inflight_max = 0;
        assert_eq!(c.validate(), Err(ConfigError::Zero("inflight_max")));

        let mut c = three();
        c.lease_read_margin_ms = Some(10);
        assert_eq!(c.validate(), Ok(()));
        c.check_quorum = false;
        assert_eq!(c.validate(), Err(ConfigError::LeaseReadWithoutCheckQuorum));

        let mut c = three();
        c.lease_read_margin_ms = Some(150);
        assert!(matches!(
            c.validate(),
            Err(ConfigError::LeaseMarginNotBelowElection { .. })
        ));
    }
}
