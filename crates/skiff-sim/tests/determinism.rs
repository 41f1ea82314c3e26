//! A seed replays its run exactly: the same seed and options give the same
//! trace hash and byte-identical trace text; other seeds give other hashes.

use skiff_sim::{run_seed, run_seed_traced, FaultProfile, Limit, SimOptions};
use std::collections::HashSet;
use std::io::Write;
use std::sync::{Arc, Mutex};

fn options(seed: u64, profile: FaultProfile) -> SimOptions {
    let mut options = SimOptions::new(seed).with_profile(profile);
    options.limit = Limit::Time { ms: 3_000 };
    options
}

/// A writer whose bytes can be read after the run.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn traced(options: &SimOptions) -> (u64, String) {
    let out = Shared::default();
    let report = run_seed_traced(options, Box::new(out.clone())).expect("memory never fails");
    let text = String::from_utf8(out.0.lock().unwrap().clone()).expect("utf-8 trace");
    (report.trace_hash, text)
}

#[test]
fn the_same_seed_gives_the_same_hash_and_trace() {
    for profile in FaultProfile::ALL {
        let options = options(7, profile);
        let (hash_a, text_a) = traced(&options);
        let (hash_b, text_b) = traced(&options);
        assert_eq!(hash_a, hash_b, "{profile}");
        assert_eq!(text_a, text_b, "{profile}");
        assert!(text_a.lines().count() > 100, "{profile}: a real trace");
        // Writing the text changes nothing about the run.
        let untraced = run_seed(&options);
        assert_eq!(untraced.trace_hash, hash_a, "{profile}");
    }
}

#[test]
fn different_seeds_give_different_hashes() {
    let hashes: HashSet<u64> = (1..=50)
        .map(|seed| run_seed(&options(seed, FaultProfile::Chaos)).trace_hash)
        .collect();
    assert_eq!(hashes.len(), 50);
}

#[test]
fn different_options_give_different_hashes() {
    let base = options(3, FaultProfile::Chaos);
    let mut more_nodes = base.clone();
    more_nodes.nodes = 3;
    let mut lossier = base.clone();
    lossier.faults.loss = 0.2;
    let hashes: HashSet<u64> = [base, more_nodes, lossier]
        .iter()
        .map(|o| run_seed(o).trace_hash)
        .collect();
    assert_eq!(hashes.len(), 3);
}

#[test]
fn the_trace_renders_events_and_actions_in_the_scenario_format() {
    let (_, text) = traced(&options(1, FaultProfile::Chaos));
    assert!(
        text.starts_with("# seed=1 nodes=5 clients=3 time=3000ms faults=chaos"),
        "{}",
        &text[..200]
    );
    assert!(text.contains(" on 1 timeout\n") || text.contains(" on 2 timeout\n"));
    assert!(text.contains("  StateStore(term=1, voted_for="));
    assert!(text.contains(" recv from="));
    assert!(text.contains("  Send(to="));
    // Which of client 1's requests is its first append depends on the
    // seed's draws (reads and appends interleave).
    assert!(text
        .lines()
        .any(|l| l.contains(" append c1-") && l.ends_with("  # client 1")));
    assert!(text.contains("quiet: faults stop"));
    for line in text.lines() {
        let event = line.starts_with("t=") || line.starts_with('#');
        assert!(event || line.starts_with("  "), "stray line {line:?}");
    }
}

#[test]
fn a_step_limit_ends_the_faulty_part() {
    let mut options = options(5, FaultProfile::Chaos);
    options.limit = Limit::Steps(3_000);
    let report = run_seed(&options);
    assert!(report.violation.is_none(), "{:?}", report.violation);
    assert!(report.stats.steps > 3_000, "{:?}", report.stats);
    assert!(report.recovered_after_us.is_some());
    assert_eq!(run_seed(&options).trace_hash, report.trace_hash);
}
