//! The messages Raft peers exchange: Figure 2's four, InstallSnapshot
//! (section 7) and PreVote (the thesis, 9.6).

use crate::entries::Entries;
use crate::membership::Membership;
use crate::types::{LogIndex, NodeId, SnapshotMeta, Term};

/// A message between two peers.
///
/// Deliberately not `#[non_exhaustive]`: every driver's transport must carry
/// every message, so a message added by a later version has to break its
/// encoding `match` rather than be dropped by a wildcard arm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A leader replicates entries, or sends a heartbeat when `entries` is empty.
    AppendEntriesReq(AppendEntriesReq),
    /// A follower's answer to an [`AppendEntriesReq`].
    AppendEntriesResp(AppendEntriesResp),
    /// A candidate asks for a vote.
    VoteReq(VoteReq),
    /// A peer's answer to a [`VoteReq`].
    VoteResp(VoteResp),
    /// A node whose election alarm fired asks whether the receiver would
    /// vote for it in `term` (its own term plus one), before it raises its
    /// own term (PreVote, [`Config::pre_vote`](crate::Config)). Changes
    /// nothing on the receiver: no term is adopted, no vote recorded.
    PreVoteReq(VoteReq),
    /// A peer's answer to a [`Message::PreVoteReq`]: granted at the
    /// request's term, or refused at the responder's own term.
    PreVoteResp(VoteResp),
    /// A leader hands a follower its snapshot, because the entries the
    /// follower needs are gone from its log (section 7). The message names
    /// the snapshot; the drivers carry its data alongside, and the
    /// follower's driver delivers the message only once the whole snapshot
    /// has arrived and is durable.
    InstallSnapshotReq(InstallSnapshotReq),
    /// A follower's answer to an [`InstallSnapshotReq`].
    InstallSnapshotResp(InstallSnapshotResp),
    /// A follower asks its leader for a read index, to answer a
    /// linearizable read itself (a follower read, the thesis 6.4).
    ReadIndexReq(ReadIndexReq),
    /// The leader's answer to a [`ReadIndexReq`].
    ReadIndexResp(ReadIndexResp),
    /// A leader handing its office over (the thesis, 3.10) tells its
    /// target, whose log it has brought up to date, to stand for election
    /// at once, without waiting for its alarm or asking for pre-votes.
    TimeoutNow(TimeoutNow),
}

impl Message {
    /// The sender's term, carried by every message.
    pub fn term(&self) -> Term {
        match self {
            Message::AppendEntriesReq(m) => m.term,
            Message::AppendEntriesResp(m) => m.term,
            Message::VoteReq(m) => m.term,
            Message::VoteResp(m) => m.term,
            Message::PreVoteReq(m) => m.term,
            Message::PreVoteResp(m) => m.term,
            Message::InstallSnapshotReq(m) => m.term,
            Message::InstallSnapshotResp(m) => m.term,
            Message::ReadIndexReq(m) => m.term,
            Message::ReadIndexResp(m) => m.term,
            Message::TimeoutNow(m) => m.term,
        }
    }
}

/// Sent by the leader to replicate entries and to assert its leadership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendEntriesReq {
    /// The leader's term.
    pub term: Term,
    /// The leader, so that followers can redirect clients.
    pub leader: NodeId,
    /// The index of the entry just before `entries`.
    pub prev_index: LogIndex,
    /// The term of the entry at `prev_index` (0 when `prev_index` is 0).
    pub prev_term: Term,
    /// Entries to store from `prev_index + 1`; empty for a heartbeat.
    /// Shared, not copied, between the followers a leader sends them to.
    pub entries: Entries,
    /// The leader's commit index.
    pub commit: LogIndex,
    /// The leader's latest round of read confirmation (0 before any): an
    /// answer that echoes it shows the follower still took this node for
    /// its leader after the round began (`machine/read_index.rs`).
    pub read_round: u64,
    /// The leader's epoch for this follower's progress: the index of the
    /// configuration entry that last made it a member, 0 if it was one
    /// when the leader took office. Answers echo it, so that an answer sent
    /// before a node was removed and added again in the same term cannot
    /// move the new progress (`machine/membership.rs`).
    pub epoch: u64,
}

/// A follower's answer to an [`AppendEntriesReq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendEntriesResp {
    /// The responder's current term, for the leader to update itself.
    pub term: Term,
    /// Whether the follower's log matched at `prev_index` and now holds the entries.
    pub success: bool,
    /// On success, the last index known to match the leader's log. On failure,
    /// a hint: the highest index at which the follower's log may still match,
    /// so that the leader skips a whole conflicting term in one round trip.
    pub index: LogIndex,
    /// The `read_round` of the request this answers.
    pub read_round: u64,
    /// The `epoch` of the request this answers.
    pub epoch: u64,
}

/// Sent by a candidate to ask for a vote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteReq {
    /// The candidate's term.
    pub term: Term,
    /// The candidate asking for the vote.
    pub candidate: NodeId,
    /// The index of the candidate's last entry.
    pub last_index: LogIndex,
    /// The term of the candidate's last entry.
    pub last_term: Term,
    /// The candidate stands because its leader handed over
    /// ([`Message::TimeoutNow`]): a receiver that hears that leader grants
    /// the vote anyway, since the leader itself asked for the election.
    /// Always `false` in a [`Message::PreVoteReq`].
    pub transfer: bool,
}

/// A peer's answer to a [`VoteReq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VoteResp {
    /// The responder's current term.
    pub term: Term,
    /// Whether the responder voted for the candidate.
    pub granted: bool,
}

/// Sent by a leader whose log no longer holds the entries a follower needs:
/// install my snapshot instead (the paper's InstallSnapshot RPC, without
/// its data, which the drivers stream beside the message).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstallSnapshotReq {
    /// The leader's term.
    pub term: Term,
    /// The leader, so that followers can redirect clients.
    pub leader: NodeId,
    /// The snapshot: the last index it covers and that entry's term.
    pub snapshot: SnapshotMeta,
    /// The configuration in force at the snapshot's index.
    pub membership: Membership,
    /// As [`AppendEntriesReq::epoch`].
    pub epoch: u64,
}

/// A follower's answer to an [`InstallSnapshotReq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InstallSnapshotResp {
    /// The responder's current term, for the leader to update itself.
    pub term: Term,
    /// The last index known to match the leader's log: the snapshot's
    /// index, whether the follower installed it, kept the log that already
    /// matched it, or had committed past it already.
    pub index: LogIndex,
    /// The `epoch` of the request this answers.
    pub epoch: u64,
}

/// A follower's request for a read index, on behalf of one read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadIndexReq {
    /// The follower's current term.
    pub term: Term,
    /// The follower's name for the request, echoed in the answer.
    pub request: u64,
}

/// The leader's answer to a [`ReadIndexReq`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadIndexResp {
    /// The responder's current term.
    pub term: Term,
    /// The request answered.
    pub request: u64,
    /// Whether the responder, as leader of `term`, confirmed the read.
    pub success: bool,
    /// On success, the read index: the follower answers the read once it
    /// has applied through it. 0 on failure.
    pub index: LogIndex,
}

/// Sent by a leader to the follower it hands its office to
/// ([`Event::TransferLeadership`](crate::Event::TransferLeadership)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeoutNow {
    /// The leader's term.
    pub term: Term,
}
