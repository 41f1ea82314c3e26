//! How the client commands (`skiff status`, `skiff fs`) find the servers:
//! a list of addresses, or a cluster configuration file, by default the one
//! `skiff up` writes in the current directory; and whether to speak TLS to
//! them: when the configuration says `[tls] clients = true`, or when
//! `--tls-ca` names the CA to trust.

use anyhow::Context;
use skiff_fs::ClientTls;
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
    /// Speak TLS to the servers, trusting this CA certificate (PEM), e.g.
    /// with --servers. A configuration with `[tls] clients = true` turns
    /// TLS on by itself, with its own CA.
    #[arg(long, value_name = "FILE", global = true)]
    tls_ca: Option<PathBuf>,
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
        let Some(config) = self.cluster_config()? else {
            return Ok(self
                .servers
                .iter()
                .map(|address| Server {
                    id: None,
                    address: address.trim().to_string(),
                })
                .collect());
        };
        Ok(config
            .nodes
            .iter()
            .map(|node| Server {
                id: Some(node.id),
                address: node.client_address.to_string(),
            })
            .collect())
    }

    /// TLS for the servers: with `--tls-ca`, or when the configuration says
    /// `[tls] clients = true`; `None` for plain TCP. With a configuration,
    /// each address must show its own node's certificate; with addresses
    /// only, any node's certificate from the CA will do.
    pub fn client_tls(&self) -> anyhow::Result<Option<ClientTls>> {
        let config = self.cluster_config()?;
        let tls = match (&self.tls_ca, &config) {
            (Some(ca), _) => Some(ClientTls::from_ca_file(ca)?),
            (None, Some(config)) => ClientTls::for_cluster(config)?,
            (None, None) => None,
        };
        Ok(match (tls, &config) {
            (Some(tls), Some(config)) => Some(tls.knowing_nodes(config)),
            (tls, _) => tls,
        })
    }

    /// The configuration file's contents, `None` when `--servers` names the
    /// servers. Parsed, not loaded: a client needs the addresses and the CA,
    /// not the data directories that loading checks.
    fn cluster_config(&self) -> anyhow::Result<Option<ClusterConfig>> {
        if !self.servers.is_empty() {
            return Ok(None);
        }
        let path = self.config.as_deref().unwrap_or(Path::new(DEFAULT_CONFIG));
        let mut config = std::fs::read_to_string(path)
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
        // As loading would: a relative CA path is relative to the file.
        if let Some(tls) = &mut config.tls {
            if tls.ca.is_relative() {
                tls.ca = path.parent().unwrap_or(Path::new(".")).join(&tls.ca);
            }
        }
        Ok(Some(config))
    }

    /// Whether the servers come from a configuration file (no
    /// `--servers`), which a membership change leaves to be updated.
    pub fn uses_config(&self) -> bool {
        self.servers.is_empty()
    }

    /// Only the addresses.
    pub fn addresses(&self) -> anyhow::Result<Vec<String>> {
        Ok(self.servers()?.into_iter().map(|s| s.address).collect())
    }
}
