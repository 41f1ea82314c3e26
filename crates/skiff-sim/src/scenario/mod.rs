//! The scenario runner: runs `.scn` files (`docs/scenario-format.md`)
//! against real `skiff-core` machines.
//!
//! A scenario is parsed whole, then run line by line; the run stops at the
//! first line that does not hold and reports it with the batch the machine
//! actually produced ([`Failure`]). A file that cannot be parsed or set up
//! is a [`ScenarioError`] naming the file, the line and what was expected.
//!
//! ```
//! use skiff_sim::scenario::{run_source, Outcome};
//!
//! let outcome = run_source(
//!     "example",
//!     "node id=1 peers=1,2,3\n\
//!      state term=3 log=1:a,1:b,2:c commit=1\n\
//!      recv from=2 VoteReq(term=4, candidate=2, last_index=3, last_term=2)\n\
//!      expect Send(to=2, VoteResp(term=4, granted=true))\n\
//!      check role=follower term=4 voted_for=2\n",
//! )
//! .expect("a well-formed scenario");
//! assert!(outcome.passed());
//! ```
//!
//! # Choices the format leaves open
//!
//! * Set-up calls the machine's `start`, but its actions (the first alarm)
//!   are no batch: `expect` before the first event is an error. A `check`
//!   before the first event looks at the state as set up.
//! * `state role=candidate` or `role=leader` without `voted_for` means the
//!   node voted for itself.
//! * A `node` or `cluster` line with `election` but no `heartbeat` keeps the
//!   default 50 ms heartbeat when it fits below the election timeout, and
//!   uses a third of it otherwise.
//! * In a cluster, node `i` gets seed `seed + i`, so that the nodes draw
//!   different election timeouts.
//! * `deliver` delivers only messages queued before it began (what the
//!   deliveries send waits for the next command); `count=K` delivers at
//!   most K. A message whose receiver is crashed is dropped when its turn
//!   comes.
//! * Besides persistence before `Send` and `Commit`, every batch is checked
//!   against the machine's documented contract: `LogStore` goes one past
//!   the durable log's end, `LogTruncate` removes something, the durable
//!   state equals the machine's term, vote and log after the batch, and
//!   commits come in index order, once per machine lifetime, never
//!   contradicting an earlier commit at the same index. A panic in the
//!   machine is reported as a failure of the line that caused it.
//! * `state role=leader` starts a leader that took office with every member
//!   of its configuration, so each has progress epoch 0; a node added later
//!   gets the index of the entry that added it.
//! * In a cluster, the nodes named by `join=` start outside it (their
//!   `Config::join` set); the others are its first voters.
//!
//! # Layout
//!
//! * `lex`, `cursor`, `message`, `parse`: text to a script of steps.
//! * `pattern`: `*` patterns over rendered actions.
//! * `check`: `expect`, `expect-none`, `check` and the ordering rule.
//! * `node`: one machine with what it persisted (on the crate's
//!   [`Durable`](crate::durable::Durable) disk) and committed.
//! * `single`, `cluster`: the two modes.
//! * `report`: [`Outcome`], [`Failure`], [`StateSummary`].

mod check;
mod cluster;
mod cursor;
mod lex;
mod message;
mod node;
mod parse;
mod pattern;
mod report;
mod single;

pub use report::{Failure, Outcome, StateSummary};

use crate::timeline::Timeline;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// The extension of scenario files, searched for in directories.
pub const SCENARIO_EXTENSION: &str = "scn";

/// A scenario that cannot run: unreadable, malformed, or set up wrongly.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A file or directory could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// Why. Written into the message rather than exposed as the
        /// error's source, so that reports carry it on one line.
        error: std::io::Error,
    },
    /// A line is malformed, or the machine refuses the set-up it describes.
    #[error("{file}:{line}: {message}")]
    Invalid {
        /// The scenario's name (its path when read from a file).
        file: String,
        /// The line, from 1.
        line: usize,
        /// What was expected and what was found.
        message: String,
    },
    /// A directory holds no scenario file.
    #[error("{}: no .scn files found", path.display())]
    NoScenarios {
        /// The directory searched.
        path: PathBuf,
    },
}

/// Reads and runs the scenario in `path`.
pub fn run_file(path: &Path) -> Result<Outcome, ScenarioError> {
    let source = std::fs::read_to_string(path).map_err(|error| ScenarioError::Io {
        path: path.to_path_buf(),
        error,
    })?;
    run_source(&path.display().to_string(), &source)
}

/// Runs the scenario text `source`; `name` names it in reports.
pub fn run_source(name: &str, source: &str) -> Result<Outcome, ScenarioError> {
    run_script(name, parse_script(name, source)?, None)
}

/// Runs the scenario text `source` recording it for a page: each event
/// one unit of time, and a failed line as the violation.
pub fn run_source_timeline(name: &str, source: &str) -> Result<(Outcome, Timeline), ScenarioError> {
    let script = parse_script(name, source)?;
    let nodes = match &script.setup {
        parse::Setup::Single { .. } => 1,
        parse::Setup::Cluster { size, .. } => *size as usize,
    };
    let title = format!("skiff scenario {name}");
    let shared = Rc::new(RefCell::new(Timeline::new(&title, nodes, "event")));
    let outcome = run_script(name, script, Some(shared.clone()))?;
    // The nodes that shared it are gone with the run.
    let mut timeline = shared.replace(Timeline::new(&title, 0, "event"));
    let end = timeline.step_count() as u64;
    if let Outcome::Failed(failure) = &outcome {
        let text = format!(
            "line {}: {}: {}",
            failure.line, failure.text, failure.reason
        );
        timeline.violation(end, &text);
    }
    timeline.finish(end);
    Ok((outcome, timeline))
}

fn parse_script(name: &str, source: &str) -> Result<parse::Script, ScenarioError> {
    parse::parse(source).map_err(|e| ScenarioError::Invalid {
        file: name.to_string(),
        line: e.line,
        message: e.message,
    })
}

fn run_script(
    name: &str,
    script: parse::Script,
    timeline: Option<Rc<RefCell<Timeline>>>,
) -> Result<Outcome, ScenarioError> {
    match script.setup {
        parse::Setup::Single {
            config,
            state,
            line,
        } => single::run(name, config, state, line, &script.steps, timeline),
        parse::Setup::Cluster { size, template } => {
            Ok(cluster::run(name, size, &template, &script.steps, timeline))
        }
    }
}

/// The scenario files named by `paths`: a file as given, a directory's
/// `.scn` files recursively (not through symbolic links to directories),
/// each directory's files sorted by path. A directory without any is an
/// error, since running nothing is rarely meant.
pub fn collect_scenario_files<P: AsRef<Path>>(paths: &[P]) -> Result<Vec<PathBuf>, ScenarioError> {
    let mut files = Vec::new();
    for path in paths {
        let path = path.as_ref();
        let metadata = std::fs::metadata(path).map_err(|error| ScenarioError::Io {
            path: path.to_path_buf(),
            error,
        })?;
        if metadata.is_dir() {
            let before = files.len();
            walk(path, &mut files)?;
            files[before..].sort();
            if files.len() == before {
                return Err(ScenarioError::NoScenarios {
                    path: path.to_path_buf(),
                });
            }
        } else {
            files.push(path.to_path_buf());
        }
    }
    Ok(files)
}

/// Appends the `.scn` files under `directory`, at any depth.
fn walk(directory: &Path, files: &mut Vec<PathBuf>) -> Result<(), ScenarioError> {
    let io_error = |error| ScenarioError::Io {
        path: directory.to_path_buf(),
        error,
    };
    for entry in std::fs::read_dir(directory).map_err(io_error)? {
        let entry = entry.map_err(io_error)?;
        let path = entry.path();
        // `file_type` does not follow symbolic links, so a link that loops
        // back up the tree cannot make the walk endless.
        if entry.file_type().map_err(io_error)?.is_dir() {
            walk(&path, files)?;
        } else if path.extension().is_some_and(|e| e == SCENARIO_EXTENSION) && path.is_file() {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
