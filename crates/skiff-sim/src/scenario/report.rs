//! What running a scenario reports: a pass, or the first failing line with
//! the batch the machine actually produced and the state it ended in.

use skiff_core::render::ConfigText;
use skiff_core::{Entry, LogIndex, Machine, Membership, NodeId, Role, SnapshotMeta, Term};
use std::fmt;

/// The result of running one scenario that parsed and set up cleanly.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every line held.
    Passed {
        /// How many events the machines handled (deliveries included).
        events: usize,
        /// How many `expect`, `expect-none`, `check` and `check-committed`
        /// lines held.
        checks: usize,
    },
    /// A line did not hold; the scenario stopped there.
    Failed(Box<Failure>),
}

impl Outcome {
    /// Whether the scenario passed.
    pub fn passed(&self) -> bool {
        matches!(self, Outcome::Passed { .. })
    }
}

/// The first line of a scenario that did not hold, and what the machine did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The scenario's name (its path when read from a file).
    pub file: String,
    /// The failing line's number, from 1.
    pub line: usize,
    /// The failing line as written, trimmed.
    pub text: String,
    /// Why it failed.
    pub reason: String,
    /// In cluster mode, the node the line is about, if any.
    pub node: Option<NodeId>,
    /// The batch the line looked at (or the event produced), each action
    /// rendered as scenario text, in order; `None` when there is none to
    /// show (before the first event, or a line about the whole cluster).
    pub batch: Option<Vec<String>>,
    /// The state of the node after that batch; `None` when there is no
    /// such node (crashed, or the line concerns the whole cluster).
    pub state: Option<StateSummary>,
}

impl fmt::Display for Failure {
    /// The report `skiff scenario` prints, indented by two spaces:
    /// the line, the reason, the batch and the state.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "  {}:{}: {}", self.file, self.line, self.text)?;
        writeln!(f, "  reason: {}", self.reason)?;
        let whose = match self.node {
            Some(node) => format!(" of node {node}"),
            None => String::new(),
        };
        match self.batch.as_deref() {
            None => {}
            Some([]) => writeln!(f, "  batch{whose}: (no actions)")?,
            Some(batch) => {
                writeln!(f, "  batch{whose}:")?;
                for action in batch {
                    writeln!(f, "    {action}")?;
                }
            }
        }
        if let Some(state) = &self.state {
            writeln!(f, "  state{whose}: {state}")?;
        }
        Ok(())
    }
}

/// A node's state in the words of `check`, so it can be pasted into one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateSummary {
    /// The node's role.
    pub role: Role,
    /// The current term.
    pub term: Term,
    /// The vote cast in the current term.
    pub voted_for: Option<NodeId>,
    /// The commit index.
    pub commit: LogIndex,
    /// The index of the last log entry.
    pub last_index: LogIndex,
    /// The term of the last log entry.
    pub last_term: Term,
    /// The leader known for the current term.
    pub leader: Option<NodeId>,
    /// The snapshot the log starts after.
    pub snapshot: SnapshotMeta,
    /// The configuration in force.
    pub membership: Membership,
    /// Whether its entry has not committed yet.
    pub change_pending: bool,
}

impl StateSummary {
    /// Reads the state of `machine`.
    pub fn of(machine: &Machine) -> StateSummary {
        StateSummary {
            role: machine.role(),
            term: machine.term(),
            voted_for: machine.voted_for(),
            commit: machine.commit_index(),
            last_index: machine.last_index(),
            last_term: machine.last_term(),
            leader: machine.leader(),
            snapshot: machine.snapshot(),
            membership: machine.membership().clone(),
            change_pending: machine.membership_change_pending(),
        }
    }
}

impl fmt::Display for StateSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "role={} term={} voted_for={} commit={} last_index={} last_term={} leader={}",
            self.role,
            self.term,
            optional_id(self.voted_for),
            self.commit,
            self.last_index,
            self.last_term,
            optional_id(self.leader)
        )?;
        if self.snapshot.index.0 > 0 {
            write!(f, " snapshot={}", self.snapshot)?;
        }
        write!(f, " membership={}", ConfigText(&self.membership))?;
        if self.change_pending {
            f.write_str(" change_pending=true")?;
        }
        Ok(())
    }
}

/// Each action of `batch` as scenario text.
/// A batch as scenario text writes it, one line per action, and one per
/// entry of a `LogStore`.
pub(crate) fn render(batch: &[skiff_core::Action]) -> Vec<String> {
    batch
        .iter()
        .flat_map(|action| {
            let text = action.to_string();
            text.lines().map(str::to_string).collect::<Vec<_>>()
        })
        .collect()
}

/// A node id, or `none`, as scenario text writes it.
pub(crate) fn optional_id(id: Option<NodeId>) -> String {
    id.map_or_else(|| "none".to_string(), |id| id.to_string())
}

/// Entries as `state` and `check` write a log: `1:a,1:b`.
pub(crate) fn entries_text<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    let texts: Vec<String> = entries.into_iter().map(ToString::to_string).collect();
    texts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_line_reason_batch_and_state() {
        let failure = Failure {
            file: "x.scn".to_string(),
            line: 7,
            text: "expect Alarm(ms=1)".to_string(),
            reason: "no action of the batch matches".to_string(),
            node: Some(NodeId(2)),
            batch: Some(vec!["Alarm(ms=150)".to_string()]),
            state: Some(StateSummary {
                role: Role::Follower,
                term: Term(3),
                voted_for: None,
                commit: LogIndex(1),
                last_index: LogIndex(2),
                last_term: Term(3),
                leader: Some(NodeId(1)),
                snapshot: SnapshotMeta::default(),
                membership: Membership::new([NodeId(1), NodeId(2), NodeId(3)], [NodeId(4)])
                    .expect("a configuration"),
                change_pending: true,
            }),
        };
        assert_eq!(
            failure.to_string(),
            "  x.scn:7: expect Alarm(ms=1)\n  reason: no action of the batch matches\n  batch of node 2:\n    Alarm(ms=150)\n  state of node 2: role=follower term=3 voted_for=none commit=1 last_index=2 last_term=3 leader=1 membership=[1,2,3;4] change_pending=true\n"
        );
    }
}
