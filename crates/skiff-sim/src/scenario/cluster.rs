//! Cluster mode: nodes `1..=n` joined by a network the scenario drives by
//! hand. Every `Send` goes into one global FIFO queue; nothing moves until
//! `deliver` or `stabilize` says so, and no clock runs.

use super::check::{check_expectation, check_state};
use super::node::{Node, SharedTimeline};
use super::parse::{cluster_config, Command, Filter, Step};
use super::report::{render, Failure, Outcome};
use crate::timeline::{label, Delivery};
use skiff_core::render::EntryDataText;
use skiff_core::{Action, Bytes, Config, Event, Message, NodeId, StartState};
use std::collections::VecDeque;

/// `stabilize` gives up after this many deliveries.
pub(crate) const STABILIZE_DELIVERIES_MAX: usize = 10_000;

/// A message on its way.
struct Envelope {
    /// Order of sending, to tell apart messages queued before a `deliver`
    /// from those its own deliveries caused.
    sequence: u64,
    from: NodeId,
    to: NodeId,
    message: Message,
    /// The recorded step that sent it (0 without a recording).
    sent_step: usize,
}

/// Why a step failed, and which node's batch and state to show.
struct StepFailure {
    reason: String,
    node: Option<NodeId>,
}

impl StepFailure {
    fn at(node: NodeId, reason: String) -> StepFailure {
        StepFailure {
            reason,
            node: Some(node),
        }
    }

    fn cluster(reason: String) -> StepFailure {
        StepFailure { reason, node: None }
    }
}

struct Cluster {
    /// Node `i` at position `i - 1`.
    nodes: Vec<Node>,
    queue: VecDeque<Envelope>,
    next_sequence: u64,
    events: usize,
    checks: usize,
    timeline: Option<SharedTimeline>,
}

/// Runs `steps` on a cluster of `size` fresh nodes configured from `template`.
///
/// With `timeline`, every node's steps and the messages delivered are recorded.
pub(crate) fn run(
    file: &str,
    size: u64,
    template: &Config,
    steps: &[Step],
    timeline: Option<SharedTimeline>,
) -> Outcome {
    let mut cluster = Cluster {
        nodes: Vec::new(),
        queue: VecDeque::new(),
        next_sequence: 0,
        events: 0,
        checks: 0,
        timeline: timeline.clone(),
    };
    for id in 1..=size {
        let config = cluster_config(template, NodeId(id));
        let started = Node::with_state(config, StartState::default())
            .map_err(|e| e.to_string())
            .and_then(|mut node| {
                if let Some(timeline) = &timeline {
                    node.record_into(timeline.clone(), (id - 1) as usize);
                }
                node.start(false).map(|()| node)
            });
        match started {
            Ok(node) => cluster.nodes.push(node),
            Err(reason) => {
                let failure = StepFailure::cluster(format!("node {id} failed to start: {reason}"));
                return cluster.failed(file, 1, "(set-up)", failure);
            }
        }
    }
    for step in steps {
        if let Err(failure) = cluster.step(&step.command) {
            return cluster.failed(file, step.line, &step.text, failure);
        }
    }
    Outcome::Passed {
        events: cluster.events,
        checks: cluster.checks,
    }
}

impl Cluster {
    fn step(&mut self, command: &Command) -> Result<(), StepFailure> {
        match command {
            Command::Event {
                node: Some(id),
                event,
            } => self.event(*id, event.clone()),
            Command::Expect {
                node: Some(id),
                pattern,
                present,
            } => {
                self.checks += 1;
                let batch = self.batch(*id)?;
                check_expectation(batch, pattern, *present).map_err(|r| StepFailure::at(*id, r))
            }
            Command::Check {
                node: Some(id),
                checks,
            } => {
                self.checks += 1;
                let machine = self.node(*id).machine().ok_or_else(|| crashed(*id))?;
                check_state(checks, machine).map_err(|r| StepFailure::at(*id, r))
            }
            Command::Deliver { filter, count } => self.deliver(*filter, *count),
            Command::Drop { filter } => {
                self.queue.retain(|e| !filter.admits(e.from, e.to));
                Ok(())
            }
            Command::Stabilize => self.stabilize(),
            Command::Crash(id) => self.crash(*id),
            Command::Restart { id, keep } => self.restart(*id, *keep),
            Command::CheckCommitted(expected) => {
                self.checks += 1;
                self.check_committed(expected).map_err(StepFailure::cluster)
            }
            other => Err(StepFailure::cluster(format!(
                "{other:?} is not a cluster command"
            ))),
        }
    }

    /// Node `id`; the parser only lets through ids from 1 to the size.
    fn node(&self, id: NodeId) -> &Node {
        &self.nodes[(id.0 - 1) as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node {
        &mut self.nodes[(id.0 - 1) as usize]
    }

    fn batch(&self, id: NodeId) -> Result<&[Action], StepFailure> {
        let node = self.node(id);
        match (node.machine(), node.batch()) {
            (None, _) => Err(crashed(id)),
            (Some(_), None) => Err(StepFailure::at(
                id,
                format!("expect before any event at node {id}"),
            )),
            (Some(_), Some(batch)) => Ok(batch),
        }
    }

    /// One event at node `id`; the sends of its batch join the queue.
    fn event(&mut self, id: NodeId, event: Event) -> Result<(), StepFailure> {
        if self.node(id).machine().is_none() {
            return Err(crashed(id));
        }
        self.events += 1;
        let result = self.node_mut(id).step(event);
        self.enqueue_sends(id);
        result.map_err(|reason| StepFailure::at(id, reason))
    }

    fn enqueue_sends(&mut self, from: NodeId) {
        let Some(batch) = self.nodes[(from.0 - 1) as usize].batch() else {
            return;
        };
        let sent_step = self
            .timeline
            .as_ref()
            .map_or(0, |t| t.borrow().step_count().saturating_sub(1));
        for action in batch {
            if let Action::Send { to, message } = action {
                self.queue.push_back(Envelope {
                    sequence: self.next_sequence,
                    from,
                    to: *to,
                    message: message.clone(),
                    sent_step,
                });
                self.next_sequence += 1;
            }
        }
    }

    /// Delivers matching messages that were queued when the command began,
    /// oldest first, at most `count` of them. Messages the deliveries cause
    /// wait for the next command.
    fn deliver(&mut self, filter: Filter, count: Option<u64>) -> Result<(), StepFailure> {
        let queued_before = self.next_sequence;
        let mut delivered = 0;
        let limit = count.unwrap_or(u64::MAX);
        while delivered < limit {
            let Some(position) = self
                .queue
                .iter()
                .position(|e| e.sequence < queued_before && filter.admits(e.from, e.to))
            else {
                break;
            };
            delivered += 1;
            self.deliver_at(position)?;
        }
        Ok(())
    }

    /// Delivers until nothing is queued, giving up past a bound so that a
    /// scenario whose nodes chatter forever fails instead of hanging.
    fn stabilize(&mut self) -> Result<(), StepFailure> {
        for _ in 0..STABILIZE_DELIVERIES_MAX {
            if self.queue.is_empty() {
                return Ok(());
            }
            self.deliver_at(0)?;
        }
        if self.queue.is_empty() {
            return Ok(());
        }
        Err(StepFailure::cluster(format!(
            "the network did not settle within {STABILIZE_DELIVERIES_MAX} deliveries ({} messages still queued)",
            self.queue.len()
        )))
    }

    /// Takes the message at `position` off the queue and hands it to its
    /// receiver; a message to a crashed node is lost.
    fn deliver_at(&mut self, position: usize) -> Result<(), StepFailure> {
        let Some(envelope) = self.queue.remove(position) else {
            return Ok(());
        };
        let (from, to) = (envelope.from, envelope.to);
        let receiver_up =
            (1..=self.nodes.len() as u64).contains(&to.0) && self.node(to).machine().is_some();
        if let Some(timeline) = &self.timeline {
            let mut timeline = timeline.borrow_mut();
            let delivery = if receiver_up {
                // Its receiving step is the next one recorded.
                Delivery::At(timeline.step_count() as u64)
            } else {
                Delivery::Lost
            };
            let kind = label::message_kind(&envelope.message);
            let to_index = (to.0 as usize).saturating_sub(1);
            timeline.sent_by(envelope.sent_step, to_index, kind, delivery);
        }
        if !receiver_up {
            return Ok(());
        }
        if let Message::InstallSnapshotReq(req) = &envelope.message {
            // The snapshot's data travels with it: the sender's current
            // snapshot, if it is still the one named; otherwise the
            // transfer fails and the message is lost.
            match self.node(from).current_snapshot() {
                Some(snapshot) if snapshot.meta == req.snapshot => {
                    self.node_mut(to).receive_snapshot(snapshot)
                }
                _ => return Ok(()),
            }
        }
        let summary = envelope.message.to_string();
        let event = Event::Receive {
            from,
            message: envelope.message,
        };
        self.event(to, event).map_err(|failure| StepFailure {
            reason: format!(
                "delivering {summary} from {from} to {to}: {}",
                failure.reason
            ),
            node: failure.node,
        })
    }

    fn crash(&mut self, id: NodeId) -> Result<(), StepFailure> {
        if self.node(id).machine().is_none() {
            return Err(StepFailure::at(id, format!("node {id} is already crashed")));
        }
        self.node_mut(id).crash();
        self.queue.retain(|e| e.from != id && e.to != id);
        Ok(())
    }

    fn restart(&mut self, id: NodeId, keep: Option<u64>) -> Result<(), StepFailure> {
        if self.node(id).machine().is_some() {
            return Err(StepFailure::at(
                id,
                format!("node {id} is running: crash it before restarting it"),
            ));
        }
        self.events += 1;
        let result = self.node_mut(id).restart(keep);
        self.enqueue_sends(id);
        result.map_err(|reason| StepFailure::at(id, reason))
    }

    /// Every node's committed non-empty data is a prefix of `expected`, and
    /// some node has committed all of it.
    fn check_committed(&self, expected: &[Bytes]) -> Result<(), String> {
        let committed: Vec<Vec<Bytes>> = self.nodes.iter().map(Node::committed_data).collect();
        for (position, data) in committed.iter().enumerate() {
            if !expected.starts_with(data) {
                return Err(format!(
                    "node {} committed [{}], which is not a prefix of [{}]",
                    position + 1,
                    data_list(data),
                    data_list(expected)
                ));
            }
        }
        if committed.iter().any(|data| data.len() == expected.len()) {
            return Ok(());
        }
        let per_node: Vec<String> = committed
            .iter()
            .enumerate()
            .map(|(position, data)| format!("node {} has [{}]", position + 1, data_list(data)))
            .collect();
        Err(format!(
            "no node has committed all of [{}]: {}",
            data_list(expected),
            per_node.join(", ")
        ))
    }

    fn failed(&self, file: &str, line: usize, text: &str, failure: StepFailure) -> Outcome {
        let node = failure.node.map(|id| self.node(id));
        Outcome::Failed(Box::new(Failure {
            file: file.to_string(),
            line,
            text: text.to_string(),
            reason: failure.reason,
            node: failure.node,
            batch: node.and_then(Node::batch).map(render),
            state: node.and_then(Node::state),
        }))
    }
}

fn crashed(id: NodeId) -> StepFailure {
    StepFailure::at(id, format!("node {id} is crashed: restart it first"))
}

fn data_list(data: &[Bytes]) -> String {
    let texts: Vec<String> = data.iter().map(|d| EntryDataText(d).to_string()).collect();
    texts.join(",")
}
