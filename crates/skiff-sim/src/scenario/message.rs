//! Events and messages as scenario text: `append DATA`, `timeout`,
//! `snapshot index=I`, `stall`, `recover`, `read id=R [now=MS]`,
//! `transfer to=N`, `change add-learner=N|promote=N|remove=N [context=DATA]`
//! and `recv from=N MESSAGE`, with the messages as the format writes them.

use super::cursor::{Arg, Cursor, Keyed};
use skiff_core::{
    AppendEntriesReq, AppendEntriesResp, Event, InstallSnapshotReq, InstallSnapshotResp, LogIndex,
    MembershipChange, Message, NodeId, ReadId, ReadIndexReq, ReadIndexResp, SnapshotMeta, Term,
    TimeoutNow, VoteReq, VoteResp,
};

/// The commands that are events.
pub(crate) const EVENT_COMMANDS: &[&str] = &[
    "append", "timeout", "snapshot", "stall", "recover", "read", "transfer", "change", "recv",
];

const MESSAGE_NAMES: &str = "AppendEntriesReq, AppendEntriesResp, VoteReq, VoteResp, \
     PreVoteReq, PreVoteResp, InstallSnapshotReq, InstallSnapshotResp, ReadIndexReq, ReadIndexResp or TimeoutNow";

/// Parses the event named `command` from the rest of the line.
pub(crate) fn event(command: &str, cursor: &mut Cursor<'_>) -> Result<Event, String> {
    match command {
        "append" => {
            let data = cursor.atom("append")?.data("append")?;
            cursor.finish("append DATA")?;
            Ok(Event::Append(data))
        }
        "timeout" => {
            cursor.finish("timeout")?;
            Ok(Event::Timeout)
        }
        "snapshot" => {
            let args = cursor.arguments("snapshot")?;
            let mut keyed = Keyed::new("snapshot", args, &["index"])?;
            let index = LogIndex(keyed.required("index")?.number()?);
            Ok(Event::SnapshotTaken { index })
        }
        "stall" => {
            cursor.finish("stall")?;
            Ok(Event::StorageStalled)
        }
        "recover" => {
            cursor.finish("recover")?;
            Ok(Event::StorageRecovered)
        }
        "read" => {
            let args = cursor.arguments("read")?;
            let mut keyed = Keyed::new("read", args, &["id", "now"])?;
            let id = ReadId(keyed.required("id")?.number()?);
            let now_ms = match keyed.optional("now") {
                Some(now) => now.number()?,
                None => 0,
            };
            Ok(Event::Read { id, now_ms })
        }
        "transfer" => {
            let args = cursor.arguments("transfer")?;
            let mut keyed = Keyed::new("transfer", args, &["to"])?;
            let to = NodeId(keyed.required("to")?.number()?);
            Ok(Event::TransferLeadership { to })
        }
        "change" => change(cursor),
        "recv" => {
            let from = cursor.argument("recv", false)?;
            if from.key != "from" {
                return Err(format!(
                    "expected from=N after 'recv', found '{}'",
                    from.source
                ));
            }
            let from = NodeId(from.number()?);
            let message = message(cursor, &format!("from={from}"))?;
            Ok(Event::Receive { from, message })
        }
        other => Err(format!(
            "expected an event ({}), found '{other}'",
            EVENT_COMMANDS.join(", ")
        )),
    }
}

/// Parses one message, such as `VoteResp(term=4, granted=true)`, which must
/// end the line. Every field is required, in any order.
pub(crate) fn message(cursor: &mut Cursor<'_>, after: &str) -> Result<Message, String> {
    let what = format!("a message ({MESSAGE_NAMES})");
    let name = cursor.word(&what, after)?;
    let allowed = fields(&name)
        .ok_or_else(|| format!("unknown message '{name}' (expected {MESSAGE_NAMES})"))?;
    cursor.punct('(', &name)?;
    let args = message_arguments(cursor, &name)?;
    cursor.finish(&format!("{name}(...)"))?;
    let mut keyed = Keyed::new(&name, args, allowed)?;
    let message = match name.as_str() {
        "AppendEntriesReq" => Message::AppendEntriesReq(AppendEntriesReq {
            term: Term(keyed.required("term")?.number()?),
            leader: NodeId(keyed.required("leader")?.number()?),
            prev_index: LogIndex(keyed.required("prev_index")?.number()?),
            prev_term: Term(keyed.required("prev_term")?.number()?),
            entries: keyed.required("entries")?.entries()?.into(),
            commit: LogIndex(keyed.required("commit")?.number()?),
            read_round: optional_round(&mut keyed)?,
            epoch: optional_epoch(&mut keyed)?,
        }),
        "AppendEntriesResp" => Message::AppendEntriesResp(AppendEntriesResp {
            term: Term(keyed.required("term")?.number()?),
            success: keyed.required("success")?.boolean()?,
            index: LogIndex(keyed.required("index")?.number()?),
            read_round: optional_round(&mut keyed)?,
            epoch: optional_epoch(&mut keyed)?,
        }),
        "ReadIndexReq" => Message::ReadIndexReq(ReadIndexReq {
            term: Term(keyed.required("term")?.number()?),
            request: keyed.required("request")?.number()?,
        }),
        "ReadIndexResp" => Message::ReadIndexResp(ReadIndexResp {
            term: Term(keyed.required("term")?.number()?),
            request: keyed.required("request")?.number()?,
            success: keyed.required("success")?.boolean()?,
            index: LogIndex(keyed.required("index")?.number()?),
        }),
        "VoteReq" => Message::VoteReq(vote_req(&mut keyed)?),
        "VoteResp" => Message::VoteResp(vote_resp(&mut keyed)?),
        "PreVoteReq" => Message::PreVoteReq(vote_req(&mut keyed)?),
        "PreVoteResp" => Message::PreVoteResp(vote_resp(&mut keyed)?),
        "TimeoutNow" => Message::TimeoutNow(TimeoutNow {
            term: Term(keyed.required("term")?.number()?),
        }),
        "InstallSnapshotReq" => Message::InstallSnapshotReq(InstallSnapshotReq {
            term: Term(keyed.required("term")?.number()?),
            leader: NodeId(keyed.required("leader")?.number()?),
            snapshot: SnapshotMeta {
                index: LogIndex(keyed.required("last_index")?.number()?),
                term: Term(keyed.required("last_term")?.number()?),
            },
            membership: keyed.required("config")?.membership()?,
            epoch: optional_epoch(&mut keyed)?,
        }),
        _ => Message::InstallSnapshotResp(InstallSnapshotResp {
            term: Term(keyed.required("term")?.number()?),
            index: LogIndex(keyed.required("index")?.number()?),
            epoch: optional_epoch(&mut keyed)?,
        }),
    };
    Ok(message)
}

/// The fields of the message called `name`, or `None` for no message.
fn fields(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "AppendEntriesReq" => Some(&[
            "term",
            "leader",
            "prev_index",
            "prev_term",
            "entries",
            "commit",
            "round",
            "epoch",
        ]),
        "AppendEntriesResp" => Some(&["term", "success", "index", "round", "epoch"]),
        "ReadIndexReq" => Some(&["term", "request"]),
        "ReadIndexResp" => Some(&["term", "request", "success", "index"]),
        "VoteReq" | "PreVoteReq" => {
            Some(&["term", "candidate", "last_index", "last_term", "transfer"])
        }
        "TimeoutNow" => Some(&["term"]),
        "VoteResp" | "PreVoteResp" => Some(&["term", "granted"]),
        "InstallSnapshotReq" => Some(&[
            "term",
            "leader",
            "last_index",
            "last_term",
            "config",
            "epoch",
        ]),
        "InstallSnapshotResp" => Some(&["term", "index", "epoch"]),
        _ => None,
    }
}

/// The read round an AppendEntries message carries: `round=N`, optional,
/// 0 (no round) when absent.
fn optional_round(keyed: &mut Keyed) -> Result<u64, String> {
    keyed
        .optional("round")
        .map_or(Ok(0), |round| round.number())
}

/// The progress epoch a replication message carries (`machine/membership.rs`
/// in skiff-core): `epoch=N`, optional, 0 when absent.
fn optional_epoch(keyed: &mut Keyed) -> Result<u64, String> {
    keyed
        .optional("epoch")
        .map_or(Ok(0), |epoch| epoch.number())
}

/// The keys of `change`: one names the change and its node.
const CHANGE_KEYS: &[&str] = &["add-learner", "promote", "remove", "context"];

/// Makes the change a `change` key names for its node.
type MakeChange = fn(NodeId) -> MembershipChange;

/// The keys of `change` that name a change, with the change each makes.
const CHANGES: [(&str, MakeChange); 3] = [
    ("add-learner", MembershipChange::AddLearner),
    ("promote", MembershipChange::Promote),
    ("remove", MembershipChange::Remove),
];

/// `change add-learner=N|promote=N|remove=N [context=DATA]`: the layer
/// above asks the leader for one membership change; `context`, when
/// given, replaces the configuration's context.
fn change(cursor: &mut Cursor<'_>) -> Result<Event, String> {
    let args = cursor.arguments("change")?;
    let mut keyed = Keyed::new("change", args, CHANGE_KEYS)?;
    let mut changes = Vec::new();
    for (key, make) in CHANGES {
        if let Some(arg) = keyed.optional(key) {
            changes.push(make(NodeId(arg.number()?)));
        }
    }
    let [change] = changes[..] else {
        return Err(
            "'change' needs exactly one of add-learner=N, promote=N or remove=N".to_string(),
        );
    };
    let context = keyed
        .optional("context")
        .map(|arg| match arg.values.as_slice() {
            [atom] => atom.data("context"),
            _ => Err(format!(
                "expected data for 'context', found '{}'",
                arg.source
            )),
        })
        .transpose()?;
    Ok(Event::ChangeMembership { change, context })
}

/// The fields of a VoteReq or PreVoteReq.
fn vote_req(keyed: &mut Keyed) -> Result<VoteReq, String> {
    Ok(VoteReq {
        term: Term(keyed.required("term")?.number()?),
        candidate: NodeId(keyed.required("candidate")?.number()?),
        last_index: LogIndex(keyed.required("last_index")?.number()?),
        last_term: Term(keyed.required("last_term")?.number()?),
        transfer: match keyed.optional("transfer") {
            Some(transfer) => transfer.boolean()?,
            None => false,
        },
    })
}

/// The fields of a VoteResp or PreVoteResp.
fn vote_resp(keyed: &mut Keyed) -> Result<VoteResp, String> {
    Ok(VoteResp {
        term: Term(keyed.required("term")?.number()?),
        granted: keyed.required("granted")?.boolean()?,
    })
}

/// `key=value, key=value)` after the opening parenthesis.
fn message_arguments(cursor: &mut Cursor<'_>, name: &str) -> Result<Vec<Arg>, String> {
    let mut args: Vec<Arg> = Vec::new();
    if cursor.is_punct(')') {
        cursor.punct(')', name)?;
        return Ok(args);
    }
    loop {
        let after = args.last().map_or(format!("{name}("), |a| a.source.clone());
        args.push(cursor.argument(&after, false)?);
        let last = &args[args.len() - 1].source;
        if cursor.is_punct(')') {
            cursor.punct(')', last)?;
            return Ok(args);
        }
        if !cursor.is_punct(',') {
            return Err(format!(
                "expected ',' or ')' after '{last}', found {}",
                cursor.found()
            ));
        }
        cursor.punct(',', last)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::lex::tokenize;
    use skiff_core::{Bytes, Entry, EntryKind, Membership};

    fn parse_event(line: &str) -> Result<Event, String> {
        let mut cursor = Cursor::new(line, tokenize(line)?);
        let command = cursor.word("a command", "start")?;
        event(&command, &mut cursor)
    }

    #[test]
    fn each_message_parses_and_renders_back() {
        let messages = [
            "AppendEntriesReq(term=2, leader=1, prev_index=1, prev_term=1, entries=[2:\"\", 2:x, 2:\"a b\"], commit=1)",
            "AppendEntriesReq(term=2, leader=1, prev_index=0, prev_term=0, entries=[], commit=0)",
            "AppendEntriesResp(term=3, success=false, index=7)",
            "VoteReq(term=4, candidate=2, last_index=3, last_term=2)",
            "VoteResp(term=4, granted=true)",
            "InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4, config=[1,2,3])",
            "InstallSnapshotResp(term=5, index=40)",
            // Membership changes: configuration entries, learners, epochs.
            "AppendEntriesReq(term=2, leader=1, prev_index=1, prev_term=1, entries=[2:config[1,2,3;4], 2:x], commit=1, epoch=5)",
            "AppendEntriesReq(term=2, leader=1, prev_index=1, prev_term=1, entries=[], commit=1, round=3, epoch=5)",
            "AppendEntriesResp(term=3, success=true, index=7, epoch=4)",
            "AppendEntriesResp(term=3, success=true, index=7, round=2, epoch=4)",
            "InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4, config=[1,2;3,4], epoch=9)",
            "InstallSnapshotResp(term=5, index=40, epoch=9)",
        ];
        for text in messages {
            let Event::Receive { from, message } = parse_event(&format!("recv from=2 {text}"))
                .unwrap_or_else(|e| panic!("{text}: {e}"))
            else {
                panic!("not a receive");
            };
            assert_eq!(from, NodeId(2));
            assert_eq!(message.to_string(), text);
        }
    }

    #[test]
    fn configuration_entries_are_membership_entries() {
        let Event::Receive {
            message: Message::AppendEntriesReq(req),
            ..
        } = parse_event(
            "recv from=1 AppendEntriesReq(term=2, leader=1, prev_index=0, prev_term=0, entries=[2:config [ 3, 1 ; 4 ], 2:a], commit=0)",
        )
        .unwrap()
        else {
            panic!("not an AppendEntriesReq");
        };
        let config = Membership::new([NodeId(1), NodeId(3)], [NodeId(4)]).unwrap();
        assert_eq!(
            req.entries,
            [
                Entry::membership(Term(2), &config),
                Entry::new(Term(2), "a")
            ]
        );
        assert_eq!(req.entries[0].kind, EntryKind::Membership);
        assert_eq!(req.epoch, 0);
        let Event::Receive {
            message: Message::InstallSnapshotReq(req),
            ..
        } = parse_event(
            "recv from=2 InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4, config=[1,2,3;4])",
        )
        .unwrap()
        else {
            panic!("not an InstallSnapshotReq");
        };
        assert_eq!(
            req.membership,
            Membership::new([1, 2, 3].map(NodeId), [NodeId(4)]).unwrap()
        );
    }

    #[test]
    fn changes_name_one_node() {
        let cases = [
            (
                "change add-learner=4",
                MembershipChange::AddLearner(NodeId(4)),
                None,
            ),
            (
                "change promote = 4",
                MembershipChange::Promote(NodeId(4)),
                None,
            ),
            (
                "change remove=1 context=\"a b\"",
                MembershipChange::Remove(NodeId(1)),
                Some(Bytes::from("a b")),
            ),
        ];
        for (line, change, context) in cases {
            assert_eq!(
                parse_event(line).unwrap(),
                Event::ChangeMembership { change, context },
                "{line}"
            );
        }
    }

    #[test]
    fn spacing_and_field_order_are_free() {
        let event = parse_event("recv from = 3 VoteResp ( granted = false , term = 5 )").unwrap();
        assert_eq!(
            event,
            Event::Receive {
                from: NodeId(3),
                message: Message::VoteResp(VoteResp {
                    term: Term(5),
                    granted: false
                })
            }
        );
    }

    #[test]
    fn appends_take_bare_or_quoted_data() {
        assert_eq!(
            parse_event("append x.y/z").unwrap(),
            Event::Append("x.y/z".into())
        );
        assert_eq!(
            parse_event(r#"append "a \"q\" \x00""#).unwrap(),
            Event::Append(b"a \"q\" \x00"[..].into())
        );
        assert_eq!(parse_event("timeout").unwrap(), Event::Timeout);
        assert_eq!(
            parse_event("snapshot index=12").unwrap(),
            Event::SnapshotTaken {
                index: LogIndex(12)
            }
        );
        let entries = parse_event(
            "recv from=1 AppendEntriesReq(term=1, leader=1, prev_index=0, prev_term=0, entries=[1:\"\\\\\"], commit=0)",
        )
        .unwrap();
        let Event::Receive {
            message: Message::AppendEntriesReq(req),
            ..
        } = entries
        else {
            panic!("not an AppendEntriesReq");
        };
        assert_eq!(req.entries, [Entry::new(Term(1), "\\")]);
    }

    #[test]
    fn malformed_events_say_what_was_expected() {
        let cases = [
            ("recv from2 VoteResp(term=1, granted=true)", "expected key=value after 'recv', found 'from2'"),
            ("recv to=2 VoteResp(term=1, granted=true)", "expected from=N after 'recv', found 'to=2'"),
            ("recv from=x VoteResp(term=1, granted=true)", "expected a number for 'from', found 'x'"),
            ("recv from=2", "expected a message (AppendEntriesReq, AppendEntriesResp, VoteReq, VoteResp, PreVoteReq, PreVoteResp, InstallSnapshotReq, InstallSnapshotResp, ReadIndexReq, ReadIndexResp or TimeoutNow) after 'from=2', found the end of the line"),
            ("snapshot", "'snapshot' needs index=..."),
            ("snapshot index=x", "expected a number for 'index', found 'x'"),
            ("snapshot index=3 at=4", "unknown key 'at' for 'snapshot'"),
            ("recv from=2 InstallSnapshotReq(term=5, leader=2, last_index=40)", "'InstallSnapshotReq' needs last_term=..."),
            ("recv from=2 InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4)", "'InstallSnapshotReq' needs config=..."),
            ("recv from=2 InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4, config=[;4])", "expected a value for 'config', found ';'"),
            ("recv from=2 InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4, config=[1,1])", "'config=[1,1]' for 'config' is no configuration: it needs a voter, and names each node once"),
            ("recv from=2 InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4, config=[1;2;3])", "expected a configuration [VOTERS;LEARNERS] such as [1,2,3;4] for 'config', found 'config=[1;2;3]'"),
            ("recv from=2 InstallSnapshotReq(term=5, leader=2, last_index=40, last_term=4, config=[1,x])", "expected a configuration [VOTERS;LEARNERS]"),
            ("recv from=2 InstallSnapshotResp(term=5, index=40, epoch=x)", "expected a number for 'epoch', found 'x'"),
            ("recv from=1 AppendEntriesReq(term=1, leader=1, prev_index=0, prev_term=0, entries=[config[1]], commit=0)", "expected term:data for 'entries', found 'config[1]'"),
            ("recv from=1 AppendEntriesReq(term=1, leader=1, prev_index=0, prev_term=0, entries=[1config[1]], commit=0)", "expected term:config[...] for 'entries', found '1config[1]'"),
            ("recv from=1 AppendEntriesReq(term=1, leader=1, prev_index=0, prev_term=0, entries=[1:a;1:b], commit=0)", "expected term:data for 'entries', found ';'"),
            ("change", "'change' needs exactly one of add-learner=N, promote=N or remove=N"),
            ("change add-learner=4 remove=1", "'change' needs exactly one of"),
            ("change promote=x", "expected a number for 'promote', found 'x'"),
            ("change demote=1", "unknown key 'demote' for 'change'"),
            ("change remove=1 context=a,b", "expected data for 'context', found 'context=a,b'"),
            ("recv from=2 VoteRes(term=1)", "unknown message 'VoteRes'"),
            ("recv from=2 VoteResp(term=1)", "'VoteResp' needs granted=..."),
            ("recv from=2 VoteResp(term=1, granted=yes)", "expected true or false for 'granted', found 'yes'"),
            ("recv from=2 VoteResp(term=1, granted=true, extra=1)", "unknown key 'extra' for 'VoteResp'"),
            ("recv from=2 VoteResp(term=1 granted=true)", "expected ',' or ')' after 'term=1', found 'granted'"),
            ("recv from=2 VoteResp(term=1, granted=true) x", "unexpected 'x' after 'VoteResp(...)'"),
            ("recv from=2 VoteResp term=1", "expected '(' after 'VoteResp', found 'term'"),
            ("append", "expected a value for 'append', found the end of the line"),
            ("append a b", "unexpected 'b' after 'append DATA'"),
            ("timeout 3", "unexpected '3' after 'timeout'"),
            ("recv from=2 AppendEntriesReq(term=1, leader=1, prev_index=0, prev_term=0, entries=[x], commit=0)", "expected term:data for 'entries', found 'x'"),
        ];
        for (line, expected) in cases {
            let error = parse_event(line).unwrap_err();
            assert!(
                error.contains(expected),
                "{line}\n  got: {error}\n  want: {expected}"
            );
        }
    }
}
