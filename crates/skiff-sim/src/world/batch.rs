//! One event through one machine: the world hands the machine its event,
//! then performs the batch of actions in order, checking each before it
//! takes effect, and the machine's state after the batch. A crash armed by
//! the injector can cut the batch short: what was performed stays (the disk
//! keeps its writes, sent messages fly), the rest is lost.

use super::{World, WorldEvent};
use crate::app::AppState;
use crate::checker::{durable_state, term_adoption, Failure, NodeView, Rule};
use crate::network::Fate;
use crate::queue::Micros;
use crate::rng::SimRng;
use crate::timeline::{label, Delivery, NodeState};
use crate::trace::{hash_action, hash_event, Time};
use skiff_core::{Action, Bytes, CommitError, Event, LogIndex, Message, NodeId, Term};

/// Event kinds, as mixed into the trace hash.
pub(super) mod kind {
    pub const DELIVER: u64 = 1;
    pub const TIMEOUT: u64 = 2;
    pub const CLIENT_APPEND: u64 = 3;
    pub const START: u64 = 4;
    pub const CRASH: u64 = 5;
    pub const PARTITION: u64 = 6;
    pub const HEAL: u64 = 7;
    pub const QUIET: u64 = 8;
    pub const CLIENT_GIVES_UP: u64 = 9;
    pub const SEND_FATE: u64 = 10;
    pub const STORAGE_FAULT: u64 = 11;
    pub const FORGE: u64 = 12;
    pub const SNAPSHOT: u64 = 13;
    pub const CHUNK_FATE: u64 = 14;
    pub const CHUNK: u64 = 15;
    pub const STALL: u64 = 16;
    pub const STALL_END: u64 = 17;
    pub const STALL_DROP: u64 = 18;
    pub const CLIENT_READ: u64 = 19;
    pub const TRANSFER: u64 = 20;
    pub const MEMBERSHIP: u64 = 21;
}

/// What a machine is asked to do in a batch.
pub(super) enum Input {
    /// Arm the first alarm of a (re)started machine.
    Start,
    /// Handle an event.
    Step(Event),
}

impl World {
    /// A message arrives at node index `to`.
    pub(super) fn deliver(&mut self, from: NodeId, to: usize, message: Message) {
        // The message's content went into the hash when it was sent, with
        // its arrival time; its arrival needs only the header.
        hash_event(self.trace.hasher(), kind::DELIVER, self.now, to, from.0);
        let up = self.nodes[to].machine.is_some();
        if self.trace.wants_text() {
            let (now, id) = (Time(self.now), self.nodes[to].id);
            let status = if up { "" } else { " # down: lost" };
            self.trace.line(format_args!(
                "{now} on {id} recv from={from} {message}{status}"
            ));
        }
        if !up {
            self.stats.messages_to_down_nodes += 1;
            return;
        }
        self.stats.messages_delivered += 1;
        let owed = self.nodes[to]
            .machine
            .as_ref()
            .and_then(|machine| term_adoption::owed_term(&message, machine.hears_leader()));
        self.run_batch(to, Input::Step(Event::Receive { from, message }), owed);
    }

    /// A node's alarm event comes up. A replaced event (or one of a past
    /// life) does nothing; an alarm re-armed to a later time schedules the
    /// event again; otherwise the alarm fires.
    pub(super) fn alarm(&mut self, index: usize, generation: u64) {
        let node = &mut self.nodes[index];
        if node.machine.is_none() || node.alarm_generation != generation {
            return;
        }
        node.alarm_event_at = None;
        match node.alarm_at {
            Some(at) if at > self.now => {
                node.alarm_event_at = Some(at);
                self.queue.push(
                    at,
                    WorldEvent::Alarm {
                        node: index,
                        generation,
                    },
                );
                return;
            }
            Some(_) => node.alarm_at = None,
            None => return,
        }
        hash_event(self.trace.hasher(), kind::TIMEOUT, self.now, index, 0);
        if self.trace.wants_text() {
            let (now, id) = (Time(self.now), self.nodes[index].id);
            self.trace.line(format_args!("{now} on {id} timeout"));
        }
        self.run_batch(index, Input::Step(Event::Timeout), None);
    }

    /// Arms node index `index`'s alarm `ms` from now, replacing any pending one.
    fn arm_alarm(&mut self, index: usize, ms: u64) {
        let at = self.now.saturating_add(ms.saturating_mul(1000));
        let node = &mut self.nodes[index];
        node.alarm_at = Some(at);
        if node.alarm_event_at.is_some_and(|event_at| event_at <= at) {
            return; // the pending event will find the new time and wait for it
        }
        self.push_alarm_event(index, at);
    }

    /// Schedules node index `index`'s alarm event at `at`, replacing any
    /// pending one (which then finds a newer generation and does nothing).
    pub(super) fn push_alarm_event(&mut self, index: usize, at: Micros) {
        let node = &mut self.nodes[index];
        node.alarm_generation += 1;
        node.alarm_event_at = Some(at);
        let generation = node.alarm_generation;
        self.queue.push(
            at,
            WorldEvent::Alarm {
                node: index,
                generation,
            },
        );
    }

    /// Starts node index `index` from its disk (empty on first boot).
    pub(super) fn start_machine(&mut self, index: usize, restart: bool) {
        let mut config = self.config.clone();
        config.id = self.nodes[index].id;
        // A spare is not among the first voters: it joins (`membership.rs`).
        config.join = config.id.0 > self.options.nodes as u64;
        config.seed = self.rng.fork_seed();
        let id = self.nodes[index].id;
        let started = if self.nodes[index].rejoin {
            self.nodes[index].disk.restore_damaged(config)
        } else {
            self.recover_disk(index, config)
        };
        match started {
            Ok(machine) => {
                let repairing = machine.repairing();
                self.nodes[index].machine = Some(machine);
                self.check_damage_noticed(index, repairing);
            }
            Err(e) => {
                let detail = format!("node {id} cannot restart from its disk: {e}");
                self.fail(Failure::new(Rule::DurableState, vec![id], detail));
                return;
            }
        }
        hash_event(
            self.trace.hasher(),
            kind::START,
            self.now,
            index,
            u64::from(restart),
        );
        if self.trace.wants_text() {
            let disk = &self.nodes[index].disk;
            let hard_state = disk.hard_state();
            let vote = hard_state
                .voted_for
                .map_or("none".into(), |v| v.to_string());
            let what = if restart { "restart" } else { "start" };
            let (now, term, last) = (Time(self.now), hard_state.term, disk.last_index());
            self.trace.line(format_args!(
                "{now} {what} {id} from disk: term={term} voted_for={vote} last_index={last}"
            ));
        }
        if let Err(failure) = self.restore_app(index, restart) {
            self.fail(failure);
            return;
        }
        if restart {
            self.stats.restarts += 1;
        }
        self.run_batch(index, Input::Start, None);
    }

    /// The application of node index `index`, (re)started from its disk's
    /// snapshot (or from nothing, without one).
    fn restore_app(&mut self, index: usize, restart: bool) -> Result<(), Failure> {
        let node = &self.nodes[index];
        let (id, meta) = (node.id, node.disk.snapshot());
        let app = if meta == Default::default() {
            AppState::default()
        } else {
            let Some(snapshot) = node.disk.current_snapshot() else {
                let detail =
                    format!("node {id} restarts from snapshot {meta}, whose data it lacks");
                return Err(Failure::new(Rule::DurableState, vec![id], detail));
            };
            self.checkers.snapshot(id, &snapshot, "restarted from")?;
            snapshot.state
        };
        self.nodes[index].app = app;
        if restart {
            self.checkers.restarted(id, meta, Some(&app))?;
        }
        Ok(())
    }

    /// Runs `input` through node index `index` and performs the batch.
    pub(super) fn run_batch(&mut self, index: usize, input: Input, received: Option<Term>) {
        let node = &mut self.nodes[index];
        let Some(machine) = node.machine.as_mut() else {
            return;
        };
        let id = node.id;
        let mut actions = std::mem::take(&mut self.actions);
        actions.clear();
        self.checkers
            .begin_batch(id, NodeView::of(machine), received);
        match &input {
            Input::Step(Event::Receive { from, message }) => {
                self.checkers.receiving(*from, message)
            }
            Input::Step(Event::Timeout) => self.checkers.timing_out(),
            _ => {}
        }
        let event_text = self.timeline.as_ref().map(|_| match &input {
            Input::Start => "start".to_string(),
            Input::Step(event) => label::event(event),
        });
        match input {
            Input::Start => machine.start(&mut actions),
            Input::Step(event) => machine.step(event, &mut actions),
        }
        let actions_text = event_text.as_ref().map(|_| label::actions(&actions));
        let crash_at = if node.crash_armed {
            crash_point(&mut self.rng, &actions)
        } else {
            None
        };
        // An armed stall hangs the batch's sync, if it has writes to sync.
        let stalls = crash_at.is_none()
            && node.stall_armed.is_some()
            && actions.iter().any(Action::is_persistence);
        let total = actions.len();
        let mut synced = false;
        let mut held = Vec::new();
        self.log_reshaped = false;
        for (position, action) in actions.drain(..).enumerate() {
            if crash_at == Some(position) {
                break;
            }
            // One sync per batch, once its writes are done and before
            // anyone hears of them, as the node syncs once per turn.
            if !synced && !action.is_persistence() {
                if stalls {
                    // The sync hangs: the rest waits for the disk.
                    held.push(action);
                    continue;
                }
                self.nodes[index].disk.sync();
                synced = true;
            }
            if let Err(failure) = self.perform(index, action) {
                self.fail(failure);
                break;
            }
        }
        self.actions = actions;
        if let (Some(timeline), Some(event), Some(actions)) =
            (self.timeline.as_deref_mut(), event_text, actions_text)
        {
            let after = self.nodes[index].machine.as_ref().map(NodeState::of);
            timeline.step(self.now, index, &event, &actions, after);
        }
        if self.violation.is_some() {
            return;
        }
        match crash_at {
            Some(performed) => self.crash_mid_batch(index, performed, total),
            None if stalls => {
                self.end_batch(index);
                self.note_repair(index);
                self.begin_stall(index, held);
            }
            None => self.finish_batch(index),
        }
    }

    /// The end of a batch that was not cut short: its sync, the checks of
    /// the node's state, and what follows.
    pub(super) fn finish_batch(&mut self, index: usize) {
        self.nodes[index].disk.sync();
        self.end_batch(index);
        self.check_reads_held(index);
        self.note_repair(index);
        self.maybe_take_snapshot(index);
        self.note_terms(index);
        self.sharpen_churn(index);
    }

    /// After a batch performed in full (not one whose rest waits for a
    /// stalled disk), every read, transfer and membership change the node
    /// has not answered is one it holds.
    fn check_reads_held(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(machine) = &node.machine else {
            return;
        };
        let checked = self
            .checkers
            .reads_held(node.id, machine.pending_reads())
            .and_then(|()| {
                let running = machine.transfer_target().is_some();
                self.checkers.transfers_running(node.id, running)
            })
            .and_then(|()| {
                let held = machine.pending_membership_changes();
                self.checkers.changes_held(node.id, held)
            });
        if let Err(failure) = checked {
            self.fail(failure);
        }
    }

    fn crash_mid_batch(&mut self, index: usize, performed: usize, total: usize) {
        if self.trace.wants_text() {
            let lost = total - performed;
            self.trace.line(format_args!(
                "  # crash after {performed} of {total} actions: the last {lost} are lost"
            ));
        }
        self.checkers.abort_batch();
        self.crash(index, true);
    }

    pub(super) fn end_batch(&mut self, index: usize) {
        let node = &self.nodes[index];
        let Some(machine) = &node.machine else {
            return;
        };
        self.checkers.note_membership(node.id, machine.membership());
        let mut checked = self
            .checkers
            .end_batch(node.id, NodeView::of(machine), &node.disk);
        if checked.is_ok() && self.log_reshaped {
            checked = durable_state::check_log(node.id, machine, &node.disk);
        }
        if let Err(failure) = checked {
            self.fail(failure);
        }
    }

    /// Performs one action of node index `index`, after checking it.
    pub(super) fn perform(&mut self, index: usize, action: Action) -> Result<(), Failure> {
        hash_action(self.trace.hasher(), &action);
        let node = &self.nodes[index];
        self.checkers.action(node.id, &action, &node.disk)?;
        if self.trace.wants_text() && !matches!(action, Action::Send { .. }) {
            for line in action.to_string().lines() {
                self.trace.line(format_args!("  {line}"));
            }
        }
        match action {
            Action::Send {
                to,
                message: Message::InstallSnapshotReq(req),
            } => return self.send_snapshot(index, to, req),
            Action::Send { to, message } => self.send(index, to, message),
            Action::Alarm { ms } => self.arm_alarm(index, ms),
            Action::Commit { data, result } => {
                if let Ok(at) = result {
                    self.check_commit_quorum(index, at)?;
                    self.note_config_commit(index, at, &data);
                }
                self.apply_commit(index, &data, result)?;
                self.commit(index, data, result)?;
                return self.serve_waiting_reads(index);
            }
            Action::SnapshotInstall { snapshot, .. } => {
                let installed = self.installed_snapshot(index, snapshot)?;
                self.write_disk(index, action)?;
                self.nodes[index].app = installed.state;
                self.log_reshaped = true;
                return self.serve_waiting_reads(index);
            }
            Action::ReadReady { id, index: at } => return self.read_ready(index, id, at),
            Action::ReadFailed { id, error } => self.read_failed(index, id, error),
            Action::LogCompact { .. } => {
                self.write_disk(index, action)?;
                self.log_reshaped = true;
            }
            Action::SteppedDown { reason } => self.stats.count_step_down(reason),
            Action::TransferEnded { result, .. } => self.transfer_ended(result),
            Action::MembershipChangeEnded { result, .. } => self.change_ended(result),
            persistence => self.write_disk(index, persistence)?,
        }
        Ok(())
    }

    /// Performs a persistence action or a compaction on the disk of node
    /// index `index`.
    fn write_disk(&mut self, index: usize, action: Action) -> Result<(), Failure> {
        // Unsynced until the batch's sync (see `run_batch`).
        let disk = &mut self.nodes[index].disk;
        disk.apply_owned(action).map_err(|refused| {
            let id = self.nodes[index].id;
            Failure::new(Rule::DurableState, vec![id], format!("node {id} {refused}"))
        })
    }

    /// A `Commit` of node index `index`: its application applies the entry.
    fn apply_commit(
        &mut self,
        index: usize,
        data: &Bytes,
        result: Result<LogIndex, CommitError>,
    ) -> Result<(), Failure> {
        let Ok(at) = result else {
            return Ok(()); // not committed here: nothing to apply
        };
        let node = &mut self.nodes[index];
        let (id, before) = (node.id, node.app.applied);
        node.app.apply(data);
        if node.app.applied != at {
            return Err(Failure::new(
                Rule::AppliedState,
                vec![id],
                format!("node {id} committed index {at} after applying through {before}"),
            ));
        }
        self.checkers.applied(id, &node.app)
    }

    /// Hands a message to the network.
    fn send(&mut self, from: usize, to: NodeId, message: Message) {
        self.stats.messages_sent += 1;
        if let Message::AppendEntriesReq(req) = &message {
            self.note_epoch_sent(from, to, req);
        }
        let to_index = (to.0 as usize).wrapping_sub(1);
        let fate = if to_index < self.nodes.len() && to_index != from {
            self.network.fate(&mut self.rng, self.now, from, to_index)
        } else {
            Fate::Lost // not a peer: nowhere to deliver
        };
        let h = self.trace.hasher();
        match fate {
            Fate::Blocked => hash_event(h, kind::SEND_FATE, 0, 0, 0),
            Fate::Lost => hash_event(h, kind::SEND_FATE, 1, 0, 0),
            Fate::Delivered { at, duplicate_at } => {
                hash_event(h, kind::SEND_FATE, at, 2, duplicate_at.unwrap_or(0))
            }
        }
        if self.trace.wants_text() {
            let note = match fate {
                Fate::Blocked => "  # blocked by the partition",
                Fate::Lost => "  # lost",
                Fate::Delivered {
                    duplicate_at: Some(_),
                    ..
                } => "  # duplicated",
                Fate::Delivered { .. } => "",
            };
            self.trace
                .line(format_args!("  Send(to={to}, {message}){note}"));
        }
        if let Some(timeline) = self.timeline.as_deref_mut() {
            let delivery = match fate {
                Fate::Blocked => Delivery::Blocked,
                Fate::Lost => Delivery::Lost,
                Fate::Delivered { at, .. } => Delivery::At(at),
            };
            let kind = label::message_kind(&message);
            timeline.sent(to_index, kind, delivery);
            if let Fate::Delivered {
                duplicate_at: Some(again),
                ..
            } = fate
            {
                timeline.sent(to_index, kind, Delivery::At(again));
            }
        }
        let from = self.nodes[from].id;
        match fate {
            Fate::Blocked => self.stats.messages_blocked += 1,
            Fate::Lost => self.stats.messages_lost += 1,
            Fate::Delivered { at, duplicate_at } => {
                if let Some(again) = duplicate_at {
                    self.stats.messages_duplicated += 1;
                    let copy = message.clone();
                    let event = WorldEvent::Deliver {
                        from,
                        to: to_index,
                        message: copy,
                    };
                    self.queue.push(again, event);
                }
                let event = WorldEvent::Deliver {
                    from,
                    to: to_index,
                    message,
                };
                self.queue.push(at, event);
            }
        }
    }
}

/// Where an armed crash cuts `actions`: the number performed before it.
/// Only a batch that persists something is cut (elsewhere a crash between
/// batches is as good); the cut falls strictly inside when it can, so that
/// some of the batch is done and some lost.
fn crash_point(rng: &mut SimRng, actions: &[Action]) -> Option<usize> {
    if !actions.iter().any(Action::is_persistence) {
        return None;
    }
    let total = actions.len() as u64;
    Some(if total >= 2 { rng.between(1, total) } else { 0 } as usize)
}
