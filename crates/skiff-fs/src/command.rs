//! The log entry of one file-store command, and its stable binary encoding.
//!
//! Every request, reads included, reaches the store through the Raft log as a
//! [`Command`]: the client's [`Request`] plus the wall-clock time, in
//! milliseconds since the Unix epoch, at which the leader proposed it, and a
//! [`ProposalId`] that lets the proposing server hand the store's answer back
//! to the connection that asked. Expiry is decided from that timestamp, which
//! is part of the log and so the same on every replica, never from a
//! replica's own clock.
//!
//! A request of a client session (see [`crate::protocol::session`]) carries
//! its [`SessionSeq`] too, and opening a session is an entry of its own,
//! [`SessionOpen`]. [`Entry`] is either.
//!
//! # Encoding (format 1)
//!
//! A command without a session is written in format 1, so that logs and
//! servers from before sessions read it as they always did.
//!
//! ```text
//! byte 0      format version, 1
//! bytes 1..   postcard encoding of (timestamp_ms, proposal, request):
//!               timestamp_ms   varint u64
//!               proposal       server: varint u64, sequence: varint u64
//!               request        varint variant index, then the fields in order:
//!                 0 Write  { name: string, contents: bytes, exptime_s: varint u64 }
//!                 1 Cas    { name: string, version: varint u64, contents: bytes, exptime_s: varint u64 }
//!                 2 Delete { name: string }
//!                 3 Read   { name: string }
//!             where string and bytes are a varint length then that many bytes.
//! ```
//!
//! # Encoding (format 2)
//!
//! The entries of sessions:
//!
//! ```text
//! byte 0      format version, 2
//! bytes 1..   postcard encoding of one of, by varint variant index:
//!               0 Numbered    { timestamp_ms, proposal, session: (id: varint u64, seq: varint u64), request }
//!               1 OpenSession { timestamp_ms, proposal, idle_timeout_ms: varint u64, sessions_max: varint u64 }
//!             with timestamp_ms, proposal and request as in format 1.
//! ```
//!
//! An open entry carries the proposer's session policy, so that every
//! replica expires and evicts sessions alike even if their configurations
//! differ.
//!
//! Postcard's wire format is specified and stable across its 1.x releases. The
//! leading byte tells the formats apart. Empty data is the leader's no-op
//! entry and decodes to `None`; anything else that is not a valid entry
//! decodes to a [`DecodeError`], never a panic, and a length prefix larger
//! than the data is refused without allocating.

use crate::protocol::{Request, SessionId, SessionSeq, Version};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The first byte of an encoded command without a session.
pub const FORMAT_VERSION: u8 = 1;
/// The first byte of an encoded session entry: a numbered command, or a
/// session's opening.
pub const SESSION_FORMAT_VERSION: u8 = 2;

/// Who proposed a command: an id the proposing server drew when it started
/// and a number it counts up per proposal. The store ignores it; the server
/// that proposed recognizes its own entries by it when they are applied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProposalId {
    /// The proposing server's id for this run of it.
    pub server: u64,
    /// The proposal's number within that run.
    pub sequence: u64,
}

/// One request as it is stored in the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    /// The proposing leader's wall-clock time, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Who proposed it.
    pub proposal: ProposalId,
    /// The client session and number it was sent with, if any.
    pub session: Option<SessionSeq>,
    /// What the client asked for.
    pub request: Request,
}

/// How sessions are kept: decided by the server that proposes a session's
/// opening, and carried in that entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionPolicy {
    /// A session unused for this long, by the log's clock, is forgotten.
    pub idle_timeout_ms: u64,
    /// The most sessions kept: opening one more forgets the one closest to
    /// expiring.
    pub sessions_max: u64,
}

impl SessionPolicy {
    /// Refuses a zero bound or idle time, under which a session would be
    /// forgotten before its first change could use it.
    pub fn validate(&self) -> Result<(), String> {
        match (self.idle_timeout_ms, self.sessions_max) {
            (0, _) => Err("the session idle timeout must be above 0 ms".into()),
            (_, 0) => Err("the bound on sessions must be above 0".into()),
            _ => Ok(()),
        }
    }

    /// [`SessionPolicy::idle_timeout_ms`] as a duration.
    pub fn idle_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_millis(self.idle_timeout_ms)
    }
}

impl Default for SessionPolicy {
    /// The defaults of `[limits]` in cluster.toml: an hour of idle time and
    /// 10,000 sessions; each costs the store about a hundred bytes, as it
    /// never remembers file contents.
    fn default() -> Self {
        SessionPolicy {
            idle_timeout_ms: skiff_node::config::SESSION_IDLE_TIMEOUT_MS_DEFAULT,
            sessions_max: skiff_node::config::SESSIONS_MAX_DEFAULT,
        }
    }
}

/// The log entry that opens a client session; the session's id is the
/// entry's log index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOpen {
    /// The proposing leader's wall-clock time, in ms since the Unix epoch.
    pub timestamp_ms: u64,
    /// Who proposed it.
    pub proposal: ProposalId,
    /// How the session is kept.
    pub policy: SessionPolicy,
}

/// A non-empty log entry of the file store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// A file request.
    Command(Command),
    /// A session's opening.
    OpenSession(SessionOpen),
}

/// Why log data is not a command.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The first byte names a format this code does not know.
    #[error("unknown command format {0}")]
    UnknownFormat(u8),
    /// The bytes after the format byte are not an entry of that format.
    #[error("malformed command: {0}")]
    Malformed(#[from] postcard::Error),
    /// A valid command is followed by more bytes.
    #[error("{0} bytes after the command")]
    TrailingBytes(usize),
}

impl Command {
    /// The encoded form, as it goes into the log: one allocation, the
    /// name and contents copied once, from the command into the entry.
    pub fn encode(&self) -> Bytes {
        let (name, contents) = (self.request.name(), self.request_contents());
        let mut out = Vec::with_capacity(ENCODED_FIXED_BYTES_MAX + name.len() + contents.len());
        let request = WireRequest::from(&self.request);
        let (timestamp_ms, proposal) = (self.timestamp_ms, self.proposal.into());
        // Serializing strings, bytes and integers into a Vec cannot fail.
        let out = match self.session {
            None => {
                out.push(FORMAT_VERSION);
                let wire = WireCommand {
                    timestamp_ms,
                    proposal,
                    request,
                };
                postcard::to_extend(&wire, out)
            }
            Some(session) => {
                out.push(SESSION_FORMAT_VERSION);
                let wire = WireSessionEntry::Numbered {
                    timestamp_ms,
                    proposal,
                    session: (session.id.0, session.seq),
                    request,
                };
                postcard::to_extend(&wire, out)
            }
        };
        Bytes::from(out.expect("a command always serializes"))
    }

    fn request_contents(&self) -> &[u8] {
        match &self.request {
            Request::Write { contents, .. } | Request::Cas { contents, .. } => contents,
            Request::Delete { .. } | Request::Read { .. } => &[],
        }
    }
}

impl SessionOpen {
    /// The encoded form, as it goes into the log.
    pub fn encode(&self) -> Bytes {
        let wire = WireSessionEntry::OpenSession {
            timestamp_ms: self.timestamp_ms,
            proposal: self.proposal.into(),
            idle_timeout_ms: self.policy.idle_timeout_ms,
            sessions_max: self.policy.sessions_max,
        };
        let out = postcard::to_extend(&wire, vec![SESSION_FORMAT_VERSION]);
        Bytes::from(out.expect("a session's opening always serializes"))
    }
}

impl Entry {
    /// The encoded form, as it goes into the log.
    pub fn encode(&self) -> Bytes {
        match self {
            Entry::Command(command) => command.encode(),
            Entry::OpenSession(open) => open.encode(),
        }
    }

    /// Decodes log data: `Ok(None)` for the leader's empty no-op entry.
    /// The contents are copied out of `data`.
    pub fn decode(data: &[u8]) -> Result<Option<Entry>, DecodeError> {
        decode_with(data, Bytes::copy_from_slice)
    }

    /// Decodes log data like [`Entry::decode`], but the contents are a
    /// slice of `data` rather than a copy: a store that keeps them shares
    /// the log entry's buffer.
    pub fn decode_shared(data: &Bytes) -> Result<Option<Entry>, DecodeError> {
        decode_with(data, |contents| data.slice_ref(contents))
    }

    /// Who proposed the entry.
    pub fn proposal(&self) -> ProposalId {
        match self {
            Entry::Command(command) => command.proposal,
            Entry::OpenSession(open) => open.proposal,
        }
    }
}

/// The most bytes an encoded command takes beside its name and contents:
/// the format byte and at most 10 bytes for each varint (timestamp, two
/// for the proposal, two for the session, variants, two lengths, version,
/// exptime).
const ENCODED_FIXED_BYTES_MAX: usize = 1 + 11 * 10;

/// Decodes `data`, making the contents' `Bytes` with `contents`.
fn decode_with(
    data: &[u8],
    contents: impl Fn(&[u8]) -> Bytes,
) -> Result<Option<Entry>, DecodeError> {
    let Some((&format, body)) = data.split_first() else {
        return Ok(None);
    };
    let (entry, rest) = match format {
        FORMAT_VERSION => {
            let (wire, rest) = postcard::take_from_bytes::<WireCommand>(body)?;
            let command = Command {
                timestamp_ms: wire.timestamp_ms,
                proposal: wire.proposal.into(),
                session: None,
                request: wire.request.into_request(contents),
            };
            (Entry::Command(command), rest)
        }
        SESSION_FORMAT_VERSION => {
            let (wire, rest) = postcard::take_from_bytes::<WireSessionEntry>(body)?;
            (wire.into_entry(contents), rest)
        }
        other => return Err(DecodeError::UnknownFormat(other)),
    };
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(Some(entry))
}

/// The serialized shape of a [`Command`] in format 1, borrowing its name
/// and contents both ways. Field and variant order are part of the format:
/// append, never reorder.
#[derive(Serialize, Deserialize)]
struct WireCommand<'a> {
    timestamp_ms: u64,
    proposal: (u64, u64),
    #[serde(borrow)]
    request: WireRequest<'a>,
}

/// The serialized shape of a format-2 entry.
#[derive(Serialize, Deserialize)]
enum WireSessionEntry<'a> {
    Numbered {
        timestamp_ms: u64,
        proposal: (u64, u64),
        session: (u64, u64),
        #[serde(borrow)]
        request: WireRequest<'a>,
    },
    OpenSession {
        timestamp_ms: u64,
        proposal: (u64, u64),
        idle_timeout_ms: u64,
        sessions_max: u64,
    },
}

impl WireSessionEntry<'_> {
    fn into_entry(self, contents: impl Fn(&[u8]) -> Bytes) -> Entry {
        match self {
            WireSessionEntry::Numbered {
                timestamp_ms,
                proposal,
                session: (id, seq),
                request,
            } => Entry::Command(Command {
                timestamp_ms,
                proposal: proposal.into(),
                session: Some(SessionSeq {
                    id: SessionId(id),
                    seq,
                }),
                request: request.into_request(contents),
            }),
            WireSessionEntry::OpenSession {
                timestamp_ms,
                proposal,
                idle_timeout_ms,
                sessions_max,
            } => Entry::OpenSession(SessionOpen {
                timestamp_ms,
                proposal: proposal.into(),
                policy: SessionPolicy {
                    idle_timeout_ms,
                    sessions_max,
                },
            }),
        }
    }
}

impl From<ProposalId> for (u64, u64) {
    fn from(proposal: ProposalId) -> Self {
        (proposal.server, proposal.sequence)
    }
}

impl From<(u64, u64)> for ProposalId {
    fn from((server, sequence): (u64, u64)) -> Self {
        ProposalId { server, sequence }
    }
}

#[derive(Serialize, Deserialize)]
enum WireRequest<'a> {
    Write {
        name: &'a str,
        #[serde(borrow)]
        contents: WireBytes<'a>,
        exptime_s: u64,
    },
    Cas {
        name: &'a str,
        version: u64,
        #[serde(borrow)]
        contents: WireBytes<'a>,
        exptime_s: u64,
    },
    Delete {
        name: &'a str,
    },
    Read {
        name: &'a str,
    },
}

/// Contents serialized as one byte string (length, then the bytes) rather
/// than as a sequence of numbers, and borrowed from the buffer when read.
struct WireBytes<'a>(&'a [u8]);

impl Serialize for WireBytes<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for WireBytes<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = &'de [u8];
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_borrowed_bytes<E: serde::de::Error>(
                self,
                bytes: &'de [u8],
            ) -> Result<&'de [u8], E> {
                Ok(bytes)
            }
        }
        deserializer.deserialize_bytes(Visitor).map(WireBytes)
    }
}

impl<'a> From<&'a Request> for WireRequest<'a> {
    fn from(request: &'a Request) -> Self {
        match request {
            Request::Write {
                name,
                contents,
                exptime_s,
            } => WireRequest::Write {
                name,
                contents: WireBytes(contents),
                exptime_s: *exptime_s,
            },
            Request::Cas {
                name,
                version,
                contents,
                exptime_s,
            } => WireRequest::Cas {
                name,
                version: version.0,
                contents: WireBytes(contents),
                exptime_s: *exptime_s,
            },
            Request::Delete { name } => WireRequest::Delete { name },
            Request::Read { name } => WireRequest::Read { name },
        }
    }
}

impl WireRequest<'_> {
    fn into_request(self, contents: impl Fn(&[u8]) -> Bytes) -> Request {
        match self {
            WireRequest::Write {
                name,
                contents: bytes,
                exptime_s,
            } => Request::Write {
                name: name.to_string(),
                contents: contents(bytes.0),
                exptime_s,
            },
            WireRequest::Cas {
                name,
                version,
                contents: bytes,
                exptime_s,
            } => Request::Cas {
                name: name.to_string(),
                version: Version(version),
                contents: contents(bytes.0),
                exptime_s,
            },
            WireRequest::Delete { name } => Request::Delete {
                name: name.to_string(),
            },
            WireRequest::Read { name } => Request::Read {
                name: name.to_string(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn command(request: Request) -> Command {
        Command {
            timestamp_ms: 1_700_000_000_123,
            proposal: ProposalId {
                server: 3,
                sequence: 200,
            },
            session: None,
            request,
        }
    }

    #[test]
    fn shared_decoding_slices_the_contents_out_of_the_entry() {
        let write = command(Request::Write {
            name: "f".to_string(),
            contents: Bytes::from_static(b"0123456789"),
            exptime_s: 0,
        });
        let data = write.encode();
        let Some(Entry::Command(decoded)) = Entry::decode_shared(&data).unwrap() else {
            panic!("not a command");
        };
        assert_eq!(decoded, write);
        let Request::Write { contents, .. } = &decoded.request else {
            panic!("not a write: {decoded:?}");
        };
        let inside = data.as_ptr() as usize..data.as_ptr() as usize + data.len();
        assert!(inside.contains(&(contents.as_ptr() as usize)));
        assert_eq!(Entry::decode(&data), Ok(Some(Entry::Command(write))));
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        let write = command(Request::Write {
            name: "ab".to_string(),
            contents: Bytes::from_static(b"\x00\xff"),
            exptime_s: 300,
        });
        let mut expected = vec![FORMAT_VERSION];
        // 1_700_000_000_123 as a varint, 7 bits at a time, low first.
        expected.extend_from_slice(&[0xfb, 0xd0, 0x95, 0xff, 0xbc, 0x31]);
        // Proposal 3, 200 (200 as a varint is 0xc8 0x01).
        expected.extend_from_slice(&[3, 0xc8, 0x01]);
        expected.extend_from_slice(&[0, 2, b'a', b'b', 2, 0x00, 0xff, 0xac, 0x02]);
        assert_eq!(write.encode().as_ref(), expected.as_slice());

        let delete = Command {
            timestamp_ms: 5,
            proposal: ProposalId::default(),
            session: None,
            request: Request::Delete {
                name: "x".to_string(),
            },
        };
        assert_eq!(
            delete.encode().as_ref(),
            &[FORMAT_VERSION, 5, 0, 0, 2, 1, b'x']
        );
    }

    #[test]
    fn session_entries_are_format_2_as_documented() {
        let numbered = Command {
            timestamp_ms: 5,
            proposal: ProposalId::default(),
            session: Some(SessionSeq {
                id: SessionId(17),
                seq: 200,
            }),
            request: Request::Delete {
                name: "x".to_string(),
            },
        };
        assert_eq!(
            numbered.encode().as_ref(),
            &[
                SESSION_FORMAT_VERSION,
                0,
                5,
                0,
                0,
                17,
                0xc8,
                0x01,
                2,
                1,
                b'x'
            ]
        );
        let open = SessionOpen {
            timestamp_ms: 5,
            proposal: ProposalId {
                server: 1,
                sequence: 2,
            },
            policy: SessionPolicy {
                idle_timeout_ms: 300,
                sessions_max: 3,
            },
        };
        assert_eq!(
            open.encode().as_ref(),
            &[SESSION_FORMAT_VERSION, 1, 5, 1, 2, 0xac, 0x02, 3]
        );
        for entry in [Entry::Command(numbered), Entry::OpenSession(open)] {
            assert_eq!(Entry::decode(&entry.encode()), Ok(Some(entry.clone())));
            assert_eq!(
                Entry::decode_shared(&entry.encode()),
                Ok(Some(entry.clone()))
            );
        }
        // A variant past the last one, and trailing bytes.
        assert!(matches!(
            Entry::decode(&[SESSION_FORMAT_VERSION, 2, 5, 0, 0]),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            Entry::decode(&[SESSION_FORMAT_VERSION, 1, 5, 1, 2, 0xac, 0x02, 3, 9]),
            Err(DecodeError::TrailingBytes(1))
        );
    }

    #[test]
    fn a_session_policy_needs_time_and_room() {
        assert_eq!(SessionPolicy::default().validate(), Ok(()));
        let policy = SessionPolicy {
            idle_timeout_ms: 0,
            ..SessionPolicy::default()
        };
        assert!(policy.validate().unwrap_err().contains("idle timeout"));
        let policy = SessionPolicy {
            sessions_max: 0,
            ..SessionPolicy::default()
        };
        assert!(policy.validate().unwrap_err().contains("bound"));
    }

    #[test]
    fn empty_data_is_the_no_op_entry() {
        assert_eq!(Entry::decode(b""), Ok(None));
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(
            Entry::decode(&[7, 1, 2]),
            Err(DecodeError::UnknownFormat(7))
        );
        assert!(matches!(
            Entry::decode(&[FORMAT_VERSION]),
            Err(DecodeError::Malformed(_))
        ));
        // A variant index past the last one.
        assert!(matches!(
            Entry::decode(&[FORMAT_VERSION, 5, 0, 0, 9, 1, b'x']),
            Err(DecodeError::Malformed(_))
        ));
        // A name that is not UTF-8.
        assert!(matches!(
            Entry::decode(&[FORMAT_VERSION, 5, 0, 0, 2, 1, 0xff]),
            Err(DecodeError::Malformed(_))
        ));
        assert_eq!(
            Entry::decode(&[FORMAT_VERSION, 5, 0, 0, 2, 1, b'x', 0, 0]),
            Err(DecodeError::TrailingBytes(2))
        );
    }

    #[test]
    fn a_huge_length_prefix_is_refused_without_allocating() {
        // Write, name of length u64::MAX - 1 encoded as a 10-byte varint.
        let mut data = vec![FORMAT_VERSION, 5, 0, 0, 0];
        data.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert!(matches!(
            Entry::decode(&data),
            Err(DecodeError::Malformed(_))
        ));
    }

    fn request_strategy() -> impl Strategy<Value = Request> {
        let name = "[a-z0-9é]{1,12}";
        let contents = proptest::collection::vec(any::<u8>(), 0..100).prop_map(Bytes::from);
        prop_oneof![
            (name, contents.clone(), any::<u64>()).prop_map(|(name, contents, exptime_s)| {
                Request::Write {
                    name,
                    contents,
                    exptime_s,
                }
            }),
            (name, any::<u64>(), contents, any::<u64>()).prop_map(
                |(name, version, contents, exptime_s)| Request::Cas {
                    name,
                    version: Version(version),
                    contents,
                    exptime_s,
                }
            ),
            name.prop_map(|name| Request::Delete { name }),
            name.prop_map(|name| Request::Read { name }),
        ]
    }

    proptest! {
        #[test]
        fn commands_survive_encoding(
            timestamp_ms in any::<u64>(),
            server in any::<u64>(),
            sequence in any::<u64>(),
            request in request_strategy(),
        ) {
            let proposal = ProposalId { server, sequence };
            let command = Command { timestamp_ms, proposal, session: None, request };
            prop_assert_eq!(Entry::decode(&command.encode()), Ok(Some(Entry::Command(command.clone()))));
            let session = Some(SessionSeq { id: SessionId(timestamp_ms ^ server), seq: sequence });
            let numbered = Command { session, ..command };
            prop_assert_eq!(Entry::decode(&numbered.encode()), Ok(Some(Entry::Command(numbered))));
        }

        #[test]
        fn decoding_garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = Entry::decode(&data);
            for format in [FORMAT_VERSION, SESSION_FORMAT_VERSION] {
                let mut formatted = vec![format];
                formatted.extend_from_slice(&data);
                let _ = Entry::decode(&formatted);
            }
        }

        #[test]
        fn every_truncation_of_a_command_is_an_error(request in request_strategy(), cut in any::<usize>()) {
            let encoded = command(request).encode();
            let cut = 1 + cut % (encoded.len() - 1);
            prop_assert!(Entry::decode(&encoded[..cut]).is_err());
        }
    }
}
