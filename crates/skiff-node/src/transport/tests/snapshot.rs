//! Snapshot files between two transports, through a proxy that cuts or
//! holds the stream, and from fake peers that speak the stream by hand.

use super::*;
use crate::transport::wire::{SnapshotChunk, SnapshotEnd, SnapshotOffer, SnapshotResume};
use skiff_core::{InstallSnapshotReq, LogIndex, Membership, SnapshotMeta};
use std::path::Path;
use tokio::sync::oneshot;

/// The chunk size of the tests' configuration.
const CHUNK: usize = 64 << 10;

/// Waits for what a transport delivers next.
async fn next(inbox: &mut mpsc::Receiver<Inbound>) -> Inbound {
    let received = tokio::time::timeout(Duration::from_secs(30), inbox.recv()).await;
    received
        .expect("a delivery within the time limit")
        .expect("the transport is running")
}

/// Bytes that differ from offset to offset, so that a misplaced chunk shows.
fn pattern(length: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// The configuration every test snapshot carries: one with a learner and
/// an address book, so that the whole of it is seen to travel.
pub(super) fn snapshot_membership() -> Membership {
    let ids = |ids: &[u64]| ids.iter().copied().map(NodeId).collect::<Vec<_>>();
    Membership::new(ids(&[1, 2]), ids(&[5]))
        .expect("a valid configuration")
        .with_context(bytes::Bytes::from_static(b"\x01address book"))
}

/// The progress epoch every test snapshot carries.
const EPOCH: u64 = 17;

pub(super) fn install(term: u64, index: u64) -> InstallSnapshotReq {
    InstallSnapshotReq {
        term: Term(term),
        leader: NodeId(1),
        snapshot: SnapshotMeta {
            index: LogIndex(index),
            term: Term(2),
        },
        membership: snapshot_membership(),
        epoch: EPOCH,
    }
}

/// A test's files: a snapshot to send and each node's incoming directory.
pub(super) struct Files {
    dir: tempfile::TempDir,
}

impl Files {
    pub(super) fn new() -> Files {
        Files {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn incoming(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}"))
    }

    /// Writes the snapshot file `name` of `length` bytes; returns its path
    /// and bytes.
    pub(super) fn snapshot(&self, name: &str, length: usize) -> (PathBuf, Vec<u8>) {
        let path = self.dir.path().join(name);
        let bytes = pattern(length);
        std::fs::write(&path, &bytes).unwrap();
        (path, bytes)
    }

    /// `config` with this test's incoming directory for its node.
    pub(super) fn configure(&self, mut config: TransportConfig) -> TransportConfig {
        config.snapshot_incoming_dir = self.incoming(config.id.0);
        config.snapshot_chunk_bytes = CHUNK as u32;
        config
    }
}

/// The names of the files in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Asserts that node 2 delivered `req` from node 1, and holds exactly
/// `bytes` at the received path, and nothing else, at that moment.
pub(super) async fn assert_received(
    files: &Files,
    inbox: &mut mpsc::Receiver<Inbound>,
    req: InstallSnapshotReq,
    bytes: &[u8],
) {
    let snapshot = req.snapshot;
    assert_eq!(
        next(inbox).await,
        (NodeId(1), Message::InstallSnapshotReq(req))
    );
    let incoming = files.incoming(2);
    let received = received_snapshot_path(&incoming, NodeId(1), snapshot);
    assert!(
        std::fs::read(&received).unwrap() == bytes,
        "the received file differs"
    );
    assert_eq!(
        names(&incoming),
        [received.file_name().unwrap().to_str().unwrap()]
    );
}

#[tokio::test]
async fn a_large_snapshot_crosses_intact_and_is_delivered_once_in_place() {
    let files = Files::new();
    let mut pair = pair_with(|config| files.configure(config)).await;
    // Not a whole number of chunks, so that the last one is short.
    let (file, bytes) = files.snapshot("40.snap", 5 * (1 << 20) + 123);
    let req = install(3, 40);
    pair.one.send_snapshot(NodeId(2), req.clone(), file);
    assert_received(&files, &mut pair.two_inbox, req, &bytes).await;
    // The message connection is untouched.
    expect_delivery(&mut pair, 1).await;
}

/// What the proxy does to the first connection that carries more than its
/// threshold toward the node.
enum Trip {
    /// Closes it both ways.
    Cut,
    /// Stops forwarding it until the sender fires.
    Hold(oneshot::Receiver<()>),
}

/// The proxy's one trip: who to tell, and what to do.
type Tripwire = Arc<Mutex<Option<(oneshot::Sender<()>, Trip)>>>;

/// Forwards every connection to `target`; the first to carry more than
/// `threshold` bytes toward it trips `trip`, and `tripped` then fires.
fn proxy(target: SocketAddr, threshold: usize, trip: Trip) -> (SocketAddr, oneshot::Receiver<()>) {
    let (listener, address) = bound_listener();
    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    let (tripped, tripped_receiver) = oneshot::channel();
    let once = Arc::new(Mutex::new(Some((tripped, trip))));
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            tokio::spawn(forward(client, target, threshold, once.clone()));
        }
    });
    (address, tripped_receiver)
}

async fn forward(client: TcpStream, target: SocketAddr, threshold: usize, once: Tripwire) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut client_reader, mut client_writer) = client.into_split();
    let (mut server_reader, mut server_writer) = server.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_reader, &mut client_writer).await;
    });
    let mut buffer = vec![0; 1 << 16];
    let mut forwarded = 0;
    loop {
        let read = match client_reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        if server_writer.write_all(&buffer[..read]).await.is_err() {
            break;
        }
        forwarded += read;
        if forwarded > threshold {
            let armed = once.lock().unwrap().take();
            if let Some((tripped, trip)) = armed {
                match trip {
                    Trip::Cut => {
                        back.abort();
                        let _ = tripped.send(());
                        return; // dropping both halves closes both connections
                    }
                    Trip::Hold(release) => {
                        let _ = tripped.send(());
                        let _ = release.await;
                    }
                }
            }
        }
    }
    back.abort();
}

/// Node 2 listening directly; node 1 reaching it through a proxy that
/// trips `trip` past 1 MiB. Returns them and the proxy's trip signal.
async fn through_proxy(files: &Files, trip: Trip) -> (Pair, oneshot::Receiver<()>) {
    let mut tripped = None;
    let pair = pair_routed(
        |config| files.configure(config),
        |two_address| {
            let (proxy_address, signal) = proxy(two_address, 1 << 20, trip);
            tripped = Some(signal);
            proxy_address
        },
    );
    (pair, tripped.expect("node 1 routed through the proxy"))
}

#[tokio::test]
async fn a_transfer_cut_midway_is_taken_up_again_and_ends_intact() {
    let files = Files::new();
    let (mut pair, tripped) = through_proxy(&files, Trip::Cut).await;
    let (file, bytes) = files.snapshot("40.snap", 4 << 20);
    let req = install(3, 40);
    pair.one.send_snapshot(NodeId(2), req.clone(), file);
    tripped.await.expect("the proxy cut the stream");
    assert_received(&files, &mut pair.two_inbox, req, &bytes).await;
}

#[tokio::test]
async fn messages_keep_flowing_while_a_transfer_is_held_up() {
    let files = Files::new();
    let (release, held) = oneshot::channel();
    let (mut pair, tripped) = through_proxy(&files, Trip::Hold(held)).await;
    // Far more than the sockets buffer, so that the sender is still at it.
    let (file, bytes) = files.snapshot("40.snap", 16 << 20);
    let req = install(3, 40);
    pair.one.send_snapshot(NodeId(2), req.clone(), file);
    tripped.await.expect("the proxy holds the stream");
    // The transfer is stuck midway; the messages sent now arrive first.
    for term in 1..=3 {
        pair.one.send(NodeId(2), vote(term));
    }
    for term in 1..=3 {
        assert_eq!(next(&mut pair.two_inbox).await, (NodeId(1), vote(term)));
    }
    release.send(()).unwrap();
    assert_received(&files, &mut pair.two_inbox, req, &bytes).await;
    expect_delivery(&mut pair, 9).await;
}

/// A connection to node 2 that passed the handshake as node 1's snapshot stream.
async fn snapshot_stream(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let hello = Hello {
        cluster_id: CLUSTER,
        node_id: 1,
        peer_id: 2,
        address: None,
    };
    stream
        .write_all(&encoded(&Frame::SnapshotHello(hello)))
        .await
        .unwrap();
    let answer = read_frame(&mut stream, 1024).await.unwrap();
    assert!(matches!(
        wire::decode_frame(&answer).unwrap(),
        Frame::Hello(_)
    ));
    stream
}

/// Sends `frame` on a fake peer's stream.
async fn put(stream: &mut TcpStream, frame: Frame<'_>) {
    stream.write_all(&encoded(&frame)).await.unwrap();
}

/// Offers a snapshot of `length` bytes and returns the node's answer.
async fn offer(stream: &mut TcpStream, req: &InstallSnapshotReq, length: usize) -> SnapshotResume {
    let offer = SnapshotOffer {
        index: req.snapshot.index.0,
        term: req.snapshot.term.0,
        length: length as u64,
    };
    put(stream, Frame::SnapshotOffer(offer)).await;
    let answer = read_frame(stream, 1024).await.unwrap();
    match wire::decode_frame(&answer).unwrap() {
        Frame::SnapshotResume(resume) => resume,
        other => panic!("expected a resume, got {other:?}"),
    }
}

/// Sends `bytes[from..to]` in chunks of [`CHUNK`].
async fn put_chunks(stream: &mut TcpStream, bytes: &[u8], from: usize, to: usize) {
    for offset in (from..to).step_by(CHUNK) {
        let data = &bytes[offset..(offset + CHUNK).min(to)];
        let chunk = SnapshotChunk {
            offset: offset as u64,
            crc32c: crc32c::crc32c(data),
            data,
        };
        put(stream, Frame::SnapshotChunk(chunk)).await;
    }
}

fn end(req: &InstallSnapshotReq, bytes: &[u8], crc32c: u32) -> Frame<'static> {
    Frame::SnapshotEnd(SnapshotEnd {
        length: bytes.len() as u64,
        crc32c,
        term: req.term.0,
        leader: req.leader.0,
        epoch: req.epoch,
        membership: crate::transport::wire::WireMembership(req.membership.clone()),
    })
}

#[tokio::test]
async fn a_corrupt_chunk_is_refused_and_the_stream_resumes_after_the_good_ones() {
    let files = Files::new();
    let mut pair = pair_with(|config| files.configure(config)).await;
    let bytes = pattern(10 * CHUNK);
    let req = install(3, 40);
    let mut stream = snapshot_stream(pair.two_address).await;
    let resume = offer(&mut stream, &req, bytes.len()).await;
    assert_eq!((resume.offset, resume.chunk_bytes_max), (0, CHUNK as u32));
    put_chunks(&mut stream, &bytes, 0, 3 * CHUNK).await;
    let data = &bytes[3 * CHUNK..4 * CHUNK];
    let corrupt = SnapshotChunk {
        offset: 3 * CHUNK as u64,
        crc32c: crc32c::crc32c(data) ^ 1,
        data,
    };
    put(&mut stream, Frame::SnapshotChunk(corrupt)).await;
    assert!(
        read_to_close(&mut stream).await.is_empty(),
        "refused without a word"
    );
    // The node kept the three good chunks, and only those.
    let mut stream = snapshot_stream(pair.two_address).await;
    let resume = offer(&mut stream, &req, bytes.len()).await;
    assert_eq!(resume.offset, 3 * CHUNK as u64);
    assert_eq!(resume.crc32c, crc32c::crc32c(&bytes[..3 * CHUNK]));
    assert!(pair.two_inbox.try_recv().is_err(), "nothing delivered yet");
    put_chunks(&mut stream, &bytes, 3 * CHUNK, bytes.len()).await;
    put(&mut stream, end(&req, &bytes, crc32c::crc32c(&bytes))).await;
    let done = read_frame(&mut stream, 1024).await.unwrap();
    assert_eq!(wire::decode_frame(&done).unwrap(), Frame::SnapshotDone);
    assert_received(&files, &mut pair.two_inbox, req, &bytes).await;
}

#[tokio::test]
async fn a_file_failing_its_whole_checksum_is_deleted_and_not_delivered() {
    let files = Files::new();
    let mut pair = pair_with(|config| files.configure(config)).await;
    let bytes = pattern(3 * CHUNK + 7);
    let req = install(3, 40);
    let mut stream = snapshot_stream(pair.two_address).await;
    offer(&mut stream, &req, bytes.len()).await;
    put_chunks(&mut stream, &bytes, 0, bytes.len()).await;
    put(&mut stream, end(&req, &bytes, crc32c::crc32c(&bytes) ^ 1)).await;
    assert!(
        read_to_close(&mut stream).await.is_empty(),
        "no acknowledgement"
    );
    assert!(
        names(&files.incoming(2)).is_empty(),
        "the temporary file is deleted"
    );
    // The next thing node 2 delivers is a message sent after the refusal.
    expect_delivery(&mut pair, 5).await;
}

#[tokio::test]
async fn strangers_cannot_open_a_snapshot_stream_and_peers_cannot_offer_absurd_ones() {
    let files = Files::new();
    let mut pair = pair_with(|config| files.configure(config)).await;
    for (cluster_id, node_id, peer_id) in [(CLUSTER + 1, 1, 2), (CLUSTER, 7, 2), (CLUSTER, 1, 3)] {
        let hello = Hello {
            cluster_id,
            node_id,
            peer_id,
            address: None,
        };
        let mut intruder = TcpStream::connect(pair.two_address).await.unwrap();
        intruder
            .write_all(&encoded(&Frame::SnapshotHello(hello)))
            .await
            .unwrap();
        assert_generic_refusal(read_to_close(&mut intruder).await);
    }
    // A real peer offering more than the limit is closed before any answer.
    let mut stream = snapshot_stream(pair.two_address).await;
    let absurd = SnapshotOffer {
        index: 40,
        term: 2,
        length: u64::MAX,
    };
    put(&mut stream, Frame::SnapshotOffer(absurd)).await;
    assert!(read_to_close(&mut stream).await.is_empty());
    // As is one that sends a message on a snapshot stream.
    let mut stream = snapshot_stream(pair.two_address).await;
    put(
        &mut stream,
        Frame::Message(WireMessage::from_message(&vote(9))),
    )
    .await;
    assert!(read_to_close(&mut stream).await.is_empty());
    assert!(!files.incoming(2).exists() || names(&files.incoming(2)).is_empty());
    expect_delivery(&mut pair, 6).await;
    assert!(
        pair.two_inbox.try_recv().is_err(),
        "only the real message arrived"
    );
}

#[tokio::test]
async fn a_stalled_stream_is_closed_and_its_slot_freed() {
    let files = Files::new();
    let mut pair = pair_with(|config| {
        let mut config = files.configure(config);
        config.limits.snapshot_stall_timeout = Duration::from_millis(200);
        config
    })
    .await;
    let bytes = pattern(2 * CHUNK);
    let req = install(3, 40);
    let mut stream = snapshot_stream(pair.two_address).await;
    offer(&mut stream, &req, bytes.len()).await;
    put_chunks(&mut stream, &bytes, 0, CHUNK).await;
    // Silence: the node gives up on the stream.
    assert!(read_to_close(&mut stream).await.is_empty());
    // The peer comes back and picks up where it stalled.
    let mut stream = snapshot_stream(pair.two_address).await;
    let resume = offer(&mut stream, &req, bytes.len()).await;
    assert_eq!(resume.offset, CHUNK as u64);
    put_chunks(&mut stream, &bytes, CHUNK, bytes.len()).await;
    put(&mut stream, end(&req, &bytes, crc32c::crc32c(&bytes))).await;
    assert_received(&files, &mut pair.two_inbox, req, &bytes).await;
}

/// Plays node 2 for node 1's snapshot streams: accepts connections on
/// `listener` until one says `SnapshotHello`, answers it, and reads the offer.
async fn accept_snapshot_stream(listener: &TcpListener) -> (TcpStream, SnapshotOffer) {
    loop {
        let (mut stream, _) = listener.accept().await.unwrap();
        let first = read_frame(&mut stream, 1024).await.unwrap();
        let Frame::SnapshotHello(hello) = wire::decode_frame(&first).unwrap() else {
            continue; // node 1's message connection: not this test's business
        };
        let answer = Hello {
            node_id: 2,
            peer_id: 1,
            ..hello
        };
        put(&mut stream, Frame::Hello(answer)).await;
        let body = read_frame(&mut stream, 1024).await.unwrap();
        let Frame::SnapshotOffer(offer) = wire::decode_frame(&body).unwrap() else {
            panic!("expected an offer");
        };
        return (stream, offer);
    }
}

/// Reads chunks into `into` until the end frame, checking each chunk's
/// place and checksum; returns the end.
async fn take_chunks(
    stream: &mut TcpStream,
    into: &mut Vec<u8>,
    chunks_max: Option<usize>,
) -> Option<SnapshotEnd> {
    let mut chunks = 0;
    while chunks_max != Some(chunks) {
        let body = read_frame(stream, 2 * CHUNK).await.unwrap();
        match wire::decode_frame(&body).unwrap() {
            Frame::SnapshotChunk(chunk) => {
                assert_eq!(chunk.offset, into.len() as u64, "a chunk out of place");
                assert_eq!(chunk.crc32c, crc32c::crc32c(chunk.data));
                into.extend_from_slice(chunk.data);
                chunks += 1;
            }
            Frame::SnapshotEnd(end) => return Some(end),
            other => panic!("unexpected {other:?}"),
        }
    }
    None
}

#[tokio::test]
async fn a_sender_resumes_where_the_receiver_stands_and_starts_over_when_it_differs() {
    let files = Files::new();
    let ((a_listener, _), (b_listener, b)) = (bound_listener(), bound_listener());
    b_listener.set_nonblocking(true).unwrap();
    let fake_two = TcpListener::from_std(b_listener).unwrap();
    let (one_sender, _one_inbox) = mpsc::channel(16);
    let mut one =
        Transport::start(files.configure(config(1, 2, b)), a_listener, one_sender).unwrap();
    let (file, bytes) = files.snapshot("40.snap", 6 * CHUNK + 1);
    one.send_snapshot(NodeId(2), install(3, 40), file.clone());
    let resume = |offset: usize, crc32c| {
        Frame::SnapshotResume(SnapshotResume {
            offset: offset as u64,
            crc32c,
            chunk_bytes_max: CHUNK as u32,
        })
    };
    // First connection: from the start; two chunks, then the line drops.
    let (mut stream, offer) = accept_snapshot_stream(&fake_two).await;
    assert_eq!(
        (offer.index, offer.term, offer.length),
        (40, 2, bytes.len() as u64)
    );
    put(&mut stream, resume(0, 0)).await;
    let mut received = Vec::new();
    assert!(take_chunks(&mut stream, &mut received, Some(2))
        .await
        .is_none());
    drop(stream);
    // Second: a partial file that is not a prefix of the sender's.
    let (mut stream, _) = accept_snapshot_stream(&fake_two).await;
    put(
        &mut stream,
        resume(CHUNK, crc32c::crc32c(&bytes[..CHUNK]) ^ 1),
    )
    .await;
    let mut restarted = Vec::new();
    assert!(take_chunks(&mut stream, &mut restarted, Some(1))
        .await
        .is_none());
    assert!(restarted == bytes[..CHUNK], "started over at 0");
    drop(stream);
    // Third: the two good chunks held; the rest follows from there. The
    // leader asks again meanwhile, in a later term: the running transfer
    // carries on and delivers the newer request.
    let (mut stream, _) = accept_snapshot_stream(&fake_two).await;
    one.send_snapshot(NodeId(2), install(4, 40), file);
    put(&mut stream, resume(2 * CHUNK, crc32c::crc32c(&received))).await;
    let end = take_chunks(&mut stream, &mut received, None).await.unwrap();
    assert!(received == bytes, "the file arrived whole");
    assert_eq!(
        end,
        SnapshotEnd {
            length: bytes.len() as u64,
            crc32c: crc32c::crc32c(&bytes),
            term: 4,
            leader: 1,
            epoch: EPOCH,
            membership: crate::transport::wire::WireMembership(snapshot_membership()),
        }
    );
    put(&mut stream, Frame::SnapshotDone).await;
}

#[tokio::test]
async fn a_vanished_file_ends_the_transfer_and_another_snapshot_replaces_a_running_one() {
    let files = Files::new();
    let (release, held) = oneshot::channel();
    let (mut pair, tripped) = through_proxy(&files, Trip::Hold(held)).await;
    let (file, _) = files.snapshot("40.snap", 4 << 20);
    pair.one
        .send_snapshot(NodeId(2), install(3, 40), file.clone());
    tripped.await.expect("the proxy holds the stream");
    // The leader took a newer snapshot and deleted the old one: the held
    // transfer is replaced, and the new file is gone before it is read.
    std::fs::remove_file(&file).unwrap();
    pair.one.send_snapshot(NodeId(2), install(3, 50), file);
    release.send(()).unwrap();
    // A newer one still, that exists.
    let (file, bytes) = files.snapshot("60.snap", 2 * CHUNK);
    let newest = install(3, 60);
    pair.one.send_snapshot(NodeId(2), newest.clone(), file);
    assert_received(&files, &mut pair.two_inbox, newest, &bytes).await;
}
