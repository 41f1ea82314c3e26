//! `skiff sim`: runs seeded simulations of a whole cluster and reports what
//! they did and any rule they broke. The work is in `skiff_sim`; this module
//! parses flags, shows progress and words the summary.

use crate::{duration_arg, usage};
use anyhow::Context;
use clap::builder::TypedValueParser as _;
use indicatif::{ProgressBar, ProgressStyle};
use skiff_sim::{
    network::NODES_MAX, options::READ_SHARE_DEFAULT, run_seed_traced, run_seeds, DiskFaults,
    FaultProfile, Limit, MembershipProfile, SeedsPlan, SeedsSummary, SimOptions, SimReport,
};
use std::fmt::Write as _;
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest simulated faulty period a flag may ask for.
const SIMULATED_MAX: Duration = Duration::from_secs(24 * 3600);

const EXAMPLES: &str = "\
Examples:
  skiff sim --faults chaos --seeds 1..=200         # the README's run, about a minute
  skiff sim --seed 17 --trace seed17.trace         # replay one seed, writing its trace
  skiff sim --faults partitions --nodes 3 --seeds 1..=1000 --duration 5s
  skiff sim --faults none --loss 0.2 --seeds 1..=50  # a profile with one rate overridden
  skiff sim --faults partitions --prevote off --check-quorum off  # compare: election storms
  skiff sim --faults chaos --seeds 1..=1000 --reads 0.5 --lease-reads 20ms  # half reads, from leases
  skiff sim --faults chaos --membership churn --seeds 1..=1000 --nodes 5  # members come and go

Seed ranges read as in Rust: 1..=200 is seeds 1 to 200, 1..200 stops at 199.
Each seed runs a cluster through the faults for --duration (or --steps), then a
quiet period: faults stop, links heal, every node restarts, and a new append
must commit within 10 s of simulated time. A share of the clients' requests
(--reads) are linearizable reads, sent to the believed leader or to any node
(a follower asks the leader for its read index) and answered once the node has
applied through the index the core gives; each answer must be the agreed log's
state through that index, covering every append acknowledged and every read
answered before the read was sent. Every action and every batch is
checked against the Raft safety rules, and, with PreVote and CheckQuorum on
(the default, as in skiff-node), against their rules: the leader's lease,
pre-votes before standing, a leader without a majority stepping down. After
every heal (a partition healing, a restart, a disk stall ending) a leader that
a majority follows must be back within 20 election timeouts (3 s by default);
the summary gives the mean and longest time without one, and the elections per
simulated minute under partial partitions (one-way, bridge). With --membership
churn the voters and learners change all along (spare node ids join fresh,
are promoted, removed, the leader among them, and join again, restarted
from their disks): every commit must be held by a majority of its leader's configuration,
every change answered once, and a removed node must not raise the voters'
terms; the summary counts the changes. On a violation the report names the
seed, the rule, the last lines of the trace and the command that replays it;
the exit status is then 1. The same seed and options always give the same
trace hash.";

/// Arguments of `skiff sim`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXAMPLES)]
pub struct SimArgs {
    /// Cluster size, 1 to 9.
    #[arg(long, default_value_t = 5,
          value_parser = clap::value_parser!(u8).range(1..=NODES_MAX as i64).map(usize::from))]
    nodes: usize,
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run these seeds, as a Rust range: `1..=200` includes 200, `1..200`
    /// stops at 199; a single `N` is one seed [default: 1..=100].
    #[arg(long, value_name = "A..=B", value_parser = parse_seeds)]
    seeds: Option<RangeInclusive<u64>>,
    /// Simulated time of the faulty part of each run: `20s`, `500ms`, `2m`
    /// [default: 5m].
    #[arg(long, value_parser = duration_arg::between(Duration::from_millis(1), SIMULATED_MAX),
          conflicts_with = "steps")]
    duration: Option<Duration>,
    /// World steps (events handled) of the faulty part, instead of --duration.
    #[arg(long)]
    steps: Option<u64>,
    /// Fault profile: none, lossy, partitions, crashes or chaos.
    #[arg(long, default_value = "chaos")]
    faults: FaultProfile,
    /// Membership: `fixed` (the --nodes first voters stay), or `churn`:
    /// up to four spare node ids beyond --nodes join as learners (with
    /// empty disks) and are promoted; voters (the leader too) and learners
    /// are removed, keep running a while, then stop; removed spares join
    /// again, restarted from their disks. About four changes are asked per simulated
    /// second, mostly of the leader, and at once of a new leader half the
    /// time; the voters stay between --nodes less two (at least 3) and
    /// --nodes, or, below 5 nodes, between one and --nodes (a leader
    /// removes itself from two); while a disk is damaged or repairing,
    /// at least three.
    #[arg(long, value_name = "fixed|churn", default_value = "fixed")]
    membership: MembershipProfile,
    /// Probability, 0 to 1, that a message is lost (overrides the profile).
    #[arg(long, value_parser = probability)]
    loss: Option<f64>,
    /// Probability, 0 to 1, that a message is delivered twice.
    #[arg(long, value_parser = probability)]
    dup: Option<f64>,
    /// Probability, 0 to 1, that a message is slow (50 ms to 1 s instead of
    /// 1 to 10 ms).
    #[arg(long, value_parser = probability)]
    slow: Option<f64>,
    /// Node crashes per simulated second, 0 to 1000.
    #[arg(long, value_parser = rate)]
    crash_rate: Option<f64>,
    /// Partitions per simulated second, 0 to 1000.
    #[arg(long, value_parser = rate)]
    partition_rate: Option<f64>,
    /// Storage faults on top of the profile: crashes lose or tear unsynced
    /// writes; synced records get bit flips, lost fsyncs and missing
    /// segments, and the node repairs. `--disk-faults` (or `=one`): at most
    /// one node faulty at a time, every rule checked, nothing acknowledged
    /// may be lost. `--disk-faults=many`: several at once; checks that
    /// damage is noticed and every safety rule, not liveness.
    #[arg(long, value_name = "MODE", num_args = 0..=1, require_equals = true,
          default_value = "off", default_missing_value = "one")]
    disk_faults: DiskFaults,
    /// Forged messages on top of the profile: at random moments a node is
    /// handed a message no correct peer sends (a term far ahead, a second
    /// leader, a success for entries never sent, ...), crafted from its
    /// state, which it must reject without changing its term, vote or log.
    #[arg(long)]
    forge: bool,
    /// PreVote on every node: on or off. Off, a node cut off from the
    /// others raises its term while away and deposes the leader when it
    /// returns; compare the elections per minute of both.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off,
          action = clap::ArgAction::Set)]
    prevote: bool,
    /// CheckQuorum and the leader's lease on every node: on or off. Off, a
    /// leader cut off from the majority stays leader, and a node that
    /// hears a live leader still grants votes.
    #[arg(long, value_name = "on|off", default_value = "on", value_parser = on_off,
          action = clap::ArgAction::Set)]
    check_quorum: bool,
    /// Disk stalls per simulated second (0 to 1000), in the half of the
    /// seeds whose disks stall (drawn per seed); each lasts 200 ms to 10 s,
    /// during which the node steps nothing [default: the profile's, 0.05
    /// for chaos, 0 otherwise].
    #[arg(long, value_parser = rate)]
    stall_rate: Option<f64>,
    /// Leadership transfers asked per simulated second (0 to 1000): a
    /// random node, usually the leader, is asked to hand over to another,
    /// which may be down or cut off [default: the profile's, 0.3 for
    /// chaos, 0 otherwise].
    #[arg(long, value_parser = rate)]
    transfer_rate: Option<f64>,
    /// The driver's stall limit: a disk stall longer than this makes the
    /// node step StorageStalled when it ends (a leader steps down): `1s`,
    /// `500ms`.
    #[arg(long, default_value = "1s",
          value_parser = duration_arg::between(Duration::from_millis(1), SIMULATED_MAX))]
    stall_limit: Duration,
    /// Every node takes a snapshot of its applied state every N committed
    /// entries and compacts its log (0: never); followers that fall behind
    /// get the leader's snapshot streamed in chunks over the faulty network
    /// [default: a policy drawn per seed, from never to every 5 entries].
    #[arg(long, value_name = "N")]
    compact_every: Option<u64>,
    /// The share of client requests that are linearizable reads, 0 to 1
    /// (ReadIndex through the core: on the leader after a round of
    /// heartbeats, or on a follower through the leader's read index).
    #[arg(long, value_name = "SHARE", default_value_t = READ_SHARE_DEFAULT, value_parser = probability)]
    reads: f64,
    /// Lease reads on every node, with this clock-drift margin: a leader
    /// answers reads without a round of heartbeats until an election
    /// timeout less the margin after its last confirmed round (needs
    /// --check-quorum on): `20ms` [default: off].
    #[arg(long, value_name = "MARGIN",
          value_parser = duration_arg::between(Duration::ZERO, SIMULATED_MAX))]
    lease_reads: Option<Duration>,
    /// Clients submitting appends and reads; at least one, as liveness is
    /// judged by a client's append.
    #[arg(long, default_value_t = 3,
          value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    clients: usize,
    /// Threads, each running one seed at a time (default: every core).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..).map(usize::from))]
    jobs: Option<usize>,
    /// Write the run's trace (events and actions, in the scenario rendering)
    /// to FILE; only with a single --seed.
    #[arg(long, value_name = "FILE", requires = "seed")]
    trace: Option<PathBuf>,
    /// Write an interactive timeline of the run (one self-contained HTML
    /// page: nodes' roles, terms and commit indices, messages, faults, the
    /// violation) to FILE; only with a single --seed.
    #[arg(long, value_name = "FILE", requires = "seed", conflicts_with = "trace")]
    html: Option<PathBuf>,
    /// Run every seed even after a violation (by default no new seed starts
    /// after the first one).
    #[arg(long)]
    keep_going: bool,
}

/// Runs the simulation `args` ask for, prints the summary, and fails when
/// any seed found a violation.
pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    let options = options_of(args);
    // The flags' parsers enforce the same bounds; this catches any rule
    // the simulator adds later, still as a bad command line.
    options.validate().map_err(usage::error)?;
    let seeds = match (args.seed, &args.seeds) {
        (Some(seed), _) => seed..=seed,
        (None, Some(range)) => range.clone(),
        (None, None) => 1..=100,
    };
    if let Some(path) = &args.html {
        // clap requires --seed with --html, and --seed excludes --seeds.
        return run_drawn(args, &options, *seeds.start(), path);
    }
    if let Some(path) = &args.trace {
        // clap requires --seed with --trace, and --seed excludes --seeds.
        return run_traced(args, &options, *seeds.start(), path);
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    eprintln!("{}", headline(args, &options, &seeds, jobs));
    let started = Instant::now();
    let (summary, hashes) = run_with_progress(&options, &seeds, jobs, !args.keep_going);
    let wall = started.elapsed();
    let mut out = std::io::stdout().lock();
    write_summary(&mut out, args, &summary, &hashes, wall).context("writing the summary")?;
    out.flush().context("writing the summary")?;
    if let Some(first) = summary.failures.first() {
        eprintln!(
            "{} seed(s) found a violation; the first is seed {}",
            summary.failures.len(),
            first.seed
        );
        std::process::exit(1);
    }
    Ok(())
}

fn options_of(args: &SimArgs) -> SimOptions {
    let mut options = SimOptions::new(args.seed.unwrap_or(1)).with_profile(args.faults);
    options.nodes = args.nodes;
    options.membership = args.membership;
    options.clients = args.clients;
    options.read_share = args.reads;
    options.lease_read_margin_ms = args
        .lease_reads
        .map(|margin| u64::try_from(margin.as_millis()).unwrap_or(u64::MAX));
    options.disk_faults = args.disk_faults;
    options.forgeries = args.forge;
    options.compact_every = args.compact_every;
    options.pre_vote = args.prevote;
    options.check_quorum = args.check_quorum;
    options.stall_limit_ms = u64::try_from(args.stall_limit.as_millis()).unwrap_or(u64::MAX);
    options.limit = match (args.duration, args.steps) {
        (_, Some(steps)) => Limit::Steps(steps),
        (Some(duration), None) => Limit::Time {
            ms: u64::try_from(duration.as_millis()).unwrap_or(u64::MAX),
        },
        (None, None) => options.limit,
    };
    let rates = &mut options.faults;
    let overrides = [
        (&mut rates.loss, args.loss),
        (&mut rates.duplicate, args.dup),
        (&mut rates.latency_tail, args.slow),
        (&mut rates.crash_rate, args.crash_rate),
        (&mut rates.partition_rate, args.partition_rate),
        (&mut rates.stall_rate, args.stall_rate),
        (&mut rates.transfer_rate, args.transfer_rate),
    ];
    for (rate, value) in overrides {
        if let Some(value) = value {
            *rate = value;
        }
    }
    options
}

fn run_traced(
    args: &SimArgs,
    options: &SimOptions,
    seed: u64,
    path: &PathBuf,
) -> anyhow::Result<()> {
    let mut options = options.clone();
    options.seed = seed;
    let file = std::fs::File::create(path)
        .with_context(|| format!("creating the trace file {}", path.display()))?;
    let writer = Box::new(std::io::BufWriter::new(file));
    let started = Instant::now();
    let report = run_seed_traced(&options, writer)
        .with_context(|| format!("writing the trace to {}", path.display()))?;
    let wall = started.elapsed();
    let mut summary = SeedsSummary::default();
    summary.stats.add(&report.stats);
    summary.slowest_recovery_us = report.recovered_after_us.unwrap_or(0);
    let hashes = vec![(seed, report.trace_hash)];
    if report.violation.is_some() {
        // The excerpt is in the trace file; quote its tail from there.
        let mut report = report;
        report.excerpt = tail_of_file(path, skiff_sim::run::EXCERPT_LINES);
        summary.failures.push(report);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "trace written to {}", path.display())?;
    write_summary(&mut out, args, &summary, &hashes, wall)?;
    out.flush()?;
    if !summary.failures.is_empty() {
        eprintln!("seed {seed} found a violation");
        std::process::exit(1);
    }
    Ok(())
}

/// Runs one seed recording its timeline, and writes the page.
fn run_drawn(
    args: &SimArgs,
    options: &SimOptions,
    seed: u64,
    path: &std::path::Path,
) -> anyhow::Result<()> {
    let mut options = options.clone();
    options.seed = seed;
    let started = Instant::now();
    let (report, timeline) = skiff_sim::run_seed_timeline(&options);
    let wall = started.elapsed();
    let title = format!("skiff sim --seed {seed}: {}", same_options(args, seed));
    let bytes = skiff::ui::page::write(&timeline, &title, path)?;
    let mut summary = SeedsSummary::default();
    summary.stats.add(&report.stats);
    summary.slowest_recovery_us = report.recovered_after_us.unwrap_or(0);
    let hashes = vec![(seed, report.trace_hash)];
    let failed = report.violation.is_some();
    if failed {
        summary.failures.push(report);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "timeline written to {} ({:.1} MB: {} steps, {} messages)",
        path.display(),
        bytes as f64 / 1e6,
        timeline.step_count(),
        timeline.message_count()
    )?;
    write_summary(&mut out, args, &summary, &hashes, wall)?;
    out.flush()?;
    if failed {
        eprintln!("seed {seed} found a violation");
        std::process::exit(1);
    }
    Ok(())
}

fn tail_of_file(path: &PathBuf, lines: usize) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let start = all.len().saturating_sub(lines);
    all[start..].iter().map(|line| line.to_string()).collect()
}

/// Runs the seeds with a progress bar on a terminal, or a line every ten
/// seconds otherwise. Returns the summary and every seed's trace hash.
fn run_with_progress(
    options: &SimOptions,
    seeds: &RangeInclusive<u64>,
    jobs: usize,
    stop_at_first_violation: bool,
) -> (SeedsSummary, Vec<(u64, u64)>) {
    let count = seeds.end().saturating_sub(*seeds.start()).saturating_add(1);
    let bar = ProgressBar::new(count);
    bar.set_style(
        ProgressStyle::with_template(
            "{elapsed_precise} [{wide_bar}] {pos}/{len} seeds, {msg} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    let state = Mutex::new(ProgressState::default());
    let on_report = |report: &SimReport| {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.done += 1;
        state.hashes.push((report.seed, report.trace_hash));
        if report.violation.is_some() {
            state.violations += 1;
        }
        bar.set_message(format!("{} violations", state.violations));
        bar.inc(1);
        let due = started.elapsed() >= state.next_line_at;
        if bar.is_hidden() && due {
            state.next_line_at = started.elapsed() + Duration::from_secs(10);
            eprintln!(
                "  {}/{count} seeds, {} violations, {:.0} s",
                state.done,
                state.violations,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let plan = SeedsPlan {
        seeds: seeds.clone(),
        jobs,
        stop_at_first_violation,
    };
    let summary = run_seeds(options, &plan, &on_report);
    bar.finish_and_clear();
    let mut hashes = state.into_inner().unwrap_or_else(|e| e.into_inner()).hashes;
    hashes.sort_unstable();
    (summary, hashes)
}

#[derive(Default)]
struct ProgressState {
    done: u64,
    violations: u64,
    next_line_at: Duration,
    hashes: Vec<(u64, u64)>,
}

fn headline(
    args: &SimArgs,
    options: &SimOptions,
    seeds: &RangeInclusive<u64>,
    jobs: usize,
) -> String {
    let f = &options.faults;
    let limit = match options.limit {
        Limit::Time { ms } => format!(
            "{} simulated",
            duration_arg::render(Duration::from_millis(ms))
        ),
        Limit::Steps(steps) => format!("{steps} steps"),
    };
    format!(
        "skiff sim: seeds {}..{}, {} nodes, membership {}, {} clients, faults {} (loss {}, dup {}, slow {}, \
         {} partitions/s, {} crashes/s, {} stalls/s, {} transfers/s), disk faults {}, forgeries {}, snapshots {}, \
         prevote {}, check-quorum {}, reads {} (lease {}), {limit} per seed then a quiet period, \
         {jobs} jobs",
        seeds.start(),
        seeds.end(),
        args.nodes,
        args.membership,
        args.clients,
        args.faults,
        f.loss,
        f.duplicate,
        f.latency_tail,
        f.partition_rate,
        f.crash_rate,
        f.stall_rate,
        f.transfer_rate,
        options.disk_faults,
        on_off_name(options.forgeries),
        snapshot_policy(options.compact_every),
        on_off_name(options.pre_vote),
        on_off_name(options.check_quorum),
        options.read_share,
        lease_name(options.lease_read_margin_ms),
    )
}

fn lease_name(margin_ms: Option<u64>) -> String {
    match margin_ms {
        None => "off".to_string(),
        Some(margin) => format!("margin {margin} ms"),
    }
}

fn snapshot_policy(compact_every: Option<u64>) -> String {
    match compact_every {
        None => "drawn per seed".to_string(),
        Some(0) => "never".to_string(),
        Some(every) => format!("every {every} entries"),
    }
}

fn write_summary(
    out: &mut impl Write,
    args: &SimArgs,
    summary: &SeedsSummary,
    hashes: &[(u64, u64)],
    wall: Duration,
) -> std::io::Result<()> {
    let s = &summary.stats;
    let wall_s = wall.as_secs_f64().max(1e-9);
    if let [(seed, hash)] = hashes {
        writeln!(out, "seed {seed}: trace hash {hash:016x}")?;
    } else {
        writeln!(out, "trace hash of all seeds: {:016x}", combine(hashes))?;
    }
    writeln!(out, "summary")?;
    writeln!(
        out,
        "  seeds       {} run, {} with violations",
        s.runs,
        summary.failures.len()
    )?;
    writeln!(
        out,
        "  simulated   {:.1} s in {} steps",
        s.simulated_us as f64 / 1e6,
        s.steps
    )?;
    writeln!(
        out,
        "  messages    {} sent, {} delivered ({:.2} M delivered per second of wall time)",
        s.messages_sent,
        s.messages_delivered,
        s.messages_delivered as f64 / wall_s / 1e6
    )?;
    writeln!(out, "  elections   {}", s.elections)?;
    writeln!(
        out,
        "  commits     {} entries agreed; clients: {} acknowledged, {} redirected, {} overwritten, {} timed out",
        s.commits, s.client_acks, s.client_redirects, s.client_overwritten, s.client_timeouts
    )?;
    writeln!(out, "  reads       {}", s.reads_line())?;
    writeln!(out, "  faults      {}", s.faults_line())?;
    writeln!(out, "  stalls      {}", s.stalls_line())?;
    writeln!(out, "  transfers   {}", s.transfers_line())?;
    if args.membership != MembershipProfile::Fixed {
        writeln!(out, "  membership  {}", s.membership_line())?;
    }
    writeln!(out, "  leadership  {}", s.step_downs_line())?;
    writeln!(
        out,
        "  after heals {} intervals without a leader a majority follows: mean {:.1} ms, max {:.1} ms (bound {} election timeouts)",
        s.leaderless_intervals,
        s.leaderless_mean_us() as f64 / 1e3,
        s.leaderless_max_us as f64 / 1e3,
        skiff_sim::checker::leader_after_heal::LEADERLESS_TIMEOUTS
    )?;
    match s.partial_elections_per_minute() {
        Some(rate) => writeln!(
            out,
            "  partial     {rate:.2} elections per simulated minute under partial partitions ({} in {:.1} s)",
            s.partial_partition_terms,
            s.partial_partition_us as f64 / 1e6
        )?,
        None => writeln!(out, "  partial     no partial partition")?,
    }
    writeln!(out, "  snapshots   {}", s.snapshots_line())?;
    if args.disk_faults != DiskFaults::Off {
        writeln!(out, "  storage     {}", s.storage_line())?;
    }
    if args.forge {
        writeln!(
            out,
            "  forgeries   {} forged messages, every one rejected",
            s.forgeries
        )?;
    }
    writeln!(
        out,
        "  recovery    slowest {:.3} s from faults stopping to a new append committing",
        summary.slowest_recovery_us as f64 / 1e6
    )?;
    writeln!(out, "  wall time   {:.1} s", wall.as_secs_f64())?;
    for report in &summary.failures {
        write_violation(out, args, report)?;
    }
    if summary.failures.is_empty() {
        writeln!(out, "ok: no violation")?;
    }
    Ok(())
}

fn write_violation(
    out: &mut impl Write,
    args: &SimArgs,
    report: &SimReport,
) -> std::io::Result<()> {
    let Some(violation) = &report.violation else {
        return Ok(());
    };
    writeln!(out, "VIOLATION seed {}: {violation}", report.seed)?;
    if !report.excerpt.is_empty() {
        writeln!(
            out,
            "  the trace up to it (last {} lines):",
            report.excerpt.len()
        )?;
        for line in &report.excerpt {
            writeln!(out, "    {line}")?;
        }
    }
    writeln!(out, "  replay: {}", replay_command(args, report.seed))?;
    writeln!(out, "  draw:   {}", draw_command(args, report.seed))
}

/// The command that replays `seed` with the same options, writing its trace.
fn replay_command(args: &SimArgs, seed: u64) -> String {
    format!("{} --trace seed{seed}.trace", same_options(args, seed))
}

/// The command that draws `seed`'s run with the same options as a page.
fn draw_command(args: &SimArgs, seed: u64) -> String {
    format!("{} --html seed-{seed}.html", same_options(args, seed))
}

/// The command that runs `seed` again with the same options.
fn same_options(args: &SimArgs, seed: u64) -> String {
    let mut command = format!(
        "skiff sim --seed {seed} --nodes {} --faults {} --clients {}",
        args.nodes, args.faults, args.clients
    );
    match (args.duration, args.steps) {
        (_, Some(steps)) => {
            let _ = write!(command, " --steps {steps}");
        }
        (Some(duration), None) => {
            let _ = write!(command, " --duration {}", duration_arg::render(duration));
        }
        (None, None) => {}
    }
    if args.membership != MembershipProfile::Fixed {
        let _ = write!(command, " --membership {}", args.membership);
    }
    if args.disk_faults != DiskFaults::Off {
        let _ = write!(command, " --disk-faults={}", args.disk_faults);
    }
    if args.forge {
        command.push_str(" --forge");
    }
    if let Some(every) = args.compact_every {
        let _ = write!(command, " --compact-every {every}");
    }
    if !args.prevote {
        command.push_str(" --prevote off");
    }
    if !args.check_quorum {
        command.push_str(" --check-quorum off");
    }
    if args.reads != READ_SHARE_DEFAULT {
        let _ = write!(command, " --reads {}", args.reads);
    }
    if let Some(margin) = args.lease_reads {
        let _ = write!(command, " --lease-reads {}", duration_arg::render(margin));
    }
    if args.stall_limit != Duration::from_secs(1) {
        let _ = write!(
            command,
            " --stall-limit {}",
            duration_arg::render(args.stall_limit)
        );
    }
    let rates = [
        ("loss", args.loss),
        ("dup", args.dup),
        ("slow", args.slow),
        ("crash-rate", args.crash_rate),
        ("partition-rate", args.partition_rate),
        ("stall-rate", args.stall_rate),
        ("transfer-rate", args.transfer_rate),
    ];
    for (flag, value) in rates {
        if let Some(value) = value {
            let _ = write!(command, " --{flag} {value}");
        }
    }
    command
}

/// One hash for many seeds' traces, in seed order.
fn combine(hashes: &[(u64, u64)]) -> u64 {
    let mut h = skiff_sim::hash::StableHasher::default();
    for (seed, hash) in hashes {
        h.word(*seed);
        h.word(*hash);
    }
    h.value()
}

/// Parses a range of seeds as Rust reads it: `A..B` (B excluded), `A..=B`
/// (B included), or a single `N`. Empty and reversed ranges are refused:
/// they would run nothing.
fn parse_seeds(text: &str) -> Result<RangeInclusive<u64>, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is not a seed number; ranges look like 1..=200"))
    };
    let Some((first, rest)) = text.split_once("..") else {
        let seed = number(text)?;
        return Ok(seed..=seed);
    };
    let first = number(first)?;
    let (last, inclusive) = match rest.strip_prefix('=') {
        Some(last) => (number(last)?, true),
        None => (number(rest)?, false),
    };
    let range = if inclusive {
        first..=last
    } else if last > first {
        first..=last - 1
    } else if last == first {
        return Err(format!(
            "{text} is empty: {last} is excluded (write {first}..={last} for seed {first} alone)"
        ));
    } else {
        first..=last // reversed; refused below
    };
    if range.start() > range.end() {
        return Err(format!(
            "{text} is reversed: the first seed must not exceed the last"
        ));
    }
    Ok(range)
}

/// Parses `on` or `off`.
fn on_off(text: &str) -> Result<bool, String> {
    match text {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err("expected on or off".to_string()),
    }
}

fn on_off_name(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

/// Parses a probability, 0 to 1.
fn probability(text: &str) -> Result<f64, String> {
    number_between(text, 0.0, 1.0)
}

/// Parses a rate per simulated second, 0 to 1000.
fn rate(text: &str) -> Result<f64, String> {
    number_between(text, 0.0, 1000.0)
}

fn number_between(text: &str, min: f64, max: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("not a number between {min} and {max}"))?;
    if !(min..=max).contains(&value) {
        return Err(format!("must be between {min} and {max}"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn args(line: &str) -> SimArgs {
        let words = std::iter::once("sim").chain(line.split_whitespace());
        Wrapper::try_parse_from(words).expect("valid flags").sim
    }

    #[test]
    fn seed_ranges_read_as_rust_ranges() {
        assert_eq!(parse_seeds("1..1000"), Ok(1..=999));
        assert_eq!(parse_seeds("1..=1000"), Ok(1..=1000));
        assert_eq!(parse_seeds("3..=3"), Ok(3..=3));
        assert_eq!(parse_seeds("3..4"), Ok(3..=3));
        assert_eq!(parse_seeds("7"), Ok(7..=7));
        assert_eq!(parse_seeds(" 2 ..= 5 "), Ok(2..=5));
    }

    #[test]
    fn empty_reversed_and_unreadable_seed_ranges_are_refused() {
        let empty = parse_seeds("5..5").unwrap_err();
        assert!(
            empty.contains("is empty") && empty.contains("5..=5"),
            "{empty}"
        );
        for reversed in ["5..3", "5..=4", "5..4"] {
            let error = parse_seeds(reversed).unwrap_err();
            assert!(error.contains("reversed"), "{reversed}: {error}");
        }
        for unreadable in ["x..3", "1..", "..3", "1...3", "-1..3"] {
            let error = parse_seeds(unreadable).unwrap_err();
            assert!(error.contains("not a seed number"), "{unreadable}: {error}");
        }
    }

    #[test]
    fn probabilities_and_rates_are_bounded() {
        assert_eq!(probability("0.25"), Ok(0.25));
        assert!(probability("1.5").is_err());
        assert!(probability("-0.1").is_err());
        assert!(probability("NaN").is_err());
        assert_eq!(rate("1000"), Ok(1000.0));
        assert!(rate("1001").is_err());
    }

    #[test]
    fn bad_values_are_refused_by_clap_itself() {
        for line in [
            "--clients 0",
            "--nodes 10",
            "--loss 2",
            "--seeds 3..3",
            "--duration 20",
            "--trace t.trace",
            "--seed 1 --seeds 1..=2",
            "--time 5s",
        ] {
            let words = std::iter::once("sim").chain(line.split_whitespace());
            assert!(Wrapper::try_parse_from(words).is_err(), "{line}");
        }
        assert_eq!(
            args("--duration 1m").duration,
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn the_documented_default_duration_is_the_simulator_s() {
        assert_eq!(options_of(&args("")).limit, Limit::Time { ms: 300_000 });
    }

    #[test]
    fn overrides_replace_the_profile_rates() {
        let options = options_of(&args("--faults lossy --loss 0.2 --crash-rate 3"));
        assert_eq!(options.faults.loss, 0.2);
        assert_eq!(options.faults.crash_rate, 3.0);
        assert_eq!(
            options.faults.duplicate,
            FaultProfile::Lossy.rates().duplicate
        );
    }

    #[test]
    fn the_replay_command_carries_every_option_given() {
        let given = args("--seeds 1..=10 --nodes 3 --faults partitions --duration 5s --dup 0.1");
        assert_eq!(
            replay_command(&given, 7),
            "skiff sim --seed 7 --nodes 3 --faults partitions --clients 3 --duration 5s \
             --dup 0.1 --trace seed7.trace"
        );
        let reparsed = args(replay_command(&given, 7).trim_start_matches("skiff sim"));
        let mut expected = options_of(&given);
        expected.seed = 7;
        assert_eq!(options_of(&reparsed), expected);
        for (flag, mode) in [("--disk-faults", "one"), ("--disk-faults=many", "many")] {
            let given = args(&format!("--seeds 1..=10 {flag}"));
            let replay = replay_command(&given, 7);
            assert!(
                replay.contains(&format!(" --disk-faults={mode} ")),
                "{replay}"
            );
            let reparsed = args(replay.trim_start_matches("skiff sim"));
            assert_eq!(
                options_of(&reparsed).disk_faults,
                options_of(&given).disk_faults
            );
        }
        assert_eq!(options_of(&args("")).disk_faults, DiskFaults::Off);
        let draw = draw_command(&given, 7);
        assert!(draw.ends_with(" --html seed-7.html"), "{draw}");
        let redrawn = args(draw.trim_start_matches("skiff sim"));
        assert_eq!(
            options_of(&redrawn).disk_faults,
            options_of(&given).disk_faults
        );
        let given = args("--seeds 1..=10 --compact-every 20");
        let replay = replay_command(&given, 7);
        assert!(replay.contains(" --compact-every 20 "), "{replay}");
        let reparsed = args(replay.trim_start_matches("skiff sim"));
        assert_eq!(options_of(&reparsed).compact_every, Some(20));
        assert_eq!(options_of(&args("")).compact_every, None);
        let given = args("--seeds 1..=10 --prevote off --check-quorum off --stall-limit 300ms");
        let replay = replay_command(&given, 7);
        assert!(
            replay.contains(" --prevote off --check-quorum off --stall-limit 300ms "),
            "{replay}"
        );
        let reparsed = options_of(&args(replay.trim_start_matches("skiff sim")));
        assert!(!reparsed.pre_vote && !reparsed.check_quorum);
        assert_eq!(reparsed.stall_limit_ms, 300);
        let defaults = options_of(&args(""));
        assert!(defaults.pre_vote && defaults.check_quorum);
        assert_eq!(defaults.stall_limit_ms, 1_000);
        assert!(Wrapper::try_parse_from(["sim", "--prevote", "maybe"]).is_err());
    }

    #[test]
    fn reads_and_lease_reads_reach_the_options_and_the_replay() {
        let defaults = options_of(&args(""));
        assert_eq!(defaults.read_share, READ_SHARE_DEFAULT);
        assert_eq!(defaults.lease_read_margin_ms, None);
        let given = args("--seeds 1..=10 --reads 0.5 --lease-reads 20ms");
        let options = options_of(&given);
        assert_eq!(options.read_share, 0.5);
        assert_eq!(options.lease_read_margin_ms, Some(20));
        let replay = replay_command(&given, 7);
        assert!(
            replay.contains(" --reads 0.5 --lease-reads 20ms "),
            "{replay}"
        );
        let mut reparsed = options_of(&args(replay.trim_start_matches("skiff sim")));
        reparsed.seed = options.seed;
        assert_eq!(reparsed, options);
        assert!(!replay_command(&args(""), 7).contains("--reads"));
        for bad in ["--reads 1.5", "--lease-reads 20"] {
            let words = std::iter::once("sim").chain(bad.split_whitespace());
            assert!(Wrapper::try_parse_from(words).is_err(), "{bad}");
        }
        // Lease reads without CheckQuorum: refused by the options.
        let unsafe_lease = options_of(&args("--lease-reads 20ms --check-quorum off"));
        assert!(unsafe_lease.validate().is_err());
    }

    #[test]
    fn the_summary_names_each_violation_and_its_replay() {
        let given = args("--seeds 1..=2 --faults chaos");
        let mut summary = SeedsSummary::default();
        let mut options = options_of(&given);
        options.limit = Limit::Time { ms: 200 };
        options.seed = 2;
        let mut report = skiff_sim::run_seed(&options);
        report.violation = Some(skiff_sim::Violation::new(
            skiff_sim::checker::Failure::new(skiff_sim::Rule::ElectionSafety, vec![], "x".into()),
            5,
            1_000,
        ));
        report.excerpt = vec!["t=1.000 on 1 timeout".to_string()];
        summary.stats.add(&report.stats);
        summary.failures.push(report);
        let mut out = Vec::new();
        write_summary(
            &mut out,
            &given,
            &summary,
            &[(2, 9)],
            Duration::from_secs(1),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.contains("VIOLATION seed 2: Election Safety violated at step 5"),
            "{text}"
        );
        assert!(text.contains("    t=1.000 on 1 timeout"), "{text}");
        assert!(
            text.contains("replay: skiff sim --seed 2 --nodes 5 --faults chaos"),
            "{text}"
        );
        assert!(!text.contains("ok: no violation"), "{text}");
        assert!(text.contains("  snapshots   "), "{text}");
        assert!(text.contains("  reads       "), "{text}");
    }

    #[test]
    fn compact_every_runs_snapshots_and_the_summary_counts_them() {
        let given = args("--seeds 1..=1 --faults none --compact-every 5");
        let mut options = options_of(&given);
        options.limit = Limit::Time { ms: 3_000 };
        let report = skiff_sim::run_seed(&options);
        assert!(report.violation.is_none(), "{:?}", report.violation);
        assert!(report.stats.snapshots_taken > 0, "{:?}", report.stats);
        let mut summary = SeedsSummary::default();
        summary.stats.add(&report.stats);
        let mut out = Vec::new();
        write_summary(
            &mut out,
            &given,
            &summary,
            &[(1, 9)],
            Duration::from_secs(1),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let taken = format!("  snapshots   {} taken, ", report.stats.snapshots_taken);
        assert!(text.contains(&taken), "{text}");
        assert_eq!(snapshot_policy(Some(5)), "every 5 entries");
        assert_eq!(snapshot_policy(Some(0)), "never");
    }
}
