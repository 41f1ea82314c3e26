//! Snapshots in the simulator: nodes take them, leaders stream them to
//! followers over the faulty network, followers install them, and every
//! rule still holds, with storage faults and forged messages too.

use skiff_sim::{
    run_seed, run_seed_traced, run_seeds, DiskFaults, FaultProfile, Limit, SeedsPlan, SeedsSummary,
    SimOptions,
};

fn options(every: Option<u64>, seconds: u64) -> SimOptions {
    let mut options = SimOptions::new(0).with_profile(FaultProfile::Chaos);
    options.compact_every = every;
    options.limit = Limit::Time { ms: seconds * 1000 };
    options
}

fn run(options: &SimOptions, seeds: u64) -> SeedsSummary {
    let plan = SeedsPlan {
        seeds: 1..=seeds,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stop_at_first_violation: false,
    };
    let summary = run_seeds(options, &plan, &|_| {});
    let failures = summary.violations();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    summary
}

#[test]
fn aggressive_compaction_under_chaos_installs_snapshots_and_breaks_no_rule() {
    let summary = run(&options(Some(5), 20), 24);
    let s = &summary.stats;
    assert!(s.snapshots_taken > 100, "{}", s.snapshots_line());
    assert!(s.snapshots_installed > 0, "{}", s.snapshots_line());
    assert!(
        s.transfers_started >= s.transfers_completed && s.transfers_completed > 0,
        "{}",
        s.snapshots_line()
    );
    assert!(
        s.chunks_lost > 0 && s.chunks_sent > s.chunks_lost,
        "{}",
        s.snapshots_line()
    );
    assert!(s.commits >= 24 * 10, "{s:?}");
}

#[test]
fn compaction_with_storage_faults_and_forgeries_breaks_no_rule() {
    for disk_faults in [DiskFaults::One, DiskFaults::Many] {
        let mut options = options(Some(5), 15);
        options.disk_faults = disk_faults;
        options.forgeries = true;
        let summary = run(&options, 12);
        let s = &summary.stats;
        assert!(
            s.storage_faults_total() > 0,
            "{disk_faults}: {}",
            s.storage_line()
        );
        assert!(
            s.snapshots_taken > 0,
            "{disk_faults}: {}",
            s.snapshots_line()
        );
    }
}

#[test]
fn the_policy_is_drawn_per_seed_and_never_means_never() {
    let drawn = options(None, 5);
    let taken: Vec<u64> = (1..=16)
        .map(|seed| {
            let report = run_seed(&SimOptions {
                seed,
                ..drawn.clone()
            });
            assert!(
                report.violation.is_none(),
                "seed {seed}: {:?}",
                report.violation
            );
            report.stats.snapshots_taken
        })
        .collect();
    assert!(taken.contains(&0), "some seeds never snapshot: {taken:?}");
    assert!(taken.iter().any(|t| *t > 0), "some seeds do: {taken:?}");
    let never = run_seed(&SimOptions {
        seed: 1,
        ..options(Some(0), 5)
    });
    assert_eq!(never.stats.snapshots_taken, 0);
    assert_eq!(never.stats.transfers_started, 0);
}

#[test]
fn a_seed_with_snapshots_replays_exactly() {
    let options = SimOptions {
        seed: 3,
        ..options(Some(5), 3)
    };
    let traced = |options: &SimOptions| {
        run_seed_traced(options, Box::new(std::io::sink()))
            .expect("a sink never fails")
            .trace_hash
    };
    let first = traced(&options);
    assert_eq!(traced(&options), first);
    assert_eq!(run_seed(&options).trace_hash, first);
    let other = SimOptions {
        compact_every: Some(6),
        ..options.clone()
    };
    assert_ne!(run_seed(&other).trace_hash, first);
}
