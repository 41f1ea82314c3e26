//! A cluster of `skiff-register` processes on loopback, for process-level
//! tests. Every child is killed when the cluster is dropped, panics included.
#![allow(dead_code)] // each test file uses a different part

use nix::fcntl::{fcntl, FcntlArg, FdFlag};
use skiff_node::local::LocalCluster;
use skiff_node::{ClusterConfig, NodeId};
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The example binary, beside the test binaries: `target/<profile>/examples`.
/// `cargo test -p skiff-node` builds it; `cargo test --test NAME` alone
/// does not, hence the hint.
pub fn binary() -> PathBuf {
    let test = std::env::current_exe().unwrap();
    let profile_dir = test.parent().and_then(Path::parent).unwrap();
    let binary = profile_dir.join("examples").join("skiff-register");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build -p skiff-node --examples`",
        binary.display()
    );
    binary
}

/// `listener` as a descriptor that a child process inherits.
fn inheritable(listener: TcpListener) -> OwnedFd {
    let fd = OwnedFd::from(listener);
    fcntl(&fd, FcntlArg::F_SETFD(FdFlag::empty())).unwrap();
    fd
}

/// A `skiff-register` command for one node, with the listening sockets it
/// inherits; they stay open in this process until this is dropped, after
/// the spawn.
pub struct NodeCommand {
    pub command: Command,
    _inherited: [OwnedFd; 2],
}

/// The register processes of a cluster. This process binds every address
/// up front and keeps the listeners ([`LocalCluster`]); each child gets its
/// two as inherited descriptors, so no port is ever free for a test
/// running in parallel to take, not even while a node restarts.
pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
    pub config: ClusterConfig,
    local: LocalCluster,
    children: Vec<Option<Child>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    pub role: String,
    pub term: u64,
    pub leader: Option<u64>,
    pub commit: u64,
    pub last: u64,
    pub applied: u64,
}

impl Cluster {
    /// A configuration of `count` nodes with short timeouts, nothing started.
    pub fn new(count: u64) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        // Relative data directories, resolved against the file by `load`.
        let mut local = LocalCluster::bind(count, Path::new("")).unwrap();
        local.config.cluster_id = 42;
        local.config.election_timeout_ms = 150;
        local.config.heartbeat_interval_ms = 40;
        local.config.segment_bytes_max = 64 * 1024;
        let config_path = dir.path().join("cluster.toml");
        local.config.save(&config_path).unwrap();
        let config = ClusterConfig::load(&config_path).unwrap();
        let children = (0..count).map(|_| None).collect();
        Cluster {
            dir,
            config_path,
            config,
            local,
            children,
        }
    }

    /// The command that runs node `id` on its listeners.
    pub fn command(&self, id: u64) -> NodeCommand {
        let peer = inheritable(self.local.peer_listener(NodeId(id)).unwrap());
        let client = inheritable(self.local.client_listener(NodeId(id)).unwrap());
        let mut command = Command::new(binary());
        command.args([
            "--config",
            self.config_path.to_str().unwrap(),
            "--id",
            &id.to_string(),
            "--peer-listen-fd",
            &peer.as_raw_fd().to_string(),
            "--client-listen-fd",
            &client.as_raw_fd().to_string(),
        ]);
        NodeCommand {
            command,
            _inherited: [peer, client],
        }
    }

    pub fn ids(&self) -> Vec<u64> {
        self.config.nodes.iter().map(|n| n.id).collect()
    }

    pub fn start_all(&mut self) {
        for id in self.ids() {
            self.start(id);
        }
    }

    /// Starts node `id`; its log goes to `node-ID.log`, appended across restarts.
    pub fn start(&mut self, id: u64) {
        assert!(
            self.children[id as usize - 1].is_none(),
            "node {id} already runs"
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(id))
            .unwrap();
        let mut node = self.command(id);
        let child = node
            .command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.children[id as usize - 1] = Some(child);
    }

    /// Kills node `id` with SIGKILL and reaps it.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut child) = self.children[id as usize - 1].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    pub fn kill_all(&mut self) {
        for id in self.ids() {
            self.kill(id);
        }
    }

    pub fn running(&self) -> Vec<u64> {
        self.ids()
            .into_iter()
            .filter(|id| self.children[*id as usize - 1].is_some())
            .collect()
    }

    pub fn log_path(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("node-{id}.log"))
    }

    pub fn log(&self, id: u64) -> String {
        fs::read_to_string(self.log_path(id)).unwrap_or_default()
    }

    pub fn data_dir(&self, id: u64) -> &Path {
        &self.config.nodes[id as usize - 1].data_dir
    }

    pub fn client_address(&self, id: u64) -> SocketAddr {
        self.config.nodes[id as usize - 1].client_address
    }

    pub fn status(&self, id: u64) -> Option<NodeStatus> {
        let answer = Client::connect(self.client_address(id))?.request("status")?;
        parse_status(&answer)
    }

    /// Waits for a running node that says it leads and that every other
    /// running node follows; panics with the logs after `timeout`.
    pub fn wait_for_leader(&self, timeout: Duration) -> u64 {
        let leader = self.wait_until(timeout, "a leader", || {
            let statuses: Vec<(u64, NodeStatus)> = self
                .running()
                .into_iter()
                .filter_map(|id| Some((id, self.status(id)?)))
                .collect();
            let (leader, status) = statuses.iter().find(|(_, s)| s.role == "leader")?;
            let agreed = statuses
                .iter()
                .all(|(_, s)| s.leader == Some(*leader) && s.term == status.term);
            (agreed && statuses.len() == self.running().len()).then_some(*leader)
        });
        leader
    }

    /// Waits until every running node has applied the same commit index,
    /// at least `at_least`; returns it.
    pub fn wait_converged(&self, at_least: u64, timeout: Duration) -> u64 {
        self.wait_until(timeout, "convergence", || {
            let statuses: Option<Vec<NodeStatus>> = self
                .running()
                .into_iter()
                .map(|id| self.status(id))
                .collect();
            let statuses = statuses?;
            let first = statuses.first()?.clone();
            let same = statuses
                .iter()
                .all(|s| s.commit == first.commit && s.applied == s.commit);
            (same && first.commit >= at_least && first.last == first.commit).then_some(first.commit)
        })
    }

    /// The values node `id` applied, with their indices.
    pub fn dump(&self, id: u64) -> Vec<(u64, String)> {
        self.listing(id, "dump").expect("dump answers a listing")
    }

    /// A linearizable `read` at node `id`: the committed values, or the
    /// line answered instead (a redirect or an error).
    pub fn read(&self, id: u64) -> Result<Vec<(u64, String)>, String> {
        self.listing(id, "read")
    }

    fn listing(&self, id: u64, request: &str) -> Result<Vec<(u64, String)>, String> {
        let mut client = Client::connect(self.client_address(id)).expect("node answers");
        client.send(request).unwrap();
        let mut values = Vec::new();
        loop {
            let line = client.read_line().expect("a listing ends with end");
            if line == "end" {
                return Ok(values);
            }
            let entry = line.split_once(' ');
            match entry.and_then(|(index, value)| Some((index.parse().ok()?, value))) {
                Some((index, value)) => values.push((index, value.to_string())),
                None => return Err(line),
            }
        }
    }

    /// Appends `value` through whichever node leads, following redirects.
    /// It starts at a running node: a stopped node's listener is still open
    /// here, so a request to it would wait out the read timeout.
    pub fn append(&self, value: &str) -> u64 {
        let mut address = self.client_address(self.running()[0]);
        for _ in 0..50 {
            let answer =
                Client::connect(address).and_then(|mut c| c.request(&format!("append {value}")));
            match answer.as_deref().and_then(|a| a.split_once(' ')) {
                Some(("committed", index)) => return index.parse().unwrap(),
                Some(("redirect", to)) => address = to.parse().unwrap(),
                _ => {
                    std::thread::sleep(Duration::from_millis(100));
                    address = self.client_address(self.running()[0]);
                }
            }
        }
        panic!("{value} was never committed\n{}", self.all_logs());
    }

    pub fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = probe() {
                return found;
            }
            if Instant::now() > deadline {
                panic!("no {what} within {timeout:?}\n{}", self.all_logs());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn all_logs(&self) -> String {
        let mut out = String::new();
        for id in self.ids() {
            let log = self.log(id);
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            out.push_str(&format!("--- node {id} (last lines) ---\n"));
            for line in tail.into_iter().rev() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().flatten() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn parse_status(line: &str) -> Option<NodeStatus> {
    let field = |key: &str| {
        line.split(' ')
            .find_map(|pair| pair.strip_prefix(key)?.strip_prefix('='))
            .map(str::to_string)
    };
    Some(NodeStatus {
        role: field("role")?,
        term: field("term")?.parse().ok()?,
        leader: field("leader")?.parse().ok(),
        commit: field("commit")?.parse().ok()?,
        last: field("last")?.parse().ok()?,
        applied: field("applied")?.parse().ok()?,
    })
}

/// One connection to a node's client address.
pub struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(address: SocketAddr) -> Option<Client> {
        let stream = TcpStream::connect_timeout(&address, Duration::from_millis(500)).ok()?;
        // Above the register's own append timeout, so its answer arrives first.
        stream.set_read_timeout(Some(Duration::from_secs(8))).ok()?;
        Some(Client {
            reader: BufReader::new(stream),
        })
    }

    pub fn send(&mut self, line: &str) -> Option<()> {
        self.reader
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .ok()
    }

    pub fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(n) if n > 0 => Some(line.trim_end().to_string()),
            _ => None,
        }
    }

    pub fn request(&mut self, line: &str) -> Option<String> {
        self.send(line)?;
        self.read_line()
    }
}

/// The last segment file of a data directory.
pub fn last_segment(dir: &Path) -> PathBuf {
    let mut segments = skiff_node::storage::segment_files(dir).unwrap();
    segments.pop().expect("a segment")
}

/// For tests of nodes in this process: the position in `nodes` of the
/// first to be leader, told by its status (at once if one leads already).
pub async fn first_leader(nodes: &[skiff_node::Node]) -> usize {
    let (sender, mut leaders) = tokio::sync::mpsc::channel(nodes.len());
    for (position, node) in nodes.iter().enumerate() {
        let mut status = node.handle().watch_status();
        let sender = sender.clone();
        tokio::spawn(async move {
            let leads = |s: &skiff_node::Status| s.role == skiff_node::Role::Leader;
            if status.wait_for(leads).await.is_ok() {
                let _ = sender.send(position).await;
            }
        });
    }
    leaders
        .recv()
        .await
        .expect("a node's status watch outlives this call")
}
