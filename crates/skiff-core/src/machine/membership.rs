//! Membership changes (the thesis, 4.1 and 4.2): the cluster's voters and
//! learners are part of the replicated log.
//!
//! # Single-server changes
//!
//! Each change adds a learner, promotes a learner to voter, or removes one
//! node ([`MembershipChange`]), so the old and new voters differ by at
//! most one and any majority of each overlaps the other: two leaders cannot
//! be elected in one term, and nothing commits without a majority of the
//! configuration in force. We chose this over joint consensus because it
//! needs no second kind of quorum anywhere in the machine; replacing a
//! machine is three steps (add as learner, promote, remove the old one),
//! each safe on its own.
//!
//! 1. A configuration takes effect on a node as soon as its log holds the
//!    entry, committed or not; a node whose log is cut back before that
//!    entry returns to the configuration before it.
//! 2. A leader proposes a change only when its latest configuration is
//!    committed (one change at a time) and it has committed an entry of its
//!    own term. The second rule is the fix for the single-server bug
//!    (Ongaro, raft-dev, 2015): without it, a new leader holding an
//!    uncommitted configuration of a deposed leader could commit a change
//!    based on it, whose majority need not overlap one of the other change.
//! 3. A leader not among its latest configuration's voters still leads
//!    until that configuration commits (it does not count itself in
//!    majorities), then steps down ([`StepDownReason::Removed`]), telling
//!    a voter whose log is complete to stand at once
//!    ([`TimeoutNow`], as a leadership transfer does).
//! 4. A node that is a voter neither in its latest configuration nor, while
//!    that one is not known committed, in the one before (a learner, a
//!    removed node, a node joining) never stands for election, so a removed node does not
//!    raise the others' terms. It still answers every request; a candidate
//!    counts only the votes of the voters of its latest configuration.
//!    A voter whose removal is appended but not committed may still stand,
//!    counting only the new voters' votes (not its own): with two voters,
//!    a leader that removed itself and lost the other before the change
//!    reached it would otherwise leave a cluster where nobody can win, the
//!    other voter needing the vote of a node whose log is longer (the
//!    simulator's membership churn found it). Elected, it leads as rule 3
//!    says until the change commits.
//! 5. Each follower's progress carries an epoch, the index of the
//!    configuration entry that made it a member of the leader's view (0
//!    when it was one as the leader took office). Requests carry it and
//!    answers echo it; an answer of another epoch is stale and dropped, so
//!    a node removed and added again in one term starts from scratch.
//!
//! 6. A node that starts empty to join ([`Config::join`](crate::Config))
//!    takes, from the first leader request that shows it one, a committed
//!    entry (term, index) as its floor: the entry at the request's commit
//!    index, or the snapshot's. Until its own log reaches the floor, it
//!    stands for no election and grants a (pre-)vote only to a candidate
//!    whose log reaches it; before any leader request, it grants none. A
//!    machine that lost its disk may join again under its old id: stale
//!    configurations still name it a voter, in other logs and in its own
//!    while it catches up, and with a short log it would vote for, or be
//!    elected with, a stale node that lacks the entry removing it (the
//!    simulator found both). The leader it first hears proposed nothing
//!    after that removal before the removal committed, so the floor is at
//!    or past it: a stale candidate is below the floor. A legitimate one
//!    holds every committed entry, the floor included, so the rule never
//!    refuses it.
//!
//! The configuration in force at the snapshot travels with it
//! ([`InstallSnapshotReq::membership`](crate::InstallSnapshotReq)) and is
//! handed to the driver to keep with the snapshot.

use super::{Machine, RoleState};
use crate::action::{Action, StepDownReason, TransferError};
use crate::entries::Entries;
use crate::membership::{Membership, MembershipChange, MembershipError};
use crate::message::{Message, TimeoutNow};
use crate::progress::Progress;
use crate::types::{Entry, LogIndex, NodeId, Term};
use bytes::Bytes;

/// The configurations a node knows: the one in force at its snapshot and
/// those its log holds after it.
#[derive(Clone, Debug)]
pub(super) struct Configs {
    /// In force at the snapshot's index (the bootstrap configuration,
    /// [`Config::peers`](crate::Config), before any snapshot).
    at_snapshot: Membership,
    /// The configuration entries after the snapshot, in index order.
    in_log: Vec<(LogIndex, Membership)>,
}

impl Configs {
    pub(super) fn new(at_snapshot: Membership) -> Configs {
        Configs {
            at_snapshot,
            in_log: Vec::new(),
        }
    }

    /// The configuration in force: the latest one in the log.
    pub(super) fn latest(&self) -> &Membership {
        self.in_log
            .last()
            .map_or(&self.at_snapshot, |(_, membership)| membership)
    }

    /// The index of the latest configuration's entry; `None` when it is
    /// the snapshot's (committed, then).
    pub(super) fn latest_index(&self) -> Option<LogIndex> {
        self.in_log.last().map(|(index, _)| *index)
    }

    /// The configuration in force at `index`.
    pub(super) fn at(&self, index: LogIndex) -> &Membership {
        let position = self.in_log.partition_point(|(at, _)| *at <= index);
        match position {
            0 => &self.at_snapshot,
            n => &self.in_log[n - 1].1,
        }
    }

    /// The configuration at the snapshot's index.
    pub(super) fn at_snapshot(&self) -> &Membership {
        &self.at_snapshot
    }

    pub(super) fn appended(&mut self, index: LogIndex, membership: Membership) {
        debug_assert!(self.latest_index().is_none_or(|last| last < index));
        self.in_log.push((index, membership));
    }

    /// Forgets the configurations from `from` on; whether any went.
    fn truncated(&mut self, from: LogIndex) -> bool {
        let keep = self.in_log.partition_point(|(at, _)| *at < from);
        let changed = keep < self.in_log.len();
        self.in_log.truncate(keep);
        changed
    }

    /// The snapshot now ends at `through`.
    pub(super) fn compacted(&mut self, through: LogIndex) {
        self.at_snapshot = self.at(through).clone();
        let keep_from = self.in_log.partition_point(|(at, _)| *at <= through);
        self.in_log.drain(..keep_from);
    }

    /// A snapshot replaced the whole log.
    fn reset(&mut self, at_snapshot: Membership) {
        self.at_snapshot = at_snapshot;
        self.in_log.clear();
    }
}

/// A change this node proposed as leader, until its entry commits or is lost.
#[derive(Clone, Copy, Debug)]
pub(super) struct PendingChange {
    index: LogIndex,
    term: Term,
    change: MembershipChange,
}

// Asking for a change (rule 2).
impl Machine {
    pub(super) fn handle_change_membership(
        &mut self,
        change: MembershipChange,
        context: Option<Bytes>,
        actions: &mut Vec<Action>,
    ) {
        match self.propose_change(change, context) {
            Ok(entry) => {
                // Noted before the append, which may commit it at once.
                let (index, term) = (self.log.last_index().next(), entry.term);
                self.pending_changes.push(PendingChange {
                    index,
                    term,
                    change,
                });
                let appended = self.append_entry_as_leader(entry, actions);
                debug_assert_eq!(appended, index);
            }
            Err(error) => self.end_change(change, Err(error)),
        }
    }

    /// The entry that makes `change`, or why the leader cannot make it now.
    fn propose_change(
        &self,
        change: MembershipChange,
        context: Option<Bytes>,
    ) -> Result<Entry, MembershipError> {
        if !matches!(self.role, RoleState::Leader { .. }) {
            return Err(MembershipError::NotLeader {
                leader: self.leader,
            });
        }
        if self.transfer.is_some() {
            return Err(MembershipError::TransferInProgress);
        }
        if self
            .configs
            .latest_index()
            .is_some_and(|index| index > self.commit_index)
        {
            return Err(MembershipError::ChangeInProgress);
        }
        if self.log.term_at(self.commit_index) != Some(self.hard_state.term) {
            return Err(MembershipError::LeaderNotReady);
        }
        let latest = self.configs.latest();
        let mut next = latest.apply(change)?;
        let context = context.unwrap_or_else(|| latest.context().clone());
        next = next.with_context(context);
        Ok(Entry::membership(self.hard_state.term, &next))
    }

    fn end_change(&mut self, change: MembershipChange, result: Result<LogIndex, MembershipError>) {
        self.deferred
            .push(Action::MembershipChangeEnded { change, result });
    }

    /// At the end of every step: answers the changes whose index the
    /// commit index has passed.
    pub(super) fn settle_changes(&mut self) {
        if self.pending_changes.is_empty() {
            return;
        }
        let commit_index = self.commit_index;
        let mut i = 0;
        while i < self.pending_changes.len() {
            let pending = self.pending_changes[i];
            if pending.index > commit_index {
                i += 1;
                continue;
            }
            self.pending_changes.swap_remove(i);
            let result = match self.log.term_at(pending.index) {
                Some(term) if term == pending.term => Ok(pending.index),
                Some(_) => Err(MembershipError::Overwritten),
                None => Err(MembershipError::OutcomeUnknown),
            };
            self.end_change(pending.change, result);
        }
    }

    /// A snapshot replaced the log: the changes it covers cannot be told.
    fn changes_covered_by_snapshot(&mut self, through: LogIndex) {
        let mut covered = Vec::new();
        self.pending_changes.retain(|pending| {
            let is_covered = pending.index <= through;
            if is_covered {
                covered.push(pending.change);
            }
            !is_covered
        });
        for change in covered {
            self.end_change(change, Err(MembershipError::OutcomeUnknown));
        }
    }
}

// Following the log's configurations (rule 1).
impl Machine {
    /// Notes the configuration entries among `entries`, stored from `first`.
    pub(super) fn note_configurations(&mut self, first: LogIndex, entries: &Entries) {
        let mut changed = false;
        for (offset, entry) in entries.iter().enumerate() {
            if !entry.is_membership() {
                continue;
            }
            // A peer's entries were checked in `screen` (`defence.rs`);
            // this node's own were encoded here.
            let Ok(membership) = Membership::decode(&entry.data) else {
                debug_assert!(false, "a membership entry that does not decode was stored");
                continue;
            };
            self.configs
                .appended(LogIndex(first.0 + offset as u64), membership);
            changed = true;
        }
        if changed {
            self.configuration_changed();
        }
    }

    /// The log was cut from `from`: configurations it held go with it.
    pub(super) fn configurations_truncated(&mut self, from: LogIndex) {
        if self.configs.truncated(from) {
            self.configuration_changed();
        }
    }

    /// A snapshot through `through`, with `membership` in force there,
    /// replaced the log.
    pub(super) fn configurations_installed(&mut self, through: LogIndex, membership: Membership) {
        self.configs.reset(membership);
        self.changes_covered_by_snapshot(through);
        self.configuration_changed();
    }

    /// The configuration in force changed: a leader tracks exactly its
    /// members, and a transfer to a node that is no longer a voter ends.
    fn configuration_changed(&mut self) {
        let latest = self.configs.latest().clone();
        let epoch = self.configs.latest_index().unwrap_or_default().0;
        let me = self.config.id;
        let last_index = self.log.last_index();
        if let RoleState::Leader { followers, .. } = &mut self.role {
            followers.retain(|(peer, _)| latest.contains(*peer));
            for (peer, progress) in followers.iter_mut() {
                progress.voter = latest.is_voter(*peer);
            }
            for peer in latest.members().filter(|peer| *peer != me) {
                if !followers.iter().any(|(known, _)| *known == peer) {
                    // A new member: probe from the entry that made it one,
                    // under a new epoch (rule 5).
                    let mut progress = Progress::new(LogIndex(epoch).prev().min(last_index));
                    progress.voter = latest.is_voter(peer);
                    progress.epoch = epoch;
                    followers.push((peer, progress));
                }
            }
        }
        if let Some(transfer) = self.transfer {
            if !latest.is_voter(transfer.to()) {
                self.transfer = None;
                self.deferred.push(Action::TransferEnded {
                    to: transfer.to(),
                    result: Err(TransferError::UnknownPeer),
                });
            }
        }
    }

    /// At the end of every step (rule 3): a leader that its committed
    /// configuration leaves out of the voters steps down. So that the
    /// cluster need not wait an election timeout for the next leader, it
    /// first tells a voter whose log is complete to stand at once, as a
    /// leadership transfer does (`transfer.rs`).
    pub(super) fn settle_removal(&mut self) {
        if !matches!(self.role, RoleState::Leader { .. }) || self.is_voter() {
            return;
        }
        let committed = self
            .configs
            .latest_index()
            .is_none_or(|index| index <= self.commit_index);
        if !committed {
            return;
        }
        let last_index = self.log.last_index();
        if let RoleState::Leader { followers, .. } = &self.role {
            let successor = followers
                .iter()
                .find(|(_, progress)| progress.voter && progress.match_index == last_index)
                .map(|(peer, _)| *peer);
            if let Some(successor) = successor {
                let term = self.hard_state.term;
                self.send(successor, Message::TimeoutNow(TimeoutNow { term }));
            }
        }
        self.step_down(StepDownReason::Removed);
    }
}

// Counting: what the rest of the machine asks about the configuration.
impl Machine {
    /// The configuration in force on this node: the latest in its log.
    pub fn membership(&self) -> &Membership {
        self.configs.latest()
    }

    /// The configuration in force at `index` of this node's log (at the
    /// snapshot's, for an index the snapshot covers).
    pub fn membership_at(&self, index: LogIndex) -> &Membership {
        self.configs.at(index.max(self.log.snapshot().index))
    }

    /// Whether the latest configuration's entry has not committed yet: a
    /// change is under way.
    pub fn membership_change_pending(&self) -> bool {
        self.configs
            .latest_index()
            .is_some_and(|index| index > self.commit_index)
    }

    /// How many membership changes this node took and has not answered:
    /// each is answered once the commit index passes its entry (`Ok`, or
    /// `Overwritten` when another entry committed there). A leader that
    /// lost its office may hold one from each term it led in, since its
    /// log lost their entries but the commit index has not passed them.
    pub fn pending_membership_changes(&self) -> usize {
        self.pending_changes.len()
    }

    /// Whether this node may grant a (pre-)vote to a candidate whose log
    /// ends at (`last_term`, `last_index`), as far as membership goes
    /// (rule 6).
    pub(super) fn may_vote(&self, last_term: Term, last_index: LogIndex) -> bool {
        match self.joining {
            None => true,
            Some(None) => false,
            Some(Some(floor)) => (last_term, last_index) >= floor,
        }
    }

    /// A joiner heard a leader's request that shows the committed entry
    /// `floor` (rule 6); the first such request sets its floor.
    pub(super) fn note_joining(&mut self, floor: (Term, LogIndex)) {
        if self.joining == Some(None) {
            self.joining = Some(Some(floor));
        }
    }

    /// At the end of every step: a joiner whose log reached its floor has
    /// joined; the ordinary log comparison is now at least as strict.
    pub(super) fn settle_joining(&mut self) {
        if let Some(Some(floor)) = self.joining {
            if (self.log.last_term(), self.log.last_index()) >= floor {
                self.joining = None;
            }
        }
    }

    /// Whether this node may stand for election as far as membership goes
    /// (rule 4): it is a voter of its latest configuration, or of the one
    /// before it while the latest is not known committed (its removal may
    /// not be committed yet).
    pub(super) fn may_stand(&self) -> bool {
        let me = self.config.id;
        // The configuration before the latest, while the latest is not
        // known to have committed. (Not the one at the commit index: a
        // restarted node's commit index starts at its snapshot, and it may
        // be the only node that can finish the change.)
        let before_latest = self
            .configs
            .latest_index()
            .filter(|index| *index > self.commit_index)
            .map(|index| self.configs.at(index.prev()));
        self.joining.is_none() && (self.is_voter() || before_latest.is_some_and(|m| m.is_voter(me)))
    }

    /// Whether this node is a voter in its latest configuration.
    pub(super) fn is_voter(&self) -> bool {
        self.configs.latest().is_voter(self.config.id)
    }

    /// Whether `peer` is a voter in this node's latest configuration.
    pub(super) fn is_voter_peer(&self, peer: NodeId) -> bool {
        self.configs.latest().is_voter(peer)
    }

    /// The majority of the latest configuration's voters.
    pub(super) fn quorum(&self) -> usize {
        self.configs.latest().quorum()
    }

    /// Whether this node alone is a majority: the only voter.
    pub(super) fn sole_voter(&self) -> bool {
        let voters = self.configs.latest().voters();
        voters.len() == 1 && voters[0] == self.config.id
    }

    /// How many of `ids` are voters.
    pub(super) fn voters_among(&self, ids: &[NodeId]) -> usize {
        let latest = self.configs.latest();
        ids.iter().filter(|id| latest.is_voter(**id)).count()
    }

    /// The other voters, to ask for (pre-)votes.
    pub(super) fn other_voters(&self) -> Vec<NodeId> {
        let me = self.config.id;
        self.configs
            .latest()
            .voters()
            .iter()
            .copied()
            .filter(|peer| *peer != me)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::event::Event;
    use crate::machine::StartState;
    use crate::message::AppendEntriesResp;
    use crate::types::Role;
    use std::collections::{BTreeMap, VecDeque};

    /// Machines that deliver every message at once, in order, and keep
    /// every action that is not a send.
    struct Net {
        nodes: BTreeMap<NodeId, Machine>,
        queue: VecDeque<(NodeId, NodeId, Message)>,
        outputs: Vec<(NodeId, Action)>,
        /// Messages to drop: (from, to).
        cut: Vec<(NodeId, NodeId)>,
    }

    fn id(n: u64) -> NodeId {
        NodeId(n)
    }

    fn ids(list: &[u64]) -> Vec<NodeId> {
        list.iter().copied().map(NodeId).collect()
    }

    impl Net {
        /// Voters `voters`, node `voters[0]` elected leader, its no-op committed.
        fn with_leader(voters: &[u64]) -> Net {
            let mut net = Net {
                nodes: BTreeMap::new(),
                queue: VecDeque::new(),
                outputs: Vec::new(),
                cut: Vec::new(),
            };
            for n in voters {
                let config = Config::new(id(*n), ids(voters));
                net.add_machine(Machine::new(config).unwrap());
            }
            net.step(id(voters[0]), Event::Timeout);
            net.settle();
            assert_eq!(net.node(voters[0]).role(), Role::Leader);
            net
        }

        fn add_machine(&mut self, mut machine: Machine) {
            let mut actions = Vec::new();
            machine.start(&mut actions);
            self.nodes.insert(machine.id(), machine);
        }

        /// A fresh node `n` that joins a cluster first made of `voters`.
        fn add_joiner(&mut self, n: u64, voters: &[u64]) {
            let mut config = Config::new(id(n), ids(voters));
            config.join = true;
            self.add_machine(Machine::new(config).unwrap());
        }

        fn node(&self, n: u64) -> &Machine {
            &self.nodes[&id(n)]
        }

        fn step(&mut self, at: NodeId, event: Event) {
            let Some(machine) = self.nodes.get_mut(&at) else {
                return;
            };
            let mut actions = Vec::new();
            machine.step(event, &mut actions);
            for action in actions {
                match action {
                    Action::Send { to, message } => self.queue.push_back((at, to, message)),
                    other => self.outputs.push((at, other)),
                }
            }
        }

        fn settle(&mut self) {
            let mut budget = 10_000;
            while let Some((from, to, message)) = self.queue.pop_front() {
                budget -= 1;
                assert!(budget > 0, "messages never stop");
                if self.cut.contains(&(from, to)) {
                    continue;
                }
                self.step(to, Event::Receive { from, message });
            }
        }

        fn change(
            &mut self,
            at: u64,
            change: MembershipChange,
        ) -> Result<LogIndex, MembershipError> {
            self.outputs.clear();
            self.step(
                id(at),
                Event::ChangeMembership {
                    change,
                    context: None,
                },
            );
            self.settle();
            self.change_result(at, change)
                .expect("the change was answered once the messages settled")
        }

        fn change_result(
            &self,
            at: u64,
            asked: MembershipChange,
        ) -> Option<Result<LogIndex, MembershipError>> {
            let answers: Vec<_> = self
                .outputs
                .iter()
                .filter_map(|(node, action)| match action {
                    Action::MembershipChangeEnded { change, result } if *node == id(at) => {
                        assert_eq!(*change, asked);
                        Some(*result)
                    }
                    _ => None,
                })
                .collect();
            assert!(answers.len() <= 1, "answered twice: {answers:?}");
            answers.first().copied()
        }

        fn append(&mut self, at: u64, data: &'static str) {
            self.step(id(at), Event::Append(Bytes::from_static(data.as_bytes())));
            self.settle();
        }

        fn sent_by(&self, queue: &[(NodeId, NodeId, Message)], n: u64) -> usize {
            queue.iter().filter(|(from, _, _)| *from == id(n)).count()
        }
    }

    fn config(voters: &[u64], learners: &[u64]) -> Membership {
        Membership::new(ids(voters), ids(learners)).unwrap()
    }

    #[test]
    fn a_joiner_is_added_as_learner_then_promoted_and_counts() {
        let mut net = Net::with_leader(&[1]);
        net.add_joiner(2, &[1]);
        let added = net.change(1, MembershipChange::AddLearner(id(2)));
        // The sole voter commits the change alone; the learner catches up.
        assert_eq!(added, Ok(LogIndex(2)));
        assert_eq!(net.node(2).membership(), &config(&[1], &[2]));
        assert_eq!(net.node(2).commit_index(), LogIndex(2));
        // A learner's alarm starts no election.
        net.step(id(2), Event::Timeout);
        net.step(id(2), Event::Timeout);
        assert_eq!(
            net.sent_by(&net.queue.iter().cloned().collect::<Vec<_>>(), 2),
            0
        );
        assert_eq!(net.node(2).role(), Role::Follower);
        // Promoted, it counts: with it cut off, nothing commits.
        assert_eq!(
            net.change(1, MembershipChange::Promote(id(2))),
            Ok(LogIndex(3))
        );
        assert_eq!(net.node(1).membership(), &config(&[1, 2], &[]));
        net.cut.push((id(1), id(2)));
        net.append(1, "x");
        assert_eq!(net.node(1).commit_index(), LogIndex(3));
        net.cut.clear();
        // The second heartbeat takes the request as lost and resends it.
        for _ in 0..2 {
            net.step(id(1), Event::Timeout);
            net.settle();
        }
        assert_eq!(net.node(1).commit_index(), LogIndex(4));
    }

    #[test]
    fn one_change_at_a_time_and_only_after_the_leaders_own_entry() {
        let mut net = Net::with_leader(&[1, 2, 3]);
        net.cut.push((id(1), id(2)));
        net.cut.push((id(1), id(3)));
        net.outputs.clear();
        net.step(
            id(1),
            Event::ChangeMembership {
                change: MembershipChange::AddLearner(id(4)),
                context: None,
            },
        );
        net.settle();
        assert_eq!(
            net.change_result(1, MembershipChange::AddLearner(id(4))),
            None
        );
        assert_eq!(
            net.change(1, MembershipChange::AddLearner(id(5))),
            Err(MembershipError::ChangeInProgress)
        );
        let errors = [
            (
                MembershipChange::Remove(id(9)),
                MembershipError::UnknownNode,
            ),
            (
                MembershipChange::Promote(id(9)),
                MembershipError::UnknownNode,
            ),
            (
                MembershipChange::AddLearner(id(2)),
                MembershipError::AlreadyMember,
            ),
            (
                MembershipChange::Promote(id(2)),
                MembershipError::AlreadyMember,
            ),
        ];
        let mut plain = Net::with_leader(&[1, 2, 3]);
        for (change, error) in errors {
            assert_eq!(plain.change(1, change), Err(error), "{change}");
        }
        assert_eq!(
            plain.change(2, MembershipChange::Remove(id(3))),
            Err(MembershipError::NotLeader {
                leader: Some(id(1))
            })
        );
        let mut single = Net::with_leader(&[1]);
        assert_eq!(
            single.change(1, MembershipChange::Remove(id(1))),
            Err(MembershipError::LastVoter)
        );
    }

    #[test]
    fn a_leader_that_has_not_committed_its_own_entry_refuses() {
        let config = Config::new(id(1), ids(&[1, 2, 3]));
        let state = StartState {
            role: Some(Role::Leader),
            hard_state: crate::types::HardState {
                term: crate::types::Term(2),
                voted_for: Some(id(1)),
            },
            log: vec![Entry::new(crate::types::Term(1), "a")],
            commit_index: LogIndex(1),
            ..StartState::default()
        };
        let mut machine = Machine::with_state(config, state).unwrap();
        let mut actions = Vec::new();
        machine.step(
            Event::ChangeMembership {
                change: MembershipChange::AddLearner(id(4)),
                context: None,
            },
            &mut actions,
        );
        assert!(actions.contains(&Action::MembershipChangeEnded {
            change: MembershipChange::AddLearner(id(4)),
            result: Err(MembershipError::LeaderNotReady),
        }));
    }

    #[test]
    fn a_removed_leader_leads_until_the_change_commits_then_hands_over() {
        let mut net = Net::with_leader(&[1, 2, 3]);
        assert_eq!(
            net.change(1, MembershipChange::Remove(id(1))),
            Ok(LogIndex(2))
        );
        assert!(net.outputs.contains(&(
            id(1),
            Action::SteppedDown {
                reason: StepDownReason::Removed
            }
        )));
        // Its TimeoutNow made a complete voter leader at once.
        let leaders: Vec<u64> = [2, 3]
            .into_iter()
            .filter(|n| net.node(*n).role() == Role::Leader)
            .collect();
        assert_eq!(leaders.len(), 1, "{leaders:?}");
        assert_eq!(net.node(leaders[0]).membership(), &config(&[2, 3], &[]));
        // The removed node stands for nothing.
        net.queue.clear();
        net.step(id(1), Event::Timeout);
        net.step(id(1), Event::Timeout);
        assert_eq!(net.queue.len(), 0);
    }

    #[test]
    fn a_leader_whose_self_removal_reached_no_one_can_still_finish_it() {
        // Two voters; the leader removes itself, but the change reaches
        // only its own log, and it loses the other voter and steps down.
        let mut net = Net::with_leader(&[1, 2]);
        net.cut = vec![(id(1), id(2)), (id(2), id(1))];
        net.step(
            id(1),
            Event::ChangeMembership {
                change: MembershipChange::Remove(id(1)),
                context: None,
            },
        );
        net.settle();
        assert_eq!(net.node(1).membership(), &config(&[2], &[]));
        assert_eq!(net.node(2).membership(), &config(&[1, 2], &[]));
        for _ in 0..8 {
            net.step(id(1), Event::Timeout); // CheckQuorum
        }
        net.settle();
        assert_ne!(net.node(1).role(), Role::Leader);
        net.cut.clear();
        // Node 2 cannot win without node 1, whose log is longer; node 1,
        // still a voter of its committed configuration, stands, counts only
        // node 2's vote, finishes the change and hands over.
        for _ in 0..6 {
            net.step(id(2), Event::Timeout);
            net.step(id(1), Event::Timeout);
            net.settle();
            if net.node(2).role() == Role::Leader {
                break;
            }
        }
        assert_eq!(net.node(2).role(), Role::Leader);
        assert_eq!(net.node(2).membership(), &config(&[2], &[]));
        assert!(!net.node(2).membership_change_pending());
    }

    #[test]
    fn an_answer_from_before_a_remove_and_re_add_is_dropped() {
        let mut net = Net::with_leader(&[1, 2, 3]);
        net.append(1, "a");
        assert_eq!(net.node(1).commit_index(), LogIndex(2));
        assert_eq!(
            net.change(1, MembershipChange::Remove(id(3))),
            Ok(LogIndex(3))
        );
        // Node 3 comes back wiped: a fresh joiner with the same id.
        net.nodes.remove(&id(3));
        net.add_joiner(3, &[1, 2, 3]);
        net.cut.push((id(1), id(3)));
        assert_eq!(
            net.change(1, MembershipChange::AddLearner(id(3))),
            Ok(LogIndex(4))
        );
        // An answer of the old incarnation (epoch 0) arrives late.
        net.outputs.clear();
        let stale = AppendEntriesResp {
            term: net.node(1).term(),
            success: true,
            index: LogIndex(3),
            read_round: 0,
            epoch: 0,
        };
        net.step(
            id(1),
            Event::Receive {
                from: id(3),
                message: Message::AppendEntriesResp(stale),
            },
        );
        let matched = net.node(1).match_indices();
        assert!(matched.contains(&(id(3), LogIndex(0))), "{matched:?}");
        assert!(net.outputs.is_empty(), "{:?}", net.outputs);
        // The new incarnation's answers carry the epoch and count.
        net.cut.clear();
        // The second heartbeat takes the lost request as lost and probes.
        for _ in 0..2 {
            net.step(id(1), Event::Timeout);
            net.settle();
        }
        assert!(net.node(1).match_indices().contains(&(id(3), LogIndex(4))));
        assert_eq!(net.node(3).membership(), &config(&[1, 2], &[3]));
    }

    #[test]
    fn a_damaged_log_naming_its_node_the_sole_voter_still_repairs_but_a_one_node_cluster_cannot() {
        // Node 2's intact log ends with a configuration of node 2 alone;
        // the tail the damage cut had added nodes 5 and 7 back. It starts
        // repairing, and the leader of the real configuration repairs it.
        let config = Config::new(id(2), ids(&[1, 2, 3]));
        let log = vec![
            Entry::new(crate::types::Term(1), "a"),
            config_entry(1, &[2], &[]),
        ];
        let hard_state = crate::types::HardState {
            term: crate::types::Term(3),
            voted_for: None,
        };
        let mut machine = Machine::restore_damaged(config, hard_state, log.clone()).unwrap();
        assert!(machine.repairing());
        assert_eq!(machine.membership(), &config_of(&[2], &[]));
        let mut actions = Vec::new();
        let leader = Event::Receive {
            from: id(5),
            message: Message::AppendEntriesReq(crate::message::AppendEntriesReq {
                term: crate::types::Term(5),
                leader: id(5),
                prev_index: LogIndex(2),
                prev_term: crate::types::Term(1),
                entries: vec![config_entry(5, &[2, 5, 7], &[])].into(),
                commit: LogIndex(3),
                read_round: 0,
                epoch: 0,
            }),
        };
        machine.step(leader, &mut actions);
        assert!(!machine.repairing(), "{actions:?}");
        assert_eq!(machine.membership(), &config_of(&[2, 5, 7], &[]));
        // A cluster of one by its bootstrap configuration has no other copy.
        let alone = Config::new(id(2), ids(&[2]));
        let plain = vec![Entry::new(crate::types::Term(1), "a")];
        assert_eq!(
            Machine::restore_damaged(alone, hard_state, plain).unwrap_err(),
            crate::machine::StateError::CannotRepair
        );
    }

    #[test]
    fn a_truncated_configuration_gives_way_to_the_one_before() {
        let config = Config::new(id(2), ids(&[1, 2, 3]));
        let mut machine = Machine::new(config).unwrap();
        let mut actions = Vec::new();
        let learner = config_entry(1, &[1, 2, 3], &[4]);
        machine.step(
            append_req(1, LogIndex(0), crate::types::Term(0), vec![learner]),
            &mut actions,
        );
        assert_eq!(machine.membership(), &config_of(&[1, 2, 3], &[4]));
        assert!(machine.membership_change_pending());
        // The next leader's entry at index 1 wins.
        let other = Entry::new(crate::types::Term(2), "x");
        machine.step(
            append_req(2, LogIndex(0), crate::types::Term(0), vec![other]),
            &mut actions,
        );
        assert_eq!(machine.membership(), &config_of(&[1, 2, 3], &[]));
        assert!(!machine.membership_change_pending());
    }

    #[test]
    fn a_joiner_votes_only_once_it_holds_the_committed_entry_a_leader_showed_it() {
        let mut config = Config::new(id(3), ids(&[1, 2, 3]));
        config.join = true; // node 3 lost its disk and joins again
        let mut machine = Machine::new(config).unwrap();
        let mut actions = Vec::new();
        let vote_req = |term: u64, candidate: u64| Event::Receive {
            from: id(candidate),
            message: Message::VoteReq(crate::message::VoteReq {
                term: crate::types::Term(term),
                candidate: id(candidate),
                last_index: LogIndex(1),
                last_term: crate::types::Term(1),
                transfer: false,
            }),
        };
        let granted = |actions: &[Action]| {
            actions.iter().any(
                |a| matches!(a, Action::Send { message: Message::VoteResp(r), .. } if r.granted),
            )
        };
        // A stale candidate whose log still names node 3 a voter.
        machine.step(vote_req(2, 2), &mut actions);
        assert!(!granted(&actions), "{actions:?}");
        // The leader adds it as a learner; once that commits, it votes.
        actions.clear();
        let entries = vec![
            Entry::new(crate::types::Term(1), "a"),
            config_entry(3, &[1, 2], &[3]),
        ];
        let mut req = append_req(3, LogIndex(0), crate::types::Term(0), entries);
        if let Event::Receive {
            message: Message::AppendEntriesReq(r),
            ..
        } = &mut req
        {
            r.commit = LogIndex(2);
        }
        machine.step(req, &mut actions);
        assert_eq!(machine.commit_index(), LogIndex(2));
        actions.clear();
        machine.step(Event::Timeout, &mut actions); // the leader's lease ends
        let up_to_date = Event::Receive {
            from: id(2),
            message: Message::VoteReq(crate::message::VoteReq {
                term: crate::types::Term(4),
                candidate: id(2),
                last_index: LogIndex(2),
                last_term: crate::types::Term(3),
                transfer: false,
            }),
        };
        actions.clear();
        machine.step(up_to_date, &mut actions);
        assert!(granted(&actions), "{actions:?}");
    }

    fn config_of(voters: &[u64], learners: &[u64]) -> Membership {
        config(voters, learners)
    }

    fn config_entry(term: u64, voters: &[u64], learners: &[u64]) -> Entry {
        Entry::membership(crate::types::Term(term), &config(voters, learners))
    }

    fn append_req(
        term: u64,
        prev_index: LogIndex,
        prev_term: crate::types::Term,
        entries: Vec<Entry>,
    ) -> Event {
        Event::Receive {
            from: id(1),
            message: Message::AppendEntriesReq(crate::message::AppendEntriesReq {
                term: crate::types::Term(term),
                leader: id(1),
                prev_index,
                prev_term,
                entries: entries.into(),
                commit: LogIndex(0),
                read_round: 0,
                epoch: 0,
            }),
        }
    }
}
