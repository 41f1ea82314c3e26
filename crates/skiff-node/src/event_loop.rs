//! The one task that owns the state machine.
//!
//! Each turn waits for one input (a peer message, a command from the
//! application, or the alarm), then takes whatever else is ready, up to
//! [`INPUTS_PER_TURN_MAX`], stepping the machine for each into one reused
//! action buffer. Then it performs the turn's actions:
//!
//! 1. every persistence action, buffered by the storage, in order;
//! 2. one sync for all of them (group commit: the more load, the more
//!    events share a sync);
//! 3. only then, in order, every `Send`, `Commit` and `Alarm`.
//!
//! Sends and commits of a turn thus wait for the persistence of the whole
//! turn, which is later than the machine requires, never earlier. Finally
//! the turn feeds the subscriptions from the committed log and publishes
//! the status.

use crate::api::{CommittedEntry, NodeError, Status, SubmitError};
use crate::storage::Storage;
use crate::transport::{Inbound, Transport};
use bytes::Bytes;
use skiff_core::{Action, CommitError, Entry, Event, LogIndex, Machine, Role, Term};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Duration, Instant};

/// Inputs stepped in one turn, so that one sync covers many events but a
/// flood cannot delay the sync (and every reply) without bound.
pub const INPUTS_PER_TURN_MAX: usize = 1024;
/// Submissions waiting for their outcome before new ones are refused.
pub const SUBMISSIONS_PENDING_MAX: usize = 1 << 16;

/// The answer to a submission or read barrier.
pub type Reply = oneshot::Sender<Result<LogIndex, SubmitError>>;

/// What the application asks of the event loop.
pub enum Command {
    /// Replicate `data`.
    Submit { data: Bytes, reply: Reply },
    /// Answer with a committed index once this node has proven it was still
    /// leader after the request arrived.
    ReadBarrier { reply: Reply },
    /// Deliver committed entries from `from` on into `sender`.
    Subscribe {
        from: LogIndex,
        sender: mpsc::Sender<CommittedEntry>,
        stalled: Arc<AtomicBool>,
    },
    /// A subscriber made room in its channel.
    Nudge,
    /// Finish the turn, sync, and stop.
    Shutdown,
}

struct Subscriber {
    sender: mpsc::Sender<CommittedEntry>,
    next: LogIndex,
    /// Set when the channel was full, so the subscriber nudges the loop.
    stalled: Arc<AtomicBool>,
}

/// The machine and everything that performs its actions.
pub struct EventLoop {
    machine: Machine,
    storage: Storage,
    transport: Transport,
    peer_inbox: mpsc::Receiver<Inbound>,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<Status>,
    actions: Vec<Action>,
    alarm: Option<Instant>,
    /// Submitters waiting for the entry this node appended, by index and
    /// term: an entry truncated from this log still waits for its outcome,
    /// and this node may append another at the same index in a later term.
    waiters: BTreeMap<(LogIndex, Term), Reply>,
    /// Read barriers that arrived this turn; they share one barrier entry.
    barriers: Vec<Reply>,
    subscribers: Vec<Subscriber>,
    stopping: bool,
}

enum Input {
    Peer(Inbound),
    Command(Command),
    Timeout,
}

impl EventLoop {
    /// An event loop ready to [`run`](EventLoop::run).
    pub fn new(
        machine: Machine,
        storage: Storage,
        transport: Transport,
        peer_inbox: mpsc::Receiver<Inbound>,
        commands: mpsc::Receiver<Command>,
        status: watch::Sender<Status>,
    ) -> EventLoop {
        EventLoop {
            machine,
            storage,
            transport,
            peer_inbox,
            commands,
            status,
            actions: Vec::new(),
            alarm: None,
            waiters: BTreeMap::new(),
            barriers: Vec::new(),
            subscribers: Vec::new(),
            stopping: false,
        }
    }

    /// Runs until a `Shutdown` command, until every handle is dropped, or
    /// until storage fails.
    pub async fn run(mut self) -> Result<(), NodeError> {
        self.machine.start(&mut self.actions);
        self.perform()?;
        while !self.stopping {
            let first = self.next_input().await;
            self.handle(first);
            self.drain_ready_inputs();
            self.append_barrier();
            self.perform()?;
        }
        tracing::info!(id = %self.machine.id(), "node stopped");
        Ok(())
    }

    async fn next_input(&mut self) -> Input {
        let alarm = self.alarm;
        let sleep = async move {
            match alarm {
                Some(deadline) => tokio::time::sleep_until(deadline).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = self.commands.recv() => Input::Command(command.unwrap_or(Command::Shutdown)),
            Some(inbound) = self.peer_inbox.recv() => Input::Peer(inbound),
            () = sleep => Input::Timeout,
        }
    }

    /// Takes what is ready without waiting, alternating between sources.
    fn drain_ready_inputs(&mut self) {
        let mut taken = 1;
        while taken < INPUTS_PER_TURN_MAX && !self.stopping {
            let before = taken;
            if let Ok(command) = self.commands.try_recv() {
                self.handle(Input::Command(command));
                taken += 1;
            }
            if let Ok(inbound) = self.peer_inbox.try_recv() {
                self.handle(Input::Peer(inbound));
                taken += 1;
            }
            if self
                .alarm
                .is_some_and(|deadline| deadline <= Instant::now())
            {
                self.handle(Input::Timeout);
                taken += 1;
            }
            if taken == before {
                break;
            }
        }
    }

    fn handle(&mut self, input: Input) {
        match input {
            Input::Peer((from, message)) => {
                self.machine
                    .step(Event::Receive { from, message }, &mut self.actions);
            }
            Input::Timeout => {
                self.alarm = None;
                self.machine.step(Event::Timeout, &mut self.actions);
            }
            Input::Command(Command::Submit { data, reply }) => self.submit(data, reply),
            Input::Command(Command::ReadBarrier { reply }) => self.barriers.push(reply),
            Input::Command(Command::Subscribe {
                from,
                sender,
                stalled,
            }) => {
                let next = from.max(LogIndex(1));
                self.subscribers.push(Subscriber {
                    sender,
                    next,
                    stalled,
                });
            }
            Input::Command(Command::Nudge) => {}
            Input::Command(Command::Shutdown) => self.stopping = true,
        }
    }

    /// Appends `data` and remembers who waits for it. A leader stores it
    /// at its new last index; any other role refuses it at once.
    fn submit(&mut self, data: Bytes, reply: Reply) {
        if self.waiters.len() >= SUBMISSIONS_PENDING_MAX {
            let _ = reply.send(Err(SubmitError::Busy));
            return;
        }
        let before = self.machine.last_index();
        self.machine.step(Event::Append(data), &mut self.actions);
        let after = self.machine.last_index();
        if self.machine.role() == Role::Leader && after > before {
            self.waiters.insert((after, self.machine.term()), reply);
        } else {
            // The machine answered with Commit(NotLeader), which `perform`
            // skips: the refusal depends on nothing durable.
            let leader = self.machine.leader();
            let _ = reply.send(Err(SubmitError::NotLeader { leader }));
        }
    }

    /// Appends one empty entry for all read barriers of this turn: once it
    /// commits, this node was leader after every one of them arrived, and
    /// its index covers every write committed before.
    fn append_barrier(&mut self) {
        if self.barriers.is_empty() {
            return;
        }
        let (sender, receiver) = oneshot::channel();
        self.submit(Bytes::new(), sender);
        let barriers = std::mem::take(&mut self.barriers);
        tokio::spawn(async move {
            let outcome = receiver.await.unwrap_or(Err(SubmitError::Stopped));
            for reply in barriers {
                let _ = reply.send(outcome);
            }
        });
    }

    /// Performs the turn's actions: persistence, one sync, then the rest.
    fn perform(&mut self) -> Result<(), NodeError> {
        for action in self.actions.iter().filter(|a| a.is_persistence()) {
            self.storage.persist(action)?;
        }
        self.storage.sync()?;
        for action in self.actions.drain(..) {
            match action {
                Action::Send { to, message } => self.transport.send(to, message),
                Action::Commit { result, .. } => {
                    resolve(&mut self.waiters, self.machine.log(), result)
                }
                Action::Alarm { ms } => {
                    self.alarm = Some(Instant::now() + Duration::from_millis(ms))
                }
                Action::StateStore { .. }
                | Action::LogStore { .. }
                | Action::LogTruncate { .. } => {}
            }
        }
        self.feed_subscribers();
        self.publish_status();
        Ok(())
    }

    /// Sends each subscriber the committed entries it has not had, as far
    /// as its channel has room.
    fn feed_subscribers(&mut self) {
        let commit_index = self.machine.commit_index();
        let log = self.machine.log();
        self.subscribers.retain_mut(|subscriber| {
            while subscriber.next <= commit_index {
                let index = subscriber.next;
                let entry = &log[(index.0 - 1) as usize];
                let committed = CommittedEntry {
                    index,
                    term: entry.term,
                    data: entry.data.clone(),
                };
                match subscriber.sender.try_send(committed) {
                    Ok(()) => subscriber.next = index.next(),
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        subscriber.stalled.store(true, Ordering::Release);
                        return true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return false,
                }
            }
            !subscriber.sender.is_closed()
        });
    }

    fn publish_status(&mut self) {
        let status = Status {
            id: self.machine.id(),
            role: self.machine.role(),
            term: self.machine.term(),
            leader: self.machine.leader(),
            commit_index: self.machine.commit_index(),
            last_index: self.machine.last_index(),
        };
        self.status.send_if_modified(|current| {
            if (current.role, current.term, current.leader) != (status.role, status.term, status.leader) {
                let leader = status.leader.map(|id| id.0);
                tracing::info!(role = %status.role, term = %status.term, ?leader, "role or term changed");
            }
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}

/// Answers whoever waits for the entry a `Commit` action reports on. A
/// committed entry is named by its index and the term `log` holds there.
fn resolve(
    waiters: &mut BTreeMap<(LogIndex, Term), Reply>,
    log: &[Entry],
    result: Result<LogIndex, CommitError>,
) {
    let (key, outcome) = match result {
        Ok(index) => {
            let Some(entry) = index.0.checked_sub(1).and_then(|i| log.get(i as usize)) else {
                return;
            };
            ((index, entry.term), Ok(index))
        }
        Err(CommitError::Overwritten { index, term }) => {
            ((index, term), Err(SubmitError::Overwritten { index }))
        }
        Err(CommitError::NotLeader { .. }) => return, // answered in `submit`
    };
    if let Some(reply) = waiters.remove(&key) {
        let _ = reply.send(outcome);
    }
}
