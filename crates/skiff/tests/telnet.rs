//! Raw protocol sessions, byte for byte as `telnet` or `nc` would see them,
//! against a cluster of three `skiff node` processes.

mod common;

use common::{TestCluster, PATIENCE};
use skiff_node::NodeId;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One connection, read exactly.
struct Session {
    stream: TcpStream,
}

impl Session {
    async fn open(address: &str) -> Session {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Session { stream }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Sends `bytes` in separate writes of `chunk` bytes, pausing between
    /// them so they arrive as separate reads.
    async fn send_in_chunks(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk) {
            self.stream.write_all(piece).await.unwrap();
            self.stream.flush().await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Reads one line, `\r\n` included.
    async fn line(&mut self) -> String {
        let mut line = Vec::new();
        while !line.ends_with(b"\r\n") {
            line.push(self.byte().await);
        }
        String::from_utf8(line).unwrap()
    }

    async fn byte(&mut self) -> u8 {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut byte))
            .await
            .expect("the server answers")
            .unwrap();
        assert_eq!(read, 1, "the server closed the connection");
        byte[0]
    }

    /// Reads exactly `expected.len()` bytes and compares.
    async fn expect(&mut self, expected: &[u8]) {
        let mut got = vec![0u8; expected.len()];
        tokio::time::timeout(PATIENCE, self.stream.read_exact(&mut got))
            .await
            .expect("the server answers")
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(expected)
        );
    }

    /// Reads `OK <version>\r\n` and returns the version.
    async fn ok_version(&mut self) -> u64 {
        let line = self.line().await;
        let version = line
            .strip_prefix("OK ")
            .and_then(|v| v.trim_end().parse().ok());
        version.unwrap_or_else(|| panic!("expected OK <version>, got {line:?}"))
    }

    /// Expects the server to close the connection with nothing more said.
    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(PATIENCE, self.stream.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection");
        assert!(
            matches!(read, Ok(0)) || read.is_err(),
            "more after the last answer: {rest:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_behave_exactly_as_the_protocol_says() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let leader_address = cluster.address(leader.id);
    let mut session = Session::open(&leader_address).await;

    session.send(b"write greeting 5\r\nhello\r\n").await;
    let v1 = session.ok_version().await;
    session.send(b"read greeting\r\n").await;
    session
        .expect(format!("CONTENTS {v1} 5 0\r\nhello\r\n").as_bytes())
        .await;

    session
        .send(format!("cas greeting {v1} 3\r\nbye\r\n").as_bytes())
        .await;
    let v2 = session.ok_version().await;
    assert!(v2 > v1);
    session
        .send(format!("cas greeting {v1} 1\r\nx\r\n").as_bytes())
        .await;
    session
        .expect(format!("ERR_VERSION {v2}\r\n").as_bytes())
        .await;

    session.send(b"delete greeting\r\n").await;
    session.expect(b"OK\r\n").await;
    session.send(b"read greeting\r\n").await;
    session.expect(b"ERR_FILE_NOT_FOUND\r\n").await;
    session.send(b"delete greeting\r\n").await;
    session.expect(b"ERR_FILE_NOT_FOUND\r\n").await;
    session.send(b"cas greeting 1 1\r\nx\r\n").await;
    session.expect(b"ERR_FILE_NOT_FOUND\r\n").await;

    // Binary contents, a command split into pieces, and a batch of
    // commands in one write, answered in order.
    let binary = b"a\r\nb\0\xff\r\n";
    let mut request = b"write bin 8\r\n".to_vec();
    request.extend_from_slice(binary);
    request.extend_from_slice(b"\r\n");
    session.send_in_chunks(&request, 3).await;
    let v3 = session.ok_version().await;
    session
        .send(b"read bin\r\nwrite bin 1\r\nz\r\nread bin\r\nread nothing\r\n")
        .await;
    let mut contents = format!("CONTENTS {v3} 8 0\r\n").into_bytes();
    contents.extend_from_slice(binary);
    contents.extend_from_slice(b"\r\n");
    session.expect(&contents).await;
    let v4 = session.ok_version().await;
    session
        .expect(format!("CONTENTS {v4} 1 0\r\nz\r\nERR_FILE_NOT_FOUND\r\n").as_bytes())
        .await;

    // Expiry: the seconds left, rounded up, never more than asked.
    session
        .send(b"write soon 1 100\r\nx\r\nread soon\r\n")
        .await;
    let v5 = session.ok_version().await;
    let header = session.line().await;
    let left: u64 = header
        .strip_prefix(&format!("CONTENTS {v5} 1 "))
        .and_then(|rest| rest.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("{header:?}"));
    assert!((1..=100).contains(&left), "{header:?}");
    session.expect(b"x\r\n").await;

    // A follower serves reads itself (follower reads: its answer includes
    // every change acknowledged before), names the leader for changes, and
    // the connection stays open.
    let follower = cluster
        .cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader.id)
        .unwrap();
    let mut at_follower = Session::open(&cluster.address(follower)).await;
    at_follower.send(b"read bin\r\n").await;
    at_follower
        .expect(format!("CONTENTS {v4} 1 0\r\nz\r\n").as_bytes())
        .await;
    for request in [&b"write f 1\r\nx\r\n"[..], b"delete bin\r\n"] {
        at_follower.send(request).await;
        at_follower
            .expect(format!("ERR_REDIRECT {leader_address}\r\n").as_bytes())
            .await;
    }
    at_follower.send(b"status\r\n").await;
    let status = at_follower.line().await;
    assert_eq!(
        status.split(' ').take(4).collect::<Vec<_>>(),
        [
            "STATUS",
            &format!("id={follower}"),
            "role=follower",
            &format!("term={}", leader.term),
        ],
        "{status:?}"
    );
    assert!(
        status.contains(&format!(" leader={} ", leader.id)),
        "{status:?}"
    );
    assert_ne!(follower, NodeId(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_commands_get_err_cmd_err_and_the_connection_closes() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await;
    let leader_address = cluster.address(leader.id);
    let long_line = format!("read {}\r\n", "n".repeat(500));
    let malformed: [&[u8]; 8] = [
        b"write f abc\r\nabc\r\n",
        b"fetch f\r\n",
        b"write f 3\r\nabcd\r\n",
        b"read f\n",
        b"cas f 1\r\n",
        b"write f 3 soon\r\nabc\r\n",
        b"\r\n",
        long_line.as_bytes(),
    ];
    for request in malformed {
        // On the leader and on a follower alike: parsing comes first.
        for id in cluster.cluster.ids() {
            let mut session = Session::open(&cluster.address(id)).await;
            // A good command first: the bad one ends a working session.
            session.send(b"read nothing\r\n").await;
            let first = session.line().await;
            assert!(
                first == "ERR_FILE_NOT_FOUND\r\n" || first.starts_with("ERR_REDIRECT "),
                "{first:?}"
            );
            session.send(request).await;
            session.expect(b"ERR_CMD_ERR\r\n").await;
            session.expect_closed().await;
        }
    }
    // The leader still serves.
    let mut session = Session::open(&leader_address).await;
    session.send(b"read nothing\r\n").await;
    session.expect(b"ERR_FILE_NOT_FOUND\r\n").await;
}
