//! Client requests in the world: a request travels to its node, the node's
//! answer comes back at once, and a request left unanswered times out.
//!
//! An append's answer is a `Commit` action of the same incarnation for the
//! same data. A read is stepped as `Event::Read` with the virtual clock in
//! milliseconds; on `ReadReady { index }` the node answers it with its
//! application state as soon as it has applied through `index` (at once,
//! or after the commits or the snapshot install that bring it there), and
//! on `ReadFailed` the client follows the hint or backs off as for an
//! append. A crash loses the reads a node holds, and their clients time
//! out.

use super::batch::{kind, Input};
use super::{World, WorldEvent};
use crate::checker::Failure;
use crate::client::{Answer, Pending, Request, REQUEST_TIMEOUT_US};
use crate::history::{Ack, Read};
use crate::trace::{hash_event, hash_index, Time};
use skiff_core::render::DataText;
use skiff_core::{Bytes, CommitError, Event, LogIndex, ReadError, ReadId, Role};

impl World {
    pub(super) fn client_submit(&mut self, client: usize) {
        let nodes = self.nodes.len();
        let (floor, step) = (self.checkers.read_floor(), self.stats.steps);
        let pending = self.clients[client].submit(self.now, nodes, self.read_chance, &mut self.rng);
        pending.submitted_step = step;
        pending.floor = floor;
        let attempt = pending.attempt;
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
        let (index, id, request) = (pending.node, node.id, pending.request.clone());
        let number = client + 1;
        let h = self.trace.hasher();
        let event = match request {
            Request::Append(data) => {
                hash_event(h, kind::CLIENT_APPEND, self.now, index, client as u64);
                h.bytes(&data);
                if self.trace.wants_text() {
                    let (now, text) = (Time(self.now), DataText(&data));
                    self.trace.line(format_args!(
                        "{now} on {id} append {text}  # client {number}"
                    ));
                }
                Event::Append(data)
            }
            Request::Read(read) => {
                let now_ms = self.now / 1000;
                hash_event(h, kind::CLIENT_READ, self.now, index, client as u64);
                h.word(read.0);
                if self.trace.wants_text() {
                    let now = Time(self.now);
                    self.trace.line(format_args!(
                        "{now} on {id} read id={} now={now_ms}  # client {number}",
                        read.0
                    ));
                }
                self.checkers.read_asked(id, read);
                Event::Read { id: read, now_ms }
            }
        };
        self.run_batch(index, Input::Step(event), None);
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

    /// Hands `answer` from node index `index` to `client`, which waits for
    /// it, and schedules the client's next request. Returns the finished
    /// request.
    fn answer_client(&mut self, client: usize, index: usize, answer: Answer) -> Option<Pending> {
        let nodes = self.nodes.len();
        let (pending, pause) = self.clients[client].answer(index, answer, nodes, &mut self.rng)?;
        if let Some(timeline) = self.timeline.as_deref_mut() {
            let outcome = match &answer {
                Answer::Acked(_) => "append acknowledged",
                Answer::NotLeader(_) => "append refused: not the leader",
                Answer::Overwritten => "append overwritten",
                Answer::Read(_) => "read answered",
                Answer::Busy => "read refused: busy",
            };
            timeline.request(client + 1, index, pending.submitted_at, self.now, outcome);
        }
        if self.trace.wants_text() {
            let number = client + 1;
            self.trace
                .line(format_args!("  # client {number} takes the answer"));
        }
        self.queue
            .push(self.now + pause, WorldEvent::ClientSubmit { client });
        Some(pending)
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
        let answer = Answer::of(result);
        let Some(pending) = self.answer_client(client, index, answer) else {
            return Ok(());
        };
        match answer {
            Answer::Acked(at) => {
                self.stats.client_acks += 1;
                hash_index(self.trace.hasher(), at);
                let id = self.nodes[index].id;
                self.checkers.client_ack(id, &data, at)?;
                let now = self.now;
                self.checkers
                    .liveness()
                    .observe_ack(pending.submitted_at, now);
                self.history.record(Ack {
                    client: client + 1,
                    node: id,
                    data,
                    index: at,
                    submitted_at: pending.submitted_at,
                    acked_at: now,
                    acked_step: self.stats.steps,
                });
            }
            Answer::NotLeader(_) | Answer::Busy => self.stats.client_redirects += 1,
            Answer::Overwritten => self.stats.client_overwritten += 1,
            Answer::Read(_) => {}
        }
        Ok(())
    }

    /// A `ReadReady` action of node index `index`: the read is answered
    /// once the node has applied through `at`.
    pub(super) fn read_ready(
        &mut self,
        index: usize,
        id: ReadId,
        at: LogIndex,
    ) -> Result<(), Failure> {
        let node = &mut self.nodes[index];
        if node.app.applied >= at {
            return self.serve_read(index, id);
        }
        node.reads.push((id, at));
        Ok(())
    }

    /// Node index `index` applied more: answers the reads that waited for it.
    pub(super) fn serve_waiting_reads(&mut self, index: usize) -> Result<(), Failure> {
        let node = &mut self.nodes[index];
        if node.reads.is_empty() {
            return Ok(());
        }
        let applied = node.app.applied;
        let mut ready = Vec::new();
        node.reads.retain(|&(id, at)| {
            let due = at <= applied;
            if due {
                ready.push(id);
            }
            !due
        });
        for id in ready {
            self.serve_read(index, id)?;
        }
        Ok(())
    }

    /// Node index `index` answers read `id` with its application state, if
    /// a client still waits for it from this life of the node.
    fn serve_read(&mut self, index: usize, id: ReadId) -> Result<(), Failure> {
        let node = &self.nodes[index];
        let (incarnation, state, node_id) = (node.incarnation, node.app, node.id);
        let by_follower = node.machine.as_ref().map(|m| m.role()) != Some(Role::Leader);
        let Some(client) = self
            .clients
            .iter()
            .position(|c| c.awaits_read(index, incarnation, id))
        else {
            return Ok(());
        };
        let Some(pending) = self.answer_client(client, index, Answer::Read(state)) else {
            return Ok(());
        };
        hash_index(self.trace.hasher(), state.applied);
        if self.trace.wants_text() {
            self.trace
                .line(format_args!("  # read {} returns {state}", id.0));
        }
        self.checkers
            .read_answered(node_id, id, pending.floor, &state)?;
        self.stats.reads_answered += 1;
        self.stats.read_latency_total_us += self.now - pending.submitted_at;
        self.stats.reads_by_followers += u64::from(by_follower);
        self.history.record_read(Read {
            client: client + 1,
            node: node_id,
            id,
            state,
            sent_at: pending.submitted_at,
            sent_step: pending.submitted_step,
            answered_at: self.now,
            answered_step: self.stats.steps,
        });
        Ok(())
    }

    /// A `ReadFailed` action of node index `index`: the client follows the
    /// hint or backs off.
    pub(super) fn read_failed(&mut self, index: usize, id: ReadId, error: ReadError) {
        let incarnation = self.nodes[index].incarnation;
        let Some(client) = self
            .clients
            .iter()
            .position(|c| c.awaits_read(index, incarnation, id))
        else {
            return;
        };
        if self
            .answer_client(client, index, Answer::of_read_error(error))
            .is_some()
        {
            self.stats.reads_failed += 1;
        }
    }
}
