//! `skiff sim`: runs seeded simulations of a whole cluster and reports what
//! they did and any rule they broke. The work is in `skiff_sim`; this module
//! parses flags, shows progress and words the summary.

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use skiff_sim::{
    run_seed_traced, run_seeds, FaultProfile, Limit, SeedsPlan, SeedsSummary, SimOptions, SimReport,
};
use std::fmt::Write as _;
use std::io::Write;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const EXAMPLES: &str = "\
Examples:
  skiff sim --faults chaos --seeds 1..200          # the README's run, about a minute
  skiff sim --seed 17 --trace seed17.trace         # replay one seed, writing its trace
  skiff sim --faults partitions --nodes 3 --seeds 1..1000 --time 5s
  skiff sim --faults none --loss 0.2 --seeds 1..50  # a profile with one rate overridden

Each seed runs a cluster through the faults for --time (or --steps), then a
quiet period: faults stop, links heal, every node restarts, and a new append
must commit within 10 s of simulated time. Every action and every batch is
checked against the Raft safety rules. On a violation the report names the
seed, the rule, the last lines of the trace and the command that replays it;
the exit status is then 1. The same seed and options always give the same
trace hash.";

/// Arguments of `skiff sim`.
#[derive(clap::Args, Debug, Clone)]
#[command(after_help = EXAMPLES)]
pub struct SimArgs {
    /// Cluster size, 1 to 9.
    #[arg(long, default_value_t = 5)]
    nodes: usize,
    /// Run this one seed.
    #[arg(long, conflicts_with = "seeds")]
    seed: Option<u64>,
    /// Run these seeds, both ends included: `1..200` (default 1..100).
    #[arg(long, value_parser = parse_seeds)]
    seeds: Option<RangeInclusive<u64>>,
    /// Simulated time of the faulty part of each run: `20s`, `500ms`, `2m`.
    #[arg(long, value_parser = parse_duration_ms, conflicts_with = "steps")]
    time: Option<u64>,
    /// World steps (events handled) of the faulty part, instead of --time.
    #[arg(long)]
    steps: Option<u64>,
    /// Fault profile: none, lossy, partitions, crashes or chaos.
    #[arg(long, default_value = "chaos")]
    faults: FaultProfile,
    /// Probability that a message is lost (overrides the profile).
    #[arg(long)]
    loss: Option<f64>,
    /// Probability that a message is delivered twice.
    #[arg(long)]
    dup: Option<f64>,
    /// Probability that a message is slow (50 ms to 1 s instead of 1 to 10 ms).
    #[arg(long)]
    slow: Option<f64>,
    /// Node crashes per simulated second.
    #[arg(long)]
    crash_rate: Option<f64>,
    /// Partitions per simulated second.
    #[arg(long)]
    partition_rate: Option<f64>,
    /// Clients submitting appends.
    #[arg(long, default_value_t = 3)]
    clients: usize,
    /// Threads, each running one seed at a time (default: every core).
    #[arg(long)]
    jobs: Option<usize>,
    /// Write the run's trace (events and actions, in the scenario rendering)
    /// to FILE; only with a single seed.
    #[arg(long, value_name = "FILE")]
    trace: Option<PathBuf>,
    /// Run every seed even after a violation (by default no new seed starts
    /// after the first one).
    #[arg(long)]
    keep_going: bool,
}

/// Runs the simulation `args` ask for, prints the summary, and fails when
/// any seed found a violation.
pub fn run(args: &SimArgs) -> anyhow::Result<()> {
    let options = options_of(args)?;
    options.validate()?;
    let seeds = match (args.seed, &args.seeds) {
        (Some(seed), _) => seed..=seed,
        (None, Some(range)) => range.clone(),
        (None, None) => 1..=100,
    };
    if let Some(path) = &args.trace {
        if seeds.start() != seeds.end() {
            bail!("--trace writes one run: give a single --seed");
        }
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

fn options_of(args: &SimArgs) -> anyhow::Result<SimOptions> {
    let mut options = SimOptions::new(args.seed.unwrap_or(1)).with_profile(args.faults);
    options.nodes = args.nodes;
    options.clients = args.clients;
    options.limit = match (args.time, args.steps) {
        (_, Some(steps)) => Limit::Steps(steps),
        (Some(ms), None) => Limit::Time { ms },
        (None, None) => options.limit,
    };
    let rates = &mut options.faults;
    let overrides = [
        (&mut rates.loss, args.loss),
        (&mut rates.duplicate, args.dup),
        (&mut rates.latency_tail, args.slow),
        (&mut rates.crash_rate, args.crash_rate),
        (&mut rates.partition_rate, args.partition_rate),
    ];
    for (rate, value) in overrides {
        if let Some(value) = value {
            *rate = value;
        }
    }
    if args.clients == 0 {
        bail!("--clients must be at least 1: liveness is judged by a client's append");
    }
    Ok(options)
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
        Limit::Time { ms } => format!("{} simulated", render_ms(ms)),
        Limit::Steps(steps) => format!("{steps} steps"),
    };
    format!(
        "skiff sim: seeds {}..{}, {} nodes, {} clients, faults {} (loss {}, dup {}, slow {}, \
         {} partitions/s, {} crashes/s), {limit} per seed then a quiet period, {jobs} jobs",
        seeds.start(),
        seeds.end(),
        args.nodes,
        args.clients,
        args.faults,
        f.loss,
        f.duplicate,
        f.latency_tail,
        f.partition_rate,
        f.crash_rate
    )
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
    writeln!(out, "  faults      {}", s.faults_line())?;
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
    writeln!(out, "  replay: {}", replay_command(args, report.seed))
}

/// The command that replays `seed` with the same options, writing its trace.
fn replay_command(args: &SimArgs, seed: u64) -> String {
    let mut command = format!(
        "skiff sim --seed {seed} --nodes {} --faults {} --clients {}",
        args.nodes, args.faults, args.clients
    );
    match (args.time, args.steps) {
        (_, Some(steps)) => {
            let _ = write!(command, " --steps {steps}");
        }
        (Some(ms), None) => {
            let _ = write!(command, " --time {}", render_ms(ms));
        }
        (None, None) => {}
    }
    let rates = [
        ("loss", args.loss),
        ("dup", args.dup),
        ("slow", args.slow),
        ("crash-rate", args.crash_rate),
        ("partition-rate", args.partition_rate),
    ];
    for (flag, value) in rates {
        if let Some(value) = value {
            let _ = write!(command, " --{flag} {value}");
        }
    }
    let _ = write!(command, " --trace seed{seed}.trace");
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

fn render_ms(ms: u64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Parses `A..B` or `A..=B` (both ends included) or a single `N`.
fn parse_seeds(text: &str) -> Result<RangeInclusive<u64>, String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{s:?} is not a seed number"))
    };
    let (first, last) = match text.split_once("..") {
        Some((a, b)) => (number(a)?, number(b.strip_prefix('=').unwrap_or(b))?),
        None => (number(text)?, number(text)?),
    };
    if first > last {
        return Err(format!("{text}: the first seed is after the last"));
    }
    Ok(first..=last)
}

/// Parses a simulated duration: `20s`, `1.5s`, `500ms`, `2m`; a bare number is seconds.
fn parse_duration_ms(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (text, 1000.0)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 20s, 500ms or 2m"))?;
    if !(value.is_finite() && value > 0.0) {
        return Err(format!("{text:?}: the duration must be positive"));
    }
    Ok((value * scale).round() as u64)
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
    fn seeds_and_durations_parse() {
        assert_eq!(parse_seeds("1..1000"), Ok(1..=1000));
        assert_eq!(parse_seeds("3..=5"), Ok(3..=5));
        assert_eq!(parse_seeds("7"), Ok(7..=7));
        assert!(parse_seeds("5..3").is_err());
        assert!(parse_seeds("x..3").is_err());
        assert_eq!(parse_duration_ms("20s"), Ok(20_000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1_500));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert!(parse_duration_ms("-1s").is_err());
        assert!(parse_duration_ms("soon").is_err());
    }

    #[test]
    fn overrides_replace_the_profile_rates() {
        let options = options_of(&args("--faults lossy --loss 0.2 --crash-rate 3")).unwrap();
        assert_eq!(options.faults.loss, 0.2);
        assert_eq!(options.faults.crash_rate, 3.0);
        assert_eq!(
            options.faults.duplicate,
            FaultProfile::Lossy.rates().duplicate
        );
    }

    #[test]
    fn the_replay_command_carries_every_option_given() {
        let given = args("--seeds 1..10 --nodes 3 --faults partitions --time 5s --dup 0.1");
        assert_eq!(
            replay_command(&given, 7),
            "skiff sim --seed 7 --nodes 3 --faults partitions --clients 3 --time 5s \
             --dup 0.1 --trace seed7.trace"
        );
        let reparsed = args(replay_command(&given, 7).trim_start_matches("skiff sim"));
        let mut expected = options_of(&given).unwrap();
        expected.seed = 7;
        assert_eq!(options_of(&reparsed).unwrap(), expected);
    }

    #[test]
    fn the_summary_names_each_violation_and_its_replay() {
        let given = args("--seeds 1..2 --faults chaos");
        let mut summary = SeedsSummary::default();
        let mut options = options_of(&given).unwrap();
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
    }
}
