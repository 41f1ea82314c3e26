//! `skiff member` against a running cluster of node processes, as an
//! administrator meets it: the list, a learner added, and the errors (an
//! id already a member, an unknown id, a learner asked to lead, the last
//! voter), each with its exit status; and a machine replaced the way the
//! README tells: `skiff node --join`, `skiff member promote`, `skiff
//! member remove` of the leader.

mod common;

use common::{skiff, skiff_binary, TestCluster, PATIENCE};
use skiff::process_cluster::{Ports, ProcessCluster};
use skiff::status_probe::{wait_for_leader, wait_until_answering};
use skiff_node::NodeId;
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
    assert_eq!(role_of(&out, 4), Some("learner"), "{out}");

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

/// Runs `skiff member ARGS --config CONFIG`, expecting success; answers
/// its standard output.
fn member_ok(config: &str, args: &[&str]) -> String {
    let mut all = vec!["member"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--config", config, "--timeout", "20s"]);
    let output = run(&all);
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{args:?}: {err}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_with_join_is_promoted_and_replaces_the_leader() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster =
        ProcessCluster::create_local_configured(skiff_binary(), dir.path(), 4, Ports::Free, |c| {
            c.nodes[3].learner = true;
        })
        .unwrap();
    for id in 1..=3 {
        cluster.start(NodeId(id)).unwrap();
    }
    let voters: Vec<String> = (1..=3)
        .map(|id| cluster.client_address(NodeId(id)).unwrap().to_string())
        .collect();
    let leader = wait_for_leader(&voters, PATIENCE).await.unwrap().id.0;
    let follower = leader % 3 + 1;
    // Asked at a follower, the joining node follows its answer to the leader.
    cluster.add_node_args(["--join", voters[follower as usize - 1].as_str()]);
    cluster.start(NodeId(4)).unwrap();
    let joined = cluster.client_address(NodeId(4)).unwrap().to_string();
    wait_until_answering(&joined, PATIENCE).await.unwrap();
    let config = cluster.config_path().to_str().unwrap().to_string();
    let list = list_until(&config, |list| role_of(list, 4) == Some("learner")).await;
    assert!(list.contains("3 voters, 1 learner"), "{list}");

    let promoted = member_ok(&config, &["promote", "4"]);
    assert!(promoted.contains("node 4 is a voter"), "{promoted}");
    let removed = member_ok(&config, &["remove", &leader.to_string()]);
    assert!(
        removed.contains(&format!("node {leader} was the leader: it stepped down")),
        "{removed}"
    );
    // A new leader knows the change committed once it commits an entry of
    // its own term.
    let list = list_until(&config, |list| list.contains("; committed;")).await;
    assert!(list.contains("3 voters, 0 learners"), "{list}");
    assert_eq!(role_of(&list, leader), None, "{list}");
    assert_eq!(role_of(&list, 4), Some("voter"), "{list}");
}

/// Node `id`'s role in the table `skiff member list` prints.
fn role_of(list: &str, id: u64) -> Option<&str> {
    list.lines().find_map(|line| {
        let mut words = line.split_whitespace();
        let (node, role) = (words.next()?, words.next()?);
        let is_role = role == "voter" || role == "learner";
        (node == id.to_string() && is_role).then_some(role)
    })
}

/// `skiff member list` again until its output satisfies `done`.
async fn list_until(config: &str, done: impl Fn(&str) -> bool) -> String {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let list = member_ok(config, &["list"]);
        if done(&list) {
            return list;
        }
        assert!(tokio::time::Instant::now() < deadline, "{list}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
