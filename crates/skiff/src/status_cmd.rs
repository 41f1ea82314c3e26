//! `skiff status`: asks every server for its role, term, leader and log
//! indices with the protocol's `status` extension, and prints a table.

use crate::cluster_args::{Server, ServersArgs};
use crate::duration_arg;
use anyhow::Context;
use skiff::status_probe::{probe_all_with, ProbeError};
use skiff_fs::protocol::StatusReport;
use std::io::Write;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  skiff status
  skiff status --config skiff-cluster/cluster.toml
  skiff status --servers 127.0.0.1:7101,127.0.0.1:7103
  skiff status --servers 127.0.0.1:7101 --tls-ca skiff-cluster/certs/ca.pem

TLS is used when the configuration says [tls] clients = true, or with --tls-ca.

Output, one line per server; a server that does not answer is down:

  node  address               role      term  leader  commit  last
  1     127.0.0.1:7101        leader    2     1       118     118
  2     127.0.0.1:7103        follower  2     1       117     118
  3     127.0.0.1:7105        down                                   Connection refused (os error 111)

Each server answers for itself (`status\\r\\n` -> `STATUS id=.. role=.. term=..
leader=.. commit=.. last=..`), so the table may show two leaders for a moment
during an election, in different terms. The exit status is 1 when no server
answered.";

/// Arguments of `skiff status`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct StatusArgs {
    #[command(flatten)]
    servers: ServersArgs,
    /// How long to wait for each server, 1ms to 1m: `500ms`, `2s`.
    #[arg(long, default_value = "1s",
          value_parser = duration_arg::between(Duration::from_millis(1), Duration::from_secs(60)))]
    timeout: Duration,
}

/// Prints the table; exits 1 when no server answered.
pub fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let servers = args.servers.servers()?;
    let addresses: Vec<String> = servers.iter().map(|s| s.address.clone()).collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let timeout = args.timeout;
    let tls = args.servers.client_tls()?;
    let reports = runtime.block_on(probe_all_with(tls.as_ref(), &addresses, timeout));
    let mut out = std::io::stdout().lock();
    write_table(&mut out, &servers, &reports).context("writing the table")?;
    out.flush().context("writing the table")?;
    if reports.iter().all(Result::is_err) {
        anyhow::bail!("no server answered");
    }
    Ok(())
}

fn write_table(
    out: &mut impl Write,
    servers: &[Server],
    reports: &[Result<StatusReport, ProbeError>],
) -> std::io::Result<()> {
    writeln!(
        out,
        "{:<5} {:<21} {:<9} {:<5} {:<7} {:<7} last",
        "node", "address", "role", "term", "leader", "commit"
    )?;
    for (server, report) in servers.iter().zip(reports) {
        let line = match report {
            Ok(report) => format!(
                "{:<5} {:<21} {:<9} {:<5} {:<7} {:<7} {}",
                report.id,
                server.address,
                report.role.to_string(),
                report.term,
                report.leader.map_or("-".to_string(), |id| id.to_string()),
                report.commit_index,
                if report.repairing {
                    format!("{}  repairing", report.last_index)
                } else {
                    report.last_index.to_string()
                }
            ),
            Err(error) => format!(
                "{:<5} {:<21} {:<9} {:<5} {:<7} {:<7} {:<6} {error}",
                server.id.map_or("?".to_string(), |id| id.to_string()),
                server.address,
                "down",
                "",
                "",
                "",
                ""
            ),
        };
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_node::{LogIndex, NodeId, Role, Term};

    #[test]
    fn the_table_shows_answers_and_down_servers() {
        let servers = [
            Server {
                id: Some(1),
                address: "127.0.0.1:7101".into(),
            },
            Server {
                id: Some(2),
                address: "127.0.0.1:7102".into(),
            },
            Server {
                id: None,
                address: "127.0.0.1:7103".into(),
            },
        ];
        let reports = [
            Ok(StatusReport {
                id: NodeId(1),
                role: Role::Leader,
                term: Term(2),
                leader: Some(NodeId(1)),
                commit_index: LogIndex(118),
                last_index: LogIndex(119),
                repairing: false,
            }),
            Ok(StatusReport {
                id: NodeId(2),
                role: Role::Follower,
                term: Term(3),
                leader: None,
                commit_index: LogIndex(40),
                last_index: LogIndex(41),
                repairing: true,
            }),
            Err(ProbeError::Timeout(Duration::from_secs(1))),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &servers, &reports).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "node  address               role      term  leader  commit  last\n\
             1     127.0.0.1:7101        leader    2     1       118     119\n\
             2     127.0.0.1:7102        follower  3     -       40      41  repairing\n\
             ?     127.0.0.1:7103        down                                   no answer within 1s\n"
        );
    }
}
