//! The command line as a user meets it: exit statuses of bad command lines,
//! completion scripts, and the top-level help. (A mistake found after
//! parsing, `skiff up` over an existing cluster, is checked in up.rs.)

mod common;

use common::skiff;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    skiff(args).output().expect("the skiff binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn values_clap_refuses_exit_2_with_the_reason() {
    let cases: [(&[&str], &str); 4] = [
        (&["sim", "--seeds", "5..3"], "reversed"),
        (&["sim", "--duration", "20"], "like 500ms, 20s or 2m"),
        (&["status", "--timeout", "soon"], "like 500ms, 20s or 2m"),
        (&["fs", "write", "my file", "-"], "cannot contain spaces"),
    ];
    for (args, reason) in cases {
        let output = run(args);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}

#[test]
fn a_failure_while_running_exits_1_and_says_each_cause_once() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let output = run(&["node", "--config", missing.to_str().unwrap(), "--id", "1"]);
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("No such file or directory").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn completions_print_a_script_for_each_shell() {
    let bash = run(&["completions", "bash"]);
    assert!(bash.status.success());
    let script = text(&bash.stdout);
    assert!(script.contains("complete -F _skiff"), "{script}");
    assert!(
        script.contains("--seeds"),
        "sim's flags are completed: {script}"
    );
    for shell in ["zsh", "fish"] {
        let output = run(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        assert!(text(&output.stdout).contains("skiff"), "{shell}");
    }
    assert_eq!(run(&["completions", "tcsh"]).status.code(), Some(2));
}

#[test]
fn the_top_level_help_shows_examples_of_the_main_commands() {
    let output = run(&["--help"]);
    assert!(output.status.success());
    let help = text(&output.stdout);
    assert!(help.contains("Examples:"), "{help}");
    for command in [
        "skiff demo",
        "skiff up",
        "skiff fs",
        "skiff status",
        "skiff sim",
        "skiff scenario",
        "skiff bench",
        "skiff completions",
    ] {
        assert!(help.contains(command), "{command} missing from: {help}");
    }
}

#[test]
fn sim_help_says_how_seed_ranges_read() {
    let help = text(&run(&["sim", "--help"]).stdout);
    assert!(help.contains("`1..=200` includes 200"), "{help}");
}
