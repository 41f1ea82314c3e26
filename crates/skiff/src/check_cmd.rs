//! `skiff check`: verifies a stopped node's data directory and prints what
//! it found and what recovery would do.

use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  skiff check --dir skiff-cluster/node-1

It reads every log record and checksum, segment continuity against the
manifest, the sync records and both hard-state copies with their repair
flag, and changes nothing.
It takes the directory's lock, so it refuses a directory a running node holds.

Exit status: 0 when the node would start (perhaps after cutting a torn tail
a crash left, perhaps still repairing), 1 when damage was found (the node
would move the damaged files aside and start repairing, or refuse where it
cannot repair) or the directory would be refused, 2 when the directory
cannot be checked (missing, in use) or on usage errors.";

/// Arguments of `skiff check`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct CheckArgs {
    /// The node's data directory.
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
}

/// Prints the report; exits 1 on damage and 2 when the check cannot run.
pub fn run(args: &CheckArgs) -> anyhow::Result<()> {
    match skiff_node::storage::check(&args.dir) {
        Ok(report) => {
            println!("{report}");
            if report.needs_repair() {
                std::process::exit(1);
            }
            Ok(())
        }
        Err(error) => {
            eprintln!("skiff check: cannot check {}: {error}", args.dir.display());
            std::process::exit(2);
        }
    }
}
