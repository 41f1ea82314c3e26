//! skiff-core and raft-rs side by side: the same in-memory workloads, in one
//! process, in one run. See bench/README.md for what each figure means.

mod alloc_counter;
mod cluster;
mod raft_cluster;
mod report;
mod skiff_cluster;
mod workload;

use clap::{Parser, ValueEnum};
use cluster::Cluster;
use raft_cluster::RaftCluster;
use report::{Figure, Line};
use skiff_cluster::SkiffCluster;

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
    /// Run one workload once, on one implementation, and print its figure
    /// (for `valgrind --tool=callgrind`); needs `--impl`.
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
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Workload {
    Sequential,
    Pipelined,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Implementation {
    Skiff,
    #[value(name = "raft-rs")]
    RaftRs,
}

/// How much work the comparison does.
struct Plan {
    runs: usize,
    sequential_appends: u64,
    pipelined_appends: u64,
    allocation_appends: u64,
}

fn main() {
    let args = Args::parse();
    if let (Some(workload), Some(implementation)) = (args.workload, args.implementation) {
        run_single(workload, implementation, args.peers, args.iterations);
        return;
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
    };
    compare(&plan);
}

/// One workload, once: the mode to run under callgrind or perf.
fn run_single(workload: Workload, implementation: Implementation, peers: u64, appends: u64) {
    match (workload, implementation) {
        (Workload::Sequential, Implementation::Skiff) => {
            print_sequential::<SkiffCluster>(peers, appends)
        }
        (Workload::Sequential, Implementation::RaftRs) => {
            print_sequential::<RaftCluster>(peers, appends)
        }
        (Workload::Pipelined, Implementation::Skiff) => {
            print_pipelined::<SkiffCluster>(peers, appends)
        }
        (Workload::Pipelined, Implementation::RaftRs) => {
            print_pipelined::<RaftCluster>(peers, appends)
        }
    }
}

fn print_sequential<C: Cluster>(peers: u64, appends: u64) {
    let result = workload::sequential::<C>(peers, appends);
    println!(
        "{} peers={peers} sequential appends={appends}: {:.0} commits/s, mean latency {:.3} us",
        C::NAME,
        result.commits_per_second,
        result.latency_mean.as_secs_f64() * 1e6
    );
}

fn print_pipelined<C: Cluster>(peers: u64, appends: u64) {
    let rate = workload::pipelined::<C>(peers, appends);
    println!(
        "{} peers={peers} pipelined appends={appends}: {rate:.0} entries/s",
        C::NAME
    );
}

fn compare(plan: &Plan) {
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
        "each figure is the median of {} runs, the implementations taking turns",
        plan.runs
    );
    for peers in [3, 5] {
        println!();
        compare_sequential(plan, peers);
        compare_pipelined(plan, peers);
        compare_allocations(plan, peers);
    }
}

fn compare_sequential(plan: &Plan, peers: u64) {
    let (mut skiff, mut raft) = (Vec::new(), Vec::new());
    for _ in 0..plan.runs {
        skiff.push(workload::sequential::<SkiffCluster>(
            peers,
            plan.sequential_appends,
        ));
        raft.push(workload::sequential::<RaftCluster>(
            peers,
            plan.sequential_appends,
        ));
    }
    let rate = |runs: &[workload::Sequential]| {
        report::median(runs.iter().map(|r| r.commits_per_second).collect())
    };
    let latency = |runs: &[workload::Sequential]| {
        report::median(
            runs.iter()
                .map(|r| r.latency_mean.as_secs_f64() * 1e6)
                .collect(),
        )
    };
    Line::new(peers, "sequential", Figure::CommitsPerSecond).print(rate(&skiff), rate(&raft));
    Line::new(peers, "sequential", Figure::LatencyMicros).print(latency(&skiff), latency(&raft));
}

fn compare_pipelined(plan: &Plan, peers: u64) {
    let (mut skiff, mut raft) = (Vec::new(), Vec::new());
    for _ in 0..plan.runs {
        skiff.push(workload::pipelined::<SkiffCluster>(
            peers,
            plan.pipelined_appends,
        ));
        raft.push(workload::pipelined::<RaftCluster>(
            peers,
            plan.pipelined_appends,
        ));
    }
    Line::new(peers, "pipelined", Figure::EntriesPerSecond)
        .print(report::median(skiff), report::median(raft));
}

fn compare_allocations(plan: &Plan, peers: u64) {
    let appends = plan.allocation_appends;
    let skiff = workload::sequential_allocations::<SkiffCluster>(peers, appends);
    let raft = workload::sequential_allocations::<RaftCluster>(peers, appends);
    let per_entry = |counted: u64| counted as f64 / appends as f64;
    Line::new(peers, "sequential", Figure::AllocationsPerEntry)
        .print(per_entry(skiff.allocations), per_entry(raft.allocations));
    Line::new(peers, "sequential", Figure::AllocatedBytesPerEntry)
        .print(per_entry(skiff.bytes), per_entry(raft.bytes));
}
