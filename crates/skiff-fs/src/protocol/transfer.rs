//! The `transfer` extension of the line protocol, for administrators: ask
//! the leader to hand its office to another node (Raft's leadership
//! transfer), before a machine is taken down or to move load.
//!
//! ```text
//! transfer <id>\r\n  ->  TRANSFERRED <id>\r\n         the leader stepped down for <id>'s election
//!                    |   ERR_TRANSFER <reason>\r\n   nothing moved; the reason is one line of text
//! ```
//!
//! Only the leader can hand over: any other server refuses, naming the
//! leader it knows (`ERR_TRANSFER not the leader; the leader is node 2`),
//! so that a tool can ask again there. While the transfer runs (at most an
//! election timeout) the leader takes no writes; the server holds them and
//! submits them again, so clients see at most a redirect to the new leader.
//! Like `snapshot`, the command is harmless to the classic protocol's
//! clients, which never send it; with client TLS only authenticated
//! clients reach it.

use super::snapshot::one_line_reason;
use super::{complete, first_and_rest, lossy, parse_number, split_line, words};
use super::{Parsed, ProtocolError, CRLF};
use skiff_core::NodeId;

/// A server's answer to `transfer <id>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferAnswer {
    /// `TRANSFERRED <id>`: the leader told `id` to stand and stepped down
    /// for its election.
    Transferred(NodeId),
    /// `ERR_TRANSFER <reason>`: leadership did not move, for this reason.
    Refused(String),
}

impl TransferAnswer {
    /// A refusal for `reason`, made fit for one line (as `snapshot`'s).
    pub fn refused(reason: impl std::fmt::Display) -> TransferAnswer {
        TransferAnswer::Refused(one_line_reason(reason))
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = match self {
            TransferAnswer::Transferred(to) => format!("TRANSFERRED {to}"),
            TransferAnswer::Refused(reason) => format!("ERR_TRANSFER {reason}"),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(CRLF);
    }
}

/// Parses the arguments of a `transfer` line: one node id.
pub(super) fn parse_transfer_target(arguments: &[&[u8]]) -> Result<NodeId, ProtocolError> {
    match arguments {
        [id] => Ok(NodeId(parse_number(id, "node id")?)),
        _ => Err(ProtocolError::ArgumentCount {
            command: "transfer",
            expected: "1",
            got: arguments.len(),
        }),
    }
}

/// Parses the answer to `transfer` at the start of `buf`.
pub fn parse_transfer_answer(buf: &[u8]) -> Result<Parsed<TransferAnswer>, ProtocolError> {
    let Some((line, line_bytes)) = split_line(buf)? else {
        return Ok(Parsed::Incomplete);
    };
    let words = words(line);
    let answer = match first_and_rest(&words) {
        (b"TRANSFERRED", [id]) => TransferAnswer::Transferred(NodeId(parse_number(id, "node id")?)),
        (b"TRANSFERRED", fields) => {
            return Err(ProtocolError::ArgumentCount {
                command: "TRANSFERRED",
                expected: "1",
                got: fields.len(),
            })
        }
        (b"ERR_TRANSFER", _) => {
            let reason = line.strip_prefix(b"ERR_TRANSFER").unwrap_or_default();
            TransferAnswer::Refused(String::from_utf8_lossy(reason).trim().to_string())
        }
        _ => return Err(ProtocolError::UnknownCommand(lossy(line))),
    };
    complete(answer, line_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_client_message, ClientMessage, Limits};

    fn round_trip(answer: &TransferAnswer) -> Vec<u8> {
        let mut out = Vec::new();
        answer.encode(&mut out);
        assert_eq!(
            parse_transfer_answer(&out),
            Ok(Parsed::Complete {
                value: answer.clone(),
                consumed: out.len()
            })
        );
        out
    }

    #[test]
    fn answers_round_trip() {
        assert_eq!(
            round_trip(&TransferAnswer::Transferred(NodeId(3))),
            b"TRANSFERRED 3\r\n"
        );
        let refused = TransferAnswer::refused("not the leader;\nthe leader is node 2");
        assert_eq!(
            round_trip(&refused),
            b"ERR_TRANSFER not the leader; the leader is node 2\r\n"
        );
        assert_eq!(
            parse_transfer_answer(b"TRANSFERRED 3"),
            Ok(Parsed::Incomplete)
        );
        assert!(parse_transfer_answer(b"TRANSFERRED\r\n").is_err());
        assert!(parse_transfer_answer(b"TRANSFERRED x\r\n").is_err());
        assert!(parse_transfer_answer(b"OK\r\n").is_err());
    }

    #[test]
    fn transfer_is_a_message_of_its_own_with_one_node_id() {
        let limits = Limits::default();
        assert_eq!(
            parse_client_message(b"transfer 3\r\nread f\r\n", &limits),
            Ok(Parsed::Complete {
                value: ClientMessage::Transfer(NodeId(3)),
                consumed: 12
            })
        );
        assert_eq!(
            parse_client_message(b"transfer 3", &limits),
            Ok(Parsed::Incomplete)
        );
        assert!(matches!(
            parse_client_message(b"transfer\r\n", &limits),
            Err(ProtocolError::ArgumentCount {
                command: "transfer",
                ..
            })
        ));
        assert!(parse_client_message(b"transfer 1 2\r\n", &limits).is_err());
        assert!(parse_client_message(b"transfer me\r\n", &limits).is_err());
    }
}
