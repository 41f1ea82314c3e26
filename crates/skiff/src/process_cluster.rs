//! A cluster of file servers, each a `skiff node` child process, on
//! loopback: what `skiff up` and `skiff demo` run, and what the process
//! tests crash and restart.
//!
//! # Children never outlive the parent
//!
//! * Dropping a [`ProcessCluster`] stops every child it started: SIGTERM,
//!   then SIGKILL for those still running after [`STOP_GRACE`]. Drop runs on
//!   errors and panics too.
//! * Each child runs with `--exit-on-stdin-close` and its standard input a
//!   pipe whose only writer is the parent, so when the parent dies without
//!   running any destructor (SIGKILL, abort) the kernel closes the pipe and
//!   the child shuts down by itself.
//! * Each child is in its own process group, so a Ctrl-C at the terminal
//!   reaches the parent only, and the parent stops the nodes in order
//!   instead of every process racing to exit.
//!
//! Signals are sent only to children not yet reaped: a child that exited
//! stays a zombie until [`Child::try_wait`] or [`Child::wait`] collects it,
//! so its process id cannot have been reused by another process.

use crate::inherited_listeners::InheritedListeners;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use skiff_node::local::LocalCluster;
use skiff_node::{ClusterConfig, ConfigError, NodeId, TlsConfig};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, RandomState};
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a node may take to stop after SIGTERM before it gets SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// The name of the configuration file in a cluster directory.
pub const CONFIG_FILE_NAME: &str = "cluster.toml";
/// How often to look whether a stopping child has exited.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(10);

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The configuration could not be made, read or used.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file or directory could not be created or opened.
    #[error("cannot use {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The ports asked for do not exist.
    #[error("base port {base} leaves no room for {count} nodes (two ports each, up to 65535)")]
    PortsOutOfRange {
        /// The first port.
        base: u16,
        /// The number of nodes.
        count: u64,
    },
    /// No free ports could be found on 127.0.0.1.
    #[error("cannot find free ports on 127.0.0.1: {0}")]
    FreePorts(std::io::Error),
    /// A started node never answered on its client address.
    #[error("node {id} does not answer on {address}: {reason}\n{log_tail}")]
    NotAnswering {
        /// The node.
        id: NodeId,
        /// Its client address.
        address: SocketAddr,
        /// Why the last probe failed.
        reason: String,
        /// The end of its log.
        log_tail: String,
    },
    /// A node process could not be started.
    #[error("cannot start node {id} with {program}")]
    Spawn {
        /// The node.
        id: NodeId,
        /// The program run.
        program: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A node process could not be signalled or waited for.
    #[error("cannot {action} node {id} (pid {pid})")]
    Process {
        /// What was attempted, e.g. "kill".
        action: &'static str,
        /// The node.
        id: NodeId,
        /// Its process id.
        pid: u32,
        /// What the system said.
        source: std::io::Error,
    },
    /// The node is already running.
    #[error("node {0} is already running")]
    AlreadyRunning(NodeId),
    /// Another process listens on one of the node's addresses.
    #[error("node {id} cannot listen on {address} (another cluster running?)")]
    AddressInUse {
        /// The node.
        id: NodeId,
        /// Its peer or client address.
        address: SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// The listeners held for a node could not be passed on to it.
    #[error("cannot pass node {id} its listeners")]
    Listeners {
        /// The node.
        id: NodeId,
        /// What the system said.
        source: std::io::Error,
    },
    /// The node is not running.
    #[error("node {0} is not running")]
    NotRunning(NodeId),
    /// Development certificates could not be made.
    #[error(transparent)]
    Tls(#[from] skiff_node::tls::TlsError),
}

/// Where [`write_dev_certs`] puts certificates, under the cluster's directory.
pub const CERTS_DIR: &str = "certs";

/// Makes a development CA and certificates for nodes `1..=count` in
/// `dir/certs` (see `skiff certs`), and returns the `[tls]` section naming
/// them relative to `dir`, for a configuration file in `dir`.
pub fn write_dev_certs(dir: &Path, count: u64) -> Result<TlsConfig, ClusterError> {
    let certs = dir.join(CERTS_DIR);
    std::fs::create_dir_all(&certs).map_err(|source| ClusterError::Io {
        path: certs.clone(),
        source,
    })?;
    let ca = skiff_node::tls::DevCa::new()?;
    ca.write_cluster(&certs, (1..=count).map(NodeId), false)?;
    let relative = Path::new(CERTS_DIR);
    Ok(TlsConfig {
        ca: relative.join(skiff_node::tls::CA_FILE),
        cert: relative.join("node-{id}.pem"),
        key: relative.join("node-{id}.key"),
        clients: false,
    })
}

/// Where the nodes of a generated configuration listen, on 127.0.0.1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Node `i` takes peer port `base + 2(i-1)` and client port one above.
    Consecutive {
        /// The first node's peer port.
        base: u16,
    },
    /// Ports the kernel hands out now. A [`ProcessCluster`] made by
    /// [`ProcessCluster::create_local`] holds them for its whole life and
    /// passes them to its nodes, so no other process can take one, not
    /// even while a node restarts.
    Free,
}

/// Writes the configuration of a `count`-node cluster on 127.0.0.1 to
/// `dir/cluster.toml`, creating `dir`. Data directories are `node-<id>`,
/// relative to the file, so the directory can be moved. Returns the path.
///
/// With [`Ports::Free`] the ports are not held once this returns: to run
/// nodes on them, use [`ProcessCluster::create_local`], which keeps them.
pub fn write_local_config(dir: &Path, count: u64, ports: Ports) -> Result<PathBuf, ClusterError> {
    write_config(dir, count, ports, |_| {}).map(|(path, _)| path)
}

/// [`write_local_config`], with `configure` applied to the configuration
/// before it is saved, also returning the listeners bound for
/// [`Ports::Free`].
fn write_config(
    dir: &Path,
    count: u64,
    ports: Ports,
    configure: impl FnOnce(&mut ClusterConfig),
) -> Result<(PathBuf, Option<LocalCluster>), ClusterError> {
    std::fs::create_dir_all(dir).map_err(|source| ClusterError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let (mut config, listeners) = match ports {
        Ports::Consecutive { base } => {
            let last = u64::from(base) + 2 * count;
            if base == 0 || last > u64::from(u16::MAX) + 1 {
                return Err(ClusterError::PortsOutOfRange { base, count });
            }
            (ClusterConfig::local(count, Path::new(""), base), None)
        }
        Ports::Free => {
            let local =
                LocalCluster::bind(count, Path::new("")).map_err(ClusterError::FreePorts)?;
            (local.config.clone(), Some(local))
        }
    };
    // Drawn per cluster, so that a node of another local cluster is refused.
    config.cluster_id = RandomState::new().hash_one(std::process::id()).max(1);
    configure(&mut config);
    let path = dir.join(CONFIG_FILE_NAME);
    config.save(&path)?;
    ClusterConfig::load(&path)?;
    Ok((path, listeners))
}

/// The nodes of one cluster configuration as child processes.
#[derive(Debug)]
pub struct ProcessCluster {
    /// The `skiff` binary.
    program: PathBuf,
    config_path: PathBuf,
    config: ClusterConfig,
    /// Where `node-<id>.log` files go: the configuration file's directory.
    log_dir: PathBuf,
    running: BTreeMap<NodeId, Child>,
    /// The listeners of every node, bound by this process and passed to
    /// each child it starts; `None` when the nodes bind their addresses.
    listeners: Option<LocalCluster>,
    /// Nodes started some other way than `program node ..` with their
    /// addresses on this host (see [`NodeLaunch`]).
    launches: BTreeMap<NodeId, NodeLaunch>,
    /// Where each node serves its metrics, held by this process (see
    /// [`ProcessCluster::serve_metrics`]).
    metrics: BTreeMap<NodeId, TcpListener>,
    /// Arguments added to every `program node ..` (e.g. `--log-format json`).
    node_args: Vec<std::ffi::OsString>,
}

/// How one node is started when it must not run as a plain child on this
/// host's network, e.g. in a network namespace of the test bed: the command
/// put before `program node ..` (such as `ip netns exec NS`), and the
/// listeners it adopts, bound wherever the caller chose.
#[derive(Debug)]
pub struct NodeLaunch {
    /// The program and arguments that run `program node ..`; empty runs it
    /// directly.
    pub prefix: Vec<std::ffi::OsString>,
    /// The node's peer listener.
    pub peer: TcpListener,
    /// The node's client listener.
    pub client: TcpListener,
}

impl ProcessCluster {
    /// The cluster of the configuration file at `config_path`, whose nodes
    /// run as `program node --config .. --id ..` (`program` is the `skiff`
    /// binary). Each node's output is appended to `node-<id>.log` next to
    /// the configuration file. Starts nothing.
    pub fn new(program: impl Into<PathBuf>, config_path: &Path) -> Result<Self, ClusterError> {
        let config = ClusterConfig::load(config_path)?;
        let log_dir = config_path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Ok(ProcessCluster {
            program: program.into(),
            config_path: config_path.to_path_buf(),
            config,
            log_dir,
            running: BTreeMap::new(),
            listeners: None,
            launches: BTreeMap::new(),
            metrics: BTreeMap::new(),
            node_args: Vec::new(),
        })
    }

    /// Starts node `id` (now and at every restart) as `launch` says.
    pub fn set_launch(&mut self, id: NodeId, launch: NodeLaunch) -> Result<(), ClusterError> {
        self.config.node(id)?;
        self.launches.insert(id, launch);
        Ok(())
    }

    /// Writes a new `count`-node configuration to `dir` as
    /// [`write_local_config`] does and returns its cluster. With
    /// [`Ports::Free`] the cluster keeps the listeners it bound and every
    /// node it starts, restarts included, serves on them. Starts nothing.
    pub fn create_local(
        program: impl Into<PathBuf>,
        dir: &Path,
        count: u64,
        ports: Ports,
    ) -> Result<Self, ClusterError> {
        Self::create_local_configured(program, dir, count, ports, |_| {})
    }

    /// [`ProcessCluster::create_local`], with `configure` applied to the
    /// generated configuration before it is written: for timings or a
    /// segment size other than the defaults (the file is validated after).
    pub fn create_local_configured(
        program: impl Into<PathBuf>,
        dir: &Path,
        count: u64,
        ports: Ports,
        configure: impl FnOnce(&mut ClusterConfig),
    ) -> Result<Self, ClusterError> {
        let (path, listeners) = write_config(dir, count, ports, configure)?;
        let mut cluster = ProcessCluster::new(program, &path)?;
        cluster.listeners = listeners;
        Ok(cluster)
    }

    /// Has every node serve its metrics on a port of 127.0.0.1 that this
    /// process binds now and holds, passing it to the node at every start
    /// (nodes whose listeners this process holds only, as with
    /// [`Ports::Free`]). See [`ProcessCluster::metrics_address`].
    pub fn serve_metrics(&mut self) -> Result<(), ClusterError> {
        for id in self.ids() {
            let failed = |source| ClusterError::Listeners { id, source };
            let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).map_err(failed)?;
            self.metrics.insert(id, listener);
        }
        Ok(())
    }

    /// Where node `id` serves its metrics, after [`ProcessCluster::serve_metrics`].
    pub fn metrics_address(&self, id: NodeId) -> Option<SocketAddr> {
        self.metrics.get(&id)?.local_addr().ok()
    }

    /// Adds `args` to the command line of every node started from now on.
    pub fn add_node_args<I, S>(&mut self, args: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<std::ffi::OsString>,
    {
        self.node_args.extend(args.into_iter().map(Into::into));
    }

    /// The configuration, with data directories resolved.
    pub fn config(&self) -> &ClusterConfig {
        &self.config
    }

    /// The configuration file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Every node id, in configuration order.
    pub fn ids(&self) -> Vec<NodeId> {
        self.config.ids().collect()
    }

    /// Node `id`'s client address.
    pub fn client_address(&self, id: NodeId) -> Result<SocketAddr, ClusterError> {
        Ok(self.config.node(id)?.client_address)
    }

    /// Every node's client address, `host:port`, in configuration order.
    pub fn client_addresses(&self) -> Vec<String> {
        let addresses = self.config.nodes.iter();
        addresses.map(|n| n.client_address.to_string()).collect()
    }

    /// The file node `id`'s output is appended to.
    pub fn log_path(&self, id: NodeId) -> PathBuf {
        self.log_dir.join(format!("node-{id}.log"))
    }

    /// The last lines of node `id`'s log, with a heading, for error messages.
    pub fn log_tail(&self, id: NodeId) -> String {
        const LINES: usize = 12;
        let path = self.log_path(id);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(LINES)..].join("\n");
                format!("last lines of {}:\n{tail}", path.display())
            }
            Err(error) => format!("cannot read {}: {error}", path.display()),
        }
    }

    /// The process id of node `id`, if it runs.
    pub fn pid(&self, id: NodeId) -> Option<u32> {
        self.running.get(&id).map(Child::id)
    }

    /// Whether node `id` was started and has not been stopped or reaped.
    pub fn is_running(&self, id: NodeId) -> bool {
        self.running.contains_key(&id)
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) -> Result<(), ClusterError> {
        for id in self.ids() {
            if !self.is_running(id) {
                self.start(id)?;
            }
        }
        Ok(())
    }

    /// Starts every node that is not running and waits until each answers
    /// `status` on its client address, for at most `patience` each.
    pub async fn start_all_answering(&mut self, patience: Duration) -> Result<(), ClusterError> {
        self.start_all()?;
        for id in self.ids() {
            let address = self.client_address(id)?;
            let probed = address.to_string();
            let answer = crate::status_probe::wait_until_answering(&probed, patience).await;
            if let Err(error) = answer {
                return Err(ClusterError::NotAnswering {
                    id,
                    address,
                    reason: error.to_string(),
                    log_tail: self.log_tail(id),
                });
            }
        }
        Ok(())
    }

    /// Starts node `id`; returns its process id. It serves clients once it
    /// answers `status` (see [`crate::status_probe`]).
    pub fn start(&mut self, id: NodeId) -> Result<u32, ClusterError> {
        self.config.node(id)?;
        if self.is_running(id) {
            return Err(ClusterError::AlreadyRunning(id));
        }
        let inherited = match (self.launches.get(&id), &self.listeners) {
            (Some(launch), _) => {
                let failed = |source| ClusterError::Listeners { id, source };
                let peer = launch.peer.try_clone().map_err(failed)?;
                let client = launch.client.try_clone().map_err(failed)?;
                Some(InheritedListeners::new(peer, client).map_err(failed)?)
            }
            (None, Some(local)) => {
                let inherited = self.inherited_listeners(local, id)?;
                match self.metrics.get(&id) {
                    Some(metrics) => {
                        let failed = |source| ClusterError::Listeners { id, source };
                        let metrics = metrics.try_clone().map_err(failed)?;
                        Some(inherited.with_metrics(metrics).map_err(failed)?)
                    }
                    None => Some(inherited),
                }
            }
            (None, None) => {
                self.check_addresses_free(id)?;
                None
            }
        };
        let log = self.open_log(id)?;
        let log_for_stderr = log.try_clone().map_err(|source| ClusterError::Io {
            path: self.log_path(id),
            source,
        })?;
        let prefix = self.launches.get(&id).map_or(&[][..], |l| &l.prefix[..]);
        let mut command = match prefix.split_first() {
            Some((launcher, arguments)) => {
                let mut command = Command::new(launcher);
                command.args(arguments).arg(&self.program);
                command
            }
            None => Command::new(&self.program),
        };
        command
            .arg("node")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--id")
            .arg(id.to_string())
            .arg("--exit-on-stdin-close")
            .args(&self.node_args);
        if let Some(inherited) = &inherited {
            inherited.add_flags(&mut command);
        }
        let child = command
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_for_stderr)
            .process_group(0)
            .spawn()
            .map_err(|source| ClusterError::Spawn {
                id,
                program: self.program.clone(),
                source,
            })?;
        // The child has its copies; ours must not leak into later children.
        drop(inherited);
        let pid = child.id();
        self.running.insert(id, child);
        Ok(pid)
    }

    /// Refuses to start node `id` if another process listens on one of its
    /// addresses: a node that cannot bind exits at once, but the other
    /// process would answer its clients in its place.
    fn check_addresses_free(&self, id: NodeId) -> Result<(), ClusterError> {
        let node = self.config.node(id)?;
        for address in [node.peer_address, node.client_address] {
            TcpListener::bind(address).map_err(|source| ClusterError::AddressInUse {
                id,
                address,
                source,
            })?;
        }
        Ok(())
    }

    /// Node `id`'s held listeners, ready for its child to inherit.
    fn inherited_listeners(
        &self,
        local: &LocalCluster,
        id: NodeId,
    ) -> Result<InheritedListeners, ClusterError> {
        let failed = |source| ClusterError::Listeners { id, source };
        let peer = local.peer_listener(id).map_err(failed)?;
        let client = local.client_listener(id).map_err(failed)?;
        InheritedListeners::new(peer, client).map_err(failed)
    }

    fn open_log(&self, id: NodeId) -> Result<File, ClusterError> {
        let path = self.log_path(id);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| ClusterError::Io { path, source })
    }

    /// Kills node `id` with SIGKILL, as a crash would, and reaps it.
    pub fn kill(&mut self, id: NodeId) -> Result<ExitStatus, ClusterError> {
        let mut child = self
            .running
            .remove(&id)
            .ok_or(ClusterError::NotRunning(id))?;
        let pid = child.id();
        let failed = |action, source| ClusterError::Process {
            action,
            id,
            pid,
            source,
        };
        // Fails only if the child was already reaped, which `running` rules out.
        child.kill().map_err(|e| failed("kill", e))?;
        child.wait().map_err(|e| failed("wait for", e))
    }

    /// Stops node `id`: SIGTERM, then SIGKILL if it still runs after
    /// `grace`. Returns how it exited.
    pub fn stop(&mut self, id: NodeId, grace: Duration) -> Result<ExitStatus, ClusterError> {
        let child = self
            .running
            .remove(&id)
            .ok_or(ClusterError::NotRunning(id))?;
        let mut stopped = stop_children(vec![(id, child)], grace);
        stopped.pop().expect("one child in, one result out").1
    }

    /// Stops every running node at once: SIGTERM to all, then SIGKILL to
    /// those still running after `grace`. Returns how each exited.
    pub fn stop_all(&mut self, grace: Duration) -> Vec<(NodeId, Result<ExitStatus, ClusterError>)> {
        let children = std::mem::take(&mut self.running).into_iter().collect();
        stop_children(children, grace)
    }

    /// The nodes that exited by themselves since the last call, reaped.
    pub fn reap_exited(&mut self) -> Vec<(NodeId, ExitStatus)> {
        let mut exited = Vec::new();
        self.running.retain(|id, child| match child.try_wait() {
            Ok(Some(status)) => {
                exited.push((*id, status));
                false
            }
            // Still running, or cannot tell: keep it, so it is stopped later.
            Ok(None) | Err(_) => true,
        });
        exited
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        for (id, outcome) in self.stop_all(STOP_GRACE) {
            if let Err(error) = outcome {
                tracing::warn!(%id, %error, "could not stop a node");
            }
        }
    }
}

/// Closes the standard input of every child and sends it SIGTERM, then waits for all of them in one shared grace
/// period, then SIGKILL to the rest.
fn stop_children(
    mut children: Vec<(NodeId, Child)>,
    grace: Duration,
) -> Vec<(NodeId, Result<ExitStatus, ClusterError>)> {
    for (_, child) in &mut children {
        // Closing its standard input asks the same as SIGTERM does.
        drop(child.stdin.take());
        if let Ok(pid) = i32::try_from(child.id()) {
            // An error means it is already gone: waiting below tells how.
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    children
        .into_iter()
        .map(|(id, child)| (id, wait_or_kill(id, child, deadline)))
        .collect()
}

fn wait_or_kill(
    id: NodeId,
    mut child: Child,
    deadline: Instant,
) -> Result<ExitStatus, ClusterError> {
    let pid = child.id();
    let failed = |action, source| ClusterError::Process {
        action,
        id,
        pid,
        source,
    };
    loop {
        if let Some(status) = child.try_wait().map_err(|e| failed("wait for", e))? {
            return Ok(status);
        }
        if Instant::now() >= deadline {
            tracing::warn!(%id, pid, "still running after SIGTERM; sending SIGKILL");
            child.kill().map_err(|e| failed("kill", e))?;
            return child.wait().map_err(|e| failed("wait for", e));
        }
        std::thread::sleep(EXIT_POLL_INTERVAL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ports_follow_the_base_and_data_dirs_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_local_config(dir.path(), 3, Ports::Consecutive { base: 7100 }).unwrap();
        assert_eq!(path, dir.path().join(CONFIG_FILE_NAME));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("data_dir = \"node-3\""), "{text}");
        let config = ClusterConfig::load(&path).unwrap();
        let node = config.node(NodeId(3)).unwrap();
        assert_eq!(node.peer_address.to_string(), "127.0.0.1:7104");
        assert_eq!(node.client_address.to_string(), "127.0.0.1:7105");
        assert_eq!(node.data_dir, dir.path().join("node-3"));
    }

    #[test]
    fn free_ports_are_distinct() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_local_config(dir.path(), 5, Ports::Free).unwrap();
        let config = ClusterConfig::load(&path).unwrap();
        let mut ports: Vec<u16> = config
            .nodes
            .iter()
            .flat_map(|n| [n.peer_address.port(), n.client_address.port()])
            .collect();
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 10);
    }

    #[test]
    fn ports_past_the_last_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let refused = write_local_config(dir.path(), 3, Ports::Consecutive { base: 65531 });
        assert!(
            matches!(
                refused,
                Err(ClusterError::PortsOutOfRange {
                    base: 65531,
                    count: 3
                })
            ),
            "{refused:?}"
        );
        // The last node's client port may be 65535 itself.
        assert!(write_local_config(dir.path(), 3, Ports::Consecutive { base: 65530 }).is_ok());
    }

    #[test]
    fn a_node_whose_address_is_taken_is_not_started() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_local_config(dir.path(), 1, Ports::Free).unwrap();
        let mut cluster = ProcessCluster::new("/nonexistent/skiff", &path).unwrap();
        let taken = TcpListener::bind(cluster.client_address(NodeId(1)).unwrap()).unwrap();
        let refused = cluster.start(NodeId(1));
        assert!(
            matches!(&refused, Err(ClusterError::AddressInUse { address, .. })
                if *address == taken.local_addr().unwrap()),
            "{refused:?}"
        );
    }

    #[test]
    fn free_ports_stay_held_for_the_clusters_whole_life() {
        let dir = tempfile::tempdir().unwrap();
        let cluster =
            ProcessCluster::create_local("/nonexistent/skiff", dir.path(), 2, Ports::Free).unwrap();
        assert_eq!(cluster.config_path(), dir.path().join(CONFIG_FILE_NAME));
        let addresses: Vec<SocketAddr> = (cluster.config.nodes.iter())
            .flat_map(|n| [n.peer_address, n.client_address])
            .collect();
        for address in &addresses {
            assert!(TcpListener::bind(address).is_err(), "{address} is free");
        }
        let inherited = cluster.inherited_listeners(cluster.listeners.as_ref().unwrap(), NodeId(2));
        assert!(inherited.is_ok(), "{inherited:?}");
    }

    #[test]
    fn a_configured_cluster_writes_the_changes_to_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = ProcessCluster::create_local_configured(
            "/nonexistent/skiff",
            dir.path(),
            3,
            Ports::Free,
            |config| config.segment_bytes_max = 4096,
        )
        .unwrap();
        assert_eq!(cluster.config().segment_bytes_max, 4096);
        let saved = ClusterConfig::load(cluster.config_path()).unwrap();
        assert_eq!(saved.segment_bytes_max, 4096);
    }

    #[test]
    fn nodes_that_are_not_running_cannot_be_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_local_config(dir.path(), 1, Ports::Free).unwrap();
        let mut cluster = ProcessCluster::new("/nonexistent/skiff", &path).unwrap();
        assert!(matches!(
            cluster.kill(NodeId(1)),
            Err(ClusterError::NotRunning(NodeId(1)))
        ));
        assert!(matches!(
            cluster.start(NodeId(1)),
            Err(ClusterError::Spawn { id: NodeId(1), .. })
        ));
        assert!(matches!(
            cluster.start(NodeId(9)),
            Err(ClusterError::Config(ConfigError::UnknownNode { id: 9, .. }))
        ));
        assert_eq!(cluster.log_path(NodeId(1)), dir.path().join("node-1.log"));
    }
}
