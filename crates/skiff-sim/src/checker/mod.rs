//! Safety and liveness checkers, run after every action and every batch.
//!
//! Each rule lives in its own module and reports a [`Failure`] naming the
//! rule and the nodes involved; the world adds the step and the simulated
//! time to make a [`Violation`]. [`Checkers`] is the one entry point a
//! driver calls: `begin_batch`, then `action` before performing each
//! action, then `end_batch` (or `abort_batch` when the node crashed in the
//! middle), plus `restarted` and the client hooks (appends acknowledged,
//! reads asked, answered and held).
//!
//! Every check costs O(1) amortised per action, except Leader Completeness,
//! which walks the agreed sequence once per election.

pub mod agreed;
pub mod appended_once;
pub mod applied_state;
pub mod change_answered_once;
pub mod change_ready;
pub mod check_quorum;
pub mod commit_durable;
pub mod commit_quorum;
pub mod committed_kept;
pub mod current_term_commit;
pub mod damage_noticed;
pub mod durable_state;
pub mod election_safety;
pub mod forgery_refused;
pub mod leader_after_heal;
pub mod leader_append_only;
pub mod leader_completeness;
pub mod lease_respected;
pub mod linearizable_read;
pub mod liveness;
pub mod log_matching;
pub mod no_false_rejection;
pub mod outstanding;
pub mod overwritten;
pub mod persistence_order;
pub mod prevote_first;
pub mod read_answered_once;
pub mod removed_quiet;
pub mod repair_before_vote;
pub mod snapshot_state;
pub mod state_machine_safety;
pub mod term_adoption;
pub mod transfer_answered_once;
pub mod vote_once;

use crate::app::{AppState, Snapshot};
use crate::durable::Durable;
use crate::hash::StableBuildHasher;
use crate::queue::Micros;
use agreed::AgreedLog;
use linearizable_read::ReadFloor;
use prevote_first::Stepped;
use skiff_core::{
    Action, Bytes, CommitError, HardState, LogIndex, Machine, Membership, Message, NodeId, ReadId,
    Role, SnapshotMeta, Term,
};
use state_machine_safety::{CommitOutcome, StateMachineSafety};
use std::collections::{HashMap, HashSet};
use std::fmt;

/// A property the simulator checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rule {
    /// At most one leader per term.
    ElectionSafety,
    /// A leader never overwrites or deletes entries of its log.
    LeaderAppendOnly,
    /// Same index and term means identical prefixes.
    LogMatching,
    /// Every committed entry is in the log of every later leader.
    LeaderCompleteness,
    /// Every node's commit stream is a prefix of one agreed sequence.
    StateMachineSafety,
    /// A node commits only entries on its own disk.
    CommitDurable,
    /// A committed entry is never truncated.
    CommittedKept,
    /// A leader counts replicas only of entries of its own term.
    CurrentTermCommit,
    /// An acknowledged append is in the agreed sequence once, at its index.
    AppendedOnce,
    /// `Overwritten` is never reported for an entry that commits.
    OverwrittenNeverCommits,
    /// Persistence comes before every `Send` and `Commit` of a batch.
    PersistenceOrder,
    /// The disk mirrors the machine's term, vote and log.
    DurableState,
    /// A higher term in a message is adopted at once.
    TermAdoption,
    /// One vote per term, across crashes.
    VoteOnce,
    /// After faults stop, an append commits within the bound.
    Liveness,
    /// A node whose disk lost synced records restarts repairing.
    DamageNoticed,
    /// No vote or candidacy from a log lacking a committed entry the node
    /// acknowledged before a disk fault removed it.
    RepairBeforeVote,
    /// No correct peer's message is rejected as impossible.
    NoFalseRejection,
    /// A forged message is rejected, and changes nothing.
    ForgeryRefused,
    /// Every snapshot holds the fold of the committed log through its index.
    SnapshotState,
    /// A node's applied state is the fold of the committed log through its
    /// applied index, and never goes back.
    AppliedState,
    /// A node that accepted its leader's request grants no (pre-)vote for
    /// an election timeout (with PreVote or CheckQuorum on).
    LeaseRespected,
    /// A node raises its term only by adopting it, or by standing after a
    /// majority granted it a pre-vote for that term (with PreVote on).
    PreVoteFirst,
    /// A leader that heard nothing from a majority for an election timeout
    /// and two heartbeats leads no more after its next heartbeat alarm
    /// (with CheckQuorum on).
    CheckQuorum,
    /// After a heal, a majority follows a leader within a bound.
    LeaderAfterHeal,
    /// A read returns the agreed log's state through the index it was
    /// served at, which covers every append acknowledged and every read
    /// answered before it was sent.
    LinearizableRead,
    /// Every read a machine is asked for is answered exactly once per life
    /// of the node, and held until then.
    ReadAnsweredOnce,
    /// Every leadership transfer a machine is asked for is answered exactly
    /// once per life of the node.
    TransferAnsweredOnce,
    /// Every entry a leader commits is held by a majority of the voters
    /// of its latest configuration.
    CommitQuorum,
    /// Every membership change a machine is asked for is answered exactly
    /// once per life of the node.
    ChangeAnsweredOnce,
    /// A node removed by a committed configuration raises no voter's term
    /// (with PreVote on).
    RemovedNodeQuiet,
    /// A leader appends a configuration only after committing an entry of
    /// its own term.
    ChangeReady,
    /// A machine panicked (a broken invariant inside the core).
    Panic,
}

impl Rule {
    /// The rule's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Rule::ElectionSafety => "Election Safety",
            Rule::LeaderAppendOnly => "Leader Append-Only",
            Rule::LogMatching => "Log Matching",
            Rule::LeaderCompleteness => "Leader Completeness",
            Rule::StateMachineSafety => "State Machine Safety",
            Rule::CommitDurable => "Commit Durable",
            Rule::CommittedKept => "Committed Kept",
            Rule::CurrentTermCommit => "Current-Term Commit",
            Rule::AppendedOnce => "Appended Once",
            Rule::OverwrittenNeverCommits => "Overwritten Never Commits",
            Rule::PersistenceOrder => "Persistence Order",
            Rule::DurableState => "Durable State",
            Rule::TermAdoption => "Term Adoption",
            Rule::VoteOnce => "Vote Once",
            Rule::Liveness => "Liveness",
            Rule::DamageNoticed => "Damage Noticed",
            Rule::RepairBeforeVote => "Repair Before Vote",
            Rule::NoFalseRejection => "No False Rejection",
            Rule::ForgeryRefused => "Forgery Refused",
            Rule::SnapshotState => "Snapshot State",
            Rule::AppliedState => "Applied State",
            Rule::LeaseRespected => "Lease Respected",
            Rule::PreVoteFirst => "PreVote Before Standing",
            Rule::CheckQuorum => "Check Quorum",
            Rule::LeaderAfterHeal => "Leader After Heal",
            Rule::LinearizableRead => "Linearizable Read",
            Rule::ReadAnsweredOnce => "Read Answered Once",
            Rule::TransferAnsweredOnce => "Transfer Answered Once",
            Rule::CommitQuorum => "Commit Quorum",
            Rule::ChangeAnsweredOnce => "Change Answered Once",
            Rule::RemovedNodeQuiet => "Removed Node Quiet",
            Rule::ChangeReady => "Change Ready",
            Rule::Panic => "Panic",
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A broken rule, as a checker sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The rule broken.
    pub rule: Rule,
    /// The nodes involved.
    pub nodes: Vec<NodeId>,
    /// What happened, in a sentence.
    pub detail: String,
}

impl Failure {
    /// A failure of `rule` involving `nodes`.
    pub fn new(rule: Rule, nodes: Vec<NodeId>, detail: String) -> Failure {
        Failure {
            rule,
            nodes,
            detail,
        }
    }
}

/// A broken rule, placed in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The rule broken.
    pub rule: Rule,
    /// The nodes involved.
    pub nodes: Vec<NodeId>,
    /// What happened.
    pub detail: String,
    /// The world step (event) during which it was found.
    pub step: u64,
    /// The simulated time, in microseconds.
    pub time_us: Micros,
}

impl Violation {
    /// Places `failure` at `step` and `time_us`.
    pub fn new(failure: Failure, step: u64, time_us: Micros) -> Violation {
        Violation {
            rule: failure.rule,
            nodes: failure.nodes,
            detail: failure.detail,
            step,
            time_us,
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nodes: Vec<String> = self.nodes.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{} violated at step {}, t={}.{:03} ms, nodes [{}]: {}",
            self.rule,
            self.step,
            self.time_us / 1000,
            self.time_us % 1000,
            nodes.join(","),
            self.detail
        )
    }
}

/// What the checkers need of a machine's state before or after a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeView {
    /// Its role.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// Term and vote.
    pub hard_state: HardState,
    /// Its last log index.
    pub last_index: LogIndex,
    /// Its last log term.
    pub last_term: Term,
    /// The snapshot its log starts after.
    pub snapshot: SnapshotMeta,
    /// It hears a live leader (the leader's lease), so it adopts no term
    /// from a vote request.
    pub hears_leader: bool,
}

impl NodeView {
    /// The view of `machine` now.
    pub fn of(machine: &Machine) -> NodeView {
        NodeView {
            role: machine.role(),
            term: machine.term(),
            hard_state: machine.hard_state(),
            last_index: machine.last_index(),
            last_term: machine.last_term(),
            snapshot: machine.snapshot(),
            hears_leader: machine.hears_leader(),
        }
    }
}

/// The batch in progress.
#[derive(Debug)]
struct Batch {
    node: NodeId,
    before: NodeView,
    received_term: Option<Term>,
    /// What the machine was handed (`receiving`, `timing_out`).
    stepped: Stepped,
    /// The term and sender of an `AppendEntriesReq` or `InstallSnapshotReq`
    /// handed to it.
    leader_request: Option<(Term, NodeId)>,
    /// The machine was handed a `VoteReq` marked as a leadership
    /// transfer's, which a node holding the leader's lease may grant.
    transfer_vote: bool,
}

/// The leadership rules' settings: which of PreVote and CheckQuorum the
/// nodes run, and their timing. [`Leadership::default`] checks none of the
/// rules that depend on them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Leadership {
    /// The nodes run PreVote.
    pub pre_vote: bool,
    /// The nodes run CheckQuorum.
    pub check_quorum: bool,
    /// The nodes' base election timeout, in microseconds.
    pub election_timeout_us: Micros,
    /// The nodes' heartbeat interval, in microseconds.
    pub heartbeat_us: Micros,
}

/// Every rule, fed by one driver.
#[derive(Debug)]
pub struct Checkers {
    election: election_safety::ElectionSafety,
    append_only: leader_append_only::LeaderAppendOnly,
    leader_commit: current_term_commit::CurrentTermCommit,
    matching: log_matching::LogMatching,
    commits: StateMachineSafety,
    overwritten: overwritten::OverwrittenNeverCommits,
    order: persistence_order::PersistenceOrder,
    votes: vote_once::VoteOnce,
    repair: repair_before_vote::RepairBeforeVote,
    liveness: liveness::Liveness,
    forgery: forgery_refused::ForgeryRefused,
    lease: lease_respected::LeaseRespected,
    prevote: prevote_first::PreVoteFirst,
    check_quorum: check_quorum::CheckQuorum,
    reads: linearizable_read::LinearizableRead,
    reads_once: read_answered_once::ReadAnsweredOnce,
    transfers_once: transfer_answered_once::TransferAnsweredOnce,
    changes_once: change_answered_once::ChangeAnsweredOnce,
    removed_quiet: removed_quiet::RemovedQuiet,
    /// Each node's latest configuration, as the driver last reported it
    /// ([`Checkers::note_membership`]); `peers` as voters for a node not
    /// reported.
    memberships: HashMap<NodeId, Membership, StableBuildHasher>,
    /// Each node told by the leader of its term to stand (`TimeoutNow`),
    /// with the term it may stand for: the terms its vote requests marked
    /// `transfer` may honestly name (one per transfer; a delayed request
    /// may arrive long after).
    transfer_told: HashSet<(NodeId, Term), StableBuildHasher>,
    leadership: Leadership,
    peers: Vec<NodeId>,
    now: Micros,
    batch: Option<Batch>,
}

impl Checkers {
    /// Checkers for a cluster of nodes `1..=nodes`.
    pub fn new(nodes: usize) -> Checkers {
        let peers: Vec<NodeId> = (1..=nodes as u64).map(NodeId).collect();
        let bootstrap = Membership::new(peers.iter().copied(), []).unwrap_or_else(|| {
            Membership::new([NodeId(1)], []).expect("one voter is a configuration")
        });
        Checkers {
            election: Default::default(),
            append_only: Default::default(),
            leader_commit: Default::default(),
            matching: Default::default(),
            commits: StateMachineSafety::new(nodes),
            overwritten: Default::default(),
            order: Default::default(),
            votes: Default::default(),
            repair: Default::default(),
            liveness: Default::default(),
            forgery: Default::default(),
            lease: Default::default(),
            prevote: Default::default(),
            check_quorum: Default::default(),
            reads: Default::default(),
            reads_once: Default::default(),
            transfers_once: Default::default(),
            changes_once: Default::default(),
            removed_quiet: removed_quiet::RemovedQuiet::new(bootstrap),
            memberships: Default::default(),
            transfer_told: Default::default(),
            leadership: Leadership::default(),
            peers,
            now: 0,
            batch: None,
        }
    }

    /// The same checkers, for a world whose node ids run to `pool` (spare
    /// nodes beyond the first voters, which membership changes add).
    pub fn with_pool(mut self, pool: usize) -> Checkers {
        self.commits = StateMachineSafety::new(pool.max(self.peers.len()));
        self
    }

    /// The same checkers, also checking the rules of PreVote, CheckQuorum
    /// and the lease as `leadership` says the nodes run them.
    pub fn with_leadership(mut self, leadership: Leadership) -> Checkers {
        self.leadership = leadership;
        self
    }

    /// The simulated time is now `now` (the time rules read it).
    pub fn set_now(&mut self, now: Micros) {
        self.now = now;
    }

    /// The batch in progress steps `message` from `from`.
    pub fn receiving(&mut self, from: NodeId, message: &Message) {
        let Some(batch) = self.batch.as_mut() else {
            return;
        };
        batch.stepped = match message {
            Message::TimeoutNow(req) => {
                let from_leader = self.election.leader_of(req.term) == Some(from);
                if from_leader {
                    let stands_for = Term(req.term.0.saturating_add(1));
                    self.transfer_told.insert((batch.node, stands_for));
                }
                Stepped::TimeoutNow {
                    from,
                    term: req.term,
                    from_leader,
                }
            }
            _ => Stepped::Message {
                from,
                term: message.term(),
                prevote_grant: matches!(message, Message::PreVoteResp(resp) if resp.granted),
            },
        };
        batch.transfer_vote = matches!(message, Message::VoteReq(req) if req.transfer);
        // A forgery is rejected: it renews no lease, whatever it claims.
        let leader_request = matches!(
            message,
            Message::AppendEntriesReq(_) | Message::InstallSnapshotReq(_)
        );
        if leader_request && !self.forgery.pending() {
            batch.leader_request = Some((message.term(), from));
        }
        self.check_quorum
            .observe_message(batch.node, from, self.now);
    }

    /// The batch in progress steps the node's alarm.
    pub fn timing_out(&mut self) {
        if let Some(batch) = self.batch.as_mut() {
            batch.stepped = Stepped::Timeout;
        }
    }

    /// `node` crashed: what it remembered of leaders and pre-votes is gone.
    pub fn crashed(&mut self, node: NodeId) {
        self.lease.forget(node);
        self.prevote.forget(node);
        self.reads_once.crashed(node);
        self.transfers_once.crashed(node);
        self.changes_once.crashed(node);
    }

    /// `node` starts a new life with an empty disk (a spare joining for
    /// the first time): its commit stream starts over. Its former votes
    /// and acknowledgements still bind it (Vote Once, Repair Before Vote):
    /// the cluster may still count them.
    pub fn fresh(&mut self, node: NodeId) {
        self.crashed(node);
        self.commits.restarted(node, LogIndex(0));
        self.memberships.remove(&node);
    }

    /// `membership` is `node`'s latest configuration now (drivers report
    /// it before `end_batch`; cheap when it did not change).
    pub fn note_membership(&mut self, node: NodeId, membership: &Membership) {
        if self.memberships.get(&node) != Some(membership) {
            self.memberships.insert(node, membership.clone());
        }
    }

    /// The configuration `membership` committed, the first time its entry
    /// did anywhere.
    pub fn config_committed(&mut self, membership: &Membership) {
        self.removed_quiet.committed(membership);
    }

    /// `node`'s machine is about to be asked for a membership change.
    pub fn membership_asked(&mut self, node: NodeId) {
        self.changes_once.asked(node);
    }

    /// After a batch performed in full: every change `node` owes is one
    /// of the `held` its machine holds.
    pub fn changes_held(&self, node: NodeId, held: usize) -> Result<(), Failure> {
        self.changes_once.check_held(node, held)
    }

    /// The term the node of the batch in progress led before it, if it led.
    pub fn batch_led(&self) -> Option<Term> {
        let batch = self.batch.as_ref()?;
        (batch.before.role == Role::Leader).then_some(batch.before.term)
    }

    /// `node` goes on at the current time after being blocked by a stalled
    /// disk, during which its alarms could not run.
    pub fn resumed(&mut self, node: NodeId) {
        self.check_quorum.resumed(node, self.now);
    }

    fn lease_on(&self) -> bool {
        self.leadership.pre_vote || self.leadership.check_quorum
    }

    fn check_lease(&self, node: NodeId, granted: Term, what: &str) -> Result<(), Failure> {
        if !self.lease_on() {
            return Ok(());
        }
        let timeout = self.leadership.election_timeout_us;
        self.lease
            .check_grant(node, granted, self.now, timeout, what)
    }

    /// The next batch handles a forged message that must be rejected as
    /// `reason` (a [`skiff_core::Rejection`] name).
    pub fn expect_rejection(&mut self, reason: &'static str) {
        self.forgery.expect(reason);
    }

    /// The agreed sequence so far.
    pub fn agreed(&self) -> &AgreedLog {
        self.commits.agreed()
    }

    /// Elections won so far (distinct terms with a leader).
    pub fn elections(&self) -> u64 {
        self.election.elections()
    }

    /// The liveness tracker.
    pub fn liveness(&mut self) -> &mut liveness::Liveness {
        &mut self.liveness
    }

    /// `node`, in state `before`, starts a batch; `received_term` is the term
    /// of the message it handles, if the event is a message.
    pub fn begin_batch(&mut self, node: NodeId, before: NodeView, received_term: Option<Term>) {
        self.append_only.begin_batch();
        self.leader_commit.begin_batch();
        self.order.begin_batch();
        self.batch = Some(Batch {
            node,
            before,
            received_term,
            stepped: Stepped::Other,
            leader_request: None,
            transfer_vote: false,
        });
    }

    /// `node` is about to perform `action`; `disk` is its disk before it.
    pub fn action(&mut self, node: NodeId, action: &Action, disk: &Durable) -> Result<(), Failure> {
        self.order.observe(node, action)?;
        if !self.forgery.observe(action) {
            no_false_rejection::check(node, action)?;
        }
        if action.is_persistence() {
            durable_state::check_action(node, action, disk)?;
        }
        match action {
            Action::LogStore { .. } => {
                // Entry by entry, each after the one before it.
                let mut prev_term = None;
                for (index, entry) in action.stored_entries() {
                    self.append_only.observe_store(index);
                    let prev = prev_term
                        .or_else(|| disk.term_at(index.prev()))
                        .unwrap_or_default();
                    self.matching.observe_store(node, index, entry, prev)?;
                    prev_term = Some(entry.term);
                }
                Ok(())
            }
            Action::LogTruncate { from } => {
                self.append_only.observe_truncate(*from);
                self.repair.observe_truncate(node, *from);
                committed_kept::check_truncate(node, *from, disk, self.commits.agreed())
            }
            Action::Commit { data, result } => self.commit(node, data, *result, disk),
            Action::ReadReady { id, .. } => self.reads_once.answered(node, *id, "ReadReady"),
            Action::ReadFailed { id, .. } => self.reads_once.answered(node, *id, "ReadFailed"),
            Action::TransferEnded { .. } => self.transfers_once.answered(node),
            Action::MembershipChangeEnded { .. } => self.changes_once.answered(node),
            Action::Send {
                to,
                message: Message::VoteResp(resp),
            } if resp.granted => {
                let what = format!("granted its vote of term {} to {to}", resp.term);
                // A transfer's candidate, told to stand by the leader, may be
                // granted a vote within the lease (`lease_respected.rs`).
                let transfer = self.batch.as_ref().is_some_and(|b| b.transfer_vote)
                    && self.transfer_told.contains(&(*to, resp.term));
                if !transfer {
                    self.check_lease(node, resp.term, &what)?;
                }
                self.repair
                    .check(node, disk, self.commits.agreed(), &what)?;
                self.votes.observe_grant(node, resp.term, *to)
            }
            Action::Send {
                to,
                message: Message::PreVoteResp(resp),
            } if resp.granted => {
                let what = format!("granted a pre-vote of term {} to {to}", resp.term);
                self.check_lease(node, resp.term, &what)
            }
            Action::Send {
                message: Message::AppendEntriesResp(resp),
                ..
            } if resp.success => {
                self.repair.observe_ack(node, resp.index);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn commit(
        &mut self,
        node: NodeId,
        data: &Bytes,
        result: Result<LogIndex, CommitError>,
        disk: &Durable,
    ) -> Result<(), Failure> {
        match result {
            Ok(index) => {
                commit_durable::check_commit(node, index, data, disk)?;
                let term = disk.term_at(index).unwrap_or_default();
                // Persistence comes first in a batch, so the disk's term is
                // the node's current term.
                let node_term = disk.hard_state().term;
                self.leader_commit.observe_commit(index, term);
                match self
                    .commits
                    .observe_commit(node, node_term, index, term, data)?
                {
                    CommitOutcome::Known => Ok(()),
                    // A configuration may rightly recur (added, removed,
                    // added again): only client data is appended once.
                    CommitOutcome::Extended { .. } if is_config(data) => Ok(()),
                    CommitOutcome::Extended { earlier } => {
                        appended_once::check_extension(node, data, index, earlier)?;
                        self.overwritten.observe_commit(data, index)
                    }
                }
            }
            Err(CommitError::Overwritten { .. }) if is_config(data) => Ok(()),
            Err(CommitError::Overwritten { index, .. }) => {
                self.overwritten
                    .observe_report(node, data, index, self.commits.agreed())
            }
            // A refusal (`NotLeader`, or a kind added later) claims nothing
            // about any log, so no rule can be broken by it.
            Err(_) => Ok(()),
        }
    }

    /// The batch of `node` finished; `after` is its machine's state now and
    /// `disk` its disk.
    pub fn end_batch(
        &mut self,
        node: NodeId,
        after: NodeView,
        disk: &Durable,
    ) -> Result<(), Failure> {
        let Some(batch) = self.batch.take().filter(|b| b.node == node) else {
            return Ok(());
        };
        let before = batch.before;
        self.forgery.end_batch(node, &before, &after)?;
        // A leader's term cannot change while it leads, so checking at the
        // moment it takes office covers its whole tenure.
        let took_office = after.role == Role::Leader
            && (before.role != Role::Leader || before.term != after.term);
        let stood = after.role == Role::Candidate
            && (before.role != Role::Candidate || before.term != after.term);
        if stood {
            // A node whose own latest configuration already leaves it out
            // stands only to finish its removal (the core's rule 4), which
            // it may: it is not one that never heard of it.
            let caretaker = self
                .memberships
                .get(&node)
                .is_some_and(|latest| !latest.is_voter(node));
            if !caretaker {
                self.removed_quiet.stood(node, after.term);
            }
            let what = format!("stood for election in term {}", after.term);
            self.repair
                .check(node, disk, self.commits.agreed(), &what)?;
        }
        if took_office {
            self.election.observe_leader(node, after.term)?;
            leader_completeness::check_new_leader(node, after.term, disk, self.agreed())?;
        }
        self.append_only.end_batch(node, &before, &after)?;
        self.leader_commit.end_batch(node, &after)?;
        if let Some(received) = batch.received_term {
            term_adoption::check(node, received, &before, &after)?;
        }
        if self.leadership.pre_vote && after.term > before.term && !stood && !took_office {
            self.removed_quiet.check_adoption(node, after.term)?;
        }
        self.end_leadership_batch(node, &batch, &after)?;
        durable_state::check_batch_end(node, &after, disk)
    }

    /// The rules of PreVote, CheckQuorum and the lease, at the end of a batch.
    fn end_leadership_batch(
        &mut self,
        node: NodeId,
        batch: &Batch,
        after: &NodeView,
    ) -> Result<(), Failure> {
        let (before, now) = (&batch.before, self.now);
        // The node's own latest configuration sets its majority, as the
        // core counts it.
        let voters = self
            .memberships
            .get(&node)
            .map_or(&self.peers[..], |m| m.voters());
        let quorum = voters.len() / 2 + 1;
        if self.lease_on() {
            self.lease
                .end_batch(node, before, after, batch.leader_request, now);
        }
        if self.leadership.pre_vote {
            self.prevote
                .end_batch(node, before, after, batch.stepped, voters, quorum)?;
        }
        if self.leadership.check_quorum {
            let l = &self.leadership;
            let window = l.election_timeout_us + 2 * l.heartbeat_us;
            let timeout = batch.stepped == Stepped::Timeout;
            self.check_quorum
                .end_batch(node, before, after, timeout, voters, quorum, now, window)?;
        }
        Ok(())
    }

    /// The batch in progress ended in a crash; there is no state after it.
    pub fn abort_batch(&mut self) {
        self.batch = None;
        self.forgery.abort_batch();
    }

    /// `node` restarted from its disk, whose current snapshot is
    /// `snapshot` (0:0: none); its application state is `state`, if the
    /// driver models one.
    pub fn restarted(
        &mut self,
        node: NodeId,
        snapshot: SnapshotMeta,
        state: Option<&AppState>,
    ) -> Result<(), Failure> {
        self.commits.restarted(node, snapshot.index);
        match state {
            Some(state) => applied_state::check(node, state, self.agreed()),
            None => Ok(()),
        }
    }

    /// `node` applied a committed entry; its application state is now `state`.
    pub fn applied(&mut self, node: NodeId, state: &AppState) -> Result<(), Failure> {
        applied_state::check(node, state, self.agreed())
    }

    /// `node` took `snapshot` of its applied state, or is about to send or
    /// restart from it, as `what` says.
    pub fn snapshot(
        &mut self,
        node: NodeId,
        snapshot: &Snapshot,
        what: &str,
    ) -> Result<(), Failure> {
        snapshot_state::check(node, snapshot, self.agreed(), what)
    }

    /// `node`, whose application state was `before`, installs `snapshot`
    /// (its state becomes the snapshot's): its commit stream continues
    /// after the snapshot.
    pub fn installed(
        &mut self,
        node: NodeId,
        before: &AppState,
        snapshot: &Snapshot,
    ) -> Result<(), Failure> {
        applied_state::check_install(node, before, snapshot.meta)?;
        snapshot_state::check(node, snapshot, self.agreed(), "installed")?;
        self.commits.restarted(node, snapshot.meta.index);
        Ok(())
    }

    /// Recovery is about to cut the log on `disk`, the disk of `node`, after `keep`.
    pub fn log_cut(&mut self, node: NodeId, disk: &Durable, keep: LogIndex) {
        self.repair.observe_cut(node, disk, keep);
    }

    /// A client saw `data` acknowledged by `node` at `index`.
    pub fn client_ack(
        &mut self,
        node: NodeId,
        data: &[u8],
        index: LogIndex,
    ) -> Result<(), Failure> {
        appended_once::check_ack(node, data, index, self.agreed())?;
        self.reads.observe_ack(index);
        Ok(())
    }

    /// What a read sent now must see.
    pub fn read_floor(&self) -> ReadFloor {
        self.reads.floor()
    }

    /// `node`'s machine is about to be asked for read `id`.
    pub fn read_asked(&mut self, node: NodeId, id: ReadId) {
        self.reads_once.asked(node, id);
    }

    /// A client took `node`'s answer to read `id`, sent with `floor`: the
    /// application state `state`.
    pub fn read_answered(
        &mut self,
        node: NodeId,
        id: ReadId,
        floor: ReadFloor,
        state: &AppState,
    ) -> Result<(), Failure> {
        linearizable_read::check(node, id, floor, state, self.commits.agreed())?;
        self.reads.observe_read(state.applied);
        Ok(())
    }

    /// `node`'s machine is about to be asked for a leadership transfer.
    pub fn transfer_asked(&mut self, node: NodeId) {
        self.transfers_once.asked(node);
    }

    /// After a batch performed in full, `node`'s machine runs a transfer
    /// or not ([`Machine::transfer_target`](skiff_core::Machine::transfer_target)).
    pub fn transfers_running(&self, node: NodeId, running: bool) -> Result<(), Failure> {
        self.transfers_once.check_running(node, running)
    }

    /// After a batch performed in full, `node`'s machine holds `held`
    /// reads ([`Machine::pending_reads`]).
    pub fn reads_held(&self, node: NodeId, held: usize) -> Result<(), Failure> {
        self.reads_once.check_held(node, held)
    }
}

/// Whether committed `data` is a configuration entry's. The simulator's
/// client data (`cN-M` text, or a leader's empty entry) never decodes as
/// one.
fn is_config(data: &[u8]) -> bool {
    Membership::decode(data).is_ok()
}
