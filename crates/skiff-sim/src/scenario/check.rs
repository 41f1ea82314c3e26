//! What a scenario asserts about a batch and the state after it: `expect`,
//! `expect-none`, `check`, and the rules checked on every batch
//! (persistence before any `Send` or `Commit`; a disk that agrees with the
//! machine after it).

use super::cursor::{unknown_key, Arg};
use super::pattern::Pattern;
use super::report::{entries_text, optional_id};
use crate::durable::Durable;
use skiff_core::render::ConfigText;
use skiff_core::{Action, Entry, LogIndex, Machine, Membership, NodeId, Role, SnapshotMeta, Term};

const CHECK_KEYS: &[&str] = &[
    "role",
    "term",
    "voted_for",
    "commit",
    "last_index",
    "last_term",
    "leader",
    "log",
    "repairing",
    "snapshot",
    "hears_leader",
    "stalled",
    "reads",
    "membership",
    "change_pending",
];

/// One `KEY=VALUE` of a `check` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Check {
    Role(Role),
    Term(Term),
    VotedFor(Option<NodeId>),
    Commit(LogIndex),
    LastIndex(LogIndex),
    LastTerm(Term),
    Leader(Option<NodeId>),
    Log(Vec<Entry>),
    Repairing(bool),
    Snapshot(SnapshotMeta),
    HearsLeader(bool),
    Stalled(bool),
    /// How many reads the node holds (`Machine::pending_reads`).
    Reads(u64),
    /// The configuration in force (`Machine::membership`), context aside.
    Membership(Membership),
    /// Whether the latest configuration's entry has not committed yet
    /// (`Machine::membership_change_pending`).
    ChangePending(bool),
}

impl Check {
    /// Parses the arguments of a `check` line, each key at most once.
    pub(crate) fn parse_all(args: Vec<Arg>) -> Result<Vec<Check>, String> {
        if args.is_empty() {
            return Err(format!(
                "'check' needs at least one KEY=VALUE (keys: {})",
                CHECK_KEYS.join(", ")
            ));
        }
        let mut seen: Vec<String> = Vec::new();
        let mut checks = Vec::new();
        for arg in args {
            if seen.contains(&arg.key) {
                return Err(format!("key '{}' given twice in 'check'", arg.key));
            }
            checks.push(Check::parse(&arg)?);
            seen.push(arg.key);
        }
        Ok(checks)
    }

    fn parse(arg: &Arg) -> Result<Check, String> {
        Ok(match arg.key.as_str() {
            "role" => Check::Role(arg.role()?),
            "term" => Check::Term(Term(arg.number()?)),
            "voted_for" => Check::VotedFor(arg.optional_node()?),
            "commit" => Check::Commit(LogIndex(arg.number()?)),
            "last_index" => Check::LastIndex(LogIndex(arg.number()?)),
            "last_term" => Check::LastTerm(Term(arg.number()?)),
            "leader" => Check::Leader(arg.optional_node()?),
            "log" => Check::Log(arg.entries()?),
            "repairing" => Check::Repairing(arg.boolean()?),
            "snapshot" => Check::Snapshot(arg.snapshot()?),
            "hears_leader" => Check::HearsLeader(arg.boolean()?),
            "stalled" => Check::Stalled(arg.boolean()?),
            "reads" => Check::Reads(arg.number()?),
            "membership" => Check::Membership(arg.membership()?),
            "change_pending" => Check::ChangePending(arg.boolean()?),
            other => return Err(unknown_key("check", other, CHECK_KEYS)),
        })
    }

    /// `None` when `machine` agrees; otherwise what differs.
    pub(crate) fn mismatch(&self, machine: &Machine) -> Option<String> {
        let (key, actual, expected) = match self {
            Check::Role(role) => ("role", machine.role().to_string(), role.to_string()),
            Check::Term(term) => ("term", machine.term().to_string(), term.to_string()),
            Check::VotedFor(vote) => (
                "voted_for",
                optional_id(machine.voted_for()),
                optional_id(*vote),
            ),
            Check::Commit(index) => (
                "commit",
                machine.commit_index().to_string(),
                index.to_string(),
            ),
            Check::LastIndex(index) => (
                "last_index",
                machine.last_index().to_string(),
                index.to_string(),
            ),
            Check::LastTerm(term) => (
                "last_term",
                machine.last_term().to_string(),
                term.to_string(),
            ),
            Check::Leader(leader) => (
                "leader",
                optional_id(machine.leader()),
                optional_id(*leader),
            ),
            Check::Log(log) => (
                "log",
                format!("[{}]", entries_text(machine.log())),
                format!("[{}]", entries_text(log)),
            ),
            Check::Repairing(repairing) => (
                "repairing",
                machine.repairing().to_string(),
                repairing.to_string(),
            ),
            Check::Snapshot(snapshot) => (
                "snapshot",
                machine.snapshot().to_string(),
                snapshot.to_string(),
            ),
            Check::HearsLeader(hears) => (
                "hears_leader",
                machine.hears_leader().to_string(),
                hears.to_string(),
            ),
            Check::Stalled(stalled) => (
                "stalled",
                machine.storage_stalled().to_string(),
                stalled.to_string(),
            ),
            Check::Reads(reads) => (
                "reads",
                machine.pending_reads().to_string(),
                reads.to_string(),
            ),
            Check::Membership(membership) => (
                "membership",
                ConfigText(machine.membership()).to_string(),
                ConfigText(membership).to_string(),
            ),
            Check::ChangePending(pending) => (
                "change_pending",
                machine.membership_change_pending().to_string(),
                pending.to_string(),
            ),
        };
        (actual != expected).then(|| format!("{key} is {actual}, expected {expected}"))
    }
}

/// Every check of a `check` line that `machine` fails, joined; `Ok` when
/// all hold.
pub(crate) fn check_state(checks: &[Check], machine: &Machine) -> Result<(), String> {
    let mismatches: Vec<String> = checks.iter().filter_map(|c| c.mismatch(machine)).collect();
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(mismatches.join("; "))
    }
}

/// `expect` (`present`) or `expect-none` against a batch.
pub(crate) fn check_expectation(
    batch: &[Action],
    pattern: &Pattern,
    present: bool,
) -> Result<(), String> {
    // A LogStore of several entries renders as one line per entry.
    let rendered = super::report::render(batch);
    let found = rendered.iter().find(|action| pattern.matches(action));
    match (present, found) {
        (true, Some(_)) | (false, None) => Ok(()),
        (true, None) => Err(format!("no action of the batch matches {}", pattern.source)),
        (false, Some(action)) => Err(format!(
            "{action} matches {}, and expect-none wants no match",
            pattern.source
        )),
    }
}

/// The rule checked on every batch: every `StateStore`, `LogStore`,
/// `LogTruncate` and `SnapshotInstall` comes before every `Send` and `Commit`.
pub(crate) fn check_persistence_first(batch: &[Action]) -> Result<(), String> {
    let talks = |a: &Action| matches!(a, Action::Send { .. } | Action::Commit { .. });
    let Some(first_talk) = batch.iter().position(talks) else {
        return Ok(());
    };
    match batch[first_talk..].iter().position(Action::is_persistence) {
        None => Ok(()),
        Some(offset) => Err(format!(
            "action {} ({}) persists state after action {} ({}): every StateStore, LogStore, LogTruncate and SnapshotInstall must come before every Send and Commit",
            first_talk + offset + 1,
            batch[first_talk + offset],
            first_talk + 1,
            batch[first_talk],
        )),
    }
}

/// The rule checked after every batch: the disk holds the machine's own
/// term, vote and log, as the machine promises.
pub(crate) fn check_durable_agrees(disk: &Durable, machine: &Machine) -> Result<(), String> {
    let hard_state = disk.hard_state();
    if hard_state != machine.hard_state() {
        return Err(format!(
            "the persisted term and vote (term={}, voted_for={}) differ from the machine's (term={}, voted_for={})",
            hard_state.term,
            optional_id(hard_state.voted_for),
            machine.term(),
            optional_id(machine.voted_for()),
        ));
    }
    // The entries after the machine's snapshot; those it covers the driver
    // may discard whenever it likes (`LogCompact`).
    let after = machine.snapshot().index.next();
    let persisted: Vec<&Entry> = (after.0..=disk.last_index().0)
        .filter_map(|index| disk.entry(LogIndex(index)))
        .collect();
    if disk.last_index() != machine.last_index() || !persisted.iter().copied().eq(machine.log()) {
        return Err(format!(
            "the persisted log [{}] after the snapshot {} differs from the machine's log [{}]",
            entries_text(persisted.iter().copied()),
            machine.snapshot(),
            entries_text(machine.log()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{Config, HardState, Message, StartState, VoteResp};

    fn send() -> Action {
        Action::Send {
            to: NodeId(2),
            message: Message::VoteResp(VoteResp {
                term: Term(1),
                granted: true,
            }),
        }
    }

    fn store() -> Action {
        Action::StateStore {
            term: Term(1),
            voted_for: Some(NodeId(2)),
        }
    }

    #[test]
    fn persistence_must_come_first() {
        assert!(check_persistence_first(&[]).is_ok());
        assert!(check_persistence_first(&[store(), Action::Alarm { ms: 1 }, send()]).is_ok());
        let error =
            check_persistence_first(&[Action::Alarm { ms: 1 }, send(), store()]).unwrap_err();
        assert!(error.starts_with("action 3 (StateStore(term=1, voted_for=2)) persists state after action 2 (Send(to=2,"), "{error}");
    }

    #[test]
    fn expectations_report_what_they_saw() {
        let batch = [store(), send()];
        let sends = Pattern::new("Send(to=2, *)").unwrap();
        let alarms = Pattern::new("Alarm(*)").unwrap();
        assert!(check_expectation(&batch, &sends, true).is_ok());
        assert!(check_expectation(&batch, &alarms, false).is_ok());
        assert_eq!(
            check_expectation(&batch, &alarms, true).unwrap_err(),
            "no action of the batch matches Alarm(*)"
        );
        assert_eq!(
            check_expectation(&batch, &sends, false).unwrap_err(),
            "Send(to=2, VoteResp(term=1, granted=true)) matches Send(to=2, *), and expect-none wants no match"
        );
    }

    #[test]
    fn checks_list_every_mismatch() {
        let config = Config::new(NodeId(1), [NodeId(1), NodeId(2)]);
        let state = StartState {
            hard_state: HardState {
                term: Term(2),
                voted_for: None,
            },
            log: vec![Entry::new(Term(1), "a")],
            ..StartState::default()
        };
        let machine = Machine::with_state(config, state).unwrap();
        let holds = [
            Check::Role(Role::Follower),
            Check::Term(Term(2)),
            Check::VotedFor(None),
            Check::Commit(LogIndex(0)),
            Check::LastIndex(LogIndex(1)),
            Check::LastTerm(Term(1)),
            Check::Leader(None),
            Check::Log(vec![Entry::new(Term(1), "a")]),
        ];
        assert_eq!(check_state(&holds, &machine), Ok(()));
        let fails = [
            Check::Term(Term(3)),
            Check::Log(Vec::new()),
            Check::Leader(Some(NodeId(2))),
        ];
        assert_eq!(
            check_state(&fails, &machine).unwrap_err(),
            "term is 2, expected 3; log is [1:a], expected []; leader is none, expected 2"
        );
        let voters = Membership::new([NodeId(1), NodeId(2)], []).unwrap();
        let with_learner = Membership::new([NodeId(1), NodeId(2)], [NodeId(3)]).unwrap();
        let membership = [Check::Membership(voters), Check::ChangePending(false)];
        assert_eq!(check_state(&membership, &machine), Ok(()));
        let membership = [Check::Membership(with_learner), Check::ChangePending(true)];
        assert_eq!(
            check_state(&membership, &machine).unwrap_err(),
            "membership is [1,2], expected [1,2;3]; change_pending is false, expected true"
        );
    }
}
