//! A small cluster under a random schedule: messages delivered in any order,
//! dropped or duplicated, timeouts and appends anywhere, crashes that keep
//! only what was persisted. After every step: at most one leader per term,
//! and no two nodes ever commit different data at one index.
//!
//! `skiff-sim` hunts the same bugs with clocks, latencies and clients; this
//! test keeps the core honest on its own, without any driver.

use proptest::prelude::*;
use skiff_core::{Action, Config, Entry, Event, HardState, Machine, NodeId, Role};
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
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => any::<usize>().prop_map(Step::Deliver),
        1 => any::<usize>().prop_map(Step::Duplicate),
        2 => any::<usize>().prop_map(Step::Drop),
        3 => any::<u64>().prop_map(Step::Timeout),
        3 => any::<u64>().prop_map(Step::Append),
        1 => any::<u64>().prop_map(Step::Crash),
    ]
}

struct Node {
    machine: Machine,
    hard_state: HardState,
    log: Vec<Entry>,
}

struct Cluster {
    nodes: Vec<Node>,
    queue: Vec<(NodeId, NodeId, skiff_core::Message)>,
    leaders: HashMap<u64, NodeId>,
    committed: HashMap<u64, bytes::Bytes>,
    appended: u64,
}

impl Cluster {
    fn new(size: u64) -> Cluster {
        let nodes = (1..=size)
            .map(|id| {
                let mut config = Config::new(NodeId(id), (1..=size).map(NodeId));
                config.seed = id;
                config.inflight_max = 2;
                config.entries_per_message_max = 2;
                Node {
                    machine: Machine::new(config).unwrap(),
                    hard_state: HardState::default(),
                    log: Vec::new(),
                }
            })
            .collect();
        Cluster {
            nodes,
            queue: Vec::new(),
            leaders: HashMap::new(),
            committed: HashMap::new(),
            appended: 0,
        }
    }

    fn step_node(&mut self, position: usize, event: Event) {
        let mut actions = Vec::new();
        let node = &mut self.nodes[position];
        node.machine.step(event, &mut actions);
        let from = node.machine.id();
        for action in actions {
            match action {
                Action::StateStore { term, voted_for } => {
                    node.hard_state = HardState { term, voted_for }
                }
                Action::LogStore { index, entries } => {
                    assert_eq!(index.0, node.log.len() as u64 + 1);
                    node.log.extend(entries);
                }
                Action::LogTruncate { from } => node.log.truncate(from.0 as usize - 1),
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
                }
                Action::Commit { .. } | Action::Alarm { .. } => {}
                Action::LogCompact { .. } | Action::SnapshotInstall { .. } => {
                    panic!("node {from} acted on a snapshot, but none was taken")
                }
                Action::Rejected {
                    from: sender,
                    reason,
                } => panic!("node {from} rejected a message from correct node {sender}: {reason}"),
            }
        }
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
            Step::Crash(node) => {
                let node = &mut self.nodes[(node % size) as usize];
                let config = node.machine.config().clone();
                node.machine = Machine::restore(config, node.hard_state, node.log.clone())
                    .expect("persisted state restores");
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
        steps in prop::collection::vec(step(), 1..300),
    ) {
        let mut cluster = Cluster::new(size);
        for step in steps {
            cluster.apply(step);
        }
    }
}

/// The same property holds only if the schedule can make progress at all:
/// with a fair schedule a cluster elects a leader and commits an append.
#[test]
fn a_fair_schedule_commits() {
    let mut cluster = Cluster::new(3);
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
}
