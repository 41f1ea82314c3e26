//! The types the node's users see: errors, status, committed entries.

use bytes::Bytes;
use skiff_core::{LogIndex, NodeId, Role, SnapshotMeta, Term};
use std::net::SocketAddr;

pub use crate::address_book::MemberAddresses;

/// The largest entry data a node accepts from [`submit`](crate::NodeHandle::submit).
pub const ENTRY_BYTES_MAX: usize = 1 << 20;

fn leader_text(leader: &Option<NodeId>) -> String {
    match leader {
        Some(id) => format!("the leader is node {id}"),
        None => "no leader is known".to_string(),
    }
}

/// Why a submission did not commit, or may not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// This node is not the leader; submit to `leader` when it is known.
    #[error("not the leader; {}", leader_text(.leader))]
    NotLeader {
        /// The leader of this node's current term, if known.
        leader: Option<NodeId>,
    },
    /// The entry was appended at `index` but a later leader replaced it: it
    /// will never commit.
    #[error("the entry at index {index} was overwritten by a later leader")]
    Overwritten {
        /// Where the entry had been appended.
        index: LogIndex,
    },
    /// The data is larger than [`ENTRY_BYTES_MAX`].
    #[error("entry data of {length} bytes exceeds the limit of {ENTRY_BYTES_MAX}")]
    TooLarge {
        /// The data's length.
        length: usize,
    },
    /// Empty data is reserved for the entries a leader appends by itself.
    #[error("empty data is reserved for no-op entries")]
    Empty,
    /// Too many submissions are waiting for their outcome; retry later.
    #[error("too many submissions are waiting; retry later")]
    Busy,
    /// The entry was appended at `index`, then this node installed a
    /// leader's snapshot that covers that index: whether this entry or
    /// another committed there is unknown.
    #[error("the entry at index {index} is covered by a snapshot from the leader; it may or may not have committed")]
    OutcomeUnknown {
        /// Where the entry had been appended.
        index: LogIndex,
    },
    /// The node stopped before the outcome was known: the entry may or may
    /// not commit.
    #[error("the node stopped before the outcome was known")]
    Stopped,
    /// The leader is handing its office to `to` and takes no entries
    /// meanwhile (a transfer lasts at most an election timeout); nothing
    /// was appended, so the submission may simply be retried.
    #[error("the leader is handing its office to node {to}; retry shortly")]
    TransferInProgress {
        /// The transfer's target.
        to: NodeId,
    },
}

/// Why [`NodeHandle::transfer_leadership`](crate::NodeHandle::transfer_leadership)
/// did not hand leadership over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransferLeaderError {
    /// The Raft core refused or gave up (see its reason).
    #[error("{0}")]
    Refused(skiff_core::TransferError),
    /// The node stopped before the transfer ended.
    #[error("the node stopped before the transfer ended")]
    Stopped,
}

/// Why [`NodeHandle::change_membership`](crate::NodeHandle::change_membership)
/// did not change the membership, or may not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChangeMembershipError {
    /// The Raft core refused the change, or it did not take effect (see
    /// its reason: `NotLeader { leader }`, `ChangeInProgress`,
    /// `LastVoter`, `Overwritten`, `OutcomeUnknown`, ...).
    #[error("{0}")]
    Refused(skiff_core::MembershipError),
    /// Adding a learner needs its peer and client addresses, which the
    /// configuration records for every member.
    #[error("adding a learner needs its peer and client addresses")]
    AddressesRequired,
    /// The node stopped before the change ended: it may or may not commit.
    #[error("the node stopped before the membership change ended")]
    Stopped,
}

/// The configuration in force on a node (its latest, committed or not),
/// with every member's addresses. See
/// [`NodeHandle::membership`](crate::NodeHandle::membership).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MembershipView {
    /// The voters in id order, with their addresses from the
    /// configuration's address book.
    pub voters: Vec<(NodeId, MemberAddresses)>,
    /// The learners in id order, with their addresses.
    pub learners: Vec<(NodeId, MemberAddresses)>,
    /// Whether the latest configuration has not committed yet.
    pub change_pending: bool,
    /// While this node leads: how many entries each other member lacks of
    /// the leader's log (its last index minus the member's match index),
    /// in id order, refreshed at most every 100 ms. Empty on other nodes.
    pub lag: Vec<(NodeId, u64)>,
}

impl MembershipView {
    /// Whether `id` is a voter or a learner.
    pub fn contains(&self, id: NodeId) -> bool {
        self.voters
            .iter()
            .chain(&self.learners)
            .any(|(member, _)| *member == id)
    }

    /// How far `id` is behind this leader's log, if this node leads and
    /// `id` is another member.
    pub fn lag_of(&self, id: NodeId) -> Option<u64> {
        self.lag
            .iter()
            .find(|(member, _)| *member == id)
            .map(|(_, lag)| *lag)
    }
}

/// What a node is doing, as of its last event-loop turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Its role in the current term.
    pub role: Role,
    /// The current term.
    pub term: Term,
    /// The leader of the current term, when known.
    pub leader: Option<NodeId>,
    /// The candidate this node voted for in the current term, if any (itself
    /// when it stood): with no leader known, the best guess at who will
    /// lead, for servers that redirect clients.
    pub voted_for: Option<NodeId>,
    /// The highest index known to be committed.
    pub commit_index: LogIndex,
    /// The index of the last entry in the log.
    pub last_index: LogIndex,
    /// Whether the node is repairing a log its disk damaged: it then grants
    /// no vote and stands for no election until it has caught up from a
    /// leader elected after the damage (see `Machine::repairing`).
    pub repairing: bool,
    /// Whether a sync has been outstanding past `[storage]
    /// stall_timeout_ms`: the node then leads no more, stands for no
    /// election and grants no vote until the sync returns.
    pub storage_stalled: bool,
    /// The snapshot the log starts after (`0:0` before the first): the
    /// log holds `last_index - snapshot.index` entries.
    pub snapshot: SnapshotMeta,
    /// The last index the node's state machine applied (as of the turn
    /// before); without a state machine, the commit index.
    pub applied_index: LogIndex,
    /// The last time this node learned of a new leader, and why the one
    /// before was lost; `None` until it first learns of one.
    pub last_leader_change: Option<LeaderChange>,
}

/// A new leader this node learned of (see [`Status::last_leader_change`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderChange {
    /// When, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// The new leader's term.
    pub term: Term,
    /// The new leader.
    pub leader: NodeId,
    /// The leader before it, when this node knew one.
    pub previous: Option<NodeId>,
    /// Why the previous leader was lost, as this node saw it:
    /// `election_timeout` (this node heard no leader and stood),
    /// `higher_term` (another node's election), `quorum_lost` or
    /// `storage_stalled` (this node stepped down as leader), `startup`
    /// (the first leader this node learned of).
    pub reason: &'static str,
}

/// Why [`NodeHandle::snapshot_now`](crate::NodeHandle::snapshot_now) took no snapshot.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The node was started without a [`StateMachine`](crate::StateMachine),
    /// so it has no application state to capture.
    #[error("the node runs no state machine, so it has nothing to snapshot")]
    NoStateMachine,
    /// Nothing was applied since the last snapshot.
    #[error("nothing was applied since the snapshot through index {0}")]
    NothingNew(LogIndex),
    /// Writing the snapshot failed.
    #[error("writing the snapshot failed: {0}")]
    Failed(String),
    /// The node stopped first.
    #[error("the node stopped")]
    Stopped,
}

/// One committed entry, as delivered to a [`Subscription`](crate::Subscription).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedEntry {
    /// Where it committed.
    pub index: LogIndex,
    /// The term of the leader that appended it.
    pub term: Term,
    /// Its data; empty for a leader's no-op, a read barrier or a change
    /// of the cluster's membership, which applications skip.
    pub data: Bytes,
}

fn repair_reason(damage: &Option<crate::storage::LogDamage>) -> String {
    match damage {
        Some(damage) => damage.to_string(),
        None => "a repair of its damaged log has not finished".to_string(),
    }
}

/// Why a node did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration is invalid or does not name this node.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The data directory could not be opened or recovered.
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    /// The log is damaged where it may have held entries the node
    /// acknowledged (or a repair of it is unfinished), and the node cannot
    /// repair it: the only node of its cluster has no other copy to catch
    /// up from, and starting from the intact prefix could lose entries.
    #[error(
        "the data directory {dir} needs repair ({}), which a single-node cluster cannot do: \
         no other node holds a copy of the log",
        repair_reason(.damage)
    )]
    CannotRepair {
        /// The data directory.
        dir: std::path::PathBuf,
        /// Where the damage is and how much of the log is intact; `None`
        /// when a repair begun earlier is unfinished.
        damage: Option<crate::storage::LogDamage>,
    },
    /// The recovered state is not one a Raft node can be in.
    #[error("recovered state of {dir} is inconsistent: {reason}")]
    State {
        /// The data directory.
        dir: std::path::PathBuf,
        /// What is wrong, from the state machine.
        reason: skiff_core::StateError,
    },
    /// The peer address could not be bound, or the listener given for it
    /// could not be used.
    #[error("cannot listen for peers on {address}")]
    Bind {
        /// The configured peer address.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The node's thread could not be started.
    #[error("cannot start the event-loop thread: {0}")]
    Thread(std::io::Error),
    /// The state machine could not be restored from the node's snapshot.
    #[error("cannot restore the state machine: {0}")]
    Restore(String),
    /// `cluster.toml`'s nodes disagree with the cluster configuration the
    /// data directory holds (ids, voter or learner, addresses).
    #[error(
        "cluster.toml does not match the cluster's configuration in the data directory {dir}: \
         the data directory holds {data_dir}, but cluster.toml lists {cluster_toml}. \
         `skiff member list` prints the cluster's configuration; update cluster.toml's \
         [[nodes]] to match it (learner = true for a learner)"
    )]
    MembershipMismatch {
        /// The data directory.
        dir: std::path::PathBuf,
        /// The configuration it holds, with its members' addresses.
        data_dir: String,
        /// What `cluster.toml`'s nodes say.
        cluster_toml: String,
    },
}

/// Why a running node stopped on its own.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// Writing or syncing the log or hard state failed. The node stops
    /// rather than run on with state it cannot make durable. The failure
    /// is the source, not repeated here.
    #[error("storage failed")]
    Storage(#[from] crate::storage::StorageError),
    /// The event-loop thread panicked or could not build its runtime.
    #[error("the event loop failed: {0}")]
    EventLoop(String),
    /// The application's state machine cannot go on: its applier ended (it
    /// panicked), or it cannot restore a snapshot.
    #[error("the state machine failed: {0}")]
    StateMachine(String),
}
