//! CheckQuorum and the leader's lease: a leader that cannot reach a
//! majority stops leading, and a node that still hears a live leader
//! does not help anyone depose it.
//!
//! # A leader checks its majority
//!
//! With [`Config::check_quorum`](crate::Config) on, a leader counts its
//! heartbeat alarms (`ticks`) and notes, for each follower, the tick at
//! which it last stepped an answer from it (`Progress::heard_tick`). At each
//! heartbeat alarm it steps down, in its own term, unless a majority (itself
//! included) answered within the last election timeout; it reports
//! [`StepDownReason::QuorumLost`]. An answer stepped before tick `n`, heard
//! at tick `k`, came at most `(n - k) * heartbeat` ago and at least
//! `(n - k - 1) * heartbeat` ago: the leader steps down only once the second
//! reaches the election timeout, so it never steps down while a majority
//! answers, and does within an election timeout and two heartbeats of
//! losing it. Clients of a leader cut off from the majority then hear
//! "not leader" instead of waiting for commits that cannot come.
//!
//! # A follower holds the leader's lease
//!
//! With PreVote or CheckQuorum on, a follower that takes a request from its
//! leader holds the leader's lease for a whole election timeout (its alarm
//! is set to exactly that); when that alarm fires, the lease ends and the
//! alarm is set for the random rest of the election timeout, so elections
//! start as late as before. While it holds a lease (and a leader, with
//! CheckQuorum on, while it leads) a node hears a live leader: it refuses
//! every vote and pre-vote, and refuses a vote of a newer term without
//! adopting that term (the thesis, 4.2.3). A node that cannot reach the leader, or that
//! returns from a partition, then cannot depose a leader that a majority
//! still hears. Without CheckQuorum a leader does not know it is heard, so
//! it claims no lease of its own.
//!
//! The lease is the follower's own clock, so it ends no later than the
//! leader's check: a majority that stops hearing the leader elects another
//! within the same bound as without it.

use super::{Machine, RoleState};
use crate::action::{Action, StepDownReason};
use crate::message::{Message, VoteResp};
use crate::types::NodeId;

// The leader's side.
impl Machine {
    /// A leader's heartbeat alarm: steps down if the majority is lost,
    /// otherwise sends heartbeats.
    pub(super) fn leader_tick(&mut self) {
        // The leader's clock, for CheckQuorum and a transfer's deadline.
        if let RoleState::Leader { ticks, .. } = &mut self.role {
            *ticks += 1;
        }
        if self.config.check_quorum && self.quorum_lost_at_tick() {
            self.step_down(StepDownReason::QuorumLost);
        } else {
            self.broadcast_heartbeat();
            self.transfer_tick(); // `transfer.rs`
        }
    }

    /// At a tick of the leader's clock: whether fewer than a majority,
    /// itself included, answered within the last election timeout.
    fn quorum_lost_at_tick(&mut self) -> bool {
        let heartbeat = self.config.heartbeat_interval_ms;
        let timeout = self.config.election_timeout_ms;
        let quorum = self.quorum();
        let leader_votes = usize::from(self.is_voter());
        let RoleState::Leader { followers, ticks } = &self.role else {
            return false;
        };
        let now = *ticks;
        let heard = followers
            .iter()
            .filter(|(_, progress)| progress.voter)
            .filter(|(_, progress)| {
                let surely_silent_for = now
                    .saturating_sub(progress.heard_tick)
                    .saturating_sub(1)
                    .saturating_mul(heartbeat);
                surely_silent_for < timeout
            })
            .count();
        heard + leader_votes < quorum
    }

    /// Notes that the follower at `position` answered, at the current tick.
    pub(super) fn heard_from(&mut self, position: usize) {
        if let RoleState::Leader { followers, ticks } = &mut self.role {
            followers[position].1.heard_tick = *ticks;
        }
    }

    /// Stops leading the current term for `reason`, and reports it.
    pub(super) fn step_down(&mut self, reason: StepDownReason) {
        debug_assert!(matches!(self.role, RoleState::Leader { .. }));
        self.leader = None;
        self.become_follower(self.hard_state.term);
        self.deferred.push(Action::SteppedDown { reason });
    }
}

// The follower's side.
impl Machine {
    /// Whether this node hears a live leader: it follows a leader it heard
    /// from within the last election timeout (with PreVote or CheckQuorum
    /// on), or it leads and checks its majority (with CheckQuorum on).
    /// Such a node refuses every vote and pre-vote, and does not adopt the
    /// term of a vote request newer than its own.
    pub fn hears_leader(&self) -> bool {
        self.leader_contact
            || (self.config.check_quorum && matches!(self.role, RoleState::Leader { .. }))
    }

    /// A request from the leader: the lease runs a whole election timeout
    /// from now.
    pub(super) fn renew_lease(&mut self) {
        debug_assert!(self.lease_enabled());
        self.leader_contact = true;
        self.alarm_ms = Some(self.config.election_timeout_ms);
        self.lease_alarm = true;
    }

    /// The lease alarm fired: no leader was heard for an election timeout.
    /// The election alarm runs for the random rest of its span, so that the
    /// whole wait is drawn from the same span as without a lease.
    pub(super) fn end_lease(&mut self) {
        self.leader_contact = false;
        let span = self.config.election_timeout_ms;
        self.alarm_ms = Some(self.rng.in_span(0, span));
        self.lease_alarm = false;
    }

    /// A vote of a newer term while this node hears a live leader: refused
    /// at this node's own term, which is not moved. `true`: refused, and the
    /// message must not be handled further.
    pub(super) fn vote_refused_in_lease(&mut self, from: NodeId, message: &Message) -> bool {
        let Message::VoteReq(req) = message else {
            return false;
        };
        // A candidate the leader handed over to (`transfer.rs`) is not
        // the disruption the lease keeps out.
        if req.term <= self.hard_state.term || !self.hears_leader() || req.transfer {
            return false;
        }
        let resp = VoteResp {
            term: self.hard_state.term,
            granted: false,
        };
        self.send(from, Message::VoteResp(resp));
        true
    }
}
