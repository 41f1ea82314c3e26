//! A member whose key is in the wrong hands: it authenticates (mutual TLS,
//! its own certificate) and then sends what no correct peer sends. The
//! cluster must neither freeze nor lose anything.
//!
//! The cluster has four members; nodes 1 to 3 run and node 4 is the hostile
//! one, played by this test with node 4's certificate and listener.

mod common;

use bytes::{Bytes, BytesMut};
use skiff_core::{Message, Term, VoteReq, VoteResp};
use skiff_node::local::LocalCluster;
use skiff_node::tls::{DevCa, NodeTls};
use skiff_node::wire::{self, Frame, Hello, WireMessage, FRAME_BYTES_MAX, LENGTH_BYTES};
use skiff_node::{LogIndex, Node, NodeId, SubmitError};
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const TIMEOUT: Duration = Duration::from_secs(20);
const HOSTILE: NodeId = NodeId(4);
/// Far below what an absurd term could have pushed any node to.
const SANE_TERM: u64 = 1_000;

/// Four members with certificates in `dir/certs`; node 4 never starts.
fn cluster(dir: &Path) -> LocalCluster {
    let mut cluster = LocalCluster::bind(4, dir).unwrap();
    cluster.config.cluster_id = 12;
    cluster.config.election_timeout_ms = 150;
    cluster.config.heartbeat_interval_ms = 40;
    let certs = dir.join("certs");
    std::fs::create_dir(&certs).unwrap();
    let tls = DevCa::new()
        .unwrap()
        .write_cluster(&certs, cluster.config.ids(), false)
        .unwrap();
    cluster.config.tls = Some(tls);
    cluster
}

async fn read_frame<R: AsyncRead + Unpin>(reader: &mut R) -> std::io::Result<Bytes> {
    let mut prefix = [0; LENGTH_BYTES];
    reader.read_exact(&mut prefix).await?;
    let length = wire::check_length(prefix, FRAME_BYTES_MAX).map_err(std::io::Error::other)?;
    let mut body = BytesMut::zeroed(length);
    reader.read_exact(&mut body).await?;
    Ok(body.freeze())
}

async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, frame: &Frame<'_>) {
    let mut out = Vec::new();
    wire::encode_frame(frame, &mut out).unwrap();
    writer.write_all(&out).await.unwrap();
    writer.flush().await.unwrap();
}

/// Plays node 4's listener: completes each node's handshake and passes on
/// every VoteResp the nodes send node 4, with the sender.
async fn listen_as_hostile(
    listener: std::net::TcpListener,
    tls: NodeTls,
    cluster_id: u64,
    votes: mpsc::Sender<(u64, VoteResp)>,
) {
    listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    let acceptor = tls.peer_acceptor().unwrap();
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        let (acceptor, votes) = (acceptor.clone(), votes.clone());
        tokio::spawn(async move {
            // Connections left in the backlog while nobody accepted may
            // belong to dialers that gave up; those simply fail here.
            let Ok((mut stream, _)) = acceptor.accept(stream).await else {
                return;
            };
            let Ok(body) = read_frame(&mut stream).await else {
                return;
            };
            let Ok(Frame::Hello(hello)) = wire::decode_frame(&body) else {
                return;
            };
            let answer = Hello {
                cluster_id,
                node_id: HOSTILE.0,
                peer_id: hello.node_id,
                address: None,
            };
            write_frame(&mut stream, &Frame::Hello(answer)).await;
            while let Ok(body) = read_frame(&mut stream).await {
                let Ok(Frame::Message(message)) = wire::decode_frame(&body) else {
                    return;
                };
                if let Message::VoteResp(resp) = message.into_message(&body) {
                    let _ = votes.send((hello.node_id, resp)).await;
                }
            }
        });
    }
}

/// Writes `value` at whichever node leads, until one takes it.
async fn write(nodes: &[Node], value: &str) -> LogIndex {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let leader = nodes[common::first_leader(nodes).await].handle();
            match leader.submit(value.to_string()).await {
                Ok(index) => return index,
                Err(SubmitError::NotLeader { .. } | SubmitError::Overwritten { .. }) => continue,
                Err(error) => panic!("write failed: {error}"),
            }
        }
    })
    .await
    .expect("the write commits")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authenticated_peer_cannot_freeze_the_cluster_with_the_largest_term() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = cluster(dir.path());
    let mut nodes = Vec::new();
    for id in 1..=3 {
        nodes.push(cluster.start_node(NodeId(id)).await.expect("node starts"));
    }
    write(&nodes, "before").await;

    let tls_config = cluster.config.tls.clone().unwrap();
    let hostile_tls = NodeTls::load(&tls_config, HOSTILE).unwrap();
    let (votes, mut answers) = mpsc::channel(16);
    tokio::spawn(listen_as_hostile(
        cluster.peer_listener(HOSTILE).unwrap(),
        NodeTls::load(&tls_config, HOSTILE).unwrap(),
        cluster.config.cluster_id,
        votes,
    ));

    // Node 4, authenticated with its own certificate, asks each node for a
    // vote in the last term there is.
    let connector = hostile_tls.peer_connector().unwrap();
    let mut held = Vec::new();
    for id in 1..=3 {
        let address = cluster.config.node(NodeId(id)).unwrap().peer_address;
        let tcp = TcpStream::connect(address).await.unwrap();
        let mut stream = connector.connect(NodeId(id), tcp).await.unwrap();
        let hello = Hello {
            cluster_id: cluster.config.cluster_id,
            node_id: HOSTILE.0,
            peer_id: id,
            address: None,
        };
        write_frame(&mut stream, &Frame::Hello(hello)).await;
        let answer = read_frame(&mut stream).await.unwrap();
        assert!(
            matches!(wire::decode_frame(&answer), Ok(Frame::Hello(_))),
            "node {id} admits node 4"
        );
        let absurd = Message::VoteReq(VoteReq {
            term: Term(u64::MAX),
            candidate: HOSTILE,
            last_index: LogIndex(0),
            last_term: Term(0),
            transfer: false,
        });
        write_frame(
            &mut stream,
            &Frame::Message(WireMessage::from_message(&absurd)),
        )
        .await;
        held.push(stream);
    }

    // Each node answers over its own connection to node 4: refused, at a
    // term of its own. That answer is the proof that it handled the request.
    let mut answered = Vec::new();
    tokio::time::timeout(TIMEOUT, async {
        while answered.len() < 3 {
            let (from, resp) = answers.recv().await.unwrap();
            if resp.term.0 < SANE_TERM && !answered.contains(&from) {
                assert!(!resp.granted, "node {from} voted for the absurd term");
                answered.push(from);
            }
            assert!(
                resp.term.0 < SANE_TERM,
                "node {from} answered at term {}",
                resp.term
            );
        }
    })
    .await
    .expect("every node answers node 4");

    // The cluster still elects and commits, at sane terms.
    write(&nodes, "after").await;
    for node in &nodes {
        let status = node.handle().status();
        assert!(
            status.term.0 < SANE_TERM,
            "node {} is at term {}",
            status.id,
            status.term
        );
    }
    drop(held);
}
