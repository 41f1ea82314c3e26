//! skiff-core and raft-rs side by side: the same in-memory workloads, in one
//! run. See bench/README.md for what each figure means.

mod alloc_counter;
mod cluster;
mod raft_cluster;
mod report;
mod skiff_cluster;
mod workload;

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use cluster::Cluster;
use raft_cluster::RaftCluster;
use report::{Figure, Line};
use skiff_cluster::SkiffCluster;
use std::process::Command;

#[global_allocator]
static ALLOCATOR: alloc_counter::CountingAllocator = alloc_counter::CountingAllocator;

/// Benchmarks skiff-core against raft-rs 0.7 (MemStorage): peers in one
/// process, messages handed over in memory, no disk.
#[derive(Parser, Debug)]
struct Args {
    /// Smoke run: few appends and 3 runs per figure.
    #[arg(long)]
    quick: bool,
    /// Runs per figure; each printed figure is their median.
    #[arg(long)]
    runs: Option<usize>,
    /// Appends per sequential run.
    #[arg(long)]
    sequential_appends: Option<u64>,
    /// Appends per pipelined run.
    #[arg(long)]
    pipelined_appends: Option<u64>,
    /// Run every measurement in this process instead of a fresh process
    /// each (see bench/README.md: the allocator then carries state from one
    /// run into the next).
    #[arg(long)]
    in_process: bool,
    /// Run one workload once, on one implementation, and print its figures
    /// (for `valgrind --tool=callgrind` and `perf`); needs `--impl`.
    #[arg(long, value_enum, requires = "implementation")]
    workload: Option<Workload>,
    /// The implementation for `--workload`.
    #[arg(long = "impl", value_enum, requires = "workload")]
    implementation: Option<Implementation>,
    /// Appends for `--workload`.
    #[arg(long, default_value_t = 100_000)]
    iterations: u64,
    /// Cluster size for `--workload`.
    #[arg(long, default_value_t = 3)]
    peers: u64,
    /// With `--workload`: print only the figures, space-separated (what the
    /// comparison reads from the processes it starts).
    #[arg(long, requires = "workload")]
    raw: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    /// Commits per second and mean latency, one append at a time.
    Sequential,
    /// Entries per second, 1,000 appends offered per turn.
    Pipelined,
    /// Heap allocations and bytes per committed entry, sequentially.
    Allocations,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Sequential => "sequential",
            Workload::Pipelined => "pipelined",
            Workload::Allocations => "allocations",
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Implementation {
    Skiff,
    #[value(name = "raft-rs")]
    RaftRs,
}

impl Implementation {
    fn name(self) -> &'static str {
        match self {
            Implementation::Skiff => "skiff",
            Implementation::RaftRs => "raft-rs",
        }
    }
}

/// How much work the comparison does.
struct Plan {
    runs: usize,
    sequential_appends: u64,
    pipelined_appends: u64,
    allocation_appends: u64,
    in_process: bool,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if let (Some(workload), Some(implementation)) = (args.workload, args.implementation) {
        let figures = measure(workload, implementation, args.peers, args.iterations);
        print_single(workload, implementation, &args, &figures);
        return Ok(());
    }
    let (runs, sequential, pipelined) = if args.quick {
        (3, 10_000, 100_000)
    } else {
        (5, 200_000, 1_000_000)
    };
    let plan = Plan {
        runs: args.runs.unwrap_or(runs).max(1),
        sequential_appends: args.sequential_appends.unwrap_or(sequential),
        pipelined_appends: args.pipelined_appends.unwrap_or(pipelined),
        allocation_appends: 20_000,
        in_process: args.in_process,
    };
    compare(&plan)
}

/// Runs `workload` once, here, and returns its figures: commits/s and mean
/// latency in us (sequential), entries/s (pipelined), or allocations and
/// bytes per entry (allocations).
fn measure(
    workload: Workload,
    implementation: Implementation,
    peers: u64,
    appends: u64,
) -> Vec<f64> {
    match implementation {
        Implementation::Skiff => measure_with::<SkiffCluster>(workload, peers, appends),
        Implementation::RaftRs => measure_with::<RaftCluster>(workload, peers, appends),
    }
}

fn measure_with<C: Cluster>(workload: Workload, peers: u64, appends: u64) -> Vec<f64> {
    match workload {
        Workload::Sequential => {
            let result = workload::sequential::<C>(peers, appends);
            vec![
                result.commits_per_second,
                result.latency_mean.as_secs_f64() * 1e6,
            ]
        }
        Workload::Pipelined => vec![workload::pipelined::<C>(peers, appends)],
        Workload::Allocations => {
            let counted = workload::sequential_allocations::<C>(peers, appends);
            vec![
                counted.allocations as f64 / appends as f64,
                counted.bytes as f64 / appends as f64,
            ]
        }
    }
}

fn print_single(workload: Workload, implementation: Implementation, args: &Args, figures: &[f64]) {
    if args.raw {
        let numbers: Vec<String> = figures.iter().map(f64::to_string).collect();
        println!("{}", numbers.join(" "));
        return;
    }
    let what = match workload {
        Workload::Sequential => format!(
            "{:.0} commits/s, mean latency {:.3} us",
            figures[0], figures[1]
        ),
        Workload::Pipelined => format!("{:.0} entries/s", figures[0]),
        Workload::Allocations => format!(
            "{:.2} allocations and {:.0} bytes per committed entry",
            figures[0], figures[1]
        ),
    };
    println!(
        "{} peers={} {} appends={}: {what}",
        implementation.name(),
        args.peers,
        workload.name(),
        args.iterations
    );
}

/// Runs `workload` once in a fresh process of this binary, so that no run
/// inherits the allocator state another one left behind.
fn measure_isolated(
    workload: Workload,
    implementation: Implementation,
    peers: u64,
    appends: u64,
) -> Result<Vec<f64>> {
    let exe = std::env::current_exe().context("locating the bench binary")?;
    let output = Command::new(exe)
        .args([
            "--workload",
            workload.name(),
            "--impl",
            implementation.name(),
        ])
        .args([
            "--peers",
            &peers.to_string(),
            "--iterations",
            &appends.to_string(),
        ])
        .arg("--raw")
        .output()
        .context("starting a measurement process")?;
    if !output.status.success() {
        bail!(
            "{} {} failed: {}",
            implementation.name(),
            workload.name(),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .map(|number| number.parse::<f64>().context("reading a figure"))
        .collect()
}

/// The figures of every run of `workload`, skiff's and raft-rs's, the two
/// taking turns run by run.
fn runs(plan: &Plan, workload: Workload, peers: u64, appends: u64) -> Result<[Vec<Vec<f64>>; 2]> {
    let mut figures = [Vec::new(), Vec::new()];
    for _ in 0..plan.runs {
        for (slot, implementation) in [Implementation::Skiff, Implementation::RaftRs]
            .into_iter()
            .enumerate()
        {
            let run = if plan.in_process {
                measure(workload, implementation, peers, appends)
            } else {
                measure_isolated(workload, implementation, peers, appends)?
            };
            figures[slot].push(run);
        }
    }
    Ok(figures)
}

/// The median over runs of figure number `index`.
fn median_of(runs: &[Vec<f64>], index: usize) -> f64 {
    report::median(runs.iter().map(|figures| figures[index]).collect())
}

fn compare(plan: &Plan) -> Result<()> {
    println!(
        "skiff-core vs raft-rs 0.7 (MemStorage): peers in one process, messages in memory, no disk"
    );
    println!(
        "sequential: {} appends of {} bytes, one at a time; pipelined: {} appends of {} bytes, {} offered per turn",
        plan.sequential_appends,
        workload::SEQUENTIAL_BYTES,
        plan.pipelined_appends,
        workload::PIPELINED_BYTES,
        workload::PIPELINED_PER_TURN
    );
    println!(
        "each figure is the median of {} runs, the implementations taking turns, {}",
        plan.runs,
        if plan.in_process {
            "all in this process"
        } else {
            "each run in a fresh process"
        }
    );
    for peers in [3, 5] {
        println!();
        let [skiff, raft] = runs(plan, Workload::Sequential, peers, plan.sequential_appends)?;
        Line::new(peers, "sequential", Figure::CommitsPerSecond)
            .print(median_of(&skiff, 0), median_of(&raft, 0));
        Line::new(peers, "sequential", Figure::LatencyMicros)
            .print(median_of(&skiff, 1), median_of(&raft, 1));
        let [skiff, raft] = runs(plan, Workload::Pipelined, peers, plan.pipelined_appends)?;
        Line::new(peers, "pipelined", Figure::EntriesPerSecond)
            .print(median_of(&skiff, 0), median_of(&raft, 0));
        // Allocation counts do not vary from run to run: one run each.
        let once = Plan { runs: 1, ..*plan };
        let [skiff, raft] = runs(&once, Workload::Allocations, peers, plan.allocation_appends)?;
        Line::new(peers, "sequential", Figure::AllocationsPerEntry).print(skiff[0][0], raft[0][0]);
        Line::new(peers, "sequential", Figure::AllocatedBytesPerEntry)
            .print(skiff[0][1], raft[0][1]);
    }
    Ok(())
}
