//! Leadership transfer (the thesis, 3.10): a leader hands its office to a
//! chosen follower, for a rolling upgrade or to move leadership off a
//! machine, without waiting for an election timeout.
//!
//! 1. [`Event::TransferLeadership`](crate::Event::TransferLeadership) to a
//!    peer: the leader stops taking appends (they fail with
//!    [`CommitError::TransferInProgress`]), so that the target can catch
//!    up with a log that no longer grows, and replicates to it at once.
//! 2. When the target's match index reaches the leader's last index, the
//!    leader sends it [`TimeoutNow`], and sends it again at each heartbeat
//!    in case it was lost. From the first one, the leader answers no read
//!    from its lease: the target's election is about to override the
//!    followers' leases, on which the leader's rests.
//! 3. The target stands at once, skipping PreVote, and its `VoteReq`
//!    carries `transfer`: voters that still hear the leader grant it
//!    anyway (the leader's lease exists to keep out disruptive candidates,
//!    and this one was sent by the leader itself). Its log is as up to
//!    date as the leader's, so it wins unless a message is lost.
//! 4. The leader steps down on the target's `VoteReq` (a newer term) and
//!    answers the transfer `Ok`. If it still leads an election timeout
//!    after the request, it gives up ([`TransferError::TimedOut`]) and
//!    takes appends again; if it stops leading otherwise first, the
//!    transfer ends with [`TransferError::LeadershipLost`].
//!
//! Safety is untouched: the target wins only an ordinary election, by an
//! ordinary majority, with an up-to-date log.

use super::{Machine, RoleState};
use crate::action::{Action, CommitError, TransferError};
use crate::message::{Message, TimeoutNow};
use crate::types::{NodeId, Term};
use bytes::Bytes;

/// A transfer under way at the leader.
#[derive(Clone, Copy, Debug)]
pub(super) struct Transfer {
    /// The target.
    to: NodeId,
    /// The term the leader leads, which the transfer belongs to.
    term: Term,
    /// The leader's heartbeat tick at which it gives up.
    deadline_tick: u64,
    /// `TimeoutNow` has been sent: the target may be standing.
    told: bool,
}

impl Transfer {
    /// The target.
    pub(super) fn to(&self) -> NodeId {
        self.to
    }
}

impl Machine {
    /// The peer this leader is handing its office to, while a transfer is
    /// under way ([`Event::TransferLeadership`](crate::Event::TransferLeadership)):
    /// appends are refused until it ends.
    pub fn transfer_target(&self) -> Option<NodeId> {
        self.transfer.map(|t| t.to)
    }
}

// The leader's side.
impl Machine {
    /// `Event::TransferLeadership`: starts a transfer to `to`, or answers
    /// at once why not.
    pub(super) fn handle_transfer_leadership(&mut self, to: NodeId) {
        let RoleState::Leader { ticks, .. } = self.role else {
            let leader = self.leader;
            self.end_transfer(to, Err(TransferError::NotLeader { leader }));
            return;
        };
        if let Some(transfer) = self.transfer {
            let under_way = TransferError::InProgress { to: transfer.to };
            self.end_transfer(to, Err(under_way));
            return;
        }
        if to == self.config.id {
            self.end_transfer(to, Ok(())); // it leads already
            return;
        }
        if !self.is_voter_peer(to) {
            self.end_transfer(to, Err(TransferError::UnknownPeer));
            return;
        }
        // An election timeout from now, in heartbeats, rounded up.
        let timeout = self.config.election_timeout_ms;
        let heartbeat = self.config.heartbeat_interval_ms;
        let deadline_tick = ticks + timeout.div_ceil(heartbeat);
        self.transfer = Some(Transfer {
            to,
            term: self.hard_state.term,
            deadline_tick,
            told: false,
        });
        self.advance_transfer(true);
    }

    /// Whether appends are refused because a transfer is under way; if so,
    /// refuses `data`'s.
    pub(super) fn refuse_append_in_transfer(&mut self, data: &Bytes) -> bool {
        let Some(transfer) = self.transfer else {
            return false;
        };
        self.deferred.push(Action::Commit {
            data: data.clone(),
            result: Err(CommitError::TransferInProgress { to: transfer.to }),
        });
        true
    }

    /// Sends `TimeoutNow` once the target has every entry, otherwise
    /// sends it what it lacks. Called when the transfer starts (`probe`:
    /// with nothing new to send, a heartbeat asks where the target
    /// stands), when the target answers, and at each heartbeat.
    pub(super) fn advance_transfer(&mut self, probe: bool) {
        let Some(transfer) = self.transfer else {
            return;
        };
        let last_index = self.log.last_index();
        let Some((mut replicator, followers)) = self.replicator() else {
            return;
        };
        let Some((_, progress)) = followers.iter_mut().find(|(peer, _)| *peer == transfer.to)
        else {
            return;
        };
        if progress.match_index < last_index {
            if !replicator.send_pending(transfer.to, progress) && probe {
                replicator.send_heartbeat(transfer.to, progress);
            }
            return;
        }
        let term = transfer.term;
        self.send(transfer.to, Message::TimeoutNow(TimeoutNow { term }));
        if !transfer.told {
            self.end_read_lease(); // `read_index.rs`
        }
        self.transfer = Some(Transfer {
            told: true,
            ..transfer
        });
    }

    /// At a heartbeat: gives up once the deadline has passed, otherwise
    /// pushes the transfer on.
    pub(super) fn transfer_tick(&mut self) {
        let (Some(transfer), RoleState::Leader { ticks, .. }) = (self.transfer, &self.role) else {
            return;
        };
        if *ticks >= transfer.deadline_tick {
            self.transfer = None;
            self.end_transfer(transfer.to, Err(TransferError::TimedOut));
        } else {
            self.advance_transfer(false);
        }
    }

    /// At the end of every step: a transfer whose leader no longer leads
    /// its term has ended, handed over if `TimeoutNow` went out and a
    /// newer term began, otherwise lost.
    pub(super) fn settle_transfer(&mut self) {
        let Some(transfer) = self.transfer else {
            return;
        };
        let leads =
            matches!(self.role, RoleState::Leader { .. }) && self.hard_state.term == transfer.term;
        if leads {
            return;
        }
        self.transfer = None;
        let handed_over = transfer.told && self.hard_state.term > transfer.term;
        let result = if handed_over {
            Ok(())
        } else {
            Err(TransferError::LeadershipLost)
        };
        self.end_transfer(transfer.to, result);
    }

    fn end_transfer(&mut self, to: NodeId, result: Result<(), TransferError>) {
        self.deferred.push(Action::TransferEnded { to, result });
    }
}

// The target's side.
impl Machine {
    /// `TimeoutNow` from the leader: stand at once, without PreVote, with
    /// `transfer` set on the vote requests. Ignored unless it comes from
    /// the leader of this node's term (a newer term was adopted in `step`),
    /// and by a node that may not stand (repairing, stalled disk, not a
    /// voter).
    pub(super) fn handle_timeout_now(
        &mut self,
        from: NodeId,
        req: TimeoutNow,
        actions: &mut Vec<Action>,
    ) {
        let from_leader = req.term == self.hard_state.term && self.leader.is_none_or(|l| l == from);
        if !from_leader
            || !matches!(self.role, RoleState::Follower)
            || self.repairing()
            || self.storage_stalled
            || !self.may_stand()
        // `membership.rs`, rule 4
        {
            return;
        }
        self.stand(true, actions);
    }
}
