//! Linearizable reads without log entries: ReadIndex, lease reads and
//! follower reads (the thesis, 6.4).
//!
//! # ReadIndex on the leader
//!
//! A read ([`Event::Read`](crate::Event::Read)) must see every write that
//! committed before it was asked for. The leader's commit index holds them
//! all, provided that (1) the leader knows the commit index of its term,
//! which it does once an entry of its own term has committed (its no-op),
//! and (2) it still leads: no newer leader can have committed anything
//! behind its back. So the leader:
//!
//! 1. holds reads that arrive before its term's first commit (`unready`);
//! 2. records its commit index as the read's index;
//! 3. confirms it still leads with a round of heartbeats. Rounds are
//!    numbered; every `AppendEntriesReq` carries the latest round begun
//!    (`read_round`) and every answer echoes the round of the request it
//!    answers. An answer in the leader's term echoing round `r` shows that
//!    the follower still took this node for its leader after round `r`
//!    began; a majority (the leader included) confirms `r`, and with it
//!    every read that arrived before `r` began. At most one round is in
//!    flight: reads that arrive meanwhile wait for the next, which begins as
//!    soon as this one is confirmed, or at the next heartbeat alarm if its
//!    messages were lost. One round serves every read of its batch;
//! 4. answers [`Action::ReadReady`](crate::Action::ReadReady) with the
//!    recorded index: the driver answers the read once it has applied
//!    through it.
//!
//! # Lease reads
//!
//! With [`Config::lease_read_margin_ms`](crate::Config) set (and
//! CheckQuorum on), a confirmed round also grants a lease: every follower
//! that answered it refuses votes for an election timeout after it heard
//! the round (`check_quorum.rs`), so no other leader can be elected before
//! `begin + election_timeout`, where `begin` is the driver clock when the
//! round began (the largest `now_ms` of a read seen by then, a lower bound
//! of when its messages left). Until `begin + election_timeout - margin` a
//! leader answers a local read at once with its commit index. The margin
//! absorbs clocks that run at different rates; a clock that jumps breaks
//! the assumption, which is why lease reads are off by default. A
//! follower's lease lives in memory, so a node restored from disk with
//! lease reads on grants no (pre-)vote until its first alarm, at least an
//! election timeout after it started (`quiet_after_restart`): a node that
//! answered a round just before it crashed cannot help elect a new leader
//! while the old one may still answer from its lease.
//!
//! # Follower reads
//!
//! A follower that knows its leader asks it for a read index
//! ([`Message::ReadIndexReq`]); the leader treats the request as a read of
//! its own (never from the lease: it has no clock reading for the peer's
//! request) and answers with the index ([`Message::ReadIndexResp`]). The
//! follower answers `ReadReady` with that index: once it has applied
//! through it, its state includes every write committed before the read.
//!
//! The request itself is an acknowledgement: the follower sent it in the
//! leader's term, after its read arrived, so it had not voted in a later
//! term by then; and the leader, which receives it later still in that
//! term, has not either. When those two make a majority (clusters of two
//! or three voters), no leader of a later term can have been elected before
//! the read arrived (its voters would include one of them), and the leader
//! answers at once with its commit index, without a round: a follower read
//! then costs one round trip to the leader. Larger clusters hold the
//! request for a round as above.
//!
//! # Every read is answered
//!
//! The reads a node holds were taken under one term and one leader. At the
//! end of every step, if either changed (a new term, a step-down, an
//! election), every read still held fails with
//! [`ReadError::NotLeader`] naming the leader known now, and a leader's
//! confirmations and lease are forgotten; the peers whose requests it held
//! hear a refusal. A node holds at most [`PENDING_READS_MAX`] reads and
//! refuses more with [`ReadError::Busy`], so neither the layer above nor a
//! peer can make it hold unbounded state.

use super::{Machine, RoleState};
use crate::action::{Action, ReadError};
use crate::message::{Message, ReadIndexReq, ReadIndexResp};
use crate::types::{LogIndex, NodeId, ReadId, Term};
use std::collections::VecDeque;

/// The most reads one node holds at a time, local and peers' together.
pub(crate) const PENDING_READS_MAX: usize = 1 << 16;

/// Who asked for a read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    /// The layer above, through `Event::Read`.
    Local(ReadId),
    /// A follower, through `ReadIndexReq`.
    Peer { from: NodeId, request: u64 },
}

/// A read with its index, waiting for a round to confirm it.
#[derive(Debug)]
struct Waiting {
    origin: Origin,
    index: LogIndex,
    round: u64,
}

/// The reads a node holds, and a leader's rounds and lease.
#[derive(Debug, Default)]
pub(super) struct Reads {
    /// The term and leader the held reads, rounds and lease belong to.
    term: Term,
    leader: Option<NodeId>,
    /// The latest round begun; every AppendEntriesReq carries it. Never
    /// goes back, so answers from an earlier leadership never confirm a
    /// later round (they are of an earlier term anyway).
    round: u64,
    /// The highest round a majority confirmed (or, on taking office, the
    /// last begun before): rounds past it are in flight.
    confirmed: u64,
    /// The driver clock at which each round in flight began.
    began_ms: VecDeque<(u64, u64)>,
    /// Leader: reads waiting for their round, ordered by round.
    waiting: VecDeque<Waiting>,
    /// Leader: reads that arrived while a round was in flight.
    queued: Vec<(Origin, LogIndex)>,
    /// Leader: reads that arrived before an entry of its term committed.
    unready: Vec<Origin>,
    /// Follower: reads whose index it asked its leader for.
    forwarded: Vec<ReadId>,
    /// The largest driver clock seen.
    clock_ms: u64,
    /// Lease reads: local reads before this clock are answered at once.
    lease_until_ms: u64,
    /// Restored from disk with lease reads on, and no alarm fired since:
    /// the node grants no (pre-)vote.
    quiet_after_restart: bool,
    /// Scratch space for the followers' acknowledged rounds, kept to avoid
    /// an allocation per confirmation.
    acked_scratch: Vec<u64>,
}

impl Reads {
    fn held(&self) -> usize {
        self.waiting.len() + self.queued.len() + self.unready.len() + self.forwarded.len()
    }

    /// The round every AppendEntriesReq carries.
    pub(super) fn round(&self) -> u64 {
        self.round
    }
}

// Events.
impl Machine {
    /// Ends the leader's read lease: from now on its reads wait for a
    /// round. A leader handing over (`transfer.rs`) calls this, because its
    /// target's election overrides the followers' leases.
    pub(super) fn end_read_lease(&mut self) {
        self.reads.lease_until_ms = 0;
    }

    /// `Event::Read`: answer from the lease, hold for a round, or ask the
    /// leader.
    pub(super) fn handle_read(&mut self, id: ReadId, now_ms: u64) {
        self.reads.clock_ms = self.reads.clock_ms.max(now_ms);
        self.settle_reads();
        if self.reads.held() >= PENDING_READS_MAX {
            self.answer_read(Origin::Local(id), Err(ReadError::Busy));
            return;
        }
        match (&self.role, self.leader) {
            (RoleState::Leader { .. }, _) => {
                if self.in_read_lease(now_ms) {
                    self.answer_read(Origin::Local(id), Ok(self.commit_index));
                } else {
                    self.read_as_leader(Origin::Local(id));
                }
            }
            (_, Some(leader)) => {
                self.reads.forwarded.push(id);
                let req = ReadIndexReq {
                    term: self.hard_state.term,
                    request: id.0,
                };
                self.send(leader, Message::ReadIndexReq(req));
            }
            (_, None) => {
                self.answer_read(
                    Origin::Local(id),
                    Err(ReadError::NotLeader { leader: None }),
                );
            }
        }
    }

    /// A follower asks for a read index: held like a read of the leader's
    /// own, or refused when this node does not lead the asker's term.
    pub(super) fn handle_read_index_req(&mut self, from: NodeId, req: ReadIndexReq) {
        self.settle_reads();
        let origin = Origin::Peer {
            from,
            request: req.request,
        };
        let leads_its_term =
            req.term == self.hard_state.term && matches!(self.role, RoleState::Leader { .. });
        if !leads_its_term {
            self.answer_read(
                origin,
                Err(ReadError::NotLeader {
                    leader: self.leader,
                }),
            );
        } else if self.quorum() <= 2
            && self.is_voter()
            && self.is_voter_peer(from)
            && self.term_committed()
        {
            // The asker and this leader are a majority (see the module docs).
            self.answer_read(origin, Ok(self.commit_index));
        } else if self.reads.held() >= PENDING_READS_MAX {
            self.answer_read(origin, Err(ReadError::Busy));
        } else {
            self.read_as_leader(origin);
        }
    }

    /// The leader's answer to a read index this follower asked for.
    pub(super) fn handle_read_index_resp(&mut self, from: NodeId, resp: ReadIndexResp) {
        if resp.term != self.hard_state.term || self.leader != Some(from) {
            return; // stale: the read already failed when the leader changed
        }
        let forwarded = &mut self.reads.forwarded;
        let Some(position) = forwarded.iter().position(|id| id.0 == resp.request) else {
            return;
        };
        let id = forwarded.remove(position);
        let outcome = if resp.success {
            Ok(resp.index)
        } else {
            Err(ReadError::NotLeader {
                leader: self.leader,
            })
        };
        self.answer_read(Origin::Local(id), outcome);
    }
}

// The leader's rounds.
impl Machine {
    /// Holds a read until an entry of this term commits, then for the next
    /// round to begin.
    fn read_as_leader(&mut self, origin: Origin) {
        if !self.term_committed() {
            self.reads.unready.push(origin);
            return;
        }
        let index = self.commit_index;
        if self.reads.round == self.reads.confirmed {
            self.reads.queued.push((origin, index));
            self.begin_read_round();
        } else {
            self.reads.queued.push((origin, index));
        }
    }

    /// Whether an entry of the leader's own term has committed, so that its
    /// commit index covers every entry committed before it took office.
    fn term_committed(&self) -> bool {
        self.log.term_at(self.commit_index) == Some(self.hard_state.term)
    }

    /// Opens a round for the queued reads and sends it to every follower.
    fn begin_read_round(&mut self) {
        self.open_read_round();
        if self.sole_voter() {
            let round = self.reads.round;
            self.confirm_read_round(round);
            return;
        }
        if let Some((mut replicator, followers)) = self.replicator() {
            for (peer, progress) in followers.iter_mut() {
                if !replicator.send_pending(*peer, progress) {
                    replicator.send_heartbeat(*peer, progress);
                }
            }
        }
    }

    /// Numbers a new round and gives it the queued reads; the requests sent
    /// from now on carry it.
    fn open_read_round(&mut self) {
        let reads = &mut self.reads;
        reads.round += 1;
        let round = reads.round;
        reads.began_ms.push_back((round, reads.clock_ms));
        for (origin, index) in reads.queued.drain(..) {
            reads.waiting.push_back(Waiting {
                origin,
                index,
                round,
            });
        }
    }

    /// A heartbeat alarm with reads queued behind a round whose messages
    /// may be lost: the heartbeats about to go carry a new round for them.
    pub(super) fn read_round_at_heartbeat(&mut self) {
        if !self.reads.queued.is_empty() {
            self.open_read_round();
        }
    }

    /// Follower `position` answered a request of round `round` in this
    /// term: confirms the rounds a majority has now answered.
    pub(super) fn note_read_round(&mut self, position: usize, round: u64) {
        let quorum = self.quorum();
        let leader_votes = usize::from(self.is_voter());
        let RoleState::Leader { followers, .. } = &mut self.role else {
            return;
        };
        let progress = &mut followers[position].1;
        if round <= progress.acked_round {
            return;
        }
        progress.acked_round = round;
        if round <= self.reads.confirmed {
            return;
        }
        // The leader confirms every round itself while it votes; it needs
        // `quorum - 1` voters among the followers at or past a round (all
        // `quorum` once a change removed it, `membership.rs`).
        let acked = &mut self.reads.acked_scratch;
        acked.clear();
        acked.extend(
            followers
                .iter()
                .filter(|(_, p)| p.voter)
                .map(|(_, p)| p.acked_round),
        );
        acked.sort_unstable_by(|a, b| b.cmp(a));
        let confirmed = match quorum.saturating_sub(leader_votes) {
            0 => self.reads.round,
            needed => acked.get(needed - 1).copied().unwrap_or(0),
        };
        if confirmed > self.reads.confirmed {
            self.confirm_read_round(confirmed);
        }
    }

    /// A majority answered round `round`: its reads and every earlier
    /// round's are ready, the lease runs from when it began, and the reads
    /// queued meanwhile get the next round.
    fn confirm_read_round(&mut self, round: u64) {
        debug_assert!(round > self.reads.confirmed && round <= self.reads.round);
        self.reads.confirmed = round;
        let mut began = None;
        while let Some(&(r, ms)) = self.reads.began_ms.front() {
            if r > round {
                break;
            }
            began = Some(ms);
            self.reads.began_ms.pop_front();
        }
        if let (Some(margin), Some(began)) = (self.config.lease_read_margin_ms, began) {
            let lease = self.config.election_timeout_ms - margin;
            let until = began.saturating_add(lease);
            self.reads.lease_until_ms = self.reads.lease_until_ms.max(until);
        }
        while self.reads.waiting.front().is_some_and(|w| w.round <= round) {
            if let Some(ready) = self.reads.waiting.pop_front() {
                self.answer_read(ready.origin, Ok(ready.index));
            }
        }
        if !self.reads.queued.is_empty() {
            self.begin_read_round();
        }
    }

    /// Whether a local read at `now_ms` falls within the leader's lease.
    fn in_read_lease(&self, now_ms: u64) -> bool {
        self.config.lease_read_margin_ms.is_some()
            && self.term_committed()
            && now_ms < self.reads.lease_until_ms
    }
}

// The lease across restarts.
impl Machine {
    /// A node restored as a follower with lease reads on may have answered
    /// a round just before it stopped: it keeps quiet until its first
    /// alarm, which comes at least an election timeout after it started.
    pub(super) fn begin_quiet_after_restart(&mut self) {
        self.reads.quiet_after_restart =
            self.config.lease_read_margin_ms.is_some() && matches!(self.role, RoleState::Follower);
    }

    /// The first alarm fired: the leases this node may have granted before
    /// it restarted have run out.
    pub(super) fn end_quiet_after_restart(&mut self) {
        self.reads.quiet_after_restart = false;
    }

    /// Whether the node grants no (pre-)vote because it restarted less
    /// than an election timeout ago with lease reads on.
    pub(super) fn quiet_after_restart(&self) -> bool {
        self.reads.quiet_after_restart
    }
}

// Keeping every read answered.
impl Machine {
    /// Run at the start of read handling and at the end of every step:
    /// fails every read held under a term or leader that is no longer this
    /// node's, forgetting rounds and lease with them, and lets a leader's
    /// held reads go once its term's first entry has committed.
    pub(super) fn settle_reads(&mut self) {
        let (term, leader) = (self.hard_state.term, self.leader);
        if self.reads.term != term || self.reads.leader != leader {
            self.fail_held_reads(leader);
            self.reads.term = term;
            self.reads.leader = leader;
        }
        if !self.reads.unready.is_empty() && self.term_committed() {
            debug_assert!(matches!(self.role, RoleState::Leader { .. }));
            let unready = std::mem::take(&mut self.reads.unready);
            for origin in unready {
                self.read_as_leader(origin);
            }
        }
        debug_assert!(
            matches!(self.role, RoleState::Leader { .. })
                || self.reads.waiting.is_empty()
                    && self.reads.queued.is_empty()
                    && self.reads.unready.is_empty(),
            "only a leader holds reads for rounds"
        );
        debug_assert!(
            self.reads.forwarded.is_empty() || self.leader.is_some_and(|l| l != self.config.id),
            "only a follower of a known leader holds forwarded reads"
        );
    }

    fn fail_held_reads(&mut self, leader: Option<NodeId>) {
        let error = Err(ReadError::NotLeader { leader });
        let reads = &mut self.reads;
        let mut origins: Vec<Origin> = reads.waiting.drain(..).map(|w| w.origin).collect();
        origins.extend(reads.queued.drain(..).map(|(origin, _)| origin));
        origins.append(&mut reads.unready);
        origins.extend(reads.forwarded.drain(..).map(Origin::Local));
        reads.confirmed = reads.round;
        reads.began_ms.clear();
        reads.lease_until_ms = 0;
        for origin in origins {
            self.answer_read(origin, error);
        }
    }

    /// Answers one read: an action for a local one, a message for a peer's.
    fn answer_read(&mut self, origin: Origin, outcome: Result<LogIndex, ReadError>) {
        match origin {
            Origin::Local(id) => self.deferred.push(match outcome {
                Ok(index) => Action::ReadReady { id, index },
                Err(error) => Action::ReadFailed { id, error },
            }),
            Origin::Peer { from, request } => {
                let resp = ReadIndexResp {
                    term: self.hard_state.term,
                    request,
                    success: outcome.is_ok(),
                    index: outcome.unwrap_or(LogIndex::ZERO),
                };
                self.send(from, Message::ReadIndexResp(resp));
            }
        }
    }

    /// Refuses a follower's request for a read index.
    pub(super) fn refuse_read_index(&mut self, from: NodeId, request: u64) {
        let leader = self.leader;
        self.answer_read(
            Origin::Peer { from, request },
            Err(ReadError::NotLeader { leader }),
        );
    }

    /// How many reads this node holds: waiting for a round or an entry of
    /// its term as leader, or for its leader's answer as follower.
    pub fn pending_reads(&self) -> usize {
        self.reads.held()
    }
}
