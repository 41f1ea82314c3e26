//! The `session` extension of the line protocol: exactly-once changes for a
//! client that may have to send a request again (Raft thesis, 6.3).
//!
//! ```text
//! session open\r\n                          ->  SESSION <id>
//! session <id> <seq> <request>              ->  the request's answer
//!                                           |   ERR_SESSION_EXPIRED
//!                                           |   ERR_SESSION_STALE <last>
//! ```
//!
//! A client that cannot tell whether a change happened (its connection
//! broke after the request was sent, or no answer came in time) must be
//! able to send it again without it happening twice. So it opens a
//! session, whose id the cluster decides through the log (the log index of
//! the session's registration entry, the same on every replica), and sends
//! each change prefixed with that id and a number it counts up from 1, e.g.
//! `session 17 4 write a 3\r\nabc\r\n`. The store remembers per session the
//! last number it applied and that request's answer:
//!
//! * a number above the last is applied, and its answer remembered;
//! * the last number again (a resend) gets the remembered answer, and is
//!   not applied again, whichever server it reaches;
//! * a number below the last gets `ERR_SESSION_STALE <last>`: the client
//!   has moved on, and this copy is an old duplicate that must not apply;
//! * a session the store does not know, because it expired or was evicted
//!   (or never existed), gets `ERR_SESSION_EXPIRED` and nothing is applied,
//!   since the request may be a duplicate of one applied before the session
//!   was forgotten. A client that sees it for a request it sent only once
//!   may open a new session and send it there; after a resend, the outcome
//!   stays unknown.
//!
//! Reads are not deduplicated (they change nothing): a numbered read is
//! answered like a plain one, and its number is not remembered. A client
//! sends one numbered request at a time and moves to the next number only
//! once it has the answer.
//!
//! Sessions live in the replicated store (in the log, and in its snapshots),
//! so a failover or a restart keeps them. They expire after an idle time
//! measured by the log's clock, and their number is bounded: opening one
//! more than the bound evicts the one closest to expiring (see
//! [`crate::store`]). Clients of the classic protocol never send `session`
//! and see no difference.

use super::{complete, first_and_rest, parse_number, parse_request, split_line, words};
use super::{Limits, Parsed, ProtocolError, Request, CRLF};
use std::fmt;

/// A session's id: the log index of the entry that opened it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A request's place in a session: which session, and its number there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SessionSeq {
    /// The session.
    pub id: SessionId,
    /// The request's number within it, counted from 1.
    pub seq: u64,
}

impl SessionSeq {
    /// Appends the prefix `session <id> <seq> ` that goes before a
    /// request's own header.
    pub fn encode_prefix(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("session {} {} ", self.id, self.seq).as_bytes());
    }
}

/// The wire form of `session open`.
pub fn encode_open(out: &mut Vec<u8>) {
    out.extend_from_slice(b"session open");
    out.extend_from_slice(CRLF);
}

/// A message of the extension, as a server parses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SessionMessage {
    /// `session open`: register a new session.
    Open,
    /// `session <id> <seq> <request>`: a numbered request.
    Numbered {
        /// Where the request stands in its session.
        session: SessionSeq,
        /// The request.
        request: Request,
    },
}

/// Parses a message of the extension at the start of `buf`, or answers
/// `None` when the first word of its first line is not `session` (or the
/// line has not arrived whole yet).
pub(crate) fn parse_session_message(
    buf: &[u8],
    limits: &Limits,
) -> Result<Option<Parsed<SessionMessage>>, ProtocolError> {
    let Some((line, line_bytes)) = split_line(buf)? else {
        return Ok(None);
    };
    let words = words(line);
    let (b"session", args) = first_and_rest(&words) else {
        return Ok(None);
    };
    let arg_count = |expected| ProtocolError::ArgumentCount {
        command: "session",
        expected,
        got: args.len(),
    };
    match args {
        [b"open"] => return complete(SessionMessage::Open, line_bytes).map(Some),
        [] | [_] | [_, _] => return Err(arg_count("1 (open), or 3 or more")),
        [b"open", ..] => return Err(arg_count("1 (open), or 3 or more")),
        _ => {}
    }
    let session = SessionSeq {
        id: SessionId(parse_number(args[0], "session id")?),
        seq: parse_number(args[1], "session seq")?,
    };
    // The request starts at its first word, after `session <id> <seq>`.
    let request_at = line_bytes_before(line, args[2]);
    let parsed = match parse_request(&buf[request_at..], limits)? {
        Parsed::Incomplete => Parsed::Incomplete,
        Parsed::Complete { value, consumed } => Parsed::Complete {
            value: SessionMessage::Numbered {
                session,
                request: value,
            },
            consumed: request_at + consumed,
        },
    };
    Ok(Some(parsed))
}

/// How many bytes of `line` come before `word`, a slice of it.
fn line_bytes_before(line: &[u8], word: &[u8]) -> usize {
    word.as_ptr() as usize - line.as_ptr() as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    const LIMITS: Limits = Limits {
        file_bytes_max: 100,
        name_bytes_max: 20,
    };

    fn parse(buf: &[u8]) -> Result<Option<Parsed<SessionMessage>>, ProtocolError> {
        parse_session_message(buf, &LIMITS)
    }

    #[test]
    fn open_and_numbered_requests_parse() {
        assert_eq!(
            parse(b"session open\r\nrest"),
            Ok(Some(Parsed::Complete {
                value: SessionMessage::Open,
                consumed: 14
            }))
        );
        let wire = b"session  17 4 write a 3\r\nabc\r\nnext";
        assert_eq!(
            parse(wire),
            Ok(Some(Parsed::Complete {
                value: SessionMessage::Numbered {
                    session: SessionSeq {
                        id: SessionId(17),
                        seq: 4
                    },
                    request: Request::Write {
                        name: "a".to_string(),
                        contents: Bytes::from_static(b"abc"),
                        exptime_s: 0
                    }
                },
                consumed: wire.len() - 4
            }))
        );
    }

    #[test]
    fn the_encoded_forms_parse_back() {
        let mut wire = Vec::new();
        encode_open(&mut wire);
        let session = SessionSeq {
            id: SessionId(9),
            seq: 1,
        };
        session.encode_prefix(&mut wire);
        let request = Request::Delete {
            name: "f".to_string(),
        };
        request.encode(&mut wire);
        let Ok(Some(Parsed::Complete { consumed, .. })) = parse(&wire) else {
            panic!("open does not parse");
        };
        assert_eq!(
            parse(&wire[consumed..]),
            Ok(Some(Parsed::Complete {
                value: SessionMessage::Numbered { session, request },
                consumed: wire.len() - consumed
            }))
        );
    }

    #[test]
    fn other_messages_and_partial_ones_are_left_alone() {
        assert_eq!(parse(b"read a\r\n"), Ok(None));
        assert_eq!(parse(b"session 1 2 read"), Ok(None));
        assert_eq!(
            parse(b"session 1 2 write a 3\r\nab"),
            Ok(Some(Parsed::Incomplete))
        );
    }

    #[test]
    fn malformed_sessions_are_refused() {
        for bad in [
            &b"session\r\n"[..],
            b"session open now\r\n",
            b"session 1 2\r\n",
            b"session x 2 read a\r\n",
            b"session 1 -2 read a\r\n",
            b"session 1 2 status\r\n",
            b"session 1 2 session 1 2 read a\r\n",
            b"session 1 2 read a b\r\n",
        ] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
