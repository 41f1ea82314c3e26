//! A few hundred seeds of every fault profile, checked by every rule.
//!
//! Runs are shorter than the command line's default so the whole file stays
//! within a minute or two on two cores in the test profile; `skiff sim`
//! runs the long ones.

use skiff_sim::{run_seeds, DiskFaults, FaultProfile, Limit, SeedsPlan, SeedsSummary, SimOptions};

fn run_profile(profile: FaultProfile, seeds: u64, seconds: u64) -> SeedsSummary {
    run_configured(profile, seeds, seconds, |_| {})
}

fn run_with_disks(
    profile: FaultProfile,
    disk_faults: DiskFaults,
    seeds: u64,
    seconds: u64,
) -> SeedsSummary {
    run_configured(profile, seeds, seconds, |options| {
        options.disk_faults = disk_faults
    })
}

/// `seeds` runs of `profile`, `seconds` long, with options `configure` sets.
fn run_configured(
    profile: FaultProfile,
    seeds: u64,
    seconds: u64,
    configure: impl FnOnce(&mut SimOptions),
) -> SeedsSummary {
    let mut options = SimOptions::new(0).with_profile(profile);
    configure(&mut options);
    options.limit = Limit::Time { ms: seconds * 1000 };
    let plan = SeedsPlan {
        seeds: 1..=seeds,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stop_at_first_violation: false,
    };
    let summary = run_seeds(&options, &plan, &|_| {});
    let unexpected = summary.violations();
    assert!(
        unexpected.is_empty(),
        "{profile}: {}",
        unexpected.join("\n")
    );
    assert_eq!(summary.stats.runs, seeds);
    let stats = &summary.stats;
    assert!(
        stats.commits >= seeds * 10,
        "{profile}: too few commits: {stats:?}"
    );
    assert!(
        stats.client_acks > 0 && stats.elections >= seeds,
        "{profile}: {stats:?}"
    );
    summary
}

#[test]
fn no_faults() {
    let summary = run_profile(FaultProfile::None, 200, 20);
    let s = &summary.stats;
    assert_eq!(
        s.messages_lost + s.messages_blocked + s.crashes + s.restarts,
        0
    );
}

#[test]
fn lossy() {
    let summary = run_profile(FaultProfile::Lossy, 300, 20);
    let s = &summary.stats;
    assert!(s.messages_lost > 0 && s.messages_duplicated > 0, "{s:?}");
}

#[test]
fn partitions() {
    let summary = run_profile(FaultProfile::Partitions, 300, 20);
    let s = &summary.stats;
    assert!(s.partitions.iter().all(|count| *count > 0), "{s:?}");
    assert!(s.messages_blocked > 0, "{s:?}");
}

#[test]
fn crashes() {
    let summary = run_profile(FaultProfile::Crashes, 300, 20);
    let s = &summary.stats;
    assert!(
        s.crashes > 0 && s.crashes_mid_batch > 0 && s.restarts > 0,
        "{s:?}"
    );
}

#[test]
fn chaos() {
    let summary = run_profile(FaultProfile::Chaos, 300, 20);
    let s = &summary.stats;
    assert!(s.messages_lost > 0 && s.crashes_mid_batch > 0, "{s:?}");
    assert!(s.partitions.iter().sum::<u64>() > 0, "{s:?}");
}

#[test]
fn chaos_with_one_faulty_disk_at_a_time() {
    let summary = run_with_disks(FaultProfile::Chaos, DiskFaults::One, 100, 20);
    let s = &summary.stats;
    // Partial writes need a crash inside a batch of two writes or more:
    // too rare to expect in 100 short runs.
    assert!(
        s.storage_faults[1..].iter().all(|count| *count > 0),
        "{s:?}"
    );
    assert!(s.repairs > 0, "{s:?}");
}

#[test]
fn crashes_with_many_faulty_disks() {
    let summary = run_with_disks(FaultProfile::Crashes, DiskFaults::Many, 60, 20);
    let s = &summary.stats;
    assert!(s.repairs > 0 && s.storage_faults_total() > 0, "{s:?}");
}

#[test]
fn chaos_with_forged_messages() {
    let summary = run_configured(FaultProfile::Chaos, 100, 20, |options| {
        options.forgeries = true
    });
    // One forgery every 200 ms on average, while some node is up.
    let s = &summary.stats;
    assert!(s.forgeries >= 100 * 50, "{s:?}");
}

#[test]
fn small_and_large_clusters_under_chaos() {
    for nodes in [1, 2, 3, 4, 7, 9] {
        let mut options = SimOptions::new(0);
        options.nodes = nodes;
        options.limit = Limit::Time { ms: 3_000 };
        let plan = SeedsPlan {
            seeds: 1..=40,
            jobs: 2,
            stop_at_first_violation: false,
        };
        let summary = run_seeds(&options, &plan, &|_| {});
        let unexpected: Vec<String> = summary
            .failures
            .iter()
            .filter_map(|r| r.violation.as_ref().map(|v| (r.seed, v)))
            .map(|(seed, v)| format!("seed {seed}: {v}"))
            .collect();
        assert!(
            unexpected.is_empty(),
            "{nodes} nodes: {}",
            unexpected.join("\n")
        );
        assert!(summary.stats.commits > 0, "{nodes} nodes");
    }
}
