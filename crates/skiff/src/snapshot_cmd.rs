//! `skiff snapshot --node N`: asks node N to snapshot its store now, with
//! the protocol's `snapshot` extension, and prints what it did.

use crate::cluster_args::{Server, ServersArgs};
use crate::{duration_arg, usage};
use anyhow::Context;
use skiff::status_probe::{probe_all_with, request_snapshot_with};
use skiff_fs::protocol::SnapshotAnswer;
use skiff_fs::ClientTls;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  skiff snapshot --node 2
  skiff snapshot --node 2 --config skiff-cluster/cluster.toml
  skiff snapshot --node 1 --servers 127.0.0.1:7101,127.0.0.1:7103
  skiff snapshot --node 1 --config cluster.toml --tls-ca certs/ca.pem

Each node snapshots its file store by itself, by the [snapshot] policy of
cluster.toml (every so many entries or bytes of log), and then discards the
log the snapshot covers. This command has one node do it now, say before a
backup or to shrink its log at once; it changes no file, and it waits until
the snapshot is durable (up to --timeout), then prints, e.g.:

  node 2 (127.0.0.1:7103): snapshot through index 51118 (term 2)

With --config (by default skiff-cluster/cluster.toml, what `skiff up` writes)
N is a node id of the configuration. With --servers, which gives addresses
only, each server is asked which node it is and node N is the one that says
so. TLS is used when the configuration says [tls] clients = true, or with
--tls-ca. `skiff status` shows each node's snapshot and log afterwards.

Exit status: 0 when the node took a snapshot; 1 when it took none (it says
why: nothing applied since its last snapshot, a write that failed, ...) or
could not be reached; 2 for a bad command line.";

/// Arguments of `skiff snapshot`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct SnapshotArgs {
    /// The node to snapshot, by its id.
    #[arg(long, value_name = "N")]
    node: u64,
    #[command(flatten)]
    servers: ServersArgs,
    /// How long to wait for the snapshot to be durable, 1ms to 1h: `30s`, `5m`.
    #[arg(long, default_value = "1m",
          value_parser = duration_arg::between(Duration::from_millis(1), Duration::from_secs(3600)))]
    timeout: Duration,
}

/// Asks the node and prints its answer; fails when it took no snapshot.
pub fn run(args: &SnapshotArgs) -> anyhow::Result<()> {
    let servers = args.servers.servers()?;
    let tls = args.servers.client_tls()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let address = runtime.block_on(address_of(args.node, &servers, tls.as_ref()))?;
    let answer = runtime
        .block_on(request_snapshot_with(tls.as_ref(), &address, args.timeout))
        .with_context(|| format!("cannot ask node {} at {address} for a snapshot", args.node))?;
    match answer {
        SnapshotAnswer::Taken(snapshot) => {
            println!(
                "node {} ({address}): snapshot through index {} (term {})",
                args.node, snapshot.index, snapshot.term
            );
            Ok(())
        }
        SnapshotAnswer::Refused(reason) => {
            anyhow::bail!("node {} ({address}) took no snapshot: {reason}", args.node)
        }
    }
}

/// The client address of node `id`: from the configuration when it names
/// the nodes, else from the servers' own answers to `status`.
async fn address_of(
    id: u64,
    servers: &[Server],
    tls: Option<&ClientTls>,
) -> anyhow::Result<String> {
    if servers.iter().all(|server| server.id.is_some()) {
        return configured_address(id, servers);
    }
    let addresses: Vec<String> = servers.iter().map(|s| s.address.clone()).collect();
    let reports = probe_all_with(tls, &addresses, Duration::from_secs(1)).await;
    let mut seen = Vec::new();
    for (address, report) in addresses.iter().zip(&reports) {
        match report {
            Ok(report) if report.id.0 == id => return Ok(address.clone()),
            Ok(report) => seen.push(format!("node {} at {address}", report.id)),
            Err(error) => seen.push(format!("{address}: {error}")),
        }
    }
    anyhow::bail!(
        "none of the --servers says it is node {id} ({})",
        seen.join("; ")
    )
}

/// The address of node `id` among servers a configuration names.
fn configured_address(id: u64, servers: &[Server]) -> anyhow::Result<String> {
    if let Some(server) = servers.iter().find(|server| server.id == Some(id)) {
        return Ok(server.address.clone());
    }
    let ids: Vec<String> = servers
        .iter()
        .filter_map(|server| server.id.map(|id| id.to_string()))
        .collect();
    Err(usage::error(format!(
        "--node {id}: the configuration has no such node (its nodes: {})",
        ids.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured(ids: &[u64]) -> Vec<Server> {
        ids.iter()
            .map(|&id| Server {
                id: Some(id),
                address: format!("127.0.0.1:{}", 7100 + id),
            })
            .collect()
    }

    #[test]
    fn a_configured_node_is_found_by_its_id() {
        let servers = configured(&[1, 2, 3]);
        assert_eq!(configured_address(2, &servers).unwrap(), "127.0.0.1:7102");
        let error = configured_address(9, &servers).unwrap_err();
        assert!(error.downcast_ref::<usage::Error>().is_some());
        assert_eq!(
            error.to_string(),
            "--node 9: the configuration has no such node (its nodes: 1, 2, 3)"
        );
    }

    #[tokio::test]
    async fn among_bare_addresses_a_node_is_the_server_that_says_it_is() {
        // A server that says it is node 3 to whoever asks.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 8];
                stream.read_exact(&mut request).await.unwrap();
                assert_eq!(&request, b"status\r\n");
                let line = "STATUS id=3 role=leader term=2 leader=3 commit=9 last=9 \
                            repairing=no snapshot=0 log=9\r\n";
                stream.write_all(line.as_bytes()).await.unwrap();
            }
        });
        let servers = [Server {
            id: None,
            address: address.clone(),
        }];
        assert_eq!(address_of(3, &servers, None).await.unwrap(), address);
        let error = address_of(1, &servers, None).await.unwrap_err().to_string();
        assert_eq!(
            error,
            format!("none of the --servers says it is node 1 (node 3 at {address})")
        );
    }
}
