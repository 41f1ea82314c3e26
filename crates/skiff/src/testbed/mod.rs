//! `skiff testbed`: a cluster of `skiff node` processes, each in its own
//! Linux network namespace, linked pair by pair through veths and shaped by
//! userspace relays, checked for linearizability while a nemesis
//! partitions, heals, kills and pauses nodes; prints the leadership
//! figures of issue 14 with PASS or FAIL.
//!
//! * [`topology`]: namespaces, veths, addresses, preconditions, cleanup.
//! * [`relay`]: delay, jitter, loss and one-way cuts on every directed link.
//! * [`nemesis`]: the node processes in their namespaces, and the faults.
//! * [`clients`]: the recorded workload and its linearizability check.
//! * [`scenarios`]: the measured properties.
//! * [`report`]: progress lines and PASS/FAIL.

mod clients;
mod nemesis;
mod relay;
mod report;
mod scenarios;
mod topology;

use crate::duration_arg;
use anyhow::{bail, Context};
use nemesis::{Nemesis, Timing};
use relay::{Relays, Shape};
use report::Report;
use scenarios::Bed;
use skiff::status_probe::wait_for_leader;
use std::path::PathBuf;
use std::time::Duration;

const EXAMPLES: &str = "\
Examples:
  sudo skiff testbed                                  # every scenario, 5 nodes, 2ms +- 1ms
  sudo skiff testbed --scenarios isolate-leader       # one scenario
  sudo skiff testbed --rejoin-after 5s --partial-for 10s --stall-for 3s --chaos-for 10s
  sudo skiff testbed --delay 20ms --jitter 5ms --loss 0.01 --dir /tmp/tb

Needs root, the `ip` tool (iproute2) and a kernel that allows network
namespaces and veth pairs; it says so and exits 1 otherwise. Namespaces
are named skiff-tb-<pid>-<node>; all of them are deleted at the end, on
failure and on Ctrl-C, and those of earlier runs whose process is gone
are deleted at the start. Each property prints PASS or FAIL; any FAIL
exits 1.";

/// The scenarios, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// (a) The leader cut off from every other node: time until it is
    /// replaced and until it steps down.
    IsolateLeader,
    /// (b) A follower cut off for --rejoin-after, then let back: leader
    /// and term must not change.
    Rejoin,
    /// (c) The leader and one follower cannot reach each other for
    /// --partial-for: elections per minute.
    Partial,
    /// (e) The leader's disk hangs for --stall-for (its syncs wait): time
    /// until it is replaced, until it steps down, and until it follows
    /// the new leader once its disk answers.
    Stall,
    /// Random faults for --chaos-for: partitions (whole, isolated leader,
    /// partial, one-way), kill -9 and restart, SIGSTOP and SIGCONT.
    Chaos,
}

/// Arguments of `skiff testbed`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct TestbedArgs {
    /// Which scenarios to run, comma-separated; the clients' history is
    /// checked for linearizability after the last.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [
        Scenario::IsolateLeader, Scenario::Rejoin, Scenario::Partial, Scenario::Stall,
        Scenario::Chaos,
    ])]
    scenarios: Vec<Scenario>,
    /// How many nodes.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(3..=topology::NODES_MAX))]
    nodes: u64,
    /// Delay added to every byte on every directed link.
    #[arg(long, value_name = "DURATION", default_value = "2ms",
          value_parser = duration_arg::between(Duration::ZERO, Duration::from_secs(10)))]
    delay: Duration,
    /// Each chunk's delay is drawn uniformly from delay +- jitter.
    #[arg(long, value_name = "DURATION", default_value = "1ms",
          value_parser = duration_arg::between(Duration::ZERO, Duration::from_secs(10)))]
    jitter: Duration,
    /// Probability (0 to 1) that a chunk is "lost" and waits one more
    /// retransmission timeout (200 ms), and the bytes behind it with it.
    #[arg(long, value_name = "P", default_value_t = 0.0, value_parser = probability)]
    loss: f64,
    /// The cluster's base election timeout (written to its cluster.toml;
    /// the heartbeat interval is a third of it).
    #[arg(long, value_name = "DURATION", default_value = "300ms",
          value_parser = duration_arg::between(Duration::from_millis(20), Duration::from_secs(60)))]
    election_timeout: Duration,
    /// How long the rejoin scenario keeps its follower cut off.
    #[arg(long, value_name = "DURATION", default_value = "30s",
          value_parser = duration_arg::between(Duration::from_millis(100), Duration::from_secs(3600)))]
    rejoin_after: Duration,
    /// How long the partial scenario holds its partition.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = duration_arg::between(Duration::from_secs(1), Duration::from_secs(3600)))]
    partial_for: Duration,
    /// How long the stall scenario keeps the leader's disk hanging.
    #[arg(long, value_name = "DURATION", default_value = "10s",
          value_parser = duration_arg::between(Duration::from_millis(100), Duration::from_secs(3600)))]
    stall_for: Duration,
    /// How long the chaos scenario injects random faults.
    #[arg(long, value_name = "DURATION", default_value = "60s",
          value_parser = duration_arg::between(Duration::from_secs(1), Duration::from_secs(3600)))]
    chaos_for: Duration,
    /// Concurrent clients running the workload throughout (the last one
    /// only reads).
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u64).range(1..=64))]
    clients: u64,
    /// Seed of the chaos scenario's choices.
    #[arg(long, value_name = "N", default_value_t = 1)]
    seed: u64,
    /// Keep the cluster's configuration, data and node logs here instead
    /// of in a temporary directory deleted at the end.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

fn probability(text: &str) -> Result<f64, String> {
    let p: f64 = text.parse().map_err(|e| format!("not a number: {e}"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err("must be between 0 and 1".into());
    }
    Ok(p)
}

/// Runs the test bed; fails when a precondition is missing or a property
/// fails.
pub fn run(args: &TestbedArgs) -> anyhow::Result<()> {
    if let Some(reason) = topology::unmet_precondition() {
        bail!("the test bed cannot run here: {reason}");
    }
    let program = std::env::current_exe().context("cannot find the skiff binary")?;
    let temporary = tempfile::Builder::new().prefix("skiff-testbed").tempdir()?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| temporary.path().to_path_buf());
    let report = Report::new();
    for stale in topology::remove_stale()? {
        report.progress(format_args!("removed the stale namespace {stale}"));
    }
    report.progress(format_args!(
        "creating {} namespaces, {} links (relays: {:?} +- {:?}, loss {}); files in {}",
        args.nodes,
        args.nodes * (args.nodes - 1) / 2,
        args.delay,
        args.jitter,
        args.loss,
        dir.display()
    ));
    // Declared in this order so that they drop in the reverse: the nodes
    // stop, then the relays, then the namespaces go.
    let topology = topology::Topology::create(args.nodes)?;
    let shape = Shape {
        delay: args.delay,
        jitter: args.jitter,
        loss: args.loss,
    };
    let relays = Relays::start(&topology, shape)?;
    let timing = Timing {
        election_timeout: args.election_timeout,
    };
    let cluster = nemesis::create_cluster(&program, &dir, &topology, timing)?;
    let addresses = cluster.client_addresses();
    let bed = Bed {
        dir: dir.clone(),
        nemesis: Nemesis::new(&topology, relays.control().clone(), cluster),
        addresses,
        timing,
        report,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let failed = skiff::shutdown::run_until_requested(runtime, run_scenarios(args, bed, &relays))?;
    if !failed.is_empty() {
        bail!("failed: {}", failed.join("; "));
    }
    Ok(())
}

/// Starts the nodes and the clients, runs the scenarios, checks the
/// history; returns the properties that failed.
async fn run_scenarios(
    args: &TestbedArgs,
    mut bed: Bed<'_>,
    relays: &Relays,
) -> anyhow::Result<Vec<String>> {
    bed.report.progress("starting the nodes");
    bed.nemesis
        .cluster
        .start_all_answering(Duration::from_secs(10))
        .await?;
    let leader = wait_for_leader(&bed.addresses, Duration::from_secs(30))
        .await
        .context("no leader after the start")?;
    bed.report.progress(format_args!(
        "leader node {} term {}; starting {} clients",
        leader.id, leader.term, args.clients
    ));
    let clients = clients::Clients::start(&bed.addresses, args.clients);
    for scenario in &args.scenarios {
        match scenario {
            Scenario::IsolateLeader => scenarios::isolate_leader(&mut bed).await?,
            Scenario::Rejoin => scenarios::rejoin(&mut bed, args.rejoin_after).await?,
            Scenario::Partial => scenarios::partial(&mut bed, args.partial_for).await?,
            Scenario::Stall => scenarios::stall(&mut bed, args.stall_for).await?,
            Scenario::Chaos => scenarios::chaos(&mut bed, args.chaos_for, args.seed).await?,
        }
        bed.report.progress(format_args!(
            "{} operations recorded so far",
            clients.operations()
        ));
    }
    bed.report
        .progress("stopping the clients; checking the history");
    let verdict = clients.finish().await;
    let (checked, unknown) = (verdict.operations, verdict.unknown);
    let linearizable = verdict.failure.is_none() && checked > 0;
    bed.report.property(
        "(d) linearizable",
        match &verdict.failure {
            None => format!("yes, {checked} operations checked ({unknown} with unknown outcome)"),
            Some(why) => format!("no, {checked} operations checked ({unknown} unknown): {why}"),
        },
        linearizable,
    );
    let delay = relays.control().added_delay();
    bed.report.figure(
        "relay added delay",
        format_args!(
            "mean {:.2} ms, median {:.2} ms, p99 {:.2} ms, max {:.2} ms over {} chunks, {} connections \
             (configured {:?} +- {:?}, loss {})",
            delay.mean_ms,
            delay.median_ms,
            delay.p99_ms,
            delay.max_ms,
            delay.chunks,
            delay.connections,
            args.delay,
            args.jitter,
            args.loss
        ),
    );
    let exited = bed.nemesis.cluster.reap_exited();
    bed.report.property(
        "no node exited by itself",
        format!("{exited:?}"),
        exited.is_empty(),
    );
    bed.report
        .progress("done; stopping the nodes and deleting the namespaces");
    Ok(bed.report.failed().into_iter().map(String::from).collect())
}
