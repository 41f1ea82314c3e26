//! `skiff abuse` as a user runs it, with smaller numbers: idle and
//! half-sent connections against a leader whose pending-bytes budget is
//! low, so that memory held without the budget (60 MB of half-sent writes)
//! would break the bound by far. Latencies are printed, not asserted.

mod common;

use common::skiff;
use skiff::process_cluster::{write_local_config, Ports};
use skiff_node::ClusterConfig;

const IDLE: u64 = 300;
const HALF_SENT: u64 = 60;
const PENDING_BYTES_MAX: usize = 4 << 20;

/// The number in `line` right before `unit`, after `label`.
fn number_after(line: &str, label: &str) -> u64 {
    let rest = &line[line
        .find(label)
        .unwrap_or_else(|| panic!("no {label} in {line}"))
        + label.len()..];
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn half_sent_writes_hold_no_more_than_the_budget_and_writes_keep_succeeding() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_local_config(dir.path(), 3, Ports::Free).unwrap();
    let mut config = ClusterConfig::load(&path).unwrap();
    config.limits.client_pending_bytes_max = PENDING_BYTES_MAX;
    config.save(&path).unwrap();

    let output = skiff(&[
        "abuse",
        "--config",
        path.to_str().unwrap(),
        "--idle",
        &IDLE.to_string(),
        "--half-sent",
        &HALF_SENT.to_string(),
        "--duration",
        "2s",
    ])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(output.status.success(), "{stdout}\n{stderr}");

    let line = |prefix: &str| {
        let found = stdout.lines().find(|line| line.starts_with(prefix));
        found.unwrap_or_else(|| panic!("no line starting {prefix:?} in:\n{stdout}"))
    };
    assert!(line("unloaded: ").ends_with(", 0 failed"), "{stdout}");
    assert!(line("loaded ").ends_with(", 0 failed"), "{stdout}");
    assert!(line("abuse: ").contains("(0 connects failed)"), "{stdout}");

    // The bound: memory before, the whole budget, and 32 KiB for each
    // connection (its unbudgeted buffer and bookkeeping).
    let memory = line("leader resident memory: ");
    let (before, peak, bound) = (
        number_after(memory, "before "),
        number_after(memory, "peak "),
        number_after(memory, "bound "),
    );
    let connections = IDLE + HALF_SENT + 1;
    assert_eq!(
        bound,
        before + (PENDING_BYTES_MAX as u64 >> 10) + connections * 32,
        "{memory}"
    );
    assert!(peak <= bound, "{memory}");
}
