//! `skiff testbed`, shortened (a 5 s rejoin, 10 s of partial partition,
//! a 3 s disk stall, 10 s of chaos): 5 nodes in network namespaces with 2 ms +- 1 ms links.
//! Where the machine does not allow it (not root, no `ip`, no namespaces)
//! the test prints "skipped: <reason>" and passes, so that CI passes
//! elsewhere.
//!
//! The time bounds (a new leader within two election timeouts) are the
//! command's own verdicts, like a benchmark's; this test requires the
//! events and every other property, so a loaded machine cannot fail it.
//!
//! What it waits on: the test bed process's exit; inside, the test bed
//! polls the nodes' status with deadlines (see its `scenarios` module).

use std::process::Command;

/// Every property the test bed prints whose verdict is not a stopwatch's:
/// the leadership health that PreVote and CheckQuorum give (issue 14), and
/// the test bed's own machinery. Each must print PASS.
const MUST_PASS: [&str; 5] = [
    "(b) rejoin after a partition changes neither leader nor term",
    "(c) elections under a partial partition",
    "(d) linearizable",
    "chaos: a leader after every heal",
    "no node exited by itself",
];

/// The properties whose verdict is a time bound (two election timeouts).
/// The bound is a performance figure, judged by `skiff testbed` itself the
/// way a benchmark is, and not asserted here: a loaded machine (CI running
/// on two cores) can miss it while the cluster does everything right. What
/// the test does require is the event itself: a replacement and a step-down
/// measured within the fault, not "not within ...".
const MUST_HAPPEN: [&str; 3] = [
    "(a) isolated leader replaced",
    "(a) isolated leader steps down",
    "(e) leader with a stalled disk replaced",
];

/// `skiff testbed` as the issue asks for it, with shorter faults.
const SHORTENED_RUN: [&str; 14] = [
    "testbed",
    "--nodes=5",
    "--delay=2ms",
    "--jitter=1ms",
    "--election-timeout=300ms",
    "--rejoin-after=5s",
    "--partial-for=10s",
    "--stall-for=3s",
    "--chaos-for=10s",
    "--clients=4",
    "--seed=1",
    "--loss=0",
    "--scenarios",
    "isolate-leader,rejoin,partial,stall,chaos",
];

#[test]
fn the_shortened_test_bed_prints_every_figure_and_leaves_no_namespace() {
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(SHORTENED_RUN)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the skiff binary runs");
    let pid = child.id();
    let output = child.wait_with_output().expect("the test bed ends");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if let Some(reason) = stderr
        .lines()
        .find_map(|l| l.strip_prefix("error: the test bed cannot run here: "))
    {
        println!("skipped: {reason}");
        return;
    }
    println!("{stdout}\n{stderr}");

    let line_of = |name: &str| {
        let line = stdout.lines().find(|l| l.contains(&format!("{name}: ")));
        line.unwrap_or_else(|| panic!("no line for {name:?}:\n{stdout}\n{stderr}"))
    };
    for name in MUST_PASS {
        assert!(
            line_of(name).starts_with("PASS"),
            "{name} failed:\n{stdout}\n{stderr}"
        );
    }
    let mut over_bound = Vec::new();
    for name in MUST_HAPPEN {
        let line = line_of(name);
        assert!(
            !line.contains("not within"),
            "{name}: the event did not happen within the fault:\n{stdout}\n{stderr}"
        );
        if line.starts_with("FAIL") {
            println!("over its time bound on this machine (a figure, not asserted): {line}");
            over_bound.push(name);
        }
    }
    // The command fails when any property does; here only a time bound may.
    if !output.status.success() {
        let failed = (stderr.lines())
            .find_map(|l| l.strip_prefix("error: failed: "))
            .unwrap_or_else(|| panic!("the test bed failed for another reason:\n{stderr}"));
        let failed: Vec<&str> = failed.split("; ").collect();
        assert_eq!(failed, over_bound, "{stderr}");
    }

    // The relays add what they were asked to, measured per chunk.
    let delay_line = (stdout.lines())
        .find(|l| l.contains("relay added delay: "))
        .expect("the relay's delay is printed");
    let median: f64 = delay_line
        .split("median ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("no median in {delay_line:?}"));
    assert!((1.0..6.0).contains(&median), "{delay_line}");

    // Every namespace of the run is gone.
    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let namespaces = String::from_utf8_lossy(&namespaces.stdout);
    let prefix = format!("skiff-tb-{pid}-");
    assert!(!namespaces.contains(&prefix), "left behind:\n{namespaces}");
}
