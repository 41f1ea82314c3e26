//! The test bed's network: one Linux network namespace per node, one veth
//! pair per pair of nodes, one more veth per node to the root namespace for
//! the clients, and the addresses that make every peer connection cross
//! the link of its own pair.
//!
//! # Addresses (all private to the run's namespaces, except the client subnet)
//!
//! * Node `k` accepts peers on `0.0.0.0:PEER_PORT_BASE + k` in its
//!   namespace, so on every link it has.
//! * `cluster.toml` names node `k`'s peer address `10.100.0.k:PEER_PORT_BASE
//!   + k`. Every namespace has `10.100.0.0/24` on its loopback (the whole
//!   prefix is local), and there the relay of the link to `k` listens: a
//!   node's dial of `k` lands in the relay of its own namespace, which
//!   dials `k` across the link of the pair (see [`super::relay`]).
//! * The link of nodes `a < b` is `10.101.(16a+b).0/24`: `a` is `.a`, `b`
//!   is `.b`. Taking it down (`ip link set down`) removes its routes, so a
//!   dial across it fails at once and bytes on it go nowhere.
//! * Node `k`'s client address is `10.S.k.2:CLIENT_PORT` on a veth whose
//!   other end, `10.S.k.1`, is in the root namespace, where the clients
//!   and the status probes run. `S` is chosen per run among second octets
//!   no root address or route uses, so that runs side by side do not clash.
//!
//! # Names and cleanup
//!
//! Namespaces are `skiff-tb-<pid>-<k>` and root-side veths `sktb<pid>c<k>`
//! (15 characters at most, the kernel's limit), with `<pid>` the test bed's
//! process id: runs side by side never clash, and [`remove_stale`] deletes
//! those of runs whose process is gone. Deleting a namespace destroys its
//! veths with it (a veth pair dies with either end); processes still in it
//! are killed first, since a namespace lives as long as one does.

use anyhow::{bail, Context};
use skiff_node::NodeId;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Command;

/// Node `k` accepts peers on this port plus `k`.
pub const PEER_PORT_BASE: u16 = 7000;
/// Every node's client port, on its own client address.
pub const CLIENT_PORT: u16 = 7100;
/// What every test bed namespace's name begins with.
const NAMESPACE_PREFIX: &str = "skiff-tb-";
/// The most nodes: link subnets are numbered `16a + b`.
pub const NODES_MAX: u64 = 9;

/// Runs `ip` with `arguments`; its error output becomes the error.
pub fn ip(arguments: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("ip")
        .args(arguments)
        .output()
        .with_context(|| format!("cannot run `ip {}`", arguments.join(" ")))?;
    if !output.status.success() {
        bail!(
            "`ip {}` failed: {}",
            arguments.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Why the test bed cannot run here, or `None` when it can: it needs root,
/// the `ip` tool and the right to create a network namespace (tried).
pub fn unmet_precondition() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("the test bed needs root (network namespaces and veth pairs)".into());
    }
    if Command::new("ip").arg("-V").output().is_err() {
        return Some("the `ip` tool (iproute2) is not installed".into());
    }
    let probe = format!("{NAMESPACE_PREFIX}{}-probe", std::process::id());
    if let Err(error) = ip(&["netns", "add", &probe]) {
        return Some(format!("cannot create a network namespace: {error:#}"));
    }
    let veth = format!("sktb{}p", std::process::id());
    let created = ip(&[
        "link", "add", &veth, "netns", &probe, "type", "veth", "peer", "name", "probe",
    ]);
    let _ = ip(&["netns", "del", &probe]);
    created
        .err()
        .map(|error| format!("cannot create a veth pair: {error:#}"))
}

/// Deletes the namespaces of earlier test bed runs whose process is gone,
/// killing what still runs in them. Returns their names.
pub fn remove_stale() -> anyhow::Result<Vec<String>> {
    let listing = ip(&["netns", "list"])?;
    let mut removed = Vec::new();
    for name in listing.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(NAMESPACE_PREFIX) else {
            continue;
        };
        let owner = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = owner.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if alive {
            continue;
        }
        delete_namespace(name);
        removed.push(name.to_string());
    }
    Ok(removed)
}

/// Kills every process in namespace `name`, then deletes it. Best effort:
/// cleanup goes on past a failure.
fn delete_namespace(name: &str) {
    if let Ok(pids) = ip(&["netns", "pids", name]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    }
    if let Err(error) = ip(&["netns", "del", name]) {
        eprintln!("warning: {error:#}");
    }
}

/// The namespaces, links and addresses of one run. Dropping it deletes
/// every namespace it made (and so every veth); stop the processes in them
/// first, or they are killed.
#[derive(Debug)]
pub struct Topology {
    run: u32,
    nodes: u64,
    client_octet: u8,
    created: Vec<String>,
}

impl Topology {
    /// Creates the namespaces and links of `nodes` nodes, every link up.
    pub fn create(nodes: u64) -> anyhow::Result<Topology> {
        anyhow::ensure!(
            (2..=NODES_MAX).contains(&nodes),
            "the test bed runs 2 to {NODES_MAX} nodes"
        );
        let mut topology = Topology {
            run: std::process::id(),
            nodes,
            client_octet: free_client_octet()?,
            created: Vec::new(),
        };
        for id in topology.ids() {
            let namespace = topology.namespace(id);
            ip(&["netns", "add", &namespace])?;
            topology.created.push(namespace.clone());
            ip(&["-n", &namespace, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &namespace,
                "addr",
                "add",
                "10.100.0.0/24",
                "dev",
                "lo",
            ])?;
            topology.add_client_link(id)?;
        }
        for (a, b) in topology.pairs() {
            topology.add_peer_link(a, b)?;
        }
        Ok(topology)
    }

    fn add_client_link(&self, id: NodeId) -> anyhow::Result<()> {
        let namespace = self.namespace(id);
        let root_end = format!("sktb{}c{id}", self.run);
        ip(&[
            "link", "add", &root_end, "type", "veth", "peer", "name", "client", "netns", &namespace,
        ])?;
        let subnet = |host: u8| format!("10.{}.{id}.{host}/24", self.client_octet);
        ip(&["addr", "add", &subnet(1), "dev", &root_end])?;
        ip(&["link", "set", &root_end, "up"])?;
        ip(&["-n", &namespace, "addr", "add", &subnet(2), "dev", "client"])?;
        ip(&["-n", &namespace, "link", "set", "client", "up"])?;
        Ok(())
    }

    fn add_peer_link(&self, a: NodeId, b: NodeId) -> anyhow::Result<()> {
        let (namespace_a, namespace_b) = (self.namespace(a), self.namespace(b));
        let (end_a, end_b) = (link_device(b), link_device(a));
        ip(&[
            "link",
            "add",
            &end_a,
            "netns",
            &namespace_a,
            "type",
            "veth",
            "peer",
            "name",
            &end_b,
            "netns",
            &namespace_b,
        ])?;
        for (namespace, device, me, peer) in
            [(&namespace_a, &end_a, a, b), (&namespace_b, &end_b, b, a)]
        {
            let address = format!("{}/24", link_address(me, peer));
            ip(&["-n", namespace, "addr", "add", &address, "dev", device])?;
            ip(&["-n", namespace, "link", "set", device, "up"])?;
        }
        Ok(())
    }

    /// Every node id, `1..=nodes`.
    pub fn ids(&self) -> Vec<NodeId> {
        (1..=self.nodes).map(NodeId).collect()
    }

    /// Every unordered pair of nodes, lower id first.
    pub fn pairs(&self) -> Vec<(NodeId, NodeId)> {
        let ids = self.ids();
        let mut pairs = Vec::new();
        for (i, &a) in ids.iter().enumerate() {
            pairs.extend(ids[i + 1..].iter().map(|&b| (a, b)));
        }
        pairs
    }

    /// The namespace node `id` runs in.
    pub fn namespace(&self, id: NodeId) -> String {
        format!("{NAMESPACE_PREFIX}{}-{id}", self.run)
    }

    /// The path `ip netns` keeps namespace `id` at, for `setns`.
    pub fn namespace_path(&self, id: NodeId) -> String {
        format!("/run/netns/{}", self.namespace(id))
    }

    /// Node `id`'s peer address as `cluster.toml` names it.
    pub fn peer_address(&self, id: NodeId) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(10, 100, 0, id.0 as u8),
            peer_port(id),
        ))
    }

    /// Node `id`'s client address, reachable from the root namespace.
    pub fn client_address(&self, id: NodeId) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(
            Ipv4Addr::new(10, self.client_octet, id.0 as u8, 2),
            CLIENT_PORT,
        ))
    }

    /// Takes the link between `a` and `b` down (`up == false`) or up.
    pub fn set_link(&self, a: NodeId, b: NodeId, up: bool) -> anyhow::Result<()> {
        let state = if up { "up" } else { "down" };
        for (me, peer) in [(a, b), (b, a)] {
            let device = link_device(peer);
            ip(&["-n", &self.namespace(me), "link", "set", &device, state])?;
        }
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for namespace in self.created.drain(..) {
            delete_namespace(&namespace);
        }
    }
}

/// Moves the calling thread into the network namespace at `path` (see
/// [`Topology::namespace_path`]): the sockets it creates from now on live
/// there, whichever thread uses them later. Only this thread moves.
pub fn enter_namespace(path: &str) -> anyhow::Result<()> {
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {path}"))?;
    nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
        .with_context(|| format!("cannot enter the network namespace {path}"))
}

/// Node `id`'s peer listener (every address of its namespace) and client
/// listener, bound inside its namespace by a thread of their own, for the
/// node process to adopt.
pub fn bind_node_listeners(
    topology: &Topology,
    id: NodeId,
) -> anyhow::Result<(std::net::TcpListener, std::net::TcpListener)> {
    let path = topology.namespace_path(id);
    let peer = SocketAddr::from((Ipv4Addr::UNSPECIFIED, peer_port(id)));
    let client = topology.client_address(id);
    std::thread::scope(|scope| {
        let bound = scope.spawn(|| -> anyhow::Result<_> {
            enter_namespace(&path)?;
            let bind = |address| {
                std::net::TcpListener::bind(address)
                    .with_context(|| format!("node {id} cannot listen on {address}"))
            };
            Ok((bind(peer)?, bind(client)?))
        });
        bound
            .join()
            .unwrap_or_else(|_| bail!("the binding thread panicked"))
    })
}

/// The port node `id` accepts peers on.
pub fn peer_port(id: NodeId) -> u16 {
    PEER_PORT_BASE + id.0 as u16
}

/// Node `me`'s address on its link to `peer`.
pub fn link_address(me: NodeId, peer: NodeId) -> Ipv4Addr {
    let (low, high) = (me.0.min(peer.0), me.0.max(peer.0));
    Ipv4Addr::new(10, 101, (16 * low + high) as u8, me.0 as u8)
}

/// The device, in a node's namespace, of its link to `peer`.
fn link_device(peer: NodeId) -> String {
    format!("peer{peer}")
}

/// A second octet for the client subnets `10.S.k.0/24` that nothing in
/// the root namespace uses yet; drawn from the process id so that runs
/// started together start their search apart.
fn free_client_octet() -> anyhow::Result<u8> {
    let used = ip(&["-4", "-o", "addr"])? + &ip(&["-4", "route"])?;
    let start = 102 + std::process::id() % 148;
    (0..148)
        .map(|offset| (102 + (start - 102 + offset) % 148) as u8)
        .find(|octet| !used.contains(&format!("10.{octet}.")))
        .context("every client subnet 10.102-249.x.x is in use in the root namespace")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_two_ends_of_a_link_share_a_subnet_and_differ() {
        let (a, b) = (NodeId(2), NodeId(5));
        assert_eq!(link_address(a, b), Ipv4Addr::new(10, 101, 37, 2));
        assert_eq!(link_address(b, a), Ipv4Addr::new(10, 101, 37, 5));
        assert_ne!(
            link_address(NodeId(1), NodeId(3)),
            link_address(NodeId(1), NodeId(4))
        );
    }

    #[test]
    fn peer_ports_are_distinct_per_node() {
        assert_eq!(peer_port(NodeId(1)), 7001);
        assert_eq!(peer_port(NodeId(NODES_MAX)), 7009);
    }
}
