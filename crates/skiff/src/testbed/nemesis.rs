//! The nemesis: the faults the test bed injects into a running cluster of
//! `skiff node` processes in their namespaces, and the undoing of each.
//!
//! * Partitions take links down (the veth and the relay's connections
//!   across it): whole partitions cut every link between two sides, an
//!   isolated node is a side of one, a partial partition cuts chosen links
//!   only (A sees B, B sees C, C does not see A).
//! * One-way cuts hold one direction in the relay.
//! * Crashes are `kill -9`, restarts start the node again on the same
//!   listeners; pauses are SIGSTOP, resumed with SIGCONT.
//!
//! [`Nemesis::heal_all`] undoes whatever is in force, so that each
//! scenario starts from a healthy cluster.

use super::relay::RelayControl;
use super::topology::{bind_node_listeners, Topology};
use anyhow::Context;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use skiff::process_cluster::{NodeLaunch, ProcessCluster, CONFIG_FILE_NAME};
use skiff_node::{ClusterConfig, NodeId};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The cluster's timing, as written to its `cluster.toml`.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// The base election timeout.
    pub election_timeout: Duration,
}

/// The file whose presence hangs node `{id}`'s syncs, in the test bed's
/// directory (`[faults] sync_stall_file`).
pub const STALL_FILE: &str = "stall-{id}";

/// Writes `dir/cluster.toml` for the nodes of `topology` with `timing`,
/// and returns the cluster of node processes, each to be started in its
/// namespace (by `ip netns exec`) on listeners bound there.
pub fn create_cluster(
    program: &Path,
    dir: &Path,
    topology: &Topology,
    timing: Timing,
) -> anyhow::Result<ProcessCluster> {
    let count = topology.ids().len() as u64;
    let mut config = ClusterConfig::local(count, Path::new(""), 1);
    config.cluster_id = u64::from(std::process::id()).max(1);
    config.election_timeout_ms = timing.election_timeout.as_millis() as u64;
    // A third of the election timeout, as the defaults have it (100 of 300).
    config.heartbeat_interval_ms = (config.election_timeout_ms / 3).max(1);
    // The stall scenario hangs a node's disk by creating this file.
    config.faults.sync_stall_file = Some(dir.join(STALL_FILE));
    for node in &mut config.nodes {
        let id = NodeId(node.id);
        node.peer_address = topology.peer_address(id);
        node.client_address = topology.client_address(id);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(CONFIG_FILE_NAME);
    config.save(&path)?;
    let mut cluster = ProcessCluster::new(program, &path)?;
    for id in topology.ids() {
        let (peer, client) = bind_node_listeners(topology, id)?;
        let namespace = topology.namespace(id);
        let prefix = ["ip", "netns", "exec", &namespace].map(Into::into).to_vec();
        cluster.set_launch(
            id,
            NodeLaunch {
                prefix,
                peer,
                client,
            },
        )?;
    }
    Ok(cluster)
}

/// One fault the nemesis can inject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Every link between the two sides is down.
    Partition(BTreeSet<NodeId>, BTreeSet<NodeId>),
    /// Only these links are down (a partial partition).
    LinksDown(Vec<(NodeId, NodeId)>),
    /// What the first node sends the second is held.
    OneWay(NodeId, NodeId),
    /// The node was killed with SIGKILL.
    Crash(NodeId),
    /// The node was stopped with SIGSTOP.
    Pause(NodeId),
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |ids: &BTreeSet<NodeId>| {
            let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
            ids.join(",")
        };
        match self {
            Fault::Partition(a, b) => write!(f, "partition {{{}}} | {{{}}}", list(a), list(b)),
            Fault::LinksDown(links) => {
                let links: Vec<String> = links.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                write!(f, "links down {}", links.join(" "))
            }
            Fault::OneWay(from, to) => write!(f, "one-way cut {from} -> {to}"),
            Fault::Crash(id) => write!(f, "kill -9 node {id}"),
            Fault::Pause(id) => write!(f, "SIGSTOP node {id}"),
        }
    }
}

/// Injects faults and undoes them.
pub struct Nemesis<'a> {
    topology: &'a Topology,
    relays: Arc<RelayControl>,
    /// The node processes.
    pub cluster: ProcessCluster,
    in_force: Vec<Fault>,
}

impl<'a> Nemesis<'a> {
    /// The nemesis of `cluster`, whose network is `topology` and `relays`.
    pub fn new(topology: &'a Topology, relays: Arc<RelayControl>, cluster: ProcessCluster) -> Self {
        Nemesis {
            topology,
            relays,
            cluster,
            in_force: Vec::new(),
        }
    }

    /// Injects `fault`; it stays in force until [`Nemesis::heal_all`].
    pub fn inject(&mut self, fault: Fault) -> anyhow::Result<()> {
        match &fault {
            Fault::Partition(a, b) => {
                for (&x, &y) in a.iter().flat_map(|x| b.iter().map(move |y| (x, y))) {
                    self.set_link(x, y, false)?;
                }
            }
            Fault::LinksDown(links) => {
                for &(a, b) in links {
                    self.set_link(a, b, false)?;
                }
            }
            Fault::OneWay(from, to) => self.relays.set_one_way_cut(*from, *to, true),
            Fault::Crash(id) => {
                self.cluster.kill(*id)?;
            }
            Fault::Pause(id) => self.signal(*id, Signal::SIGSTOP)?,
        }
        self.in_force.push(fault);
        Ok(())
    }

    /// The partition that isolates `id` from every other node.
    pub fn isolation(&self, id: NodeId) -> Fault {
        let others = self.topology.ids().into_iter().filter(|&n| n != id);
        Fault::Partition(BTreeSet::from([id]), others.collect())
    }

    /// Undoes every fault in force, latest first: links up, cuts released,
    /// paused nodes continued, crashed nodes restarted.
    pub fn heal_all(&mut self) -> anyhow::Result<()> {
        while let Some(fault) = self.in_force.pop() {
            match fault {
                Fault::Partition(a, b) => {
                    for (&x, &y) in a.iter().flat_map(|x| b.iter().map(move |y| (x, y))) {
                        self.set_link(x, y, true)?;
                    }
                }
                Fault::LinksDown(links) => {
                    for (a, b) in links {
                        self.set_link(a, b, true)?;
                    }
                }
                Fault::OneWay(from, to) => self.relays.set_one_way_cut(from, to, false),
                Fault::Crash(id) => {
                    self.cluster.start(id)?;
                }
                Fault::Pause(id) => self.signal(id, Signal::SIGCONT)?,
            }
        }
        Ok(())
    }

    fn set_link(&self, a: NodeId, b: NodeId, up: bool) -> anyhow::Result<()> {
        // Relay first when cutting, so no byte slips through in between;
        // veth first when healing, so the nodes' next dial gets across.
        if up {
            self.topology.set_link(a, b, true)?;
            self.relays.set_link_down(a, b, false);
        } else {
            self.relays.set_link_down(a, b, true);
            self.topology.set_link(a, b, false)?;
        }
        Ok(())
    }

    fn signal(&self, id: NodeId, signal: Signal) -> anyhow::Result<()> {
        let pid = self
            .cluster
            .pid(id)
            .with_context(|| format!("node {id} is not running"))?;
        let pid = Pid::from_raw(i32::try_from(pid).context("process id out of range")?);
        kill(pid, signal).with_context(|| format!("cannot send {signal} to node {id}"))
    }
}

impl Drop for Nemesis<'_> {
    fn drop(&mut self) {
        // A stopped node ignores SIGTERM until continued: continue every
        // paused node, so that the cluster's own drop stops them in time.
        for fault in &self.in_force {
            if let Fault::Pause(id) = fault {
                let _ = self.signal(*id, Signal::SIGCONT);
            }
        }
    }
}
