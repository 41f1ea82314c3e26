//! The file server: a `skiff-node` with the file store on top, serving the
//! line protocol to many clients.
//!
//! # How a request is answered
//!
//! Every change is proposed through the node as a [`Command`] stamped
//! with the leader's clock and a [`ProposalId`]. The node applies its
//! committed entries to the [`Store`] in index order, on every replica
//! alike, through the store's [`StateMachine`] implementation
//! ([`replies`]); when it applies an entry this server proposed, the
//! store's answer goes to the connection waiting for that proposal. The
//! node also snapshots the store by its `[snapshot]` policy and restores it
//! from a snapshot at restart or when it fell too far behind its leader. A
//! server that is not the leader answers a change with `ERR_REDIRECT` and
//! the leader's client address; when it knows no leader, a follower names
//! the candidate it voted for in the current term (the likeliest next
//! leader), and `ERR_REDIRECT _` stands for no better guess.
//!
//! # Reads
//!
//! A `read` writes nothing to the log: the server asks its node for a read
//! index ([`NodeHandle::read_barrier`], the thesis' ReadIndex: the leader
//! confirms with one round of heartbeats that it still leads, and a
//! follower asks the leader for the index), waits until the store has
//! applied through it, and answers from the store. Every replica serves
//! reads this way, followers included, so read load spreads over the
//! cluster.
//!
//! Expiry is where a read from local state could go wrong: decided by a
//! server's own clock, a file one server reported expired could be shown
//! again by a server whose clock is behind. So expiry is decided by the
//! log's clock (the store's, the largest timestamp applied), which only
//! goes forward: a file expired at the log's clock is gone for every later
//! read on any server. A file that is live at the log's clock but has
//! expired by this server's clock is not reported expired from here: the
//! read goes through the log as a command (the leader's clock then
//! advances the log's past the expiry), or, on a follower, is redirected
//! to the leader, which does that. Whether a file is gone is thus always
//! decided by log time and never goes back.
//!
//! Routing answers by proposal id rather than by log index means the answer
//! cannot be missed when the store applies the entry before the proposer
//! learns its index, and that nothing is kept for entries other servers
//! proposed.
//!
//! # Outcomes a client sees
//!
//! * The answer from the store, once the entry has committed and applied
//!   (for a read, once the store applied through the read index).
//! * `ERR_REDIRECT`: this server did not propose the request (not the
//!   leader), or its entry was overwritten by a new leader, or no leader
//!   confirmed a read; either way the request had no effect and may be
//!   sent again.
//! * `ERR_INTERNAL`: the outcome is unknown (no commit within
//!   [`ServerConfig::request_timeout`], the node stopped, or a snapshot
//!   covering the entry replaced the store before it was applied here), or
//!   the node refused the entry or read (too many pending).
//! * `ERR_CMD_ERR`, then the connection closes: a malformed request.
//! * For `session ...` (an extension, see [`crate::protocol::session`]):
//!   `SESSION <id>` once the session's opening has applied; for a numbered
//!   change, the store's answer as above, the remembered one for a resend,
//!   or `ERR_SESSION_EXPIRED` / `ERR_SESSION_STALE`; a numbered read is
//!   served as a plain read ([`sessions`]).
//! * For `status` (an extension, see [`crate::protocol::status`]): a
//!   `STATUS` line from this server's own node, leader or not, at once.
//! * For `snapshot` (an extension, see [`crate::protocol::snapshot`]): a
//!   `SNAPSHOT` line once this server's node has a durable snapshot, or
//!   `ERR_SNAPSHOT` with the reason it took none.
//! * For `transfer <id>` (an extension, see [`crate::protocol::transfer`]):
//!   `TRANSFERRED <id>` once this server's node, the leader, has handed its
//!   office to node `id`, or `ERR_TRANSFER` with the reason it did not.
//!   Writes refused meanwhile are submitted again, not failed.
//! * For `member ...` (an extension, see [`crate::protocol::member`]): the
//!   membership in force on this server's node for `member list`;
//!   `MEMBER_OK <index>` once a change asked of the leader has committed,
//!   or `ERR_MEMBER` with the reason it did not (a server that does not
//!   lead names the leader and its client address) ([`members`]).
//!
//! # Concurrency
//!
//! * Every task of the server (the accept loop, one task per connection)
//!   runs on the node's own runtime
//!   ([`NodeHandle::runtime`](skiff_node::NodeHandle::runtime)), on the
//!   thread of the node's event loop: a request reaches the loop, and its
//!   answer the connection, without a switch between threads, which on a
//!   loaded machine is much of a request's cost. Connections pause while
//!   the node syncs its log, which their requests wait for anyway.
//! * The node calls the store's [`StateMachine`] methods wherever it
//!   applies entries; the store shares with the connections only the
//!   waiting answers and its progress ([`replies::Replies`]), behind a
//!   mutex and atomics.
//! * One task per connection reads, parses and answers its requests one at a
//!   time, so a client's commands are answered in the order sent.
//!
//! # Client limits
//!
//! Every client limit comes from the cluster configuration's `[limits]`
//! ([`skiff_node::LimitsConfig`]), so that `cluster.toml` sets them for
//! every server alike:
//!
//! * `clients_max`: connections kept at once. When all are taken, a new
//!   client is still accepted and the connection idle the longest is closed
//!   to make room; if none is idle, the new client is closed at once rather
//!   than left waiting in the listen backlog ([`slots`]).
//! * `client_idle_timeout_ms`: a connection with no request in progress is
//!   closed after this. An idle connection holds no buffer.
//! * `client_read_timeout_ms`: a request begun must arrive whole within
//!   this, or the connection closes; an answer must be taken within it too
//!   ([`connection`]).
//! * `client_pending_bytes_max`: bytes held, over all connections, for
//!   requests received in part. Each connection's first
//!   [`buffer::UNBUDGETED_BYTES`] are its own, so small requests never wait;
//!   beyond them a buffer grows only with bytes from this budget. A request
//!   that finds no room waits for it, within its read timeout, then gets
//!   `ERR_INTERNAL` and its connection closes ([`budget`], [`buffer`]).
//!
//! Bytes held for requests in progress are thus at most
//! `clients_max × UNBUDGETED_BYTES + client_pending_bytes_max` (16 MiB + 64
//! MiB by default). Each limit hit is logged as a warning, at most once
//! every [`rate_limited::WARN_INTERVAL`] per kind, with how many were not.
//!
//! # Client TLS
//!
//! With `[tls] clients = true` every client must speak TLS; the node shows
//! its own certificate and asks none of the client ([`client_tls`]).
//!
//! # Accepting and stopping
//!
//! * Accept errors (e.g. out of file descriptors) back off, doubling to a
//!   bound, instead of spinning.
//! * Shutdown: a watch channel tells every connection to stop reading, and
//!   each connection holds a clone of a completion sender, so that dropping
//!   ours and waiting for the channel to close waits for all of them.

mod budget;
mod buffer;
mod client_tls;
mod connection;
mod members;
mod rate_limited;
mod replies;
mod request_metrics;
mod sessions;
mod slots;

use crate::command::{Command, ProposalId, SessionPolicy};
use crate::protocol::{
    LeaderChangeReport, Limits, LogExtent, Request, Response, SnapshotAnswer, StatusReport,
    TransferAnswer,
};
#[cfg(doc)]
use crate::store::Store;
use budget::PendingBudget;
use connection::Admitted;
use rate_limited::{RateLimited, WARN_INTERVAL};
use replies::{FileStateMachine, LocalRead, Replies};
use request_metrics::ClientRequestMetrics;
#[cfg(doc)]
use skiff_node::StateMachine;
use skiff_node::{
    ClusterConfig, LimitsConfig, LogIndex, Node, NodeError, NodeHandle, NodeId, Role, StartError,
    Status, SubmitError, ENTRY_BYTES_MAX,
};
use slots::{Admission, Slots};
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

/// Room in a log entry for everything but the contents: format byte,
/// timestamp, proposal id, session, variants, lengths, version and exptime.
const COMMAND_OVERHEAD_BYTES_MAX: usize = 96;
/// How long a proposal refused during a leadership transfer waits before
/// it is submitted again (a transfer takes a round trip or two).
const TRANSFER_RETRY_INTERVAL: Duration = Duration::from_millis(2);
/// The first pause after a failed accept.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest pause after repeated failed accepts.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// How to run one file server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The whole cluster; this server listens on its node's `client_address`
    /// and takes its client limits from `cluster.limits`.
    pub cluster: ClusterConfig,
    /// Which node of the cluster this server is.
    pub id: NodeId,
    /// Limits on file size and name length.
    pub limits: Limits,
    /// How long a request may wait for its commit before the client gets
    /// `ERR_INTERNAL`.
    pub request_timeout: Duration,
    /// Where this server's timestamps for its proposals come from, which
    /// decide when files expire.
    pub clock: Clock,
    /// How the sessions this server opens are kept (idle timeout, bound on
    /// their number); carried in the log, see [`SessionPolicy`].
    pub sessions: SessionPolicy,
}

/// The time a server stamps on its proposals, in milliseconds since the
/// Unix epoch: the system clock, or another source for tests that need
/// time to pass without waiting for it.
#[derive(Clone, Default)]
pub enum Clock {
    /// The system's wall clock.
    #[default]
    System,
    /// Whatever the function answers.
    Custom(Arc<dyn Fn() -> u64 + Send + Sync>),
}

impl Clock {
    /// A clock that reads `now_ms`.
    pub fn from_fn(now_ms: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock::Custom(Arc::new(now_ms))
    }

    /// The current time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => now_ms(),
            Clock::Custom(now_ms) => now_ms(),
        }
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Clock::System => "Clock::System",
            Clock::Custom(_) => "Clock::Custom",
        })
    }
}

impl ServerConfig {
    /// Node `id` of `cluster` with default protocol limits, a 5 s request
    /// timeout, the system clock and the session policy of the cluster's
    /// `[limits]` (`session_idle_timeout_ms`, `sessions_max`).
    pub fn new(cluster: ClusterConfig, id: NodeId) -> ServerConfig {
        let sessions = SessionPolicy {
            idle_timeout_ms: cluster.limits.session_idle_timeout_ms,
            sessions_max: cluster.limits.sessions_max,
        };
        ServerConfig {
            cluster,
            id,
            limits: Limits::default(),
            request_timeout: Duration::from_secs(5),
            clock: Clock::System,
            sessions,
        }
    }
}

/// Why a server did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The configuration cannot work.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// The node did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The client address could not be bound.
    #[error("cannot listen for clients on {address}")]
    Bind {
        /// The configured client address.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The node failed while stopping.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// The node stopped by itself.
    #[error("the node stopped: {0}")]
    Stopped(String),
    /// The `[tls]` files for clients cannot be read or used; the error names
    /// the file.
    #[error("client TLS: {0}")]
    Tls(#[from] skiff_node::tls::TlsError),
}

/// What a server is doing: its node's status and how far its store got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerStatus {
    /// The node's role, term, leader and indices.
    pub node: Status,
    /// The last log index applied to the store.
    pub applied_index: LogIndex,
    /// Bytes of the pending-bytes budget (`client_pending_bytes_max`) held
    /// now for requests received in part.
    pub pending_bytes: usize,
}

/// What the connections and the server share.
struct Shared {
    node: NodeHandle,
    cluster: ClusterConfig,
    limits: Limits,
    request_timeout: Duration,
    next_sequence: AtomicU64,
    /// Where the store's answers go, and how far it got.
    replies: Arc<Replies>,
    /// Where proposals' timestamps come from.
    clock: Clock,
    /// How the sessions this server opens are kept.
    session_policy: SessionPolicy,
    client_limits: ClientLimits,
    /// Bytes for requests received in part, over all connections.
    budget: PendingBudget,
    warnings: LimitWarnings,
    /// Set when clients must use TLS (`[tls] clients = true`).
    client_tls: Option<TlsAcceptor>,
    /// Requests by command and outcome, and their latency.
    requests: ClientRequestMetrics,
    /// Clients refused or evicted at `clients_max`: `[refused, evicted]`.
    clients_full: Vec<skiff_node::metrics::Counter>,
}

/// The timeouts of [`LimitsConfig`] for one client connection.
#[derive(Clone, Copy, Debug)]
struct ClientLimits {
    idle_timeout: Duration,
    read_timeout: Duration,
}

impl ClientLimits {
    fn new(limits: &LimitsConfig) -> ClientLimits {
        ClientLimits {
            idle_timeout: Duration::from_millis(limits.client_idle_timeout_ms),
            read_timeout: Duration::from_millis(limits.client_read_timeout_ms),
        }
    }
}

/// One rate limiter per kind of client limit hit, so that one kind
/// flooding the log cannot hide another.
#[derive(Debug)]
struct LimitWarnings {
    /// `clients_max` reached: an idle connection evicted or a client refused.
    clients_full: RateLimited,
    /// A request or an answer not through within the read timeout.
    slow_client: RateLimited,
    /// The pending-bytes budget refused a request.
    budget: RateLimited,
}

impl LimitWarnings {
    fn new() -> LimitWarnings {
        LimitWarnings {
            clients_full: RateLimited::new(WARN_INTERVAL),
            slow_client: RateLimited::new(WARN_INTERVAL),
            budget: RateLimited::new(WARN_INTERVAL),
        }
    }
}

/// A running file server.
pub struct Server {
    node: Node,
    shared: Arc<Shared>,
    client_address: SocketAddr,
    stop: watch::Sender<bool>,
    /// Closed when the accept loop and every connection have finished.
    finished: mpsc::Receiver<()>,
}

impl Server {
    /// Starts the node with the store and the client listener, binding the
    /// node's peer and client addresses.
    pub async fn start(config: ServerConfig) -> Result<Server, ServerError> {
        check_config(&config)?;
        let node = config.cluster.node(config.id).map_err(StartError::from)?;
        let (peer_address, client_address) = (node.peer_address, node.client_address);
        let peers =
            std::net::TcpListener::bind(peer_address).map_err(|source| StartError::Bind {
                address: peer_address,
                source,
            })?;
        let clients =
            std::net::TcpListener::bind(client_address).map_err(|source| ServerError::Bind {
                address: client_address,
                source,
            })?;
        Server::start_with_listeners(config, peers, clients).await
    }

    /// Like [`Server::start`], but on listeners already bound to the node's
    /// peer and client addresses, so that whoever bound them keeps the
    /// ports between runs (see
    /// [`LocalCluster`](skiff_node::local::LocalCluster)).
    pub async fn start_with_listeners(
        config: ServerConfig,
        peers: std::net::TcpListener,
        clients: std::net::TcpListener,
    ) -> Result<Server, ServerError> {
        check_config(&config)?;
        let node_address = config
            .cluster
            .node(config.id)
            .map_err(StartError::from)?
            .client_address;
        let bind_error = |source| ServerError::Bind {
            address: node_address,
            source,
        };
        // A std listener, so that the node's runtime can take it over.
        let client_tls = client_tls::acceptor(&config)?;
        let listener = clients;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let client_address = listener.local_addr().map_err(bind_error)?;
        let replies = Arc::new(Replies::new(random_u64()));
        let store = FileStateMachine::new(replies.clone());
        let node = Node::start_with_state_machine(&config.cluster, config.id, peers, store).await?;
        let shared = Arc::new(Shared {
            node: node.handle(),
            cluster: config.cluster.clone(),
            limits: config.limits,
            request_timeout: config.request_timeout,
            clock: config.clock.clone(),
            session_policy: config.sessions,
            next_sequence: AtomicU64::new(0),
            replies,
            client_limits: ClientLimits::new(&config.cluster.limits),
            budget: PendingBudget::new(config.cluster.limits.client_pending_bytes_max),
            warnings: LimitWarnings::new(),
            client_tls,
            requests: ClientRequestMetrics::register(node.handle().metrics()),
            clients_full: node.handle().metrics().register_counters(
                "client_connections_refused",
                "Client connections refused or evicted at clients_max",
                "action",
                &["refused", "evicted"],
            ),
        });
        let runtime = node.handle().runtime().clone();
        let listener = {
            // Registered with the node's runtime, which serves the clients.
            let _node_runtime = runtime.enter();
            TcpListener::from_std(listener).map_err(bind_error)?
        };
        let (stop, stopping) = watch::channel(false);
        let (done, finished) = mpsc::channel(1);
        let slots = Slots::new(config.cluster.limits.clients_max);
        runtime.spawn(accept_clients(
            listener,
            shared.clone(),
            slots,
            stopping,
            done,
        ));
        let tls = shared.client_tls.is_some();
        tracing::info!(id = %config.id, %client_address, tls, "file server started");
        Ok(Server {
            node,
            shared,
            client_address,
            stop,
            finished,
        })
    }

    /// Where clients connect.
    pub fn client_address(&self) -> SocketAddr {
        self.client_address
    }

    /// A handle to the embedded node.
    pub fn node(&self) -> NodeHandle {
        self.node.handle()
    }

    /// The node's status and the store's progress.
    pub fn status(&self) -> ServerStatus {
        ServerStatus {
            node: self.shared.node.status(),
            applied_index: self.shared.replies.applied_index(),
            pending_bytes: self.shared.budget.held(),
        }
    }

    /// Resolves when the node stops by itself, with the reason.
    pub async fn stopped(&mut self) -> &Result<(), NodeError> {
        self.node.stopped().await
    }

    /// Stops accepting and reading requests, stops the node (requests still
    /// waiting for a commit are answered `ERR_INTERNAL`: their outcome is
    /// unknown), and waits for every connection to finish.
    pub async fn shutdown(mut self) -> Result<(), ServerError> {
        let _ = self.stop.send(true);
        let stopped = self.node.shutdown().await;
        // Whether or not the node dropped the store yet, nothing more is applied.
        self.shared.replies.end_all();
        // Every sender is dropped once the accept loop and all connections end.
        let _ = self.finished.recv().await;
        Ok(stopped?)
    }
}

/// Runs a server until `shutdown` resolves or its node stops by itself.
pub async fn run(
    config: ServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    let mut server = Server::start(config).await?;
    tokio::select! {
        () = shutdown => server.shutdown().await,
        outcome = server.stopped() => match outcome {
            Ok(()) => Ok(()),
            Err(e) => Err(ServerError::Stopped(e.to_string())),
        },
    }
}

/// Refuses a configuration a server cannot run with.
fn check_config(config: &ServerConfig) -> Result<(), ServerError> {
    check_limits(&config.limits)?;
    config.sessions.validate().map_err(ServerError::Config)?;
    config
        .cluster
        .validate()
        .map_err(|error| ServerError::Config(error.to_string()))
}

/// Refuses limits under which a valid request could not fit in a log entry.
fn check_limits(limits: &Limits) -> Result<(), ServerError> {
    let entry_bytes_max = limits
        .file_bytes_max
        .saturating_add(limits.name_bytes_max)
        .saturating_add(COMMAND_OVERHEAD_BYTES_MAX);
    if entry_bytes_max > ENTRY_BYTES_MAX {
        return Err(ServerError::Config(format!(
            "file_bytes_max ({}) plus name_bytes_max ({}) must leave {COMMAND_OVERHEAD_BYTES_MAX} \
             bytes of a log entry of {ENTRY_BYTES_MAX} for the rest of the command",
            limits.file_bytes_max, limits.name_bytes_max
        )));
    }
    Ok(())
}

/// A 64-bit number that differs between runs, from the standard library's
/// randomly seeded hasher.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(now_ms().into());
    hasher.write_u32(std::process::id());
    hasher.finish()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl Shared {
    /// Answers `request`: a read from the store when it can (see the
    /// module's docs on reads), anything else through the log.
    async fn execute(&self, request: Request) -> Response {
        if let Request::Read { name } = &request {
            if let Some(response) = self.read_without_log(name).await {
                return response;
            }
        }
        self.propose(request).await
    }

    /// A read answered from the store once it applied through a read index
    /// the node proved; `None` when only the log may decide it (the file
    /// expired by this server's clock, not yet by the log's).
    async fn read_without_log(&self, name: &str) -> Option<Response> {
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let index = match tokio::time::timeout_at(deadline, self.node.read_barrier()).await {
            Ok(Ok(index)) => index,
            Ok(Err(SubmitError::NotLeader { leader })) => return Some(self.redirect(leader)),
            Ok(Err(error)) => {
                tracing::warn!(%error, "read refused");
                return Some(Response::Internal);
            }
            Err(_) => return Some(Response::Internal),
        };
        let applied = tokio::time::timeout_at(deadline, self.replies.applied_through(index)).await;
        if !matches!(applied, Ok(Ok(()))) {
            return Some(Response::Internal);
        }
        match self.replies.read(name, self.clock.now_ms()) {
            LocalRead::Answer(response) => Some(response),
            LocalRead::ExpiredByLocalClock => None,
        }
    }

    /// Proposes `request` and waits for the store's answer.
    async fn propose(&self, request: Request) -> Response {
        self.propose_entry(|timestamp_ms, proposal| {
            Command {
                timestamp_ms,
                proposal,
                session: None,
                request,
            }
            .encode()
        })
        .await
    }

    /// Proposes the entry `encode` makes from a timestamp and a proposal
    /// id, and waits for the store's answer to it, for a
    /// plain request and for the session extension alike.
    pub(super) async fn propose_entry(
        &self,
        encode: impl FnOnce(u64, ProposalId) -> bytes::Bytes,
    ) -> Response {
        let sequence = self.next_sequence.fetch_add(1, Ordering::Relaxed);
        let answered = self.replies.wait_for(sequence);
        let proposal = ProposalId {
            server: self.replies.server_id,
            sequence,
        };
        let timestamp_ms = self.clock.now_ms().max(self.replies.clock_ms());
        let entry = encode(timestamp_ms, proposal);
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let submitted = loop {
            match tokio::time::timeout_at(deadline, self.node.submit(entry.clone())).await {
                // A leadership transfer lasts moments and appended nothing:
                // submit again, to be taken here or redirected to the new
                // leader, rather than fail the client.
                Ok(Err(SubmitError::TransferInProgress { .. })) => {
                    tokio::time::sleep_until(
                        (tokio::time::Instant::now() + TRANSFER_RETRY_INTERVAL).min(deadline),
                    )
                    .await;
                }
                other => break other,
            }
        };
        let response = match submitted {
            Ok(Ok(index)) => {
                self.replies.committed_at(sequence, index);
                match tokio::time::timeout_at(deadline, answered).await {
                    Ok(Ok(response)) => response,
                    _ => Response::Internal,
                }
            }
            Ok(Err(SubmitError::NotLeader { leader })) => self.redirect(leader),
            Ok(Err(SubmitError::Overwritten { .. })) => self.redirect(self.node.status().leader),
            Ok(Err(error)) => {
                tracing::warn!(%error, "proposal refused");
                Response::Internal
            }
            Err(_) => Response::Internal,
        };
        self.replies.forget(sequence);
        response
    }

    /// The answer to `status`: the node's own view, without the log.
    fn status_report(&self) -> StatusReport {
        let status = self.node.status();
        StatusReport {
            id: status.id,
            role: status.role,
            term: status.term,
            leader: status.leader,
            commit_index: status.commit_index,
            last_index: status.last_index,
            repairing: status.repairing,
            log: Some(LogExtent {
                snapshot_index: status.snapshot.index,
                entries: status.last_index.0.saturating_sub(status.snapshot.index.0),
            }),
            applied: Some(status.applied_index),
            leader_change: status.last_leader_change.map(|change| LeaderChangeReport {
                at_unix_ms: change.at_unix_ms,
                reason: change.reason,
            }),
        }
    }

    /// The answer to `snapshot`: the node's, once it has one or has refused.
    async fn snapshot_answer(&self) -> SnapshotAnswer {
        match self.node.snapshot_now().await {
            Ok(snapshot) => {
                tracing::info!(
                    snapshot = %format_args!("{}:{}", snapshot.index, snapshot.term),
                    "snapshot taken on a client's request"
                );
                SnapshotAnswer::Taken(snapshot)
            }
            Err(error) => SnapshotAnswer::refused(error),
        }
    }

    /// The answer to `transfer <to>`: this node's leadership handed to
    /// node `to`, or why not.
    pub(super) async fn transfer_answer(&self, to: NodeId) -> TransferAnswer {
        match self.node.transfer_leadership(to).await {
            Ok(()) => {
                tracing::info!(%to, "leadership handed over on a client's request");
                TransferAnswer::Transferred(to)
            }
            Err(error) => TransferAnswer::refused(error),
        }
    }

    /// `ERR_REDIRECT` to `leader`, or with none known, to the candidate
    /// this node voted for in its current term: the likeliest next leader,
    /// so that clients need not spin until the election ends. Only a
    /// follower's vote is a hint: a node standing itself has given up on
    /// whoever it voted for (the leader of its term that fell silent), and
    /// a vote for itself says nothing a client can use.
    fn redirect(&self, leader: Option<NodeId>) -> Response {
        let hint = leader.or_else(|| {
            let status = self.node.status();
            let candidate = (status.role == Role::Follower)
                .then_some(status.voted_for)
                .flatten()
                .filter(|id| *id != status.id);
            status.leader.or(candidate)
        });
        Response::Redirect {
            leader: hint
                .and_then(|id| self.client_address_of(id))
                .map(|address| address.to_string()),
        }
    }
}

/// Accepts clients until told to stop, making room for each (see
/// [`slots`]). Runs on the node's runtime, as do the connections it spawns.
async fn accept_clients(
    listener: TcpListener,
    shared: Arc<Shared>,
    slots: Arc<Slots>,
    mut stopping: watch::Receiver<bool>,
    done: mpsc::Sender<()>,
) {
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            _ = stopping.changed() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, ?backoff, "accept failed; pausing");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                continue;
            }
        };
        backoff = ACCEPT_BACKOFF_MIN;
        let Some((slot, eviction, admission)) = slots.admit() else {
            if let Some(refused) = shared.clients_full.first() {
                refused.inc();
            }
            if let Some(suppressed) = shared.warnings.clients_full.check() {
                tracing::warn!(
                    event = "limit_hit",
                    limit = "clients_max",
                    clients_max = shared.cluster.limits.clients_max,
                    suppressed,
                    "clients_max reached and no connection idle; refusing a new client"
                );
            }
            drop(stream);
            continue;
        };
        if admission == Admission::Evicted {
            if let Some(evicted) = shared.clients_full.get(1) {
                evicted.inc();
            }
            if let Some(suppressed) = shared.warnings.clients_full.check() {
                tracing::warn!(
                    event = "limit_hit",
                    limit = "clients_max",
                    clients_max = shared.cluster.limits.clients_max,
                    suppressed,
                    "clients_max reached; closing the longest-idle connection for a new client"
                );
            }
        }
        let (shared, stopping, done) = (shared.clone(), stopping.clone(), done.clone());
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let admitted = Admitted {
                slot,
                eviction,
                stopping,
            };
            let served = match &shared.client_tls {
                Some(acceptor) => {
                    client_tls::serve_client(stream, acceptor, &shared, admitted).await
                }
                None => connection::serve_client(stream, &shared, admitted).await,
            };
            if let Err(error) = served {
                tracing::debug!(%error, "client connection ended");
            }
            drop(done);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_policy_comes_from_the_clusters_limits() {
        let mut cluster = ClusterConfig::local(3, std::path::Path::new("/tmp"), 7100);
        assert_eq!(
            ServerConfig::new(cluster.clone(), NodeId(1)).sessions,
            SessionPolicy::default()
        );
        let text = cluster
            .to_toml()
            .replace("sessions_max = 10000", "sessions_max = 7")
            .replace(
                "session_idle_timeout_ms = 3600000",
                "session_idle_timeout_ms = 5000",
            );
        cluster = ClusterConfig::parse(&text).expect("the keys parse");
        let sessions = ServerConfig::new(cluster, NodeId(1)).sessions;
        assert_eq!(
            sessions,
            SessionPolicy {
                idle_timeout_ms: 5000,
                sessions_max: 7
            }
        );
    }

    #[test]
    fn limits_must_leave_room_in_a_log_entry() {
        assert!(check_limits(&Limits::default()).is_ok());
        let fitting = Limits {
            file_bytes_max: ENTRY_BYTES_MAX - 250 - COMMAND_OVERHEAD_BYTES_MAX,
            name_bytes_max: 250,
        };
        assert!(check_limits(&fitting).is_ok());
        let over = Limits {
            file_bytes_max: fitting.file_bytes_max + 1,
            ..fitting
        };
        assert!(check_limits(&over).is_err());
    }

    #[test]
    fn the_largest_command_fits_the_overhead_allowance() {
        let name = "n".repeat(250);
        let command = Command {
            timestamp_ms: u64::MAX,
            proposal: ProposalId {
                server: u64::MAX,
                sequence: u64::MAX,
            },
            session: Some(crate::protocol::SessionSeq {
                id: crate::protocol::SessionId(u64::MAX),
                seq: u64::MAX,
            }),
            request: Request::Cas {
                name: name.clone(),
                version: crate::protocol::Version(u64::MAX),
                contents: bytes::Bytes::from(vec![0u8; 1000]),
                exptime_s: u64::MAX,
            },
        };
        let overhead = command.encode().len() - 1000 - name.len();
        assert!(overhead <= COMMAND_OVERHEAD_BYTES_MAX, "{overhead}");
    }
}
