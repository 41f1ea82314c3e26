//! The `status` extension of the line protocol: one server's view of the
//! cluster, answered from its own state without going through the log.
//!
//! ```text
//! status\r\n  ->  STATUS id=<n> role=<leader|follower|candidate> term=<t> leader=<n|_> commit=<c> last=<i> repairing=<yes|no> snapshot=<s> log=<l>\r\n
//! ```
//!
//! A pre-candidate (PreVote: it asks whether it could win before it starts
//! an election) says `role=follower`: it has raised no term and started no
//! election, and parsers know only the three roles of the line's first
//! version. The node's own status (`skiff_node::Status`) tells them apart.
//!
//! `repairing=yes` says the node is repairing a log its disk damaged: it
//! catches up from the others and votes in no election until it holds
//! everything it had acknowledged. `snapshot=<s>` is the index of the
//! snapshot its log starts after (0 before the first) and `log=<l>` how
//! many entries it holds after that snapshot (`last - snapshot`).
//!
//! # How the line grows
//!
//! The line only ever grows at its end, by `key=value` words. The first
//! six fields are always there; after them come the optional fields in
//! the order they were added: `repairing` (read as `no` when missing),
//! then `snapshot` and `log`, which come together (read as unknown when
//! missing: a server from before snapshots). A parser takes the fields it
//! knows, in that order, and ignores any `key=value` words after them, so
//! that a field added later does not break it. (Parsers from before
//! snapshots accept at most the seven fields through `repairing`, and so
//! refuse the lines of servers that have the `snapshot` field.)
//!
//! Any server answers, leader or not, and never with `ERR_REDIRECT`: the
//! point is to ask each server what it believes. The answer is a snapshot of
//! the node's last event-loop turn, not a linearizable read: two servers may
//! both report `role=leader` for a moment, in different terms. `leader=_`
//! means no leader is known, as in `ERR_REDIRECT _`. The classic protocol has
//! no such command; clients that do not send it see no difference.

use super::session::{parse_session_message, SessionMessage};
use super::{
    complete, field_value, first_and_rest, lossy, parse_number, parse_request, split_line, words,
};
use super::{Limits, Parsed, ProtocolError, Request, CRLF};
use skiff_core::{LogIndex, NodeId, Role, Term};

/// What a client may send: a file request, or one of the extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// A request of the classic protocol.
    File(Request),
    /// `status`: report this server's role, term, leader and indices.
    Status,
    /// `snapshot`: snapshot this server's store now (see
    /// [`super::snapshot`]).
    Snapshot,
    /// `session ...`: open a session, or a numbered request (see
    /// [`super::session`]).
    Session(SessionMessage),
    /// `transfer <id>`: the leader hands its office to node `id` (see
    /// [`super::transfer`]).
    Transfer(NodeId),
    /// `member ...`: list or change the cluster's membership (see
    /// [`super::member`]).
    Member(super::member::MemberRequest),
}

/// Parses the first message in `buf`: `status`, `snapshot`, `session ...`,
/// `transfer <id>`, `member ...`, or a request as [`parse_request`] would. Errors are those of
/// [`parse_request`].
pub fn parse_client_message(
    buf: &[u8],
    limits: &Limits,
) -> Result<Parsed<ClientMessage>, ProtocolError> {
    if let Some(parsed) = parse_session_message(buf, limits)? {
        return Ok(match parsed {
            Parsed::Incomplete => Parsed::Incomplete,
            Parsed::Complete { value, consumed } => Parsed::Complete {
                value: ClientMessage::Session(value),
                consumed,
            },
        });
    }
    if let Some((line, line_bytes)) = split_line(buf)? {
        let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
        let first = words.clone().next();
        if first == Some(b"transfer".as_slice()) {
            let arguments: Vec<&[u8]> = words.skip(1).collect();
            let to = super::transfer::parse_transfer_target(&arguments)?;
            return complete(ClientMessage::Transfer(to), line_bytes);
        }
        if first == Some(b"member".as_slice()) {
            let arguments: Vec<&[u8]> = words.skip(1).collect();
            let request = super::member::parse_member_request(&arguments)?;
            return complete(ClientMessage::Member(request), line_bytes);
        }
        let extension = match words.next() {
            Some(b"status") => Some(("status", ClientMessage::Status)),
            Some(b"snapshot") => Some(("snapshot", ClientMessage::Snapshot)),
            _ => None,
        };
        if let Some((command, message)) = extension {
            let got = words.count();
            if got != 0 {
                return Err(ProtocolError::ArgumentCount {
                    command,
                    expected: "0",
                    got,
                });
            }
            return complete(message, line_bytes);
        }
    }
    Ok(match parse_request(buf, limits)? {
        Parsed::Incomplete => Parsed::Incomplete,
        Parsed::Complete { value, consumed } => Parsed::Complete {
            value: ClientMessage::File(value),
            consumed,
        },
    })
}

/// One server's answer to `status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatusReport {
    /// The server's node id.
    pub id: NodeId,
    /// Its role in its current term.
    pub role: Role,
    /// Its current term.
    pub term: Term,
    /// The leader of its current term, when known.
    pub leader: Option<NodeId>,
    /// The highest log index it knows to be committed.
    pub commit_index: LogIndex,
    /// The index of the last entry in its log.
    pub last_index: LogIndex,
    /// Whether it is repairing a log its disk damaged.
    pub repairing: bool,
    /// Where its log starts and how long it is; `None` from a server
    /// from before snapshots, which does not say.
    pub log: Option<LogExtent>,
    /// The last index its store applied; `None` from a server that does
    /// not say (`applied=<a>`, after `log`).
    pub applied: Option<LogIndex>,
    /// When it last learned of a new leader and why the one before was
    /// lost (`leader_change=<unix ms>/<reason>`, after `applied`); `None`
    /// when it does not say or learned of none yet.
    pub leader_change: Option<LeaderChangeReport>,
}

/// When a server last learned of a new leader, and why the previous one
/// was lost (see `skiff_node::LeaderChange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderChangeReport {
    /// Milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
    /// One of [`LEADER_CHANGE_REASONS`]; a reason this version does not
    /// know reads as `other`.
    pub reason: &'static str,
}

/// The reasons a node gives for a leader change (see
/// `skiff_node::LeaderChange::reason`).
pub const LEADER_CHANGE_REASONS: [&str; 6] = [
    "election_timeout",
    "higher_term",
    "quorum_lost",
    "storage_stalled",
    "startup",
    "other",
];

/// How much log a server holds: the entries after its latest snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogExtent {
    /// The index of the last entry its snapshot covers; 0 before the first.
    pub snapshot_index: LogIndex,
    /// How many entries it holds after the snapshot.
    pub entries: u64,
}

impl StatusReport {
    /// Appends the wire form, `STATUS id=.. role=.. term=.. leader=..
    /// commit=.. last=.. repairing=.. snapshot=.. log=..\r\n`, without
    /// the last two when [`StatusReport::log`] is `None`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let leader = self
            .leader
            .map_or_else(|| "_".to_string(), |id| id.to_string());
        let mut line = format!(
            "STATUS id={} role={} term={} leader={leader} commit={} last={} repairing={}",
            self.id,
            role_word(self.role),
            self.term,
            self.commit_index,
            self.last_index,
            if self.repairing { "yes" } else { "no" }
        );
        if let Some(log) = self.log {
            line += &format!(" snapshot={} log={}", log.snapshot_index, log.entries);
            if let Some(applied) = self.applied {
                line += &format!(" applied={applied}");
                if let Some(change) = &self.leader_change {
                    // The reason is a word of a fixed vocabulary, never a space.
                    line += &format!(" leader_change={}/{}", change.at_unix_ms, change.reason);
                }
            }
        }
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(CRLF);
    }
}

/// The line's word for `role`: a pre-candidate follows until it starts an
/// election (see the module's documentation).
fn role_word(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Candidate => "candidate",
        // `Role` may grow: any role that is neither leads nor stands.
        _ => "follower",
    }
}

/// The fields every `STATUS` line has, in order.
const REQUIRED_FIELDS: [&str; 6] = ["id", "role", "term", "leader", "commit", "last"];

/// Parses a `STATUS` line at the start of `buf`, old or new (see [How the
/// line grows](self#how-the-line-grows)).
pub fn parse_status_report(buf: &[u8]) -> Result<Parsed<StatusReport>, ProtocolError> {
    let Some((line, line_bytes)) = split_line(buf)? else {
        return Ok(Parsed::Incomplete);
    };
    let words = words(line);
    let (b"STATUS", fields) = first_and_rest(&words) else {
        return Err(ProtocolError::UnknownCommand(lossy(line)));
    };
    if fields.len() < REQUIRED_FIELDS.len() {
        return Err(ProtocolError::ArgumentCount {
            command: "STATUS",
            expected: "6 or more",
            got: fields.len(),
        });
    }
    let (required, optional) = fields.split_at(REQUIRED_FIELDS.len());
    let mut values = [&b""[..]; REQUIRED_FIELDS.len()];
    for ((value, word), key) in values.iter_mut().zip(required).zip(REQUIRED_FIELDS) {
        *value = field_value(word, key).ok_or(ProtocolError::BadStatus { field: key })?;
    }
    let [id, role, term, leader, commit, last] = values;
    let mut optional = optional.iter().peekable();
    // Each optional field is taken only where it belongs, after those before it.
    let mut take = |key| {
        optional
            .next_if(|word| field_value(word, key).is_some())
            .and_then(|word| field_value(word, key))
    };
    let (repairing, snapshot, log) = (take("repairing"), take("snapshot"), take("log"));
    let applied = match take("applied") {
        Some(applied) => Some(LogIndex(parse_number(applied, "applied")?)),
        None => None,
    };
    let leader_change = match take("leader_change") {
        Some(word) => Some(parse_leader_change(word)?),
        None => None,
    };
    if let Some(unknown) = optional.find(|word| !word.contains(&b'=')) {
        return Err(ProtocolError::UnknownCommand(lossy(unknown)));
    }
    let report = StatusReport {
        id: NodeId(parse_number(id, "id")?),
        role: parse_role(role)?,
        term: Term(parse_number(term, "term")?),
        leader: match leader {
            b"_" => None,
            id => Some(NodeId(parse_number(id, "leader")?)),
        },
        commit_index: LogIndex(parse_number(commit, "commit")?),
        last_index: LogIndex(parse_number(last, "last")?),
        repairing: match repairing {
            Some(b"yes") => true,
            Some(b"no") | None => false,
            Some(_) => return Err(ProtocolError::BadStatus { field: "repairing" }),
        },
        log: match (snapshot, log) {
            (Some(snapshot), Some(log)) => Some(LogExtent {
                snapshot_index: LogIndex(parse_number(snapshot, "snapshot")?),
                entries: parse_number(log, "log")?,
            }),
            (None, None) => None,
            (Some(_), None) => return Err(ProtocolError::BadStatus { field: "log" }),
            (None, Some(_)) => return Err(ProtocolError::BadStatus { field: "snapshot" }),
        },
        applied,
        leader_change,
    };
    complete(report, line_bytes)
}

/// `<unix ms>/<reason>`.
fn parse_leader_change(word: &[u8]) -> Result<LeaderChangeReport, ProtocolError> {
    let bad = ProtocolError::BadStatus {
        field: "leader_change",
    };
    let slash = word.iter().position(|b| *b == b'/').ok_or(bad.clone())?;
    let (at, reason) = (&word[..slash], &word[slash + 1..]);
    if reason.is_empty() {
        return Err(bad);
    }
    let known = LEADER_CHANGE_REASONS
        .iter()
        .find(|known| known.as_bytes() == reason);
    Ok(LeaderChangeReport {
        at_unix_ms: parse_number(at, "leader_change")?,
        reason: known.copied().unwrap_or("other"),
    })
}

fn parse_role(word: &[u8]) -> Result<Role, ProtocolError> {
    match word {
        b"leader" => Ok(Role::Leader),
        b"follower" => Ok(Role::Follower),
        b"candidate" => Ok(Role::Candidate),
        _ => Err(ProtocolError::BadStatus { field: "role" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const LIMITS: Limits = Limits {
        file_bytes_max: 100,
        name_bytes_max: 20,
    };

    fn report(leader: Option<u64>) -> StatusReport {
        StatusReport {
            id: NodeId(2),
            role: Role::Follower,
            term: Term(7),
            leader: leader.map(NodeId),
            commit_index: LogIndex(40),
            last_index: LogIndex(41),
            repairing: false,
            log: Some(LogExtent {
                snapshot_index: LogIndex(30),
                entries: 11,
            }),
            applied: None,
            leader_change: None,
        }
    }

    #[test]
    fn a_pre_candidate_is_a_follower_on_the_line() {
        let mut line = Vec::new();
        StatusReport {
            role: Role::PreCandidate,
            ..report(None)
        }
        .encode(&mut line);
        assert!(line.starts_with(b"STATUS id=2 role=follower term=7 "));
        let Ok(Parsed::Complete { value, .. }) = parse_status_report(&line) else {
            panic!("{}", String::from_utf8_lossy(&line));
        };
        assert_eq!(value.role, Role::Follower);
        for (role, word) in [
            (Role::Leader, "leader"),
            (Role::Candidate, "candidate"),
            (Role::Follower, "follower"),
        ] {
            assert_eq!(role_word(role), word);
        }
    }

    #[test]
    fn status_is_a_message_of_its_own() {
        assert_eq!(
            parse_client_message(b"status\r\n", &LIMITS),
            Ok(Parsed::Complete {
                value: ClientMessage::Status,
                consumed: 8
            })
        );
        assert_eq!(
            parse_client_message(b" status \r\nread f\r\n", &LIMITS),
            Ok(Parsed::Complete {
                value: ClientMessage::Status,
                consumed: 10
            })
        );
        for prefix in [&b""[..], b"stat", b"status", b"status\r"] {
            assert_eq!(
                parse_client_message(prefix, &LIMITS),
                Ok(Parsed::Incomplete)
            );
        }
    }

    #[test]
    fn file_requests_parse_as_before() {
        assert_eq!(
            parse_client_message(b"write f 2\r\nhi\r\n", &LIMITS),
            Ok(Parsed::Complete {
                value: ClientMessage::File(Request::Write {
                    name: "f".into(),
                    contents: Bytes::from_static(b"hi"),
                    exptime_s: 0
                }),
                consumed: 15
            })
        );
        assert_eq!(
            parse_client_message(b"write f 2\r\nh", &LIMITS),
            Ok(Parsed::Incomplete)
        );
    }

    #[test]
    fn malformed_status_requests_are_refused() {
        assert!(matches!(
            parse_client_message(b"status now\r\n", &LIMITS),
            Err(ProtocolError::ArgumentCount { got: 1, .. })
        ));
        assert!(matches!(
            parse_client_message(b"STATUS\r\n", &LIMITS),
            Err(ProtocolError::UnknownCommand(_))
        ));
        assert_eq!(
            parse_client_message(b"status\n", &LIMITS),
            Err(ProtocolError::BareLineFeed)
        );
        // The plain request parser does not know the extension.
        assert!(matches!(
            parse_request(b"status\r\n", &LIMITS),
            Err(ProtocolError::UnknownCommand(_))
        ));
    }

    #[test]
    fn reports_encode_to_the_documented_line_and_back() {
        for (leader, wire) in [
            (
                Some(3),
                &b"STATUS id=2 role=follower term=7 leader=3 commit=40 last=41 repairing=no snapshot=30 log=11\r\n"[..],
            ),
            (
                None,
                b"STATUS id=2 role=follower term=7 leader=_ commit=40 last=41 repairing=no snapshot=30 log=11\r\n",
            ),
        ] {
            let mut out = Vec::new();
            report(leader).encode(&mut out);
            assert_eq!(out, wire);
            assert_eq!(
                parse_status_report(&out),
                Ok(Parsed::Complete {
                    value: report(leader),
                    consumed: wire.len()
                })
            );
        }
        let leader = StatusReport {
            role: Role::Leader,
            ..report(Some(2))
        };
        let mut out = Vec::new();
        leader.encode(&mut out);
        assert_eq!(
            parse_status_report(&out).unwrap(),
            complete(leader, out.len()).unwrap()
        );
    }

    #[test]
    fn malformed_reports_are_refused() {
        let bad = |field| Err(ProtocolError::BadStatus { field });
        let line = |text: &str| parse_status_report(format!("{text}\r\n").as_bytes());
        assert_eq!(parse_status_report(b"STATUS id=1"), Ok(Parsed::Incomplete));
        assert!(matches!(
            line("ERR_REDIRECT _"),
            Err(ProtocolError::UnknownCommand(_))
        ));
        assert!(matches!(
            line("STATUS id=1 role=leader"),
            Err(ProtocolError::ArgumentCount { got: 2, .. })
        ));
        assert_eq!(
            line("STATUS id=1 role=boss term=1 leader=1 commit=1 last=1"),
            bad("role")
        );
        assert_eq!(
            line("STATUS id=1 term=1 role=leader leader=1 commit=1 last=1"),
            bad("role")
        );
        assert_eq!(
            line("STATUS id=1 role=leader term=x leader=1 commit=1 last=1"),
            Err(ProtocolError::BadNumber { field: "term" })
        );
        assert_eq!(
            line("STATUS id=1 role=leader term=1 leader= commit=1 last=1"),
            Err(ProtocolError::BadNumber { field: "leader" })
        );
        assert_eq!(
            line("STATUS id=1 role=leader term=1 leader=1 commit=1 last=1 repairing=maybe"),
            bad("repairing")
        );
    }

    #[test]
    fn a_repairing_node_says_so_and_an_older_line_reads_as_not_repairing() {
        let repairing = StatusReport {
            repairing: true,
            ..report(None)
        };
        let mut out = Vec::new();
        repairing.encode(&mut out);
        assert!(
            out.ends_with(b" repairing=yes snapshot=30 log=11\r\n"),
            "{out:?}"
        );
        assert_eq!(parse_status_report(&out), complete(repairing, out.len()));
        let older = b"STATUS id=2 role=follower term=7 leader=_ commit=40 last=41\r\n";
        let from_before_snapshots = StatusReport {
            log: None,
            ..report(None)
        };
        assert_eq!(
            parse_status_report(older),
            complete(from_before_snapshots, older.len())
        );
    }

    #[test]
    fn applied_and_the_last_leader_change_round_trip() {
        let report = StatusReport {
            applied: Some(LogIndex(39)),
            leader_change: Some(LeaderChangeReport {
                at_unix_ms: 1_700_000_000_123,
                reason: "quorum_lost",
            }),
            ..report(None)
        };
        let mut out = Vec::new();
        report.encode(&mut out);
        assert!(
            out.ends_with(b" log=11 applied=39 leader_change=1700000000123/quorum_lost\r\n"),
            "{out:?}"
        );
        assert_eq!(parse_status_report(&out), complete(report, out.len()));
        let bad = b"STATUS id=2 role=follower term=7 leader=_ commit=40 last=41 repairing=no snapshot=1 log=2 applied=3 leader_change=12\r\n";
        assert!(parse_status_report(bad).is_err());
    }

    #[test]
    fn lines_of_every_age_parse_and_later_fields_are_ignored() {
        let line = |text: &str| parse_status_report(format!("{text}\r\n").as_bytes());
        let value = |text: &str| match line(text) {
            Ok(Parsed::Complete { value, .. }) => value,
            other => panic!("{text}: {other:?}"),
        };
        let base = "STATUS id=2 role=follower term=7 leader=_ commit=40 last=41";
        let before_snapshots = value(&format!("{base} repairing=yes"));
        assert_eq!(
            (before_snapshots.repairing, before_snapshots.log),
            (true, None)
        );
        // A server without the extension encodes no snapshot fields.
        let mut out = Vec::new();
        before_snapshots.encode(&mut out);
        assert_eq!(out, format!("{base} repairing=yes\r\n").as_bytes());
        let now = value(&format!("{base} repairing=no snapshot=30 log=11"));
        assert_eq!(now, report(None));
        let later = value(&format!(
            "{base} repairing=no snapshot=30 log=11 shiny=new more=1"
        ));
        assert_eq!(later, report(None));
        // Every optional field is optional, the later ones included.
        assert_eq!(value(&format!("{base} snapshot=30 log=11")), report(None));
        assert_eq!(value(&format!("{base} future=1")).log, None);
    }

    #[test]
    fn malformed_snapshot_fields_are_refused() {
        let line = |text: &str| parse_status_report(format!("{text}\r\n").as_bytes());
        let base = "STATUS id=2 role=follower term=7 leader=_ commit=40 last=41 repairing=no";
        assert_eq!(
            line(&format!("{base} snapshot=30")),
            Err(ProtocolError::BadStatus { field: "log" })
        );
        assert_eq!(
            line(&format!("{base} log=30")),
            Err(ProtocolError::BadStatus { field: "snapshot" })
        );
        assert_eq!(
            line(&format!("{base} snapshot=x log=1")),
            Err(ProtocolError::BadNumber { field: "snapshot" })
        );
        assert_eq!(
            line(&format!("{base} snapshot=1 log=-1")),
            Err(ProtocolError::BadNumber { field: "log" })
        );
        assert!(matches!(
            line(&format!("{base} snapshot=1 log=1 junk")),
            Err(ProtocolError::UnknownCommand(_))
        ));
    }
}
