//! Mutual TLS between two transports, and peers without the right
//! certificate.

use super::*;
use crate::tls::tests::material_from;
use crate::tls::{node_name, DevCa, PeerTls};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

fn peer_tls(ca: &DevCa, id: u64) -> PeerTls {
    material_from(ca, ca, id).peer_tls().unwrap()
}

/// Nodes 1 and 2 of a cluster of three (node 3 is configured but absent),
/// with certificates from one CA.
async fn tls_pair(ca: &DevCa) -> Pair {
    tls_pair_with(ca, |config| config).await
}

/// [`tls_pair`] with configurations that `change` adjusts too.
async fn tls_pair_with(ca: &DevCa, change: impl Fn(TransportConfig) -> TransportConfig) -> Pair {
    let absent = bound_listener().1;
    pair_with(|config| {
        let mut config = change(config);
        config.tls = Some(peer_tls(ca, config.id.0));
        config.peers.push((NodeId(3), absent));
        config
    })
    .await
}

/// What an intruder whose TLS handshake gave `stream` receives after
/// sending `hello`, until the node closes. Nothing when TLS failed.
async fn answer_to<S: AsyncRead + AsyncWrite + Unpin>(
    stream: std::io::Result<S>,
    hello: &[u8],
) -> Vec<u8> {
    let Ok(mut stream) = stream else {
        return Vec::new();
    };
    // In TLS 1.3 the client may finish before the server judges its
    // certificate: the refusal then arrives as an error on read.
    let _ = stream.write_all(hello).await;
    let _ = stream.flush().await;
    read_to_close(&mut stream).await
}

/// Asserts that node 2 received nothing, then that its real peer still
/// gets through.
async fn assert_only_the_real_peer_reached_node_2(pair: &mut Pair) {
    assert!(pair.two_inbox.try_recv().is_err());
    expect_delivery(pair, 7).await;
    assert!(pair.two_inbox.try_recv().is_err());
}

/// A listener that runs one TLS accept with `tls`; the task tells whether
/// the handshake failed.
fn accept_once(tls: PeerTls) -> (tokio::task::JoinHandle<bool>, SocketAddr) {
    let (listener, address) = bound_listener();
    listener.set_nonblocking(true).unwrap();
    let listener = TcpListener::from_std(listener).unwrap();
    let accepting = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        tls.acceptor.accept(stream).await.is_err()
    });
    (accepting, address)
}

#[tokio::test]
async fn tls_peers_exchange_messages_both_ways() {
    let ca = DevCa::new().unwrap();
    let mut pair = tls_pair(&ca).await;
    expect_delivery(&mut pair, 1).await;
    pair.two.send(NodeId(1), vote(2));
    let received = tokio::time::timeout(Duration::from_secs(10), pair.one_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(2), vote(2))));
}

#[tokio::test]
async fn a_snapshot_crosses_over_tls() {
    let ca = DevCa::new().unwrap();
    let files = super::snapshot::Files::new();
    let mut pair = tls_pair_with(&ca, |config| files.configure(config)).await;
    let (file, bytes) = files.snapshot("40.snap", (1 << 20) + 5);
    let req = super::snapshot::install(3, 40);
    pair.one.send_snapshot(NodeId(2), req.clone(), file);
    super::snapshot::assert_received(&files, &mut pair.two_inbox, req, &bytes).await;
}

#[tokio::test]
async fn a_stranger_without_a_certificate_learns_nothing() {
    let ca = DevCa::new().unwrap();
    let mut pair = tls_pair(&ca).await;
    // In plain text, as a node without TLS would speak.
    let mut plain = TcpStream::connect(pair.two_address).await.unwrap();
    plain.write_all(&hello(CLUSTER, 1, 2)).await.unwrap();
    let answer = read_to_close(&mut plain).await;
    assert!(!contains(&answer, &cluster_id_on_the_wire()), "{answer:?}");
    // Over TLS, trusting the cluster's CA but showing no certificate.
    let connector = TlsConnector::from(material_from(&ca, &ca, 1).client_config().unwrap());
    let name = ServerName::try_from(node_name(NodeId(2))).unwrap();
    let tcp = TcpStream::connect(pair.two_address).await.unwrap();
    let answer = answer_to(connector.connect(name, tcp).await, &hello(CLUSTER, 1, 2)).await;
    assert!(answer.is_empty(), "{answer:?}");
    assert_only_the_real_peer_reached_node_2(&mut pair).await;
}

#[tokio::test]
async fn node_2s_certificate_cannot_speak_as_node_3() {
    let ca = DevCa::new().unwrap();
    let mut pair = tls_pair(&ca).await;
    // Node 1 listens too; its peers are 2 and 3.
    let one_address = pair.one_address;
    let connector = material_from(&ca, &ca, 2).peer_connector().unwrap();
    let tcp = TcpStream::connect(one_address).await.unwrap();
    let mut stream = connector.connect(NodeId(1), tcp).await.unwrap();
    stream.write_all(&hello(CLUSTER, 3, 1)).await.unwrap();
    let message = encoded(&Frame::Message(WireMessage::from_message(&vote(99))));
    let _ = stream.write_all(&message).await; // the node may have closed already
    assert_generic_refusal(read_to_close(&mut stream).await);
    assert!(pair.one_inbox.try_recv().is_err());
    pair.two.send(NodeId(1), vote(8));
    let received = tokio::time::timeout(Duration::from_secs(10), pair.one_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(2), vote(8))));
    // The same certificate, claiming node 2, is let in.
    let tcp = TcpStream::connect(one_address).await.unwrap();
    let mut stream = connector.connect(NodeId(1), tcp).await.unwrap();
    stream.write_all(&hello(CLUSTER, 2, 1)).await.unwrap();
    stream.write_all(&message).await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), pair.one_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((NodeId(2), vote(99))));
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_both_ways() {
    let ca = DevCa::new().unwrap();
    let other = DevCa::new().unwrap();
    let mut pair = tls_pair(&ca).await;
    // As a dialer: node 2 refuses a client certificate it cannot chain.
    let foreign = material_from(&ca, &other, 1).peer_connector().unwrap();
    let tcp = TcpStream::connect(pair.two_address).await.unwrap();
    let answer = answer_to(foreign.connect(NodeId(2), tcp).await, &hello(CLUSTER, 1, 2)).await;
    assert!(answer.is_empty(), "{answer:?}");
    // As a listener: a dialer trusting only the real CA refuses a listener
    // whose certificate comes from another one.
    let (accepting, impostor_address) = accept_once(peer_tls(&other, 2));
    let dialer = material_from(&ca, &ca, 1).peer_connector().unwrap();
    let tcp = TcpStream::connect(impostor_address).await.unwrap();
    assert!(dialer.connect(NodeId(2), tcp).await.is_err());
    assert!(accepting.await.unwrap());
    assert_only_the_real_peer_reached_node_2(&mut pair).await;
}

#[tokio::test]
async fn a_dialer_refuses_a_listener_certified_as_another_node() {
    let ca = DevCa::new().unwrap();
    let (accepting, address) = accept_once(peer_tls(&ca, 3));
    let dialer = material_from(&ca, &ca, 1).peer_connector().unwrap();
    let tcp = TcpStream::connect(address).await.unwrap();
    let dialed = dialer.connect(NodeId(2), tcp).await;
    assert!(dialed.is_err(), "node 3's certificate accepted as node 2");
    assert!(accepting.await.unwrap());
}

#[tokio::test]
async fn a_joining_node_is_admitted_only_with_its_own_certificate() {
    let ca = DevCa::new().unwrap();
    let mut pair = tls_pair(&ca).await;
    let joining = NodeId(5);
    let message = encoded(&Frame::Message(WireMessage::from_message(&vote(42))));
    // Node 5 dials with a certificate naming it but a hello without its
    // address: node 2's configuration does not have it yet, and could not
    // answer it, so it is refused.
    let own = material_from(&ca, &ca, joining.0).peer_connector().unwrap();
    let tcp = TcpStream::connect(pair.two_address).await.unwrap();
    let stream = own.connect(NodeId(2), tcp).await;
    assert_generic_refusal(answer_to(stream, &hello(CLUSTER, joining.0, 2)).await);
    // A hello that gives an address gets an unlisted node in, but only
    // with a certificate for the id it claims: node 1's is refused as 5.
    let with_address = encoded(&Frame::Hello(Hello {
        cluster_id: CLUSTER,
        node_id: joining.0,
        peer_id: 2,
        address: Some(pair.one_address),
    }));
    let borrowed = material_from(&ca, &ca, 1).peer_connector().unwrap();
    let tcp = TcpStream::connect(pair.two_address).await.unwrap();
    let stream = borrowed.connect(NodeId(2), tcp).await;
    assert_generic_refusal(answer_to(stream, &with_address).await);
    // Added as a learner: node 2's configuration names it now.
    let (_, five_address) = bound_listener();
    pair.two.set_peers(
        vec![(NodeId(1), pair.one_address), (joining, five_address)],
        true,
    );
    // Node 1's certificate claiming node 5 is still refused...
    let tcp = TcpStream::connect(pair.two_address).await.unwrap();
    let mut stream = borrowed.connect(NodeId(2), tcp).await.unwrap();
    stream
        .write_all(&hello(CLUSTER, joining.0, 2))
        .await
        .unwrap();
    let _ = stream.write_all(&message).await; // the node may have closed already
    assert_generic_refusal(read_to_close(&mut stream).await);
    assert!(pair.two_inbox.try_recv().is_err());
    // ...and node 5's own is let in.
    let tcp = TcpStream::connect(pair.two_address).await.unwrap();
    let mut stream = own.connect(NodeId(2), tcp).await.unwrap();
    stream
        .write_all(&hello(CLUSTER, joining.0, 2))
        .await
        .unwrap();
    stream.write_all(&message).await.unwrap();
    let received = tokio::time::timeout(Duration::from_secs(10), pair.two_inbox.recv()).await;
    assert_eq!(received.unwrap(), Some((joining, vote(42))));
}
