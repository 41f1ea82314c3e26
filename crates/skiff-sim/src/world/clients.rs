//! Client requests in the world: a request travels to its node, the node's
//! answer (a `Commit` action of the same incarnation for the same data)
//! comes back at once, and a request left unanswered times out.

use super::batch::{kind, Input};
use super::{World, WorldEvent};
use crate::checker::Failure;
use crate::client::{Answer, REQUEST_TIMEOUT_US};
use crate::history::Ack;
use crate::trace::{hash_event, hash_index, Time};
use skiff_core::render::DataText;
use skiff_core::{Bytes, CommitError, Event, LogIndex};

impl World {
    pub(super) fn client_submit(&mut self, client: usize) {
        let nodes = self.nodes.len();
        let attempt = self.clients[client]
            .submit(self.now, nodes, &mut self.rng)
            .attempt;
        let travel = self.network.latency(&mut self.rng);
        let arrive = WorldEvent::ClientArrive { client, attempt };
        self.queue.push(self.now + travel, arrive);
        let timeout = WorldEvent::ClientTimeout { client, attempt };
        self.queue.push(self.now + REQUEST_TIMEOUT_US, timeout);
    }

    /// The request reaches its node; a crashed node loses it (the client
    /// will time out).
    pub(super) fn client_arrive(&mut self, client: usize, attempt: u64) {
        let Some(pending) = self.clients[client].pending.as_mut() else {
            return;
        };
        let node = &self.nodes[pending.node];
        if pending.attempt != attempt || node.machine.is_none() {
            return;
        }
        pending.incarnation = Some(node.incarnation);
        let (index, id, data) = (pending.node, node.id, pending.data.clone());
        let h = self.trace.hasher();
        hash_event(h, kind::CLIENT_APPEND, self.now, index, client as u64);
        h.bytes(&data);
        if self.trace.wants_text() {
            let (now, text) = (Time(self.now), DataText(&data));
            let number = client + 1;
            self.trace.line(format_args!(
                "{now} on {id} append {text}  # client {number}"
            ));
        }
        self.run_batch(index, Input::Step(Event::Append(data)), None);
    }

    pub(super) fn client_timeout(&mut self, client: usize, attempt: u64) {
        if !self.clients[client].time_out(attempt) {
            return;
        }
        self.stats.client_timeouts += 1;
        hash_event(
            self.trace.hasher(),
            kind::CLIENT_GIVES_UP,
            self.now,
            client,
            attempt,
        );
        let number = client + 1;
        self.trace_world(format_args!("# client {number} gives up on its request"));
        self.queue
            .push(self.now, WorldEvent::ClientSubmit { client });
    }

    /// A `Commit` action of node index `index`: the answer to a client, if
    /// one waits for it from this node's current life.
    pub(super) fn commit(
        &mut self,
        index: usize,
        data: Bytes,
        result: Result<LogIndex, CommitError>,
    ) -> Result<(), Failure> {
        let incarnation = self.nodes[index].incarnation;
        let Some(client) = self
            .clients
            .iter()
            .position(|c| c.awaits(index, incarnation, &data))
        else {
            return Ok(());
        };
        let nodes = self.nodes.len();
        let answer = Answer::of(result);
        let Some((pending, pause)) =
            self.clients[client].answer(index, answer, nodes, &mut self.rng)
        else {
            return Ok(());
        };
        match answer {
            Answer::Acked(at) => {
                self.stats.client_acks += 1;
                hash_index(self.trace.hasher(), at);
                let id = self.nodes[index].id;
                self.checkers.client_ack(id, &pending.data, at)?;
                let now = self.now;
                self.checkers
                    .liveness()
                    .observe_ack(pending.submitted_at, now);
                self.history.record(Ack {
                    client: client + 1,
                    node: id,
                    data: pending.data.clone(),
                    index: at,
                    submitted_at: pending.submitted_at,
                    acked_at: now,
                });
            }
            Answer::NotLeader(_) => self.stats.client_redirects += 1,
            Answer::Overwritten => self.stats.client_overwritten += 1,
        }
        if self.trace.wants_text() {
            let number = client + 1;
            self.trace
                .line(format_args!("  # client {number} takes the answer"));
        }
        self.queue
            .push(self.now + pause, WorldEvent::ClientSubmit { client });
        Ok(())
    }
}
