//! A cluster of file servers in this process, on loopback, for tests.
#![allow(dead_code)] // each test file uses a different part

use bytes::Bytes;
use skiff_fs::protocol::Version;
use skiff_fs::protocol::{parse_response, Limits, Parsed, ProtocolError, Response};
use skiff_fs::workload::Recorder;
use skiff_fs::{Client, ClientConfig, ClientError, Clock, Server, ServerConfig};
use skiff_node::{ClusterConfig, NodeConfig, NodeId, Role};
use std::net::{Ipv4Addr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The longest a test waits for a leader or an answer before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A clock that stands still until the test moves it, shared by every
/// server of a cluster: files expire without waiting.
#[derive(Clone, Default)]
pub struct TestClock(Arc<AtomicU64>);

impl TestClock {
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_millis()).unwrap();
        self.0.fetch_add(by, Ordering::AcqRel);
    }

    fn clock(&self) -> Clock {
        let now = self.0.clone();
        Clock::from_fn(move || now.load(Ordering::Acquire))
    }
}

/// Servers on listeners bound by this process (as
/// [`LocalCluster`](skiff_node::local::LocalCluster) does), which a
/// restarted server reuses: no port is ever free for a parallel test.
/// Spare nodes, after the cluster's own, have listeners too, for nodes
/// that join later; a node's listeners are closed when it is retired, so
/// that clients are refused there at once.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    /// The cluster's configuration: its first nodes, without the spares.
    pub config: ClusterConfig,
    /// Every node's configuration, spares included, by id - 1.
    nodes: Vec<NodeConfig>,
    /// Every node's peer and client listeners, by id - 1; `None` once
    /// retired.
    listeners: Vec<Option<(TcpListener, TcpListener)>>,
    clock: Clock,
    servers: Vec<Option<Server>>,
}

impl Cluster {
    /// Starts `count` servers with short timeouts.
    pub async fn start(count: u64) -> Cluster {
        Cluster::start_with_clock(count, Clock::System).await
    }

    /// Starts `count` servers with short timeouts, whose time is `clock`'s.
    pub async fn start_with_test_clock(count: u64, clock: &TestClock) -> Cluster {
        Cluster::start_with_clock(count, clock.clock()).await
    }

    /// Starts `count` servers with short timeouts and whatever else
    /// `configure` changes in their configuration.
    pub async fn start_configured(
        count: u64,
        configure: impl FnOnce(&mut ClusterConfig),
    ) -> Cluster {
        Cluster::start_with(count, Clock::System, configure).await
    }

    async fn start_with_clock(count: u64, clock: Clock) -> Cluster {
        Cluster::start_with(count, clock, |_| {}).await
    }

    async fn start_with(
        count: u64,
        clock: Clock,
        configure: impl FnOnce(&mut ClusterConfig),
    ) -> Cluster {
        let mut cluster = Cluster::bind(count, 0, clock, configure);
        for id in 1..=count {
            cluster.start_node(id).await;
        }
        cluster
    }

    /// Starts `count` servers with short timeouts, and binds listeners
    /// for `spares` more nodes (ids `count + 1` on), which
    /// [`Cluster::start_joining_node`] starts.
    pub async fn start_with_spares(count: u64, spares: u64) -> Cluster {
        let mut cluster = Cluster::bind(count, spares, Clock::System, |_| {});
        for id in 1..=count {
            cluster.start_node(id).await;
        }
        cluster
    }

    /// Binds every node's listeners and writes the configuration, without
    /// starting any node.
    fn bind(
        count: u64,
        spares: u64,
        clock: Clock,
        configure: impl FnOnce(&mut ClusterConfig),
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ClusterConfig::local(count + spares, dir.path(), 0);
        let mut listeners = Vec::new();
        for node in &mut config.nodes {
            let peer = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            let client = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
            node.peer_address = peer.local_addr().unwrap();
            node.client_address = client.local_addr().unwrap();
            listeners.push(Some((peer, client)));
        }
        config.cluster_id = 7;
        config.election_timeout_ms = 150;
        config.heartbeat_interval_ms = 40;
        config.segment_bytes_max = 1 << 20;
        let mut nodes = config.nodes.clone();
        config.nodes.truncate(count as usize);
        configure(&mut config);
        // As configured (data directories, say), then the spares.
        nodes.splice(..count as usize, config.nodes.iter().cloned());
        Cluster {
            dir,
            config,
            nodes,
            listeners,
            clock,
            servers: (0..count + spares).map(|_| None).collect(),
        }
    }

    pub async fn start_node(&mut self, id: u64) {
        let config = self.config.clone();
        self.start_node_with(id, config).await;
    }

    /// Starts node `id` of `cluster` on its listeners.
    async fn start_node_with(&mut self, id: u64, cluster: ClusterConfig) {
        assert!(
            self.servers[id as usize - 1].is_none(),
            "node {id} already runs"
        );
        let mut config = ServerConfig::new(cluster, NodeId(id));
        config.limits = Limits {
            file_bytes_max: 64 * 1024,
            name_bytes_max: 100,
        };
        config.request_timeout = Duration::from_secs(3);
        config.clock = self.clock.clone();
        let (peers, clients) = self.listeners[id as usize - 1]
            .as_ref()
            .expect("node not retired");
        let (peers, clients) = (peers.try_clone().unwrap(), clients.try_clone().unwrap());
        let server = Server::start_with_listeners(config, peers, clients).await;
        self.servers[id as usize - 1] = Some(server.unwrap());
    }

    /// Starts spare node `id` with an empty data directory, outside the
    /// cluster. Its configuration lists the members in force, as an
    /// operator's up-to-date cluster.toml would (a joining node admits only
    /// the peers it lists), and itself as a learner, so that it stands for
    /// nothing until a membership change adds it.
    pub async fn start_joining_node(&mut self, id: u64) {
        let view = self.server(self.leader().await).node().membership();
        let member = |(member, _): &(NodeId, _), learner| NodeConfig {
            learner,
            ..self.node_config(member.0).clone()
        };
        let mut nodes: Vec<NodeConfig> = (view.voters.iter().map(|m| member(m, false)))
            .chain(view.learners.iter().map(|m| member(m, true)))
            .collect();
        nodes.push(NodeConfig {
            learner: true,
            ..self.node_config(id).clone()
        });
        let cluster = ClusterConfig {
            nodes,
            ..self.config.clone()
        };
        self.start_node_with(id, cluster).await;
    }

    /// Stops node `id` for good and closes its listeners: clients and
    /// peers are refused there from now on.
    pub async fn retire_node(&mut self, id: u64) {
        if self.is_running(id) {
            self.stop_node(id).await;
        }
        self.listeners[id as usize - 1] = None;
    }

    pub async fn stop_node(&mut self, id: u64) {
        let server = self.servers[id as usize - 1].take().expect("node runs");
        server.shutdown().await.unwrap();
    }

    /// Node `id`'s server, which must be running.
    pub fn server(&self, id: u64) -> &Server {
        self.servers[id as usize - 1].as_ref().expect("node runs")
    }

    pub fn is_running(&self, id: u64) -> bool {
        self.servers[id as usize - 1].is_some()
    }

    pub fn address(&self, id: u64) -> String {
        self.node_config(id).client_address.to_string()
    }

    /// Node `id`'s configuration, spares included.
    pub fn node_config(&self, id: u64) -> &NodeConfig {
        &self.nodes[id as usize - 1]
    }

    /// The client addresses of the cluster's first nodes.
    pub fn addresses(&self) -> Vec<String> {
        (1..=self.config.nodes.len() as u64)
            .map(|id| self.address(id))
            .collect()
    }

    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.node_config(id).data_dir.clone()
    }

    /// Waits until one running node leads and every running node knows it.
    /// Stops the leader and starts it again, `times` times, pausing so
    /// that clients run against each leader and through each election;
    /// returns once a leader is agreed after the last restart.
    pub async fn stop_and_restart_leaders(&mut self, times: usize) {
        for _ in 0..times {
            let leader = self.leader().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.stop_node(leader).await;
            tokio::time::sleep(Duration::from_millis(400)).await;
            self.start_node(leader).await;
        }
        self.leader().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    /// Waits until one running node leads and every running member (not a
    /// node outside the cluster) knows it; answers its id.
    pub async fn leader(&self) -> u64 {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            if let Some(leader) = self.agreed_leader() {
                return leader;
            }
            assert!(tokio::time::Instant::now() < deadline, "no leader elected");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn agreed_leader(&self) -> Option<u64> {
        // A node outside the cluster (joining, or removed) hears no leader.
        let statuses: Vec<_> = self
            .servers
            .iter()
            .flatten()
            .map(|s| s.status().node)
            .filter(|status| {
                self.server(status.id.0)
                    .node()
                    .membership()
                    .contains(status.id)
            })
            .collect();
        let leader = statuses.iter().find(|s| s.role == Role::Leader)?;
        let agreed = statuses
            .iter()
            .all(|s| s.leader == Some(leader.id) && s.term == leader.term);
        agreed.then_some(leader.id.0)
    }

    /// A client that knows every server.
    pub fn client(&self) -> Client {
        self.client_starting_at(1)
    }

    /// A client that knows every server and tries node `id` first.
    pub fn client_starting_at(&self, id: u64) -> Client {
        Client::new(client_config(self.addresses(), id))
    }
}

/// The tests' client configuration for `addresses`, trying the `first`-th
/// (from 1) first.
pub fn client_config(mut addresses: Vec<String>, first: u64) -> ClientConfig {
    addresses.rotate_left(first as usize - 1);
    ClientConfig {
        attempts_max: 100,
        backoff: Duration::from_millis(20),
        request_timeout: Duration::from_secs(5),
        ..ClientConfig::new(addresses)
    }
}

/// Waits until the clients recording in `recorder` have completed `count`
/// more operations than `before`; answers how many they have completed.
pub async fn operations_done(recorder: &Recorder, before: usize, count: usize) -> usize {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let done = recorder.history().len();
        if done >= before + count {
            return done;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the clients stalled at {done} operations"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The version of an `OK <version>` answer.
pub fn written(response: &Response) -> Version {
    match response {
        Response::Written { version } => *version,
        other => panic!("expected OK <version>, got {other:?}"),
    }
}

/// The `CONTENTS` answer with these fields.
pub fn contents(version: Version, bytes: &[u8], exptime_s: u64) -> Response {
    Response::Contents {
        version,
        contents: Bytes::copy_from_slice(bytes),
        exptime_s,
    }
}

/// Files as written: name, version, contents.
pub type Written = Vec<(String, Version, Bytes)>;

/// Writes `file-0` to `file-{count - 1}`, with contents that hold `\r\n`
/// and NUL, then deletes `file-0`; answers what is left.
pub async fn write_files(client: &mut Client, count: usize) -> Written {
    let mut written = Vec::new();
    for i in 0..count {
        let name = format!("file-{i}");
        let contents = Bytes::from(format!("contents {i}\r\n\0"));
        let version = client.write(&name, contents.clone(), 0).await.unwrap();
        written.push((name, version, contents));
    }
    client.delete("file-0").await.unwrap();
    written.remove(0);
    written
}

/// Checks that `file-0` is gone and every file of `written` reads back
/// with its version and contents.
pub async fn check_files(client: &mut Client, written: &Written) {
    assert!(matches!(
        client.read("file-0").await,
        Err(ClientError::NotFound)
    ));
    for (name, version, contents) in written {
        let file = client.read(name).await.unwrap();
        assert_eq!(
            (&file.version, &file.contents),
            (version, contents),
            "{name}"
        );
    }
}

/// A raw protocol session, as `telnet` would have it.
pub struct Session {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Session {
    pub async fn open(address: &str) -> Session {
        let stream = TcpStream::connect(address).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Session {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Sends `chunks` one write at a time, pausing between them so that
    /// they arrive as separate reads.
    pub async fn send(&mut self, chunks: &[&[u8]]) {
        for chunk in chunks {
            self.stream.write_all(chunk).await.unwrap();
            self.stream.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Reads `count` responses.
    pub async fn receive(&mut self, count: usize) -> Vec<Response> {
        tokio::time::timeout(PATIENCE, self.read_responses(count))
            .await
            .expect("the server answers")
    }

    /// Sends `chunks` and reads `count` responses.
    pub async fn exchange(&mut self, chunks: &[&[u8]], count: usize) -> Vec<Response> {
        self.send(chunks).await;
        self.receive(count).await
    }

    /// Sends `request` and reads one answer with `parse`: for the lines of
    /// the extensions, which [`Session::receive`] does not know.
    pub async fn ask<T>(
        &mut self,
        request: &[u8],
        parse: impl Fn(&[u8]) -> Result<Parsed<T>, ProtocolError>,
    ) -> T {
        self.send(&[request]).await;
        let answer = async {
            loop {
                if let Parsed::Complete { value, consumed } =
                    parse(&self.buffer).unwrap_or_else(|error| {
                        panic!("{error}: {:?}", String::from_utf8_lossy(&self.buffer))
                    })
                {
                    self.buffer.drain(..consumed);
                    return value;
                }
                let mut chunk = [0u8; 4096];
                let read = self.stream.read(&mut chunk).await.unwrap();
                assert!(read > 0, "closed after {:?}", self.buffer);
                self.buffer.extend_from_slice(&chunk[..read]);
            }
        };
        tokio::time::timeout(PATIENCE, answer)
            .await
            .expect("the server answers")
    }

    /// Waits for the server to close the connection, with nothing more said.
    pub async fn expect_closed(&mut self) {
        let mut rest = [0u8; 64];
        let read = tokio::time::timeout(PATIENCE, self.stream.read(&mut rest))
            .await
            .expect("the server closes the connection");
        assert!(
            matches!(read, Ok(0) | Err(_)) && self.buffer.is_empty(),
            "more after the last answer: {read:?} {:?}",
            self.buffer
        );
    }

    /// Whether the server has said nothing more, not even closing, so far.
    pub fn is_silent(&mut self) -> bool {
        let mut rest = [0u8; 64];
        let silent = matches!(self.stream.try_read(&mut rest), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        silent && self.buffer.is_empty()
    }

    async fn read_responses(&mut self, count: usize) -> Vec<Response> {
        let mut responses = Vec::new();
        while responses.len() < count {
            match parse_response(&self.buffer, &Limits::default()).unwrap() {
                Parsed::Complete { value, consumed } => {
                    self.buffer.drain(..consumed);
                    responses.push(value);
                }
                Parsed::Incomplete => {
                    let mut chunk = [0u8; 4096];
                    let read = self.stream.read(&mut chunk).await.unwrap();
                    assert!(read > 0, "closed after {responses:?}");
                    self.buffer.extend_from_slice(&chunk[..read]);
                }
            }
        }
        responses
    }
}
