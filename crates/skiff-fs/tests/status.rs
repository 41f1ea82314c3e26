//! The `status` extension against a three-node cluster: every server answers
//! for itself, followers included, and the answer agrees with the node.

mod common;

use common::{Cluster, PATIENCE};
use skiff_fs::protocol::{parse_status_report, Parsed, StatusReport};
use skiff_node::{NodeId, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` and reads one line back.
async fn line_exchange(stream: &mut TcpStream, request: &[u8]) -> Vec<u8> {
    stream.write_all(request).await.unwrap();
    let mut line = Vec::new();
    while !line.ends_with(b"\r\n") {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(PATIENCE, stream.read(&mut byte))
            .await
            .expect("the server answers")
            .unwrap();
        assert_eq!(read, 1, "closed after {line:?}");
        line.push(byte[0]);
    }
    line
}

fn parse(line: &[u8]) -> StatusReport {
    match parse_status_report(line) {
        Ok(Parsed::Complete { value, consumed }) if consumed == line.len() => value,
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(line)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_reports_its_own_view_without_redirecting() {
    let cluster = Cluster::start(3).await;
    let leader = cluster.leader().await;
    // A write through the log, so that commit and last are past the no-op.
    let version = cluster
        .client()
        .write("f", "x", 0)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for id in 1..=3 {
        let mut stream = TcpStream::connect(cluster.address(id)).await.unwrap();
        let report = parse(&line_exchange(&mut stream, b"status\r\n").await);
        assert_eq!(report.id, NodeId(id));
        assert_eq!(report.leader, Some(NodeId(leader)));
        let role = if id == leader {
            Role::Leader
        } else {
            Role::Follower
        };
        assert_eq!(report.role, role);
        assert!(report.last_index.0 >= report.commit_index.0);
        // The log holds every entry after the node's snapshot.
        let log = report.log.expect("a server with snapshots reports its log");
        assert!(log.snapshot_index <= report.commit_index, "{report:?}");
        assert_eq!(log.entries, report.last_index.0 - log.snapshot_index.0);
        if id == leader {
            assert!(report.commit_index.0 >= version.0);
        }
        // The connection stays open for the classic protocol after it.
        // (Every server serves reads; a follower redirects changes.)
        let answer = line_exchange(&mut stream, b"delete nothing\r\n").await;
        let expected = if id == leader {
            b"ERR_FILE_NOT_FOUND\r\n".to_vec()
        } else {
            format!("ERR_REDIRECT {}\r\n", cluster.address(leader)).into_bytes()
        };
        assert_eq!(answer, expected, "{}", String::from_utf8_lossy(&answer));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_status_is_refused_like_any_command() {
    let cluster = Cluster::start(3).await;
    cluster.leader().await;
    let mut stream = TcpStream::connect(cluster.address(2)).await.unwrap();
    let answer = line_exchange(&mut stream, b"status please\r\n").await;
    assert_eq!(answer, b"ERR_CMD_ERR\r\n");
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest)).await;
    assert!(matches!(closed, Ok(Ok(0))), "{closed:?} {rest:?}");
}
