//! Timeouts, votes and role changes (sections 5.2 and 5.4.1).
//!
//! With PreVote on, a timeout first makes the node a pre-candidate
//! (`prevote.rs`), which stands here only once a majority would vote for
//! it; with CheckQuorum, a leader's heartbeat alarm first checks that a
//! majority still answers, and a follower's first alarm after hearing from
//! its leader only ends the leader's lease (`check_quorum.rs`).

use super::{Machine, RoleState};
use crate::action::Action;
use crate::message::{Message, VoteReq, VoteResp};
use crate::types::{HardState, NodeId, Term};
use bytes::Bytes;

// Role changes.
impl Machine {
    /// Steps into `term` as a follower with no vote and no known leader, or,
    /// in the same term, gives up candidacy or leadership. A node that stops
    /// being candidate or leader needs an election alarm again.
    pub(super) fn become_follower(&mut self, term: Term) {
        debug_assert!(term >= self.hard_state.term);
        if term > self.hard_state.term {
            self.hard_state = HardState {
                term,
                voted_for: None,
            };
            self.hard_state_dirty = true;
            self.leader = None;
            self.leader_contact = false;
        }
        if !matches!(self.role, RoleState::Follower) {
            self.role = RoleState::Follower;
            self.arm_election_alarm();
        }
    }

    /// Starts an election for the next term, voting for itself.
    pub(super) fn become_candidate(&mut self, actions: &mut Vec<Action>) {
        self.stand(false, actions);
    }

    /// Starts an election for the next term, voting for itself; `transfer`:
    /// because the leader handed over (`transfer.rs`).
    pub(super) fn stand(&mut self, transfer: bool, actions: &mut Vec<Action>) {
        let Some(term) = self.hard_state.term.0.checked_add(1).map(Term) else {
            // Term space is exhausted (only absurd peers get here): stay put
            // rather than reuse a term in which this node may have voted.
            self.arm_election_alarm();
            return;
        };
        self.hard_state = HardState {
            term,
            voted_for: Some(self.config.id),
        };
        self.hard_state_dirty = true;
        self.leader = None;
        self.leader_contact = false;
        self.role = RoleState::Candidate {
            votes: vec![self.config.id],
        };
        self.arm_election_alarm();
        if self.sole_voter() {
            self.become_leader(actions);
            return;
        }
        self.ask_every_peer(term, transfer, Message::VoteReq);
    }

    /// Asks every other voter for its vote in `term`, as a `VoteReq` or a
    /// `PreVoteReq` (`wrap`), naming this node's last entry.
    pub(super) fn ask_every_peer(
        &mut self,
        term: Term,
        transfer: bool,
        wrap: fn(VoteReq) -> Message,
    ) {
        let req = VoteReq {
            term,
            candidate: self.config.id,
            last_index: self.log.last_index(),
            last_term: self.log.last_term(),
            transfer,
        };
        for peer in self.other_voters() {
            self.send(peer, wrap(req));
        }
    }

    /// Takes office: optimistic progress for every follower, an empty entry
    /// of the new term (section 8) sent at once, and heartbeats from now on.
    fn become_leader(&mut self, actions: &mut Vec<Action>) {
        debug_assert_eq!(self.hard_state.voted_for, Some(self.config.id));
        self.role = self.leader_role_state();
        self.leader = Some(self.config.id);
        self.arm_heartbeat_alarm();
        self.append_as_leader(Bytes::new(), actions);
    }
}

// Event handlers.
impl Machine {
    pub(super) fn handle_timeout(&mut self, actions: &mut Vec<Action>) {
        self.end_quiet_after_restart(); // `read_index.rs`
        match self.role {
            RoleState::Leader { .. } => self.leader_tick(),
            // The leader's lease ended; the election timeout runs on.
            _ if self.lease_alarm => self.end_lease(),
            // A repairing node (`repair.rs`, rule 2), one whose disk
            // hangs (`stall.rs`) and one that may not stand as a member
            // (`membership.rs`, rule 4) stand for no election.
            _ if self.repairing() || self.storage_stalled || !self.may_stand() => {
                self.leader_contact = false;
                self.arm_election_alarm();
            }
            _ if self.config.pre_vote => self.become_pre_candidate(actions),
            _ => self.become_candidate(actions),
        }
    }

    /// Grants the vote when the term is current, this node has not voted
    /// for someone else in it, and the candidate's log is at least as up to
    /// date as its own. Always answers.
    pub(super) fn handle_vote_req(&mut self, from: NodeId, req: VoteReq) {
        let granted = req.term == self.hard_state.term
            && !self.repairing() // `repair.rs`, rule 2
            && !self.storage_stalled // `stall.rs`
            // `check_quorum.rs`: its term has a live leader, unless that
            // leader handed over (`transfer.rs`)
            && (!self.hears_leader() || req.transfer)
            && !self.quiet_after_restart() // `read_index.rs`: leases it granted may run
            && self.may_vote(req.last_term, req.last_index) // `membership.rs`, rule 6
            && req.candidate == from
            && matches!(self.role, RoleState::Follower)
            && self.hard_state.voted_for.is_none_or(|vote| vote == from)
            && self.log.is_up_to_date(req.last_index, req.last_term);
        if granted {
            if self.hard_state.voted_for.is_none() {
                self.hard_state.voted_for = Some(from);
                self.hard_state_dirty = true;
            }
            self.arm_election_alarm();
        }
        let resp = VoteResp {
            term: self.hard_state.term,
            granted,
        };
        self.send(from, Message::VoteResp(resp));
    }

    /// Counts a granted vote of the current term; a majority wins.
    pub(super) fn handle_vote_resp(
        &mut self,
        from: NodeId,
        resp: VoteResp,
        actions: &mut Vec<Action>,
    ) {
        if resp.term != self.hard_state.term || !resp.granted {
            return;
        }
        if self.vote_never_asked(from, &resp) {
            return;
        }
        let RoleState::Candidate { votes } = &mut self.role else {
            return;
        };
        if !votes.contains(&from) {
            votes.push(from);
        }
        // Only the votes of this node's voters count (`membership.rs`).
        let votes = votes.clone();
        if self.voters_among(&votes) >= self.quorum() {
            self.become_leader(actions);
        }
    }
}
