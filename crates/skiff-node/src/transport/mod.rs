//! TCP between peers: one dialing task per peer that sends, one listening
//! task that accepts the peers' connections and receives.
//!
//! The wire format is documented in `wire`. Each idiom, where it is used:
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
//! * **A bounded number of incoming connections**
//!   ([`INCOMING_CONNECTIONS_MAX`]); extra ones are closed at once.
//! * **Bad input closes one connection.** A bad length, version, body or
//!   handshake is logged with the peer's address and the reason, and only
//!   that connection is closed.

mod connection;
pub mod wire;

pub use connection::ConnectionError;

use connection::{handshake_as_dialer, handshake_as_listener, read_frame};
use skiff_core::{Message, NodeId};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};
use wire::{Frame, Hello, WireMessage};

/// Messages queued for one peer before new ones are dropped.
pub const OUTGOING_QUEUE_MAX: usize = 4096;
/// The first wait before reconnecting to a peer.
pub const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// The longest wait before reconnecting to a peer.
pub const BACKOFF_MAX: Duration = Duration::from_millis(500);
/// Incoming connections served at once.
pub const INCOMING_CONNECTIONS_MAX: usize = 64;
/// Bytes gathered from the queue into one write.
const WRITE_BATCH_BYTES_MAX: usize = 1 << 20;
/// A write that makes no progress for this long counts as a dead connection.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message received from a peer.
pub type Inbound = (NodeId, Message);

/// Who this node is and who its peers are.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// The cluster id, checked in every handshake.
    pub cluster_id: u64,
    /// This node's id.
    pub id: NodeId,
    /// Every other member and its peer address.
    pub peers: Vec<(NodeId, SocketAddr)>,
}

/// The running transport. Dropping it stops
/// every task and closes every connection.
#[derive(Debug)]
pub struct Transport {
    queues: HashMap<NodeId, mpsc::Sender<Message>>,
    tasks: Vec<JoinHandle<()>>,
    dropped: Arc<AtomicU64>,
}

impl Transport {
    /// Starts the tasks on the current tokio runtime, accepting peers on
    /// `listener` (already bound, so that whoever bound it chose the
    /// address). Received messages go to `inbound`.
    pub fn start(
        config: TransportConfig,
        listener: std::net::TcpListener,
        inbound: mpsc::Sender<Inbound>,
    ) -> std::io::Result<Transport> {
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let mut tasks = vec![tokio::spawn(run_listener(
            listener,
            config.clone(),
            inbound,
        ))];
        let mut queues = HashMap::new();
        for &(peer, address) in &config.peers {
            let (sender, receiver) = mpsc::channel(OUTGOING_QUEUE_MAX);
            let hello = Hello {
                cluster_id: config.cluster_id,
                node_id: config.id.0,
                peer_id: peer.0,
            };
            tasks.push(tokio::spawn(run_dialer(address, hello, receiver)));
            queues.insert(peer, sender);
        }
        Ok(Transport {
            queues,
            tasks,
            dropped: Arc::default(),
        })
    }

    /// Queues `message` for `to`, or drops it when that peer's queue is full.
    /// Never waits, so it may be called from any thread.
    pub fn send(&self, to: NodeId, message: Message) {
        let Some(queue) = self.queues.get(&to) else {
            tracing::error!(%to, "no such peer; message dropped");
            return;
        };
        if queue.try_send(message).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::debug!(%to, dropped, "peer queue full; message dropped");
            }
        }
    }

    /// Messages dropped so far because a peer's queue was full.
    pub fn dropped_count(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for Transport {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Dials `address` for as long as the queue lives, sending what it holds.
async fn run_dialer(address: SocketAddr, hello: Hello, mut queue: mpsc::Receiver<Message>) {
    let mut backoff = BACKOFF_MIN;
    let mut failures = 0u64;
    loop {
        match dial(address, hello).await {
            Ok(stream) => {
                if failures > 0 {
                    tracing::info!(peer = hello.peer_id, %address, "connected to peer");
                }
                failures = 0;
                backoff = BACKOFF_MIN;
                match pump(stream, &mut queue).await {
                    Ok(()) => return, // the queue closed: the node is stopping
                    Err(e) => {
                        tracing::info!(peer = hello.peer_id, %address, reason = %e, "peer connection lost")
                    }
                }
            }
            Err(e) => {
                failures += 1;
                // The first failure of a streak is news; the rest are noise.
                if failures == 1 {
                    tracing::warn!(peer = hello.peer_id, %address, reason = %e, "cannot connect to peer; retrying with backoff");
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

async fn dial(address: SocketAddr, hello: Hello) -> Result<TcpStream, ConnectionError> {
    let mut stream =
        tokio::time::timeout(connection::HANDSHAKE_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| ConnectionError::HandshakeTimeout)??;
    stream.set_nodelay(true)?;
    handshake_as_dialer(&mut stream, hello).await?;
    Ok(stream)
}

/// Sends queued messages, gathering whatever is ready into one write.
/// Returns `Ok` when the queue closes, `Err` when the connection fails.
async fn pump(
    stream: TcpStream,
    queue: &mut mpsc::Receiver<Message>,
) -> Result<(), ConnectionError> {
    let mut writer = BufWriter::new(stream);
    let mut buffer = Vec::new();
    loop {
        let Some(first) = queue.recv().await else {
            return Ok(());
        };
        encode_message(&first, &mut buffer);
        while buffer.len() < WRITE_BATCH_BYTES_MAX {
            let Ok(next) = queue.try_recv() else { break };
            encode_message(&next, &mut buffer);
        }
        let write = async {
            writer.write_all(&buffer).await?;
            writer.flush().await
        };
        tokio::time::timeout(WRITE_TIMEOUT, write)
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "write timed out"))??;
        buffer.clear();
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

/// Accepts peer connections and serves each in its own task. Aborting this
/// task drops the `JoinSet`, which aborts every connection task too.
async fn run_listener(
    listener: TcpListener,
    config: TransportConfig,
    inbound: mpsc::Sender<Inbound>,
) {
    let config = Arc::new(config);
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, address)) if connections.len() < INCOMING_CONNECTIONS_MAX => {
                    connections.spawn(serve_incoming(stream, address, config.clone(), inbound.clone()));
                }
                Ok((_, address)) => {
                    tracing::warn!(%address, "too many peer connections; closing a new one");
                }
                Err(e) => {
                    // Accept fails when the process is out of descriptors; wait
                    // rather than spin.
                    tracing::warn!(reason = %e, "accepting a peer connection failed");
                    tokio::time::sleep(BACKOFF_MAX).await;
                }
            },
            Some(_) = connections.join_next() => {}
        }
    }
}

async fn serve_incoming(
    stream: TcpStream,
    address: SocketAddr,
    config: Arc<TransportConfig>,
    inbound: mpsc::Sender<Inbound>,
) {
    if let Err(e) = receive(stream, &config, &inbound).await {
        match e {
            ConnectionError::Io(ref io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
                tracing::debug!(%address, "peer closed its connection");
            }
            e => tracing::warn!(%address, reason = %e, "closing peer connection"),
        }
    }
}

async fn receive(
    mut stream: TcpStream,
    config: &TransportConfig,
    inbound: &mpsc::Sender<Inbound>,
) -> Result<(), ConnectionError> {
    stream.set_nodelay(true)?;
    let me = Hello {
        cluster_id: config.cluster_id,
        node_id: config.id.0,
        peer_id: 0,
    };
    let from = handshake_as_listener(&mut stream, me, |hello| admit(config, hello)).await?;
    let from = NodeId(from);
    let mut reader = tokio::io::BufReader::new(stream);
    loop {
        let body = read_frame(&mut reader).await?;
        let message = match wire::decode_frame(&body)? {
            Frame::Message(wire) => wire.into_message(&body),
            Frame::Hello(_) => return Err(ConnectionError::Unexpected("second hello")),
            Frame::Refused(_) => return Err(ConnectionError::Unexpected("refused")),
        };
        if inbound.send((from, message)).await.is_err() {
            return Ok(()); // the node is stopping
        }
    }
}

/// Whether the dialer's hello may open a connection, and if not, why.
fn admit(config: &TransportConfig, hello: &Hello) -> Result<(), String> {
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
    if !config.peers.iter().any(|(id, _)| id.0 == hello.node_id) {
        return Err(format!(
            "node {} is not a peer of node {}",
            hello.node_id, config.id
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
