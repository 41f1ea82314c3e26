//! `skiff snapshot` as a user meets it: its help, and the command lines it
//! refuses (exit 2) or cannot carry out (exit 1), with the reason.

mod common;

use common::skiff;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    skiff(args).output().expect("the skiff binary runs")
}

fn error_text(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A configuration of nodes 1 to 3 in a temporary directory.
fn three_node_config() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut text = "cluster_id = 7\n".to_string();
    for id in 1..=3 {
        text += &format!(
            "[[nodes]]\nid = {id}\npeer_address = \"127.0.0.1:{}\"\n\
             client_address = \"127.0.0.1:{}\"\ndata_dir = \"node-{id}\"\n",
            7100 + id,
            7200 + id
        );
    }
    let path = dir.path().join("cluster.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_str().unwrap().to_string())
}

#[test]
fn help_says_what_it_does_and_how_to_name_the_node() {
    let output = run(&["snapshot", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "--node <N>",
        "--config",
        "--servers",
        "--tls-ca",
        "--timeout",
        "Exit status",
    ] {
        assert!(help.contains(expected), "{expected}: {help}");
    }
}

#[test]
fn bad_command_lines_exit_2_with_the_reason() {
    let (_dir, config) = three_node_config();
    let cases: [(&[&str], &str); 5] = [
        (&["snapshot"], "--node <N>"),
        (&["snapshot", "--node", "two"], "invalid digit"),
        (
            &["snapshot", "--node", "1", "--timeout", "0s"],
            "must be between 1ms and 1h",
        ),
        (
            &[
                "snapshot",
                "--node",
                "1",
                "--servers",
                "127.0.0.1:1",
                "--config",
                &config,
            ],
            "cannot be used with",
        ),
        (
            &["snapshot", "--node", "9", "--config", &config],
            "the configuration has no such node (its nodes: 1, 2, 3)",
        ),
    ];
    for (args, reason) in cases {
        let output = run(args);
        let stderr = error_text(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn a_node_that_cannot_be_reached_fails_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let output = run(&[
        "snapshot",
        "--node",
        "1",
        "--config",
        missing.to_str().unwrap(),
    ]);
    let stderr = error_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot use the configuration"), "{stderr}");
    // Nothing listens on port 1 of loopback: nobody says it is node 1.
    let output = run(&["snapshot", "--node", "1", "--servers", "127.0.0.1:1"]);
    let stderr = error_text(&output);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("none of the --servers says it is node 1"),
        "{stderr}"
    );
}
