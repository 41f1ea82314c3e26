//! The `member` extension of the line protocol, for administrators: show
//! the cluster's membership and change it one server at a time (add a
//! learner, promote a learner to voter, remove a member), to replace a
//! machine or grow the cluster without downtime.
//!
//! ```text
//! member list\r\n                          ->  MEMBER <id> voter|learner <peer> <client> [behind=<n>]\r\n ...
//!                                              MEMBERS_END <change_pending:0|1>\r\n
//! member add <id> <peer> <client>\r\n      ->  MEMBER_OK <index>\r\n   the change committed at log index <index>
//! member promote <id>\r\n                  |   ERR_MEMBER <reason>\r\n  nothing changed, or (rarely) the outcome is
//! member remove <id>\r\n                                                unknown; the reason says which, in one line
//! ```
//!
//! `member list` is answered by any server for its own node, leader or
//! not, like `status`: the configuration in force there (its latest,
//! committed or not), one `MEMBER` line per member in id order, voters
//! first, then `MEMBERS_END 1` if that configuration has not committed
//! yet (`0` otherwise). Addresses are `ip:port` (IPv6 in brackets), as
//! the configuration's address book holds them. `behind=<n>` is how many
//! entries the member's log lacks of the leader's: only the leader knows,
//! so only its lines carry it. The line grows only at its end, by
//! `key=value` words, which parsers skip when they do not know them.
//!
//! The changes are answered by the leader alone, once the change's entry
//! has committed: `add` makes node `<id>` a learner with these addresses
//! (it receives the log and snapshots but does not vote), `promote` makes
//! a learner a voter, `remove` takes a voter or learner out (a leader that
//! removes itself leads until the change commits, then steps down). One
//! change runs at a time. Any other server refuses with
//! `ERR_MEMBER not the leader; the leader is node 2 at 127.0.0.1:7102`
//! (the leader's client address, when this server knows it), so that a
//! tool can ask again there; [`MemberAnswer::NotLeader`] is that answer
//! parsed. `skiff node --join` sends `member add` with the joining node's
//! own addresses.
//!
//! Like `transfer`, the command is harmless to the classic protocol's
//! clients, which never send it; with client TLS only clients that
//! completed the handshake reach it.

use super::snapshot::one_line_reason;
use super::{complete, first_and_rest, lossy, parse_number, split_line, words};
use super::{Parsed, ProtocolError, CRLF};
use skiff_core::{LogIndex, NodeId};
use std::fmt;
use std::net::SocketAddr;

/// The most `MEMBER` lines a client accepts in one answer, so that its
/// buffer stays bounded whatever a server sends; far above any real
/// cluster (Raft clusters have 3 to 7 voters and a few learners).
pub const MEMBERS_MAX: usize = 100;

/// The start of the reason a server that does not lead gives.
const NOT_LEADER: &str = "not the leader;";

/// A `member` request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberRequest {
    /// `member list`: this server's configuration, with addresses.
    List,
    /// `member add <id> <peer> <client>`: add node `id` as a learner.
    Add {
        /// The new node's id.
        id: NodeId,
        /// Where the other nodes reach it (its `peer_address`).
        peer: SocketAddr,
        /// Where clients reach it (its `client_address`).
        client: SocketAddr,
    },
    /// `member promote <id>`: make learner `id` a voter.
    Promote(NodeId),
    /// `member remove <id>`: take node `id` out of the cluster.
    Remove(NodeId),
}

impl MemberRequest {
    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = match self {
            MemberRequest::List => "member list".to_string(),
            MemberRequest::Add { id, peer, client } => format!("member add {id} {peer} {client}"),
            MemberRequest::Promote(id) => format!("member promote {id}"),
            MemberRequest::Remove(id) => format!("member remove {id}"),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(CRLF);
    }
}

/// Whether a member votes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberRole {
    /// Votes and counts for commit.
    Voter,
    /// Receives the log and snapshots; neither votes nor counts.
    Learner,
}

impl fmt::Display for MemberRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberRole::Voter => "voter",
            MemberRole::Learner => "learner",
        })
    }
}

/// One `MEMBER` line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Member {
    /// The node's id.
    pub id: NodeId,
    /// Voter or learner.
    pub role: MemberRole,
    /// Its peer address.
    pub peer: SocketAddr,
    /// Its client address.
    pub client: SocketAddr,
    /// How many entries its log lacks of the leader's: only in the
    /// leader's answer.
    pub behind: Option<u64>,
}

/// The answer to `member list`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberList {
    /// Every member, voters first, each group in id order.
    pub members: Vec<Member>,
    /// Whether the configuration has not committed yet.
    pub change_pending: bool,
}

impl MemberList {
    /// The member with this id.
    pub fn member(&self, id: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.id == id)
    }

    /// The voters' ids, in order.
    pub fn voters(&self) -> Vec<NodeId> {
        self.ids_of(MemberRole::Voter)
    }

    /// The learners' ids, in order.
    pub fn learners(&self) -> Vec<NodeId> {
        self.ids_of(MemberRole::Learner)
    }

    fn ids_of(&self, role: MemberRole) -> Vec<NodeId> {
        let ids = self.members.iter().filter(|m| m.role == role);
        ids.map(|m| m.id).collect()
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for member in &self.members {
            let mut line = format!(
                "MEMBER {} {} {} {}",
                member.id, member.role, member.peer, member.client
            );
            if let Some(behind) = member.behind {
                line.push_str(&format!(" behind={behind}"));
            }
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(CRLF);
        }
        let end = format!("MEMBERS_END {}", u8::from(self.change_pending));
        out.extend_from_slice(end.as_bytes());
        out.extend_from_slice(CRLF);
    }
}

/// The leader a server that does not lead points to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaderHint {
    /// The leader's id.
    pub id: NodeId,
    /// Its client address, when the server knows it.
    pub client: Option<SocketAddr>,
}

/// The answer to `member add | promote | remove`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberAnswer {
    /// `MEMBER_OK <index>`: the change committed at this log index.
    Changed(LogIndex),
    /// `ERR_MEMBER not the leader; ...`: ask the leader, if one is known.
    NotLeader {
        /// The leader the server knows of.
        leader: Option<LeaderHint>,
    },
    /// `ERR_MEMBER <reason>`: any other refusal or failure, in one line.
    Refused(String),
}

impl MemberAnswer {
    /// A refusal for `reason`, made fit for one line (as `snapshot`'s).
    pub fn refused(reason: impl fmt::Display) -> MemberAnswer {
        MemberAnswer::Refused(one_line_reason(reason))
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = match self {
            MemberAnswer::Changed(index) => format!("MEMBER_OK {index}"),
            MemberAnswer::NotLeader { leader: None } => {
                format!("ERR_MEMBER {NOT_LEADER} no leader is known")
            }
            MemberAnswer::NotLeader {
                leader: Some(LeaderHint { id, client: None }),
            } => format!("ERR_MEMBER {NOT_LEADER} the leader is node {id}"),
            MemberAnswer::NotLeader {
                leader:
                    Some(LeaderHint {
                        id,
                        client: Some(client),
                    }),
            } => format!("ERR_MEMBER {NOT_LEADER} the leader is node {id} at {client}"),
            MemberAnswer::Refused(reason) => format!("ERR_MEMBER {reason}"),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(CRLF);
    }
}

/// Parses the arguments of a `member` line (the words after `member`).
pub(super) fn parse_member_request(arguments: &[&[u8]]) -> Result<MemberRequest, ProtocolError> {
    let count = |command: &'static str, expected: &'static str, got: usize| {
        Err(ProtocolError::ArgumentCount {
            command,
            expected,
            got,
        })
    };
    match first_and_rest(arguments) {
        (b"list", []) => Ok(MemberRequest::List),
        (b"list", rest) => count("member list", "0", rest.len()),
        (b"add", [id, peer, client]) => Ok(MemberRequest::Add {
            id: parse_id(id)?,
            peer: parse_address(peer, "peer address")?,
            client: parse_address(client, "client address")?,
        }),
        (b"add", rest) => count("member add", "3", rest.len()),
        (b"promote", [id]) => Ok(MemberRequest::Promote(parse_id(id)?)),
        (b"promote", rest) => count("member promote", "1", rest.len()),
        (b"remove", [id]) => Ok(MemberRequest::Remove(parse_id(id)?)),
        (b"remove", rest) => count("member remove", "1", rest.len()),
        (b"", _) => count("member", "1 to 4", 0),
        (other, _) => Err(ProtocolError::UnknownCommand(format!(
            "member {}",
            lossy(other)
        ))),
    }
}

fn parse_id(word: &[u8]) -> Result<NodeId, ProtocolError> {
    Ok(NodeId(parse_number(word, "node id")?))
}

fn parse_address(word: &[u8], field: &'static str) -> Result<SocketAddr, ProtocolError> {
    std::str::from_utf8(word)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or(ProtocolError::BadAddress { field })
}

/// Parses the answer to `member add | promote | remove` at the start of
/// `buf`.
pub fn parse_member_answer(buf: &[u8]) -> Result<Parsed<MemberAnswer>, ProtocolError> {
    let Some((line, line_bytes)) = split_line(buf)? else {
        return Ok(Parsed::Incomplete);
    };
    let words = words(line);
    let answer = match first_and_rest(&words) {
        (b"MEMBER_OK", [index]) => MemberAnswer::Changed(LogIndex(parse_number(index, "index")?)),
        (b"MEMBER_OK", fields) => {
            return Err(ProtocolError::ArgumentCount {
                command: "MEMBER_OK",
                expected: "1",
                got: fields.len(),
            })
        }
        (b"ERR_MEMBER", _) => {
            let reason = line.strip_prefix(b"ERR_MEMBER").unwrap_or_default();
            let reason = String::from_utf8_lossy(reason).trim().to_string();
            match reason.strip_prefix(NOT_LEADER) {
                Some(hint) => MemberAnswer::NotLeader {
                    leader: parse_leader_hint(hint.trim()),
                },
                None => MemberAnswer::Refused(reason),
            }
        }
        _ => return Err(ProtocolError::UnknownCommand(lossy(line))),
    };
    complete(answer, line_bytes)
}

/// `the leader is node <id>[ at <address>]`, as [`MemberAnswer::encode`]
/// writes it; anything else (`no leader is known`) names none.
fn parse_leader_hint(hint: &str) -> Option<LeaderHint> {
    let rest = hint.strip_prefix("the leader is node ")?;
    let (id, client) = match rest.split_once(" at ") {
        Some((id, client)) => (id, Some(client.parse().ok()?)),
        None => (rest, None),
    };
    Some(LeaderHint {
        id: NodeId(id.parse().ok()?),
        client,
    })
}

/// Parses the whole answer to `member list` at the start of `buf`: every
/// `MEMBER` line and the `MEMBERS_END` line. More than [`MEMBERS_MAX`]
/// members is an error, so that a client never buffers without bound.
pub fn parse_member_list(buf: &[u8]) -> Result<Parsed<MemberList>, ProtocolError> {
    let mut members = Vec::new();
    let mut consumed = 0;
    loop {
        let Some((line, line_bytes)) = split_line(&buf[consumed..])? else {
            return Ok(Parsed::Incomplete);
        };
        consumed += line_bytes;
        let words = words(line);
        match first_and_rest(&words) {
            (b"MEMBERS_END", [pending, ..]) => {
                let change_pending = match *pending {
                    b"0" => false,
                    b"1" => true,
                    _ => return Err(bad_list("change_pending")),
                };
                let list = MemberList {
                    members,
                    change_pending,
                };
                return complete(list, consumed);
            }
            (b"MEMBER", fields) => {
                if members.len() == MEMBERS_MAX {
                    return Err(bad_list("MEMBER (too many)"));
                }
                members.push(parse_member(fields)?);
            }
            _ => return Err(ProtocolError::UnknownCommand(lossy(line))),
        }
    }
}

/// The fields of one `MEMBER` line, after the word `MEMBER`.
fn parse_member(fields: &[&[u8]]) -> Result<Member, ProtocolError> {
    let [id, role, peer, client, optional @ ..] = fields else {
        return Err(bad_list("MEMBER"));
    };
    let role = match *role {
        b"voter" => MemberRole::Voter,
        b"learner" => MemberRole::Learner,
        _ => return Err(bad_list("role")),
    };
    let mut behind = None;
    for word in optional {
        if let Some(value) = super::field_value(word, "behind") {
            behind = Some(parse_number(value, "behind")?);
        }
    }
    Ok(Member {
        id: parse_id(id)?,
        role,
        peer: parse_address(peer, "peer address")?,
        client: parse_address(client, "client address")?,
        behind,
    })
}

fn bad_list(field: &'static str) -> ProtocolError {
    ProtocolError::BadMemberList { field }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_client_message, ClientMessage, Limits};

    fn address(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    fn member(id: u64, role: MemberRole, behind: Option<u64>) -> Member {
        Member {
            id: NodeId(id),
            role,
            peer: address(&format!("127.0.0.1:71{id:02}")),
            client: address(&format!("[::1]:72{id:02}")),
            behind,
        }
    }

    fn parses_whole<T: PartialEq + fmt::Debug>(
        parse: fn(&[u8]) -> Result<Parsed<T>, ProtocolError>,
        wire: &[u8],
        value: T,
    ) {
        assert_eq!(
            parse(wire),
            Ok(Parsed::Complete {
                value,
                consumed: wire.len()
            })
        );
        // Every proper prefix is incomplete, never an error.
        for end in 0..wire.len() {
            assert_eq!(parse(&wire[..end]), Ok(Parsed::Incomplete), "{end}");
        }
    }

    #[test]
    fn requests_round_trip_through_the_servers_parser() {
        let limits = Limits::default();
        let requests = [
            (MemberRequest::List, "member list\r\n"),
            (
                MemberRequest::Add {
                    id: NodeId(4),
                    peer: address("127.0.0.1:7104"),
                    client: address("[::1]:7204"),
                },
                "member add 4 127.0.0.1:7104 [::1]:7204\r\n",
            ),
            (MemberRequest::Promote(NodeId(4)), "member promote 4\r\n"),
            (MemberRequest::Remove(NodeId(1)), "member remove 1\r\n"),
        ];
        for (request, wire) in requests {
            let mut out = Vec::new();
            request.encode(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), wire);
            let mut pipelined = wire.as_bytes().to_vec();
            pipelined.extend_from_slice(b"read f\r\n");
            assert_eq!(
                parse_client_message(&pipelined, &limits),
                Ok(Parsed::Complete {
                    value: ClientMessage::Member(request),
                    consumed: wire.len()
                })
            );
            assert_eq!(
                parse_client_message(&wire.as_bytes()[..wire.len() - 1], &limits),
                Ok(Parsed::Incomplete)
            );
        }
    }

    #[test]
    fn malformed_requests_are_refused_with_what_is_wrong() {
        let limits = Limits::default();
        let refused = |line: &str| parse_client_message(line.as_bytes(), &limits).unwrap_err();
        assert!(matches!(
            refused("member\r\n"),
            ProtocolError::ArgumentCount {
                command: "member",
                ..
            }
        ));
        assert!(matches!(
            refused("member list 1\r\n"),
            ProtocolError::ArgumentCount {
                command: "member list",
                got: 1,
                ..
            }
        ));
        assert!(matches!(
            refused("member add 4 127.0.0.1:1\r\n"),
            ProtocolError::ArgumentCount {
                command: "member add",
                expected: "3",
                got: 2
            }
        ));
        assert!(matches!(
            refused("member promote\r\n"),
            ProtocolError::ArgumentCount {
                command: "member promote",
                ..
            }
        ));
        assert!(matches!(
            refused("member remove 1 2\r\n"),
            ProtocolError::ArgumentCount {
                command: "member remove",
                ..
            }
        ));
        assert!(matches!(
            refused("member remove me\r\n"),
            ProtocolError::BadNumber { field: "node id" }
        ));
        assert!(matches!(
            refused("member add 4 localhost:1 127.0.0.1:2\r\n"),
            ProtocolError::BadAddress {
                field: "peer address"
            }
        ));
        assert!(matches!(
            refused("member add 4 127.0.0.1:1 127.0.0.1\r\n"),
            ProtocolError::BadAddress {
                field: "client address"
            }
        ));
        assert_eq!(
            refused("member join 4\r\n"),
            ProtocolError::UnknownCommand("member join".into())
        );
    }

    #[test]
    fn change_answers_round_trip() {
        let answers = [
            (MemberAnswer::Changed(LogIndex(17)), "MEMBER_OK 17\r\n"),
            (
                MemberAnswer::NotLeader {
                    leader: Some(LeaderHint {
                        id: NodeId(2),
                        client: Some(address("127.0.0.1:7202")),
                    }),
                },
                "ERR_MEMBER not the leader; the leader is node 2 at 127.0.0.1:7202\r\n",
            ),
            (
                MemberAnswer::NotLeader {
                    leader: Some(LeaderHint {
                        id: NodeId(2),
                        client: None,
                    }),
                },
                "ERR_MEMBER not the leader; the leader is node 2\r\n",
            ),
            (
                MemberAnswer::NotLeader { leader: None },
                "ERR_MEMBER not the leader; no leader is known\r\n",
            ),
            (
                MemberAnswer::refused("cannot remove\nthe last voter"),
                "ERR_MEMBER cannot remove the last voter\r\n",
            ),
        ];
        for (answer, wire) in answers {
            let mut out = Vec::new();
            answer.encode(&mut out);
            assert_eq!(String::from_utf8_lossy(&out), wire);
            parses_whole(parse_member_answer, wire.as_bytes(), answer);
        }
        assert!(parse_member_answer(b"MEMBER_OK\r\n").is_err());
        assert!(parse_member_answer(b"MEMBER_OK x\r\n").is_err());
        assert!(parse_member_answer(b"TRANSFERRED 3\r\n").is_err());
        assert!(parse_member_answer(b"ERR_CMD_ERR\r\n").is_err());
    }

    #[test]
    fn lists_round_trip_and_skip_fields_added_later() {
        let list = MemberList {
            members: vec![
                member(1, MemberRole::Voter, Some(0)),
                member(2, MemberRole::Voter, None),
                member(4, MemberRole::Learner, Some(12)),
            ],
            change_pending: true,
        };
        let mut out = Vec::new();
        list.encode(&mut out);
        assert_eq!(
            String::from_utf8_lossy(&out),
            "MEMBER 1 voter 127.0.0.1:7101 [::1]:7201 behind=0\r\n\
             MEMBER 2 voter 127.0.0.1:7102 [::1]:7202\r\n\
             MEMBER 4 learner 127.0.0.1:7104 [::1]:7204 behind=12\r\n\
             MEMBERS_END 1\r\n"
        );
        parses_whole(parse_member_list, &out, list.clone());
        assert_eq!(list.voters(), [NodeId(1), NodeId(2)]);
        assert_eq!(list.learners(), [NodeId(4)]);
        assert_eq!(list.member(NodeId(4)).map(|m| m.behind), Some(Some(12)));
        let later =
            b"MEMBER 3 voter 127.0.0.1:1 127.0.0.1:2 zone=a behind=3\r\nMEMBERS_END 0 x=1\r\n";
        let Ok(Parsed::Complete { value, .. }) = parse_member_list(later) else {
            panic!("a line with fields added later was refused");
        };
        assert_eq!(value.members[0].behind, Some(3));
        assert!(!value.change_pending);
    }

    #[test]
    fn malformed_lists_are_refused_and_bounded() {
        let refused = |wire: &[u8]| parse_member_list(wire).unwrap_err();
        assert_eq!(
            refused(b"MEMBER 1 boss 127.0.0.1:1 127.0.0.1:2\r\n"),
            bad_list("role")
        );
        assert_eq!(refused(b"MEMBER 1 voter\r\n"), bad_list("MEMBER"));
        assert_eq!(refused(b"MEMBERS_END 2\r\n"), bad_list("change_pending"));
        assert!(matches!(
            refused(b"ERR_CMD_ERR\r\n"),
            ProtocolError::UnknownCommand(_)
        ));
        let line = b"MEMBER 1 voter 127.0.0.1:1 127.0.0.1:2\r\n";
        let many: Vec<u8> = line.repeat(MEMBERS_MAX + 1);
        assert_eq!(refused(&many), bad_list("MEMBER (too many)"));
        assert_eq!(
            parse_member_list(&line.repeat(MEMBERS_MAX)),
            Ok(Parsed::Incomplete)
        );
    }
}
