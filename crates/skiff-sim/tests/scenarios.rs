//! Runs the project's scenarios (`tests/scenarios/` at the workspace root)
//! and this crate's own fixtures (`tests/data/`) under `cargo test`.

use skiff_sim::scenario::{collect_scenario_files, run_file, Outcome};
use std::path::{Path, PathBuf};

/// Runs every `.scn` file under `directory`, prints one line per file, and
/// fails listing every failing file with its report.
fn run_directory(directory: &Path) {
    let files = collect_scenario_files(&[directory])
        .unwrap_or_else(|e| panic!("cannot collect scenarios: {e}"));
    assert!(
        !files.is_empty(),
        "no scenario ran from {}",
        directory.display()
    );
    let mut failures = Vec::new();
    for file in &files {
        match run_file(file) {
            Ok(Outcome::Passed { events, checks }) => {
                println!("ok   {} ({events} events, {checks} checks)", file.display());
            }
            Ok(Outcome::Failed(failure)) => {
                println!("FAIL {}\n{failure}", file.display());
                failures.push(format!("{}\n{failure}", file.display()));
            }
            Err(error) => {
                println!("FAIL {}\n  {error}", file.display());
                failures.push(format!("{}\n  {error}", file.display()));
            }
        }
    }
    println!(
        "{} passed, {} failed",
        files.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {} scenarios failed:\n\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}

fn under_manifest(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

#[test]
fn every_project_scenario_passes() {
    run_directory(&under_manifest("../../tests/scenarios"));
}

#[test]
fn the_runner_fixtures_pass() {
    run_directory(&under_manifest("tests/data"));
}
