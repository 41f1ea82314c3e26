//! TCP (or mutual TLS) between peers: one dialing task per peer that
//! sends, one listening task that accepts the peers' connections and
//! receives.
//!
//! The wire format is documented in `wire`, TLS in `crate::tls`. Each
//! idiom, where it is used:
//!
//! * **A bounded queue per peer, dropping when full.** [`Transport::send`]
//!   never waits: a slow or dead peer fills only its own queue, and what
//!   does not fit is dropped. Raft tolerates lost messages; the leader
//!   resends on the next heartbeat.
//! * **Reconnection with exponential backoff**, doubling from
//!   [`BACKOFF_MIN`] to [`BACKOFF_MAX`] and starting over after a success.
//! * **Backpressure on receipt.** Received messages go to the event loop
//!   through a bounded channel with `send().await`: when the loop is busy
//!   (syncing), readers wait and TCP slows the peer down.
//! * **Bounded handshakes** ([`PeerLimits`]): TLS and hello together must
//!   finish within a timeout, a frame before the hello is accepted may not
//!   exceed a small size (checked before anything is allocated), and only
//!   so many connections may be handshaking at once; past that, a new one
//!   closes the oldest still handshaking.
//! * **One slot per configured peer.** An authenticated connection from
//!   node N replaces the one N had, so a restarted peer always gets back
//!   in, and nobody else can take a slot.
//! * **Peers follow the configuration** ([`Transport::set_peers`]): the
//!   members of this node's latest configuration, with the peer addresses
//!   its address book gives. A member that appears is dialed (at once
//!   while this node is itself a member, else on the first message to it);
//!   one that goes is no longer dialed: its queue (and what it holds) is
//!   dropped, its connection and any snapshot transfer to it closed.
//! * **Members, and a bounded few it does not know yet.** A dialer is let
//!   in when its hello names this node's cluster and this node (and, with
//!   TLS, its certificate names the id it claims), and its id is a member
//!   of this node's latest configuration or its hello gives its peer
//!   address. The second case is a member added by entries this node has
//!   not received: when every member that knew this node's log was
//!   replaced while it was away, only the new ones can bring it up to date,
//!   and it must answer them before its log names them. Such an
//!   *unlisted* dialer is dialed back at the address it gave (with the
//!   connection's own IP when it gave an unspecified one); at most
//!   [`UNLISTED_MAX`] are kept, the oldest forgotten (its connections
//!   closed) to make room, and one leaves the list when the configuration
//!   names it. Nothing here makes an unlisted id safer to trust than a
//!   listed one: without TLS no id is authenticated, and with it the
//!   cluster's CA vouches for both alike. A node removed from the cluster
//!   keeps its listener, so that it answers a leader that adds it again.
//! * **Nothing told before authentication.** A refused handshake is
//!   answered with a fixed refusal; the reason is logged here, with the
//!   address.
//! * **Bad input closes one connection.** A bad length, version, body or
//!   handshake is logged with the peer's address and the reason, and only
//!   that connection is closed.
//! * **Snapshots on connections of their own** ([`Transport::send_snapshot`],
//!   see the `snapshot` module): a file streamed on the message connection
//!   would put every heartbeat behind it.

mod connection;
mod snapshot;
pub mod wire;

pub use connection::ConnectionError;

use crate::config::LimitsConfig;
use crate::metrics::{Direction, MessageKind, Metrics, SnapshotOp};
use crate::tls::PeerTls;
use connection::{handshake_as_dialer, handshake_as_listener, read_frame, BoxedStream, StreamKind};
use rustls_pki_types::CertificateDer;
use skiff_core::{InstallSnapshotReq, Message, NodeId};
use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinHandle, JoinSet};
use wire::{Frame, Hello, WireMessage, FRAME_BYTES_MAX};

/// Dialers outside this node's configuration admitted at once (see the
/// module docs); a new one makes the oldest forgotten.
pub const UNLISTED_MAX: usize = 8;

/// Messages queued for one peer before new ones are dropped.
pub const OUTGOING_QUEUE_MAX: usize = 4096;
/// The first wait before reconnecting to a peer.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait before reconnecting to a peer.
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Bytes gathered from the queue into one write.
const WRITE_BATCH_BYTES_MAX: usize = 1 << 20;
/// A write that makes no progress for this long counts as a dead connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message received from a peer.
pub type Inbound = (NodeId, Message);

/// Who this node is, who its peers are, and how they are let in.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The cluster id, checked in every handshake.
    pub cluster_id: u64,
    /// This node's id.
    pub id: NodeId,
    /// This node's peer address as the configuration gives it, sent in
    /// every hello so that a peer that does not know this node yet can
    /// answer (`None`: not sent, and such a peer refuses this node).
    pub address: Option<SocketAddr>,
    /// Every other member and its peer address, at start (see
    /// [`Transport::set_peers`] for later changes).
    pub peers: Vec<(NodeId, SocketAddr)>,
    /// Mutual TLS, or `None` for plain TCP.
    pub tls: Option<PeerTls>,
    /// Bounds on connections that have not finished their handshake.
    pub limits: PeerLimits,
    /// Where snapshots being received from peers are written
    /// (`<data_dir>/snapshots/incoming`).
    pub snapshot_incoming_dir: std::path::PathBuf,
    /// The size of one chunk of a snapshot sent to a peer.
    pub snapshot_chunk_bytes: u32,
    /// A peer that cannot be reached for this long is logged as
    /// unreachable (once, and again when it returns).
    pub unreachable_warn_after: Duration,
    /// Where messages and connections are counted.
    pub metrics: Metrics,
}

/// Where a snapshot received whole and durable from peer `from` lies until
/// the node installs or deletes it.
pub fn received_snapshot_path(
    incoming_dir: &std::path::Path,
    from: NodeId,
    snapshot: skiff_core::SnapshotMeta,
) -> std::path::PathBuf {
    incoming_dir.join(format!(
        "from-{from}-{}-{}.snap",
        snapshot.index, snapshot.term
    ))
}

/// Bounds on peer connections before their handshake completes (see
/// [`LimitsConfig`] for the keys and defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerLimits {
    /// TLS and hello together, each way.
    pub handshake_timeout: Duration,
    /// The largest frame before the handshake completes.
    pub handshake_frame_bytes_max: usize,
    /// Incoming connections handshaking at once.
    pub handshaking_max: usize,
    /// How long a snapshot stream may wait for its next frame, either way,
    /// before it counts as stalled and is closed.
    pub snapshot_stall_timeout: Duration,
    /// The largest snapshot file accepted from a peer.
    pub snapshot_bytes_max: u64,
}

/// Default of [`PeerLimits::snapshot_stall_timeout`]: long enough for a
/// receiver's fsync of a large file, short enough that a dead transfer does
/// not hold its peer's slot for long.
pub const SNAPSHOT_STALL_TIMEOUT_DEFAULT: Duration = Duration::from_secs(30);
/// Default of [`PeerLimits::snapshot_bytes_max`]: far above any snapshot
/// this project writes, far below what a length field can claim.
pub const SNAPSHOT_BYTES_MAX_DEFAULT: u64 = 64 << 30;

impl From<&LimitsConfig> for PeerLimits {
    fn from(limits: &LimitsConfig) -> PeerLimits {
        PeerLimits {
            handshake_timeout: Duration::from_millis(limits.peer_handshake_timeout_ms),
            handshake_frame_bytes_max: limits.peer_handshake_frame_bytes_max as usize,
            handshaking_max: limits.peer_handshaking_max,
            snapshot_stall_timeout: SNAPSHOT_STALL_TIMEOUT_DEFAULT,
            snapshot_bytes_max: SNAPSHOT_BYTES_MAX_DEFAULT,
        }
    }
}

impl Default for PeerLimits {
    fn default() -> PeerLimits {
        PeerLimits::from(&LimitsConfig::default())
    }
}

/// The running transport. Dropping it stops
/// every task and closes every connection.
#[derive(Debug)]
pub struct Transport {
    config: Arc<TransportConfig>,
    /// The peers that may be dialed, with their addresses.
    addresses: HashMap<NodeId, SocketAddr>,
    /// Who the listener admits, shared with it.
    admitted: Admitted,
    queues: HashMap<NodeId, mpsc::Sender<Message>>,
    /// How each peer is dialed, for snapshot streams.
    dialers: HashMap<NodeId, Arc<Dialer>>,
    /// Each dialing task, by peer.
    dialing: HashMap<NodeId, JoinHandle<()>>,
    /// The snapshot transfer to each peer, running or last run.
    snapshot_transfers: Mutex<HashMap<NodeId, snapshot::Outgoing>>,
    chunk_bytes: usize,
    /// Where transfers are spawned from, so that `send_snapshot` works
    /// from any thread.
    runtime: tokio::runtime::Handle,
    tasks: Vec<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
    metrics: Metrics,
}

/// Who the listener admits: the members of the latest configuration, and
/// the unlisted dialers it let in since (see the module docs).
#[derive(Debug, Default)]
struct Admission {
    members: HashSet<NodeId>,
    /// Unlisted dialers and the address each gave, oldest first, at most
    /// [`UNLISTED_MAX`].
    unlisted: VecDeque<(NodeId, SocketAddr)>,
}

impl Admission {
    /// The address unlisted dialer `id` gave, if it is one.
    fn unlisted_address(&self, id: NodeId) -> Option<SocketAddr> {
        let mut unlisted = self.unlisted.iter();
        unlisted.find(|(known, _)| *known == id).map(|(_, a)| *a)
    }

    /// Records unlisted dialer `id` at `address` (its newest address when
    /// it was one already). Returns the one forgotten to make room.
    fn note_unlisted(&mut self, id: NodeId, address: SocketAddr) -> Option<NodeId> {
        self.unlisted.retain(|(known, _)| *known != id);
        self.unlisted.push_back((id, address));
        if self.unlisted.len() > UNLISTED_MAX {
            return self.unlisted.pop_front().map(|(forgotten, _)| forgotten);
        }
        None
    }
}

type Admitted = Arc<RwLock<Admission>>;

impl Transport {
    /// Starts the tasks on the current tokio runtime, accepting peers on
    /// `listener` (already bound, so that whoever bound it chose the
    /// address), and dialing `config.peers`. Received messages go to
    /// `inbound`.
    pub fn start(
        config: TransportConfig,
        listener: std::net::TcpListener,
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<Transport> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let config = Arc::new(config);
        let admitted: Admitted = Arc::new(RwLock::new(Admission {
            members: config.peers.iter().map(|(id, _)| *id).collect(),
            unlisted: VecDeque::new(),
        }));
        let tasks = vec![tokio::spawn(run_listener(
            listener,
            config.clone(),
            admitted.clone(),
            inbound,
        ))];
        let mut transport = Transport {
            config: config.clone(),
            addresses: HashMap::new(),
            admitted,
            queues: HashMap::new(),
            dialers: HashMap::new(),
            dialing: HashMap::new(),
            snapshot_transfers: Mutex::default(),
            chunk_bytes: snapshot::chunk_bytes(config.snapshot_chunk_bytes),
            runtime: tokio::runtime::Handle::current(),
            tasks,
            dropped: Arc::default(),
            metrics: config.metrics.clone(),
        };
        transport.set_peers(config.peers.clone(), true);
        Ok(transport)
    }

    /// Makes `peers` (every other member of this node's latest
    /// configuration, with its peer address) the peers: they are admitted
    /// and dialed. A peer no longer among them, or at another address, is
    /// dropped: its queue, its connection, any snapshot transfer to it; so
    /// is every unlisted dialer's dialer (see the module docs), dialed again
    /// on its next message if it is still unlisted.
    /// With `dial`, every peer is dialed at once (this node is a member);
    /// without, all are dropped, and a peer is dialed only when a message
    /// goes to it (a removed node answers, and dials no one by itself).
    pub fn set_peers(&mut self, peers: Vec<(NodeId, SocketAddr)>, dial: bool) {
        let peers: HashMap<NodeId, SocketAddr> = peers
            .into_iter()
            .filter(|(id, _)| *id != self.config.id)
            .collect();
        {
            let mut admission = self
                .admitted
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            admission.members = peers.keys().copied().collect();
            admission.unlisted.retain(|(id, _)| !peers.contains_key(id));
        }
        let gone: Vec<NodeId> = self
            .dialers
            .iter()
            .filter(|(id, dialer)| {
                !dial || !dialer.listed || peers.get(id) != Some(&dialer.address)
            })
            .map(|(id, _)| *id)
            .collect();
        for peer in gone {
            self.drop_peer(peer);
        }
        self.addresses = peers;
        if dial {
            let new: Vec<(NodeId, SocketAddr)> = self
                .addresses
                .iter()
                .filter(|(id, _)| !self.dialers.contains_key(id))
                .map(|(id, address)| (*id, *address))
                .collect();
            for (peer, address) in new {
                self.dial(peer, address, true);
            }
        }
    }

    /// Starts dialing `peer` at `address`, with a queue of its own;
    /// `listed`: a member of the configuration, not an unlisted dialer.
    fn dial(&mut self, peer: NodeId, address: SocketAddr, listed: bool) -> Arc<Dialer> {
        let config = &self.config;
        let (sender, receiver) = mpsc::channel(OUTGOING_QUEUE_MAX);
        let hello = Hello {
            cluster_id: config.cluster_id,
            node_id: config.id.0,
            peer_id: peer.0,
            address: config.address,
        };
        let dialer = Arc::new(Dialer {
            address,
            listed,
            hello,
            tls: config.tls.clone(),
            limits: config.limits,
            unreachable_warn_after: config.unreachable_warn_after,
        });
        let task = self.runtime.spawn(dialer.clone().run(receiver));
        tracing::debug!(%peer, %address, "dialing a peer");
        self.dialing.insert(peer, task);
        self.queues.insert(peer, sender);
        self.dialers.insert(peer, dialer.clone());
        dialer
    }

    /// Stops dialing `peer`: drops its queue, closes its connection and
    /// stops any snapshot transfer to it.
    fn drop_peer(&mut self, peer: NodeId) {
        self.queues.remove(&peer);
        self.dialers.remove(&peer);
        if let Some(task) = self.dialing.remove(&peer) {
            task.abort();
        }
        let transfer = self
            .snapshot_transfers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&peer);
        if let Some(transfer) = transfer {
            transfer.stop();
        }
        tracing::debug!(%peer, "stopped dialing a peer");
    }

    /// The dialer of `to`, dialing it first if it is a peer (or an
    /// unlisted dialer) not dialed yet.
    fn dialer_of(&mut self, to: NodeId) -> Option<Arc<Dialer>> {
        if let Some(dialer) = self.dialers.get(&to) {
            // A member's dialer holds until `set_peers` drops it; an
            // unlisted one's only while the listener keeps that address
            // (not forgotten, not back at another address).
            if dialer.listed || self.unlisted_address(to) == Some(dialer.address) {
                return Some(dialer.clone());
            }
            self.drop_peer(to);
        }
        match self.addresses.get(&to) {
            Some(&address) => Some(self.dial(to, address, true)),
            None => {
                let address = self.unlisted_address(to)?;
                Some(self.dial(to, address, false))
            }
        }
    }

    /// The address unlisted dialer `to` gave, while the listener keeps it.
    fn unlisted_address(&self, to: NodeId) -> Option<SocketAddr> {
        let admission = self.admitted.read().unwrap_or_else(PoisonError::into_inner);
        admission.unlisted_address(to)
    }

    /// Queues `message` for `to`, or drops it when that peer's queue is
    /// full or `to` is not a peer. Never waits.
    pub fn send(&mut self, to: NodeId, message: Message) {
        if self.dialer_of(to).is_none() {
            // A node this one does not know: the sender of a message it
            // was not admitted to send, or a member removed meanwhile.
            self.metrics.message(Direction::Dropped, &message);
            tracing::debug!(%to, "not a peer; message dropped");
            return;
        }
        let Some(queue) = self.queues.get(&to) else {
            return;
        };
        let kind = MessageKind::of(&message);
        match queue.try_send(message) {
            Ok(()) => self.metrics.messages(Direction::Sent, kind),
            Err(_) => {
                // Full, or closed because the node is stopping.
                self.metrics.messages(Direction::Dropped, kind);
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped.is_power_of_two() {
                    tracing::warn!(
                        event = "limit_hit", limit = "peer_queue_full", peer = %to, dropped,
                        "peer queue full; message dropped"
                    );
                }
            }
        }
    }

    /// Streams the snapshot file `file` to `to`, whose transport delivers
    /// `req` to its node once the whole file is durable there. Never
    /// waits: the transfer runs in a task of its own, on a connection of
    /// its own, retrying with backoff and resuming where the peer stopped.
    ///
    /// While a transfer of the same snapshot to `to` runs, this only
    /// updates the `req` it will deliver (a leader may ask again in a later
    /// term); a transfer of another snapshot to `to` is replaced. A file
    /// that vanished ends the transfer quietly: the leader asks again with
    /// its newer snapshot.
    pub fn send_snapshot(&mut self, to: NodeId, req: InstallSnapshotReq, file: PathBuf) {
        let Some(dialer) = self.dialer_of(to) else {
            tracing::warn!(%to, "not a peer; snapshot not sent");
            return;
        };
        let mut transfers = self
            .snapshot_transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = transfers.get(&to) {
            if running.carries(req.snapshot) {
                running.update(req);
                return;
            }
        }
        let bytes = std::fs::metadata(&file).map_or(0, |metadata| metadata.len());
        self.metrics.snapshot(SnapshotOp::Sent, bytes);
        tracing::info!(event = "snapshot_sent", peer = %to, snapshot = %req.snapshot, bytes, "sending a snapshot to a follower");
        let transfer =
            snapshot::Outgoing::spawn(&self.runtime, dialer, req, file, self.chunk_bytes);
        if let Some(replaced) = transfers.insert(to, transfer) {
            replaced.stop();
        }
    }

    /// Messages dropped so far because a peer's queue was full.
    pub fn dropped_count(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for task in self.tasks.iter().chain(self.dialing.values()) {
            task.abort();
        }
        let transfers = self
            .snapshot_transfers
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        for (_, transfer) in transfers.drain() {
            transfer.stop();
        }
    }
}

/// How one peer is dialed.
#[derive(Debug)]
struct Dialer {
    address: SocketAddr,
    /// A member of the configuration, not an unlisted dialer.
    listed: bool,
    hello: Hello,
    tls: Option<PeerTls>,
    limits: PeerLimits,
    unreachable_warn_after: Duration,
}

impl Dialer {
    /// Dials for as long as the queue lives, sending what it holds.
    async fn run(self: Arc<Self>, mut queue: mpsc::Receiver<Message>) {
        let (peer, address) = (self.hello.peer_id, self.address);
        let mut backoff = BACKOFF_MIN;
        let mut failures = 0u64;
        let mut unsent = Unsent::default();
        // Since when dials have failed, and whether that was reported.
        let mut unreachable: Option<(std::time::Instant, bool)> = None;
        loop {
            match self.dial(StreamKind::Messages).await {
                Ok(stream) => {
                    if failures > 0 {
                        tracing::info!(peer, %address, "connected to peer");
                    }
                    if let Some((since, true)) = unreachable.take() {
                        let unreachable_ms = since.elapsed().as_millis() as u64;
                        tracing::info!(
                            event = "peer_reachable", peer, %address, unreachable_ms,
                            "peer reachable again"
                        );
                    }
                    failures = 0;
                    backoff = BACKOFF_MIN;
                    match pump(stream, &mut queue, &mut unsent).await {
                        Ok(()) => return, // the queue closed: the node is stopping
                        Err(e) => {
                            // The outage starts here, not at the first
                            // failed dial, which may take a handshake timeout.
                            unreachable = Some((std::time::Instant::now(), false));
                            tracing::info!(peer, %address, reason = %e, "peer connection lost");
                            unsent.failed();
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    // The first failure of a streak is news; the rest are noise.
                    if failures == 1 {
                        tracing::warn!(peer, %address, reason = %e, "cannot connect to peer; retrying with backoff");
                    }
                    let (since, reported) =
                        unreachable.get_or_insert((std::time::Instant::now(), false));
                    if !*reported && since.elapsed() >= self.unreachable_warn_after {
                        *reported = true;
                        let unreachable_ms = since.elapsed().as_millis() as u64;
                        tracing::warn!(
                            event = "peer_unreachable", peer, %address, unreachable_ms, reason = %e,
                            "peer unreachable for long"
                        );
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Connects, runs TLS if configured, and says hello for a stream of
    /// `kind`, all within the handshake timeout.
    async fn dial(&self, kind: StreamKind) -> Result<BoxedStream, ConnectionError> {
        let handshake = async {
            let stream = TcpStream::connect(self.address).await?;
            stream.set_nodelay(true)?;
            let mut stream: BoxedStream = match &self.tls {
                Some(tls) => Box::new(
                    tls.connector
                        .connect(NodeId(self.hello.peer_id), stream)
                        .await?,
                ),
                None => Box::new(stream),
            };
            let frame_max = self.limits.handshake_frame_bytes_max;
            handshake_as_dialer(&mut stream, self.hello, kind, frame_max).await?;
            Ok(stream)
        };
        let timeout = self.limits.handshake_timeout;
        tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| ConnectionError::HandshakeTimeout(timeout))?
    }
}

/// Sends queued messages, gathering whatever is ready into one write.
/// Returns `Ok` when the queue closes, `Err` when the connection fails.
/// The gathering buffer is the only one: a `BufWriter` on top would copy
/// every batch once more. The flush is what pushes TLS records out.
///
/// Two ways a message could be lost to a connection the peer (or a box in
/// between) already closed, both closed here:
/// * While idle, the stream is also read: the receiver never writes on it,
///   so anything readable is its end (EOF, a reset), noticed at once and
///   redialed, instead of at the next write, which would fail and take
///   its batch with it (after a partition heals, that batch is typically
///   the first vote request, and losing it costs an election timeout).
/// * A batch whose write failed stays in `unsent` and goes first on the
///   next connection, once (see [`Unsent`]).
async fn pump(
    mut writer: BoxedStream,
    queue: &mut mpsc::Receiver<Message>,
    unsent: &mut Unsent,
) -> Result<(), ConnectionError> {
    let mut probe = [0u8; 1];
    loop {
        if unsent.bytes.is_empty() {
            let first = tokio::select! {
                first = queue.recv() => first,
                read = writer.read(&mut probe) => return Err(closed_by_peer(read)),
            };
            let Some(first) = first else {
                return Ok(());
            };
            encode_message(&first, &mut unsent.bytes);
            while unsent.bytes.len() < WRITE_BATCH_BYTES_MAX {
                let Ok(next) = queue.try_recv() else { break };
                encode_message(&next, &mut unsent.bytes);
            }
        }
        let write = async {
            writer.write_all(&unsent.bytes).await?;
            writer.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))??;
        unsent.sent();
    }
}

/// The batch being written to a peer, kept across a reconnection. Raft
/// messages may arrive twice, so resending a batch the peer did receive
/// is harmless; a batch is resent once, so that one the peer refuses
/// (and closes on) cannot hold the queue up forever.
#[derive(Default)]
struct Unsent {
    bytes: Vec<u8>,
    /// Connections that failed while this batch was being written.
    failures: u8,
}

impl Unsent {
    /// The batch was written: the buffer is reused for the next one.
    fn sent(&mut self) {
        self.bytes.clear();
        self.failures = 0;
    }

    /// The connection failed: keep the batch for the next one, once.
    fn failed(&mut self) {
        if self.bytes.is_empty() {
            return;
        }
        self.failures += 1;
        if self.failures > 1 {
            self.sent();
        }
    }
}

/// What reading a message stream, which the receiver never writes on,
/// tells about it: the connection has ended.
fn closed_by_peer(read: std::io::Result<usize>) -> ConnectionError {
    match read {
        Ok(0) => {
            std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed by the peer").into()
        }
        Ok(_) => ConnectionError::Unexpected("data on a send-only stream"),
        Err(e) => e.into(),
    }
}

fn encode_message(message: &Message, buffer: &mut Vec<u8>) {
    let frame = Frame::Message(WireMessage::from_message(message));
    if let Err(e) = wire::encode_frame(&frame, buffer) {
        // Entry sizes are limited on submission, so this is our own bug;
        // dropping the message keeps the node alive and Raft copes.
        tracing::error!(reason = %e, "cannot encode message; dropped");
    }
}

/// Accepts peer connections: each handshakes in a task of its own, at
/// most [`PeerLimits::handshaking_max`] at once (a new one closes the
/// oldest still handshaking); an authenticated one then
/// takes its node's slot, closing the connection that held it. A node has
/// two slots: one for its messages, one for its snapshot stream, so that a
/// peer has at most one transfer coming in. Aborting this task drops both
/// `JoinSet`s, which aborts every connection task too.
async fn run_listener(
    listener: TcpListener,
    config: Arc<TransportConfig>,
    admitted: Admitted,
    inbound: mpsc::Sender<Inbound>,
) {
    let mut handshaking = JoinSet::new();
    // The handshakes in the order they began, so the oldest can make room.
    let mut handshake_order: VecDeque<AbortHandle> = VecDeque::new();
    let mut established = JoinSet::new();
    let mut slots: HashMap<(NodeId, StreamKind), AbortHandle> = HashMap::new();
    let mut evicted = 0u64;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, address)) => {
                    handshake_order.retain(|handshake| !handshake.is_finished());
                    if handshake_order.len() >= config.limits.handshaking_max {
                        // Make room by closing the oldest handshake rather than
                        // the new one: a real peer completes its handshake in
                        // moments, so connections that sit idle to fill the
                        // slots keep nobody out unless they arrive faster than
                        // a handshake takes.
                        if let Some(oldest) = handshake_order.pop_front() {
                            oldest.abort();
                        }
                        evicted += 1;
                        config.metrics.peer_connection_refused("handshaking_max");
                        // Under a flood, one line per doubling rather than one per connection.
                        if evicted.is_power_of_two() {
                            tracing::warn!(event = "limit_hit", limit = "peer_handshaking_max", %address, evicted, "too many peer connections handshaking; closed the oldest");
                        }
                    }
                    let handshake = handshaking.spawn(handshake_incoming(stream, address, config.clone(), admitted.clone()));
                    handshake_order.push_back(handshake);
                }
                Err(e) => {
                    // Accept fails when the process is out of descriptors; wait
                    // rather than spin.
                    tracing::warn!(reason = %e, "accepting a peer connection failed");
                    tokio::time::sleep(BACKOFF_MAX).await;
                }
            },
            Some(done) = handshaking.join_next() => {
                if let Ok(Some((from, kind, stream, address))) = done {
                    let forgotten = note_if_unlisted(&admitted, from, address);
                    if let Some(forgotten) = forgotten {
                        for kind in [StreamKind::Messages, StreamKind::Snapshot] {
                            if let Some(slot) = slots.remove(&(forgotten.id, kind)) {
                                slot.abort();
                            }
                        }
                    }
                    let from = from.id;
                    let receiver = match kind {
                        StreamKind::Messages => established.spawn(receive(
                            from,
                            stream,
                            address,
                            inbound.clone(),
                            config.metrics.clone(),
                        )),
                        StreamKind::Snapshot => established.spawn(snapshot::receive(
                            snapshot::Incoming { from, address, config: config.clone() },
                            stream,
                            inbound.clone(),
                        )),
                    };
                    if let Some(old) = slots.insert((from, kind), receiver) {
                        old.abort();
                        tracing::debug!(%from, %address, ?kind, "a new connection from the peer replaces its old one");
                    }
                }
            },
            Some(_) = established.join_next() => {}
        }
    }
}

/// An authenticated dialer: its id, and the peer address its hello gave.
#[derive(Clone, Copy, Debug)]
struct Dialed {
    id: NodeId,
    address: Option<SocketAddr>,
}

/// Records `from`, dialing from `connection`, as an unlisted dialer when
/// it is not a member (see the module docs). Returns the unlisted dialer
/// forgotten to make room, whose connections must close.
fn note_if_unlisted(admitted: &Admitted, from: Dialed, connection: SocketAddr) -> Option<Dialed> {
    let mut admission = admitted.write().unwrap_or_else(PoisonError::into_inner);
    if admission.members.contains(&from.id) {
        return None;
    }
    // Admitted without being a member, so its hello gave an address.
    let mut address = from.address?;
    if address.ip().is_unspecified() {
        address.set_ip(connection.ip());
    }
    if admission.unlisted_address(from.id) != Some(address) {
        tracing::info!(
            peer = %from.id, %address,
            "admitted a node this one's configuration does not name (yet): a member added \
             by entries this node has not received, answered at the address it gave"
        );
    }
    let forgotten = admission.note_unlisted(from.id, address)?;
    tracing::warn!(
        event = "limit_hit", limit = "unlisted_peers", peer = %forgotten, kept = UNLISTED_MAX,
        "too many nodes outside the configuration dialed this one; forgot the oldest"
    );
    Some(Dialed {
        id: forgotten,
        address: None,
    })
}

/// Authenticates an incoming connection within the handshake timeout.
/// Returns the dialer, what the connection carries and the stream, or
/// `None` after logging why not.
async fn handshake_incoming(
    stream: TcpStream,
    address: SocketAddr,
    config: Arc<TransportConfig>,
    admitted: Admitted,
) -> Option<(Dialed, StreamKind, BoxedStream, SocketAddr)> {
    let timeout = config.limits.handshake_timeout;
    let outcome = tokio::time::timeout(timeout, authenticate(stream, &config, &admitted))
        .await
        .unwrap_or(Err(ConnectionError::HandshakeTimeout(timeout)));
    match outcome {
        Ok((from, kind, stream)) => Some((from, kind, stream, address)),
        Err(e) => {
            config.metrics.peer_connection_refused("handshake");
            log_closed(address, &e);
            None
        }
    }
}

/// TLS (when configured), then the hello, checked by [`admit`].
async fn authenticate(
    stream: TcpStream,
    config: &TransportConfig,
    admitted: &Admitted,
) -> Result<(Dialed, StreamKind, BoxedStream), ConnectionError> {
    stream.set_nodelay(true)?;
    let (mut stream, certificate): (BoxedStream, _) = match &config.tls {
        Some(tls) => {
            let (stream, certificate) = tls.acceptor.accept(stream).await?;
            (Box::new(stream), Some(certificate))
        }
        None => (Box::new(stream), None),
    };
    let me = Hello {
        cluster_id: config.cluster_id,
        node_id: config.id.0,
        peer_id: 0,
        address: None,
    };
    let frame_max = config.limits.handshake_frame_bytes_max;
    let (hello, kind) = handshake_as_listener(&mut stream, me, frame_max, |hello| {
        let admitted = admitted.read().unwrap_or_else(PoisonError::into_inner);
        admit(config, &admitted.members, certificate.as_ref(), hello)
    })
    .await?;
    let from = Dialed {
        id: NodeId(hello.node_id),
        address: hello.address,
    };
    Ok((from, kind, stream))
}

fn log_closed(address: SocketAddr, error: &ConnectionError) {
    match error {
        ConnectionError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            tracing::debug!(%address, "peer closed its connection");
        }
        e => tracing::warn!(%address, reason = %e, "closing peer connection"),
    }
}

/// Passes the messages of an authenticated connection to the event loop.
async fn receive(
    from: NodeId,
    stream: BoxedStream,
    address: SocketAddr,
    inbound: mpsc::Sender<Inbound>,
    metrics: Metrics,
) {
    let _open = OpenConnection::new(metrics);
    let mut reader = tokio::io::BufReader::new(stream);
    let outcome = async {
        loop {
            let body = read_frame(&mut reader, FRAME_BYTES_MAX).await?;
            let message = match wire::decode_frame(&body)? {
                Frame::Message(wire) => wire.into_message(&body),
                other => return Err(ConnectionError::Unexpected(other.kind())),
            };
            if inbound.send((from, message)).await.is_err() {
                return Ok(()); // the node is stopping
            }
        }
    };
    if let Err(e) = outcome.await {
        log_closed(address, &e);
    }
}

/// Counts an established peer connection open for as long as it lives,
/// however its task ends (a replaced connection's task is aborted).
struct OpenConnection(Metrics);

impl OpenConnection {
    fn new(metrics: Metrics) -> OpenConnection {
        metrics.peer_connections(1);
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.peer_connections(-1);
    }
}

/// Whether the dialer's hello may open a connection, and if not, why (for
/// our log only): a member of `members`, or a node that gave its address
/// (see the module docs). With TLS, the dialer's certificate must name the
/// node the hello claims to be.
fn admit(
    config: &TransportConfig,
    members: &HashSet<NodeId>,
    certificate: Option<&CertificateDer<'_>>,
    hello: &Hello,
) -> Result<(), String> {
    if hello.cluster_id != config.cluster_id {
        return Err(format!(
            "cluster {} is not this node's cluster {}",
            hello.cluster_id, config.cluster_id
        ));
    }
    if hello.peer_id != config.id.0 {
        return Err(format!(
            "this is node {}, not node {}",
            config.id, hello.peer_id
        ));
    }
    if hello.node_id == config.id.0 {
        return Err(format!("the hello claims to be this node, {}", config.id));
    }
    if !members.contains(&NodeId(hello.node_id)) && hello.address.is_none() {
        return Err(format!(
            "node {} is not a peer of node {} and gave no address",
            hello.node_id, config.id
        ));
    }
    if let Some(certificate) = certificate {
        if !crate::tls::certificate_names_node(certificate, NodeId(hello.node_id)) {
            return Err(format!(
                "the hello claims node {} but the certificate does not name {}",
                hello.node_id,
                crate::tls::node_name(NodeId(hello.node_id))
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
