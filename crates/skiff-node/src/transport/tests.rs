//! Two transports on loopback, and peers that misbehave.

use super::*;
use skiff_core::{Term, VoteResp};
use std::time::Instant;
use tokio::io::AsyncReadExt;

mod snapshot;
mod tls;

/// A listener on a free loopback port, kept bound until a transport (or the
/// test) takes it, so that nothing else can take the port meanwhile.
fn bound_listener() -> (std::net::TcpListener, SocketAddr) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    (listener, address)
}

/// The cluster id of the tests: distinctive bytes, to look for in answers.
const CLUSTER: u64 = 0x5eed_c0de_1234;

/// Node `id` of cluster [`CLUSTER`] over plain TCP, whose one peer is `peer`.
fn config(id: u64, peer: u64, peer_address: SocketAddr) -> TransportConfig {
    TransportConfig {
        cluster_id: CLUSTER,
        id: NodeId(id),
        address: None,
        peers: vec![(NodeId(peer), peer_address)],
        tls: None,
        limits: PeerLimits::default(),
        snapshot_incoming_dir: std::env::temp_dir().join(format!("skiff-transport-test-{id}")),
        snapshot_chunk_bytes: 64 << 10,
        unreachable_warn_after: Duration::from_secs(3),
        metrics: crate::metrics::Metrics::enabled(),
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
    one_address: SocketAddr,
    two_address: SocketAddr,
    one_inbox: mpsc::Receiver<Inbound>,
    two_inbox: mpsc::Receiver<Inbound>,
}

async fn pair() -> Pair {
    pair_with(|config| config).await
}

/// Two transports whose configurations `change` adjusts.
async fn pair_with(change: impl Fn(TransportConfig) -> TransportConfig) -> Pair {
    pair_routed(change, |two_address| two_address)
}

/// Two transports whose configurations `change` adjusts, node 1 dialing
/// node 2 at the address `route` gives for node 2's own.
fn pair_routed(
    change: impl Fn(TransportConfig) -> TransportConfig,
    route: impl FnOnce(SocketAddr) -> SocketAddr,
) -> Pair {
    let ((a_listener, a), (b_listener, b)) = (bound_listener(), bound_listener());
    let (one_sender, one_inbox) = mpsc::channel(16);
    let (two_sender, two_inbox) = mpsc::channel(16);
    let one = Transport::start(change(config(1, 2, route(b))), a_listener, one_sender).unwrap();
    let two = Transport::start(change(config(2, 1, a)), b_listener, two_sender).unwrap();
    Pair {
        one,
        two,
        one_address: a,
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
async fn read_to_close<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Vec<u8> {
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

fn encoded(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    wire::encode_frame(frame, &mut out).unwrap();
    out
}

fn hello(cluster_id: u64, node_id: u64, peer_id: u64) -> Vec<u8> {
    encoded(&Frame::Hello(Hello {
        cluster_id,
        node_id,
        peer_id,
        address: None,
    }))
}

/// The cluster id as the wire encodes it (a postcard varint).
fn cluster_id_on_the_wire() -> Vec<u8> {
    postcard::to_stdvec(&CLUSTER).unwrap()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Asserts that `answer` is exactly the generic refusal.
fn assert_generic_refusal(answer: Vec<u8>) {
    assert_eq!(answer, encoded(&Frame::Refused(wire::REFUSAL.into())));
    assert!(!contains(&answer, &cluster_id_on_the_wire()));
}

#[tokio::test]
async fn a_foreign_cluster_or_unknown_node_is_refused_without_a_word_about_the_cluster() {
    let mut pair = pair().await;
    for hello in [
        hello(CLUSTER + 1, 1, 2), // another cluster
        hello(CLUSTER, 7, 2),     // not a member
        hello(CLUSTER, 1, 3),     // meant for another node
    ] {
        let mut intruder = TcpStream::connect(pair.two_address).await.unwrap();
        intruder.write_all(&hello).await.unwrap();
        assert_generic_refusal(read_to_close(&mut intruder).await);
    }
    expect_delivery(&mut pair, 3).await;
    assert!(
        pair.two_inbox.try_recv().is_err(),
        "only the real peer's message arrived"
    );
}

#[tokio::test]
async fn peers_follow_the_configuration_a_member_is_admitted_and_a_removed_one_is_not() {
    let mut pair = pair().await;
    expect_delivery(&mut pair, 1).await;
    // Node 7 appears in node 2's configuration: it is admitted, and node 2
    // dials it at the address the configuration gives.
    let (seven_listener, seven_address) = bound_listener();
    pair.two.set_peers(
        vec![(NodeId(1), pair.one_address), (NodeId(7), seven_address)],
        true,
    );
    let mut seven = TcpStream::connect(pair.two_address).await.unwrap();
    seven.write_all(&hello(CLUSTER, 7, 2)).await.unwrap();
    let mut answer = [0; 64];
    assert!(
        seven.read(&mut answer).await.unwrap() > 0,
        "the hello is answered"
    );
    let seven_listener = tokio::net::TcpListener::from_std({
        seven_listener.set_nonblocking(true).unwrap();
        seven_listener
    })
    .unwrap();
    let (_dialed, _) = tokio::time::timeout(Duration::from_secs(10), seven_listener.accept())
        .await
        .expect("node 2 dials the new member")
        .unwrap();
    // Node 7 removed: new connections claiming it are refused, and
    // nothing is queued for it any more.
    pair.two
        .set_peers(vec![(NodeId(1), pair.one_address)], true);
    let mut removed = TcpStream::connect(pair.two_address).await.unwrap();
    removed.write_all(&hello(CLUSTER, 7, 2)).await.unwrap();
    assert_generic_refusal(read_to_close(&mut removed).await);
    assert!(!pair.two.queues.contains_key(&NodeId(7)));
    pair.two.send(NodeId(7), vote(5));
    // A node that is no member itself dials no one until it has something
    // to send: node 1 drops its connection to node 2, and dials again for
    // the next message.
    pair.one
        .set_peers(vec![(NodeId(2), pair.two_address)], false);
    assert!(pair.one.queues.is_empty(), "no dialing without a message");
    expect_delivery(&mut pair, 2).await;
}

/// A hello from node `node_id` that gives `address` as its own.
fn hello_with_address(node_id: u64, peer_id: u64, address: SocketAddr) -> Vec<u8> {
    encoded(&Frame::Hello(Hello {
        cluster_id: CLUSTER,
        node_id,
        peer_id,
        address: Some(address),
    }))
}

/// Accepts the next connection on `listener` and returns the hello on it.
async fn accept_hello(listener: &tokio::net::TcpListener) -> (TcpStream, Hello) {
    let accepted = tokio::time::timeout(Duration::from_secs(10), listener.accept());
    let (mut stream, _) = accepted.await.expect("dialed").unwrap();
    let body = read_frame(&mut stream, FRAME_BYTES_MAX).await.unwrap();
    let Frame::Hello(hello) = wire::decode_frame(&body).unwrap() else {
        panic!("not a hello")
    };
    (stream, hello)
}

#[tokio::test]
async fn a_dialer_the_configuration_does_not_name_is_answered_at_the_address_it_gave() {
    let mut pair = pair().await;
    expect_delivery(&mut pair, 1).await;
    // Node 9 was added by entries node 2 has not received. It dials node 2
    // with its address (an unspecified IP: the connection's own is used).
    let listener = |(listener, address): (std::net::TcpListener, SocketAddr)| {
        listener.set_nonblocking(true).unwrap();
        (
            tokio::net::TcpListener::from_std(listener).unwrap(),
            address,
        )
    };
    let (nine_listener, nine_address) = listener(bound_listener());
    let given = SocketAddr::new([0, 0, 0, 0].into(), nine_address.port());
    let mut nine = TcpStream::connect(pair.two_address).await.unwrap();
    nine.write_all(&hello_with_address(9, 2, given))
        .await
        .unwrap();
    let answer = read_frame(&mut nine, FRAME_BYTES_MAX).await.unwrap();
    assert!(matches!(
        wire::decode_frame(&answer).unwrap(),
        Frame::Hello(_)
    ));
    nine.write_all(&encoded(&Frame::Message(WireMessage::from_message(&vote(
        7,
    )))))
    .await
    .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), pair.two_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(9), vote(7))));
    // Node 2's answer goes to node 9 at the address it gave.
    pair.two.send(NodeId(9), vote(8));
    let (mut dialed, hello) = accept_hello(&nine_listener).await;
    assert_eq!((hello.node_id, hello.peer_id), (2, 9));
    dialed
        .write_all(&encoded(&Frame::Hello(Hello {
            cluster_id: CLUSTER,
            node_id: 9,
            peer_id: 2,
            address: None,
        })))
        .await
        .unwrap();
    let body = read_frame(&mut dialed, FRAME_BYTES_MAX).await.unwrap();
    let Frame::Message(message) = wire::decode_frame(&body).unwrap() else {
        panic!("not a message")
    };
    assert_eq!(message.into_message(&body), vote(8));

    // At most UNLISTED_MAX are kept: as many more make node 9 forgotten,
    // its connection closed, and nothing more sent to it.
    let mut others = Vec::new();
    for id in 100..100 + UNLISTED_MAX as u64 {
        let mut other = TcpStream::connect(pair.two_address).await.unwrap();
        other
            .write_all(&hello_with_address(id, 2, given))
            .await
            .unwrap();
        read_frame(&mut other, FRAME_BYTES_MAX).await.unwrap();
        others.push(other);
    }
    assert!(
        read_to_close(&mut nine).await.is_empty(),
        "node 9's connection closes"
    );
    pair.two.send(NodeId(9), vote(9));
    assert!(
        !pair.two.queues.contains_key(&NodeId(9)),
        "node 9 is no longer dialed"
    );
    // Node 9 named by the configuration is a peer like any other.
    pair.two.set_peers(
        vec![(NodeId(1), pair.one_address), (NodeId(9), nine_address)],
        true,
    );
    let (_dialed, hello) = accept_hello(&nine_listener).await;
    assert_eq!((hello.node_id, hello.address), (2, None));
    expect_delivery(&mut pair, 10).await;
}

#[tokio::test]
async fn a_new_connection_from_a_peer_replaces_its_old_one() {
    let mut pair = pair().await;
    expect_delivery(&mut pair, 1).await;
    // Node 1's own connection holds its slot; two more claiming node 1
    // each take the slot in turn, and the one replaced is closed.
    let mut first = TcpStream::connect(pair.two_address).await.unwrap();
    first.write_all(&hello(CLUSTER, 1, 2)).await.unwrap();
    let mut answer = [0; 64];
    let read = first.read(&mut answer).await.unwrap();
    assert!(read > 0, "the hello is answered");
    let mut second = TcpStream::connect(pair.two_address).await.unwrap();
    second.write_all(&hello(CLUSTER, 1, 2)).await.unwrap();
    let rest = read_to_close(&mut first).await;
    assert!(rest.is_empty(), "nothing more on the replaced connection");
    second
        .write_all(&encoded(&Frame::Message(WireMessage::from_message(&vote(
            9,
        )))))
        .await
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), pair.two_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(1), vote(9))));
}

#[tokio::test]
async fn a_connection_closed_by_the_peer_while_idle_is_redialed_before_anything_is_lost() {
    let mut pair = pair().await;
    expect_delivery(&mut pair, 1).await;
    // A stranger claiming node 1 takes its slot: node 2 closes node 1's
    // connection while node 1 has nothing to send.
    let mut forged = TcpStream::connect(pair.two_address).await.unwrap();
    forged.write_all(&hello(CLUSTER, 1, 2)).await.unwrap();
    let mut answer = [0; 64];
    assert!(
        forged.read(&mut answer).await.unwrap() > 0,
        "the hello is answered"
    );
    // Node 1 notices the close without writing, and its new connection
    // takes the slot back, closing the stranger's.
    let rest = read_to_close(&mut forged).await;
    assert!(rest.is_empty(), "nothing more on the replaced connection");
    // So the next message goes out on a live connection, not into the
    // closed one, where it would have been lost.
    expect_delivery(&mut pair, 2).await;
}

#[tokio::test]
async fn a_large_frame_before_the_handshake_is_refused_unread() {
    // A long timeout: closing before it proves that the length was judged
    // from the prefix alone, not after waiting for (and holding) 8 MiB.
    let pair = pair_with(|mut config| {
        config.limits.handshake_timeout = Duration::from_secs(3600);
        config
    })
    .await;
    let mut intruder = TcpStream::connect(pair.two_address).await.unwrap();
    let announced = (FRAME_BYTES_MAX as u32).to_be_bytes();
    intruder.write_all(&announced).await.unwrap();
    intruder
        .write_all(&[wire::WIRE_VERSION, 0, 0])
        .await
        .unwrap();
    assert!(read_to_close(&mut intruder).await.is_empty());
}

#[tokio::test]
async fn idle_handshakers_do_not_keep_a_real_peer_out() {
    let ((a_listener, a), (b_listener, b)) = (bound_listener(), bound_listener());
    // A timeout that never fires in the test: only making room can let the
    // real peer in.
    let limits = PeerLimits {
        handshake_timeout: Duration::from_secs(3600),
        ..PeerLimits::default()
    };
    let (two_sender, mut two_inbox) = mpsc::channel(16);
    let two_config = TransportConfig {
        limits,
        ..config(2, 1, a)
    };
    let _two = Transport::start(two_config, b_listener, two_sender).unwrap();
    let mut idle = Vec::new();
    for _ in 0..(4 * limits.handshaking_max) {
        idle.push(TcpStream::connect(b).await.unwrap());
    }
    let (one_sender, _one_inbox) = mpsc::channel(16);
    let mut one = Transport::start(config(1, 2, b), a_listener, one_sender).unwrap();
    one.send(NodeId(2), vote(1));
    let received = tokio::time::timeout(Duration::from_secs(10), two_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(1), vote(1))));
    // Connections are accepted in the order they came: each one past the
    // limit closed the oldest still handshaking, the real peer's included.
    let evicted = idle.len() - limits.handshaking_max + 1;
    for mut connection in idle.drain(..evicted) {
        assert!(read_to_close(&mut connection).await.is_empty());
    }
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
    let mut one = Transport::start(config(1, 2, b), a_listener, one_sender).unwrap();
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
    let mut one = Transport::start(config(1, 2, b), a_listener, sender).unwrap();
    for term in 0..(OUTGOING_QUEUE_MAX as u64 + 10) {
        one.send(NodeId(2), vote(term));
    }
    assert!(one.dropped_count() >= 10, "dropped {}", one.dropped_count());
}
