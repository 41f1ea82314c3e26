//! The one task that owns the state machine.
//!
//! Each turn waits for one input (a peer message, a command from the
//! application, or the alarm), then takes whatever else is ready, up to
//! [`INPUTS_PER_TURN_MAX`], stepping the machine for each into one reused
//! action buffer. Then it performs the turn's actions:
//!
//! 1. every persistence action, buffered by the storage, in order;
//! 2. the commits of entries that earlier turns made durable (see below),
//!    and the subscriptions fed up to them;
//! 3. a leader's `AppendEntriesReq` sends, when the turn stores no hard
//!    state (see below);
//! 4. one sync for all of the persistence (group commit: the more load,
//!    the more events share a sync);
//! 5. only then, in order, every other `Send`, every `Commit` and `Alarm`.
//!
//! Sends and commits of a turn thus wait for the persistence of the whole
//! turn, which is later than the machine requires, never earlier, with two
//! exceptions. Finally the turn feeds the subscriptions from the committed
//! log and publishes the status.
//!
//! # Commits that wait for nothing
//!
//! A `Commit` reports an entry that a majority stores durably; the turn's
//! sync can only matter to it when the entry is this node's own copy
//! written in this turn. Every turn ends with a sync, so at the start of a
//! turn the whole written log is durable: a commit at or below its end
//! (and no truncation in the turn, which could have replaced that entry)
//! is performed before the sync. Under load a leader's turn holds the
//! answers that commit the previous turn's entries together with new
//! appends to sync; without this, each commit would also wait for the
//! sync of entries it does not depend on.
//!
//! # Replicating while the leader syncs
//!
//! The exception is the one Raft allows (Ongaro's thesis, 10.2.1): a leader
//! may send entries to its followers before its own copy is durable, as
//! long as it does not count its own copy towards a majority until it is.
//! The machine counts the leader's copy at once, but this loop makes that
//! harmless: a follower's answer to this turn's requests can only be
//! stepped in a later turn, which starts after this turn's sync returned,
//! so every entry the machine finds committed is already durable on the
//! leader. The leader's sync and the followers' syncs then overlap instead
//! of following each other, which takes one sync off every commit's
//! latency.
//!
//! Only `AppendEntriesReq`, only leaders send it, and only when the turn
//! stores no term or vote: the term and commit index the message carries
//! are then durable already, and a turn in which the node stepped down or
//! voted sends everything after its sync, as the machine asks. A vote or an
//! answer to the leader is never sent before the sync: those promise what
//! this node has made durable.
//!
//! # A disk that stalls
//!
//! A sync outstanding past `[storage] stall_timeout_ms` is a stalled disk
//! (see `stall` for the watchdog that reports it while the loop's thread is
//! blocked). Where the sync runs on another thread (`sync_elsewhere`, a
//! leader's turns that replicated early) the loop waits for the sync and
//! the limit together: at the limit it steps `StorageStalled` into the
//! machine, performs at once what needs no disk (the `SteppedDown` report,
//! the alarm), publishes the status, and keeps waiting. Whichever way the
//! sync ran, a sync that returns past the limit is followed, before any
//! other input, by `StorageStalled` (if not stepped yet) and
//! `StorageRecovered`, and the node goes on as a follower. Actions of those
//! steps that need the disk or a sync (sends, commits, persistence) wait
//! for the next turn, at the front of its actions.
//!
//! In-place syncs stay in place: a hand-off per turn would cost every
//! follower and candidate turn a thread switch, and a loop blocked in its
//! sync sends nothing, heartbeats included, so a leader stalled there is
//! replaced by its followers' timeouts just the same; it steps down in its
//! machine as soon as the sync returns.
//!
//! # Membership
//!
//! A membership change ([`Command::ChangeMembership`]) is stepped with the
//! whole address book of the configuration in force (an added learner's
//! addresses included) as the new configuration's context; one runs at a
//! time, and the machine's `MembershipChangeEnded` answers its caller.
//! Before each turn's sends, the transport's peers are pointed at the
//! members of the latest configuration (while it is uncommitted, those of
//! the one before it too: a leader that removes itself leads until the
//! change commits), so that a message to a member just added finds its
//! queue. Configuration entries reach subscribers and the state machine
//! empty, like no-ops. The configuration in force, with addresses and a
//! leader's per-member lag, is published for
//! [`NodeHandle::membership`](crate::NodeHandle::membership).
//!
//! # Snapshots
//!
//! With a state machine, the loop feeds the applier task (see `applier`)
//! the committed, durable entries, as it feeds subscriptions. When the
//! applier has written a snapshot, the loop makes it the storage's current
//! one, with the configuration in force at its index kept beside it (the
//! one the machine's `LogCompact` names; a restart starts from it), steps
//! `SnapshotTaken`, and performs the `LogCompact` the machine answers with
//! by deleting the log segments the snapshot covers. A leader's snapshot
//! is installed with the configuration its `SnapshotInstall` names.
//!
//! A leader's `Send` of an `InstallSnapshotReq` goes to the transport with
//! the file of the snapshot it names, which the transport streams beside
//! it. On a follower, the transport delivers the message once the file has
//! arrived whole and durable; the loop verifies the file on a blocking
//! thread before stepping the message, so that the machine never installs
//! a snapshot the storage cannot adopt. A `SnapshotInstall` is performed in
//! the turn's persistence order (the file adopted, the log discarded,
//! durably), and the applier then restores from the file; a received file
//! the machine did not install is deleted.
//!
//! A subscription whose next entry a snapshot covers (compacted, or
//! replaced by a leader's snapshot) ends, and says so
//! ([`Subscription::overtaken_by`](crate::Subscription::overtaken_by)).

use crate::address_book::{AddressBook, MemberAddresses};
use crate::api::{
    ChangeMembershipError, CommittedEntry, MembershipView, NodeError, SnapshotError, Status,
    SubmitError, TransferLeaderError,
};
use crate::applier::{ApplierEvent, ApplierInput, SnapshotReply};
use crate::leadership::Leadership;
use crate::metrics::{Direction, MachineGauges, Metrics, SnapshotOp};
use crate::stall::SyncClock;
use crate::storage::{Storage, StoredSnapshot};
use crate::transport::{received_snapshot_path, Inbound, Transport};
use bytes::Bytes;
use skiff_core::{
    Action, CommitError, Event, LogIndex, Machine, Membership, MembershipChange, MembershipError,
    Message, NodeId, ReadError, ReadId, Rejection, Role, SnapshotMeta, Term, VoteResp,
};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Duration, Instant};

/// Inputs stepped in one turn, so that one sync covers many events but a
/// flood cannot delay the sync (and every reply) without bound.
pub const INPUTS_PER_TURN_MAX: usize = 1024;
/// Submissions waiting for their outcome before new ones are refused.
pub const SUBMISSIONS_PENDING_MAX: usize = 1 << 16;
/// Read barriers waiting for their read before new ones are refused.
pub const READS_PENDING_MAX: usize = 1 << 16;
/// The storage leaves the loop only for the length of a sync.
const STORAGE_IS_BACK: &str = "the storage is back after every sync";
/// What stands in for a message taken out of an action that is dropped.
const PLACEHOLDER: Message = Message::VoteResp(VoteResp {
    term: Term(0),
    granted: false,
});

/// The answer to a submission or read barrier.
pub type Reply = oneshot::Sender<Result<LogIndex, SubmitError>>;
/// The answer to a membership change.
pub type MembershipReply = oneshot::Sender<Result<LogIndex, ChangeMembershipError>>;

/// What the application asks of the event loop.
pub enum Command {
    /// Replicate `data`.
    Submit { data: Bytes, reply: Reply },
    /// Answer with an index once the machine has proven a read asked now
    /// linearizable (`Event::Read`).
    ReadBarrier { reply: Reply },
    /// Deliver committed entries from `from` on into `sender`.
    Subscribe {
        from: LogIndex,
        sender: mpsc::Sender<CommittedEntry>,
        stalled: Arc<AtomicBool>,
        overtaken: Arc<OnceLock<SnapshotMeta>>,
    },
    /// Take a snapshot of the state machine now.
    SnapshotNow { reply: SnapshotReply },
    /// Hand leadership to `to` (`Event::TransferLeadership`).
    TransferLeadership {
        to: NodeId,
        reply: oneshot::Sender<Result<(), TransferLeaderError>>,
    },
    /// Change the membership (`Event::ChangeMembership`); an added
    /// learner's `addresses` go into the new configuration's address book.
    ChangeMembership {
        change: MembershipChange,
        addresses: Option<MemberAddresses>,
        reply: MembershipReply,
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
    /// Set when the subscription ends because a snapshot covers its next
    /// entry.
    overtaken: Arc<OnceLock<SnapshotMeta>>,
}

/// The loop's end of the applier.
pub struct ApplierLink {
    /// In order: entries, restores, snapshot requests.
    pub inputs: mpsc::UnboundedSender<ApplierInput>,
    /// What the applier reports.
    pub events: mpsc::UnboundedReceiver<ApplierEvent>,
    /// The next entry to hand it.
    pub next: LogIndex,
    /// The index it applied through.
    pub applied: Arc<AtomicU64>,
    /// The applier's work, spawned on the node's runtime when the event
    /// loop starts, and awaited when the node stops.
    pub task: Option<crate::applier::ApplierTask>,
}

/// Where snapshots come from and go.
pub struct SnapshotLinks {
    /// The applier, when the node runs a state machine.
    pub applier: Option<ApplierLink>,
    /// Where the transport leaves the snapshots it received.
    pub incoming_dir: PathBuf,
}

/// Where the loop publishes its status, and the clock of its syncs that
/// the stall watchdog reads (which marks that status stalled).
pub struct StatusLinks {
    /// The status every turn publishes.
    pub status: Arc<watch::Sender<Status>>,
    /// The configuration in force, published when it changes.
    pub membership: watch::Sender<MembershipView>,
    /// The addresses of `cluster.toml`, for the members of the bootstrap
    /// configuration, whose context holds none.
    pub bootstrap_book: AddressBook,
    /// When each sync began and ended.
    pub sync_clock: SyncClock,
}

/// Whether the `count`th occurrence of a problem a peer can repeat at will
/// is logged: every one of the first few, then only at powers of two.
fn worth_logging(count: u64) -> bool {
    const EVERY_ONE_UNTIL: u64 = 16;
    count <= EVERY_ONE_UNTIL || count.is_power_of_two()
}

/// Logs the `count`th message the machine rejected: every one of the first
/// few, then only at powers of two, so that a peer sending nothing but
/// impossible messages cannot flood the log.
fn report_rejection(count: u64, from: NodeId, reason: Rejection) {
    if worth_logging(count) {
        tracing::warn!(
            peer = %from,
            rejected = count,
            reason = %reason,
            "dropped a message no correct peer sends (a buggy or compromised peer?)"
        );
    }
}

/// The machine and everything that performs its actions.
pub struct EventLoop {
    machine: Machine,
    /// Away only while [`EventLoop::sync_elsewhere`] runs.
    storage: Option<Storage>,
    transport: Transport,
    peer_inbox: mpsc::Receiver<Inbound>,
    commands: mpsc::Receiver<Command>,
    /// Shared with the stall watchdog, which marks it stalled.
    status: Arc<watch::Sender<Status>>,
    actions: Vec<Action>,
    alarm: Option<Instant>,
    /// When each sync began and ended, for the stall watchdog.
    sync_clock: SyncClock,
    /// Actions of the stall events stepped during a sync that wait for the
    /// next turn (see the module's comment).
    deferred: Vec<Action>,
    /// Whether a stall event set the alarm during this turn's sync: the
    /// turn's own, older `Alarm` is then stale.
    alarm_replaced: bool,
    /// Submitters waiting for the entry this node appended, by index and
    /// term: an entry truncated from this log still waits for its outcome,
    /// and this node may append another at the same index in a later term.
    waiters: BTreeMap<(LogIndex, Term), Reply>,
    /// Read barriers that arrived this turn; they share one read.
    barriers: Vec<Reply>,
    /// The caller waiting for the transfer under way, if any: the loop lets
    /// one run at a time, so the machine's next `TransferEnded` is its.
    transfer_reply: Option<oneshot::Sender<Result<(), TransferLeaderError>>>,
    /// The caller waiting for the membership change under way, if any: the
    /// loop lets one run at a time, so the machine's next
    /// `MembershipChangeEnded` is its.
    membership_reply: Option<(MembershipChange, MembershipReply)>,
    /// Where the configuration in force is published.
    membership_view: watch::Sender<MembershipView>,
    /// The configuration last published, and whether it was pending.
    published_membership: Option<(Membership, bool)>,
    /// `cluster.toml`'s addresses (see [`StatusLinks::bootstrap_book`]).
    bootstrap_book: AddressBook,
    /// The barriers of each read stepped and not yet answered.
    reads: HashMap<ReadId, Vec<Reply>>,
    /// How many barriers `reads` holds.
    reads_waiting: usize,
    /// The id of the next read.
    next_read: u64,
    /// The origin of the monotonic clock reads carry.
    started: Instant,
    /// Whether this node serves reads as a follower.
    follower_reads: bool,
    subscribers: Vec<Subscriber>,
    stopping: bool,
    /// Messages the machine rejected as impossible from a correct peer.
    rejected: u64,
    /// Received snapshot files that did not verify, shared with the
    /// threads that verify them (their warnings are rate-limited).
    unverified: Arc<AtomicU64>,
    applier: Option<ApplierLink>,
    incoming_dir: PathBuf,
    /// Received snapshot messages whose file was verified, to step.
    verified_sender: mpsc::UnboundedSender<Inbound>,
    verified: mpsc::UnboundedReceiver<Inbound>,
    /// The files of the snapshots stepped this turn, by snapshot.
    received: HashMap<SnapshotMeta, PathBuf>,
    /// A snapshot installed this turn, for the applier after the sync.
    installed: Option<StoredSnapshot>,
    /// Requests for a snapshot answered once the turn compacted the log.
    snapshot_replies: Vec<(SnapshotReply, SnapshotMeta)>,
    /// Why the applier failed, which stops the node.
    applier_failed: Option<String>,
    metrics: Metrics,
    /// Elections and leader changes, noticed once per turn.
    leadership: Leadership,
    /// Log entries the turn stores, for the group-commit histogram.
    turn_entries: usize,
    /// When the followers' lag was last published, while leading: it is
    /// published at most every [`FOLLOWER_LAG_INTERVAL`], not every turn
    /// (a label per follower costs more than a turn's other gauges).
    lag_published_at: Option<std::time::Instant>,
    /// When the membership view's lag was last refreshed.
    lag_refreshed_at: Option<std::time::Instant>,
    /// The configuration the transport's peers follow, and whether it had
    /// committed.
    followed: Option<(Membership, bool)>,
    /// Where this node stands in the configuration, as last logged.
    membership_state: MembershipState,
}

/// Where a node stands in its latest configuration, so that a change is
/// logged once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MembershipState {
    /// Not looked at yet.
    Unknown,
    /// A voter or a learner.
    Member,
    /// Not a member since it started (joining, or removed before).
    Outside,
    /// A committed configuration removed it while it ran.
    Removed,
}

/// How often a leader publishes its followers' lag. Scrapes come seconds
/// apart; a turn can come every few microseconds.
const FOLLOWER_LAG_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

enum Input {
    Peer(Inbound),
    Verified(Inbound),
    Command(Command),
    Applier(ApplierEvent),
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
        status: StatusLinks,
        snapshots: SnapshotLinks,
    ) -> EventLoop {
        let StatusLinks {
            status,
            sync_clock,
            membership: membership_view,
            bootstrap_book,
        } = status;
        let (verified_sender, verified) = mpsc::unbounded_channel();
        let leadership = Leadership::new(machine.id(), machine.term());
        EventLoop {
            machine,
            storage: Some(storage),
            transport,
            peer_inbox,
            commands,
            status,
            actions: Vec::new(),
            alarm: None,
            sync_clock,
            deferred: Vec::new(),
            alarm_replaced: false,
            waiters: BTreeMap::new(),
            barriers: Vec::new(),
            transfer_reply: None,
            membership_reply: None,
            membership_view,
            published_membership: None,
            bootstrap_book,
            reads: HashMap::new(),
            reads_waiting: 0,
            next_read: 0,
            started: Instant::now(),
            follower_reads: true,
            subscribers: Vec::new(),
            stopping: false,
            rejected: 0,
            unverified: Arc::new(AtomicU64::new(0)),
            applier: snapshots.applier,
            incoming_dir: snapshots.incoming_dir,
            verified_sender,
            verified,
            received: HashMap::new(),
            installed: None,
            snapshot_replies: Vec::new(),
            applier_failed: None,
            metrics: Metrics::disabled(),
            leadership,
            turn_entries: 0,
            lag_published_at: None,
            lag_refreshed_at: None,
            followed: None,
            membership_state: MembershipState::Unknown,
        }
    }

    /// Counts into `metrics` (the default counts nothing).
    pub fn with_metrics(mut self, metrics: Metrics) -> EventLoop {
        self.metrics = metrics;
        self
    }

    /// Whether a follower serves read barriers by asking its leader (the
    /// default), or refuses them naming the leader.
    pub fn with_follower_reads(mut self, follower_reads: bool) -> EventLoop {
        self.follower_reads = follower_reads;
        self
    }

    /// Runs until a `Shutdown` command, until every handle is dropped, or
    /// until storage fails.
    pub async fn run(mut self) -> Result<(), NodeError> {
        self.machine.start(&mut self.actions);
        self.perform().await?;
        while !self.stopping {
            let first = self.next_input().await;
            self.handle(first);
            self.drain_ready_inputs();
            self.step_read();
            self.perform().await?;
            if let Some(reason) = self.applier_failed.take() {
                return Err(NodeError::StateMachine(reason));
            }
        }
        let syncs = self.storage.as_ref().map_or(0, Storage::sync_count);
        let dropped = self.transport.dropped_count();
        tracing::info!(id = %self.machine.id(), syncs, dropped, "node stopped");
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
        let applier_event = async {
            match self.applier.as_mut() {
                Some(applier) => applier.events.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            command = self.commands.recv() => Input::Command(command.unwrap_or(Command::Shutdown)),
            Some(inbound) = self.peer_inbox.recv() => Input::Peer(inbound),
            Some(inbound) = self.verified.recv() => Input::Verified(inbound),
            Some(event) = applier_event => Input::Applier(event),
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
            if let Ok(inbound) = self.verified.try_recv() {
                self.handle(Input::Verified(inbound));
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
        if let Input::Peer((_, message)) = &input {
            self.metrics.message(Direction::Received, message);
        }
        match input {
            Input::Peer((from, Message::InstallSnapshotReq(req))) => {
                self.verify_received(from, req)
            }
            Input::Peer((from, message)) => {
                self.machine
                    .step(Event::Receive { from, message }, &mut self.actions);
            }
            Input::Verified((from, message)) => {
                if let Message::InstallSnapshotReq(req) = &message {
                    let path = received_snapshot_path(&self.incoming_dir, from, req.snapshot);
                    self.received.insert(req.snapshot, path);
                }
                self.machine
                    .step(Event::Receive { from, message }, &mut self.actions);
            }
            Input::Applier(event) => self.applier_event(event),
            Input::Command(Command::SnapshotNow { reply }) => match &self.applier {
                Some(applier) => {
                    if let Err(e) = applier.inputs.send(ApplierInput::SnapshotNow(reply)) {
                        if let ApplierInput::SnapshotNow(reply) = e.0 {
                            let _ = reply.send(Err(SnapshotError::Stopped));
                        }
                    }
                }
                None => {
                    let _ = reply.send(Err(SnapshotError::NoStateMachine));
                }
            },
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
                overtaken,
            }) => {
                let next = from.max(LogIndex(1));
                self.subscribers.push(Subscriber {
                    sender,
                    next,
                    stalled,
                    overtaken,
                });
            }
            Input::Command(Command::TransferLeadership { to, reply }) => {
                if let Some(to) = self.machine.transfer_target() {
                    let refused = skiff_core::TransferError::InProgress { to };
                    let _ = reply.send(Err(TransferLeaderError::Refused(refused)));
                } else if self.transfer_reply.is_some() {
                    // Asked while this turn's own answer is not yet performed.
                    let refused = skiff_core::TransferError::InProgress { to };
                    let _ = reply.send(Err(TransferLeaderError::Refused(refused)));
                } else {
                    self.transfer_reply = Some(reply);
                    let event = Event::TransferLeadership { to };
                    self.machine.step(event, &mut self.actions);
                }
            }
            Input::Command(Command::ChangeMembership {
                change,
                addresses,
                reply,
            }) => self.change_membership(change, addresses, reply),
            Input::Command(Command::Nudge) => {}
            Input::Command(Command::Shutdown) => self.stopping = true,
        }
    }

    /// Checks the snapshot file a leader's `InstallSnapshotReq` names (the
    /// transport received it whole) on a blocking thread, then steps the
    /// message in a later turn; a file that does not verify is deleted and
    /// the message dropped (the leader sends again).
    fn verify_received(&mut self, from: NodeId, req: skiff_core::InstallSnapshotReq) {
        let path = received_snapshot_path(&self.incoming_dir, from, req.snapshot);
        let cluster_id = self
            .storage
            .as_ref()
            .expect(STORAGE_IS_BACK)
            .identity()
            .cluster_id;
        let verified = self.verified_sender.clone();
        let unverified = self.unverified.clone();
        let metrics = self.metrics.clone();
        tokio::task::spawn_blocking(move || {
            match crate::storage::verify_snapshot(&path, cluster_id) {
                Ok(meta) if meta == req.snapshot => {
                    let _ = verified.send((from, Message::InstallSnapshotReq(req)));
                }
                outcome => {
                    let reason = match outcome {
                        Ok(meta) => format!("it holds snapshot {meta}"),
                        Err(fault) => fault.to_string(),
                    };
                    metrics.storage_fault("snapshot_unverified");
                    let count = unverified.fetch_add(1, Ordering::Relaxed) + 1;
                    if worth_logging(count) {
                        tracing::warn!(
                            peer = %from, snapshot = %req.snapshot, path = %path.display(), %reason,
                            unverified = count,
                            "a received snapshot file does not verify; dropped"
                        );
                    }
                    let _ = std::fs::remove_file(&path);
                }
            }
        });
    }

    /// A snapshot the applier wrote becomes the storage's current one, and
    /// the machine hears of it (it answers with `LogCompact`).
    fn applier_event(&mut self, event: ApplierEvent) {
        match event {
            ApplierEvent::SnapshotWritten { snapshot, replies } => {
                let meta = snapshot.meta;
                let storage = self.storage.as_mut().expect(STORAGE_IS_BACK);
                // Kept with the snapshot before it becomes current: the
                // machine names the same one in its `LogCompact`.
                let membership = self.machine.membership_at(meta.index);
                match storage.add_snapshot(snapshot, membership) {
                    Ok(true) => {
                        let bytes = file_bytes(&storage.snapshot_path(meta));
                        self.metrics.snapshot(SnapshotOp::Taken, bytes);
                        tracing::info!(event = "snapshot_taken", snapshot = %meta, bytes, "snapshot taken");
                        self.machine.step(
                            Event::SnapshotTaken { index: meta.index },
                            &mut self.actions,
                        );
                    }
                    Ok(false) => {}
                    Err(error) => {
                        tracing::error!(%error, snapshot = %meta, "keeping a snapshot failed");
                        for reply in replies {
                            let _ = reply.send(Err(SnapshotError::Failed(error.to_string())));
                        }
                        return;
                    }
                }
                let current = storage.snapshot();
                self.snapshot_replies
                    .extend(replies.into_iter().map(|reply| (reply, current)));
            }
            ApplierEvent::Failed(reason) => self.applier_failed = Some(reason),
        }
    }

    /// The address book of the configuration in force. A context that does
    /// not decode (written by a newer version?) counts as empty: the
    /// addresses then come from `cluster.toml` where it has them.
    fn address_book(&self) -> AddressBook {
        address_book(self.machine.membership(), &self.bootstrap_book)
    }

    /// Steps a membership change, its new configuration carrying the whole
    /// address book (an added learner's addresses included), so that every
    /// configuration after the bootstrap one names every member's
    /// addresses. One change at a time: the machine refuses a second one
    /// anyway, and one outstanding reply keeps its answer unambiguous.
    fn change_membership(
        &mut self,
        change: MembershipChange,
        addresses: Option<MemberAddresses>,
        reply: MembershipReply,
    ) {
        if self.membership_reply.is_some() {
            let refused = ChangeMembershipError::Refused(MembershipError::ChangeInProgress);
            let _ = reply.send(Err(refused));
            return;
        }
        let mut book = self.address_book();
        match (change, addresses) {
            (MembershipChange::AddLearner(id), Some(addresses)) => book.insert(id, addresses),
            (MembershipChange::AddLearner(_), None) => {
                let _ = reply.send(Err(ChangeMembershipError::AddressesRequired));
                return;
            }
            _ => {}
        }
        // A removed member's entry is dropped by `AddressBook::of` when the
        // next configuration's book is read; keeping it here is harmless.
        self.membership_reply = Some((change, reply));
        let event = Event::ChangeMembership {
            change,
            context: Some(book.encode()),
        };
        self.machine.step(event, &mut self.actions);
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
        } else if let Some(to) = self.machine.transfer_target() {
            // Commit(TransferInProgress), skipped by `perform` like NotLeader.
            let _ = reply.send(Err(SubmitError::TransferInProgress { to }));
        } else {
            // The machine answered with Commit(NotLeader), which `perform`
            // skips: the refusal depends on nothing durable.
            let leader = self.machine.leader();
            let _ = reply.send(Err(SubmitError::NotLeader { leader }));
        }
    }

    /// Steps one read for all read barriers of this turn: each arrived
    /// before it, so the index that answers it serves them all. Refuses
    /// them at once on a follower that serves no reads, and past
    /// [`READS_PENDING_MAX`] waiting.
    fn step_read(&mut self) {
        if self.barriers.is_empty() {
            return;
        }
        let mut barriers = std::mem::take(&mut self.barriers);
        if !self.follower_reads && self.machine.role() != Role::Leader {
            let refusal = Err(SubmitError::NotLeader {
                leader: self.machine.leader(),
            });
            answer_all(barriers, refusal);
            return;
        }
        if self.reads_waiting + barriers.len() > READS_PENDING_MAX {
            // Callers that gave up leave closed senders behind.
            self.reads.retain(|_, replies| {
                replies.retain(|reply| !reply.is_closed());
                !replies.is_empty()
            });
            self.reads_waiting = self.reads.values().map(Vec::len).sum();
            let room = READS_PENDING_MAX.saturating_sub(self.reads_waiting);
            if barriers.len() > room {
                answer_all(barriers.split_off(room), Err(SubmitError::Busy));
            }
            if barriers.is_empty() {
                return;
            }
        }
        let id = ReadId(self.next_read);
        self.next_read += 1;
        self.reads_waiting += barriers.len();
        self.reads.insert(id, barriers);
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.machine
            .step(Event::Read { id, now_ms }, &mut self.actions);
    }

    /// Answers the barriers of read `id`.
    fn answer_read(&mut self, id: ReadId, outcome: Result<LogIndex, SubmitError>) {
        if let Some(replies) = self.reads.remove(&id) {
            self.reads_waiting -= replies.len();
            answer_all(replies, outcome);
        }
    }

    /// Performs the turn's actions: persistence, a leader's early
    /// replication, one sync, then the rest (see the module's comment).
    async fn perform(&mut self) -> Result<(), NodeError> {
        self.follow_membership();
        let storage = self.storage.as_mut().expect(STORAGE_IS_BACK);
        // Every turn ends with a sync, so what is written now is durable.
        let durable = storage.last_index();
        for action in self.actions.iter().filter(|a| a.is_persistence()) {
            if let Action::SnapshotInstall {
                snapshot,
                membership,
            } = action
            {
                let Some(received) = self.received.remove(snapshot) else {
                    return Err(NodeError::EventLoop(format!(
                        "the machine installs snapshot {snapshot}, which was not received"
                    )));
                };
                let installed = storage.install_snapshot(*snapshot, &received, membership)?;
                let bytes = file_bytes(&Some(installed.path.clone()));
                self.metrics.snapshot(SnapshotOp::Installed, bytes);
                tracing::info!(event = "snapshot_installed", snapshot = %snapshot, bytes, "installed a leader's snapshot");
                self.installed = Some(installed);
            } else {
                if let Action::LogStore { entries, .. } = action {
                    self.turn_entries += entries.len();
                }
                storage.persist(action)?;
            }
        }
        for (_, path) in self.received.drain() {
            // Received, but not installed: older than what is committed here.
            let _ = std::fs::remove_file(path);
        }
        self.perform_durable_commits(durable);
        let transport = &mut self.transport;
        let sent_early =
            take_early_sends(&mut self.actions, |to, message| transport.send(to, message));
        let storage = self.storage.as_ref().expect(STORAGE_IS_BACK);
        // A turn of heartbeats alone (read rounds) has nothing to sync: a
        // hand-off to another thread would cost more than the empty sync.
        if sent_early && storage.has_pending() {
            self.sync_elsewhere().await?;
        } else {
            self.sync_in_place()?;
        }
        if let Some(installed) = self.installed.take() {
            self.restore_applier(installed)?;
        }
        // Taken out, so that the actions can be performed by `self`'s
        // methods; put back emptied, keeping the buffer.
        let mut actions = std::mem::take(&mut self.actions);
        for action in actions.drain(..) {
            match action {
                Action::Send {
                    to,
                    message: Message::InstallSnapshotReq(req),
                } => {
                    let storage = self.storage.as_ref().expect(STORAGE_IS_BACK);
                    match storage.snapshot_path(req.snapshot) {
                        Some(file) => self.transport.send_snapshot(to, req, file),
                        None => tracing::warn!(
                            peer = %to, snapshot = %req.snapshot,
                            "no file for the snapshot a follower needs"
                        ),
                    }
                }
                Action::Send { to, message } => self.transport.send(to, message),
                Action::Commit { result, .. } => resolve(&mut self.waiters, &self.machine, result),
                Action::LogCompact { through, .. } => {
                    let storage = self.storage.as_mut().expect(STORAGE_IS_BACK);
                    let segments = storage.compact(through)?;
                    tracing::debug!(%through, segments, "log compacted");
                }
                // A stall event stepped during the sync set a newer one.
                Action::Alarm { .. } if self.alarm_replaced => {}
                Action::Alarm { .. } | Action::Rejected { .. } | Action::SteppedDown { .. } => {
                    self.perform_informational(action)
                }
                Action::StateStore { .. }
                | Action::LogStore { .. }
                | Action::LogTruncate { .. }
                | Action::SnapshotInstall { .. } => {}
                Action::ReadReady { id, index } => self.answer_read(id, Ok(index)),
                Action::ReadFailed { id, error } => self.answer_read(id, Err(read_error(error))),
                Action::MembershipChangeEnded { change, result } => {
                    self.membership_change_ended(change, result)
                }
                Action::TransferEnded { to, result } => {
                    match &result {
                        Ok(()) => tracing::info!(%to, "leadership handed over"),
                        Err(e) => tracing::warn!(%to, reason = %e, "leadership transfer failed"),
                    }
                    if let Some(reply) = self.transfer_reply.take() {
                        let _ = reply.send(result.map_err(TransferLeaderError::Refused));
                    }
                }
            }
        }
        self.actions = actions;
        self.alarm_replaced = false;
        self.actions.append(&mut self.deferred);
        let storage = self.storage.as_mut().expect(STORAGE_IS_BACK);
        if storage.repairing() && !self.machine.repairing() {
            // After the turn's sync: the log that ended the repair is durable.
            storage.finish_repair()?;
        }
        self.feed_subscribers(self.machine.commit_index());
        self.publish_status();
        for (reply, meta) in self.snapshot_replies.drain(..) {
            let _ = reply.send(Ok(meta));
        }
        Ok(())
    }

    /// Answers the caller of the membership change that ended.
    fn membership_change_ended(
        &mut self,
        change: MembershipChange,
        result: Result<LogIndex, MembershipError>,
    ) {
        match &result {
            Ok(index) => tracing::info!(
                event = "membership_changed", %change, %index,
                "membership change committed"
            ),
            Err(reason) => tracing::warn!(%change, %reason, "membership change did not happen"),
        }
        match self.membership_reply.take() {
            Some((asked, reply)) if asked == change => {
                let _ = reply.send(result.map_err(ChangeMembershipError::Refused));
            }
            other => self.membership_reply = other,
        }
    }

    /// After an install: the applier restores from the snapshot and goes
    /// on with the entries after it.
    fn restore_applier(&mut self, installed: StoredSnapshot) -> Result<(), NodeError> {
        let Some(applier) = &mut self.applier else {
            return Ok(());
        };
        applier.next = installed.meta.index.next();
        applier
            .inputs
            .send(ApplierInput::Restore(installed))
            .map_err(|_| applier_gone())
    }

    /// Performs, ahead of this turn's sync, the commits of entries that
    /// earlier turns made durable here (at or below `durable`), and feeds
    /// the subscriptions up to there (see the module's comment).
    fn perform_durable_commits(&mut self, durable: LogIndex) {
        let waiters = &mut self.waiters;
        let machine = &self.machine;
        if take_durable_commits(&mut self.actions, durable, |result| {
            resolve(waiters, machine, result)
        }) {
            self.feed_subscribers(durable.min(self.machine.commit_index()));
        }
    }

    /// Syncs on a thread of the blocking pool while this thread runs its
    /// other tasks: the peer writers put the turn's early requests on the
    /// wire, the readers take in answers, the application's tasks (see
    /// [`NodeHandle::runtime`](crate::NodeHandle::runtime)) serve their
    /// clients. Only a leader's turns that sent requests early sync this
    /// way: their sync is off the commit's critical path, which runs through
    /// the followers' syncs, so the hand-off between threads costs no
    /// latency. Every other turn syncs in place, since everything waits for
    /// its sync and a hand-off would only add to that.
    ///
    /// The loop waits for the stall limit beside the sync: past it, the
    /// machine hears `StorageStalled` at once (see the module's comment).
    async fn sync_elsewhere(&mut self) -> Result<(), NodeError> {
        let mut storage = self.storage.take().expect(STORAGE_IS_BACK);
        let began = self.sync_clock.begin();
        let mut sync = tokio::task::spawn_blocking(move || {
            let synced = storage.sync();
            (storage, synced)
        });
        let limit = Instant::from_std(began + self.sync_clock.limit());
        let joined = match tokio::time::timeout_at(limit, &mut sync).await {
            Ok(joined) => joined,
            Err(_elapsed) => {
                self.sync_clock.report(self.machine.role());
                self.step_during_sync(Event::StorageStalled);
                self.publish_status();
                sync.await
            }
        };
        self.sync_clock.end();
        let (storage, synced) =
            joined.map_err(|e| NodeError::EventLoop(format!("the sync thread failed: {e}")))?;
        self.storage = Some(storage);
        self.after_sync(began);
        Ok(synced?)
    }

    /// Syncs on the loop's own thread (see the module's comment).
    fn sync_in_place(&mut self) -> Result<(), NodeError> {
        let began = self.sync_clock.begin();
        let synced = self.storage.as_mut().expect(STORAGE_IS_BACK).sync();
        self.sync_clock.end();
        self.after_sync(began);
        Ok(synced?)
    }

    /// After a sync begun at `began`: one that took past the stall limit
    /// ends the stall in the machine, before any other input.
    fn after_sync(&mut self, began: std::time::Instant) {
        let took = began.elapsed();
        self.metrics
            .sync(took, std::mem::take(&mut self.turn_entries));
        if took < self.sync_clock.limit() {
            return;
        }
        self.metrics.storage_fault("stall");
        if !self.machine.storage_stalled() {
            self.sync_clock.report(self.machine.role());
            self.step_during_sync(Event::StorageStalled);
        }
        self.step_during_sync(Event::StorageRecovered);
        let elapsed_ms = took.as_millis() as u64;
        tracing::info!(
            event = "storage_recovered",
            id = %self.machine.id(), elapsed_ms, role = %self.machine.role(),
            term = %self.machine.term(), "storage recovered after {elapsed_ms} ms"
        );
    }

    /// Steps a stall event while the turn's sync is outstanding or just
    /// returned: performs at once what needs no disk, and leaves the rest
    /// for the next turn.
    fn step_during_sync(&mut self, event: Event) {
        let mut actions = Vec::new();
        self.machine.step(event, &mut actions);
        for action in actions {
            match action {
                Action::Alarm { .. } | Action::Rejected { .. } | Action::SteppedDown { .. } => {
                    self.alarm_replaced |= matches!(action, Action::Alarm { .. });
                    self.perform_informational(action);
                }
                other => self.deferred.push(other),
            }
        }
    }

    /// Performs an action that needs no disk and sends nothing: `Alarm`,
    /// `Rejected`, `SteppedDown`.
    fn perform_informational(&mut self, action: Action) {
        match action {
            Action::Alarm { ms } => self.alarm = Some(Instant::now() + Duration::from_millis(ms)),
            Action::Rejected { from, reason } => {
                self.rejected += 1;
                report_rejection(self.rejected, from, reason);
            }
            Action::SteppedDown { reason } => {
                self.leadership.stepped_down(reason, &self.metrics);
                tracing::warn!(
                    event = "stepped_down",
                    id = %self.machine.id(),
                    term = %self.machine.term(),
                    reason = crate::leadership::step_down_name(reason),
                    "stepped down as leader"
                )
            }
            other => debug_assert!(false, "{other:?} is not informational"),
        }
    }

    /// Sends each subscriber the committed entries it has not had, as far
    /// as its channel has room, and the applier all of them. A subscriber
    /// whose next entry a snapshot covers ends.
    fn feed_subscribers(&mut self, commit_index: LogIndex) {
        let machine = &self.machine;
        if let Some(applier) = &mut self.applier {
            while applier.next <= commit_index {
                let Some(entry) = machine.entry(applier.next) else {
                    debug_assert!(
                        false,
                        "entry {} not applied yet is in the log",
                        applier.next
                    );
                    break;
                };
                let committed = committed_entry(applier.next, entry);
                if applier.inputs.send(ApplierInput::Entry(committed)).is_err() {
                    // The applier ended (the application panicked).
                    self.applier_failed = Some(APPLIER_GONE.to_string());
                    break;
                }
                applier.next = applier.next.next();
            }
        }
        self.subscribers.retain_mut(|subscriber| {
            while subscriber.next <= commit_index {
                let index = subscriber.next;
                let Some(entry) = machine.entry(index) else {
                    let snapshot = machine.snapshot();
                    debug_assert!(
                        index <= snapshot.index,
                        "committed entry {index} is in the log"
                    );
                    tracing::warn!(
                        next = %index, %snapshot,
                        "a subscription ends: a snapshot covers the entries it needs next"
                    );
                    let _ = subscriber.overtaken.set(snapshot);
                    return false;
                };
                let committed = committed_entry(index, entry);
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
        let machine = &self.machine;
        let (role, term, leader) = (machine.role(), machine.term(), machine.leader());
        self.leadership.observe(role, term, leader, &self.metrics);
        let applied_index = match &self.applier {
            Some(applier) => LogIndex(applier.applied.load(Ordering::Relaxed)),
            None => machine.commit_index(),
        };
        if self.metrics.is_enabled() {
            self.metrics.machine(&MachineGauges {
                role,
                term,
                commit_index: machine.commit_index(),
                last_index: machine.last_index(),
                snapshot: machine.snapshot(),
            });
            self.metrics.applied(applied_index);
            let leading = role == Role::Leader;
            let due = match self.lag_published_at {
                Some(at) => !leading || at.elapsed() >= FOLLOWER_LAG_INTERVAL,
                None => leading,
            };
            if due {
                let matches = leading.then(|| machine.match_indices());
                let lags = matches
                    .as_deref()
                    .map(|matches| (matches, machine.last_index()));
                self.metrics.follower_lag(lags);
                self.lag_published_at = leading.then(std::time::Instant::now);
            }
        }
        self.publish_membership();
        let status = Status {
            id: self.machine.id(),
            role: self.machine.role(),
            term: self.machine.term(),
            leader: self.machine.leader(),
            voted_for: self.machine.voted_for(),
            commit_index: self.machine.commit_index(),
            last_index: self.machine.last_index(),
            repairing: self.machine.repairing(),
            storage_stalled: self.machine.storage_stalled(),
            snapshot: self.machine.snapshot(),
            applied_index,
            last_leader_change: self.leadership.last_change(),
        };
        self.status.send_if_modified(|current| {
            if (current.role, current.term, current.leader) != (status.role, status.term, status.leader) {
                // `leader=2` or `leader=none`, not Debug's `leader=Some(2)`.
                let leader = status.leader.map_or_else(|| "none".to_string(), |id| id.to_string());
                tracing::info!(event = "role_changed", role = %status.role, term = %status.term, %leader, "role or term changed");
            }
            let changed = *current != status;
            *current = status;
            changed
        });
    }
}

impl EventLoop {
    /// Points the transport at the members of the latest configuration,
    /// when it changed (before the turn's sends, so that a message to a
    /// member just added finds its queue), and notices this node's
    /// removal.
    fn follow_membership(&mut self) {
        let id = self.machine.id();
        let membership = self.machine.membership();
        let member = membership.contains(id);
        let committed = !self.machine.membership_change_pending();
        let unchanged = self
            .followed
            .as_ref()
            .is_some_and(|(followed, was_committed)| {
                followed == membership && *was_committed == committed
            });
        if !unchanged {
            // While a change is uncommitted, the members of the
            // configuration before it still take part: a leader that
            // removes itself leads until the change commits, and a removed
            // follower's answers may be what commits it.
            let previous = match committed {
                true => None,
                false => latest_configuration_index(&self.machine)
                    .map(|index| self.machine.membership_at(LogIndex(index.0 - 1)).clone()),
            };
            let mut book = address_book(membership, &self.bootstrap_book);
            if let Some(previous) = &previous {
                for (peer, addresses) in address_book(previous, &self.bootstrap_book).iter() {
                    if book.get(peer).is_none() {
                        book.insert(peer, addresses);
                    }
                }
            }
            let peers: Vec<_> = book
                .iter()
                .filter(|(peer, _)| *peer != id)
                .map(|(peer, addresses)| (peer, addresses.peer))
                .collect();
            if self.followed.as_ref().map(|(m, _)| m) != Some(membership) {
                tracing::info!(
                    event = "configuration", voters = ?membership.voters(), learners = ?membership.learners(),
                    "the configuration in force changed"
                );
            }
            let taking_part = member || previous.is_some_and(|p| p.contains(id));
            self.transport.set_peers(peers, taking_part);
            self.followed = Some((membership.clone(), committed));
        }
        match (member, self.membership_state) {
            (true, _) => self.membership_state = MembershipState::Member,
            (false, MembershipState::Member) if committed => {
                self.membership_state = MembershipState::Removed;
                tracing::warn!(
                    event = "removed", %id, voters = ?membership.voters(), learners = ?membership.learners(),
                    "this node was removed from the cluster: it dials no one and stands for nothing, \
                     and answers only a leader that adds it again"
                );
            }
            (false, MembershipState::Unknown) => {
                self.membership_state = MembershipState::Outside;
                tracing::info!(
                    %id, voters = ?membership.voters(), learners = ?membership.learners(),
                    "this node is not a member of the cluster's configuration: \
                     it waits for a leader to add it (or it was removed)"
                );
            }
            (false, _) => {}
        }
    }

    /// Publishes the configuration in force when it or its pending state
    /// changed, and a leader's per-member lag at most every
    /// [`FOLLOWER_LAG_INTERVAL`].
    fn publish_membership(&mut self) {
        let machine = &self.machine;
        let membership = machine.membership();
        let pending = machine.membership_change_pending();
        let changed = self
            .published_membership
            .as_ref()
            .is_none_or(|(published, was_pending)| {
                published != membership || *was_pending != pending
            });
        let leading = machine.role() == Role::Leader;
        // A leader's lag is refreshed at most every interval; a node that
        // stopped leading clears it at once.
        let lag_due = match leading {
            true => self
                .lag_refreshed_at
                .is_none_or(|at| at.elapsed() >= FOLLOWER_LAG_INTERVAL),
            false => !self.membership_view.borrow().lag.is_empty(),
        };
        if !changed && !lag_due {
            return;
        }
        let lag: Vec<(NodeId, u64)> = if leading {
            let last = machine.last_index();
            let mut lag: Vec<_> = machine
                .match_indices()
                .into_iter()
                .map(|(id, matched)| (id, last.0.saturating_sub(matched.0)))
                .collect();
            lag.sort_unstable();
            lag
        } else {
            Vec::new()
        };
        self.lag_refreshed_at = Some(std::time::Instant::now());
        if !changed && self.membership_view.borrow().lag == lag {
            return;
        }
        let view = membership_view(machine, &self.bootstrap_book, lag);
        self.metrics
            .membership(membership.voters().len(), membership.learners().len());
        self.published_membership = Some((membership.clone(), pending));
        self.membership_view.send_replace(view);
    }
}

/// The index of the last configuration entry in `machine`'s log, if any
/// (the configuration in force then came from it).
pub fn latest_configuration_index(machine: &Machine) -> Option<LogIndex> {
    let first = machine.snapshot().index.0 + 1;
    (first..=machine.last_index().0)
        .rev()
        .map(LogIndex)
        .find(|&index| machine.entry(index).is_some_and(|e| e.is_membership()))
}

/// The address book of `membership`, with `cluster.toml`'s addresses for
/// the members it lacks. A context that does not decode (written by a
/// newer version?) counts as empty.
pub fn address_book(membership: &Membership, bootstrap_book: &AddressBook) -> AddressBook {
    AddressBook::of(membership, bootstrap_book).unwrap_or_else(|error| {
        tracing::warn!(%error, "the configuration's address book does not decode");
        let empty = membership.clone().with_context(Bytes::new());
        AddressBook::of(&empty, bootstrap_book).unwrap_or_default()
    })
}

/// The configuration in force on `machine`, with every member's
/// addresses, and `lag` (see [`MembershipView::lag`]).
pub fn membership_view(
    machine: &Machine,
    bootstrap_book: &AddressBook,
    lag: Vec<(NodeId, u64)>,
) -> MembershipView {
    let membership = machine.membership();
    let book = address_book(membership, bootstrap_book);
    let with_addresses = |ids: &[NodeId]| -> Vec<(NodeId, MemberAddresses)> {
        ids.iter()
            .filter_map(|&id| match book.get(id) {
                Some(addresses) => Some((id, addresses)),
                None => {
                    tracing::warn!(member = %id, "no addresses are known for a member");
                    None
                }
            })
            .collect()
    };
    MembershipView {
        voters: with_addresses(membership.voters()),
        learners: with_addresses(membership.learners()),
        change_pending: machine.membership_change_pending(),
        lag,
    }
}

/// The committed entry at `index` as the application sees it: a
/// configuration entry is the cluster's business, not the application's,
/// so it arrives empty, like a leader's no-op, which applications skip.
fn committed_entry(index: LogIndex, entry: &skiff_core::Entry) -> CommittedEntry {
    let data = match entry.is_membership() {
        true => Bytes::new(),
        false => entry.data.clone(),
    };
    CommittedEntry {
        index,
        term: entry.term,
        data,
    }
}

/// The size of the file at `path`, 0 when unknown (for metrics only).
fn file_bytes(path: &Option<PathBuf>) -> u64 {
    path.as_ref()
        .and_then(|path| std::fs::metadata(path).ok())
        .map_or(0, |metadata| metadata.len())
}

/// Why the node stops when its applier is gone.
const APPLIER_GONE: &str = "the state machine's applier ended (the application panicked)";

fn applier_gone() -> NodeError {
    NodeError::StateMachine(APPLIER_GONE.to_string())
}

/// Removes from `actions` the sends that may go out before the turn's sync
/// (a leader's `AppendEntriesReq`s, in a turn that stores no term or vote;
/// see the module's comment) and hands each to `send`, keeping every other
/// action in order. Returns whether it sent any.
fn take_early_sends(actions: &mut Vec<Action>, mut send: impl FnMut(NodeId, Message)) -> bool {
    if actions
        .iter()
        .any(|action| matches!(action, Action::StateStore { .. }))
    {
        return false;
    }
    let before = actions.len();
    actions.retain_mut(|action| match action {
        Action::Send {
            to,
            message: message @ Message::AppendEntriesReq(_),
        } => {
            // `retain_mut` lends the action, so the message is taken out,
            // leaving a placeholder that is dropped with the action.
            send(*to, std::mem::replace(message, PLACEHOLDER));
            false
        }
        _ => true,
    });
    actions.len() < before
}

/// Hands `perform` every `Ok` commit at or below `durable`, in order, and
/// removes it from `actions`, unless the turn truncates the log or installs
/// a snapshot: an entry it replaced below `durable` is no longer the
/// durable one. Returns whether the turn may commit early.
fn take_durable_commits(
    actions: &mut Vec<Action>,
    durable: LogIndex,
    mut perform: impl FnMut(Result<LogIndex, CommitError>),
) -> bool {
    if actions.iter().any(|action| {
        matches!(
            action,
            Action::LogTruncate { .. } | Action::SnapshotInstall { .. }
        )
    }) {
        return false;
    }
    actions.retain(|action| match action {
        Action::Commit {
            result: result @ Ok(index),
            ..
        } if *index <= durable => {
            perform(*result);
            false
        }
        _ => true,
    });
    true
}

/// Gives every caller in `replies` the same outcome.
fn answer_all(replies: Vec<Reply>, outcome: Result<LogIndex, SubmitError>) {
    for reply in replies {
        let _ = reply.send(outcome);
    }
}

/// What a read barrier's caller hears when the machine failed its read.
fn read_error(error: ReadError) -> SubmitError {
    match error {
        ReadError::NotLeader { leader } => SubmitError::NotLeader { leader },
        ReadError::Busy => SubmitError::Busy,
        // A kind this version does not know: the read was not proven, and
        // the caller may retry as after a lost leadership.
        _ => SubmitError::NotLeader { leader: None },
    }
}

/// Answers whoever waits for the entry a `Commit` action reports on. A
/// committed entry is named by its index and the term `log` holds there.
fn resolve(
    waiters: &mut BTreeMap<(LogIndex, Term), Reply>,
    machine: &Machine,
    result: Result<LogIndex, CommitError>,
) {
    let (key, outcome) = match result {
        Ok(index) => {
            let Some(entry) = machine.entry(index) else {
                return;
            };
            ((index, entry.term), Ok(index))
        }
        Err(CommitError::Overwritten { index, term }) => {
            ((index, term), Err(SubmitError::Overwritten { index }))
        }
        Err(CommitError::OutcomeUnknown { index, term }) => {
            ((index, term), Err(SubmitError::OutcomeUnknown { index }))
        }
        // `NotLeader` is answered in `submit`; an outcome of a kind this
        // version does not know names no entry a submitter waits on.
        Err(_) => return,
    };
    if let Some(reply) = waiters.remove(&key) {
        let _ = reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{AppendEntriesReq, Config, Entry, HardState, StartState, VoteReq};

    /// Node 1 of three in `role` at term 2, with one entry of term 2.
    fn machine(role: Role) -> Machine {
        let mut config = Config::new(NodeId(1), [NodeId(1), NodeId(2), NodeId(3)]);
        // Without the leader's lease, so that a follower that just heard
        // its leader still votes: these tests are about when the loop
        // sends a vote, not whether the machine grants it.
        config.pre_vote = false;
        config.check_quorum = false;
        let voted_for = (role != Role::Follower).then_some(NodeId(1));
        let state = StartState {
            role: Some(role),
            hard_state: HardState {
                term: Term(2),
                voted_for,
            },
            log: vec![Entry::new(Term(2), "")],
            commit_index: LogIndex(1),
            ..StartState::default()
        };
        Machine::with_state(config, state).unwrap()
    }

    /// The actions of one step, split into early sends and the rest.
    fn split(machine: &mut Machine, event: Event) -> (Vec<(NodeId, Message)>, Vec<Action>) {
        let mut actions = Vec::new();
        machine.step(event, &mut actions);
        let mut early = Vec::new();
        take_early_sends(&mut actions, |to, message| early.push((to, message)));
        (early, actions)
    }

    #[test]
    fn a_leader_replicates_new_entries_before_its_sync() {
        let mut leader = machine(Role::Leader);
        let (early, rest) = split(&mut leader, Event::Append("x".into()));
        let peers: Vec<NodeId> = early.iter().map(|(to, _)| *to).collect();
        assert_eq!(peers, [NodeId(2), NodeId(3)], "{early:?}");
        assert!(early
            .iter()
            .all(|(_, m)| matches!(m, Message::AppendEntriesReq(r) if r.entries.len() == 1)));
        assert!(
            matches!(
                rest.as_slice(),
                [Action::LogStore {
                    index: LogIndex(2),
                    ..
                }]
            ),
            "{rest:?}"
        );
    }

    #[test]
    fn votes_and_answers_to_the_leader_wait_for_the_sync() {
        let mut follower = machine(Role::Follower);
        let request = Message::AppendEntriesReq(AppendEntriesReq {
            term: Term(2),
            leader: NodeId(2),
            prev_index: LogIndex(1),
            prev_term: Term(2),
            entries: vec![Entry::new(Term(2), "y")].into(),
            commit: LogIndex(1),
            read_round: 0,
            epoch: 0,
        });
        let receive = |message| Event::Receive {
            from: NodeId(2),
            message,
        };
        let (early, rest) = split(&mut follower, receive(request));
        assert!(early.is_empty(), "{early:?}");
        assert!(
            rest.iter().any(|a| matches!(a, Action::Send { .. })),
            "{rest:?}"
        );
        let vote = Message::VoteReq(VoteReq {
            term: Term(3),
            candidate: NodeId(2),
            last_index: LogIndex(2),
            last_term: Term(2),
            transfer: false,
        });
        let (early, rest) = split(&mut follower, receive(vote));
        assert!(early.is_empty(), "{early:?}");
        assert!(
            rest.iter().any(|a| matches!(a, Action::StateStore { .. })),
            "{rest:?}"
        );
    }

    #[test]
    fn a_turn_that_stores_the_term_sends_nothing_early() {
        let mut leader = machine(Role::Leader);
        let mut actions = Vec::new();
        leader.step(Event::Append("x".into()), &mut actions);
        // A higher term in the same turn: the leader steps down.
        let answer = Message::AppendEntriesResp(skiff_core::AppendEntriesResp {
            term: Term(5),
            success: false,
            index: LogIndex(0),
            read_round: 0,
            epoch: 0,
        });
        leader.step(
            Event::Receive {
                from: NodeId(3),
                message: answer,
            },
            &mut actions,
        );
        let before = actions.clone();
        assert!(before
            .iter()
            .any(|a| matches!(a, Action::StateStore { .. })));
        assert!(before.iter().any(|a| matches!(
            a,
            Action::Send {
                message: Message::AppendEntriesReq(_),
                ..
            }
        )));
        let mut early = Vec::new();
        take_early_sends(&mut actions, |to, message| early.push((to, message)));
        assert!(early.is_empty(), "{early:?}");
        assert_eq!(actions, before);
    }

    fn commit(index: u64) -> Action {
        Action::Commit {
            data: Bytes::from_static(b"x"),
            result: Ok(LogIndex(index)),
        }
    }

    #[test]
    fn commits_of_entries_durable_before_the_turn_go_before_its_sync() {
        let store = Action::LogStore {
            index: LogIndex(6),
            entries: Entry::new(Term(2), "y").into(),
        };
        let overwritten = Action::Commit {
            data: Bytes::from_static(b"z"),
            result: Err(CommitError::Overwritten {
                index: LogIndex(4),
                term: Term(1),
            }),
        };
        let mut actions = vec![
            store.clone(),
            overwritten.clone(),
            commit(4),
            commit(5),
            commit(6),
        ];
        let mut early = Vec::new();
        assert!(take_durable_commits(&mut actions, LogIndex(5), |r| early.push(r)));
        assert_eq!(early, [Ok(LogIndex(4)), Ok(LogIndex(5))]);
        assert_eq!(
            actions,
            [store, overwritten, commit(6)],
            "the rest waits, in order"
        );
    }

    #[test]
    fn a_turn_that_truncates_or_installs_commits_nothing_early() {
        let install = Action::SnapshotInstall {
            snapshot: SnapshotMeta {
                index: LogIndex(3),
                term: Term(2),
            },
            membership: Membership::new(vec![NodeId(1)], vec![]).unwrap(),
        };
        for replacing in [Action::LogTruncate { from: LogIndex(5) }, install] {
            let mut actions = vec![replacing, commit(4)];
            let before = actions.clone();
            let mut early = Vec::new();
            assert!(!take_durable_commits(&mut actions, LogIndex(6), |r| early.push(r)));
            assert!(early.is_empty());
            assert_eq!(actions, before);
        }
    }
}
