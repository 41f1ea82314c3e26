//! Messages no correct peer could have sent: defence in depth against a
//! buggy or compromised member, which authentication does not keep out.
//!
//! Each check names a property every message of a correct peer has. A
//! message without it changes nothing: a request is refused (answered "no"
//! at this node's own term, so that the sender, if it is merely confused,
//! hears the truth), a response is dropped, and either way the machine emits
//! [`Action::Rejected`] for the driver to report. Checks that need no role
//! run before the message's term is adopted, so an impossible message cannot
//! move the term either (`docs/state-machine.md`, "Messages no correct peer
//! sends").

use super::{Machine, RoleState};
use crate::action::{Action, Rejection};
use crate::message::{AppendEntriesReq, Message, VoteReq, VoteResp};
use crate::types::{LogIndex, NodeId, Term};

impl Machine {
    /// The checks that hold in every role. `false`: the message was
    /// rejected (and, if a request, refused) and must not be handled.
    pub(super) fn screen(&mut self, from: NodeId, message: &Message) -> bool {
        // A sender outside this node's configuration is not suspect: a
        // member added by an entry this node has not received yet may lead
        // or stand already (`membership.rs`); peers are authenticated by
        // the transport, not here.
        if from == self.config.id {
            // Nothing can be sent back to oneself.
            self.reject(from, Rejection::NotAPeer);
            return false;
        }
        let problem = match message {
            Message::AppendEntriesReq(req) if req.leader != from => {
                Some(Rejection::LeaderNotSender)
            }
            Message::AppendEntriesReq(req) if !is_well_formed(req) => {
                Some(Rejection::MalformedEntries)
            }
            Message::InstallSnapshotReq(req) if req.leader != from => {
                Some(Rejection::LeaderNotSender)
            }
            Message::InstallSnapshotReq(req)
                if req.snapshot.term > req.term
                    || req.snapshot.index.0 == 0
                    || req.snapshot.index.0 == u64::MAX =>
            {
                Some(Rejection::MalformedSnapshot)
            }
            Message::VoteReq(req) | Message::PreVoteReq(req) if req.candidate != from => {
                Some(Rejection::CandidateNotSender)
            }
            Message::VoteReq(req) | Message::PreVoteReq(req) if req.last_term > req.term => {
                Some(Rejection::VoteLogAfterTerm)
            }
            _ => self.term_too_far_ahead(message.term()),
        };
        match problem {
            Some(reason) => {
                self.reject(from, reason);
                self.refuse(from, message);
                false
            }
            None => true,
        }
    }

    /// A term more than `term_lead_max` above this node's.
    fn term_too_far_ahead(&self, term: Term) -> Option<Rejection> {
        let lead_max = self.config.term_lead_max?;
        let own = self.hard_state.term.0;
        (term.0 > own.saturating_add(lead_max)).then_some(Rejection::TermTooFarAhead { term })
    }

    /// An AppendEntriesReq or InstallSnapshotReq of the current term from a
    /// node other than the term's leader: Election Safety says there is one.
    /// `true`: rejected; the caller refuses it.
    pub(super) fn second_leader(&mut self, from: NodeId) -> bool {
        let known = match self.role {
            RoleState::Leader { .. } => Some(self.config.id),
            _ => self.leader.filter(|leader| *leader != from),
        };
        let Some(known) = known else {
            return false;
        };
        self.reject(from, Rejection::SecondLeader { known });
        true
    }

    /// A success that acknowledges more than the leader ever sent that
    /// follower (`sent_through`): a forged answer would otherwise let the
    /// leader commit entries nobody holds. `true`: rejected.
    pub(super) fn acknowledges_unsent(
        &mut self,
        from: NodeId,
        index: LogIndex,
        sent_through: LogIndex,
    ) -> bool {
        if index <= sent_through {
            return false;
        }
        self.reject(from, Rejection::UnsentEntriesAcknowledged { index });
        true
    }

    /// An answer of this leader's term that echoes a read round it never
    /// began (rounds are numbered per node run and only grow, and answers
    /// of another term were set aside before). `true`: rejected.
    pub(super) fn echoes_unsent_round(&mut self, from: NodeId, round: u64) -> bool {
        if round <= self.reads.round() {
            return false;
        }
        self.reject(from, Rejection::UnsentReadRound { round });
        true
    }

    /// A vote granted for the current term although this node never stood in
    /// it: it sends VoteReqs only after voting for itself. `true`: rejected.
    pub(super) fn vote_never_asked(&mut self, from: NodeId, resp: &VoteResp) -> bool {
        let never_asked = resp.granted
            && resp.term == self.hard_state.term
            && self.hard_state.voted_for != Some(self.config.id);
        if never_asked {
            self.reject(from, Rejection::VoteNeverAsked);
        }
        never_asked
    }

    fn reject(&mut self, from: NodeId, reason: Rejection) {
        self.deferred.push(Action::Rejected { from, reason });
    }

    /// Answers a request "no" at this node's term; responses get nothing.
    /// A refused snapshot is answered as matching nothing (index 0), which
    /// moves no leader's bookkeeping.
    pub(super) fn refuse(&mut self, from: NodeId, message: &Message) {
        match message {
            Message::AppendEntriesReq(req) => {
                self.reply_append(from, false, self.log.last_index(), 0, req.epoch)
            }
            Message::InstallSnapshotReq(req) => self.reply_install(from, LogIndex::ZERO, req.epoch),
            Message::VoteReq(VoteReq { .. }) => {
                let resp = VoteResp {
                    term: self.hard_state.term,
                    granted: false,
                };
                self.send(from, Message::VoteResp(resp));
            }
            Message::PreVoteReq(_) => self.refuse_pre_vote(from),
            Message::ReadIndexReq(req) => self.refuse_read_index(from, req.request),
            Message::AppendEntriesResp(_)
            | Message::VoteResp(_)
            | Message::PreVoteResp(_)
            | Message::InstallSnapshotResp(_)
            | Message::ReadIndexResp(_)
            | Message::TimeoutNow(_) => {}
        }
    }
}

/// Whether a request could have come from a correct leader: terms that do
/// not decrease and do not pass the request's term, and no index overflow.
pub(super) fn is_well_formed(req: &AppendEntriesReq) -> bool {
    let count = req.entries.len() as u64;
    let mut previous = req.prev_term;
    let terms_ordered = req.entries.iter().all(|entry| {
        let ordered = entry.term >= previous;
        previous = entry.term;
        ordered
    });
    // A configuration that does not decode would be stored and never
    // understood (`membership.rs`); such entries are rare, so decoding
    // them here costs nothing on the usual path.
    let configurations_readable = req
        .entries
        .iter()
        .filter(|entry| entry.is_membership())
        .all(|entry| crate::Membership::decode(&entry.data).is_ok());
    req.prev_term <= req.term
        && previous <= req.term
        && terms_ordered
        && configurations_readable
        && (req.prev_index.0 != 0 || req.prev_term == Term(0))
        // The last index must leave room for a next one: no log reaches
        // the end of the index space, and every `next` must exist.
        && req
            .prev_index
            .0
            .checked_add(count)
            .is_some_and(|last| last < u64::MAX)
}
