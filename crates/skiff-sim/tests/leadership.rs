//! Leadership health in the simulator: stalled disks make their leaders
//! step down, and PreVote with CheckQuorum keeps elections rare under
//! partial partitions where, without them, the cluster storms.

use skiff_sim::{run_seeds, FaultProfile, Limit, SeedsPlan, SeedsSummary, SimOptions};

fn run(options: &SimOptions, seeds: u64) -> SeedsSummary {
    let plan = SeedsPlan {
        seeds: 1..=seeds,
        jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
        stop_at_first_violation: false,
    };
    run_seeds(options, &plan, &|_| {})
}

#[test]
fn stalled_disks_block_their_nodes_and_depose_their_leaders() {
    let mut options = SimOptions::new(0).with_profile(FaultProfile::Chaos);
    options.limit = Limit::Time { ms: 20_000 };
    options.faults.stall_rate = 0.5;
    let summary = run(&options, 40);
    assert!(
        summary.violations().is_empty(),
        "{:?}",
        summary.violations()
    );
    let s = &summary.stats;
    assert!(s.stalls > 0 && s.stalls_over_limit > 0, "{s:?}");
    assert!(
        s.stalls_over_limit < s.stalls,
        "some stalls end within the limit: {s:?}"
    );
    assert!(s.stepped_down[1] > 0, "no StorageStalled step-down: {s:?}");
    assert!(s.leaderless_intervals > 0, "{s:?}");
}

#[test]
fn prevote_and_check_quorum_keep_partial_partitions_calm() {
    let mut options = SimOptions::new(0).with_profile(FaultProfile::Partitions);
    options.limit = Limit::Time { ms: 30_000 };
    let on = run(&options, 20);
    assert!(on.violations().is_empty(), "{:?}", on.violations());
    options.pre_vote = false;
    options.check_quorum = false;
    let off = run(&options, 20);
    let rate = |summary: &SeedsSummary| {
        summary
            .stats
            .partial_elections_per_minute()
            .expect("partial partitions were drawn")
    };
    let (calm, storm) = (rate(&on), rate(&off));
    assert!(calm * 4.0 < storm, "on: {calm:.1}/min, off: {storm:.1}/min");
    assert_eq!(off.stats.stepped_down, [0; 4], "no CheckQuorum when off");
    assert!(on.stats.stepped_down[0] > 0, "{:?}", on.stats);
}

#[test]
fn a_seed_with_stalls_replays_exactly() {
    let mut stalled = 0;
    for seed in 1..=6 {
        let mut options = SimOptions::new(seed).with_profile(FaultProfile::Chaos);
        options.limit = Limit::Time { ms: 3_000 };
        options.faults.stall_rate = 3.0;
        let first = skiff_sim::run_seed(&options);
        let again = skiff_sim::run_seed(&options);
        assert_eq!(first.trace_hash, again.trace_hash, "seed {seed}");
        assert_eq!(first.stats, again.stats, "seed {seed}");
        stalled += first.stats.stalls;
    }
    assert!(stalled > 0, "no stall in six seeds");
}
