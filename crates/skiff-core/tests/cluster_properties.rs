//! A small cluster under a random schedule: messages delivered in any order,
//! dropped or duplicated, timeouts and appends anywhere, snapshots taken
//! anywhere (and sent to followers that need them), crashes that keep only
//! what was persisted. After every step: at most one leader per term, no two
//! nodes ever commit different data at one index, and every node's
//! application state (the committed data it applied, or restored from a
//! snapshot) is the agreed committed log. Reads are asked anywhere too:
//! each is answered at most once, and an index it is answered with covers
//! every entry any node had reported committed when it was asked
//! (linearizable reads, the thesis 6.4). Membership changes are asked
//! anywhere as well, among the first voters and one spare node that starts
//! outside the cluster: the same properties hold across configurations.
//!
//! `skiff-sim` hunts the same bugs with clocks, latencies and clients; this
//! test keeps the core honest on its own, without any driver.

use bytes::Bytes;
use proptest::prelude::*;
use skiff_core::{
    Action, Config, Entry, Event, HardState, LogIndex, Machine, Membership, MembershipChange,
    Message, NodeId, ReadId, Role, SnapshotMeta, StartState,
};

/// Delivers every queued message, oldest first, until none is left.
fn settle(cluster: &mut Cluster) {
    while !cluster.queue.is_empty() {
        cluster.apply(Step::Deliver(0));
    }
}
use std::collections::HashMap;

/// One step of the schedule; numbers are reduced modulo what exists.
#[derive(Clone, Debug)]
enum Step {
    Deliver(usize),
    Duplicate(usize),
    Drop(usize),
    Timeout(u64),
    Append(u64),
    Crash(u64),
    Snapshot(u64),
    /// The node's storage stalls, or recovers if it had stalled.
    Stall(u64),
    /// The layer above asks the node for a linearizable read.
    Read(u64),
    /// Every message queued to or from the node is lost: a short
    /// partition, which leaves deposed leaders that do not know it yet.
    Isolate(u64),
    /// The layer above asks the node to hand leadership to another.
    Transfer(u64, u64),
    /// The layer above asks the node for a membership change: add a
    /// learner, promote, remove (the first number picks which) of a node.
    Change(u64, u8, u64),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::Duplicate),
        2 => any::<usize>().prop_map(Step::Drop),
        3 => any::<u64>().prop_map(Step::Timeout),
        3 => any::<u64>().prop_map(Step::Append),
        1 => any::<u64>().prop_map(Step::Crash),
        2 => any::<u64>().prop_map(Step::Snapshot),
        1 => any::<u64>().prop_map(Step::Stall),
        3 => any::<u64>().prop_map(Step::Read),
        1 => (any::<u64>(), any::<u64>()).prop_map(|(node, to)| Step::Transfer(node, to)),
        3 => any::<u64>().prop_map(Step::Isolate),
        2 => (any::<u64>(), 0u8..3, any::<u64>()).prop_map(|(node, kind, of)| Step::Change(node, kind, of)),
    ]
}

struct Node {
    machine: Machine,
    hard_state: HardState,
    /// The durable snapshot and the application state it holds: the data
    /// of every entry through its index.
    snapshot: (SnapshotMeta, Vec<Bytes>),
    /// The configuration in force at the snapshot, kept with it.
    snapshot_membership: Option<Membership>,
    /// The durable log after the snapshot.
    log: Vec<Entry>,
    /// The application: the data applied so far, from index 1.
    applied: Vec<Bytes>,
}

struct Cluster {
    nodes: Vec<Node>,
    queue: Vec<(NodeId, NodeId, skiff_core::Message)>,
    leaders: HashMap<u64, NodeId>,
    committed: HashMap<u64, bytes::Bytes>,
    appended: u64,
    /// Reads asked and not yet answered, with the highest index reported
    /// committed anywhere when each was asked.
    reads: HashMap<ReadId, LogIndex>,
    /// Reads asked so far, for their ids.
    asked: u64,
    /// Reads answered ready.
    reads_ready: u64,
    /// Transfers asked of each node and not yet answered.
    transfers: HashMap<NodeId, u64>,
    /// Transfers answered `Ok`.
    transfers_done: u64,
    /// Membership changes asked of each node and not yet answered.
    changes: HashMap<NodeId, u64>,
    /// Membership changes answered `Ok`.
    changes_done: u64,
}

impl Cluster {
    /// A cluster of `size` nodes; `features` picks PreVote (bit 0) and
    /// CheckQuorum (bit 1).
    /// Node `size + 1` starts outside it, to be added by a change.
    fn new(size: u64, features: u8) -> Cluster {
        let nodes = (1..=size + 1)
            .map(|id| {
                let mut config = Config::new(NodeId(id), (1..=size).map(NodeId));
                config.join = id > size;
                config.seed = id;
                config.pre_vote = features & 1 != 0;
                config.check_quorum = features & 2 != 0;
                config.inflight_max = 2;
                config.entries_per_message_max = 2;
                Node {
                    machine: Machine::new(config).unwrap(),
                    hard_state: HardState::default(),
                    snapshot: (SnapshotMeta::default(), Vec::new()),
                    snapshot_membership: None,
                    log: Vec::new(),
                    applied: Vec::new(),
                }
            })
            .collect();
        Cluster {
            nodes,
            queue: Vec::new(),
            leaders: HashMap::new(),
            committed: HashMap::new(),
            appended: 0,
            reads: HashMap::new(),
            asked: 0,
            reads_ready: 0,
            transfers: HashMap::new(),
            transfers_done: 0,
            changes: HashMap::new(),
            changes_done: 0,
        }
    }

    fn step_node(&mut self, position: usize, event: Event) {
        let mut actions = Vec::new();
        // A snapshot arrives with its data: the sender's current snapshot,
        // if it is still the one named (a driver whose file is gone sends
        // nothing, and the leader asks again).
        let received = match &event {
            Event::Receive {
                from,
                message: Message::InstallSnapshotReq(req),
            } => {
                let (meta, state) = &self.nodes[from.0 as usize - 1].snapshot;
                if *meta != req.snapshot {
                    return;
                }
                Some(state.clone())
            }
            _ => None,
        };
        let node = &mut self.nodes[position];
        node.machine.step(event, &mut actions);
        let from = node.machine.id();
        let base = |node: &Node| node.snapshot.0.index.0;
        for action in actions {
            match action {
                Action::StateStore { term, voted_for } => {
                    node.hard_state = HardState { term, voted_for }
                }
                Action::LogStore { index, entries } => {
                    assert_eq!(index.0, base(node) + node.log.len() as u64 + 1);
                    node.log.extend(entries);
                }
                Action::LogTruncate { from } => {
                    assert!(from.0 > base(node), "truncation into the snapshot");
                    node.log.truncate((from.0 - base(node)) as usize - 1)
                }
                Action::LogCompact {
                    through,
                    membership,
                } => {
                    // The snapshot was stored before the event; now the
                    // entries it covers go, and its configuration is kept.
                    assert_eq!(through, node.snapshot.0.index);
                    node.snapshot_membership = Some(membership);
                }
                Action::SnapshotInstall {
                    snapshot,
                    membership,
                } => {
                    node.snapshot_membership = Some(membership);
                    let state = received.clone().expect("installs only what it received");
                    assert_eq!(state.len() as u64, snapshot.index.0);
                    node.snapshot = (snapshot, state.clone());
                    node.log.clear();
                    node.applied = state;
                }
                Action::Send { to, message } => self.queue.push((from, to, message)),
                Action::Commit {
                    data,
                    result: Ok(index),
                } => {
                    let agreed = self
                        .committed
                        .entry(index.0)
                        .or_insert_with(|| data.clone());
                    assert_eq!(
                        *agreed, data,
                        "two nodes committed different data at {index}"
                    );
                    assert_eq!(index.0, node.applied.len() as u64 + 1, "applied in order");
                    node.applied.push(data);
                }
                Action::ReadReady { id, index } => {
                    let floor = self.reads.remove(&id).expect("each read is answered once");
                    assert!(
                        index >= floor,
                        "read {id:?} at node {from} ready at {index}, but {floor} had committed before it was asked"
                    );
                    self.reads_ready += 1;
                }
                Action::ReadFailed { id, .. } => {
                    assert!(
                        self.reads.remove(&id).is_some(),
                        "each read is answered once"
                    );
                }
                Action::TransferEnded { result, .. } => {
                    let asked = self.transfers.entry(from).or_default();
                    assert!(
                        *asked > 0,
                        "node {from} answered a transfer nobody asked for"
                    );
                    *asked -= 1;
                    self.transfers_done += u64::from(result.is_ok());
                }
                Action::MembershipChangeEnded { result, .. } => {
                    let asked = self.changes.entry(from).or_default();
                    assert!(
                        *asked > 0,
                        "node {from} answered a membership change nobody asked for"
                    );
                    *asked -= 1;
                    self.changes_done += u64::from(result.is_ok());
                }
                Action::Commit { .. } | Action::Alarm { .. } | Action::SteppedDown { .. } => {}
                Action::Rejected {
                    from: sender,
                    reason,
                } => panic!("node {from} rejected a message from correct node {sender}: {reason}"),
            }
        }
        for (index, data) in node.applied.iter().enumerate() {
            if let Some(agreed) = self.committed.get(&(index as u64 + 1)) {
                assert_eq!(
                    agreed,
                    data,
                    "node {from} applied other data at {}",
                    index + 1
                );
            }
        }
        assert_eq!(node.applied.len() as u64, node.machine.commit_index().0);
        if node.machine.role() == Role::Leader {
            let term = node.machine.term().0;
            let leader = *self.leaders.entry(term).or_insert(from);
            assert_eq!(leader, from, "two leaders in term {term}");
        }
    }

    fn apply(&mut self, step: Step) {
        let size = self.nodes.len() as u64;
        match step {
            Step::Deliver(pick) | Step::Duplicate(pick) if !self.queue.is_empty() => {
                let pick = pick % self.queue.len();
                let (from, to, message) = if matches!(step, Step::Deliver(_)) {
                    self.queue.swap_remove(pick)
                } else {
                    self.queue[pick].clone()
                };
                self.step_node(to.0 as usize - 1, Event::Receive { from, message });
            }
            Step::Drop(pick) if !self.queue.is_empty() => {
                let pick = pick % self.queue.len();
                self.queue.swap_remove(pick);
            }
            Step::Timeout(node) => self.step_node((node % size) as usize, Event::Timeout),
            Step::Append(node) => {
                self.appended += 1;
                let data = format!("v{}", self.appended);
                self.step_node((node % size) as usize, Event::Append(data.into()));
            }
            Step::Read(node) => {
                self.asked += 1;
                let id = ReadId(self.asked);
                let floor = LogIndex(self.committed.keys().copied().max().unwrap_or(0));
                self.reads.insert(id, floor);
                let event = Event::Read { id, now_ms: 0 };
                self.step_node((node % size) as usize, event);
            }
            Step::Transfer(node, to) => {
                let position = (node % size) as usize;
                let from = self.nodes[position].machine.id();
                *self.transfers.entry(from).or_default() += 1;
                let to = NodeId(to % size + 1);
                self.step_node(position, Event::TransferLeadership { to });
            }
            Step::Change(node, kind, of) => {
                // Mostly of a leader, which is the node that can change
                // anything; otherwise of anyone, which must refuse.
                let leader = self
                    .nodes
                    .iter()
                    .position(|n| n.machine.role() == Role::Leader);
                let position = match leader {
                    Some(leader) if node % 4 != 0 => leader,
                    _ => (node % size) as usize,
                };
                let from = self.nodes[position].machine.id();
                *self.changes.entry(from).or_default() += 1;
                let of = NodeId(of % size + 1);
                let change = match kind {
                    0 => MembershipChange::AddLearner(of),
                    1 => MembershipChange::Promote(of),
                    _ => MembershipChange::Remove(of),
                };
                let event = Event::ChangeMembership {
                    change,
                    context: None,
                };
                self.step_node(position, event);
            }
            Step::Isolate(node) => {
                let id = NodeId(node % size + 1);
                self.queue.retain(|(from, to, _)| *from != id && *to != id);
            }
            Step::Crash(node) => {
                let node = &mut self.nodes[(node % size) as usize];
                // Nobody waits for a transfer or a change across a restart.
                self.transfers.remove(&node.machine.id());
                self.changes.remove(&node.machine.id());
                let config = node.machine.config().clone();
                let (snapshot, state) = node.snapshot.clone();
                let restored = StartState {
                    hard_state: node.hard_state,
                    snapshot,
                    log: node.log.clone(),
                    membership: node.snapshot_membership.clone(),
                    ..StartState::default()
                };
                node.machine =
                    Machine::with_state(config, restored).expect("persisted state restores");
                node.applied = state;
            }
            Step::Snapshot(node) => {
                // The application captures what it applied, durably, then
                // tells the machine.
                let position = (node % size) as usize;
                let node = &mut self.nodes[position];
                let index = node.machine.commit_index();
                if index <= node.snapshot.0.index {
                    return;
                }
                let offset = (index.0 - node.snapshot.0.index.0) as usize;
                let term = node.log[offset - 1].term;
                node.snapshot = (
                    SnapshotMeta { index, term },
                    node.applied[..index.0 as usize].to_vec(),
                );
                node.log.drain(..offset);
                self.step_node(position, Event::SnapshotTaken { index });
                assert_eq!(self.nodes[position].machine.snapshot().index, index);
            }
            Step::Stall(node) => {
                let position = (node % size) as usize;
                let event = if self.nodes[position].machine.storage_stalled() {
                    Event::StorageRecovered
                } else {
                    Event::StorageStalled
                };
                self.step_node(position, event);
                let machine = &self.nodes[position].machine;
                if machine.storage_stalled() {
                    assert_eq!(machine.role(), skiff_core::Role::Follower);
                }
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    #[test]
    fn no_two_leaders_in_a_term_and_no_divergent_commits(
        size in 1u64..6,
        features in 0u8..4,
        steps in prop::collection::vec(step(), 1..300),
    ) {
        let mut cluster = Cluster::new(size, features);
        for step in steps {
            cluster.apply(step);
        }
    }
}

/// The same property holds only if the schedule can make progress at all:
/// with a fair schedule a cluster elects a leader and commits an append.
#[test]
fn a_fair_schedule_commits() {
    let mut cluster = Cluster::new(3, 3);
    cluster.apply(Step::Timeout(0));
    while !cluster.queue.is_empty() {
        cluster.apply(Step::Deliver(0));
    }
    cluster.apply(Step::Append(0));
    while !cluster.queue.is_empty() {
        cluster.apply(Step::Deliver(0));
    }
    assert_eq!(
        cluster.committed.get(&2).map(|d| d.as_ref()),
        Some(&b"v1"[..])
    );
    // Reads at the leader and at a follower are confirmed, and cover the
    // append.
    cluster.apply(Step::Read(0));
    cluster.apply(Step::Read(1));
    settle(&mut cluster);
    assert_eq!(cluster.reads_ready, 2);
    assert!(cluster.reads.is_empty());
}

/// A transfer in a fair schedule hands leadership to its target, which
/// the old leader answers `Ok`; appends refused meanwhile are answered.
#[test]
fn a_transfer_hands_leadership_to_its_target() {
    let mut cluster = Cluster::new(3, 3);
    cluster.apply(Step::Timeout(0));
    settle(&mut cluster);
    assert_eq!(cluster.nodes[0].machine.role(), Role::Leader);
    let term = cluster.nodes[0].machine.term();
    // Node 3 lags: the leader must bring it up to date first.
    cluster.apply(Step::Append(0));
    cluster.apply(Step::Transfer(0, 2));
    settle(&mut cluster);
    assert_eq!(cluster.nodes[2].machine.role(), Role::Leader);
    assert!(cluster.nodes[2].machine.term() > term);
    assert_eq!(cluster.nodes[0].machine.role(), Role::Follower);
    assert_eq!(cluster.transfers_done, 1);
    assert!(cluster.transfers.values().all(|n| *n == 0));
    assert_eq!(
        cluster.committed.get(&2).map(|d| d.as_ref()),
        Some(&b"v1"[..]),
        "the append before the transfer committed"
    );
}

/// A follower cut off while the leader compacts its log catches up through
/// the leader's snapshot, and then through entries after it.
#[test]
fn a_lagging_follower_catches_up_through_a_snapshot() {
    let mut cluster = Cluster::new(3, 3);
    cluster.apply(Step::Timeout(0));
    settle(&mut cluster);
    assert_eq!(cluster.nodes[0].machine.role(), Role::Leader);
    for _ in 0..6 {
        cluster.apply(Step::Append(0));
        // Node 3 hears nothing.
        cluster.queue.retain(|(_, to, _)| *to != NodeId(3));
        while !cluster.queue.is_empty() {
            cluster.apply(Step::Deliver(0));
            cluster.queue.retain(|(_, to, _)| *to != NodeId(3));
        }
    }
    let commit = cluster.nodes[0].machine.commit_index();
    assert_eq!(commit, LogIndex(7));
    cluster.apply(Step::Snapshot(0));
    assert_eq!(cluster.nodes[0].machine.snapshot().index, commit);
    assert_eq!(cluster.nodes[2].machine.last_index(), LogIndex(1));
    cluster.apply(Step::Append(0));
    for _ in 0..4 {
        cluster.apply(Step::Timeout(0)); // heartbeats, which probe node 3
        settle(&mut cluster);
    }
    let follower = &cluster.nodes[2];
    assert_eq!(
        follower.machine.snapshot(),
        cluster.nodes[0].machine.snapshot()
    );
    assert_eq!(follower.machine.commit_index(), LogIndex(8));
    assert_eq!(follower.applied, cluster.nodes[0].applied);
}

/// A leader cut off while the others elect a new leader and commit still
/// believes it leads; a read it is asked then must not be answered with its
/// stale commit index (the property above would fail).
#[test]
fn a_deposed_leader_answers_no_stale_read() {
    let mut cluster = Cluster::new(3, 0);
    cluster.apply(Step::Timeout(0));
    settle(&mut cluster);
    cluster.apply(Step::Append(0));
    settle(&mut cluster);
    // Node 1 is cut off; node 2 is elected and commits its no-op and an append.
    cluster.apply(Step::Timeout(1));
    for _ in 0..3 {
        cluster.apply(Step::Isolate(0));
        while !cluster.queue.is_empty() {
            cluster.apply(Step::Deliver(0));
            cluster.apply(Step::Isolate(0));
        }
        cluster.apply(Step::Append(1));
    }
    assert_eq!(cluster.nodes[0].machine.role(), Role::Leader);
    assert_eq!(cluster.nodes[1].machine.role(), Role::Leader);
    let before = cluster.reads_ready;
    cluster.apply(Step::Read(0));
    settle(&mut cluster);
    assert_eq!(
        cluster.reads_ready, before,
        "the deposed leader's read failed"
    );
    assert_eq!(cluster.nodes[0].machine.role(), Role::Follower);
}

/// Membership changes in a fair schedule: the spare node joins as a
/// learner, is promoted, and the leader removes itself; the cluster then
/// commits with the new voters, and a restarted node keeps the
/// configuration it had.
#[test]
fn membership_changes_replace_the_leader() {
    let mut cluster = Cluster::new(3, 3);
    cluster.apply(Step::Timeout(0));
    settle(&mut cluster);
    for (kind, of) in [(0, 3), (1, 3), (2, 0)] {
        cluster.apply(Step::Change(0, kind, of));
        settle(&mut cluster);
    }
    assert_eq!(cluster.changes_done, 3);
    assert_eq!(cluster.nodes[0].machine.role(), Role::Follower);
    let voters: Vec<NodeId> = [2, 3, 4].map(NodeId).to_vec();
    let leader = cluster
        .nodes
        .iter()
        .position(|n| n.machine.role() == Role::Leader)
        .expect("the removed leader handed over");
    assert!(voters.contains(&cluster.nodes[leader].machine.id()));
    assert_eq!(cluster.nodes[3].machine.membership().voters(), &voters[..]);
    // A snapshot and a crash keep the configuration.
    cluster.apply(Step::Snapshot(3));
    cluster.apply(Step::Crash(3));
    assert_eq!(cluster.nodes[3].machine.membership().voters(), &voters[..]);
    cluster.apply(Step::Append(leader as u64));
    settle(&mut cluster);
    let last = cluster.committed.keys().copied().max().unwrap();
    assert_eq!(
        cluster.committed.get(&last).map(|d| d.as_ref()),
        Some(&b"v1"[..])
    );
}
