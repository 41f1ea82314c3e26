//! The `skiff` command-line tool: a thin layer that parses flags and calls
//! the libraries.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "skiff", version, about = "Skiff: Raft as a pure state machine, its simulator and its file server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {}
}
