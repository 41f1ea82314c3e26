//! The `skiff` command-line tool: a thin layer that parses flags and calls
//! the libraries.

mod bench;
mod check_cmd;
mod cluster_args;
mod demo;
mod fs_cmd;
mod node_cmd;
mod scenario_cmd;
mod sim_cmd;
mod status_cmd;
mod up_cmd;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "skiff",
    version,
    about = "Skiff: Raft as a pure state machine, its simulator and its file server"
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
    /// Show each server's role, term, leader and log indices.
    Status(status_cmd::StatusArgs),
    /// Write, read, compare-and-swap or delete a file on the cluster.
    Fs(fs_cmd::FsArgs),
    /// Measure write throughput and latency of skiff, etcd or both, side by side.
    Bench(bench::BenchArgs),
    /// Verify a stopped node's data directory and say what recovery would do.
    Check(check_cmd::CheckArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Scenario(args) => scenario_cmd::run(&args),
        Command::Sim(args) => sim_cmd::run(&args),
        Command::Demo(args) => demo::run(&args),
        Command::Up(args) => up_cmd::run(&args),
        Command::Node(args) => node_cmd::run(&args),
        Command::Status(args) => status_cmd::run(&args),
        Command::Fs(args) => fs_cmd::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Check(args) => check_cmd::run(&args),
    }
}
