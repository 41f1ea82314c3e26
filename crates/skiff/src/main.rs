//! The `skiff` command-line tool: a thin layer that parses flags and calls
//! the libraries.

mod scenario_cmd;
mod sim_cmd;

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Scenario(args) => scenario_cmd::run(&args),
        Command::Sim(args) => sim_cmd::run(&args),
    }
}
