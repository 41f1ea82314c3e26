//! `skiff status`: asks every server for its role, term, leader, log
//! indices and snapshot with the protocol's `status` extension, and prints
//! a table.

use crate::cluster_args::{Server, ServersArgs};
use crate::duration_arg;
use anyhow::Context;
use skiff::status_probe::{probe_all_with, ProbeError};
use skiff_fs::protocol::{LogExtent, StatusReport};
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

  node  address               role      term  leader  commit  last    snapshot  log
  1     127.0.0.1:7101        leader    2     1       51118   51118   50000     1118
  2     127.0.0.1:7103        follower  2     1       51117   51118   50000     1118
  3     127.0.0.1:7105        down                                                      Connection refused (os error 111)

SNAPSHOT is the index of the snapshot the server's log starts after (0
before its first) and LOG how many entries it keeps after it; `skiff
snapshot --node N` has node N take one now. A server from before snapshots
shows `-` in both.

Each server answers for itself (`status\\r\\n` -> `STATUS id=.. role=.. term=..
leader=.. commit=.. last=.. repairing=.. snapshot=.. log=..`), so the table
may show two leaders for a moment during an election, in different terms.
The exit status is 1 when no server answered.";

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

/// The widths of the table's columns.
const WIDTHS: [usize; 9] = [5, 21, 9, 5, 7, 7, 7, 9, 7];

fn write_table(
    out: &mut impl Write,
    servers: &[Server],
    reports: &[Result<StatusReport, ProbeError>],
) -> std::io::Result<()> {
    let header = [
        "node", "address", "role", "term", "leader", "commit", "last", "snapshot", "log",
    ];
    writeln!(out, "{}", row(header.map(String::from), ""))?;
    for (server, report) in servers.iter().zip(reports) {
        let line = match report {
            Ok(report) => {
                let log = |field: fn(&LogExtent) -> String| {
                    report.log.as_ref().map_or("-".to_string(), field)
                };
                let cells = [
                    report.id.to_string(),
                    server.address.clone(),
                    report.role.to_string(),
                    report.term.to_string(),
                    report.leader.map_or("-".to_string(), |id| id.to_string()),
                    report.commit_index.to_string(),
                    report.last_index.to_string(),
                    log(|log| log.snapshot_index.to_string()),
                    log(|log| log.entries.to_string()),
                ];
                row(cells, if report.repairing { "repairing" } else { "" })
            }
            Err(error) => {
                let mut cells = [const { String::new() }; 9];
                cells[0] = server.id.map_or("?".to_string(), |id| id.to_string());
                cells[1] = server.address.clone();
                cells[2] = "down".to_string();
                row(cells, &error.to_string())
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// One line of the table: the cells padded to their columns, then `note`.
fn row(cells: [String; 9], note: &str) -> String {
    let mut line: String = cells
        .iter()
        .zip(WIDTHS)
        .map(|(cell, width)| format!("{cell:<width$} "))
        .collect();
    line += note;
    line.trim_end().to_string()
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
                log: Some(LogExtent {
                    snapshot_index: LogIndex(100),
                    entries: 19,
                }),
            }),
            Ok(StatusReport {
                id: NodeId(2),
                role: Role::Follower,
                term: Term(3),
                leader: None,
                commit_index: LogIndex(40),
                last_index: LogIndex(41),
                repairing: true,
                log: None,
            }),
            Err(ProbeError::Timeout(Duration::from_secs(1))),
        ];
        let mut out = Vec::new();
        write_table(&mut out, &servers, &reports).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "node  address               role      term  leader  commit  last    snapshot  log\n\
             1     127.0.0.1:7101        leader    2     1       118     119     100       19\n\
             2     127.0.0.1:7102        follower  3     -       40      41      -         -       repairing\n\
             ?     127.0.0.1:7103        down                                                      no answer within 1s\n"
        );
    }
}
