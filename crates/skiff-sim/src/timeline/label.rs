//! Short texts for what a step did: the event a machine handled and the
//! actions it answered with, at the level of kinds and terms rather than
//! every field. Short texts repeat, so the page's string table holds each
//! once; the numbers that change every step (indices, commit) are in the
//! state summaries before and after the step instead.

use skiff_core::{Action, Event, Message};
use std::fmt::Write as _;

/// The kind of a message, for arrows and their legend.
pub fn message_kind(message: &Message) -> &'static str {
    match message {
        Message::AppendEntriesReq(m) if m.entries.is_empty() => "Heartbeat",
        Message::AppendEntriesReq(_) => "AppendEntriesReq",
        Message::AppendEntriesResp(_) => "AppendEntriesResp",
        Message::VoteReq(_) => "VoteReq",
        Message::VoteResp(_) => "VoteResp",
        Message::InstallSnapshotReq(_) => "InstallSnapshotReq",
        Message::InstallSnapshotResp(_) => "InstallSnapshotResp",
        Message::PreVoteReq(_) => "PreVoteReq",
        Message::PreVoteResp(_) => "PreVoteResp",
        Message::ReadIndexReq(_) => "ReadIndexReq",
        Message::ReadIndexResp(_) => "ReadIndexResp",
        Message::TimeoutNow(_) => "TimeoutNow",
    }
}

/// A message with its term and its outcome, e.g. `VoteResp(term=4, granted)`.
pub fn message(message: &Message) -> String {
    let kind = message_kind(message);
    match message {
        Message::AppendEntriesReq(m) => {
            let n = m.entries.len();
            format!("{kind}(term={}, {n} entries)", m.term)
        }
        Message::AppendEntriesResp(m) => {
            let outcome = if m.success { "ok" } else { "refused" };
            format!("{kind}(term={}, {outcome})", m.term)
        }
        Message::VoteReq(m) if m.transfer => format!("{kind}(term={}, transfer)", m.term),
        Message::VoteReq(m) | Message::PreVoteReq(m) => format!("{kind}(term={})", m.term),
        Message::VoteResp(m) | Message::PreVoteResp(m) => {
            let outcome = if m.granted { "granted" } else { "refused" };
            format!("{kind}(term={}, {outcome})", m.term)
        }
        Message::InstallSnapshotReq(m) => format!("{kind}(term={})", m.term),
        Message::InstallSnapshotResp(m) => format!("{kind}(term={})", m.term),
        Message::ReadIndexReq(m) => format!("{kind}(term={})", m.term),
        Message::ReadIndexResp(m) => {
            let outcome = if m.success { "ok" } else { "refused" };
            format!("{kind}(term={}, {outcome})", m.term)
        }
        Message::TimeoutNow(m) => format!("{kind}(term={})", m.term),
    }
}

/// The event a machine is handed.
pub fn event(event: &Event) -> String {
    match event {
        Event::Receive { from, message: m } => format!("recv {} from {from}", message(m)),
        Event::Append(_) => "client append".to_string(),
        Event::Read { .. } => "client read".to_string(),
        Event::Timeout => "timeout".to_string(),
        Event::SnapshotTaken { .. } => "snapshot taken".to_string(),
        Event::StorageStalled => "storage stalled".to_string(),
        Event::StorageRecovered => "storage recovered".to_string(),
        Event::TransferLeadership { to } => format!("transfer leadership to {to}"),
        Event::ChangeMembership { change, .. } => format!("asked to {change}"),
        // The enum is non-exhaustive: an event added later is named by its kind.
        other => format!("{other:?}")
            .split(['(', ' ', '{'])
            .next()
            .unwrap_or("event")
            .to_string(),
    }
}

/// A batch of actions, consecutive ones of the same kind folded into one
/// item: `Send AppendEntriesReq(term=3, 1 entries) to 2,3; LogStore x1; Alarm`.
pub fn actions(actions: &[Action]) -> String {
    let mut items: Vec<(String, Vec<String>)> = Vec::new();
    for action in actions {
        let (item, detail) = action_item(action);
        match items.last_mut() {
            Some((last, details)) if *last == item => details.extend(detail),
            _ => items.push((item, detail.into_iter().collect())),
        }
    }
    let mut text = String::new();
    for (position, (item, details)) in items.iter().enumerate() {
        if position > 0 {
            text.push_str("; ");
        }
        text.push_str(item);
        if !details.is_empty() {
            let _ = write!(text, " {}", details.join(","));
        }
    }
    text
}

/// One action's item, and the detail that lists when items fold (a
/// message's receiver, or a count).
fn action_item(action: &Action) -> (String, Option<String>) {
    match action {
        Action::Send { to, message: m } => {
            (format!("Send {} to", message(m)), Some(to.to_string()))
        }
        Action::Commit { result: Ok(_), .. } => ("Commit".to_string(), None),
        Action::Commit { result: Err(e), .. } => (format!("Commit failed: {e}"), None),
        Action::Alarm { .. } => ("Alarm".to_string(), None),
        Action::LogStore { entries, .. } => (format!("LogStore {} entries", entries.len()), None),
        Action::LogTruncate { .. } => ("LogTruncate".to_string(), None),
        Action::StateStore { term, voted_for } => {
            let vote = voted_for.map_or("none".to_string(), |v| v.to_string());
            (format!("StateStore(term={term}, voted_for={vote})"), None)
        }
        Action::LogCompact { .. } => ("LogCompact".to_string(), None),
        Action::SnapshotInstall { .. } => ("SnapshotInstall".to_string(), None),
        Action::Rejected { from, reason } => {
            (format!("Rejected(from={from}, {})", reason.name()), None)
        }
        Action::SteppedDown { reason } => (format!("SteppedDown({})", reason.name()), None),
        Action::ReadReady { .. } => ("ReadReady".to_string(), None),
        Action::ReadFailed { error, .. } => (format!("ReadFailed({error})"), None),
        Action::MembershipChangeEnded {
            change,
            result: Ok(index),
        } => (
            format!("MembershipChangeEnded({change}, index={index})"),
            None,
        ),
        Action::MembershipChangeEnded {
            change,
            result: Err(e),
        } => (format!("MembershipChangeEnded({change}, {e})"), None),
        Action::TransferEnded { to, result: Ok(()) } => {
            (format!("TransferEnded(to={to}, ok)"), None)
        }
        Action::TransferEnded { to, result: Err(e) } => {
            (format!("TransferEnded(to={to}, {e})"), None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_core::{NodeId, Term, VoteResp};

    #[test]
    fn sends_of_one_message_fold_their_receivers() {
        let vote = Message::VoteResp(VoteResp {
            term: Term(4),
            granted: true,
        });
        let batch = [
            Action::Send {
                to: NodeId(2),
                message: vote.clone(),
            },
            Action::Send {
                to: NodeId(3),
                message: vote,
            },
            Action::Alarm { ms: 150 },
        ];
        assert_eq!(
            actions(&batch),
            "Send VoteResp(term=4, granted) to 2,3; Alarm"
        );
    }
}
