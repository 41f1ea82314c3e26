//! The text rendering of messages and actions used by scenario files and
//! traces (`docs/scenario-format.md`), as `Display` impls.

use crate::action::{Action, CommitError, ReadError, TransferError};
use crate::membership::{Membership, MembershipChange, MembershipError};
use crate::message::{
    AppendEntriesReq, AppendEntriesResp, InstallSnapshotReq, InstallSnapshotResp, Message,
    ReadIndexReq, ReadIndexResp, VoteReq, VoteResp,
};
use crate::types::{Entry, LogIndex, NodeId};
use std::fmt::{self, Display, Formatter};

/// Entry data as scenario text: bare when it is non-empty and made only of
/// `A-Z a-z 0-9 _ . : / -`, otherwise quoted, with `"` and `\` escaped and
/// bytes outside printable ASCII written as `\xNN`.
pub struct DataText<'a>(pub &'a [u8]);

impl Display for DataText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let bare = !self.0.is_empty() && self.0.iter().all(|b| is_bare_byte(*b));
        if bare {
            // Bare bytes are ASCII, hence valid UTF-8.
            return f.write_str(std::str::from_utf8(self.0).map_err(|_| fmt::Error)?);
        }
        f.write_str("\"")?;
        for &byte in self.0 {
            match byte {
                b'"' => f.write_str("\\\"")?,
                b'\\' => f.write_str("\\\\")?,
                0x20..=0x7e => write!(f, "{}", byte as char)?,
                _ => write!(f, "\\x{byte:02x}")?,
            }
        }
        f.write_str("\"")
    }
}

/// Whether `byte` may appear in bare (unquoted) data.
pub fn is_bare_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'_' | b'.' | b':' | b'/' | b'-')
}

struct OptionalId(Option<NodeId>);

impl Display for OptionalId {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "{id}"),
            None => f.write_str("none"),
        }
    }
}

/// A configuration as scenario text: `[1,2,3]`, the voters, or
/// `[1,2,3;4]` with learners after the semicolon. The context is not
/// written (scenarios carry none).
pub struct ConfigText<'a>(pub &'a Membership);

impl Display for ConfigText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let list = |ids: &[NodeId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(f, "[{}", list(self.0.voters()))?;
        if !self.0.learners().is_empty() {
            write!(f, ";{}", list(self.0.learners()))?;
        }
        f.write_str("]")
    }
}

/// A membership entry's data as scenario text: `config[1,2,3;4]` when it
/// holds a configuration without context, otherwise as [`DataText`].
/// Written for the data of a `Commit` and of a membership entry; parsing
/// `config[...]` back gives the same bytes.
pub struct EntryDataText<'a>(pub &'a [u8]);

impl Display for EntryDataText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match Membership::decode(self.0) {
            Ok(membership) if membership.context().is_empty() => {
                write!(f, "config{}", ConfigText(&membership))
            }
            _ => DataText(self.0).fmt(f),
        }
    }
}

impl Display for Entry {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if self.is_membership() {
            write!(f, "{}:{}", self.term, EntryDataText(&self.data))
        } else {
            write!(f, "{}:{}", self.term, DataText(&self.data))
        }
    }
}

/// `, epoch=N` after a message's fields, written only when the epoch is
/// set (`machine/membership.rs`), so that scenarios without membership
/// changes read as they always did.
struct EpochText(u64);

impl Display for EpochText {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            epoch => write!(f, ", epoch={epoch}"),
        }
    }
}

impl Display for MembershipChange {
    /// `add-learner(4)`, `promote(4)`, `remove(4)`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (name, id) = match self {
            MembershipChange::AddLearner(id) => ("add-learner", id),
            MembershipChange::Promote(id) => ("promote", id),
            MembershipChange::Remove(id) => ("remove", id),
        };
        write!(f, "{name}({id})")
    }
}

impl MembershipError {
    /// The error's name, as scenarios write it.
    pub fn name(&self) -> &'static str {
        match self {
            MembershipError::NotLeader { .. } => "NotLeader",
            MembershipError::ChangeInProgress => "ChangeInProgress",
            MembershipError::LeaderNotReady => "LeaderNotReady",
            MembershipError::TransferInProgress => "TransferInProgress",
            MembershipError::AlreadyMember => "AlreadyMember",
            MembershipError::UnknownNode => "UnknownNode",
            MembershipError::LastVoter => "LastVoter",
            MembershipError::Overwritten => "Overwritten",
            MembershipError::OutcomeUnknown => "OutcomeUnknown",
        }
    }
}

impl Display for Message {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Message::AppendEntriesReq(m) => m.fmt(f),
            Message::AppendEntriesResp(m) => m.fmt(f),
            Message::VoteReq(m) => m.fmt(f),
            Message::VoteResp(m) => m.fmt(f),
            Message::PreVoteReq(m) => write!(f, "Pre{m}"),
            Message::PreVoteResp(m) => write!(f, "Pre{m}"),
            Message::InstallSnapshotReq(m) => m.fmt(f),
            Message::InstallSnapshotResp(m) => m.fmt(f),
            Message::ReadIndexReq(m) => m.fmt(f),
            Message::ReadIndexResp(m) => m.fmt(f),
            Message::TimeoutNow(m) => write!(f, "TimeoutNow(term={})", m.term),
        }
    }
}

impl Display for ReadIndexReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReadIndexReq(term={}, request={})",
            self.term, self.request
        )
    }
}

impl Display for ReadIndexResp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ReadIndexResp(term={}, request={}, success={}, index={})",
            self.term, self.request, self.success, self.index
        )
    }
}

/// ` round=N` after a message's fields, written only when a read round is
/// set, so that scenarios without reads read as they always did.
struct RoundText(u64);

impl Display for RoundText {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => Ok(()),
            round => write!(f, ", round={round}"),
        }
    }
}

impl Display for InstallSnapshotReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InstallSnapshotReq(term={}, leader={}, last_index={}, last_term={}, config={}{})",
            self.term,
            self.leader,
            self.snapshot.index,
            self.snapshot.term,
            ConfigText(&self.membership),
            EpochText(self.epoch)
        )
    }
}

impl Display for InstallSnapshotResp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "InstallSnapshotResp(term={}, index={}{})",
            self.term,
            self.index,
            EpochText(self.epoch)
        )
    }
}

impl Display for AppendEntriesReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AppendEntriesReq(term={}, leader={}, prev_index={}, prev_term={}, entries=[",
            self.term, self.leader, self.prev_index, self.prev_term
        )?;
        for (position, entry) in self.entries.iter().enumerate() {
            if position > 0 {
                f.write_str(", ")?;
            }
            entry.fmt(f)?;
        }
        write!(
            f,
            "], commit={}{}{})",
            self.commit,
            RoundText(self.read_round),
            EpochText(self.epoch)
        )
    }
}

impl Display for AppendEntriesResp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "AppendEntriesResp(term={}, success={}, index={}{}{})",
            self.term,
            self.success,
            self.index,
            RoundText(self.read_round),
            EpochText(self.epoch)
        )
    }
}

impl Display for VoteReq {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VoteReq(term={}, candidate={}, last_index={}, last_term={}{})",
            self.term,
            self.candidate,
            self.last_index,
            self.last_term,
            // Written only when set, so that scenarios without transfers
            // read as they always did.
            if self.transfer { ", transfer=true" } else { "" }
        )
    }
}

impl Display for VoteResp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "VoteResp(term={}, granted={})", self.term, self.granted)
    }
}

impl Display for Action {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Action::Send { to, message } => write!(f, "Send(to={to}, {message})"),
            Action::Commit { data, result } => {
                let data = EntryDataText(data);
                match result {
                    Ok(index) => write!(f, "Commit(index={index}, data={data})"),
                    Err(CommitError::Overwritten { index, .. }) => {
                        write!(f, "Commit(index={index}, data={data}, err=Overwritten)")
                    }
                    Err(CommitError::OutcomeUnknown { index, .. }) => {
                        write!(f, "Commit(index={index}, data={data}, err=OutcomeUnknown)")
                    }
                    Err(CommitError::NotLeader { leader }) => write!(
                        f,
                        "Commit(index=none, data={data}, err=NotLeader(leader={}))",
                        OptionalId(*leader)
                    ),
                    Err(CommitError::TransferInProgress { to }) => write!(
                        f,
                        "Commit(index=none, data={data}, err=TransferInProgress(to={to}))"
                    ),
                }
            }
            Action::Alarm { ms } => write!(f, "Alarm(ms={ms})"),
            Action::LogStore { index, entries } => {
                // One line per entry, as the scenario format has it.
                for (offset, entry) in entries.iter().enumerate() {
                    if offset > 0 {
                        f.write_str("\n")?;
                    }
                    let index = LogIndex(index.0 + offset as u64);
                    if entry.is_membership() {
                        write!(
                            f,
                            "LogStore(index={index}, term={}, data={})",
                            entry.term,
                            EntryDataText(&entry.data)
                        )?;
                    } else {
                        write!(
                            f,
                            "LogStore(index={index}, term={}, data={})",
                            entry.term,
                            DataText(&entry.data)
                        )?;
                    }
                }
                Ok(())
            }
            Action::LogTruncate { from } => write!(f, "LogTruncate(from={from})"),
            Action::LogCompact {
                through,
                membership,
            } => write!(
                f,
                "LogCompact(through={through}, config={})",
                ConfigText(membership)
            ),
            Action::SnapshotInstall {
                snapshot,
                membership,
            } => write!(
                f,
                "SnapshotInstall(index={}, term={}, config={})",
                snapshot.index,
                snapshot.term,
                ConfigText(membership)
            ),
            Action::MembershipChangeEnded { change, result } => match result {
                Ok(index) => write!(f, "MembershipChangeEnded(change={change}, index={index})"),
                Err(MembershipError::NotLeader { leader }) => write!(
                    f,
                    "MembershipChangeEnded(change={change}, err=NotLeader(leader={}))",
                    OptionalId(*leader)
                ),
                Err(error) => write!(
                    f,
                    "MembershipChangeEnded(change={change}, err={})",
                    error.name()
                ),
            },
            Action::StateStore { term, voted_for } => write!(
                f,
                "StateStore(term={term}, voted_for={})",
                OptionalId(*voted_for)
            ),
            Action::Rejected { from, reason } => {
                write!(f, "Rejected(from={from}, reason={})", reason.name())
            }
            Action::SteppedDown { reason } => {
                write!(f, "SteppedDown(reason={})", reason.name())
            }
            Action::ReadReady { id, index } => {
                write!(f, "ReadReady(id={}, index={index})", id.0)
            }
            Action::ReadFailed { id, error } => match error {
                ReadError::NotLeader { leader } => write!(
                    f,
                    "ReadFailed(id={}, err=NotLeader(leader={}))",
                    id.0,
                    OptionalId(*leader)
                ),
                ReadError::Busy => write!(f, "ReadFailed(id={}, err=Busy)", id.0),
            },
            Action::TransferEnded { to, result } => match result {
                Ok(()) => write!(f, "TransferEnded(to={to}, ok)"),
                Err(error) => write!(
                    f,
                    "TransferEnded(to={to}, err={})",
                    TransferErrorText(error)
                ),
            },
        }
    }
}

/// A transfer error as scenarios write it: its name, with the node it
/// names in parentheses.
struct TransferErrorText<'a>(&'a TransferError);

impl Display for TransferErrorText<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            TransferError::NotLeader { leader } => {
                write!(f, "NotLeader(leader={})", OptionalId(*leader))
            }
            TransferError::UnknownPeer => f.write_str("UnknownPeer"),
            TransferError::InProgress { to } => write!(f, "InProgress(to={to})"),
            TransferError::TimedOut => f.write_str("TimedOut"),
            TransferError::LeadershipLost => f.write_str("LeadershipLost"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{LogIndex, Term};

    #[test]
    fn data_is_bare_or_quoted() {
        assert_eq!(DataText(b"a-b/c:1.x_y").to_string(), "a-b/c:1.x_y");
        assert_eq!(DataText(b"").to_string(), "\"\"");
        assert_eq!(DataText(b"a b").to_string(), "\"a b\"");
        assert_eq!(
            DataText(b"say \"hi\" \\").to_string(),
            "\"say \\\"hi\\\" \\\\\""
        );
        assert_eq!(DataText(b"\n\xff").to_string(), "\"\\x0a\\xff\"");
    }

    #[test]
    fn actions_render_as_the_spec_writes_them() {
        let req = AppendEntriesReq {
            term: Term(2),
            leader: NodeId(1),
            prev_index: LogIndex(1),
            prev_term: Term(1),
            entries: vec![Entry::new(Term(2), ""), Entry::new(Term(2), "x")].into(),
            commit: LogIndex(1),
            read_round: 0,
            epoch: 0,
        };
        let send = Action::Send {
            to: NodeId(3),
            message: Message::AppendEntriesReq(req),
        };
        assert_eq!(
            send.to_string(),
            "Send(to=3, AppendEntriesReq(term=2, leader=1, prev_index=1, prev_term=1, entries=[2:\"\", 2:x], commit=1))"
        );
        let refused = Action::Commit {
            data: "x".into(),
            result: Err(CommitError::NotLeader { leader: None }),
        };
        assert_eq!(
            refused.to_string(),
            "Commit(index=none, data=x, err=NotLeader(leader=none))"
        );
        let stored = Action::StateStore {
            term: Term(4),
            voted_for: Some(NodeId(2)),
        };
        assert_eq!(stored.to_string(), "StateStore(term=4, voted_for=2)");
    }
}
