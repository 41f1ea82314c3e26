//! The userspace TCP relay on every directed link: delay, jitter, loss and
//! one-way cuts, since the machines this runs on have no `tc netem`.
//!
//! # Where the bytes go
//!
//! A node sends Raft messages only on the connection it dialed to a peer
//! (the transport has one dialing task per peer that sends, and a listener
//! that receives); the dialed peer writes back only its hello. Node `a`'s
//! dial of `b` reaches `b`'s peer address inside `a`'s namespace, where the
//! relay of the link `a -> b` listens (see [`super::topology`]); the relay
//! dials `b` across the veth of the pair and copies bytes both ways. Bytes
//! from `a` to `b` are shaped as the direction `a -> b`, bytes back (the
//! hello, snapshot acknowledgements) as `b -> a`, so a cut of `a -> b`
//! silences everything `a` says to `b` and nothing `b` says to `a`.
//!
//! # Shaping a byte stream
//!
//! TCP delivers in order, so each chunk read is given a release time of
//! its arrival plus the delay plus or minus the jitter (uniform), but
//! never before the previous chunk's. Loss is what TCP makes of it: with
//! the loss probability a chunk waits one more retransmission timeout
//! ([`RETRANSMISSION_TIMEOUT`]) and everything behind it waits too.
//!
//! # Cuts
//!
//! * A **one-way cut** of `a -> b` holds that direction's bytes in the
//!   relay (the connection stays open; at most [`CHUNKS_IN_FLIGHT`] chunks
//!   are held, then the relay stops reading and TCP pushes back on `a`)
//!   and releases them in order when it heals. Held rather than reset,
//!   because that is what a real one-way loss does to a TCP connection:
//!   the sender's bytes wait for retransmission, its connection looks
//!   alive, and only its own write timeout can tell.
//! * A **link taken down** (whole and partial partitions) is a veth set
//!   down by the nemesis; the relay closes the connections across it and
//!   refuses new ones while it is down, so that the nodes see a broken
//!   connection and redial with their backoff, and a heal takes effect at
//!   their next dial instead of after Linux's retransmission backoff (which
//!   after a 30 s cut would add up to tens of seconds more).

use super::topology::{enter_namespace, link_address, peer_port, Topology};
use anyhow::Context;
use hdrhistogram::Histogram;
use skiff_fs::workload::Rng;
use skiff_node::NodeId;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// The extra wait of a chunk that was "lost" and retransmitted: Linux's
/// minimum retransmission timeout.
pub const RETRANSMISSION_TIMEOUT: Duration = Duration::from_millis(200);
/// Chunks a direction holds (delayed or cut) before it stops reading.
pub const CHUNKS_IN_FLIGHT: usize = 256;
/// The most bytes read into one chunk.
const CHUNK_BYTES_MAX: usize = 16 << 10;
/// The largest added delay measured exactly (larger ones count as this).
const ADDED_DELAY_US_MAX: u64 = 3_600_000_000;
/// The pause after a failed accept before the next.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);
/// How long the relay waits for its dial across a link.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);

/// Delay, jitter and loss of every directed link.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Shape {
    /// Added to every chunk.
    pub delay: Duration,
    /// Each chunk's delay is drawn uniformly from `delay ± jitter`.
    pub jitter: Duration,
    /// The probability that a chunk waits one more retransmission timeout.
    pub loss: f64,
}

impl Shape {
    /// The delay of one chunk, drawn with `rng`.
    fn draw(&self, rng: &mut Rng) -> Duration {
        let jitter = self.jitter.as_micros() as u64;
        let delay = self.delay.as_micros() as u64 + rng.below(2 * jitter + 1);
        let mut wait = Duration::from_micros(delay.saturating_sub(jitter));
        let loss_per_million = (self.loss.clamp(0.0, 1.0) * 1e6) as u64;
        if rng.below(1_000_000) < loss_per_million {
            wait += RETRANSMISSION_TIMEOUT;
        }
        wait
    }
}

/// What the nemesis has done to the network, as the relays see it.
#[derive(Clone, Debug, Default)]
struct Faults {
    shape: Shape,
    /// Directed links `(from, to)` whose bytes are held.
    cut: BTreeSet<(NodeId, NodeId)>,
    /// Links `(low, high)` that are down.
    down: BTreeSet<(NodeId, NodeId)>,
}

impl Faults {
    fn is_down(&self, a: NodeId, b: NodeId) -> bool {
        self.down.contains(&(a.min(b), a.max(b)))
    }
}

/// The relays' shared controls and their measurements.
pub struct RelayControl {
    faults: watch::Sender<Faults>,
    stopping: watch::Sender<bool>,
    /// Added delay of every chunk not held by a cut, in microseconds.
    added_delay_us: Mutex<Histogram<u64>>,
    connections: AtomicU64,
}

impl RelayControl {
    fn new(shape: Shape) -> RelayControl {
        RelayControl {
            faults: watch::Sender::new(Faults {
                shape,
                ..Faults::default()
            }),
            stopping: watch::Sender::new(false),
            added_delay_us: Mutex::new(
                Histogram::new_with_bounds(1, ADDED_DELAY_US_MAX, 3).expect("valid bounds"),
            ),
            connections: AtomicU64::new(0),
        }
    }

    /// Holds (`cut == true`) or releases the bytes `from` sends to `to`.
    pub fn set_one_way_cut(&self, from: NodeId, to: NodeId, cut: bool) {
        self.faults.send_modify(|faults| {
            if cut {
                faults.cut.insert((from, to));
            } else {
                faults.cut.remove(&(from, to));
            }
        });
    }

    /// Marks the link of `a` and `b` down (closing its connections) or up.
    /// The veth itself is set by [`Topology::set_link`].
    pub fn set_link_down(&self, a: NodeId, b: NodeId, down: bool) {
        self.faults.send_modify(|faults| {
            if down {
                faults.down.insert((a.min(b), a.max(b)));
            } else {
                faults.down.remove(&(a.min(b), a.max(b)));
            }
        });
    }

    /// The added delay measured so far: chunks, mean, median, 99th
    /// percentile and maximum, in milliseconds.
    pub fn added_delay(&self) -> AddedDelay {
        let histogram = self
            .added_delay_us
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let ms = |us: u64| us as f64 / 1000.0;
        AddedDelay {
            chunks: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            median_ms: ms(histogram.value_at_quantile(0.5)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            max_ms: ms(histogram.max()),
            connections: self.connections.load(Ordering::Relaxed),
        }
    }

    fn record(&self, added: Duration) {
        let mut histogram = self
            .added_delay_us
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        histogram.saturating_record(added.as_micros() as u64);
    }
}

/// The relays' measured added delay (see [`RelayControl::added_delay`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AddedDelay {
    /// Chunks relayed and measured.
    pub chunks: u64,
    /// Mean added delay.
    pub mean_ms: f64,
    /// Median added delay.
    pub median_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Connections relayed.
    pub connections: u64,
}

/// Every relay of a run: one thread per node's namespace, serving the
/// links from that node to each other. Dropping it stops them all.
pub struct Relays {
    control: Arc<RelayControl>,
    threads: Vec<JoinHandle<()>>,
}

impl Relays {
    /// Starts the relays of every directed link of `topology`, shaped by
    /// `shape`; returns once each listens.
    pub fn start(topology: &Topology, shape: Shape) -> anyhow::Result<Relays> {
        let control = Arc::new(RelayControl::new(shape));
        let mut relays = Relays {
            control: control.clone(),
            threads: Vec::new(),
        };
        for me in topology.ids() {
            let links: Vec<Link> = (topology.ids().into_iter())
                .filter(|&peer| peer != me)
                .map(|peer| Link {
                    me,
                    peer,
                    listen: topology.peer_address(peer),
                    target: SocketAddr::from((link_address(peer, me), peer_port(peer))),
                })
                .collect();
            let (ready, listening) = std::sync::mpsc::channel();
            let path = topology.namespace_path(me);
            let control = control.clone();
            let thread = std::thread::Builder::new()
                .name(format!("relay-{me}"))
                .spawn(move || run_namespace(&path, links, control, ready))
                .context("cannot start a relay thread")?;
            relays.threads.push(thread);
            listening
                .recv()
                .context("a relay thread ended before it listened")??;
        }
        Ok(relays)
    }

    /// The controls the nemesis uses.
    pub fn control(&self) -> &Arc<RelayControl> {
        &self.control
    }
}

impl Drop for Relays {
    fn drop(&mut self) {
        self.control.stopping.send_replace(true);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

/// One directed link as its relay sees it.
#[derive(Clone, Copy, Debug)]
struct Link {
    me: NodeId,
    peer: NodeId,
    /// `peer`'s peer address, local in `me`'s namespace.
    listen: SocketAddr,
    /// `peer`'s address across the link of the pair.
    target: SocketAddr,
}

/// The body of one namespace's relay thread.
fn run_namespace(
    path: &str,
    links: Vec<Link>,
    control: Arc<RelayControl>,
    ready: std::sync::mpsc::Sender<anyhow::Result<()>>,
) {
    let runtime = match enter_namespace(path).and_then(|()| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot build the relay runtime")
    }) {
        Ok(runtime) => runtime,
        Err(error) => {
            let _ = ready.send(Err(error));
            return;
        }
    };
    runtime.block_on(async move {
        let mut listeners = Vec::new();
        for link in &links {
            match TcpListener::bind(link.listen).await {
                Ok(listener) => listeners.push((*link, listener)),
                Err(error) => {
                    let context = format!(
                        "relay {} -> {} cannot listen on {}",
                        link.me, link.peer, link.listen
                    );
                    let _ = ready.send(Err(anyhow::Error::new(error).context(context)));
                    return;
                }
            }
        }
        let _ = ready.send(Ok(()));
        let mut stopping = control.stopping.subscribe();
        let mut serving = tokio::task::JoinSet::new();
        for (link, listener) in listeners {
            serving.spawn(serve_link(link, listener, control.clone()));
        }
        let _ = stopping.wait_for(|stop| *stop).await;
    });
}

async fn serve_link(link: Link, listener: TcpListener, control: Arc<RelayControl>) {
    let mut seed = u64::from(u16::try_from(link.me.0 * 16 + link.peer.0).unwrap_or(0)) << 32;
    loop {
        let downstream = match listener.accept().await {
            Ok((downstream, _)) => downstream,
            Err(_) => {
                // Out of descriptors, most likely: let some close.
                tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                continue;
            }
        };
        seed += 1;
        tokio::spawn(relay_connection(link, downstream, control.clone(), seed));
    }
}

/// Copies one connection of `link` both ways, shaped, until either side
/// closes or the link goes down.
async fn relay_connection(
    link: Link,
    downstream: TcpStream,
    control: Arc<RelayControl>,
    seed: u64,
) {
    let mut faults = control.faults.subscribe();
    if faults.borrow().is_down(link.me, link.peer) {
        return;
    }
    let upstream = match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(link.target)).await {
        Ok(Ok(upstream)) => upstream,
        // The node sees its connection close and redials with its backoff.
        _ => return,
    };
    control.connections.fetch_add(1, Ordering::Relaxed);
    let _ = (downstream.set_nodelay(true), upstream.set_nodelay(true));
    let (down_read, down_write) = downstream.into_split();
    let (up_read, up_write) = upstream.into_split();
    let forward = pump(
        down_read,
        up_write,
        (link.me, link.peer),
        control.clone(),
        seed,
    );
    let back = pump(
        up_read,
        down_write,
        (link.peer, link.me),
        control.clone(),
        !seed,
    );
    // Both directions end for a clean close; one broken direction, or the
    // link going down, drops both sockets at once.
    tokio::select! {
        _ = async { tokio::try_join!(forward, back) } => {}
        _ = faults.wait_for(|f| f.is_down(link.me, link.peer)) => {}
    }
}

/// A chunk read and when it may be written.
struct Chunk {
    bytes: Vec<u8>,
    arrived: Instant,
    release: Instant,
}

/// A direction of a relayed connection that ended badly: the whole
/// connection is closed, so that both nodes notice and redial.
#[derive(Debug)]
struct Broken;

/// Copies `from` to `to` as the direction `(from_node, to_node)`: each
/// chunk delayed, in order, held while the direction is cut. At the end of
/// `from` the rest is delivered and `to` shut down for writing (a half
/// close travels on); a read or write error returns [`Broken`] at once.
async fn pump(
    mut from: OwnedReadHalf,
    mut to: OwnedWriteHalf,
    direction: (NodeId, NodeId),
    control: Arc<RelayControl>,
    seed: u64,
) -> Result<(), Broken> {
    let (chunks, mut queued) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    let reader_control = control.clone();
    // Owns the sender, so that the writer sees the end once it is read.
    let read = async move {
        let mut rng = Rng::for_client(seed);
        let mut previous_release = Instant::now();
        loop {
            let mut bytes = vec![0; CHUNK_BYTES_MAX];
            let read = from.read(&mut bytes).await.map_err(|_| Broken)?;
            if read == 0 {
                return Ok(());
            }
            bytes.truncate(read);
            let arrived = Instant::now();
            let shape = reader_control.faults.borrow().shape;
            let release = (arrived + shape.draw(&mut rng)).max(previous_release);
            previous_release = release;
            let chunk = Chunk {
                bytes,
                arrived,
                release,
            };
            chunks.send(chunk).await.map_err(|_| Broken)?;
        }
    };
    let write = async {
        let mut faults = control.faults.subscribe();
        while let Some(chunk) = queued.recv().await {
            tokio::time::sleep_until(chunk.release).await;
            let held = faults.borrow_and_update().cut.contains(&direction);
            if held
                && faults
                    .wait_for(|f| !f.cut.contains(&direction))
                    .await
                    .is_err()
            {
                return Err(Broken);
            }
            to.write_all(&chunk.bytes).await.map_err(|_| Broken)?;
            if !held {
                control.record(chunk.arrived.elapsed());
            }
        }
        to.shutdown().await.map_err(|_| Broken)
    };
    tokio::try_join!(read, write).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drawn_delays_stay_within_the_jitter_and_average_the_delay() {
        let shape = Shape {
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(1),
            loss: 0.0,
        };
        let mut rng = Rng::for_client(7);
        let draws: Vec<Duration> = (0..10_000).map(|_| shape.draw(&mut rng)).collect();
        let (low, high) = (Duration::from_millis(1), Duration::from_millis(3));
        assert!(draws.iter().all(|d| (low..=high).contains(d)));
        let mean = draws.iter().sum::<Duration>() / draws.len() as u32;
        assert!(
            mean.abs_diff(Duration::from_millis(2)) < Duration::from_micros(50),
            "{mean:?}"
        );
    }

    #[test]
    fn loss_adds_a_retransmission_timeout_to_about_its_share_of_chunks() {
        let shape = Shape {
            loss: 0.1,
            ..Shape::default()
        };
        let mut rng = Rng::for_client(8);
        let lost = (0..10_000)
            .filter(|_| shape.draw(&mut rng) == RETRANSMISSION_TIMEOUT)
            .count();
        assert!((900..1100).contains(&lost), "{lost}");
    }
}

#[cfg(test)]
mod pump_tests {
    use super::*;

    /// A connected pair of loopback sockets.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dialed = TcpStream::connect(listener.local_addr().unwrap());
        let (dialed, accepted) = tokio::join!(dialed, listener.accept());
        (dialed.unwrap(), accepted.unwrap().0)
    }

    fn two_ms() -> Shape {
        Shape {
            delay: Duration::from_millis(2),
            jitter: Duration::from_millis(1),
            loss: 0.0,
        }
    }

    /// Sends 50 one-byte messages through a pump shaped by `control`, each
    /// after the previous one arrived; returns the bytes received in order.
    async fn ping_through(control: Arc<RelayControl>) -> Vec<u8> {
        let (mut sender, relay_in) = pair().await;
        let (relay_out, mut receiver) = pair().await;
        let (from, _) = relay_in.into_split();
        let (_, to) = relay_out.into_split();
        let (a, b) = (NodeId(1), NodeId(2));
        tokio::spawn(pump(from, to, (a, b), control, 3));
        let mut received = Vec::new();
        for byte in 0..50u8 {
            sender.write_all(&[byte]).await.unwrap();
            let mut buffer = [0u8; 1];
            receiver.read_exact(&mut buffer).await.unwrap();
            received.push(buffer[0]);
        }
        received
    }

    #[tokio::test]
    async fn every_chunk_waits_the_delay_give_or_take_the_jitter_in_order() {
        let control = Arc::new(RelayControl::new(two_ms()));
        let received = ping_through(control.clone()).await;
        assert_eq!(received, (0..50).collect::<Vec<u8>>());
        let delay = control.added_delay();
        assert_eq!(delay.chunks, 50);
        assert!(delay.median_ms >= 1.0 && delay.median_ms < 4.0, "{delay:?}");
        assert!(delay.max_ms < 10.0, "{delay:?}");
    }

    #[tokio::test]
    async fn a_one_way_cut_holds_its_direction_only_and_releases_in_order() {
        let control = Arc::new(RelayControl::new(Shape::default()));
        let (a, b) = (NodeId(1), NodeId(2));
        let (mut node_a, relay_a) = pair().await;
        let (relay_b, mut node_b) = pair().await;
        let (a_read, a_write) = relay_a.into_split();
        let (b_read, b_write) = relay_b.into_split();
        tokio::spawn(pump(a_read, b_write, (a, b), control.clone(), 1));
        tokio::spawn(pump(b_read, a_write, (b, a), control.clone(), 2));
        control.set_one_way_cut(a, b, true);
        node_a.write_all(b"held").await.unwrap();
        node_b.write_all(b"back").await.unwrap();
        let mut buffer = [0u8; 4];
        node_a.read_exact(&mut buffer).await.unwrap();
        assert_eq!(&buffer, b"back", "the other direction flows");
        let early = tokio::time::timeout(Duration::from_millis(200), node_b.read(&mut buffer));
        assert!(early.await.is_err(), "a cut direction delivers nothing");
        node_a.write_all(b"more").await.unwrap();
        control.set_one_way_cut(a, b, false);
        let mut released = [0u8; 8];
        node_b.read_exact(&mut released).await.unwrap();
        assert_eq!(&released, b"heldmore");
    }
}
