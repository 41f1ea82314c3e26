//! The `skiff` command-line tool: a thin layer that parses flags and calls
//! the libraries.

mod abuse_cmd;
mod bench;
mod certs_cmd;
mod check_cmd;
mod cluster_args;
mod completions_cmd;
mod demo;
mod duration_arg;
mod error_chain;
mod fs_cmd;
mod log_format;
mod member_cmd;
mod node_cmd;
mod scenario_cmd;
mod sim_cmd;
mod snapshot_cmd;
mod status_cmd;
mod testbed;
mod transfer_cmd;
mod up_cmd;
mod usage;

use clap::error::ErrorKind;
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  skiff demo                                   # a cluster, a leader crash, no write lost
  skiff up                                     # a local cluster of 3 file servers
  skiff fs write notes ./notes.txt             # then read, cas, delete
  skiff status                                 # each server's role, term, leader and log
  skiff snapshot --node 2                      # node 2 snapshots its store now
  skiff member list                            # voters and learners, with their addresses
  skiff member add 4 10.0.0.4:7100 10.0.0.4:7200   # then promote 4, remove 1: replace a machine
  skiff sim --faults chaos --seeds 1..=200     # hunt for Raft bugs in simulated clusters
  skiff scenario tests/scenarios               # replay the scenario files
  skiff bench --target both --duration 20s     # skiff and etcd, side by side
  skiff check --dir data/node-1               # verify a stopped node's data directory
  skiff certs --nodes 3 --dir certs            # development certificates for mutual TLS
  skiff up --tls                               # a local cluster with mutual TLS between nodes
  sudo skiff testbed                           # namespaces, nemesis, leadership figures
  skiff abuse --idle 2000 --half-sent 500      # the client limits under abuse, measured
  skiff completions bash > ~/.local/share/bash-completion/completions/skiff

Durations are written like 500ms, 20s, 2m or 1m 30s. `skiff COMMAND --help`
shows each command's flags and examples. A bad command line exits with
status 2, a failure with status 1.";

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "Skiff: Raft as a pure state machine, its simulator and its file server",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files (.scn) against the Raft state machine and report
    /// each as ok or with its first failing line.
    Scenario(scenario_cmd::ScenarioArgs),
    /// Simulate whole clusters under faults, seed by seed, checking the Raft
    /// safety rules after every step.
    Sim(sim_cmd::SimArgs),
    /// Start a three-node cluster on loopback, crash its leader under load,
    /// and check that no acknowledged write was lost. No setup needed.
    Demo(demo::DemoArgs),
    /// Start a whole local cluster of file servers; Ctrl-C stops it.
    Up(up_cmd::UpArgs),
    /// Run one file-server node of a cluster in the foreground.
    Node(node_cmd::NodeArgs),
    /// Show each server's role, term, leader, log indices and snapshot.
    Status(status_cmd::StatusArgs),
    /// Have one node snapshot its file store now and release the log it covers.
    Snapshot(snapshot_cmd::SnapshotArgs),
    /// Have the leader hand its office to node N (before taking its machine
    /// down), and say how long the hand-over took.
    #[command(name = "transfer-leader")]
    TransferLeader(transfer_cmd::TransferArgs),
    /// Show the cluster's members, or change them one at a time: add a
    /// learner, promote it to voter, remove a member.
    Member(member_cmd::MemberArgs),
    /// Write, read, compare-and-swap or delete a file on the cluster.
    Fs(fs_cmd::FsArgs),
    /// Measure write throughput and latency of skiff, etcd or both, side by side.
    Bench(bench::BenchArgs),
    /// Verify a stopped node's data directory and say what recovery would do.
    Check(check_cmd::CheckArgs),
    /// Make a development CA and a certificate and key per node, for mutual
    /// TLS between peers ([tls] in cluster.toml).
    Certs(certs_cmd::CertsArgs),
    /// Hold idle and half-sent connections to a cluster's leader while a
    /// well-behaved client writes: its latencies and the leader's memory.
    Abuse(abuse_cmd::AbuseArgs),
    /// Run a cluster in Linux network namespaces under a nemesis (needs
    /// root): leadership figures and a linearizability check.
    Testbed(testbed::TestbedArgs),
    /// Print a shell completion script for bash, zsh or fish to standard output.
    Completions(completions_cmd::CompletionsArgs),
}

fn main() {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let outcome = match cli.command {
        Command::Scenario(args) => scenario_cmd::run(&args),
        Command::Sim(args) => sim_cmd::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Up(args) => up_cmd::run(&args),
        Command::Node(args) => node_cmd::run(&args),
        Command::Status(args) => status_cmd::run(&args),
        Command::Snapshot(args) => snapshot_cmd::run(&args),
        Command::TransferLeader(args) => transfer_cmd::run(&args),
        Command::Member(args) => member_cmd::run(&args),
        Command::Fs(args) => fs_cmd::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Check(args) => check_cmd::run(&args),
        Command::Certs(args) => certs_cmd::run(&args),
        Command::Abuse(args) => abuse_cmd::run(&args),
        Command::Testbed(args) => testbed::run(&args),
        Command::Completions(args) => completions_cmd::run(&args, &mut Cli::command()),
    };
    let Err(error) = outcome else {
        return;
    };
    if let Some(usage) = error.downcast_ref::<usage::Error>() {
        usage_error(matches.subcommand_name(), usage).exit();
    }
    // `{:#}` prints each cause once, on one line, after its context.
    eprintln!("error: {error:#}");
    std::process::exit(1);
}

/// `usage` as clap words its own errors, with the usage of `subcommand`.
fn usage_error(subcommand: Option<&str>, usage: &usage::Error) -> clap::Error {
    let mut command = Cli::command();
    // Built, the subcommands know their full names ("skiff up").
    command.build();
    match subcommand.and_then(|name| command.find_subcommand_mut(name)) {
        Some(subcommand) => subcommand.error(ErrorKind::ValueValidation, usage),
        None => command.error(ErrorKind::ValueValidation, usage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_definition_is_consistent() {
        // clap's own checks: no clashing flags, defaults that parse, ...
        Cli::command().debug_assert();
    }

    #[test]
    fn a_usage_error_carries_the_subcommand_usage_and_exits_2() {
        let error = usage::error("bad");
        let error = usage_error(Some("up"), error.downcast_ref().unwrap());
        assert_eq!(error.exit_code(), 2);
        let text = error.render().to_string();
        assert!(text.contains("error: bad"), "{text}");
        assert!(text.contains("Usage: skiff up"), "{text}");
    }
}
