//! Forged messages (with `--forge`): a member whose key is in the wrong
//! hands, or whose code is broken, sends what no correct peer sends.
//!
//! At random moments of the faulty part, the world picks a running node,
//! looks at its state (term, role, the leader it knows, its vote, its log's
//! end) and hands it a message crafted to break exactly one of the checks
//! of `skiff-core`'s `machine/defence.rs`, in the name of another member
//! (or of a node outside the cluster). Only forgeries the core claims to
//! catch are made: a forged message that is indistinguishable from a real
//! leader's (a newer term, well formed) is a Byzantine fault no Raft
//! survives, and is not injected.
//!
//! The checkers then demand that the batch rejects the forgery with the
//! expected reason and changes neither term, vote nor log
//! (`checker::forgery_refused`); every other rejection in the run is still
//! a failure (`checker::no_false_rejection`). The refusals the node sends
//! back go to the named member through the network like any message.

use super::batch::{kind, Input};
use super::{Phase, World, WorldEvent};
use crate::trace::{hash_event, Time};
use skiff_core::{
    AppendEntriesReq, AppendEntriesResp, Entries, Entry, Event, LogIndex, Message, NodeId, Role,
    Term, VoteReq, VoteResp,
};

/// The mean gap between forgeries, in microseconds of simulated time.
const MEAN_GAP_US: u64 = 200_000;

/// A forged message and the rejection it must meet.
struct Forgery {
    from: NodeId,
    message: Message,
    reason: &'static str,
}

impl World {
    /// Schedules the next forgery, if forgeries are on.
    pub(super) fn schedule_forgery(&mut self) {
        if self.options.forgeries && self.phase == Phase::Faulty {
            let at = self.now + self.rng.below(2 * MEAN_GAP_US) + 1;
            self.queue.push(at, WorldEvent::Forge);
        }
    }

    /// Hands one forged message to a running node.
    pub(super) fn forge(&mut self) {
        self.schedule_forgery();
        let running: Vec<usize> = (0..self.nodes.len())
            // A node blocked on a stalled disk steps nothing (`stall.rs`).
            .filter(|&index| {
                self.nodes[index].machine.is_some() && self.nodes[index].stall.is_none()
            })
            .collect();
        if running.is_empty() {
            return;
        }
        let index = running[self.rng.index(running.len())];
        let Some(forgery) = self.craft(index) else {
            return;
        };
        let Forgery {
            from,
            message,
            reason,
        } = forgery;
        hash_event(self.trace.hasher(), kind::FORGE, self.now, index, from.0);
        if self.trace.wants_text() {
            let (now, id) = (Time(self.now), self.nodes[index].id);
            self.trace.line(format_args!(
                "{now} on {id} recv from={from} {message}  # forged: must be rejected as {reason}"
            ));
        }
        self.stats.forgeries += 1;
        self.checkers.expect_rejection(reason);
        // No term to adopt: the forgery checker demands the term unchanged.
        self.run_batch(index, Input::Step(Event::Receive { from, message }), None);
    }

    /// The epoch node index `leader` last sent `to` in an append request
    /// of `term` (0 if none: a follower present when it took office).
    fn epoch_sent(&self, leader: usize, to: NodeId, term: Term) -> u64 {
        match self.epochs_sent.get(&(leader, to)) {
            Some((sent_in, epoch)) if *sent_in == term => *epoch,
            _ => 0,
        }
    }

    /// Remembers the epoch of an append request node index `leader` sends
    /// `to`, for forged answers (`craft`).
    pub(super) fn note_epoch_sent(&mut self, leader: usize, to: NodeId, req: &AppendEntriesReq) {
        if self.options.forgeries {
            self.epochs_sent.insert((leader, to), (req.term, req.epoch));
        }
    }

    /// A forgery that node index `index`, as it stands, must reject.
    fn craft(&mut self, index: usize) -> Option<Forgery> {
        let machine = self.nodes[index].machine.as_ref()?;
        let me = machine.id();
        let term = machine.term();
        let (role, leader, vote) = (machine.role(), machine.leader(), machine.voted_for());
        let last_index = machine.last_index();
        let lead_max = machine.config().term_lead_max;
        let tracked = machine.membership().clone();
        let size = self.nodes.len() as u64;
        let others: Vec<NodeId> = (1..=size).map(NodeId).filter(|id| *id != me).collect();
        if others.is_empty() {
            return None;
        }
        let from = others[self.rng.index(others.len())];
        let heartbeat = |term: Term, leader: NodeId| AppendEntriesReq {
            term,
            leader,
            prev_index: LogIndex(0),
            prev_term: Term(0),
            entries: Entries::new(),
            commit: LogIndex(0),
            read_round: 0,
            epoch: 0,
        };
        let vote_req = |term: Term, candidate: NodeId, last_term: Term| VoteReq {
            term,
            candidate,
            last_index,
            last_term,
            transfer: false,
        };
        // Every kind this node's state allows, then one of them.
        let mut kinds = vec![0, 1, 2, 3, 4, 5];
        if role == Role::Leader {
            kinds.push(6); // a second leader's request
                           // A success for entries never sent, in the name of a member: a
                           // leader does not judge answers from nodes it does not track.
            if tracked.contains(from) {
                kinds.push(7);
            }
        } else if leader.is_some_and(|known| others.iter().any(|other| *other != known)) {
            kinds.push(6); // a request from a member other than the known leader
        }
        if vote != Some(me) {
            kinds.push(8); // a vote nobody asked for
        }
        let forgery = match kinds[self.rng.index(kinds.len())] {
            0 => {
                // A message that claims to come from its receiver. (A
                // sender outside the receiver's configuration is no longer
                // suspect: a member it has not heard of yet may send.)
                let message = Message::VoteReq(vote_req(term, me, Term(0)));
                Forgery {
                    from: me,
                    message,
                    reason: "NotAPeer",
                }
            }
            1 => {
                let lead_max = lead_max?;
                let ahead = lead_max
                    .saturating_add(1)
                    .saturating_add(self.rng.below(1 << 20));
                let far = Term(term.0.saturating_add(ahead));
                if far.0 - term.0 <= lead_max {
                    return None; // the term space ends too close to this term
                }
                let message = if self.rng.below(2) == 0 {
                    Message::VoteReq(vote_req(far, from, Term(0)))
                } else {
                    Message::AppendEntriesReq(heartbeat(far, from))
                };
                Forgery {
                    from,
                    message,
                    reason: "TermTooFarAhead",
                }
            }
            2 => {
                let named = if self.rng.below(2) == 0 {
                    me
                } else {
                    NodeId(size + 1)
                };
                let message = Message::AppendEntriesReq(heartbeat(term, named));
                Forgery {
                    from,
                    message,
                    reason: "LeaderNotSender",
                }
            }
            3 => {
                // An entry of a term past the request's own.
                let mut req = heartbeat(term, from);
                req.entries = Entries::from(Entry::new(Term(term.0.saturating_add(1)), "forged"));
                if term.0 == u64::MAX {
                    return None;
                }
                Forgery {
                    from,
                    message: Message::AppendEntriesReq(req),
                    reason: "MalformedEntries",
                }
            }
            4 => {
                let message = Message::VoteReq(vote_req(term, me, Term(0)));
                Forgery {
                    from,
                    message,
                    reason: "CandidateNotSender",
                }
            }
            5 => {
                let later = Term(term.0.checked_add(1)?);
                let message = Message::VoteReq(vote_req(term, from, later));
                Forgery {
                    from,
                    message,
                    reason: "VoteLogAfterTerm",
                }
            }
            6 => {
                // A member other than the leader of this term claims it.
                let known = if role == Role::Leader { me } else { leader? };
                let claimants: Vec<NodeId> =
                    others.iter().copied().filter(|o| *o != known).collect();
                let claimant = *claimants.get(self.rng.index(claimants.len().max(1)))?;
                let message = Message::AppendEntriesReq(heartbeat(term, claimant));
                Forgery {
                    from: claimant,
                    message,
                    reason: "SecondLeader",
                }
            }
            7 => {
                // Stamped with the epoch the leader last sent this member
                // in its term: an answer of another epoch is dropped as a
                // stale one from a former membership (re-added nodes),
                // unjudged, and the forgery would prove nothing.
                let epoch = self.epoch_sent(index, from, term);
                let beyond = LogIndex(last_index.0.saturating_add(1 + self.rng.below(100)));
                let message = Message::AppendEntriesResp(AppendEntriesResp {
                    term,
                    success: true,
                    index: beyond,
                    read_round: 0,
                    epoch,
                });
                Forgery {
                    from,
                    message,
                    reason: "UnsentEntriesAcknowledged",
                }
            }
            _ => {
                let message = Message::VoteResp(VoteResp {
                    term,
                    granted: true,
                });
                Forgery {
                    from,
                    message,
                    reason: "VoteNeverAsked",
                }
            }
        };
        Some(forgery)
    }
}
