//! The peer wire format, as pure functions over bytes.
//!
//! # Frames
//!
//! ```text
//! frame = length: u32 big-endian | version: u8 | body
//! ```
//!
//! `length` counts the version byte and the body, and is at most
//! [`FRAME_BYTES_MAX`]. `version` is [`WIRE_VERSION`]. The body is one
//! [`Frame`] encoded with postcard 1.x, whose format is specified and stable:
//! unsigned integers are varints (7 bits a byte, least significant group
//! first, high bit set on all but the last byte), `bool` is one byte 0 or 1,
//! byte strings and sequences are a varint length followed by their items,
//! structs are their fields in declaration order, and enums are a varint
//! variant index (in declaration order, from 0) followed by the variant's
//! fields.
//!
//! # Conversation
//!
//! Each node dials each peer and uses that connection only to send; it
//! receives on the connections its peers dial. With `[tls]` configured, the
//! frames travel inside mutual TLS (see `skiff_node::tls`); the frames are
//! the same either way. The dialer's first frame is [`Frame::Hello`], which
//! names the dialer's cluster and node id, the node it expects, and the
//! dialer's own peer address (an `Option<SocketAddr>`: postcard writes
//! 0 for none, or 1, then variant 0 with the 4 bytes of an IPv4 address
//! or variant 1 with the 16 of an IPv6 one, then the port as a varint).
//! The listener answers with its own `Hello` (without an address), or with
//! [`Frame::Refused`] carrying the fixed text [`REFUSAL`] and closes, when
//! the cluster id differs, the dialer expected another node, the dialer is
//! neither a member nor gave its address, or (with TLS) the dialer's
//! certificate does not name the node id it claims. The refusal says no more, so that a stranger learns nothing of
//! the cluster; the listener logs the reason. Until the handshake
//! completes, a frame may be at most as long as the configured
//! `peer_handshake_frame_bytes_max`. After the handshake only
//! [`Frame::Message`] frames flow, from dialer to listener.
//!
//! # Snapshot streams
//!
//! A node that sends a snapshot file to a peer dials a connection of its
//! own for it, whose first frame is [`Frame::SnapshotHello`] instead of
//! `Hello` (checked exactly like a `Hello`, under the same limits; the
//! listener answers with its `Hello` or the refusal). Then, with `>` from
//! the sender and `<` from the receiver:
//!
//! ```text
//! > SnapshotOffer { index, term, length }
//! < SnapshotResume { offset, crc32c, chunk_bytes_max }
//! > SnapshotChunk { offset, crc32c, data }      repeated
//! > SnapshotEnd { length, crc32c, term, leader }
//! < SnapshotDone
//! ```
//!
//! The offer names the snapshot and the file's length. The receiver
//! answers how many bytes of that file it already holds from an earlier
//! connection (`offset`), their crc32c, and the largest chunk it accepts.
//! The sender resumes at `offset` when its own first `offset` bytes have
//! that crc32c, and starts over at 0 otherwise. Each chunk carries its
//! offset (the receiver's length so far, or 0 to start over) and the
//! crc32c of its data; the end carries the crc32c of the whole file and
//! the `InstallSnapshotReq` (term, leader, epoch, configuration) to deliver. The receiver
//! acknowledges with `SnapshotDone` once the file is durable, and closes
//! the connection at the first frame it refuses.
//!
//! Variant indices, field order and the version byte are the contract:
//! change any of them only together with [`WIRE_VERSION`].

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use skiff_core::{
    AppendEntriesReq, AppendEntriesResp, Entry, EntryKind, InstallSnapshotReq, InstallSnapshotResp,
    LogIndex, Membership, Message, NodeId, ReadIndexReq, ReadIndexResp, SnapshotMeta, Term,
    TimeoutNow, VoteReq, VoteResp,
};

/// The version byte of every frame this code writes and accepts. Version
/// 2 added the read round to AppendEntries and the ReadIndex messages.
/// Version 3 added membership: every entry's kind ([`WireEntryKind`]), the
/// progress epoch of AppendEntries and InstallSnapshot requests and
/// answers, and the configuration an InstallSnapshotReq (and so a
/// [`SnapshotEnd`]) carries, and the dialer's address in its [`Hello`].
/// Nodes of different versions refuse each
/// other's frames, so a cluster upgrades from one version to the next all
/// at once.
pub const WIRE_VERSION: u8 = 3;

/// The largest `length` a frame may have. It fits a full AppendEntriesReq:
/// up to 1 MiB of entries plus one entry of up to
/// [`ENTRY_BYTES_MAX`](crate::ENTRY_BYTES_MAX), with room to spare.
pub const FRAME_BYTES_MAX: usize = 8 << 20;

/// The text of every [`Frame::Refused`] a node sends.
pub const REFUSAL: &str = "refused";

/// Bytes of the length prefix.
pub const LENGTH_BYTES: usize = 4;

/// Everything that travels between peers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame<'a> {
    /// The first frame each way: who is speaking, in which cluster.
    Hello(Hello),
    /// The listener's refusal of a handshake, just before it closes the
    /// connection. Always [`REFUSAL`]: the reason is logged, not told.
    Refused(String),
    /// A Raft message from the dialer.
    #[serde(borrow)]
    Message(WireMessage<'a>),
    /// The first frame of a snapshot stream's dialer, in place of
    /// [`Frame::Hello`].
    SnapshotHello(Hello),
    /// The snapshot a stream carries, from its sender.
    SnapshotOffer(SnapshotOffer),
    /// Where the sender resumes, from the receiver.
    SnapshotResume(SnapshotResume),
    /// A piece of the snapshot file, from the sender.
    #[serde(borrow)]
    SnapshotChunk(SnapshotChunk<'a>),
    /// The end of the file and the message to deliver, from the sender.
    SnapshotEnd(SnapshotEnd),
    /// The receiver's word that the file is durable.
    SnapshotDone,
}

impl Frame<'_> {
    /// The frame's kind, for errors about a frame out of place.
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello(_) => "hello",
            Frame::Refused(_) => "refused",
            Frame::Message(_) => "message",
            Frame::SnapshotHello(_) => "snapshot hello",
            Frame::SnapshotOffer(_) => "snapshot offer",
            Frame::SnapshotResume(_) => "snapshot resume",
            Frame::SnapshotChunk(_) => "snapshot chunk",
            Frame::SnapshotEnd(_) => "snapshot end",
            Frame::SnapshotDone => "snapshot done",
        }
    }
}

/// The snapshot a stream carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotOffer {
    /// The last log index the snapshot covers.
    pub index: u64,
    /// The term of that entry.
    pub term: u64,
    /// The length of the snapshot file in bytes.
    pub length: u64,
}

/// How much of the offered file the receiver already holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResume {
    /// Bytes held, from the start of the file.
    pub offset: u64,
    /// The crc32c of those bytes.
    pub crc32c: u32,
    /// The largest chunk of data the receiver accepts.
    pub chunk_bytes_max: u32,
}

/// A piece of a snapshot file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk<'a> {
    /// Where `data` starts in the file.
    pub offset: u64,
    /// The crc32c of `data`.
    pub crc32c: u32,
    /// The bytes.
    pub data: &'a [u8],
}

/// The end of a snapshot stream.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotEnd {
    /// The file's length (that of the offer).
    pub length: u64,
    /// The crc32c of the whole file.
    pub crc32c: u32,
    /// The term of the `InstallSnapshotReq` to deliver.
    pub term: u64,
    /// The leader of the `InstallSnapshotReq` to deliver.
    pub leader: u64,
    /// The progress epoch of the `InstallSnapshotReq` to deliver.
    pub epoch: u64,
    /// The configuration in force at the snapshot's index.
    pub membership: WireMembership,
}

/// A [`Membership`] on the wire: a byte string holding its own encoding
/// ([`Membership::encode`], the one membership entries carry in the log).
/// Bytes that do not decode make the whole frame undecodable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireMembership(pub Membership);

impl Serialize for WireMembership {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.0.encode())
    }
}

impl<'de> Deserialize<'de> for WireMembership {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes: &[u8] = Deserialize::deserialize(deserializer)?;
        Membership::decode(bytes)
            .map(WireMembership)
            .map_err(|_| serde::de::Error::custom("undecodable configuration"))
    }
}

/// Bytes a [`Frame::SnapshotChunk`] takes beyond its data, at most: version,
/// variant, offset, crc and the data's length, each at its longest.
pub const SNAPSHOT_CHUNK_OVERHEAD_MAX: usize = 32;

/// A handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The sender's cluster.
    pub cluster_id: u64,
    /// The sender's node id.
    pub node_id: u64,
    /// The node the sender believes it is talking to.
    pub peer_id: u64,
    /// The dialer's peer address, where it is dialed: a listener that does
    /// not know the dialer yet (a member added by an entry it has not
    /// received) answers it there. `None` in the listener's answer.
    pub address: Option<std::net::SocketAddr>,
}

/// A Raft message on the wire: [`Message`] with plain integers, entry data
/// borrowed from the frame so that decoding copies nothing.
#[allow(missing_docs)] // the fields are those of skiff_core's messages
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireMessage<'a> {
    AppendEntriesReq {
        term: u64,
        leader: u64,
        prev_index: u64,
        prev_term: u64,
        #[serde(borrow)]
        entries: Vec<WireEntry<'a>>,
        commit: u64,
        read_round: u64,
        epoch: u64,
    },
    AppendEntriesResp {
        term: u64,
        success: bool,
        index: u64,
        read_round: u64,
        epoch: u64,
    },
    VoteReq {
        term: u64,
        candidate: u64,
        last_index: u64,
        last_term: u64,
    },
    VoteResp {
        term: u64,
        granted: bool,
    },
    InstallSnapshotReq {
        term: u64,
        leader: u64,
        last_index: u64,
        last_term: u64,
        membership: WireMembership,
        epoch: u64,
    },
    InstallSnapshotResp {
        term: u64,
        index: u64,
        epoch: u64,
    },
    // Added after the others, so that their encodings stay as they were.
    PreVoteReq {
        term: u64,
        candidate: u64,
        last_index: u64,
        last_term: u64,
    },
    PreVoteResp {
        term: u64,
        granted: bool,
    },
    ReadIndexReq {
        term: u64,
        request: u64,
    },
    ReadIndexResp {
        term: u64,
        request: u64,
        success: bool,
        index: u64,
    },
    // Leadership transfer, added at the end within version 2: the
    // encodings above are unchanged, and a node that predates them meets
    // these only when an operator transfers leadership to or through it.
    TimeoutNow {
        term: u64,
    },
    /// A `VoteReq` with `transfer` set.
    TransferVoteReq {
        term: u64,
        candidate: u64,
        last_index: u64,
        last_term: u64,
    },
}

/// A vote request from its wire fields `[term, candidate, last_index,
/// last_term]`, marked as a transfer's or not.
fn vote_req([term, candidate, last_index, last_term]: [u64; 4], transfer: bool) -> VoteReq {
    VoteReq {
        term: Term(term),
        candidate: NodeId(candidate),
        last_index: LogIndex(last_index),
        last_term: Term(last_term),
        transfer,
    }
}

/// A log entry on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEntry<'a> {
    /// The entry's term.
    pub term: u64,
    /// What the entry holds.
    pub kind: WireEntryKind,
    /// The entry's data.
    pub data: &'a [u8],
}

/// [`EntryKind`] on the wire (a variant index: 0 or 1).
#[allow(missing_docs)] // the variants are those of skiff_core's EntryKind
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireEntryKind {
    Normal,
    Membership,
}

impl From<EntryKind> for WireEntryKind {
    fn from(kind: EntryKind) -> WireEntryKind {
        match kind {
            EntryKind::Normal => WireEntryKind::Normal,
            EntryKind::Membership => WireEntryKind::Membership,
        }
    }
}

impl From<WireEntryKind> for EntryKind {
    fn from(kind: WireEntryKind) -> EntryKind {
        match kind {
            WireEntryKind::Normal => EntryKind::Normal,
            WireEntryKind::Membership => EntryKind::Membership,
        }
    }
}

/// Why bytes from a peer are not a frame.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    /// The length prefix is zero or over the limit that applies (
    /// [`FRAME_BYTES_MAX`], or a smaller one before the handshake).
    #[error("frame length {length} outside 1..={max}")]
    BadLength {
        /// The length announced.
        length: usize,
        /// The largest length allowed where it was read.
        max: usize,
    },
    /// The version byte is not [`WIRE_VERSION`].
    #[error("wire version {0}, expected {WIRE_VERSION}")]
    BadVersion(u8),
    /// The body does not decode as a frame.
    #[error("undecodable frame body: {0}")]
    BadBody(String),
    /// A frame to send would exceed [`FRAME_BYTES_MAX`].
    #[error("frame of {0} bytes exceeds the limit of {FRAME_BYTES_MAX}")]
    TooLarge(usize),
}

impl<'a> WireMessage<'a> {
    /// The wire form of `message`, borrowing its entry data.
    pub fn from_message(message: &'a Message) -> WireMessage<'a> {
        match message {
            Message::AppendEntriesReq(m) => WireMessage::AppendEntriesReq {
                term: m.term.0,
                leader: m.leader.0,
                prev_index: m.prev_index.0,
                prev_term: m.prev_term.0,
                entries: m
                    .entries
                    .iter()
                    .map(|e| WireEntry {
                        term: e.term.0,
                        kind: e.kind.into(),
                        data: &e.data,
                    })
                    .collect(),
                commit: m.commit.0,
                read_round: m.read_round,
                epoch: m.epoch,
            },
            Message::AppendEntriesResp(m) => WireMessage::AppendEntriesResp {
                term: m.term.0,
                success: m.success,
                index: m.index.0,
                read_round: m.read_round,
                epoch: m.epoch,
            },
            Message::VoteReq(m) if m.transfer => WireMessage::TransferVoteReq {
                term: m.term.0,
                candidate: m.candidate.0,
                last_index: m.last_index.0,
                last_term: m.last_term.0,
            },
            Message::VoteReq(m) => WireMessage::VoteReq {
                term: m.term.0,
                candidate: m.candidate.0,
                last_index: m.last_index.0,
                last_term: m.last_term.0,
            },
            Message::VoteResp(m) => WireMessage::VoteResp {
                term: m.term.0,
                granted: m.granted,
            },
            Message::InstallSnapshotReq(m) => WireMessage::InstallSnapshotReq {
                term: m.term.0,
                leader: m.leader.0,
                last_index: m.snapshot.index.0,
                last_term: m.snapshot.term.0,
                membership: WireMembership(m.membership.clone()),
                epoch: m.epoch,
            },
            Message::InstallSnapshotResp(m) => WireMessage::InstallSnapshotResp {
                term: m.term.0,
                index: m.index.0,
                epoch: m.epoch,
            },
            Message::PreVoteReq(m) => WireMessage::PreVoteReq {
                term: m.term.0,
                candidate: m.candidate.0,
                last_index: m.last_index.0,
                last_term: m.last_term.0,
            },
            Message::PreVoteResp(m) => WireMessage::PreVoteResp {
                term: m.term.0,
                granted: m.granted,
            },
            Message::ReadIndexReq(m) => WireMessage::ReadIndexReq {
                term: m.term.0,
                request: m.request,
            },
            Message::ReadIndexResp(m) => WireMessage::ReadIndexResp {
                term: m.term.0,
                request: m.request,
                success: m.success,
                index: m.index.0,
            },
            Message::TimeoutNow(m) => WireMessage::TimeoutNow { term: m.term.0 },
        }
    }

    /// The message, its entry data sliced out of `body`, the buffer this
    /// wire message was decoded from.
    pub fn into_message(self, body: &Bytes) -> Message {
        match self {
            WireMessage::AppendEntriesReq {
                term,
                leader,
                prev_index,
                prev_term,
                entries,
                commit,
                read_round,
                epoch,
            } => Message::AppendEntriesReq(AppendEntriesReq {
                term: Term(term),
                leader: NodeId(leader),
                prev_index: LogIndex(prev_index),
                prev_term: Term(prev_term),
                entries: entries
                    .into_iter()
                    .map(|e| Entry {
                        term: Term(e.term),
                        kind: e.kind.into(),
                        data: body.slice_ref(e.data),
                    })
                    .collect(),
                commit: LogIndex(commit),
                read_round,
                epoch,
            }),
            WireMessage::AppendEntriesResp {
                term,
                success,
                index,
                read_round,
                epoch,
            } => Message::AppendEntriesResp(AppendEntriesResp {
                term: Term(term),
                success,
                index: LogIndex(index),
                read_round,
                epoch,
            }),
            WireMessage::VoteReq {
                term,
                candidate,
                last_index,
                last_term,
            } => Message::VoteReq(vote_req([term, candidate, last_index, last_term], false)),
            WireMessage::TransferVoteReq {
                term,
                candidate,
                last_index,
                last_term,
            } => Message::VoteReq(vote_req([term, candidate, last_index, last_term], true)),
            WireMessage::TimeoutNow { term } => {
                Message::TimeoutNow(TimeoutNow { term: Term(term) })
            }
            WireMessage::VoteResp { term, granted } => Message::VoteResp(VoteResp {
                term: Term(term),
                granted,
            }),
            WireMessage::InstallSnapshotReq {
                term,
                leader,
                last_index,
                last_term,
                membership,
                epoch,
            } => Message::InstallSnapshotReq(InstallSnapshotReq {
                term: Term(term),
                leader: NodeId(leader),
                snapshot: SnapshotMeta {
                    index: LogIndex(last_index),
                    term: Term(last_term),
                },
                membership: membership.0,
                epoch,
            }),
            WireMessage::InstallSnapshotResp { term, index, epoch } => {
                Message::InstallSnapshotResp(InstallSnapshotResp {
                    term: Term(term),
                    index: LogIndex(index),
                    epoch,
                })
            }
            WireMessage::PreVoteReq {
                term,
                candidate,
                last_index,
                last_term,
            } => Message::PreVoteReq(vote_req([term, candidate, last_index, last_term], false)),
            WireMessage::PreVoteResp { term, granted } => Message::PreVoteResp(VoteResp {
                term: Term(term),
                granted,
            }),
            WireMessage::ReadIndexReq { term, request } => Message::ReadIndexReq(ReadIndexReq {
                term: Term(term),
                request,
            }),
            WireMessage::ReadIndexResp {
                term,
                request,
                success,
                index,
            } => Message::ReadIndexResp(ReadIndexResp {
                term: Term(term),
                request,
                success,
                index: LogIndex(index),
            }),
        }
    }
}

/// Appends `frame`, length prefix and version byte included, to `out`.
/// On error `out` is left as it was.
pub fn encode_frame(frame: &Frame<'_>, out: &mut Vec<u8>) -> Result<(), WireError> {
    let start = out.len();
    out.extend_from_slice(&[0; LENGTH_BYTES]);
    out.push(WIRE_VERSION);
    let encoded = postcard::to_extend(frame, std::mem::take(out));
    *out = encoded.map_err(|e| WireError::BadBody(e.to_string()))?;
    let length = out.len() - start - LENGTH_BYTES;
    if length > FRAME_BYTES_MAX {
        out.truncate(start);
        return Err(WireError::TooLarge(length));
    }
    out[start..start + LENGTH_BYTES].copy_from_slice(&(length as u32).to_be_bytes());
    Ok(())
}

/// Checks a length prefix before its frame is read: at least 1 and at most
/// `max` (itself at most [`FRAME_BYTES_MAX`]), so that nothing is
/// allocated for a frame that will be refused.
pub fn check_length(prefix: [u8; LENGTH_BYTES], max: usize) -> Result<usize, WireError> {
    let length = u32::from_be_bytes(prefix) as usize;
    let max = max.min(FRAME_BYTES_MAX);
    if length == 0 || length > max {
        return Err(WireError::BadLength { length, max });
    }
    Ok(length)
}

/// Decodes a frame from what follows its length prefix (version and body).
pub fn decode_frame(frame: &Bytes) -> Result<Frame<'_>, WireError> {
    let (&version, body) = frame.split_first().ok_or(WireError::BadLength {
        length: 0,
        max: FRAME_BYTES_MAX,
    })?;
    if version != WIRE_VERSION {
        return Err(WireError::BadVersion(version));
    }
    postcard::from_bytes(body).map_err(|e| WireError::BadBody(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append_req() -> Message {
        Message::AppendEntriesReq(AppendEntriesReq {
            term: Term(3),
            leader: NodeId(1),
            prev_index: LogIndex(10),
            prev_term: Term(2),
            entries: vec![
                Entry::new(Term(3), ""),
                Entry::new(Term(3), "payload"),
                Entry::membership(Term(3), &membership()),
            ]
            .into(),
            commit: LogIndex(9),
            read_round: 5,
            epoch: 12,
        })
    }

    /// A configuration with a learner and a context.
    fn membership() -> Membership {
        let ids = |ids: &[u64]| ids.iter().copied().map(NodeId).collect::<Vec<_>>();
        Membership::new(ids(&[1, 2, 3]), ids(&[4]))
            .unwrap()
            .with_context(Bytes::from_static(b"book"))
    }

    fn round_trip(frame: &Frame<'_>) -> Bytes {
        let mut out = Vec::new();
        encode_frame(frame, &mut out).unwrap();
        let prefix: [u8; 4] = out[..4].try_into().unwrap();
        assert_eq!(
            check_length(prefix, FRAME_BYTES_MAX).unwrap(),
            out.len() - 4
        );
        Bytes::from(out).slice(4..)
    }

    #[test]
    fn every_message_round_trips() {
        let messages = [
            append_req(),
            Message::AppendEntriesResp(AppendEntriesResp {
                term: Term(3),
                success: false,
                index: LogIndex(7),
                read_round: 300,
                epoch: 1 << 40,
            }),
            Message::InstallSnapshotReq(InstallSnapshotReq {
                term: Term(4),
                leader: NodeId(2),
                snapshot: SnapshotMeta {
                    index: LogIndex(30),
                    term: Term(3),
                },
                membership: membership(),
                epoch: 8,
            }),
            Message::InstallSnapshotResp(InstallSnapshotResp {
                term: Term(4),
                index: LogIndex(30),
                epoch: 8,
            }),
            Message::ReadIndexReq(ReadIndexReq {
                term: Term(4),
                request: 77,
            }),
            Message::ReadIndexResp(ReadIndexResp {
                term: Term(4),
                request: 77,
                success: true,
                index: LogIndex(12),
            }),
            Message::VoteReq(VoteReq {
                term: Term(4),
                candidate: NodeId(2),
                last_index: LogIndex(9),
                last_term: Term(3),
                transfer: false,
            }),
            Message::VoteReq(VoteReq {
                term: Term(5),
                candidate: NodeId(3),
                last_index: LogIndex(9),
                last_term: Term(3),
                transfer: true,
            }),
            Message::TimeoutNow(TimeoutNow { term: Term(4) }),
            Message::VoteResp(VoteResp {
                term: Term(4),
                granted: true,
            }),
        ];
        for message in messages {
            let body = round_trip(&Frame::Message(WireMessage::from_message(&message)));
            let Frame::Message(wire) = decode_frame(&body).unwrap() else {
                panic!("not a message")
            };
            assert_eq!(wire.into_message(&body), message);
        }
        for address in [None, Some("10.0.0.2:7000"), Some("[::1]:7000")] {
            let hello = Frame::Hello(Hello {
                cluster_id: 1,
                node_id: 2,
                peer_id: 3,
                address: address.map(|a| a.parse().unwrap()),
            });
            assert_eq!(decode_frame(&round_trip(&hello)).unwrap(), hello);
        }
    }

    #[test]
    fn snapshot_frames_round_trip_and_a_full_chunk_fits_its_overhead() {
        let data = vec![7; 300];
        let frames = [
            Frame::SnapshotHello(Hello {
                cluster_id: 1,
                node_id: 2,
                peer_id: 3,
                address: None,
            }),
            Frame::SnapshotOffer(SnapshotOffer {
                index: 40,
                term: 2,
                length: u64::MAX,
            }),
            Frame::SnapshotResume(SnapshotResume {
                offset: 1 << 40,
                crc32c: u32::MAX,
                chunk_bytes_max: 1 << 20,
            }),
            Frame::SnapshotChunk(SnapshotChunk {
                offset: u64::MAX,
                crc32c: u32::MAX,
                data: &data,
            }),
            Frame::SnapshotEnd(SnapshotEnd {
                length: 9,
                crc32c: 5,
                term: 4,
                leader: 1,
                epoch: 3,
                membership: WireMembership(membership()),
            }),
            Frame::SnapshotDone,
        ];
        for frame in frames {
            assert_eq!(decode_frame(&round_trip(&frame)).unwrap(), frame);
        }
        // The largest fields cost at most the overhead beyond the data
        // (the length prefix is not counted).
        let mut out = Vec::new();
        let chunk = SnapshotChunk {
            offset: u64::MAX,
            crc32c: u32::MAX,
            data: &vec![0; FRAME_BYTES_MAX / 2],
        };
        encode_frame(&Frame::SnapshotChunk(chunk.clone()), &mut out).unwrap();
        assert!(out.len() - LENGTH_BYTES <= chunk.data.len() + SNAPSHOT_CHUNK_OVERHEAD_MAX);
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        // Variant 0 (Hello), then three varints (300 takes two bytes),
        // then the address: 1 (some), variant 0 (IPv4), 4 bytes, the port
        // 7000 as a varint (0xd8 0x36).
        let hello = Frame::Hello(Hello {
            cluster_id: 300,
            node_id: 2,
            peer_id: 3,
            address: Some("10.0.0.2:7000".parse().unwrap()),
        });
        let mut out = Vec::new();
        encode_frame(&hello, &mut out).unwrap();
        assert_eq!(
            out,
            [
                0,
                0,
                0,
                14,
                WIRE_VERSION,
                0,
                0xac,
                0x02,
                2,
                3,
                1,
                0,
                10,
                0,
                0,
                2,
                0xd8,
                0x36
            ]
        );
        // The listener's answer has none: 0.
        let answer = Frame::Hello(Hello {
            address: None,
            ..match hello {
                Frame::Hello(hello) => hello,
                _ => unreachable!(),
            }
        });
        out.clear();
        encode_frame(&answer, &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 7, WIRE_VERSION, 0, 0xac, 0x02, 2, 3, 0]);
    }

    #[test]
    fn bad_lengths_versions_and_bodies_are_errors() {
        let bad = |length, max| Err(WireError::BadLength { length, max });
        assert_eq!(
            check_length([0, 0, 0, 0], FRAME_BYTES_MAX),
            bad(0, FRAME_BYTES_MAX)
        );
        assert_eq!(
            check_length([0xff; 4], usize::MAX),
            bad(u32::MAX as usize, FRAME_BYTES_MAX)
        );
        assert_eq!(check_length([0, 0, 4, 1], 1024), bad(1025, 1024));
        assert_eq!(check_length([0, 0, 4, 0], 1024), Ok(1024));
        let body = round_trip(&Frame::Refused("no".into()));
        let mut bad_version = body.to_vec();
        bad_version[0] = 9;
        let bad_version = Bytes::from(bad_version);
        assert_eq!(decode_frame(&bad_version), Err(WireError::BadVersion(9)));
        for garbage in [
            &[WIRE_VERSION, 7][..],
            &[WIRE_VERSION, 2, 0, 0xff][..],
            &[WIRE_VERSION][..],
        ] {
            let garbage = Bytes::copy_from_slice(garbage);
            let result = decode_frame(&garbage);
            assert!(
                matches!(result, Err(WireError::BadBody(_))),
                "{garbage:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn entry_kinds_survive_and_an_undecodable_configuration_is_a_bad_body() {
        let message = append_req();
        let body = round_trip(&Frame::Message(WireMessage::from_message(&message)));
        let Frame::Message(wire) = decode_frame(&body).unwrap() else {
            panic!("not a message")
        };
        let Message::AppendEntriesReq(req) = wire.into_message(&body) else {
            panic!("not a req")
        };
        let kinds: Vec<EntryKind> = req.entries.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EntryKind::Normal, EntryKind::Normal, EntryKind::Membership]
        );
        assert_eq!(
            Membership::decode(&req.entries[2].data),
            Ok(membership()),
            "the configuration entry's data is the encoded configuration"
        );
        // A snapshot end whose configuration bytes are garbage: variant 7
        // (SnapshotEnd), length 9, crc 5, term 4, leader 1, epoch 3, then a
        // byte string of 2 bytes that is no configuration.
        let garbage = Bytes::from_static(&[WIRE_VERSION, 7, 9, 5, 4, 1, 3, 2, 0xff, 0xff]);
        assert!(
            matches!(decode_frame(&garbage), Err(WireError::BadBody(_))),
            "{:?}",
            decode_frame(&garbage)
        );
    }

    #[test]
    fn entry_data_is_not_copied_when_decoding() {
        let message = append_req();
        let body = round_trip(&Frame::Message(WireMessage::from_message(&message)));
        let Frame::Message(wire) = decode_frame(&body).unwrap() else {
            panic!("not a message")
        };
        let Message::AppendEntriesReq(req) = wire.into_message(&body) else {
            panic!("not a req")
        };
        let data = &req.entries[1].data;
        let inside = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
        assert!(inside.contains(&(data.as_ptr() as usize)));
    }
}
