//! The simulator's clients read through the core's ReadIndex, and their
//! reads are checked: the Linearizable Read checker fails on a hand-built
//! history with a stale read (a read served by a deposed leader that
//! skipped its round of heartbeats), reads are answered by leaders and
//! followers in real runs, with and without lease reads, and the runs
//! replay exactly.

use skiff_core::{Action, Bytes, LogIndex, NodeId, ReadError, ReadId, Term};
use skiff_sim::app::AppState;
use skiff_sim::checker::agreed::AgreedLog;
use skiff_sim::checker::{Checkers, Rule};
use skiff_sim::durable::Durable;
use skiff_sim::history::{Ack, History, Read};
use skiff_sim::{run_seed, FaultProfile, Limit, SimOptions};

/// The agreed log `c1-1`, `c1-2`, `c1-3` at indices 1 to 3.
fn agreed() -> AgreedLog {
    let mut log = AgreedLog::default();
    for (i, term) in [(1, 1), (2, 1), (3, 2)] {
        log.push(Term(term), Bytes::from(format!("c1-{i}")), Term(term));
    }
    log
}

fn ack(index: u64, acked_step: u64) -> Ack {
    Ack {
        client: 1,
        node: NodeId(2),
        data: Bytes::from(format!("c1-{index}")),
        index: LogIndex(index),
        submitted_at: 0,
        acked_at: acked_step * 1000,
        acked_step,
    }
}

fn read(node: u64, through: u64, sent_step: u64, answered_step: u64, log: &AgreedLog) -> Read {
    Read {
        client: 2,
        node: NodeId(node),
        id: ReadId(sent_step),
        state: log.fold_through(LogIndex(through)).expect("committed"),
        sent_at: sent_step * 1000,
        sent_step,
        answered_at: answered_step * 1000,
        answered_step,
    }
}

/// Node 1 led term 1 and committed entries 1 and 2; node 2 was elected in
/// term 2 behind its back and acknowledged entry 3 at step 10. A read sent
/// at step 11 to node 1, which answers from its commit index (2) without
/// confirming it still leads, misses the acknowledged entry.
#[test]
fn a_stale_read_from_a_deposed_leader_is_caught() {
    let log = agreed();
    let mut fresh = History::default();
    fresh.record(ack(3, 10));
    fresh.record_read(read(2, 3, 11, 12, &log));
    // A read sent before the acknowledgement may miss it.
    fresh.record_read(read(1, 2, 9, 13, &log));
    assert_eq!(fresh.check(&log), Ok(()));

    let mut stale = fresh.clone();
    stale.record_read(read(1, 2, 11, 12, &log));
    let failure = stale.check(&log).expect_err("a stale read");
    assert_eq!(failure.rule, Rule::LinearizableRead);
    assert_eq!(failure.nodes, vec![NodeId(1)]);
    assert!(
        failure.detail.contains("acknowledged at index 3") && failure.detail.contains("stale"),
        "{}",
        failure.detail
    );
}

#[test]
fn reads_never_go_back_in_real_time() {
    let log = agreed();
    let mut history = History::default();
    // Read A, answered at step 5 through index 3; read B sent at step 6
    // returns the state through 2: B went back.
    history.record_read(read(2, 3, 4, 5, &log));
    history.record_read(read(3, 2, 6, 7, &log));
    let failure = history.check(&log).expect_err("went back");
    assert_eq!(failure.rule, Rule::LinearizableRead);
    assert!(
        failure.detail.contains("back in time"),
        "{}",
        failure.detail
    );
    // Concurrent reads may be served in either order.
    let mut concurrent = History::default();
    concurrent.record_read(read(2, 3, 4, 7, &log));
    concurrent.record_read(read(3, 2, 5, 6, &log));
    assert_eq!(concurrent.check(&log), Ok(()));
}

#[test]
fn a_read_must_return_the_agreed_state() {
    let log = agreed();
    let mut history = History::default();
    let mut forged = read(2, 3, 4, 5, &log);
    forged.state = AppState {
        count: 2,
        ..forged.state
    };
    history.record_read(forged);
    let failure = history.check(&log).expect_err("not the agreed state");
    assert_eq!(failure.rule, Rule::LinearizableRead);
}

#[test]
fn the_online_check_sees_a_stale_read_too() {
    let mut checkers = Checkers::new(3);
    let disk = Durable::default();
    let (node, id) = (NodeId(1), ReadId(1));
    // Nothing committed, nothing acknowledged: the empty state is fresh.
    let floor = checkers.read_floor();
    checkers.read_asked(node, id);
    let ready = Action::ReadReady {
        id,
        index: LogIndex(0),
    };
    assert_eq!(checkers.action(node, &ready, &disk), Ok(()));
    assert_eq!(
        checkers.read_answered(node, id, floor, &AppState::default()),
        Ok(())
    );
    // Answered twice, or never asked: Read Answered Once.
    let again = checkers.action(node, &ready, &disk).expect_err("twice");
    assert_eq!(again.rule, Rule::ReadAnsweredOnce);
    let failed = Action::ReadFailed {
        id: ReadId(2),
        error: ReadError::NotLeader { leader: None },
    };
    let unknown = checkers.action(node, &failed, &disk).expect_err("unknown");
    assert_eq!(unknown.rule, Rule::ReadAnsweredOnce);
    // A read asked and neither answered nor held was dropped.
    checkers.read_asked(node, ReadId(3));
    assert_eq!(checkers.reads_held(node, 1), Ok(()));
    let dropped = checkers.reads_held(node, 0).expect_err("dropped");
    assert_eq!(dropped.rule, Rule::ReadAnsweredOnce);
    // A crash forgets it.
    checkers.crashed(node);
    assert_eq!(checkers.reads_held(node, 0), Ok(()));
}

fn options(seed: u64, profile: FaultProfile) -> SimOptions {
    let mut options = SimOptions::new(seed).with_profile(profile);
    options.limit = Limit::Time { ms: 10_000 };
    options
}

#[test]
fn leaders_and_followers_answer_reads_in_real_runs() {
    for profile in [FaultProfile::None, FaultProfile::Chaos] {
        let report = run_seed(&options(3, profile));
        assert!(
            report.violation.is_none(),
            "{profile}: {:?}",
            report.violation
        );
        let s = &report.stats;
        assert!(s.reads_answered > 100, "{profile}: {s:?}");
        assert!(s.reads_by_followers > 0, "{profile}: {s:?}");
        assert!(s.reads_by_followers < s.reads_answered, "{profile}: {s:?}");
        assert!(s.client_acks > 100, "{profile}: {s:?}");
        assert!(s.read_latency_total_us > 0, "{profile}: {s:?}");
    }
}

#[test]
fn lease_reads_answer_faster_and_stay_linearizable() {
    let plain = run_seed(&options(4, FaultProfile::None));
    let mut leased = options(4, FaultProfile::None);
    leased.lease_read_margin_ms = Some(20);
    let leased = run_seed(&leased);
    assert!(leased.violation.is_none(), "{:?}", leased.violation);
    let mean = |s: &skiff_sim::SimStats| s.read_latency_total_us / s.reads_answered.max(1);
    assert!(
        mean(&leased.stats) < mean(&plain.stats),
        "lease {} us, rounds {} us",
        mean(&leased.stats),
        mean(&plain.stats)
    );
    for seed in 1..=5 {
        let mut chaos = options(seed, FaultProfile::Chaos);
        chaos.lease_read_margin_ms = Some(20);
        let report = run_seed(&chaos);
        assert!(
            report.violation.is_none(),
            "seed {seed}: {:?}",
            report.violation
        );
        assert!(report.stats.reads_answered > 0, "seed {seed}");
    }
}

#[test]
fn reads_replay_exactly_and_change_the_run() {
    let with_reads = options(6, FaultProfile::Chaos);
    let again = run_seed(&with_reads);
    assert_eq!(run_seed(&with_reads).trace_hash, again.trace_hash);
    let mut appends_only = with_reads.clone();
    appends_only.read_share = 0.0;
    let appends = run_seed(&appends_only);
    assert_eq!(appends.stats.reads_answered, 0);
    assert_ne!(appends.trace_hash, again.trace_hash);
    let mut leased = with_reads.clone();
    leased.lease_read_margin_ms = Some(20);
    let leased_hash = run_seed(&leased).trace_hash;
    assert_eq!(run_seed(&leased).trace_hash, leased_hash);
    assert_ne!(leased_hash, again.trace_hash);
}
