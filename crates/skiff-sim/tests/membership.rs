//! Membership churn (`--membership churn`): under the chaos profile, spare
//! nodes join, are promoted and removed (leaders included) and join again
//! with wiped disks, and every rule holds, the membership ones included;
//! once faults and changes stop, the final configuration elects a leader
//! and commits. Without churn nothing is asked.

use skiff_sim::{
    run_seed, run_seeds, FaultProfile, Limit, MembershipProfile, SeedsPlan, SimOptions,
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
    let violations: Vec<String> = summary
        .failures
        .iter()
        .filter_map(|report| {
            Some(format!(
                "seed {}: {}",
                report.seed,
                report.violation.as_ref()?
            ))
        })
        .collect();
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
