//! Fuzz body `core_cluster`: three `skiff_core::Machine`s that pass each
//! other's messages honestly, while the input picks which message is
//! delivered, dropped or duplicated, whose alarm fires and who is asked to
//! append or to snapshot (a leader then sends its snapshot to followers
//! that need compacted entries, passed as honestly as any message).
//! The input also asks nodes for reads. Checked after every step: election
//! safety (one leader per term), committed entries the same on every node,
//! each machine's own promises as in `core_step`, and every read answered
//! at most once, ready only at an index that covers every entry committed
//! anywhere when it was asked; and every leadership transfer asked of a
//! node answered at most once, and held only while the node runs it.
//! Membership changes are asked too, of any node, about nodes 1 to 4
//! (node 4 starts outside the cluster, joining): each is answered at most
//! once, and the checks above hold across configurations.

use super::core_step::Promises;
use arbitrary::{Result, Unstructured};
use skiff_core::{
    Action, Bytes, Config, Entry, Event, LogIndex, Machine, MembershipChange, Message, NodeId,
    ReadId, Role, StartState,
};
use std::collections::BTreeMap;

/// Messages in flight beyond this are dropped, as a full network would.
const IN_FLIGHT_MAX: usize = 64;

/// Runs one input.
pub fn run(data: &[u8]) {
    // Running out of input just ends the run.
    let _ = drive(&mut Unstructured::new(data));
}

struct Node {
    machine: Machine,
    promises: Promises,
}

struct Cluster {
    nodes: Vec<Node>,
    in_flight: Vec<(NodeId, NodeId, Message)>,
    leaders: BTreeMap<u64, NodeId>,
    /// Every committed entry any node has held, by index.
    committed: BTreeMap<LogIndex, Entry>,
    appended: u64,
    /// Reads asked and not answered, with the highest index committed
    /// anywhere when each was asked.
    reads: BTreeMap<ReadId, LogIndex>,
    /// Reads asked so far, for their ids.
    asked: u64,
    /// Leadership transfers asked of each node and not yet answered.
    transfers: BTreeMap<NodeId, u64>,
    /// Membership changes asked of each node and not yet answered.
    changes: BTreeMap<NodeId, u64>,
}

fn drive(input: &mut Unstructured<'_>) -> Result<()> {
    let first = [NodeId(1), NodeId(2), NodeId(3)];
    let ids = [NodeId(1), NodeId(2), NodeId(3), NodeId(4)];
    let mut cluster = Cluster {
        nodes: Vec::new(),
        in_flight: Vec::new(),
        leaders: BTreeMap::new(),
        committed: BTreeMap::new(),
        appended: 0,
        reads: BTreeMap::new(),
        asked: 0,
        transfers: BTreeMap::new(),
        changes: BTreeMap::new(),
    };
    let features: u8 = input.arbitrary()?;
    for id in ids {
        let mut config = Config::new(id, first);
        config.join = !first.contains(&id);
        config.pre_vote = features & 1 != 0;
        config.check_quorum = features & 2 != 0;
        config.inflight_max = 2;
        config.entries_per_message_max = 2;
        let machine = Machine::new(config).expect("a valid configuration");
        let promises = Promises::new(&machine, StartState::default());
        cluster.nodes.push(Node { machine, promises });
        let mut actions = Vec::new();
        let node = cluster.nodes.last_mut().expect("just pushed");
        node.machine.start(&mut actions);
        node.promises.check(&node.machine, &actions);
    }
    while !input.is_empty() {
        match input.int_in_range(0..=9)? {
            0 | 1 if !cluster.in_flight.is_empty() => {
                let (from, to, message) = cluster
                    .in_flight
                    .remove(input.choose_index(cluster.in_flight.len())?);
                cluster.step(to, Event::Receive { from, message });
            }
            2 if !cluster.in_flight.is_empty() => {
                let at = input.choose_index(cluster.in_flight.len())?;
                if input.arbitrary()? {
                    cluster.in_flight.remove(at);
                } else if cluster.in_flight.len() < IN_FLIGHT_MAX {
                    cluster.in_flight.push(cluster.in_flight[at].clone());
                }
            }
            3 => {
                let to = *input.choose(&ids)?;
                cluster.step(to, Event::Timeout);
            }
            6 => {
                let to = *input.choose(&ids)?;
                let index = cluster.nodes[to.0 as usize - 1].machine.commit_index();
                cluster.step(to, Event::SnapshotTaken { index });
            }
            7 => {
                // The node's storage stalls, or recovers if it had.
                let to = *input.choose(&ids)?;
                let event = if cluster.nodes[to.0 as usize - 1].machine.storage_stalled() {
                    Event::StorageRecovered
                } else {
                    Event::StorageStalled
                };
                cluster.step(to, event);
            }
            8 => {
                let to = *input.choose(&ids)?;
                cluster.asked += 1;
                let id = ReadId(cluster.asked);
                let floor = cluster.committed.keys().next_back().copied();
                cluster.reads.insert(id, floor.unwrap_or(LogIndex(0)));
                cluster.step(to, Event::Read { id, now_ms: 0 });
            }
            9 => {
                // The layer above asks a node to hand leadership over.
                let at = *input.choose(&ids)?;
                let target = *input.choose(&ids)?;
                *cluster.transfers.entry(at).or_default() += 1;
                cluster.step(at, Event::TransferLeadership { to: target });
            }
            4 => {
                let at = *input.choose(&ids)?;
                let node = *input.choose(&ids)?;
                let change = match input.int_in_range(0..=2)? {
                    0 => MembershipChange::AddLearner(node),
                    1 => MembershipChange::Promote(node),
                    _ => MembershipChange::Remove(node),
                };
                *cluster.changes.entry(at).or_default() += 1;
                let context = None;
                cluster.step(at, Event::ChangeMembership { change, context });
            }
            _ => {
                let to = *input.choose(&ids)?;
                cluster.appended += 1;
                let data = Bytes::from(cluster.appended.to_string());
                cluster.step(to, Event::Append(data));
            }
        }
    }
    Ok(())
}

impl Cluster {
    fn step(&mut self, to: NodeId, event: Event) {
        let node = &mut self.nodes[to.0 as usize - 1];
        let mut actions = Vec::new();
        node.machine.step(event, &mut actions);
        node.promises.check(&node.machine, &actions);
        for action in actions {
            match action {
                Action::Send { to: peer, message } if self.in_flight.len() < IN_FLIGHT_MAX => {
                    self.in_flight.push((to, peer, message));
                }
                Action::ReadReady { id, index } => {
                    let floor = self.reads.remove(&id).expect("a read answered twice");
                    assert!(
                        index >= floor,
                        "read {id:?} ready at {index} although {floor} had committed"
                    );
                }
                Action::ReadFailed { id, .. } => {
                    assert!(self.reads.remove(&id).is_some(), "a read answered twice");
                }
                Action::TransferEnded { .. } => {
                    let asked = self.transfers.entry(to).or_default();
                    assert!(*asked > 0, "a transfer answered that nobody asked for");
                    *asked -= 1;
                }
                Action::MembershipChangeEnded { .. } => {
                    let asked = self.changes.entry(to).or_default();
                    assert!(*asked > 0, "a change answered that nobody asked for");
                    *asked -= 1;
                }
                _ => {}
            }
        }
        let running = self.nodes[to.0 as usize - 1]
            .machine
            .transfer_target()
            .is_some();
        let outstanding = self.transfers.get(&to).copied().unwrap_or(0);
        assert!(
            outstanding <= u64::from(running),
            "node {to} dropped a transfer without an answer"
        );
        self.check_safety(to);
    }

    fn check_safety(&mut self, id: NodeId) {
        let machine = &self.nodes[id.0 as usize - 1].machine;
        if machine.role() == Role::Leader {
            let first = *self.leaders.entry(machine.term().0).or_insert(id);
            assert_eq!(first, id, "two leaders in term {}", machine.term());
        }
        let first = machine.snapshot().index.next();
        let held = (machine.commit_index().0 + 1).saturating_sub(first.0) as usize;
        for (offset, entry) in machine.log().take(held).enumerate() {
            let index = LogIndex(first.0 + offset as u64);
            let agreed = self.committed.entry(index).or_insert_with(|| entry.clone());
            assert_eq!(
                agreed, entry,
                "node {id} committed another entry at {index}"
            );
        }
        let snapshot = machine.snapshot();
        if let Some(agreed) = self.committed.get(&snapshot.index) {
            assert_eq!(
                agreed.term, snapshot.term,
                "node {id}'s snapshot {snapshot} disagrees"
            );
        }
    }
}
