//! Appends, AppendEntries on both sides, and commitment (sections 5.3, 5.4.2).

use super::{Awaiting, Machine, RoleState};
use crate::action::{Action, CommitError};
use crate::entries::Entries;
use crate::log::Log;
use crate::membership::Membership;
use crate::message::{AppendEntriesReq, AppendEntriesResp, InstallSnapshotReq, Message};
use crate::progress::{Mode, Progress};
use crate::quorum::committed_index;
use crate::types::{Entry, LogIndex, NodeId, Term};
use bytes::Bytes;
use std::collections::VecDeque;

// Leader side.
impl Machine {
    pub(super) fn handle_append(&mut self, data: Bytes, actions: &mut Vec<Action>) {
        if self.refuse_append_in_transfer(&data) {
            return; // `transfer.rs`
        }
        if matches!(self.role, RoleState::Leader { .. }) {
            self.append_as_leader(data, actions);
        } else {
            let leader = self.leader;
            self.deferred.push(Action::Commit {
                data,
                result: Err(CommitError::NotLeader { leader }),
            });
        }
    }

    /// Logs `data` in the current term and sends it to every follower whose
    /// window has room, without waiting for the next heartbeat.
    pub(super) fn append_as_leader(&mut self, data: Bytes, actions: &mut Vec<Action>) {
        let term = self.hard_state.term;
        self.append_entry_as_leader(Entry::new(term, data), actions);
    }

    /// Logs `entry` and sends it on; returns its index. A normal entry's
    /// outcome is awaited here; a configuration's by `membership.rs`.
    pub(super) fn append_entry_as_leader(
        &mut self,
        entry: Entry,
        actions: &mut Vec<Action>,
    ) -> LogIndex {
        let (membership, term) = (entry.is_membership(), entry.term);
        let index = self.store_entry(entry, actions);
        if !membership {
            self.await_outcome(index, term);
        }
        if let Some((mut replicator, followers)) = self.replicator() {
            for (peer, progress) in followers.iter_mut() {
                replicator.send_pending(*peer, progress);
            }
        }
        // The append moved only the leader's own index, which no follower's
        // match index passes: the majority index can move only when the
        // leader alone is a majority, or when a new configuration changed
        // what a majority is (`membership.rs`).
        if membership || self.sole_voter() {
            self.maybe_commit(actions);
        }
        index
    }

    pub(super) fn broadcast_heartbeat(&mut self) {
        self.arm_heartbeat_alarm();
        self.read_round_at_heartbeat(); // `read_index.rs`
        if let Some((mut replicator, followers)) = self.replicator() {
            for (peer, progress) in followers.iter_mut() {
                progress.on_heartbeat();
                if !replicator.send_pending(*peer, progress) {
                    replicator.send_heartbeat(*peer, progress);
                }
            }
        }
    }

    pub(super) fn handle_append_entries_resp(
        &mut self,
        from: NodeId,
        resp: AppendEntriesResp,
        actions: &mut Vec<Action>,
    ) {
        let acknowledged = resp.success.then_some(resp.index);
        let Some(position) = self.follower_answering(from, resp.term, resp.epoch, acknowledged)
        else {
            return;
        };
        if self.echoes_unsent_round(from, resp.read_round) {
            return; // `defence.rs`
        }
        self.note_read_round(position, resp.read_round); // `read_index.rs`
        let RoleState::Leader { followers, .. } = &mut self.role else {
            return;
        };
        let progress = &mut followers[position].1;
        let advanced = if resp.success {
            progress.on_success(resp.index)
        } else {
            progress.on_reject(resp.index);
            false
        };
        // Commit first, so that what this answer lets the leader send next
        // already carries the new commit index: followers learn it in this
        // round rather than the next.
        // A match index that stays at or below the commit index does not
        // change how many peers hold an entry past it, so it cannot commit
        // anything: the second answer to an entry that already committed
        // skips the quorum computation.
        if advanced && resp.index > self.commit_index {
            self.maybe_commit(actions);
        }
        if let Some((mut replicator, followers)) = self.replicator() {
            replicator.send_pending(from, &mut followers[position].1);
        }
        if self.transfer.is_some_and(|t| t.to() == from) {
            self.advance_transfer(false); // `transfer.rs`
        }
    }

    /// The position of follower `from` among the leader's followers, for an
    /// answer of `term` that acknowledges `acknowledged` (if anything): `None`
    /// when this node is not leading `term` (a newer term was handled in
    /// `step`; an older answer is stale), `from` is not a follower, or the
    /// answer acknowledges what was never sent to it (rejected). An answer
    /// of another `epoch` is stale: it was sent before `from` was last made
    /// a member (`membership.rs`, rule 5).
    pub(super) fn follower_answering(
        &mut self,
        from: NodeId,
        term: Term,
        epoch: u64,
        acknowledged: Option<LogIndex>,
    ) -> Option<usize> {
        if term != self.hard_state.term {
            return None;
        }
        let RoleState::Leader { followers, .. } = &self.role else {
            return None;
        };
        let position = followers.iter().position(|(peer, _)| *peer == from)?;
        if followers[position].1.epoch != epoch {
            return None;
        }
        let sent_through = followers[position].1.sent_through();
        debug_assert!(sent_through <= self.log.last_index());
        if let Some(index) = acknowledged {
            if self.acknowledges_unsent(from, index, sent_through) {
                return None;
            }
        }
        self.heard_from(position); // `check_quorum.rs`
        Some(position)
    }

    /// Remembers that this node appended the entry of `term` at `index`.
    /// The queue stays ordered by index: usually the entry goes last, but
    /// truncated entries of earlier terms may still wait at this index or
    /// beyond.
    fn await_outcome(&mut self, index: LogIndex, term: Term) {
        let awaiting = Awaiting {
            index,
            term,
            data: None,
        };
        match self.awaiting_outcome.back() {
            Some(last) if last.index > index => {
                let position = self.awaiting_outcome.partition_point(|a| a.index <= index);
                self.awaiting_outcome.insert(position, awaiting);
            }
            _ => self.awaiting_outcome.push_back(awaiting),
        }
    }

    /// Commits the highest index a majority of the voters stores, if it is
    /// of this leader's term; earlier entries commit with it (section
    /// 5.4.2). The leader counts itself only while it is a voter
    /// (`membership.rs`, rule 3).
    fn maybe_commit(&mut self, actions: &mut Vec<Action>) {
        let quorum = self.quorum();
        let leader_votes = self.is_voter();
        let RoleState::Leader { followers, .. } = &self.role else {
            return;
        };
        self.match_scratch.clear();
        self.match_scratch.extend(
            followers
                .iter()
                .filter(|(_, progress)| progress.voter)
                .map(|(_, progress)| progress.match_index),
        );
        if leader_votes {
            self.match_scratch.push(self.log.last_index());
        }
        debug_assert!(self.match_scratch.len() >= quorum);
        let majority = committed_index(&mut self.match_scratch, quorum);
        if majority > self.commit_index && self.log.term_at(majority) == Some(self.hard_state.term)
        {
            self.commit_through(majority, actions);
        }
    }

    /// Splits the leader's state into what sends need and the followers'
    /// progress, so both can be borrowed at once. `None` unless leader.
    pub(super) fn replicator(&mut self) -> Option<(Replicator<'_>, &mut Vec<(NodeId, Progress)>)> {
        let RoleState::Leader { followers, .. } = &mut self.role else {
            return None;
        };
        let replicator = Replicator {
            log: &mut self.log,
            snapshot_membership: self.configs.at_snapshot(),
            term: self.hard_state.term,
            leader: self.config.id,
            commit_index: self.commit_index,
            read_round: self.reads.round(),
            inflight_max: self.config.inflight_max,
            entries_max: self.config.entries_per_message_max,
            bytes_max: self.config.bytes_per_message_max,
            last_batch: None,
            sends: &mut self.deferred,
        };
        Some((replicator, followers))
    }
}

/// Builds the AppendEntriesReq messages a leader sends to one follower.
pub(super) struct Replicator<'a> {
    log: &'a mut Log,
    /// The configuration in force at the snapshot, which an
    /// `InstallSnapshotReq` carries.
    snapshot_membership: &'a Membership,
    term: Term,
    leader: NodeId,
    commit_index: LogIndex,
    /// The latest read round (`read_index.rs`), which every request carries.
    read_round: u64,
    inflight_max: usize,
    entries_max: usize,
    bytes_max: usize,
    /// The last batch of two or more entries taken from the log, and its
    /// first index, for the next follower whose next index is the same.
    /// The log's entries do not change while a `Replicator` exists.
    last_batch: Option<(LogIndex, Entries)>,
    sends: &'a mut Vec<Action>,
}

impl Replicator<'_> {
    /// Sends what the follower's progress allows: entries up to the window
    /// or, for an unpaused probe with nothing new, an empty probe. Returns
    /// whether anything was sent.
    pub(super) fn send_pending(&mut self, peer: NodeId, progress: &mut Progress) -> bool {
        let snapshot = self.log.snapshot();
        if progress.next_index <= snapshot.index {
            // The entries the follower needs next are gone from the log.
            if !matches!(progress.mode, Mode::Snapshot { .. }) {
                self.send_snapshot(peer, progress);
                return true;
            }
            return false;
        }
        let last_index = self.log.last_index();
        let mut sent = false;
        while progress.can_send_entries(last_index, self.inflight_max) {
            let from = progress.next_index;
            let entries = self.batch(from);
            debug_assert!(!entries.is_empty());
            let last_sent = LogIndex(from.0 + entries.len() as u64 - 1);
            self.send(peer, progress, from.prev(), entries);
            progress.sent(last_sent);
            sent = true;
        }
        if !sent && progress.mode == (Mode::Probe { paused: false }) {
            let prev_index = progress.next_index.prev();
            self.send(peer, progress, prev_index, Entries::new());
            progress.sent(prev_index);
            sent = true;
        }
        sent
    }

    /// An empty request that asserts leadership and carries the commit index.
    pub(super) fn send_heartbeat(&mut self, peer: NodeId, progress: &mut Progress) {
        let prev_index = progress.heartbeat_prev_index(self.log.snapshot().index);
        self.send(peer, progress, prev_index, Entries::new());
    }

    /// Sends the leader's snapshot, in place of entries its log no longer
    /// holds (`snapshot.rs`).
    fn send_snapshot(&mut self, peer: NodeId, progress: &mut Progress) {
        let snapshot = self.log.snapshot();
        progress.sent_snapshot(snapshot.index);
        let req = InstallSnapshotReq {
            term: self.term,
            leader: self.leader,
            snapshot,
            membership: self.snapshot_membership.clone(),
            epoch: progress.epoch,
        };
        self.sends.push(Action::Send {
            to: peer,
            message: Message::InstallSnapshotReq(req),
        });
    }

    /// The entries to send from `from`, bounded by the message limits: a
    /// view of the log's shared runs (see `Log::batch`). The followers that
    /// need the same batch get the same list, measured against the limits
    /// once, and gathered once when the log's runs are too short for it.
    fn batch(&mut self, from: LogIndex) -> Entries {
        if let Some((first, entries)) = &self.last_batch {
            if *first == from {
                return entries.clone();
            }
        }
        let entries = self.log.batch(from, self.entries_max, self.bytes_max);
        if entries.len() > 1 {
            self.last_batch = Some((from, entries.clone()));
        }
        entries
    }

    /// Sends one request and records in `progress` the highest index it
    /// lets the follower acknowledge.
    fn send(
        &mut self,
        peer: NodeId,
        progress: &mut Progress,
        prev_index: LogIndex,
        entries: Entries,
    ) {
        progress.note_sent_through(LogIndex(prev_index.0 + entries.len() as u64));
        let prev_term = self.log.term_at(prev_index);
        debug_assert!(prev_term.is_some(), "prev index {prev_index} past the log");
        let req = AppendEntriesReq {
            term: self.term,
            leader: self.leader,
            prev_index,
            prev_term: prev_term.unwrap_or_default(),
            entries,
            commit: self.commit_index,
            read_round: self.read_round,
            epoch: progress.epoch,
        };
        self.sends.push(Action::Send {
            to: peer,
            message: Message::AppendEntriesReq(req),
        });
    }
}

// Follower side.
impl Machine {
    /// Accepts entries from the leader of the current term, or refuses a
    /// stale or mismatching request with a hint. Always answers.
    pub(super) fn handle_append_entries_req(
        &mut self,
        from: NodeId,
        req: AppendEntriesReq,
        actions: &mut Vec<Action>,
    ) {
        let epoch = req.epoch;
        if !self.follow(from, req.term) {
            // Not its follower: the answer confirms no read round.
            self.reply_append(from, false, self.log.last_index(), 0, epoch);
            return;
        }
        let (leader_commit, round) = (req.commit, req.read_round);
        if let Some(floor) = committed_entry_shown(&req) {
            self.note_joining(floor); // `membership.rs`, rule 6
        }
        match self.accept_entries(req, actions) {
            Ok(matched) => {
                self.reply_append(from, true, matched, round, epoch);
                let commit = leader_commit.min(matched);
                if commit > self.commit_index {
                    self.commit_through(commit, actions);
                    self.check_repaired(commit);
                }
            }
            Err(hint) => self.reply_append(from, false, hint, round, epoch),
        }
    }

    /// Takes `from` as the leader of `term`, for a request (AppendEntries or
    /// InstallSnapshot) it sent: this node becomes (or stays) its follower
    /// and waits a whole election timeout again. `false` when the request
    /// must be refused instead: its term is stale (the answer teaches the
    /// sender the newer one), or another node already leads it (rejected).
    pub(super) fn follow(&mut self, from: NodeId, term: Term) -> bool {
        if term < self.hard_state.term || (term == self.hard_state.term && self.second_leader(from))
        {
            return false;
        }
        self.become_follower(term); // a (pre-)candidate of this term has lost
        self.leader = Some(from);
        if self.lease_enabled() {
            self.renew_lease(); // `check_quorum.rs`
        } else {
            self.arm_election_alarm();
        }
        true
    }

    /// Stores the request's entries after `prev_index`, truncating only
    /// where an entry conflicts. `Ok` holds the last index known to match
    /// the leader; `Err` the hint for the leader's next probe.
    fn accept_entries(
        &mut self,
        req: AppendEntriesReq,
        actions: &mut Vec<Action>,
    ) -> Result<LogIndex, LogIndex> {
        // `screen` refused any other kind (`defence.rs`).
        debug_assert!(super::defence::is_well_formed(&req));
        let snapshot = self.log.snapshot();
        let req = if req.prev_index < snapshot.index {
            match skip_covered(req, snapshot.index) {
                Ok(req) => req,
                Err(matched) => return Ok(matched),
            }
        } else {
            req
        };
        match self.log.term_at(req.prev_index) {
            None => return Err(self.log.last_index()),
            Some(term) if term != req.prev_term => return Err(self.conflict_hint(req.prev_index)),
            Some(_) => {}
        }
        let matched = LogIndex(req.prev_index.0 + req.entries.len() as u64);
        // Entries the log already holds are skipped; the log is cut at the
        // first one that conflicts, and the rest are stored in one action.
        let mut held = 0;
        for entry in req.entries.iter() {
            let index = LogIndex(req.prev_index.0 + held as u64 + 1);
            match self.log.term_at(index) {
                Some(term) if term == entry.term => held += 1,
                Some(_) if index <= self.commit_index => {
                    // Committed entries never conflict with a real leader's.
                    return Err(self.commit_index);
                }
                Some(_) => {
                    self.truncate_from(index, actions);
                    break;
                }
                None => break,
            }
        }
        if held < req.entries.len() {
            let new = if held == 0 {
                req.entries // the usual case: moved, not even a reference count
            } else {
                req.entries.slice(held..req.entries.len()) // shared, not copied
            };
            self.store_entries(new, actions);
        }
        Ok(matched)
    }

    /// The highest index that may still match after a conflict at `index`:
    /// just before the run of the conflicting term, so the leader skips the
    /// whole term in one round trip. Never below the commit index.
    fn conflict_hint(&self, index: LogIndex) -> LogIndex {
        self.log
            .first_index_of_term_run(index)
            .prev()
            .max(self.commit_index)
    }

    /// Answers an AppendEntriesReq, echoing its `read_round` (0 when the
    /// answer must confirm no round: the request was refused as not from
    /// this node's leader) and its `epoch`.
    pub(super) fn reply_append(
        &mut self,
        to: NodeId,
        success: bool,
        index: LogIndex,
        read_round: u64,
        epoch: u64,
    ) {
        let resp = AppendEntriesResp {
            term: self.hard_state.term,
            success,
            index,
            read_round,
            epoch,
        };
        self.send(to, Message::AppendEntriesResp(resp));
    }
}

// Log and commit changes shared by both sides.
impl Machine {
    /// Appends `entry` to the log, persisting the hard state first so a
    /// crash never leaves an entry of a term the node has not recorded.
    fn store_entry(&mut self, entry: Entry, actions: &mut Vec<Action>) -> LogIndex {
        self.store_entries(Entries::from(entry), actions)
    }

    /// Appends `entries` (at least one) to the log in one `LogStore`, the
    /// hard state persisted first as in [`Machine::store_entry`]. Returns
    /// the index of the last.
    fn store_entries(&mut self, entries: Entries, actions: &mut Vec<Action>) -> LogIndex {
        debug_assert!(!entries.is_empty());
        self.persist_hard_state(actions);
        let index = self.log.last_index().next();
        let last = self.log.extend(&entries);
        self.note_configurations(index, &entries); // `membership.rs`
        actions.push(Action::LogStore { index, entries });
        last
    }

    /// Removes entries from `from` on. Entries this node appended as leader
    /// stay awaiting their outcome: another node may still commit them.
    fn truncate_from(&mut self, from: LogIndex, actions: &mut Vec<Action>) {
        debug_assert!(
            from > self.commit_index,
            "truncating committed entry {from}"
        );
        self.persist_hard_state(actions);
        actions.push(Action::LogTruncate { from });
        let removed = self.log.truncate(from);
        self.configurations_truncated(from); // `membership.rs`
                                             // Entries this node appended leave the log now: keep their data.
        let first = self.awaiting_outcome.partition_point(|a| a.index < from);
        for awaiting in self.awaiting_outcome.range_mut(first..) {
            if awaiting.data.is_none() {
                let entry = usize::try_from(awaiting.index.0 - from.0)
                    .ok()
                    .and_then(|position| removed.get(position));
                debug_assert!(entry.is_some_and(|e| e.term == awaiting.term));
                awaiting.data = entry.map(|e| e.data.clone());
            }
        }
    }

    /// Reports every entry up to `index` as committed, in order, once. An
    /// entry this node appended as leader that lost its index to another
    /// entry is reported `Overwritten` just before the entry that won it.
    ///
    /// The `Commit`s go straight to `actions` rather than through
    /// `deferred`: nothing is persisted after a commit within a step, so
    /// once the hard state is out they may follow the persistence at once,
    /// and a follower committing a whole batch spares copying every one.
    pub(super) fn commit_through(&mut self, index: LogIndex, actions: &mut Vec<Action>) {
        debug_assert!(index > self.commit_index && index <= self.log.last_index());
        self.persist_hard_state(actions);
        let first = self.commit_index.next();
        let count = (index.0 - self.commit_index.0) as usize;
        let awaiting_outcome = &mut self.awaiting_outcome;
        for (offset, entry) in self.log.iter_from(first).take(count).enumerate() {
            let committed = LogIndex(first.0 + offset as u64);
            while let Some(awaiting) =
                pop_front_if(awaiting_outcome, |awaiting| awaiting.index <= committed)
            {
                if awaiting.term != entry.term {
                    // Truncated, so its data was kept (see `truncate_from`).
                    debug_assert!(awaiting.data.is_some());
                    actions.push(Action::Commit {
                        data: awaiting.data.unwrap_or_default(),
                        result: Err(CommitError::Overwritten {
                            index: awaiting.index,
                            term: awaiting.term,
                        }),
                    });
                }
            }
            actions.push(Action::Commit {
                data: entry.data.clone(),
                result: Ok(committed),
            });
        }
        self.commit_index = index;
    }
}

/// A request whose `prev_index` lies before the snapshot's `index`, cut
/// to the entries after the snapshot: the snapshot holds committed entries
/// only, and committed entries match every leader's, so the entries it
/// covers are known to be held and the rest follow `index`. `Err` holds
/// the request's last index when every entry of it is covered.
fn skip_covered(req: AppendEntriesReq, index: LogIndex) -> Result<AppendEntriesReq, LogIndex> {
    let covered = index.0 - req.prev_index.0;
    let count = req.entries.len() as u64;
    if covered >= count {
        return Err(LogIndex(req.prev_index.0 + count));
    }
    let Some(at_index) = req.entries.get(covered as usize - 1).map(|e| e.term) else {
        return Err(LogIndex(req.prev_index.0 + count));
    };
    let rest = req.entries.slice(covered as usize..req.entries.len());
    Ok(AppendEntriesReq {
        prev_index: index,
        prev_term: at_index,
        entries: rest,
        ..req
    })
}

/// The (term, index) of the entry at the request's commit index, when the
/// request shows that entry's term (`membership.rs`, rule 6).
fn committed_entry_shown(req: &AppendEntriesReq) -> Option<(Term, LogIndex)> {
    let last = req.prev_index.0.saturating_add(req.entries.len() as u64);
    let index = req.commit.0.min(last);
    if index < req.prev_index.0 || index == 0 {
        return None;
    }
    let term = match (index - req.prev_index.0) as usize {
        0 => req.prev_term,
        offset => req.entries.get(offset - 1)?.term,
    };
    Some((term, LogIndex(index)))
}

/// `VecDeque::pop_front_if`, which needs a newer Rust than this crate's
/// minimum.
fn pop_front_if<T>(queue: &mut VecDeque<T>, predicate: impl FnOnce(&T) -> bool) -> Option<T> {
    if queue.front().is_some_and(predicate) {
        queue.pop_front()
    } else {
        None
    }
}
