//! The Raft state machine: one entry point, [`Machine::step`], that takes an
//! event and appends the actions it causes.
//!
//! Term handling common to every role lives in `step`; the work of each
//! event lives in `election` (timeouts and votes) and `replication`
//! (appends and AppendEntries on both sides), which dispatch to the
//! features of their own: `prevote`, `check_quorum` (a leader's check of
//! its majority and a follower's lease), `stall` (a hanging disk),
//! `snapshot` and `repair`. Reads (`Event::Read`, the messages that serve
//! them, and the rounds they ride on) live in `read_index`.

mod check_quorum;
mod defence;
mod election;
mod membership;
mod prevote;
mod read_index;
mod repair;
mod replication;
mod snapshot;
mod stall;
mod transfer;

use crate::action::Action;
use crate::config::{Config, ConfigError};
use crate::event::Event;
use crate::log::Log;
use crate::membership::Membership;
use crate::message::Message;
use crate::progress::Progress;
use crate::rng::Rng;
use crate::types::{Entry, HardState, LogIndex, NodeId, Role, SnapshotMeta, Term};
use std::collections::VecDeque;
use std::fmt;

/// One Raft node's consensus logic, without any I/O.
///
/// # Contract
///
/// * **Getters** ([`role`](Machine::role), [`term`](Machine::term),
///   [`commit_index`](Machine::commit_index), [`log`](Machine::log), ...)
///   read the state and change nothing.
/// * **Input**: [`step`](Machine::step) takes one [`Event`] and appends the
///   resulting [`Action`]s to a buffer the caller owns and may reuse.
///   [`start`](Machine::start) arms the first alarm.
/// * **Output**: the driver performs the actions of one call in order.
///   Within a call, every `StateStore`, `LogStore` and `LogTruncate` comes
///   before every `Send` and `Commit`; a driver that makes the persistence
///   actions durable before it performs the rest never lets anyone hear of
///   state that a crash could lose.
///
/// The machine keeps its own copy of the log in memory; the persistence
/// actions keep the driver's durable copy identical to it.
///
/// # Example: a node loop
///
/// ```
/// use skiff_core::{Action, Config, Event, Machine, NodeId};
///
/// let config = Config::new(NodeId(1), [NodeId(1)]);
/// let mut machine = Machine::new(config).expect("valid config");
/// let mut actions = Vec::new();
/// machine.start(&mut actions);
///
/// // A single-node cluster elects itself when its first alarm fires.
/// machine.step(Event::Timeout, &mut actions);
/// machine.step(Event::Append("hello".into()), &mut actions);
///
/// for action in actions.drain(..) {
///     match action {
///         Action::StateStore { .. }
///         | Action::LogStore { .. }
///         | Action::LogTruncate { .. }
///         | Action::SnapshotInstall { .. } => {
///             // write to disk and sync before going on
///         }
///         Action::LogCompact { .. } => { /* may discard log entries */ }
///         Action::Send { .. } => { /* hand to the transport */ }
///         Action::Alarm { .. } => { /* re-arm the one timer */ }
///         Action::Commit { data, result } => {
///             if data.as_ref() == b"hello" {
///                 assert_eq!(result.map(|index| index.0), Ok(2));
///             }
///         }
///         Action::Rejected { from, reason } => {
///             eprintln!("rejected a message from node {from}: {reason}");
///         }
///         Action::SteppedDown { reason } => {
///             eprintln!("stepped down as leader: {}", reason.name());
///         }
///         Action::ReadReady { id, index } => {
///             // answer read `id` once the application applied through `index`
///         }
///         Action::ReadFailed { id, error } => {
///             eprintln!("read {id:?} failed: {error}");
///         }
///         Action::TransferEnded { to, result } => {
///             eprintln!("transfer to node {to}: {result:?}");
///         }
///         Action::MembershipChangeEnded { change, result } => {
///             eprintln!("membership change {change}: {result:?}");
///         }
///     }
/// }
/// ```
pub struct Machine {
    config: Config,
    hard_state: HardState,
    /// `hard_state` changed and no `StateStore` has been emitted for it yet.
    hard_state_dirty: bool,
    log: Log,
    commit_index: LogIndex,
    /// The leader of the current term, once known.
    leader: Option<NodeId>,
    role: RoleState,
    rng: Rng,
    /// Entries this node appended as leader whose outcome is not yet known,
    /// ordered by index. They stay here when truncated, until the commit
    /// index passes theirs and shows whether they or another entry
    /// committed. Volatile: after a restart nobody waits.
    awaiting_outcome: VecDeque<Awaiting>,
    /// The alarm to emit at the end of this step; a later one replaces it.
    alarm_ms: Option<u64>,
    /// Sends, and refusals of appends, held back until persistence is
    /// emitted (commits go straight out: see `commit_through`).
    deferred: Vec<Action>,
    /// Scratch space for quorum arithmetic, kept to avoid an allocation per commit.
    match_scratch: Vec<LogIndex>,
    /// Set while the node repairs a log its disk damaged (`repair.rs`).
    repair: Option<repair::Repair>,
    /// The follower heard from the leader of its term within the last
    /// election timeout, so it refuses (pre-)votes (`check_quorum.rs`).
    leader_contact: bool,
    /// The pending alarm ends the leader's lease rather than starting an
    /// election (`check_quorum.rs`).
    lease_alarm: bool,
    /// The driver's persistence has stalled (`stall.rs`).
    storage_stalled: bool,
    /// Reads held, and a leader's confirmation rounds and lease
    /// (`read_index.rs`).
    reads: read_index::Reads,
    /// A leader's transfer of its office under way (`transfer.rs`).
    transfer: Option<transfer::Transfer>,
    /// The configurations the log and snapshot hold (`membership.rs`).
    configs: membership::Configs,
    /// Membership changes this node proposed as leader whose outcome is
    /// not known yet (`membership.rs`).
    pending_changes: Vec<membership::PendingChange>,
    /// While a node that started empty with `Config::join` has not caught
    /// up: the committed entry (term, index) a leader's first request
    /// showed it, once one did (`membership.rs`, rule 6).
    joining: Option<Option<(Term, LogIndex)>>,
}

/// An entry appended as leader, kept until its outcome is known.
struct Awaiting {
    index: LogIndex,
    term: Term,
    /// `None` while the entry is still in the log at `index` (its data is
    /// read from there); the data itself once the entry has been truncated.
    /// Taking the data only on truncation, which is rare, spares every
    /// append a clone of its buffer and the reference count traffic.
    data: Option<bytes::Bytes>,
}

/// State that belongs to one role lives inside that role.
enum RoleState {
    Follower,
    PreCandidate {
        /// Voters that would vote for this node in the next term, itself
        /// included (`prevote.rs`).
        votes: Vec<NodeId>,
    },
    Candidate {
        /// Voters that granted this candidate their vote, itself included.
        votes: Vec<NodeId>,
    },
    Leader {
        /// Replication progress of every other member, voter or learner, of
        /// the latest configuration (`membership.rs`).
        followers: Vec<(NodeId, Progress)>,
        /// Heartbeat alarms since taking office: the leader's clock for
        /// CheckQuorum (`check_quorum.rs`).
        ticks: u64,
    },
}

/// A state to start a machine in, for tests and simulators that need to
/// begin somewhere other than a fresh or restored node.
#[derive(Clone, Debug, Default)]
pub struct StartState {
    /// The role to start in; `None` means follower.
    pub role: Option<Role>,
    /// Term and vote. A candidate or leader has voted for itself.
    pub hard_state: HardState,
    /// The snapshot the log starts after; `0:0` (the default) for none.
    /// Its entries count as committed.
    pub snapshot: SnapshotMeta,
    /// The log, from the index after `snapshot`'s.
    pub log: Vec<Entry>,
    /// Entries up to here count as committed and already reported; never
    /// below `snapshot`'s index (a lower value reads as it).
    pub commit_index: LogIndex,
    /// The configuration in force at `snapshot`'s index, as the driver kept
    /// it from [`Action::LogCompact`] or [`Action::SnapshotInstall`];
    /// `None` means [`Config::peers`] as the voters (a cluster's bootstrap
    /// configuration). Configuration entries in `log` take effect after it.
    pub membership: Option<Membership>,
    /// The disk lost part of the log this node may have acknowledged: `log`
    /// is only what is provably intact. The machine starts repairing (see
    /// [`Machine::repairing`]): one term past `hard_state`'s, as a follower,
    /// granting no vote until a leader's committed entries prove its log whole.
    pub damaged: bool,
}

/// Why a machine cannot start from the given state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateError {
    /// The configuration is invalid.
    Config(ConfigError),
    /// The entry at `index` has a lower term than the one before it.
    LogTermDecreases {
        /// The first entry out of order.
        index: LogIndex,
    },
    /// The snapshot's term is later than the current term, or the term of
    /// the first entry after it is earlier than the snapshot's, or the
    /// snapshot has a term but no index.
    SnapshotInconsistent {
        /// The snapshot.
        snapshot: SnapshotMeta,
    },
    /// The log holds an entry of a term later than the current term.
    LogTermAfterCurrentTerm {
        /// The last entry's term.
        last_term: Term,
        /// The persisted current term.
        term: Term,
    },
    /// The membership entry at `index` does not hold a configuration.
    MembershipUnreadable {
        /// The entry's index.
        index: LogIndex,
    },
    /// A candidate or leader must have voted for itself.
    VoteNotForSelf,
    /// A node that is a voter neither in its latest configuration nor in
    /// its committed one cannot stand.
    NotAVoter,
    /// A damaged node must repair from a peer's copy; a single-node
    /// cluster (by its bootstrap configuration: one read from the log may
    /// have been superseded in the part the damage cut) has none, and a
    /// damaged node must start as a follower.
    CannotRepair,
    /// The commit index is past the end of the log.
    CommitPastLog {
        /// The requested commit index.
        commit_index: LogIndex,
        /// The log's last index.
        last_index: LogIndex,
    },
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateError::Config(e) => write!(f, "invalid configuration: {e}"),
            StateError::LogTermDecreases { index } => {
                write!(
                    f,
                    "log entry {index} has a lower term than the entry before it"
                )
            }
            StateError::SnapshotInconsistent { snapshot } => write!(
                f,
                "snapshot {snapshot} does not fit the term or the log after it"
            ),
            StateError::LogTermAfterCurrentTerm { last_term, term } => write!(
                f,
                "log holds an entry of term {last_term}, after the current term {term}"
            ),
            StateError::MembershipUnreadable { index } => {
                write!(f, "membership entry {index} does not hold a configuration")
            }
            StateError::NotAVoter => write!(
                f,
                "a node that is not a voter in its latest configuration cannot stand for election"
            ),
            StateError::VoteNotForSelf => {
                write!(f, "a candidate or leader must have voted for itself")
            }
            StateError::CannotRepair => write!(
                f,
                "a damaged log can only be repaired as a follower, from the copies of other nodes"
            ),
            StateError::CommitPastLog {
                commit_index,
                last_index,
            } => write!(
                f,
                "commit index {commit_index} is past the log's last index {last_index}"
            ),
        }
    }
}

impl std::error::Error for StateError {}

impl From<ConfigError> for StateError {
    fn from(e: ConfigError) -> StateError {
        StateError::Config(e)
    }
}

/// A summary, not the whole state: the log alone may hold millions of entries.
impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Machine")
            .field("id", &self.config.id)
            .field("role", &self.role())
            .field("term", &self.hard_state.term)
            .field("voted_for", &self.hard_state.voted_for)
            .field("leader", &self.leader)
            .field("commit_index", &self.commit_index)
            .field("last_index", &self.log.last_index())
            .field("last_term", &self.log.last_term())
            .field("awaiting_outcome", &self.awaiting_outcome.len())
            .field("repair", &self.repair)
            .field("leader_contact", &self.leader_contact)
            .field("storage_stalled", &self.storage_stalled)
            .finish_non_exhaustive()
    }
}

// Constructors.
impl Machine {
    /// A fresh node: follower, term 0, no vote, empty log.
    pub fn new(config: Config) -> Result<Machine, ConfigError> {
        config.validate()?;
        let configs = membership::Configs::new(bootstrap_membership(&config));
        Ok(Machine::assemble(
            config,
            HardState::default(),
            Log::default(),
            configs,
        ))
    }

    /// A node restarted from what it persisted: the last `StateStore` and the
    /// log as `LogStore` and `LogTruncate` left it. It starts as a follower
    /// with commit index 0 and reports commits again as it learns them.
    pub fn restore(
        config: Config,
        hard_state: HardState,
        log: Vec<Entry>,
    ) -> Result<Machine, StateError> {
        Machine::restore_from_snapshot(config, SnapshotMeta::default(), hard_state, log)
    }

    /// A node restarted from its newest snapshot and what it persisted
    /// after it: the last `StateStore`, and the log after `snapshot` as
    /// `LogStore`, `LogTruncate`, `LogCompact` and `SnapshotInstall` left
    /// it. It starts as a follower with commit index `snapshot.index`
    /// (a snapshot holds committed entries only).
    pub fn restore_from_snapshot(
        config: Config,
        snapshot: SnapshotMeta,
        hard_state: HardState,
        log: Vec<Entry>,
    ) -> Result<Machine, StateError> {
        Machine::with_state(
            config,
            StartState {
                hard_state,
                snapshot,
                log,
                ..StartState::default()
            },
        )
    }

    /// A node restarted from a disk that lost part of the log it may have
    /// acknowledged: `hard_state` as stored, `intact_log` the part of the
    /// log that is provably whole. It starts repairing (see
    /// [`Machine::repairing`] and `docs/state-machine.md`); its first output
    /// stores the term it moved to.
    pub fn restore_damaged(
        config: Config,
        hard_state: HardState,
        intact_log: Vec<Entry>,
    ) -> Result<Machine, StateError> {
        Machine::with_state(
            config,
            StartState {
                hard_state,
                log: intact_log,
                damaged: true,
                ..StartState::default()
            },
        )
    }

    /// A node in an arbitrary valid state (see [`StartState`]). A leader
    /// starts as right after winning: every follower's next index is one
    /// past the log and its match index 0; nothing is appended or sent.
    pub fn with_state(config: Config, state: StartState) -> Result<Machine, StateError> {
        config.validate()?;
        let at_snapshot = state
            .membership
            .clone()
            .unwrap_or_else(|| bootstrap_membership(&config));
        let mut configs = membership::Configs::new(at_snapshot);
        validate_state(&config, &state, &mut configs)?;
        let log = Log::from_entries(state.snapshot, state.log);
        let mut machine = Machine::assemble(config, state.hard_state, log, configs);
        machine.commit_index = state.commit_index.max(state.snapshot.index);
        match state.role.unwrap_or(Role::Follower) {
            Role::Follower => {}
            Role::PreCandidate => {
                machine.role = RoleState::PreCandidate {
                    votes: vec![machine.config.id],
                }
            }
            Role::Candidate => {
                machine.role = RoleState::Candidate {
                    votes: vec![machine.config.id],
                }
            }
            Role::Leader => {
                machine.role = machine.leader_role_state();
                machine.leader = Some(machine.config.id);
            }
        }
        if state.damaged {
            machine.begin_repair().ok_or(StateError::CannotRepair)?;
        }
        machine.begin_quiet_after_restart(); // `read_index.rs`
        machine.debug_check_invariants();
        Ok(machine)
    }

    fn assemble(
        config: Config,
        hard_state: HardState,
        log: Log,
        configs: membership::Configs,
    ) -> Machine {
        Machine {
            rng: Rng::new(config.seed),
            match_scratch: Vec::with_capacity(config.peers.len()),
            // Only a node that starts with nothing is protected: a joiner
            // restarted from its disk holds what it caught up to.
            joining: (config.join && log.last_index() == LogIndex::ZERO).then_some(None),
            config,
            hard_state,
            hard_state_dirty: false,
            log,
            commit_index: LogIndex::ZERO,
            leader: None,
            role: RoleState::Follower,
            awaiting_outcome: VecDeque::new(),
            alarm_ms: None,
            deferred: Vec::new(),
            repair: None,
            leader_contact: false,
            lease_alarm: false,
            storage_stalled: false,
            reads: read_index::Reads::default(),
            transfer: None,
            configs,
            pending_changes: Vec::new(),
        }
    }
}

/// The configuration a cluster starts with: [`Config::peers`] as voters,
/// without this node if it joins.
fn bootstrap_membership(config: &Config) -> Membership {
    let voters = config
        .peers
        .iter()
        .copied()
        .filter(|peer| !(config.join && *peer == config.id));
    // `Config::validate` refused an empty or duplicated list, and a joiner
    // whose peers name nobody else.
    Membership::new(voters, [])
        .unwrap_or_else(|| Membership::new([config.id], []).expect("one voter"))
}

/// Checks `state` against itself, noting the configurations its log holds
/// in `configs`.
fn validate_state(
    config: &Config,
    state: &StartState,
    configs: &mut membership::Configs,
) -> Result<(), StateError> {
    let snapshot = state.snapshot;
    if snapshot.term > state.hard_state.term
        || (snapshot.index.0 == 0 && snapshot.term.0 != 0)
        || state.log.first().is_some_and(|e| e.term < snapshot.term)
    {
        return Err(StateError::SnapshotInconsistent { snapshot });
    }
    let mut previous = snapshot.term;
    for (position, entry) in state.log.iter().enumerate() {
        if entry.term < previous {
            return Err(StateError::LogTermDecreases {
                index: LogIndex(snapshot.index.0 + position as u64 + 1),
            });
        }
        previous = entry.term;
    }
    if previous > state.hard_state.term {
        return Err(StateError::LogTermAfterCurrentTerm {
            last_term: previous,
            term: state.hard_state.term,
        });
    }
    for (position, entry) in state.log.iter().enumerate() {
        if entry.is_membership() {
            let index = LogIndex(snapshot.index.0 + position as u64 + 1);
            let membership = Membership::decode(&entry.data)
                .map_err(|_| StateError::MembershipUnreadable { index })?;
            configs.appended(index, membership);
        }
    }
    let role = state.role.unwrap_or(Role::Follower);
    // A sole voter has no copy to repair from, but only the bootstrap
    // configuration is sure to be the latest: one read from a damaged log
    // or its snapshot may be followed, in the tail the damage cut, by one
    // that added members, which can then repair this node (the simulator's
    // churn with disk faults, seed 750 of 3 nodes).
    let voters = configs.latest().voters();
    let bootstrap = state.membership.is_none() && configs.latest_index().is_none();
    let sole_voter = bootstrap && voters.len() == 1 && voters[0] == config.id;
    if state.damaged && (role != Role::Follower || sole_voter) {
        return Err(StateError::CannotRepair);
    }
    let before_latest = configs
        .latest_index()
        .filter(|index| *index > state.commit_index.max(snapshot.index))
        .map(|index| configs.at(index.prev()));
    let may_stand = configs.latest().is_voter(config.id)
        || before_latest.is_some_and(|m| m.is_voter(config.id));
    if matches!(role, Role::Candidate | Role::PreCandidate) && !may_stand {
        return Err(StateError::NotAVoter);
    }
    let stands = matches!(role, Role::Candidate | Role::Leader);
    if stands && state.hard_state.voted_for != Some(config.id) {
        return Err(StateError::VoteNotForSelf);
    }
    let last_index = snapshot
        .index
        .0
        .checked_add(state.log.len() as u64)
        .map(LogIndex)
        .ok_or(StateError::SnapshotInconsistent { snapshot })?;
    if state.commit_index > last_index {
        return Err(StateError::CommitPastLog {
            commit_index: state.commit_index,
            last_index,
        });
    }
    Ok(())
}

// Getters.
impl Machine {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.id
    }

    /// The configuration the machine runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The role this node plays in its current term.
    pub fn role(&self) -> Role {
        match self.role {
            RoleState::Follower => Role::Follower,
            RoleState::PreCandidate { .. } => Role::PreCandidate,
            RoleState::Candidate { .. } => Role::Candidate,
            RoleState::Leader { .. } => Role::Leader,
        }
    }

    /// The current term.
    pub fn term(&self) -> Term {
        self.hard_state.term
    }

    /// The vote cast in the current term.
    pub fn voted_for(&self) -> Option<NodeId> {
        self.hard_state.voted_for
    }

    /// Term and vote together, as last handed out in a `StateStore`.
    pub fn hard_state(&self) -> HardState {
        self.hard_state
    }

    /// The leader of the current term, when this node knows it.
    pub fn leader(&self) -> Option<NodeId> {
        self.leader
    }

    /// The highest index known to be committed.
    pub fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// The index of the last entry in the log (0 when empty).
    pub fn last_index(&self) -> LogIndex {
        self.log.last_index()
    }

    /// The term of the last entry in the log (0 when empty).
    pub fn last_term(&self) -> Term {
        self.log.last_term()
    }

    /// The log in index order: every entry after the snapshot.
    pub fn log(&self) -> impl ExactSizeIterator<Item = &Entry> + '_ {
        self.log.iter()
    }

    /// The snapshot the log starts after (`0:0` when there is none): the
    /// last one taken here or installed from a leader.
    pub fn snapshot(&self) -> SnapshotMeta {
        self.log.snapshot()
    }

    /// The entry at `index`, if the log holds one there (an index the
    /// snapshot covers holds none).
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.get(index)
    }

    /// For a leader, each follower's match index; empty otherwise.
    pub fn match_indices(&self) -> Vec<(NodeId, LogIndex)> {
        match &self.role {
            RoleState::Leader { followers, .. } => followers
                .iter()
                .map(|(id, p)| (*id, p.match_index))
                .collect(),
            _ => Vec::new(),
        }
    }
}

// Input.
impl Machine {
    /// Arms the first election alarm (or heartbeat, for a machine started as
    /// leader). Call once after construction.
    pub fn start(&mut self, actions: &mut Vec<Action>) {
        match self.role {
            RoleState::Leader { .. } => self.arm_heartbeat_alarm(),
            _ => self.arm_election_alarm(),
        }
        self.finish_step(actions);
    }

    /// Handles one event, appending the actions it causes to `actions`.
    ///
    /// Never panics on any event a peer or client can send: stale, duplicate
    /// and reordered messages are answered or ignored as the protocol says.
    /// Messages no correct peer could send (from non-members, malformed,
    /// a term too far ahead, a second leader, ...) change nothing and are
    /// reported with [`Action::Rejected`].
    pub fn step(&mut self, event: Event, actions: &mut Vec<Action>) {
        let first = actions.len();
        let before = self.debug_before();
        match event {
            Event::Append(data) => self.handle_append(data, actions),
            Event::Timeout => self.handle_timeout(actions),
            Event::SnapshotTaken { index } => self.handle_snapshot_taken(index, actions),
            Event::StorageStalled => self.handle_storage_stalled(),
            Event::StorageRecovered => self.handle_storage_recovered(),
            Event::Read { id, now_ms } => self.handle_read(id, now_ms),
            Event::TransferLeadership { to } => self.handle_transfer_leadership(to),
            Event::ChangeMembership { change, context } => {
                self.handle_change_membership(change, context, actions)
            }
            Event::Receive { from, message } => self.handle_message(from, message, actions),
        }
        self.finish_step(actions);
        debug_assert!(
            persistence_comes_first(&actions[first..]),
            "persistence after Send or Commit: {:?}",
            &actions[first..]
        );
        self.debug_check_transition(before);
        self.debug_check_invariants();
    }

    fn handle_message(&mut self, from: NodeId, message: Message, actions: &mut Vec<Action>) {
        if !self.screen(from, &message) {
            return; // no correct peer sends it (`defence.rs`)
        }
        if self.vote_refused_in_lease(from, &message) {
            return; // a live leader is heard: no newer term (`check_quorum.rs`)
        }
        // Figure 2, rules for all servers: a newer term makes any role a
        // follower. A PreVote's term is one its sender does not hold yet
        // (`prevote.rs`): neither its request nor a grant moves the term.
        if message.term() > self.hard_state.term && carries_senders_term(&message) {
            self.become_follower(message.term());
        }
        match message {
            Message::AppendEntriesReq(req) => self.handle_append_entries_req(from, req, actions),
            Message::AppendEntriesResp(resp) => {
                self.handle_append_entries_resp(from, resp, actions)
            }
            Message::VoteReq(req) => self.handle_vote_req(from, req),
            Message::VoteResp(resp) => self.handle_vote_resp(from, resp, actions),
            Message::PreVoteReq(req) => self.handle_pre_vote_req(from, req),
            Message::PreVoteResp(resp) => self.handle_pre_vote_resp(from, resp, actions),
            Message::InstallSnapshotReq(req) => {
                self.handle_install_snapshot_req(from, req, actions)
            }
            Message::InstallSnapshotResp(resp) => self.handle_install_snapshot_resp(from, resp),
            Message::ReadIndexReq(req) => self.handle_read_index_req(from, req),
            Message::ReadIndexResp(resp) => self.handle_read_index_resp(from, resp),
            Message::TimeoutNow(req) => self.handle_timeout_now(from, req, actions),
        }
    }

    /// Emits what the step held back: the hard state, the alarm, then the
    /// deferred actions.
    fn finish_step(&mut self, actions: &mut Vec<Action>) {
        self.settle_removal(); // a removed leader leaves once that commits
        self.settle_changes(); // changes whose entries committed or were lost
        self.settle_joining(); // a joiner that caught up may vote
        self.settle_reads(); // no read outlives the term or leader it was taken under
        self.settle_transfer(); // nor a transfer its leader's office
        self.persist_hard_state(actions);
        if let Some(ms) = self.alarm_ms.take() {
            actions.push(Action::Alarm { ms });
        }
        if actions.is_empty() {
            // Nothing to keep in front (the usual case for a driver that
            // drains the buffer every step): exchange the buffers instead of
            // copying every action. Both keep their capacity.
            std::mem::swap(actions, &mut self.deferred);
        } else {
            actions.append(&mut self.deferred);
        }
    }
}

// Output helpers shared by the role modules.
impl Machine {
    fn persist_hard_state(&mut self, actions: &mut Vec<Action>) {
        if self.hard_state_dirty {
            self.hard_state_dirty = false;
            actions.push(Action::StateStore {
                term: self.hard_state.term,
                voted_for: self.hard_state.voted_for,
            });
        }
    }

    fn send(&mut self, to: NodeId, message: Message) {
        self.deferred.push(Action::Send { to, message });
    }

    fn arm_election_alarm(&mut self) {
        let base = self.config.election_timeout_ms;
        self.alarm_ms = Some(self.rng.in_span(base, base));
        self.lease_alarm = false;
    }

    /// Whether the node's alarms run in two phases: a whole election
    /// timeout of leader's lease after each contact, then the random rest
    /// (`check_quorum.rs`).
    fn lease_enabled(&self) -> bool {
        self.config.pre_vote || self.config.check_quorum
    }

    fn arm_heartbeat_alarm(&mut self) {
        self.alarm_ms = Some(self.config.heartbeat_interval_ms);
        self.lease_alarm = false;
    }

    fn leader_role_state(&self) -> RoleState {
        let last_index = self.log.last_index();
        let me = self.config.id;
        let latest = self.configs.latest();
        RoleState::Leader {
            followers: latest
                .members()
                .filter(|peer| *peer != me)
                .map(|peer| {
                    let mut progress = Progress::new(last_index);
                    progress.voter = latest.is_voter(peer);
                    (peer, progress)
                })
                .collect(),
            ticks: 0,
        }
    }
}

/// Whether the message's term is its sender's own, which a receiver adopts
/// when newer. A PreVote request asks about the term after its sender's, and
/// a grant answers at that term; only a refusal carries the responder's.
fn carries_senders_term(message: &Message) -> bool {
    match message {
        Message::PreVoteReq(_) => false,
        Message::PreVoteResp(resp) => !resp.granted,
        _ => true,
    }
}

/// Whether no persistence action follows a `Send` or `Commit` in `batch`.
fn persistence_comes_first(batch: &[Action]) -> bool {
    let first_io = batch
        .iter()
        .position(|a| matches!(a, Action::Send { .. } | Action::Commit { .. }));
    first_io.is_none_or(|first| !batch[first..].iter().any(Action::is_persistence))
}

/// What a step may only move forward, taken before it in debug builds.
#[derive(Clone, Copy)]
struct Before {
    hard_state: HardState,
    commit_index: LogIndex,
    snapshot: SnapshotMeta,
}

// Invariants, checked after every transition in debug builds.
impl Machine {
    fn debug_before(&self) -> Option<Before> {
        cfg!(debug_assertions).then_some(Before {
            hard_state: self.hard_state,
            commit_index: self.commit_index,
            snapshot: self.log.snapshot(),
        })
    }

    /// Term and commit index only grow, and a vote cast in a term is never
    /// changed or withdrawn within it (Figure 2; Election Safety rests on it).
    fn debug_check_transition(&self, before: Option<Before>) {
        let Some(before) = before else { return };
        let (old, new) = (before.hard_state, self.hard_state);
        assert!(
            new.term >= old.term,
            "term went back from {} to {}",
            old.term,
            new.term
        );
        assert!(
            new.term > old.term || old.voted_for.is_none() || new.voted_for == old.voted_for,
            "vote of term {} changed from {:?} to {:?}",
            new.term,
            old.voted_for,
            new.voted_for
        );
        assert!(
            self.commit_index >= before.commit_index,
            "commit index went back from {} to {}",
            before.commit_index,
            self.commit_index
        );
        assert!(
            self.log.snapshot().index >= before.snapshot.index,
            "snapshot went back from {} to {}",
            before.snapshot,
            self.log.snapshot()
        );
    }

    fn debug_check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        assert!(
            self.transfer.is_none() || matches!(self.role, RoleState::Leader { .. }),
            "only a leader hands its office over (`transfer.rs`)"
        );
        assert!(
            self.commit_index <= self.log.last_index(),
            "commit {} past last index {}",
            self.commit_index,
            self.log.last_index()
        );
        assert!(
            self.log.snapshot().index <= self.commit_index,
            "snapshot {} past commit {}: a snapshot holds committed entries only",
            self.log.snapshot(),
            self.commit_index
        );
        assert!(
            self.log.last_term() <= self.hard_state.term,
            "log term {} after current term {}",
            self.log.last_term(),
            self.hard_state.term
        );
        if self.storage_stalled {
            assert!(
                matches!(self.role, RoleState::Follower),
                "a node whose storage stalled leads or stands"
            );
        }
        if self.repair.is_some() {
            assert!(
                matches!(self.role, RoleState::Follower),
                "a repairing node stood for election"
            );
        }
        if matches!(
            self.role,
            RoleState::Candidate { .. } | RoleState::Leader { .. }
        ) {
            assert_eq!(
                self.hard_state.voted_for,
                Some(self.config.id),
                "candidates and leaders vote for themselves"
            );
        }
        if self.leader_contact {
            assert!(
                matches!(self.role, RoleState::Follower) && self.leader.is_some(),
                "only a follower of a known leader holds its lease"
            );
        }
        if let RoleState::Leader { followers, .. } = &self.role {
            assert_eq!(self.leader, Some(self.config.id));
            let latest = self.configs.latest();
            for (peer, progress) in followers {
                assert!(
                    progress.next_index <= self.log.last_index().next(),
                    "next index of {peer} past the log: {progress:?}"
                );
                assert!(
                    latest.contains(*peer) && progress.voter == latest.is_voter(*peer),
                    "the leader tracks {peer} as it is not in {latest}"
                );
            }
            assert_eq!(
                followers.len() + usize::from(latest.contains(self.config.id)),
                latest.members().count(),
                "the leader tracks every member of {latest}"
            );
        }
        assert!(
            self.configs
                .latest_index()
                .is_none_or(|index| index <= self.log.last_index()
                    && self.log.get(index).is_some_and(crate::Entry::is_membership)),
            "the latest configuration's entry is not in the log"
        );
        if !self.may_stand() {
            assert!(
                !matches!(
                    self.role,
                    RoleState::Candidate { .. } | RoleState::PreCandidate { .. }
                ),
                "a node that is not a voter stands for election"
            );
        }
        debug_assert!(self
            .awaiting_outcome
            .iter()
            .all(|awaiting| awaiting.index > self.commit_index));
        debug_assert!(
            self.awaiting_outcome
                .iter()
                .all(|awaiting| awaiting.data.is_some()
                    || self.log.term_at(awaiting.index) == Some(awaiting.term)),
            "an awaiting entry without data is in the log"
        );
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    fn follower(term: u64, voted_for: Option<u64>) -> Machine {
        let config = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let state = StartState {
            hard_state: HardState {
                term: Term(term),
                voted_for: voted_for.map(NodeId),
            },
            log: vec![Entry::new(Term(1), "a")],
            commit_index: LogIndex(1),
            ..StartState::default()
        };
        Machine::with_state(config, state).unwrap()
    }

    #[test]
    fn a_forward_transition_passes() {
        let before = follower(2, Some(2)).debug_before();
        follower(3, Some(3)).debug_check_transition(before);
        follower(2, Some(2)).debug_check_transition(before);
        follower(2, None).debug_check_transition(follower(2, None).debug_before());
        follower(2, Some(3)).debug_check_transition(follower(2, None).debug_before());
    }

    #[test]
    #[should_panic(expected = "term went back")]
    fn a_term_that_goes_back_is_caught() {
        let before = follower(3, None).debug_before();
        follower(2, None).debug_check_transition(before);
    }

    #[test]
    #[should_panic(expected = "vote of term 2 changed")]
    fn a_vote_changed_within_its_term_is_caught() {
        let before = follower(2, Some(2)).debug_before();
        follower(2, Some(3)).debug_check_transition(before);
    }

    #[test]
    #[should_panic(expected = "vote of term 2 changed")]
    fn a_vote_withdrawn_within_its_term_is_caught() {
        let before = follower(2, Some(2)).debug_before();
        follower(2, None).debug_check_transition(before);
    }

    #[test]
    #[should_panic(expected = "commit index went back")]
    fn a_commit_index_that_goes_back_is_caught() {
        let mut machine = follower(2, None);
        let before = machine.debug_before();
        machine.commit_index = LogIndex(0);
        machine.debug_check_transition(before);
    }

    #[test]
    fn debug_shows_a_summary() {
        let shown = format!("{:?}", follower(2, Some(2)));
        assert!(shown.contains("term: Term(2)"), "{shown}");
        assert!(shown.contains("last_index: LogIndex(1)"), "{shown}");
    }
}
