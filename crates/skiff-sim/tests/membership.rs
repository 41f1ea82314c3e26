//! Membership churn (`--membership churn`): under the chaos profile, spare
//! nodes join, are promoted and removed (leaders included) and join again
//! restarted from their disks, and every rule holds, the membership ones included;
//! once faults and changes stop, the final configuration elects a leader
//! and commits. Without churn nothing is asked.

use skiff_sim::{
    run_seed, run_seeds, DiskFaults, FaultProfile, Limit, MembershipProfile, SeedsPlan, SimOptions,
};

fn churn(seed: u64) -> SimOptions {
    let mut options = SimOptions::new(seed).with_profile(FaultProfile::Chaos);
    options.membership = MembershipProfile::Churn;
    options.limit = Limit::Time { ms: 30_000 };
    options
}

#[test]
fn churn_under_chaos_breaks_no_rule_and_recovers() {
    let plan = SeedsPlan {
        seeds: 1..=40,
        jobs: 2,
        stop_at_first_violation: false,
    };
    let summary = run_seeds(&churn(0), &plan, &|_| {});
    let violations = summary.violations();
    assert!(violations.is_empty(), "{violations:#?}");
    let s = &summary.stats;
    let line = s.membership_line();
    // Every kind of event the profile promises happened somewhere.
    assert!(s.membership_committed >= 50, "{line}");
    assert!(s.nodes_added >= 10 && s.nodes_removed >= 10, "{line}");
    assert!(s.leader_removals >= 1, "{line}");
    for refusal in ["NotLeader", "AlreadyMember", "UnknownNode"] {
        assert!(s.membership_refused.contains_key(refusal), "{line}");
    }
    // And every run recovered with its final configuration.
    assert!(summary.slowest_recovery_us > 0);
    assert!(summary.slowest_recovery_us < churn(0).liveness_bound_ms * 1000);
}

#[test]
fn a_churn_seed_replays_exactly_and_fixed_membership_asks_nothing() {
    let first = run_seed(&churn(5));
    let again = run_seed(&churn(5));
    assert_eq!(first.trace_hash, again.trace_hash);
    assert_eq!(first.stats, again.stats);
    assert!(first.stats.membership_asked > 0);
    let mut fixed = churn(5);
    fixed.membership = MembershipProfile::Fixed;
    let fixed = run_seed(&fixed);
    assert!(fixed.violation.is_none(), "{:?}", fixed.violation);
    assert_eq!(fixed.stats.membership_asked, 0);
    assert_eq!(fixed.stats.nodes_added, 0);
    assert_ne!(fixed.trace_hash, first.trace_hash);
}

/// Seeds that once failed with churn and disk faults together, each
/// through the simulator rather than Raft: a checker that took a change
/// held across terms for a dropped one (1389 of 5 nodes), damage to a sole
/// voter (1 of 3), a configuration shrunk to two voters around a repairing
/// node (2 of 3 and of 4), the crashing leader's own configuration not
/// counted (38 of 3), and, with several faulty disks, a liveness bound
/// counted against the committed configuration (404 of 5, many); and one
/// through the core: a damaged log whose intact part named its node the
/// sole voter, refused a start though the cut tail had added members (750
/// of 3).
#[test]
fn churn_with_disk_faults_replays_the_seeds_that_once_failed() {
    let cases = [
        (1389, 5, DiskFaults::One),
        (1, 3, DiskFaults::One),
        (2, 3, DiskFaults::One),
        (2, 4, DiskFaults::One),
        (38, 3, DiskFaults::One),
        (237, 4, DiskFaults::One),
        (750, 3, DiskFaults::One),
        (270, 3, DiskFaults::Many),
        (404, 5, DiskFaults::Many),
    ];
    for (seed, nodes, disk_faults) in cases {
        let mut options = SimOptions::new(seed).with_profile(FaultProfile::Chaos);
        options.membership = MembershipProfile::Churn;
        options.nodes = nodes;
        options.disk_faults = disk_faults;
        let report = run_seed(&options);
        assert!(
            report.violation.is_none(),
            "seed {seed}, {nodes} nodes, {disk_faults:?}: {:?}",
            report.violation
        );
        assert!(report.stats.membership_committed > 0, "seed {seed}");
    }
}
