//! How the client commands (`skiff status`, `skiff fs`) find the servers:
//! a list of addresses, or a cluster configuration file, by default the one
//! `skiff up` writes in the current directory.

use anyhow::Context;
use skiff_node::ClusterConfig;
use std::path::{Path, PathBuf};

/// The configuration `skiff up` writes when given no `--dir`.
pub const DEFAULT_CONFIG: &str = "skiff-cluster/cluster.toml";

/// Where the servers are.
#[derive(clap::Args, Debug, Clone)]
pub struct ServersArgs {
    /// The servers' client addresses, comma-separated.
    #[arg(
        long,
        value_name = "HOST:PORT,...",
        value_delimiter = ',',
        conflicts_with = "config",
        global = true
    )]
    servers: Vec<String>,
    /// A cluster configuration file; its nodes' client addresses are used.
    /// Default: skiff-cluster/cluster.toml (written by `skiff up`).
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
}

/// Each server's client address, with its node id when a configuration
/// names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// The node id, when known from a configuration.
    pub id: Option<u64>,
    /// `host:port`.
    pub address: String,
}

impl ServersArgs {
    /// The servers named by the flags, or by the default configuration.
    pub fn servers(&self) -> anyhow::Result<Vec<Server>> {
        if !self.servers.is_empty() {
            return Ok(self
                .servers
                .iter()
                .map(|address| Server {
                    id: None,
                    address: address.trim().to_string(),
                })
                .collect());
        }
        let path = self.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
        // Parsed, not loaded: a client needs the addresses, not the data
        // directories that loading checks.
        let config = std::fs::read_to_string(path)
            .map_err(anyhow::Error::from)
            .and_then(|text| Ok(ClusterConfig::parse(&text)?))
            .with_context(|| {
                if self.config.is_none() {
                    format!(
                    "no --servers or --config given, and the default {DEFAULT_CONFIG} cannot be \
                     used (start a cluster with `skiff up`, or name the servers)"
                )
                } else {
                    format!("cannot use the configuration {}", path.display())
                }
            })?;
        Ok(config
            .nodes
            .iter()
            .map(|node| Server {
                id: Some(node.id),
                address: node.client_address.to_string(),
            })
            .collect())
    }

    /// Only the addresses.
    pub fn addresses(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.servers()?.into_iter().map(|s| s.address).collect())
    }
}
