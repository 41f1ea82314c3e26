//! A run recorded for drawing: what each node was (role, term, vote,
//! leader, commit, log end) after every step, the messages between nodes
//! with their send and delivery times, client requests and their outcomes,
//! crashes, partitions and other world events, and the violation if any.
//!
//! The simulator records into a [`Timeline`] only when asked
//! ([`crate::run::run_seed_timeline`]): the world holds an
//! `Option<Box<Timeline>>` and each hook is one branch on it when off. The
//! scenario runner records too ([`crate::scenario::run_source_timeline`]).
//!
//! A long run has millions of steps, so the recording is kept compact for
//! the page that embeds it ([`Timeline::to_json`]): texts are interned
//! (most steps repeat a few hundred distinct labels, see [`label`]),
//! times are delta-encoded, a node's state is stored only when a step
//! changed it (the state before a step is the one after the node's
//! previous step), and a message names the step that sent it rather than
//! its time and sender.

mod json;
pub mod label;

use skiff_core::{Machine, Role};
use std::collections::HashMap;

/// What a node is between steps: the summary shown before and after an event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NodeState {
    /// 0 down, 1 follower, 2 pre-candidate, 3 candidate, 4 leader.
    pub role: u8,
    /// The current term.
    pub term: u64,
    /// The node voted for in this term (0: none).
    pub vote: u64,
    /// The leader it follows (0: none known).
    pub leader: u64,
    /// Its commit index.
    pub commit: u64,
    /// The index of its last log entry.
    pub last_index: u64,
    /// The term of its last log entry.
    pub last_term: u64,
}

impl NodeState {
    /// The state of a down node.
    pub const DOWN: NodeState = NodeState {
        role: 0,
        term: 0,
        vote: 0,
        leader: 0,
        commit: 0,
        last_index: 0,
        last_term: 0,
    };

    /// The summary of `machine`'s state.
    pub fn of(machine: &Machine) -> NodeState {
        NodeState {
            role: role_code(machine.role()),
            term: machine.term().0,
            vote: machine.voted_for().map_or(0, |n| n.0),
            leader: machine.leader().map_or(0, |n| n.0),
            commit: machine.commit_index().0,
            last_index: machine.last_index().0,
            last_term: machine.last_term().0,
        }
    }
}

fn role_code(role: Role) -> u8 {
    match role {
        Role::Follower => 1,
        Role::PreCandidate => 2,
        Role::Candidate => 3,
        Role::Leader => 4,
        // The enum is non-exhaustive; a role added later draws as a follower.
        _ => 1,
    }
}

/// How a message fared in the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Arrives at this time (microseconds).
    At(u64),
    /// Lost on the way.
    Lost,
    /// Blocked by a partition.
    Blocked,
}

/// A span of time shaded on the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A node is down (crashed until it restarts).
    Down,
    /// A partition is in force (all lanes).
    Partition,
}

/// The interned texts: each distinct text once, referred to by position.
#[derive(Default)]
struct Strings {
    texts: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Strings {
    fn id(&mut self, text: &str) -> u32 {
        if let Some(id) = self.ids.get(text) {
            return *id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(text.to_string());
        self.ids.insert(text.to_string(), id);
        id
    }
}

/// One recorded step: a node handled one event.
#[derive(Clone, Copy, Debug)]
struct Step {
    time: u64,
    node: u32,
    event: u32,
    actions: u32,
    /// Its state changed: the next entry of `states` is its new one.
    changed: bool,
}

#[derive(Clone, Copy, Debug)]
struct Sent {
    step: u32,
    to: u32,
    kind: u32,
    delivery: Delivery,
}

#[derive(Clone, Copy, Debug)]
struct Span {
    kind: SpanKind,
    node: Option<u32>,
    start: u64,
    end: Option<u64>,
    text: u32,
}

#[derive(Clone, Copy, Debug)]
struct Note {
    time: u64,
    node: Option<u32>,
    text: u32,
}

#[derive(Clone, Copy, Debug)]
struct Request {
    client: u32,
    node: u32,
    start: u64,
    end: u64,
    outcome: u32,
}

/// A recorded run (see the module documentation).
pub struct Timeline {
    title: String,
    /// What a time unit is on the page: `us` (simulated microseconds) or
    /// `event` (a scenario, whose events are numbered instead).
    unit: &'static str,
    node_names: Vec<String>,
    strings: Strings,
    steps: Vec<Step>,
    states: Vec<NodeState>,
    current: Vec<NodeState>,
    sent: Vec<Sent>,
    spans: Vec<Span>,
    notes: Vec<Note>,
    requests: Vec<Request>,
    violation: Option<(u64, String)>,
    end: u64,
}

impl Timeline {
    /// An empty recording of `nodes` nodes (named 1 to `nodes`), all down
    /// until their first step; `unit` as in the page's legend (`us` or `event`).
    pub fn new(title: &str, nodes: usize, unit: &'static str) -> Timeline {
        Timeline {
            title: title.to_string(),
            unit,
            node_names: (1..=nodes).map(|n| n.to_string()).collect(),
            strings: Strings::default(),
            steps: Vec::new(),
            states: Vec::new(),
            current: vec![NodeState::DOWN; nodes],
            sent: Vec::new(),
            spans: Vec::new(),
            notes: Vec::new(),
            requests: Vec::new(),
            violation: None,
            end: 0,
        }
    }

    /// Node index `node` handled `event` at `time`, answering with
    /// `actions`, and is now `after` (`None`: down).
    pub fn step(
        &mut self,
        time: u64,
        node: usize,
        event: &str,
        actions: &str,
        after: Option<NodeState>,
    ) {
        let after = after.unwrap_or(NodeState::DOWN);
        let Some(current) = self.current.get_mut(node) else {
            return;
        };
        let changed = *current != after;
        if changed {
            self.states.push(after);
            if current.role == 0 && after.role != 0 {
                self.close_down_span(node, time);
            } else if current.role != 0 && after.role == 0 {
                let text = self.strings.id("down");
                self.spans.push(Span {
                    kind: SpanKind::Down,
                    node: Some(node as u32),
                    start: time,
                    end: None,
                    text,
                });
            }
            self.current[node] = after;
        }
        let event = self.strings.id(event);
        let actions = self.strings.id(actions);
        self.steps.push(Step {
            time,
            node: node as u32,
            event,
            actions,
            changed,
        });
        self.end = self.end.max(time);
    }

    fn close_down_span(&mut self, node: usize, time: u64) {
        let open = self
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.kind == SpanKind::Down && s.node == Some(node as u32));
        if let Some(span) = open.filter(|s| s.end.is_none()) {
            span.end = Some(time);
        }
    }

    /// The step being recorded next (the one whose sends are reported
    /// before it ends) sent a message of `kind` to node index `to`.
    pub fn sent(&mut self, to: usize, kind: &str, delivery: Delivery) {
        self.sent_by(self.steps.len(), to, kind, delivery);
    }

    /// Step `step` (a position in the recording) sent a message of `kind`
    /// to node index `to`; for drivers that learn a message's fate later.
    pub fn sent_by(&mut self, step: usize, to: usize, kind: &str, delivery: Delivery) {
        let kind = self.strings.id(kind);
        self.sent.push(Sent {
            step: step as u32,
            to: to as u32,
            kind,
            delivery,
        });
    }

    /// Names node index `node` (by default its position from 1).
    pub fn name_node(&mut self, node: usize, name: &str) {
        if let Some(slot) = self.node_names.get_mut(node) {
            *slot = name.to_string();
        }
    }

    /// A partition described by `text` began at `time`.
    pub fn partition_start(&mut self, time: u64, text: &str) {
        self.partition_end(time);
        let text = self.strings.id(text);
        self.spans.push(Span {
            kind: SpanKind::Partition,
            node: None,
            start: time,
            end: None,
            text,
        });
    }

    /// The partition in force, if any, healed at `time`.
    pub fn partition_end(&mut self, time: u64) {
        let open = self
            .spans
            .iter_mut()
            .rev()
            .find(|s| s.kind == SpanKind::Partition);
        if let Some(span) = open.filter(|s| s.end.is_none()) {
            span.end = Some(time);
        }
    }

    /// Something happened in the world at `time` (at node index `node`,
    /// if at one): a disk fault, a stall, a client giving up, ...
    pub fn note(&mut self, time: u64, node: Option<usize>, text: &str) {
        let text = self.strings.id(text);
        self.notes.push(Note {
            time,
            node: node.map(|n| n as u32),
            text,
        });
    }

    /// Client `client` (from 1) had its request, made at `start`, answered
    /// by node index `node` at `end` with `outcome`.
    pub fn request(&mut self, client: usize, node: usize, start: u64, end: u64, outcome: &str) {
        let outcome = self.strings.id(outcome);
        self.requests.push(Request {
            client: client as u32,
            node: node as u32,
            start,
            end,
            outcome,
        });
    }

    /// The checker's violation, found at `time`.
    pub fn violation(&mut self, time: u64, text: &str) {
        self.violation = Some((time, text.to_string()));
        self.end = self.end.max(time);
    }

    /// Ends the recording at `time` (the run's last moment).
    pub fn finish(&mut self, time: u64) {
        self.end = self.end.max(time);
        self.partition_end(self.end);
        for span in &mut self.spans {
            span.end.get_or_insert(self.end);
        }
    }

    /// Steps recorded.
    pub fn step_count(&self) -> usize {
        self.steps.len()
    }

    /// Messages recorded.
    pub fn message_count(&self) -> usize {
        self.sent.len()
    }

    /// The recording as one JSON object, the data the page draws (its
    /// layout is described in `json.rs`).
    pub fn to_json(&self) -> String {
        json::write(self)
    }
}

#[cfg(test)]
mod tests;
