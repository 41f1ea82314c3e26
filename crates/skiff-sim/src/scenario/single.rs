//! Single-node mode: one machine, events straight from the file.

use super::check::{check_expectation, check_state};
use super::node::{Node, SharedTimeline};
use super::parse::{Command, Step};
use super::report::render;
use super::report::{Failure, Outcome};
use super::ScenarioError;
use skiff_core::{Config, StartState};

/// Runs `steps` against one machine set up from `config` and `state`
/// (`line` is the line to blame if the machine refuses them).
pub(crate) fn run(
    file: &str,
    config: Config,
    state: StartState,
    line: usize,
    steps: &[Step],
    timeline: Option<SharedTimeline>,
) -> Result<Outcome, ScenarioError> {
    let mut node = Node::with_state(config, state).map_err(|e| ScenarioError::Invalid {
        file: file.to_string(),
        line,
        message: format!("the machine refuses this set-up: {e}"),
    })?;
    if let Some(timeline) = timeline {
        node.record_into(timeline, 0);
    }
    let (mut events, mut checks) = (0, 0);
    if let Err(reason) = node.start(false) {
        return Ok(failed(file, line, "(set-up)", reason, &node));
    }
    for step in steps {
        let result = match &step.command {
            Command::Event { event, .. } => {
                events += 1;
                node.step(event.clone())
            }
            Command::Expect {
                pattern, present, ..
            } => {
                checks += 1;
                check_expectation(node.batch().unwrap_or_default(), pattern, *present)
            }
            Command::Check { checks: list, .. } => {
                checks += 1;
                match node.machine() {
                    Some(machine) => check_state(list, machine),
                    None => Err("the machine is gone".to_string()),
                }
            }
            other => Err(format!("{other:?} is not a single-node command")),
        };
        if let Err(reason) = result {
            return Ok(failed(file, step.line, &step.text, reason, &node));
        }
    }
    Ok(Outcome::Passed { events, checks })
}

fn failed(file: &str, line: usize, text: &str, reason: String, node: &Node) -> Outcome {
    Outcome::Failed(Box::new(Failure {
        file: file.to_string(),
        line,
        text: text.to_string(),
        reason,
        node: None,
        batch: node.batch().map(render),
        state: node.state(),
    }))
}
