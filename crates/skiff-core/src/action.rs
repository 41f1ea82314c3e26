//! What the machine asks its driver to do.

use crate::entries::Entries;
use crate::membership::{Membership, MembershipChange, MembershipError};
use crate::message::Message;
use crate::types::{Entry, LogIndex, NodeId, ReadId, SnapshotMeta, Term};
use bytes::Bytes;
use std::fmt;

/// An output of [`Machine::step`](crate::Machine::step). A driver performs the
/// actions of one batch in order; every `StateStore`, `LogStore` and
/// `LogTruncate` of a batch comes before its first `Send` and `Commit`, so that
/// state is durable before anyone hears of it.
///
/// Deliberately not `#[non_exhaustive]`: a driver must perform every kind of
/// action, so a kind added by a later version has to break its `match`
/// rather than fall into a wildcard arm that silently drops it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send `message` to peer `to`. Delivery may fail; the protocol copes.
    Send {
        /// The receiving peer.
        to: NodeId,
        /// The message to deliver.
        message: Message,
    },
    /// Report the outcome of an entry: committed at an index, or refused.
    Commit {
        /// The entry's data.
        data: Bytes,
        /// The index it committed at, or why it never will.
        result: Result<LogIndex, CommitError>,
    },
    /// Deliver [`Event::Timeout`](crate::Event::Timeout) after `ms`
    /// milliseconds, replacing any alarm still pending.
    Alarm {
        /// Milliseconds from now.
        ms: u64,
    },
    /// Durably store `entries` from `index` on, after every entry below it.
    ///
    /// A follower stores the entries of one AppendEntriesReq in one action,
    /// sharing the request's list rather than copying it.
    LogStore {
        /// Where the first entry goes; always one past the durable log's end.
        index: LogIndex,
        /// The entries, never empty, for `index`, `index + 1`, ...
        entries: Entries,
    },
    /// Durably remove the entries at `from` and after.
    LogTruncate {
        /// The first index to remove.
        from: LogIndex,
    },
    /// Durably store the current term and vote.
    StateStore {
        /// The current term.
        term: Term,
        /// The vote cast in `term`, if any.
        voted_for: Option<NodeId>,
    },
    /// The log through `through` is captured in the snapshot of the same
    /// index (see [`Event::SnapshotTaken`](crate::Event::SnapshotTaken)):
    /// the driver may discard those entries from its durable log. Nothing
    /// depends on when it does; until then restarts replay them needlessly.
    LogCompact {
        /// The last index the snapshot covers.
        through: LogIndex,
        /// The configuration in force at `through`, which the driver keeps
        /// with the snapshot: a node restored from it starts with it
        /// ([`StartState::membership`](crate::StartState)).
        membership: Membership,
    },
    /// Durably make `snapshot`, the one the driver received with the
    /// [`InstallSnapshotReq`](crate::InstallSnapshotReq) just stepped, this
    /// node's snapshot, and replace the whole log with it: every entry is
    /// discarded, and the log continues at `snapshot.index + 1`. The
    /// application's state is restored from the snapshot; entries up to
    /// `snapshot.index` are committed and are not reported one by one.
    SnapshotInstall {
        /// The snapshot installed.
        snapshot: SnapshotMeta,
        /// The configuration in force at the snapshot's index, to keep
        /// with it (as for [`Action::LogCompact`]).
        membership: Membership,
    },
    /// A message from `from` was dropped or refused because no correct peer
    /// could have sent it (see [`Rejection`]). There is nothing to perform:
    /// the driver reports it (a log line, a counter), because it means a
    /// buggy or hostile peer, or a disk that lied to one.
    Rejected {
        /// The sender the message claimed.
        from: NodeId,
        /// What was impossible about it.
        reason: Rejection,
    },
    /// This node stopped leading its term for `reason`, without a newer
    /// term to follow. There is nothing to perform: the driver reports it,
    /// because an operator wants to know why leadership moved.
    SteppedDown {
        /// Why it stepped down.
        reason: StepDownReason,
    },
    /// The read `id` ([`Event::Read`](crate::Event::Read)) may be answered
    /// from the application's state once it has applied every entry
    /// through `index`: a state that includes every write committed
    /// before the read was asked for. Not persistence: it can be
    /// performed whenever the driver gets to it.
    ReadReady {
        /// The read.
        id: ReadId,
        /// Apply through here, then answer.
        index: LogIndex,
    },
    /// The read `id` cannot be answered here: the driver may retry, here
    /// or at the leader the error names.
    ReadFailed {
        /// The read.
        id: ReadId,
        /// Why.
        error: ReadError,
    },
    /// The answer to [`Event::TransferLeadership`](crate::Event::TransferLeadership):
    /// `Ok` once this node, having told `to` to stand, has stepped down
    /// into a newer term (`to`'s election; the driver may confirm who
    /// leads now), or why the transfer did not happen.
    TransferEnded {
        /// The transfer's target.
        to: NodeId,
        /// How it ended.
        result: Result<(), TransferError>,
    },
    /// The answer to [`Event::ChangeMembership`](crate::Event::ChangeMembership):
    /// the index at which the change's entry committed, or why it was
    /// refused or lost. Not persistence.
    MembershipChangeEnded {
        /// The change asked for.
        change: MembershipChange,
        /// How it ended.
        result: Result<LogIndex, MembershipError>,
    },
}

/// Why a leadership transfer ([`Event::TransferLeadership`](crate::Event::TransferLeadership))
/// did not happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransferError {
    /// Only the leader can hand over; retry at `leader` when it is known.
    NotLeader {
        /// The leader this node knows, if any.
        leader: Option<NodeId>,
    },
    /// The target is not a voter of the cluster (a learner cannot lead).
    UnknownPeer,
    /// Another transfer, to `to`, is under way; only one runs at a time.
    InProgress {
        /// The target of the transfer under way.
        to: NodeId,
    },
    /// The target did not take office within an election timeout (it may
    /// be down, cut off, or unable to catch up); this node leads on.
    TimedOut,
    /// This node stopped leading before it could hand over (a newer term,
    /// a lost quorum, a stalled disk).
    LeadershipLost,
}

impl fmt::Display for TransferError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransferError::NotLeader { leader: Some(id) } => {
                write!(f, "not the leader; the leader is node {id}")
            }
            TransferError::NotLeader { leader: None } => {
                write!(f, "not the leader; no leader is known")
            }
            TransferError::UnknownPeer => write!(f, "the target is not a voter of the cluster"),
            TransferError::InProgress { to } => {
                write!(f, "a transfer to node {to} is already under way")
            }
            TransferError::TimedOut => {
                write!(
                    f,
                    "the target did not take office within an election timeout"
                )
            }
            TransferError::LeadershipLost => {
                write!(f, "this node stopped leading before it could hand over")
            }
        }
    }
}

impl std::error::Error for TransferError {}

/// Why a read ([`Event::Read`](crate::Event::Read)) failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// No leader could confirm the read: this node knows none, its term or
    /// leader changed while the read waited, or the leader it asked
    /// refused. Retry at `leader` when it is known.
    NotLeader {
        /// The leader this node knows now, if any.
        leader: Option<NodeId>,
    },
    /// Too many reads wait already; retry later.
    Busy,
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotLeader { leader: Some(id) } => {
                write!(f, "not confirmed by a leader; the leader is node {id}")
            }
            ReadError::NotLeader { leader: None } => {
                write!(f, "not confirmed by a leader; no leader is known")
            }
            ReadError::Busy => write!(f, "too many reads are waiting"),
        }
    }
}

/// Why a leader stepped down within its own term.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepDownReason {
    /// CheckQuorum: no majority answered within an election timeout, so the
    /// leader may be cut off and could commit nothing.
    QuorumLost,
    /// The driver reported its storage stalled ([`Event::StorageStalled`](crate::Event::StorageStalled)).
    StorageStalled,
    /// A configuration without this node as a voter committed: it no
    /// longer belongs to the cluster's majorities (`machine/membership.rs`).
    Removed,
}

impl StepDownReason {
    /// The reason's name, as scenarios and logs write it.
    pub fn name(&self) -> &'static str {
        match self {
            StepDownReason::QuorumLost => "QuorumLost",
            StepDownReason::StorageStalled => "StorageStalled",
            StepDownReason::Removed => "Removed",
        }
    }
}

/// Why a peer's message was rejected: what about it no correct peer in its
/// role and term could have produced (`docs/state-machine.md`, "Messages no
/// correct peer sends").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The sender is this node or not a member.
    NotAPeer,
    /// The message's term is more than [`Config::term_lead_max`](crate::Config)
    /// above this node's; it was refused, not adopted.
    TermTooFarAhead {
        /// The message's term.
        term: Term,
    },
    /// An AppendEntriesReq names a leader other than its sender.
    LeaderNotSender,
    /// An AppendEntriesReq whose entries cannot come from a correct leader:
    /// terms that decrease along the log or pass the request's term, a
    /// `prev_term` above the request's term, or indices that reach the last index there is.
    MalformedEntries,
    /// An AppendEntriesReq from a second leader in this node's current term:
    /// this node leads it, or already follows another leader in it.
    SecondLeader {
        /// The leader this node knows for the term.
        known: NodeId,
    },
    /// An AppendEntriesResp acknowledging entries past anything this leader
    /// sent to that follower.
    UnsentEntriesAcknowledged {
        /// The index acknowledged.
        index: LogIndex,
    },
    /// An InstallSnapshotReq no correct leader sends: a snapshot of a term
    /// after the request's, of a term but no entry (index 0), or at the
    /// last index there is (no log reaches it).
    MalformedSnapshot,
    /// A VoteReq naming a candidate other than its sender.
    CandidateNotSender,
    /// A VoteReq whose last log term is above its own term.
    VoteLogAfterTerm,
    /// A granted VoteResp for a term in which this node never stood.
    VoteNeverAsked,
    /// An AppendEntriesResp of the leader's term echoing a read round the
    /// leader never began: it would confirm reads that no round covered.
    UnsentReadRound {
        /// The round echoed.
        round: u64,
    },
}

impl Action {
    /// For a `LogStore`, each of its entries with the index it goes to;
    /// nothing for any other action.
    pub fn stored_entries(&self) -> impl Iterator<Item = (LogIndex, &Entry)> + '_ {
        let (first, entries): (LogIndex, &[Entry]) = match self {
            Action::LogStore { index, entries } => (*index, entries),
            _ => (LogIndex::ZERO, &[]),
        };
        entries
            .iter()
            .enumerate()
            .map(move |(offset, entry)| (LogIndex(first.0 + offset as u64), entry))
    }

    /// Whether the action changes durable state (`StateStore`, `LogStore`,
    /// `LogTruncate`, `SnapshotInstall`), as opposed to talking to the
    /// world. `LogCompact` is not: it only permits the driver to forget.
    pub fn is_persistence(&self) -> bool {
        matches!(
            self,
            Action::StateStore { .. }
                | Action::LogStore { .. }
                | Action::LogTruncate { .. }
                | Action::SnapshotInstall { .. }
        )
    }
}

/// Why an appended entry will not be committed by this node's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommitError {
    /// This node is not the leader; retry at `leader` when it is known.
    NotLeader {
        /// The leader of this node's current term, if known.
        leader: Option<NodeId>,
    },
    /// The entry this node appended as leader at `index` in `term` will never
    /// commit: a different entry has committed at that index. Reported only
    /// then, not when a later leader merely truncates it from this node's
    /// log (another node may still hold it and commit it), so a client that
    /// retries after `Overwritten` never sees its data applied twice.
    Overwritten {
        /// Where the entry had been appended.
        index: LogIndex,
        /// The term in which it was appended; with `index`, it names the
        /// entry uniquely (two entries this node appended may share an index).
        term: Term,
    },
    /// The entry this node appended as leader at `index` in `term` was
    /// covered by a snapshot installed from a later leader before this node
    /// learned its fate: it may or may not have committed. A client must
    /// find out from the application's state before it retries.
    OutcomeUnknown {
        /// Where the entry had been appended.
        index: LogIndex,
        /// The term in which it was appended.
        term: Term,
    },
    /// The leader is handing its office to `to`
    /// ([`Event::TransferLeadership`](crate::Event::TransferLeadership)) and
    /// takes no entries meanwhile; retry shortly, at `to` if it took office.
    TransferInProgress {
        /// The transfer's target.
        to: NodeId,
    },
}

impl Rejection {
    /// The reason's name, as the scenario format renders it.
    pub fn name(&self) -> &'static str {
        match self {
            Rejection::NotAPeer => "NotAPeer",
            Rejection::TermTooFarAhead { .. } => "TermTooFarAhead",
            Rejection::LeaderNotSender => "LeaderNotSender",
            Rejection::MalformedEntries => "MalformedEntries",
            Rejection::SecondLeader { .. } => "SecondLeader",
            Rejection::UnsentEntriesAcknowledged { .. } => "UnsentEntriesAcknowledged",
            Rejection::MalformedSnapshot => "MalformedSnapshot",
            Rejection::CandidateNotSender => "CandidateNotSender",
            Rejection::VoteLogAfterTerm => "VoteLogAfterTerm",
            Rejection::VoteNeverAsked => "VoteNeverAsked",
            Rejection::UnsentReadRound { .. } => "UnsentReadRound",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::NotAPeer => write!(f, "the sender is not a peer"),
            Rejection::TermTooFarAhead { term } => {
                write!(f, "term {term} is too far ahead of this node's")
            }
            Rejection::LeaderNotSender => {
                write!(f, "AppendEntriesReq names a leader other than its sender")
            }
            Rejection::MalformedEntries => write!(
                f,
                "AppendEntriesReq entries no correct leader sends (terms out of order or past the request's)"
            ),
            Rejection::SecondLeader { known } => write!(
                f,
                "AppendEntriesReq from a second leader in a term whose leader is node {known}"
            ),
            Rejection::UnsentEntriesAcknowledged { index } => write!(
                f,
                "AppendEntriesResp acknowledges index {index}, past anything sent to it"
            ),
            Rejection::MalformedSnapshot => write!(
                f,
                "InstallSnapshotReq for a snapshot no correct leader holds (a term after the request's)"
            ),
            Rejection::CandidateNotSender => {
                write!(f, "VoteReq names a candidate other than its sender")
            }
            Rejection::VoteLogAfterTerm => {
                write!(f, "VoteReq claims a log entry of a term after its own")
            }
            Rejection::VoteNeverAsked => {
                write!(f, "granted VoteResp for a term in which this node never stood")
            }
            Rejection::UnsentReadRound { round } => write!(
                f,
                "AppendEntriesResp echoes read round {round}, which this leader never began"
            ),
        }
    }
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::NotLeader { leader: Some(id) } => {
                write!(f, "not the leader; the leader is node {id}")
            }
            CommitError::NotLeader { leader: None } => {
                write!(f, "not the leader; no leader is known")
            }
            CommitError::Overwritten { index, term } => write!(
                f,
                "entry of term {term} at index {index} lost its place to another committed entry"
            ),
            CommitError::OutcomeUnknown { index, term } => write!(
                f,
                "entry of term {term} at index {index} was covered by an installed snapshot \
                 before its outcome was known; it may or may not have committed"
            ),
            CommitError::TransferInProgress { to } => write!(
                f,
                "the leader is handing its office to node {to} and takes no entries meanwhile"
            ),
        }
    }
}

impl std::error::Error for CommitError {}
