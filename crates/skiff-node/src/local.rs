//! A cluster on loopback for tests and benchmarks, on ports that cannot be
//! taken from under it.
//!
//! Asking the kernel for a free port (binding port 0), closing it and
//! handing the number to a node races with everything else that binds
//! ports meanwhile, parallel tests above all. [`LocalCluster`] keeps every
//! listener it bound instead: nodes start on clones of them
//! ([`Node::start_with_listener`]), and a node restarted in the same test
//! gets a clone of the same listener, so its port was never free.
//!
//! While a node is down its listener stays open here, so peers and clients
//! that connect to it wait in the listen backlog until the node is back,
//! as if the network dropped their packets, rather than being refused.

use crate::api::StartError;
use crate::config::ClusterConfig;
use crate::node::Node;
use crate::state_machine::StateMachine;
use skiff_core::NodeId;
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;

/// The configuration of a loopback cluster together with the bound peer
/// and client listeners of its every node.
#[derive(Debug)]
pub struct LocalCluster {
    /// [`ClusterConfig::local`] with the listeners' addresses. Tests may
    /// change the timing, the cluster id and the data directories; the
    /// addresses must stay those of the listeners.
    pub config: ClusterConfig,
    /// Each node's peer and client listeners, by id: they stay bound
    /// whatever the tests do to `config.nodes` (a node removed from the
    /// cluster and from its configuration keeps its ports).
    listeners: Vec<(NodeId, (TcpListener, TcpListener))>,
}

impl LocalCluster {
    /// Binds a peer and a client listener on 127.0.0.1 for each of `count`
    /// nodes (ids `1..=count`, data directories `base_dir/node-i`).
    pub fn bind(count: u64, base_dir: &Path) -> std::io::Result<LocalCluster> {
        let mut config = ClusterConfig::local(count, base_dir, 0);
        let mut listeners = Vec::new();
        for node in &mut config.nodes {
            let peer = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            let client = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
            node.peer_address = peer.local_addr()?;
            node.client_address = client.local_addr()?;
            listeners.push((NodeId(node.id), (peer, client)));
        }
        Ok(LocalCluster { config, listeners })
    }

    /// A new handle to node `id`'s peer listener (the same socket), to
    /// start the node on.
    pub fn peer_listener(&self, id: NodeId) -> std::io::Result<TcpListener> {
        self.listeners(id)?.0.try_clone()
    }

    /// A new handle to node `id`'s client listener (the same socket), for
    /// the application that serves the node's clients.
    pub fn client_listener(&self, id: NodeId) -> std::io::Result<TcpListener> {
        self.listeners(id)?.1.try_clone()
    }

    /// Starts node `id` of [`LocalCluster::config`] on its peer listener.
    pub async fn start_node(&self, id: NodeId) -> Result<Node, StartError> {
        let address = self.config.node(id)?.peer_address;
        let listener = self
            .peer_listener(id)
            .map_err(|source| StartError::Bind { address, source })?;
        Node::start_with_listener(&self.config, id, listener).await
    }

    /// Starts node `id` of [`LocalCluster::config`] on its peer listener,
    /// running `state_machine` ([`Node::start_with_state_machine`]).
    pub async fn start_node_with_state_machine<S: StateMachine>(
        &self,
        id: NodeId,
        state_machine: S,
    ) -> Result<Node, StartError> {
        let address = self.config.node(id)?.peer_address;
        let listener = self
            .peer_listener(id)
            .map_err(|source| StartError::Bind { address, source })?;
        Node::start_with_state_machine(&self.config, id, listener, state_machine).await
    }

    fn listeners(&self, id: NodeId) -> std::io::Result<&(TcpListener, TcpListener)> {
        let found = self.listeners.iter().find(|(node, _)| *node == id);
        found.map(|(_, listeners)| listeners).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("node {id} is not in the local cluster"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn every_address_is_a_distinct_listener_that_stays_bound() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path();
        let cluster = LocalCluster::bind(3, dir).unwrap();
        let mut all: Vec<SocketAddr> = (cluster.config.nodes.iter())
            .flat_map(|n| [n.peer_address, n.client_address])
            .collect();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 6);
        for node in &cluster.config.nodes {
            let id = NodeId(node.id);
            assert_eq!(
                cluster.peer_listener(id).unwrap().local_addr().unwrap(),
                node.peer_address
            );
            assert_eq!(
                cluster.client_listener(id).unwrap().local_addr().unwrap(),
                node.client_address
            );
            // Held here, so nobody else can bind it.
            assert!(TcpListener::bind(node.peer_address).is_err());
            assert_eq!(node.data_dir, dir.join(format!("node-{}", node.id)));
        }
        assert!(cluster.peer_listener(NodeId(4)).is_err());
        cluster.config.validate().unwrap();
    }
}
