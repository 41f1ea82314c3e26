//! The line protocol, as pure functions over byte buffers.
//!
//! ```text
//! write <name> <numbytes> [<exptime>]\r\n<bytes>\r\n            -> OK <version>
//! read <name>\r\n                                               -> CONTENTS <version> <numbytes> <exptime>\r\n<bytes>\r\n
//! cas <name> <version> <numbytes> [<exptime>]\r\n<bytes>\r\n    -> OK <version> | ERR_VERSION <current> | ERR_FILE_NOT_FOUND
//! delete <name>\r\n                                             -> OK | ERR_FILE_NOT_FOUND
//! any                                                           -> ERR_CMD_ERR | ERR_INTERNAL | ERR_REDIRECT <host:port> | ERR_REDIRECT _
//! ```
//!
//! Three extensions, which the classic protocol lacks. Two are answered by
//! the server that receives them, leader or not, for its own node:
//!
//! ```text
//! status\r\n     -> STATUS id=<n> role=<role> term=<t> leader=<n|_> commit=<c> last=<i> repairing=<yes|no> snapshot=<s> log=<l>
//! snapshot\r\n   -> SNAPSHOT index=<i> term=<t> | ERR_SNAPSHOT <reason>
//! ```
//!
//! The third gives a client exactly-once changes across resends (see
//! [`session`]): it opens a session, then numbers its requests.
//!
//! ```text
//! session open\r\n              -> SESSION <id>
//! session <id> <seq> <request>  -> the request's answer | ERR_SESSION_EXPIRED | ERR_SESSION_STALE <last>
//! ```
//!
//! `status` reports the server's view of the cluster and how much log it
//! keeps (see [`status`], which also says how that line grows without
//! breaking parsers). `snapshot`, for administrators, has the server
//! snapshot its store now and release the log it covers (see
//! [`snapshot`]). Two more are for administrators and answered by the
//! leader: `transfer <id>` hands its office to another node (see
//! [`transfer`]), and `member list | add | promote | remove` shows and
//! changes the cluster's membership (see [`member`]; `member list` is
//! answered by any server). Servers parse with [`parse_client_message`],
//! which knows them all; [`parse_request`] knows none.
//!
//! Nothing here touches a socket. [`parse_request`] looks at the bytes a
//! connection has buffered so far and says one of three things: not enough
//! bytes yet ([`Parsed::Incomplete`]), one request and how many bytes it used
//! ([`Parsed::Complete`]), or a [`ProtocolError`], after which the server
//! answers `ERR_CMD_ERR` and closes the connection. The caller drops the
//! consumed bytes and calls again, so several requests in one read and one
//! request spread over many reads are the same case.
//!
//! Memory is bounded: the parser never answers `Incomplete` for a buffer of
//! [`Limits::request_bytes_max`] bytes or more. A header line is refused as
//! soon as it reaches [`LINE_BYTES_MAX`] bytes without its `\r\n`, and a
//! count is checked against [`Limits::file_bytes_max`] before any content
//! arrives, so a connection never needs to buffer more than one maximal
//! request.
//!
//! Contents are opaque bytes (they may hold `\r\n`); only their count and the
//! `\r\n` right after them are checked. Names are UTF-8 without whitespace or
//! control characters, because the header is split on spaces.

use bytes::Bytes;
use std::fmt;

pub mod member;
pub mod session;
pub mod snapshot;
pub mod status;
pub mod transfer;

pub use member::{
    parse_member_answer, parse_member_list, LeaderHint, Member, MemberAnswer, MemberList,
    MemberRequest, MemberRole,
};
pub use session::{SessionId, SessionMessage, SessionSeq};
pub use snapshot::{parse_snapshot_answer, SnapshotAnswer};
pub use status::{
    parse_client_message, parse_status_report, ClientMessage, LeaderChangeReport, LogExtent,
    StatusReport,
};
pub use transfer::{parse_transfer_answer, TransferAnswer};

/// A header line (without its `\r\n`) of this many bytes or more is refused.
pub const LINE_BYTES_MAX: usize = 500;

/// The line terminator of every header and every content block.
const CRLF: &[u8] = b"\r\n";

/// A file's version: the log index of the change that produced it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u64);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Configurable bounds on what one request may carry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest content, in bytes, a write or cas may carry.
    pub file_bytes_max: usize,
    /// The longest file name, in bytes.
    pub name_bytes_max: usize,
}

impl Default for Limits {
    /// A million bytes per file and 250 bytes per name: with the rest of a
    /// command this stays under the node's entry limit of one mebibyte.
    fn default() -> Self {
        Limits {
            file_bytes_max: 1_000_000,
            name_bytes_max: 250,
        }
    }
}

impl Limits {
    /// The size of the largest complete message under these limits: a header
    /// line just under [`LINE_BYTES_MAX`] with its `\r\n`, then the largest
    /// content with its `\r\n`. No buffer at or above this size is incomplete.
    pub fn request_bytes_max(&self) -> usize {
        LINE_BYTES_MAX + 1 + self.file_bytes_max.saturating_add(CRLF.len())
    }
}

/// A client's request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Create or replace a file.
    Write {
        /// The file name.
        name: String,
        /// The new contents.
        contents: Bytes,
        /// Seconds until the file expires; 0 means never.
        exptime_s: u64,
    },
    /// Read a file's version, contents and remaining lifetime.
    Read {
        /// The file name.
        name: String,
    },
    /// Replace a file only if its version is still `version`.
    Cas {
        /// The file name.
        name: String,
        /// The version the client last saw.
        version: Version,
        /// The new contents.
        contents: Bytes,
        /// Seconds until the file expires; 0 means never.
        exptime_s: u64,
    },
    /// Remove a file.
    Delete {
        /// The file name.
        name: String,
    },
}

impl Request {
    /// The name of the file this request is about.
    pub fn name(&self) -> &str {
        match self {
            Request::Write { name, .. }
            | Request::Read { name }
            | Request::Cas { name, .. }
            | Request::Delete { name } => name,
        }
    }

    /// Appends the wire form of this request to `out`. The exptime is left out
    /// when it is 0, which the parser reads back as 0.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let header = match self {
            Request::Write {
                name,
                contents,
                exptime_s,
            } => format!(
                "write {name} {}{}",
                contents.len(),
                exptime_suffix(*exptime_s)
            ),
            Request::Read { name } => format!("read {name}"),
            Request::Cas {
                name,
                version,
                contents,
                exptime_s,
            } => format!(
                "cas {name} {version} {}{}",
                contents.len(),
                exptime_suffix(*exptime_s)
            ),
            Request::Delete { name } => format!("delete {name}"),
        };
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(CRLF);
        if let Request::Write { contents, .. } | Request::Cas { contents, .. } = self {
            out.extend_from_slice(contents);
            out.extend_from_slice(CRLF);
        }
    }
}

fn exptime_suffix(exptime_s: u64) -> String {
    if exptime_s == 0 {
        String::new()
    } else {
        format!(" {exptime_s}")
    }
}

/// A server's answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// `OK <version>`: a write or cas took effect.
    Written {
        /// The file's new version.
        version: Version,
    },
    /// `OK`: a delete took effect.
    Deleted,
    /// `CONTENTS <version> <numbytes> <exptime>\r\n<bytes>`: a read.
    Contents {
        /// The file's version.
        version: Version,
        /// The file's contents.
        contents: Bytes,
        /// Seconds left before the file expires (rounded up); 0 means never.
        exptime_s: u64,
    },
    /// `ERR_FILE_NOT_FOUND`.
    FileNotFound,
    /// `ERR_VERSION <current>`: a cas named a version that is not current.
    VersionMismatch {
        /// The file's current version.
        current: Version,
    },
    /// `ERR_CMD_ERR`: a malformed request; the server closes the connection.
    CommandError,
    /// `ERR_INTERNAL`: the server could not tell whether the change happened.
    Internal,
    /// `ERR_REDIRECT <host:port>` or `ERR_REDIRECT _`: this server is not the
    /// leader; `leader` is the leader's client address when one is known.
    Redirect {
        /// The leader's client address, `host:port`.
        leader: Option<String>,
    },
    /// `SESSION <id>`: a session was opened (see [`session`]).
    SessionOpened {
        /// The new session's id.
        id: SessionId,
    },
    /// `ERR_SESSION_EXPIRED`: the session is not known (expired, evicted,
    /// or never opened); the request was not applied.
    SessionExpired,
    /// `ERR_SESSION_STALE <last>`: the request's number is below the last
    /// one the session applied; it was not applied.
    SessionStale {
        /// The last number the session applied.
        last: u64,
    },
}

impl Response {
    /// Appends the wire form of this response to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let header = match self {
            Response::Written { version } => format!("OK {version}"),
            Response::Deleted => "OK".to_string(),
            Response::Contents {
                version,
                contents,
                exptime_s,
            } => format!("CONTENTS {version} {} {exptime_s}", contents.len()),
            Response::FileNotFound => "ERR_FILE_NOT_FOUND".to_string(),
            Response::VersionMismatch { current } => format!("ERR_VERSION {current}"),
            Response::CommandError => "ERR_CMD_ERR".to_string(),
            Response::Internal => "ERR_INTERNAL".to_string(),
            Response::Redirect { leader: Some(to) } => format!("ERR_REDIRECT {to}"),
            Response::Redirect { leader: None } => "ERR_REDIRECT _".to_string(),
            Response::SessionOpened { id } => format!("SESSION {id}"),
            Response::SessionExpired => "ERR_SESSION_EXPIRED".to_string(),
            Response::SessionStale { last } => format!("ERR_SESSION_STALE {last}"),
        };
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(CRLF);
        if let Response::Contents { contents, .. } = self {
            out.extend_from_slice(contents);
            out.extend_from_slice(CRLF);
        }
    }
}

/// What a parser made of the bytes it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Parsed<T> {
    /// The bytes so far are a valid prefix; read more and call again.
    Incomplete,
    /// One message, taken from the first `consumed` bytes of the buffer.
    Complete {
        /// The message.
        value: T,
        /// How many bytes of the buffer it used.
        consumed: usize,
    },
}

/// Why a buffer is not a valid message. The server answers `ERR_CMD_ERR` to
/// every one of these and closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The header line reached [`LINE_BYTES_MAX`] bytes without ending.
    #[error("header line of {LINE_BYTES_MAX} bytes or more")]
    LineTooLong,
    /// The header line ended in a bare `\n`.
    #[error("header line ends in \\n without \\r")]
    BareLineFeed,
    /// The first word is not a known command or response.
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// The command has too few or too many arguments.
    #[error("{command} takes {expected} arguments, got {got}")]
    ArgumentCount {
        /// The command.
        command: &'static str,
        /// What it takes, e.g. "2 or 3".
        expected: &'static str,
        /// How many arrived.
        got: usize,
    },
    /// A count, version or exptime is not a decimal number that fits in 64 bits.
    #[error("{field} is not a decimal number")]
    BadNumber {
        /// Which field.
        field: &'static str,
    },
    /// A name is not UTF-8 or holds whitespace or control characters.
    #[error("a file name must be UTF-8 without spaces or control characters")]
    BadName,
    /// A name is longer than [`Limits::name_bytes_max`].
    #[error("file name of {bytes} bytes; the limit is {max}")]
    NameTooLong {
        /// The name's length.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// A count is larger than [`Limits::file_bytes_max`].
    #[error("contents of {bytes} bytes; the limit is {max}")]
    FileTooLarge {
        /// The announced count.
        bytes: u64,
        /// The limit.
        max: usize,
    },
    /// The contents are not followed by `\r\n`.
    #[error("contents are not followed by \\r\\n")]
    MissingContentTerminator,
    /// A `STATUS` line lacks a field, or has one out of order or malformed.
    #[error("STATUS field {field} is missing, out of order or malformed")]
    BadStatus {
        /// The field, e.g. `role`.
        field: &'static str,
    },
    /// A `SNAPSHOT` line lacks a field, or has one out of order.
    #[error("SNAPSHOT field {field} is missing or out of order")]
    BadSnapshotAnswer {
        /// The field, e.g. `index`.
        field: &'static str,
    },
    /// An address of a `member` request or answer is not `ip:port`.
    #[error("{field} is not ip:port")]
    BadAddress {
        /// Which address, e.g. `peer address`.
        field: &'static str,
    },
    /// An answer to `member list` has a malformed or missing line.
    #[error("member list: {field} is missing or malformed")]
    BadMemberList {
        /// What is wrong, e.g. `role`.
        field: &'static str,
    },
}

/// Parses the first request in `buf`.
pub fn parse_request(buf: &[u8], limits: &Limits) -> Result<Parsed<Request>, ProtocolError> {
    let Some((line, line_bytes)) = split_line(buf)? else {
        return Ok(Parsed::Incomplete);
    };
    let words = words(line);
    let (command, args) = first_and_rest(&words);
    match command {
        b"read" => {
            let [name] = exact_args("read", "1", args)?;
            let name = parse_name(name, limits)?;
            complete(Request::Read { name }, line_bytes)
        }
        b"delete" => {
            let [name] = exact_args("delete", "1", args)?;
            let name = parse_name(name, limits)?;
            complete(Request::Delete { name }, line_bytes)
        }
        b"write" => parse_write(buf, line_bytes, args, limits),
        b"cas" => parse_cas(buf, line_bytes, args, limits),
        other => Err(ProtocolError::UnknownCommand(lossy(other))),
    }
}

fn parse_write(
    buf: &[u8],
    line_bytes: usize,
    args: &[&[u8]],
    limits: &Limits,
) -> Result<Parsed<Request>, ProtocolError> {
    if name_holds_a_space(args, 2) {
        return Err(ProtocolError::BadName);
    }
    let (name, numbytes, exptime) = match args {
        [name, numbytes] => (name, numbytes, None),
        [name, numbytes, exptime] => (name, numbytes, Some(exptime)),
        _ => return Err(arg_count("write", "2 or 3", args)),
    };
    let name = parse_name(name, limits)?;
    let numbytes = parse_count(numbytes, limits)?;
    let exptime_s = exptime.map_or(Ok(0), |e| parse_number(e, "exptime"))?;
    let Some((contents, consumed)) = split_contents(buf, line_bytes, numbytes)? else {
        return Ok(Parsed::Incomplete);
    };
    let request = Request::Write {
        name,
        contents,
        exptime_s,
    };
    complete(request, consumed)
}

fn parse_cas(
    buf: &[u8],
    line_bytes: usize,
    args: &[&[u8]],
    limits: &Limits,
) -> Result<Parsed<Request>, ProtocolError> {
    if name_holds_a_space(args, 3) {
        return Err(ProtocolError::BadName);
    }
    let (name, version, numbytes, exptime) = match args {
        [name, version, numbytes] => (name, version, numbytes, None),
        [name, version, numbytes, exptime] => (name, version, numbytes, Some(exptime)),
        _ => return Err(arg_count("cas", "3 or 4", args)),
    };
    let name = parse_name(name, limits)?;
    let version = Version(parse_number(version, "version")?);
    let numbytes = parse_count(numbytes, limits)?;
    let exptime_s = exptime.map_or(Ok(0), |e| parse_number(e, "exptime"))?;
    let Some((contents, consumed)) = split_contents(buf, line_bytes, numbytes)? else {
        return Ok(Parsed::Incomplete);
    };
    let request = Request::Cas {
        name,
        version,
        contents,
        exptime_s,
    };
    complete(request, consumed)
}

/// Parses the first response in `buf`; contents larger than
/// `limits.file_bytes_max` are refused, as in [`parse_request`].
pub fn parse_response(buf: &[u8], limits: &Limits) -> Result<Parsed<Response>, ProtocolError> {
    let Some((line, line_bytes)) = split_line(buf)? else {
        return Ok(Parsed::Incomplete);
    };
    let words = words(line);
    let (kind, args) = first_and_rest(&words);
    let response = match (kind, args) {
        (b"OK", []) => Response::Deleted,
        (b"OK", [version]) => Response::Written {
            version: Version(parse_number(version, "version")?),
        },
        (b"ERR_FILE_NOT_FOUND", []) => Response::FileNotFound,
        (b"ERR_VERSION", [current]) => Response::VersionMismatch {
            current: Version(parse_number(current, "version")?),
        },
        (b"ERR_CMD_ERR", []) => Response::CommandError,
        (b"ERR_INTERNAL", []) => Response::Internal,
        (b"ERR_REDIRECT", [b"_"]) => Response::Redirect { leader: None },
        (b"SESSION", [id]) => Response::SessionOpened {
            id: SessionId(parse_number(id, "session id")?),
        },
        (b"ERR_SESSION_EXPIRED", []) => Response::SessionExpired,
        (b"ERR_SESSION_STALE", [last]) => Response::SessionStale {
            last: parse_number(last, "session seq")?,
        },
        (b"ERR_REDIRECT", [address]) => Response::Redirect {
            leader: Some(
                std::str::from_utf8(address)
                    .map_err(|_| ProtocolError::BadName)?
                    .to_string(),
            ),
        },
        (b"CONTENTS", [version, numbytes, exptime]) => {
            let version = Version(parse_number(version, "version")?);
            let numbytes = parse_count(numbytes, limits)?;
            let exptime_s = parse_number(exptime, "exptime")?;
            let Some((contents, consumed)) = split_contents(buf, line_bytes, numbytes)? else {
                return Ok(Parsed::Incomplete);
            };
            let response = Response::Contents {
                version,
                contents,
                exptime_s,
            };
            return complete(response, consumed);
        }
        _ => return Err(ProtocolError::UnknownCommand(lossy(line))),
    };
    complete(response, line_bytes)
}

fn complete<T>(value: T, consumed: usize) -> Result<Parsed<T>, ProtocolError> {
    Ok(Parsed::Complete { value, consumed })
}

/// The space-separated words of a line; runs of spaces count as one.
fn words(line: &[u8]) -> Vec<&[u8]> {
    line.split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect()
}

/// The first word (empty when there is none) and the words after it.
fn first_and_rest<'a, 'b>(words: &'b [&'a [u8]]) -> (&'a [u8], &'b [&'a [u8]]) {
    words
        .split_first()
        .map_or((&b""[..], &[][..]), |(first, rest)| (*first, rest))
}

/// Finds the header line at the start of `buf`: its bytes without `\r\n` and
/// its length with them, or `None` while it may still end in time.
fn split_line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    // A line of LINE_BYTES_MAX - 1 bytes has its '\n' at index LINE_BYTES_MAX,
    // so looking further would only find lines that are refused anyway.
    let window = &buf[..buf.len().min(LINE_BYTES_MAX + 1)];
    match window.iter().position(|&b| b == b'\n') {
        Some(newline) => {
            let Some(line) = window[..newline].strip_suffix(b"\r") else {
                return Err(if newline >= LINE_BYTES_MAX {
                    ProtocolError::LineTooLong
                } else {
                    ProtocolError::BareLineFeed
                });
            };
            if line.len() >= LINE_BYTES_MAX {
                return Err(ProtocolError::LineTooLong);
            }
            Ok(Some((line, newline + 1)))
        }
        None => {
            // A trailing '\r' may be the start of the terminator.
            let line_bytes_min = buf.len() - usize::from(buf.last() == Some(&b'\r'));
            if line_bytes_min >= LINE_BYTES_MAX {
                return Err(ProtocolError::LineTooLong);
            }
            Ok(None)
        }
    }
}

/// Takes `numbytes` of contents after the header and checks the `\r\n` that
/// must follow; answers `None` while bytes are missing. A wrong byte where the
/// terminator belongs is refused as soon as it arrives.
fn split_contents(
    buf: &[u8],
    start: usize,
    numbytes: usize,
) -> Result<Option<(Bytes, usize)>, ProtocolError> {
    let end = start.saturating_add(numbytes);
    let arrived = buf.get(end..).unwrap_or_default();
    let checked = arrived.len().min(CRLF.len());
    if arrived[..checked] != CRLF[..checked] {
        return Err(ProtocolError::MissingContentTerminator);
    }
    if checked < CRLF.len() {
        return Ok(None);
    }
    let contents = Bytes::copy_from_slice(&buf[start..end]);
    Ok(Some((contents, end + CRLF.len())))
}

fn exact_args<'a, const N: usize>(
    command: &'static str,
    expected: &'static str,
    args: &[&'a [u8]],
) -> Result<[&'a [u8]; N], ProtocolError> {
    <[&[u8]; N]>::try_from(args).map_err(|_| arg_count(command, expected, args))
}

fn arg_count(command: &'static str, expected: &'static str, args: &[&[u8]]) -> ProtocolError {
    ProtocolError::ArgumentCount {
        command,
        expected,
        got: args.len(),
    }
}

/// Whether `args` of a command taking `required` of them read best as a
/// name split by a space and then only numbers, as `write my file 5` does:
/// one word too many, and the second not a number where one belongs.
/// Without this, such a name is reported as a bad count or version.
fn name_holds_a_space(args: &[&[u8]], required: usize) -> bool {
    let is_number = |word: &&[u8]| parse_number(word, "").is_ok();
    args.len() == required + 1 && !is_number(&args[1]) && args[2..].iter().all(is_number)
}

pub(crate) fn parse_name(word: &[u8], limits: &Limits) -> Result<String, ProtocolError> {
    if word.len() > limits.name_bytes_max {
        return Err(ProtocolError::NameTooLong {
            bytes: word.len(),
            max: limits.name_bytes_max,
        });
    }
    let name = std::str::from_utf8(word).map_err(|_| ProtocolError::BadName)?;
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(ProtocolError::BadName);
    }
    Ok(name.to_string())
}

/// Parses a content count and checks it against the limit before any content
/// is read, so a huge count costs nothing.
fn parse_count(word: &[u8], limits: &Limits) -> Result<usize, ProtocolError> {
    let bytes = parse_number(word, "numbytes")?;
    match usize::try_from(bytes) {
        Ok(count) if count <= limits.file_bytes_max => Ok(count),
        _ => Err(ProtocolError::FileTooLarge {
            bytes,
            max: limits.file_bytes_max,
        }),
    }
}

/// Parses unsigned decimal digits (no sign, no spaces) into a `u64`.
fn parse_number(word: &[u8], field: &'static str) -> Result<u64, ProtocolError> {
    let bad = || ProtocolError::BadNumber { field };
    if word.is_empty() || !word.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    word.iter().try_fold(0u64, |n, &digit| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(digit - b'0')))
            .ok_or_else(bad)
    })
}

/// The value of `word` if it is `key=value`, as in the extensions' answers.
fn field_value<'a>(word: &'a [u8], key: &str) -> Option<&'a [u8]> {
    word.strip_prefix(key.as_bytes())?.strip_prefix(b"=")
}

/// A short printable form of bytes for error messages.
fn lossy(bytes: &[u8]) -> String {
    const SHOWN_BYTES_MAX: usize = 40;
    String::from_utf8_lossy(&bytes[..bytes.len().min(SHOWN_BYTES_MAX)]).into_owned()
}

#[cfg(test)]
mod tests;
