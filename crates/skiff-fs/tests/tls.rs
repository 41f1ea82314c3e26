//! Client TLS (`[tls] clients = true`) on real sockets: TLS clients are
//! served, plain TCP clients and clients trusting another CA are not, and a
//! connection that never starts TLS holds no slot against a real client.

mod common;

use common::{Cluster, PATIENCE};
use skiff_fs::protocol::{parse_response, Limits, Parsed};
use skiff_fs::{Client, ClientConfig, ClientError, ClientTls};
use skiff_node::tls::DevCa;
use skiff_node::{ClusterConfig, NodeId};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A cluster of `count` servers whose peers and clients use TLS, with
/// certificates from `ca` written into `certs`, and `configure`'s changes.
async fn tls_cluster(
    count: u64,
    ca: &DevCa,
    certs: &Path,
    configure: impl FnOnce(&mut ClusterConfig),
) -> Cluster {
    let mut tls = ca
        .write_cluster(certs, (1..=count).map(NodeId), false)
        .unwrap();
    tls.clients = true;
    let cluster = Cluster::start_configured(count, |config| {
        config.tls = Some(tls);
        configure(config);
    })
    .await;
    cluster.leader().await;
    cluster
}

/// A client of `servers` (starting with the first) speaking `tls`.
fn client(servers: Vec<String>, tls: ClientTls, attempts_max: usize) -> Client {
    Client::new(ClientConfig {
        attempts_max,
        backoff: Duration::from_millis(20),
        tls: Some(tls),
        ..ClientConfig::new(servers)
    })
}

/// Everything the server sends on `stream` until it closes.
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut received))
        .await
        .expect("the server closes the connection");
    // A reset after a TLS alert is a close too.
    if let Err(error) = read {
        assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset, "{error}");
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_clients_are_served_and_others_are_refused() {
    let (ca, certs) = (DevCa::new().unwrap(), tempfile::tempdir().unwrap());
    let cluster = tls_cluster(3, &ca, certs.path(), |_| {}).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|&id| id != leader).unwrap();

    // Knowing the configuration: each address must show its own node.
    let tls = ClientTls::for_cluster(&cluster.config)
        .unwrap()
        .expect("clients = true");
    let mut known = client(cluster.addresses(), tls, 100);
    let version = known.write("f", "over tls", 0).await.unwrap();
    let file = known.read("f").await.unwrap();
    assert_eq!(
        (file.version, &file.contents[..]),
        (version, &b"over tls"[..])
    );

    // Knowing only the CA and a follower's address: any node's certificate
    // will do, and the redirect to the leader is followed over TLS.
    let ca_only = ClientTls::from_ca_file(&certs.path().join("ca.pem")).unwrap();
    // (A follower serves reads itself; a change is what gets redirected.)
    let mut by_address = client(vec![cluster.address(follower)], ca_only, 100);
    let file = by_address.read("f").await.unwrap();
    assert_eq!(&file.contents[..], b"over tls");
    by_address.write("redirected", "over tls", 0).await.unwrap();
    assert_ne!(
        by_address.connected_to(),
        Some(cluster.address(follower).as_str())
    );

    // Plain TCP: the handshake fails, the connection closes, no answer.
    let mut plain = TcpStream::connect(cluster.address(leader)).await.unwrap();
    plain
        .write_all(b"write g 5\r\nplain\r\nread f\r\n")
        .await
        .unwrap();
    let received = until_closed(&mut plain).await;
    assert!(
        !matches!(
            parse_response(&received, &Limits::default()),
            Ok(Parsed::Complete { .. })
        ),
        "a plain client got a protocol answer: {received:?}"
    );
    assert!(matches!(known.read("g").await, Err(ClientError::NotFound)));

    // A client trusting another CA refuses every server.
    let other_ca = DevCa::new().unwrap();
    let stranger_tls =
        ClientTls::from_ca_pem(other_ca.certificate_pem().as_bytes(), Path::new("other")).unwrap();
    let mut stranger = client(cluster.addresses(), stranger_tls, 3);
    match stranger.write("h", "x", 0).await {
        Err(ClientError::Unavailable { last, .. }) => {
            assert!(last.contains("certificate"), "{last}");
        }
        other => panic!("a client trusting another CA got {other:?}"),
    }
    assert!(matches!(known.read("h").await, Err(ClientError::NotFound)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_starts_tls_gives_way_to_a_client() {
    let (ca, certs) = (DevCa::new().unwrap(), tempfile::tempdir().unwrap());
    let cluster = tls_cluster(1, &ca, certs.path(), |config| config.limits.clients_max = 1).await;
    let mut silent = TcpStream::connect(cluster.address(1)).await.unwrap();
    let tls = ClientTls::for_cluster(&cluster.config).unwrap().unwrap();
    let mut real = client(cluster.addresses(), tls, 1);
    real.write("f", "x", 0).await.unwrap();
    assert!(
        until_closed(&mut silent).await.is_empty(),
        "evicted without a word"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handshake_begun_must_finish_within_the_read_timeout() {
    let (ca, certs) = (DevCa::new().unwrap(), tempfile::tempdir().unwrap());
    let cluster = tls_cluster(1, &ca, certs.path(), |config| {
        config.limits.client_read_timeout_ms = 200;
        config.limits.client_idle_timeout_ms = 600_000;
    })
    .await;
    let mut stalled = TcpStream::connect(cluster.address(1)).await.unwrap();
    // The first byte of a TLS handshake record, and no more.
    stalled.write_all(&[0x16]).await.unwrap();
    until_closed(&mut stalled).await;
}
