//! `skiff demo`, run as a user would (shortened): it crashes the leader,
//! restarts it, tells how many leader changes followed and how the node
//! rejoined, ends with no lost writes and no change applied twice (as
//! its audit of the committed log finds), exits 0 and leaves nothing behind.

mod common;

use common::skiff;
use std::path::Path;

#[test]
fn the_demo_loses_no_writes_and_cleans_up() {
    let output = skiff(&["demo", "--duration", "8s", "--clients", "8"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    let has = |prefix: &str| lines.iter().any(|l| l.trim_start().starts_with(prefix));
    for line in [
        "lost writes:      0",
        "stale reads:      0",
        "errors:           0",
        "duplicates applied: 0 (",
    ] {
        assert!(has(line), "no {line:?} in\n{stdout}");
    }
    assert!(stdout.contains("SIGKILL to node"), "{stdout}");
    assert!(stdout.contains("caught up in"), "{stdout}");
    // Per kill: the leader changes and terms, and how the node rejoined.
    let story = lines
        .iter()
        .find(|l| l.contains("kill of node"))
        .unwrap_or_else(|| panic!("no account of the kill in\n{stdout}"));
    assert!(story.contains("leader change"), "{story}");
    assert!(
        story.contains("rejoined without an election") || story.contains("caused an election"),
        "{story}"
    );
    assert!(has("kill 1:") && has("restart 1:"), "{stdout}");
    assert!(stdout.contains("(the leader): 0 lost"), "{stdout}");
    let operations: u64 = lines
        .iter()
        .find_map(|l| l.trim_start().strip_prefix("operations:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no operation count in\n{stdout}"));
    assert!(operations > 0, "{stdout}");
    let removed = lines
        .iter()
        .find_map(|l| l.strip_prefix("removed "))
        .unwrap_or_else(|| panic!("no removed directory in\n{stdout}"));
    assert!(!Path::new(removed).exists(), "{removed} is still there");
}
