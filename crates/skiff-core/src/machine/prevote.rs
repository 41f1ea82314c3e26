//! PreVote (Ongaro's thesis, 9.6): a node stands for election only when a
//! majority would vote for it, so that a node cut off from the others
//! cannot raise its term while away and depose a healthy leader when it
//! returns.
//!
//! # The rules
//!
//! 1. **A node whose election alarm fires becomes a pre-candidate** (with
//!    [`Config::pre_vote`](crate::Config) on): it keeps its term and vote,
//!    forgets the leader, and asks every peer `PreVoteReq` with the term it
//!    would stand in (its own plus one) and its last entry. Its alarm runs
//!    as a candidate's would, and another timeout asks again.
//! 2. **A pre-vote is granted as the real vote would be**, for the term
//!    asked, without anything being recorded: the asked term is newer than
//!    the receiver's (or equal to it, with no vote cast elsewhere and no
//!    leader known), the asker's log is at least as up to date, and the
//!    receiver is not repairing, its disk is not stalled, and it hears no
//!    live leader (`check_quorum.rs`). A grant answers at the asked term; a
//!    refusal at the receiver's own term.
//! 3. **Nothing about a pre-vote moves a term** (`step`): neither the
//!    request nor a grant, whose terms nobody holds yet. A refusal of a
//!    newer term does, as any message: a pre-candidate whose term fell
//!    behind (it was away while others held elections) learns the current
//!    term from the first refusal, and asks again at the term after it.
//!    Without this, a node with the longest log but an old term could never
//!    win, while the nodes of the newest term cannot win without it (etcd's
//!    issue 8243, openraft's 1796).
//! 4. **A majority of grants, its own included, makes it a candidate**
//!    (`election.rs`), which raises the term and asks for real votes.
//!    Grants count only for the term after the pre-candidate's own, so
//!    answers to a round of an older term are ignored.
//!
//! PreVote changes no safety argument: the real election decides, as
//! before. It only keeps elections that cannot succeed from raising terms.

use super::{Machine, RoleState};
use crate::action::Action;
use crate::message::{Message, VoteReq, VoteResp};
use crate::types::{NodeId, Term};

impl Machine {
    /// Rule 1: asks every peer for a pre-vote in the next term.
    pub(super) fn become_pre_candidate(&mut self, actions: &mut Vec<Action>) {
        let Some(term) = self.hard_state.term.0.checked_add(1).map(Term) else {
            // Term space is exhausted (see `become_candidate`).
            self.arm_election_alarm();
            return;
        };
        self.leader = None;
        self.leader_contact = false;
        self.role = RoleState::PreCandidate {
            votes: vec![self.config.id],
        };
        self.arm_election_alarm();
        if self.sole_voter() {
            self.become_candidate(actions);
            return;
        }
        self.ask_every_peer(term, false, Message::PreVoteReq);
    }

    /// Rule 2: answers whether this node would vote for the asker in the
    /// term it asks about. Changes nothing here. Always answers.
    pub(super) fn handle_pre_vote_req(&mut self, from: NodeId, req: VoteReq) {
        let own = self.hard_state.term;
        let term_open = req.term > own
            || (req.term == own
                && self.leader.is_none()
                && self.hard_state.voted_for.is_none_or(|vote| vote == from));
        let granted = term_open
            && req.candidate == from
            && !self.repairing()
            && !self.storage_stalled
            && !self.hears_leader()
            && !self.quiet_after_restart()
            && self.may_vote(req.last_term, req.last_index) // `membership.rs`, rule 6
            && self.log.is_up_to_date(req.last_index, req.last_term);
        if granted {
            let resp = VoteResp {
                term: req.term,
                granted: true,
            };
            self.send(from, Message::PreVoteResp(resp));
        } else {
            self.refuse_pre_vote(from);
        }
    }

    /// Refuses a pre-vote at this node's own term, which teaches an asker
    /// that fell behind the current term (rule 3).
    pub(super) fn refuse_pre_vote(&mut self, from: NodeId) {
        let resp = VoteResp {
            term: self.hard_state.term,
            granted: false,
        };
        self.send(from, Message::PreVoteResp(resp));
    }

    /// Rule 4: counts a grant for the next term; a majority stands. A
    /// refusal of a newer term was adopted in `step`; others change nothing.
    pub(super) fn handle_pre_vote_resp(
        &mut self,
        from: NodeId,
        resp: VoteResp,
        actions: &mut Vec<Action>,
    ) {
        let next = self.hard_state.term.0.checked_add(1).map(Term);
        if !resp.granted || Some(resp.term) != next {
            return;
        }
        let RoleState::PreCandidate { votes } = &mut self.role else {
            return; // no longer asking: a stale grant
        };
        if !votes.contains(&from) {
            votes.push(from);
        }
        // Only the votes of this node's voters count (`membership.rs`).
        let votes = votes.clone();
        if self.voters_among(&votes) >= self.quorum() {
            self.become_candidate(actions);
        }
    }
}
