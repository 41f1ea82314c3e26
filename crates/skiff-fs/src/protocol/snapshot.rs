//! The `snapshot` extension of the line protocol, for administrators: ask
//! one server to snapshot its store now, whatever its snapshot policy
//! says, and so release the log the snapshot covers.
//!
//! ```text
//! snapshot\r\n  ->  SNAPSHOT index=<i> term=<t>\r\n   a snapshot through entry i (of term t) is durable
//!               |   ERR_SNAPSHOT <reason>\r\n         none was taken; the reason is one line of text
//! ```
//!
//! The server that receives it answers for its own node, leader or not,
//! and never redirects: each node keeps its own snapshots. A refusal says
//! why in words, e.g. `ERR_SNAPSHOT nothing was applied since the snapshot
//! through index 40`. A snapshot changes no file, so the command is
//! harmless to the classic protocol's clients, which never send it.

use super::{complete, field_value, first_and_rest, lossy, parse_number, split_line, words};
use super::{Parsed, ProtocolError, CRLF};
use skiff_core::{LogIndex, SnapshotMeta, Term};

/// The longest reason an `ERR_SNAPSHOT` or `ERR_TRANSFER` carries, in
/// bytes; longer ones are cut, so that the line stays well under the
/// protocol's line limit.
const REASON_BYTES_MAX: usize = 300;

/// `reason` made fit for one answer line: control characters become
/// spaces and a long reason is cut at a character boundary.
pub(super) fn one_line_reason(reason: impl std::fmt::Display) -> String {
    let mut reason: String = reason
        .to_string()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if reason.len() > REASON_BYTES_MAX {
        let mut cut = REASON_BYTES_MAX;
        while !reason.is_char_boundary(cut) {
            cut -= 1;
        }
        reason.truncate(cut);
    }
    reason.trim().to_string()
}

/// A server's answer to `snapshot`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SnapshotAnswer {
    /// `SNAPSHOT index=<i> term=<t>`: the snapshot taken, now durable.
    Taken(SnapshotMeta),
    /// `ERR_SNAPSHOT <reason>`: no snapshot was taken, for this reason.
    Refused(String),
}

impl SnapshotAnswer {
    /// A refusal for `reason`, made fit for one line: control characters
    /// become spaces and a long reason is cut.
    pub fn refused(reason: impl std::fmt::Display) -> SnapshotAnswer {
        SnapshotAnswer::Refused(one_line_reason(reason))
    }

    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let line = match self {
            SnapshotAnswer::Taken(snapshot) => {
                format!("SNAPSHOT index={} term={}", snapshot.index, snapshot.term)
            }
            SnapshotAnswer::Refused(reason) => format!("ERR_SNAPSHOT {reason}"),
        };
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(CRLF);
    }
}

/// Parses the answer to `snapshot` at the start of `buf`.
pub fn parse_snapshot_answer(buf: &[u8]) -> Result<Parsed<SnapshotAnswer>, ProtocolError> {
    let Some((line, line_bytes)) = split_line(buf)? else {
        return Ok(Parsed::Incomplete);
    };
    let words = words(line);
    let answer = match first_and_rest(&words) {
        (b"SNAPSHOT", [index, term]) => {
            let field = |word: &[u8], key: &'static str| {
                let value = field_value(word, key);
                parse_number(
                    value.ok_or(ProtocolError::BadSnapshotAnswer { field: key })?,
                    key,
                )
            };
            SnapshotAnswer::Taken(SnapshotMeta {
                index: LogIndex(field(index, "index")?),
                term: Term(field(term, "term")?),
            })
        }
        (b"SNAPSHOT", fields) => {
            return Err(ProtocolError::ArgumentCount {
                command: "SNAPSHOT",
                expected: "2",
                got: fields.len(),
            })
        }
        (b"ERR_SNAPSHOT", _) => {
            let reason = line.strip_prefix(b"ERR_SNAPSHOT").unwrap_or_default();
            SnapshotAnswer::Refused(String::from_utf8_lossy(reason).trim().to_string())
        }
        _ => return Err(ProtocolError::UnknownCommand(lossy(line))),
    };
    complete(answer, line_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{parse_client_message, ClientMessage, Limits};

    fn parsed(line: &[u8]) -> Result<Parsed<SnapshotAnswer>, ProtocolError> {
        parse_snapshot_answer(line)
    }

    fn round_trip(answer: &SnapshotAnswer) -> Vec<u8> {
        let mut out = Vec::new();
        answer.encode(&mut out);
        assert_eq!(
            parsed(&out),
            Ok(Parsed::Complete {
                value: answer.clone(),
                consumed: out.len()
            })
        );
        out
    }

    #[test]
    fn snapshot_is_a_message_of_its_own() {
        let limits = Limits::default();
        assert_eq!(
            parse_client_message(b"snapshot\r\nread f\r\n", &limits),
            Ok(Parsed::Complete {
                value: ClientMessage::Snapshot,
                consumed: 10
            })
        );
        assert_eq!(
            parse_client_message(b"snapsh", &limits),
            Ok(Parsed::Incomplete)
        );
        assert!(matches!(
            parse_client_message(b"snapshot now\r\n", &limits),
            Err(ProtocolError::ArgumentCount {
                command: "snapshot",
                got: 1,
                ..
            })
        ));
    }

    #[test]
    fn answers_encode_to_the_documented_lines_and_back() {
        let taken = SnapshotAnswer::Taken(SnapshotMeta {
            index: LogIndex(1234),
            term: Term(3),
        });
        assert_eq!(round_trip(&taken), b"SNAPSHOT index=1234 term=3\r\n");
        let refused = SnapshotAnswer::refused("nothing was applied since index 40");
        assert_eq!(
            round_trip(&refused),
            b"ERR_SNAPSHOT nothing was applied since index 40\r\n"
        );
    }

    #[test]
    fn a_refusal_stays_on_one_short_line() {
        let refused = SnapshotAnswer::refused("disk\r\nfull\u{7}");
        assert_eq!(refused, SnapshotAnswer::Refused("disk  full".to_string()));
        let SnapshotAnswer::Refused(long) = SnapshotAnswer::refused("é".repeat(1000)) else {
            unreachable!("refused() refuses")
        };
        assert!(long.len() <= REASON_BYTES_MAX && long.len() >= REASON_BYTES_MAX - 1);
        round_trip(&SnapshotAnswer::Refused(long));
    }

    #[test]
    fn malformed_answers_are_refused() {
        assert_eq!(parsed(b"SNAPSHOT index=1"), Ok(Parsed::Incomplete));
        assert_eq!(
            parsed(b"SNAPSHOT term=1 index=1\r\n"),
            Err(ProtocolError::BadSnapshotAnswer { field: "index" })
        );
        assert_eq!(
            parsed(b"SNAPSHOT index=x term=1\r\n"),
            Err(ProtocolError::BadNumber { field: "index" })
        );
        assert!(matches!(
            parsed(b"SNAPSHOT index=1\r\n"),
            Err(ProtocolError::ArgumentCount { got: 1, .. })
        ));
        assert!(matches!(
            parsed(b"ERR_CMD_ERR\r\n"),
            Err(ProtocolError::UnknownCommand(_))
        ));
    }
}
