//! Liveness: after the faults stop, every run elects a leader and commits a
//! new append well within the bound, whatever the faults did before.

use skiff_sim::{run_seeds, FaultProfile, Limit, Rule, SeedsPlan, SimOptions};
use std::sync::Mutex;

#[test]
fn every_profile_recovers_once_faults_stop() {
    for profile in FaultProfile::ALL {
        let mut options = SimOptions::new(0).with_profile(profile);
        options.limit = Limit::Time { ms: 4_000 };
        let plan = SeedsPlan {
            seeds: 1..=60,
            jobs: 2,
            stop_at_first_violation: false,
        };
        let unrecovered = Mutex::new(Vec::new());
        let summary = run_seeds(&options, &plan, &|report| {
            if report.recovered_after_us.is_none() {
                unrecovered.lock().unwrap().push(report.seed);
            }
        });
        // Any violation fails the test, whatever its rule: a run that broke
        // safety proves nothing about recovering.
        let violations: Vec<_> = summary
            .failures
            .iter()
            .map(|report| (report.seed, &report.violation))
            .collect();
        assert!(violations.is_empty(), "{profile}: {violations:?}");
        let unrecovered = unrecovered.into_inner().unwrap();
        assert!(
            unrecovered.is_empty(),
            "{profile}: no new append committed after the faults stopped, seeds {unrecovered:?}"
        );
        let bound_us = options.liveness_bound_ms * 1000;
        assert!(summary.slowest_recovery_us < bound_us, "{profile}");
    }
}

#[test]
fn a_cluster_that_cannot_elect_is_reported() {
    // Two nodes, and a bound shorter than any election can take: the
    // liveness checker must say so rather than pass quietly.
    let mut options = SimOptions::new(1).with_profile(FaultProfile::None);
    options.nodes = 2;
    options.limit = Limit::Time { ms: 0 };
    options.liveness_bound_ms = 1;
    let report = skiff_sim::run_seed(&options);
    let violation = report.violation.expect("no leader within 1 ms");
    assert_eq!(violation.rule, Rule::Liveness);
    assert!(
        violation.detail.contains("leaders now: none"),
        "{}",
        violation.detail
    );
    assert!(!report.excerpt.is_empty(), "the report quotes the trace");
}
