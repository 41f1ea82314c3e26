//! Two transports on loopback, and peers that misbehave.

use super::*;
use bytes::Bytes;
use skiff_core::{Term, VoteResp};
use std::time::Instant;
use tokio::io::AsyncReadExt;

/// A listener on a free loopback port, kept bound until a transport (or the
/// test) takes it, so that nothing else can take the port meanwhile.
fn bound_listener() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// Node `id` of cluster 5, listening on `listen`, whose one peer is `peer`.
fn config(id: u64, peer: u64, peer_address: SocketAddr) -> TransportConfig {
    TransportConfig {
        cluster_id: 5,
        id: NodeId(id),
        peers: vec![(NodeId(peer), peer_address)],
    }
}

fn vote(term: u64) -> Message {
    Message::VoteResp(VoteResp {
        term: Term(term),
        granted: true,
    })
}

struct Pair {
    one: Transport,
    two: Transport,
    two_address: SocketAddr,
    one_inbox: mpsc::Receiver<Inbound>,
    two_inbox: mpsc::Receiver<Inbound>,
}

async fn pair() -> Pair {
    let ((a_listener, a), (b_listener, b)) = (bound_listener(), bound_listener());
    let (one_sender, one_inbox) = mpsc::channel(16);
    let (two_sender, two_inbox) = mpsc::channel(16);
    let one = Transport::start(config(1, 2, b), a_listener, one_sender).unwrap();
    let two = Transport::start(config(2, 1, a), b_listener, two_sender).unwrap();
    Pair {
        one,
        two,
        two_address: b,
        one_inbox,
        two_inbox,
    }
}

async fn expect_delivery(pair: &mut Pair, term: u64) {
    pair.one.send(NodeId(2), vote(term));
    let received = tokio::time::timeout(Duration::from_secs(10), pair.two_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(1), vote(term))));
}

/// Reads until the node closes the connection, returning what it sent.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    read.expect("the node closes the connection").ok();
    answer
}

#[tokio::test]
async fn messages_flow_both_ways() {
    let mut pair = pair().await;
    expect_delivery(&mut pair, 1).await;
    pair.two.send(NodeId(1), vote(2));
    let received = tokio::time::timeout(Duration::from_secs(10), pair.one_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(2), vote(2))));
}

#[tokio::test]
async fn garbage_closes_only_its_own_connection() {
    let mut pair = pair().await;
    expect_delivery(&mut pair, 1).await;
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[0, 0, 0, 2, 9, 9][..],
        &[0xff; 64][..],
    ] {
        let mut intruder = TcpStream::connect(pair.two_address).await.unwrap();
        intruder.write_all(garbage).await.unwrap();
        read_to_close(&mut intruder).await;
    }
    expect_delivery(&mut pair, 2).await;
}

#[tokio::test]
async fn a_foreign_cluster_or_unknown_node_is_refused_with_a_reason() {
    let mut pair = pair().await;
    let hellos = [
        (
            Hello {
                cluster_id: 6,
                node_id: 1,
                peer_id: 2,
            },
            "cluster 6 is not this node's cluster 5",
        ),
        (
            Hello {
                cluster_id: 5,
                node_id: 7,
                peer_id: 2,
            },
            "node 7 is not a peer of node 2",
        ),
        (
            Hello {
                cluster_id: 5,
                node_id: 1,
                peer_id: 3,
            },
            "this is node 2, not node 3",
        ),
    ];
    for (hello, reason) in hellos {
        let mut intruder = TcpStream::connect(pair.two_address).await.unwrap();
        let mut out = Vec::new();
        wire::encode_frame(&Frame::Hello(hello), &mut out).unwrap();
        intruder.write_all(&out).await.unwrap();
        let answer = Bytes::from(read_to_close(&mut intruder).await);
        let body = answer.slice(4..);
        let frame = wire::decode_frame(&body).unwrap();
        assert_eq!(frame, Frame::Refused(reason.to_string()));
    }
    expect_delivery(&mut pair, 3).await;
}

#[tokio::test]
async fn a_message_before_the_handshake_is_refused() {
    let mut pair = pair().await;
    let mut intruder = TcpStream::connect(pair.two_address).await.unwrap();
    let message = vote(9);
    let mut out = Vec::new();
    wire::encode_frame(
        &Frame::Message(WireMessage::from_message(&message)),
        &mut out,
    )
    .unwrap();
    intruder.write_all(&out).await.unwrap();
    assert!(read_to_close(&mut intruder).await.is_empty());
    expect_delivery(&mut pair, 4).await;
}

#[tokio::test]
async fn dials_back_off_until_a_late_peer_starts_and_then_deliver() {
    let ((a_listener, a), (b_listener, b)) = (bound_listener(), bound_listener());
    let (one_sender, _one_inbox) = mpsc::channel(16);
    let one = Transport::start(config(1, 2, b), a_listener, one_sender).unwrap();
    // Sent while the peer is down: it must wait in the queue, not be lost.
    one.send(NodeId(2), vote(1));
    // Until the peer starts, its port accepts each dial and closes it at
    // once, so every handshake fails and node 1 must dial again.
    b_listener.set_nonblocking(true).unwrap();
    let b_listener = TcpListener::from_std(b_listener).unwrap();
    let mut dialed_at = Vec::new();
    for _ in 0..4 {
        let accepted = tokio::time::timeout(Duration::from_secs(10), b_listener.accept()).await;
        let (stream, _) = accepted.expect("node 1 dials again").unwrap();
        dialed_at.push(Instant::now());
        drop(stream);
    }
    // A failure is seen only after the close, so each gap holds the whole
    // backoff, which doubles from BACKOFF_MIN.
    for (retry, dials) in dialed_at.windows(2).enumerate() {
        let backoff = (BACKOFF_MIN * 2u32.pow(retry as u32)).min(BACKOFF_MAX);
        let gap = dials[1] - dials[0];
        assert!(
            gap >= backoff,
            "retry {retry} after {gap:?}, before its backoff {backoff:?}"
        );
    }
    let (two_sender, mut two_inbox) = mpsc::channel(16);
    let b_listener = b_listener.into_std().unwrap();
    let _two = Transport::start(config(2, 1, a), b_listener, two_sender).unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), two_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(1), vote(1))));
}

#[tokio::test]
async fn a_full_queue_drops_instead_of_waiting() {
    let ((a_listener, _), (_silent_listener, b)) = (bound_listener(), bound_listener());
    let (sender, _inbox) = mpsc::channel(16);
    // The peer's port is bound but nobody accepts: the handshake hangs and
    // nothing leaves the queue.
    let one = Transport::start(config(1, 2, b), a_listener, sender).unwrap();
    for term in 0..(OUTGOING_QUEUE_MAX as u64 + 10) {
        one.send(NodeId(2), vote(term));
    }
    assert!(one.dropped_count() >= 10, "dropped {}", one.dropped_count());
}
