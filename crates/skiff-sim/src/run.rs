//! Running seeds: one run per seed, many seeds across threads, and the
//! reports that come back.

use crate::checker::{Failure, Rule, Violation};
use crate::options::SimOptions;
use crate::stats::SimStats;
use crate::timeline::Timeline;
use crate::trace::{Tail, TraceOutput};
use crate::world::World;
use std::ops::RangeInclusive;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

/// How many trace lines a violation report quotes.
pub const EXCERPT_LINES: usize = 20;

/// The result of one run.
#[derive(Clone, Debug)]
pub struct SimReport {
    /// The seed run.
    pub seed: u64,
    /// What happened.
    pub stats: SimStats,
    /// The hash of the whole trace: the same seed and options give the same hash.
    pub trace_hash: u64,
    /// The first violation, if any.
    pub violation: Option<Violation>,
    /// The last trace lines up to the violation (empty without one).
    pub excerpt: Vec<String>,
    /// How long after faults stopped a new append committed, in microseconds.
    pub recovered_after_us: Option<u64>,
}

/// Runs `options.seed` without writing a trace. On a violation the run is
/// replayed (it is deterministic) keeping the last lines of its trace, so
/// that the report can quote them.
pub fn run_seed(options: &SimOptions) -> SimReport {
    let report = run_with(options, TraceOutput::None, None, 0);
    let Some(violation) = &report.violation else {
        return report;
    };
    // A step rarely renders more than a few lines: text from a few dozen
    // steps before the violation fills the excerpt. A panic has no step,
    // so its replay keeps text from the start.
    let from_step = violation.step.saturating_sub(4 * EXCERPT_LINES as u64);
    let tail = Tail::new(EXCERPT_LINES);
    let output = TraceOutput::Tail(tail.clone());
    let mut replay = run_with(options, output, Some(&tail), from_step);
    debug_assert_eq!(replay.trace_hash, report.trace_hash, "replay diverged");
    replay.excerpt = tail.lines();
    replay
}

/// Runs `options.seed`, writing the trace text to `output`. Returns the
/// report, or the error that stopped the trace from being written.
pub fn run_seed_traced(
    options: &SimOptions,
    output: Box<dyn std::io::Write + Send>,
) -> Result<SimReport, std::io::Error> {
    let world = World::new(options, TraceOutput::Writer(output));
    let outcome = world.run();
    if let Some(error) = outcome.trace_error {
        return Err(error);
    }
    Ok(SimReport {
        seed: options.seed,
        stats: outcome.stats,
        trace_hash: outcome.trace_hash,
        violation: outcome.violation,
        excerpt: Vec::new(),
        recovered_after_us: outcome.recovered_after_us,
    })
}

/// Runs `options.seed` recording it for the page ([`Timeline`]). A panic
/// inside a machine ends the recording there, with the panic as its
/// violation.
pub fn run_seed_timeline(options: &SimOptions) -> (SimReport, Timeline) {
    let run = catch_unwind(AssertUnwindSafe(|| {
        World::new(options, TraceOutput::None).with_timeline().run()
    }));
    match run {
        Ok(outcome) => {
            let timeline = outcome
                .timeline
                .unwrap_or_else(|| Timeline::new("(not recorded)", options.nodes, "us"));
            let report = SimReport {
                seed: options.seed,
                stats: outcome.stats,
                trace_hash: outcome.trace_hash,
                violation: outcome.violation,
                excerpt: Vec::new(),
                recovered_after_us: outcome.recovered_after_us,
            };
            (report, timeline)
        }
        Err(_) => {
            // The recording was inside the unwound world: run again
            // without it, for the report, and draw only the panic.
            let report = run_seed(options);
            let mut timeline = Timeline::new("a machine panicked", options.nodes, "us");
            if let Some(violation) = &report.violation {
                timeline.violation(violation.time_us, &violation.to_string());
            }
            (report, timeline)
        }
    }
}

/// One run; a panic inside a machine becomes a [`Rule::Panic`] violation.
fn run_with(
    options: &SimOptions,
    output: TraceOutput,
    tail: Option<&Tail>,
    text_from_step: u64,
) -> SimReport {
    let run = catch_unwind(AssertUnwindSafe(|| {
        World::new(options, output)
            .with_text_from_step(text_from_step)
            .run()
    }));
    match run {
        Ok(outcome) => SimReport {
            seed: options.seed,
            stats: outcome.stats,
            trace_hash: outcome.trace_hash,
            violation: outcome.violation,
            excerpt: Vec::new(),
            recovered_after_us: outcome.recovered_after_us,
        },
        Err(payload) => {
            let message = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "a panic without a message".to_string());
            let failure = Failure::new(Rule::Panic, Vec::new(), message);
            SimReport {
                seed: options.seed,
                stats: SimStats::default(),
                trace_hash: 0,
                violation: Some(Violation::new(failure, 0, 0)),
                excerpt: tail.map(Tail::lines).unwrap_or_default(),
                recovered_after_us: None,
            }
        }
    }
}

/// The result of many runs.
#[derive(Clone, Debug, Default)]
pub struct SeedsSummary {
    /// Counters summed over every run.
    pub stats: SimStats,
    /// The runs that found a violation, by seed.
    pub failures: Vec<SimReport>,
    /// The longest recovery after faults stopped, in microseconds.
    pub slowest_recovery_us: u64,
}

impl SeedsSummary {
    /// Each violation found, one line each: `seed N: <violation>`.
    pub fn violations(&self) -> Vec<String> {
        let found = self.failures.iter();
        let found = found.filter_map(|report| Some((report.seed, report.violation.as_ref()?)));
        found
            .map(|(seed, violation)| format!("seed {seed}: {violation}"))
            .collect()
    }
}

/// How to run many seeds.
#[derive(Clone, Debug)]
pub struct SeedsPlan {
    /// The seeds, both ends included.
    pub seeds: RangeInclusive<u64>,
    /// Threads, each running one seed at a time.
    pub jobs: usize,
    /// Stop handing out seeds after the first violation. Seeds are handed
    /// out in order, so every seed below the first failing one still runs,
    /// and the lowest failing seed reported is the first that fails.
    pub stop_at_first_violation: bool,
}

/// Runs every seed of `plan` with `options` (whose own seed is ignored),
/// calling `on_report` after each run, from the thread that ran it.
pub fn run_seeds(
    options: &SimOptions,
    plan: &SeedsPlan,
    on_report: &(dyn Fn(&SimReport) + Sync),
) -> SeedsSummary {
    let next = AtomicU64::new(*plan.seeds.start());
    let last = *plan.seeds.end();
    let stop = AtomicBool::new(plan.seeds.is_empty());
    let summary = Mutex::new(SeedsSummary::default());
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.max(1) {
            scope.spawn(|| loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let seed = next.fetch_add(1, Ordering::SeqCst);
                if seed > last || seed == u64::MAX {
                    break;
                }
                let mut seed_options = options.clone();
                seed_options.seed = seed;
                let report = run_seed(&seed_options);
                on_report(&report);
                if report.violation.is_some() && plan.stop_at_first_violation {
                    stop.store(true, Ordering::SeqCst);
                }
                record(&summary, report);
            });
        }
    });
    let mut summary = summary.into_inner().unwrap_or_else(|e| e.into_inner());
    summary.failures.sort_by_key(|report| report.seed);
    summary
}

fn record(summary: &Mutex<SeedsSummary>, report: SimReport) {
    let mut summary = summary.lock().unwrap_or_else(|e| e.into_inner());
    summary.stats.add(&report.stats);
    if let Some(recovered) = report.recovered_after_us {
        summary.slowest_recovery_us = summary.slowest_recovery_us.max(recovered);
    }
    if report.violation.is_some() {
        summary.failures.push(report);
    }
}
