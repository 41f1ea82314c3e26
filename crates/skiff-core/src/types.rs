//! The paper's nouns as newtypes, so that a term, an index and a node id
//! cannot be mixed up by accident.

use bytes::Bytes;
use std::fmt;

/// A Raft term: a logical clock that only moves forward.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Term(pub u64);

/// The position of an entry in the log. Index 1 is the first entry; index 0
/// means "before the first entry" and always matches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LogIndex(pub u64);

/// The identity of one member of the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

/// The driver's name for one linearizable read it asked for with
/// [`Event::Read`](crate::Event::Read); the answer names it again. The
/// machine never interprets it, and ids need not be unique across nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReadId(pub u64);

impl LogIndex {
    /// The index before the first entry.
    pub const ZERO: LogIndex = LogIndex(0);

    /// The next index, saturating at `u64::MAX` (a log that long cannot exist).
    pub fn next(self) -> LogIndex {
        LogIndex(self.0.saturating_add(1))
    }

    /// The previous index, saturating at zero.
    pub fn prev(self) -> LogIndex {
        LogIndex(self.0.saturating_sub(1))
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for LogIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One log entry: the term of the leader that created it, what kind of
/// entry it is, and its data.
///
/// `data` is a [`Bytes`], so cloning an entry to send it to several peers
/// shares the buffer instead of copying it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The term in which a leader appended this entry.
    pub term: Term,
    /// Whose entry it is: the layer above's, or Raft's own membership.
    pub kind: EntryKind,
    /// For a [`EntryKind::Normal`] entry, what the layer above asked to
    /// replicate (empty for a leader's no-op); for a
    /// [`EntryKind::Membership`] entry, the new configuration as
    /// [`Membership::encode`](crate::Membership::encode) wrote it.
    pub data: Bytes,
}

/// What a log entry holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// Data of the layer above, or a leader's empty no-op.
    #[default]
    Normal,
    /// A new cluster configuration (`machine/membership.rs`): it takes
    /// effect on every node as soon as the node's log holds it, committed
    /// or not.
    Membership,
}

impl Entry {
    /// An entry of `term` carrying the layer above's `data`.
    pub fn new(term: Term, data: impl Into<Bytes>) -> Entry {
        Entry {
            term,
            kind: EntryKind::Normal,
            data: data.into(),
        }
    }

    /// An entry of `term` that makes `membership` the configuration.
    pub fn membership(term: Term, membership: &crate::Membership) -> Entry {
        Entry {
            term,
            kind: EntryKind::Membership,
            data: membership.encode(),
        }
    }

    /// Whether the entry holds a configuration rather than the layer
    /// above's data.
    pub fn is_membership(&self) -> bool {
        self.kind == EntryKind::Membership
    }
}

/// The state a node must persist before it answers anyone: its current term
/// and the candidate it voted for in that term (Figure 2, "persistent state").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HardState {
    /// The latest term this node has seen.
    pub term: Term,
    /// The candidate that received this node's vote in `term`, if any.
    pub voted_for: Option<NodeId>,
}

/// Which snapshot: the index and term of the last entry whose effect it
/// holds (the paper's "last included index" and "last included term").
///
/// The machine never holds a snapshot's bytes; drivers name a snapshot by
/// this pair and keep its data themselves. The default, `0:0`, is the empty
/// state before index 1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SnapshotMeta {
    /// The last index the snapshot covers.
    pub index: LogIndex,
    /// The term of the entry at `index`.
    pub term: Term,
}

impl fmt::Display for SnapshotMeta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.index, self.term)
    }
}

/// The role a node plays in its current term.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Role {
    /// Follows a leader and votes; starts an election when its alarm fires.
    Follower,
    /// Asks the others whether they would vote for it (PreVote), without
    /// raising its term; becomes candidate if a majority would.
    PreCandidate,
    /// Has voted for itself and asks the others for votes.
    Candidate,
    /// Accepts appends and replicates its log to the followers.
    Leader,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Follower => "follower",
            Role::PreCandidate => "pre-candidate",
            Role::Candidate => "candidate",
            Role::Leader => "leader",
        })
    }
}
