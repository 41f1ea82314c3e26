//! Starting a node, talking to it, and stopping it.

use crate::address_book::{AddressBook, MemberAddresses};
use crate::api::{
    ChangeMembershipError, CommittedEntry, MembershipView, NodeError, SnapshotError, StartError,
    Status, SubmitError, TransferLeaderError, ENTRY_BYTES_MAX,
};
use crate::applier::{self, SnapshotPlace};
use crate::config::{ClusterConfig, ConfigError};
use crate::event_loop::{
    membership_view, ApplierLink, Command, EventLoop, SnapshotLinks, StatusLinks,
};
use crate::metrics::Metrics;
use crate::stall::SyncClock;
use crate::state_machine::StateMachine;
use crate::storage::{Identity, Recovered, Storage, StoredSnapshot};
use crate::tls::NodeTls;
use crate::transport::{PeerLimits, Transport, TransportConfig};
use bytes::Bytes;
use skiff_core::{
    LogIndex, Machine, MembershipChange, NodeId, Role, SnapshotMeta, StartState, StateError,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::{mpsc, oneshot, watch};

/// Commands queued for the event loop before submitters wait.
const COMMAND_QUEUE_MAX: usize = 4096;
/// Peer messages queued for the event loop before readers wait.
const INBOUND_QUEUE_MAX: usize = 4096;
/// Committed entries queued for one subscriber.
const SUBSCRIPTION_QUEUE_MAX: usize = 1024;
/// How long the node's runtime keeps running the application's tasks
/// after the event loop has stopped.
pub const TASKS_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
/// A peer unreachable for this many election timeouts is logged as
/// `peer_unreachable`, once, and as `peer_reachable` when it returns.
const PEER_UNREACHABLE_ELECTION_TIMEOUTS: u64 = 10;
/// How often to look whether those tasks have finished.
const TASKS_POLL_INTERVAL: std::time::Duration = std::time::Duration::from_millis(1);

/// A running Raft node: one state machine with its write-ahead log, its peer
/// connections and its timer, driven by an event loop on its own thread.
///
/// Use [`Node::handle`] to submit data, read the status and subscribe to
/// committed entries from any task. Stop the node with [`Node::shutdown`];
/// [`Node::stopped`] resolves if it stops by itself (a storage failure).
#[derive(Debug)]
pub struct Node {
    handle: NodeHandle,
    done: Option<Done>,
    outcome: Option<Result<(), NodeError>>,
}

/// A cheap, cloneable way to talk to a [`Node`].
#[derive(Clone, Debug)]
pub struct NodeHandle {
    id: NodeId,
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    membership: watch::Receiver<MembershipView>,
    runtime: tokio::runtime::Handle,
    metrics: Metrics,
}

/// Committed entries in index order, from the index asked for on. See
/// [`NodeHandle::subscribe`].
#[derive(Debug)]
pub struct Subscription {
    receiver: mpsc::Receiver<CommittedEntry>,
    stalled: Arc<AtomicBool>,
    overtaken: Arc<OnceLock<SnapshotMeta>>,
    commands: mpsc::Sender<Command>,
}

/// Restores the application from the snapshot recovery found (if any) and
/// starts its applier: built by [`Node::start_with_state_machine`]
/// around the application, called once the data directory is recovered.
type StartApplier = Box<
    dyn FnOnce(Option<&StoredSnapshot>, SnapshotPlace) -> Result<ApplierLink, StartError> + Send,
>;

/// One node's metrics, counting unless `[metrics] enabled = false`.
fn node_metrics(config: &ClusterConfig) -> Metrics {
    match config.metrics.enabled {
        true => Metrics::enabled(),
        false => Metrics::disabled(),
    }
}

impl Node {
    /// Starts node `id` of `config`: binds its peer address, locks and
    /// recovers its data directory, and starts its event loop and peer
    /// connections on a thread of their own. Must be called within a tokio
    /// runtime, whose blocking pool recovers the data directory.
    pub async fn start(config: &ClusterConfig, id: NodeId) -> Result<Node, StartError> {
        config.validate()?;
        let address = config.node(id)?.peer_address;
        let listener = std::net::TcpListener::bind(address)
            .map_err(|source| StartError::Bind { address, source })?;
        Node::start_with_listener(config, id, listener).await
    }

    /// Like [`Node::start`], but accepts peers on `listener`, already bound
    /// to the node's `peer_address` (its peers dial that address). Whoever
    /// holds a bound listener keeps the port: tests bind every address of a
    /// cluster up front ([`LocalCluster`](crate::local::LocalCluster)) and
    /// restart a node on a clone of the same listener, so that no other
    /// process can take the port in between.
    pub async fn start_with_listener(
        config: &ClusterConfig,
        id: NodeId,
        listener: std::net::TcpListener,
    ) -> Result<Node, StartError> {
        Node::launch(config, id, listener, None).await
    }

    async fn launch(
        config: &ClusterConfig,
        id: NodeId,
        listener: std::net::TcpListener,
        start_applier: Option<StartApplier>,
    ) -> Result<Node, StartError> {
        config.validate()?;
        let node_config = config.node(id)?.clone();
        let identity = Identity {
            cluster_id: config.cluster_id,
            node_id: id.0,
        };
        let metrics = node_metrics(config);
        let transport = transport_config(config, id, &metrics)?;
        let recovery_config = config.clone();
        let recovery_metrics = metrics.clone();
        let (storage, machine, applier) = tokio::task::spawn_blocking(move || {
            let (storage, machine) = recover(&recovery_config, id, identity, &recovery_metrics)?;
            let place = SnapshotPlace {
                dir: storage.snapshot_dir().to_path_buf(),
                identity,
                policy: recovery_config.snapshot.clone(),
                applied: Arc::default(),
            };
            let applier = start_applier
                .map(|start| start(storage.current_snapshot(), place))
                .transpose()?;
            Ok::<_, StartError>((storage, machine, applier))
        })
        .await
        .map_err(|e| StartError::Thread(std::io::Error::other(e)))??;
        let mut storage = storage;
        storage.stall_syncs_while(config.faults.sync_stall_file_of(id));
        let bootstrap_book = bootstrap_book(config);
        // The members of the configuration the data directory holds, not
        // only `cluster.toml`'s.
        let mut transport = transport;
        transport.peers = crate::event_loop::address_book(machine.membership(), &bootstrap_book)
            .iter()
            .filter(|(peer, _)| *peer != id)
            .map(|(peer, addresses)| (peer, addresses.peer))
            .collect();
        let (command_sender, commands) = mpsc::channel(COMMAND_QUEUE_MAX);
        let (status_sender, status) = watch::channel(initial_status(&machine));
        let initial_membership = membership_view(&machine, &bootstrap_book, Vec::new());
        let (membership_sender, membership) = watch::channel(initial_membership);
        tracing::info!(
            %id, term = %machine.term(), last_index = %machine.last_index(),
            peer_address = %node_config.peer_address, "node starting"
        );
        let parts = EventLoopParts {
            machine,
            storage,
            applier,
            transport,
            listener,
            commands,
            status: status_sender,
            membership: membership_sender,
            bootstrap_book,
            stall_timeout: std::time::Duration::from_millis(config.storage.stall_timeout_ms),
            follower_reads: config.reads.follower_reads,
            metrics: metrics.clone(),
        };
        let (bound, done) = spawn_event_loop(id, parts)?;
        let runtime = match bound.await {
            Ok(Ok(runtime)) => runtime,
            Ok(Err(source)) => {
                return Err(StartError::Bind {
                    address: node_config.peer_address,
                    source,
                })
            }
            Err(_) => return Err(StartError::Thread(std::io::Error::other(lost_thread()))),
        };
        let handle = NodeHandle {
            id,
            commands: command_sender,
            status,
            membership,
            runtime,
            metrics,
        };
        Ok(Node {
            handle,
            done: Some(done),
            outcome: None,
        })
    }

    /// Like [`Node::start_with_listener`], with the application's state
    /// machine: the node restores it from its newest snapshot (if it has
    /// one), applies the committed log after it (on the node's thread),
    /// snapshots it by the `[snapshot]` policy (or on
    /// [`NodeHandle::snapshot_now`]) while it goes on applying, discards the
    /// log the snapshots cover, and restores it from a leader's snapshot
    /// when this node fell too far behind.
    pub async fn start_with_state_machine<S: StateMachine>(
        config: &ClusterConfig,
        id: NodeId,
        listener: std::net::TcpListener,
        state_machine: S,
    ) -> Result<Node, StartError> {
        let cluster_id = config.cluster_id;
        let start: StartApplier = Box::new(move |snapshot, place| {
            let mut state_machine = state_machine;
            let applied = match snapshot {
                Some(snapshot) => {
                    let started = std::time::Instant::now();
                    applier::restore(&mut state_machine, snapshot, cluster_id)
                        .map_err(StartError::Restore)?;
                    tracing::info!(
                        snapshot = %snapshot.meta, path = %snapshot.path.display(),
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "the state machine restored the snapshot"
                    );
                    snapshot.meta
                }
                None => SnapshotMeta::default(),
            };
            let (inputs, events) = (mpsc::unbounded_channel(), mpsc::unbounded_channel());
            place.applied.store(applied.index.0, Ordering::Relaxed);
            let applied_through = place.applied.clone();
            let task = applier::prepare(
                state_machine,
                applied,
                place,
                (inputs.0.clone(), inputs.1),
                events.0,
            );
            Ok(ApplierLink {
                inputs: inputs.0,
                events: events.1,
                next: applied.index.next(),
                applied: applied_through,
                task: Some(task),
            })
        });
        Node::launch(config, id, listener, Some(start)).await
    }

    /// A handle for submitting, reading the status and subscribing.
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Resolves when the node stops by itself, with the reason. Cancel-safe.
    pub async fn stopped(&mut self) -> &Result<(), NodeError> {
        if self.outcome.is_none() {
            let done = self.done.as_mut().expect("either done or outcome is set");
            let outcome = done.await.unwrap_or_else(|_| Err(lost_thread()));
            self.done = None;
            self.outcome = Some(outcome);
        }
        self.outcome.as_ref().expect("set above")
    }

    /// Stops the node: the current turn finishes and syncs, connections
    /// close, the data directory is unlocked. Submissions still waiting get
    /// [`SubmitError::Stopped`].
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        let _ = self.handle.commands.send(Command::Shutdown).await;
        self.stopped().await;
        self.outcome.take().expect("stopped sets the outcome")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Best effort: a node dropped without shutdown still stops.
        let _ = self.handle.commands.try_send(Command::Shutdown);
    }
}

impl NodeHandle {
    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Replicates `data` and resolves with the index it committed at, once
    /// it is committed and durable on this node. A node that is not the
    /// leader refuses at once with [`SubmitError::NotLeader`]. There is no
    /// timeout: a leader cut off from its majority waits until it learns
    /// the outcome, so callers should bound the wait themselves.
    pub async fn submit(&self, data: impl Into<Bytes>) -> Result<LogIndex, SubmitError> {
        let data = data.into();
        if data.is_empty() {
            return Err(SubmitError::Empty);
        }
        if data.len() > ENTRY_BYTES_MAX {
            return Err(SubmitError::TooLarge { length: data.len() });
        }
        self.request(|reply| Command::Submit { data, reply }).await
    }

    /// Takes a snapshot of the state machine now, whatever the policy says,
    /// and resolves once it is durable and the log it covers is released.
    ///
    /// The snapshot captures the state as of the last entry applied when
    /// the request reaches the applier; a snapshot being written then is
    /// finished first. A node without a state machine refuses
    /// ([`SnapshotError::NoStateMachine`]).
    pub async fn snapshot_now(&self) -> Result<SnapshotMeta, SnapshotError> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::SnapshotNow { reply })
            .await
            .map_err(|_| SnapshotError::Stopped)?;
        outcome.await.unwrap_or(Err(SnapshotError::Stopped))
    }

    /// For linearizable reads: resolves with an index `i` once this node has
    /// proven the read linearizable. A read answered from the state machine
    /// with every entry through `i` applied reflects every write that
    /// committed before the call.
    ///
    /// It writes nothing to the log (the thesis' ReadIndex, 6.4): a leader
    /// confirms it still leads with one round of heartbeats, shared by every
    /// read that arrived meanwhile (or, with `[reads] lease = true`, answers
    /// from its lease), and `i` is its commit index when the read arrived. A
    /// follower asks its leader for `i` (unless `[reads] follower_reads =
    /// false`); the caller then waits for its own state to reach `i`.
    /// All barriers of one event-loop turn share one read.
    ///
    /// Fails with [`SubmitError::NotLeader`] when no leader could confirm
    /// the read (none is known, leadership changed while it waited, or this
    /// follower does not serve reads), and [`SubmitError::Busy`] when too
    /// many reads wait. A leader cut off from its majority answers only
    /// once it steps down (CheckQuorum) or never, so callers should bound
    /// the wait themselves.
    pub async fn read_barrier(&self) -> Result<LogIndex, SubmitError> {
        self.request(|reply| Command::ReadBarrier { reply }).await
    }

    /// Hands leadership to node `to` (the thesis' leadership transfer):
    /// this node, which must lead, stops taking submissions (they fail with
    /// [`SubmitError::TransferInProgress`]), brings `to` up to date and
    /// tells it to stand at once. Resolves `Ok` when this node has stepped
    /// down for `to`'s election, or with why not; it gives up after an
    /// election timeout. One transfer runs at a time.
    pub async fn transfer_leadership(&self, to: NodeId) -> Result<(), TransferLeaderError> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(Command::TransferLeadership { to, reply })
            .await
            .map_err(|_| TransferLeaderError::Stopped)?;
        outcome.await.unwrap_or(Err(TransferLeaderError::Stopped))
    }

    /// The configuration in force on this node (its latest, committed or
    /// not), with every member's addresses, as of the event loop's last
    /// turn.
    pub fn membership(&self) -> MembershipView {
        self.membership.borrow().clone()
    }

    /// A receiver that sees every change of [`NodeHandle::membership`].
    pub fn watch_membership(&self) -> watch::Receiver<MembershipView> {
        self.membership.clone()
    }

    /// Asks this node, which must lead, to change the membership (one
    /// server at a time: add a learner, promote a learner to voter, remove
    /// a member). Resolves with the index of the change's entry once it
    /// commits, or with why it was refused or did not take effect.
    ///
    /// [`MembershipChange::AddLearner`] needs the new member's `addresses`
    /// ([`ChangeMembershipError::AddressesRequired`] otherwise), which the
    /// new configuration records for every node; other changes take `None`
    /// (given addresses are ignored). One change runs at a time
    /// (`ChangeInProgress`); a leader that has not yet committed an entry
    /// of its term refuses with `LeaderNotReady` (retry shortly).
    pub async fn change_membership(
        &self,
        change: MembershipChange,
        addresses: Option<MemberAddresses>,
    ) -> Result<LogIndex, ChangeMembershipError> {
        if matches!(change, MembershipChange::AddLearner(_)) && addresses.is_none() {
            return Err(ChangeMembershipError::AddressesRequired);
        }
        let (reply, outcome) = oneshot::channel();
        let command = Command::ChangeMembership {
            change,
            addresses,
            reply,
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| ChangeMembershipError::Stopped)?;
        outcome.await.unwrap_or(Err(ChangeMembershipError::Stopped))
    }

    async fn request(
        &self,
        command: impl FnOnce(crate::event_loop::Reply) -> Command,
    ) -> Result<LogIndex, SubmitError> {
        let (reply, outcome) = oneshot::channel();
        self.commands
            .send(command(reply))
            .await
            .map_err(|_| SubmitError::Stopped)?;
        outcome.await.unwrap_or(Err(SubmitError::Stopped))
    }

    /// Committed entries from index `from` on (1 for the whole log), in
    /// order and each once, including empty ones (a leader's no-op, read
    /// barriers). After a restart the node re-learns the commit index from
    /// the leader, so entries arrive as it does. A subscriber that falls
    /// behind slows nothing down: its entries wait in the log.
    ///
    /// Entries a snapshot covers are gone from the log: a node with a state
    /// machine discards them once applied, and any node replaces its log
    /// with a leader's snapshot when it fell too far behind. A subscription
    /// whose next entry is gone ends (`next` answers `None`), and
    /// [`Subscription::overtaken_by`] names the snapshot. An application
    /// that must see every entry implements [`StateMachine`] instead,
    /// whose state is restored from such a snapshot.
    pub async fn subscribe(&self, from: LogIndex) -> Result<Subscription, SubmitError> {
        let (sender, receiver) = mpsc::channel(SUBSCRIPTION_QUEUE_MAX);
        let stalled = Arc::new(AtomicBool::new(false));
        let overtaken = Arc::new(OnceLock::new());
        let command = Command::Subscribe {
            from,
            sender,
            stalled: stalled.clone(),
            overtaken: overtaken.clone(),
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| SubmitError::Stopped)?;
        Ok(Subscription {
            receiver,
            stalled,
            overtaken,
            commands: self.commands.clone(),
        })
    }

    /// The runtime of the node's own thread, which runs its event loop and
    /// its peer connections.
    ///
    /// An application may run the tasks that talk to the node on it: they
    /// then reach the event loop, and the loop's answers reach them, without
    /// waking another thread, which takes several thread switches off every
    /// request. The price is that they share one thread with the loop and
    /// stall while it syncs the log. The runtime outlives the event loop by
    /// up to [`TASKS_GRACE`], so that such tasks can answer their clients
    /// after the node stops; tasks still running then are dropped.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// The node's metrics: the application may register its own families
    /// beside the node's, and serve them all
    /// ([`metrics_http`](crate::metrics_http)).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The status as of the event loop's last turn.
    pub fn status(&self) -> Status {
        *self.status.borrow()
    }

    /// A receiver that sees every status change (role, term, leader, indices).
    pub fn watch_status(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }
}

impl Subscription {
    /// The snapshot that covers the entry this subscription needed next,
    /// once it ended for that reason (see [`NodeHandle::subscribe`]).
    pub fn overtaken_by(&self) -> Option<SnapshotMeta> {
        self.overtaken.get().copied()
    }

    /// The next committed entry, or `None` once the node has stopped or a
    /// snapshot covers the next entry ([`Subscription::overtaken_by`]).
    pub async fn next(&mut self) -> Option<CommittedEntry> {
        let entry = self.receiver.recv().await;
        if self.stalled.swap(false, Ordering::AcqRel) {
            // The loop found the channel full; now there is room again.
            let _ = self.commands.try_send(Command::Nudge);
        }
        entry
    }
}

/// Opens and recovers node `id`'s data directory and restores its machine.
/// A damaged log is repaired, as long as the machine can repair it: the
/// machine is built first, so that a node that cannot repair (alone in its
/// cluster) is refused with its directory untouched.
fn recover(
    config: &ClusterConfig,
    id: NodeId,
    identity: Identity,
    metrics: &Metrics,
) -> Result<(Storage, Machine), StartError> {
    let dir = config.node(id)?.data_dir.clone();
    let (mut storage, recovered) = Storage::open(&dir, identity, config.segment_bytes_max)?;
    let mut core = skiff_core::Config::new(id, config.voter_ids());
    // A node `cluster.toml` marks as a learner is not among the first
    // voters: it joins (or joined) the cluster by a membership change.
    core.join = config.node(id)?.learner;
    core.election_timeout_ms = config.election_timeout_ms;
    core.heartbeat_interval_ms = config.heartbeat_interval_ms;
    core.term_lead_max = Some(config.limits.term_lead_max);
    core.pre_vote = config.pre_vote;
    core.check_quorum = config.check_quorum;
    core.lease_read_margin_ms = config.reads.lease_read_margin_ms();
    core.seed = seed(id);
    let Recovered {
        hard_state,
        membership,
        snapshot,
        log,
        damage,
        repairing,
    } = recovered;
    let inconsistent = |reason| StartError::State {
        dir: dir.clone(),
        reason,
    };
    let holds_configuration = membership.is_some() || log.iter().any(|e| e.is_membership());
    let start = StartState {
        hard_state,
        snapshot: snapshot
            .as_ref()
            .map_or(SnapshotMeta::default(), |s| s.meta),
        // Entries share their data, so the copy kept to rewrite a damaged
        // log is cheap.
        log: log.clone(),
        membership,
        damaged: damage.is_some() || repairing,
        ..StartState::default()
    };
    if !start.damaged {
        tracing::info!(
            %id, snapshot = %start.snapshot, entries = log.len(), term = %hard_state.term,
            "recovered"
        );
        let machine = Machine::with_state(core, start).map_err(inconsistent)?;
        if holds_configuration {
            check_membership(config, &dir, &machine)?;
        }
        return Ok((storage, machine));
    }
    let machine = match Machine::with_state(core, start) {
        Ok(machine) => machine,
        Err(StateError::CannotRepair) => return Err(StartError::CannotRepair { dir, damage }),
        Err(reason) => return Err(inconsistent(reason)),
    };
    // A damaged log's configuration may be older than cluster.toml's: the
    // damage may have cut the entries that changed it, and the members
    // repair this node's log, configuration included.
    if holds_configuration {
        if let Err(mismatch) = check_membership(config, &dir, &machine) {
            tracing::warn!(
                reason = %mismatch,
                "the damaged log's configuration differs from cluster.toml; starting to repair \
                 from the members, which bring the configuration with the log"
            );
        }
    }
    match damage {
        Some(damage) => {
            metrics.storage_fault("damaged_log");
            metrics.storage_repair();
            let moved_to = storage.repair(&log)?;
            tracing::warn!(
                event = "storage_repair_started",
                %id,
                file = %damage.path.display(),
                offset = damage.offset,
                reason = damage.reason,
                intact_through = %damage.intact_through,
                moved_to = %moved_to.display(),
                "the log is damaged where it may hold acknowledged entries; \
                 starting from its intact prefix and repairing from the other nodes \
                 (no vote, no candidacy until caught up); the damaged files are kept"
            );
        }
        None => tracing::warn!(
            event = "storage_repair_started",
            %id,
            entries = log.len(),
            "the node stopped while repairing a damaged log; repairing again"
        ),
    }
    Ok((storage, machine))
}

/// Refuses to start when `cluster.toml`'s nodes disagree with the
/// configuration the data directory holds: its latest, or the one before
/// it (the latest may be a change that never commits).
fn check_membership(
    config: &ClusterConfig,
    dir: &std::path::Path,
    machine: &Machine,
) -> Result<(), StartError> {
    let toml_book = bootstrap_book(config);
    let mut toml_voters: Vec<NodeId> = config.voter_ids().collect();
    toml_voters.sort_unstable();
    let mut toml_learners: Vec<NodeId> = config
        .nodes
        .iter()
        .filter(|n| n.learner)
        .map(|n| NodeId(n.id))
        .collect();
    toml_learners.sort_unstable();
    let agrees = |membership: &skiff_core::Membership| {
        let book = crate::event_loop::address_book(membership, &toml_book);
        membership.voters() == toml_voters.as_slice()
            && membership.learners() == toml_learners.as_slice()
            && membership
                .members()
                .all(|id| book.get(id).is_some() && book.get(id) == toml_book.get(id))
    };
    let latest = machine.membership();
    let latest_index = crate::event_loop::latest_configuration_index(machine);
    let before = latest_index.map(|index| machine.membership_at(LogIndex(index.0 - 1)));
    if agrees(latest) || before.is_some_and(agrees) {
        return Ok(());
    }
    let describe = |voters: &[NodeId], learners: &[NodeId], book: &AddressBook| {
        let member = |id: &NodeId| match book.get(*id) {
            Some(a) => format!("{id} (peer {}, client {})", a.peer, a.client),
            None => format!("{id} (addresses unknown)"),
        };
        let list = |ids: &[NodeId]| match ids.is_empty() {
            true => "none".to_string(),
            false => ids.iter().map(member).collect::<Vec<_>>().join(", "),
        };
        format!("voters {}; learners {}", list(voters), list(learners))
    };
    let data_book = crate::event_loop::address_book(latest, &toml_book);
    Err(StartError::MembershipMismatch {
        dir: dir.to_path_buf(),
        data_dir: describe(latest.voters(), latest.learners(), &data_book),
        cluster_toml: describe(&toml_voters, &toml_learners, &toml_book),
    })
}

/// A seed that differs between nodes and between runs of one node, so that
/// restarted nodes do not replay the same election timeouts in lockstep.
fn seed(id: NodeId) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos ^ id.0.wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The transport's configuration, with node `id`'s TLS material loaded
/// (an unreadable or unusable file is named in the error).
fn transport_config(
    config: &ClusterConfig,
    id: NodeId,
    metrics: &Metrics,
) -> Result<TransportConfig, StartError> {
    let tls = match &config.tls {
        Some(tls) => {
            let material = NodeTls::load(tls, id).map_err(ConfigError::from)?;
            Some(material.peer_tls().map_err(ConfigError::from)?)
        }
        None => {
            tracing::warn!(
                %id,
                "no [tls] in the cluster configuration: peer traffic is unauthenticated \
                 and unencrypted; anyone who can reach the peer port can join the conversation"
            );
            None
        }
    };
    Ok(TransportConfig {
        cluster_id: config.cluster_id,
        id,
        address: Some(config.node(id)?.peer_address),
        peers: config
            .nodes
            .iter()
            .filter(|n| n.id != id.0)
            .map(|n| (NodeId(n.id), n.peer_address))
            .collect(),
        tls,
        limits: PeerLimits::from(&config.limits),
        snapshot_incoming_dir: config.node(id)?.data_dir.join("snapshots").join("incoming"),
        snapshot_chunk_bytes: config.snapshot.chunk_bytes,
        unreachable_warn_after: std::time::Duration::from_millis(
            config.election_timeout_ms * PEER_UNREACHABLE_ELECTION_TIMEOUTS,
        ),
        metrics: metrics.clone(),
    })
}

/// The addresses `cluster.toml` gives its nodes: those of the bootstrap
/// configuration's members.
fn bootstrap_book(config: &ClusterConfig) -> AddressBook {
    config
        .nodes
        .iter()
        .map(|node| {
            let addresses = MemberAddresses {
                peer: node.peer_address,
                client: node.client_address,
            };
            (NodeId(node.id), addresses)
        })
        .collect()
}

fn initial_status(machine: &Machine) -> Status {
    Status {
        id: machine.id(),
        role: Role::Follower,
        term: machine.term(),
        leader: None,
        voted_for: machine.voted_for(),
        commit_index: machine.commit_index(),
        last_index: machine.last_index(),
        repairing: machine.repairing(),
        storage_stalled: false,
        snapshot: machine.snapshot(),
        applied_index: machine.snapshot().index,
        last_leader_change: None,
    }
}

/// Resolves with how the event loop ended.
type Done = oneshot::Receiver<Result<(), NodeError>>;
/// Resolves with the node's runtime once the transport listens.
type Bound = oneshot::Receiver<std::io::Result<tokio::runtime::Handle>>;

/// What the event-loop thread starts from.
struct EventLoopParts {
    machine: Machine,
    storage: Storage,
    applier: Option<ApplierLink>,
    transport: TransportConfig,
    /// Where peers connect.
    listener: std::net::TcpListener,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<Status>,
    membership: watch::Sender<MembershipView>,
    bootstrap_book: AddressBook,
    /// A sync outstanding this long is a stalled disk.
    stall_timeout: std::time::Duration,
    /// Whether a follower serves read barriers (`[reads] follower_reads`).
    follower_reads: bool,
    metrics: Metrics,
}

/// Runs the event loop and the peer transport on a thread of their own
/// with a single-threaded runtime. Peer messages then reach the machine,
/// and its messages reach the sockets, without waking another thread: the
/// reader, the loop and the writers are tasks of one thread. A sync blocks
/// that thread, and so the node's peer traffic, which costs nothing: what a
/// sync holds back could not be answered or counted before it ends anyway
/// (the loop lets its writers send a leader's requests before it syncs).
/// Applications may run their own tasks there too (see
/// [`NodeHandle::runtime`]).
///
/// The first receiver resolves with the runtime once the transport
/// listens, or with the error; the second with how the event loop ended.
fn spawn_event_loop(id: NodeId, parts: EventLoopParts) -> Result<(Bound, Done), StartError> {
    let (bound_sender, bound) = oneshot::channel();
    let (done_sender, done) = oneshot::channel();
    std::thread::Builder::new()
        .name(format!("skiff-node-{id}"))
        .spawn(move || {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => {
                    let outcome = runtime.block_on(run_event_loop(parts, bound_sender));
                    report(id, outcome, done_sender);
                    runtime.block_on(let_tasks_finish(TASKS_GRACE));
                }
                Err(e) => {
                    let _ = bound_sender.send(Err(std::io::Error::other(e.to_string())));
                    report(id, Err(NodeError::EventLoop(e.to_string())), done_sender);
                }
            }
        })
        .map_err(StartError::Thread)?;
    Ok((bound, done))
}

fn report(
    id: NodeId,
    outcome: Result<(), NodeError>,
    done: oneshot::Sender<Result<(), NodeError>>,
) {
    if let Err(e) = &outcome {
        // As an error, so that the log line carries its causes too.
        let reason: &(dyn std::error::Error + 'static) = e;
        tracing::error!(%id, reason, "node stopped by an error");
    }
    let _ = done.send(outcome);
}

/// Drives the tasks an application left on the node's runtime until none
/// is left or `grace` has passed.
async fn let_tasks_finish(grace: std::time::Duration) {
    let deadline = tokio::time::Instant::now() + grace;
    let metrics = tokio::runtime::Handle::current().metrics();
    while metrics.num_alive_tasks() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(TASKS_POLL_INTERVAL).await;
    }
}

/// Starts the transport, reports whether that worked, and runs the loop.
async fn run_event_loop(
    parts: EventLoopParts,
    bound: oneshot::Sender<std::io::Result<tokio::runtime::Handle>>,
) -> Result<(), NodeError> {
    let (peer_sender, peer_inbox) = mpsc::channel(INBOUND_QUEUE_MAX);
    let incoming_dir = parts.transport.snapshot_incoming_dir.clone();
    let status = Arc::new(parts.status);
    let sync_clock = match SyncClock::start(parts.stall_timeout, status.clone()) {
        Ok(clock) => clock,
        Err(error) => {
            let _ = bound.send(Err(error));
            return Ok(());
        }
    };
    let transport = match Transport::start(parts.transport, parts.listener, peer_sender) {
        Ok(transport) => transport,
        Err(error) => {
            let _ = bound.send(Err(error));
            return Ok(());
        }
    };
    let _ = bound.send(Ok(tokio::runtime::Handle::current()));
    let mut applier = parts.applier;
    // On this thread, beside the loop (see `applier`).
    let applier_task = (applier.as_mut())
        .and_then(|link| link.task.take())
        .map(tokio::spawn);
    let event_loop = EventLoop::new(
        parts.machine,
        parts.storage,
        transport,
        peer_inbox,
        parts.commands,
        StatusLinks {
            status,
            sync_clock,
            membership: parts.membership,
            bootstrap_book: parts.bootstrap_book,
        },
        SnapshotLinks {
            applier,
            incoming_dir,
        },
    )
    .with_follower_reads(parts.follower_reads)
    .with_metrics(parts.metrics);
    let outcome = event_loop.run().await;
    // The loop dropped the applier's channel: it applies what it was
    // handed, finishes the snapshot it writes, and ends.
    if let Some(task) = applier_task {
        let _ = task.await;
    }
    outcome
}

fn lost_thread() -> NodeError {
    NodeError::EventLoop("the event-loop thread ended without a result (it panicked)".into())
}
