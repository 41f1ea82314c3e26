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
  skiff status --watch --interval 500ms       # a live view; Ctrl-C exits

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
    /// Refresh a live view (role, term, commit, applied, lag behind the
    /// leader, last leader change and why) until Ctrl-C; on a terminal the
    /// screen is redrawn, otherwise one block is printed per refresh.
    #[arg(long)]
    watch: bool,
    /// How often --watch refreshes.
    #[arg(long, default_value = "1s", requires = "watch",
          value_parser = duration_arg::between(Duration::from_millis(100), Duration::from_secs(3600)))]
    interval: Duration,
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
    if args.watch {
        let watch = watch(&servers, &addresses, tls.as_ref(), args);
        let signal = runtime.block_on(async {
            tokio::select! {
                signal = skiff::shutdown::requested() => Ok(signal),
                failed = watch => failed.map(|()| "stopped"),
            }
        })?;
        eprintln!("{signal}");
        return Ok(());
    }
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
/// Probes and redraws every `args.interval` until it fails to write.
async fn watch(
    servers: &[Server],
    addresses: &[String],
    tls: Option<&skiff_fs::ClientTls>,
    args: &StatusArgs,
) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let terminal = std::io::stdout().is_terminal();
    let mut ticks = tokio::time::interval(args.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let reports = probe_all_with(tls, addresses, args.timeout).await;
        let mut block = Vec::new();
        if terminal {
            // Clear the screen and go home: a plain ANSI redraw.
            block.extend_from_slice(b"\x1b[2J\x1b[H");
        }
        writeln!(
            block,
            "{}",
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        )?;
        write_watch_table(&mut block, servers, &reports, unix_ms())?;
        if !terminal {
            writeln!(block)?;
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&block).context("writing the view")?;
        out.flush().context("writing the view")?;
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

const WATCH_WIDTHS: [usize; 9] = [5, 21, 10, 5, 7, 8, 8, 6, 0];

/// The live view: LAG is how many entries a node's log is behind the
/// leader's (as each answered); LEADER CHANGE says how long ago the node
/// learned of its current leader and why the one before was lost.
fn write_watch_table(
    out: &mut impl Write,
    servers: &[Server],
    reports: &[Result<StatusReport, ProbeError>],
    now_ms: u64,
) -> std::io::Result<()> {
    let header = [
        "node",
        "address",
        "role",
        "term",
        "leader",
        "commit",
        "applied",
        "lag",
        "leader change",
    ];
    let cells = |cells: [String; 9]| -> String {
        let line: String = (cells.iter().zip(WATCH_WIDTHS))
            .map(|(cell, width)| format!("{cell:<width$} "))
            .collect();
        line.trim_end().to_string()
    };
    writeln!(out, "{}", cells(header.map(String::from)))?;
    // The newest term's leader, as it answered for itself.
    let leader_last = (reports.iter().flatten())
        .filter(|report| report.role == skiff_node::Role::Leader)
        .max_by_key(|report| report.term)
        .map(|report| report.last_index);
    for (server, report) in servers.iter().zip(reports) {
        let line = match report {
            Ok(report) => cells([
                report.id.to_string(),
                server.address.clone(),
                report.role.to_string(),
                report.term.to_string(),
                report.leader.map_or("-".to_string(), |id| id.to_string()),
                report.commit_index.to_string(),
                report.applied.map_or("-".to_string(), |a| a.to_string()),
                leader_last.map_or("-".to_string(), |last| {
                    last.0.saturating_sub(report.last_index.0).to_string()
                }),
                report
                    .leader_change
                    .as_ref()
                    .map_or("-".to_string(), |change| {
                        let ago =
                            Duration::from_secs(now_ms.saturating_sub(change.at_unix_ms) / 1000);
                        format!("{} ago, {}", humantime::format_duration(ago), change.reason)
                    }),
            ]),
            Err(error) => {
                let mut row = [const { String::new() }; 9];
                row[0] = server.id.map_or("?".to_string(), |id| id.to_string());
                row[1] = server.address.clone();
                row[2] = "down".to_string();
                row[8] = error.to_string();
                cells(row)
            }
        };
        writeln!(out, "{line}")?;
    }
    Ok(())
}

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
                applied: None,
                leader_change: None,
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
                applied: None,
                leader_change: None,
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

    #[test]
    fn the_watch_view_shows_applied_lag_and_the_last_leader_change() {
        let server = |id: u64| Server {
            id: Some(id),
            address: format!("127.0.0.1:710{id}"),
        };
        let report = |id: u64, role, last: u64| StatusReport {
            id: NodeId(id),
            role,
            term: Term(4),
            leader: Some(NodeId(1)),
            commit_index: LogIndex(last - 1),
            last_index: LogIndex(last),
            repairing: false,
            log: None,
            applied: Some(LogIndex(last - 2)),
            leader_change: Some(skiff_fs::protocol::LeaderChangeReport {
                at_unix_ms: 10_000,
                reason: "election_timeout",
            }),
        };
        let reports = [
            Ok(report(1, Role::Leader, 120)),
            Ok(report(2, Role::Follower, 100)),
        ];
        let mut out = Vec::new();
        write_watch_table(&mut out, &[server(1), server(2)], &reports, 72_000).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("node  address"), "{text}");
        assert!(
            lines[1].contains(" 119      118      0      1m 2s ago, election_timeout"),
            "{text}"
        );
        assert!(
            lines[2].contains(" 99       98       20     1m 2s ago, election_timeout"),
            "{text}"
        );
    }
}
