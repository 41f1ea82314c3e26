//! `skiff member` against a running cluster of node processes, as an
//! administrator meets it: the list, a learner added, and the errors (an
//! id already a member, an unknown id, a learner asked to lead, the last
//! voter), each with its exit status.

mod common;

use common::{skiff, TestCluster};
use std::process::Output;

fn run(args: &[&str]) -> Output {
    skiff(args).output().expect("the skiff binary runs")
}

/// Runs `skiff member ARGS --config CONFIG` and answers its exit status,
/// standard output and standard error.
fn member(cluster: &TestCluster, args: &[&str]) -> (Option<i32>, String, String) {
    let config = cluster.cluster.config_path().to_str().unwrap().to_string();
    let mut all = vec!["member"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", &config, "--timeout", "20s"]);
    let output = run(&all);
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_commands_change_the_cluster_and_explain_their_refusals() {
    let cluster = TestCluster::start(3).await;
    let leader = cluster.leader().await.id.0;

    let (code, out, err) = member(&cluster, &["list"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.matches(" voter ").count(), 3, "{out}");
    assert!(
        out.contains(&format!(
            "3 voters, 0 learners; committed; as seen by node {leader}, the leader"
        )),
        "{out}"
    );

    // A learner that never starts: the change commits without it.
    let (code, out, err) = member(&cluster, &["add", "4", "127.0.0.1:9", "127.0.0.1:10"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("node 4 added as a learner"), "{out}");
    assert!(out.contains("skiff member promote 4"), "{out}");
    assert!(out.contains("[[nodes]]\nid = 4"), "{out}");
    let (_, out, _) = member(&cluster, &["list"]);
    assert!(out.contains("3 voters, 1 learner"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("4 ") && l.contains("learner")),
        "{out}"
    );

    let config = cluster.cluster.config_path().to_str().unwrap().to_string();
    let transfer = run(&["transfer-leader", "4", "--config", &config]);
    let err = String::from_utf8_lossy(&transfer.stderr);
    assert_eq!(transfer.status.code(), Some(1), "{err}");
    assert!(err.contains("node 4 is a learner"), "{err}");

    let refusals: [(&[&str], &str); 3] = [
        (
            &["add", "2", "127.0.0.1:9", "127.0.0.1:10"],
            "cannot add node 2: the node is already a member",
        ),
        (
            &["remove", "9"],
            "cannot remove node 9: the node is not a member",
        ),
        (
            &["promote", "9"],
            "cannot promote node 9: the node is not a member",
        ),
    ];
    for (args, reason) in refusals {
        let (code, _, err) = member(&cluster, args);
        assert_eq!(code, Some(1), "{args:?}: {err}");
        assert!(err.contains(reason), "{args:?}: {err}");
    }

    // Down to the leader alone, which cannot go.
    let (code, out, err) = member(&cluster, &["remove", "4"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("node 4 removed"), "{out}");
    for follower in (1..=3).filter(|id| *id != leader) {
        let (code, _, err) = member(&cluster, &["remove", &follower.to_string()]);
        assert_eq!(code, Some(0), "removing node {follower}: {err}");
    }
    let (code, _, err) = member(&cluster, &["remove", &leader.to_string()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot remove the last voter"), "{err}");
    let (_, out, _) = member(&cluster, &["list"]);
    assert!(out.contains("1 voter, 0 learners; committed"), "{out}");
}

#[test]
fn bad_member_command_lines_exit_2_with_the_reason() {
    let cases: [(&[&str], &str); 4] = [
        (
            &["member", "add", "0", "127.0.0.1:1", "127.0.0.1:2"],
            "node ids start at 1",
        ),
        (
            &["member", "add", "4", "localhost", "127.0.0.1:2"],
            "invalid socket address",
        ),
        (&["member", "promote"], "<N>"),
        (&["member", "kick", "1"], "unrecognized subcommand"),
    ];
    for (args, reason) in cases {
        let output = run(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}
