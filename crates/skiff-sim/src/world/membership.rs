//! Membership churn (`--membership churn`), as operators replacing
//! machines would do it, at a seeded rate and much faster.
//!
//! The world holds, beyond the first voters `1..=nodes`, up to four spare
//! node ids (`nodes+1..`, within the network's nine). A spare is started
//! with an empty disk (`Config::join`) the moment the world asks a leader to
//! add it as a learner. Each change the world asks is drawn from what the
//! current leader's latest configuration allows: add a spare as a learner,
//! promote a learner (while the voters stay at most `nodes`, at least 3),
//! remove a voter (while more than `nodes - 2` remain; a third of the time
//! the leader itself) or a learner; one ask in ten is drawn blind (any
//! kind, any id), so that every refusal is exercised; one in eight goes to
//! a random running node instead of the leader (`NotLeader`).
//!
//! A node the committed configuration no longer holds (and the leader's
//! latest does not either) keeps running for a while, where it must not
//! disrupt the cluster, and is then stopped. A stopped spare may be added
//! again under its id, restarted from its disk, which is exactly the case
//! of stale answers from its former life (progress epochs); a machine that
//! lost its disk joins under a new id instead (see `start_fresh`). The
//! first voters, once removed, stay out: with an empty disk their id among
//! `Config::peers` would make them a voter of the bootstrap configuration.
//!
//! The leader removes itself too, from as few as two voters: a leader
//! whose self-removal reached only its own log before it lost the other
//! voter must be able to stand again and finish the change (the core's
//! rule 4; without it such a cluster never elected a leader again).
//!
//! Without churn none of this draws a random number, so that seeds of the
//! fixed profile replay exactly as before.

use super::batch::{kind, Input};
use super::{Phase, World, WorldEvent};
use crate::app::AppState;
use crate::checker::{change_ready, commit_quorum};
use crate::durable::Durable;
use crate::network::NODES_MAX;
use crate::options::MembershipProfile;
use crate::queue::Micros;
use crate::trace::hash_event;
use skiff_core::{
    Bytes, Event, LogIndex, Membership, MembershipChange, MembershipError, NodeId, Term,
};

/// Changes asked per simulated second.
const CHANGE_RATE_PER_S: f64 = 4.0;
/// Spare ids beyond the first voters, at most.
const SPARES_MAX: usize = 4;
/// One time in this many, a leader just elected is asked for a change
/// within its first round trip, before it can have committed an entry of
/// its term (the moment the single-server change's pitfall needs).
const AFTER_ELECTION_ONE_IN: u64 = 2;
/// One time in this many, a leader that just appended a configuration
/// crashes in its next batch that persists, so that the next leader
/// inherits an uncommitted change.
const CRASH_AFTER_CHANGE_ONE_IN: u64 = 4;
/// How long a node outside every known configuration keeps running before
/// the world decides to stop it: time for an add in flight to commit.
const OUTSIDE_GRACE_US: Micros = 1_000_000;
/// How long after that decision it is stopped: uniform in `[100 ms, 2 s)`.
const STOP_AFTER_US: (Micros, Micros) = (100_000, 2_000_000);

/// The world's view of the membership.
#[derive(Debug)]
pub(super) struct Churn {
    /// The latest configuration the agreed log committed, and its index
    /// (0: the bootstrap configuration).
    committed: (LogIndex, Membership),
    /// The highest term whose leader the churn has seen take office.
    led_term: Term,
    /// The latest configuration index seen appended by a leader.
    appended: LogIndex,
    /// The fewest voters a change may leave.
    voters_min: usize,
    /// The most voters a promotion may make.
    voters_max: usize,
}

impl Churn {
    /// The view at the start of a run of `nodes` first voters.
    fn new(nodes: usize) -> Churn {
        let voters = (1..=nodes as u64).map(NodeId);
        Churn {
            committed: (
                LogIndex(0),
                Membership::new(voters, []).expect("at least one first voter"),
            ),
            led_term: Term(0),
            appended: LogIndex(0),
            // Small clusters go down to one voter, so that a leader removes
            // itself from two; larger ones keep three.
            voters_min: if nodes >= 5 {
                nodes.saturating_sub(2).max(3)
            } else {
                1
            },
            voters_max: nodes.max(3),
        }
    }
}

/// The number of node ids a world of `nodes` first voters holds.
pub(super) fn pool_size(nodes: usize, profile: MembershipProfile) -> usize {
    match profile {
        MembershipProfile::Fixed => nodes,
        MembershipProfile::Churn => nodes + SPARES_MAX.min(NODES_MAX.saturating_sub(nodes)),
    }
}

/// The world's churn state, if the profile asks for churn.
pub(super) fn draw(nodes: usize, profile: MembershipProfile) -> Option<Box<Churn>> {
    (profile == MembershipProfile::Churn).then(|| Box::new(Churn::new(nodes)))
}

impl World {
    /// Schedules the next change, with churn on.
    pub(super) fn schedule_change(&mut self) {
        if self.churn.is_some() {
            self.schedule_after_gap(CHANGE_RATE_PER_S, WorldEvent::ChangeStart);
        }
    }

    /// The node indices of the voters the world counts on: those of the
    /// latest committed configuration, or every node without churn.
    pub(super) fn voter_indices(&self) -> Vec<usize> {
        match &self.churn {
            None => (0..self.nodes.len()).collect(),
            Some(churn) => churn
                .committed
                .1
                .voters()
                .iter()
                .map(|id| id.0 as usize - 1)
                .collect(),
        }
    }

    /// After a batch of node index `index`, with churn on: a leader just
    /// elected is sometimes asked for a change at once, and one that just
    /// appended a configuration sometimes crashes before it commits.
    pub(super) fn sharpen_churn(&mut self, index: usize) {
        if self.phase != Phase::Faulty {
            return;
        }
        let Some(churn) = self.churn.as_deref_mut() else {
            return;
        };
        let Some(machine) = self.nodes[index].machine.as_ref() else {
            return;
        };
        if machine.role() != skiff_core::Role::Leader {
            return;
        }
        let (term, pending) = (machine.term(), machine.membership_change_pending());
        let last = machine.last_index();
        let elected = term > churn.led_term;
        let appended = pending
            && last > churn.appended
            && machine.entry(last).is_some_and(|e| e.is_membership());
        if elected {
            churn.led_term = term;
        }
        if appended {
            churn.appended = last;
        }
        if elected && self.rng.below(AFTER_ELECTION_ONE_IN) == 0 {
            let soon = self.rng.below(5_000);
            self.queue
                .push(self.now + soon, WorldEvent::ChangeAfterElection);
        }
        if appended
            && self.rng.below(CRASH_AFTER_CHANGE_ONE_IN) == 0
            && !self.nodes[index].crash_armed
            && self.crash_allowed()
        {
            self.nodes[index].crash_armed = true;
            let id = self.nodes[index].id;
            self.trace_world(format_args!(
                "# crash of {id} armed for its next batch that persists, its change uncommitted"
            ));
        }
    }

    /// The world's next change.
    pub(super) fn change_fault(&mut self) {
        if self.phase != Phase::Faulty || self.churn.is_none() {
            return;
        }
        self.stop_outsiders();
        let running: Vec<usize> = (0..self.nodes.len())
            .filter(|i| self.nodes[*i].machine.is_some() && self.nodes[*i].stall.is_none())
            .collect();
        if running.is_empty() {
            return;
        }
        let leader = self.current_leader().filter(|l| running.contains(l));
        let Some(change) = self.draw_change(leader) else {
            return; // nothing an operator would ask now
        };
        let asked = match leader {
            Some(leader) if self.rng.below(8) != 0 => leader,
            _ => running[self.rng.index(running.len())],
        };
        if let MembershipChange::AddLearner(id) = change {
            let index = id.0 as usize - 1;
            if !self.nodes[index].present {
                self.start_fresh(index);
            }
        }
        let id = self.nodes[asked].id;
        self.stats.membership_asked += 1;
        let (what, node) = match change {
            MembershipChange::AddLearner(node) => (1, node),
            MembershipChange::Promote(node) => (2, node),
            MembershipChange::Remove(node) => (3, node),
        };
        hash_event(
            self.trace.hasher(),
            kind::MEMBERSHIP,
            self.now,
            asked,
            what << 32 | node.0,
        );
        self.trace_world(format_args!("# node {id} is asked to {change}"));
        self.checkers.membership_asked(id);
        let event = Event::ChangeMembership {
            change,
            context: None,
        };
        let before = self.nodes[asked].machine.as_ref().map(|m| {
            let commit = m.commit_index();
            (m.term(), m.last_index(), commit)
        });
        let commit_term = before.and_then(|(_, _, commit)| self.nodes[asked].disk.term_at(commit));
        self.run_batch(asked, Input::Step(event), None);
        self.check_change_ready(asked, before, commit_term);
    }

    /// After node index `index` handled a change: if it appended a
    /// configuration entry, it had committed an entry of its term.
    fn check_change_ready(
        &mut self,
        index: usize,
        before: Option<(Term, LogIndex, LogIndex)>,
        commit_term: Option<Term>,
    ) {
        let (Some((term, last, commit)), Some(machine)) =
            (before, self.nodes[index].machine.as_ref())
        else {
            return;
        };
        let appended = machine.last_index() > last
            && machine.term() == term
            && machine
                .entry(machine.last_index())
                .is_some_and(|e| e.is_membership());
        if !appended {
            return;
        }
        if let Err(failure) = change_ready::check(machine.id(), term, commit, commit_term) {
            self.fail(failure);
        }
    }

    /// A change drawn from what `leader`'s latest configuration allows (the
    /// committed one without a leader), or blind one time in ten; `None`
    /// when nothing is allowed.
    fn draw_change(&mut self, leader: Option<usize>) -> Option<MembershipChange> {
        let Some(churn) = self.churn.as_deref() else {
            unreachable!("changes are drawn only with churn on");
        };
        let view = leader
            .and_then(|l| self.nodes[l].machine.as_ref())
            .map_or(&churn.committed.1, |m| m.membership());
        let first = self.options.nodes as u64;
        let pool = self.nodes.len() as u64;
        let (voters, learners) = (view.voters().to_vec(), view.learners().to_vec());
        let spares: Vec<NodeId> = (first + 1..=pool)
            .map(NodeId)
            .filter(|id| !view.contains(*id) && !self.nodes[id.0 as usize - 1].present)
            .collect();
        let leader_id = leader.map(|l| self.nodes[l].id);
        // An operator promotes a learner once it has caught up: running,
        // not repairing, holding what the leader committed. (A repairing
        // voter grants no vote: two of four would leave no majority to
        // elect the leader their repair waits for.)
        let commit = leader
            .and_then(|l| self.nodes[l].machine.as_ref())
            .map_or(LogIndex(0), |m| m.commit_index());
        let caught_up = |id: &NodeId| {
            self.nodes[id.0 as usize - 1]
                .machine
                .as_ref()
                .is_some_and(|m| !m.repairing() && m.last_index() >= commit)
        };
        let ready: Vec<NodeId> = learners.iter().copied().filter(caught_up).collect();
        let (voters_min, voters_max) = (churn.voters_min, churn.voters_max);
        // While a disk is damaged or repairing, an operator keeps three
        // voters: with fewer, a majority needs the faulty node, which grants
        // no vote until it has repaired, from a leader nobody can then elect
        // (seed 2 of 3 nodes with --disk-faults), and a sole voter's damage
        // has no other copy to repair from.
        let faulty = self.nodes.iter().any(|node| node.faulty());
        let voters_min = if faulty {
            voters_min.max(3)
        } else {
            voters_min
        };
        let mut choices: Vec<MembershipChange> = Vec::with_capacity(4);
        if !spares.is_empty() {
            choices.push(MembershipChange::AddLearner(
                spares[self.rng.index(spares.len())],
            ));
        }
        if !ready.is_empty() && voters.len() < voters_max {
            choices.push(MembershipChange::Promote(
                ready[self.rng.index(ready.len())],
            ));
        }
        if voters.len() > voters_min {
            let others: Vec<NodeId> = voters.to_vec();
            let removed = match leader_id {
                Some(l) if voters.contains(&l) && self.rng.below(3) == 0 => l,
                _ => others[self.rng.index(others.len())],
            };
            choices.push(MembershipChange::Remove(removed));
        }
        if !learners.is_empty() {
            choices.push(MembershipChange::Remove(
                learners[self.rng.index(learners.len())],
            ));
        }
        if self.rng.below(10) == 0 {
            // Blind: any kind, any id of the pool, mostly refused. One
            // that would take the voters out of bounds, or promote a
            // learner, is replaced by the removal of a non-member (refused).
            let id = NodeId(self.rng.between(1, pool + 1));
            let blind = match self.rng.below(3) {
                0 if id.0 > first => MembershipChange::AddLearner(id),
                0 | 1 => MembershipChange::Promote(id),
                _ => MembershipChange::Remove(id),
            };
            let grows = matches!(blind, MembershipChange::Promote(id) if view.is_learner(id));
            let shrinks = matches!(blind, MembershipChange::Remove(id) if view.is_voter(id))
                && (voters.len() <= voters_min || voters.len() == 2)
                && voters.len() > 1;
            if !grows && !shrinks {
                return Some(blind);
            }
            return Some(MembershipChange::Remove(NodeId(pool + 1)));
        }
        if choices.is_empty() {
            return None;
        }
        Some(choices[self.rng.index(choices.len())])
    }

    /// Whether a configuration in play has fewer than three voters: the
    /// committed one, or any running node's latest (the leader's may not
    /// have committed yet). Damage then waits (`storage.rs`).
    pub(super) fn few_voters_in_play(&self) -> bool {
        let Some(churn) = self.churn.as_deref() else {
            return false;
        };
        let few = |membership: &Membership| membership.voters().len() < 3;
        few(&churn.committed.1)
            || (self.nodes.iter())
                .filter_map(|node| node.machine.as_ref())
                .any(|machine| few(machine.membership()))
    }

    /// Starts spare node index `index` to join: a new machine with an
    /// empty disk the first time, and the same machine restarted from its
    /// disk when it was a member before (removed, stopped, and now added
    /// again under its id: the answers of its former membership still in
    /// flight are exactly what the leader's progress epochs must drop).
    ///
    /// A machine that lost its disk does not come back under its old id:
    /// it forgot the votes it cast, and stale configurations elsewhere still
    /// name it a voter, so it must join under a new id (README, "Replacing
    /// a machine"). The core's rule for joiners (`machine/membership.rs`,
    /// rule 6) narrows that hazard but does not close it: with wiped
    /// re-adds the simulator still finds a stale candidate elected.
    fn start_fresh(&mut self, index: usize) {
        let rejoins = self.nodes[index].disk != Durable::default();
        let node = &mut self.nodes[index];
        node.rejoin = false;
        node.reads.clear();
        node.present = true;
        node.stopping = false;
        node.joined_at = self.now;
        node.damage_pending = false;
        // A new life: what a former one left pending means nothing now.
        node.incarnation += 1;
        node.alarm_generation += 1;
        let id = node.id;
        self.stats.nodes_added += 1;
        if rejoins {
            self.trace_world(format_args!(
                "# removed node {id} restarts from its disk to join again"
            ));
            self.start_machine(index, true);
            return;
        }
        self.nodes[index].app = AppState::default();
        self.checkers.fresh(id);
        self.trace_world(format_args!("# spare node {id} starts fresh to join"));
        self.start_machine(index, false);
    }

    /// Schedules the stop of every present node that neither the committed
    /// configuration nor the leader's latest holds, after its grace.
    fn stop_outsiders(&mut self) {
        let Some(churn) = self.churn.as_deref() else {
            return;
        };
        let latest = self
            .current_leader()
            .and_then(|l| self.nodes[l].machine.as_ref())
            .map(|m| m.membership().clone());
        let outsiders: Vec<usize> = (0..self.nodes.len())
            .filter(|i| {
                let node = &self.nodes[*i];
                node.present
                    && !node.stopping
                    && self.now.saturating_sub(node.joined_at) >= OUTSIDE_GRACE_US
                    && !churn.committed.1.contains(node.id)
                    && !latest.as_ref().is_some_and(|m| m.contains(node.id))
            })
            .collect();
        for index in outsiders {
            self.nodes[index].stopping = true;
            let after = self.rng.between(STOP_AFTER_US.0, STOP_AFTER_US.1);
            let incarnation = self.nodes[index].incarnation;
            self.queue.push(
                self.now + after,
                WorldEvent::Stop {
                    node: index,
                    incarnation,
                },
            );
        }
    }

    /// Stops node index `index` for good, unless a configuration took it
    /// back meanwhile (then it stays).
    pub(super) fn stop(&mut self, index: usize, incarnation: u64) {
        let node = &self.nodes[index];
        if !node.present || node.incarnation != incarnation {
            return;
        }
        let id = node.id;
        let held = self.churn.as_deref().is_some_and(|churn| {
            churn.committed.1.contains(id)
                || self
                    .current_leader()
                    .and_then(|l| self.nodes[l].machine.as_ref())
                    .is_some_and(|m| m.membership().contains(id))
        });
        if held {
            self.nodes[index].stopping = false;
            return;
        }
        if self.nodes[index].machine.is_some() {
            self.lose_machine(index);
        }
        let node = &mut self.nodes[index];
        node.present = false;
        node.stopping = false;
        node.incarnation += 1;
        self.stats.nodes_removed += 1;
        self.trace_world(format_args!("# removed node {id} is stopped"));
    }

    /// A `Commit` of node index `index` at `at`: a configuration entry
    /// committed for the first time becomes the world's committed view.
    pub(super) fn note_config_commit(&mut self, index: usize, at: LogIndex, data: &Bytes) {
        let Some(churn) = self.churn.as_deref_mut() else {
            return;
        };
        if at <= churn.committed.0 {
            return;
        }
        let is_config = self.nodes[index]
            .machine
            .as_ref()
            .and_then(|m| m.entry(at))
            .is_some_and(|entry| entry.is_membership());
        if !is_config {
            return;
        }
        let Ok(membership) = Membership::decode(data) else {
            return; // Durable State and the core's own decoding catch this
        };
        self.checkers.config_committed(&membership);
        churn.committed = (at, membership);
    }

    /// A `MembershipChangeEnded` action: counted.
    pub(super) fn change_ended(&mut self, result: Result<LogIndex, MembershipError>) {
        match result {
            Ok(_) => self.stats.membership_committed += 1,
            Err(error) => {
                *self
                    .stats
                    .membership_refused
                    .entry(error.name())
                    .or_default() += 1;
            }
        }
    }

    /// A `Commit` of `at` in a batch of node index `index`: when the node
    /// led before the batch and still leads the same term, the entry must
    /// be held by a majority of its latest configuration's voters.
    pub(super) fn check_commit_quorum(
        &self,
        index: usize,
        at: LogIndex,
    ) -> Result<(), crate::checker::Failure> {
        let Some(led) = self.checkers.batch_led() else {
            return Ok(());
        };
        let Some(machine) = self.nodes[index].machine.as_ref() else {
            return Ok(());
        };
        if machine.term() != led {
            return Ok(());
        }
        let disk = &self.nodes[index].disk;
        let Some(term) = disk.term_at(at) else {
            return Ok(()); // Commit Durable reports it
        };
        let holds = |voter: NodeId| {
            let node = self.nodes.get((voter.0 as usize).wrapping_sub(1));
            node.is_some_and(|n| n.faulty() || held(&n.disk, at, term))
        };
        commit_quorum::check(machine.id(), at, term, machine.membership(), holds)
    }
}

/// Whether `disk` holds the entry of `term` at `index`, or a snapshot
/// past it (of committed entries: it held it then).
fn held(disk: &Durable, index: LogIndex, term: Term) -> bool {
    index <= disk.base().index || disk.term_at(index) == Some(term)
}
