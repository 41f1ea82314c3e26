//! The scenario examples that the documentation shows run, and pass: the
//! format's specification (`docs/scenario-format.md`) and the README quote
//! them, so a change of the format that they do not follow fails here.

use skiff_sim::scenario::{run_source, Outcome};
use std::path::Path;

fn workspace_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The indented block that follows the `heading` line of a Markdown text:
/// every line indented by four spaces, up to the first line that is not
/// (blank lines inside the block are kept).
fn indented_block_after(text: &str, heading: &str) -> String {
    let start = text
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the text"));
    let mut block = String::new();
    for line in text[start..].lines().skip(1) {
        if let Some(code) = line.strip_prefix("    ") {
            block.push_str(code);
            block.push('\n');
        } else if line.trim().is_empty() {
            block.push('\n');
        } else if !block.trim().is_empty() {
            break;
        }
    }
    assert!(!block.trim().is_empty(), "no example after {heading:?}");
    block
}

fn assert_passes(name: &str, source: &str) {
    match run_source(name, source) {
        Ok(Outcome::Passed { checks, .. }) => assert!(checks > 0, "{name} checks nothing"),
        Ok(Outcome::Failed(failure)) => panic!("{name} fails:\n{failure}\n{source}"),
        Err(error) => panic!("{name} does not parse: {error}\n{source}"),
    }
}

#[test]
fn the_specifications_example_passes() {
    let spec = workspace_file("docs/scenario-format.md");
    assert_passes(
        "docs/scenario-format.md",
        &indented_block_after(&spec, "## Example"),
    );
}

#[test]
fn the_readmes_example_passes() {
    let readme = workspace_file("README.md");
    assert_passes(
        "README.md",
        &indented_block_after(&readme, "## The scenario format"),
    );
}

#[test]
fn the_docs_name_the_projects_own_specification() {
    for file in ["README.md", "docs/ARCHITECTURE.md", "docs/state-machine.md"] {
        let text = workspace_file(file);
        assert!(
            !text.contains("shared/spec"),
            "{file} points outside the repository; the format lives in docs/scenario-format.md"
        );
        assert!(text.contains("docs/scenario-format.md"), "{file}");
    }
}
