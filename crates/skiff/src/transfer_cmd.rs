//! `skiff transfer-leader N`: asks the cluster's leader to hand its office
//! to node N (Raft's leadership transfer) with the protocol's `transfer`
//! extension, then waits until the cluster agrees that N leads, and says
//! how long it took.

use crate::cluster_args::ServersArgs;
use crate::{duration_arg, member_cmd};
use anyhow::Context;
use skiff::status_probe::{
    agreed_leader, probe_all_with, probe_with, request_member_list_with, request_transfer_with,
};
use skiff_fs::protocol::{StatusReport, TransferAnswer};
use skiff_fs::ClientTls;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  skiff transfer-leader 3
  skiff transfer-leader 2 --config skiff-cluster/cluster.toml
  skiff transfer-leader 1 --servers 127.0.0.1:7101,127.0.0.1:7102,127.0.0.1:7103

Before a machine is taken down (a rolling upgrade, a kernel patch), move
leadership off it so that clients see a hand-over of a few milliseconds
instead of an election timeout without a leader. The leader stops taking
writes (the servers hold them and submit them again), brings node N's log up
to date, and tells it to stand at once; the cluster then agrees on N, and
this prints, e.g.:

  leadership moved from node 1 to node 3 in 4.8 ms (term 5)

The time runs from sending the request to the leader until a majority of
the servers report N as the leader. The leader gives up after an election
timeout if N cannot take office (down, cut off, or too far behind).

With --config (by default skiff-cluster/cluster.toml, what `skiff up` writes)
or --servers, every server of the cluster must be listed. TLS is used when
the configuration says [tls] clients = true, or with --tls-ca.

Only a voter can lead: a learner is refused (promote it first with `skiff
member promote N`), as is a node the leader's configuration does not hold.

Exit status: 0 when N leads (also when it led already); 1 when the transfer
was refused or did not finish within --timeout (it says why); 2 for a bad
command line.";

/// How often the servers are asked who leads while the hand-over runs.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// How long one status probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Arguments of `skiff transfer-leader`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct TransferArgs {
    /// The node to hand leadership to, by its id.
    #[arg(value_name = "N")]
    node: u64,
    #[command(flatten)]
    servers: ServersArgs,
    /// How long to wait for a leader, for the hand-over and for the
    /// cluster to agree on N, 1ms to 1h: `10s`, `500ms`.
    #[arg(long, default_value = "10s",
          value_parser = duration_arg::between(Duration::from_millis(1), Duration::from_secs(3600)))]
    timeout: Duration,
}

/// Hands leadership to the node and prints how long it took.
pub fn run(args: &TransferArgs) -> anyhow::Result<()> {
    let servers = args.servers.servers()?;
    let addresses: Vec<String> = servers.iter().map(|s| s.address.clone()).collect();
    let tls = args.servers.client_tls()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let moved = runtime.block_on(transfer(tls.as_ref(), &addresses, args.node, args.timeout))?;
    match moved {
        Moved::Already(leader) => println!(
            "node {} leads already (term {}); nothing to do",
            leader.id, leader.term
        ),
        Moved::Over { from, to, took } => println!(
            "leadership moved from node {from} to node {} in {:.1} ms (term {})",
            to.id,
            took.as_secs_f64() * 1000.0,
            to.term
        ),
    }
    Ok(())
}

/// What a transfer did.
enum Moved {
    /// The target led already.
    Already(StatusReport),
    /// Leadership went from node `from` to `to`, agreed `took` after the
    /// request was sent.
    Over {
        from: u64,
        to: StatusReport,
        took: Duration,
    },
}

async fn transfer(
    tls: Option<&ClientTls>,
    addresses: &[String],
    to: u64,
    timeout: Duration,
) -> anyhow::Result<Moved> {
    let deadline = tokio::time::Instant::now() + timeout;
    let (leader, leader_address) = loop {
        let reports = probe_all_with(tls, addresses, PROBE_TIMEOUT).await;
        if let Some(leader) = agreed_leader(&reports, addresses.len()) {
            let address = addresses
                .iter()
                .zip(&reports)
                .find(|(_, r)| r.as_ref().is_ok_and(|r| r.id == leader.id))
                .map(|(address, _)| address.clone());
            if let Some(address) = address {
                break (leader, address);
            }
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("the servers agreed on no leader within {timeout:?}; nothing was asked");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    if leader.id.0 == to {
        return Ok(Moved::Already(leader));
    }
    // The leader's own configuration says whether `to` can lead: the
    // cluster's file may predate the latest membership changes.
    let members = request_member_list_with(tls, &leader_address, PROBE_TIMEOUT)
        .await
        .with_context(|| format!("cannot ask node {} for the membership", leader.id))?;
    member_cmd::check_can_lead(&members, to)?;
    let started = Instant::now();
    let answer = request_transfer_with(tls, &leader_address, to, timeout)
        .await
        .with_context(|| {
            format!(
                "cannot ask node {} at {leader_address} to hand over",
                leader.id
            )
        })?;
    if let TransferAnswer::Refused(reason) = answer {
        anyhow::bail!(
            "node {} ({leader_address}) did not hand over to node {to}: {reason}",
            leader.id
        );
    }
    match majority_names(tls, addresses, to, deadline).await {
        Some(now) => Ok(Moved::Over {
            from: leader.id.0,
            to: now,
            took: started.elapsed(),
        }),
        None => anyhow::bail!(
            "node {} handed over, but the servers did not agree on node {to} as leader within \
             {timeout:?} (it may have lost its election; run `skiff status`)",
            leader.id
        ),
    }
}

/// Asks every server who leads, over and over, each at its own pace, and
/// answers as soon as the latest reports of a majority name node `to` (its
/// own among them), or `None` at `deadline`. A server that is slow or down
/// delays only its own reports, not the measurement.
async fn majority_names(
    tls: Option<&ClientTls>,
    addresses: &[String],
    to: u64,
    deadline: tokio::time::Instant,
) -> Option<StatusReport> {
    let (reported, mut reports) = tokio::sync::mpsc::channel(addresses.len() * 4);
    let mut probes = tokio::task::JoinSet::new();
    for (index, address) in addresses.iter().enumerate() {
        let (address, tls, reported) = (address.clone(), tls.cloned(), reported.clone());
        probes.spawn(async move {
            loop {
                let report = probe_with(tls.as_ref(), &address, PROBE_TIMEOUT).await;
                if reported.send((index, report)).await.is_err() {
                    return;
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        });
    }
    let mut latest: Vec<Option<StatusReport>> = addresses.iter().map(|_| None).collect();
    loop {
        let (index, report) = tokio::time::timeout_at(deadline, reports.recv())
            .await
            .ok()??;
        latest[index] = report.ok();
        let answered: Vec<_> = latest.iter().flatten().map(|r| Ok(*r)).collect();
        if let Some(leader) = agreed_leader(&answered, addresses.len()) {
            if leader.id.0 == to {
                return Some(leader);
            }
        }
    }
}
